//! The l7 session (`netxray dns`, `netxray http`): load l7.bpf.o,
//! configure it, attach its system-call tracepoints, and hand out its ring
//! buffer and counters.
//!
//! On 6.3+ the socket hooks sock:sock_send_length/sock_recv_length carry the
//! data ([`DataPath::Sock`]), and the system-call returns only what they
//! cannot; before, every call's return does ([`DataPath::Syscalls`]).
//!
//! Every attachment (classic syscall tracepoints through perf events,
//! tp_btf links) is owned by the [`aya::Ebpf`] inside [`L7Session`]:
//! dropping it, exiting or being killed detaches everything.

use crate::error::{Error, Result};
use crate::kernel::btf::KernelBtf;
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

/// The system calls whose data netxray reads (at their return tracepoints,
/// or on the sock path at the socket hooks inside them).
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

/// Whether this kernel has the tracepoints netxray attaches for `call`;
/// None when tracefs is not mounted (not mounted here: `hooks` changes
/// nothing).
pub fn syscall_available(call: &str) -> Option<bool> {
    let events = std::path::Path::new(crate::kernel::sys::TRACEFS).join("events");
    if !events.is_dir() {
        return None;
    }
    let dir = events.join("syscalls");
    Some(dir.join(format!("sys_exit_{call}")).is_dir())
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

/// The socket hooks of the sock path (6.3+): they carry the data of every
/// call but those [`sock_path_exit`] names.
pub const SOCK_TRACEPOINTS: [&str; 2] = ["sock_send_length", "sock_recv_length"];

/// On the sock path, the system calls whose return is still followed, and
/// when: UDP's datagram reads that want the sender's address (written
/// after the socket hook; the kernel program defers only those) and mmsg
/// calls (one hook per message); before 6.5 also sendfile (through
/// sendpage, no socket hook) and TCP's mmsg calls, which the socket hooks
/// count from 6.5 ([`sock_sees_splice`]).
fn sock_path_exit(call: &str, udp: bool, splice: bool) -> bool {
    match call {
        "recvfrom" | "recvmsg" => udp,
        "recvmmsg" | "sendmmsg" => udp || !splice,
        "sendfile64" => !splice,
        _ => false,
    }
}

/// Whether the socket hooks see sendfile and splice to a socket: from 6.5,
/// where those go through sock_sendmsg (sendpage is gone). By the kernel's
/// release (no BTF type tells it cheaply).
pub fn sock_sees_splice() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| {
            let mut n = r.trim().split(|c: char| !c.is_ascii_digit());
            Some((
                n.next()?.parse::<u32>().ok()?,
                n.next()?.parse::<u32>().ok()?,
            ))
        })
        .is_some_and(|v| v >= (6, 5))
}

/// Which hooks carry the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPath {
    /// sock:sock_send_length / sock_recv_length (BTF socket pointer, no fd
    /// walk, nothing for file I/O), the system-call returns for the rest
    /// (none for http on 6.5+).
    Sock,
    /// The system-call returns of every call (kernels before 6.3).
    Syscalls,
}

pub struct L7Session {
    kernel: Session,
    ring_bytes: u32,
    pub path: DataPath,
    /// Tracepoints attached (`sys_exit_read`, `sock:sock_send_length`, ...).
    pub attached: Vec<String>,
    /// System calls that could not be followed, with why (the others go on).
    pub skipped: Vec<(&'static str, AttachError)>,
}

impl L7Session {
    pub fn open(cfg: &L7ConfigArgs, kbtf: &KernelBtf) -> Result<Self> {
        let path = if SOCK_TRACEPOINTS.iter().all(|t| kbtf.has_tracepoint(t)) {
            DataPath::Sock
        } else {
            DataPath::Syscalls
        };
        let mut kernel = SessionBuilder::new("l7.bpf.o", L7_OBJ)
            .filter(cfg.filter_bpf.as_ref())
            .ring("nx_l7_events", cfg.ring_bytes)?
            // trace.bpf.o's ring, brought in with the filter's header: unused.
            .map_size("nx_events", 4096)
            .load()?;
        let splice = path == DataPath::Sock && sock_sees_splice();
        kernel.set_config("nx_l7_config", config(cfg, kernel.filtered, path, splice))?;
        let mut session = L7Session {
            kernel,
            ring_bytes: cfg.ring_bytes,
            path,
            attached: Vec::new(),
            skipped: Vec::new(),
        };
        if path == DataPath::Sock {
            for tp in SOCK_TRACEPOINTS {
                session
                    .kernel
                    .attach_tracepoint(tp, kbtf)
                    .map_err(|e| e.into_error(&format!("sock:{tp}")))?;
                session.attached.push(format!("sock:{tp}"));
            }
        }
        for call in SYSCALLS {
            let wanted = match path {
                DataPath::Syscalls => true,
                DataPath::Sock => sock_path_exit(call, cfg.transports.udp, splice),
            };
            if wanted {
                let exit = format!("sys_exit_{call}");
                match session.kernel.attach_syscall(&exit) {
                    Ok(()) => session.attached.push(exit),
                    Err(why) => session.skipped.push((call, why)),
                }
            }
        }
        if session.skipped.len() == SYSCALLS.len() {
            let why = session
                .skipped
                .first()
                .map(|(c, e)| format!("{c}: {e}"))
                .unwrap_or_default();
            return Err(Error::HookUnavailable {
                hook: "syscalls:sys_exit_read and the other system calls".into(),
                why,
            });
        }
        Ok(session)
    }

    /// The system calls followed (those not skipped).
    pub fn followed(&self) -> usize {
        SYSCALLS
            .iter()
            .filter(|c| !self.skipped.iter().any(|(s, _)| s == *c))
            .count()
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
fn config(cfg: &L7ConfigArgs, filtered: bool, path: DataPath, splice: bool) -> L7Config {
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
        (path == DataPath::Sock, l7_cfg::SOCK_PATH),
        (splice, l7_cfg::SOCK_SPLICE),
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
