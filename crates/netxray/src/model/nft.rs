//! nftables tracing, as a network engineer reads it: which table, chain and
//! rule (by handle) a packet met, and the verdict. One [`NftTrace`] per
//! message the kernel sends (`nft monitor trace` shows the same).

use crate::model::event::proto_name;
use crate::model::packet::{self, CaptureInfo, Packet};
use crate::model::value::Name;
use netxray_filter::{Expr, Filter, Frame, Prim, Proto};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// nftables families (NFPROTO_*), as in `nfgenmsg.nfgen_family`.
pub mod family {
    pub const UNSPEC: u8 = 0;
    pub const INET: u8 = 1;
    pub const IPV4: u8 = 2;
    pub const ARP: u8 = 3;
    pub const NETDEV: u8 = 5;
    pub const BRIDGE: u8 = 7;
    pub const IPV6: u8 = 10;

    /// The name `nft` uses.
    pub fn name(f: u8) -> &'static str {
        match f {
            INET => "inet",
            IPV4 => "ip",
            ARP => "arp",
            NETDEV => "netdev",
            BRIDGE => "bridge",
            IPV6 => "ip6",
            _ => "unknown",
        }
    }
}

/// Why the kernel sent a trace message (NFT_TRACETYPE_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceKind {
    /// A rule matched and gave a verdict (perhaps `continue`).
    Rule,
    /// The end of a base chain: its policy decided.
    Policy,
    /// The end of a regular chain: back to the calling chain.
    Return,
    Other(u32),
}

impl TraceKind {
    pub fn from_raw(v: u32) -> Self {
        match v {
            1 => Self::Policy,
            2 => Self::Return,
            3 => Self::Rule,
            n => Self::Other(n),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rule => "rule",
            Self::Policy => "policy",
            Self::Return => "return",
            Self::Other(_) => "other",
        }
    }
}

/// A verdict (NF_* and NFT_* codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    Accept,
    Stolen,
    Queue(u16),
    Repeat,
    Stop,
    Continue,
    Break,
    Jump(String),
    Goto(String),
    Return,
    Other(i32),
}

impl Verdict {
    /// From the code (and the target chain of a jump or goto).
    pub fn from_code(code: i32, chain: Option<&str>) -> Self {
        let target = || chain.unwrap_or("?").to_string();
        match code {
            -1 => Self::Continue,
            -2 => Self::Break,
            -3 => Self::Jump(target()),
            -4 => Self::Goto(target()),
            -5 => Self::Return,
            c if c >= 0 => match c & 0xff {
                0 => Self::Drop,
                1 => Self::Accept,
                2 => Self::Stolen,
                3 => Self::Queue((c as u32 >> 16) as u16),
                4 => Self::Repeat,
                5 => Self::Stop,
                _ => Self::Other(c),
            },
            c => Self::Other(c),
        }
    }

    pub fn is_drop(&self) -> bool {
        *self == Self::Drop
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Drop => f.write_str("drop"),
            Self::Accept => f.write_str("accept"),
            Self::Stolen => f.write_str("stolen"),
            Self::Queue(n) => write!(f, "queue {n}"),
            Self::Repeat => f.write_str("repeat"),
            Self::Stop => f.write_str("stop"),
            Self::Continue => f.write_str("continue"),
            Self::Break => f.write_str("break"),
            Self::Jump(c) => write!(f, "jump {c}"),
            Self::Goto(c) => write!(f, "goto {c}"),
            Self::Return => f.write_str("return"),
            Self::Other(n) => write!(f, "verdict {n}"),
        }
    }
}

/// One trace message, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftTrace {
    /// Family of the table (NFPROTO_*).
    pub family: u8,
    pub table: String,
    pub chain: String,
    /// The rule's handle (rule and return messages).
    pub handle: Option<u64>,
    pub kind: Option<TraceKind>,
    /// A rule's verdict, or (policy messages) the chain's policy.
    pub verdict: Option<Verdict>,
    /// Same for every message about one packet (a hash of the skb).
    pub id: u32,
    pub iif: Option<u32>,
    pub oif: Option<u32>,
    pub mark: Option<u32>,
    /// The protocol the hook processed (NFPROTO_*).
    pub nfproto: Option<u8>,
    /// Sent with the first message of each base chain the packet enters.
    pub network_header: Option<Vec<u8>>,
    pub transport_header: Option<Vec<u8>>,
}

impl NftTrace {
    /// Whether the message is about one of netxray's own tracing tables.
    pub fn is_netxray(&self) -> bool {
        self.table.starts_with("netxray_")
    }
}

/// The packet a trace is about, from the headers the kernel sent.
#[derive(Debug)]
pub struct TracedPacket {
    pub bytes: Vec<u8>,
    pub ethertype: u16,
    /// Length on the wire, from the IP header.
    pub len: u32,
    pub packet: Packet,
    /// Devices, also sent only with the headers.
    pub iif: Option<u32>,
    pub oif: Option<u32>,
}

impl TracedPacket {
    /// Network header then transport header, as one capture from L3.
    pub fn from_headers(network: &[u8], transport: Option<&[u8]>) -> Self {
        let mut bytes = network.to_vec();
        if let Some(t) = transport {
            bytes.extend_from_slice(t);
        }
        let (ethertype, len) = match network.first().map(|b| b >> 4) {
            Some(4) if network.len() >= 4 => {
                (0x0800, u16::from_be_bytes([network[2], network[3]]) as u32)
            }
            Some(6) if network.len() >= 6 => (
                0x86dd,
                40 + u16::from_be_bytes([network[4], network[5]]) as u32,
            ),
            _ => (0, bytes.len() as u32),
        };
        let info = CaptureInfo {
            has_l2: false,
            l3_off: 0,
            protocol: ethertype,
            hw_vlan: None,
        };
        let packet = packet::decode(&bytes, &info);
        Self {
            ethertype,
            len: len.max(bytes.len() as u32),
            packet,
            bytes,
            iif: None,
            oif: None,
        }
    }

    pub fn matches(&self, filter: &Filter) -> bool {
        filter.matches_all()
            || filter.matches(&Frame {
                data: &self.bytes,
                l2: false,
                ethertype: self.ethertype,
                len: self.len,
            })
    }
}

/// Only the first message of each base chain carries the headers: the
/// packet of the latest ones, by trace id, for the messages that follow.
#[derive(Debug, Default)]
pub struct PacketsById {
    map: HashMap<u32, Arc<TracedPacket>>,
    order: VecDeque<u32>,
}

/// Packets remembered (a trace's messages arrive together).
const REMEMBERED: usize = 4096;

impl PacketsById {
    /// The packet this message is about: its own headers, else those seen
    /// last for its id.
    pub fn packet_of(&mut self, t: &NftTrace) -> Option<Arc<TracedPacket>> {
        if let Some(net) = &t.network_header {
            let mut p = TracedPacket::from_headers(net, t.transport_header.as_deref());
            p.iif = t.iif;
            p.oif = t.oif;
            let p = Arc::new(p);
            if self.map.insert(t.id, p.clone()).is_none() {
                self.order.push_back(t.id);
                if self.order.len() > REMEMBERED {
                    if let Some(old) = self.order.pop_front() {
                        self.map.remove(&old);
                    }
                }
            }
            return Some(p);
        }
        self.map.get(&t.id).cloned()
    }
}

/// The L4 protocols every packet the filter matches has, when the filter
/// says (`udp and port 53`: udp; `tcp or icmp`: tcp, icmp); `None` when a
/// packet of any protocol might match. Conservative: `not`, loads and
/// link-level tests say nothing.
fn l4_protos(e: &Expr) -> Option<BTreeSet<u8>> {
    const TCP: u8 = 6;
    const UDP: u8 = 17;
    const SCTP: u8 = 132;
    match e {
        Expr::Prim(p, _) => match p {
            Prim::Proto(Proto::Tcp) => Some([TCP].into()),
            Prim::Proto(Proto::Udp) => Some([UDP].into()),
            Prim::Proto(Proto::Sctp) => Some([SCTP].into()),
            Prim::Proto(Proto::Icmp) => Some([1].into()),
            Prim::Proto(Proto::Icmp6) => Some([58].into()),
            Prim::Port { l4: Some(p), .. } => Some([*p].into()),
            Prim::Port { l4: None, .. } => Some([TCP, UDP, SCTP].into()),
            // Not extension headers (`ip6 proto 0`): nft's l4proto skips them.
            Prim::IpProto(_, n @ (1 | 6 | 17 | 58 | 132)) => Some([*n as u8].into()),
            _ => None,
        },
        Expr::And(a, b) => match (l4_protos(a), l4_protos(b)) {
            (Some(x), Some(y)) => Some(x.intersection(&y).copied().collect()),
            (x, y) => x.or(y),
        },
        Expr::Or(a, b) => Some(l4_protos(a)?.union(&l4_protos(b)?).copied().collect()),
        Expr::Not(_) | Expr::True => None,
    }
}

/// The L4 protocols the tracing tables mark (`meta l4proto P meta nftrace
/// set 1`, one rule each), derived from the filter; empty: mark every
/// packet. A filter no packet can match (`tcp and udp`) marks everything
/// rather than nothing: the user-space filter decides anyway.
pub fn marking_protocols(filter: &Filter) -> Vec<u8> {
    l4_protos(&filter.expr)
        .map(|s| s.into_iter().collect())
        .unwrap_or_default()
}

/// One trace message as netxray shows it (text line or JSON object; fields
/// in docs/json.md).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NftEvent {
    /// Wall clock when netxray read the message, ns since the epoch (the
    /// kernel sends no time).
    pub ts_ns: u64,
    /// Always `nft`.
    pub kind: &'static str,
    pub netns: u32,
    pub netns_name: Option<Name>,
    pub family: &'static str,
    pub table: String,
    pub chain: String,
    pub handle: Option<u64>,
    /// `rule`, `policy`, `return`.
    #[serde(rename = "type")]
    pub trace_type: &'static str,
    pub verdict: Option<String>,
    pub trace_id: u32,
    pub iif: Option<u32>,
    pub iifname: Option<Name>,
    pub oif: Option<u32>,
    pub oifname: Option<Name>,
    pub mark: Option<u32>,
    pub l3: Option<&'static str>,
    pub proto: Option<Cow<'static, str>>,
    pub saddr: Option<IpAddr>,
    pub daddr: Option<IpAddr>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub summary: String,
}

impl NftEvent {
    pub fn new(t: &NftTrace, p: &TracedPacket, ts_ns: u64, netns: u32) -> Self {
        let pkt = &p.packet;
        let (sport, dport) = pkt.ports().unzip();
        Self {
            ts_ns,
            kind: "nft",
            netns,
            family: family::name(t.family),
            table: t.table.clone(),
            chain: t.chain.clone(),
            handle: t.handle,
            trace_type: t.kind.map_or("other", TraceKind::as_str),
            verdict: t.verdict.as_ref().map(Verdict::to_string),
            trace_id: t.id,
            iif: t.iif.or(p.iif),
            oif: t.oif.or(p.oif),
            mark: t.mark.filter(|m| *m != 0),
            l3: match p.ethertype {
                0x0800 => Some("ipv4"),
                0x86dd => Some("ipv6"),
                _ => None,
            },
            proto: pkt.l4_proto().map(proto_name),
            saddr: pkt.src_addr(),
            daddr: pkt.dst_addr(),
            sport,
            dport,
            summary: pkt.summary(),
            ..Default::default()
        }
    }

    /// `inet filter input`.
    pub fn where_(&self) -> String {
        format!("{} {} {}", self.family, self.table, self.chain)
    }

    /// `rule handle 4 verdict drop`, `policy accept`, `return`.
    pub fn what(&self) -> String {
        let v = self.verdict.as_deref().unwrap_or("?");
        match (self.trace_type, self.handle) {
            ("policy", _) => format!("policy {v}"),
            ("return", None) => "return".to_string(),
            (_, Some(h)) => format!("rule handle {h} verdict {v}"),
            (_, None) => format!("verdict {v}"),
        }
    }
}

/// A rule (or a chain policy) that dropped packets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RuleKey {
    netns: u32,
    family: &'static str,
    table: String,
    chain: String,
    handle: Option<u64>,
    trace_type: &'static str,
    verdict: String,
}

/// One row of `drops --nft-trace`: a rule's drops in the interval and
/// since the start (fields in docs/json.md).
#[derive(Debug, Serialize)]
pub struct RuleRow {
    pub count: u64,
    pub total: u64,
    pub netns: u32,
    pub netns_name: Option<Name>,
    pub family: &'static str,
    pub table: String,
    pub chain: String,
    /// None for a chain's policy.
    pub handle: Option<u64>,
    #[serde(rename = "type")]
    pub trace_type: &'static str,
    pub verdict: String,
    /// The latest packet it dropped.
    pub sample: String,
}

/// `drops --nft-trace`: drop verdicts counted per rule.
#[derive(Debug, Default)]
pub struct RuleDrops {
    totals: HashMap<RuleKey, (u64, String, Option<Name>)>,
    before: HashMap<RuleKey, u64>,
}

impl RuleDrops {
    /// Count `ev` if it dropped the packet.
    pub fn add(&mut self, ev: NftEvent) {
        if ev.verdict.as_deref() != Some("drop") {
            return;
        }
        let key = RuleKey {
            netns: ev.netns,
            family: ev.family,
            table: ev.table,
            chain: ev.chain,
            handle: ev.handle,
            trace_type: ev.trace_type,
            verdict: "drop".into(),
        };
        let e = self.totals.entry(key).or_default();
        e.0 += 1;
        e.1 = ev.summary;
        e.2 = ev.netns_name;
    }

    /// Every rule seen, most drops in the interval first (then in all).
    pub fn rows(&mut self) -> Vec<RuleRow> {
        let mut rows: Vec<RuleRow> = self
            .totals
            .iter()
            .map(|(k, (total, sample, name))| {
                let prev = self.before.insert(k.clone(), *total).unwrap_or(0);
                RuleRow {
                    count: total - prev,
                    total: *total,
                    netns: k.netns,
                    netns_name: name.clone(),
                    family: k.family,
                    table: k.table.clone(),
                    chain: k.chain.clone(),
                    handle: k.handle,
                    trace_type: k.trace_type,
                    verdict: k.verdict.clone(),
                    sample: sample.clone(),
                }
            })
            .collect();
        rows.sort_by(|a, b| b.count.cmp(&a.count).then(b.total.cmp(&a.total)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marking_follows_the_protocols_the_filter_implies() {
        let m = |f: &str| marking_protocols(&Filter::parse(f).unwrap());
        assert_eq!(m("udp and dst port 5000"), [17]);
        assert_eq!(m("tcp or icmp"), [1, 6]);
        assert_eq!(m("port 53"), [6, 17, 132]);
        assert_eq!(m("udp port 53 and host 198.18.0.2"), [17]);
        assert_eq!(m("host 198.18.0.2"), Vec::<u8>::new());
        assert_eq!(m("not udp"), Vec::<u8>::new());
        assert_eq!(m("udp or arp"), Vec::<u8>::new());
        assert_eq!(m("tcp and udp"), Vec::<u8>::new());
        assert_eq!(m("ip proto 17"), [17]);
        assert_eq!(m("icmp6"), [58]);
        assert_eq!(m(""), Vec::<u8>::new());
    }

    #[test]
    fn verdicts_read_like_nft() {
        assert_eq!(Verdict::from_code(0, None).to_string(), "drop");
        assert_eq!(Verdict::from_code(1, None).to_string(), "accept");
        assert_eq!(Verdict::from_code(-1, None).to_string(), "continue");
        assert_eq!(Verdict::from_code(-3, Some("web")).to_string(), "jump web");
        assert_eq!(Verdict::from_code(-4, None).to_string(), "goto ?");
        assert_eq!(
            Verdict::from_code(3 | (5 << 16), None).to_string(),
            "queue 5"
        );
        assert_eq!(Verdict::from_code(-9, None).to_string(), "verdict -9");
    }

    #[test]
    fn a_rule_message_says_where_and_what() {
        let t = NftTrace {
            family: family::INET,
            table: "filter".into(),
            chain: "input".into(),
            handle: Some(4),
            kind: Some(TraceKind::Rule),
            verdict: Some(Verdict::Drop),
            ..Default::default()
        };
        let none = TracedPacket::from_headers(&[], None);
        let e = NftEvent::new(&t, &none, 0, 0);
        assert_eq!(e.where_(), "inet filter input");
        assert_eq!(e.what(), "rule handle 4 verdict drop");
        let p = NftTrace {
            kind: Some(TraceKind::Policy),
            verdict: Some(Verdict::Accept),
            ..t
        };
        assert_eq!(NftEvent::new(&p, &none, 0, 0).what(), "policy accept");
        assert!(!p.is_netxray());
    }

    #[test]
    fn headers_become_a_packet_the_filter_sees() {
        let ip = [
            0x45, 0, 0, 33, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ];
        let udp = [0x04, 0xd2, 0x13, 0x88, 0, 13, 0, 0];
        let p = TracedPacket::from_headers(&ip, Some(&udp));
        assert_eq!(p.ethertype, 0x0800);
        assert_eq!(p.len, 33);
        assert!(p.matches(&Filter::parse("udp and dst port 5000").unwrap()));
        assert!(!p.matches(&Filter::parse("tcp or port 53").unwrap()));
        assert!(p
            .packet
            .summary()
            .contains("198.18.0.1.1234 > 198.18.0.2.5000"));

        let mut by_id = PacketsById::default();
        let first = NftTrace {
            id: 7,
            network_header: Some(ip.to_vec()),
            transport_header: Some(udp.to_vec()),
            ..Default::default()
        };
        assert!(by_id.packet_of(&first).is_some());
        let later = NftTrace {
            id: 7,
            ..Default::default()
        };
        assert!(by_id.packet_of(&later).is_some());
        assert!(by_id
            .packet_of(&NftTrace {
                id: 8,
                ..Default::default()
            })
            .is_none());
    }
}
