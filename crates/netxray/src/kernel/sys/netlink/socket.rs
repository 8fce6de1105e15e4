//! A netlink socket of any protocol (libc): NETLINK_NETFILTER for nftables
//! and the netfilter hook lists, NETLINK_ROUTE for tc. A netlink socket
//! belongs to the network namespace of the thread that created it, for its
//! whole life: create it on a thread that entered the namespace
//! (`kernel::netns::in_netns`); it can then be used from any thread.

use super::codec::{messages, NlMsg, NLMSG_DONE, NLMSG_ERROR};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const NETLINK_ADD_MEMBERSHIP: libc::c_int = 1;
/// Receive buffer asked for the trace socket (SO_RCVBUFFORCE, root only;
/// else the system maximum through SO_RCVBUF).
pub const TRACE_RCVBUF: usize = 8 << 20;

#[derive(Debug)]
pub struct NlSocket {
    fd: OwnedFd,
    /// The port id the kernel gave this socket (owner of our tables).
    pub portid: u32,
    /// The last sequence number handed out ([`NlSocket::next_seq`]).
    seq: AtomicU32,
}

/// One message of a reply, copied out of the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMsg {
    pub ty: u16,
    pub flags: u16,
    /// Everything after `nlmsghdr`.
    pub payload: Vec<u8>,
}

impl OwnedMsg {
    /// The borrowed form the decoders take.
    pub fn as_msg(&self) -> NlMsg<'_> {
        NlMsg {
            ty: self.ty,
            flags: self.flags,
            seq: 0,
            pid: 0,
            payload: &self.payload,
        }
    }
}

fn errno_of(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code.saturating_neg())
}

fn bad(e: super::codec::DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl NlSocket {
    /// A bound socket of `protocol` (`libc::NETLINK_*`) in the calling
    /// thread's namespace.
    pub fn open(protocol: libc::c_int) -> io::Result<Self> {
        // SAFETY: plain socket(2); the fd is owned at once.
        let raw = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        })?;
        // SAFETY: raw is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: bind with a sockaddr_nl of the right size (pid 0: the
        // kernel picks a port id).
        cvt(unsafe { libc::bind(raw, (&raw const addr).cast(), len) })?;
        let mut got_len = len;
        // SAFETY: getsockname writes at most got_len bytes into addr.
        cvt(unsafe { libc::getsockname(raw, (&raw mut addr).cast(), &mut got_len) })?;
        Ok(Self {
            fd,
            portid: addr.nl_pid,
            seq: AtomicU32::new(0),
        })
    }

    /// The cookie of the socket's network namespace (SO_NETNS_COOKIE,
    /// 5.14+): unlike the inode number, never reused. 0 when unknown.
    pub fn netns_cookie(&self) -> u64 {
        const SO_NETNS_COOKIE: libc::c_int = 71;
        let mut v: u64 = 0;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most len bytes into v.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_NETNS_COOKIE,
                (&raw mut v).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            v
        } else {
            0
        }
    }

    /// A sequence number not used before on this socket.
    pub fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }

    /// Send one request that asked for an acknowledgement (NLM_F_ACK) with
    /// sequence number `seq`, and wait for it: Ok, or the kernel's errno.
    /// Other messages (a late reply to an earlier request) are skipped.
    pub fn request(&self, req: &[u8], seq: u32) -> io::Result<()> {
        self.send(req)?;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = self.recv_retrying(&mut buf)?;
            for m in messages(&buf[..n]).map_err(bad)? {
                if m.ty == NLMSG_ERROR && m.seq == seq {
                    let code = m.error_code().map_err(bad)?;
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(errno_of(code))
                    };
                }
            }
        }
    }

    /// Send a dump request (NLM_F_DUMP) with sequence number `seq`; every
    /// message of the answer up to NLMSG_DONE.
    pub fn dump(&self, req: &[u8], seq: u32) -> io::Result<Vec<OwnedMsg>> {
        self.send(req)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.recv_retrying(&mut buf)?;
            for m in messages(&buf[..n]).map_err(bad)? {
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = m.error_code().map_err(bad)?;
                        return if code == 0 {
                            Ok(out)
                        } else {
                            Err(errno_of(code))
                        };
                    }
                    _ => out.push(OwnedMsg {
                        ty: m.ty,
                        flags: m.flags,
                        payload: m.payload.to_vec(),
                    }),
                }
            }
        }
    }

    /// A blocking receive, again after EINTR.
    fn recv_retrying(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.recv(buf, false) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn setsockopt<T>(&self, level: libc::c_int, opt: libc::c_int, v: &T) -> io::Result<()> {
        // SAFETY: v points to a T of the given size for the call.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                opt,
                (v as *const T).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    /// Receive the multicast group `group` (an NFNLGRP_* number).
    pub fn join_group(&self, group: u32) -> io::Result<()> {
        self.setsockopt(libc::SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group)
    }

    /// A large receive buffer: bursts of trace messages must not overflow it.
    pub fn grow_rcvbuf(&self, bytes: usize) {
        let v = bytes as libc::c_int;
        if self
            .setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &v)
            .is_err()
        {
            let _ = self.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, &v);
        }
    }

    /// Blocking receives give up after `d` (EAGAIN).
    pub fn set_recv_timeout(&self, d: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: d.as_secs() as libc::time_t,
            tv_usec: d.subsec_micros() as libc::suseconds_t,
        };
        self.setsockopt(libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
    }

    pub fn send(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain data; zero is the kernel's address.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: buf and addr are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != buf.len() {
            return Err(io::Error::other("netlink: short send"));
        }
        Ok(())
    }

    /// One datagram; `nonblocking` returns WouldBlock when none is queued.
    /// ENOBUFS means the kernel dropped messages for this socket (the
    /// buffer was full): the socket stays usable.
    pub fn recv(&self, buf: &mut [u8], nonblocking: bool) -> io::Result<usize> {
        let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: buf is valid for writes of buf.len() bytes.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl AsRawFd for NlSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
