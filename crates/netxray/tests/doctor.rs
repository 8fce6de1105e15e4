//! `netxray doctor`: capability parsing on fixtures, and, as root, the real probe on this
//! kernel (exit code, the hooks netxray relies on, JSON shape, nothing left attached).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use netxray::kernel::probe::Privileges;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_netxray");

/// What `netxray trace` and the other subcommands rely on, all present on the target kernel.
const MUST_BE_OK: [&str; 10] = [
    "privileges",
    "btf",
    "tracefs",
    "tp_btf",
    "raw_tp",
    "tracepoint",
    "xdp",
    "tcx",
    "netfilter",
    // Every program netxray has, loaded and attached.
    "netxray_programs",
];

#[test]
fn capabilities_parse_from_status_fixtures() {
    // This machine's root: everything but CAP_SYS_RESOURCE (bit 24).
    let status = "Name:\tnetxray\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\n\
                  CapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n";
    let p = Privileges::from_status(status).expect("CapEff parses");
    assert!(p.cap_bpf && p.cap_perfmon && p.cap_net_admin && p.cap_sys_admin);
    assert!(!p.cap_sys_resource);
    assert!(p.can_trace());
    assert_eq!(p.lacking(), ["CAP_SYS_RESOURCE"]);

    // Full root.
    let p = Privileges::from_status("CapEff:\t000001ffffffffff\n").expect("parses");
    assert!(p.cap_sys_resource && p.lacking().is_empty());

    // Unprivileged user.
    let p = Privileges::from_status("CapEff:\t0000000000000000\n").expect("parses");
    assert!(!p.can_trace());
    assert!(p.held().is_empty());

    // CAP_BPF + CAP_PERFMON (bits 39, 38) alone are enough to trace; not for XDP/tc.
    let p = Privileges::from_status("CapEff:\t000000c000000000\n").expect("parses");
    assert!(p.can_trace() && !p.cap_sys_admin && !p.cap_net_admin);
    assert_eq!(p.held(), ["CAP_BPF", "CAP_PERFMON"]);

    // CAP_SYS_ADMIN (bit 21) alone stands in for both.
    assert!(Privileges::from_mask(1 << 21).can_trace());

    // Malformed or absent.
    assert_eq!(Privileges::from_status("CapEff:\tnot-hex\n"), None);
    assert_eq!(Privileges::from_status("CapPrm:\t000001ffffffffff\n"), None);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `bpftool -j <what> list`, or `None` when bpftool is not installed.
fn bpftool(what: &str) -> Option<Vec<Value>> {
    let out = Command::new("bpftool")
        .args(["-j", what, "list"])
        .output()
        .ok()?;
    assert!(out.status.success(), "bpftool {what} list failed");
    serde_json::from_slice(&out.stdout).ok()
}

fn ids(items: &[Value]) -> BTreeSet<u64> {
    items.iter().filter_map(|v| v["id"].as_u64()).collect()
}

/// Ids of programs named `nxd_*` (doctor's probe programs).
fn doctor_progs() -> Option<BTreeSet<u64>> {
    let progs = bpftool("prog")?;
    Some(
        progs
            .iter()
            .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("nxd_")))
            .filter_map(|p| p["id"].as_u64())
            .collect(),
    )
}

#[test]
fn doctor_on_this_kernel() {
    if !is_root() {
        eprintln!("\n*** SKIPPED: needs root (doctor_on_this_kernel loads BPF programs) ***\n");
        return;
    }
    let links_before = bpftool("link").map(|l| ids(&l));

    // Text: exit 0, one row per check, the verdict last.
    let out = Command::new(BIN)
        .arg("doctor")
        .output()
        .expect("run netxray doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "doctor failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines().last(),
        Some("netxray trace: can run here"),
        "{text}"
    );
    for name in MUST_BE_OK.iter().chain(&["ringbuf"]) {
        let row = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name));
        let row = row.unwrap_or_else(|| panic!("no row for {name}:\n{text}"));
        assert_eq!(row.split_whitespace().nth(1), Some("ok"), "{row}");
    }

    // JSON: one object with the documented shape.
    let out = Command::new(BIN)
        .args(["doctor", "--output", "json"])
        .output()
        .expect("run doctor");
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("doctor JSON parses");
    assert_eq!(doc["trace_can_run"], Value::Bool(true));
    assert!(doc["reason"].is_null());
    let checks = doc["checks"].as_array().expect("checks array");
    for c in checks {
        for field in ["name", "status", "detail", "cost"] {
            assert!(c[field].is_string(), "{field} in {c}");
        }
        assert!(
            ["ok", "missing", "unknown", "warning"].contains(&c["status"].as_str().unwrap_or(""))
        );
    }
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap_or("").to_owned())
    };
    for name in MUST_BE_OK.iter().chain(&["ringbuf", "nftables_trace"]) {
        assert_eq!(status(name).as_deref(), Some("ok"), "{name}");
    }
    // This kernel: no kprobes, fentry refused, RLIMIT_MEMLOCK fixed; none of it is fatal.
    assert_eq!(status("kprobe").as_deref(), Some("missing"));
    assert_eq!(status("fentry").as_deref(), Some("missing"));

    // Nothing left behind: no doctor program survives its process (freeing is deferred a
    // little, hence the wait), so no link to one does; no new link holds one; lo has no XDP.
    let Some(mut left) = doctor_progs() else {
        eprintln!("bpftool not installed: attachment leftovers not checked");
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = doctor_progs().unwrap_or_default();
    }
    assert!(left.is_empty(), "doctor programs still loaded: {left:?}");
    if let (Some(before), Some(after)) = (links_before, bpftool("link")) {
        // Other processes may attach meanwhile: only links to doctor's programs count.
        let new: Vec<&Value> = after
            .iter()
            .filter(|l| l["id"].as_u64().is_some_and(|id| !before.contains(&id)))
            .collect();
        let progs = bpftool("prog").unwrap_or_default();
        for link in new {
            let prog = progs.iter().find(|p| p["id"] == link["prog_id"]);
            let name = prog.and_then(|p| p["name"].as_str()).unwrap_or("");
            assert!(!name.starts_with("nxd_"), "doctor left a link: {link}");
        }
    }
    let lo = Command::new("ip")
        .args(["-d", "link", "show", "lo"])
        .output()
        .expect("ip link");
    assert!(
        !String::from_utf8_lossy(&lo.stdout).contains("xdp"),
        "XDP left on the host's lo"
    );
}
