//! tcpdump as the oracle of the pcap-filter language: which packets of a capture file
//! does an expression keep, and which expressions does libpcap refuse.
//!
//! tcpdump is asked for the kept packets as a pcap on stdout (`-w -`), not as text, so
//! no dissector quirk can hide or add a line; the kept packets are named by their
//! timestamps' seconds, which [`super::pcap::write_pcap`] sets to each packet's index.

use super::pcap::read_pcap_seconds;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The tcpdump binary: `$NETXRAY_TCPDUMP`, else `tcpdump` from `PATH`.
pub fn tcpdump_bin() -> PathBuf {
    std::env::var_os("NETXRAY_TCPDUMP").map_or_else(|| PathBuf::from("tcpdump"), PathBuf::from)
}

/// `tcpdump --version`'s first two lines (tcpdump and libpcap versions), or `None` when
/// there is no tcpdump to run.
pub fn tcpdump_version() -> Option<String> {
    let out = Command::new(tcpdump_bin())
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().take(2).collect::<Vec<_>>().join(", "))
}

/// What tcpdump answers for one expression: the indices of the packets it keeps
/// (ascending), or its message when it refuses the expression.
pub type Answer = Result<Vec<usize>, String>;

/// Which BPF program tcpdump runs: the one libpcap's optimizer made (tcpdump's default)
/// or the unoptimized one (`tcpdump -O`). They can disagree: the optimizer may delete a
/// load that would have run past the end of the packet (which rejects the packet), e.g.
/// `ip[100] = 0 or ip` becomes `ip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    On,
    Off,
}

/// Runs `tcpdump -nn -r PCAP -w - -- EXPR` and returns the indices of the packets the
/// expression keeps (ascending). `Err` carries tcpdump's message when it refuses the
/// expression (or cannot run).
pub fn tcpdump_matches(pcap: &Path, expr: &str) -> Answer {
    tcpdump_matches_with(pcap, expr, Optimizer::On)
}

/// [`tcpdump_matches`] with the optimizer on (default) or off (`-O`).
pub fn tcpdump_matches_with(pcap: &Path, expr: &str, optimizer: Optimizer) -> Answer {
    let mut cmd = Command::new(tcpdump_bin());
    if optimizer == Optimizer::Off {
        cmd.arg("-O");
    }
    let out = cmd
        .args(["-nn", "-r"])
        .arg(pcap)
        .args(["-w", "-", "--", expr])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", tcpdump_bin().display()))?;
    if !out.status.success() {
        return Err(tcpdump_message(&out.stderr));
    }
    let secs = read_pcap_seconds(&out.stdout).map_err(|e| format!("tcpdump's output: {e}"))?;
    Ok(secs.into_iter().map(|s| s as usize).collect())
}

/// Whether libpcap compiles `expr` for the link type of `pcap` (`tcpdump -d`): `Ok`
/// with the BPF listing, or `Err` with tcpdump's message.
pub fn tcpdump_compile(pcap: &Path, expr: &str) -> Result<String, String> {
    let out = Command::new(tcpdump_bin())
        .args(["-d", "-r"])
        .arg(pcap)
        .args(["--", expr])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", tcpdump_bin().display()))?;
    if !out.status.success() {
        return Err(tcpdump_message(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`tcpdump_matches_with`] for every expression, on a few threads; results in input order.
pub fn tcpdump_matches_all(pcap: &Path, exprs: &[String], optimizer: Optimizer) -> Vec<Answer> {
    let results: Vec<Mutex<Option<Answer>>> = exprs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
    std::thread::scope(|s| {
        for _ in 0..workers.min(exprs.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(expr) = exprs.get(i) else { break };
                let r = tcpdump_matches_with(pcap, expr, optimizer);
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Err("not run".to_string()))
        })
        .collect()
}

/// tcpdump's stderr without the "reading from file" status line.
fn tcpdump_message(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !l.starts_with("reading from file"))
        .collect::<Vec<_>>()
        .join("\n")
}
