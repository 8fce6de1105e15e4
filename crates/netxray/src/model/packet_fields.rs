//! Filling a TraceEvent's flat fields from a decoded Packet.

use crate::model::event::{proto_name, TraceEvent};
use crate::model::packet::{Packet, L3, L4};

pub fn apply(ev: &mut TraceEvent, pkt: &Packet) {
    ev.l3 = match &pkt.l3 {
        Some(L3::Ipv4(_)) => Some("ipv4"),
        Some(L3::Ipv6(_)) => Some("ipv6"),
        Some(L3::Arp(_)) => Some("arp"),
        Some(L3::Other(_)) => Some("other"),
        None => None,
    };
    ev.ip_id = match &pkt.l3 {
        Some(L3::Ipv4(ip)) => Some(ip.id),
        _ => None,
    };
    ev.saddr = pkt.src_addr();
    ev.daddr = pkt.dst_addr();
    ev.proto = pkt.l4_proto().map(proto_name);
    if let Some((s, d)) = pkt.ports() {
        ev.sport = Some(s);
        ev.dport = Some(d);
    }
    match &pkt.l4 {
        Some(L4::Tcp(t)) => {
            ev.tcp_flags = Some(t.flag_letters());
            ev.tcp_seq = Some(t.seq);
            ev.tcp_ack = Some(t.ack);
        }
        Some(L4::Icmp(i)) => {
            ev.icmp_type = Some(i.icmp_type);
            ev.icmp_code = Some(i.code);
            ev.icmp_id = i.echo.as_ref().map(|e| e.id);
            ev.icmp_seq = i.echo.as_ref().map(|e| e.seq);
        }
        Some(L4::Icmpv6(i)) => {
            ev.icmp_type = Some(i.icmp_type);
            ev.icmp_code = Some(i.code);
            ev.icmp_id = i.echo.as_ref().map(|e| e.id);
            ev.icmp_seq = i.echo.as_ref().map(|e| e.seq);
        }
        _ => {}
    }
    ev.vlan = pkt.vlans.first().map(|v| v.vid);
    ev.truncated = pkt.truncated.is_some() || pkt.malformed.is_some();
    ev.summary = pkt.summary();
}
