//! End to end: `netxray drops` counts drops in the kernel, exactly, per
//! reason, place and namespace, with a sample and advice.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

#[test]
fn drops_to_a_closed_port_are_counted_exactly_with_advice() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    // Neighbours resolved, so every datagram reaches B.
    assert!(ping(t.a(), t.b_ip(false), 0x3139, 1), "warm-up ping");
    let run = NetxrayRun::new(netxray_bin())
        .args([
            "drops",
            "-o",
            "json",
            "--interval",
            "0.3",
            "udp and dst port 9",
        ])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    for _ in 0..20 {
        udp_send(t.a(), None, t.b_sock4(9), b"nobody listens");
    }
    let b = t.b_inode();
    let row_total = |line: &str| -> u64 {
        serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| {
                v["rows"].as_array().and_then(|rows| {
                    rows.iter()
                        .find(|r| r["reason"] == "NO_SOCKET" && r["netns"].as_u64() == Some(b))
                        .and_then(|r| r["total"].as_u64())
                })
            })
            .unwrap_or(0)
    };
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        run.stdout_so_far()
            .lines()
            .any(|l| row_total(l) >= 20)
            .then_some(())
    });
    let out = run.stop();
    assert!(seen.is_some(), "{}\n{}", out.stdout, out.stderr);
    let last = out
        .stdout
        .lines()
        .rev()
        .find(|l| row_total(l) > 0)
        .expect("a summary with the row");
    assert_eq!(row_total(last), 20, "exactly the datagrams sent: {last}");
    let v: Value = serde_json::from_str(last).expect("json");
    let row = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["reason"] == "NO_SOCKET")
        .expect("row");
    assert_eq!(row["ifname"], LinearBridged::B_IF, "{row}");
    assert!(
        row["location"].as_str().unwrap_or("").contains("udp"),
        "{row}"
    );
    assert!(
        row["sample"].as_str().unwrap_or("").contains(".9: UDP"),
        "{row}"
    );
    assert!(
        row["means"]
            .as_str()
            .unwrap_or("")
            .contains("nothing listens"),
        "{row}"
    );
    assert!(out.stderr.contains("20 drops counted"), "{}", out.stderr);
}

#[test]
fn events_prints_every_drop_with_its_packet() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x313a, 1), "warm-up ping");
    let run = NetxrayRun::new(netxray_bin())
        .args(["drops", "--events", "-o", "json", "udp and dst port 9"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    for _ in 0..3 {
        udp_send(t.a(), None, t.b_sock4(9), b"nobody listens");
    }
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (run.stdout_so_far().matches("\"NO_SOCKET\"").count() >= 3).then_some(())
    });
    let out = run.stop();
    assert!(seen.is_some(), "{}\n{}", out.stdout, out.stderr);
    for e in out.json() {
        assert_eq!(e["hook"], "skb:kfree_skb", "{e}");
        assert_eq!(e["dport"].as_u64(), Some(9), "{e}");
    }
}

/// `SO_MEMINFO`'s drop count of a socket (what the socket itself says it lost).
fn socket_drops(sock: &std::net::UdpSocket) -> u64 {
    use std::os::fd::AsRawFd;
    let mut info = [0u32; 9];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: getsockopt(SO_MEMINFO) fills at most len bytes of info.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "SO_MEMINFO: {}", std::io::Error::last_os_error());
    info[8] as u64 // SK_MEMINFO_DROPS
}

#[test]
fn a_full_receive_buffer_is_counted_as_the_socket_counts_it() {
    use std::os::fd::AsRawFd;
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x313b, 1), "warm-up ping");
    // A socket with the smallest receive buffer that never reads.
    let sink = udp_receiver(t.b(), t.b_sock4(7777));
    let small: libc::c_int = 1;
    // SAFETY: setsockopt(SO_RCVBUF) with an int.
    let rc = unsafe {
        libc::setsockopt(
            sink.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let run = NetxrayRun::new(netxray_bin())
        .args([
            "drops",
            "-o",
            "json",
            "--interval",
            "0.3",
            "udp and dst port 7777",
        ])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    for _ in 0..200 {
        udp_send(t.a(), None, t.b_sock4(7777), &[0x42; 200]);
    }
    let b = t.b_inode();
    let row_total = |line: &str| -> u64 {
        serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| {
                v["rows"].as_array().and_then(|rows| {
                    rows.iter()
                        .find(|r| r["reason"] == "SOCKET_RCVBUFF" && r["netns"].as_u64() == Some(b))
                        .and_then(|r| r["total"].as_u64())
                })
            })
            .unwrap_or(0)
    };
    let expected = socket_drops(&sink);
    assert!(
        expected > 100,
        "the burst overflowed the buffer: {expected}"
    );
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        run.stdout_so_far()
            .lines()
            .any(|l| row_total(l) >= expected)
            .then_some(())
    });
    let out = run.stop();
    assert!(seen.is_some(), "{}\n{}", out.stdout, out.stderr);
    let last = out
        .stdout
        .lines()
        .rev()
        .find(|l| row_total(l) > 0)
        .expect("a summary with the row");
    assert_eq!(row_total(last), expected, "{last}");
    assert_eq!(socket_drops(&sink), expected, "no more drops since");
    assert!(last.contains("reads too slowly"), "{last}");
}

#[test]
fn raw_ping_replies_are_explained() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    assert!(ping(t.a(), t.b_ip(false), 0x313c, 1), "warm-up ping");
    let run = NetxrayRun::new(netxray_bin())
        .args([
            "drops",
            "-o",
            "json",
            "--interval",
            "0.3",
            "--netns",
            t.a().name(),
            "icmp",
        ])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    for seq in 2..5 {
        assert!(ping(t.a(), t.b_ip(false), 0x313c, seq), "ping {seq}");
    }
    let row = |line: &str| -> Option<Value> {
        serde_json::from_str::<Value>(line).ok().and_then(|v| {
            v["rows"]
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["reason"] == "NO_SOCKET").cloned())
        })
    };
    let seen = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        run.stdout_so_far()
            .lines()
            .filter_map(row)
            .find(|r| r["total"].as_u64() >= Some(3))
    });
    let out = run.stop();
    let r = seen.unwrap_or_else(|| panic!("{}\n{}", out.stdout, out.stderr));
    assert_eq!(r["total"], 3, "one per echo reply: {r}");
    assert!(
        r["means"]
            .as_str()
            .unwrap_or("")
            .contains("raw-socket ping"),
        "{r}"
    );
}
