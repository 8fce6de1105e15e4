//! End to end: `netxray conn`'s views: --states, --events, filters,
//! connections open before start, --top.

mod common;

use common::conn::*;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

#[test]
fn states_are_the_textbook_sequence() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let run = NetxrayRun::new(netxray_bin())
        .args(["conn", "--states", "-o", "json", "--netns"])
        .arg(t.b().name())
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let d = connection(&t, false, 100, 200, Close::ClientFirst, |_| {}, |_| {});
    let ok = poll_until(WAIT, Duration::from_millis(20), || {
        run.stdout_so_far().contains("LAST_ACK").then_some(())
    });
    assert!(ok.is_some(), "{}", run.stdout_so_far());
    let out = run.stop();
    let seq: Vec<(String, String, Option<u64>)> = parse_json_lines(&out.stdout)
        .iter()
        .filter(|v| v["type"] == "state" && v["lport"] == d.server.local.port())
        .map(|v| {
            (
                v["old_state"].as_str().unwrap_or("").to_string(),
                v["new_state"].as_str().unwrap_or("").to_string(),
                v["in_old_state_ns"].as_u64(),
            )
        })
        .collect();
    let names: Vec<(&str, &str)> = seq
        .iter()
        .map(|(a, b, _)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("LISTEN", "SYN_RECV"),
            ("SYN_RECV", "ESTABLISHED"),
            ("ESTABLISHED", "CLOSE_WAIT"),
            ("CLOSE_WAIT", "LAST_ACK"),
            ("LAST_ACK", "CLOSE"),
        ],
        "{}",
        out.stdout
    );
    assert_eq!(seq[0].2, None, "time in LISTEN is the listener's, unknown");
    assert!(seq[1..].iter().all(|s| s.2.is_some()), "{seq:?}");
    // Only B: the client's side is in A.
    assert!(!out.stdout.contains("SYN_SENT"), "{}", out.stdout);
}

#[test]
fn client_side_states_and_events_in_text() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let run = NetxrayRun::new(netxray_bin())
        .args(["conn", "--events", "--netns"])
        .arg(t.a().name())
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let d = connection(&t, true, 100, 200, Close::ClientFirst, |_| {}, |_| {});
    let port = d.client.local.port().to_string();
    let ok = poll_until(WAIT, Duration::from_millis(20), || {
        run.stdout_so_far().contains("closed-local").then_some(())
    });
    assert!(ok.is_some(), "{}", run.stdout_so_far());
    let out = run.stop();
    let ours: Vec<&str> = out.stdout.lines().filter(|l| l.contains(&port)).collect();
    let want = [
        "SYN_SENT -> ESTABLISHED",
        "ESTABLISHED -> FIN_WAIT1",
        "FIN_WAIT1 -> FIN_WAIT2",
        "FIN_WAIT2 -> CLOSE",
        "closed-local: tx 100 rx 200 bytes",
    ];
    let mut at = 0;
    for l in &ours {
        if at < want.len() && l.contains(want[at]) {
            at += 1;
        }
    }
    assert_eq!(at, want.len(), "{}", out.stdout);
    assert!(
        ours.iter().all(|l| l.contains(CLIENT_COMM)),
        "{}",
        out.stdout
    );
}

#[test]
fn filters_select_connections() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let listener = in_netns(t.b(), || {
        TcpListener::bind(SocketAddr::new(t.b_ip(false), 0))
    })
    .expect("listen");
    let port = listener.local_addr().expect("port").port();
    let run = NetxrayRun::new(netxray_bin())
        .args(["conn", "-o", "json", "--failed", "--comm", CLIENT_COMM])
        .arg(format!("dst port 9 or port {port}"))
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let dst = SocketAddr::new(t.b_ip(false), port);
    let refused = SocketAddr::new(t.b_ip(false), 9);
    let other = SocketAddr::new(t.b_ip(false), 10);
    in_netns(t.a(), move || {
        set_comm(CLIENT_COMM);
        let s = TcpStream::connect_timeout(&dst, WAIT).expect("connect");
        s.shutdown(Shutdown::Both).expect("shutdown");
        drop(s);
        assert!(TcpStream::connect_timeout(&refused, WAIT).is_err());
        assert!(TcpStream::connect_timeout(&other, WAIT).is_err());
    });
    // Accepted and closed by the server: a normal close, not a failure.
    let (server, _) = listener.accept().expect("accept");
    drop(server);
    drop(listener);
    let ok = poll_until(WAIT, Duration::from_millis(20), || {
        (!conns(&run.stdout_so_far()).is_empty()).then_some(())
    });
    assert!(ok.is_some());
    let out = run.stop();
    let recs = conns(&out.stdout);
    // The refused connect to 9 only: the one to 10 is outside the filter,
    // the one that worked did not fail, and the server side is not nxt-client's.
    assert_eq!(recs.len(), 1, "{}", out.stdout);
    assert_eq!(recs[0]["rport"], 9);
    // The connection to port 10 never left the kernel.
    assert!(!out.stderr.contains(" 0 filtered out"), "{}", out.stderr);
    assert_eq!(recs[0]["outcome"], "refused");
}

#[test]
fn packet_only_filters_are_refused() {
    let out = std::process::Command::new(netxray_bin())
        .args(["conn", "tcp[13] = 2"])
        .output()
        .expect("run netxray");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs packet contents"), "{err}");
}

/// A connection open before netxray started is reported when it closes,
/// with what cannot be known (start, direction, owner, the SYN's share of
/// bytes_acked) as null, not guessed.
#[test]
fn connections_open_before_start_say_what_is_unknown() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let listener = in_netns(t.b(), || {
        TcpListener::bind(SocketAddr::new(t.b_ip(false), 0))
    })
    .expect("listen");
    let dst = listener.local_addr().expect("port");
    let mut client =
        in_netns(t.a(), move || TcpStream::connect_timeout(&dst, WAIT)).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    client.write_all(b"before").expect("write");
    let mut buf = [0u8; 6];
    server.read_exact(&mut buf).expect("read");

    let run = NetxrayRun::new(netxray_bin())
        .args(["conn", "-o", "json", "--netns"])
        .arg(t.a().name())
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    server.write_all(b"after!!").expect("write");
    let mut got = [0u8; 7];
    client.read_exact(&mut got).expect("read");
    let local = client.local_addr().expect("local");
    drop(client);
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).expect("EOF");
    drop(server);
    wait_for(&run, "the old connection", |r| !r.is_empty());
    let out = run.stop();
    let recs = conns(&out.stdout);
    let v = find(&recs, local, dst).unwrap_or_else(|| panic!("{}", out.stdout));
    assert_eq!(v["open_before"], true, "{v}");
    assert_eq!(v["direction"], "unknown", "{v}");
    assert_eq!(v["start_ns"], Value::Null, "{v}");
    assert_eq!(v["duration_ns"], Value::Null, "{v}");
    assert_eq!(v["handshake_ns"], Value::Null, "{v}");
    assert_eq!(v["pid"], Value::Null, "{v}");
    assert_eq!(v["tx_bytes"], Value::Null, "{v}");
    // Received bytes need no guess: the whole connection's, FIN left out.
    assert_eq!(v["rx_bytes"], 7, "{v}");
    assert_eq!(v["outcome"], "closed-local", "{v}");
    assert_eq!(v["established"], true, "{v}");
}

/// --top: per-interval snapshots whose byte columns add up, for a
/// connection, to what its application sent and received.
#[test]
fn top_snapshots_add_up_to_the_bytes_moved() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let listener = in_netns(t.b(), || {
        TcpListener::bind(SocketAddr::new(t.b_ip(true), 0))
    })
    .expect("listen");
    let dst = listener.local_addr().expect("port");
    let run = NetxrayRun::new(netxray_bin())
        .args([
            "conn",
            "--top",
            "-o",
            "json",
            "--interval",
            "0.2",
            "--netns",
        ])
        .arg(t.b().name())
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let mut client = in_netns(t.a(), move || {
        set_comm(CLIENT_COMM);
        TcpStream::connect_timeout(&dst, WAIT)
    })
    .expect("connect");
    let (mut server, peer) = listener.accept().expect("accept");
    let (up, down) = (150_000usize, 40_000usize);
    let writer = std::thread::spawn(move || {
        client.write_all(&payload(up, 1)).expect("write");
        let mut got = vec![0u8; down];
        client.read_exact(&mut got).expect("read");
        client
    });
    let mut got = vec![0u8; up];
    server.read_exact(&mut got).expect("read");
    server.write_all(&payload(down, 2)).expect("write");
    let client = writer.join().expect("client thread");
    let sums = |out: &str| -> (u64, u64) {
        parse_json_lines(out)
            .iter()
            .filter(|v| v["type"] == "top")
            .flat_map(|v| v["rows"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["rport"] == peer.port() && r["lport"] == dst.port())
            .fold((0, 0), |(tx, rx), r| {
                (
                    tx + r["tx_bytes"].as_u64().unwrap_or(0),
                    rx + r["rx_bytes"].as_u64().unwrap_or(0),
                )
            })
    };
    let ok = poll_until(WAIT, Duration::from_millis(20), || {
        (sums(&run.stdout_so_far()) == (down as u64, up as u64)).then_some(())
    });
    let out = run.stop();
    drop((client, server));
    assert!(
        ok.is_some(),
        "server row sums {:?}:\n{}",
        sums(&out.stdout),
        out.stdout
    );
    let row = parse_json_lines(&out.stdout)
        .iter()
        .filter(|v| v["type"] == "top")
        .flat_map(|v| v["rows"].as_array().cloned().unwrap_or_default())
        .find(|r| r["lport"] == dst.port())
        .expect("a row");
    assert_eq!(row["laddr"], t.b_ip(true).to_string());
    assert_eq!(row["netns"], t.b_inode());
    // Only B: the client's end is not in the table.
    assert!(!out.stdout.contains(&format!("\"lport\":{}", peer.port())));
}

/// Without the accept() tracepoints a passive connection is owned by the
/// process that called listen() on its port, and says so.
#[test]
fn without_accept_tracepoints_the_listener_owns_passive_connections() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let run = NetxrayRun::new(netxray_bin())
        .env(
            "NETXRAY_HIDE_TRACEPOINTS",
            "sys_exit_accept4,sys_exit_accept",
        )
        .args(["conn", "-o", "json", "--netns"])
        .arg(t.b().name())
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let d = connection(&t, false, 10, 20, Close::ClientFirst, |_| {}, |_| {});
    wait_for(&run, "the server end", |r| !r.is_empty());
    let out = run.stop();
    assert!(out.stderr.contains("listener's process"), "{}", out.stderr);
    let recs = conns(&out.stdout);
    let v = find(&recs, d.server.local, d.server.peer).unwrap_or_else(|| panic!("{}", out.stdout));
    assert_eq!(v["owner_source"], "listener", "{v}");
    assert_eq!(v["pid"], std::process::id(), "{v}");
    assert_eq!(v["tx_bytes"], 20, "{v}");
}

/// Ids of the BPF programs loaded now (bpftool), or None without bpftool.
fn prog_ids() -> Option<Vec<u64>> {
    let out = std::process::Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(
        v.as_array()?
            .iter()
            .filter_map(|p| p["id"].as_u64())
            .collect(),
    )
}

#[test]
fn duration_ends_the_run_leaving_nothing_attached_and_bad_arguments_are_usage_errors() {
    let Some(_serial) = e2e() else { return };
    let before = prog_ids();
    let mut run = NetxrayRun::new(netxray_bin())
        .args(["conn", "--duration", "1"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let during = prog_ids();
    let out = run
        .wait_exit(Duration::from_secs(10))
        .expect("--duration ends the run");
    if let (Some(before), Some(during)) = (before, during) {
        let ours: Vec<u64> = during
            .into_iter()
            .filter(|id| !before.contains(id))
            .collect();
        assert!(ours.len() >= 2, "conn's programs were loaded: {ours:?}");
        // The kernel frees a detached tracing program after an RCU grace
        // period: gone soon after the exit, not at once.
        let gone = poll_until(WAIT, Duration::from_millis(50), || {
            prog_ids()
                .is_some_and(|after| ours.iter().all(|id| !after.contains(id)))
                .then_some(())
        });
        assert!(
            gone.is_some(),
            "programs left behind: {ours:?} in {:?}",
            prog_ids()
        );
    }
    assert!(out.status.success(), "{out:?}");
    let err = &out.stderr;
    assert!(err.contains("netxray: done:"), "{err}");
    assert!(err.contains(" 0 lost"), "{err}");
    for bad in [
        vec!["conn", "--netns", "no-such-namespace-nxt"],
        vec!["conn", "--ring-size", "3"],
        vec!["conn", "--pid", "0"],
        vec!["conn", "--top", "--interval", "0"],
        vec!["conn", "--top", "--interval", "1e300"],
        vec!["conn", "--duration", "inf"],
        vec!["conn", "--duration", "-1"],
    ] {
        let out = std::process::Command::new(netxray_bin())
            .args(&bad)
            .output()
            .expect("run netxray");
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
    }
}

#[test]
fn listen_shows_listeners_starting_and_stopping() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let run = NetxrayRun::new(netxray_bin())
        .args(["conn", "--listen", "-o", "json", "--netns"])
        .arg(t.b().name())
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let port = in_netns(t.b(), || {
        set_comm(SERVER_COMM);
        let l = TcpListener::bind(SocketAddr::new(t.b_ip(true), 0)).expect("listen");
        l.local_addr().expect("port").port()
    });
    let ok = poll_until(WAIT, Duration::from_millis(20), || {
        run.stdout_so_far().contains("listen_stop").then_some(())
    });
    let out = run.stop();
    assert!(ok.is_some(), "{}", out.stdout);
    let recs: Vec<Value> = parse_json_lines(&out.stdout)
        .into_iter()
        .filter(|v| v["lport"] == port)
        .collect();
    let kinds: Vec<&str> = recs
        .iter()
        .map(|v| v["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["listen", "listen_stop"], "{}", out.stdout);
    for v in &recs {
        assert_eq!(v["pid"], std::process::id(), "{v}");
        assert_eq!(v["comm"], SERVER_COMM, "{v}");
        assert_eq!(v["laddr"], t.b_ip(true).to_string(), "{v}");
    }
}

/// The filter runs in the kernel on each connection's tuple, both ways
/// (`src port` of the server selects the client's end too), and sees an
/// IPv6 socket talking IPv4 as IPv4.
#[test]
fn kernel_filter_matches_either_direction_and_mapped_ipv4() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let listener = in_netns(t.b(), || {
        TcpListener::bind(SocketAddr::new(t.b_ip(false), 0))
    })
    .expect("listen");
    let port = listener.local_addr().expect("port").port();
    let run = NetxrayRun::new(netxray_bin())
        .args(["conn", "-o", "json"])
        .arg(format!("src port {port} and host {}", t.b_ip(false)))
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    // An AF_INET6 socket to ::ffff:198.18.0.2.
    let mapped: SocketAddr = format!("[::ffff:{}]:{port}", t.b_ip(false))
        .parse()
        .expect("mapped address");
    let local = in_netns(t.a(), move || {
        let s = TcpStream::connect_timeout(&mapped, WAIT).expect("connect");
        let local = s.local_addr().expect("local");
        assert!(local.is_ipv6(), "a dual-stack socket");
        local.port()
    });
    let (server, _) = listener.accept().expect("accept");
    drop(server);
    wait_for(&run, "both ends", |r| r.len() >= 2);
    let out = run.stop();
    let recs = conns(&out.stdout);
    assert_eq!(recs.len(), 2, "{}", out.stdout);
    let client = recs
        .iter()
        .find(|v| v["direction"] == "active")
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert_eq!(client["lport"], local);
    assert_eq!(client["raddr"], t.b_ip(false).to_string());
    assert_eq!(client["family"], "ipv4");
    assert!(recs
        .iter()
        .any(|v| v["direction"] == "passive" && v["lport"] == port));
}

/// More connections at once than --max-conns: evictions are counted and
/// reported, not silent.
#[test]
fn evictions_from_a_full_table_are_counted() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let listener = in_netns(t.b(), || {
        TcpListener::bind(SocketAddr::new(t.b_ip(false), 0))
    })
    .expect("listen");
    let dst = listener.local_addr().expect("port");
    let run = NetxrayRun::new(netxray_bin())
        .args(["conn", "-o", "json", "--max-conns", "4", "--netns"])
        .arg(t.a().name())
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let clients = in_netns(t.a(), move || {
        (0..16)
            .map(|_| TcpStream::connect_timeout(&dst, WAIT).expect("connect"))
            .collect::<Vec<_>>()
    });
    let servers: Vec<TcpStream> = (0..16)
        .map(|_| listener.accept().expect("accept").0)
        .collect();
    drop(clients);
    drop(servers);
    wait_for(&run, "the connections", |r| r.len() >= 4);
    let out = run.stop();
    let evicted: u64 = out
        .stderr
        .split(" evicted")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no eviction count: {}", out.stderr));
    assert!(evicted > 0, "{}", out.stderr);
}
