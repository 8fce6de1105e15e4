//! Byte fixtures for the decoder: small builders that lay out real headers,
//! and one test file per area.

mod broken;
mod ipv4;
mod ipv6;
mod link;

use std::net::Ipv6Addr;

use super::{decode, CaptureInfo, Packet, VlanTag};

pub(super) const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub(super) const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// 198.18.0.1 and 198.18.0.2 (the benchmarking range).
pub(super) const A: [u8; 4] = [198, 18, 0, 1];
pub(super) const B: [u8; 4] = [198, 18, 0, 2];

pub(super) fn v6(addr: &str) -> [u8; 16] {
    addr.parse::<Ipv6Addr>().expect("a test address").octets()
}

pub(super) fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Ethernet header, VLAN tags `(tpid, tci)` outermost first, payload.
pub(super) fn eth(ethertype: u16, tags: &[(u16, u16)], payload: &[u8]) -> Vec<u8> {
    let mut out = cat(&[&DST_MAC, &SRC_MAC]);
    for &(tpid, tci) in tags {
        out.extend(tpid.to_be_bytes());
        out.extend(tci.to_be_bytes());
    }
    out.extend(ethertype.to_be_bytes());
    out.extend(payload);
    out
}

/// Bytes from the Ethernet header, `tags` VLAN tags in them.
pub(super) fn l2(tags: usize, protocol: u16) -> CaptureInfo {
    CaptureInfo {
        has_l2: true,
        l3_off: 14 + 4 * tags,
        protocol,
        hw_vlan: None,
    }
}

/// Bytes from the network header.
pub(super) fn l3(protocol: u16) -> CaptureInfo {
    CaptureInfo {
        has_l2: false,
        l3_off: 0,
        protocol,
        hw_vlan: None,
    }
}

pub(super) fn hw_tag(vid: u16) -> VlanTag {
    VlanTag::from_tci(0x8100, vid)
}

/// An IPv4 header; the lengths are computed unless overridden.
#[derive(Clone)]
pub(super) struct V4 {
    pub proto: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub id: u16,
    /// Flags and fragment offset (in 8-byte units), as on the wire.
    pub frag: u16,
    pub options: Vec<u8>,
    pub ihl: Option<u8>,
    pub tot_len: Option<u16>,
    pub version: u8,
}

impl V4 {
    pub fn new(proto: u8) -> Self {
        Self {
            proto,
            src: A,
            dst: B,
            id: 0x1234,
            frag: 0x4000, // DF
            options: Vec::new(),
            ihl: None,
            tot_len: None,
            version: 4,
        }
    }

    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let hlen = 20 + self.options.len();
        let ihl = self.ihl.unwrap_or((hlen / 4) as u8);
        let tot = self.tot_len.unwrap_or((hlen + payload.len()) as u16);
        let mut out = vec![(self.version << 4) | ihl, 0];
        out.extend(tot.to_be_bytes());
        out.extend(self.id.to_be_bytes());
        out.extend(self.frag.to_be_bytes());
        out.extend([64, self.proto, 0, 0]);
        out.extend(self.src);
        out.extend(self.dst);
        out.extend(&self.options);
        out.extend(payload);
        out
    }
}

pub(super) fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    V4::new(proto).build(payload)
}

/// An IPv6 header from `src` to `dst`; `payload` holds any extension headers.
pub(super) fn ipv6_from(next: u8, src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x60, 0x01, 0x23, 0x45]; // flow label 0x12345
    out.extend((payload.len() as u16).to_be_bytes());
    out.extend([next, 64]);
    out.extend(v6(src));
    out.extend(v6(dst));
    out.extend(payload);
    out
}

pub(super) fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    ipv6_from(next, "2001:db8::1", "2001:db8::2", payload)
}

/// An options-style extension header (hop-by-hop, routing, destination
/// options) of `(units + 1) * 8` bytes, padded with Pad1.
pub(super) fn ext(next: u8, units: u8) -> Vec<u8> {
    let mut out = vec![next, units];
    out.resize((usize::from(units) + 1) * 8, 0);
    out
}

/// An IPv6 fragment header; `offset` in bytes (a multiple of 8).
pub(super) fn frag6(next: u8, offset: u16, more: bool, id: u32) -> Vec<u8> {
    let mut out = vec![next, 0];
    out.extend((offset | u16::from(more)).to_be_bytes());
    out.extend(id.to_be_bytes());
    out
}

/// A TCP header without options (data offset 5), then `payload`.
pub(super) fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, win: u16) -> Vec<u8> {
    tcp_with(sport, dport, seq, ack, flags, win, &[], &[])
}

#[allow(clippy::too_many_arguments)]
pub(super) fn tcp_with(
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let doff = ((20 + options.len()) / 4) as u8;
    let mut out = Vec::new();
    out.extend(sport.to_be_bytes());
    out.extend(dport.to_be_bytes());
    out.extend(seq.to_be_bytes());
    out.extend(ack.to_be_bytes());
    out.extend([doff << 4, flags]);
    out.extend(win.to_be_bytes());
    out.extend([0, 0, 0, 0]);
    out.extend(options);
    out.extend(payload);
    out
}

pub(super) fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(sport.to_be_bytes());
    out.extend(dport.to_be_bytes());
    out.extend(((8 + payload.len()) as u16).to_be_bytes());
    out.extend([0, 0]);
    out.extend(payload);
    out
}

/// An ICMP or ICMPv6 message: type, code, checksum, 4 type-specific bytes.
pub(super) fn icmp(icmp_type: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = vec![icmp_type, code, 0, 0];
    out.extend(rest);
    out.extend(body);
    out
}

/// An echo message with `data` bytes of data.
pub(super) fn echo(icmp_type: u8, id: u16, seq: u16, data: usize) -> Vec<u8> {
    let [i0, i1] = id.to_be_bytes();
    let [s0, s1] = seq.to_be_bytes();
    icmp(icmp_type, 0, [i0, i1, s0, s1], &vec![0xa5; data])
}

pub(super) fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut out = vec![0, 1, 0x08, 0x00, 6, 4];
    out.extend(op.to_be_bytes());
    out.extend(sha);
    out.extend(spa);
    out.extend(tha);
    out.extend(tpa);
    out
}

/// Decodes and checks the invariants every packet keeps.
pub(super) fn dec(data: &[u8], info: &CaptureInfo) -> Packet {
    let pkt = decode(data, info);
    assert_eq!(pkt.captured_len, data.len());
    let _ = pkt.summary();
    pkt
}

/// Decodes and returns the summary.
pub(super) fn sum(data: &[u8], info: &CaptureInfo) -> String {
    dec(data, info).summary()
}
