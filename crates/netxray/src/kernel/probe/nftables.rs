//! nftables tracing (`--nft-trace`): tried for real in a throwaway network
//! namespace (the owner tables made, `lo` brought up, one datagram to
//! 127.0.0.1 traced), and the `netxray_*` tables left in the namespaces
//! netxray can see (`/run/netns/*` and its own).

use super::{name, Check};
use crate::kernel::nftables::{self, NftTracer};
use crate::kernel::sys;
use crate::model::nft::{family, NftTrace};
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub(crate) fn probe() -> Vec<Check> {
    let trace = std::thread::Builder::new()
        .name("nx-doctor-nft".into())
        .spawn(trace_in_throwaway_netns)
        .ok()
        .and_then(|t| t.join().ok())
        .unwrap_or_else(|| Check::unknown(name::NFT_TRACE, "probe thread failed"));
    vec![trace, leftovers()]
}

/// `lo` up in this thread's namespace (SIOCSIFFLAGS).
fn lo_up() -> io::Result<()> {
    sys::set_up(c"lo").map_err(|e| io::Error::from_raw_os_error(e.0))
}

fn trace_in_throwaway_netns() -> Check {
    let n = name::NFT_TRACE;
    if let Err(e) = sys::unshare_netns() {
        return Check::unknown(
            n,
            format!("not tried: cannot make a throwaway netns (unshare: {e})"),
        );
    }
    let mut tracer = match NftTracer::open(None, &[]) {
        Ok(t) => t,
        Err(e) => return Check::missing(n, e.to_string()),
    };
    let made = format!(
        "owner tables {} {} made (throwaway netns)",
        tracer.families_text(),
        tracer.table
    );
    let sent = lo_up().and_then(|()| {
        let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
        s.send_to(b"netxray doctor", "127.0.0.1:9").map(drop)
    });
    if let Err(e) = sent {
        return Check::ok(n, format!("{made}; not verified: no packet on lo ({e})"));
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut got: Vec<NftTrace> = Vec::new();
    while got.is_empty() && Instant::now() < deadline {
        if let Err(e) = tracer.read(&mut got, 16) {
            return Check::missing(n, format!("{made}; reading trace messages: {e}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if got.is_empty() {
        Check::missing(
            n,
            format!("{made}; a datagram on lo produced no trace message"),
        )
    } else {
        Check::ok(
            n,
            format!("{made}, a datagram on lo traced; removed with the socket"),
        )
    }
}

/// Namespaces to look in: netxray's own and those under /run/netns.
fn namespaces() -> Vec<(String, Option<PathBuf>)> {
    let mut out = vec![("netxray's namespace".to_string(), None)];
    if let Ok(rd) = std::fs::read_dir(crate::kernel::netns::RUN_NETNS) {
        for e in rd.flatten() {
            out.push((e.file_name().to_string_lossy().into_owned(), Some(e.path())));
        }
    }
    out
}

/// A running netxray owns `netxray_<pid>`.
fn owner_alive(table: &str) -> Option<u32> {
    let pid: u32 = table
        .strip_prefix(nftables::ruleset::TABLE_PREFIX)?
        .parse()
        .ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "netxray").then_some(pid)
}

fn leftovers() -> Check {
    let n = name::NFT_LEFTOVERS;
    let mut left = Vec::new();
    let mut in_use = Vec::new();
    let mut looked = 0;
    let mut failed = None;
    for (ns, path) in namespaces() {
        match nftables::netxray_tables(path.as_deref()) {
            Ok(tables) => {
                looked += 1;
                for t in tables {
                    let what = format!("{} {} in {ns}", family::name(t.family), t.name);
                    let fam = family::name(t.family);
                    let exec = match &path {
                        Some(_) => format!("ip netns exec {ns} "),
                        None => String::new(),
                    };
                    match owner_alive(&t.name) {
                        Some(pid) => in_use.push(format!("{what} (running netxray {pid})")),
                        None => left.push(format!(
                            "{what} (remove: {exec}nft delete table {fam} {})",
                            t.name
                        )),
                    }
                }
            }
            Err(e) => failed = Some(e.to_string()),
        }
    }
    if looked == 0 {
        let why = failed.unwrap_or_else(|| "no namespace".into());
        return Check::unknown(n, format!("could not list tables: {why}"));
    }
    let using = if in_use.is_empty() {
        String::new()
    } else {
        format!("; in use: {}", in_use.join(", "))
    };
    if left.is_empty() {
        Check::ok(n, format!("none in {looked} namespaces{using}"))
    } else {
        Check::warning(n, format!("{}{using}", left.join(", ")))
    }
}
