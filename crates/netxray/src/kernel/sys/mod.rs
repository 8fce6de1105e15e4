//! The raw kernel interfaces, in one place: `bpf(2)`, `perf_event_open(2)` and friends
//! (network namespaces, interface names and indexes, mounts, rlimits), and [`netlink`] (one
//! socket type and one message codec, for nftables, the netfilter hook lists and legacy tc).
//! Used by the feature probes (`kernel::probe`), the sessions (XDP and netfilter links, tc),
//! `kernel::netns`, the filter twin, the tests and the bench.
//!
//! aya 0.14 has no public way to load a hand-written program of an arbitrary type
//! (netfilter, for one) or to create tcx/netfilter/kprobe-multi links, so netxray speaks the
//! syscalls directly. Every attr struct is `#[repr(C)]`, zero-initialised, and sized to the
//! fields used: the kernel zero-fills the rest of `union bpf_attr` itself when `size` is smaller.
//! Every file descriptor comes back as an [`OwnedFd`](std::os::fd::OwnedFd), so it is closed when dropped.
//!
//! Its unsafe code lives in this folder: `bpf`, `perf`, `ns`, `iface`, `os`, `netlink/socket`.
//!
//! The calls most reused: [`prog_load`], [`link_create`], [`raw_tracepoint_open`],
//! [`map_create`], [`Errno`].

mod bpf;
mod iface;
pub mod netlink;
mod ns;
mod os;
mod perf;

use std::fmt;

pub use bpf::*;
pub use iface::*;
pub use ns::*;
pub use os::*;
pub use perf::*;

/// An errno with its symbolic name, as the kernel returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's `errno`.
    pub fn last() -> Self {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The symbolic name (`EPERM`), or `None` for an unusual number.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::ESRCH => "ESRCH",
            libc::EINTR => "EINTR",
            libc::EIO => "EIO",
            libc::ENXIO => "ENXIO",
            libc::E2BIG => "E2BIG",
            libc::EBADF => "EBADF",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::ENODEV => "ENODEV",
            libc::ENOTDIR => "ENOTDIR",
            libc::EINVAL => "EINVAL",
            libc::ENOSPC => "ENOSPC",
            libc::ERANGE => "ERANGE",
            libc::ENOSYS => "ENOSYS",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::EPROTO => "EPROTO",
            libc::EAFNOSUPPORT => "EAFNOSUPPORT",
            libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
            524 => "ENOTSUPP", // kernel-internal, leaks out of bpf(2)
            _ => return None,
        })
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl From<&std::io::Error> for Errno {
    fn from(e: &std::io::Error) -> Self {
        Errno(e.raw_os_error().unwrap_or(0))
    }
}
