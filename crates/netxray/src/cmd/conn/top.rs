//! `netxray conn --top`: the connections that moved the most bytes in each
//! interval, like tcptop. The kernel adds what every send and receive call
//! on a TCP socket returned (`sock:sock_send_length`, `sock:sock_recv_length`)
//! to the connection's entry; each interval this reads the table and shows
//! the differences. Connections that ended during an interval leave the
//! table with their entry and are not shown for it.

use crate::cli::{ConnArgs, OutputFormat};
use crate::cmd::run::{self, drive, Flow, Job, Stop};
use crate::error::Result;
use crate::kernel::conn::ConnSession;
use crate::kernel::netns::Names;
use crate::kernel::ring::EventRing;
use crate::model::conn::Ends;
use crate::model::filter::{Filter, Prepared};
use crate::model::value::NsId;
use crate::output::conn_top::{Row, Snapshot};
use crate::output::report;
use netxray_abi::c_str;
use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

pub fn run(
    args: &ConnArgs,
    session: ConnSession,
    ring: EventRing,
    filter: Filter,
) -> Result<ExitCode> {
    // --interval is checked when parsed (cli/values.rs): more than 0.
    let mut job = TopJob {
        filter: filter.prepare(),
        pid: args.pid,
        comm: args.comm.clone(),
        rows: args.rows,
        interval: Duration::from_secs_f64(args.interval),
        json: args.output.output == OutputFormat::Json,
        in_place: args.output.output != OutputFormat::Json && io::stdout().is_terminal(),
        names: Names::new(),
        out: io::stdout().lock(),
        prev: HashMap::new(),
        shown: 0,
        count: args.run.count,
        session,
        ring,
    };
    drive(&mut job, &args.run)?;
    let c = job.session.counters().unwrap_or_default();
    let _ = writeln!(
        io::stderr().lock(),
        "netxray: {} tables shown; kernel: {} connections followed, {} records lost (ring buffer full)",
        job.shown,
        c.tracked,
        c.lost
    );
    Ok(ExitCode::SUCCESS)
}

/// The busiest connections as a job of the run driver: a table per interval.
struct TopJob {
    filter: Prepared,
    pid: Option<u32>,
    comm: Option<String>,
    rows: usize,
    interval: Duration,
    json: bool,
    /// A terminal: each table replaces the last.
    in_place: bool,
    names: Names,
    out: io::StdoutLock<'static>,
    /// Each connection's byte counts at the last table.
    prev: HashMap<u64, (u64, u64)>,
    /// Tables shown, and --count.
    shown: u64,
    count: Option<u64>,
    session: ConnSession,
    ring: EventRing,
}

impl TopJob {
    /// The rows of the last `interval`: connections that moved bytes, busiest first.
    fn rows(&mut self) -> Result<(Vec<Row>, usize)> {
        let table = self.session.table()?;
        let mut now: HashMap<u64, (u64, u64)> = HashMap::with_capacity(table.len());
        let mut rows = Vec::new();
        for (sk, st) in &table {
            now.insert(*sk, (st.app_tx, st.app_rx));
            let (ptx, prx) = self.prev.get(sk).copied().unwrap_or((0, 0));
            let (tx, rx) = (st.app_tx.saturating_sub(ptx), st.app_rx.saturating_sub(prx));
            if tx + rx == 0 || st.tuple.family == 0 {
                continue;
            }
            let ends = Ends::from_tuple(&st.tuple);
            let comm = (st.owner_tgid != 0).then(|| c_str(&st.owner_comm));
            if !ends.matches(&self.filter)
                || self.pid.is_some_and(|p| st.owner_tgid != p)
                || self.comm.as_ref().is_some_and(|c| comm.as_ref() != Some(c))
            {
                continue;
            }
            let netns = st.netns;
            rows.push(Row {
                sk: format!("{sk:#x}"),
                netns,
                netns_cookie: (st.netns_cookie != 0).then_some(st.netns_cookie),
                netns_name: self
                    .names
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
        self.prev = now;
        let active = rows.len();
        rows.sort_by_key(|r| std::cmp::Reverse(r.tx_bytes + r.rx_bytes));
        rows.truncate(self.rows);
        Ok((rows, active))
    }

    /// One table (or JSON snapshot) for the last `interval` seconds.
    fn report(&mut self, interval: f64) -> Result<()> {
        let (rows, active) = self.rows()?;
        let s = Snapshot {
            kind: "top",
            ts_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            interval_s: interval,
            connections: active,
            rows: &rows,
            in_place: self.in_place,
        };
        report::print(&mut self.out, &s, self.json).map_err(run::output)?;
        self.shown += 1;
        Ok(())
    }
}

impl Job for TopJob {
    fn drain(&mut self) -> Result<Flow> {
        // The connection records are not shown here: keep the ring empty.
        self.ring.drain(|_| true);
        Ok(Flow::Go)
    }

    fn period(&self) -> Duration {
        self.interval
    }

    fn every(&mut self, elapsed: Duration) -> Result<Flow> {
        self.report(elapsed.as_secs_f64())?;
        Ok(Flow::counted(self.shown, self.count))
    }

    fn end(&mut self, _: Stop, elapsed: Duration) -> Result<()> {
        // The interval cut short, unless the last table reached --count.
        if self.count.is_none_or(|c| self.shown < c) {
            self.report(elapsed.as_secs_f64())?;
        }
        Ok(())
    }
}
