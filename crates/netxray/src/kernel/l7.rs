//! The l7 session (`netxray dns`, `netxray http`): load l7.bpf.o,
//! configure it, attach its system-call tracepoints, and hand out its ring
//! buffer and counters.
//!
//! Every attachment is a classic syscall tracepoint through a perf event,
//! owned by the [`aya::Ebpf`] inside [`L7Session`]: dropping it, exiting or
//! being killed detaches everything.

use crate::error::{Error, Result};
use crate::kernel::ring::EventRing;
use crate::kernel::session::{AttachError, Session, SessionBuilder};
use aya::maps::Map;
use netxray_abi::l7::{l7_cfg, L7Config, L7Counter, L7_CAP};
use netxray_abi::COMM_LEN;
use netxray_filter::ebpf::Compiled;

/// x86-64 kernel stack size (THREAD_SIZE without KASAN): the saved user
/// registers are at its top.
const THREAD_SIZE: u32 = 16384;

static L7_OBJ: &[u8] = aya::include_bytes_aligned!("../../../../bpf/l7.bpf.o");

/// The system calls whose data netxray reads: their return tracepoints,
/// and for sends ([`has_entry`]) the entry's too (attached after the
/// return, so that no entry is recorded without its return in place).
pub const SYSCALLS: &[&str] = &[
    "read",
    "write",
    "readv",
    "writev",
    "recvfrom",
    "sendto",
    "recvmsg",
    "sendmsg",
    "recvmmsg",
    "sendmmsg",
    // counted, not copied: a body sent from a file (nginx, sendfile on)
    "sendfile64",
];

/// Whether netxray attaches `call`'s entry tracepoint: only sends have one
/// (their time is taken at entry; a call's arguments come from the saved
/// registers at its return).
pub fn has_entry(call: &str) -> bool {
    !(call.starts_with("read") || call.starts_with("recv"))
}

/// Whether this kernel has the tracepoints netxray attaches for `call`;
/// None when tracefs is not mounted (not mounted here: `hooks` changes
/// nothing).
pub fn syscall_available(call: &str) -> Option<bool> {
    let events = std::path::Path::new(crate::kernel::sys::TRACEFS).join("events");
    if !events.is_dir() {
        return None;
    }
    let dir = events.join("syscalls");
    Some(
        (!has_entry(call) || dir.join(format!("sys_enter_{call}")).is_dir())
            && dir.join(format!("sys_exit_{call}")).is_dir(),
    )
}

/// Which sockets: stream (TCP), datagram (UDP), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    pub tcp: bool,
    pub udp: bool,
}

/// What to load and how: the typed result of the CLI.
#[derive(Debug, Clone)]
pub struct L7ConfigArgs {
    pub netns: u32,
    pub tgid: u32,
    /// --comm: only tasks of this name (at most 15 bytes are compared).
    pub comm: Option<String>,
    pub transports: Transports,
    /// Bytes copied from each message's start (<= 1024).
    pub cap_bytes: u32,
    pub ring_bytes: u32,
    /// The address/port filter compiled to BPF, run on each call's flow;
    /// None: no filter.
    pub filter_bpf: Option<Compiled>,
}

pub struct L7Session {
    kernel: Session,
    ring_bytes: u32,
    /// Tracepoints attached (`sys_enter_read`, ...).
    pub attached: Vec<String>,
    /// System calls that could not be followed, with why (the others go on).
    pub skipped: Vec<(&'static str, AttachError)>,
}

impl L7Session {
    pub fn open(cfg: &L7ConfigArgs) -> Result<Self> {
        let mut kernel = SessionBuilder::new("l7.bpf.o", L7_OBJ)
            .filter(cfg.filter_bpf.as_ref())
            .ring("nx_l7_events", cfg.ring_bytes)?
            // trace.bpf.o's ring, brought in with the filter's header: unused.
            .map_size("nx_events", 4096)
            .load()?;
        kernel.set_config("nx_l7_config", config(cfg, kernel.filtered))?;
        let mut session = L7Session {
            kernel,
            ring_bytes: cfg.ring_bytes,
            attached: Vec::new(),
            skipped: Vec::new(),
        };
        for call in SYSCALLS {
            match session.attach_pair(call) {
                Ok(()) => {}
                Err(why) => session.skipped.push((call, why)),
            }
        }
        if session.attached.is_empty() {
            let why = session
                .skipped
                .first()
                .map(|(c, e)| format!("{c}: {e}"))
                .unwrap_or_default();
            return Err(Error::HookUnavailable {
                hook: "syscalls:sys_enter_read and the other system calls".into(),
                why,
            });
        }
        Ok(session)
    }

    /// The return tracepoint, then the entry's (sends).
    fn attach_pair(&mut self, call: &str) -> Result<(), AttachError> {
        let exit = format!("sys_exit_{call}");
        self.kernel.attach_syscall(&exit)?;
        self.attached.push(exit);
        if has_entry(call) {
            let enter = format!("sys_enter_{call}");
            self.kernel.attach_syscall(&enter)?;
            self.attached.push(enter);
        }
        Ok(())
    }

    /// The ring buffer (can be taken once).
    pub fn take_ring(&mut self) -> Result<EventRing> {
        match self.kernel.take_map("nx_l7_events")? {
            Map::RingBuf(data) => EventRing::new(data, self.ring_bytes),
            _ => Err(Error::usage("internal: nx_l7_events is not a ring buffer")),
        }
    }

    /// The counters summed over CPUs.
    pub fn counters(&self) -> Result<L7Counter> {
        self.kernel.sum_per_cpu("nx_l7_counters", 0)
    }
}

/// The kernel's view of the configuration.
fn config(cfg: &L7ConfigArgs, filtered: bool) -> L7Config {
    let mut comm = [0u8; COMM_LEN];
    if let Some(name) = &cfg.comm {
        let n = name.len().min(COMM_LEN - 1);
        comm[..n].copy_from_slice(&name.as_bytes()[..n]);
    }
    let flags = [
        (filtered, l7_cfg::FILTER),
        (cfg.comm.is_some(), l7_cfg::COMM),
        (cfg.transports.tcp, l7_cfg::TCP),
        (cfg.transports.udp, l7_cfg::UDP),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |f, (_, bit)| f | bit);
    L7Config {
        netns: cfg.netns,
        tgid: cfg.tgid,
        flags,
        cap_bytes: cfg.cap_bytes.min(L7_CAP as u32),
        wakeup_bytes: cfg.ring_bytes / 4,
        thread_size: THREAD_SIZE,
        comm,
    }
}
