//! End to end: tcpdump expressions on `netxray trace`, in the bridged
//! topology, with a mix of ICMP, ICMPv6, UDP and TCP traffic. Each run must
//! show exactly the packets its expression selects, and the kernel's
//! counters must show the rest dropped before the ring buffer.

mod common;

use common::*;
use serde_json::Value;

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or("").to_string()
}

/// The same traffic for every run: ICMP and ICMPv6 echoes, UDP to an open
/// port (5353) and a closed one (9999), and a TCP exchange (port 8080).
fn traffic(t: &LinearBridged, tcp: &TcpEchoServer) {
    assert!(ping(t.a(), t.b_ip(false), 0x1111, 1), "ping v4");
    assert!(ping(t.a(), t.b_ip(true), 0x2222, 2), "ping v6");
    udp_send(t.a(), None, t.b_sock4(5353), b"to the open port");
    udp_send(t.a(), None, t.b_sock6(9999), b"to the closed port");
    tcp_exchange(t.a(), tcp.addr(), 300).expect("tcp exchange");
}

fn run_with(t: &LinearBridged, tcp: &TcpEchoServer, expr: &str) -> Vec<Value> {
    let run = NetxrayRun::new(netxray_bin())
        .args(["trace", "--output", "json", "-t", "link-in,link-out", expr])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    traffic(t, tcp);
    let out = run.stop();
    assert!(out.status.success(), "{expr}: {}", out.stderr);
    out.json()
}

#[test]
fn three_expressions_show_exactly_their_packets() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let _rx = udp_receiver(t.b(), t.b_sock4(5353));
    let tcp = TcpEchoServer::start(t.b(), t.b_sock4(8080));
    // Warm up neighbour caches so no ARP/ND resolution runs during the tests.
    traffic(&t, &tcp);
    let (a4, b4, b6) = (
        t.a_ip(false).to_string(),
        t.b_ip(false).to_string(),
        t.b_ip(true).to_string(),
    );

    // 1. A port and a protocol: the datagram to 5353, nothing else.
    let evs = run_with(&t, &tcp, "udp and dst port 5353");
    assert!(!evs.is_empty(), "the datagram to 5353 was seen");
    for e in &evs {
        assert_eq!(e["proto"], "udp", "{e}");
        assert_eq!(e["dport"].as_u64(), Some(5353), "{e}");
        assert_eq!(s(e, "daddr"), b4, "{e}");
    }
    assert!(
        evs.iter().any(|e| e["netns"].as_u64() == Some(t.b_inode())),
        "seen arriving in B"
    );

    // 2. A byte offset into IPv6: echo requests (type 128) only, no replies,
    //    nothing over IPv4.
    let evs = run_with(&t, &tcp, "icmp6 and ip6[40] == 128");
    assert!(!evs.is_empty(), "the ICMPv6 echo request was seen");
    for e in &evs {
        assert_eq!(e["l3"], "ipv6", "{e}");
        assert_eq!(e["icmp_type"].as_u64(), Some(128), "{e}");
        assert_eq!(s(e, "daddr"), b6, "{e}");
    }

    // 3. TCP flags and a negated host: SYNs and FINs sent by A only (its SYN
    //    and FIN, not B's SYN-ACK or FIN).
    let evs = run_with(
        &t,
        &tcp,
        &format!("tcp[tcpflags] & (tcp-syn|tcp-fin) != 0 and not src host {b4}"),
    );
    let flags: Vec<String> = evs.iter().map(|e| s(e, "tcp_flags")).collect();
    assert!(flags.iter().any(|f| f == "S"), "A's SYN: {flags:?}");
    assert!(flags.iter().any(|f| f.contains('F')), "A's FIN: {flags:?}");
    for e in &evs {
        assert_eq!(e["proto"], "tcp", "{e}");
        assert_eq!(s(e, "saddr"), a4, "{e}");
        let f = s(e, "tcp_flags");
        assert!(f.contains('S') || f.contains('F'), "{e}");
    }
}

/// A tcx egress program that pushes an 802.1Q tag with `bpf_skb_vlan_push`:
/// like a VLAN device on a NIC with tx-vlan offload, the tag goes into
/// `skb->vlan_tci`, not the bytes (veth keeps it there end to end). Detached
/// when the returned link is dropped.
fn push_vlan_on_egress(ns: &Netns, ifname: &str, vid: u16) -> std::os::fd::OwnedFd {
    use ::netxray::kernel::sys::{self, attach_type, prog_type, Insn, LinkExtra, ProgSpec};
    use std::os::fd::AsFd;
    let insns = [
        Insn::mov64_imm(2, 0x0081), // htons(ETH_P_8021Q)
        Insn::mov64_imm(3, vid.into()),
        Insn::call(18),         // bpf_skb_vlan_push
        Insn::mov64_imm(0, -1), // TCX_NEXT
        Insn::exit(),
    ];
    let prog = sys::prog_load(&ProgSpec {
        prog_type: prog_type::SCHED_CLS,
        expected_attach_type: attach_type::TCX_EGRESS,
        attach_btf_id: 0,
        name: "nxt_vlan_push",
        insns: &insns,
    })
    .unwrap_or_else(|e| panic!("load the vlan push program: {e:?}"));
    let ifindex = ns.ifindex(ifname);
    in_netns(ns, || {
        sys::link_create(
            prog.as_fd(),
            ifindex,
            attach_type::TCX_EGRESS,
            0,
            LinkExtra::None,
        )
    })
    .unwrap_or_else(|e| panic!("attach the vlan push program: {e:?}"))
}

/// `vlan 100` must match a tagged frame whether the tag is in the bytes or
/// the kernel holds it in `skb->vlan_tci` (stripped by hardware on receive,
/// or an offloaded tag on transmit): the kernel side puts it back into the
/// bytes, so the filter and the decoder see what tcpdump would.
#[test]
fn vlan_matches_tags_in_the_bytes_and_in_the_skb() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let filter = "vlan 100 and udp and dst port 7";
    let run = |send: &dyn Fn()| {
        let run = NetxrayRun::new(netxray_bin())
            .args([
                "trace",
                "--output",
                "json",
                "-t",
                "link-out,link-in",
                filter,
            ])
            .start()
            .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
        send();
        // The frame is last seen arriving in B: wait for that, not for time.
        let b = format!("\"netns\":{}", t.b_inode());
        let seen = poll_until(
            std::time::Duration::from_secs(5),
            std::time::Duration::from_millis(20),
            || {
                let so_far = run.stdout_so_far();
                so_far
                    .lines()
                    .any(|l| l.contains("net:netif_receive_skb") && l.contains(&b))
                    .then_some(())
            },
        );
        let out = run.stop();
        assert!(out.status.success(), "{}", out.stderr);
        assert!(seen.is_some(), "never reached B: {}", out.stdout);
        let evs = out.json();
        for e in &evs {
            assert_eq!(e["vlan"].as_u64(), Some(100), "{e}");
            assert_eq!(e["dport"].as_u64(), Some(7), "{e}");
            assert!(s(e, "summary").starts_with("vlan 100, IP "), "{e}");
        }
        for (hook, inode) in [
            ("net:net_dev_queue", t.a_inode()),
            ("net:net_dev_start_xmit", t.a_inode()),
            ("net:netif_rx", t.br_inode()),
            ("net:net_dev_queue", t.br_inode()),
            ("net:netif_receive_skb", t.b_inode()),
        ] {
            assert!(
                evs.iter()
                    .any(|e| e["hook"] == hook && e["netns"].as_u64() == Some(inode)),
                "{hook} in {inode}: {}",
                out.stdout
            );
        }
    };

    // 1. The tag in the bytes: a frame written whole by an AF_PACKET socket.
    let src = std::net::SocketAddrV4::new(LinearBridged::A_IP4, 4000);
    let dst = std::net::SocketAddrV4::new(LinearBridged::B_IP4, 7);
    let frame = tagged_udp4_frame(
        t.b().mac(LinearBridged::B_IF),
        t.a().mac(LinearBridged::A_IF),
        100,
        src,
        dst,
        b"tagged",
    );
    run(&|| send_frame(t.a(), LinearBridged::A_IF, &frame));

    // 2. The tag in skb->vlan_tci: an ordinary datagram, tagged on egress
    //    (B's address resolved first: a tagged ARP request would go unanswered).
    assert!(ping(t.a(), t.b_ip(false), 0x7777, 1), "warm-up ping");
    let _link = push_vlan_on_egress(t.a(), LinearBridged::A_IF, 100);
    run(&|| {
        udp_send(t.a(), None, t.b_sock4(7), b"offloaded tag");
    });
}

#[test]
fn a_bad_expression_is_a_usage_error_with_its_position() {
    let out = std::process::Command::new(netxray_bin())
        .args(["trace", "tcp", "and", "protochain", "6"])
        .output()
        .expect("run netxray");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("protochain"), "{err}");
    assert!(err.contains("position 9"), "{err}");
    assert!(err.contains("tcp and protochain 6"), "{err}");
}

/// A thousand hosts from a filter file (`-F`, as tcpdump): the kernel looks
/// them up in a set, in the link programs and in the netfilter programs.
/// Only the packets of the one host that is in the topology show.
#[test]
fn a_thousand_hosts_from_a_filter_file() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let _rx = udp_receiver(t.b(), t.b_sock4(5353));
    let tcp = TcpEchoServer::start(t.b(), t.b_sock4(8080));
    traffic(&t, &tcp);
    let b4 = t.b_ip(false).to_string();
    let mut hosts: Vec<String> = (0..999)
        .map(|k| format!("198.19.{}.{}", 100 + k / 250, k % 250))
        .collect();
    hosts.insert(500, b4.clone());
    let dir = std::env::temp_dir().join(format!("nx-sets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hosts.filter");
    std::fs::write(
        &file,
        format!(
            "# a thousand hosts\nudp and host (\n{}\n)\n",
            hosts.join(" or\n")
        ),
    )
    .unwrap();
    // The host's kernel has netfilter links (6.4+): the suite runs there.
    let hooks = "link-in,link-out,netfilter";
    let run = NetxrayRun::new(netxray_bin())
        .args(["trace", "--output", "json", "-t", hooks, "-F"])
        .arg(&file)
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    traffic(&t, &tcp);
    let out = run.stop();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    let evs = out.json();
    assert!(
        evs.iter().any(|e| e["hook"] == "net:netif_receive_skb"),
        "the datagram to B: {}",
        out.stdout
    );
    assert!(
        evs.iter()
            .any(|e| e["hook"].as_str().unwrap_or("").starts_with("nf:")),
        "the datagram at netfilter: {}",
        out.stdout
    );
    for e in &evs {
        assert_eq!(e["proto"], "udp", "{e}");
        assert!(s(e, "saddr") == b4 || s(e, "daddr") == b4, "{e}");
    }
}
