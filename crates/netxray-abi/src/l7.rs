//! `netxray dns` / `netxray http`: the mirror of the "netxray dns /
//! netxray http" section of `bpf/include/abi.h` (records, map keys and
//! values of `bpf/l7.bpf.c`).

use crate::{RawTuple, COMM_LEN};
use thiserror::Error;

pub const L7_ABI_VERSION: u8 = 2;
/// Bytes of a message copied from its start (at most).
pub const L7_CAP: usize = 1024;
/// Bytes copied from its end when the start does not hold it all.
pub const L7_TAIL: usize = 32;
pub const L7_EVENT_HDR_SIZE: usize = 144;
/// Messages of one sendmmsg/recvmmsg call recorded (the rest counted).
pub const L7_MMSG_MAX: usize = 8;

/// `nx_l7_event.dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// The process wrote the data.
    Send,
    /// The process read it.
    Recv,
}

/// `enum nx_l7_syscall`: the call that moved the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syscall {
    Read,
    Write,
    Readv,
    Writev,
    Recvfrom,
    Sendto,
    Recvmsg,
    Sendmsg,
    Recvmmsg,
    Sendmmsg,
    /// sendfile(2) to a socket: counted, not copied.
    Sendfile,
}

impl Syscall {
    fn from_raw(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Read,
            2 => Self::Write,
            3 => Self::Readv,
            4 => Self::Writev,
            5 => Self::Recvfrom,
            6 => Self::Sendto,
            7 => Self::Recvmsg,
            8 => Self::Sendmsg,
            9 => Self::Recvmmsg,
            10 => Self::Sendmmsg,
            11 => Self::Sendfile,
            _ => return None,
        })
    }

    /// The system call's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Readv => "readv",
            Self::Writev => "writev",
            Self::Recvfrom => "recvfrom",
            Self::Sendto => "sendto",
            Self::Recvmsg => "recvmsg",
            Self::Sendmsg => "sendmsg",
            Self::Recvmmsg => "recvmmsg",
            Self::Sendmmsg => "sendmmsg",
            Self::Sendfile => "sendfile",
        }
    }
}

/// `NX_L7_F_*`.
pub mod l7_flags {
    /// The remote end comes from the call's address, not the socket's.
    pub const PEER_FROM_MSG: u8 = 1 << 0;
    /// An mmsg call moved more messages than were recorded.
    pub const MORE_MSGS: u8 = 1 << 1;
}

/// `NX_L7_CFG_*`.
pub mod l7_cfg {
    pub const FILTER: u32 = 1 << 0;
    pub const COMM: u32 = 1 << 1;
    pub const TCP: u32 = 1 << 2;
    pub const UDP: u32 = 1 << 3;
    /// sock_send_length/sock_recv_length carry the data (6.3+).
    pub const SOCK_PATH: u32 = 1 << 4;
    /// The socket hooks also count sendfile/splice and TCP mmsg calls (6.5+).
    pub const SOCK_SPLICE: u32 = 1 << 5;
}

/// Socket types (`nx_l7_event.sock_type`).
pub const SOCK_STREAM: u8 = 1;
pub const SOCK_DGRAM: u8 = 2;

/// `struct nx_l7_event`, without its variable-length data.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RawL7Event {
    pub ts_ns: u64,
    pub sk: u64,
    pub netns_cookie: u64,
    pub netns: u32,
    pub tgid: u32,
    pub tid: u32,
    pub len: u32,
    pub cap_len: u32,
    pub fd: u32,
    pub syscall: u16,
    pub abi_version: u8,
    pub dir: u8,
    pub sock_type: u8,
    pub msg_index: u8,
    pub tail_len: u8,
    pub flags: u8,
    pub comm: [u8; COMM_LEN],
    pub tuple: RawTuple,
    pub tail: [u8; L7_TAIL],
}

/// `struct nx_l7_counter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L7Counter {
    pub calls: u64,
    pub matched: u64,
    pub emitted: u64,
    pub lost: u64,
    pub read_errors: u64,
}

impl std::ops::AddAssign for L7Counter {
    fn add_assign(&mut self, o: Self) {
        self.calls += o.calls;
        self.matched += o.matched;
        self.emitted += o.emitted;
        self.lost += o.lost;
        self.read_errors += o.read_errors;
    }
}

/// `struct nx_l7_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct L7Config {
    pub netns: u32,
    pub tgid: u32,
    pub flags: u32,
    pub cap_bytes: u32,
    pub wakeup_bytes: u32,
    pub thread_size: u32,
    pub comm: [u8; COMM_LEN],
}

const _: () = assert!(std::mem::size_of::<RawL7Event>() == L7_EVENT_HDR_SIZE);
const _: () = assert!(std::mem::size_of::<L7Counter>() == 40);
const _: () = assert!(std::mem::size_of::<L7Config>() == 40);

#[cfg(feature = "aya")]
mod pod {
    unsafe impl aya::Pod for super::L7Config {}
    unsafe impl aya::Pod for super::L7Counter {}
}

/// Why an l7 record could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum L7DecodeError {
    #[error("l7 record of {0} bytes, shorter than its {L7_EVENT_HDR_SIZE}-byte header")]
    Size(usize),
    #[error("l7 record has ABI version {0}, this netxray speaks {L7_ABI_VERSION}: kernel object and binary do not match")]
    Version(u8),
    #[error("l7 record says {cap_len} data bytes but carries {carried}")]
    Data { cap_len: u32, carried: usize },
    #[error("unknown l7 record system call {0}")]
    Syscall(u16),
    #[error("unknown l7 record direction {0}")]
    Dir(u8),
}

/// A decoded l7 record: one message a process wrote or read (its data
/// borrowed from the ring buffer).
#[derive(Debug, Clone)]
pub struct L7Event<'a> {
    pub raw: RawL7Event,
    pub syscall: Syscall,
    pub dir: Dir,
    /// The message's first bytes (at most [`L7_CAP`]).
    pub data: &'a [u8],
}

impl<'a> L7Event<'a> {
    /// The one checked step from ring-buffer bytes to an l7 record.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, L7DecodeError> {
        if bytes.len() < L7_EVENT_HDR_SIZE {
            return Err(L7DecodeError::Size(bytes.len()));
        }
        // SAFETY: the length was checked; RawL7Event is repr(C) plain old
        // data (every bit pattern valid); read_unaligned copes with any
        // alignment.
        let raw: RawL7Event =
            unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<RawL7Event>()) };
        if raw.abi_version != L7_ABI_VERSION {
            return Err(L7DecodeError::Version(raw.abi_version));
        }
        let carried = bytes.len() - L7_EVENT_HDR_SIZE;
        let cap = raw.cap_len as usize;
        if cap > carried || cap > L7_CAP {
            return Err(L7DecodeError::Data {
                cap_len: raw.cap_len,
                carried,
            });
        }
        let syscall = Syscall::from_raw(raw.syscall).ok_or(L7DecodeError::Syscall(raw.syscall))?;
        let dir = match raw.dir {
            1 => Dir::Send,
            2 => Dir::Recv,
            d => return Err(L7DecodeError::Dir(d)),
        };
        let data = &bytes[L7_EVENT_HDR_SIZE..L7_EVENT_HDR_SIZE + cap];
        Ok(Self {
            raw,
            syscall,
            dir,
            data,
        })
    }

    /// The message's last bytes, when [`L7Event::data`] does not hold them.
    pub fn tail(&self) -> &[u8] {
        &self.raw.tail[..usize::from(self.raw.tail_len).min(L7_TAIL)]
    }

    /// Encode, for tests and fixtures: the inverse of [`L7Event::decode`].
    pub fn encode(raw: &RawL7Event, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; L7_EVENT_HDR_SIZE];
        let mut raw = *raw;
        raw.cap_len = data.len().min(L7_CAP) as u32;
        // SAFETY: out has room for the header; see decode.
        unsafe { std::ptr::write_unaligned(out.as_mut_ptr().cast::<RawL7Event>(), raw) };
        out.extend_from_slice(&data[..raw.cap_len as usize]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let raw = RawL7Event {
            abi_version: L7_ABI_VERSION,
            syscall: 6,
            dir: 1,
            len: 5,
            tail_len: 3,
            ..Default::default()
        };
        let bytes = L7Event::encode(&raw, b"hello");
        let ev = L7Event::decode(&bytes).expect("decodes");
        assert_eq!(ev.syscall, Syscall::Sendto);
        assert_eq!(ev.dir, Dir::Send);
        assert_eq!(ev.data, b"hello");
        assert_eq!(ev.tail().len(), 3);
        assert_eq!(
            L7Event::decode(&bytes[..10]).unwrap_err(),
            L7DecodeError::Size(10)
        );
        assert!(matches!(
            L7Event::decode(&bytes[..L7_EVENT_HDR_SIZE + 2]).unwrap_err(),
            L7DecodeError::Data {
                cap_len: 5,
                carried: 2
            }
        ));
        let bad = L7Event::encode(
            &RawL7Event {
                abi_version: 9,
                ..raw
            },
            b"",
        );
        assert_eq!(
            L7Event::decode(&bad).unwrap_err(),
            L7DecodeError::Version(9)
        );
        let bad = L7Event::encode(&RawL7Event { syscall: 77, ..raw }, b"");
        assert_eq!(
            L7Event::decode(&bad).unwrap_err(),
            L7DecodeError::Syscall(77)
        );
        let bad = L7Event::encode(&RawL7Event { dir: 5, ..raw }, b"");
        assert_eq!(L7Event::decode(&bad).unwrap_err(), L7DecodeError::Dir(5));
    }
}
