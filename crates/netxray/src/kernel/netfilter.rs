//! Netfilter hooks through netfilter BPF links (kernel 6.4+), which aya 0.14
//! cannot load: this is the small loader for them.
//!
//! `bpf/netfilter.bpf.o` has two programs, `nf_first` and `nf_last`, in
//! `SEC("classifier")` so that aya-obj parses them and applies the map, call
//! and CO-RE relocations. They are relocated against the *trace* object's maps
//! (same names, see `bpf/include/nx_hook.bpf.h`), so their records go to the
//! same ring buffer through the same filter, and loaded here with
//! `BPF_PROG_TYPE_NETFILTER`.
//!
//! Links attach in the calling thread's network namespace: each namespace is
//! entered on a thread of its own. Priorities: INT_MIN and INT_MAX are refused
//! (ERANGE), so the first and last usable ones. No defrag flag (it needs a
//! priority above -400). The kernel has no bridge family and no ingress hook
//! for these links: IPv4 and IPv6, PREROUTING to POSTROUTING.
//!
//! Every link is a file descriptor: closing it (exit, crash, SIGKILL)
//! detaches the program.

use crate::kernel::netns::{self, Netns};
use crate::kernel::nfhooks::HookQuery;
use crate::kernel::sys::{self, attach_type, prog_type, Insn, LinkExtra};
use crate::model::hook::NF_HOOK_NAMES;
use aya::Btf;
use aya_obj::Object;
use netxray_filter::splice;
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

static NF_OBJ: &[u8] = aya::include_bytes_aligned!("../../../../bpf/netfilter.bpf.o");

/// `NFPROTO_IPV4`, `NFPROTO_IPV6`.
pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_IPV6: u8 = 10;
const PRIORITY_FIRST: i32 = i32::MIN + 1;
const PRIORITY_LAST: i32 = i32::MAX - 1;
/// Priorities tried past the first when another link holds it (EBUSY): as
/// many netxray runs at once, each at its own priority.
const PRIORITY_TRIES: i32 = 256;

/// One place to attach: a family, a hook and first or last priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NfPoint {
    pub pf: u8,
    pub hooknum: u8,
    pub last: bool,
}

impl NfPoint {
    /// Both families, every hook, first priority: what drop attribution
    /// needs (a NETFILTER_DROP happens inside the hook its packet entered
    /// last).
    pub fn firsts() -> Vec<NfPoint> {
        let mut v = Vec::new();
        for pf in [NFPROTO_IPV4, NFPROTO_IPV6] {
            for hooknum in 0..5 {
                v.push(NfPoint {
                    pf,
                    hooknum,
                    last: false,
                });
            }
        }
        v
    }
}

/// Why netfilter hooks could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NfError {
    #[error("netfilter.bpf.o: {0}")]
    Object(String),
    #[error("the trace object has no map {0} for the netfilter programs")]
    MissingMap(String),
    #[error("loading the netfilter program {name}: {err}")]
    Load { name: &'static str, err: String },
    #[error("entering network namespace {ns}: {err}")]
    Netns { ns: String, err: std::io::Error },
    #[error("attaching at netfilter {family} {hook} priority {priority} in namespace {ns}: {err}")]
    Attach {
        family: &'static str,
        hook: &'static str,
        priority: i32,
        ns: String,
        err: sys::Errno,
    },
}

/// The two loaded programs.
pub struct NfPrograms {
    first: OwnedFd,
    last: OwnedFd,
}

/// Parse, splice the filter into, relocate and load netfilter.bpf.o against
/// the trace object's maps (`maps`: name -> fd).
pub fn load(
    filter: Option<&[Insn]>,
    maps: &HashMap<String, RawFd>,
    btf: &Btf,
) -> Result<NfPrograms, NfError> {
    // Spliced even without a filter (see SessionBuilder::load).
    let patched = splice::splice(NF_OBJ, filter.unwrap_or(&splice::ACCEPT_ALL))
        .map_err(|e| NfError::Object(e.to_string()))?;
    let bytes = patched.bytes();
    let mut obj = Object::parse(bytes).map_err(|e| NfError::Object(e.to_string()))?;
    let mut pairs = Vec::new();
    for (name, map) in &obj.maps {
        // .rodata/.bss would need maps of their own: the object has none.
        let fd = *maps
            .get(name)
            .ok_or_else(|| NfError::MissingMap(name.clone()))?;
        pairs.push((name.clone(), fd, map.clone()));
    }
    // In aya's order: CO-RE first, on the code as compiled; then maps and
    // calls (which appends the subprograms to each program).
    obj.relocate_btf(btf)
        .map_err(|e| NfError::Object(format!("CO-RE relocation: {e:?}")))?;
    let text: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
    obj.relocate_maps(pairs.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)), &text)
        .map_err(|e| NfError::Object(format!("map relocation: {e}")))?;
    obj.relocate_calls(&text)
        .map_err(|e| NfError::Object(format!("call relocation: {e}")))?;
    let load_one = |name: &'static str| -> Result<OwnedFd, NfError> {
        let prog = obj
            .programs
            .get(name)
            .ok_or_else(|| NfError::Object(format!("no program {name}")))?;
        let func = obj
            .functions
            .get(&prog.function_key())
            .ok_or_else(|| NfError::Object(format!("no code for {name}")))?;
        let insns: Vec<Insn> = func
            .instructions
            .iter()
            .map(|i| Insn::new(i.code, i.dst_reg(), i.src_reg(), i.off, i.imm))
            .collect();
        sys::prog_load(&sys::ProgSpec {
            prog_type: prog_type::NETFILTER,
            expected_attach_type: attach_type::NETFILTER,
            attach_btf_id: 0,
            name,
            insns: &insns,
        })
        .map_err(|e| NfError::Load {
            name,
            err: e.to_string(),
        })
    };
    Ok(NfPrograms {
        first: load_one("nf_first")?,
        last: load_one("nf_last")?,
    })
}

impl NfPrograms {
    /// Attach at `points` inside namespace `ns`; the links, to keep open.
    pub fn attach(&self, ns: &Netns, points: &[NfPoint]) -> Result<Vec<OwnedFd>, NfError> {
        let first = self.first.as_raw_fd();
        let last = self.last.as_raw_fd();
        let points = points.to_vec();
        let label = ns.path.display().to_string();
        let label2 = label.clone();
        netns::in_netns(&ns.path, move || {
            let mut links = Vec::with_capacity(points.len());
            for p in points {
                let raw = if p.last { last } else { first };
                // SAFETY: the program fds are owned by self, which outlives
                // this call (in_netns joins the thread before returning).
                let prog = unsafe { BorrowedFd::borrow_raw(raw) };
                // Another netxray (or any BPF netfilter link) may hold the
                // priority: the kernel gives each priority of a hook to one
                // link (EBUSY). Take the next free one towards the middle:
                // still before (after) every other hook.
                let mut attempt = 0;
                let made = loop {
                    let priority = if p.last {
                        PRIORITY_LAST - attempt
                    } else {
                        PRIORITY_FIRST + attempt
                    };
                    let extra = LinkExtra::Netfilter {
                        pf: p.pf as u32,
                        hooknum: p.hooknum as u32,
                        priority,
                        flags: 0,
                    };
                    match sys::link_create(prog, 0, attach_type::NETFILTER, 0, extra) {
                        Err(e) if e.0 == libc::EBUSY && attempt < PRIORITY_TRIES => attempt += 1,
                        other => break (priority, other),
                    }
                };
                let (priority, made) = made;
                match made {
                    Ok(fd) => {
                        tracing::debug!(
                            "netfilter link {} {} priority {priority} in {label2}",
                            if p.pf == NFPROTO_IPV6 { "ip6" } else { "ip" },
                            NF_HOOK_NAMES
                                .get(p.hooknum as usize)
                                .copied()
                                .unwrap_or("?"),
                        );
                        links.push(fd)
                    }
                    Err(err) => {
                        return Err(NfError::Attach {
                            family: if p.pf == NFPROTO_IPV6 { "ip6" } else { "ip" },
                            hook: NF_HOOK_NAMES
                                .get(p.hooknum as usize)
                                .copied()
                                .unwrap_or("?"),
                            priority,
                            ns: label2,
                            err,
                        })
                    }
                }
            }
            Ok(links)
        })
        .map_err(|err| NfError::Netns { ns: label, err })?
    }
}

/// One namespace watched: its links, and a netlink socket inside it to see
/// what else is registered at its hooks.
struct Watched {
    links: HashMap<NfPoint, OwnedFd>,
    query: Option<HookQuery>,
}

/// The netfilter links of a session, per namespace, kept up to date as
/// namespaces come and go.
pub struct NfWatch {
    progs: NfPrograms,
    /// Attached in every namespace watched (the hooks traced).
    points: Vec<NfPoint>,
    /// Drop attribution: first-priority links, only at the hooks where
    /// something else is registered (where a packet can be dropped).
    attribution: bool,
    /// Only this namespace, or every one.
    only: Option<Netns>,
    spaces: HashMap<u32, Watched>,
}

impl NfWatch {
    pub fn new(
        progs: NfPrograms,
        points: Vec<NfPoint>,
        attribution: bool,
        only: Option<Netns>,
    ) -> Self {
        Self {
            progs,
            points,
            attribution,
            only,
            spaces: HashMap::new(),
        }
    }

    /// Attach where needed in the namespaces (new ones, or hooks that got
    /// rules since), forget the namespaces gone. Returns the namespaces
    /// where links were attached for the first time, and the errors (tried
    /// again next time).
    pub fn refresh(&mut self) -> (Vec<Netns>, Vec<NfError>) {
        let wanted: Vec<Netns> = match &self.only {
            Some(ns) => vec![ns.clone()],
            None => netns::all(),
        };
        let live: HashSet<u32> = wanted.iter().map(|n| n.inode).collect();
        self.spaces.retain(|inode, _| live.contains(inode));
        let mut errors = Vec::new();
        let mut added = Vec::new();
        for ns in wanted {
            let w = match self.spaces.entry(ns.inode) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let query = if self.attribution {
                        netns::in_netns(&ns.path, HookQuery::open)
                            .ok()
                            .and_then(Result::ok)
                    } else {
                        None
                    };
                    e.insert(Watched {
                        links: HashMap::new(),
                        query,
                    })
                }
            };
            let mut want: Vec<NfPoint> = self.points.clone();
            if self.attribution {
                // Without a way to look (no socket): everywhere.
                let in_use = match &mut w.query {
                    Some(q) => q.hooks_in_use().unwrap_or_else(|e| {
                        tracing::debug!("netfilter hooks in {}: {e}", ns.path.display());
                        Vec::new()
                    }),
                    None => NfPoint::firsts()
                        .iter()
                        .map(|p| (p.pf, p.hooknum))
                        .collect(),
                };
                for p in NfPoint::firsts() {
                    if in_use.contains(&(p.pf, p.hooknum)) && !want.contains(&p) {
                        want.push(p);
                    }
                }
            }
            want.retain(|p| !w.links.contains_key(p));
            if want.is_empty() {
                continue;
            }
            let first_time = w.links.is_empty();
            match self.progs.attach(&ns, &want) {
                Ok(links) => {
                    w.links.extend(want.into_iter().zip(links));
                    if first_time {
                        added.push(ns);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        (added, errors)
    }

    /// Namespaces with links now.
    pub fn namespaces(&self) -> usize {
        self.spaces.values().filter(|w| !w.links.is_empty()).count()
    }
}
