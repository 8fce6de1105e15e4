//! End to end: `netxray dns` with a real server (dnsmasq, in namespace B)
//! and real clients in namespace A: dig over UDP and TCP, IPv4 and IPv6,
//! glibc's getaddrinfo (`getent ahosts`, which sends A and AAAA together
//! with sendmmsg), NXDOMAIN, and a query nobody answers.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// dnsmasq in a namespace: example.test has A and AAAA records,
/// nx.test does not exist. Killed on drop.
struct Dnsmasq {
    child: Child,
}

impl Dnsmasq {
    fn start(ns: &Netns, listen: &[&str]) -> Dnsmasq {
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "dnsmasq", "--no-daemon"])
            .args([
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--port=53",
            ])
            .arg(format!("--listen-address={}", listen.join(",")))
            .args([
                "--address=/example.test/198.18.0.9",
                "--address=/example.test/2001:db8::9",
                "--address=/nx.test/",
                "--pid-file=",
                "--user=root",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let d = Dnsmasq { child };
        // Ready when it answers.
        let ok = poll_until(WAIT, Duration::from_millis(50), || {
            let out = ns.run(&[
                "dig",
                "+short",
                "+tries=1",
                "+timeout=1",
                &format!("@{}", listen[0]),
                "ready.example.test",
            ]);
            out.contains("198.18.0.9").then_some(())
        });
        assert!(ok.is_some(), "dnsmasq did not answer");
        d
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// /etc/netns/<ns>/resolv.conf: `ip netns exec` mounts it over
/// /etc/resolv.conf, so glibc in that namespace asks our server. Removed on
/// drop.
struct ResolvConf {
    dir: PathBuf,
}

impl ResolvConf {
    fn new(ns: &Netns, server: &str) -> ResolvConf {
        let dir = PathBuf::from("/etc/netns").join(ns.name());
        std::fs::create_dir_all(&dir).expect("mkdir /etc/netns/NS");
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {server}\noptions timeout:2 attempts:1\n"),
        )
        .expect("write resolv.conf");
        ResolvConf { dir }
    }
}

impl Drop for ResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a client in the namespace; returns its pid (`ip netns exec`
/// execs the command: same pid).
fn client(ns: &Netns, argv: &[&str]) -> u32 {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .args(argv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start client");
    let pid = child.id();
    let _ = child.wait();
    pid
}

fn find<'a>(recs: &'a [Value], name: &str, qtype: &str, transport: &str) -> Vec<&'a Value> {
    recs.iter()
        .filter(|r| r["name"] == name && r["qtype"] == qtype && r["transport"] == transport)
        .collect()
}

fn answers(r: &Value) -> Vec<String> {
    r["answers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    format!(
                        "{} {}",
                        x["type"].as_str().unwrap_or(""),
                        x["data"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// On 6.3+ the socket hooks carry the data; the system-call returns
/// otherwise, as on 5.10 and 6.1 (also run here, with the socket hooks
/// hidden).
#[test]
fn every_query_with_its_answer_latency_and_both_processes() {
    queries_on("");
}

#[test]
fn every_query_with_its_answer_latency_and_both_processes_from_the_system_call_returns() {
    queries_on("sock_send_length,sock_recv_length");
}

fn queries_on(hide: &str) {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let dns = Dnsmasq::start(t.b(), &["198.18.0.2", "2001:db8::2"]);
    let _resolv = ResolvConf::new(t.a(), "198.18.0.2");
    let run = NetxrayRun::new(netxray_bin())
        .env("NETXRAY_HIDE_TRACEPOINTS", hide)
        .args(["dns", "-o", "json", "--timeout", "1"])
        .args(["host", "198.18.0.2", "or", "host", "2001:db8::2"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let a = t.a();
    let udp4 = client(a, &["dig", "+tries=1", "@198.18.0.2", "example.test", "A"]);
    let nx = client(a, &["dig", "+tries=1", "@198.18.0.2", "nx.test", "A"]);
    let tcp = client(a, &["dig", "+tcp", "@198.18.0.2", "example.test", "AAAA"]);
    let udp6 = client(a, &["dig", "+tries=1", "@2001:db8::2", "example.test", "A"]);
    let gai = client(a, &["getent", "ahosts", "example.test"]);
    // Nobody listens on 5300: the query is never answered.
    let lost = client(
        a,
        &[
            "dig",
            "+tries=1",
            "+timeout=1",
            "-p",
            "5300",
            "@198.18.0.2",
            "lost.test",
            "A",
        ],
    );
    let want = 7;
    let got = poll_until(WAIT, Duration::from_millis(100), || {
        let n = parse_json_lines(&run.stdout_so_far()).len();
        // (every record is a "dns" one until the summary at the end)
        (n >= want).then_some(n)
    });
    let out = run.stop();
    // Which hooks carried the data (stderr's first line says).
    assert_eq!(
        out.stderr.contains("from the socket hooks"),
        hide.is_empty(),
        "{}",
        out.stderr
    );
    let all = parse_json_lines(&out.stdout);
    let recs: Vec<Value> = all.iter().filter(|r| r["type"] == "dns").cloned().collect();
    assert!(
        got.is_some(),
        "{} records: {}\n{}",
        recs.len(),
        out.stdout,
        out.stderr
    );

    let one = |name: &str, qtype: &str, transport: &str, client_pid: u32| -> Value {
        let v: Vec<&Value> = find(&recs, name, qtype, transport)
            .into_iter()
            .filter(|r| r["client_process"]["pid"] == client_pid)
            .collect();
        assert_eq!(v.len(), 1, "{name} {qtype} {transport}: {}", out.stdout);
        v[0].clone()
    };
    let r = one("example.test", "A", "udp", udp4);
    assert_eq!(r["status"], "answered");
    assert_eq!(r["rcode"], "NOERROR");
    assert_eq!(answers(&r), ["A 198.18.0.9"]);
    assert_eq!(r["client_process"]["comm"], "dig");
    assert_eq!(r["server_process"]["comm"], "dnsmasq");
    assert_eq!(r["server_process"]["pid"], dns.pid());
    assert_eq!(r["client_process"]["netns_name"], a.name());
    assert_eq!(r["server_process"]["netns_name"], t.b().name());
    assert_eq!(r["server"], "198.18.0.2:53");
    assert_eq!(r["latency_side"], "client");
    assert!(
        r["latency_ns"]
            .as_u64()
            .is_some_and(|l| l > 0 && l < 1_000_000_000),
        "{r}"
    );

    let r = one("nx.test", "A", "udp", nx);
    assert_eq!(r["rcode"], "NXDOMAIN");
    assert!(answers(&r).is_empty());

    let r = one("example.test", "AAAA", "tcp", tcp);
    assert_eq!(r["rcode"], "NOERROR");
    assert_eq!(answers(&r), ["AAAA 2001:db8::9"]);
    assert_eq!(r["server_process"]["comm"], "dnsmasq");

    let r = one("example.test", "A", "udp", udp6);
    assert_eq!(r["server"], "[2001:db8::2]:53");
    assert_eq!(answers(&r), ["A 198.18.0.9"]);

    // getaddrinfo: A and AAAA, two queries (sent together with sendmmsg).
    let r4 = one("example.test", "A", "udp", gai);
    let r6 = one("example.test", "AAAA", "udp", gai);
    for r in [&r4, &r6] {
        assert_eq!(r["client_process"]["comm"], "getent");
        assert_eq!(r["status"], "answered");
    }
    assert_eq!(answers(&r6), ["AAAA 2001:db8::9"]);

    let r = one("lost.test", "A", "udp", lost);
    assert_eq!(r["status"], "unanswered");
    assert!(r["server_process"].is_null());

    // The readiness probes aside, nothing else.
    let others: Vec<&Value> = recs
        .iter()
        .filter(|r| r["name"] != "ready.example.test")
        .collect();
    assert_eq!(others.len(), want, "{}", out.stdout);
    assert!(out.stderr.contains(" 0 lost"), "{}", out.stderr);

    // At the end, per name: queries, errors, latency percentiles.
    let sum: Vec<&Value> = all.iter().filter(|r| r["type"] == "dns_summary").collect();
    let row = |name: &str| {
        sum.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no summary for {name}: {}", out.stdout))
    };
    // example.test: dig A, dig AAAA over TCP, dig A over IPv6, getent A
    // and AAAA; all answered.
    assert_eq!(row("example.test")["queries"], 5);
    assert_eq!(row("example.test")["errors"], 0);
    assert!(row("example.test")["p50_ns"].as_u64().is_some());
    assert_eq!(row("nx.test")["errors"], 1);
    assert_eq!(row("lost.test")["errors"], 1);
    assert!(row("lost.test")["p50_ns"].is_null());
}

#[test]
fn text_output_comm_in_the_kernel_and_a_bad_filter() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let _dns = Dnsmasq::start(t.b(), &["198.18.0.2"]);
    let _resolv = ResolvConf::new(t.a(), "198.18.0.2");
    let run = NetxrayRun::new(netxray_bin())
        .args(["dns", "--comm", "getent"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    // dig first, then getent: once getent's queries are shown, dig's would
    // have been too.
    client(t.a(), &["dig", "@198.18.0.2", "example.test", "A"]);
    let gai = client(t.a(), &["getent", "ahosts", "example.test"]);
    let shown = poll_until(WAIT, Duration::from_millis(100), || {
        let s = run.stdout_so_far();
        (s.matches("/getent").count() >= 2).then_some(())
    });
    let out = run.stop();
    assert!(shown.is_some(), "{}\n{}", out.stdout, out.stderr);
    let lines = out.lines();
    assert!(lines[0].starts_with("TIME"), "{}", out.stdout);
    assert!(!out.stdout.contains("/dig"), "{}", out.stdout);
    // The records, then a blank line and the summary per name.
    let end = lines
        .iter()
        .position(|l| l.is_empty())
        .unwrap_or(lines.len());
    assert!(lines[end + 1].starts_with("NAME"), "{}", out.stdout);
    assert!(lines[end + 2].starts_with("example.test"), "{}", out.stdout);
    for l in &lines[1..end] {
        assert!(l.contains(&format!("{gai}/getent")), "{l}");
        assert!(l.contains("example.test") && l.contains("NOERROR"), "{l}");
    }

    let bad = Command::new(netxray_bin())
        .args(["dns", "tcp[13] = 2"])
        .output()
        .expect("run netxray");
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad filter"));
}

/// SIGKILL: the system-call tracepoints' links go with the process.
#[test]
fn sigkill_leaves_no_link_behind() {
    let Some(_serial) = e2e() else { return };
    use common::leftovers::{bpf_link_ids, bpf_links_held_by};
    let before = bpf_link_ids();
    for sub in ["dns", "http"] {
        let run = NetxrayRun::new(netxray_bin())
            .arg(sub)
            .start()
            .unwrap_or_else(|e| panic!("netxray {sub} did not start: {e}"));
        let pid = run.pid().expect("pid");
        // The return of 11 system calls (before 6.3), or the 2 socket hooks
        // and, for dns, 4 returns (UDP's datagram reads and mmsg calls).
        assert!(
            bpf_links_held_by(pid).len() >= 2,
            "{sub}: {:?}",
            bpf_links_held_by(pid)
        );
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        drop(run);
        if let Some(before) = &before {
            let clean = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
                bpf_link_ids()
                    .filter(|now| now.is_subset(before))
                    .map(|_| ())
            });
            assert!(clean.is_some(), "{sub}: links left after SIGKILL");
        }
    }
}
