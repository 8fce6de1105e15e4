//! The transport layer: TCP, UDP, ICMP, ICMPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use super::cursor::Cursor;
use super::{ipproto, Findings, Header, MacAddr, L4};

/// Which IP version carries the transport header (ICMP differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    V4,
    V6,
}

/// A TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// Header length in 4-byte words.
    pub data_offset: u8,
    /// FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40,
    /// CWR 0x80 (see the associated constants).
    pub flags: u8,
    pub window: u16,
    pub urgent: u16,
    /// Segment data length, when the IP header gives a length.
    pub payload_len: Option<usize>,
}

impl Tcp {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset) * 4
    }

    /// The flags as tcpdump writes them: `S`, `S.`, `F.`, `P.`, `R`, ...,
    /// `none` when no flag is set.
    pub fn flag_letters(&self) -> String {
        const LETTERS: [(u8, char); 8] = [
            (Tcp::FIN, 'F'),
            (Tcp::SYN, 'S'),
            (Tcp::RST, 'R'),
            (Tcp::PSH, 'P'),
            (Tcp::ACK, '.'),
            (Tcp::URG, 'U'),
            (Tcp::ECE, 'E'),
            (Tcp::CWR, 'W'),
        ];
        let s: String = LETTERS
            .iter()
            .filter(|(bit, _)| self.has(*bit))
            .map(|(_, c)| c)
            .collect();
        if s.is_empty() {
            "none".to_owned()
        } else {
            s
        }
    }
}

/// A UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Udp {
    pub sport: u16,
    pub dport: u16,
    /// Header and data, as the header says.
    pub length: u16,
}

impl Udp {
    /// Data length: the header's length minus its 8 bytes.
    pub fn payload_len(&self) -> Option<usize> {
        usize::from(self.length).checked_sub(8)
    }
}

/// The identifier and sequence number of an echo (or timestamp) message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Echo {
    pub id: u16,
    pub seq: u16,
}

/// The start of the packet an ICMP error quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quoted {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// For TCP, UDP, UDP-Lite and SCTP, when quoted.
    pub ports: Option<(u16, u16)>,
}

/// An ICMP (v4) message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Icmp {
    pub icmp_type: u8,
    pub code: u8,
    /// Echo (0, 8) and timestamp (13, 14) messages.
    pub echo: Option<Echo>,
    /// Errors (3, 4, 5, 11, 12): the offending packet's header.
    pub quoted: Option<Quoted>,
    /// Fragmentation needed (3/4): the next-hop MTU, when given.
    pub mtu: Option<u16>,
    /// Redirect (5): the gateway to use.
    pub gateway: Option<Ipv4Addr>,
    /// Parameter problem (12): the offending octet.
    pub pointer: Option<u8>,
}

/// An ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Icmpv6 {
    pub icmp_type: u8,
    pub code: u8,
    /// Echo request and reply (128, 129).
    pub echo: Option<Echo>,
    /// Errors (1-4): the offending packet's header.
    pub quoted: Option<Quoted>,
    /// Packet too big (2).
    pub mtu: Option<u32>,
    /// Parameter problem (4): the offending octet.
    pub pointer: Option<u32>,
    /// Neighbor solicitation and advertisement, redirect (135-137).
    pub target: Option<Ipv6Addr>,
    /// Redirect (137): the destination that is better reached via `target`.
    pub redirect_dst: Option<Ipv6Addr>,
    /// Neighbor discovery: the source or target link-layer address option.
    pub lladdr: Option<MacAddr>,
}

/// Decodes the transport header at `cur`; `len` is the length the IP header
/// declares for it. Protocols not read here become [`L4::Other`].
pub(super) fn decode(
    proto: u8,
    family: Family,
    cur: Cursor<'_>,
    len: Option<usize>,
    found: &mut Findings,
) -> Option<L4> {
    match (proto, family) {
        (ipproto::TCP, _) => tcp(cur, len, found).map(L4::Tcp),
        (ipproto::UDP, _) => udp(cur, found).map(L4::Udp),
        (ipproto::ICMP, Family::V4) => icmp(cur, found).map(L4::Icmp),
        (ipproto::ICMPV6, Family::V6) => icmpv6(cur, found).map(L4::Icmpv6),
        (p, _) => Some(L4::Other(p)),
    }
}

const TCP_HLEN: usize = 20;
const UDP_HLEN: usize = 8;
const ICMP_HLEN: usize = 8;

fn tcp(mut cur: Cursor<'_>, len: Option<usize>, found: &mut Findings) -> Option<Tcp> {
    let head = cur;
    if cur.remaining() < TCP_HLEN {
        found.short(Header::Tcp, &head, TCP_HLEN);
        return None;
    }
    let sport = cur.u16()?;
    let dport = cur.u16()?;
    let seq = cur.u32()?;
    let ack = cur.u32()?;
    let data_offset = cur.u8()? >> 4;
    let flags = cur.u8()?;
    let window = cur.u16()?;
    let _checksum = cur.u16()?;
    let urgent = cur.u16()?;
    let mut tcp = Tcp {
        sport,
        dport,
        seq,
        ack,
        data_offset,
        flags,
        window,
        urgent,
        payload_len: None,
    };
    let hlen = tcp.header_len();
    if data_offset < 5 {
        found.malformed(format!("TCP data offset {data_offset} < 5"));
    } else if let Some(l) = len.filter(|&l| l < hlen) {
        found.malformed(format!("TCP header length {hlen} > IP payload {l}"));
    } else {
        tcp.payload_len = len.and_then(|l| l.checked_sub(hlen));
        if head.remaining() < hlen {
            // The options were not captured; the fixed part is decoded.
            found.short(Header::Tcp, &head, hlen);
        }
    }
    Some(tcp)
}

fn udp(mut cur: Cursor<'_>, found: &mut Findings) -> Option<Udp> {
    if cur.remaining() < UDP_HLEN {
        found.short(Header::Udp, &cur, UDP_HLEN);
        return None;
    }
    let udp = Udp {
        sport: cur.u16()?,
        dport: cur.u16()?,
        length: cur.u16()?,
    };
    if udp.length != 0 && usize::from(udp.length) < UDP_HLEN {
        found.malformed(format!("UDP length {} < 8", udp.length));
    }
    Some(udp)
}

/// The type, code and the 4 type-specific bytes every ICMP message starts with.
fn icmp_head(
    cur: &mut Cursor<'_>,
    header: Header,
    found: &mut Findings,
) -> Option<(u8, u8, [u8; 4])> {
    if cur.remaining() < ICMP_HLEN {
        found.short(header, cur, ICMP_HLEN);
        return None;
    }
    let icmp_type = cur.u8()?;
    let code = cur.u8()?;
    let _checksum = cur.u16()?;
    Some((icmp_type, code, cur.array()?))
}

fn icmp(mut cur: Cursor<'_>, found: &mut Findings) -> Option<Icmp> {
    let (icmp_type, code, rest) = icmp_head(&mut cur, Header::Icmp, found)?;
    let [r0, r1, r2, r3] = rest;
    let mut m = Icmp {
        icmp_type,
        code,
        echo: None,
        quoted: None,
        mtu: None,
        gateway: None,
        pointer: None,
    };
    match icmp_type {
        0 | 8 | 13 | 14 => {
            m.echo = Some(Echo {
                id: u16::from_be_bytes([r0, r1]),
                seq: u16::from_be_bytes([r2, r3]),
            });
        }
        3 | 4 | 5 | 11 | 12 => {
            match icmp_type {
                3 if code == 4 => m.mtu = Some(u16::from_be_bytes([r2, r3])).filter(|&v| v != 0),
                5 => m.gateway = Some(Ipv4Addr::from(rest)),
                12 => m.pointer = Some(r0),
                _ => {}
            }
            m.quoted = quoted_ipv4(&mut cur);
        }
        _ => {}
    }
    Some(m)
}

fn icmpv6(mut cur: Cursor<'_>, found: &mut Findings) -> Option<Icmpv6> {
    let (icmp_type, code, rest) = icmp_head(&mut cur, Header::Icmpv6, found)?;
    let [r0, r1, r2, r3] = rest;
    let mut m = Icmpv6 {
        icmp_type,
        code,
        echo: None,
        quoted: None,
        mtu: None,
        pointer: None,
        target: None,
        redirect_dst: None,
        lladdr: None,
    };
    match icmp_type {
        1..=4 => {
            match icmp_type {
                2 => m.mtu = Some(u32::from_be_bytes(rest)),
                4 => m.pointer = Some(u32::from_be_bytes(rest)),
                _ => {}
            }
            m.quoted = quoted_ipv6(&mut cur);
        }
        128 | 129 => {
            m.echo = Some(Echo {
                id: u16::from_be_bytes([r0, r1]),
                seq: u16::from_be_bytes([r2, r3]),
            });
        }
        // Router solicitation: the options follow the 4 reserved bytes.
        133 => m.lladdr = nd_lladdr(&mut cur),
        // Router advertisement: reachable time and retransmit timer first.
        134 => m.lladdr = cur.skip(8).and_then(|()| nd_lladdr(&mut cur)),
        135 | 136 => {
            m.target = cur.array::<16>().map(Ipv6Addr::from);
            m.lladdr = nd_lladdr(&mut cur);
        }
        137 => {
            m.target = cur.array::<16>().map(Ipv6Addr::from);
            m.redirect_dst = cur.array::<16>().map(Ipv6Addr::from);
            m.lladdr = nd_lladdr(&mut cur);
        }
        _ => {}
    }
    Some(m)
}

/// Most neighbor discovery options looked at.
const MAX_ND_OPTIONS: usize = 8;

/// The source (1) or target (2) link-layer address option, if an Ethernet one
/// is among the first few options captured.
fn nd_lladdr(cur: &mut Cursor<'_>) -> Option<MacAddr> {
    for _ in 0..MAX_ND_OPTIONS {
        let kind = cur.u8()?;
        let units = usize::from(cur.u8()?);
        if units == 0 {
            return None; // Invalid (RFC 4861 4.6), and it would loop.
        }
        if matches!(kind, 1 | 2) && units == 1 {
            return cur.array().map(MacAddr);
        }
        cur.skip(units * 8 - 2)?;
    }
    None
}

fn quoted_ports(proto: u8, cur: &mut Cursor<'_>) -> Option<(u16, u16)> {
    match proto {
        ipproto::TCP | ipproto::UDP | ipproto::UDPLITE | ipproto::SCTP => {
            Some((cur.u16()?, cur.u16()?))
        }
        _ => None,
    }
}

/// The IPv4 header (and ports) an ICMP error quotes, when captured.
fn quoted_ipv4(cur: &mut Cursor<'_>) -> Option<Quoted> {
    let h = cur.array::<20>()?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if h[0] >> 4 != 4 || ihl < 20 {
        return None;
    }
    let proto = h[9];
    let mut q = Quoted {
        src: Ipv4Addr::new(h[12], h[13], h[14], h[15]).into(),
        dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]).into(),
        proto,
        ports: None,
    };
    let later_fragment = u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0;
    if !later_fragment && cur.skip(ihl - 20).is_some() {
        q.ports = quoted_ports(proto, cur);
    }
    Some(q)
}

/// The IPv6 header (and ports, when no extension header intervenes) an
/// ICMPv6 error quotes, when captured.
fn quoted_ipv6(cur: &mut Cursor<'_>) -> Option<Quoted> {
    let first = cur.u8()?;
    if first >> 4 != 6 {
        return None;
    }
    cur.skip(5)?;
    let proto = cur.u8()?;
    cur.skip(1)?;
    let src = Ipv6Addr::from(cur.array::<16>()?);
    let dst = Ipv6Addr::from(cur.array::<16>()?);
    Some(Quoted {
        src: src.into(),
        dst: dst.into(),
        proto,
        ports: quoted_ports(proto, cur),
    })
}
