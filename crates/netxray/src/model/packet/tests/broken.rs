//! Truncated, malformed and random bytes: decoding stops where it must, says
//! why, and never panics.

use super::*;
use crate::model::packet::{Header, Tcp, Truncation, L3, L4};

const IP: u16 = 0x0800;
const IP6: u16 = 0x86dd;

fn cut(header: Header, offset: usize, need: usize, have: usize) -> Option<Truncation> {
    Some(Truncation {
        header,
        offset,
        need,
        have,
    })
}

#[test]
fn empty_input() {
    let pkt = dec(&[], &l2(0, IP));
    assert_eq!(pkt.truncated, cut(Header::Ethernet, 0, 14, 0));
    assert_eq!(pkt.summary(), "[truncated: Ethernet header, 0 of 14 bytes]");
    assert_eq!(
        sum(&[], &l3(0)),
        "[truncated: network header, 0 of 1 bytes]"
    );
    assert_eq!(
        sum(&[], &l3(IP6)),
        "[truncated: IPv6 header, 0 of 40 bytes]"
    );
    let info = CaptureInfo {
        hw_vlan: Some(hw_tag(5)),
        ..l2(0, IP)
    };
    assert_eq!(
        sum(&[], &info),
        "vlan 5 [truncated: Ethernet header, 0 of 14 bytes]"
    );
}

#[test]
fn truncated_link_layer() {
    let frame = eth(IP, &[(0x8100, 100)], &ipv4(17, &udp(1, 2, &[])));
    let pkt = dec(&frame[..10], &l2(1, IP));
    assert_eq!(
        (pkt.eth, pkt.truncated),
        (None, cut(Header::Ethernet, 0, 14, 10))
    );
    let pkt = dec(&frame[..16], &l2(1, IP));
    assert!(pkt.eth.is_some());
    assert_eq!(pkt.truncated, cut(Header::Vlan, 14, 4, 2));
    assert_eq!(pkt.summary(), "[truncated: VLAN tag, 2 of 4 bytes]");
    let arp_frame = eth(0x0806, &[], &arp(1, SRC_MAC, A, [0; 6], B));
    assert_eq!(
        sum(&arp_frame[..20], &l2(0, 0x0806)),
        "[truncated: ARP header, 6 of 8 bytes]"
    );
    assert_eq!(
        sum(&arp_frame[..30], &l2(0, 0x0806)),
        "ARP, Request, length 28 [truncated: ARP header, 16 of 28 bytes]"
    );
}

#[test]
fn truncated_network_layer() {
    let frame = eth(IP, &[], &ipv4(17, &udp(1, 2, &[])));
    let pkt = dec(&frame[..24], &l2(0, IP));
    assert_eq!(
        (&pkt.l3, pkt.truncated),
        (&None, cut(Header::Ipv4, 14, 20, 10))
    );
    assert_eq!(pkt.summary(), "[truncated: IPv4 header, 10 of 20 bytes]");

    let with_options = V4 {
        options: vec![1, 1, 1, 0],
        ..V4::new(17)
    };
    let frame = eth(IP, &[], &with_options.build(&udp(1, 2, &[])));
    assert_eq!(
        sum(&frame[..36], &l2(0, IP)),
        "IP 198.18.0.1 > 198.18.0.2: UDP [truncated: IPv4 header, 22 of 24 bytes]"
    );

    let frame = eth(IP6, &[], &ipv6(17, &udp(1, 2, &[])));
    assert_eq!(
        sum(&frame[..50], &l2(0, IP6)),
        "[truncated: IPv6 header, 36 of 40 bytes]"
    );
}

#[test]
fn truncated_extension_header() {
    let chain = cat(&[&ext(60, 1), &ext(6, 0), &tcp(1, 2, 3, 4, Tcp::ACK, 5)]);
    let frame = eth(IP6, &[], &ipv6(0, &chain));
    let pkt = dec(&frame[..14 + 40 + 12], &l2(0, IP6));
    assert_eq!(pkt.truncated, cut(Header::Ipv6Ext, 54, 16, 12));
    assert_eq!(pkt.l4_proto(), Some(0), "stopped at the hop-by-hop header");
    assert_eq!(
        pkt.summary(),
        "IP6 2001:db8::1 > 2001:db8::2: HBH [truncated: IPv6 extension header, 12 of 16 bytes]"
    );
    let pkt = dec(&frame[..14 + 40 + 16 + 4], &l2(0, IP6));
    assert_eq!(pkt.truncated, cut(Header::Ipv6Ext, 70, 8, 4));
    let pkt = dec(&frame[..14 + 40 + 24 + 4], &l2(0, IP6));
    assert_eq!(pkt.truncated, cut(Header::Tcp, 78, 20, 4));
}

#[test]
fn truncated_transport_layer() {
    let frame = eth(IP, &[], &ipv4(6, &tcp(40000, 80, 1, 0, Tcp::SYN, 9)));
    let pkt = dec(&frame[..46], &l2(0, IP));
    assert_eq!(
        (&pkt.l4, pkt.truncated),
        (&None, cut(Header::Tcp, 34, 20, 12))
    );
    assert_eq!(pkt.l4_proto(), Some(6));
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.1 > 198.18.0.2: TCP [truncated: TCP header, 12 of 20 bytes]"
    );

    // Options cut off: the fixed part is still there.
    let seg = tcp_with(40000, 80, 1, 0, Tcp::SYN, 9, &[1; 12], &[]);
    let frame = eth(IP, &[], &ipv4(6, &seg));
    let pkt = dec(&frame[..34 + 24], &l2(0, IP));
    assert_eq!(pkt.ports(), Some((40000, 80)));
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.1.40000 > 198.18.0.2.80: Flags [S], seq 1, win 9, length 0 [truncated: TCP header, 24 of 32 bytes]"
    );

    let frame = eth(IP, &[], &ipv4(17, &udp(1, 2, &[0; 8])));
    assert_eq!(
        sum(&frame[..38], &l2(0, IP)),
        "IP 198.18.0.1 > 198.18.0.2: UDP [truncated: UDP header, 4 of 8 bytes]"
    );
    let frame = eth(IP, &[], &ipv4(1, &echo(8, 1, 1, 0)));
    assert_eq!(
        sum(&frame[..36], &l2(0, IP)),
        "IP 198.18.0.1 > 198.18.0.2: ICMP [truncated: ICMP header, 2 of 8 bytes]"
    );
    let frame = eth(IP6, &[], &ipv6(58, &echo(128, 1, 1, 0)));
    assert_eq!(
        sum(&frame[..60], &l2(0, IP6)),
        "IP6 2001:db8::1 > 2001:db8::2: ICMP6 [truncated: ICMPv6 header, 6 of 8 bytes]"
    );
}

#[test]
fn malformed_ipv4() {
    let bad_ihl = V4 {
        ihl: Some(3),
        ..V4::new(17)
    };
    let pkt = dec(&eth(IP, &[], &bad_ihl.build(&udp(1, 2, &[]))), &l2(0, IP));
    assert!(matches!(pkt.l3, Some(L3::Ipv4(_))));
    assert_eq!((&pkt.l4, pkt.truncated), (&None, None));
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.1 > 198.18.0.2: UDP [malformed: IPv4 IHL 3 < 5]"
    );

    let short_total = V4 {
        tot_len: Some(16),
        ..V4::new(17)
    };
    assert_eq!(
        dec(&short_total.build(&[]), &l3(IP)).malformed.as_deref(),
        Some("IPv4 total length 16 < header length 20")
    );

    let v6_inside = V4 {
        version: 6,
        ..V4::new(17)
    };
    let pkt = dec(&eth(IP, &[], &v6_inside.build(&[])), &l2(0, IP));
    assert_eq!(pkt.l3, None);
    assert_eq!(pkt.summary(), "[malformed: IPv4 header with version 6]");
}

#[test]
fn malformed_transport_headers() {
    // The IP length leaves 12 bytes for a 20-byte TCP header; padding follows.
    let mut frame = eth(
        IP,
        &[],
        &V4 {
            tot_len: Some(32),
            ..V4::new(6)
        }
        .build(&tcp(1, 2, 3, 4, 0, 5)),
    );
    frame.resize(60, 0);
    let pkt = dec(&frame, &l2(0, IP));
    assert_eq!((&pkt.l4, pkt.truncated), (&None, None));
    assert_eq!(
        pkt.malformed.as_deref(),
        Some("TCP header needs 20 bytes, the IP length leaves 12")
    );

    let mut seg = tcp(1, 2, 3, 4, Tcp::ACK, 5);
    seg[12] = 4 << 4;
    let pkt = dec(&ipv4(6, &seg), &l3(IP));
    assert!(matches!(pkt.l4, Some(L4::Tcp(_))));
    assert_eq!(pkt.malformed.as_deref(), Some("TCP data offset 4 < 5"));

    let seg = tcp_with(1, 2, 3, 4, Tcp::ACK, 5, &[1; 8], &[]);
    let pkt = dec(
        &V4 {
            tot_len: Some(44),
            ..V4::new(6)
        }
        .build(&seg),
        &l3(IP),
    );
    assert_eq!(
        pkt.malformed.as_deref(),
        Some("TCP header length 28 > IP payload 24")
    );

    let mut dgram = udp(1, 2, &[]);
    dgram[5] = 3;
    let pkt = dec(&ipv4(17, &dgram), &l3(IP));
    assert_eq!(pkt.ports(), Some((1, 2)));
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.1.1 > 198.18.0.2.2: UDP [malformed: UDP length 3 < 8]"
    );
}

#[test]
fn malformed_ipv6_extension_chains() {
    let mut chain = Vec::new();
    for _ in 0..9 {
        chain.extend(ext(60, 0));
    }
    chain.extend(udp(1, 2, &[]));
    let pkt = dec(&ipv6(60, &chain), &l3(IP6));
    assert_eq!(pkt.l4, None);
    assert_eq!(
        pkt.malformed.as_deref(),
        Some("IPv6 extension header chain longer than 8")
    );

    let late_hbh = cat(&[&ext(0, 0), &ext(17, 0), &udp(1, 2, &[])]);
    let pkt = dec(&ipv6(60, &late_hbh), &l3(IP6));
    assert_eq!(
        pkt.malformed.as_deref(),
        Some("IPv6 hop-by-hop header not first")
    );

    // The payload length ends inside the chain.
    let mut ip = ipv6(60, &cat(&[&ext(17, 1), &udp(1, 2, &[])]));
    ip[5] = 8;
    let pkt = dec(&ip, &l3(IP6));
    assert_eq!(
        pkt.malformed.as_deref(),
        Some("IPv6 extension header needs 16 bytes, the IP length leaves 8")
    );

    let v4_inside = ipv4(17, &udp(1, 2, &[0; 40]));
    let pkt = dec(&v4_inside, &l3(IP6));
    assert_eq!(pkt.malformed.as_deref(), Some("IPv6 header with version 4"));
}

#[test]
fn too_many_vlan_tags() {
    let tags = [(0x8100, 1); 5];
    let pkt = dec(&eth(IP, &tags, &ipv4(17, &udp(1, 2, &[]))), &l2(5, IP));
    assert_eq!(pkt.vlans.len(), 4);
    assert_eq!(pkt.malformed.as_deref(), Some("more than 4 VLAN tags"));
}

#[test]
fn neighbor_discovery_option_of_length_zero() {
    let mut body = v6("2001:db8::2").to_vec();
    body.extend([1, 0, 0, 0, 0, 0, 0, 0]);
    let pkt = dec(&ipv6(58, &icmp(135, 0, [0; 4], &body)), &l3(IP6));
    let Some(L4::Icmpv6(m)) = pkt.l4 else {
        panic!("not ICMPv6: {pkt:?}")
    };
    assert_eq!(m.lladdr, None);
}

/// Well-formed packets of every kind, with how to decode them.
fn fixtures() -> Vec<(Vec<u8>, CaptureInfo)> {
    let v6_chain = cat(&[
        &ext(44, 0),
        &frag6(51, 0, true, 9),
        &[60, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &ext(6, 0),
        &tcp(1, 2, 3, 4, Tcp::SYN, 5),
    ]);
    let ns = cat(&[&v6("2001:db8::2"), &[1, 1], &SRC_MAC]);
    vec![
        (eth(IP, &[], &ipv4(1, &echo(8, 1, 2, 56))), l2(0, IP)),
        (
            eth(
                IP,
                &[(0x88a8, 2), (0x8100, 3)],
                &ipv4(17, &udp(1, 2, &[0; 9])),
            ),
            l2(2, IP),
        ),
        (
            eth(
                IP,
                &[],
                &ipv4(6, &tcp_with(1, 2, 3, 4, 0x18, 5, &[1; 8], &[7; 30])),
            ),
            l2(0, IP),
        ),
        (
            eth(
                IP,
                &[],
                &ipv4(1, &icmp(3, 3, [0; 4], &ipv4(17, &udp(1, 2, &[])))),
            ),
            l2(0, IP),
        ),
        (
            eth(0x0806, &[], &arp(1, SRC_MAC, A, [0; 6], B)),
            l2(0, 0x0806),
        ),
        (eth(IP6, &[], &ipv6(0, &v6_chain)), l2(0, IP6)),
        (ipv6(58, &icmp(135, 0, [0; 4], &ns)), l3(IP6)),
        (
            ipv6(58, &icmp(1, 4, [0; 4], &ipv6(17, &udp(1, 2, &[])))),
            l3(0),
        ),
        (
            V4 {
                frag: 100,
                ..V4::new(17)
            }
            .build(&[0; 16]),
            l3(IP),
        ),
    ]
}

#[test]
fn every_prefix_of_every_fixture_decodes() {
    for (frame, info) in fixtures() {
        let full = dec(&frame, &info);
        assert_eq!((full.truncated, &full.malformed), (None, &None), "{full:?}");
        for len in 0..frame.len() {
            let pkt = dec(&frame[..len], &info);
            assert!(pkt.malformed.is_none(), "prefix {len} of {full}: {pkt:?}");
            assert!(!pkt.summary().is_empty());
        }
    }
}

/// A small deterministic generator (64-bit LCG, high bits out).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    fn below(&mut self, n: usize) -> usize {
        self.next() as usize % n
    }
}

fn random_info(rng: &mut Lcg) -> CaptureInfo {
    const PROTOCOLS: [u16; 7] = [0, 0x0800, 0x86dd, 0x0806, 0x8100, 0x88cc, 0xffff];
    CaptureInfo {
        has_l2: rng.next() & 1 == 0,
        l3_off: if rng.next() & 3 == 0 {
            rng.below(200)
        } else {
            0
        },
        protocol: PROTOCOLS[rng.below(PROTOCOLS.len())],
        hw_vlan: (rng.next() & 7 == 0).then(|| VlanTag::from_tci(0x8100, rng.next() as u16)),
    }
}

fn exercise(data: &[u8], info: &CaptureInfo) {
    let pkt = dec(data, info);
    let _ = (
        pkt.src_addr(),
        pkt.dst_addr(),
        pkt.l4_proto(),
        pkt.ports(),
        pkt.l4_len(),
    );
    serde_json::to_string(&pkt).expect("every packet serializes");
}

#[test]
fn random_garbage_never_panics() {
    for seed in 0..48u64 {
        let mut rng = Lcg(seed);
        for len in 0..=160 {
            let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let info = random_info(&mut rng);
            exercise(&data, &info);
            // Plausible starts reach the deeper decoders more often.
            if let Some(first) = data.first_mut() {
                *first = [0x45, 0x46, 0x4f, 0x60, 0x41][rng.below(5)];
            }
            exercise(&data, &l3(0));
            if len > 14 {
                let ethertype = [0x0800u16, 0x86dd, 0x8100, 0x88a8, 0x0806][rng.below(5)];
                data[12..14].copy_from_slice(&ethertype.to_be_bytes());
                exercise(&data, &l2(0, 0));
            }
        }
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let fixtures = fixtures();
    let mut rng = Lcg(7);
    for _ in 0..3000 {
        let (frame, info) = &fixtures[rng.below(fixtures.len())];
        let mut data = frame.clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(data.len());
            data[at] = rng.next() as u8;
        }
        data.truncate(rng.below(data.len() + 1));
        exercise(&data, info);
    }
}
