//! The kernel hands a freed namespace inode number out again at once, and
//! netxray's records used to name a namespace by that number alone (issue
//! #16, item 1): a namespace made after another was deleted was shown with
//! the deleted one's name. Records now carry the namespace's cookie too,
//! which the kernel never reuses.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

/// `trace --netns A`, then A deleted: the run ends by itself, says why, and
/// exits as on Ctrl-C. (While it ran, A was held: no namespace could take
/// its inode.)
#[test]
fn deleting_the_watched_namespace_ends_the_run() {
    let Some(_serial) = e2e() else { return };
    let a = Netns::new("reuse-a");
    let mut run = NetxrayRun::new(netxray_bin())
        .args(["trace", "-t", "net:netif_receive_skb,net:net_dev_queue"])
        .args(["--netns", a.name(), "-o", "json", "icmp"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    drop(a); // ip netns del
    let out = run
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running after its namespace was deleted"));
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr.contains("is gone") && out.stderr.contains("stopping"),
        "{}",
        out.stderr
    );
}

fn ping_seen(run: &NetxrayRun, inode: u64, not_cookie: Option<u64>) -> Option<Value> {
    parse_json_lines(&run.stdout_so_far())
        .into_iter()
        .find(|e| e["netns"].as_u64() == Some(inode) && e["netns_cookie"].as_u64() != not_cookie)
}

/// Every namespace traced (no --netns): A pings, is deleted, and B takes
/// its inode number. B's packets carry B's cookie and B's name, never A's.
#[test]
fn a_namespace_that_takes_a_deleted_ones_inode_gets_its_own_name() {
    let Some(_serial) = e2e() else { return };
    let addr = "198.18.9.1";
    let run = NetxrayRun::new(netxray_bin())
        .args(["trace", "-t", "net:net_dev_queue", "-o", "json"])
        .arg(format!("icmp and host {addr}"))
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let ping_in = |ns: &Netns, id: u16| {
        ns.addr("lo", &format!("{addr}/32"));
        assert!(
            ping(ns, addr.parse().expect("ip"), id, 1),
            "ping in {}",
            ns.name()
        );
    };
    let a = Netns::new("reuse-a");
    let (a_inode, a_name) = (a.inode(), a.name().to_string());
    ping_in(&a, 0x6101);
    let wait = |not_cookie| {
        poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
            ping_seen(&run, a_inode, not_cookie)
        })
    };
    let seen_a = wait(None).unwrap_or_else(|| panic!("A's ping: {}", run.stdout_so_far()));
    assert_eq!(seen_a["netns_name"], a_name.as_str(), "{seen_a}");
    let a_cookie = seen_a["netns_cookie"].as_u64();
    assert!(a_cookie.is_some(), "a cookie on this kernel: {seen_a}");
    drop(a); // ip netns del
             // New namespaces until one has A's inode. The kernel frees a deleted
             // namespace's inode number in a work queue, later on a busy machine, and
             // then hands out the lowest free one: keep those made meanwhile (so
             // lower free numbers are used up) and try again until it comes back.
    let mut made = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let b = loop {
        let ns = Netns::new(&format!("reuse-b{}", made.len()));
        if ns.inode() == a_inode {
            break ns;
        }
        made.push(ns);
        assert!(
            std::time::Instant::now() < deadline && made.len() < 400,
            "no new namespace took inode {a_inode} ({} made)",
            made.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    ping_in(&b, 0x6102);
    let seen_b = wait(a_cookie).unwrap_or_else(|| panic!("B's ping: {}", run.stdout_so_far()));
    let out = run.stop();
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(seen_b["netns_name"], b.name(), "{seen_b}");
    for e in out.json() {
        if e["netns_cookie"].as_u64() != a_cookie {
            assert_ne!(e["netns_name"], a_name.as_str(), "B shown as A: {e}");
        }
    }
}
