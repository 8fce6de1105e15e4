//! End to end: `netxray conn` reports every TCP connection between two
//! namespaces exactly: bytes each way (as the test's own sockets' TCP_INFO
//! says), who closed, resets, refusal, a SYN timeout, retransmissions made
//! with an nft drop rule, and the owning process on both ends; and agrees
//! with libbpf-tools' tcplife. (Views: tests/conn_views.rs.)

mod common;

use common::conn::*;
use common::*;
use serde_json::Value;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn life_of_connections(v6: bool) {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let run = NetxrayRun::new(netxray_bin())
        .args(["conn", "-o", "json"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let family_ok = |v: &Value| v["netns"] == t.a_inode() || v["netns"] == t.b_inode();

    // The SYN timeout takes 3 s: under way while the rest runs.
    let timeout_port = 7;
    nft(
        t.b(),
        &format!("add table inet nxsyn; add chain inet nxsyn in {{ type filter hook input priority 0; }}; add rule inet nxsyn in tcp dport {timeout_port} drop"),
    );
    let timeout_dst = SocketAddr::new(t.b_ip(v6), timeout_port);
    let timeout = std::thread::scope(|s| {
        let h = s.spawn(|| syn_timeout(&t, timeout_dst));

        let mut done = Vec::new();
        for (i, close) in [
            Close::ClientFirst,
            Close::ServerFirst,
            Close::ClientFirst,
            Close::ServerFirst,
        ]
        .into_iter()
        .enumerate()
        {
            done.push(connection(
                &t,
                v6,
                1000 * (i + 1) + 7,
                70_000 + 333 * i,
                close,
                |_| {},
                |_| {},
            ));
        }
        done.push(connection(
            &t,
            v6,
            5000,
            0,
            Close::ClientReset,
            |_| {},
            |_| {},
        ));
        // Retransmissions: B drops the client's data segments until the
        // client has retransmitted twice.
        let mut dropped = 0;
        let retrans = connection(
            &t,
            v6,
            3000,
            100,
            Close::ClientFirst,
            |port| {
                nft(
                    t.b(),
                    &format!("add table inet nxrtx; add chain inet nxrtx in {{ type filter hook input priority 0; }}; add rule inet nxrtx in tcp dport {port} meta length > 200 counter drop"),
                )
            },
            |s| {
                poll_until(WAIT, Duration::from_millis(10), || {
                    (tcp_info(s).tcpi_total_retrans >= 2).then_some(())
                })
                .expect("the client retransmits");
                dropped = nft_dropped(t.b(), "nxrtx");
                nft(t.b(), "delete table inet nxrtx");
            },
        );
        let refused_dst = SocketAddr::new(t.b_ip(v6), 9);
        let refused = in_netns(t.a(), move || {
            set_comm(CLIENT_COMM);
            TcpStream::connect_timeout(&refused_dst, WAIT)
        });
        assert_eq!(
            refused.expect_err("port 9 is closed").kind(),
            std::io::ErrorKind::ConnectionRefused
        );
        h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (done, retrans, dropped)
    });
    let (done, retrans, dropped) = timeout;
    assert!(dropped >= 1, "the nft rule dropped nothing");

    wait_for(&run, "every connection", |recs| {
        let ours: Vec<&Value> = recs.iter().filter(|v| family_ok(v)).collect();
        ours.len() >= 2 * (done.len() + 1) + 2
    });
    let out = run.stop();
    assert!(out.status.success(), "{}", out.stderr);
    let recs: Vec<Value> = conns(&out.stdout)
        .into_iter()
        .filter(|v| family_ok(v))
        .collect();

    for d in done.iter().chain(std::iter::once(&retrans)) {
        let c = find(&recs, d.client.local, d.client.peer)
            .unwrap_or_else(|| panic!("no record for client {:?}:\n{}", d.client, out.stdout));
        let s = find(&recs, d.server.local, d.server.peer)
            .unwrap_or_else(|| panic!("no record for server {:?}:\n{}", d.server, out.stdout));
        let (co, so) = match d.close {
            Close::ClientFirst => ("closed-local", "closed-remote"),
            Close::ServerFirst => ("closed-remote", "closed-local"),
            Close::ClientReset => ("reset-sent", "reset-received"),
        };
        check_side(c, &d.client, d.c2s, d.s2c, true, co);
        check_side(s, &d.server, d.s2c, d.c2s, false, so);
        if d.close == Close::ClientReset {
            assert_eq!(c["reset_sent"], true);
            assert_eq!(s["reset_received"], true);
        }
    }
    let c = find(&recs, retrans.client.local, retrans.client.peer).expect("retransmitting client");
    assert!(
        c["total_retrans"].as_u64().unwrap_or(0) >= dropped,
        "at least the {dropped} dropped segments retransmitted: {c}"
    );
    assert!(c["retransmits_seen"].as_u64().unwrap_or(0) >= 2, "{c}");

    let by_port = |port: u16| -> Vec<&Value> {
        recs.iter()
            .filter(|v| v["rport"] == port && v["raddr"] == t.b_ip(v6).to_string())
            .collect()
    };
    let refused = by_port(9);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["outcome"], "refused");
    assert_eq!(refused[0]["established"], false);
    assert_eq!(refused[0]["pid"], std::process::id());
    assert_eq!(refused[0]["comm"], CLIENT_COMM);
    assert_eq!(refused[0]["laddr"], t.a_ip(v6).to_string());
    let timed_out = by_port(timeout_port);
    assert_eq!(timed_out.len(), 1, "{timed_out:?}");
    assert_eq!(timed_out[0]["outcome"], "timeout");
    assert_eq!(timed_out[0]["error"], "ETIMEDOUT");
    assert_eq!(timed_out[0]["comm"], CLIENT_COMM);
    assert!(timed_out[0]["retransmits_seen"].as_u64().unwrap_or(0) >= 1);
    // Nothing else, and nothing lost.
    assert_eq!(recs.len(), 2 * (done.len() + 1) + 2, "{}", out.stdout);
    assert!(out.stderr.contains(" 0 lost"), "{}", out.stderr);
    assert!(out.stderr.contains(" 0 evicted"), "{}", out.stderr);
}

#[test]
fn every_connection_ipv4_exact_bytes_closers_resets_refusal_timeout_retransmissions() {
    life_of_connections(false);
}

#[test]
fn every_connection_ipv6_exact_bytes_closers_resets_refusal_timeout_retransmissions() {
    life_of_connections(true);
}

/// libbpf-tools' tcplife beside conn: the same byte counts (tcplife shows
/// tcpi_bytes_acked/received in KiB, rounded down).
#[test]
fn byte_counts_agree_with_tcplife() {
    let Some(_serial) = e2e() else { return };
    let tcplife = ["/usr/sbin/tcplife", "/usr/bin/tcplife"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(tcplife) = tcplife else {
        eprintln!("tcplife (libbpf-tools) not installed: skipped");
        return;
    };
    // tcplife attaches a classic tracepoint: it needs tracefs, which a
    // fresh boot may not have mounted (netxray mounts it itself).
    if !std::path::Path::new("/sys/kernel/tracing/events").exists() {
        common::netns::command_stdout(
            "mount",
            &["-t", "tracefs", "tracefs", "/sys/kernel/tracing"],
        );
    }
    let t = LinearBridged::new();
    let mut child = std::process::Command::new("stdbuf")
        .args(["-oL", tcplife, "-w"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tcplife");
    let mut stdout = child.stdout.take().expect("tcplife stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        }
    });
    let mut text = String::new();
    let deadline = Instant::now() + WAIT;
    while !text.contains("PID") && Instant::now() < deadline {
        if let Ok(s) = rx.recv_timeout(Duration::from_millis(50)) {
            text.push_str(&s);
        }
    }
    assert!(text.contains("PID"), "tcplife did not start: {text}");
    let run = NetxrayRun::new(netxray_bin())
        .args(["conn", "-o", "json", "--pid"])
        .arg(std::process::id().to_string())
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let d = connection(
        &t,
        false,
        300_000,
        123_456,
        Close::ClientFirst,
        |_| {},
        |_| {},
    );
    wait_for(&run, "both ends", |r| r.len() >= 2);
    let out = run.stop();
    // tcplife prints at the same CLOSE transition.
    let ok = poll_until(WAIT, Duration::from_millis(20), || {
        while let Ok(s) = rx.try_recv() {
            text.push_str(&s);
        }
        (text.matches(&d.client.local.port().to_string()).count() >= 2).then_some(())
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let _ = child.wait();
    let _ = reader.join();
    while let Ok(s) = rx.try_recv() {
        text.push_str(&s);
    }
    assert!(ok.is_some(), "tcplife did not report both ends:\n{text}");
    let recs = conns(&out.stdout);
    for side in [&d.client, &d.server] {
        let v = find(&recs, side.local, side.peer).expect("conn record");
        // PID COMM IP LADDR LPORT RADDR RPORT TX_KB RX_KB MS
        let line = text
            .lines()
            .find(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() >= 9
                    && f.iter().any(|x| *x == side.local.port().to_string())
                    && f.iter().any(|x| *x == side.peer.port().to_string())
                    && f.iter().position(|x| *x == side.local.port().to_string())
                        < f.iter().position(|x| *x == side.peer.port().to_string())
            })
            .unwrap_or_else(|| panic!("no tcplife line for {side:?}:\n{text}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        let n = f.len();
        // "%.2f" of bytes / 1024.
        let kb = |s: &str| -> f64 {
            s.parse()
                .unwrap_or_else(|_| panic!("not KB: {s} in {line}"))
        };
        let (tx_kb, rx_kb) = (kb(f[n - 3]), kb(f[n - 2]));
        let close = |raw: &Value, shown: f64| {
            raw.as_u64()
                .is_some_and(|b| (b as f64 / 1024.0 - shown).abs() < 0.0051)
        };
        assert!(close(&v["bytes_acked"], tx_kb), "{line} vs {v}");
        assert!(close(&v["bytes_received"], rx_kb), "{line} vs {v}");
        // And to the byte, what the application moved.
        let (sent, got) = if side.local == d.client.local {
            (d.c2s, d.s2c)
        } else {
            (d.s2c, d.c2s)
        };
        assert_eq!(v["tx_bytes"], sent as u64);
        assert_eq!(v["rx_bytes"], got as u64);
    }
}
