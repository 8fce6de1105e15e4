//! End to end: `netxray conn` reports every TCP connection between two
//! namespaces exactly: bytes each way (as the test's own sockets' TCP_INFO
//! says), who closed, resets, refusal, a SYN timeout, retransmissions made
//! with an nft drop rule, and the owning process on both ends.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

const CLIENT_COMM: &str = "nxt-client";
const SERVER_COMM: &str = "nxt-server";
const WAIT: Duration = Duration::from_secs(10);

/// The calling thread's comm (what the kernel reports as the task's name).
fn set_comm(name: &str) {
    let c = std::ffi::CString::new(name).expect("comm without NUL");
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of up to 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

fn tcp_info(s: &impl AsRawFd) -> libc::tcp_info {
    // SAFETY: tcp_info is plain old data; getsockopt fills at most len bytes.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid socket fd and a buffer of len bytes.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info
}

/// Waits until everything this side sent is acknowledged (`syn`: the active
/// side's bytes_acked counts its SYN), then returns TCP_INFO.
fn settled(s: &TcpStream, sent: u64, syn: bool) -> libc::tcp_info {
    let want = sent + u64::from(syn);
    poll_until(WAIT, Duration::from_millis(5), || {
        let i = tcp_info(s);
        (i.tcpi_bytes_acked == want).then_some(i)
    })
    .unwrap_or_else(|| panic!("bytes_acked never reached {want}"))
}

fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a linger struct of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_add(seed)).collect()
}

/// How a test connection ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Close {
    ClientFirst,
    ServerFirst,
    /// The client resets it (SO_LINGER 0) once the server read everything.
    ClientReset,
}

/// What one side's socket said before it closed.
#[derive(Debug, Clone, Copy)]
struct SideInfo {
    local: SocketAddr,
    peer: SocketAddr,
    acked: u64,
    received: u64,
    retrans: u32,
}

impl SideInfo {
    fn of(s: &TcpStream, i: &libc::tcp_info) -> Self {
        Self {
            local: s.local_addr().expect("local address"),
            peer: s.peer_addr().expect("peer address"),
            acked: i.tcpi_bytes_acked,
            received: i.tcpi_bytes_received,
            retrans: i.tcpi_total_retrans,
        }
    }
}

#[derive(Debug)]
struct Done {
    client: SideInfo,
    server: SideInfo,
    c2s: usize,
    s2c: usize,
    close: Close,
}

/// The server's part of one connection, on its own thread.
fn serve_one(
    listener: TcpListener,
    c2s: usize,
    s2c: usize,
    close: Close,
    read_all: mpsc::Sender<()>,
    infos_taken: &Barrier,
) -> SideInfo {
    set_comm(SERVER_COMM);
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut got = vec![0u8; c2s];
    s.read_exact(&mut got).expect("server reads the request");
    assert_eq!(got, payload(c2s, 1));
    let _ = read_all.send(());
    s.write_all(&payload(s2c, 2)).expect("server writes");
    let info = SideInfo::of(&s, &settled(&s, s2c as u64, false));
    // Both ends read TCP_INFO before either closes (no FIN counted yet).
    infos_taken.wait();
    match close {
        Close::ServerFirst => drop(s),
        Close::ClientFirst => {
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).expect("EOF from the client");
            assert!(rest.is_empty());
        }
        Close::ClientReset => {
            let mut b = [0u8; 1];
            let r = s.read(&mut b);
            assert!(
                matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
                "the server should see the reset: {r:?}"
            );
        }
    }
    info
}

/// One connection A -> B with `c2s` bytes up and `s2c` down (s2c = 0 with a
/// reset), closed as told; `before_data` runs once connected (nft rules).
fn connection(
    t: &LinearBridged,
    v6: bool,
    c2s: usize,
    s2c: usize,
    close: Close,
    before_data: impl FnOnce(u16) + Send,
    after_data: impl FnOnce(&TcpStream) + Send,
) -> Done {
    let listener =
        in_netns(t.b(), || TcpListener::bind(SocketAddr::new(t.b_ip(v6), 0))).expect("listen in B");
    let port = listener.local_addr().expect("port").port();
    let (tx, rx) = mpsc::channel();
    let barrier = Arc::new(Barrier::new(2));
    let b2 = barrier.clone();
    let server = std::thread::spawn(move || serve_one(listener, c2s, s2c, close, tx, &b2));
    before_data(port);
    let dst = SocketAddr::new(t.b_ip(v6), port);
    let client = in_netns(t.a(), move || {
        set_comm(CLIENT_COMM);
        let mut s = TcpStream::connect_timeout(&dst, WAIT).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        s.write_all(&payload(c2s, 1)).expect("client writes");
        after_data(&s);
        rx.recv_timeout(WAIT).expect("the server read everything");
        let mut got = vec![0u8; s2c];
        s.read_exact(&mut got).expect("client reads the reply");
        assert_eq!(got, payload(s2c, 2));
        let info = SideInfo::of(&s, &settled(&s, c2s as u64, true));
        barrier.wait();
        match close {
            Close::ClientFirst => drop(s),
            Close::ServerFirst => {
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).expect("EOF from the server");
                assert!(rest.is_empty());
            }
            Close::ClientReset => {
                set_linger_zero(&s);
                drop(s);
            }
        }
        info
    });
    let server = server
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    Done {
        client,
        server,
        c2s,
        s2c,
        close,
    }
}

fn nft(ns: &Netns, script: &str) {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns.name(), "nft", script])
        .output()
        .expect("run nft");
    assert!(
        out.status.success(),
        "nft {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nft_dropped(ns: &Netns, table: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "nft",
            "list",
            "table",
            "inet",
            table,
        ])
        .output()
        .expect("run nft");
    let text = String::from_utf8_lossy(&out.stdout);
    let n = text
        .split("counter packets ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    n.unwrap_or_else(|| panic!("no counter in:\n{text}"))
}

/// A connect() with TCP_SYNCNT=1 to a port whose SYNs B drops: ETIMEDOUT
/// after the SYN and one retransmission.
fn syn_timeout(t: &LinearBridged, dst: SocketAddr) {
    in_netns(t.a(), || {
        set_comm(CLIENT_COMM);
        let (family, len) = if dst.is_ipv6() {
            (libc::AF_INET6, std::mem::size_of::<libc::sockaddr_in6>())
        } else {
            (libc::AF_INET, std::mem::size_of::<libc::sockaddr_in>())
        };
        // SAFETY: plain socket calls on an fd we own and close.
        unsafe {
            let fd = libc::socket(family, libc::SOCK_STREAM, 0);
            assert!(fd >= 0);
            let one: libc::c_int = 1;
            let rc = libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_SYNCNT,
                (&one as *const libc::c_int).cast(),
                4,
            );
            assert_eq!(rc, 0);
            let mut storage: libc::sockaddr_storage = std::mem::zeroed();
            match dst {
                SocketAddr::V4(a) => {
                    let sin = &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in);
                    sin.sin_family = libc::AF_INET as libc::sa_family_t;
                    sin.sin_port = a.port().to_be();
                    sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                }
                SocketAddr::V6(a) => {
                    let sin6 = &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6);
                    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                    sin6.sin6_port = a.port().to_be();
                    sin6.sin6_addr.s6_addr = a.ip().octets();
                }
            }
            let rc = libc::connect(
                fd,
                &storage as *const _ as *const libc::sockaddr,
                len as u32,
            );
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            assert_eq!(rc, -1);
            assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT), "{err}");
        }
    });
}

fn conns(out: &str) -> Vec<Value> {
    parse_json_lines(out)
        .into_iter()
        .filter(|v| v["type"] == "conn")
        .collect()
}

fn find(records: &[Value], local: SocketAddr, remote: SocketAddr) -> Option<&Value> {
    records.iter().find(|v| {
        v["laddr"] == local.ip().to_string()
            && v["lport"] == local.port()
            && v["raddr"] == remote.ip().to_string()
            && v["rport"] == remote.port()
    })
}

fn check_side(v: &Value, me: &SideInfo, sent: usize, got: usize, active: bool, outcome: &str) {
    let what = format!("{} -> {}: {v}", me.local, me.peer);
    assert_eq!(
        v["direction"],
        if active { "active" } else { "passive" },
        "{what}"
    );
    assert_eq!(v["outcome"], outcome, "{what}");
    assert_eq!(v["tx_bytes"], sent as u64, "{what}");
    assert_eq!(v["rx_bytes"], got as u64, "{what}");
    // TCP_INFO read before close: bytes_acked counts the active side's SYN.
    assert_eq!(v["tx_bytes"], me.acked - u64::from(active), "{what}");
    assert_eq!(v["rx_bytes"], me.received, "{what}");
    assert_eq!(v["total_retrans"], me.retrans, "{what}");
    assert_eq!(v["pid"], std::process::id(), "{what}");
    assert_eq!(
        v["comm"],
        if active { CLIENT_COMM } else { SERVER_COMM },
        "{what}"
    );
    assert_eq!(
        v["owner_source"],
        if active { "connect" } else { "accept" },
        "{what}"
    );
    assert_eq!(v["established"], true, "{what}");
    assert_eq!(v["open_before"], false, "{what}");
    assert!(v["srtt_us"].as_u64().is_some(), "{what}");
    assert!(v["handshake_ns"].as_u64().is_some(), "{what}");
    assert!(v["duration_ns"].as_u64().unwrap_or(0) > 0, "{what}");
}

fn wait_for(run: &NetxrayRun, what: &str, pred: impl Fn(&[Value]) -> bool) {
    let ok = poll_until(WAIT, Duration::from_millis(20), || {
        pred(&conns(&run.stdout_so_far())).then_some(())
    });
    assert!(
        ok.is_some(),
        "{what}: not reported; so far:\n{}",
        run.stdout_so_far()
    );
}

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
