//! The tcpdump-like one-liner: [`Packet`]'s `Display`.
//!
//! Lengths come from the headers (IP total length minus headers, UDP length
//! minus 8, ARP's declared sizes), not from how much was captured; only an
//! ethertype the decoder does not read shows the captured length.

use std::fmt::{self, Write};
use std::net::IpAddr;

use super::names::ip_proto_name;
use super::{Arp, Icmp, Icmpv6, Packet, Tcp, L3, L4};
use crate::model::fmt::{push_ip, push_u32};

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl Packet {
    /// The one-liner (what `summary()` and `Display` give).
    pub(super) fn render(&self) -> String {
        let mut out = String::with_capacity(96);
        // Writing into a String cannot fail.
        let _ = self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) -> fmt::Result {
        let out = &mut *out;
        for tag in &self.vlans {
            write!(out, "vlan {}, ", tag.vid)?;
        }
        match &self.l3 {
            Some(L3::Ipv4(ip)) => {
                out.push_str("IP ");
                self.write_ip(out, ip.src.into(), ip.dst.into())?;
            }
            Some(L3::Ipv6(ip)) => {
                out.push_str("IP6 ");
                self.write_ip(out, ip.src.into(), ip.dst.into())?;
            }
            Some(L3::Arp(arp)) => write_arp(out, arp)?,
            Some(L3::Other(t)) if *t <= 1500 => {
                write!(out, "802.3, length {}", self.captured_len)?;
            }
            Some(L3::Other(t)) => write!(out, "ethertype 0x{t:04x}, length {}", self.captured_len)?,
            None => {
                let kept = out.trim_end_matches(", ").len();
                out.truncate(kept);
            }
        }
        if let Some(t) = &self.truncated {
            space(out);
            write!(out, "[truncated: {t}]")?;
        }
        if let Some(why) = &self.malformed {
            space(out);
            write!(out, "[malformed: {why}]")?;
        }
        Ok(())
    }
}

fn space(out: &mut String) {
    if !out.is_empty() {
        out.push(' ');
    }
}

impl Packet {
    /// `src[.port] > dst[.port]: ` and the transport part.
    fn write_ip(&self, out: &mut String, src: IpAddr, dst: IpAddr) -> fmt::Result {
        match self.ports() {
            Some((sport, dport)) => {
                push_ip(out, src);
                out.push('.');
                push_u32(out, sport.into());
                out.push_str(" > ");
                push_ip(out, dst);
                out.push('.');
                push_u32(out, dport.into());
                out.push_str(": ");
            }
            None => {
                push_ip(out, src);
                out.push_str(" > ");
                push_ip(out, dst);
                out.push_str(": ");
            }
        }
        let len = self.l4_len();
        let frag = self.fragment();
        match &self.l4 {
            Some(L4::Tcp(t)) => write_tcp(out, t)?,
            Some(L4::Udp(u)) => {
                out.push_str("UDP");
                if let Some(n) = u.payload_len() {
                    out.push_str(", length ");
                    out.push_str(itoa::Buffer::new().format(n));
                }
            }
            Some(L4::Icmp(m)) => {
                write_icmp(out, m)?;
                write_len(out, len)?;
            }
            Some(L4::Icmpv6(m)) => {
                out.push_str("ICMP6, ");
                write_icmpv6(out, m)?;
                write_len(out, len)?;
            }
            Some(L4::Other(p)) => {
                write_proto(out, *p)?;
                write_len(out, len)?;
            }
            None => {
                write_proto(out, self.l4_proto().unwrap_or_default())?;
                if let Some(fr) = frag.filter(|fr| fr.offset != 0) {
                    write!(out, ", frag id {}, frag off {}", fr.id, fr.offset)?;
                    if fr.more {
                        out.push_str(", more fragments");
                    }
                    return write_len(out, len);
                }
            }
        }
        if let Some(fr) = frag.filter(|fr| fr.offset == 0 && fr.more) {
            write!(out, ", frag id {}, more fragments", fr.id)?;
        }
        Ok(())
    }
}

fn write_len(out: &mut String, len: Option<usize>) -> fmt::Result {
    match len {
        Some(n) => write!(out, ", length {n}"),
        None => Ok(()),
    }
}

fn write_proto(out: &mut String, proto: u8) -> fmt::Result {
    match ip_proto_name(proto) {
        Some(name) => write!(out, "{name}"),
        None => write!(out, "ip-proto-{proto}"),
    }
}

fn write_tcp(out: &mut String, t: &Tcp) -> fmt::Result {
    write!(out, "Flags [{}], ", t.flag_letters())?;
    match t.payload_len {
        Some(n) if n > 0 => write!(out, "seq {}:{}", t.seq, t.seq.wrapping_add(n as u32))?,
        _ => write!(out, "seq {}", t.seq)?,
    }
    if t.has(Tcp::ACK) {
        write!(out, ", ack {}", t.ack)?;
    }
    write!(out, ", win {}", t.window)?;
    if t.has(Tcp::URG) {
        write!(out, ", urg {}", t.urgent)?;
    }
    write_len(out, t.payload_len)
}

fn write_icmp(out: &mut String, m: &Icmp) -> fmt::Result {
    out.push_str("ICMP ");
    let name = m.type_name();
    let code = m.code_name();
    let quoted_dst = m.quoted.map(|q| q.dst);
    match (m.icmp_type, name, m.echo) {
        (_, Some(name), Some(e)) => write!(out, "{name}, id {}, seq {}", e.id, e.seq),
        (3, _, _) => write_unreachable(out, m),
        (5, _, _) => {
            out.push_str("redirect");
            if let Some(dst) = quoted_dst {
                write!(out, " {dst}")?;
            }
            if let Some(gw) = m.gateway {
                write!(out, " to {} {gw}", code.unwrap_or("host"))?;
            }
            Ok(())
        }
        (11, _, _) => match code {
            Some(c) => write!(out, "{c}"),
            None => write!(out, "time exceeded, code {}", m.code),
        },
        (12, _, _) => match (m.code, m.pointer, code) {
            (0, Some(p), _) => write!(out, "parameter problem - octet {p}"),
            (_, _, Some(c)) => write!(out, "parameter problem - {c}"),
            _ => write!(out, "parameter problem, code {}", m.code),
        },
        (_, Some(name), None) => write!(out, "{name}"),
        (t, None, _) => write!(out, "type {t}, code {}", m.code),
    }
}

/// tcpdump's wording: `198.18.0.2 udp port 9 unreachable`, `host 198.18.0.2
/// unreachable`, `198.18.0.2 unreachable - need to frag (mtu 1400)`; without
/// the quoted header just the code's name (`port unreachable`).
fn write_unreachable(out: &mut String, m: &Icmp) -> fmt::Result {
    let code = m.code_name();
    let Some(q) = m.quoted else {
        match (code, m.mtu) {
            (Some(c), Some(mtu)) => return write!(out, "{c} (mtu {mtu})"),
            (Some(c), None) => return write!(out, "{c}"),
            (None, _) => return write!(out, "unreachable, code {}", m.code),
        }
    };
    let dst = q.dst;
    match (m.code, q.ports) {
        (3, Some((_, dport))) => {
            let proto = ip_proto_name(q.proto).unwrap_or("?").to_ascii_lowercase();
            write!(out, "{dst} {proto} port {dport} unreachable")
        }
        (0, _) => write!(out, "net {dst} unreachable"),
        (1, _) => write!(out, "host {dst} unreachable"),
        (2, _) => write!(out, "{dst} protocol {} unreachable", q.proto),
        (4, _) => match m.mtu {
            Some(mtu) => write!(out, "{dst} unreachable - need to frag (mtu {mtu})"),
            None => write!(out, "{dst} unreachable - need to frag"),
        },
        _ => match code {
            Some(c) => write!(out, "{dst} unreachable - {c}"),
            None => write!(out, "{dst} unreachable, code {}", m.code),
        },
    }
}

fn write_icmpv6(out: &mut String, m: &Icmpv6) -> fmt::Result {
    let Some(name) = m.type_name() else {
        return write!(out, "type {}, code {}", m.icmp_type, m.code);
    };
    // "time exceeded in-transit" says it all, as tcpdump has it.
    match (m.icmp_type, m.code_name()) {
        (3, Some(code)) => out.push_str(code),
        _ => out.push_str(name),
    }
    if let Some(e) = m.echo {
        return write!(out, ", id {}, seq {}", e.id, e.seq);
    }
    match m.icmp_type {
        1 => {
            if let Some(c) = m.code_name() {
                write!(out, ", {c}")?;
            }
            if let Some(q) = m.quoted {
                write!(out, ", {}", q.dst)?;
                if let Some((_, dport)) = q.ports {
                    let proto = ip_proto_name(q.proto).unwrap_or("?").to_ascii_lowercase();
                    write!(out, " {proto} port {dport}")?;
                }
            }
        }
        2 => {
            if let Some(mtu) = m.mtu {
                write!(out, ", mtu {mtu}")?;
            }
        }
        4 => {
            if let Some(c) = m.code_name() {
                write!(out, ", {c}")?;
            }
            if let Some(p) = m.pointer {
                write!(out, ", octet {p}")?;
            }
        }
        135 => {
            if let Some(t) = m.target {
                write!(out, ", who has {t}")?;
            }
        }
        136 => {
            if let Some(t) = m.target {
                write!(out, ", tgt is {t}")?;
            }
        }
        137 => {
            if let (Some(t), Some(d)) = (m.target, m.redirect_dst) {
                write!(out, ", {d} to {t}")?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn write_arp(out: &mut String, arp: &Arp) -> fmt::Result {
    let op = arp.op_name();
    if arp.is_ethernet_ipv4() {
        out.push_str("ARP, ");
        match (arp.op, arp.addrs) {
            (Arp::REQUEST, Some(a)) => {
                write!(out, "Request who-has {} tell {}", a.target_ip, a.sender_ip)?;
            }
            (Arp::REPLY, Some(a)) => write!(out, "Reply {} is-at {}", a.sender_ip, a.sender_mac)?,
            _ => write_arp_op(out, arp.op, op)?,
        }
    } else {
        write!(out, "ARP htype {}, ptype 0x{:04x}, ", arp.htype, arp.ptype)?;
        write_arp_op(out, arp.op, op)?;
    }
    write!(out, ", length {}", arp.message_len())
}

fn write_arp_op(out: &mut String, op: u16, name: Option<&str>) -> fmt::Result {
    match name {
        Some(name) => write!(out, "{name}"),
        None => write!(out, "op {op}"),
    }
}
