//! End to end: `netxray trace` in the A -- veth -- BR (bridge) -- veth -- B
//! topology, with real ICMP, UDP and TCP traffic from A to B.

mod common;

use common::leftovers::{bpf_link_ids, bpf_links_held_by};
use common::*;
use serde_json::Value;
use std::time::Duration;

fn start(args: &[&str]) -> NetxrayRun {
    NetxrayRun::new(netxray_bin())
        .args(["trace", "--output", "json"])
        .args(args)
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"))
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or("").to_string()
}

/// (netns inode, ifname) of each event in order, keeping each interface's
/// first sighting only.
fn first_sightings<'a>(evs: impl Iterator<Item = &'a Value>) -> Vec<(u64, String)> {
    let mut seen: Vec<(u64, String)> = Vec::new();
    for e in evs {
        let key = (e["netns"].as_u64().unwrap_or(0), s(e, "ifname"));
        if !key.1.is_empty() && !seen.contains(&key) {
            seen.push(key);
        }
    }
    seen
}

fn packet_events<'a>(evs: &'a [Value], src: &str, icmp_type: u64) -> Vec<&'a Value> {
    evs.iter()
        .filter(|e| {
            e["kind"] == "packet"
                && s(e, "saddr") == src
                && e["icmp_type"].as_u64() == Some(icmp_type)
        })
        .collect()
}

fn check_echo_path(t: &LinearBridged, v6: bool) {
    let (a, b) = (t.a_ip(v6).to_string(), t.b_ip(v6).to_string());
    let id = if v6 { 0x6601 } else { 0x4242 };
    // Resolve the neighbour first: a packet waiting for ARP/ND is sent later
    // from softirq context, and this test checks process attribution too.
    assert!(ping(t.a(), t.b_ip(v6), id ^ 0xff, 1), "warm-up ping");
    let run = start(&["--addr", &b, "-t", "link-in,link-out"]);
    assert!(ping(t.a(), t.b_ip(v6), id, 7), "ping answered");
    let out = run.stop();
    assert!(out.status.success(), "netxray failed: {}", out.stderr);
    let evs = out.json();
    let (req_t, rep_t) = if v6 { (128, 129) } else { (8, 0) };

    let req = packet_events(&evs, &a, req_t);
    assert!(!req.is_empty(), "request seen: {}", out.stdout);
    for e in &req {
        assert_eq!(e["icmp_id"].as_u64(), Some(id as u64));
        assert_eq!(e["icmp_seq"].as_u64(), Some(7));
        assert_eq!(s(e, "daddr"), b);
        assert_eq!(e["l3"], if v6 { "ipv6" } else { "ipv4" });
        assert_ne!(
            s(e, "ifname"),
            LinearBridged::BRIDGE,
            "a forwarded unicast frame never touches br0"
        );
    }
    // pid/comm: the request leaves A in this process's context; received
    // packets are handled in softirq context, attributed to no process.
    let me = std::process::id() as u64;
    assert!(
        req.iter()
            .any(|e| e["hook"] == "net:net_dev_queue" && e["pid"].as_u64() == Some(me)),
        "{}",
        out.stdout
    );
    for e in req.iter().filter(|e| e["hook"] == "net:netif_receive_skb") {
        assert!(
            e["pid"].is_null() && e["comm"].is_null(),
            "softirq event attributed: {e}"
        );
    }
    let path = first_sightings(req.iter().copied());
    let want = vec![
        (t.a_inode(), LinearBridged::A_IF.to_string()),
        (t.br_inode(), LinearBridged::BR_A.to_string()),
        (t.br_inode(), LinearBridged::BR_B.to_string()),
        (t.b_inode(), LinearBridged::B_IF.to_string()),
    ];
    assert_eq!(path, want, "request path");

    let rep = packet_events(&evs, &b, rep_t);
    let mut back = want.clone();
    back.reverse();
    assert_eq!(first_sightings(rep.iter().copied()), back, "reply path");
    // Names for the namespaces come from /run/netns.
    assert!(req.iter().any(|e| s(e, "netns_name") == t.a().name()));
}

#[test]
fn icmp_echo_v4_and_v6_cross_the_bridge_in_order() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    check_echo_path(&t, false);
    check_echo_path(&t, true);
}

#[test]
fn udp_to_closed_port_is_dropped_no_socket_with_port_unreachable() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let run = start(&["--proto", "udp", "--dport", "9", "-t", "link-in,l4,life"]);
    let from = udp_send(t.a(), None, t.b_sock4(9), b"hello");
    // The ICMP error reaching A tells us the drop has happened.
    std::thread::sleep(Duration::from_millis(200));
    let out = run.stop();
    let evs = out.json();
    let drop = evs
        .iter()
        .find(|e| e["hook"] == "skb:kfree_skb" && e["netns"].as_u64() == Some(t.b_inode()))
        .unwrap_or_else(|| panic!("kfree_skb in B: {}", out.stdout));
    assert_eq!(drop["drop_reason"], "NO_SOCKET");
    assert_eq!(drop["sport"].as_u64(), Some(from.port() as u64));
    assert_eq!(drop["dport"].as_u64(), Some(9));
    assert_eq!(drop["proto"], "udp");
    let icmp = evs
        .iter()
        .find(|e| e["hook"] == "icmp:icmp_send")
        .unwrap_or_else(|| panic!("icmp_send: {}", out.stdout));
    assert!(s(icmp, "detail").contains("port unreachable"), "{icmp}");
    assert_eq!(icmp["netns"].as_u64(), Some(t.b_inode()));
    // Everything shown matched the filter.
    assert!(evs
        .iter()
        .all(|e| e["proto"] == "udp" && e["dport"].as_u64() == Some(9)));
}

#[test]
fn tcp_handshake_flags_and_ports() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let server = TcpEchoServer::start(t.b(), t.b_sock4(8080));
    let run = start(&[
        "--proto",
        "tcp",
        "--port",
        "8080",
        "-t",
        "link-in,link-out,socket",
    ]);
    let ex = tcp_exchange(t.a(), server.addr(), 1000).expect("tcp exchange");
    let out = run.stop();
    let evs = out.json();
    let port = ex.local_port() as u64;
    let syn = evs
        .iter()
        .find(|e| e["tcp_flags"] == "S" && e["sport"].as_u64() == Some(port))
        .unwrap_or_else(|| panic!("SYN: {}", out.stdout));
    assert_eq!(syn["dport"].as_u64(), Some(8080));
    assert_eq!(syn["netns"].as_u64(), Some(t.a_inode()));
    let synack = evs
        .iter()
        .find(|e| e["tcp_flags"] == "S." && e["dport"].as_u64() == Some(port))
        .unwrap_or_else(|| panic!("SYN-ACK: {}", out.stdout));
    assert_eq!(synack["sport"].as_u64(), Some(8080));
    // Socket hooks take the flow and namespace from the socket.
    if let Some(rd) = evs
        .iter()
        .find(|e| e["hook"] == "sock:sk_data_ready" && e["netns"].as_u64() == Some(t.b_inode()))
    {
        assert_eq!(rd["source"], "socket");
        assert_eq!(rd["dport"].as_u64(), Some(8080));
    }
    assert!(evs
        .iter()
        .all(|e| e["sport"].as_u64() == Some(8080) || e["dport"].as_u64() == Some(8080)));
}

/// Parse the exit summary: (hits, filtered, sent, lost).
fn kernel_counts(stderr: &str) -> (u64, u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("hook hits"))
        .unwrap_or_else(|| panic!("summary: {stderr}"));
    let num = |word: &str| -> u64 {
        let i = line
            .find(word)
            .unwrap_or_else(|| panic!("{word} in {line}"));
        line[..i]
            .trim_end()
            .rsplit([' ', ',', ':'])
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (
        num("hook hits"),
        num("filtered out"),
        num("sent"),
        num("lost"),
    )
}

#[test]
fn unmatched_packets_are_dropped_in_the_kernel() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let run = start(&["--addr", "198.19.255.254", "-t", "link-in,link-out"]);
    for seq in 0..5 {
        assert!(ping(t.a(), t.b_ip(false), 99, seq));
    }
    let out = run.stop();
    assert!(
        out.stdout.trim().is_empty(),
        "nothing matches: {}",
        out.stdout
    );
    let (hits, filtered, sent, lost) = kernel_counts(&out.stderr);
    assert!(
        hits >= 5 * 8,
        "the hooks ran for every packet: {}",
        out.stderr
    );
    assert_eq!(
        filtered, hits,
        "all dropped by the kernel filter: {}",
        out.stderr
    );
    assert_eq!((sent, lost), (0, 0));
}

#[test]
fn count_and_closed_stdout_end_the_run_and_kill_leaves_nothing() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let before = bpf_link_ids();

    // --count: exits by itself after N events.
    let mut run = start(&["--addr", &t.b_ip(false).to_string(), "-c", "3"]);
    assert!(ping(t.a(), t.b_ip(false), 1, 1));
    let out = run
        .wait_exit(Duration::from_secs(10))
        .expect("exits after --count");
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.json().len(), 3);

    // SIGKILL: the kernel releases the links (asynchronously).
    let run = start(&["-t", "link-in"]);
    let pid = run.pid().expect("pid");
    assert!(
        !bpf_links_held_by(pid).is_empty(),
        "links attached while running"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    drop(run);
    if let Some(before) = before {
        let clean = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
            bpf_link_ids()
                .filter(|now| now.is_subset(&before))
                .map(|_| ())
        });
        assert!(
            clean.is_some(),
            "links left after SIGKILL: before {before:?} now {:?}",
            bpf_link_ids()
        );
    }

    // A closed stdout (`netxray trace | head`): exits quietly.
    let mut child = std::process::Command::new(netxray_bin())
        .args([
            "trace",
            "--addr",
            &t.b_ip(false).to_string(),
            "-t",
            "link-in",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(300));
    drop(child.stdout.take());
    let _ = ping(t.a(), t.b_ip(false), 2, 2);
    let exited = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        child.try_wait().ok().flatten()
    });
    if exited.is_none() {
        let _ = child.kill();
    }
    let status = exited.expect("exits when stdout closes");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn route_lookups_are_linked_to_their_packet() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let b = t.b_ip(false).to_string();
    let run = start(&["--addr", &b, "-t", "route,link-in,link-out"]);
    assert!(ping(t.a(), t.b_ip(false), 0x51, 1));
    let out = run.stop();
    let evs = out.json();
    let request_skbs: Vec<String> = packet_events(&evs, &t.a_ip(false).to_string(), 8)
        .iter()
        .map(|e| s(e, "skb"))
        .collect();
    let fib_in_b: Vec<&Value> = evs
        .iter()
        .filter(|e| e["hook"] == "fib:fib_table_lookup" && e["netns"].as_u64() == Some(t.b_inode()))
        .collect();
    assert!(!fib_in_b.is_empty(), "B routes the request: {}", out.stdout);
    for f in &fib_in_b {
        assert_eq!(f["kind"], "fib");
        assert!(f["skb"].is_null(), "a route lookup carries no skb");
    }
    assert!(
        fib_in_b
            .iter()
            .any(|f| request_skbs.contains(&s(f, "linked_skb"))),
        "a lookup in B is linked to the request's skb: {}",
        out.stdout
    );
}

#[test]
fn netns_iface_and_pid_prefilters() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let b = t.b_ip(false);

    // --netns: only B's namespace.
    let run = start(&[
        "--netns",
        t.b().name(),
        "--addr",
        &b.to_string(),
        "-t",
        "link-in,link-out",
    ]);
    assert!(ping(t.a(), b, 0x71, 1));
    let out = run.stop();
    let evs = out.json();
    assert!(!evs.is_empty(), "events in B: {}", out.stderr);
    assert!(
        evs.iter().all(|e| e["netns"].as_u64() == Some(t.b_inode())),
        "{}",
        out.stdout
    );

    // -i with --netns: one bridge port only.
    let ns_path = format!("/run/netns/{}", t.br().name());
    let run = start(&[
        "--netns",
        &ns_path,
        "-i",
        LinearBridged::BR_A,
        "-t",
        "link-in,link-out",
        "--proto",
        "icmp",
    ]);
    assert!(ping(t.a(), b, 0x72, 1));
    let out = run.stop();
    let evs = out.json();
    assert!(!evs.is_empty(), "events on br-a: {}", out.stderr);
    assert!(
        evs.iter().all(
            |e| e["ifname"] == LinearBridged::BR_A && e["netns"].as_u64() == Some(t.br_inode())
        ),
        "{}",
        out.stdout
    );

    // --pid: only events raised in this process (sending); the receive side
    // runs in softirq context and is not attributed.
    let me = std::process::id();
    let run = start(&[
        "--pid",
        &me.to_string(),
        "--addr",
        &b.to_string(),
        "-t",
        "link-in,link-out",
    ]);
    assert!(ping(t.a(), b, 0x73, 1));
    let out = run.stop();
    let evs = out.json();
    assert!(
        evs.iter()
            .any(|e| e["hook"] == "net:net_dev_queue" && e["netns"].as_u64() == Some(t.a_inode())),
        "the request leaves A in our context: {}",
        out.stdout
    );
    assert!(
        evs.iter().all(|e| e["pid"].as_u64() == Some(me as u64)),
        "{}",
        out.stdout
    );
}

#[test]
fn qdisc_hooks_fire_on_a_device_with_a_queue() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    // veth has no queue of its own: give A's end one. Not pfifo: an empty
    // pfifo lets a packet bypass the queue (no enqueue at all); tbf does not.
    let tbf = "tc qdisc add dev a0 root tbf rate 100mbit burst 32kbit latency 400ms";
    t.a().run(&tbf.split(' ').collect::<Vec<_>>());
    let b = t.b_ip(false);
    let run = start(&["--addr", &b.to_string(), "-t", "qdisc"]);
    assert!(ping(t.a(), b, 0x74, 1));
    let out = run.stop();
    let evs = out.json();
    for hook in ["qdisc:qdisc_enqueue", "qdisc:qdisc_dequeue"] {
        let e = evs
            .iter()
            .find(|e| e["hook"] == hook && e["icmp_type"].as_u64() == Some(8))
            .unwrap_or_else(|| {
                let q = t
                    .a()
                    .run(&["tc", "qdisc", "show", "dev", LinearBridged::A_IF]);
                panic!("{hook}: {}\n{}\nqdisc: {q}", out.stdout, out.stderr)
            });
        assert_eq!(e["ifname"], LinearBridged::A_IF);
        assert_eq!(e["icmp_id"].as_u64(), Some(0x74));
    }
}

#[test]
fn text_output_is_aligned_columns() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let b = t.b_ip(false).to_string();
    let run = NetxrayRun::new(netxray_bin())
        .args(["trace", "--addr", &b, "-t", "link-out"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    assert!(ping(t.a(), t.b_ip(false), 0x75, 3));
    let out = run.stop();
    let lines = out.lines();
    assert!(lines[0].starts_with("TIME"), "header: {}", out.stdout);
    let req = lines
        .iter()
        .find(|l| l.contains("net:net_dev_queue") && l.contains("echo request"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        req.contains(&format!(
            "IP {} > {}: ICMP echo request, id 117, seq 3",
            t.a_ip(false),
            b
        )),
        "{req}"
    );
    assert!(
        req.contains(t.a().name()) && req.contains(LinearBridged::A_IF),
        "{req}"
    );
}
