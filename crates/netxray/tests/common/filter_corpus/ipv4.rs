//! IPv4 frames: TCP (flags, ports, options, IPv4 options, fragments), UDP, ICMP, IGMP,
//! SCTP, GRE and other protocol numbers, broadcast and multicast destinations.

use super::*;

pub(super) fn tcp_packets(c: &mut Corpus) {
    use tcp_flags::*;
    let t = |sport, dport, flags| tcp(sport, dport, flags).build(&[]);
    let p = ip4(A4, B4, proto::TCP);
    let r = ip4(B4, A4, proto::TCP);
    c.v4(
        "tcp 198.18.0.1.40000 > .2.80 SYN",
        AB,
        &p,
        &t(40000, 80, SYN),
    );
    c.v4(
        "tcp .2.80 > .1.40000 SYN|ACK",
        BA,
        &r,
        &t(80, 40000, SYN | ACK),
    );
    c.v4("tcp .1.40000 > .2.80 ACK", AB, &p, &t(40000, 80, ACK));
    let get = b"GET / HTTP/1.1\r\n";
    let seg = Tcp {
        ack: 1,
        ..tcp(40000, 80, PSH | ACK)
    };
    c.v4("tcp .1 > .2.80 PSH|ACK 'GET '", AB, &p, &seg.build(get));
    c.v4("tcp .2.80 > .1 FIN|ACK", BA, &r, &t(80, 40000, FIN | ACK));
    c.v4("tcp .1 > .2.80 RST", AB, &p, &t(40000, 80, RST));
    c.v4("tcp .1.1 > .2.22 SYN", AB, &p, &t(1, 22, SYN));
    let p_ac = ip4(A4, C4, proto::TCP);
    c.v4(
        "tcp .1.22 > 198.19.1.1.443 PSH|ACK",
        AB,
        &p_ac,
        &t(22, 443, PSH | ACK),
    );
    let urg = Tcp {
        urgent: 7,
        ..tcp(443, 8080, URG | ACK)
    };
    let p_ca = ip4(C4, A4, proto::TCP);
    c.v4(
        "tcp 198.19.1.1.443 > .1.8080 URG|ACK",
        BA,
        &p_ca,
        &urg.build(b"urgent!"),
    );
    c.v4("tcp .1.0 > .2.0 no flags", AB, &p, &t(0, 0, 0));
    c.v4(
        "tcp .1.65535 > .2.65535 FIN|PSH|URG",
        AB,
        &p,
        &t(65535, 65535, FIN | PSH | URG),
    );
    c.v4(
        "tcp .1 > .2.8080 SYN|ECE|CWR",
        AB,
        &p,
        &t(40001, 8080, SYN | ECE | CWR),
    );
    let opts = Tcp {
        // MSS 1460, SACK permitted, timestamps, NOP, window scale 7: 20 bytes.
        options: vec![
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ],
        ..tcp(40002, 443, SYN)
    };
    c.v4(
        "tcp .1 > .2.443 SYN, 20 bytes of options",
        AB,
        &p,
        &opts.build(&[]),
    );
    let opts_get = Tcp {
        options: vec![1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1],
        ..tcp(40003, 80, PSH | ACK)
    };
    c.v4(
        "tcp .1 > .2.80 PSH|ACK, 12 bytes of options, 'GET '",
        AB,
        &p,
        &opts_get.build(b"GET /x HTTP/1.0\r\n"),
    );
    let p_ad = ip4(A4, D4, proto::TCP);
    c.v4("tcp .1 > 198.18.1.10.53 SYN", AB, &p_ad, &t(40004, 53, SYN));
    let with_opts = Ipv4 {
        options: vec![0x94, 0x04, 0, 0], // router alert
        ..p.clone()
    };
    c.v4(
        "tcp .1 > .2.80 SYN, IPv4 IHL 6",
        AB,
        &with_opts,
        &t(40005, 80, SYN),
    );
    let first_frag = Ipv4 {
        more_fragments: true,
        id: 0x4242,
        ..p.clone()
    };
    c.v4(
        "tcp .1 > .2.80 first fragment (MF, offset 0)",
        AB,
        &first_frag,
        &t(40006, 80, PSH | ACK),
    );
    let later_frag = Ipv4 {
        frag_offset: 185,
        more_fragments: true,
        id: 0x4242,
        ..p.clone()
    };
    // Bytes that would read as ports 80 > 80 and SYN if taken for a TCP header.
    c.v4(
        "ip proto tcp .1 > .2 fragment offset 185 (data looks like port 80)",
        AB,
        &later_frag,
        &t(80, 80, SYN),
    );
    let df = Ipv4 {
        dont_fragment: true,
        ..p.clone()
    };
    c.v4("tcp .1 > .2.443 DF", AB, &df, &t(40007, 443, SYN | ACK));
    let low_ttl = Ipv4 {
        ttl: 1,
        tos: 0x10,
        ..p_ad.clone()
    };
    c.v4(
        "tcp .1 > 198.18.1.10.80 ttl 1 tos 0x10",
        AB,
        &low_ttl,
        &t(40008, 80, ACK),
    );
    let p_cd = ip4(C4, D4, proto::TCP);
    c.v4(
        "tcp 198.19.1.1 > 198.18.1.10.22 SYN",
        AB,
        &p_cd,
        &t(50000, 22, SYN),
    );
    // TCP header with a zero data offset byte: tcp[12] / x divides by zero.
    let mut zero_off = t(40009, 80, ACK);
    zero_off[12] = 0;
    c.v4("tcp .1 > .2.80 data offset 0 (bogus)", AB, &p, &zero_off);
}

pub(super) fn other_packets(c: &mut Corpus) {
    let u = |sport, dport, n| udp(sport, dport, &fill(n));
    let p = ip4(A4, B4, proto::UDP);
    let r = ip4(B4, A4, proto::UDP);
    c.v4("udp .1.53000 > .2.53", AB, &p, &u(53000, 53, 20));
    c.v4("udp .2.53 > .1.53000", BA, &r, &u(53, 53000, 36));
    let bc = L2 {
        dst: MAC_BROADCAST,
        ..AB
    };
    c.v4(
        "udp .1.68 > 255.255.255.255.67, broadcast MAC",
        bc,
        &ip4(A4, BCAST4, proto::UDP),
        &u(68, 67, 16),
    );
    c.v4(
        "udp .1 > 198.19.255.255.9, broadcast MAC",
        bc,
        &ip4(A4, NET_BCAST4, proto::UDP),
        &u(40000, 9, 4),
    );
    let mdns = L2 {
        dst: [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb],
        ..AB
    };
    c.v4(
        "udp .1.5353 > 224.0.0.251.5353, multicast MAC",
        mdns,
        &ip4(A4, Ipv4Addr::new(224, 0, 0, 251), proto::UDP),
        &u(5353, 5353, 12),
    );
    c.v4("udp .1.1 > .2.65535", AB, &p, &u(1, 65535, 0));
    c.v4("udp .1.8080 > .2.443", AB, &p, &u(8080, 443, 24));
    c.v4("udp .1.40000 > .2.0", AB, &p, &u(40000, 0, 8));
    let frag = Ipv4 {
        frag_offset: 1,
        ..p.clone()
    };
    c.v4(
        "ip proto udp last fragment offset 1 (data looks like port 53)",
        AB,
        &frag,
        &u(53, 53, 4),
    );
    let big_ihl = Ipv4 {
        // timestamp option filling the header to IHL 15
        options: {
            let mut o = vec![0x44, 40, 5, 0];
            o.extend_from_slice(&[0; 36]);
            o
        },
        ..p.clone()
    };
    c.v4(
        "udp .1 > .2.53, IPv4 IHL 15",
        AB,
        &big_ihl,
        &u(40010, 53, 4),
    );
    // ICMP
    let i = ip4(A4, B4, proto::ICMP);
    let ir = ip4(B4, A4, proto::ICMP);
    c.v4(
        "icmp .1 > .2 echo request",
        AB,
        &i,
        &icmp_echo(false, 7, 1, &fill(8)),
    );
    c.v4(
        "icmp .2 > .1 echo reply",
        BA,
        &ir,
        &icmp_echo(true, 7, 1, &fill(8)),
    );
    let quoted = ip4(A4, B4, proto::UDP).build(&u(40000, 33434, 0));
    c.v4(
        "icmp .2 > .1 port unreachable (type 3 code 3)",
        BA,
        &ir,
        &icmp(icmp_type::UNREACH, 3, [0; 4], &quoted),
    );
    c.v4(
        "icmp .2 > .1 host unreachable (type 3 code 1)",
        BA,
        &ir,
        &icmp(icmp_type::UNREACH, 1, [0; 4], &quoted),
    );
    c.v4(
        "icmp 198.18.1.10 > .1 time exceeded (type 11 code 0)",
        BA,
        &ip4(D4, A4, proto::ICMP),
        &icmp(icmp_type::TIME_EXCEEDED, 0, [0; 4], &quoted),
    );
    c.v4(
        "icmp .1 > 198.19.255.255 echo, broadcast MAC",
        bc,
        &ip4(A4, NET_BCAST4, proto::ICMP),
        &icmp_echo(false, 8, 1, &[]),
    );
    // IGMP, SCTP, GRE, others
    let all_hosts = L2 {
        dst: MAC_MCAST4,
        ..BA
    };
    c.v4(
        "igmp .2 > 224.0.0.1 membership query",
        all_hosts,
        &Ipv4 {
            ttl: 1,
            options: vec![0x94, 0x04, 0, 0],
            ..ip4(B4, Ipv4Addr::new(224, 0, 0, 1), proto::IGMP)
        },
        &igmp(0x11, 100, Ipv4Addr::UNSPECIFIED),
    );
    let mdns_group = Ipv4Addr::new(224, 0, 0, 251);
    c.v4(
        "igmp .1 > 224.0.0.251 v2 report",
        mdns,
        &Ipv4 {
            ttl: 1,
            ..ip4(A4, mdns_group, proto::IGMP)
        },
        &igmp(0x16, 0, mdns_group),
    );
    c.v4(
        "sctp .1.5000 > .2.80",
        AB,
        &ip4(A4, B4, proto::SCTP),
        &sctp(5000, 80, 0xdead_beef, &[]),
    );
    let inner = ip4(C4, D4, proto::ICMP).build(&icmp_echo(false, 9, 9, &[]));
    c.v4(
        "gre .1 > .2 carrying IPv4",
        AB,
        &ip4(A4, B4, proto::GRE),
        &gre(ethertype::IPV4, &inner),
    );
    c.v4(
        "ip proto 41 (IPv6 in IPv4) .1 > .2",
        AB,
        &ip4(A4, B4, 41),
        &ip6(A6, B6, proto::NONE, &[]).build(&[]),
    );
    c.v4("ip proto 200 .1 > .2", AB, &ip4(A4, B4, 200), &fill(12));
    c.v4(
        "udp 198.18.255.255 > 198.19.0.0.53",
        AB,
        &ip4(
            Ipv4Addr::new(198, 18, 255, 255),
            Ipv4Addr::new(198, 19, 0, 0),
            proto::UDP,
        ),
        &u(40011, 53, 4),
    );
    let mcast_ip_unicast_mac = ip4(A4, Ipv4Addr::new(224, 0, 0, 1), proto::UDP);
    c.v4(
        "udp .1 > 224.0.0.1 with a unicast MAC",
        AB,
        &mcast_ip_unicast_mac,
        &u(40012, 9, 4),
    );
    let mcast_mac = L2 {
        dst: MAC_MCAST4,
        ..AB
    };
    c.v4(
        "tcp .1 > .2.80 with a multicast MAC",
        mcast_mac,
        &ip4(A4, B4, proto::TCP),
        &tcp(40013, 80, tcp_flags::SYN).build(&[]),
    );
    let group_src = L2 {
        src: MAC_GROUP_SRC,
        ..AB
    };
    c.v4(
        "udp .1 > .2.53 from a group-bit source MAC",
        group_src,
        &p,
        &u(40014, 53, 4),
    );
}
