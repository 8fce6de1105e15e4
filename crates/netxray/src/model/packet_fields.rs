//! Filling a TraceEvent's flat fields from a decoded Packet.
//!
//! An impl block of `TraceEvent` apart from event.rs: this module uses
//! event.rs (the type, `proto_name`), event.rs does not name this one.

use crate::model::event::{proto_name, TraceEvent};
use crate::model::packet::{Packet, L3, L4};

impl TraceEvent {
    /// Addresses, ports, protocol, TCP and ICMP fields, VLAN and summary
    /// from the packet's bytes, decoded.
    pub fn apply_packet(&mut self, pkt: &Packet) {
        self.l3 = match &pkt.l3 {
            Some(L3::Ipv4(_)) => Some("ipv4"),
            Some(L3::Ipv6(_)) => Some("ipv6"),
            Some(L3::Arp(_)) => Some("arp"),
            Some(L3::Other(_)) => Some("other"),
            None => None,
        };
        self.ip_id = match &pkt.l3 {
            Some(L3::Ipv4(ip)) => Some(ip.id),
            _ => None,
        };
        self.saddr = pkt.src_addr();
        self.daddr = pkt.dst_addr();
        self.proto = pkt.l4_proto().map(proto_name);
        if let Some((s, d)) = pkt.ports() {
            self.sport = Some(s);
            self.dport = Some(d);
        }
        match &pkt.l4 {
            Some(L4::Tcp(t)) => {
                self.tcp_flags = Some(t.flag_letters());
                self.tcp_seq = Some(t.seq);
                self.tcp_ack = Some(t.ack);
            }
            Some(L4::Icmp(i)) => {
                self.icmp_type = Some(i.icmp_type);
                self.icmp_code = Some(i.code);
                self.icmp_id = i.echo.as_ref().map(|e| e.id);
                self.icmp_seq = i.echo.as_ref().map(|e| e.seq);
            }
            Some(L4::Icmpv6(i)) => {
                self.icmp_type = Some(i.icmp_type);
                self.icmp_code = Some(i.code);
                self.icmp_id = i.echo.as_ref().map(|e| e.id);
                self.icmp_seq = i.echo.as_ref().map(|e| e.seq);
            }
            _ => {}
        }
        self.vlan = pkt.vlans.first().map(|v| v.vid);
        self.truncated = pkt.truncated.is_some() || pkt.malformed.is_some();
        self.summary = pkt.summary();
    }
}
