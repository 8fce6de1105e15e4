//! Every program netxray has loads and attaches on the running kernel: a
//! hook that `netxray hooks` calls ok really loads, and a verifier refusal
//! cannot hide behind a skipped-hook warning (skb_copy_datagram_iovec was
//! refused on 6.12+ for weeks that way). `hooks --load` loads each object
//! without and with a filter, the tc and XDP programs on an interface of a
//! namespace the test makes.

mod common;

use common::*;
use std::process::Command;

#[test]
fn every_program_loads_and_attaches_on_this_kernel() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let out = Command::new(netxray_bin())
        .args([
            "hooks",
            "--load",
            "-i",
            LinearBridged::B_IF,
            "--netns",
            t.b().name(),
        ])
        .output()
        .expect("run netxray");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let bad: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("REFUSED") || l.contains("FAILED"))
        .collect();
    assert!(
        out.status.success() && bad.is_empty(),
        "hooks --load failed ({}):\n{}\n{stderr}",
        out.status,
        bad.join("\n")
    );
    // Both the plain and the filtered objects, every group.
    for needle in [
        "skb:skb_copy_datagram_iovec",
        "skb:kfree_skb",
        "tc:ingress",
        "xdp:ingress",
        "nf:input",
        "inet_sock_set_state",
        "stats_tc_ingress",
    ] {
        let lines = stdout
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|h| h.split(',').any(|p| p == needle))
            })
            .count();
        assert_eq!(lines, 2, "{needle} not checked twice:\n{stdout}");
    }
    assert!(stderr.contains("every program loads here"), "{stderr}");
}

#[test]
fn json_lines_name_area_hook_and_status() {
    let Some(_serial) = e2e() else { return };
    let out = Command::new(netxray_bin())
        .args(["hooks", "--load", "-o", "json"])
        .output()
        .expect("run netxray");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut tc_ok = false;
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        assert!(v["area"].is_string() && v["hook"].is_string(), "{line}");
        assert!(v["filtered"].is_boolean(), "{line}");
        let status = v["status"].as_str().expect("status");
        assert!(["ok", "missing"].contains(&status), "{line}");
        if v["hook"] == "tc:ingress" {
            // No -i: the interface-bound programs go on lo of a throwaway
            // namespace.
            assert_eq!(status, "ok", "{line}");
            tc_ok = true;
        }
    }
    assert!(tc_ok, "{stdout}");
}
