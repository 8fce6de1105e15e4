//! One message as a system call moved it: the common input of `dns` and
//! `http`, made from a kernel record in one step.

use crate::model::conn::Ends;
use crate::model::value::{Name, NsId};
use netxray_abi::l7::{Dir, L7Event, SOCK_STREAM};
use std::net::SocketAddr;

/// The transport a message went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// Whether the process sent or received the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

/// The process on one side of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub pid: u32,
    pub tid: u32,
    /// Inline (no allocation per record): see model::value::Name.
    pub comm: Name,
    pub netns: NsId,
}

/// One message as a system call moved it.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// When the data moved (CLOCK_MONOTONIC, ns): the call's return, or
    /// on the sock path the socket hook inside it.
    pub ts_ns: u64,
    pub side: Side,
    pub dir: Direction,
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The socket (kernel address): TCP's length prefix is followed per
    /// socket and direction.
    pub sk: u64,
    /// The bytes copied (a prefix of the message).
    pub bytes: &'a [u8],
    /// The message's last bytes, when `bytes` does not hold them all
    /// (else empty).
    pub tail: &'a [u8],
    /// The message's real length.
    pub len: usize,
}

impl Observed<'_> {
    /// When the message moved: a write when the kernel had taken it (the
    /// request's last byte written), a read when it returned the data.
    pub fn at(&self) -> u64 {
        self.ts_ns
    }
}

#[cfg(test)]
impl Side {
    /// A process for the tests: `pid` as its thread too, namespace 1.
    pub fn for_test(pid: u32, comm: &str) -> Side {
        Side {
            pid,
            tid: pid,
            comm: comm.into(),
            netns: NsId::new(1, 0),
        }
    }
}

impl<'a> Observed<'a> {
    /// The model's view of a kernel record.
    pub fn from_event(ev: &'a L7Event<'a>) -> Self {
        let r = &ev.raw;
        let ends = Ends::from_tuple(&r.tuple);
        Observed {
            ts_ns: r.ts_ns,
            side: Side {
                pid: r.tgid,
                tid: r.tid,
                comm: comm_name(&r.comm),
                netns: NsId::new(r.netns, r.netns_cookie),
            },
            dir: match ev.dir {
                Dir::Send => Direction::Sent,
                Dir::Recv => Direction::Received,
            },
            transport: if r.sock_type == SOCK_STREAM {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            local: SocketAddr::new(ends.laddr, ends.lport),
            remote: SocketAddr::new(ends.raddr, ends.rport),
            sk: r.sk,
            bytes: ev.data,
            tail: ev.tail(),
            len: r.len as usize,
        }
    }
}

/// A kernel command name (NUL-padded) as a [`Name`], without an allocation
/// when it is UTF-8 (it nearly always is).
fn comm_name(raw: &[u8]) -> Name {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    match std::str::from_utf8(&raw[..end]) {
        Ok(s) => Name::from(s),
        Err(_) => Name::from(netxray_abi::c_str(raw)),
    }
}
