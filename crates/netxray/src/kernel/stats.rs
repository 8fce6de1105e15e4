//! netxray stats in the kernel: load stats.bpf.o, attach it at tc ingress
//! and egress (and, asked for, XDP) of the interfaces of one namespace, keep
//! up with interfaces that come and go, and read the counters.
//!
//! TC programs attach through [`crate::kernel::tc`]: tcx links, or on a
//! kernel without tcx clsact + cls_bpf filters (deleted on exit; after a
//! SIGKILL by the next netxray, see there). XDP attachments are bpf_links
//! held as file descriptors: a killed netxray leaves nothing behind. Links
//! are created on a thread that entered the namespace (a link's ifindex is
//! resolved there). An interface whose XDP is taken by someone else's
//! program keeps it: netxray counts at TC there and says so.

use crate::error::{Error, Result};
use crate::kernel::netns::{self, Netns};
use crate::kernel::session::{Session, SessionBuilder};
use crate::kernel::sys::{self, attach_type, LinkExtra};
use crate::kernel::tc::{self, TcAttachment};
use crate::kernel::xdp;
use aya::maps::{MapData, PerCpuArray, PerCpuHashMap};
use aya::programs::{SchedClassifier, Xdp};
use netxray_abi::{
    cfg_flags, Config, FlowKey, FlowLast, FlowVal, IfKey, IfLast, IfStats, StatsCtl, DIR_MAX,
};
use netxray_filter::ebpf::Compiled;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

static STATS_OBJ: &[u8] = aya::include_bytes_aligned!("../../../../bpf/stats.bpf.o");

/// `XDP_FLAGS_DRV_MODE`.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// XDP, when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Generic (skb) XDP: keeps the skb path as it is.
    Generic,
    /// The driver's XDP (on veth: copies every skb and turns GRO on).
    Native,
}

#[derive(Debug, Clone)]
pub struct StatsConfig {
    pub filter_bpf: Option<Compiled>,
    /// Flow table size (LRU).
    pub flows: u32,
    pub xdp: Option<XdpMode>,
    pub ns: Netns,
    /// Only these interfaces (names); empty: every interface, as they come.
    pub only: Vec<String>,
}

/// What is attached to one interface.
pub struct Watched {
    pub name: String,
    /// XDP counting there (None: not asked for, or taken by another program).
    pub xdp: bool,
    /// Ingress and egress.
    _tc: Vec<TcAttachment>,
    _xdp_link: Option<OwnedFd>,
}

/// Counters read at one moment.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub ifaces: BTreeMap<IfKey, IfStats>,
    pub flows: Vec<(FlowKey, FlowVal)>,
    /// Flows in the kernel's table (the others in `flows` are only in a
    /// CPU's last-flow slot so far).
    pub table_entries: u64,
    pub ctl: StatsCtl,
}

pub struct StatsSession {
    kernel: Session,
    cfg: StatsConfig,
    progs: [OwnedFd; 3], // tc ingress, tc egress, xdp
    pub watched: BTreeMap<u32, Watched>,
}

/// Interfaces (index, name) in a namespace.
pub fn interfaces(ns: &Netns) -> std::io::Result<Vec<(u32, String)>> {
    netns::in_netns(&ns.path, sys::interfaces)
}

impl StatsSession {
    pub fn open(cfg: StatsConfig) -> Result<Self> {
        let mut kernel = SessionBuilder::new("stats.bpf.o", STATS_OBJ)
            .filter(cfg.filter_bpf.as_ref())
            // No events: the smallest ring.
            .map_size("nx_events", 4096)
            .map_size("nx_flows", cfg.flows.max(16))
            .load()?;
        let config = Config {
            flags: if kernel.filtered {
                cfg_flags::FILTER
            } else {
                0
            },
            ..Default::default()
        };
        kernel.set_config("nx_config", config)?;
        let ebpf = &mut kernel.ebpf;
        let mut fds = Vec::new();
        for name in ["stats_tc_ingress", "stats_tc_egress"] {
            let prog: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or_else(|| Error::usage(format!("internal: no program {name}")))?
                .try_into()
                .map_err(|e| Error::kernel(format!("program {name}"), e))?;
            prog.load()
                .map_err(|e| Error::kernel(format!("loading {name}"), e))?;
            fds.push(owned(
                prog.fd().map_err(|e| Error::kernel(name, e))?.as_fd(),
            )?);
        }
        {
            let prog: &mut Xdp = ebpf
                .program_mut("stats_xdp")
                .ok_or_else(|| Error::usage("internal: no program stats_xdp"))?
                .try_into()
                .map_err(|e| Error::kernel("program stats_xdp", e))?;
            prog.load()
                .map_err(|e| Error::kernel("loading stats_xdp", e))?;
            fds.push(owned(
                prog.fd()
                    .map_err(|e| Error::kernel("stats_xdp", e))?
                    .as_fd(),
            )?);
        }
        let progs: [OwnedFd; 3] = fds
            .try_into()
            .map_err(|_| Error::usage("internal: program count"))?;
        let s = StatsSession {
            kernel,
            cfg,
            progs,
            watched: BTreeMap::new(),
        };
        // Interfaces named must exist now.
        let present = interfaces(&s.cfg.ns).map_err(|e| {
            Error::io(
                format!("entering network namespace {}", s.cfg.ns.path.display()),
                e,
            )
        })?;
        for name in &s.cfg.only {
            if !present.iter().any(|(_, n)| n == name) {
                return Err(Error::usage(format!(
                    "unknown interface '{name}' in network namespace {}",
                    s.cfg.ns.path.display()
                )));
            }
        }
        Ok(s)
    }

    /// Watch interfaces that appeared, forget those gone. Returns what to
    /// tell the user.
    pub fn refresh(&mut self) -> Result<Vec<String>> {
        let present = interfaces(&self.cfg.ns).map_err(|e| {
            Error::io(
                format!("entering network namespace {}", self.cfg.ns.path.display()),
                e,
            )
        })?;
        let mut notes = Vec::new();
        let gone: Vec<u32> = self
            .watched
            .keys()
            .filter(|i| !present.iter().any(|(p, _)| p == *i))
            .copied()
            .collect();
        for i in gone {
            if let Some(w) = self.watched.remove(&i) {
                notes.push(format!("{} is gone", w.name));
            }
        }
        for (index, name) in present {
            if self.watched.contains_key(&index)
                || (!self.cfg.only.is_empty() && !self.cfg.only.contains(&name))
            {
                continue;
            }
            match self.attach(index) {
                Ok((tc_links, xdp_link, note)) => {
                    let xdp = xdp_link.is_some();
                    if let Some(a) = tc_links.first() {
                        tracing::debug!("{name}: tc through {}", a.path.describe());
                    }
                    notes.push(format!(
                        "watching {name}{}",
                        if xdp { " (XDP and TC)" } else { " (TC)" }
                    ));
                    if let Some(n) = note {
                        notes.push(format!("{name}: {n}"));
                    }
                    self.watched.insert(
                        index,
                        Watched {
                            name,
                            xdp,
                            _tc: tc_links,
                            _xdp_link: xdp_link,
                        },
                    );
                }
                // Gone between the listing and the attach: next time.
                Err(e) if e.errno == libc::ENODEV || e.errno == libc::ENXIO => {}
                Err(e) => notes.push(format!("{name}: cannot attach: {e}")),
            }
        }
        Ok(notes)
    }

    /// tc ingress and egress, and XDP if asked and free.
    #[allow(clippy::type_complexity)]
    fn attach(
        &self,
        ifindex: u32,
    ) -> std::result::Result<(Vec<TcAttachment>, Option<OwnedFd>, Option<String>), tc::TcError>
    {
        let mut tc_links = Vec::new();
        for (i, dir) in tc::Direction::BOTH.into_iter().enumerate() {
            let target = tc::Target {
                netns: &self.cfg.ns,
                ifindex,
                dir,
                prog_name: ["stats_tc_ingress", "stats_tc_egress"][i],
            };
            tc_links.push(tc::attach(self.progs[i].as_fd(), &target)?);
        }
        let Some(mode) = self.cfg.xdp else {
            return Ok((tc_links, None, None));
        };
        let raw = self.progs[2].as_raw_fd();
        let flags = match mode {
            XdpMode::Generic => sys::XDP_FLAGS_SKB_MODE,
            XdpMode::Native => XDP_FLAGS_DRV_MODE,
        };
        let xdp = netns::in_netns(&self.cfg.ns.path, move || {
            // SAFETY: the program fd belongs to the session, which outlives
            // this call (in_netns joins the thread before returning).
            let prog = unsafe { BorrowedFd::borrow_raw(raw) };
            sys::link_create(prog, ifindex, attach_type::XDP, flags, LinkExtra::None).map_err(|e| {
                // Who holds it, asked from inside the namespace.
                let who = match e.0 {
                    libc::EBUSY | libc::EEXIST => xdp::holder(ifindex),
                    _ => None,
                };
                (e, who)
            })
        })
        .map_err(|e| tc::TcError {
            what: "entering the namespace".into(),
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        })?;
        Ok(match xdp {
            Ok(l) => (tc_links, Some(l), None),
            Err((e, who)) if e.0 == libc::EBUSY || e.0 == libc::EEXIST => (
                tc_links,
                None,
                Some(format!(
                    "XDP is taken by another program{}, left in place: counting at TC only",
                    who.map(|(id, name)| format!(" (id {id}, name {name})"))
                        .unwrap_or_default()
                )),
            ),
            Err((e, _)) => (
                tc_links,
                None,
                Some(format!("no XDP ({e}): counting at TC only")),
            ),
        })
    }

    /// One of the program's maps by name (its absence is a build error).
    fn map(&self, name: &str) -> Result<&aya::maps::Map> {
        self.kernel.map(name)
    }

    pub fn snapshot(&self) -> Result<Snapshot> {
        let mut snap = Snapshot::default();
        let map = self.map("nx_if_stats")?;
        let h: PerCpuHashMap<&MapData, IfKey, IfStats> =
            PerCpuHashMap::try_from(map).map_err(|e| Error::kernel("opening nx_if_stats", e))?;
        for item in h.iter() {
            let (k, per_cpu) = item.map_err(|e| Error::kernel("reading nx_if_stats", e))?;
            let mut sum = IfStats::default();
            for v in per_cpu.iter() {
                sum += *v;
            }
            snap.ifaces.insert(k, sum);
        }
        // Each CPU's last interface per direction: its counts since it took
        // the slot belong to it (read after the table: a slot handed over
        // in between shows next time, never twice).
        let map = self.map("nx_if_last")?;
        let a: PerCpuArray<&MapData, IfLast> =
            PerCpuArray::try_from(map).map_err(|e| Error::kernel("opening nx_if_last", e))?;
        for dir in 0..DIR_MAX {
            let per_cpu = a
                .get(&dir, 0)
                .map_err(|e| Error::kernel("reading nx_if_last", e))?;
            for last in per_cpu.iter().filter(|l| l.key.ifindex != 0) {
                *snap.ifaces.entry(last.key).or_default() += last.st;
            }
        }
        let map = self.map("nx_flows")?;
        let h: PerCpuHashMap<&MapData, FlowKey, FlowVal> =
            PerCpuHashMap::try_from(map).map_err(|e| Error::kernel("opening nx_flows", e))?;
        // An entry evicted between listing and reading: skipped.
        for (k, per_cpu) in h.iter().flatten() {
            let mut sum = FlowVal::default();
            for v in per_cpu.iter() {
                sum.packets += v.packets;
                sum.bytes += v.bytes;
                if v.first_ns != 0 && (sum.first_ns == 0 || v.first_ns < sum.first_ns) {
                    sum.first_ns = v.first_ns;
                }
            }
            snap.flows.push((k, sum));
        }
        snap.table_entries = snap.flows.len() as u64;
        // Each CPU's last flow: its pending packets belong to that flow.
        let map = self.map("nx_flow_last")?;
        let a: PerCpuArray<&MapData, FlowLast> =
            PerCpuArray::try_from(map).map_err(|e| Error::kernel("opening nx_flow_last", e))?;
        let per_cpu = a
            .get(&0, 0)
            .map_err(|e| Error::kernel("reading nx_flow_last", e))?;
        for last in per_cpu.iter().filter(|l| l.packets > 0) {
            match snap.flows.iter_mut().find(|(k, _)| *k == last.key) {
                Some((_, v)) => {
                    v.packets += last.packets;
                    v.bytes += last.bytes;
                }
                None => snap.flows.push((
                    last.key,
                    FlowVal {
                        packets: last.packets,
                        bytes: last.bytes,
                        ..Default::default()
                    },
                )),
            }
        }
        let map = self.map("nx_stats_ctl")?;
        let a: PerCpuArray<&MapData, StatsCtl> =
            PerCpuArray::try_from(map).map_err(|e| Error::kernel("opening nx_stats_ctl", e))?;
        let per_cpu = a
            .get(&0, 0)
            .map_err(|e| Error::kernel("reading nx_stats_ctl", e))?;
        for c in per_cpu.iter() {
            snap.ctl.flows_inserted += c.flows_inserted;
            snap.ctl.flows_failed += c.flows_failed;
        }
        Ok(snap)
    }

    pub fn namespace(&self) -> &Netns {
        &self.cfg.ns
    }
}

fn owned(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    fd.try_clone_to_owned()
        .map_err(|e| Error::io("duplicating a program fd", e))
}
