//! The trace session: load trace.bpf.o, configure it, attach the chosen
//! hooks, and hand out the ring buffer and the kernel's counters.
//!
//! Everything attached is owned by the [`aya::Ebpf`] inside [`TraceSession`]:
//! tp_btf attachments are bpf_links held by file descriptors, so dropping the
//! session, exiting, or being killed detaches them all.

use crate::error::{Error, Result};
use crate::kernel::btf::KernelBtf;
use crate::kernel::netfilter::{self, NfPoint, NfWatch};
use crate::kernel::netns::{self, Netns};
use crate::kernel::ring::EventRing;
use crate::kernel::session::{AttachError, Session, SessionBuilder};
use crate::kernel::stats::{XdpMode, XDP_FLAGS_DRV_MODE};
use crate::kernel::sys::{self, attach_type, LinkExtra};
use crate::kernel::tc;
use crate::kernel::xdp;
use crate::model::hook::{Backend, Group, HookPoint, HOOKS};
use aya::maps::{Map, MapData, PerCpuArray, PerCpuHashMap, StackTraceMap};
use aya::programs::{ProgramError, SchedClassifier, Xdp};
use aya::Ebpf;
use netxray_abi::{cfg_flags, hook_id, Config, Counter, DropKey, DropLast, DropVal, CAP_BYTES};
use netxray_filter::ebpf::Compiled;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

static TRACE_OBJ: &[u8] = aya::include_bytes_aligned!("../../../../bpf/trace.bpf.o");

/// x86-64 kernel stack size (THREAD_SIZE without KASAN), for the BPF side's
/// interrupt-context test.
const THREAD_SIZE: u32 = 16384;

/// What to load and how to configure it: the typed result of the CLI.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    pub hooks: Vec<&'static HookPoint>,
    /// Hooks the user named one by one: a missing one is an error, not a skip.
    pub required: Vec<u16>,
    pub netns: u32,
    /// The namespace selected, for netfilter links (None: every namespace).
    pub netns_at: Option<Netns>,
    pub ifindex: u32,
    pub tgid: u32,
    /// The filter compiled to BPF, spliced into the object; None: no filter.
    pub filter_bpf: Option<Compiled>,
    pub ring_bytes: u32,
    pub snaplen: u32,
    /// --follow: how long a matched packet's buffer stays followed (0: off).
    pub follow_ns: u32,
    /// --stack: hooks (bit = hook id) whose kernel stack is recorded.
    pub stack_hooks: u64,
    /// --ret: entry hooks remember their packet for the exit tracepoints.
    pub ret: bool,
    /// netxray drops: kfree_skb counts in the kernel (map nx_drops).
    pub drops: bool,
    /// Netfilter links at every hook so that a drop says in which hook it
    /// happened (drops, drops --events); failing is not fatal.
    pub nf_attribution: bool,
    /// XDP mode for the xdp hook (generic unless told).
    pub xdp: Option<XdpMode>,
}

pub struct TraceSession {
    kernel: Session,
    ring_bytes: u32,
    pub attached: Vec<&'static HookPoint>,
    /// Hooks this kernel lacks, with why (only when not asked for explicitly).
    pub skipped: Vec<(&'static HookPoint, AttachError)>,
    /// Hooks attached only to support another (net_dev_start_xmit for net_dev_xmit).
    pub helpers: Vec<&'static HookPoint>,
    /// Netfilter links, per namespace (netfilter hooks, or drops).
    pub netfilter: Option<NfWatch>,
    /// Why netfilter hooks could not be set up at all (drops goes on without).
    pub netfilter_error: Option<String>,
    /// XDP links on the interface traced.
    dev_links: Vec<OwnedFd>,
    /// tc programs on it (tcx links or cls_bpf filters).
    tc: Vec<tc::TcAttachment>,
}

impl TraceSession {
    pub fn open(cfg: &TraceConfig, kbtf: &KernelBtf) -> Result<Self> {
        let started = std::time::Instant::now();
        let mut kernel = SessionBuilder::new("trace.bpf.o", TRACE_OBJ)
            .filter(cfg.filter_bpf.as_ref())
            .ring("nx_events", cfg.ring_bytes)?
            // 1 KiB per stack: room only when stacks are wanted.
            .map_size("nx_stacks", if cfg.stack_hooks != 0 { 4096 } else { 1 })
            // --follow's tables (LRU hashes are preallocated): room only
            // when following.
            .map_size("nx_follow", if cfg.follow_ns != 0 { 65536 } else { 1 })
            .map_size("nx_follow_skb", if cfg.follow_ns != 0 { 65536 } else { 1 })
            // drops' per-CPU row table, preallocated: its 16384 rows per CPU
            // were a tenth of trace's start-up.
            .map_size("nx_drops", if cfg.drops { 16384 } else { 1 })
            .load()?;
        let config = Config {
            netns: cfg.netns,
            ifindex: cfg.ifindex,
            tgid: cfg.tgid,
            flags: [
                (kernel.filtered, cfg_flags::FILTER),
                (cfg.ret, cfg_flags::RET),
                (cfg.drops, cfg_flags::DROPS),
                (
                    !cfg.hooks.iter().any(|h| h.group == Group::Netfilter),
                    cfg_flags::NF_QUIET,
                ),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .fold(0, |f, (_, bit)| f | bit),
            cap_bytes: cfg.snaplen.min(CAP_BYTES as u32),
            wakeup_bytes: cfg.ring_bytes / 4,
            thread_size: THREAD_SIZE,
            follow_ns: cfg.follow_ns,
            stack_hooks: cfg.stack_hooks,
        };
        kernel.set_config("nx_config", config)?;
        // net_dev_xmit reports the skbs whose net_dev_start_xmit matched.
        let mut to_attach = cfg.hooks.clone();
        let mut helpers = Vec::new();
        if to_attach.iter().any(|h| h.id == hook_id::NET_DEV_XMIT)
            && !to_attach
                .iter()
                .any(|h| h.id == hook_id::NET_DEV_START_XMIT)
        {
            if let Some(h) = HookPoint::by_id(hook_id::NET_DEV_START_XMIT) {
                to_attach.push(h);
                helpers.push(h);
            }
        }

        let (nf_hooks, to_attach): (Vec<_>, Vec<_>) = to_attach
            .into_iter()
            .partition(|h| matches!(h.backend, Backend::Netfilter { .. }));
        let mut session = TraceSession {
            kernel,
            ring_bytes: cfg.ring_bytes,
            attached: Vec::new(),
            skipped: Vec::new(),
            helpers,
            netfilter: None,
            netfilter_error: None,
            dev_links: Vec::new(),
            tc: Vec::new(),
        };
        if !nf_hooks.is_empty() || cfg.nf_attribution {
            session.open_netfilter(cfg, &nf_hooks, kbtf)?;
        }
        let events: Vec<&str> = to_attach
            .iter()
            .filter(|h| matches!(h.backend, Backend::TpBtf))
            .map(|h| h.event())
            .collect();
        let objects = started.elapsed();
        session.kernel.preload_tracepoints(&events, kbtf);
        let verified = started.elapsed();
        for hook in to_attach {
            match session.attach(hook, cfg, kbtf) {
                Ok(()) => session.attached.push(hook),
                Err(why) if !cfg.required.contains(&hook.id) => session.skipped.push((hook, why)),
                Err(why) => return Err(why.into_error(hook.name)),
            }
        }
        if session.attached.is_empty() {
            return Err(nothing_attached(&session.skipped));
        }
        tracing::debug!(
            "trace.bpf.o: object and maps {} ms, {} tracepoint programs verified {} ms (in parallel), attached {} ms",
            objects.as_millis(),
            events.len(),
            (verified - objects).as_millis(),
            (started.elapsed() - verified).as_millis()
        );
        Ok(session)
    }

    /// Netfilter links: at the hooks asked for (trace), or at every hook
    /// for drop attribution (drops, where failing is not fatal).
    fn open_netfilter(
        &mut self,
        cfg: &TraceConfig,
        hooks: &[&'static HookPoint],
        kbtf: &KernelBtf,
    ) -> Result<()> {
        let points: Vec<NfPoint> = hooks
            .iter()
            .filter_map(|h| match h.backend {
                Backend::Netfilter { hooknum, last } => Some((hooknum, last)),
                _ => None,
            })
            .flat_map(|(hooknum, last)| {
                [netfilter::NFPROTO_IPV4, netfilter::NFPROTO_IPV6].map(|pf| NfPoint {
                    pf,
                    hooknum,
                    last,
                })
            })
            .collect();
        let result = netfilter_links(kbtf)
            .and_then(|()| map_fds(&self.kernel.ebpf).map_err(AttachError::Failed))
            .and_then(|fds| {
                netfilter::load(
                    cfg.filter_bpf.as_ref().map(|f| f.insns.as_slice()),
                    &fds,
                    &self.kernel.btf,
                )
                .map_err(|e| AttachError::Failed(e.to_string()))
            })
            .and_then(|progs| {
                let mut watch =
                    NfWatch::new(progs, points, cfg.nf_attribution, cfg.netns_at.clone());
                let (_, errors) = watch.refresh();
                match (watch.namespaces(), errors.into_iter().next()) {
                    (0, Some(e)) => Err(AttachError::Failed(e.to_string())),
                    (_, Some(e)) => {
                        tracing::warn!("netfilter hooks: {e}");
                        Ok(watch)
                    }
                    (_, None) => Ok(watch),
                }
            });
        match result {
            Ok(watch) => {
                self.netfilter = Some(watch);
                self.attached.extend(hooks.iter().copied());
            }
            Err(why) if hooks.is_empty() => self.netfilter_error = Some(why.to_string()),
            Err(why) => {
                let named = hooks.iter().find(|h| cfg.required.contains(&h.id));
                match named {
                    Some(h) => return Err(why.into_error(h.name)),
                    None => self.skipped.extend(hooks.iter().map(|h| (*h, why.clone()))),
                }
            }
        }
        Ok(())
    }

    /// Cover namespaces created since the last call (netfilter links);
    /// those newly covered.
    pub fn refresh_netfilter(&mut self) -> Vec<Netns> {
        let Some(w) = &mut self.netfilter else {
            return Vec::new();
        };
        let (added, errors) = w.refresh();
        for e in errors {
            tracing::debug!("netfilter hooks: {e}");
        }
        added
    }

    fn attach(
        &mut self,
        hook: &HookPoint,
        cfg: &TraceConfig,
        kbtf: &KernelBtf,
    ) -> Result<(), AttachError> {
        let dev = match hook.backend {
            Backend::Tc { egress } => {
                tc::path(Some(kbtf));
                if egress {
                    "nx_tc_egress"
                } else {
                    "nx_tc_ingress"
                }
            }
            Backend::Xdp => "nx_xdp",
            _ => return self.kernel.attach_tracepoint(hook.event(), kbtf),
        };
        self.attach_dev(cfg, dev)
    }

    /// A tc or XDP program on the interface of -i: a tcx link (or, on a
    /// kernel without tcx, a cls_bpf filter) or an XDP link, made inside
    /// its namespace.
    fn attach_dev(&mut self, cfg: &TraceConfig, prog_name: &str) -> Result<(), AttachError> {
        let Some(ns) = cfg.netns_at.clone().filter(|_| cfg.ifindex != 0) else {
            return Err(AttachError::Failed(
                "needs an interface: -i IFACE (and --netns NS)".into(),
            ));
        };
        let xdp = prog_name == "nx_xdp";
        // Load it as its type (both have load() and fd(), but no shared trait).
        macro_rules! loaded_fd {
            ($ty:ty) => {{
                let prog: &mut $ty = self
                    .kernel
                    .ebpf
                    .program_mut(prog_name)
                    .ok_or_else(|| {
                        AttachError::Failed(format!("trace.bpf.o has no program {prog_name}"))
                    })?
                    .try_into()
                    .map_err(|e: ProgramError| AttachError::Failed(e.to_string()))?;
                prog.load()
                    .map_err(|e| AttachError::from_load(prog_name, &e))?;
                prog.fd()
                    .map_err(|e| AttachError::Failed(e.to_string()))?
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| AttachError::Failed(e.to_string()))?
            }};
        }
        if !xdp {
            let fd = loaded_fd!(SchedClassifier);
            let dir = if prog_name == "nx_tc_egress" {
                tc::Direction::Egress
            } else {
                tc::Direction::Ingress
            };
            let target = tc::Target {
                netns: &ns,
                ifindex: cfg.ifindex,
                dir,
                prog_name,
            };
            let a =
                tc::attach(fd.as_fd(), &target).map_err(|e| AttachError::Failed(e.to_string()))?;
            tracing::debug!(
                "tc:{} on ifindex {}: {}{}",
                dir.name(),
                cfg.ifindex,
                a.path.describe(),
                a.prio.map(|p| format!(", pref {p}")).unwrap_or_default()
            );
            self.tc.push(a);
            return Ok(());
        }
        let fd = loaded_fd!(Xdp);
        let flags = match cfg.xdp.unwrap_or(XdpMode::Generic) {
            XdpMode::Generic => sys::XDP_FLAGS_SKB_MODE,
            XdpMode::Native => XDP_FLAGS_DRV_MODE,
        };
        let ifindex = cfg.ifindex;
        let raw = fd.as_raw_fd();
        let link = netns::in_netns(&ns.path, move || {
            // SAFETY: fd is alive until in_netns returns (it joins).
            let prog = unsafe { BorrowedFd::borrow_raw(raw) };
            sys::link_create(prog, ifindex, attach_type::XDP, flags, LinkExtra::None).map_err(|e| {
                match e.0 {
                    // Say who holds it, from inside the namespace.
                    libc::EBUSY | libc::EEXIST => {
                        xdp::held_message(&xdp::ifname(ifindex), xdp::holder(ifindex))
                    }
                    _ => format!("attaching: {e}"),
                }
            })
        })
        .map_err(|e| AttachError::Failed(format!("entering the namespace: {e}")))?
        .map_err(AttachError::Failed)?;
        drop(fd);
        self.dev_links.push(link);
        Ok(())
    }

    /// The ring buffer (can be taken once).
    pub fn take_ring(&mut self) -> Result<EventRing> {
        match self.kernel.take_map("nx_events")? {
            Map::RingBuf(data) => EventRing::new(data, self.ring_bytes),
            _ => Err(Error::usage("internal: nx_events is not a ring buffer")),
        }
    }

    /// The kernel stacks recorded with --stack (can be taken once).
    pub fn take_stacks(&mut self) -> Result<StackTraceMap<MapData>> {
        let map = self.kernel.take_map("nx_stacks")?;
        StackTraceMap::try_from(map).map_err(|e| Error::kernel("opening nx_stacks", e))
    }

    /// netxray drops: every row's counts summed over CPUs, with the sample
    /// of the CPU that saw the latest drop.
    pub fn drops(&self) -> Result<Vec<(DropKey, DropVal)>> {
        let map = self.kernel.map("nx_drops")?;
        let h: PerCpuHashMap<&MapData, DropKey, DropVal> =
            PerCpuHashMap::try_from(map).map_err(|e| Error::kernel("opening nx_drops", e))?;
        let mut out = Vec::new();
        for item in h.iter() {
            let (k, per_cpu) = item.map_err(|e| Error::kernel("reading nx_drops", e))?;
            let mut sum = DropVal::default();
            for v in per_cpu.iter() {
                sum.count += v.count;
                sum.bytes += v.bytes;
                if v.last_ns > sum.last_ns {
                    let (c, b) = (sum.count, sum.bytes);
                    sum = *v;
                    sum.count = c;
                    sum.bytes = b;
                }
            }
            out.push((k, sum));
        }
        // Each CPU's last row: its drops after the first are counted there.
        let map = self.kernel.map("nx_drop_last")?;
        let a: PerCpuArray<&MapData, DropLast> =
            PerCpuArray::try_from(map).map_err(|e| Error::kernel("opening nx_drop_last", e))?;
        let per_cpu = a
            .get(&0, 0)
            .map_err(|e| Error::kernel("reading nx_drop_last", e))?;
        for last in per_cpu.iter().filter(|l| l.valid != 0 && l.count > 0) {
            match out.iter_mut().find(|(k, _)| *k == last.key) {
                Some((_, v)) => {
                    v.count += last.count;
                    v.bytes += last.bytes;
                }
                None => out.push((
                    last.key,
                    DropVal {
                        count: last.count,
                        bytes: last.bytes,
                        ..Default::default()
                    },
                )),
            }
        }
        Ok(out)
    }

    /// Per-hook counters summed over CPUs, indexed by hook id.
    pub fn counters(&self) -> Result<Vec<Counter>> {
        let map = self.kernel.map("nx_counters")?;
        let arr: PerCpuArray<&MapData, Counter> =
            PerCpuArray::try_from(map).map_err(|e| Error::kernel("opening nx_counters", e))?;
        let mut out = vec![Counter::default(); hook_id::MAX as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let per_cpu = arr
                .get(&(i as u32), 0)
                .map_err(|e| Error::kernel("reading nx_counters", e))?;
            for c in per_cpu.iter() {
                *slot += *c;
            }
        }
        Ok(out)
    }
}

/// Every map of the loaded trace object by name, as raw fds (valid while
/// the object lives): the netfilter programs share them.
fn map_fds(ebpf: &Ebpf) -> std::result::Result<std::collections::HashMap<String, RawFd>, String> {
    let mut out = std::collections::HashMap::new();
    for (name, map) in ebpf.maps() {
        let data = match map {
            Map::Array(d)
            | Map::PerCpuArray(d)
            | Map::HashMap(d)
            | Map::PerCpuHashMap(d)
            | Map::LruHashMap(d)
            | Map::PerCpuLruHashMap(d)
            | Map::RingBuf(d)
            | Map::StackTraceMap(d)
            | Map::LpmTrie(d)
            | Map::Unsupported(d) => d,
            _ => return Err(format!("internal: map {name} of an unexpected type")),
        };
        out.insert(name.to_string(), data.fd().as_fd().as_raw_fd());
    }
    Ok(out)
}

/// Every hook the kernel has (for the default selection).
/// Every hook this kernel has, except the exit hooks of --ret (`with_ret`
/// adds them).
pub fn available_hooks(kbtf: &KernelBtf, with_ret: bool) -> Vec<&'static HookPoint> {
    HOOKS
        .iter()
        .filter(|h| h.in_default_set() || (with_ret && h.group == Group::Ret))
        .filter(|h| hook_available(kbtf, h))
        .collect()
}

/// Why a run has no hook at all, naming the cause: the one reason every
/// skipped hook shares (a kernel without netfilter links, an XDP held by
/// another program), else each distinct one.
fn nothing_attached(skipped: &[(&'static HookPoint, AttachError)]) -> Error {
    if skipped.is_empty() {
        return Error::usage("no hook selected: name hooks or groups with -t (see netxray hooks)");
    }
    let mut groups: Vec<&str> = skipped.iter().map(|(h, _)| h.group.name()).collect();
    groups.dedup();
    let hooks = match skipped {
        [(h, _)] => h.name.to_string(),
        _ => format!("group {}", groups.join(", ")),
    };
    let mut reasons: Vec<String> = Vec::new();
    for (_, why) in skipped {
        let w = why.to_string();
        if !reasons.contains(&w) {
            reasons.push(w);
        }
    }
    match (reasons.len(), skipped.first()) {
        (1, Some((_, why))) => why.clone().into_error(&hooks),
        _ => Error::HookUnavailable {
            hook: hooks,
            why: format!(
                "none of the selected hooks could be attached: {}",
                reasons.join("; ")
            ),
        },
    }
}

/// Netfilter BPF links (BPF_PROG_TYPE_NETFILTER, BPF_NETFILTER) came with
/// Linux 6.4: Debian 12's 6.1 and Debian 11's 5.10 lack them.
fn netfilter_links(kbtf: &KernelBtf) -> Result<(), AttachError> {
    if kbtf.has_enum_value("bpf_attach_type", "BPF_NETFILTER") {
        Ok(())
    } else {
        Err(AttachError::Missing(
            "netfilter BPF links (BPF_NETFILTER, Linux 6.4 and later)".into(),
        ))
    }
}

/// Whether this kernel has the hook, as far as its BTF tells.
pub fn hook_available(kbtf: &KernelBtf, hook: &HookPoint) -> bool {
    hook_lacks(kbtf, hook).is_none()
}

/// What this kernel lacks for the hook, as far as its BTF tells (None: it
/// has what the hook needs).
pub fn hook_lacks(kbtf: &KernelBtf, hook: &HookPoint) -> Option<String> {
    match hook.backend {
        Backend::TpBtf => {
            (!kbtf.has_tracepoint(hook.event())).then(|| format!("the tracepoint {}", hook.name))
        }
        Backend::Netfilter { .. } => netfilter_links(kbtf).err().map(|e| match e {
            AttachError::Missing(what) => what,
            other => other.to_string(),
        }),
        // Through tcx, or legacy tc (clsact + cls_bpf) without it.
        Backend::Tc { .. } => None,
        Backend::Xdp => (!kbtf.has_enum_value("bpf_attach_type", "BPF_XDP"))
            .then(|| "XDP links (BPF_XDP)".to_string()),
    }
}
