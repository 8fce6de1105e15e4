//! Frames whose headers are cut short (loads past their end reject the packet), and
//! long frames for `len`, `greater` and `less`.

use super::*;

pub(super) fn short_and_long(c: &mut Corpus) {
    use tcp_flags::*;
    let full = |ip: &Ipv4, l4: &[u8]| ether(MAC_B, MAC_A, &[], ethertype::IPV4, &ip.build(l4));
    let p = ip4(A4, B4, proto::TCP);
    let syn = tcp(40000, 80, SYN).build(&[]);
    c.cut(
        "tcp .1 > .2 cut after the IPv4 header (no ports)",
        full(&p, &syn),
        34,
        &["ip", "tcp"],
    );
    c.cut(
        "tcp .1.40000 > .2 cut after the source port",
        full(&p, &syn),
        36,
        &["ip", "tcp"],
    );
    c.cut(
        "tcp .1 > .2.80 cut before the flags (16 bytes of TCP)",
        full(&p, &syn),
        50,
        &["ip", "tcp"],
    );
    c.cut(
        "ip .1 > .2 cut inside the IPv4 header (10 bytes: no addresses)",
        full(&p, &syn),
        24,
        &["ip", "tcp"],
    );
    c.cut(
        "ip cut inside the IPv4 header before the protocol (8 bytes)",
        full(&p, &syn),
        22,
        &["ip"],
    );
    c.cut(
        "ethertype IPv4 with no IPv4 header",
        full(&p, &syn),
        14,
        &["ip"],
    );
    c.cut("13 bytes: ethertype cut in half", full(&p, &syn), 13, &[]);
    c.cut("6 bytes: destination MAC only", full(&p, &syn), 6, &[]);
    let icmp_p = ip4(A4, B4, proto::ICMP);
    c.cut(
        "icmp .1 > .2 cut after the type byte",
        full(&icmp_p, &icmp_echo(false, 1, 1, &[])),
        35,
        &["ip", "icmp"],
    );
    let tp6 = ip6(A6, B6, proto::TCP, &[]);
    let f6 = ether(
        MAC_B,
        MAC_A,
        &[],
        ethertype::IPV6,
        &tp6.build(&tcp(40000, 80, SYN).build(&[])),
    );
    c.cut(
        "tcp6 ::1 > ::2 cut after the source port",
        f6.clone(),
        56,
        &["ip6", "tcp"],
    );
    c.cut(
        "ip6 cut inside the fixed header (20 bytes: no destination)",
        f6,
        34,
        &["ip6", "tcp"],
    );
    let frag6 = ip6(
        A6,
        B6,
        proto::UDP,
        &[Ipv6Ext::Fragment {
            offset: 0,
            more: true,
        }],
    );
    let ff6 = ether(
        MAC_B,
        MAC_A,
        &[],
        ethertype::IPV6,
        &frag6.build(&udp(1, 2, &[])),
    );
    c.cut(
        "ip6 next header 44 but no fragment header",
        ff6,
        54,
        &["ip6"],
    );
    c.cut(
        "arp cut after 8 bytes",
        ether(
            MAC_BROADCAST,
            MAC_A,
            &[],
            ethertype::ARP,
            &arp(arp_op::REQUEST, MAC_A, A4, [0; 6], B4),
        ),
        22,
        &["arp"],
    );
    // Long frames for len/greater/less, and frames on the 100-byte boundary.
    let tcp_len = |frame_len: usize, dport: u16| {
        let payload = fill(frame_len - 14 - 20 - 20);
        full(&p, &tcp(40001, dport, PSH | ACK).build(&payload))
    };
    c.add(
        "tcp .1 > .2.80 1500-byte frame",
        tcp_len(1500, 80),
        &["ip", "tcp"],
    );
    c.add(
        "tcp .1 > .2.443 1000-byte frame",
        tcp_len(1000, 443),
        &["ip", "tcp"],
    );
    c.add(
        "tcp .1 > .2.22 100-byte frame",
        tcp_len(100, 22),
        &["ip", "tcp"],
    );
    c.add(
        "tcp .1 > .2.22 99-byte frame",
        tcp_len(99, 22),
        &["ip", "tcp"],
    );
    c.add(
        "tcp .1 > .2.22 101-byte frame",
        tcp_len(101, 22),
        &["ip", "tcp"],
    );
    c.add(
        "tcp .1 > .2.22 256-byte frame",
        tcp_len(256, 22),
        &["ip", "tcp"],
    );
    let u6 = ip6(A6, B6, proto::UDP, &[]).build(&udp(40002, 53, &fill(400)));
    c.add(
        "udp6 ::1 > ::2.53 462-byte frame",
        ether(MAC_B, MAC_A, &[], ethertype::IPV6, &u6),
        &["ip6", "udp"],
    );
}
