//! Network namespaces: making one, entering one, telling one, and its cookie. Each call acts
//! on the calling thread only; `kernel::netns` builds on them (a thread per namespace).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::Errno;

/// Move the calling thread into a new, empty network namespace (`unshare(CLONE_NEWNET)`).
/// Call it only on a thread of its own that is dropped afterwards.
pub fn unshare_netns() -> Result<(), Errno> {
    // SAFETY: no pointers; affects only the calling thread's namespace.
    let ret = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if ret < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Move the calling thread into the network namespace `ns` is a file of
/// (`setns(fd, CLONE_NEWNET)`). Call it only on a thread of its own.
pub fn setns_net(ns: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: setns on a valid fd; affects only the calling thread.
    let ret = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if ret != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Whether the open file `f` is a network namespace (`ioctl(NS_GET_NSTYPE)`).
pub fn is_netns(f: BorrowedFd<'_>) -> bool {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: ioctl NS_GET_NSTYPE on a valid fd; no argument, returns the namespace type.
    let t = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_NSTYPE as _) };
    t == libc::CLONE_NEWNET
}

/// The cookie of the calling thread's network namespace (SO_NETNS_COOKIE on a socket made
/// here, Linux 5.14+); `None` on an older kernel.
pub fn netns_cookie() -> Option<u64> {
    const SO_NETNS_COOKIE: libc::c_int = 71;
    // SAFETY: plain socket(2); the fd is owned at once and closed on drop.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return None;
    }
    // SAFETY: raw is a fresh fd nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut v: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most len bytes into v.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&raw mut v).cast(),
            &mut len,
        )
    };
    (rc == 0 && v != 0).then_some(v)
}
