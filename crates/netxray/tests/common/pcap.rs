//! Hand-built Ethernet frames and a classic pcap writer, for feeding tcpdump (and the
//! filter evaluator under test) the very same bytes.
//!
//! Each layer is a small function or struct that returns its bytes with the payload
//! appended; a frame is built inside out:
//!
//! ```ignore
//! let seg = Tcp { sport: 1024, dport: 80, flags: tcp_flags::SYN, ..Tcp::default() }.build(&[]);
//! let pkt = Ipv4 { proto: proto::TCP, ..Ipv4::new(A4, B4) }.build(&seg);
//! let frame = ether(MAC_B, MAC_A, &[], ethertype::IPV4, &pkt);
//! ```
//!
//! Checksums are left zero: tcpdump only verifies them with `-v`, and filters never look.

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// EtherType values used by the builders.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const RARP: u16 = 0x8035;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

/// IP protocol / IPv6 next-header numbers used by the builders.
pub mod proto {
    pub const HOPOPTS: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IGMP: u8 = 2;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
    pub const NONE: u8 = 59;
    pub const DSTOPTS: u8 = 60;
    pub const SCTP: u8 = 132;
}

/// TCP flag bits (the 13th byte of the TCP header).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

pub type Mac = [u8; 6];
pub const MAC_BROADCAST: Mac = [0xff; 6];
/// IPv4 multicast MAC for 224.0.0.1.
pub const MAC_MCAST4: Mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01];
/// IPv6 multicast MAC for ff02::1.
pub const MAC_MCAST6: Mac = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];

/// One 802.1Q (TPID 0x8100) or 802.1ad (TPID 0x88a8) tag.
#[derive(Clone, Copy, Debug)]
pub struct VlanTag {
    pub tpid: u16,
    pub pcp: u8,
    pub dei: bool,
    pub vid: u16,
}

impl VlanTag {
    pub fn dot1q(vid: u16) -> VlanTag {
        VlanTag {
            tpid: ethertype::VLAN,
            pcp: 0,
            dei: false,
            vid,
        }
    }
    pub fn dot1ad(vid: u16) -> VlanTag {
        VlanTag {
            tpid: ethertype::QINQ,
            pcp: 0,
            dei: false,
            vid,
        }
    }
    fn tci(&self) -> u16 {
        (u16::from(self.pcp & 7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }
}

/// An Ethernet II frame: `dst src [tags...] ethertype payload`. Tags are written outermost
/// first. No FCS, no padding to 60 bytes (a capture does not have to be padded).
pub fn ether(dst: Mac, src: Mac, tags: &[VlanTag], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * tags.len() + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for t in tags {
        f.extend_from_slice(&t.tpid.to_be_bytes());
        f.extend_from_slice(&t.tci().to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IEEE 802.3 frame with a length field (<= 1500) and an LLC header
/// `dsap ssap control(0x03)` before `payload`.
pub fn llc_frame(dst: Mac, src: Mac, dsap: u8, ssap: u8, payload: &[u8]) -> Vec<u8> {
    let mut llc = vec![dsap, ssap, 0x03];
    llc.extend_from_slice(payload);
    let len = u16::try_from(llc.len()).expect("802.3 payload fits a length field");
    assert!(len <= 1500, "an 802.3 length field is at most 1500");
    let mut f = Vec::with_capacity(14 + llc.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&llc);
    f
}

/// ARP/RARP operation codes.
pub mod arp_op {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
    pub const RREQUEST: u16 = 3;
    pub const RREPLY: u16 = 4;
}

/// An Ethernet/IPv4 ARP (or RARP) body.
pub fn arp(op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut b = Vec::with_capacity(28);
    b.extend_from_slice(&1u16.to_be_bytes()); // htype Ethernet
    b.extend_from_slice(&ethertype::IPV4.to_be_bytes());
    b.extend_from_slice(&[6, 4]);
    b.extend_from_slice(&op.to_be_bytes());
    b.extend_from_slice(&sha);
    b.extend_from_slice(&spa.octets());
    b.extend_from_slice(&tha);
    b.extend_from_slice(&tpa.octets());
    b
}

/// An IPv4 header. `total_len` and `ihl` are computed by [`Ipv4::build`] unless overridden.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub tos: u8,
    pub id: u16,
    pub ttl: u8,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units (13 bits).
    pub frag_offset: u16,
    /// Raw option bytes, padded with zeros (EOL) to a multiple of 4.
    pub options: Vec<u8>,
    /// Overrides the total length field (else header + payload).
    pub total_len: Option<u16>,
}

impl Ipv4 {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr) -> Ipv4 {
        Ipv4 {
            src,
            dst,
            proto: proto::TCP,
            tos: 0,
            id: 0x1234,
            ttl: 64,
            dont_fragment: false,
            more_fragments: false,
            frag_offset: 0,
            options: Vec::new(),
            total_len: None,
        }
    }

    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let mut opts = self.options.clone();
        while !opts.len().is_multiple_of(4) {
            opts.push(0);
        }
        let hlen = 20 + opts.len();
        assert!(hlen <= 60, "IPv4 header longer than 60 bytes");
        let total = self
            .total_len
            .unwrap_or_else(|| u16::try_from(hlen + payload.len()).expect("IPv4 length fits"));
        let flags_frag = (u16::from(self.dont_fragment) << 14)
            | (u16::from(self.more_fragments) << 13)
            | (self.frag_offset & 0x1fff);
        let mut b = Vec::with_capacity(hlen + payload.len());
        b.push(0x40 | (hlen / 4) as u8);
        b.push(self.tos);
        b.extend_from_slice(&total.to_be_bytes());
        b.extend_from_slice(&self.id.to_be_bytes());
        b.extend_from_slice(&flags_frag.to_be_bytes());
        b.push(self.ttl);
        b.push(self.proto);
        b.extend_from_slice(&[0, 0]); // checksum
        b.extend_from_slice(&self.src.octets());
        b.extend_from_slice(&self.dst.octets());
        b.extend_from_slice(&opts);
        b.extend_from_slice(payload);
        b
    }
}

/// An IPv6 extension header, placed between the fixed header and the upper layer.
#[derive(Clone, Copy, Debug)]
pub enum Ipv6Ext {
    /// Hop-by-hop options (0): 8 bytes, PadN.
    HopByHop,
    /// Routing (43): 8 bytes, type 0 with no addresses left, segments left 0.
    Routing,
    /// Fragment (44): offset in 8-byte units, M flag.
    Fragment { offset: u16, more: bool },
    /// Destination options (60): 8 bytes, PadN.
    DestOpts,
}

impl Ipv6Ext {
    pub fn number(&self) -> u8 {
        match self {
            Ipv6Ext::HopByHop => proto::HOPOPTS,
            Ipv6Ext::Routing => proto::ROUTING,
            Ipv6Ext::Fragment { .. } => proto::FRAGMENT,
            Ipv6Ext::DestOpts => proto::DSTOPTS,
        }
    }

    fn bytes(&self, next: u8) -> [u8; 8] {
        match *self {
            // PadN option of 4 bytes of padding: type 1, len 4.
            Ipv6Ext::HopByHop | Ipv6Ext::DestOpts => [next, 0, 1, 4, 0, 0, 0, 0],
            Ipv6Ext::Routing => [next, 0, 0, 0, 0, 0, 0, 0],
            Ipv6Ext::Fragment { offset, more } => {
                let off = ((offset & 0x1fff) << 3) | u16::from(more);
                let o = off.to_be_bytes();
                [next, 0, o[0], o[1], 0, 0, 0x42, 0x42]
            }
        }
    }
}

/// An IPv6 header with its extension headers; `next` is the upper-layer protocol after
/// the last extension header.
#[derive(Clone, Debug)]
pub struct Ipv6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next: u8,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub ext: Vec<Ipv6Ext>,
}

impl Ipv6 {
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, next: u8) -> Ipv6 {
        Ipv6 {
            src,
            dst,
            next,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
            ext: Vec::new(),
        }
    }

    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let mut ext = Vec::with_capacity(8 * self.ext.len());
        for (i, e) in self.ext.iter().enumerate() {
            let next = self.ext.get(i + 1).map_or(self.next, Ipv6Ext::number);
            ext.extend_from_slice(&e.bytes(next));
        }
        let first = self.ext.first().map_or(self.next, Ipv6Ext::number);
        let plen = u16::try_from(ext.len() + payload.len()).expect("IPv6 payload fits");
        let vtf =
            (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0xfffff);
        let mut b = Vec::with_capacity(40 + ext.len() + payload.len());
        b.extend_from_slice(&vtf.to_be_bytes());
        b.extend_from_slice(&plen.to_be_bytes());
        b.push(first);
        b.push(self.hop_limit);
        b.extend_from_slice(&self.src.octets());
        b.extend_from_slice(&self.dst.octets());
        b.extend_from_slice(&ext);
        b.extend_from_slice(payload);
        b
    }
}

/// A TCP header. The data offset is computed from `options`, which are padded with
/// zeros (EOL) to a multiple of 4.
#[derive(Clone, Debug)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub urgent: u16,
    pub options: Vec<u8>,
}

impl Default for Tcp {
    fn default() -> Tcp {
        Tcp {
            sport: 40000,
            dport: 80,
            seq: 1000,
            ack: 0,
            flags: tcp_flags::SYN,
            window: 64240,
            urgent: 0,
            options: Vec::new(),
        }
    }
}

impl Tcp {
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let mut opts = self.options.clone();
        while !opts.len().is_multiple_of(4) {
            opts.push(0);
        }
        let hlen = 20 + opts.len();
        assert!(hlen <= 60, "TCP header longer than 60 bytes");
        let mut b = Vec::with_capacity(hlen + payload.len());
        b.extend_from_slice(&self.sport.to_be_bytes());
        b.extend_from_slice(&self.dport.to_be_bytes());
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&self.ack.to_be_bytes());
        b.push(((hlen / 4) as u8) << 4);
        b.push(self.flags);
        b.extend_from_slice(&self.window.to_be_bytes());
        b.extend_from_slice(&[0, 0]); // checksum
        b.extend_from_slice(&self.urgent.to_be_bytes());
        b.extend_from_slice(&opts);
        b.extend_from_slice(payload);
        b
    }
}

/// A UDP datagram.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).expect("UDP length fits");
    let mut b = Vec::with_capacity(8 + payload.len());
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(payload);
    b
}

/// ICMP types used by the builders.
pub mod icmp_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const UNREACH: u8 = 3;
    pub const ECHO: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
}

/// An ICMP message: `type code checksum(0) rest-of-header(4) payload`.
pub fn icmp(ty: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = vec![ty, code, 0, 0];
    b.extend_from_slice(&rest);
    b.extend_from_slice(payload);
    b
}

/// An ICMP echo request/reply with identifier and sequence number.
pub fn icmp_echo(reply: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let i = id.to_be_bytes();
    let s = seq.to_be_bytes();
    let ty = if reply {
        icmp_type::ECHO_REPLY
    } else {
        icmp_type::ECHO
    };
    icmp(ty, 0, [i[0], i[1], s[0], s[1]], payload)
}

/// ICMPv6 types used by the builders.
pub mod icmp6_type {
    pub const UNREACH: u8 = 1;
    pub const ECHO: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// An ICMPv6 message: `type code checksum(0) body`.
pub fn icmp6(ty: u8, code: u8, body: &[u8]) -> Vec<u8> {
    let mut b = vec![ty, code, 0, 0];
    b.extend_from_slice(body);
    b
}

/// ICMPv6 echo request/reply.
pub fn icmp6_echo(reply: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + payload.len());
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(&seq.to_be_bytes());
    body.extend_from_slice(payload);
    let ty = if reply {
        icmp6_type::ECHO_REPLY
    } else {
        icmp6_type::ECHO
    };
    icmp6(ty, 0, &body)
}

/// Neighbour solicitation for `target`, with a source link-layer address option.
pub fn icmp6_neighbor_solicit(target: Ipv6Addr, sll: Mac) -> Vec<u8> {
    let mut body = vec![0, 0, 0, 0];
    body.extend_from_slice(&target.octets());
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&sll);
    icmp6(icmp6_type::NEIGHBOR_SOLICIT, 0, &body)
}

/// Neighbour advertisement (solicited, override) for `target`, with a target
/// link-layer address option.
pub fn icmp6_neighbor_advert(target: Ipv6Addr, tll: Mac) -> Vec<u8> {
    let mut body = vec![0x60, 0, 0, 0];
    body.extend_from_slice(&target.octets());
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&tll);
    icmp6(icmp6_type::NEIGHBOR_ADVERT, 0, &body)
}

/// Router solicitation with no options.
pub fn icmp6_router_solicit() -> Vec<u8> {
    icmp6(icmp6_type::ROUTER_SOLICIT, 0, &[0, 0, 0, 0])
}

/// An SCTP common header (no chunks unless `chunks` is non-empty).
pub fn sctp(sport: u16, dport: u16, vtag: u32, chunks: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(12 + chunks.len());
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    b.extend_from_slice(&vtag.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 0]); // CRC32c
    b.extend_from_slice(chunks);
    b
}

/// An IGMP message (v2 layout): `type max-resp checksum group`.
pub fn igmp(ty: u8, max_resp: u8, group: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![ty, max_resp, 0, 0];
    b.extend_from_slice(&group.octets());
    b
}

/// A basic GRE header (no checksum/key/sequence) carrying `proto`.
pub fn gre(proto: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0];
    b.extend_from_slice(&proto.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// One record of a capture file.
#[derive(Clone, Copy, Debug)]
pub struct PcapRecord<'a> {
    /// The captured bytes.
    pub data: &'a [u8],
    /// The length on the wire (>= `data.len()`).
    pub wire_len: u32,
}

/// Writes a classic (microsecond) little-endian pcap file of link type 1 (Ethernet,
/// DLT_EN10MB), snaplen 262144. Record `i` gets the timestamp `i` seconds, 0 microseconds,
/// so tcpdump's `-tt` output (or the timestamps in its `-w` output) name it.
pub fn write_pcap<'a>(
    path: &Path,
    records: impl IntoIterator<Item = PcapRecord<'a>>,
) -> io::Result<()> {
    let mut out = Vec::new();
    write_pcap_to(&mut out, records)?;
    std::fs::write(path, out)
}

/// [`write_pcap`] into any writer.
pub fn write_pcap_to<'a>(
    mut w: impl Write,
    records: impl IntoIterator<Item = PcapRecord<'a>>,
) -> io::Result<()> {
    const MAGIC_USEC: u32 = 0xa1b2_c3d4;
    const SNAPLEN: u32 = 262_144;
    const LINKTYPE_ETHERNET: u32 = 1;
    w.write_all(&MAGIC_USEC.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&0i32.to_le_bytes())?; // thiszone
    w.write_all(&0u32.to_le_bytes())?; // sigfigs
    w.write_all(&SNAPLEN.to_le_bytes())?;
    w.write_all(&LINKTYPE_ETHERNET.to_le_bytes())?;
    for (i, r) in records.into_iter().enumerate() {
        let incl = u32::try_from(r.data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record too long"))?;
        if incl > SNAPLEN || r.wire_len < incl {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "record {i}: captured {incl} bytes, wire length {}",
                    r.wire_len
                ),
            ));
        }
        let ts = u32::try_from(i)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many records"))?;
        w.write_all(&ts.to_le_bytes())?;
        w.write_all(&0u32.to_le_bytes())?;
        w.write_all(&incl.to_le_bytes())?;
        w.write_all(&r.wire_len.to_le_bytes())?;
        w.write_all(r.data)?;
    }
    w.flush()
}

/// The timestamps' seconds of every record of a classic pcap file (either byte order,
/// micro- or nanosecond magic): how the oracle reads back which packets tcpdump kept.
pub fn read_pcap_seconds(bytes: &[u8]) -> Result<Vec<u32>, String> {
    let magic = bytes.get(0..4).ok_or("pcap shorter than its magic")?;
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err(format!("not a classic pcap file (magic {magic:02x?})")),
    };
    let u32_at = |off: usize| -> Result<u32, String> {
        let b: [u8; 4] = bytes
            .get(off..off + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| format!("pcap truncated at byte {off}"))?;
        Ok(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let mut secs = Vec::new();
    let mut off = 24;
    while off < bytes.len() {
        secs.push(u32_at(off)?);
        let incl = u32_at(off + 8)? as usize;
        off += 16 + incl;
        if off > bytes.len() {
            return Err(format!("pcap record {} truncated", secs.len() - 1));
        }
    }
    Ok(secs)
}
