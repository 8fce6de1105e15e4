//! `netxray conn`: the mirror of the "netxray conn" section of
//! `bpf/include/abi.h` (records, map keys and values of `bpf/conn.bpf.c`).

use crate::{RawTuple, COMM_LEN};
use thiserror::Error;

pub const CONN_ABI_VERSION: u8 = 2;
pub const CONN_EVENT_SIZE: usize = 208;

/// `enum nx_conn_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    State,
    Retrans,
    RstSent,
    RstRecv,
    Accept,
    Close,
    Listen,
    ListenStop,
}

impl ConnKind {
    fn from_raw(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::State,
            2 => Self::Retrans,
            3 => Self::RstSent,
            4 => Self::RstRecv,
            5 => Self::Accept,
            6 => Self::Close,
            7 => Self::Listen,
            8 => Self::ListenStop,
            _ => return None,
        })
    }
}

/// `NX_CONN_F_*`.
pub mod conn_flags {
    pub const ACTIVE: u16 = 1 << 0;
    pub const PASSIVE: u16 = 1 << 1;
    pub const BEFORE: u16 = 1 << 2;
    pub const ESTABLISHED: u16 = 1 << 3;
    pub const RST_SENT: u16 = 1 << 4;
    pub const RST_RECV: u16 = 1 << 5;
    pub const FIN_SENT: u16 = 1 << 6;
    pub const LOCAL_FIRST: u16 = 1 << 7;
    pub const REMOTE_FIRST: u16 = 1 << 8;
    pub const FIN_RECV: u16 = 1 << 9;
    pub const FIN_ACKED: u16 = 1 << 10;
    pub const IN_IRQ: u16 = 1 << 11;
    pub const CLOSED: u16 = 1 << 12;
    pub const STATS: u16 = 1 << 13;
}

/// `NX_CONN_OWNER_*`.
pub mod owner_src {
    pub const NONE: u8 = 0;
    pub const CONNECT: u8 = 1;
    pub const ACCEPT: u8 = 2;
    pub const LISTENER: u8 = 3;
    pub const LISTEN: u8 = 4;
}

/// `NX_CONN_CFG_*`.
pub mod conn_cfg {
    pub const STATES: u32 = 1 << 0;
    pub const EVENTS: u32 = 1 << 1;
    pub const LISTEN: u32 = 1 << 2;
    pub const TOP: u32 = 1 << 3;
    pub const FILTER: u32 = 1 << 4;
}

/// `struct nx_conn_event`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RawConnEvent {
    pub ts_ns: u64,
    pub sk: u64,
    pub start_ns: u64,
    pub established_ns: u64,
    pub close_ns: u64,
    pub prev_ns: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_in: u32,
    pub segs_out: u32,
    pub data_segs_in: u32,
    pub data_segs_out: u32,
    pub total_retrans: u32,
    pub srtt_us: u32,
    pub retrans_seen: u32,
    pub netns: u32,
    pub owner_tgid: u32,
    pub owner_tid: u32,
    pub tgid: u32,
    pub tid: u32,
    pub sk_err: i32,
    pub rst_reason: u32,
    pub flags: u16,
    pub abi_version: u8,
    pub kind: u8,
    pub oldstate: u8,
    pub newstate: u8,
    pub owner_src: u8,
    pub _pad: u8,
    pub owner_comm: [u8; COMM_LEN],
    pub comm: [u8; COMM_LEN],
    pub tuple: RawTuple,
    /// The namespace's cookie (see `RawEventHeader::netns_cookie`).
    pub netns_cookie: u64,
}

/// `struct nx_conn_state` (map `nx_conns`; read by user space only to count
/// what is left at exit).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnState {
    pub start_ns: u64,
    pub established_ns: u64,
    pub state_ns: u64,
    pub close_ns: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_in: u32,
    pub segs_out: u32,
    pub data_segs_in: u32,
    pub data_segs_out: u32,
    pub total_retrans: u32,
    pub srtt_us: u32,
    pub retrans_seen: u32,
    pub owner_tgid: u32,
    pub owner_tid: u32,
    pub sk_err: i32,
    pub flags: u16,
    pub owner_src: u8,
    pub state: u8,
    pub netns: u32,
    pub owner_comm: [u8; COMM_LEN],
    /// The latest full tuple seen (the kernel clears ports at CLOSE).
    pub tuple: RawTuple,
    /// --top: bytes the send calls returned.
    pub app_tx: u64,
    /// --top: bytes the receive calls returned.
    pub app_rx: u64,
    /// The namespace's cookie (see `RawEventHeader::netns_cookie`).
    pub netns_cookie: u64,
}

/// `struct nx_conn_counter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnCounter {
    pub transitions: u64,
    pub tracked: u64,
    pub untracked: u64,
    pub removed: u64,
    pub emitted: u64,
    pub lost: u64,
    pub close_lost: u64,
    pub accepts: u64,
    /// Records the in-kernel filter kept from user space.
    pub filtered: u64,
}

impl std::ops::AddAssign for ConnCounter {
    fn add_assign(&mut self, o: Self) {
        self.transitions += o.transitions;
        self.tracked += o.tracked;
        self.untracked += o.untracked;
        self.removed += o.removed;
        self.emitted += o.emitted;
        self.lost += o.lost;
        self.close_lost += o.close_lost;
        self.accepts += o.accepts;
        self.filtered += o.filtered;
    }
}

/// `struct nx_conn_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnConfig {
    pub netns: u32,
    /// `NX_CONN_CFG_*` ([`conn_cfg`]).
    pub flags: u32,
    pub wakeup_bytes: u32,
    pub thread_size: u32,
}

const _: () = assert!(std::mem::size_of::<RawConnEvent>() == CONN_EVENT_SIZE);
const _: () = assert!(std::mem::size_of::<ConnState>() == 176);
const _: () = assert!(std::mem::size_of::<ConnCounter>() == 72);
const _: () = assert!(std::mem::size_of::<ConnConfig>() == 16);

// SAFETY: plain-old-data: repr(C), only integers and byte arrays, explicit
// padding fields, so any bit pattern is valid and no byte is uninitialised.
#[cfg(feature = "aya")]
mod pod {
    unsafe impl aya::Pod for super::ConnConfig {}
    unsafe impl aya::Pod for super::ConnCounter {}
    unsafe impl aya::Pod for super::ConnState {}
}

/// Why a conn record could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConnDecodeError {
    #[error("conn record of {0} bytes, expected {CONN_EVENT_SIZE}")]
    Size(usize),
    #[error("conn record has ABI version {0}, this netxray speaks {CONN_ABI_VERSION}: kernel object and binary do not match")]
    Version(u8),
    #[error("unknown conn record kind {0}")]
    Kind(u8),
}

/// A decoded conn record.
#[derive(Debug, Clone, Copy)]
pub struct ConnEvent {
    pub raw: RawConnEvent,
    pub kind: ConnKind,
}

impl ConnEvent {
    /// The one checked step from ring-buffer bytes to a conn record.
    pub fn decode(bytes: &[u8]) -> Result<Self, ConnDecodeError> {
        if bytes.len() < CONN_EVENT_SIZE {
            return Err(ConnDecodeError::Size(bytes.len()));
        }
        // SAFETY: the length was checked; RawConnEvent is repr(C) plain old
        // data (every bit pattern valid); read_unaligned copes with any
        // alignment.
        let raw: RawConnEvent =
            unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<RawConnEvent>()) };
        if raw.abi_version != CONN_ABI_VERSION {
            return Err(ConnDecodeError::Version(raw.abi_version));
        }
        let kind = ConnKind::from_raw(raw.kind).ok_or(ConnDecodeError::Kind(raw.kind))?;
        Ok(Self { raw, kind })
    }

    /// Encode, for tests and fixtures: the inverse of [`ConnEvent::decode`].
    pub fn encode(raw: &RawConnEvent) -> Vec<u8> {
        let mut out = vec![0u8; CONN_EVENT_SIZE];
        // SAFETY: out has room for the record; see decode.
        unsafe { std::ptr::write_unaligned(out.as_mut_ptr().cast::<RawConnEvent>(), *raw) };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let raw = RawConnEvent {
            abi_version: CONN_ABI_VERSION,
            kind: 6,
            bytes_acked: 42,
            ..Default::default()
        };
        let ev = ConnEvent::decode(&ConnEvent::encode(&raw)).expect("decodes");
        assert_eq!(ev.kind, ConnKind::Close);
        assert_eq!(ev.raw.bytes_acked, 42);
        assert_eq!(
            ConnEvent::decode(&[0; 12]).unwrap_err(),
            ConnDecodeError::Size(12)
        );
        let bad = RawConnEvent {
            abi_version: 9,
            ..raw
        };
        assert_eq!(
            ConnEvent::decode(&ConnEvent::encode(&bad)).unwrap_err(),
            ConnDecodeError::Version(9)
        );
        let bad = RawConnEvent { kind: 99, ..raw };
        assert_eq!(
            ConnEvent::decode(&ConnEvent::encode(&bad)).unwrap_err(),
            ConnDecodeError::Kind(99)
        );
    }
}
