//! A corpus of Ethernet frames for differential tests of the pcap-filter language:
//! tcpdump (libpcap 1.10.3) decides which of them each expression keeps, netxray's
//! filter must keep the same ones. See [`super::tcpdump`] for the oracle.
//!
//! Addresses come only from 198.18.0.0/15 and 2001:db8::/32, plus the link-local,
//! multicast and broadcast addresses a protocol needs. Packet `i` of [`corpus`] is record
//! `i` of the pcap written from it (timestamp `i` seconds).
//!
//! Each packet carries `labels`: the protocol keywords (`ip`, `ip6`, `arp`, `rarp`,
//! `vlan`, `llc`, `tcp`, `udp`, `icmp`, `icmp6`, `sctp`, `igmp`) the corpus author
//! predicts it matches under libpcap's rules, written down independently of tcpdump.
//! Those rules are narrower than one might guess: an ethertype keyword only looks at the
//! outermost ethertype (so a VLAN-tagged frame is only `vlan`), and `tcp`/`udp`/`icmp6`/
//! `sctp` on IPv6 accept only a next header of that protocol, or a fragment header (44)
//! whose next header is that protocol; other extension headers are not walked.

mod files;
mod ipv4;
mod ipv6;
mod l2;
mod short;

pub use files::*;

use super::pcap::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// One frame of the corpus.
#[derive(Clone, Debug)]
pub struct Packet {
    /// The captured bytes, starting at the Ethernet destination address.
    pub bytes: Vec<u8>,
    /// The length on the wire (what `len`, `greater` and `less` compare); equal to
    /// `bytes.len()` throughout this corpus.
    pub wire_len: u32,
    /// A short human description for failure messages.
    pub desc: String,
    /// Protocol keywords this packet is predicted to match (see the module docs).
    pub labels: Vec<&'static str>,
}

impl Packet {
    pub fn has(&self, label: &str) -> bool {
        self.labels.contains(&label)
    }

    pub fn record(&self) -> PcapRecord<'_> {
        PcapRecord {
            data: &self.bytes,
            wire_len: self.wire_len,
        }
    }
}

pub const MAC_A: Mac = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: Mac = [0x02, 0, 0, 0, 0, 0x0b];
pub const MAC_C: Mac = [0x02, 0, 0, 0, 0, 0x0c];
/// A source MAC with the group bit set (never valid as a source; `ether multicast`
/// only looks at the destination).
pub const MAC_GROUP_SRC: Mac = [0x03, 0, 0, 0, 0, 0x0d];

pub const A4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const B4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const C4: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 1);
pub const D4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
pub const BCAST4: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 255);
/// The directed broadcast address of 198.18.0.0/15.
pub const NET_BCAST4: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 255);

pub const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const B6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
pub const C6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
pub const D6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1);
pub const LL1: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
pub const LL2: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// `N` bytes of filler payload.
fn fill(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Layer 2 of a frame: addresses and VLAN tags.
#[derive(Clone, Copy)]
struct L2<'a> {
    dst: Mac,
    src: Mac,
    tags: &'a [VlanTag],
}

const AB: L2<'static> = L2 {
    dst: MAC_B,
    src: MAC_A,
    tags: &[],
};
const BA: L2<'static> = L2 {
    dst: MAC_A,
    src: MAC_B,
    tags: &[],
};

fn tagged(tags: &[VlanTag]) -> L2<'_> {
    L2 { tags, ..AB }
}

fn v4_proto_label(p: u8) -> Option<&'static str> {
    match p {
        proto::TCP => Some("tcp"),
        proto::UDP => Some("udp"),
        proto::ICMP => Some("icmp"),
        proto::IGMP => Some("igmp"),
        proto::SCTP => Some("sctp"),
        _ => None,
    }
}

fn v6_proto_label(p: u8) -> Option<&'static str> {
    match p {
        proto::TCP => Some("tcp"),
        proto::UDP => Some("udp"),
        proto::ICMPV6 => Some("icmp6"),
        proto::SCTP => Some("sctp"),
        _ => None,
    }
}

fn tcp(sport: u16, dport: u16, flags: u8) -> Tcp {
    Tcp {
        sport,
        dport,
        flags,
        ..Tcp::default()
    }
}

fn ip4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Ipv4 {
    Ipv4 {
        proto,
        ..Ipv4::new(src, dst)
    }
}

fn ip6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, ext: &[Ipv6Ext]) -> Ipv6 {
    Ipv6 {
        ext: ext.to_vec(),
        ..Ipv6::new(src, dst, next)
    }
}

#[derive(Default)]
struct Corpus {
    packets: Vec<Packet>,
}

impl Corpus {
    fn add(&mut self, desc: &str, bytes: Vec<u8>, labels: &[&'static str]) {
        let wire_len = u32::try_from(bytes.len()).expect("frame length fits u32");
        self.packets.push(Packet {
            bytes,
            wire_len,
            desc: desc.to_string(),
            labels: labels.to_vec(),
        });
    }

    /// An IPv4 packet; labels follow from the tags and the protocol field.
    fn v4(&mut self, desc: &str, l2: L2<'_>, ip: &Ipv4, l4: &[u8]) {
        let mut labels = Vec::new();
        if l2.tags.is_empty() {
            labels.push("ip");
            labels.extend(v4_proto_label(ip.proto));
        } else {
            labels.push("vlan");
        }
        let frame = ether(l2.dst, l2.src, l2.tags, ethertype::IPV4, &ip.build(l4));
        self.add(desc, frame, &labels);
    }

    /// An IPv6 packet; labels follow from the tags, the first next header and a fragment
    /// header directly after the fixed header (the only one libpcap looks through).
    fn v6(&mut self, desc: &str, l2: L2<'_>, ip: &Ipv6, l4: &[u8]) {
        let mut labels = Vec::new();
        if l2.tags.is_empty() {
            labels.push("ip6");
            let seen = match ip.ext.as_slice() {
                [] => Some(ip.next),
                [Ipv6Ext::Fragment { .. }] => Some(ip.next),
                [Ipv6Ext::Fragment { .. }, second, ..] => Some(second.number()),
                _ => None,
            };
            labels.extend(seen.and_then(v6_proto_label));
        } else {
            labels.push("vlan");
        }
        let frame = ether(l2.dst, l2.src, l2.tags, ethertype::IPV6, &ip.build(l4));
        self.add(desc, frame, &labels);
    }

    /// `frame` cut to its first `keep` bytes (captured and wire length alike).
    fn cut(&mut self, desc: &str, mut frame: Vec<u8>, keep: usize, labels: &[&'static str]) {
        assert!(keep <= frame.len(), "{desc}: cannot cut to {keep} bytes");
        frame.truncate(keep);
        self.add(desc, frame, labels);
    }
}

/// The corpus: IPv4, IPv6 (with extension headers), ARP/RARP, VLAN-tagged and
/// double-tagged frames, 802.3/LLC and other ethertypes, fragments, cut-short headers,
/// and a few long frames for `len`/`greater`/`less`.
pub fn corpus() -> Vec<Packet> {
    let mut c = Corpus::default();
    ipv4::tcp_packets(&mut c);
    ipv4::other_packets(&mut c);
    ipv6::all(&mut c);
    l2::arp_and_l2(&mut c);
    l2::vlan(&mut c);
    short::short_and_long(&mut c);
    c.packets
}
