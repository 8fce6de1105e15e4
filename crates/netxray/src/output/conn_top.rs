//! `netxray conn --top`: the busiest connections of each interval, a table
//! (redrawn in place on a terminal) or a JSON snapshot.

use super::report::Report;
use serde::Serialize;
use std::io::{self, Write};
use std::net::IpAddr;

#[derive(Debug, Serialize)]
pub struct Row {
    pub sk: String,
    pub netns: u32,
    pub netns_cookie: Option<u64>,
    pub netns_name: Option<String>,
    pub laddr: IpAddr,
    pub lport: u16,
    pub raddr: IpAddr,
    pub rport: u16,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Bytes the application sent / received in the interval.
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// Since netxray started following the connection.
    pub tx_total: u64,
    pub rx_total: u64,
}

#[derive(Debug, Serialize)]
pub struct Snapshot<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub ts_ns: u64,
    pub interval_s: f64,
    pub connections: usize,
    pub rows: &'a [Row],
    /// A terminal: each table replaces the last.
    #[serde(skip)]
    pub in_place: bool,
}

impl Report for Snapshot<'_> {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        print_table(
            out,
            self.rows,
            self.connections,
            self.interval_s,
            self.in_place,
        )
    }
}

fn print_table(
    out: &mut dyn Write,
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
