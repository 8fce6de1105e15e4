//! The link layer: Ethernet, VLAN tags, ARP.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::cursor::Cursor;
use super::{
    ethertype, CaptureInfo, Ethernet, Findings, Header, MacAddr, Network, Packet, VlanTag,
    MAX_VLAN_TAGS,
};

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;

/// Decodes the Ethernet header and the VLAN tags after it into `pkt`, and
/// says where the network header starts and what it is; `None` when the
/// bytes end first or hold too many tags.
pub(super) fn ethernet(
    data: &[u8],
    info: &CaptureInfo,
    pkt: &mut Packet,
    found: &mut Findings,
) -> Option<(usize, Network)> {
    let mut cur = Cursor::at(data, 0);
    if cur.remaining() < ETH_HLEN {
        found.short(Header::Ethernet, &cur, ETH_HLEN);
        return None;
    }
    let mut eth = Ethernet {
        dst: MacAddr(cur.array()?),
        src: MacAddr(cur.array()?),
        ethertype: cur.u16()?,
    };
    let mut tags = 0;
    while ethertype::is_vlan(eth.ethertype) {
        if tags == MAX_VLAN_TAGS {
            found.malformed(format!("more than {MAX_VLAN_TAGS} VLAN tags"));
            pkt.eth = Some(eth);
            return None;
        }
        if cur.remaining() < VLAN_HLEN {
            found.short(Header::Vlan, &cur, VLAN_HLEN);
            pkt.eth = Some(eth);
            return None;
        }
        let tci = cur.u16()?;
        pkt.vlans.push(VlanTag::from_tci(eth.ethertype, tci));
        eth.ethertype = cur.u16()?;
        tags += 1;
    }
    pkt.eth = Some(eth);

    // The bytes are the authority on what follows the Ethernet header. The
    // kernel's view matters only past an ethertype we do not read (MPLS
    // labels, say), when its network header lies further in the capture.
    let net = Network::from_ethertype(eth.ethertype);
    let parsed = cur.pos();
    if matches!(net, Network::Other(_)) && info.l3_off > parsed && info.l3_off < data.len() {
        let kernel = Network::from_protocol(info.protocol);
        if kernel != net {
            return Some((info.l3_off, kernel));
        }
    }
    Some((parsed, net))
}

/// An ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Arp {
    /// Hardware type: 1 for Ethernet.
    pub htype: u16,
    /// Protocol type: 0x0800 for IPv4.
    pub ptype: u16,
    pub hlen: u8,
    pub plen: u8,
    /// 1 request, 2 reply (see [`Arp::op_name`]).
    pub op: u16,
    /// The addresses, for Ethernet/IPv4 ARP when captured.
    pub addrs: Option<ArpAddrs>,
}

/// The addresses of an Ethernet/IPv4 ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ArpAddrs {
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl Arp {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;

    /// Ethernet hardware addresses and IPv4 protocol addresses.
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.htype == 1 && self.ptype == ethertype::IPV4 && self.hlen == 6 && self.plen == 4
    }

    /// The message length its header declares: 28 for Ethernet/IPv4.
    pub fn message_len(&self) -> usize {
        8 + 2 * usize::from(self.hlen) + 2 * usize::from(self.plen)
    }

    /// "Request", "Reply", ... as tcpdump names them.
    pub fn op_name(&self) -> Option<&'static str> {
        Some(match self.op {
            1 => "Request",
            2 => "Reply",
            3 => "Reverse Request",
            4 => "Reverse Reply",
            8 => "Inverse Request",
            9 => "Inverse Reply",
            _ => return None,
        })
    }
}

const ARP_FIXED: usize = 8;

pub(super) fn arp(cur: &mut Cursor<'_>, found: &mut Findings) -> Option<Arp> {
    let head = *cur;
    if cur.remaining() < ARP_FIXED {
        found.short(Header::Arp, &head, ARP_FIXED);
        return None;
    }
    let mut arp = Arp {
        htype: cur.u16()?,
        ptype: cur.u16()?,
        hlen: cur.u8()?,
        plen: cur.u8()?,
        op: cur.u16()?,
        addrs: None,
    };
    if head.remaining() < arp.message_len() {
        found.short(Header::Arp, &head, arp.message_len());
        return Some(arp);
    }
    if arp.is_ethernet_ipv4() {
        arp.addrs = Some(ArpAddrs {
            sender_mac: MacAddr(cur.array()?),
            sender_ip: Ipv4Addr::from(cur.array::<4>()?),
            target_mac: MacAddr(cur.array()?),
            target_ip: Ipv4Addr::from(cur.array::<4>()?),
        });
    }
    Some(arp)
}
