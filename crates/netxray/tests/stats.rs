//! End to end: `netxray stats` counts exactly what crossed each interface,
//! per direction and protocol, names the top flow, leaves a user's XDP
//! program alone, follows interfaces as they come and go, survives a flood,
//! and leaves nothing attached.

mod common;

use common::netns::command_stdout;
use common::*;
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

fn stats(args: &[&str]) -> NetxrayRun {
    NetxrayRun::new(netxray_bin())
        .arg("stats")
        .args(args)
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"))
}

/// Send `n` datagrams of `payload` bytes from one socket in `ns` to `dst`;
/// the socket's address and how many sends succeeded.
fn send_from_one_socket(
    ns: &Netns,
    dst: SocketAddr,
    n: usize,
    payload: usize,
) -> (SocketAddr, u64) {
    in_netns(ns, || -> std::io::Result<(SocketAddr, u64)> {
        let bind: SocketAddr = if dst.is_ipv4() {
            "0.0.0.0:0".parse().expect("addr")
        } else {
            "[::]:0".parse().expect("addr")
        };
        let sock = UdpSocket::bind(bind)?;
        // Not connected: B's port unreachable errors do not fail later sends.
        let data = vec![0x5a; payload];
        let mut ok = 0;
        for _ in 0..n {
            if sock.send_to(&data, dst).is_ok() {
                ok += 1;
            }
        }
        // The source address the route picks (the socket is bound to any).
        let probe = UdpSocket::bind(bind)?;
        probe.connect(dst)?;
        let local = SocketAddr::new(probe.local_addr()?.ip(), sock.local_addr()?.port());
        Ok((local, ok))
    })
    .unwrap_or_else(|e| panic!("send: {e}"))
}

/// The row of `ifname`, direction `dir`, in a JSON snapshot.
fn row<'a>(snap: &'a Value, ifname: &str, dir: &str) -> &'a Value {
    snap["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["ifname"] == ifname && r["dir"] == dir))
        .unwrap_or_else(|| panic!("no row {ifname} {dir}: {snap}"))
}

fn one_snapshot(run: NetxrayRun) -> (Value, NetxrayOutput) {
    let mut run = run;
    let out = run
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| run.stop());
    let v = out
        .json()
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no snapshot: {}\n{}", out.stdout, out.stderr));
    (v, out)
}

#[test]
fn once_counts_exactly_per_direction_and_protocol_on_both_ends() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x3301, 1), "warm-up ping");
    assert!(ping(t.a(), t.b_ip(true), 0x3302, 1), "warm-up ping6");
    let a_path = t.a().path();
    let br_path = t.br().path();
    let common = ["--once", "--interval", "3", "-o", "json", "udp"];
    let at_a = stats(
        &[
            &["--netns", a_path.to_str().expect("path"), "-i", "a0"][..],
            &common[..],
        ]
        .concat(),
    );
    let at_br = stats(
        &[
            &[
                "--netns",
                br_path.to_str().expect("path"),
                "-i",
                LinearBridged::BR_A,
            ][..],
            &common[..],
        ]
        .concat(),
    );
    let (src4, n4) = send_from_one_socket(t.a(), t.b_sock4(9000), 25, 100);
    let (_, n6) = send_from_one_socket(t.a(), t.b_sock6(9001), 10, 50);
    assert_eq!((n4, n6), (25, 10));
    let (bytes4, bytes6) = (25 * (14 + 20 + 8 + 100), 10 * (14 + 40 + 8 + 50));
    for (run, ifname, dir) in [(at_a, "a0", "out"), (at_br, LinearBridged::BR_A, "in")] {
        let (snap, out) = one_snapshot(run);
        assert!(out.status.success(), "{}", out.stderr);
        let r = row(&snap, ifname, dir);
        assert_eq!(r["packets"], 35, "{r}");
        assert_eq!(r["bytes"], bytes4 + bytes6, "{r}");
        assert_eq!(r["l3"]["ipv4"]["packets"], 25, "{r}");
        assert_eq!(r["l3"]["ipv4"]["bytes"], bytes4, "{r}");
        assert_eq!(r["l3"]["ipv6"]["packets"], 10, "{r}");
        assert_eq!(r["l3"]["ipv6"]["bytes"], bytes6, "{r}");
        assert_eq!(r["l4"]["udp"]["packets"], 35, "{r}");
        assert_eq!(r["l4"]["tcp"]["packets"], 0, "{r}");
        // The other direction saw no UDP.
        let back = row(&snap, ifname, if dir == "out" { "in" } else { "out" });
        assert_eq!(back["packets"], 0, "{back}");
        let top = &snap["flows"][0];
        assert_eq!(top["proto"], "udp", "{snap}");
        assert_eq!(top["saddr"], src4.ip().to_string(), "{top}");
        assert_eq!(top["sport"], src4.port(), "{top}");
        assert_eq!(top["daddr"], LinearBridged::B_IP4.to_string(), "{top}");
        assert_eq!(top["dport"], 9000, "{top}");
        assert_eq!(top["packets"], 25, "{top}");
        if dir == "in" {
            assert_eq!(snap["sources"][0]["saddr"], src4.ip().to_string(), "{snap}");
        }
    }
}

#[test]
fn traffic_both_ways_through_a_bridge_is_counted_exactly_on_each_port() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x3303, 1), "warm-up ping");
    let br_path = t.br().path();
    // Every port of the bridge namespace, both directions: each CPU's
    // per-direction slot changes hands between the ports at every packet.
    let run = stats(&[
        "--netns",
        br_path.to_str().expect("path"),
        "--once",
        "--interval",
        "3",
        "-o",
        "json",
        "udp",
    ]);
    let a = udp_receiver(t.a(), SocketAddr::from((LinearBridged::A_IP4, 0)));
    let b = udp_receiver(t.b(), SocketAddr::from((LinearBridged::B_IP4, 0)));
    let (to_b, to_a) = (
        t.b_sock4(9100),
        SocketAddr::from((LinearBridged::A_IP4, 9101)),
    );
    const N: u64 = 40;
    let (mut from_a, mut from_b) = (0u64, 0u64);
    for i in 0..N {
        from_a += u64::from(a.send_to(&[1; 20], to_b).is_ok());
        if i % 2 == 0 {
            from_b += u64::from(b.send_to(&[2; 30], to_a).is_ok());
        }
    }
    assert_eq!((from_a, from_b), (N, N / 2));
    let (snap, out) = one_snapshot(run);
    assert!(out.status.success(), "{}", out.stderr);
    for (ifname, dir, n, payload) in [
        (LinearBridged::BR_A, "in", from_a, 20),
        (LinearBridged::BR_B, "out", from_a, 20),
        (LinearBridged::BR_B, "in", from_b, 30),
        (LinearBridged::BR_A, "out", from_b, 30),
    ] {
        let r = row(&snap, ifname, dir);
        assert_eq!(r["packets"], n, "{ifname} {dir}: {r}");
        assert_eq!(
            r["bytes"],
            n * (14 + 20 + 8 + payload),
            "{ifname} {dir}: {r}"
        );
    }
}

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// netxray's programs loaded now (by name).
fn our_programs() -> usize {
    command_stdout("bpftool", &["prog", "show"])
        .lines()
        .filter(|l| l.contains("stats_tc_") || l.contains("stats_xdp"))
        .count()
}

#[test]
fn a_users_xdp_program_is_left_in_place() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let obj = repo_file("bpf/xdp_pass.bpf.o");
    t.b().run(&[
        "ip",
        "link",
        "set",
        "dev",
        "b0",
        "xdpgeneric",
        "obj",
        obj.to_str().expect("path"),
        "sec",
        "xdp",
    ]);
    let b_path = t.b().path();
    let run = stats(&[
        "--netns",
        b_path.to_str().expect("path"),
        "-i",
        "b0",
        "--xdp",
        "--once",
        "--interval",
        "2",
        "-o",
        "json",
        "udp",
    ]);
    let (_, n) = send_from_one_socket(t.a(), t.b_sock4(9000), 7, 10);
    let (snap, out) = one_snapshot(run);
    assert!(
        out.stderr.contains("XDP is taken by another program"),
        "{}",
        out.stderr
    );
    // Counted at TC instead.
    assert_eq!(row(&snap, "b0", "in")["packets"], n, "{snap}");
    assert!(
        !snap["interfaces"]
            .as_array()
            .expect("rows")
            .iter()
            .any(|r| r["dir"] == "xdp"),
        "{snap}"
    );
    let link = t.b().run(&["ip", "link", "show", "dev", "b0"]);
    assert!(
        link.contains("xdp_pass"),
        "the user's program stays: {link}"
    );
    // Nothing of netxray's remains (programs go once their links close).
    let gone = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        (our_programs() == 0).then_some(())
    });
    assert!(
        gone.is_some(),
        "{}",
        command_stdout("bpftool", &["prog", "show"])
    );
    let net = command_stdout("bpftool", &["net", "show"]);
    assert!(!net.contains("stats_tc"), "{net}");
}

#[test]
fn generic_xdp_counts_next_to_tc() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x3303, 1), "warm-up ping");
    let b_path = t.b().path();
    let run = stats(&[
        "--netns",
        b_path.to_str().expect("path"),
        "-i",
        "b0",
        "--xdp",
        "--once",
        "--interval",
        "2",
        "-o",
        "json",
        "udp",
    ]);
    let (_, n) = send_from_one_socket(t.a(), t.b_sock4(9000), 9, 10);
    let (snap, out) = one_snapshot(run);
    assert!(out.stderr.contains("b0 (XDP and TC)"), "{}", out.stderr);
    assert_eq!(row(&snap, "b0", "xdp")["packets"], n, "{snap}");
    assert_eq!(row(&snap, "b0", "in")["packets"], n, "{snap}");
    let link = t.b().run(&["ip", "link", "show", "dev", "b0"]);
    assert!(!link.contains("xdp"), "no XDP left: {link}");
}

#[test]
fn interfaces_that_come_and_go_are_followed() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let a_path = t.a().path();
    let run = stats(&[
        "--netns",
        a_path.to_str().expect("path"),
        "--interval",
        "0.2",
        "-o",
        "json",
    ]);
    // A new pair inside A.
    t.a().run(&[
        "ip", "link", "add", "nx0", "type", "veth", "peer", "name", "nx1",
    ]);
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        run.stderr_so_far().contains("watching nx0").then_some(())
    });
    assert!(seen.is_some(), "{}", run.stderr_so_far());
    t.a().run(&["ip", "link", "del", "nx0"]);
    let gone = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        run.stderr_so_far().contains("nx0 is gone").then_some(())
    });
    assert!(gone.is_some(), "{}", run.stderr_so_far());
    // Still running and reporting a0.
    let lines_before = run.stdout_so_far().lines().count();
    let more = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (run.stdout_so_far().lines().count() > lines_before + 1).then_some(())
    });
    let out = run.stop();
    assert!(more.is_some(), "{}", out.stderr);
    assert!(out.status.success(), "{}", out.stderr);
    let last = out.json().pop().expect("a snapshot");
    row(&last, "a0", "out");
    assert!(!last.to_string().contains("nx0"), "{last}");
}

#[test]
fn counts_survive_a_flood() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x3304, 1), "warm-up ping");
    let a_path = t.a().path();
    let run = stats(&[
        "--netns",
        a_path.to_str().expect("path"),
        "-i",
        "a0",
        "--once",
        "--interval",
        "6",
        "-o",
        "json",
        "udp",
    ]);
    let (_, sent) = send_from_one_socket(t.a(), t.b_sock4(9000), 200_000, 18);
    let (snap, _) = one_snapshot(run);
    assert!(sent > 100_000, "a flood: {sent}");
    assert_eq!(row(&snap, "a0", "out")["packets"], sent, "{snap}");
    assert_eq!(snap["flows"][0]["packets"], sent, "{snap}");
}

#[test]
fn the_flow_table_is_bounded_and_evictions_are_counted() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x3305, 1), "warm-up ping");
    let a_path = t.a().path();
    let run = stats(&[
        "--netns",
        a_path.to_str().expect("path"),
        "-i",
        "a0",
        "--flows",
        "16",
        "--once",
        "--interval",
        "2",
        "-o",
        "json",
        "udp",
    ]);
    // 40 flows: one datagram from each of 40 sockets.
    for _ in 0..40 {
        send_from_one_socket(t.a(), t.b_sock4(9000), 1, 10);
    }
    let (snap, _) = one_snapshot(run);
    let table = &snap["flow_table"];
    assert_eq!(table["capacity"], 16, "{table}");
    assert!(table["entries"].as_u64().unwrap_or(99) <= 16, "{table}");
    let n = |k: &str| table[k].as_u64().unwrap_or(0);
    assert_eq!(
        n("entries") + n("evicted") + n("pending"),
        40,
        "every flow is in the table, evicted, or pending on a CPU: {table}"
    );
    // The packets are all counted all the same.
    assert_eq!(row(&snap, "a0", "out")["packets"], 40, "{snap}");
}
