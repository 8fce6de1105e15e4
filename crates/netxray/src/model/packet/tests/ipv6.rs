//! IPv6, its extension headers, ICMPv6 and neighbor discovery.

use std::net::{IpAddr, Ipv6Addr};

use super::*;
use crate::model::packet::{Fragment, MacAddr, Tcp, L3, L4};

const IP6: u16 = 0x86dd;

fn over_eth(ip: &[u8]) -> Vec<u8> {
    eth(IP6, &[], ip)
}

fn ip6(pkt: &Packet) -> &crate::model::packet::Ipv6 {
    match &pkt.l3 {
        Some(L3::Ipv6(ip)) => ip,
        other => panic!("not IPv6: {other:?}"),
    }
}

#[test]
fn icmpv6_echo_request() {
    let frame = over_eth(&ipv6(58, &echo(128, 7, 3, 56)));
    let pkt = dec(&frame, &l2(0, IP6));
    assert_eq!(
        pkt.summary(),
        "IP6 2001:db8::1 > 2001:db8::2: ICMP6, echo request, id 7, seq 3, length 64"
    );
    let ip = ip6(&pkt);
    assert_eq!(ip.src, "2001:db8::1".parse::<Ipv6Addr>().expect("addr"));
    assert_eq!(
        (ip.flow_label, ip.hop_limit, ip.payload_len),
        (0x12345, 64, 64)
    );
    assert_eq!((ip.next_header, ip.protocol, ip.ext_len), (58, 58, 0));
    assert!(ip.ext_headers.is_empty());
    assert_eq!(pkt.src_addr(), Some(IpAddr::from(v6("2001:db8::1"))));
    assert_eq!(pkt.l4_proto(), Some(58));
    let Some(L4::Icmpv6(m)) = &pkt.l4 else {
        panic!("not ICMPv6: {pkt:?}")
    };
    assert_eq!(m.echo.map(|e| (e.id, e.seq)), Some((7, 3)));
    assert_eq!(
        sum(&over_eth(&ipv6(58, &echo(129, 7, 3, 56))), &l2(0, IP6)),
        "IP6 2001:db8::1 > 2001:db8::2: ICMP6, echo reply, id 7, seq 3, length 64"
    );
}

#[test]
fn hop_by_hop_fragment_and_destination_options_before_tcp() {
    let seg = tcp(40000, 80, 1, 0, Tcp::SYN, 65535);
    let chain = cat(&[&ext(44, 0), &frag6(60, 0, true, 99), &ext(6, 1), &seg]);
    let pkt = dec(&over_eth(&ipv6(0, &chain)), &l2(0, IP6));
    let ip = ip6(&pkt);
    assert_eq!(ip.ext_headers, vec![0, 44, 60]);
    assert_eq!((ip.next_header, ip.protocol, ip.ext_len), (0, 6, 32));
    assert_eq!(ip.upper_len(), Some(20));
    assert_eq!(
        ip.fragment,
        Some(Fragment {
            id: 99,
            offset: 0,
            more: true
        })
    );
    assert_eq!(pkt.ports(), Some((40000, 80)));
    assert_eq!(pkt.l4_proto(), Some(6));
    assert_eq!(
        pkt.summary(),
        "IP6 2001:db8::1.40000 > 2001:db8::2.80: Flags [S], seq 1, win 65535, length 0, frag id 99, more fragments"
    );
}

#[test]
fn hop_by_hop_atomic_fragment_and_destination_options_before_udp() {
    let chain = cat(&[
        &ext(44, 0),
        &frag6(60, 0, false, 1),
        &ext(17, 0),
        &udp(5353, 5353, &[0; 20]),
    ]);
    let pkt = dec(&over_eth(&ipv6(0, &chain)), &l2(0, IP6));
    assert_eq!(ip6(&pkt).ext_headers, vec![0, 44, 60]);
    assert_eq!(
        pkt.summary(),
        "IP6 2001:db8::1.5353 > 2001:db8::2.5353: UDP, length 20"
    );
}

#[test]
fn routing_and_authentication_headers() {
    // AH counts its length in 4-byte units minus 2: 4 means 24 bytes.
    let mut ah = vec![17, 4];
    ah.resize(24, 0);
    let chain = cat(&[&ext(51, 2), &ah, &udp(1, 2, &[])]);
    let pkt = dec(&over_eth(&ipv6(43, &chain)), &l2(0, IP6));
    let ip = ip6(&pkt);
    assert_eq!(
        (ip.ext_headers.clone(), ip.ext_len, ip.protocol),
        (vec![43, 51], 48, 17)
    );
    assert_eq!(
        pkt.summary(),
        "IP6 2001:db8::1.1 > 2001:db8::2.2: UDP, length 0"
    );
}

#[test]
fn later_fragment_has_no_transport_header() {
    let chain = cat(&[&frag6(17, 1232, false, 5), &[0; 100]]);
    let pkt = dec(&over_eth(&ipv6(44, &chain)), &l2(0, IP6));
    assert_eq!(pkt.l4, None);
    assert_eq!(pkt.l4_proto(), Some(17));
    assert_eq!((pkt.truncated, &pkt.malformed), (None, &None));
    assert_eq!(
        pkt.summary(),
        "IP6 2001:db8::1 > 2001:db8::2: UDP, frag id 5, frag off 1232, length 100"
    );
}

#[test]
fn esp_and_no_next_header_end_the_walk() {
    let pkt = dec(
        &over_eth(&ipv6(60, &cat(&[&ext(50, 0), &[0; 16]]))),
        &l2(0, IP6),
    );
    assert_eq!(pkt.l4, Some(L4::Other(50)));
    assert_eq!(
        pkt.summary(),
        "IP6 2001:db8::1 > 2001:db8::2: ESP, length 16"
    );
    assert_eq!(
        sum(&over_eth(&ipv6(60, &ext(59, 0))), &l2(0, IP6)),
        "IP6 2001:db8::1 > 2001:db8::2: no next header, length 0"
    );
}

#[test]
fn neighbor_solicitation_with_source_link_layer_address() {
    let mut body = v6("2001:db8::2").to_vec();
    body.extend([1, 1]);
    body.extend(SRC_MAC);
    let ns = icmp(135, 0, [0; 4], &body);
    let frame = over_eth(&ipv6_from(58, "fe80::1", "ff02::1:ff00:2", &ns));
    let pkt = dec(&frame, &l2(0, IP6));
    assert_eq!(
        pkt.summary(),
        "IP6 fe80::1 > ff02::1:ff00:2: ICMP6, neighbor solicitation, who has 2001:db8::2, length 32"
    );
    let Some(L4::Icmpv6(m)) = &pkt.l4 else {
        panic!("not ICMPv6: {pkt:?}")
    };
    assert_eq!(m.target, Some(Ipv6Addr::from(v6("2001:db8::2"))));
    assert_eq!(m.lladdr, Some(MacAddr(SRC_MAC)));
    assert_eq!(m.type_name(), Some("neighbor solicitation"));
}

#[test]
fn other_neighbor_discovery_messages() {
    let nd = |m: Vec<u8>| {
        sum(
            &over_eth(&ipv6_from(58, "fe80::2", "fe80::1", &m)),
            &l2(0, IP6),
        )
    };
    let mut body = v6("2001:db8::2").to_vec();
    body.extend([2, 1]);
    body.extend(DST_MAC);
    assert_eq!(
        nd(icmp(136, 0, [0x60, 0, 0, 0], &body)),
        "IP6 fe80::2 > fe80::1: ICMP6, neighbor advertisement, tgt is 2001:db8::2, length 32"
    );
    assert_eq!(
        nd(icmp(133, 0, [0; 4], &[])),
        "IP6 fe80::2 > fe80::1: ICMP6, router solicitation, length 8"
    );
    let mut ra = vec![0; 8];
    ra.extend([1, 1]);
    ra.extend(SRC_MAC);
    assert_eq!(
        nd(icmp(134, 0, [64, 0, 0, 0], &ra)),
        "IP6 fe80::2 > fe80::1: ICMP6, router advertisement, length 24"
    );
    let redirect = cat(&[&v6("fe80::9"), &v6("2001:db8::5")]);
    assert_eq!(
        nd(icmp(137, 0, [0; 4], &redirect)),
        "IP6 fe80::2 > fe80::1: ICMP6, redirect, 2001:db8::5 to fe80::9, length 40"
    );
}

#[test]
fn icmpv6_errors() {
    let quote = ipv6(17, &udp(40000, 9, &[]));
    let wrap = |m: Vec<u8>| {
        sum(
            &over_eth(&ipv6_from(58, "2001:db8::2", "2001:db8::1", &m)),
            &l2(0, IP6),
        )
    };
    assert_eq!(
        wrap(icmp(1, 4, [0; 4], &quote)),
        "IP6 2001:db8::2 > 2001:db8::1: ICMP6, destination unreachable, unreachable port, 2001:db8::2 udp port 9, length 56"
    );
    assert_eq!(
        wrap(icmp(2, 0, [0, 0, 5, 0], &quote)),
        "IP6 2001:db8::2 > 2001:db8::1: ICMP6, packet too big, mtu 1280, length 56"
    );
    assert_eq!(
        wrap(icmp(3, 0, [0; 4], &quote)),
        "IP6 2001:db8::2 > 2001:db8::1: ICMP6, time exceeded in-transit, length 56"
    );
    assert_eq!(
        wrap(icmp(4, 1, [0, 0, 0, 6], &quote)),
        "IP6 2001:db8::2 > 2001:db8::1: ICMP6, parameter problem, unrecognized next header, octet 6, length 56"
    );
    assert_eq!(
        wrap(icmp(200, 1, [0; 4], &[])),
        "IP6 2001:db8::2 > 2001:db8::1: ICMP6, type 200, code 1, length 8"
    );
}

#[test]
fn exactly_eight_extension_headers_are_fine() {
    let mut chain = Vec::new();
    for _ in 0..7 {
        chain.extend(ext(60, 0));
    }
    chain.extend(ext(17, 0));
    chain.extend(udp(1, 2, &[]));
    let pkt = dec(&over_eth(&ipv6(60, &chain)), &l2(0, IP6));
    assert_eq!(ip6(&pkt).ext_headers.len(), 8);
    assert_eq!(pkt.malformed, None);
    assert_eq!(pkt.ports(), Some((1, 2)));
}
