//! IPv4 and what rides on it.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::model::packet::{Fragment, Quoted, Tcp, L3, L4};

const IP: u16 = 0x0800;

fn over_eth(ip: &[u8]) -> Vec<u8> {
    eth(IP, &[], ip)
}

#[test]
fn icmp_echo_request() {
    let frame = over_eth(&ipv4(1, &echo(8, 4242, 1, 56)));
    let pkt = dec(&frame, &l2(0, IP));
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.1 > 198.18.0.2: ICMP echo request, id 4242, seq 1, length 64"
    );
    let Some(eth) = pkt.eth else {
        panic!("no Ethernet header")
    };
    assert_eq!(
        (eth.src.0, eth.dst.0, eth.ethertype),
        (SRC_MAC, DST_MAC, IP)
    );
    let Some(L3::Ipv4(ip)) = &pkt.l3 else {
        panic!("not IPv4: {pkt:?}")
    };
    assert_eq!(ip.src, Ipv4Addr::from(A));
    assert_eq!(ip.dst, Ipv4Addr::from(B));
    assert_eq!(
        (ip.ttl, ip.proto, ip.ihl, ip.tot_len, ip.id),
        (64, 1, 5, 84, 0x1234)
    );
    assert!(ip.dont_fragment && !ip.more_fragments && ip.frag_offset == 0);
    let Some(L4::Icmp(m)) = &pkt.l4 else {
        panic!("not ICMP: {pkt:?}")
    };
    assert_eq!((m.icmp_type, m.code), (8, 0));
    assert_eq!(m.echo.map(|e| (e.id, e.seq)), Some((4242, 1)));
    assert_eq!(m.type_name(), Some("echo request"));
    assert_eq!(pkt.src_addr(), Some(IpAddr::from(A)));
    assert_eq!(pkt.dst_addr(), Some(IpAddr::from(B)));
    assert_eq!(pkt.l4_proto(), Some(1));
    assert_eq!(pkt.ports(), None);
    assert_eq!(pkt.fragment(), None);
    assert_eq!((pkt.truncated, &pkt.malformed), (None, &None));
}

#[test]
fn icmp_echo_reply() {
    let frame = over_eth(
        &V4 {
            src: B,
            dst: A,
            ..V4::new(1)
        }
        .build(&echo(0, 4242, 1, 56)),
    );
    assert_eq!(
        sum(&frame, &l2(0, IP)),
        "IP 198.18.0.2 > 198.18.0.1: ICMP echo reply, id 4242, seq 1, length 64"
    );
}

#[test]
fn udp_datagram() {
    let frame = over_eth(&ipv4(17, &udp(40000, 53, &[7; 12])));
    let pkt = dec(&frame, &l2(0, IP));
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.1.40000 > 198.18.0.2.53: UDP, length 12"
    );
    let Some(L4::Udp(u)) = pkt.l4 else {
        panic!("not UDP: {pkt:?}")
    };
    assert_eq!((u.sport, u.dport, u.length), (40000, 53, 20));
    assert_eq!(pkt.ports(), Some((40000, 53)));
    assert_eq!(pkt.l4_proto(), Some(17));
}

fn tcp_summary(seg: &[u8]) -> String {
    sum(&over_eth(&ipv4(6, seg)), &l2(0, IP))
}

#[test]
fn tcp_handshake_and_teardown() {
    let (s, a) = (Tcp::SYN, Tcp::ACK);
    assert_eq!(
        tcp_summary(&tcp(40000, 80, 123, 0, s, 64240)),
        "IP 198.18.0.1.40000 > 198.18.0.2.80: Flags [S], seq 123, win 64240, length 0"
    );
    assert_eq!(
        tcp_summary(&tcp(40000, 80, 999, 124, s | a, 65160)),
        "IP 198.18.0.1.40000 > 198.18.0.2.80: Flags [S.], seq 999, ack 124, win 65160, length 0"
    );
    assert_eq!(
        tcp_summary(&tcp(40000, 80, 124, 0, Tcp::RST, 0)),
        "IP 198.18.0.1.40000 > 198.18.0.2.80: Flags [R], seq 124, win 0, length 0"
    );
    assert_eq!(
        tcp_summary(&tcp(40000, 80, 200, 300, Tcp::FIN | a, 502)),
        "IP 198.18.0.1.40000 > 198.18.0.2.80: Flags [F.], seq 200, ack 300, win 502, length 0"
    );
    assert_eq!(
        tcp_summary(&tcp(40000, 80, 1, 0, 0, 0)),
        "IP 198.18.0.1.40000 > 198.18.0.2.80: Flags [none], seq 1, win 0, length 0"
    );
}

#[test]
fn tcp_data_segment_shows_the_sequence_range() {
    let seg = tcp_with(
        40000,
        80,
        1000,
        5,
        Tcp::PSH | Tcp::ACK,
        502,
        &[],
        b"0123456789",
    );
    let pkt = dec(&over_eth(&ipv4(6, &seg)), &l2(0, IP));
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.1.40000 > 198.18.0.2.80: Flags [P.], seq 1000:1010, ack 5, win 502, length 10"
    );
    let Some(L4::Tcp(t)) = pkt.l4 else {
        panic!("not TCP: {pkt:?}")
    };
    assert_eq!(
        (t.sport, t.dport, t.seq, t.ack, t.window),
        (40000, 80, 1000, 5, 502)
    );
    assert_eq!((t.data_offset, t.payload_len), (5, Some(10)));
    assert!(t.has(Tcp::PSH) && t.has(Tcp::ACK) && !t.has(Tcp::SYN));
}

#[test]
fn tcp_ecn_urgent_and_options() {
    let syn = tcp(1, 2, 7, 0, Tcp::SYN | Tcp::ECE | Tcp::CWR, 100);
    assert_eq!(
        tcp_summary(&syn),
        "IP 198.18.0.1.1 > 198.18.0.2.2: Flags [SEW], seq 7, win 100, length 0"
    );
    let mut urg = tcp(1, 2, 7, 8, Tcp::URG | Tcp::ACK, 100);
    urg[18..20].copy_from_slice(&3u16.to_be_bytes());
    assert_eq!(
        tcp_summary(&urg),
        "IP 198.18.0.1.1 > 198.18.0.2.2: Flags [.U], seq 7, ack 8, win 100, urg 3, length 0"
    );
    // MSS, SACK permitted, timestamps, window scale: 20 bytes of options.
    let options = [
        2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];
    let seg = tcp_with(40000, 443, 1, 0, Tcp::SYN, 64240, &options, &[]);
    let pkt = dec(&over_eth(&ipv4(6, &seg)), &l2(0, IP));
    let Some(L4::Tcp(t)) = pkt.l4 else {
        panic!("not TCP: {pkt:?}")
    };
    assert_eq!(
        (t.data_offset, t.header_len(), t.payload_len),
        (10, 40, Some(0))
    );
    assert_eq!(pkt.truncated, None);
}

#[test]
fn ethernet_padding_is_not_payload() {
    let mut frame = over_eth(&ipv4(6, &tcp(40000, 80, 5, 6, Tcp::ACK, 502)));
    frame.resize(60, 0);
    assert_eq!(
        sum(&frame, &l2(0, IP)),
        "IP 198.18.0.1.40000 > 198.18.0.2.80: Flags [.], seq 5, ack 6, win 502, length 0"
    );
}

#[test]
fn a_128_byte_capture_of_a_big_segment_is_complete_as_far_as_headers_go() {
    let seg = tcp_with(40000, 80, 1, 1, Tcp::ACK, 502, &[], &[0; 1400]);
    let frame = over_eth(&ipv4(6, &seg));
    let pkt = dec(&frame[..128], &l2(0, IP));
    assert_eq!(pkt.truncated, None);
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.1.40000 > 198.18.0.2.80: Flags [.], seq 1:1401, ack 1, win 502, length 1400"
    );
}

#[test]
fn gso_total_length_zero_means_unknown_length() {
    let ip = V4 {
        tot_len: Some(0),
        ..V4::new(6)
    }
    .build(&tcp(1, 2, 3, 4, Tcp::ACK, 5));
    let pkt = dec(&over_eth(&ip), &l2(0, IP));
    assert_eq!(pkt.malformed, None);
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.1.1 > 198.18.0.2.2: Flags [.], seq 3, ack 4, win 5"
    );
}

#[test]
fn ipv4_options_ihl_6() {
    let ip = V4 {
        options: vec![0x94, 4, 0, 0],
        ..V4::new(17)
    }
    .build(&udp(5000, 6000, &[1; 4]));
    let pkt = dec(&over_eth(&ip), &l2(0, IP));
    let Some(L3::Ipv4(v4)) = &pkt.l3 else {
        panic!("not IPv4: {pkt:?}")
    };
    assert_eq!(
        (v4.ihl, v4.header_len(), v4.payload_len()),
        (6, 24, Some(12))
    );
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.1.5000 > 198.18.0.2.6000: UDP, length 4"
    );
}

#[test]
fn first_fragment_has_ports_later_fragments_do_not() {
    // The UDP header announces 3000 bytes of data; this fragment carries 100.
    let mut dgram = udp(40000, 9, &[0; 92]);
    dgram[4..6].copy_from_slice(&3008u16.to_be_bytes());
    let first = V4 {
        id: 77,
        frag: 0x2000,
        ..V4::new(17)
    }
    .build(&dgram);
    let pkt = dec(&over_eth(&first), &l2(0, IP));
    assert_eq!(
        pkt.fragment(),
        Some(Fragment {
            id: 77,
            offset: 0,
            more: true
        })
    );
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.1.40000 > 198.18.0.2.9: UDP, length 3000, frag id 77, more fragments"
    );

    let later = V4 {
        id: 77,
        frag: 185,
        ..V4::new(17)
    }
    .build(&[0; 100]);
    let pkt = dec(&over_eth(&later), &l2(0, IP));
    assert_eq!(pkt.l4, None);
    assert_eq!(pkt.ports(), None);
    assert_eq!(pkt.l4_proto(), Some(17));
    assert_eq!(
        pkt.fragment().map(|f| (f.offset, f.more)),
        Some((1480, false))
    );
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.1 > 198.18.0.2: UDP, frag id 77, frag off 1480, length 100"
    );
    let middle = V4 {
        id: 77,
        frag: 0x2000 | 185,
        ..V4::new(17)
    }
    .build(&[0; 8]);
    assert_eq!(
        sum(&over_eth(&middle), &l2(0, IP)),
        "IP 198.18.0.1 > 198.18.0.2: UDP, frag id 77, frag off 1480, more fragments, length 8"
    );
    assert_eq!((pkt.truncated, pkt.malformed), (None, None));
}

/// What 198.18.0.2 sends back when 198.18.0.1:40000 hits closed UDP port 9.
fn port_unreachable(quote: &[u8]) -> Vec<u8> {
    let icmp_msg = icmp(3, 3, [0; 4], quote);
    over_eth(
        &V4 {
            src: B,
            dst: A,
            ..V4::new(1)
        }
        .build(&icmp_msg),
    )
}

#[test]
fn icmp_port_unreachable_quotes_the_udp_header() {
    let quote = ipv4(17, &udp(40000, 9, &[]));
    let pkt = dec(&port_unreachable(&quote), &l2(0, IP));
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.2 > 198.18.0.1: ICMP 198.18.0.2 udp port 9 unreachable, length 36"
    );
    let Some(L4::Icmp(m)) = &pkt.l4 else {
        panic!("not ICMP: {pkt:?}")
    };
    assert_eq!(
        m.quoted,
        Some(Quoted {
            src: IpAddr::from(A),
            dst: IpAddr::from(B),
            proto: 17,
            ports: Some((40000, 9)),
        })
    );
    assert_eq!(m.type_name(), Some("destination unreachable"));
    assert_eq!(m.code_name(), Some("port unreachable"));
    assert_eq!(pkt.ports(), None, "the ports belong to the quoted packet");

    assert_eq!(
        sum(&port_unreachable(&[]), &l2(0, IP)),
        "IP 198.18.0.2 > 198.18.0.1: ICMP port unreachable, length 8"
    );
}

#[test]
fn icmp_errors_are_named() {
    let quote = ipv4(6, &tcp(40000, 80, 1, 0, Tcp::SYN, 1)[..8]);
    let wrap = |m: Vec<u8>| {
        sum(
            &over_eth(
                &V4 {
                    src: B,
                    dst: A,
                    ..V4::new(1)
                }
                .build(&m),
            ),
            &l2(0, IP),
        )
    };
    assert_eq!(
        wrap(icmp(3, 4, [0, 0, 0x05, 0x78], &quote)),
        "IP 198.18.0.2 > 198.18.0.1: ICMP 198.18.0.2 unreachable - need to frag (mtu 1400), length 36"
    );
    assert_eq!(
        wrap(icmp(3, 1, [0; 4], &quote)),
        "IP 198.18.0.2 > 198.18.0.1: ICMP host 198.18.0.2 unreachable, length 36"
    );
    assert_eq!(
        wrap(icmp(3, 13, [0; 4], &quote)),
        "IP 198.18.0.2 > 198.18.0.1: ICMP 198.18.0.2 unreachable - admin prohibited filter, length 36"
    );
    assert_eq!(
        wrap(icmp(11, 0, [0; 4], &quote)),
        "IP 198.18.0.2 > 198.18.0.1: ICMP time exceeded in-transit, length 36"
    );
    assert_eq!(
        wrap(icmp(5, 1, [198, 18, 0, 254], &quote)),
        "IP 198.18.0.2 > 198.18.0.1: ICMP redirect 198.18.0.2 to host 198.18.0.254, length 36"
    );
    assert_eq!(
        wrap(icmp(12, 0, [20, 0, 0, 0], &quote)),
        "IP 198.18.0.2 > 198.18.0.1: ICMP parameter problem - octet 20, length 36"
    );
    assert_eq!(
        wrap(icmp(42, 7, [0; 4], &[])),
        "IP 198.18.0.2 > 198.18.0.1: ICMP type 42, code 7, length 8"
    );
}

#[test]
fn other_ip_protocols_are_named_with_their_length() {
    assert_eq!(
        sum(&over_eth(&ipv4(47, &[0; 24])), &l2(0, IP)),
        "IP 198.18.0.1 > 198.18.0.2: GRE, length 24"
    );
    let pkt = dec(&over_eth(&ipv4(253, &[0; 4])), &l2(0, IP));
    assert_eq!(pkt.l4, Some(L4::Other(253)));
    assert_eq!(
        pkt.summary(),
        "IP 198.18.0.1 > 198.18.0.2: ip-proto-253, length 4"
    );
}

#[test]
fn ipv4_serializes_with_stable_names() {
    let pkt = dec(
        &over_eth(&ipv4(6, &tcp(40000, 80, 123, 0, Tcp::SYN, 64240))),
        &l2(0, IP),
    );
    let json = serde_json::to_value(&pkt).expect("serializable");
    assert_eq!(json["eth"]["src"], "02:00:00:00:00:01");
    assert_eq!(json["eth"]["ethertype"], 0x0800);
    assert_eq!(json["l3"]["ipv4"]["src"], "198.18.0.1");
    assert_eq!(json["l4"]["tcp"]["dport"], 80);
    assert_eq!(json["l4"]["tcp"]["flags"], 2);
    assert_eq!(json["truncated"], serde_json::Value::Null);
}
