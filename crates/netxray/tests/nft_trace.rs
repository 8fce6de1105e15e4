//! End to end: `--nft-trace` names the nftables rule (table, chain, handle,
//! verdict) that took each packet, shows nothing for packets outside the
//! filter, and leaves the ruleset byte-for-byte as it found it, whether
//! netxray ends by itself, on SIGINT or on SIGKILL (the tables belong to
//! its netlink socket: NFT_TABLE_F_OWNER).

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

/// The port B's input chain drops.
const DROPPED: u16 = 5000;

/// `table inet filter { chain input { ...; udp dport 5000 drop } }` in B;
/// returns the drop rule's handle. No counter: the ruleset text must not
/// change while packets are dropped.
fn drop_rule(t: &LinearBridged) -> u64 {
    for cmd in [
        "add table inet filter",
        "add chain inet filter input { type filter hook input priority 0 ; policy accept ; }",
        "add rule inet filter input udp dport 5000 drop",
    ] {
        let argv: Vec<&str> = std::iter::once("nft").chain(cmd.split(' ')).collect();
        t.b().run(&argv);
    }
    let listed = t
        .b()
        .run(&["nft", "-a", "list", "chain", "inet", "filter", "input"]);
    listed
        .lines()
        .find(|l| l.contains("drop"))
        .and_then(|l| l.rsplit("# handle ").next())
        .and_then(|h| h.trim().parse().ok())
        .unwrap_or_else(|| panic!("no handle in:\n{listed}"))
}

fn ruleset(ns: &Netns) -> String {
    ns.run(&["nft", "list", "ruleset"])
}

/// The topology with the drop rule, neighbours resolved (v4 and v6) so
/// every datagram reaches B's input chain; the ruleset as it is then.
fn setup() -> (LinearBridged, u64, String) {
    let t = LinearBridged::new();
    let handle = drop_rule(&t);
    assert!(ping(t.a(), t.b_ip(false), 0x4e01, 1), "warm-up ping");
    assert!(ping(t.a(), t.b_ip(true), 0x4e02, 1), "warm-up ping6");
    let before = ruleset(t.b());
    (t, handle, before)
}

fn nft_lines(stdout: &str) -> Vec<Value> {
    parse_json_lines(stdout)
        .into_iter()
        .filter(|v| v["kind"] == "nft")
        .collect()
}

/// While netxray runs, its table is in B's ruleset, marking only UDP (the
/// filters here are all `udp and ...`).
fn assert_table_present(t: &LinearBridged, run: &NetxrayRun) {
    let pid = run.pid().expect("running");
    let table = format!("netxray_{pid}");
    let listed = t.b().run(&["nft", "list", "table", "inet", &table]);
    assert!(listed.contains("flags owner"), "{listed}");
    assert_eq!(
        listed
            .matches("meta l4proto udp meta nftrace set 1")
            .count(),
        2,
        "prerouting and output: {listed}"
    );
    assert!(!listed.contains("tcp"), "{listed}");
}

#[test]
fn trace_names_table_chain_handle_and_verdict_of_every_packet() {
    let Some(_serial) = e2e() else { return };
    let (t, handle, before) = setup();
    let b = t.b().name().to_string();
    let run = NetxrayRun::new(netxray_bin())
        .args(["trace", "--nft-trace", "--netns", &b, "-t", "kfree_skb"])
        .args(["-o", "json", "udp and dst port 5000"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    assert_table_present(&t, &run);
    let (n4, n6) = (5, 3);
    for _ in 0..n4 {
        udp_send(t.a(), None, t.b_sock4(DROPPED), b"dropped by rule");
    }
    for _ in 0..n6 {
        udp_send(t.a(), None, t.b_sock6(DROPPED), b"dropped by rule");
    }
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (nft_lines(&run.stdout_so_far()).len() >= n4 + n6).then_some(())
    });
    let out = run.stop();
    assert!(seen.is_some(), "{}\n{}", out.stdout, out.stderr);
    let lines = nft_lines(&out.stdout);
    assert_eq!(lines.len(), n4 + n6, "one line per packet: {lines:?}");
    for v in &lines {
        assert_eq!(v["family"], "inet", "{v}");
        assert_eq!(v["table"], "filter", "{v}");
        assert_eq!(v["chain"], "input", "{v}");
        assert_eq!(v["handle"].as_u64(), Some(handle), "{v}");
        assert_eq!(v["type"], "rule", "{v}");
        assert_eq!(v["verdict"], "drop", "{v}");
        assert_eq!(v["netns"].as_u64(), Some(t.b_inode()), "{v}");
        assert_eq!(v["iifname"], LinearBridged::B_IF, "{v}");
        assert_eq!(v["dport"].as_u64(), Some(u64::from(DROPPED)), "{v}");
    }
    let v6 = lines.iter().filter(|v| v["l3"] == "ipv6").count();
    assert_eq!(v6, n6, "{lines:?}");
    assert!(
        out.stderr.contains("nftables trace lines shown"),
        "{}",
        out.stderr
    );
    assert_eq!(ruleset(t.b()), before, "ruleset changed after SIGINT");
}

#[test]
fn text_output_reads_like_nft() {
    let Some(_serial) = e2e() else { return };
    let (t, handle, before) = setup();
    let b = t.b().name().to_string();
    // Ends by itself (--duration): the normal exit path.
    let mut run = NetxrayRun::new(netxray_bin())
        .args(["trace", "--nft-trace", "--netns", &b, "-t", "kfree_skb"])
        .args(["--duration", "3", "udp and dst port 5000"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    udp_send(t.a(), None, t.b_sock4(DROPPED), b"dropped by rule");
    let out = run
        .wait_exit(Duration::from_secs(20))
        .expect("netxray ends after --duration");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let want = format!(
        "nft:inet filter input            rule handle {handle} verdict drop: IP 198.18.0.1."
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(&want) && l.contains(" > 198.18.0.2.5000: UDP")),
        "{}",
        out.stdout
    );
    assert_eq!(
        ruleset(t.b()),
        before,
        "ruleset changed after a normal exit"
    );
}

#[test]
fn drops_counts_every_packet_per_rule_and_sigkill_leaves_no_table() {
    let Some(_serial) = e2e() else { return };
    let (t, handle, before) = setup();
    let b = t.b().name().to_string();
    let mut run = NetxrayRun::new(netxray_bin())
        .args(["drops", "--nft-trace", "--netns", &b, "-o", "json"])
        .args(["--interval", "0.3", "udp and dst port 5000"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    assert_table_present(&t, &run);
    let n = 12;
    for _ in 0..n {
        udp_send(t.a(), None, t.b_sock4(DROPPED), b"dropped by rule");
    }
    let rule_total = |line: &str| -> u64 {
        serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| {
                v["nft_rules"].as_array().and_then(|rows| {
                    rows.iter()
                        .find(|r| r["handle"].as_u64() == Some(handle))
                        .and_then(|r| r["total"].as_u64())
                })
            })
            .unwrap_or(0)
    };
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        run.stdout_so_far()
            .lines()
            .any(|l| rule_total(l) >= n)
            .then_some(())
    });
    // One more interval: nothing counted twice, nothing late.
    std::thread::sleep(Duration::from_millis(700));
    let so_far = run.stdout_so_far();
    // SIGKILL: no exit path of its own runs; the kernel removes the table
    // when the process's netlink socket goes.
    let pid = run.pid().expect("running") as libc::pid_t;
    // SAFETY: kill(2) on the child we started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let out = run.wait_exit(Duration::from_secs(10)).expect("killed");
    assert!(seen.is_some(), "{so_far}\n{}", out.stderr);
    assert_eq!(ruleset(t.b()), before, "ruleset changed after SIGKILL");

    let last = so_far
        .lines()
        .rev()
        .find(|l| rule_total(l) > 0)
        .expect("a summary with the rule");
    assert_eq!(rule_total(last), n, "exactly the datagrams sent: {last}");
    let v: Value = serde_json::from_str(last).expect("json");
    let row = v["nft_rules"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["handle"].as_u64() == Some(handle)))
        .expect("row")
        .clone();
    assert_eq!(row["family"], "inet", "{row}");
    assert_eq!(row["table"], "filter", "{row}");
    assert_eq!(row["chain"], "input", "{row}");
    assert_eq!(row["verdict"], "drop", "{row}");
    assert_eq!(row["netns"].as_u64(), Some(t.b_inode()), "{row}");
    assert!(
        row["sample"].as_str().unwrap_or("").contains(".5000: UDP"),
        "{row}"
    );
}

#[test]
fn packets_outside_the_filter_give_no_nft_lines() {
    let Some(_serial) = e2e() else { return };
    let (t, _handle, before) = setup();
    let b = t.b().name().to_string();
    let run = NetxrayRun::new(netxray_bin())
        .args([
            "drops",
            "--events",
            "--nft-trace",
            "--netns",
            &b,
            "-o",
            "json",
        ])
        .arg("udp and dst port 5000")
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    // Traced by the kernel (every packet in B is), but outside the filter.
    for port in [5001, 5002, 9] {
        udp_send(t.a(), None, t.b_sock4(port), b"not in the filter");
    }
    assert!(ping(t.a(), t.b_ip(false), 0x4e03, 2), "ping");
    // Then one inside it, to know the others had their chance.
    udp_send(t.a(), None, t.b_sock4(DROPPED), b"in the filter");
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (!nft_lines(&run.stdout_so_far()).is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let out = run.stop();
    assert!(seen.is_some(), "{}\n{}", out.stdout, out.stderr);
    let lines = nft_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["dport"].as_u64(), Some(u64::from(DROPPED)));
    assert_eq!(ruleset(t.b()), before);
}

#[test]
fn doctor_reports_a_leftover_netxray_table() {
    let Some(_serial) = e2e() else { return };
    let ns = Netns::new("nftleft");
    // A pid no process has (above the kernel's pid_max limit).
    ns.run(&["nft", "add", "table", "inet", "netxray_4194305"]);
    let out = std::process::Command::new(netxray_bin())
        .args(["doctor", "-o", "json"])
        .output()
        .expect("run doctor");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("doctor JSON");
    let check = |name: &str| {
        doc["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(check("nftables_trace")["status"], "ok", "{doc}");
    let left = check("netxray_tables");
    assert_eq!(left["status"], "warning", "{left}");
    let detail = left["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(&format!(
            "ip netns exec {} nft delete table inet netxray_4194305",
            ns.name()
        )),
        "{detail}"
    );
}

#[test]
fn without_cap_net_admin_it_says_which_capability() {
    let Some(_serial) = e2e() else { return };
    // Root without CAP_NET_ADMIN (util-linux setpriv): BPF works, nfnetlink
    // refuses the batch.
    let out = std::process::Command::new("setpriv")
        .args(["--bounding-set", "-net_admin", "--inh-caps", "-net_admin"])
        .arg(netxray_bin())
        .args(["trace", "--nft-trace", "-t", "kfree_skb", "--duration", "1"])
        .output()
        .expect("run setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CAP_NET_ADMIN (for --nft-trace)"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A kernel without owner tables (before 5.12; NETXRAY_NFT_NO_OWNER makes
/// netxray behave so here): the tables are deleted on a clean exit, and a
/// killed run's table is deleted by the next `--nft-trace` in that
/// namespace.
#[test]
fn without_owner_tables_exit_deletes_them_and_the_next_run_cleans_up_after_sigkill() {
    let Some(_serial) = e2e() else { return };
    let (t, _handle, before) = setup();
    let b = t.b().name().to_string();
    let start = || {
        NetxrayRun::new(netxray_bin())
            .env("NETXRAY_NFT_NO_OWNER", "1")
            .args(["drops", "--nft-trace", "--netns", &b, "-o", "json"])
            .args(["--interval", "0.3", "udp and dst port 5000"])
            .start()
            .unwrap_or_else(|e| panic!("netxray did not start: {e}"))
    };
    // SIGINT: the tables go with netxray's exit.
    let run = start();
    let table = format!("netxray_{}", run.pid().expect("running"));
    let listed = t.b().run(&["nft", "list", "table", "inet", &table]);
    assert!(!listed.contains("flags owner"), "{listed}");
    assert!(listed.contains("nftrace set 1"), "{listed}");
    let out = run.stop();
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(ruleset(t.b()), before, "ruleset changed after SIGINT");

    // SIGKILL: the table stays, until the next run deletes it.
    let mut run = start();
    let killed = format!("netxray_{}", run.pid().expect("running"));
    // SAFETY: kill(2) on the child we started.
    unsafe { libc::kill(run.pid().expect("running") as libc::pid_t, libc::SIGKILL) };
    run.wait_exit(Duration::from_secs(10)).expect("killed");
    assert!(
        ruleset(t.b()).contains(&killed),
        "the killed run's table stays"
    );
    let run = start();
    let now = ruleset(t.b());
    assert!(!now.contains(&killed), "stale table not deleted:\n{now}");
    let out = run.stop();
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(ruleset(t.b()), before, "ruleset changed");
}
