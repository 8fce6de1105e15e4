//! Shared support for netxray's end-to-end tests.
//!
//! An end-to-end test looks like this:
//!
//! ```ignore
//! mod common;
//! use common::*;
//!
//! #[test]
//! fn drops_to_closed_udp_port_are_reported() {
//!     let Some(_serial) = e2e() else { return }; // not root: says SKIPPED, returns
//!     let topo = LinearBridged::new();
//!     let run = NetxrayRun::new(netxray_bin()).args(["trace", "--output", "json"]).start()
//!         .expect("netxray starts");
//!     udp_send(topo.a(), None, topo.b_sock4(9), b"hello");
//!     let out = run.stop();
//!     let events = parse_json_lines(&out.stdout);
//!     // assert on events ...
//! }
//! ```
//!
//! Everything a test creates is owned by a guard that removes it on drop, also when the
//! test panics. Names carry the prefix `nxt<pid>-<n>-` so parallel runs never collide and
//! leftovers of a killed run are recognisable (see [`leftovers`]).
//!
//! Addresses: only 198.18.0.0/15 and 2001:db8::/32, only inside namespaces made here.
// Not every test binary uses every helper or re-export.
#![allow(dead_code, unused_imports)]

pub mod conn;
pub mod filter_corpus;
pub mod leftovers;
pub mod netns;
pub mod netxray;
pub mod pcap;
pub mod tcpdump;
pub mod topology;
pub mod traffic;

pub use netns::{in_netns, spawn_in_netns, veth, Netns};
pub use netxray::{netxray_bin, parse_json_lines, NetxrayOutput, NetxrayRun};
pub use topology::{LinearBridged, Topology};
pub use traffic::{
    drain_socket, packet_listener, ping, ping_with, send_frame, tagged_udp4_frame, tcp_exchange,
    udp_receiver, udp_recv, udp_send, FrameSender, TcpEchoServer, TcpExchange,
};

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Prefix of every namespace (and temp file) the test support creates: `nxt`.
pub const NAME_PREFIX: &str = "nxt";

/// Path of the lock that serialises end-to-end tests across test binaries.
pub const SERIAL_LOCK_PATH: &str = "/tmp/netxray-e2e.lock";

/// A fresh prefix `nxt<pid>-<n>-`, unique within this machine while this process lives.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{NAME_PREFIX}{}-{n}-", std::process::id())
}

/// True when running as root. Otherwise prints a loud SKIPPED line to stderr: the caller
/// returns early.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    // Straight to fd 2, not eprintln!: the test harness captures eprintln! output of
    // passing tests, and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: needs root: {test} (CI runs these as root) ***\n"
    );
    false
}

/// Held while an end-to-end test runs: an exclusive `flock` on [`SERIAL_LOCK_PATH`].
/// Flock locks belong to the open file description, so this serialises threads of one
/// test binary as well as separate binaries. Released when dropped (the fd closes).
pub struct SerialLock {
    _file: File,
}

impl SerialLock {
    /// Blocks until the lock is ours.
    pub fn acquire() -> SerialLock {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(SERIAL_LOCK_PATH)
            .unwrap_or_else(|e| panic!("open {SERIAL_LOCK_PATH}: {e}"));
        loop {
            // SAFETY: flock on a valid, open fd.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                panic!("flock {SERIAL_LOCK_PATH}: {err}");
            }
        }
        SerialLock { _file: file }
    }
}

/// The usual start of an end-to-end test: `None` (after a SKIPPED message) when not root,
/// otherwise the serial lock. Also removes namespaces left behind by test processes that
/// no longer exist (killed runs), so they cannot confuse this one.
pub fn e2e() -> Option<SerialLock> {
    if !require_root() {
        return None;
    }
    let lock = SerialLock::acquire();
    leftovers::reap_stale_netns();
    Some(lock)
}

/// Polls `cond` every `every` until it returns `Some`, or `timeout` passes (then `None`).
pub fn poll_until<T>(
    timeout: Duration,
    every: Duration,
    mut cond: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// In one `netxray drops -o json` summary line, the `total` of the first row
/// `pick` accepts; 0 if none (or not a summary).
pub fn drops_total(line: &str, pick: impl Fn(&serde_json::Value) -> bool) -> u64 {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| {
            v["rows"].as_array().and_then(|rows| {
                rows.iter()
                    .find(|r| pick(r))
                    .and_then(|r| r["total"].as_u64())
            })
        })
        .unwrap_or(0)
}
