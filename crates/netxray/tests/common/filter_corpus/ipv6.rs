//! IPv6 frames: TCP, UDP, ICMPv6 (echo, neighbour discovery, MLD), SCTP, and extension
//! header chains before them.

use super::*;

pub(super) fn all(c: &mut Corpus) {
    use tcp_flags::*;
    let t = |sport, dport, flags| tcp(sport, dport, flags).build(&[]);
    let u = |sport, dport, n| udp(sport, dport, &fill(n));
    let tp = ip6(A6, B6, proto::TCP, &[]);
    c.v6(
        "tcp6 2001:db8::1.40000 > ::2.80 SYN",
        AB,
        &tp,
        &t(40000, 80, SYN),
    );
    c.v6(
        "tcp6 ::2.80 > ::1.40000 SYN|ACK",
        BA,
        &ip6(B6, A6, proto::TCP, &[]),
        &t(80, 40000, SYN | ACK),
    );
    let get = Tcp {
        ack: 1,
        ..tcp(40001, 443, PSH | ACK)
    };
    c.v6(
        "tcp6 ::1 > 2001:db8:1::1.443 PSH|ACK 'GET '",
        AB,
        &ip6(A6, C6, proto::TCP, &[]),
        &get.build(b"GET / HTTP/1.1\r\n"),
    );
    c.v6(
        "tcp6 ::1 > ::2.8080 FIN|ACK",
        AB,
        &tp,
        &t(65535, 8080, FIN | ACK),
    );
    c.v6(
        "tcp6 2001:db8:1::1.22 > 2001:db8:ffff::1 RST",
        AB,
        &ip6(C6, D6, proto::TCP, &[]),
        &t(22, 50000, RST),
    );
    let up = ip6(A6, B6, proto::UDP, &[]);
    c.v6("udp6 ::1.53000 > ::2.53", AB, &up, &u(53000, 53, 20));
    c.v6(
        "udp6 ::2.53 > ::1.53000",
        BA,
        &ip6(B6, A6, proto::UDP, &[]),
        &u(53, 53000, 30),
    );
    let ip = ip6(A6, B6, proto::ICMPV6, &[]);
    c.v6(
        "icmp6 ::1 > ::2 echo request",
        AB,
        &ip,
        &icmp6_echo(false, 1, 1, &fill(8)),
    );
    c.v6(
        "icmp6 ::2 > ::1 echo reply",
        BA,
        &ip6(B6, A6, proto::ICMPV6, &[]),
        &icmp6_echo(true, 1, 1, &fill(8)),
    );
    let sol_node = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2);
    let ns_l2 = L2 {
        dst: [0x33, 0x33, 0xff, 0x00, 0x00, 0x02],
        ..AB
    };
    c.v6(
        "icmp6 fe80::1 > ff02::1:ff00:2 neighbor solicitation",
        ns_l2,
        &Ipv6 {
            hop_limit: 255,
            ..ip6(LL1, sol_node, proto::ICMPV6, &[])
        },
        &icmp6_neighbor_solicit(LL2, MAC_A),
    );
    c.v6(
        "icmp6 fe80::2 > fe80::1 neighbor advertisement",
        BA,
        &Ipv6 {
            hop_limit: 255,
            ..ip6(LL2, LL1, proto::ICMPV6, &[])
        },
        &icmp6_neighbor_advert(LL2, MAC_B),
    );
    let rs_l2 = L2 {
        dst: [0x33, 0x33, 0, 0, 0, 2],
        ..AB
    };
    c.v6(
        "icmp6 fe80::1 > ff02::2 router solicitation",
        rs_l2,
        &Ipv6 {
            hop_limit: 255,
            ..ip6(LL1, ALL_ROUTERS, proto::ICMPV6, &[])
        },
        &icmp6_router_solicit(),
    );
    let quoted = ip6(A6, B6, proto::UDP, &[]).build(&u(40000, 33434, 0));
    c.v6(
        "icmp6 ::2 > ::1 port unreachable (type 1 code 4)",
        BA,
        &ip6(B6, A6, proto::ICMPV6, &[]),
        &icmp6(
            icmp6_type::UNREACH,
            4,
            &[[0; 4].as_slice(), &quoted].concat(),
        ),
    );
    // Extension headers.
    use Ipv6Ext::*;
    c.v6(
        "udp6 ::1 > ::2.53 after hop-by-hop",
        AB,
        &ip6(A6, B6, proto::UDP, &[HopByHop]),
        &u(40001, 53, 4),
    );
    c.v6(
        "tcp6 ::1 > ::2.80 after hop-by-hop",
        AB,
        &ip6(A6, B6, proto::TCP, &[HopByHop]),
        &t(40002, 80, SYN),
    );
    c.v6(
        "tcp6 ::1 > ::2.443 after routing",
        AB,
        &ip6(A6, B6, proto::TCP, &[Routing]),
        &t(40003, 443, SYN),
    );
    c.v6(
        "tcp6 ::1 > ::2.80 after fragment (offset 0, M)",
        AB,
        &ip6(
            A6,
            B6,
            proto::TCP,
            &[Fragment {
                offset: 0,
                more: true,
            }],
        ),
        &t(40004, 80, SYN),
    );
    c.v6(
        "udp6 ::1 > ::2 after fragment (offset 100, last; data looks like port 53)",
        AB,
        &ip6(
            A6,
            B6,
            proto::UDP,
            &[Fragment {
                offset: 100,
                more: false,
            }],
        ),
        &u(53, 53, 4),
    );
    c.v6(
        "icmp6 ::1 > ::2 echo after destination options",
        AB,
        &ip6(A6, B6, proto::ICMPV6, &[DestOpts]),
        &icmp6_echo(false, 2, 2, &[]),
    );
    c.v6(
        "tcp6 ::1 > ::2.80 after hop-by-hop, dest opts, routing, fragment",
        AB,
        &ip6(
            A6,
            B6,
            proto::TCP,
            &[
                HopByHop,
                DestOpts,
                Routing,
                Fragment {
                    offset: 0,
                    more: false,
                },
            ],
        ),
        &t(40005, 80, SYN),
    );
    c.v6(
        "udp6 ::1 > ::2.53 after fragment then dest opts",
        AB,
        &ip6(
            A6,
            B6,
            proto::UDP,
            &[
                Fragment {
                    offset: 0,
                    more: false,
                },
                DestOpts,
            ],
        ),
        &u(40006, 53, 4),
    );
    let mld_l2 = L2 {
        dst: [0x33, 0x33, 0, 0, 0, 0x16],
        ..AB
    };
    c.v6(
        "icmp6 fe80::1 > ff02::16 MLDv2 report after hop-by-hop",
        mld_l2,
        &Ipv6 {
            hop_limit: 1,
            ..ip6(
                LL1,
                Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16),
                proto::ICMPV6,
                &[HopByHop],
            )
        },
        &icmp6(143, 0, &[0, 0, 0, 0]),
    );
    c.v6(
        "ip6 ::1 > ::2 no next header",
        AB,
        &ip6(A6, B6, proto::NONE, &[]),
        &[],
    );
    c.v6(
        "sctp6 ::1.5000 > ::2.80",
        AB,
        &ip6(A6, B6, proto::SCTP, &[]),
        &sctp(5000, 80, 1, &[]),
    );
    let all_nodes_l2 = L2 {
        dst: MAC_MCAST6,
        ..AB
    };
    c.v6(
        "udp6 ::1 > ff02::1.9",
        all_nodes_l2,
        &ip6(A6, ALL_NODES, proto::UDP, &[]),
        &u(40007, 9, 4),
    );
    let dhcp6_l2 = L2 {
        dst: [0x33, 0x33, 0, 1, 0, 2],
        ..AB
    };
    c.v6(
        "udp6 fe80::1.546 > ff02::1:2.547",
        dhcp6_l2,
        &ip6(
            LL1,
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2),
            proto::UDP,
            &[],
        ),
        &u(546, 547, 8),
    );
    c.v6(
        "tcp6 2001:db8:ffff::1.8080 > ::2.65535 ACK",
        AB,
        &ip6(D6, B6, proto::TCP, &[]),
        &t(8080, 65535, ACK),
    );
    c.v6(
        "ip6 proto 1 (ICMPv4 number in IPv6) ::1 > ::2",
        AB,
        &ip6(A6, B6, proto::ICMP, &[]),
        &icmp_echo(false, 3, 3, &[]),
    );
}
