//! End to end, on the legacy tc path (clsact + cls_bpf, what kernels
//! without tcx get), forced on this kernel with `NETXRAY_NO_TCX=1`:
//! `stats` counts exactly and `trace -t tc` sees every packet while traffic
//! flows; a clean exit leaves no qdisc or filter; an interface that had a
//! clsact qdisc with someone's filters keeps both; after `kill -9` the next
//! run, or `doctor`, removes the leftover filter and qdisc.

mod common;

use common::netns::command_stdout;
use common::*;
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// Two namespaces joined by a veth pair a0 -- b0, IPv4 only (no MLD noise).
fn pair() -> Topology {
    let mut t = Topology::new();
    t.add_netns("a");
    t.add_netns("b");
    t.veth("a", "a0", "b", "b0");
    for (ns, ifname, cidr) in [("a", "a0", "198.18.0.1/24"), ("b", "b0", "198.18.0.2/24")] {
        t.ns(ns).disable_ipv6(ifname);
        t.addr(ns, ifname, cidr);
        t.up(ns, ifname);
    }
    assert!(ping(t.ns("a"), B_IP.into(), 0x3501, 1), "warm-up ping");
    t
}

fn tc(ns: &Netns, args: &[&str]) -> String {
    let mut full = vec!["-n", ns.name()];
    full.extend_from_slice(args);
    command_stdout("tc", &full)
}

/// The filter lines of one side of b0 (not the per-priority heads).
fn filters(ns: &Netns, side: &str) -> Vec<String> {
    tc(ns, &["filter", "show", "dev", "b0", side])
        .lines()
        .filter(|l| l.contains("handle") || l.contains("fh "))
        .map(str::to_string)
        .collect()
}

fn has_clsact(ns: &Netns) -> bool {
    tc(ns, &["qdisc", "show", "dev", "b0"]).contains("clsact")
}

fn record(ns: &Netns) -> PathBuf {
    PathBuf::from(format!(
        "/run/netxray/clsact/{}-{}",
        ns.inode(),
        ns.ifindex("b0")
    ))
}

/// Nothing of netxray's on b0: no clsact, no filter, no record.
fn assert_clean(ns: &Netns, why: &str) {
    assert!(
        !has_clsact(ns),
        "{why}: clsact left: {}",
        tc(ns, &["qdisc", "show", "dev", "b0"])
    );
    assert!(!record(ns).exists(), "{why}: record left");
}

fn netxray_legacy(args: &[&str]) -> NetxrayRun {
    NetxrayRun::new(netxray_bin())
        .env("NETXRAY_NO_TCX", "1")
        .args(args)
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"))
}

/// `n` datagrams of `payload` bytes from one socket in A to B:9000, all
/// received there: the sender's address.
fn udp_through(t: &Topology, n: usize, payload: usize) -> SocketAddr {
    let server = udp_receiver(t.ns("b"), SocketAddr::from((B_IP, 9000)));
    let client = udp_receiver(t.ns("a"), SocketAddr::from((A_IP, 0)));
    let data = vec![0x5a; payload];
    for _ in 0..n {
        client
            .send_to(&data, SocketAddr::from((B_IP, 9000)))
            .expect("send");
    }
    for i in 0..n {
        let got = udp_recv(&server).unwrap_or_else(|| panic!("datagram {i} of {n} not received"));
        assert_eq!(got.0.len(), payload);
    }
    client.local_addr().expect("addr")
}

#[test]
fn stats_counts_exactly_through_clsact_and_leaves_nothing() {
    let Some(_serial) = e2e() else { return };
    let t = pair();
    let b = t.ns("b");
    assert_clean(b, "before");
    let mut run = netxray_legacy(&[
        "-v",
        "stats",
        "--netns",
        b.path().to_str().expect("path"),
        "-i",
        "b0",
        "--once",
        "--interval",
        "3",
        "-o",
        "json",
        "udp",
    ]);
    let pid = run.pid().expect("pid");
    assert!(has_clsact(b), "clsact made");
    for side in ["ingress", "egress"] {
        let f = filters(b, side);
        assert_eq!(f.len(), 1, "{side}: {f:?}");
        assert!(
            f[0].contains(&format!("netxray:{pid}:stats_tc_{side}"))
                && f[0].contains("direct-action"),
            "{side}: {f:?}"
        );
    }
    assert!(record(b).exists(), "the qdisc is recorded");
    let src = udp_through(&t, 25, 100);
    let out = run
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| run.stop());
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("clsact + cls_bpf (this kernel has no tcx)"),
        "-v names the path: {}",
        out.stderr
    );
    let snap = out.json().into_iter().next().expect("a snapshot");
    let row = |dir: &str| -> Value {
        snap["interfaces"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["ifname"] == "b0" && r["dir"] == dir))
            .cloned()
            .unwrap_or_else(|| panic!("no row b0 {dir}: {snap}"))
    };
    let r = row("in");
    assert_eq!(r["packets"], 25, "{r}");
    assert_eq!(r["bytes"], 25 * (14 + 20 + 8 + 100), "{r}");
    assert_eq!(r["l4"]["udp"]["packets"], 25, "{r}");
    assert_eq!(row("out")["packets"], 0, "{snap}");
    let top = &snap["flows"][0];
    assert_eq!(top["saddr"], src.ip().to_string(), "{top}");
    assert_eq!(top["sport"], src.port(), "{top}");
    assert_eq!(top["packets"], 25, "{top}");
    assert_clean(b, "after a clean exit");
    assert!(filters(b, "ingress").is_empty() && filters(b, "egress").is_empty());
}

/// B echoes `n` datagrams sent from one socket in A: A's address. Fails
/// unless every echo comes back (traffic flows).
fn echo_round_trips(t: &Topology, n: usize) -> SocketAddr {
    let server = udp_receiver(t.ns("b"), SocketAddr::from((B_IP, 9000)));
    let echo = std::thread::spawn(move || {
        for _ in 0..n {
            if let Some((data, from)) = udp_recv(&server) {
                server.send_to(&data, from).ok();
            }
        }
    });
    let client: UdpSocket = udp_receiver(t.ns("a"), SocketAddr::from((A_IP, 0)));
    client
        .connect(SocketAddr::from((B_IP, 9000)))
        .expect("connect");
    let mut buf = [0u8; 64];
    for i in 0..n {
        let msg = format!("round trip {i}");
        client.send(msg.as_bytes()).expect("send");
        let len = client.recv(&mut buf).expect("the echo comes back");
        assert_eq!(&buf[..len], msg.as_bytes());
    }
    echo.join().expect("echo thread");
    client.local_addr().expect("addr")
}

/// trace -t tc -i b0: each request at ingress, each reply at egress.
fn trace_round_trips(t: &Topology, n: usize) -> NetxrayOutput {
    let b = t.ns("b");
    let run = netxray_legacy(&[
        "-v",
        "trace",
        "-t",
        "tc",
        "-i",
        "b0",
        "--netns",
        b.name(),
        "-o",
        "json",
        "udp port 9000",
    ]);
    let a = echo_round_trips(t, n);
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (run.stdout_so_far().lines().count() >= 2 * n).then_some(())
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
    assert_eq!(count("tc:ingress", &request), n, "{}", out.stdout);
    assert_eq!(count("tc:egress", &reply), n, "{}", out.stdout);
    assert_eq!(events.len(), 2 * n, "nothing else: {}", out.stdout);
    for e in &events {
        assert_eq!(e["ifname"], "b0", "{e}");
        assert_eq!(e["netns_name"], b.name(), "{e}");
        assert!(e["skb"].is_string(), "{e}");
    }
    for side in ["ingress", "egress"] {
        assert!(
            out.stderr.contains(&format!(
                "tc:{side} on ifindex {}: clsact + cls_bpf",
                b.ifindex("b0")
            )),
            "-v names the path: {}",
            out.stderr
        );
    }
    out
}

#[test]
fn trace_tc_sees_every_packet_through_clsact_and_traffic_flows() {
    let Some(_serial) = e2e() else { return };
    let t = pair();
    trace_round_trips(&t, 3);
    assert_clean(t.ns("b"), "after a clean exit");
}

#[test]
fn a_users_clsact_qdisc_and_filters_stay() {
    let Some(_serial) = e2e() else { return };
    let t = pair();
    let b = t.ns("b");
    // Someone's clsact with filters: pref 1 is taken by another protocol
    // on both sides (netxray must go to pref 2), pref 5 ingress matches
    // every IPv4 packet (and ends classification there: netxray must run
    // before it).
    tc(b, &["qdisc", "add", "dev", "b0", "clsact"]);
    for side in ["ingress", "egress"] {
        tc(
            b,
            &[
                "filter",
                "add",
                "dev",
                "b0",
                side,
                "pref",
                "1",
                "protocol",
                "ipv6",
                "bpf",
                "bytecode",
                "1,6 0 0 0,",
            ],
        );
    }
    tc(
        b,
        &[
            "filter", "add", "dev", "b0", "ingress", "pref", "5", "protocol", "ip", "u32", "match",
            "u32", "0", "0", "classid", "1:1",
        ],
    );
    let before = (filters(b, "ingress"), filters(b, "egress"));
    assert_eq!((before.0.len(), before.1.len()), (3, 1), "{before:?}");
    let out = trace_round_trips(&t, 2);
    assert!(out.stderr.contains("pref 2"), "{}", out.stderr);
    assert!(has_clsact(b), "the user's clsact stays");
    assert_eq!(
        (filters(b, "ingress"), filters(b, "egress")),
        before,
        "the user's filters stay, netxray's are gone"
    );
    assert!(!record(b).exists());
}

fn kill9(run: &mut NetxrayRun) {
    let pid = run.pid().expect("pid");
    // SAFETY: kill(2) on the pid of a child we started and still own.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    run.wait_exit(Duration::from_secs(10))
        .expect("killed netxray exits");
}

/// Start stats on b0 and kill -9 it: its pid. The filters and the
/// recorded clsact stay behind.
fn killed_stats(b: &Netns) -> u32 {
    let mut run = netxray_legacy(&["stats", "--netns", b.name(), "-i", "b0", "--interval", "60"]);
    let pid = run.pid().expect("pid");
    kill9(&mut run);
    for side in ["ingress", "egress"] {
        let f = filters(b, side);
        assert!(
            f.len() == 1 && f[0].contains(&format!("netxray:{pid}:")),
            "{side} after kill -9: {f:?}"
        );
    }
    assert!(has_clsact(b) && record(b).exists());
    pid
}

#[test]
fn after_kill_9_the_next_run_or_doctor_removes_the_filter_and_qdisc() {
    let Some(_serial) = e2e() else { return };
    let t = pair();
    let b = t.ns("b");

    // The next run: it removes the leftovers as it starts, counts, and
    // leaves nothing when it exits.
    let dead = killed_stats(b);
    let mut run = netxray_legacy(&[
        "stats",
        "--netns",
        b.name(),
        "-i",
        "b0",
        "--once",
        "--interval",
        "2",
        "-o",
        "json",
        "udp",
    ]);
    let pid = run.pid().expect("pid");
    for side in ["ingress", "egress"] {
        let f = filters(b, side);
        assert!(
            f.len() == 1 && f[0].contains(&format!("netxray:{pid}:")),
            "{side}: only the new run's filter: {f:?}"
        );
    }
    udp_through(&t, 5, 10);
    let out = run
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| run.stop());
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("netxray:{dead}:stats_tc_ingress")),
        "says what it removed: {}",
        out.stderr
    );
    let snap = out.json().into_iter().next().expect("a snapshot");
    let inbound = snap["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["ifname"] == "b0" && r["dir"] == "in"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(inbound["packets"], 5, "only the new run counts: {snap}");
    assert_clean(b, "after the next run");

    // doctor, with no run after the kill.
    let dead = killed_stats(b);
    let out = std::process::Command::new(netxray_bin())
        .args(["doctor", "-o", "json"])
        .output()
        .expect("doctor runs");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("doctor json");
    let check = doc["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "netxray_tc_filters"))
        .cloned()
        .unwrap_or_else(|| panic!("no netxray_tc_filters check: {doc}"));
    assert_eq!(check["status"], "warning", "{check}");
    let detail = check["detail"].as_str().unwrap_or_default();
    for what in [
        format!("netxray:{dead}:stats_tc_ingress"),
        format!("netxray:{dead}:stats_tc_egress"),
        "clsact qdisc on b0".to_string(),
    ] {
        assert!(detail.contains(&what), "{what} in {detail}");
    }
    assert_clean(b, "after doctor");
    assert!(filters(b, "ingress").is_empty() && filters(b, "egress").is_empty());
}

#[test]
fn hooks_say_tc_goes_through_legacy_tc_without_tcx() {
    let via = |no_tcx: bool| -> Vec<(Value, Value)> {
        let mut cmd = std::process::Command::new(netxray_bin());
        cmd.args(["hooks", "-o", "json"]);
        if no_tcx {
            cmd.env("NETXRAY_NO_TCX", "1");
        } else {
            cmd.env_remove("NETXRAY_NO_TCX");
        }
        let out = cmd.output().expect("hooks runs");
        assert!(out.status.success());
        parse_json_lines(&String::from_utf8_lossy(&out.stdout))
            .into_iter()
            .filter(|h| h["group"] == "tc")
            .map(|h| (h["available"].clone(), h["via"].clone()))
            .collect()
    };
    let legacy = via(true);
    assert_eq!(legacy.len(), 2, "tc:ingress and tc:egress");
    for (available, how) in &legacy {
        assert_eq!(*available, Value::Bool(true));
        assert_eq!(*how, "clsact");
    }
    // Without the knob: what this kernel has.
    let has_tcx = ::netxray::kernel::btf::KernelBtf::load()
        .is_ok_and(|b| b.has_enum_value("bpf_attach_type", "BPF_TCX_INGRESS"));
    for (available, how) in via(false) {
        assert_eq!(available, Value::Bool(true));
        assert_eq!(how, if has_tcx { "tcx" } else { "clsact" });
    }
    let mut cmd = std::process::Command::new(netxray_bin());
    let text = cmd
        .arg("hooks")
        .env("NETXRAY_NO_TCX", "1")
        .output()
        .expect("hooks runs");
    let text = String::from_utf8_lossy(&text.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("tc:egress"))
        .unwrap_or_default();
    assert!(
        line.contains(" ok ") && line.contains("through legacy tc, clsact + cls_bpf"),
        "{line}"
    );
}
