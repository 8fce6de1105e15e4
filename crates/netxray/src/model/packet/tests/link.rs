//! ARP, VLAN tags, and where the kernel says the bytes start.

use super::*;
use crate::model::packet::{ArpAddrs, CaptureInfo, Header, MacAddr, Truncation, L3};

use std::net::Ipv4Addr;

const IP: u16 = 0x0800;
const IP6: u16 = 0x86dd;
const ARP: u16 = 0x0806;

fn udp_packet() -> Vec<u8> {
    ipv4(17, &udp(40000, 53, &[0; 12]))
}

const UDP_SUMMARY: &str = "IP 198.18.0.1.40000 > 198.18.0.2.53: UDP, length 12";

#[test]
fn arp_request_and_reply() {
    let request = eth(ARP, &[], &arp(1, SRC_MAC, A, [0; 6], B));
    let pkt = dec(&request, &l2(0, ARP));
    assert_eq!(
        pkt.summary(),
        "ARP, Request who-has 198.18.0.2 tell 198.18.0.1, length 28"
    );
    let Some(L3::Arp(a)) = &pkt.l3 else {
        panic!("not ARP: {pkt:?}")
    };
    assert_eq!((a.htype, a.ptype, a.hlen, a.plen, a.op), (1, IP, 6, 4, 1));
    assert_eq!(
        a.addrs,
        Some(ArpAddrs {
            sender_mac: MacAddr(SRC_MAC),
            sender_ip: Ipv4Addr::from(A),
            target_mac: MacAddr([0; 6]),
            target_ip: Ipv4Addr::from(B),
        })
    );
    assert_eq!(
        (pkt.src_addr(), pkt.l4_proto(), &pkt.l4),
        (None, None, &None)
    );

    let mac = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
    let mut reply = eth(ARP, &[], &arp(2, mac, B, SRC_MAC, A));
    reply.resize(60, 0); // padding does not change the length
    assert_eq!(
        sum(&reply, &l2(0, ARP)),
        "ARP, Reply 198.18.0.2 is-at aa:bb:cc:dd:ee:ff, length 28"
    );
    assert_eq!(
        sum(&eth(ARP, &[], &arp(9, mac, B, SRC_MAC, A)), &l2(0, ARP)),
        "ARP, Inverse Reply, length 28"
    );
}

#[test]
fn arp_of_other_kinds_keeps_the_operation() {
    // InfiniBand: 20-byte hardware addresses.
    let mut msg = vec![0, 32, 0x08, 0x00, 20, 4, 0, 1];
    msg.resize(8 + 2 * 20 + 2 * 4, 0);
    let pkt = dec(&eth(ARP, &[], &msg), &l2(0, ARP));
    assert_eq!(
        pkt.summary(),
        "ARP htype 32, ptype 0x0800, Request, length 56"
    );
    let Some(L3::Arp(a)) = &pkt.l3 else {
        panic!("not ARP: {pkt:?}")
    };
    assert_eq!((a.op, a.addrs), (1, None));
}

#[test]
fn one_vlan_tag_in_the_bytes() {
    // PCP 1, VID 100.
    let frame = eth(IP, &[(0x8100, 0x2064)], &udp_packet());
    let pkt = dec(&frame, &l2(1, IP));
    assert_eq!(
        pkt.vlans,
        vec![VlanTag {
            tpid: 0x8100,
            pcp: 1,
            dei: false,
            vid: 100
        }]
    );
    assert_eq!(pkt.eth.map(|e| e.ethertype), Some(IP));
    assert_eq!(pkt.summary(), format!("vlan 100, {UDP_SUMMARY}"));
}

#[test]
fn qinq_tags_in_the_bytes_outermost_first() {
    let frame = eth(IP, &[(0x88a8, 0x1000 | 200), (0x8100, 100)], &udp_packet());
    let pkt = dec(&frame, &l2(2, IP));
    let tags: Vec<_> = pkt.vlans.iter().map(|t| (t.tpid, t.vid, t.dei)).collect();
    assert_eq!(tags, vec![(0x88a8, 200, true), (0x8100, 100, false)]);
    assert_eq!(pkt.summary(), format!("vlan 200, vlan 100, {UDP_SUMMARY}"));
}

#[test]
fn hardware_stripped_tag_comes_first() {
    let info = CaptureInfo {
        hw_vlan: Some(hw_tag(10)),
        ..l2(0, IP)
    };
    assert_eq!(
        sum(&eth(IP, &[], &udp_packet()), &info),
        format!("vlan 10, {UDP_SUMMARY}")
    );
    let info = CaptureInfo {
        hw_vlan: Some(hw_tag(10)),
        ..l2(1, IP)
    };
    let pkt = dec(&eth(IP, &[(0x8100, 20)], &udp_packet()), &info);
    assert_eq!(
        pkt.vlans.iter().map(|t| t.vid).collect::<Vec<_>>(),
        vec![10, 20]
    );
    assert_eq!(pkt.summary(), format!("vlan 10, vlan 20, {UDP_SUMMARY}"));
}

#[test]
fn the_bytes_win_over_a_kernel_offset_that_missed_a_tag() {
    // On early receive hooks the tag may still be in the bytes while the
    // kernel's network header sits right after the Ethernet header.
    let frame = eth(IP, &[(0x8100, 100)], &udp_packet());
    assert_eq!(
        sum(&frame, &l2(0, 0x8100)),
        format!("vlan 100, {UDP_SUMMARY}")
    );
}

#[test]
fn the_kernel_offset_helps_past_an_unknown_ethertype() {
    // One MPLS label (bottom of stack), then IPv4.
    let frame = eth(0x8847, &[], &cat(&[&[0, 0x01, 0x01, 0x40], &udp_packet()]));
    let info = CaptureInfo {
        l3_off: 18,
        ..l2(0, IP)
    };
    let pkt = dec(&frame, &info);
    assert_eq!(pkt.eth.map(|e| e.ethertype), Some(0x8847));
    assert_eq!(pkt.summary(), UDP_SUMMARY);
    // Without that offset it stays an unknown ethertype.
    let pkt = dec(&frame, &l2(0, 0x8847));
    assert_eq!(pkt.l3, Some(L3::Other(0x8847)));
    assert_eq!(
        pkt.summary(),
        format!("ethertype 0x8847, length {}", frame.len())
    );
}

#[test]
fn unknown_ethertypes_and_802_3_frames() {
    let mut lldp = eth(0x88cc, &[], &[0; 20]);
    lldp.resize(60, 0);
    assert_eq!(sum(&lldp, &l2(0, 0x88cc)), "ethertype 0x88cc, length 60");
    let llc = eth(0x0026, &[], &[0x42, 0x42, 0x03]);
    assert_eq!(sum(&llc, &l2(0, 0x0004)), "802.3, length 17");
}

#[test]
fn capture_without_l2_starts_at_the_network_header() {
    let pkt = dec(&udp_packet(), &l3(IP));
    assert_eq!((pkt.eth, pkt.vlans.len()), (None, 0));
    assert_eq!(pkt.summary(), UDP_SUMMARY);
    let v6 = ipv6(58, &echo(128, 1, 2, 0));
    assert_eq!(
        sum(&v6, &l3(IP6)),
        "IP6 2001:db8::1 > 2001:db8::2: ICMP6, echo request, id 1, seq 2, length 8"
    );
    let info = CaptureInfo {
        hw_vlan: Some(hw_tag(7)),
        ..l3(IP)
    };
    assert_eq!(sum(&udp_packet(), &info), format!("vlan 7, {UDP_SUMMARY}"));
}

#[test]
fn protocol_zero_guesses_from_the_version_nibble() {
    assert_eq!(sum(&udp_packet(), &l3(0)), UDP_SUMMARY);
    assert_eq!(
        sum(&ipv6(17, &udp(1, 2, &[])), &l3(0)),
        "IP6 2001:db8::1.1 > 2001:db8::2.2: UDP, length 0"
    );
    // A VLAN protocol says nothing about the network header either.
    assert_eq!(sum(&udp_packet(), &l3(0x8100)), UDP_SUMMARY);
    let pkt = dec(&[0x50, 0, 0, 0], &l3(0));
    assert_eq!((&pkt.l3, pkt.truncated), (&None, None));
    assert_eq!(
        pkt.summary(),
        "[malformed: no protocol and IP version nibble 5]"
    );
}

#[test]
fn l3_offset_beyond_the_data() {
    let info = CaptureInfo {
        l3_off: 200,
        ..l3(IP)
    };
    let pkt = dec(&udp_packet(), &info);
    assert_eq!(
        pkt.truncated,
        Some(Truncation {
            header: Header::Ipv4,
            offset: 200,
            need: 20,
            have: 0
        })
    );
    assert_eq!(pkt.summary(), "[truncated: IPv4 header, 0 of 20 bytes]");
    // With an Ethernet header the bytes say where IPv4 starts.
    let info = CaptureInfo {
        l3_off: 200,
        ..l2(0, IP)
    };
    assert_eq!(sum(&eth(IP, &[], &udp_packet()), &info), UDP_SUMMARY);
}
