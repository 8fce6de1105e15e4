//! End to end: `netxray trace --journey` in the A -- BR (bridge) -- B
//! topology: one journey per packet, hops in order with consistent times,
//! the reply paired with its request, clones kept in their journey, and the
//! path map.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

fn start(args: &[&str]) -> NetxrayRun {
    start_on("link-in,link-out,life,socket", args)
}

fn start_on(hooks: &str, args: &[&str]) -> NetxrayRun {
    NetxrayRun::new(netxray_bin())
        .args(["trace", "--journey", "-t", hooks])
        .args(args)
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"))
}

/// Wait until `n` journeys (JSON lines with a "journey" key) are out.
fn wait_journeys(run: &NetxrayRun, n: usize, timeout: Duration) -> bool {
    poll_until(timeout, Duration::from_millis(20), || {
        let out = run.stdout_so_far();
        (out.lines()
            .filter(|l| l.starts_with("{\"journey\""))
            .count()
            >= n)
            .then_some(())
    })
    .is_some()
}

fn journeys(stdout: &str) -> Vec<Value> {
    parse_json_lines(stdout)
        .into_iter()
        .filter(|v| v.get("journey").is_some())
        .collect()
}

/// (netns name, ifname) in the order first seen.
fn path(j: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for h in j["hops"].as_array().expect("hops") {
        if h["kind"] != "packet" {
            continue;
        }
        let (Some(ns), Some(ifname)) = (h["netns_name"].as_str(), h["ifname"].as_str()) else {
            continue;
        };
        let p = (ns.to_string(), ifname.to_string());
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn check_times(j: &Value) {
    let hops = j["hops"].as_array().expect("hops");
    let mut sum = 0u64;
    let mut prev = 0u64;
    for h in hops {
        let since = h["since_first_ns"].as_u64().expect("since_first_ns");
        sum += h["delta_ns"].as_u64().expect("delta_ns");
        assert!(since >= prev, "hops out of order: {j}");
        assert_eq!(
            since, sum,
            "deltas add up to the time since the first hop: {j}"
        );
        prev = since;
    }
    assert_eq!(j["duration_ns"].as_u64(), Some(sum), "{j}");
}

fn forward(t: &LinearBridged) -> Vec<(String, String)> {
    vec![
        (t.a().name().to_string(), LinearBridged::A_IF.to_string()),
        (t.br().name().to_string(), LinearBridged::BR_A.to_string()),
        (t.br().name().to_string(), LinearBridged::BR_B.to_string()),
        (t.b().name().to_string(), LinearBridged::B_IF.to_string()),
    ]
}

#[test]
fn a_ping_is_one_journey_each_way_paired() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x3131, 1), "warm-up ping");
    let run = start(&["-o", "json", "icmp"]);
    assert!(ping(t.a(), t.b_ip(false), 0x4242, 7), "ping answered");
    let ok = wait_journeys(&run, 2, Duration::from_secs(10));
    let out = run.stop();
    assert!(ok, "two journeys: {}\n{}", out.stdout, out.stderr);
    let js = journeys(&out.stdout);
    let req = js
        .iter()
        .find(|j| j["summary"].as_str().unwrap_or("").contains("echo request"))
        .unwrap_or_else(|| panic!("request journey: {}", out.stdout));
    let rep = js
        .iter()
        .find(|j| j["summary"].as_str().unwrap_or("").contains("echo reply"))
        .unwrap_or_else(|| panic!("reply journey: {}", out.stdout));
    assert_eq!(path(req), forward(&t), "{req}");
    let mut back = forward(&t);
    back.reverse();
    assert_eq!(path(rep), back, "{rep}");
    check_times(req);
    check_times(rep);
    assert_eq!(req["end"]["kind"], "consumed", "{req}");
    assert_eq!(rep["reply_to"], req["journey"], "{rep}");
    assert!(rep["rtt_ns"].as_u64().unwrap_or(0) > 0, "{rep}");
    // The ping helper reads the reply on a raw socket: delivered there.
    assert_eq!(rep["end"]["kind"], "delivered", "{rep}");
}

#[test]
fn a_packet_socket_clone_stays_in_its_journey() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x3132, 1), "warm-up ping");
    let tap = packet_listener(t.b(), LinearBridged::B_IF);
    let run = start(&["-o", "json", "--follow", "icmp"]);
    assert!(ping(t.a(), t.b_ip(false), 0x4243, 9), "ping answered");
    // Like tcpdump: read the clones (the request's, received, and the
    // reply's, sent), so they are copied to user space and freed.
    assert!(
        drain_socket(&tap) >= 2,
        "the tap saw the request and the reply"
    );
    let ok = wait_journeys(&run, 2, Duration::from_secs(10));
    let out = run.stop();
    assert!(ok, "{}\n{}", out.stdout, out.stderr);
    let js = journeys(&out.stdout);
    let reqs: Vec<&Value> = js
        .iter()
        .filter(|j| j["summary"].as_str().unwrap_or("").contains("echo request"))
        .collect();
    assert_eq!(reqs.len(), 1, "one request journey: {}", out.stdout);
    let req = reqs[0];
    let skbs: std::collections::BTreeSet<&str> = req["hops"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["skb"].as_str())
        .collect();
    assert!(
        skbs.len() >= 2,
        "the clone's hops are in the journey: {req}"
    );
    assert_eq!(path(req), forward(&t), "{req}");
    check_times(req);
}

#[test]
fn a_thousand_pings_are_a_thousand_complete_journeys() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x3133, 1), "warm-up ping");
    let run = start(&["-o", "json", "icmp"]);
    for seq in 0..1000u16 {
        assert!(ping(t.a(), t.b_ip(false), 0x5151, seq), "ping {seq}");
    }
    let ok = wait_journeys(&run, 2000, Duration::from_secs(30));
    let out = run.stop();
    assert!(ok, "2000 journeys; stderr: {}", out.stderr);
    let js = journeys(&out.stdout);
    let (mut requests, mut replies) = (0, 0);
    for j in &js {
        check_times(j);
        let s = j["summary"].as_str().unwrap_or("");
        if s.contains("echo request") {
            requests += 1;
            assert_eq!(path(j), forward(&t), "{j}");
            assert_eq!(j["end"]["kind"], "consumed", "{j}");
        } else if s.contains("echo reply") {
            replies += 1;
            assert!(j["reply_to"].is_u64(), "paired: {j}");
        }
    }
    assert_eq!((requests, replies), (1000, 1000));
}

#[test]
fn the_map_draws_the_path_both_ways() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x3134, 1), "warm-up ping");
    let run = start(&["--map", "icmp"]);
    assert!(ping(t.a(), t.b_ip(false), 0x4244, 1), "ping answered");
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        (run.stdout_so_far().matches("journey #").count() >= 2).then_some(())
    });
    let out = run.stop();
    assert!(seen.is_some(), "{}", out.stdout);
    let map: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with('+') && !l.contains(" | "))
        .collect();
    let text = map.join("\n");
    let header = map.first().copied().unwrap_or("");
    let cols: Vec<&str> = header.split('|').map(str::trim).collect();
    assert_eq!(
        cols,
        [t.a().name(), t.br().name(), t.b().name()],
        "one column per namespace, in order:\n{text}"
    );
    let request = map.iter().find(|l| l.ends_with("request")).unwrap_or(&"");
    let reply = map.iter().find(|l| l.ends_with("reply")).unwrap_or(&"");
    for (l, arrow) in [(request, "> "), (reply, " <")] {
        let pos: Vec<usize> = ["a0", "br-a", "br-b", "b0"]
            .iter()
            .map(|i| l.find(i).unwrap_or(usize::MAX))
            .collect();
        assert!(
            pos.windows(2).all(|w| w[0] < w[1] && w[1] != usize::MAX),
            "{text}"
        );
        assert_eq!(l.matches(arrow.trim()).count(), 3, "three arrows: {text}");
    }
    assert!(map.iter().all(|l| l.chars().count() <= 100), "{text}");
}

/// Trace `udp port 5353` (with `extra` options) during one round trip
/// through the NAT; the journeys, once `n` are out, and the run's output.
fn dnat_run(t: &LinearBridged, extra: &[&str], n: usize) -> (Vec<Value>, NetxrayOutput) {
    let mut args = vec!["-o", "json"];
    args.extend_from_slice(extra);
    args.push("udp port 5353");
    let run = start(&args);
    assert_eq!(
        t.udp_dnat_round_trip().as_deref(),
        Some(&b"through the NAT"[..])
    );
    let ok = wait_journeys(&run, n, Duration::from_secs(10));
    let out = run.stop();
    assert!(ok, "{}\n{}", out.stdout, out.stderr);
    (journeys(&out.stdout), out)
}

/// The request's journey: to port 5353, starting in A.
fn dnat_request<'a>(t: &LinearBridged, js: &'a [Value], stdout: &str) -> &'a Value {
    js.iter()
        .find(|j| {
            j["summary"].as_str().unwrap_or("").contains(".5353: UDP")
                && j["hops"][0]["netns_name"] == t.a().name()
        })
        .unwrap_or_else(|| panic!("request: {stdout}"))
}

#[test]
fn follow_keeps_a_packet_through_dnat_and_pairs_the_reply() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::with_dnat();
    // Neighbours resolved before tracing.
    assert!(ping(t.a(), t.b_ip(false), 0x3135, 1), "warm-up ping");
    let (js, out) = dnat_run(&t, &["--follow"], 2);
    let req = dnat_request(&t, &js, &out.stdout);
    // One journey from A to B's socket, across the rewrite.
    assert_eq!(path(req), forward(&t), "{req}");
    let hops = req["hops"].as_array().expect("hops");
    let rewritten: Vec<&Value> = hops.iter().filter(|h| !h["rewrite"].is_null()).collect();
    assert_eq!(rewritten.len(), 1, "one rewrite: {req}");
    let r = rewritten[0];
    assert_eq!(
        r["netns_name"],
        t.br().name(),
        "rewritten in the bridge: {r}"
    );
    assert!(
        r["rewrite"]["from"]
            .as_str()
            .unwrap_or("")
            .ends_with(".5353"),
        "{r}"
    );
    assert!(
        r["rewrite"]["to"].as_str().unwrap_or("").ends_with(".5354"),
        "{r}"
    );
    assert_eq!(r["followed"], true, "{r}");
    assert_eq!(req["end"]["kind"], "delivered", "{req}");
    // The reply, un-NATted back to port 5353 on its way, is paired.
    let rep = js
        .iter()
        .find(|j| j["reply_to"] == req["journey"])
        .unwrap_or_else(|| panic!("reply paired with the request: {}", out.stdout));
    assert!(rep["rtt_ns"].as_u64().unwrap_or(0) > 0, "{rep}");
}

#[test]
fn without_follow_the_journey_stops_at_the_rewrite() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::with_dnat();
    assert!(ping(t.a(), t.b_ip(false), 0x3136, 1), "warm-up ping");
    let (js, out) = dnat_run(&t, &[], 1);
    let req = dnat_request(&t, &js, &out.stdout);
    let p = path(req);
    assert!(
        !p.iter().any(|(ns, _)| ns == t.b().name()),
        "B (past the rewrite) is not reached without --follow: {req}"
    );
    assert!(
        req["hops"]
            .as_array()
            .expect("hops")
            .iter()
            .all(|h| h["followed"] == false && h["rewrite"].is_null()),
        "no rewrite seen without --follow: {req}\n{}",
        out.stdout
    );
}

#[test]
fn ret_shows_what_netif_rx_returned_on_its_hop() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x3137, 1), "warm-up ping");
    let run = start(&["-o", "json", "--ret", "icmp"]);
    assert!(ping(t.a(), t.b_ip(false), 0x4245, 3), "ping answered");
    let ok = wait_journeys(&run, 2, Duration::from_secs(10));
    let out = run.stop();
    assert!(ok, "{}\n{}", out.stdout, out.stderr);
    let js = journeys(&out.stdout);
    let req = js
        .iter()
        .find(|j| j["summary"].as_str().unwrap_or("").contains("echo request"))
        .unwrap_or_else(|| panic!("request: {}", out.stdout));
    let hops = req["hops"].as_array().expect("hops");
    // One netif_rx per device the packet entered (br-a, b0), each followed
    // by its result on the same device.
    for dev in [LinearBridged::BR_A, LinearBridged::B_IF] {
        let entry = hops
            .iter()
            .position(|h| h["hook"] == "net:netif_rx_entry" && h["ifname"] == dev)
            .unwrap_or_else(|| panic!("netif_rx_entry on {dev}: {req}"));
        let exit = hops
            .iter()
            .position(|h| h["hook"] == "net:netif_rx_exit" && h["ifname"] == dev)
            .unwrap_or_else(|| panic!("netif_rx_exit on {dev}: {req}"));
        assert!(entry < exit, "{req}");
        assert_eq!(hops[exit]["ret"], 0, "{req}");
        assert_eq!(hops[exit]["kind"], "ret", "{req}");
        assert!(
            hops[exit]["detail"]
                .as_str()
                .unwrap_or("")
                .contains("NET_RX_SUCCESS"),
            "{req}"
        );
    }
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn journeys_in_flight_stay_bounded_under_a_flood() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    // A socket nobody reads: its datagrams wait in the queue, so their
    // journeys stay open.
    let _sink = udp_receiver(t.b(), t.b_sock4(6000));
    assert!(ping(t.a(), t.b_ip(false), 0x3138, 1), "warm-up ping");
    let run = start(&["-o", "json", "--max-journeys", "100", "udp port 6000"]);
    let pid = run.pid().expect("pid");
    let sender = udp_receiver(t.a(), std::net::SocketAddr::from((LinearBridged::A_IP4, 0)));
    sender.connect(t.b_sock4(6000)).expect("connect");
    for i in 0..3000u32 {
        sender.send(&i.to_be_bytes()).ok();
    }
    // Under a burst the ring may overflow (counted and reported): most
    // datagrams still make a journey.
    let ok = wait_journeys(&run, 1500, Duration::from_secs(20));
    let rss = peak_rss_kib(pid);
    let out = run.stop();
    assert!(ok, "journeys: {}", out.stderr);
    assert!(
        out.stderr
            .contains("closed early: more than --max-journeys in flight"),
        "evictions counted: {}",
        out.stderr
    );
    let evicted = journeys(&out.stdout)
        .iter()
        .filter(|j| j["end"]["kind"] == "evicted")
        .count();
    assert!(evicted > 0, "{}", out.stderr);
    eprintln!("peak memory {rss} KiB");
    assert!(rss < 64 * 1024, "peak memory {rss} KiB");
}

#[test]
fn without_life_hooks_each_datagram_of_a_flow_is_a_journey_of_its_own() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x3139, 1), "warm-up ping");
    // No life or socket hook ends a packet: one flow's datagrams get the
    // same skb and buffer back every few packets.
    let run = start_on("link-in,link-out", &["-o", "json", "udp port 6001"]);
    let _sink = udp_receiver(t.b(), t.b_sock4(6001));
    let sender = udp_receiver(t.a(), std::net::SocketAddr::from((LinearBridged::A_IP4, 0)));
    sender.connect(t.b_sock4(6001)).expect("connect");
    const N: usize = 300;
    for i in 0..N as u32 {
        sender.send(&i.to_be_bytes()).expect("send");
    }
    // The last ones end when the run does.
    let ok = wait_journeys(&run, N - 8, Duration::from_secs(10));
    let out = run.stop();
    assert!(ok, "{}\n{}", out.stdout, out.stderr);
    let js = journeys(&out.stdout);
    assert_eq!(js.len(), N, "one journey per datagram: {}", out.stderr);
    for j in &js {
        assert_eq!(path(j), forward(&t), "{j}");
        check_times(j);
    }
}

/// ```text
///  ns A                ns R (forwards)              ns B
///  a0 ──── veth ──── r0        r1 ──── veth ──── b0
///  198.18.10.1/24    .254/24   198.18.11.254/24  198.18.11.1/24
/// ```
/// Forwarding a segment TCP keeps to retransmit (the one on the wire is a
/// clone) copies it to a new data buffer (ip_forward's skb_cow): the same
/// skb goes on in another buffer. With `dnat`, R rewrites TCP port 8080
/// to 8081 on the way.
fn routed(dnat: bool) -> Topology {
    let mut t = Topology::new();
    for ns in ["a", "r", "b"] {
        t.add_netns(ns);
    }
    t.veth("a", "a0", "r", "r0");
    t.veth("r", "r1", "b", "b0");
    for (ns, ifname, cidr) in [
        ("a", "a0", "198.18.10.1/24"),
        ("r", "r0", "198.18.10.254/24"),
        ("r", "r1", "198.18.11.254/24"),
        ("b", "b0", "198.18.11.1/24"),
    ] {
        t.addr(ns, ifname, cidr);
        t.up(ns, ifname);
    }
    t.ns("r").sysctl("net.ipv4.ip_forward", "1");
    t.ns("a")
        .ip(&["route", "add", "198.18.11.0/24", "via", "198.18.10.254"]);
    t.ns("b")
        .ip(&["route", "add", "198.18.10.0/24", "via", "198.18.11.254"]);
    for (ns, ifname) in [("a", "a0"), ("r", "r0"), ("r", "r1"), ("b", "b0")] {
        t.ns(ns).wait_ready(ifname);
    }
    if dnat {
        for cmd in [
            "add table ip nxt",
            "add chain ip nxt pre { type nat hook prerouting priority dstnat; }",
            "add rule ip nxt pre tcp dport 8080 dnat to 198.18.11.1:8081",
        ] {
            let argv: Vec<&str> = std::iter::once("nft").chain(cmd.split(' ')).collect();
            t.run("r", &argv);
        }
    }
    t
}

/// The journey of the SYN of a connection from A to B's `port` (through R),
/// with the run's journeys and the client's port.
fn tcp_syn_journey(t: &Topology, args: &[&str], port: u16) -> (Value, Vec<Value>, u16) {
    let server_at = std::net::SocketAddr::from(([198, 18, 11, 1], 8081));
    let _server = TcpEchoServer::start(t.ns("b"), server_at);
    let to = std::net::SocketAddr::from(([198, 18, 11, 1], port));
    // Neighbours resolved before tracing.
    tcp_exchange(t.ns("a"), to, 1).expect("warm-up connection");
    let run = start(args);
    let ex = tcp_exchange(t.ns("a"), to, 100).expect("tcp through R");
    assert_eq!(ex.echoed, 100);
    let want = format!(
        "198.18.10.1.{} > 198.18.11.1.{port}: Flags [S]",
        ex.local_port()
    );
    let syn_of = |js: &[Value]| {
        js.iter()
            .find(|j| j["summary"].as_str().unwrap_or("").contains(&want))
            .cloned()
    };
    poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        syn_of(&journeys(&run.stdout_so_far())).filter(|j| path(j).len() >= 4)
    });
    let out = run.stop();
    let js = journeys(&out.stdout);
    let syn = syn_of(&js)
        .unwrap_or_else(|| panic!("no journey of {want}: {}\n{}", out.stdout, out.stderr));
    (syn, js, ex.local_port())
}

fn routed_path(t: &Topology) -> Vec<(String, String)> {
    [("a", "a0"), ("r", "r0"), ("r", "r1"), ("b", "b0")]
        .iter()
        .map(|(ns, i)| (t.ns(ns).name().to_string(), i.to_string()))
        .collect()
}

#[test]
fn a_tcp_segment_forwarded_into_a_new_buffer_stays_one_journey() {
    let Some(_serial) = e2e() else { return };
    let t = routed(false);
    let (syn, _, _) = tcp_syn_journey(&t, &["-o", "json", "tcp dst port 8081"], 8081);
    assert_eq!(path(&syn), routed_path(&t), "{syn}");
}

#[test]
fn follow_keeps_a_tcp_syn_through_dnat_when_the_kernel_moves_its_buffer() {
    let Some(_serial) = e2e() else { return };
    let t = routed(true);
    // Capture sockets on R's and B's side clone every packet there (as
    // tcpdump does): clones share the buffer, and buffers freed untraced
    // come back holding other packets.
    let _captures = [
        packet_listener(t.ns("r"), "r1"),
        packet_listener(t.ns("b"), "b0"),
    ];
    let (syn, js, client) =
        tcp_syn_journey(&t, &["-o", "json", "--follow", "tcp dst port 8080"], 8080);
    assert_eq!(path(&syn), routed_path(&t), "{syn}");
    // The request's data segment too, moved to a new buffer at R.
    let data = format!("198.18.10.1.{client} > 198.18.11.1.8080: Flags [P.]");
    let seg = js
        .iter()
        .find(|j| j["summary"].as_str().unwrap_or("").contains(&data))
        .unwrap_or_else(|| panic!("no journey of {data}: {js:?}"));
    assert_eq!(path(seg), routed_path(&t), "{seg}");
    // Nothing B sends is followed before R turns it back into port 8080:
    // a buffer or skb reused, or cloned by a capture, is not the request.
    for j in &js {
        for h in j["hops"].as_array().expect("hops") {
            let from_b = h["summary"]
                .as_str()
                .unwrap_or("")
                .contains("198.18.11.1.8081 >");
            assert!(!(from_b && h["followed"] == true), "followed: {h}\n{j}");
        }
    }
    let hops = syn["hops"].as_array().expect("hops");
    let rewritten: Vec<&Value> = hops.iter().filter(|h| !h["rewrite"].is_null()).collect();
    assert_eq!(rewritten.len(), 1, "one rewrite: {syn}");
    let r = rewritten[0];
    assert_eq!(r["netns_name"], t.ns("r").name(), "{r}");
    assert!(
        r["rewrite"]["from"]
            .as_str()
            .unwrap_or("")
            .ends_with(".8080")
            && r["rewrite"]["to"].as_str().unwrap_or("").ends_with(".8081"),
        "{r}"
    );
    // Past the rewrite, outside the filter: every packet hop kept by --follow.
    let at = hops
        .iter()
        .position(|h| !h["rewrite"].is_null())
        .expect("rewrite");
    assert!(
        hops[at..]
            .iter()
            .filter(|h| h["kind"] == "packet")
            .all(|h| h["followed"] == true),
        "{syn}"
    );
}
