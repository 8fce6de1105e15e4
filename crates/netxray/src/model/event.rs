//! A trace event as netxray reports it: the kernel record decoded, its packet
//! parsed, names resolved. This is the JSON schema (docs/json.md).

use crate::model::hook::{HookPoint, NF_HOOK_NAMES};
use crate::model::packet::{self, CaptureInfo, VlanTag};
use crate::model::value::{Name, NsId, SkbAddr};
use netxray_abi::{c_str, flags, hook_id, Event, EventKind, RawTuple};
use serde::Serialize;
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Lookups the event needs from outside (namespace and interface names,
/// drop reasons, kernel symbols).
pub trait Resolver {
    fn netns_name(&mut self, ns: NsId) -> Option<Name>;
    fn ifname(&mut self, ns: NsId, ifindex: u32) -> Option<Name>;
    fn drop_reason(&self, reason: u32) -> Option<Name>;
    fn rst_reason(&self, reason: u32) -> Option<Name>;
    fn symbol(&self, addr: u64) -> Option<String>;
    /// Monotonic ns -> wall-clock ns since the epoch.
    fn wall_ns(&self, mono_ns: u64) -> u64;
    /// The symbolised kernel stack recorded under `id` (--stack).
    fn stack(&mut self, _id: u32) -> Option<Vec<String>> {
        None
    }
    /// A fixed-size C string from the kernel (comm, ifname) as a name; a
    /// resolver may cache them ([`crate::model::value::NameCache`]).
    fn name(&mut self, raw: &[u8; 16]) -> Name {
        Name::from(c_str(raw))
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TraceEvent {
    pub ts_ns: u64,
    pub hook: &'static str,
    pub group: &'static str,
    pub kind: &'static str,
    pub skb: Option<SkbAddr>,
    /// The skb's data buffer (`skb->head`), shared by clones: with `skb`,
    /// the packet's identity.
    pub head: Option<SkbAddr>,
    pub netns: Option<u32>,
    /// The namespace's cookie: with `netns`, its identity (inode numbers
    /// are reused); null when the kernel has none to give (before 5.12).
    pub netns_cookie: Option<u64>,
    pub netns_name: Option<Name>,
    pub ifindex: Option<u32>,
    pub ifname: Option<Name>,
    pub len: Option<u32>,
    pub cpu: u32,
    pub pid: Option<u32>,
    pub tid: Option<u32>,
    pub comm: Option<Name>,
    pub l3: Option<&'static str>,
    pub proto: Option<Cow<'static, str>>,
    /// Serialized as a string (serde writes IP addresses as text in JSON).
    pub saddr: Option<IpAddr>,
    pub daddr: Option<IpAddr>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub icmp_id: Option<u16>,
    pub icmp_seq: Option<u16>,
    pub tcp_flags: Option<String>,
    pub tcp_seq: Option<u32>,
    pub tcp_ack: Option<u32>,
    pub vlan: Option<u16>,
    pub drop_reason: Option<Name>,
    pub location: Option<String>,
    pub ret: Option<i32>,
    /// kfree_skb: the netfilter hook the packet was inside when freed
    /// ("ip input"): with NETFILTER_DROP, the hook whose chains dropped it.
    pub nf_hook: Option<String>,
    /// Netfilter *_done hooks: the packet's conntrack entry.
    /// Boxed: rare, and the largest field (events are moved several times
    /// on their way to the output).
    pub ct: Option<Box<Conntrack>>,
    pub detail: Option<String>,
    /// Where the fields came from: "packet" (bytes), "socket" (the socket's
    /// view of the flow), "flow" (a routing lookup), or null.
    pub source: Option<&'static str>,
    /// Route/neighbour records: the skb and hook of the packet event they
    /// concern (same CPU, same flow), when one was seen.
    pub linked_skb: Option<SkbAddr>,
    pub linked_hook: Option<&'static str>,
    /// Outside the filter, shown because an earlier hop of the same packet
    /// matched (`--follow`).
    pub followed: bool,
    /// Kernel stack at this hop, innermost first (`--stack`); `["(lost)"]`
    /// when the kernel could not store it.
    pub stack: Option<Vec<String>>,
    /// kfree_skb/consume_skb: a clone still holds the data buffer, so the
    /// packet lives on (journeys).
    #[serde(skip)]
    pub shared: bool,
    /// The skb is a clone or was cloned: it shares its data buffer.
    #[serde(skip)]
    pub cloned: bool,
    /// IPv4 identification: the same across NAT and buffer reallocation,
    /// different for the next datagram (journeys tell packets apart by it).
    #[serde(skip)]
    pub ip_id: Option<u16>,
    pub truncated: bool,
    pub summary: String,
}

/// A packet's conntrack entry, as seen at the last priority of a netfilter
/// hook.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Conntrack {
    /// ESTABLISHED, RELATED, NEW, ESTABLISHED_REPLY, RELATED_REPLY,
    /// UNTRACKED (`enum ip_conntrack_info`).
    pub state: &'static str,
    /// Status bits set (`IPS_*`): SEEN_REPLY, ASSURED, CONFIRMED, SNAT, DNAT, ...
    pub status: Vec<&'static str>,
    /// The connection as first seen (original direction, before NAT).
    pub orig: Option<FlowTuple>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlowTuple {
    pub proto: Cow<'static, str>,
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    /// Ports (TCP/UDP/SCTP); for ICMP the id and type<<8|code.
    pub sport: u16,
    pub dport: u16,
}

impl std::fmt::Display for FlowTuple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if matches!(self.proto.as_ref(), "tcp" | "udp" | "sctp") {
            write!(
                f,
                "{} {}.{} > {}.{}",
                self.proto, self.saddr, self.sport, self.daddr, self.dport
            )
        } else {
            write!(f, "{} {} > {}", self.proto, self.saddr, self.daddr)
        }
    }
}

/// `enum ip_conntrack_info` (the value + 1 in the record; 0: none).
fn ct_state(v: u32) -> Option<&'static str> {
    Some(match v.checked_sub(1)? {
        0 => "ESTABLISHED",
        1 => "RELATED",
        2 => "NEW",
        3 => "ESTABLISHED_REPLY",
        4 => "RELATED_REPLY",
        7 => "UNTRACKED",
        _ => "?",
    })
}

/// `IPS_*` bits worth showing.
const CT_STATUS: [(u32, &str); 9] = [
    (0, "EXPECTED"),
    (1, "SEEN_REPLY"),
    (2, "ASSURED"),
    (3, "CONFIRMED"),
    (4, "SNAT"),
    (5, "DNAT"),
    (9, "DYING"),
    (13, "HELPER"),
    (14, "OFFLOAD"),
];

/// "ip input" for an NX_NF_AT() value.
pub fn nf_hook_name(at: u32) -> Option<String> {
    let (hook, pf) = netxray_abi::nf_at_decode(at)?;
    let family = match pf {
        2 => "ip",
        10 => "ip6",
        _ => "?",
    };
    let hook = NF_HOOK_NAMES.get(hook as usize).copied().unwrap_or("?");
    Some(format!("{family} {hook}"))
}

/// The meaning of a receive function's return value (--ret).
fn ret_name(hook: u16, ret: i32) -> String {
    let name = match (hook, ret) {
        (hook_id::NAPI_GRO_RECEIVE_EXIT, 0) => Some("GRO_MERGED"),
        (hook_id::NAPI_GRO_RECEIVE_EXIT, 1) => Some("GRO_MERGED_FREE"),
        (hook_id::NAPI_GRO_RECEIVE_EXIT, 2) => Some("GRO_HELD"),
        (hook_id::NAPI_GRO_RECEIVE_EXIT, 3) => Some("GRO_NORMAL"),
        (hook_id::NAPI_GRO_RECEIVE_EXIT, 4) => Some("GRO_CONSUMED"),
        (_, 0) => Some("NET_RX_SUCCESS"),
        (_, 1) => Some("NET_RX_DROP"),
        _ => None,
    };
    match name {
        Some(n) => format!("{n} ({ret})"),
        None => ret.to_string(),
    }
}

fn tuple_addrs(t: &RawTuple) -> Option<(IpAddr, IpAddr)> {
    match t.family {
        2 => {
            let a = |b: &[u8; 16]| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
            Some((a(&t.saddr), a(&t.daddr)))
        }
        10 => Some((
            IpAddr::V6(Ipv6Addr::from(t.saddr)),
            IpAddr::V6(Ipv6Addr::from(t.daddr)),
        )),
        _ => None,
    }
}

pub fn proto_name(p: u8) -> Cow<'static, str> {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmp6".into(),
        132 => "sctp".into(),
        n => format!("proto-{n}").into(),
    }
}

fn icmp_send_detail(aux: u32) -> String {
    let (t, c) = ((aux >> 8) as u8, (aux & 0xff) as u8);
    let what = match (t, c) {
        (3, 0) => "net unreachable",
        (3, 1) => "host unreachable",
        (3, 2) => "protocol unreachable",
        (3, 3) => "port unreachable",
        (3, 4) => "fragmentation needed",
        (3, 13) => "administratively prohibited",
        (3, _) => "destination unreachable",
        (11, _) => "time exceeded",
        (5, _) => "redirect",
        (12, _) => "parameter problem",
        _ => "icmp error",
    };
    format!("sent ICMP type {t} code {c} ({what})")
}

const NUD: [(u32, &str); 8] = [
    (0x01, "INCOMPLETE"),
    (0x02, "REACHABLE"),
    (0x04, "STALE"),
    (0x08, "DELAY"),
    (0x10, "PROBE"),
    (0x20, "FAILED"),
    (0x40, "NOARP"),
    (0x80, "PERMANENT"),
];

fn nud_name(state: u32) -> String {
    let names: Vec<&str> = NUD
        .iter()
        .filter(|(b, _)| state & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "NONE".into()
    } else {
        names.join("|")
    }
}

fn mac(b: &[u8]) -> String {
    b.iter()
        .take(6)
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl TraceEvent {
    pub fn from_raw(ev: &Event<'_>, r: &mut dyn Resolver) -> Self {
        let h = &ev.hdr;
        let hook = HookPoint::by_id(h.hook);
        let in_irq = h.flags & flags::IN_IRQ != 0;
        let netns = (h.netns != 0).then_some(h.netns);
        let ns = NsId::new(h.netns, h.netns_cookie);
        let mut ifname = (h.ifname[0] != 0).then(|| r.name(&h.ifname));
        if ifname.is_none() && h.ifindex != 0 {
            ifname = r.ifname(ns, h.ifindex);
        }
        let mut out = TraceEvent {
            ts_ns: r.wall_ns(h.ts_ns),
            hook: hook.map_or("?", |h| h.name),
            group: hook.map_or("?", |h| h.group.name()),
            kind: match ev.kind {
                EventKind::Packet => "packet",
                EventKind::Socket => "socket",
                EventKind::Fib => "fib",
                EventKind::Neigh => "neigh",
                EventKind::Ret => "ret",
            },
            skb: (h.skb != 0).then_some(SkbAddr(h.skb)),
            head: (h.head != 0).then_some(SkbAddr(h.head)),
            followed: h.flags & flags::FOLLOWED != 0,
            shared: h.flags & flags::SHARED != 0,
            cloned: h.pkt_type & netxray_abi::PKT_CLONED != 0,
            stack: match h.stack_id {
                -1 => None,
                id if id < 0 => Some(vec!["(stack lost)".to_string()]),
                id => r.stack(id as u32),
            },
            netns,
            netns_cookie: (netns.is_some() && h.netns_cookie != 0).then_some(h.netns_cookie),
            netns_name: netns.and_then(|_| r.netns_name(ns)),
            ifindex: (h.ifindex != 0).then_some(h.ifindex),
            ifname,
            len: (h.skb != 0 || h.head != 0).then_some(h.len),
            cpu: h.cpu,
            pid: (!in_irq).then_some(h.tgid),
            tid: (!in_irq).then_some(h.pid),
            comm: (!in_irq).then(|| r.name(&h.comm)),
            ..Default::default()
        };

        match h.hook {
            hook_id::KFREE_SKB => {
                out.drop_reason = Some(
                    r.drop_reason(h.reason)
                        .unwrap_or_else(|| format!("reason-{}", h.reason).into()),
                );
                out.location = Some(
                    r.symbol(h.location)
                        .unwrap_or_else(|| format!("{:#x}", h.location)),
                );
                out.nf_hook = nf_hook_name(h.aux);
            }
            hook_id::NF_PREROUTING..=hook_id::NF_POSTROUTING_DONE => {
                if let Some(state) = ct_state(h.reason) {
                    let orig = (h.flags & flags::TUPLE != 0)
                        .then(|| tuple_addrs(&h.tuple))
                        .flatten()
                        .map(|(s, d)| FlowTuple {
                            proto: proto_name(h.tuple.l4proto),
                            saddr: s,
                            daddr: d,
                            sport: h.tuple.sport,
                            dport: h.tuple.dport,
                        });
                    let status = CT_STATUS
                        .iter()
                        .filter(|(bit, _)| (h.ret as u32) & (1 << bit) != 0)
                        .map(|(_, n)| *n)
                        .collect();
                    out.ct = Some(Box::new(Conntrack {
                        state,
                        status,
                        orig,
                    }));
                }
                let forward = matches!(h.hook, hook_id::NF_FORWARD | hook_id::NF_FORWARD_DONE);
                if forward && h.aux != 0 {
                    let to = r
                        .ifname(ns, h.aux)
                        .map_or_else(|| format!("if{}", h.aux), |n| n.to_string());
                    out.detail = Some(format!("to {to}"));
                }
                if let Some(ct) = &out.ct {
                    let mut d = out.detail.take().map_or(String::new(), |d| d + ", ");
                    d.push_str("ct ");
                    d.push_str(ct.state);
                    if !ct.status.is_empty() {
                        d.push(' ');
                        d.push_str(&ct.status.join(","));
                    }
                    if let Some(o) = &ct.orig {
                        d.push_str(&format!(" [{o}]"));
                    }
                    out.detail = Some(d);
                }
            }
            // Older kernels (6.1) pass no location to consume_skb: none.
            hook_id::CONSUME_SKB if h.location != 0 => {
                out.location = Some(
                    r.symbol(h.location)
                        .unwrap_or_else(|| format!("{:#x}", h.location)),
                );
            }
            hook_id::NET_DEV_XMIT => {
                out.ret = Some(h.ret);
                out.detail = Some(match h.ret {
                    0 => "transmitted (NETDEV_TX_OK)".into(),
                    0x10 => "device busy (NETDEV_TX_BUSY)".into(),
                    rc => format!("rc {rc}"),
                });
            }
            hook_id::QDISC_DEQUEUE => out.ret = Some(h.ret),
            hook_id::ICMP_SEND => out.detail = Some(icmp_send_detail(h.aux)),
            hook_id::TCP_SEND_RESET => {
                out.detail = Some(format!(
                    "reset sent: {}",
                    r.rst_reason(h.reason)
                        .map_or_else(|| format!("reason {}", h.reason), |n| n.to_string())
                ))
            }
            hook_id::TCP_RETRANSMIT_SKB
            | hook_id::UDP_FAIL_QUEUE_RCV_SKB
            | hook_id::SKB_COPY_DATAGRAM_IOVEC => out.ret = Some(h.ret),
            _ => {}
        }

        match ev.kind {
            EventKind::Packet => out.fill_packet(ev),
            EventKind::Socket => out.fill_tuple(&h.tuple, "socket"),
            EventKind::Fib => {
                out.fill_tuple(&h.tuple, "flow");
                let gw = if h.tuple.family == 2 {
                    Ipv4Addr::new(h.aux_addr[0], h.aux_addr[1], h.aux_addr[2], h.aux_addr[3])
                        .to_string()
                } else {
                    Ipv6Addr::from(h.aux_addr).to_string()
                };
                out.ret = Some(h.ret);
                let verdict = if h.hook == hook_id::FIB_TABLE_LOOKUP && h.ret != 0 {
                    format!("error {}", h.ret)
                } else {
                    format!("via {} dev {}", gw, out.ifname.as_deref().unwrap_or("?"))
                };
                out.detail = Some(format!(
                    "route lookup table {} oif {}: {verdict}",
                    h.aux, h.reason
                ));
            }
            EventKind::Ret => {
                out.ret = Some(h.ret);
                out.detail = Some(format!("returned {}", ret_name(h.hook, h.ret)));
            }
            EventKind::Neigh => {
                if let Some((_, d)) = tuple_addrs(&h.tuple) {
                    out.daddr = Some(d);
                }
                out.ret = Some(h.ret);
                out.detail = Some(format!(
                    "neighbour {} lladdr {} state {}",
                    out.daddr.map_or_else(|| "?".to_string(), |d| d.to_string()),
                    mac(&h.aux_addr),
                    nud_name(h.reason)
                ));
            }
        }
        if out.summary.is_empty() {
            out.summary = out.make_summary();
        } else if let Some(d) = &out.detail {
            out.summary = format!("{}; {d}", out.summary);
        }
        out
    }

    fn fill_tuple(&mut self, t: &RawTuple, source: &'static str) {
        if let Some((s, d)) = tuple_addrs(t) {
            self.l3 = Some(if s.is_ipv4() { "ipv4" } else { "ipv6" });
            self.saddr = Some(s);
            self.daddr = Some(d);
            if t.l4proto != 0 {
                self.proto = Some(proto_name(t.l4proto));
            }
            if matches!(t.l4proto, 6 | 17 | 132) {
                self.sport = Some(t.sport);
                self.dport = Some(t.dport);
            }
            self.source = Some(source);
        }
    }

    fn fill_packet(&mut self, ev: &Event) {
        let h = &ev.hdr;
        if ev.data.is_empty() || h.flags & flags::SYNTH != 0 {
            return;
        }
        // With an Ethernet header the kernel put a stripped tag back into
        // the bytes; without one, the tag is known only from the skb.
        let has_l2 = h.flags & flags::L2 != 0;
        let hw_vlan = (h.flags & flags::VLAN_HW != 0 && !has_l2)
            .then(|| VlanTag::from_tci(h.vlan_proto, h.vlan_tci));
        let info = CaptureInfo {
            has_l2,
            l3_off: h.l3_off as usize,
            protocol: h.protocol,
            hw_vlan,
        };
        let pkt = packet::decode(ev.data, &info);
        self.source = Some("packet");
        self.apply_packet(&pkt); // model/packet_fields.rs
    }

    fn make_summary(&self) -> String {
        if let Some(d) = &self.detail {
            if self.kind != "packet" || self.hook == "net:net_dev_xmit" {
                let flow = match (self.saddr, self.daddr) {
                    (Some(s), Some(d)) if self.kind != "neigh" => {
                        let p = |a: IpAddr, port: Option<u16>| match port {
                            Some(port) => format!("{a}.{port}"),
                            None => a.to_string(),
                        };
                        format!(
                            "{} {} > {}: ",
                            self.proto.as_deref().unwrap_or("ip").to_uppercase(),
                            p(s, self.sport),
                            p(d, self.dport)
                        )
                    }
                    _ => String::new(),
                };
                return format!("{flow}{d}");
            }
        }
        match (self.saddr, self.daddr) {
            (Some(s), Some(d)) => {
                let p = |a: IpAddr, port: Option<u16>| match port {
                    Some(port) => format!("{a}.{port}"),
                    None => a.to_string(),
                };
                let proto = self.proto.as_deref().unwrap_or("ip").to_uppercase();
                // A side the socket does not know (an unconnected UDP or raw
                // socket has no peer; a raw socket may be unbound): not shown
                // as 0.0.0.0, which would read as an address.
                let unset =
                    |a: IpAddr, port: Option<u16>| a.is_unspecified() && port.unwrap_or(0) == 0;
                match (unset(s, self.sport), unset(d, self.dport)) {
                    (true, true) => format!("{proto} (an unbound socket: no addresses in it)"),
                    (true, false) => format!(
                        "{proto} to {} (an unconnected socket: no peer in it)",
                        p(d, self.dport)
                    ),
                    (false, true) => format!(
                        "{proto} from {} (an unconnected socket: no peer in it)",
                        p(s, self.sport)
                    ),
                    (false, false) => format!(
                        "{proto} {} > {} (from the socket)",
                        p(s, self.sport),
                        p(d, self.dport)
                    ),
                }
            }
            _ => String::new(),
        }
    }
}

impl TraceEvent {
    /// Take the packet fields of an earlier event of the same skb (for hooks
    /// whose skb must not be read).
    pub fn inherit_packet(&mut self, from: &TraceEvent) {
        self.l3 = from.l3;
        self.proto = from.proto.clone();
        self.saddr = from.saddr;
        self.daddr = from.daddr;
        self.sport = from.sport;
        self.dport = from.dport;
        self.icmp_type = from.icmp_type;
        self.icmp_code = from.icmp_code;
        self.icmp_id = from.icmp_id;
        self.icmp_seq = from.icmp_seq;
        self.tcp_flags = from.tcp_flags.clone();
        self.tcp_seq = from.tcp_seq;
        self.tcp_ack = from.tcp_ack;
        self.vlan = from.vlan;
        self.ip_id = from.ip_id;
        // Kept by --follow at its start, kept by it here too.
        self.followed |= from.followed;
        self.source = Some("start_xmit");
        self.summary = match &self.detail {
            Some(d) => format!("{}; {d}", from.summary),
            None => from.summary.clone(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket_event(s: &str, sport: u16, d: &str, dport: u16) -> TraceEvent {
        TraceEvent {
            kind: "socket",
            proto: Some("udp".into()),
            saddr: Some(s.parse().unwrap()),
            daddr: Some(d.parse().unwrap()),
            sport: Some(sport),
            dport: Some(dport),
            ..Default::default()
        }
    }

    #[test]
    fn a_socket_without_a_peer_is_not_shown_as_address_zero() {
        let e = socket_event("198.18.0.1", 4000, "198.18.0.2", 53);
        assert_eq!(
            e.make_summary(),
            "UDP 198.18.0.1.4000 > 198.18.0.2.53 (from the socket)"
        );
        let e = socket_event("0.0.0.0", 0, "0.0.0.0", 53);
        assert_eq!(
            e.make_summary(),
            "UDP to 0.0.0.0.53 (an unconnected socket: no peer in it)"
        );
        let e = socket_event("198.18.0.1", 4000, "::", 0);
        assert_eq!(
            e.make_summary(),
            "UDP from 198.18.0.1.4000 (an unconnected socket: no peer in it)"
        );
        let mut e = socket_event("0.0.0.0", 0, "0.0.0.0", 0);
        e.proto = Some("icmp".into());
        e.sport = None;
        e.dport = None;
        assert_eq!(
            e.make_summary(),
            "ICMP (an unbound socket: no addresses in it)"
        );
    }
}
