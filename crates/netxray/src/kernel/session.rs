//! The kernel session builder: the one way a subcommand loads a BPF object.
//!
//! Every per-kernel choice is made here, by probing, never by version number:
//! - the ring buffer's size is checked (a power of two, at least a page);
//! - the filter is spliced into the object (`netxray_filter::splice`) before loading;
//! - map sizes are set (tables get room only when the run needs them);
//! - a tracepoint whose arguments changed between kernels is served by the
//!   program written for this kernel's signature ([`program_for`]): `NAME`
//!   takes the newest argument list, `NAME__aN` an older one of N arguments;
//! - fields and helpers a kernel lacks are chosen by CO-RE in the BPF C
//!   itself (`bpf_core_field_exists`, `bpf_core_enum_value_exists`), so the
//!   verifier never sees them there.
//!
//! A program the kernel refuses is told apart from a hook the kernel lacks
//! ([`AttachError`]): the first is netxray's bug and is reported as such, with
//! the verifier's line that matters; the second is a fact of this kernel.

use crate::error::{Error, Result};
use crate::kernel::btf::KernelBtf;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, Map, MapData, PerCpuArray};
use aya::programs::{BtfTracePoint, ProgramError, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader, Pod};
use netxray_filter::ebpf::{Compiled, SetEntry};
use netxray_filter::splice;
use std::collections::HashMap;

/// Why a program could not be attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// The kernel does not have what the hook needs: a fact of this kernel.
    #[error("this kernel lacks {0}")]
    Missing(String),
    /// The verifier refused netxray's program: netxray's bug.
    #[error("netxray bug: this kernel's verifier refused program {program} ({errno}): {reason} (-vv prints the verifier's log; please report it)")]
    Refused {
        program: String,
        errno: String,
        reason: String,
    },
    /// Anything else (permissions, a busy attachment point, ...).
    #[error("{0}")]
    Failed(String),
}

impl AttachError {
    /// The user-facing error for a hook the run cannot do without.
    pub fn into_error(self, hook: &str) -> Error {
        match self {
            AttachError::Missing(_) => Error::HookUnavailable {
                hook: hook.into(),
                why: self.to_string(),
            },
            _ => Error::Runtime(format!("hook {hook}: {self}")),
        }
    }

    /// From aya's error on loading `program`.
    pub fn from_load(program: &str, e: &ProgramError) -> Self {
        match e {
            ProgramError::LoadError {
                io_error,
                verifier_log,
            } if !verifier_log.to_string().trim().is_empty() => {
                let log = verifier_log.to_string();
                tracing::debug!("the verifier's log for {program}:\n{log}");
                AttachError::Refused {
                    program: program.into(),
                    errno: io_error.to_string(),
                    reason: verifier_reason(&log),
                }
            }
            // Refused before the verifier ran: a missing capability (tc,
            // XDP and netfilter programs need CAP_NET_ADMIN), not a bug.
            ProgramError::LoadError { io_error, .. }
                if io_error.raw_os_error() == Some(libc::EPERM) =>
            {
                AttachError::Failed(format!(
                    "loading {program}: {io_error}: not permitted (tc, XDP and netfilter programs need CAP_NET_ADMIN)"
                ))
            }
            other => AttachError::Failed(format!("loading {program}: {}", chain(other))),
        }
    }
}

/// The verifier's line that says why: the last one before its statistics
/// ("processed N insns", "verification time", "stack depth"). The first line
/// can be harmless (6.1 prints "reg type unsupported for arg#0" for every
/// tp_btf program).
pub fn verifier_reason(log: &str) -> String {
    let stats = [
        "processed ",
        "verification time",
        "stack depth",
        "max_states_per_insn",
    ];
    log.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !stats.iter().any(|s| l.starts_with(s)))
        .unwrap_or("(empty verifier log)")
        .to_string()
}

/// An error with its sources, on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The program of `ebpf` that serves tracepoint `event` on this kernel: the
/// one written for its argument count (`event__aN`) when the object has it,
/// else `event` (the newest signature).
pub fn program_for(ebpf: &Ebpf, kbtf: &KernelBtf, event: &str) -> String {
    if let Some(n) = kbtf.tracepoint_args(event) {
        let variant = format!("{event}__a{n}");
        if ebpf.program(&variant).is_some() {
            return variant;
        }
    }
    event.to_string()
}

/// The map of the filter's set lookups (bpf/include/nx_packet.bpf.h).
pub const SETS_MAP: &str = "nx_filter_sets";

/// Write the filter's sets into `ebpf`'s set map (sized for them).
pub fn fill_sets(ebpf: &mut Ebpf, object: &str, sets: &[SetEntry]) -> Result<()> {
    if sets.is_empty() {
        return Ok(());
    }
    let map = ebpf
        .map_mut(SETS_MAP)
        .ok_or_else(|| missing_map(object, SETS_MAP))?;
    let mut trie: LpmTrie<&mut MapData, [u8; 20], u8> =
        LpmTrie::try_from(map).map_err(|e| Error::kernel(format!("opening {SETS_MAP}"), e))?;
    for e in sets {
        trie.insert(&Key::new(e.prefixlen, e.data), 1, 0)
            .map_err(|err| Error::kernel(format!("filling {SETS_MAP}"), err))?;
    }
    Ok(())
}

/// What to load: an embedded object and how to size and patch it.
pub struct SessionBuilder<'a> {
    name: &'static str,
    bytes: &'static [u8],
    filter: Option<&'a Compiled>,
    sizes: Vec<(&'static str, u32)>,
}

impl<'a> SessionBuilder<'a> {
    /// `name` is the object's file name (for messages), `bytes` its
    /// embedded image.
    pub fn new(name: &'static str, bytes: &'static [u8]) -> Self {
        SessionBuilder {
            name,
            bytes,
            filter: None,
            sizes: Vec::new(),
        }
    }

    /// The filter compiled to BPF, spliced in before loading, its sets
    /// written after (None: none).
    pub fn filter(mut self, filter: Option<&'a Compiled>) -> Self {
        self.filter = filter;
        self
    }

    /// The ring buffer `map`, of `bytes` (--ring-size): checked here.
    pub fn ring(self, map: &'static str, bytes: u32) -> Result<Self> {
        if !bytes.is_power_of_two() || bytes < 4096 {
            return Err(Error::usage(format!(
                "--ring-size must be a power of two of at least 4 KiB, got {bytes} bytes"
            )));
        }
        Ok(self.map_size(map, bytes))
    }

    /// Map `map` gets `entries` entries instead of what the object says.
    pub fn map_size(mut self, map: &'static str, entries: u32) -> Self {
        self.sizes.push((map, entries));
        self
    }

    /// Patch, size and load the object (its maps are created; programs are
    /// loaded when attached).
    pub fn load(self) -> Result<Session> {
        let t = std::time::Instant::now();
        // aya's loader parses the kernel's BTF for itself when made, and
        // keeps it to itself: ours (for loading programs) is parsed here
        // too. Not at the same time on a thread: both copies of the 5 MB
        // file and both parses at once put 5 MB on the peak (the journey
        // flood test's bound), for 15 ms.
        let btf = crate::kernel::btf::aya_btf().ok_or(Error::NoBtf)?;
        let mut loader = EbpfLoader::new();
        let parsed = t.elapsed();
        // Spliced even without a filter: the placeholder's padding is then
        // never walked by the verifier (netxray_filter::splice).
        let code = self
            .filter
            .map_or(&splice::ACCEPT_ALL[..], |f| &f.insns[..]);
        let patched = splice::splice(self.bytes, code).map_err(|e| Error::usage(e.to_string()))?;
        let object = patched.bytes();
        let sets = self.filter.map_or(&[][..], |f| &f.sets[..]);
        loader.btf(Some(&btf));
        for (map, n) in &self.sizes {
            loader.map_max_entries(map, *n);
        }
        loader.map_max_entries(SETS_MAP, sets.len().max(1) as u32);
        let mut ebpf = loader
            .load(object)
            .map_err(|e| Error::kernel(format!("loading {}", self.name), e))?;
        drop(loader);
        crate::kernel::sys::release_freed_memory();
        fill_sets(&mut ebpf, self.name, sets)?;
        tracing::debug!(
            "{}: kernel BTF (ours and aya's) {} ms, object and maps {} ms",
            self.name,
            parsed.as_millis(),
            (t.elapsed() - parsed).as_millis()
        );
        Ok(Session {
            ebpf,
            btf,
            object: self.name,
            filtered: self.filter.is_some(),
            preload_errors: HashMap::new(),
        })
    }
}

/// A loaded object: its maps, its programs, what was attached (owned by
/// the [`Ebpf`]: dropping the session detaches everything fd-based).
pub struct Session {
    pub ebpf: Ebpf,
    pub btf: Btf,
    /// The object's file name, for messages.
    pub object: &'static str,
    /// Whether a filter was spliced in.
    pub filtered: bool,
    /// Programs [`Session::preload_tracepoints`] could not load, and why.
    preload_errors: HashMap<String, AttachError>,
}

impl Session {
    /// Write `value` into slot 0 of the one-slot array `map` (the run's
    /// configuration).
    pub fn set_config<T: Pod>(&mut self, map: &str, value: T) -> Result<()> {
        let object = self.object;
        let m = self
            .ebpf
            .map_mut(map)
            .ok_or_else(|| missing_map(object, map))?;
        let mut arr: Array<&mut MapData, T> =
            Array::try_from(m).map_err(|e| Error::kernel(format!("opening {map}"), e))?;
        arr.set(0, value, 0)
            .map_err(|e| Error::kernel(format!("writing {map}"), e))
    }

    /// Map `name` (its absence is a build error).
    pub fn map(&self, name: &str) -> Result<&Map> {
        self.ebpf
            .map(name)
            .ok_or_else(|| missing_map(self.object, name))
    }

    /// Slot `index` of the per-CPU array `name`, summed over the CPUs
    /// (the counters every object keeps).
    pub fn sum_per_cpu<T>(&self, name: &str, index: u32) -> Result<T>
    where
        T: Pod + Default + std::ops::AddAssign,
    {
        let arr: PerCpuArray<&MapData, T> = PerCpuArray::try_from(self.map(name)?)
            .map_err(|e| Error::kernel(format!("opening {name}"), e))?;
        let per_cpu = arr
            .get(&index, 0)
            .map_err(|e| Error::kernel(format!("reading {name}"), e))?;
        let mut sum = T::default();
        for c in per_cpu.iter() {
            sum += *c;
        }
        Ok(sum)
    }

    /// Map `name`, taken out of the object (once).
    pub fn take_map(&mut self, name: &str) -> Result<Map> {
        let object = self.object;
        self.ebpf
            .take_map(name)
            .ok_or_else(|| missing_map(object, name))
    }

    /// Load the tp_btf programs of these tracepoints (those this kernel
    /// has) on several threads at once: the verifier's work is most of the
    /// time a run takes to start, and programs verify independently. Each
    /// load's failure is kept for [`Session::attach_tracepoint`] to report.
    pub fn preload_tracepoints(&mut self, events: &[&str], kbtf: &KernelBtf) {
        let wanted: HashMap<String, &str> = events
            .iter()
            .filter(|e| kbtf.has_tracepoint(e))
            .map(|e| (program_for(&self.ebpf, kbtf, e), *e))
            .collect();
        let btf = &self.btf;
        let mut jobs: Vec<(String, &str, &mut BtfTracePoint)> = self
            .ebpf
            .programs_mut()
            .filter_map(|(name, p)| {
                let event = wanted.get(name)?;
                let tp: &mut BtfTracePoint = p.try_into().ok()?;
                Some((name.to_string(), *event, tp))
            })
            .collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        // Each thread takes the next program when it is done (the slowest
        // cost 2-4 times the others: fixed shares left one thread idle).
        let queue = std::sync::Mutex::new(jobs.iter_mut());
        type Outcome = (
            String,
            std::time::Duration,
            Option<u32>,
            Option<AttachError>,
        );
        let mut done: Vec<Outcome> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let queue = &queue;
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        loop {
                            let next = queue.lock().ok().and_then(|mut q| q.next());
                            let Some((name, event, prog)) = next else {
                                break;
                            };
                            let t = std::time::Instant::now();
                            let err = prog
                                .load(event, btf)
                                .err()
                                .map(|e| AttachError::from_load(name, &e));
                            let verified = prog
                                .info()
                                .ok()
                                .and_then(|i| i.verified_instruction_count());
                            out.push((name.clone(), t.elapsed(), verified, err));
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        // -v: where the verifier's time goes.
        done.sort_by_key(|(_, t, _, _)| std::cmp::Reverse(*t));
        let slowest: Vec<String> = done
            .iter()
            .take(8)
            .map(|(n, t, v, _)| match v {
                Some(v) => format!("{n} {} ms ({v} insns verified)", t.as_millis()),
                None => format!("{n} {} ms", t.as_millis()),
            })
            .collect();
        tracing::debug!(
            "{}: {} programs loaded on {threads} threads; slowest: {}",
            self.object,
            done.len(),
            slowest.join(", ")
        );
        // The loader threads' malloc arenas hold what they freed.
        crate::kernel::sys::release_freed_memory();
        self.preload_errors.extend(
            done.into_iter()
                .filter_map(|(name, _, _, err)| err.map(|e| (name, e))),
        );
    }

    /// Load and attach the tp_btf program for tracepoint `event`, in the
    /// variant that fits this kernel's signature.
    pub fn attach_tracepoint(&mut self, event: &str, kbtf: &KernelBtf) -> Result<(), AttachError> {
        if !kbtf.has_tracepoint(event) {
            return Err(AttachError::Missing(format!("the tracepoint {event}")));
        }
        let name = program_for(&self.ebpf, kbtf, event);
        if let Some(e) = self.preload_errors.remove(&name) {
            return Err(e);
        }
        let prog: &mut BtfTracePoint = self
            .ebpf
            .program_mut(&name)
            .ok_or_else(|| AttachError::Failed(format!("{} has no program {name}", self.object)))?
            .try_into()
            .map_err(|e: ProgramError| AttachError::Failed(e.to_string()))?;
        // Loaded already by preload_tracepoints, or now.
        if prog.fd().is_err() {
            prog.load(event, &self.btf)
                .map_err(|e| AttachError::from_load(&name, &e))?;
        }
        prog.attach()
            .map_err(|e| AttachError::Failed(format!("attaching {name}: {}", chain(&e))))?;
        Ok(())
    }
}

impl Session {
    /// Load and attach the classic tracepoint program `syscalls:<event>`
    /// (named after the event in the object), mounting tracefs first if it
    /// is not (the tracepoint's id is read there). Attached through a perf
    /// event: a bpf_link since 5.15, a perf event fd before; both go with
    /// the process.
    pub fn attach_syscall(&mut self, event: &str) -> Result<(), AttachError> {
        // The test knob KernelBtf honours for BTF tracepoints.
        if std::env::var("NETXRAY_HIDE_TRACEPOINTS")
            .is_ok_and(|h| h.split(',').any(|n| n.trim() == event))
        {
            return Err(AttachError::Missing(format!(
                "the tracepoint syscalls:{event}"
            )));
        }
        crate::kernel::sys::ensure_tracefs().map_err(AttachError::Missing)?;
        let object = self.object;
        let prog: &mut TracePoint = self
            .ebpf
            .program_mut(event)
            .ok_or_else(|| AttachError::Failed(format!("{object} has no program {event}")))?
            .try_into()
            .map_err(|e: ProgramError| AttachError::Failed(e.to_string()))?;
        prog.load().map_err(|e| AttachError::from_load(event, &e))?;
        prog.attach("syscalls", event).map_err(|e| {
            // No such tracepoint: this kernel lacks the system call's
            // tracepoints (CONFIG_FTRACE_SYSCALLS).
            let missing = std::path::Path::new(crate::kernel::sys::TRACEFS)
                .join("events/syscalls")
                .join(event);
            if !missing.exists() {
                return AttachError::Missing(format!("the tracepoint syscalls:{event}"));
            }
            AttachError::Failed(format!("attaching syscalls:{event}: {}", chain(&e)))
        })?;
        Ok(())
    }
}

fn missing_map(object: &str, name: &str) -> Error {
    Error::usage(format!("internal: {object} has no map {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_line_that_matters() {
        let log = "reg type unsupported for arg#0 function kfree_skb#1074\n\
                   0: R1=ctx() R10=fp0\n\
                   ; int BPF_PROG(kfree_skb, ...)\n\
                   12: (79) r2 = *(u64 *)(r1 +24)\n\
                   func 'kfree_skb' doesn't have 4-th argument\n\
                   invalid bpf_context access off=24 size=8\n\
                   processed 13 insns (limit 1000000) max_states_per_insn 0 total_states 1\n\
                   \n";
        assert_eq!(
            verifier_reason(log),
            "invalid bpf_context access off=24 size=8"
        );
        assert_eq!(verifier_reason(""), "(empty verifier log)");
    }

    #[test]
    fn messages_say_whose_fault() {
        let m = AttachError::Missing("the tracepoint sk_data_ready".into());
        assert_eq!(
            m.to_string(),
            "this kernel lacks the tracepoint sk_data_ready"
        );
        let r = AttachError::Refused {
            program: "consume_skb".into(),
            errno: "Permission denied (os error 13)".into(),
            reason: "invalid bpf_context access off=8 size=8".into(),
        };
        let s = r.to_string();
        assert!(s.starts_with("netxray bug:"), "{s}");
        assert!(s.contains("-vv"), "{s}");
    }
}
