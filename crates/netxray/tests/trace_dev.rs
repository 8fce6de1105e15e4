//! End to end: `trace -t tc,xdp -i IFACE` shows each packet at tcx ingress
//! and egress and at (generic) XDP of that interface, with the fields the
//! tracepoint hooks have, and a journey is not split by these hops.

mod common;

use common::*;
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// B echoes `n` datagrams sent from one socket in A to B:9000; A's address.
fn echo_round_trips(t: &LinearBridged, n: usize) -> SocketAddr {
    let server = udp_receiver(t.b(), t.b_sock4(9000));
    let echo = std::thread::spawn(move || {
        for _ in 0..n {
            if let Some((data, from)) = udp_recv(&server) {
                server.send_to(&data, from).ok();
            }
        }
    });
    let client: UdpSocket = udp_receiver(t.a(), SocketAddr::from((LinearBridged::A_IP4, 0)));
    client.connect(t.b_sock4(9000)).expect("connect");
    let mut buf = [0u8; 64];
    for i in 0..n {
        client
            .send(format!("round trip {i}").as_bytes())
            .expect("send");
        client.recv(&mut buf).expect("echo");
    }
    echo.join().expect("echo thread");
    client.local_addr().expect("addr")
}

#[test]
fn tc_and_xdp_hooks_show_every_packet_with_the_usual_fields() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x3401, 1), "warm-up ping");
    let run = NetxrayRun::new(netxray_bin())
        .args([
            "trace",
            "-t",
            "tc,xdp",
            "--xdp=generic",
            "-i",
            LinearBridged::B_IF,
            "--netns",
            t.b().name(),
            "-o",
            "json",
            "udp port 9000",
        ])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let a = echo_round_trips(&t, 3);
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (run.stdout_so_far().lines().count() >= 9).then_some(())
    });
    let out = run.stop();
    assert!(seen.is_some(), "{}\n{}", out.stdout, out.stderr);
    let events = out.json();
    let count = |hook: &str, f: &dyn Fn(&Value) -> bool| {
        events.iter().filter(|e| e["hook"] == hook && f(e)).count()
    };
    let request = |e: &Value| {
        e["saddr"] == a.ip().to_string() && e["sport"] == a.port() && e["dport"] == 9000
    };
    let reply = |e: &Value| e["sport"] == 9000 && e["dport"] == a.port();
    assert_eq!(count("tc:ingress", &request), 3, "{}", out.stdout);
    assert_eq!(count("xdp:ingress", &request), 3, "{}", out.stdout);
    assert_eq!(count("tc:egress", &reply), 3, "{}", out.stdout);
    assert_eq!(events.len(), 9, "nothing else: {}", out.stdout);
    for e in &events {
        assert_eq!(e["ifname"], LinearBridged::B_IF, "{e}");
        assert_eq!(e["netns_name"], t.b().name(), "{e}");
        assert_eq!(e["l3"], "ipv4", "{e}");
        assert_eq!(e["proto"], "udp", "{e}");
        assert_eq!(e["source"], "packet", "{e}");
        assert!(e["len"].as_u64().unwrap_or(0) >= 14 + 20 + 8, "{e}");
        assert!(e["head"].is_string(), "{e}");
        if e["hook"] != "xdp:ingress" {
            assert!(e["skb"].is_string(), "{e}");
        }
    }
}

#[test]
fn journeys_are_not_split_by_tc_and_xdp() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x3402, 1), "warm-up ping");
    let run = NetxrayRun::new(netxray_bin())
        .args([
            "trace",
            "--journey",
            "-t",
            "link-in,socket,life,tc,xdp",
            "--xdp=generic",
            "-i",
            LinearBridged::B_IF,
            "--netns",
            t.b().name(),
            "-o",
            "json",
            "udp and dst port 9000",
        ])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    echo_round_trips(&t, 2);
    let seen = poll_until(Duration::from_secs(15), Duration::from_millis(50), || {
        (parse_json_lines(&run.stdout_so_far())
            .iter()
            .filter(|j| j["journey"].is_u64())
            .count()
            >= 2)
            .then_some(())
    });
    let out = run.stop();
    assert!(seen.is_some(), "{}\n{}", out.stdout, out.stderr);
    let journeys: Vec<Value> = out
        .json()
        .into_iter()
        .filter(|j| j["journey"].is_u64())
        .collect();
    assert_eq!(journeys.len(), 2, "one per datagram: {}", out.stdout);
    for j in &journeys {
        let hooks: Vec<&str> = j["hops"]
            .as_array()
            .expect("hops")
            .iter()
            .filter_map(|h| h["hook"].as_str())
            .collect();
        // In order, once each (socket hooks have no device: -i hides them).
        let at = |want: &str| {
            assert_eq!(
                hooks.iter().filter(|h| **h == want).count(),
                1,
                "{want} in {hooks:?}"
            );
            hooks.iter().position(|h| *h == want)
        };
        assert!(at("net:netif_receive_skb") < at("xdp:ingress"), "{hooks:?}");
        assert!(at("xdp:ingress") < at("tc:ingress"), "{hooks:?}");
    }
}

/// A user's XDP program on the interface: `trace -t xdp` names it (id and
/// name) and leaves it in place (issue #16, item 4: one message for many
/// causes before).
#[test]
fn xdp_held_by_a_users_program_is_named() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    // The test programs' object, from the repository root.
    let obj = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bpf/xdp_pass.bpf.o");
    t.b().run(&[
        "ip",
        "link",
        "set",
        "dev",
        LinearBridged::B_IF,
        "xdpgeneric",
        "obj",
        obj.to_str().expect("path"),
        "sec",
        "xdp",
    ]);
    let out = std::process::Command::new(netxray_bin())
        .args(["trace", "-t", "xdp", "-i", LinearBridged::B_IF, "--netns"])
        .arg(t.b().name())
        .args(["--duration", "1"])
        .output()
        .expect("run netxray");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "XDP on {} is held by another program (id ",
            LinearBridged::B_IF
        )) && stderr.contains("name xdp_pass"),
        "{stderr}"
    );
    assert!(!stderr.contains("not available on this kernel"), "{stderr}");
    // Left in place.
    let link = t.b().run(&["ip", "link", "show", LinearBridged::B_IF]);
    assert!(link.contains("xdpgeneric"), "{link}");
}
