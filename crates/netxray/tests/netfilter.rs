//! End to end: netfilter hooks through netfilter BPF links. `drops` says in
//! which hook a firewall rule dropped a packet (IPv4 and IPv6), also in
//! namespaces created while it runs; `trace -t netfilter` shows a packet at
//! each hook with the tuple before and after NAT and the conntrack state;
//! nothing stays attached after exit.

mod common;

use common::netns::command_stdout;
use common::*;
use serde_json::Value;
use std::time::Duration;

/// Netfilter BPF links on the machine (bpftool's view).
fn nf_links() -> usize {
    command_stdout("bpftool", &["link", "show"])
        .lines()
        .filter(|l| {
            // Older bpftool names the type by number (BPF_LINK_TYPE_NETFILTER).
            let w: Vec<&str> = l.split_whitespace().collect();
            w.get(1) == Some(&"netfilter") || w.get(1..3) == Some(&["type", "10"][..])
        })
        .count()
}

/// B drops UDP to port 7 in its input chain, for both families, and counts.
fn drop_rule_in_b(t: &LinearBridged) {
    t.nft(
        t.b(),
        &[
            "add table inet nxdrop",
            "add chain inet nxdrop in { type filter hook input priority 0; }",
            "add rule inet nxdrop in udp dport 7 counter drop",
        ],
    );
}

/// Packets the drop rule's counter saw.
fn rule_counter(t: &LinearBridged) -> u64 {
    let text = t.b().run(&["nft", "list", "table", "inet", "nxdrop"]);
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "packets")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or_else(|| panic!("no counter in {text}"))
}

/// The total of the NETFILTER_DROP row in `ns` at `hook` in a drops summary.
fn nf_drop_total(line: &str, ns: u64, hook: &str) -> u64 {
    drops_total(line, |r| {
        r["reason"] == "NETFILTER_DROP"
            && r["netns"].as_u64() == Some(ns)
            && r["netfilter_hook"] == hook
    })
}

/// Send `n4` IPv4 and `n6` IPv6 datagrams from A to B's port 7, wait until
/// `run` (drops, JSON) counted them all, stop it and check the counts are
/// exact, per family, at the input hook, and match the rule's counter.
fn send_and_check_exact(t: &LinearBridged, run: NetxrayRun, n4: u64, n6: u64) {
    for _ in 0..n4 {
        udp_send(t.a(), None, t.b_sock4(7), b"dropped by a rule");
    }
    for _ in 0..n6 {
        udp_send(t.a(), None, t.b_sock6(7), b"dropped by a rule");
    }
    let b = t.b_inode();
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        run.stdout_so_far()
            .lines()
            .any(|l| {
                nf_drop_total(l, b, "ip input") >= n4 && nf_drop_total(l, b, "ip6 input") >= n6
            })
            .then_some(())
    });
    let out = run.stop();
    assert!(seen.is_some(), "{}\n{}", out.stdout, out.stderr);
    let last = out
        .stdout
        .lines()
        .rev()
        .find(|l| nf_drop_total(l, b, "ip input") > 0)
        .expect("a summary with the row");
    assert_eq!(nf_drop_total(last, b, "ip input"), n4, "{last}");
    assert_eq!(nf_drop_total(last, b, "ip6 input"), n6, "{last}");
    assert_eq!(rule_counter(t), n4 + n6, "the rule's own counter");
    let v: Value = serde_json::from_str(last).expect("json");
    for row in v["rows"].as_array().expect("rows") {
        if row["reason"] == "NETFILTER_DROP" {
            assert_eq!(row["netns_name"], t.b().name(), "{row}");
            assert_eq!(row["ifname"], LinearBridged::B_IF, "{row}");
        }
    }
}

#[test]
fn drops_names_the_hook_of_a_netfilter_drop_exactly_per_family() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    drop_rule_in_b(&t);
    assert!(ping(t.a(), t.b_ip(false), 0x3201, 1), "warm-up ping");
    assert!(ping(t.a(), t.b_ip(true), 0x3202, 1), "warm-up ping6");
    let links_before = nf_links();
    // No --netns: every namespace is watched.
    let run = NetxrayRun::new(netxray_bin())
        .args([
            "drops",
            "-o",
            "json",
            "--interval",
            "0.3",
            "udp and dst port 7",
        ])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    assert!(
        nf_links() >= links_before + 2,
        "links at B's input hooks (ip, ip6), where its rule is"
    );
    send_and_check_exact(&t, run, 40, 15);
    assert_eq!(nf_links(), links_before, "every netfilter link is gone");
}

#[test]
fn drops_watches_namespaces_created_while_it_runs() {
    let Some(_serial) = e2e() else { return };
    let run = NetxrayRun::new(netxray_bin())
        .args([
            "drops",
            "-o",
            "json",
            "--interval",
            "0.2",
            "udp and dst port 7",
        ])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let t = LinearBridged::new();
    drop_rule_in_b(&t);
    assert!(ping(t.a(), t.b_ip(false), 0x3203, 1), "warm-up ping");
    assert!(ping(t.a(), t.b_ip(true), 0x3204, 1), "warm-up ping6");
    let watched = format!("/{} (inode", t.b().name());
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        run.stderr_so_far()
            .lines()
            .any(|l| l.contains("netfilter hooks now watched") && l.contains(&watched))
            .then_some(())
    });
    assert!(seen.is_some(), "B watched: {}", run.stderr_so_far());
    send_and_check_exact(&t, run, 12, 5);
}

#[test]
fn drops_events_name_the_hook() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    drop_rule_in_b(&t);
    assert!(ping(t.a(), t.b_ip(false), 0x3205, 1), "warm-up ping");
    let run = NetxrayRun::new(netxray_bin())
        .args(["drops", "--events", "-o", "json", "udp and dst port 7"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    for _ in 0..3 {
        udp_send(t.a(), None, t.b_sock4(7), b"dropped by a rule");
    }
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (run.stdout_so_far().matches("\"NETFILTER_DROP\"").count() >= 3).then_some(())
    });
    let out = run.stop();
    assert!(seen.is_some(), "{}\n{}", out.stdout, out.stderr);
    let events = out.json();
    assert_eq!(events.len(), 3, "{}", out.stdout);
    for e in events {
        assert_eq!(e["hook"], "skb:kfree_skb", "{e}");
        assert_eq!(e["nf_hook"], "ip input", "{e}");
        assert_eq!(e["netns_name"], t.b().name(), "{e}");
    }
}

/// The first event at `hook` in namespace `ns` whose ports satisfy `ports`.
fn find<'a>(
    events: &'a [Value],
    hook: &str,
    ns: &str,
    ports: impl Fn(u64, u64) -> bool,
) -> Option<&'a Value> {
    events.iter().find(|e| {
        e["hook"] == hook
            && e["netns_name"] == ns
            && ports(
                e["sport"].as_u64().unwrap_or(0),
                e["dport"].as_u64().unwrap_or(0),
            )
    })
}

#[test]
fn trace_netfilter_shows_dnat_before_and_after_with_conntrack() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::with_dnat();
    assert!(ping(t.a(), t.b_ip(false), 0x3206, 1), "warm-up ping");
    let run = NetxrayRun::new(netxray_bin())
        .args([
            "trace",
            "-t",
            "netfilter",
            "-o",
            "json",
            "udp and (port 5353 or port 5354)",
        ])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    assert_eq!(
        t.udp_dnat_round_trip().as_deref(),
        Some(&b"through the NAT"[..])
    );
    let br = t.br().name().to_string();
    let done = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        let events = parse_json_lines(&run.stdout_so_far());
        find(&events, "nf:input_done", t.a().name(), |s, _| s == 5353).map(|_| ())
    });
    let out = run.stop();
    assert!(done.is_some(), "{}\n{}", out.stdout, out.stderr);
    let events = out.json();
    let show = || out.stdout.clone();
    // The request in the bridge: before DNAT at the first priority...
    let before = find(&events, "nf:prerouting", &br, |_, d| d == 5353)
        .unwrap_or_else(|| panic!("request entering PREROUTING: {}", show()));
    assert!(before["ct"].is_null(), "no conntrack yet: {before}");
    // ... after it at the last, with the connection as first seen.
    let after = find(&events, "nf:prerouting_done", &br, |_, d| d == 5354)
        .unwrap_or_else(|| panic!("request leaving PREROUTING rewritten: {}", show()));
    assert_eq!(after["ct"]["state"], "NEW", "{after}");
    let status: Vec<&str> = after["ct"]["status"]
        .as_array()
        .expect("status")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(status.contains(&"DNAT"), "{after}");
    assert_eq!(after["ct"]["orig"]["dport"], 5353, "{after}");
    assert_eq!(after["ct"]["orig"]["proto"], "udp", "{after}");
    assert_eq!(after["skb"], before["skb"], "the same packet");
    // Forwarded through the bridge, and seen by B's own hooks at 5354.
    assert!(
        find(&events, "nf:forward", &br, |_, d| d == 5354).is_some(),
        "{}",
        show()
    );
    assert!(
        find(&events, "nf:input", t.b().name(), |_, d| d == 5354).is_some(),
        "{}",
        show()
    );
    // The sender's own output hook, before any NAT.
    assert!(
        find(&events, "nf:output", t.a().name(), |_, d| d == 5353).is_some(),
        "{}",
        show()
    );
    // The reply, un-NATted in the bridge: source port 5354 -> 5353, as a
    // reply of the same connection.
    let reply = find(&events, "nf:postrouting_done", &br, |s, _| s == 5353)
        .unwrap_or_else(|| panic!("reply leaving the bridge un-NATted: {}", show()));
    assert_eq!(reply["ct"]["state"], "ESTABLISHED_REPLY", "{reply}");
    assert!(
        find(&events, "nf:prerouting", &br, |s, _| s == 5354).is_some(),
        "reply entering the bridge from 5354: {}",
        show()
    );
    // No task in netfilter programs: no pid shown rather than a wrong one.
    assert!(after["pid"].is_null(), "{after}");
}

/// Send datagrams from A to B's port 7 until B's rule has dropped exactly
/// `n` (a send can be lost before the rule, in a full backlog: sending only
/// what is still missing never overshoots).
fn flood_until_dropped(t: &LinearBridged, n: u64) {
    let dst = t.b_sock4(7);
    loop {
        let missing = n - rule_counter(t);
        if missing == 0 {
            return;
        }
        in_netns(t.a(), || -> std::io::Result<()> {
            let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
            sock.connect(dst)?;
            for _ in 0..missing {
                let _ = sock.send(b"flood");
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("flood: {e}"));
    }
}

#[test]
fn a_million_drops_are_counted_exactly() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    drop_rule_in_b(&t);
    assert!(ping(t.a(), t.b_ip(false), 0x3207, 1), "warm-up ping");
    let run = NetxrayRun::new(netxray_bin())
        .args([
            "drops",
            "-o",
            "json",
            "--interval",
            "0.5",
            "--netns",
            t.b().name(),
            "udp and dst port 7",
        ])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    const N: u64 = 1_000_000;
    flood_until_dropped(&t, N);
    let b = t.b_inode();
    let seen = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        run.stdout_so_far()
            .lines()
            .any(|l| nf_drop_total(l, b, "ip input") >= N)
            .then_some(())
    });
    let out = run.stop();
    assert!(seen.is_some(), "{}", out.stderr);
    let last = out
        .stdout
        .lines()
        .rev()
        .find(|l| nf_drop_total(l, b, "ip input") > 0)
        .expect("a summary with the row");
    assert_eq!(nf_drop_total(last, b, "ip input"), N, "{last}");
    assert_eq!(rule_counter(&t), N);
    assert!(
        out.stderr.contains("drops counted") && !out.stderr.contains("not counted"),
        "nothing lost: {}",
        out.stderr
    );
}
