//! CLI errors: every bad input gets a clear message and the right exit code
//! (2 usage, 1 runtime), never a panic, and nothing is left attached.

use std::process::{Command, Output};

fn netxray(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netxray"))
        .args(args)
        .output()
        .expect("run netxray")
}

fn netxray_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_netxray"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run netxray")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn assert_fails(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {stderr}");
    assert!(
        stderr.contains(needle),
        "stderr should mention {needle:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn filter_and_journey_usage_errors_exit_2() {
    assert_fails(
        &netxray(&["trace", "tcp", "port", "99999"]),
        2,
        "illegal port number 99999 > 65535 (at position 10)",
    );
    assert_fails(
        &netxray(&["trace", "ip", "and", "protochain", "6"]),
        2,
        "'protochain' is valid in tcpdump but not supported by netxray",
    );
    assert_fails(
        &netxray(&["trace", "host", "example.com"]),
        2,
        "not resolved",
    );
    assert_fails(&netxray(&["trace", "--map", "icmp"]), 2, "--journey");
    assert_fails(&netxray(&["trace", "--stack=nosuchhook"]), 2, "--stack");
}

#[test]
fn usage_errors_exit_2() {
    assert_fails(
        &netxray(&["trace", "--addr", "198.18.0.300"]),
        2,
        "bad address",
    );
    assert_fails(
        &netxray(&["trace", "--saddr", "2001:db8::/200"]),
        2,
        "bad prefix",
    );
    assert_fails(&netxray(&["trace", "--port", "70000"]), 2, "bad port");
    assert_fails(&netxray(&["trace", "--dport", "9-3"]), 2, "bad port");
    assert_fails(
        &netxray(&["trace", "--proto", "gre"]),
        2,
        "unknown protocol 'gre'",
    );
    assert_fails(
        &netxray(&["trace", "-t", "link-in,nosuchhook"]),
        2,
        "unknown hook or group 'nosuchhook'",
    );
    assert_fails(
        &netxray(&["trace", "--netns", "nx-no-such-ns"]),
        2,
        "unknown network namespace 'nx-no-such-ns'",
    );
    assert_fails(
        &netxray(&["trace", "--netns", "4294967"]),
        2,
        "no namespace with that inode",
    );
    assert_fails(&netxray(&["trace", "-t", "tc"]), 2, "give it with -i IFACE");
    assert_fails(
        &netxray(&["stats", "-i", "nxnosuch0"]),
        2,
        "unknown interface 'nxnosuch0'",
    );
    assert_fails(&netxray(&["stats", "--interval", "0"]), 2, "--interval");
    assert_fails(&netxray(&["stats", "--flows", "3"]), 2, "--flows");
    assert_fails(
        &netxray(&["stats", "--netns", "nx-no-such-ns"]),
        2,
        "unknown network namespace",
    );
    assert_fails(
        &netxray(&["trace", "-i", "nxnosuch0"]),
        2,
        "unknown interface 'nxnosuch0'",
    );
    assert_fails(
        &netxray(&["trace", "--pid", "999999999"]),
        2,
        "no such process",
    );
    assert_fails(&netxray(&["trace", "--bogus-flag"]), 2, "--bogus-flag");
    assert_fails(&netxray(&["trace", "--output", "xml"]), 2, "xml");
    assert_fails(&netxray(&["trace", "--ring-size", "3"]), 2, "power of two");
    assert_fails(&netxray(&["frobnicate"]), 2, "frobnicate");
}

#[test]
fn no_btf_is_a_runtime_error() {
    let out = netxray_env(&["trace"], &[("NETXRAY_BTF", "/nonexistent/vmlinux")]);
    assert_fails(&out, 1, "exposes no BTF");
}

#[test]
fn missing_hook_requested_explicitly_fails_and_is_skipped_otherwise() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let hide = [("NETXRAY_HIDE_TRACEPOINTS", "net:netif_rx")];
    let out = netxray_env(&["trace", "-t", "net:netif_rx", "--duration", "0"], &hide);
    assert_fails(&out, 1, "hook net:netif_rx is not available on this kernel");
    // Default selection: skipped with a warning, the rest runs.
    let out = netxray_env(&["trace", "-t", "link-in", "--duration", "0"], &hide);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("skipping net:netif_rx"),
        "a missing group member is skipped and said so: {stderr}"
    );
}

#[test]
fn not_privileged_names_the_capability() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (to drop to nobody)");
        return;
    }
    if Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("SKIPPED: no setpriv");
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_netxray"))
        .args(["trace", "--duration", "0"])
        .output()
        .expect("run setpriv");
    assert_fails(&out, 1, "CAP_BPF");
}

#[test]
fn hooks_lists_the_tree() {
    let out = netxray(&["hooks"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for g in [
        "link-in", "link-out", "qdisc", "route", "neigh", "l4", "socket", "life",
    ] {
        assert!(text.contains(&format!("  {g}: ")), "group {g} in:\n{text}");
    }
    assert!(text.contains("skb:kfree_skb"));
    // netxray dns's system calls, in a section of their own.
    assert!(text.contains("\nsyscalls: "), "{text}");
    assert!(text.contains("syscalls:sendmmsg"), "{text}");
    let out = netxray(&["hooks", "--output", "json"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 29);
    assert!(lines
        .iter()
        .all(|l| l["hook"].is_string() && l["group"].is_string()));
    if is_root() {
        let have = |name: &str| {
            lines
                .iter()
                .any(|l| l["hook"] == name && l["available"] == true)
        };
        assert!(have("net:netif_receive_skb") && have("skb:kfree_skb"));
    }
}

/// Every out-of-range number is a usage error naming the flag (issue #16:
/// these panicked with exit 101 before), decided before anything is loaded.
#[test]
fn out_of_range_numbers_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["trace", "--duration", "inf"], "--duration"),
        (&["trace", "--duration", "1e400"], "--duration"),
        (&["trace", "--duration", "1e19"], "--duration"),
        (&["trace", "--duration=-1"], "--duration"),
        (&["trace", "--snaplen", "100000"], "--snaplen"),
        (&["trace", "--snaplen", "0"], "--snaplen"),
        (&["trace", "--ring-size", "0"], "--ring-size"),
        (&["stats", "--duration=-1"], "--duration"),
        (&["stats", "--duration", "nan"], "--duration"),
        (&["stats", "--interval", "inf"], "--interval"),
        (&["stats", "--interval", "1e300"], "--interval"),
        (&["stats", "--flows", "3"], "--flows"),
        (&["drops", "--duration=-1"], "--duration"),
        (&["drops", "--duration", "nan"], "--duration"),
        (&["drops", "--interval", "inf"], "--interval"),
        (&["drops", "--interval", "1e300"], "--interval"),
        (&["conn", "--comm", "a-name-longer-than-15"], "--comm"),
        (&["conn", "--max-conns", "0"], "--max-conns"),
    ];
    for (args, flag) in cases {
        let out = netxray(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?} does not name {flag}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// An empty hook list is a usage error, said before anything is loaded
/// (issue #16, item 4: it read "hook any is not available on this kernel").
#[test]
fn an_empty_hook_list_is_a_usage_error() {
    for t in ["", ",", " , "] {
        let out = netxray(&["trace", "-t", t, "--duration", "0"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "-t {t:?}: {stderr}");
        assert!(stderr.contains("no hook selected"), "-t {t:?}: {stderr}");
        assert!(!stderr.contains("not available"), "-t {t:?}: {stderr}");
    }
}
