//! Rust mirror of `bpf/include/abi.h`, the one definition of what crosses
//! between netxray's kernel programs and user space.
//!
//! Layouts are `#[repr(C)]` with compile-time size asserts matching the
//! `_Static_assert`s in the header. Records from the ring buffer are turned
//! into [`Event`]s by [`Event::decode`], which checks length and version once;
//! nothing else in the program reads raw record bytes.

use thiserror::Error;

pub mod conn;
pub mod l7;

pub const ABI_VERSION: u8 = 6;
pub const CAP_BYTES: usize = 128;
pub const IFNAMSIZ: usize = 16;
pub const COMM_LEN: usize = 16;
pub const EVENT_HDR_SIZE: usize = 184;

/// `enum nx_hook`: the numbering is ABI.
pub mod hook_id {
    pub const NAPI_GRO_RECEIVE_ENTRY: u16 = 1;
    pub const NETIF_RECEIVE_SKB_ENTRY: u16 = 2;
    pub const NETIF_RECEIVE_SKB_LIST_ENTRY: u16 = 3;
    pub const NETIF_RX_ENTRY: u16 = 4;
    pub const NETIF_RX: u16 = 5;
    pub const NETIF_RECEIVE_SKB: u16 = 6;
    pub const NET_DEV_QUEUE: u16 = 7;
    pub const NET_DEV_START_XMIT: u16 = 8;
    pub const NET_DEV_XMIT: u16 = 9;
    pub const QDISC_ENQUEUE: u16 = 10;
    pub const QDISC_DEQUEUE: u16 = 11;
    pub const ICMP_SEND: u16 = 12;
    pub const TCP_RETRANSMIT_SKB: u16 = 13;
    pub const TCP_SEND_RESET: u16 = 14;
    pub const TCP_RECEIVE_RESET: u16 = 15;
    pub const UDP_FAIL_QUEUE_RCV_SKB: u16 = 16;
    pub const SK_DATA_READY: u16 = 17;
    pub const SKB_COPY_DATAGRAM_IOVEC: u16 = 18;
    pub const KFREE_SKB: u16 = 19;
    pub const CONSUME_SKB: u16 = 20;
    pub const FIB_TABLE_LOOKUP: u16 = 21;
    pub const FIB6_TABLE_LOOKUP: u16 = 22;
    pub const NEIGH_CREATE: u16 = 23;
    pub const NEIGH_UPDATE: u16 = 24;
    pub const NEIGH_UPDATE_DONE: u16 = 25;
    pub const NEIGH_TIMER_HANDLER: u16 = 26;
    pub const NEIGH_EVENT_SEND_DONE: u16 = 27;
    pub const NEIGH_EVENT_SEND_DEAD: u16 = 28;
    pub const NEIGH_CLEANUP_AND_RELEASE: u16 = 29;
    pub const NETIF_RX_EXIT: u16 = 30;
    pub const NETIF_RECEIVE_SKB_EXIT: u16 = 31;
    pub const NAPI_GRO_RECEIVE_EXIT: u16 = 32;
    pub const NETIF_RECEIVE_SKB_LIST_EXIT: u16 = 33;
    /// Netfilter, first priority, in `enum nf_inet_hooks` order.
    pub const NF_PREROUTING: u16 = 34;
    pub const NF_INPUT: u16 = 35;
    pub const NF_FORWARD: u16 = 36;
    pub const NF_OUTPUT: u16 = 37;
    pub const NF_POSTROUTING: u16 = 38;
    /// Netfilter, last priority (`NF_PREROUTING + 5 + hooknum`).
    pub const NF_PREROUTING_DONE: u16 = 39;
    pub const NF_INPUT_DONE: u16 = 40;
    pub const NF_FORWARD_DONE: u16 = 41;
    pub const NF_OUTPUT_DONE: u16 = 42;
    pub const NF_POSTROUTING_DONE: u16 = 43;
    /// tcx ingress/egress and XDP of the interface traced.
    pub const TC_INGRESS: u16 = 44;
    pub const TC_EGRESS: u16 = 45;
    pub const XDP: u16 = 46;
    /// One past the last hook: the size of the counter map.
    pub const MAX: u16 = 47;
}

/// `enum nx_event_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Packet bytes were read from the skb.
    Packet,
    /// No packet bytes; the socket gave the flow.
    Socket,
    /// A routing lookup.
    Fib,
    /// Neighbour (ARP/ND) activity.
    Neigh,
    /// What a function returned (--ret), for the packet its entry matched.
    Ret,
}

impl EventKind {
    fn from_raw(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Packet,
            2 => Self::Socket,
            3 => Self::Fib,
            4 => Self::Neigh,
            5 => Self::Ret,
            _ => return None,
        })
    }
}

/// In `pkt_type`: the skb is a clone, or was cloned (shares its buffer).
pub const PKT_CLONED: u8 = 0x80;

/// `nx_config.flags`.
pub mod cfg_flags {
    /// Run the filter compiled into the object (`nx_filter_jit`).
    pub const FILTER: u32 = 1 << 0;
    /// --ret: entry hooks remember their skb for the exit tracepoints.
    pub const RET: u32 = 1 << 1;
    /// netxray drops: kfree_skb counts into `nx_drops` instead of emitting.
    pub const DROPS: u32 = 1 << 2;
    /// Netfilter programs only note where each skb is (drop attribution).
    pub const NF_QUIET: u32 = 1 << 3;
}

/// `NX_NF_AT()`: which netfilter hook an skb was inside (`DropKey::nf_at`,
/// `aux` of kfree_skb records): `(hooknum + 1) | pf << 8`, 0 for none.
pub fn nf_at_decode(at: u32) -> Option<(u8, u8)> {
    let hook = (at & 0xff) as u8;
    (hook != 0).then(|| (hook - 1, (at >> 8) as u8))
}

/// `struct nx_drop_key`: one row of `netxray drops`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DropKey {
    pub location: u64,
    pub reason: u32,
    pub netns: u32,
    pub ifindex: u32,
    /// `NX_NF_AT()` of the netfilter hook the skb was inside, 0: none.
    pub nf_at: u32,
    /// The namespace's cookie (see `RawEventHeader::netns_cookie`).
    pub netns_cookie: u64,
}

/// Bytes of the latest dropped packet kept per row.
pub const DROP_SAMPLE: usize = 96;

/// `struct nx_drop_val`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DropVal {
    pub count: u64,
    pub bytes: u64,
    pub last_ns: u64,
    pub protocol: u16,
    pub cap_len: u16,
    pub l3_off: u16,
    pub flags: u8,
    pub _pad: u8,
    pub sample: [u8; DROP_SAMPLE],
}

impl Default for DropVal {
    fn default() -> Self {
        Self {
            count: 0,
            bytes: 0,
            last_ns: 0,
            protocol: 0,
            cap_len: 0,
            l3_off: 0,
            flags: 0,
            _pad: 0,
            sample: [0; DROP_SAMPLE],
        }
    }
}

/// `struct nx_drop_last`: a CPU's last row and its drops not yet in the table.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropLast {
    pub key: DropKey,
    pub count: u64,
    pub bytes: u64,
    pub valid: u64,
}

const _: () = assert!(std::mem::size_of::<DropLast>() == 56);
const _: () = assert!(std::mem::size_of::<DropKey>() == 32);
const _: () = assert!(std::mem::size_of::<DropVal>() == 128);

/// `nx_event.flags`.
pub mod flags {
    pub const L2: u8 = 1 << 0;
    pub const IN_IRQ: u8 = 1 << 1;
    pub const VLAN_HW: u8 = 1 << 2;
    pub const TUPLE: u8 = 1 << 3;
    pub const SYNTH: u8 = 1 << 4;
    pub const NO_DEV: u8 = 1 << 5;
    pub const FOLLOWED: u8 = 1 << 6;
    pub const SHARED: u8 = 1 << 7;
}

/// `struct nx_tuple`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawTuple {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub family: u8,
    pub l4proto: u8,
    pub _pad: [u8; 2],
}

/// `struct nx_event`, without its variable-length packet bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawEventHeader {
    pub ts_ns: u64,
    pub skb: u64,
    pub location: u64,
    pub abi_version: u8,
    pub kind: u8,
    pub hook: u16,
    pub cpu: u32,
    pub pid: u32,
    pub tgid: u32,
    pub netns: u32,
    pub ifindex: u32,
    pub len: u32,
    pub ret: i32,
    pub reason: u32,
    pub aux: u32,
    pub protocol: u16,
    pub vlan_tci: u16,
    pub vlan_proto: u16,
    pub cap_len: u16,
    pub l3_off: u16,
    pub flags: u8,
    /// `skb->pkt_type` in bits 0-2; [`PKT_CLONED`]: `skb->cloned`.
    pub pkt_type: u8,
    pub comm: [u8; COMM_LEN],
    pub ifname: [u8; IFNAMSIZ],
    pub tuple: RawTuple,
    pub aux_addr: [u8; 16],
    /// Kernel stack id in `nx_stacks` (--stack); -1 none, -2 lost.
    pub stack_id: i32,
    /// `skb->head`: the data buffer, shared by clones; 0 if none.
    pub head: u64,
    /// The namespace's cookie (`net->net_cookie`): unlike its inode, never
    /// reused; 0 unknown (before 5.12, or no namespace).
    pub netns_cookie: u64,
}

/// `struct nx_counter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    pub hits: u64,
    pub matched: u64,
    pub emitted: u64,
    pub lost: u64,
    /// --stack: stacks that could not be stored.
    pub stack_lost: u64,
    /// Records not sent: a program that interrupted this one on the same
    /// CPU overwrote the record under construction.
    pub clobbered: u64,
}

impl std::ops::AddAssign for Counter {
    fn add_assign(&mut self, o: Self) {
        self.hits += o.hits;
        self.matched += o.matched;
        self.emitted += o.emitted;
        self.stack_lost += o.stack_lost;
        self.lost += o.lost;
        self.clobbered += o.clobbered;
    }
}

/// `struct nx_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    pub netns: u32,
    pub ifindex: u32,
    pub tgid: u32,
    /// `NX_CFG_*` ([`cfg_flags`]).
    pub flags: u32,
    /// Packet bytes to send (the snaplen).
    pub cap_bytes: u32,
    pub wakeup_bytes: u32,
    pub thread_size: u32,
    /// --follow: keep a matched packet's buffer followed this long (0: off).
    pub follow_ns: u32,
    /// --stack: bit n = record the kernel stack at hook n.
    pub stack_hooks: u64,
}

const _: () = assert!(std::mem::size_of::<RawTuple>() == 40);
const _: () = assert!(std::mem::size_of::<RawEventHeader>() == EVENT_HDR_SIZE);
const _: () = assert!(std::mem::size_of::<Counter>() == 48);
const _: () = assert!(std::mem::size_of::<Config>() == 40);

/// netxray stats: `enum nx_stats_dir`.
pub mod stats_dir {
    pub const XDP: u32 = 0;
    pub const TC_INGRESS: u32 = 1;
    pub const TC_EGRESS: u32 = 2;
}

/// Slots of [`IfStats::l3_packets`] (`enum nx_stats_l3`).
pub const L3_NAMES: [&str; 4] = ["ipv4", "ipv6", "arp", "other"];
/// Slots of [`IfStats::l4_packets`] (`enum nx_stats_l4`).
pub const L4_NAMES: [&str; 5] = ["tcp", "udp", "icmp", "other", "none"];

/// `struct nx_if_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfKey {
    pub ifindex: u32,
    pub dir: u32,
}

/// `struct nx_if_stats`: bytes are frame lengths at the hook.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfStats {
    pub packets: u64,
    pub bytes: u64,
    pub l3_packets: [u64; 4],
    pub l3_bytes: [u64; 4],
    pub l4_packets: [u64; 5],
    pub l4_bytes: [u64; 5],
    pub tcp_syn: u64,
    pub tcp_rst: u64,
    /// Did not match the filter (not in the counts above).
    pub filtered: u64,
}

impl std::ops::AddAssign for IfStats {
    fn add_assign(&mut self, o: Self) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        for i in 0..4 {
            self.l3_packets[i] += o.l3_packets[i];
            self.l3_bytes[i] += o.l3_bytes[i];
        }
        for i in 0..5 {
            self.l4_packets[i] += o.l4_packets[i];
            self.l4_bytes[i] += o.l4_bytes[i];
        }
        self.tcp_syn += o.tcp_syn;
        self.tcp_rst += o.tcp_rst;
        self.filtered += o.filtered;
    }
}

impl IfStats {
    /// `self - earlier`, field by field (counters only grow).
    pub fn since(&self, earlier: &IfStats) -> IfStats {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let mut out = IfStats {
            packets: d(self.packets, earlier.packets),
            bytes: d(self.bytes, earlier.bytes),
            tcp_syn: d(self.tcp_syn, earlier.tcp_syn),
            tcp_rst: d(self.tcp_rst, earlier.tcp_rst),
            filtered: d(self.filtered, earlier.filtered),
            ..Default::default()
        };
        for i in 0..4 {
            out.l3_packets[i] = d(self.l3_packets[i], earlier.l3_packets[i]);
            out.l3_bytes[i] = d(self.l3_bytes[i], earlier.l3_bytes[i]);
        }
        for i in 0..5 {
            out.l4_packets[i] = d(self.l4_packets[i], earlier.l4_packets[i]);
            out.l4_bytes[i] = d(self.l4_bytes[i], earlier.l4_bytes[i]);
        }
        out
    }
}

/// `struct nx_if_last`: a CPU's last interface in one direction and its
/// counts not yet in the `nx_if_stats` table (`key.ifindex == 0`: empty).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfLast {
    pub key: IfKey,
    pub st: IfStats,
}

/// Slots of `nx_if_last`: one per direction (`NX_DIR_MAX`).
pub const DIR_MAX: u32 = 3;

/// `struct nx_flow_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub family: u8,
    pub proto: u8,
    pub dir: u8,
    pub _pad: u8,
    pub ifindex: u32,
}

/// `struct nx_flow_val`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowVal {
    pub packets: u64,
    pub bytes: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// `struct nx_flow_last`: a CPU's last flow and its packets not yet in the
/// flow table.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowLast {
    pub key: FlowKey,
    pub _pad: u32,
    pub packets: u64,
    pub bytes: u64,
}

/// `struct nx_stats_ctl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsCtl {
    pub flows_inserted: u64,
    pub flows_failed: u64,
}

const _: () = assert!(std::mem::size_of::<IfKey>() == 8);
const _: () = assert!(std::mem::size_of::<IfStats>() == 23 * 8);
const _: () = assert!(std::mem::size_of::<IfLast>() == 8 + 23 * 8);
const _: () = assert!(std::mem::size_of::<FlowKey>() == 44);
const _: () = assert!(std::mem::size_of::<FlowVal>() == 32);
const _: () = assert!(std::mem::size_of::<FlowLast>() == 64);

// SAFETY: plain-old-data: repr(C), only integers and byte arrays, explicit
// padding fields, so any bit pattern is valid and no byte is uninitialised.
#[cfg(feature = "aya")]
mod pod {
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::Counter {}
    unsafe impl aya::Pod for super::DropKey {}
    unsafe impl aya::Pod for super::DropVal {}
    unsafe impl aya::Pod for super::DropLast {}
    unsafe impl aya::Pod for super::IfKey {}
    unsafe impl aya::Pod for super::IfStats {}
    unsafe impl aya::Pod for super::IfLast {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowVal {}
    unsafe impl aya::Pod for super::StatsCtl {}
    unsafe impl aya::Pod for super::FlowLast {}
}

/// Why a ring-buffer record could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than the {EVENT_HDR_SIZE}-byte event header")]
    Short(usize),
    #[error("record has ABI version {0}, this netxray speaks {ABI_VERSION}: kernel object and binary do not match")]
    Version(u8),
    #[error("record claims {claimed} packet bytes but carries {present}")]
    CapLen { claimed: usize, present: usize },
    #[error("unknown event kind {0}")]
    Kind(u8),
    #[error("unknown hook id {0}")]
    Hook(u16),
}

/// A decoded ring-buffer record: the header plus the packet bytes it carried,
/// borrowed from the record (no copy, no allocation per event).
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub hdr: RawEventHeader,
    pub kind: EventKind,
    pub data: &'a [u8],
}

impl<'a> Event<'a> {
    /// The one checked step from ring-buffer bytes to an event.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() < EVENT_HDR_SIZE {
            return Err(DecodeError::Short(bytes.len()));
        }
        // SAFETY: the length was checked above; RawEventHeader is repr(C),
        // made only of integers and byte arrays, so every bit pattern is
        // valid; read_unaligned copes with any alignment of the ring buffer.
        let hdr: RawEventHeader =
            unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<RawEventHeader>()) };
        if hdr.abi_version != ABI_VERSION {
            return Err(DecodeError::Version(hdr.abi_version));
        }
        let kind = EventKind::from_raw(hdr.kind).ok_or(DecodeError::Kind(hdr.kind))?;
        if hdr.hook == 0 || hdr.hook >= hook_id::MAX {
            return Err(DecodeError::Hook(hdr.hook));
        }
        let present = bytes.len() - EVENT_HDR_SIZE;
        let claimed = hdr.cap_len as usize;
        if claimed > present || claimed > CAP_BYTES {
            return Err(DecodeError::CapLen { claimed, present });
        }
        let data = &bytes[EVENT_HDR_SIZE..EVENT_HDR_SIZE + claimed];
        Ok(Self { hdr, kind, data })
    }
}

impl Event<'_> {
    /// Encode, for tests and fixtures: the inverse of [`Event::decode`].
    pub fn encode(hdr: &RawEventHeader, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; EVENT_HDR_SIZE + data.len()];
        // SAFETY: out has room for the header; see decode.
        unsafe { std::ptr::write_unaligned(out.as_mut_ptr().cast::<RawEventHeader>(), *hdr) };
        out[EVENT_HDR_SIZE..].copy_from_slice(data);
        out
    }
}

impl Default for RawEventHeader {
    fn default() -> Self {
        // SAFETY: all-zero is a valid value of this plain-old-data struct.
        unsafe { std::mem::zeroed() }
    }
}

/// A fixed-size C string (comm, ifname) as text, up to its first NUL.
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RawEventHeader {
        RawEventHeader {
            abi_version: ABI_VERSION,
            kind: 1,
            hook: hook_id::NET_DEV_QUEUE,
            cap_len: 3,
            ..Default::default()
        }
    }

    #[test]
    fn round_trip() {
        let bytes = Event::encode(&header(), &[1, 2, 3]);
        let ev = Event::decode(&bytes).expect("decodes");
        assert_eq!(ev.data, [1, 2, 3]);
        assert_eq!(ev.kind, EventKind::Packet);
    }

    #[test]
    fn rejects_short_and_bad_records() {
        assert_eq!(Event::decode(&[0; 10]).unwrap_err(), DecodeError::Short(10));
        let mut h = header();
        h.abi_version = 9;
        assert_eq!(
            Event::decode(&Event::encode(&h, &[1, 2, 3])).unwrap_err(),
            DecodeError::Version(9)
        );
        let h = header();
        assert!(matches!(
            Event::decode(&Event::encode(&h, &[1])),
            Err(DecodeError::CapLen { .. })
        ));
        let mut h = header();
        h.kind = 7;
        assert_eq!(
            Event::decode(&Event::encode(&h, &[1, 2, 3])).unwrap_err(),
            DecodeError::Kind(7)
        );
        let mut h = header();
        h.hook = 999;
        assert_eq!(
            Event::decode(&Event::encode(&h, &[1, 2, 3])).unwrap_err(),
            DecodeError::Hook(999)
        );
    }

    #[test]
    fn c_strings() {
        assert_eq!(c_str(b"eth0\0\0garbage"), "eth0");
        assert_eq!(c_str(b"abcd"), "abcd");
    }
}
