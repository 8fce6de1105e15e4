//! Two netxray runs at once, each seeing everything (issue #16, item 2):
//! netfilter links take a free priority when another run holds the first
//! one (the kernel gives a hook's priority to one BPF link: EBUSY), so a
//! second `trace -t netfilter` or `drops` beside another keeps every hook.

mod common;

use common::*;
use std::time::Duration;

fn drop_rule_in_b(t: &LinearBridged) {
    t.nft(
        t.b(),
        &[
            "add table inet nxdrop2",
            "add chain inet nxdrop2 in { type filter hook input priority 0; }",
            "add rule inet nxdrop2 in udp dport 7 counter drop",
        ],
    );
}

#[test]
fn two_trace_netfilter_runs_both_see_every_hook() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x5101, 1), "warm-up ping");
    let b = t.b().name().to_string();
    let start = || {
        NetxrayRun::new(netxray_bin())
            .args(["trace", "-t", "netfilter", "--netns", &b, "-o", "json"])
            .arg("icmp and net 198.18.0.0/15")
            .start()
            .unwrap_or_else(|e| panic!("netxray did not start: {e}"))
    };
    let first = start();
    let second = start();
    let n = 3;
    for seq in 1..=n {
        assert!(ping(t.a(), t.b_ip(false), 0x5102, seq), "ping {seq}");
    }
    let hooks_of = |out: &str| -> Vec<String> {
        parse_json_lines(out)
            .iter()
            .filter(|v| v["icmp_type"] == 8)
            .filter_map(|v| v["hook"].as_str().map(str::to_string))
            .collect()
    };
    let want = |run: &NetxrayRun| {
        let h = hooks_of(&run.stdout_so_far());
        let count = |name: &str| h.iter().filter(|x| *x == name).count();
        (count("nf:prerouting") >= n as usize && count("nf:input_done") >= n as usize).then_some(())
    };
    let seen1 = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        want(&first)
    });
    let seen2 = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        want(&second)
    });
    let out2 = second.stop();
    let out1 = first.stop();
    assert!(
        seen1.is_some(),
        "first run:\n{}\n{}",
        out1.stdout,
        out1.stderr
    );
    assert!(
        seen2.is_some(),
        "second run:\n{}\n{}",
        out2.stdout,
        out2.stderr
    );
    assert!(out1.status.success() && out2.status.success());
    assert!(!out2.stderr.contains("EBUSY"), "{}", out2.stderr);
}

#[test]
fn two_drops_runs_both_name_the_netfilter_hook() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    drop_rule_in_b(&t);
    assert!(ping(t.a(), t.b_ip(false), 0x5201, 1), "warm-up ping");
    let start = || {
        NetxrayRun::new(netxray_bin())
            .args(["drops", "-o", "json", "--interval", "0.3"])
            .arg("udp and dst port 7")
            .start()
            .unwrap_or_else(|e| panic!("netxray did not start: {e}"))
    };
    let first = start();
    let second = start();
    let n = 10;
    for _ in 0..n {
        udp_send(t.a(), None, t.b_sock4(7), b"dropped by a rule");
    }
    let b = t.b_inode();
    let total = |out: &str| {
        out.lines()
            .map(|l| {
                drops_total(l, |r| {
                    r["reason"] == "NETFILTER_DROP"
                        && r["netns"].as_u64() == Some(b)
                        && r["netfilter_hook"] == "ip input"
                })
            })
            .max()
            .unwrap_or(0)
    };
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (total(&first.stdout_so_far()) >= n && total(&second.stdout_so_far()) >= n).then_some(())
    });
    let out2 = second.stop();
    let out1 = first.stop();
    assert!(
        seen.is_some(),
        "first:\n{}\n{}\nsecond:\n{}\n{}",
        out1.stdout,
        out1.stderr,
        out2.stdout,
        out2.stderr
    );
    assert_eq!(total(&out1.stdout), n, "{}", out1.stdout);
    assert_eq!(total(&out2.stdout), n, "{}", out2.stdout);
    assert!(!out2.stderr.contains("EBUSY"), "{}", out2.stderr);
}

/// Two runs of each of trace (tracepoints), stats and conn at once, all six
/// together: each sees exactly the traffic the test sends.
#[test]
fn two_of_trace_stats_and_conn_at_once_each_see_everything() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x5301, 1), "warm-up ping");
    let b = t.b().name().to_string();
    let start = |args: &[&str]| {
        NetxrayRun::new(netxray_bin())
            .args(args)
            .start()
            .unwrap_or_else(|e| panic!("netxray {args:?} did not start: {e}"))
    };
    let trace_args = [
        "trace",
        "-t",
        "net:netif_receive_skb",
        "--netns",
        &b,
        "-o",
        "json",
        "udp and dst port 9300",
    ];
    let stats_args = [
        "stats",
        "--netns",
        &b,
        "-i",
        LinearBridged::B_IF,
        "-o",
        "json",
        "--once",
        "--interval",
        "3",
        "udp and dst port 9300",
    ];
    let conn_args = ["conn", "--netns", &b, "-o", "json", "tcp port 9301"];
    let runs: Vec<(&str, NetxrayRun)> = [
        ("trace", &trace_args[..]),
        ("trace", &trace_args[..]),
        ("stats", &stats_args[..]),
        ("stats", &stats_args[..]),
        ("conn", &conn_args[..]),
        ("conn", &conn_args[..]),
    ]
    .into_iter()
    .map(|(what, args)| (what, start(args)))
    .collect();

    let n = 7u64;
    for _ in 0..n {
        udp_send(t.a(), None, t.b_sock4(9300), b"to both");
    }
    let server = TcpEchoServer::start(t.b(), t.b_sock4(9301));
    tcp_exchange(t.a(), server.addr(), 1000).expect("tcp exchange");

    let done = |what: &str, out: &str| -> bool {
        let lines = parse_json_lines(out);
        match what {
            "trace" => lines.len() as u64 >= n,
            "stats" => lines.iter().any(|s| {
                s["interfaces"].as_array().is_some_and(|rows| {
                    rows.iter().any(|r| {
                        r["ifname"] == LinearBridged::B_IF
                            && r["dir"] == "in"
                            && r["packets"].as_u64() == Some(n)
                    })
                })
            }),
            _ => !lines.is_empty(),
        }
    };
    for (what, run) in &runs {
        let seen = poll_until(Duration::from_secs(15), Duration::from_millis(50), || {
            done(what, &run.stdout_so_far()).then_some(())
        });
        assert!(
            seen.is_some(),
            "{what}:\n{}\n{}",
            run.stdout_so_far(),
            run.stderr_so_far()
        );
    }
    for (what, run) in runs {
        let out = run.stop();
        assert!(out.status.success(), "{what}: {}", out.stderr);
        if what == "trace" {
            assert_eq!(
                parse_json_lines(&out.stdout).len() as u64,
                n,
                "{}",
                out.stdout
            );
        }
        if what == "conn" {
            let conns = parse_json_lines(&out.stdout);
            assert_eq!(conns.len(), 1, "one connection: {}", out.stdout);
        }
    }
}

/// Two `drops --nft-trace` in one namespace: each has its own table and
/// both name the rule of every drop.
#[test]
fn two_nft_trace_runs_both_name_the_rule() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    drop_rule_in_b(&t);
    assert!(ping(t.a(), t.b_ip(false), 0x5401, 1), "warm-up ping");
    let b = t.b().name().to_string();
    let start = || {
        NetxrayRun::new(netxray_bin())
            .args(["drops", "--nft-trace", "--netns", &b, "-o", "json"])
            .args(["--interval", "0.3", "udp and dst port 7"])
            .start()
            .unwrap_or_else(|e| panic!("netxray did not start: {e}"))
    };
    let first = start();
    let second = start();
    let n = 6;
    for _ in 0..n {
        udp_send(t.a(), None, t.b_sock4(7), b"dropped by a rule");
    }
    let rule_total = |out: &str| -> u64 {
        out.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                v["nft_rules"].as_array().and_then(|rows| {
                    rows.iter()
                        .find(|r| r["table"] == "nxdrop2" && r["verdict"] == "drop")
                        .and_then(|r| r["total"].as_u64())
                })
            })
            .max()
            .unwrap_or(0)
    };
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (rule_total(&first.stdout_so_far()) >= n && rule_total(&second.stdout_so_far()) >= n)
            .then_some(())
    });
    let out2 = second.stop();
    let out1 = first.stop();
    assert!(
        seen.is_some(),
        "first:\n{}\n{}\nsecond:\n{}\n{}",
        out1.stdout,
        out1.stderr,
        out2.stdout,
        out2.stderr
    );
    assert_eq!(rule_total(&out1.stdout), n, "{}", out1.stdout);
    assert_eq!(rule_total(&out2.stdout), n, "{}", out2.stdout);
    let left = t.b().run(&["nft", "list", "tables"]);
    assert!(!left.contains("netxray_"), "{left}");
}
