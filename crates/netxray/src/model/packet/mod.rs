//! Decoding the packet bytes the kernel captured into headers.
//!
//! The kernel copies a prefix of each packet (at most `NX_CAP_BYTES`) and says
//! where it starts ([`CaptureInfo`]). [`decode`] walks Ethernet, VLAN tags, the
//! network header (IPv4, IPv6 with its extension headers, ARP) and the
//! transport header (TCP, UDP, ICMP, ICMPv6) as far as the bytes go, and never
//! panics: every read goes through a bounds-checked cursor. Where the bytes
//! run out, [`Packet::truncated`] says which header and how much was missing;
//! where a header contradicts itself, [`Packet::malformed`] says why. Both keep
//! everything decoded before that point.
//!
//! [`Packet::summary`] renders a tcpdump-like one-liner.
//!
//! Layout: `link` (Ethernet, VLAN, ARP), `ip` (IPv4, IPv6), `transport`
//! (TCP, UDP, ICMP, ICMPv6), `names` (protocol and ICMP names), `summary`
//! (the one-liner).

mod cursor;
mod ip;
mod link;
mod names;
mod summary;
mod transport;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use cursor::Cursor;

pub use ip::{Ipv4, Ipv6};
pub use link::{Arp, ArpAddrs};
pub use names::ip_proto_name;
pub use transport::{Echo, Icmp, Icmpv6, Quoted, Tcp, Udp};

/// Ethertypes the decoder knows.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag, still seen in the wild.
    pub const QINQ_OLD: u16 = 0x9100;

    /// Whether `ethertype` announces a VLAN tag.
    pub fn is_vlan(ethertype: u16) -> bool {
        matches!(ethertype, VLAN | QINQ | QINQ_OLD)
    }
}

/// IP protocol numbers the decoder knows.
pub mod ipproto {
    pub const HOPOPTS: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NONE: u8 = 59;
    pub const DSTOPTS: u8 = 60;
    pub const SCTP: u8 = 132;
    pub const UDPLITE: u8 = 136;
}

/// What the kernel says about the captured bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureInfo {
    /// The bytes start at the Ethernet header; otherwise at the network header.
    pub has_l2: bool,
    /// Offset of the network header in the bytes, after any VLAN tags.
    /// Without L2 the network header starts here (normally 0). With L2 the
    /// bytes decide; this offset is used only when the Ethernet header names
    /// an ethertype the decoder does not know (MPLS, say) and the kernel's
    /// offset lies further in, inside the capture: `protocol` then decides.
    pub l3_off: usize,
    /// `skb->protocol` in host order: the ethertype the kernel believes.
    /// 0 (locally built packets) means: guess from the IP version nibble.
    pub protocol: u16,
    /// A tag the NIC or the kernel took out of the bytes (`skb->vlan_tci`).
    pub hw_vlan: Option<VlanTag>,
}

/// An 802.1Q / 802.1ad tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VlanTag {
    /// The tag protocol identifier: 0x8100, 0x88a8 or 0x9100.
    pub tpid: u16,
    /// Priority code point (0-7).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN id (0-4095).
    pub vid: u16,
}

impl VlanTag {
    /// Splits a tag control information word (`skb->vlan_tci`, or the two
    /// bytes after a TPID on the wire).
    pub fn from_tci(tpid: u16, tci: u16) -> Self {
        Self {
            tpid,
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }
}

/// A MAC address; prints and serializes as `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ethernet {
    pub dst: MacAddr,
    pub src: MacAddr,
    /// The ethertype after any VLAN tags in the bytes.
    pub ethertype: u16,
}

/// The network layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum L3 {
    Ipv4(Ipv4),
    Ipv6(Ipv6),
    Arp(Arp),
    /// An ethertype the decoder does not look into (values up to 1500 are
    /// 802.3 lengths).
    Other(u16),
}

/// The transport layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum L4 {
    Tcp(Tcp),
    Udp(Udp),
    Icmp(Icmp),
    Icmpv6(Icmpv6),
    /// A protocol the decoder does not look into (ESP, GRE, SCTP, no next
    /// header, ...).
    Other(u8),
}

/// IP fragmentation, from the IPv4 header or the IPv6 fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fragment {
    pub id: u32,
    /// Offset of this fragment's data in the original payload, in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

/// The headers the decoder reads; names where the bytes ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Header {
    Ethernet,
    Vlan,
    /// The first byte of a network header of unknown kind (protocol 0).
    Network,
    Ipv4,
    Ipv6,
    Ipv6Ext,
    Arp,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ethernet => "Ethernet header",
            Self::Vlan => "VLAN tag",
            Self::Network => "network header",
            Self::Ipv4 => "IPv4 header",
            Self::Ipv6 => "IPv6 header",
            Self::Ipv6Ext => "IPv6 extension header",
            Self::Arp => "ARP header",
            Self::Tcp => "TCP header",
            Self::Udp => "UDP header",
            Self::Icmp => "ICMP header",
            Self::Icmpv6 => "ICMPv6 header",
        })
    }
}

/// Where decoding stopped because the captured bytes ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Truncation {
    /// The header that did not fit.
    pub header: Header,
    /// Its offset in the captured bytes.
    pub offset: usize,
    /// Bytes it needs (its fixed part, or its full length once known).
    pub need: usize,
    /// Bytes captured from its start.
    pub have: usize,
}

impl fmt::Display for Truncation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {} of {} bytes", self.header, self.have, self.need)
    }
}

/// A decoded packet: every header the bytes allowed, and why decoding stopped
/// early, if it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Packet {
    pub eth: Option<Ethernet>,
    /// The hardware-stripped tag first, then the tags in the bytes, outermost
    /// first.
    pub vlans: Vec<VlanTag>,
    pub l3: Option<L3>,
    pub l4: Option<L4>,
    pub truncated: Option<Truncation>,
    pub malformed: Option<String>,
    /// How many bytes were captured.
    pub captured_len: usize,
}

/// Most VLAN tags read from the bytes (the kernel's parser reads two).
pub const MAX_VLAN_TAGS: usize = 4;

/// Most IPv6 extension headers walked before calling the chain malformed.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

/// Decodes captured packet bytes. Never panics; see [`Packet::truncated`] and
/// [`Packet::malformed`] for where and why decoding stopped early.
pub fn decode(data: &[u8], info: &CaptureInfo) -> Packet {
    let mut pkt = Packet {
        eth: None,
        vlans: info.hw_vlan.into_iter().collect(),
        l3: None,
        l4: None,
        truncated: None,
        malformed: None,
        captured_len: data.len(),
    };
    let mut found = Findings::default();
    let start = if info.has_l2 {
        link::ethernet(data, info, &mut pkt, &mut found)
    } else {
        Some((info.l3_off, Network::from_protocol(info.protocol)))
    };
    if let Some((off, net)) = start {
        network(Cursor::at(data, off), net, &mut pkt, &mut found);
    }
    pkt.truncated = found.truncated;
    pkt.malformed = found.malformed;
    pkt
}

/// What the network header is, as far as the ethertype tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Network {
    Ipv4,
    Ipv6,
    Arp,
    /// Look at the IP version nibble.
    Guess,
    Other(u16),
}

impl Network {
    fn from_ethertype(t: u16) -> Self {
        match t {
            ethertype::IPV4 => Self::Ipv4,
            ethertype::IPV6 => Self::Ipv6,
            ethertype::ARP => Self::Arp,
            t => Self::Other(t),
        }
    }

    /// From `skb->protocol`: 0 (not set yet) or a VLAN TPID (the kernel has
    /// not looked past the tag) say nothing about the network header.
    fn from_protocol(p: u16) -> Self {
        if p == 0 || ethertype::is_vlan(p) {
            Self::Guess
        } else {
            Self::from_ethertype(p)
        }
    }
}

fn network(mut cur: Cursor<'_>, net: Network, pkt: &mut Packet, found: &mut Findings) {
    let net = match net {
        Network::Guess => match cur.peek_u8().map(|b| b >> 4) {
            Some(4) => Network::Ipv4,
            Some(6) => Network::Ipv6,
            Some(v) => {
                found.malformed(format!("no protocol and IP version nibble {v}"));
                return;
            }
            None => {
                found.short(Header::Network, &cur, 1);
                return;
            }
        },
        net => net,
    };
    match net {
        Network::Ipv4 => ip::ipv4(cur, pkt, found),
        Network::Ipv6 => ip::ipv6(cur, pkt, found),
        Network::Arp => pkt.l3 = link::arp(&mut cur, found).map(L3::Arp),
        Network::Other(t) => pkt.l3 = Some(L3::Other(t)),
        Network::Guess => {}
    }
}

/// The first truncation and the first contradiction met while decoding.
#[derive(Debug, Default)]
struct Findings {
    truncated: Option<Truncation>,
    malformed: Option<String>,
}

impl Findings {
    /// A header needing `need` bytes from `at` did not fit: truncated capture,
    /// or malformed when an IP length field, not the capture, ended the bytes.
    fn short(&mut self, header: Header, at: &Cursor<'_>, need: usize) {
        let have = at.remaining();
        if at.clipped() {
            self.malformed(format!(
                "{header} needs {need} bytes, the IP length leaves {have}"
            ));
        } else if self.truncated.is_none() {
            self.truncated = Some(Truncation {
                header,
                offset: at.pos(),
                need,
                have,
            });
        }
    }

    fn malformed(&mut self, why: impl Into<String>) {
        if self.malformed.is_none() {
            self.malformed = Some(why.into());
        }
    }
}

impl Packet {
    /// The IP source address.
    pub fn src_addr(&self) -> Option<IpAddr> {
        match &self.l3 {
            Some(L3::Ipv4(ip)) => Some(ip.src.into()),
            Some(L3::Ipv6(ip)) => Some(ip.src.into()),
            _ => None,
        }
    }

    /// The IP destination address.
    pub fn dst_addr(&self) -> Option<IpAddr> {
        match &self.l3 {
            Some(L3::Ipv4(ip)) => Some(ip.dst.into()),
            Some(L3::Ipv6(ip)) => Some(ip.dst.into()),
            _ => None,
        }
    }

    /// The upper-layer protocol the IP header names (for IPv6, after the
    /// extension headers walked), even when its header was not decoded
    /// (later fragments, truncation).
    pub fn l4_proto(&self) -> Option<u8> {
        match &self.l3 {
            Some(L3::Ipv4(ip)) => Some(ip.proto),
            Some(L3::Ipv6(ip)) => Some(ip.protocol),
            _ => None,
        }
    }

    /// TCP or UDP source and destination ports.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match &self.l4 {
            Some(L4::Tcp(t)) => Some((t.sport, t.dport)),
            Some(L4::Udp(u)) => Some((u.sport, u.dport)),
            _ => None,
        }
    }

    /// The upper-layer length the IP header declares (IPv4 total length
    /// minus its header; IPv6 payload length minus the extension headers).
    /// `None` when the header gives no length (0: GSO / BIG TCP / jumbo).
    pub fn l4_len(&self) -> Option<usize> {
        match &self.l3 {
            Some(L3::Ipv4(ip)) => ip.payload_len(),
            Some(L3::Ipv6(ip)) => ip.upper_len(),
            _ => None,
        }
    }

    /// IP fragmentation, if this packet is a fragment.
    pub fn fragment(&self) -> Option<Fragment> {
        match &self.l3 {
            Some(L3::Ipv4(ip)) => ip.fragment(),
            Some(L3::Ipv6(ip)) => ip.fragment,
            _ => None,
        }
    }

    /// A tcpdump-like one-liner, for example
    /// `IP 198.18.0.1.40000 > 198.18.0.2.80: Flags [S], seq 123, win 64240, length 0`.
    /// The same text as `Display`.
    pub fn summary(&self) -> String {
        self.render()
    }
}
