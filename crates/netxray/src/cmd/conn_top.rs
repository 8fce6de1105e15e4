//! `netxray conn --top`: the connections that moved the most bytes in each
//! interval, like tcptop. The kernel adds what every send and receive call
//! on a TCP socket returned (`sock:sock_send_length`, `sock:sock_recv_length`)
//! to the connection's entry; each interval this reads the table and shows
//! the differences. Connections that ended during an interval leave the
//! table with their entry and are not shown for it.

use crate::cli::{ConnArgs, OutputFormat};
use crate::error::{Error, Result};
use crate::kernel::conn::ConnSession;
use crate::kernel::netns::Names;
use crate::kernel::ring::EventRing;
use crate::model::conn::Ends;
use crate::model::filter::{Filter, Prepared};
use crate::model::value::NsId;
use netxray_abi::c_str;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
struct Row {
    sk: String,
    netns: u32,
    netns_cookie: Option<u64>,
    netns_name: Option<String>,
    laddr: IpAddr,
    lport: u16,
    raddr: IpAddr,
    rport: u16,
    pid: Option<u32>,
    comm: Option<String>,
    /// Bytes the application sent / received in the interval.
    tx_bytes: u64,
    rx_bytes: u64,
    /// Since netxray started following the connection.
    tx_total: u64,
    rx_total: u64,
}

#[derive(Debug, Serialize)]
struct Snapshot<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    ts_ns: u64,
    interval_s: f64,
    connections: usize,
    rows: &'a [Row],
}

pub fn run(
    args: &ConnArgs,
    duration: Option<Duration>,
    session: &ConnSession,
    mut ring: EventRing,
    filter: Filter,
) -> Result<ExitCode> {
    let filter: Prepared = filter.prepare();
    let every = Duration::try_from_secs_f64(args.interval)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Error::usage("--interval must be a number of seconds, more than 0"))?;
    let stop = crate::cmd::signals::StopFlag::install()?;
    if let Some(path) = &args.ready_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| Error::io(format!("writing --ready-file {}", path.display()), e))?;
    }
    let json = args.output.output == OutputFormat::Json;
    let in_place = !json && io::stdout().is_terminal();
    let mut names = Names::new();
    let mut out = io::stdout().lock();
    let started = Instant::now();
    let mut prev: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut last = Instant::now();
    let mut shown = 0u64;
    loop {
        let deadline = last.checked_add(every);
        let mut ended = false;
        while deadline.is_none_or(|d| Instant::now() < d) {
            if stop.raised() || duration.is_some_and(|d| started.elapsed() >= d) {
                ended = true;
                break;
            }
            // The final records are not shown here: keep the ring empty.
            ring.drain(|_| true);
            std::thread::sleep(Duration::from_millis(20));
        }
        let interval = last.elapsed().as_secs_f64();
        last = Instant::now();
        let table = session.table()?;
        let mut now: HashMap<u64, (u64, u64)> = HashMap::with_capacity(table.len());
        let mut rows = Vec::new();
        for (sk, st) in &table {
            now.insert(*sk, (st.app_tx, st.app_rx));
            let (ptx, prx) = prev.get(sk).copied().unwrap_or((0, 0));
            let (tx, rx) = (st.app_tx.saturating_sub(ptx), st.app_rx.saturating_sub(prx));
            if tx + rx == 0 || st.tuple.family == 0 {
                continue;
            }
            let ends = Ends::from_tuple(&st.tuple);
            let comm = (st.owner_tgid != 0).then(|| c_str(&st.owner_comm));
            if !ends.matches(&filter)
                || args.pid.is_some_and(|p| st.owner_tgid != p)
                || args.comm.as_ref().is_some_and(|c| comm.as_ref() != Some(c))
            {
                continue;
            }
            let netns = st.netns;
            rows.push(Row {
                sk: format!("{sk:#x}"),
                netns,
                netns_cookie: (st.netns_cookie != 0).then_some(st.netns_cookie),
                netns_name: names
                    .netns_name(NsId::new(netns, st.netns_cookie))
                    .map(|n| n.to_string()),
                laddr: ends.laddr,
                lport: ends.lport,
                raddr: ends.raddr,
                rport: ends.rport,
                pid: (st.owner_tgid != 0).then_some(st.owner_tgid),
                comm,
                tx_bytes: tx,
                rx_bytes: rx,
                tx_total: st.app_tx,
                rx_total: st.app_rx,
            });
        }
        prev = now;
        let active = rows.len();
        rows.sort_by_key(|r| std::cmp::Reverse(r.tx_bytes + r.rx_bytes));
        rows.truncate(args.rows);
        let res = if json {
            let s = Snapshot {
                kind: "top",
                ts_ns: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
                interval_s: interval,
                connections: active,
                rows: &rows,
            };
            serde_json::to_writer(&mut out, &s)
                .map_err(io::Error::other)
                .and_then(|()| writeln!(out))
        } else {
            print_table(&mut out, &rows, active, interval, in_place)
        };
        match res.and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(Error::io("writing output", e)),
        }
        shown += 1;
        if ended || args.count.is_some_and(|c| shown >= c) {
            break;
        }
    }
    let c = session.counters().unwrap_or_default();
    let _ = writeln!(
        io::stderr().lock(),
        "netxray: {shown} tables shown; kernel: {} connections followed, {} records lost (ring buffer full)",
        c.tracked,
        c.lost
    );
    Ok(ExitCode::SUCCESS)
}

fn print_table<W: Write>(
    out: &mut W,
    rows: &[Row],
    active: usize,
    interval: f64,
    in_place: bool,
) -> io::Result<()> {
    if in_place {
        write!(out, "\x1b[H\x1b[2J")?;
    }
    writeln!(
        out,
        "{active} connections moved data in the last {interval:.1} s; top {}",
        rows.len()
    )?;
    writeln!(
        out,
        "{:>7} {:<15} {:<24} {:<24} {:>10} {:>10}",
        "PID", "COMM", "LOCAL", "REMOTE", "TX_KB", "RX_KB"
    )?;
    for r in rows {
        let ep = |a: IpAddr, p: u16| match a {
            IpAddr::V6(a) => format!("[{a}]:{p}"),
            IpAddr::V4(a) => format!("{a}:{p}"),
        };
        writeln!(
            out,
            "{:>7} {:<15} {:<24} {:<24} {:>10.1} {:>10.1}",
            r.pid.map_or_else(|| "-".into(), |p| p.to_string()),
            r.comm.as_deref().unwrap_or("-"),
            ep(r.laddr, r.lport),
            ep(r.raddr, r.rport),
            r.tx_bytes as f64 / 1024.0,
            r.rx_bytes as f64 / 1024.0
        )?;
    }
    writeln!(out)
}
