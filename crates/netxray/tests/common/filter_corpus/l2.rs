//! ARP/RARP, 802.3/LLC and other ethertypes, and VLAN-tagged (802.1Q, 802.1ad, 0x9100)
//! and double-tagged frames.

use super::*;

pub(super) fn arp_and_l2(c: &mut Corpus) {
    use arp_op::*;
    let z = [0u8; 6];
    let who_has = arp(REQUEST, MAC_A, A4, z, B4);
    c.add(
        "arp who-has .2 tell .1",
        ether(MAC_BROADCAST, MAC_A, &[], ethertype::ARP, &who_has),
        &["arp"],
    );
    c.add(
        "arp reply .2 is-at 02:..:0b",
        ether(
            MAC_A,
            MAC_B,
            &[],
            ethertype::ARP,
            &arp(REPLY, MAC_B, B4, MAC_A, A4),
        ),
        &["arp"],
    );
    c.add(
        "arp gratuitous 198.18.1.10",
        ether(
            MAC_BROADCAST,
            MAC_C,
            &[],
            ethertype::ARP,
            &arp(REQUEST, MAC_C, D4, z, D4),
        ),
        &["arp"],
    );
    let mut padded = ether(MAC_BROADCAST, MAC_A, &[], ethertype::ARP, &who_has);
    padded.resize(60, 0);
    c.add("arp who-has .2, padded to 60 bytes", padded, &["arp"]);
    c.add(
        "rarp request for 02:..:0c",
        ether(
            MAC_BROADCAST,
            MAC_C,
            &[],
            ethertype::RARP,
            &arp(
                RREQUEST,
                MAC_C,
                Ipv4Addr::UNSPECIFIED,
                MAC_C,
                Ipv4Addr::UNSPECIFIED,
            ),
        ),
        &["rarp"],
    );
    c.add(
        "rarp reply 02:..:0c is 198.18.1.10",
        ether(
            MAC_C,
            MAC_B,
            &[],
            ethertype::RARP,
            &arp(RREPLY, MAC_B, B4, MAC_C, D4),
        ),
        &["rarp"],
    );
    let stp_mac = [0x01, 0x80, 0xc2, 0, 0, 0];
    c.add(
        "802.3 LLC STP (dsap 0x42) to 01:80:c2:00:00:00",
        llc_frame(stp_mac, MAC_A, 0x42, 0x42, &fill(35)),
        &["llc"],
    );
    c.add(
        "802.3 LLC SNAP (dsap 0xaa)",
        llc_frame(
            MAC_B,
            MAC_A,
            0xaa,
            0xaa,
            &[0, 0, 0, 0x08, 0x00, 0x45, 0, 0, 20],
        ),
        &["llc"],
    );
    let mut raw_ipx = ether(MAC_B, MAC_A, &[], 30, &[0xff, 0xff]);
    raw_ipx.extend_from_slice(&fill(28));
    c.add("802.3 raw Novell (0xffff after the length)", raw_ipx, &[]);
    c.add(
        "ethertype 0x88cc (LLDP) to 01:80:c2:00:00:0e",
        ether(
            [0x01, 0x80, 0xc2, 0, 0, 0x0e],
            MAC_A,
            &[],
            0x88cc,
            &fill(30),
        ),
        &[],
    );
    let mpls_label = [0x00, 0x01, 0x01, 0x40]; // label 16, S=1, TTL 64
    let inner = ip4(A4, B4, proto::ICMP).build(&icmp_echo(false, 4, 4, &[]));
    c.add(
        "MPLS (0x8847) label 16 carrying IPv4",
        ether(
            MAC_B,
            MAC_A,
            &[],
            0x8847,
            &[&mpls_label[..], &inner].concat(),
        ),
        &[],
    );
    c.add(
        "PPPoE discovery (0x8863) PADI, broadcast",
        ether(
            MAC_BROADCAST,
            MAC_A,
            &[],
            0x8863,
            &[0x11, 0x09, 0, 0, 0, 4, 1, 1, 0, 0],
        ),
        &[],
    );
    c.add(
        "ethertype 0x0600 (XNS)",
        ether(MAC_B, MAC_A, &[], 0x0600, &fill(20)),
        &[],
    );
    c.add(
        "type/length field 0x05dd (neither a length nor a registered type)",
        ether(MAC_B, MAC_A, &[], 0x05dd, &fill(20)),
        &[],
    );
    c.add(
        "802.3 length exactly 0x05dc with a 3-byte payload",
        {
            let mut f = ether(MAC_B, MAC_A, &[], 1500, &[0xe0, 0xe0, 0x03]);
            f.extend_from_slice(&fill(10));
            f
        },
        &["llc"],
    );
}

pub(super) fn vlan(c: &mut Corpus) {
    use tcp_flags::*;
    let t = |sport, dport, flags| tcp(sport, dport, flags).build(&[]);
    let u = |sport, dport| udp(sport, dport, &fill(8));
    let v100 = [VlanTag::dot1q(100)];
    let p = ip4(A4, B4, proto::TCP);
    c.v4(
        "vlan 100 tcp .1 > .2.80 SYN",
        tagged(&v100),
        &p,
        &t(40000, 80, SYN),
    );
    c.v4(
        "vlan 100 tcp .2.80 > .1 ACK",
        L2 { tags: &v100, ..BA },
        &ip4(B4, A4, proto::TCP),
        &t(80, 40000, ACK),
    );
    c.v4(
        "vlan 1 udp .1 > .2.53",
        tagged(&[VlanTag::dot1q(1)]),
        &ip4(A4, B4, proto::UDP),
        &u(40001, 53),
    );
    let prio = [VlanTag {
        pcp: 5,
        ..VlanTag::dot1q(0)
    }];
    c.v4(
        "vlan 0 (priority tag, pcp 5) icmp echo .1 > .2",
        tagged(&prio),
        &ip4(A4, B4, proto::ICMP),
        &icmp_echo(false, 5, 5, &[]),
    );
    c.v4(
        "vlan 4095 tcp .1 > .2.443",
        tagged(&[VlanTag::dot1q(4095)]),
        &p,
        &t(40002, 443, SYN),
    );
    c.v6(
        "vlan 100 tcp6 ::1 > ::2.80",
        tagged(&v100),
        &ip6(A6, B6, proto::TCP, &[]),
        &t(40003, 80, SYN),
    );
    c.v6(
        "vlan 200 icmp6 echo ::1 > ::2",
        tagged(&[VlanTag::dot1q(200)]),
        &ip6(A6, B6, proto::ICMPV6, &[]),
        &icmp6_echo(false, 6, 6, &[]),
    );
    c.add(
        "vlan 100 arp who-has .2",
        ether(
            MAC_BROADCAST,
            MAC_A,
            &v100,
            ethertype::ARP,
            &arp(arp_op::REQUEST, MAC_A, A4, [0; 6], B4),
        ),
        &["vlan"],
    );
    c.v4(
        "802.1ad 100 / 802.1Q 200 tcp .1 > .2.80",
        tagged(&[VlanTag::dot1ad(100), VlanTag::dot1q(200)]),
        &p,
        &t(40004, 80, SYN),
    );
    c.v6(
        "802.1Q 1 / 802.1Q 100 udp6 ::1 > ::2.53",
        tagged(&[VlanTag::dot1q(1), VlanTag::dot1q(100)]),
        &ip6(A6, B6, proto::UDP, &[]),
        &u(40005, 53),
    );
    c.add(
        "802.1ad 4095 / 802.1Q 0 arp who-has .2",
        ether(
            MAC_BROADCAST,
            MAC_A,
            &[VlanTag::dot1ad(4095), VlanTag::dot1q(0)],
            ethertype::ARP,
            &arp(arp_op::REQUEST, MAC_A, A4, [0; 6], B4),
        ),
        &["vlan"],
    );
    c.v4(
        "vlan 100 udp .1 > .2.53, IPv4 IHL 6",
        tagged(&v100),
        &Ipv4 {
            options: vec![0x94, 0x04, 0, 0],
            ..ip4(A4, B4, proto::UDP)
        },
        &u(40006, 53),
    );
    c.v4(
        "vlan 100 ip proto tcp fragment offset 10 (data looks like port 80)",
        tagged(&v100),
        &Ipv4 {
            frag_offset: 10,
            ..p.clone()
        },
        &t(80, 80, SYN),
    );
    c.v4(
        "vlan 300 (TPID 0x9100, DEI) udp .1 > .2.8080",
        tagged(&[VlanTag {
            tpid: 0x9100,
            dei: true,
            ..VlanTag::dot1q(300)
        }]),
        &ip4(A4, B4, proto::UDP),
        &u(40007, 8080),
    );
    c.v4(
        "vlan 100 tcp .1 > .2.80 with a broadcast MAC",
        L2 {
            dst: MAC_BROADCAST,
            ..tagged(&v100)
        },
        &p,
        &t(40008, 80, PSH | ACK),
    );
    let mut cut = ether(MAC_B, MAC_A, &v100, ethertype::IPV4, &[]);
    cut.truncate(16);
    c.add(
        "vlan 100 tag with no inner ethertype (16 bytes)",
        cut,
        &["vlan"],
    );
}
