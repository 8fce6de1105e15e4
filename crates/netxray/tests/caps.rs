//! The README's capability table, checked (issue #16, item 5): each
//! subcommand runs with exactly the capabilities the table gives it (root's
//! uid, every other capability dropped with util-linux `setpriv`), and with
//! one fewer it says which one is missing (exit 1), never a misleading
//! "not available" or "netxray bug".

mod common;

use common::*;
use std::process::{Command, Output};

/// `netxray ARGS` as root with only `caps` (setpriv names: bpf, perfmon,
/// net_admin, sys_admin).
fn with_caps(caps: &[&str], args: &[&str]) -> Output {
    let set: String = std::iter::once("-all".to_string())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    Command::new("setpriv")
        .args([
            "--reuid=0",
            "--inh-caps",
            &set,
            "--bounding-set",
            &set,
            "--",
        ])
        .arg(netxray_bin())
        .args(args)
        .output()
        .expect("run setpriv (util-linux)")
}

const TRACING: &[&str] = &["bpf", "perfmon"];
const NET: &[&str] = &["bpf", "perfmon", "net_admin"];

/// (capabilities, arguments): the README's table.
const TABLE: &[(&[&str], &[&str])] = &[
    (TRACING, &["trace", "--duration", "0.5", "icmp"]),
    (
        TRACING,
        &["trace", "--journey", "--duration", "0.5", "icmp"],
    ),
    (TRACING, &["drops", "--duration", "0.5"]),
    (TRACING, &["conn", "--duration", "0.5"]),
    (TRACING, &["dns", "--duration", "0.5"]),
    (TRACING, &["http", "--duration", "0.5", "port", "8080"]),
    (
        NET,
        &["trace", "-t", "tc,xdp", "-i", "lo", "--duration", "0.5"],
    ),
    (NET, &["trace", "-t", "netfilter", "--duration", "0.5"]),
    (
        NET,
        &[
            "trace",
            "--nft-trace",
            "-t",
            "kfree_skb",
            "--duration",
            "0.5",
        ],
    ),
    (NET, &["stats", "-i", "lo", "--duration", "0.5"]),
];

#[test]
fn each_subcommand_runs_with_the_capabilities_the_readme_gives() {
    let Some(_serial) = e2e() else { return };
    for (caps, args) in TABLE {
        let out = with_caps(caps, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} with {caps:?}: {stderr}"
        );
        assert!(!stderr.contains("netxray bug"), "{args:?}: {stderr}");
    }
}

#[test]
fn one_capability_fewer_is_named() {
    let Some(_serial) = e2e() else { return };
    for (caps, args) in TABLE {
        let Some((last, fewer)) = caps.split_last() else {
            continue;
        };
        let out = with_caps(fewer, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = format!("CAP_{}", last.to_uppercase());
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} without {name}: {stderr}"
        );
        assert!(stderr.contains(&name), "{args:?} without {name}: {stderr}");
        assert!(!stderr.contains("netxray bug"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
