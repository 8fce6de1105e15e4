//! Attaching a TC program (SchedClassifier) to one side of an interface,
//! on any kernel: one call, [`attach`], one RAII guard, [`TcAttachment`].
//!
//! # Two paths
//! - **tcx** (kernel 6.6+): a bpf_link (`BPF_LINK_CREATE` with
//!   `BPF_TCX_INGRESS`/`EGRESS`) made on a thread inside the namespace.
//!   The link is a file descriptor: closing it (exit, SIGKILL) detaches.
//!   Chosen when the kernel's BTF enum `bpf_attach_type` has
//!   `BPF_TCX_INGRESS`; a link refused with EINVAL switches the process to
//!   the legacy path for good.
//! - **legacy tc** (older kernels, e.g. Debian 12's 6.1 and Debian 11's
//!   5.10, or `NETXRAY_NO_TCX=1`): over rtnetlink, on a NETLINK_ROUTE socket
//!   opened inside the target namespace (a netlink socket stays in the
//!   namespace it was made in, so the guard keeps it for the deletion):
//!   - a `clsact` qdisc, created only when the interface has none (an
//!     existing one, and every filter in it, is left as it is);
//!   - a `cls_bpf` filter in direct-action mode, `protocol all`, named
//!     `netxray:<pid>:<program>`, with handle = netxray's pid, at the first
//!     priority (from 1, the earliest) that is free or holds only `bpf`
//!     filters of protocol all (a new cls_bpf filter goes first in its
//!     priority): netxray sees packets before other filters, as under tcx.
//!     Its programs return -1 (TCX_NEXT); under direct action that is
//!     TC_ACT_UNSPEC, "no verdict": the next filter runs, and with none left
//!     the packet goes on unchanged, as under tcx.
//!   - on drop: exactly that filter is deleted (priority, protocol, handle
//!     and kind named), then the clsact qdisc if a netxray created it and
//!     no filter is left in it.
//!
//! # What a killed netxray leaves, and who removes it
//! A cls_bpf filter is not a bpf_link: after SIGKILL it stays, with its
//! program, and keeps running (it only counts or reports into maps nobody
//! reads, and passes every packet). So:
//! - **filters**: each carries its owner's pid in its name. Before netxray
//!   attaches to an interface, it deletes the netxray filters on both sides
//!   of that interface whose owner is gone (no process with that pid whose
//!   comm is `netxray`; or our own pid, on a filter this process did not
//!   make: a pid reused). `netxray doctor` does the same on every interface
//!   of its own namespace and of those under /run/netns, and says what it
//!   removed.
//! - **qdiscs**: a clsact qdisc netxray created is written down in
//!   [`state`] (`/run/netxray/clsact/<netns inode>-<ifindex>`, with the
//!   owner's pid and the namespace cookie) before it is created. The first
//!   legacy attachment of a process, and `netxray doctor`, go through the
//!   records of dead owners: stale netxray filters on that interface are
//!   deleted, then the qdisc is deleted if nothing is left in it. A record
//!   whose namespace or qdisc is gone is dropped. Whoever releases the last
//!   netxray filter in a recorded qdisc (its creator, or any netxray once
//!   the creator is gone) deletes the qdisc; if someone else's filter is in
//!   it, it is theirs now: left in place and the record dropped.
//!
//! Limits: a netxray in another pid namespace cannot be told from a dead
//! one by pid (its filters look stale here); records need a writable /run.

mod cleanup;
mod rtnl;
pub mod state;

pub use cleanup::{clean_namespace, sweep_records};
pub use rtnl::Direction;

use crate::kernel::btf::KernelBtf;
use crate::kernel::netns::{self, Netns};
use crate::kernel::sys::netlink::NlSocket;
use crate::kernel::sys::{self, attach_type, Errno, LinkExtra};
use cleanup::{release_qdisc, set_live, survey};
use rtnl::{BpfFilter, FilterInfo, ETH_P_ALL};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;
use std::time::Duration;

/// Test knob: `NETXRAY_NO_TCX=1` makes netxray behave as on a kernel
/// without tcx.
pub const NO_TCX_ENV: &str = "NETXRAY_NO_TCX";
/// The start of every cls_bpf filter name netxray gives.
pub const FILTER_PREFIX: &str = "netxray:";

/// How TC programs are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcPath {
    Tcx,
    Legacy,
}

impl TcPath {
    /// For `-v` and `hooks`.
    pub fn describe(self) -> &'static str {
        match self {
            TcPath::Tcx => "tcx",
            TcPath::Legacy => "clsact + cls_bpf (this kernel has no tcx)",
        }
    }
}

/// 0 not decided yet, 1 tcx, 2 legacy.
static PATH: AtomicU8 = AtomicU8::new(0);

fn no_tcx_forced() -> bool {
    std::env::var(NO_TCX_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The path this kernel takes (decided once per process; `kbtf` saves
/// reading the BTF again).
pub fn path(kbtf: Option<&KernelBtf>) -> TcPath {
    match PATH.load(Ordering::Relaxed) {
        1 => return TcPath::Tcx,
        2 => return TcPath::Legacy,
        _ => {}
    }
    let has_tcx = |b: &KernelBtf| b.has_enum_value("bpf_attach_type", "BPF_TCX_INGRESS");
    let p = if no_tcx_forced() {
        TcPath::Legacy
    } else {
        let known = match kbtf {
            Some(b) => Some(has_tcx(b)),
            None => KernelBtf::load().ok().map(|b| has_tcx(&b)),
        };
        // Without BTF: try tcx; EINVAL falls back.
        if known == Some(false) {
            TcPath::Legacy
        } else {
            TcPath::Tcx
        }
    };
    set_path(p);
    p
}

fn set_path(p: TcPath) {
    let v = match p {
        TcPath::Tcx => 1,
        TcPath::Legacy => 2,
    };
    PATH.store(v, Ordering::Relaxed);
}

/// Attaching failed: what was tried and the errno.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {}", Errno(*errno))]
pub struct TcError {
    pub what: String,
    pub errno: i32,
}

impl TcError {
    fn io(what: impl Into<String>, e: &io::Error) -> Self {
        Self {
            what: what.into(),
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

/// Where to attach.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub netns: &'a Netns,
    pub ifindex: u32,
    pub dir: Direction,
    /// The program's name, for the filter's name.
    pub prog_name: &'a str,
}

/// A TC program attached; detached when dropped.
pub struct TcAttachment {
    pub path: TcPath,
    /// cls_bpf: the filter's priority (for `-v`).
    pub prio: Option<u16>,
    _inner: Inner,
}

/// Held for what dropping it does.
#[allow(dead_code)]
enum Inner {
    Link(OwnedFd),
    Filter(LegacyFilter),
}

/// Attach the loaded SchedClassifier `prog` at `t`.
pub fn attach(prog: BorrowedFd<'_>, t: &Target<'_>) -> Result<TcAttachment, TcError> {
    if path(None) == TcPath::Tcx {
        match tcx_link(prog, t) {
            Ok(link) => {
                return Ok(TcAttachment {
                    path: TcPath::Tcx,
                    prio: None,
                    _inner: Inner::Link(link),
                })
            }
            Err(e) if e.errno == libc::EINVAL => {
                tracing::debug!("tcx link refused ({e}): legacy tc from now on");
                set_path(TcPath::Legacy);
            }
            Err(e) => return Err(e),
        }
    }
    let f = LegacyFilter::install(prog, t)?;
    Ok(TcAttachment {
        path: TcPath::Legacy,
        prio: Some(f.filter.prio),
        _inner: Inner::Filter(f),
    })
}

fn tcx_link(prog: BorrowedFd<'_>, t: &Target<'_>) -> Result<OwnedFd, TcError> {
    let raw = prog.as_raw_fd();
    let ifindex = t.ifindex;
    let at = match t.dir {
        Direction::Ingress => attach_type::TCX_INGRESS,
        Direction::Egress => attach_type::TCX_EGRESS,
    };
    netns::in_netns(&t.netns.path, move || {
        // SAFETY: the caller's fd is alive until in_netns returns (it joins).
        let prog = unsafe { BorrowedFd::borrow_raw(raw) };
        sys::link_create(prog, ifindex, at, 0, LinkExtra::None)
    })
    .map_err(|e| TcError::io("entering the namespace", &e))?
    .map_err(|e| TcError {
        what: "attaching (tcx link)".into(),
        errno: e.0,
    })
}

/// A NETLINK_ROUTE socket inside the namespace at `path`.
pub(super) fn route_socket(path: &Path) -> io::Result<NlSocket> {
    netns::in_netns(path, || {
        let s = NlSocket::open(libc::NETLINK_ROUTE)?;
        s.set_recv_timeout(Duration::from_secs(5))?;
        Ok(s)
    })?
}

static SWEEP: Once = Once::new();

/// A cls_bpf filter of ours and the socket to delete it with.
struct LegacyFilter {
    sock: NlSocket,
    netns_inode: u32,
    ifindex: u32,
    dir: Direction,
    filter: FilterInfo,
}

impl LegacyFilter {
    fn install(prog: BorrowedFd<'_>, t: &Target<'_>) -> Result<Self, TcError> {
        SWEEP.call_once(|| {
            for w in sweep_records() {
                tracing::info!("removed {w}, left by a netxray that was killed");
            }
        });
        let (inode, ifindex, dir) = (t.netns.inode, t.ifindex, t.dir);
        let sock = route_socket(&t.netns.path)
            .map_err(|e| TcError::io("opening a NETLINK_ROUTE socket in the namespace", &e))?;
        let surveyed = survey(&sock, inode, ifindex)
            .map_err(|e| TcError::io("listing the interface's tc filters", &e))?;
        for w in &surveyed.removed {
            tracing::info!("removed the {w}, left by a netxray that was killed");
        }
        let created = match &surveyed.qdisc {
            Some(q) if q.kind == "clsact" || (q.kind == "ingress" && dir == Direction::Ingress) => {
                if state::read(inode, ifindex).is_some_and(|r| !r.same_netns(sock.netns_cookie())) {
                    state::remove(inode, ifindex);
                }
                false
            }
            Some(q) => {
                return Err(TcError {
                    what: format!(
                        "the interface has a '{}' qdisc at ffff:, with no {} side (clsact cannot be added beside it)",
                        q.kind,
                        dir.name()
                    ),
                    errno: libc::EEXIST,
                })
            }
            None => create_clsact(&sock, t)?,
        };
        let prio =
            free_prio(&sock, ifindex, dir).map_err(|e| TcError::io("choosing a priority", &e))?;
        let me = std::process::id();
        let name = format!("{FILTER_PREFIX}{me}:{}", t.prog_name);
        let spec = BpfFilter {
            ifindex,
            dir,
            prio,
            handle: me,
            prog_fd: prog.as_raw_fd(),
            name: &name,
        };
        set_live((inode, ifindex, dir), true);
        if let Err(e) = rtnl::ack(&sock, |seq| rtnl::new_bpf_filter(&spec, seq)) {
            set_live((inode, ifindex, dir), false);
            release_qdisc(&sock, inode, ifindex);
            return Err(TcError::io(
                format!("adding a cls_bpf filter at {} (pref {prio})", dir.name()),
                &e,
            ));
        }
        tracing::debug!(
            "cls_bpf filter {name} at {} of ifindex {ifindex}, pref {prio}{}",
            dir.name(),
            if created {
                ", in a clsact qdisc netxray made"
            } else {
                ""
            }
        );
        Ok(Self {
            sock,
            netns_inode: inode,
            ifindex,
            dir,
            filter: FilterInfo {
                prio,
                protocol: ETH_P_ALL,
                handle: me,
                kind: "bpf".into(),
                name: Some(name),
                prog_id: None,
                direct_action: true,
            },
        })
    }
}

/// Make the clsact qdisc, recorded first (a netxray killed right after
/// leaves a record too). False when someone made one meanwhile.
fn create_clsact(sock: &NlSocket, t: &Target<'_>) -> Result<bool, TcError> {
    let (inode, ifindex) = (t.netns.inode, t.ifindex);
    let me = std::process::id();
    let rec = state::Record {
        netns_inode: inode,
        ifindex,
        pid: me,
        netns_cookie: sock.netns_cookie(),
        ifname: netns::ifname_in(&t.netns.path, ifindex).unwrap_or_else(|| ifindex.to_string()),
    };
    if let Err(e) = state::write(&rec) {
        tracing::warn!(
            "cannot record the clsact qdisc under {}: {e}: if netxray is killed, remove it by hand (tc qdisc del dev {} clsact)",
            state::DIR,
            rec.ifname
        );
    }
    match rtnl::ack(sock, |seq| rtnl::new_clsact(ifindex, seq)) {
        Ok(()) => Ok(true),
        Err(e) => {
            if state::read(inode, ifindex).is_some_and(|r| r.pid == me) {
                state::remove(inode, ifindex);
            }
            match e.raw_os_error() {
                Some(libc::EEXIST) => Ok(false),
                _ => Err(TcError::io("adding a clsact qdisc", &e)),
            }
        }
    }
}

/// The first priority, from 1, that is free or holds only cls_bpf filters
/// of protocol all without our handle.
fn free_prio(sock: &NlSocket, ifindex: u32, dir: Direction) -> io::Result<u16> {
    let me = std::process::id();
    let filters = rtnl::filters(sock, ifindex, dir)?;
    (1..=u16::MAX)
        .find(|&p| {
            filters
                .iter()
                .filter(|f| f.prio == p)
                .all(|f| f.kind == "bpf" && f.protocol == ETH_P_ALL && f.handle != me)
        })
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOSPC))
}

impl Drop for LegacyFilter {
    fn drop(&mut self) {
        let (ifindex, dir) = (self.ifindex, self.dir);
        match rtnl::ack(&self.sock, |seq| rtnl::del_filter(ifindex, dir, &self.filter, seq)) {
            Ok(()) => {}
            // The interface (and its filters) went away.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV | libc::EINVAL)) => {
                tracing::debug!("cls_bpf filter at {} of ifindex {ifindex}: {e}", dir.name())
            }
            Err(e) => tracing::warn!(
                "cannot delete netxray's cls_bpf filter at {} of ifindex {ifindex}: {e} (the next netxray removes it)",
                dir.name()
            ),
        }
        set_live((self.netns_inode, ifindex, dir), false);
        release_qdisc(&self.sock, self.netns_inode, ifindex);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_errno() {
        let e = TcError {
            what: "adding a clsact qdisc".into(),
            errno: libc::EPERM,
        };
        assert_eq!(e.to_string(), "adding a clsact qdisc: EPERM");
    }
}
