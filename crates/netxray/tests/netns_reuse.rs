//! The kernel hands a freed namespace inode number out again at once, and
//! netxray's records name a namespace by that number (issue #16, item 1).
//! While `trace --netns A` runs, A is held (netns::Pin): a namespace made
//! after A is deleted cannot take A's inode, so its packets are never shown
//! as A's. (Without the hold, the next namespace got A's inode and its
//! pings were printed as A's.)

mod common;

use common::*;
use std::time::Duration;

#[test]
fn a_namespace_made_after_the_watched_one_is_deleted_is_not_taken_for_it() {
    let Some(_serial) = e2e() else { return };
    let a = Netns::new("reuse-a");
    let a_inode = a.inode();
    let run = NetxrayRun::new(netxray_bin())
        .args(["trace", "-t", "net:netif_receive_skb,net:net_dev_queue"])
        .args(["--netns", a.name(), "-o", "json", "icmp"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    drop(a); // ip netns del
             // New namespaces right after: the first would have A's inode.
    let made: Vec<Netns> = (0..16)
        .map(|i| Netns::new(&format!("reuse-b{i}")))
        .collect();
    for b in &made {
        assert_ne!(
            b.inode(),
            a_inode,
            "{} got the watched namespace's inode",
            b.name()
        );
    }
    // Traffic in the first new one (its own address on lo, from the test range).
    let b = &made[0];
    b.addr("lo", "198.18.9.1/32");
    for seq in 1..=3 {
        assert!(
            ping(b, "198.18.9.1".parse().expect("ip"), 0x6101, seq),
            "ping in B"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let out = run.stop();
    let shown = parse_json_lines(&out.stdout);
    assert!(
        shown.is_empty(),
        "B's packets shown as A's:\n{}",
        out.stdout
    );
}
