//! The network layer: IPv4 and IPv6 with its extension headers.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use super::cursor::Cursor;
use super::transport::Family;
use super::{ipproto, transport, Findings, Fragment, Header, Packet, L3, MAX_IPV6_EXT_HEADERS};

/// An IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ipv4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ttl: u8,
    /// DSCP and ECN.
    pub tos: u8,
    pub tot_len: u16,
    pub id: u16,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// In bytes.
    pub frag_offset: u16,
    /// Header length in 4-byte words.
    pub ihl: u8,
}

impl Ipv4 {
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl) * 4
    }

    /// Total length minus the header; `None` when the total length is 0
    /// (GSO, BIG TCP) or smaller than the header.
    pub fn payload_len(&self) -> Option<usize> {
        match self.tot_len {
            0 => None,
            n => usize::from(n).checked_sub(self.header_len()),
        }
    }

    pub fn fragment(&self) -> Option<Fragment> {
        (self.more_fragments || self.frag_offset != 0).then_some(Fragment {
            id: u32::from(self.id),
            offset: self.frag_offset,
            more: self.more_fragments,
        })
    }
}

/// An IPv6 header and the extension headers walked after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ipv6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub payload_len: u16,
    /// The next header the fixed header names.
    pub next_header: u8,
    pub hop_limit: u8,
    /// The extension headers walked, in order (0 hop-by-hop, 43 routing,
    /// 44 fragment, 51 AH, 60 destination options).
    pub ext_headers: Vec<u8>,
    /// Their total length in bytes.
    pub ext_len: usize,
    /// The upper-layer protocol after them; when the walk stopped early
    /// (truncation, malformed chain, later fragment) the last next-header
    /// value reached.
    pub protocol: u8,
    /// From the fragment header.
    pub fragment: Option<Fragment>,
}

impl Ipv6 {
    /// Payload length minus the extension headers; `None` when the payload
    /// length is 0 (jumbogram, BIG TCP).
    pub fn upper_len(&self) -> Option<usize> {
        match self.payload_len {
            0 => None,
            n => usize::from(n).checked_sub(self.ext_len),
        }
    }
}

const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;

pub(super) fn ipv4(mut cur: Cursor<'_>, pkt: &mut Packet, found: &mut Findings) {
    let head = cur;
    if cur.remaining() < IPV4_HLEN {
        found.short(Header::Ipv4, &head, IPV4_HLEN);
        return;
    }
    let Some((version, ip)) = ipv4_fixed(&mut cur) else {
        return;
    };
    if version != 4 {
        found.malformed(format!("IPv4 header with version {version}"));
        return;
    }
    let hlen = ip.header_len();
    let (tot_len, payload, proto, later) =
        (ip.tot_len, ip.payload_len(), ip.proto, ip.frag_offset != 0);
    pkt.l3 = Some(L3::Ipv4(ip));
    if ip.ihl < 5 {
        found.malformed(format!("IPv4 IHL {} < 5", ip.ihl));
        return;
    }
    if tot_len != 0 && usize::from(tot_len) < hlen {
        found.malformed(format!(
            "IPv4 total length {tot_len} < header length {hlen}"
        ));
        return;
    }
    if cur.skip(hlen - IPV4_HLEN).is_none() {
        found.short(Header::Ipv4, &head, hlen);
        return;
    }
    if let Some(len) = payload {
        cur.limit(len);
    }
    if later {
        // The transport header is in the first fragment.
        return;
    }
    pkt.l4 = transport::decode(proto, Family::V4, cur, payload, found);
}

/// The 20-byte fixed header, with the version found in it.
fn ipv4_fixed(cur: &mut Cursor<'_>) -> Option<(u8, Ipv4)> {
    let version_ihl = cur.u8()?;
    let tos = cur.u8()?;
    let tot_len = cur.u16()?;
    let id = cur.u16()?;
    let frag = cur.u16()?;
    let ttl = cur.u8()?;
    let proto = cur.u8()?;
    let _checksum = cur.u16()?;
    let src = Ipv4Addr::from(cur.array::<4>()?);
    let dst = Ipv4Addr::from(cur.array::<4>()?);
    Some((
        version_ihl >> 4,
        Ipv4 {
            src,
            dst,
            proto,
            ttl,
            tos,
            tot_len,
            id,
            dont_fragment: frag & 0x4000 != 0,
            more_fragments: frag & 0x2000 != 0,
            frag_offset: (frag & 0x1fff) * 8,
            ihl: version_ihl & 0x0f,
        },
    ))
}

pub(super) fn ipv6(mut cur: Cursor<'_>, pkt: &mut Packet, found: &mut Findings) {
    if cur.remaining() < IPV6_HLEN {
        found.short(Header::Ipv6, &cur, IPV6_HLEN);
        return;
    }
    let Some((version, mut ip)) = ipv6_fixed(&mut cur) else {
        return;
    };
    if version != 6 {
        found.malformed(format!("IPv6 header with version {version}"));
        return;
    }
    if ip.payload_len != 0 {
        cur.limit(usize::from(ip.payload_len));
    }
    let upper = walk_ext_headers(&mut cur, &mut ip, found);
    let (proto, len) = (ip.protocol, ip.upper_len());
    pkt.l3 = Some(L3::Ipv6(ip));
    if upper {
        pkt.l4 = transport::decode(proto, Family::V6, cur, len, found);
    }
}

fn ipv6_fixed(cur: &mut Cursor<'_>) -> Option<(u8, Ipv6)> {
    let first = cur.u32()?;
    let payload_len = cur.u16()?;
    let next_header = cur.u8()?;
    let hop_limit = cur.u8()?;
    let src = Ipv6Addr::from(cur.array::<16>()?);
    let dst = Ipv6Addr::from(cur.array::<16>()?);
    Some((
        (first >> 28) as u8,
        Ipv6 {
            src,
            dst,
            traffic_class: (first >> 20) as u8,
            flow_label: first & 0x000f_ffff,
            payload_len,
            next_header,
            hop_limit,
            ext_headers: Vec::new(),
            ext_len: 0,
            protocol: next_header,
            fragment: None,
        },
    ))
}

fn is_ext_header(next: u8) -> bool {
    matches!(
        next,
        ipproto::HOPOPTS | ipproto::ROUTING | ipproto::FRAGMENT | ipproto::AH | ipproto::DSTOPTS
    )
}

/// Walks the extension headers, at most [`MAX_IPV6_EXT_HEADERS`], leaving the
/// cursor at the upper-layer header. Returns whether that header is here to
/// decode: not when the bytes ran out, the chain is malformed, or this is a
/// later fragment. ESP and "no next header" end the walk like an upper layer.
fn walk_ext_headers(cur: &mut Cursor<'_>, ip: &mut Ipv6, found: &mut Findings) -> bool {
    let mut next = ip.next_header;
    while is_ext_header(next) {
        ip.protocol = next;
        if ip.ext_headers.len() >= MAX_IPV6_EXT_HEADERS {
            found.malformed(format!(
                "IPv6 extension header chain longer than {MAX_IPV6_EXT_HEADERS}"
            ));
            return false;
        }
        if next == ipproto::HOPOPTS && !ip.ext_headers.is_empty() {
            found.malformed("IPv6 hop-by-hop header not first");
            return false;
        }
        let head = *cur;
        // Every extension header is at least 8 bytes.
        if cur.remaining() < 8 {
            found.short(Header::Ipv6Ext, &head, 8);
            return false;
        }
        let (Some(after), Some(len)) = (cur.u8(), cur.u8()) else {
            return false;
        };
        let size = match next {
            ipproto::FRAGMENT => 8,
            ipproto::AH => (usize::from(len) + 2) * 4,
            _ => (usize::from(len) + 1) * 8,
        };
        if head.remaining() < size {
            found.short(Header::Ipv6Ext, &head, size);
            return false;
        }
        if next == ipproto::FRAGMENT {
            let (Some(off), Some(id)) = (cur.u16(), cur.u32()) else {
                return false;
            };
            ip.fragment = Some(Fragment {
                id,
                offset: off & 0xfff8,
                more: off & 1 != 0,
            });
        }
        *cur = head;
        if cur.skip(size).is_none() {
            return false;
        }
        ip.ext_headers.push(next);
        ip.ext_len += size;
        ip.protocol = after;
        next = after;
        if ip.fragment.is_some_and(|f| f.offset != 0) {
            // The transport header is in the first fragment.
            return false;
        }
    }
    ip.protocol = next;
    true
}
