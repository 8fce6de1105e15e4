//! Printing `netxray conn`: aligned columns (one line per connection, like
//! tcplife; with --events/--states one per event, like tcpstates) or one
//! JSON object per line (schema: docs/conn.md).

use super::clock;
use crate::model::conn::{state_name, Conn, Direction, Task};
use netxray_abi::conn::ConnKind;
use serde::Serialize;
use std::io::{self, Write};
use std::net::IpAddr;

/// What the printer needs besides the record.
pub struct Context<'a> {
    /// Wall-clock nanoseconds of the record's monotonic timestamp.
    pub wall_ns: &'a dyn Fn(u64) -> u64,
    pub netns_name: Option<&'a str>,
}

/// What every conn record starts with: kind, time, socket, namespace, ends.
#[derive(Serialize)]
struct JsonHead<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    ts_ns: u64,
    sk: String,
    netns: u32,
    netns_cookie: Option<u64>,
    netns_name: Option<&'a str>,
    family: &'static str,
    laddr: IpAddr,
    lport: u16,
    raddr: IpAddr,
    rport: u16,
    direction: Direction,
}

impl<'a> JsonHead<'a> {
    fn new(kind: &'static str, c: &Conn, cx: &Context<'a>) -> Self {
        let r = &c.raw;
        JsonHead {
            kind,
            ts_ns: (cx.wall_ns)(r.ts_ns),
            sk: format!("{:#x}", r.sk),
            netns: r.netns,
            netns_cookie: (r.netns_cookie != 0).then_some(r.netns_cookie),
            netns_name: cx.netns_name,
            family: family(c),
            laddr: c.ends.laddr,
            lport: c.ends.lport,
            raddr: c.ends.raddr,
            rport: c.ends.rport,
            direction: c.direction,
        }
    }
}

#[derive(Serialize)]
struct JsonConn<'a> {
    #[serde(flatten)]
    head: JsonHead<'a>,
    pid: Option<u32>,
    comm: Option<&'a str>,
    owner_source: Option<&'static str>,
    open_before: bool,
    start_ns: Option<u64>,
    duration_ns: Option<u64>,
    handshake_ns: Option<u64>,
    established: bool,
    tx_bytes: Option<u64>,
    rx_bytes: Option<u64>,
    bytes_acked: Option<u64>,
    bytes_received: Option<u64>,
    segs_in: Option<u32>,
    segs_out: Option<u32>,
    data_segs_in: Option<u32>,
    data_segs_out: Option<u32>,
    total_retrans: Option<u32>,
    retransmits_seen: u32,
    srtt_us: Option<u32>,
    outcome: &'static str,
    error: Option<&'static str>,
    reset_sent: bool,
    reset_received: bool,
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    #[serde(flatten)]
    head: JsonHead<'a>,
    old_state: &'static str,
    new_state: &'static str,
    /// Time in old_state (state transitions).
    in_old_state_ns: Option<u64>,
    /// The owner as known at this event.
    pid: Option<u32>,
    comm: Option<&'a str>,
    owner_source: Option<&'static str>,
    /// The task that was running (null in interrupt context).
    task_pid: Option<u32>,
    task_comm: Option<&'a str>,
    reset_reason: Option<u32>,
}

fn family(c: &Conn) -> &'static str {
    if c.ends.laddr.is_ipv6() {
        "ipv6"
    } else {
        "ipv4"
    }
}

fn event_name(k: ConnKind) -> &'static str {
    match k {
        ConnKind::State => "state",
        ConnKind::Retrans => "retransmit",
        ConnKind::RstSent => "reset_sent",
        ConnKind::RstRecv => "reset_received",
        ConnKind::Accept => "accept",
        ConnKind::Close => "conn",
        ConnKind::Listen => "listen",
        ConnKind::ListenStop => "listen_stop",
    }
}

pub struct ConnPrinter<W: Write> {
    out: W,
    json: bool,
    /// --events: text close records are event lines too.
    inline: bool,
    header: bool,
}

/// `addr:port`, `[v6]:port`; port 0 (not bound yet: connect() picks it
/// after its first transition) as `*`.
fn endpoint(a: IpAddr, p: u16) -> String {
    let port = if p == 0 {
        "*".to_string()
    } else {
        p.to_string()
    };
    match a {
        IpAddr::V6(a) => format!("[{a}]:{port}"),
        IpAddr::V4(a) => format!("{a}:{port}"),
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn ms(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".to_string(), |ns| format!("{:.3}", ns as f64 / 1e6))
}

fn owner(t: Option<&Task>) -> (String, String) {
    t.map_or_else(
        || ("-".into(), "-".into()),
        |t| (t.pid.to_string(), t.comm.clone()),
    )
}

impl<W: Write> ConnPrinter<W> {
    pub fn new(out: W, json: bool, inline: bool) -> Self {
        Self {
            out,
            json,
            inline,
            header: false,
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The final record of a connection.
    pub fn conn(&mut self, c: &Conn, cx: &Context<'_>) -> io::Result<()> {
        let r = &c.raw;
        let stats = r.flags & netxray_abi::conn::conn_flags::STATS != 0;
        let outcome = c.outcome();
        if self.json {
            let j = JsonConn {
                head: JsonHead::new("conn", c, cx),
                pid: c.owner.as_ref().map(|t| t.pid),
                comm: c.owner.as_ref().map(|t| t.comm.as_str()),
                owner_source: c.owner_source,
                open_before: c.before(),
                start_ns: (r.start_ns != 0).then(|| (cx.wall_ns)(r.start_ns)),
                duration_ns: c.duration_ns(),
                handshake_ns: c.handshake_ns(),
                established: c.established(),
                tx_bytes: c.tx_bytes(),
                rx_bytes: c.rx_bytes(),
                bytes_acked: stats.then_some(r.bytes_acked),
                bytes_received: stats.then_some(r.bytes_received),
                segs_in: stats.then_some(r.segs_in),
                segs_out: stats.then_some(r.segs_out),
                data_segs_in: stats.then_some(r.data_segs_in),
                data_segs_out: stats.then_some(r.data_segs_out),
                total_retrans: stats.then_some(r.total_retrans),
                retransmits_seen: r.retrans_seen,
                srtt_us: stats.then_some(r.srtt_us),
                outcome: outcome.as_str(),
                error: c.error_name(),
                reset_sent: r.flags & netxray_abi::conn::conn_flags::RST_SENT != 0,
                reset_received: r.flags & netxray_abi::conn::conn_flags::RST_RECV != 0,
            };
            serde_json::to_writer(&mut self.out, &j).map_err(io::Error::other)?;
            return writeln!(self.out);
        }
        if self.inline {
            return self.event(c, cx);
        }
        if !self.header {
            self.header = true;
            writeln!(
                self.out,
                "{:<15} {:>7} {:<15} {:<12} {:<3} {:<24} {:<24} {:>9} {:>9} {:>4} {:>8} {:>9} {:>10} END",
                "TIME", "PID", "COMM", "NETNS", "DIR", "LOCAL", "REMOTE", "TX_B", "RX_B", "RETR",
                "RTT_MS", "SYN_MS", "MS"
            )?;
        }
        let (pid, comm) = owner(c.owner.as_ref());
        let tx = match c.tx_bytes() {
            Some(v) => v.to_string(),
            // Open before netxray: within a byte (the SYN's share is unknown).
            None if stats => format!("~{}", r.bytes_acked),
            None => "-".into(),
        };
        let dir = match c.direction {
            Direction::Active => "out",
            Direction::Passive => "in",
            Direction::Unknown => "?",
        };
        let mut end = outcome.as_str().to_string();
        if c.before() {
            end.push_str(" (open before start)");
        }
        writeln!(
            self.out,
            "{:<15} {:>7} {:<15} {:<12} {:<3} {:<24} {:<24} {:>9} {:>9} {:>4} {:>8} {:>9} {:>10} {}",
            clock((cx.wall_ns)(r.ts_ns)),
            pid,
            comm,
            cx.netns_name
                .map_or_else(|| r.netns.to_string(), str::to_string),
            dir,
            endpoint(c.ends.laddr, c.ends.lport),
            endpoint(c.ends.raddr, c.ends.rport),
            tx,
            opt(c.rx_bytes()),
            if stats { r.total_retrans.to_string() } else { "-".into() },
            if stats && c.established() {
                format!("{:.3}", f64::from(r.srtt_us) / 1000.0)
            } else {
                "-".into()
            },
            ms(c.handshake_ns()),
            ms(c.duration_ns()),
            end
        )
    }

    /// An event: a transition, a retransmission, a reset, an accept, a
    /// listener starting or stopping.
    pub fn event(&mut self, c: &Conn, cx: &Context<'_>) -> io::Result<()> {
        let r = &c.raw;
        let in_old = (c.kind == ConnKind::State && r.prev_ns != 0)
            .then(|| r.ts_ns.saturating_sub(r.prev_ns));
        if self.json {
            let j = JsonEvent {
                head: JsonHead::new(event_name(c.kind), c, cx),
                old_state: state_name(r.oldstate),
                new_state: state_name(r.newstate),
                in_old_state_ns: in_old,
                pid: c.owner.as_ref().map(|t| t.pid),
                comm: c.owner.as_ref().map(|t| t.comm.as_str()),
                owner_source: c.owner_source,
                task_pid: c.task.as_ref().map(|t| t.pid),
                task_comm: c.task.as_ref().map(|t| t.comm.as_str()),
                reset_reason: (c.kind == ConnKind::RstSent).then_some(r.rst_reason),
            };
            serde_json::to_writer(&mut self.out, &j).map_err(io::Error::other)?;
            return writeln!(self.out);
        }
        let what = match c.kind {
            ConnKind::State => format!(
                "{} -> {}{}",
                state_name(r.oldstate),
                state_name(r.newstate),
                in_old.map_or_else(String::new, |ns| format!(
                    " (after {:.3} ms)",
                    ns as f64 / 1e6
                ))
            ),
            ConnKind::Retrans => format!("retransmit in {}", state_name(r.oldstate)),
            ConnKind::RstSent => format!("reset sent in {}", state_name(r.oldstate)),
            ConnKind::RstRecv => format!("reset received in {}", state_name(r.oldstate)),
            ConnKind::Accept => "accepted".into(),
            ConnKind::Listen => "listening".into(),
            ConnKind::ListenStop => "stopped listening".into(),
            ConnKind::Close => format!(
                "{}: tx {} rx {} bytes, {} retransmitted, rtt {:.3} ms, {} ms{}",
                c.outcome().as_str(),
                c.tx_bytes()
                    .map_or_else(|| format!("~{}", r.bytes_acked), |v| v.to_string()),
                opt(c.rx_bytes()),
                r.total_retrans,
                f64::from(r.srtt_us) / 1000.0,
                ms(c.duration_ns()),
                if c.before() {
                    " (open before start)"
                } else {
                    ""
                }
            ),
        };
        if !self.header {
            self.header = true;
            writeln!(
                self.out,
                "{:<15} {:<18} {:>7} {:<15} {:<12} {:<24} {:<24} EVENT [TASK RUNNING]",
                "TIME", "SOCKET", "PID", "COMM", "NETNS", "LOCAL", "REMOTE"
            )?;
        }
        let (pid, comm) = owner(c.owner.as_ref());
        let (tpid, tcomm) = owner(c.task.as_ref());
        writeln!(
            self.out,
            "{:<15} {:<18} {:>7} {:<15} {:<12} {:<24} {:<24} {} [{} {}]",
            clock((cx.wall_ns)(r.ts_ns)),
            format!("{:#x}", r.sk),
            pid,
            comm,
            cx.netns_name
                .map_or_else(|| r.netns.to_string(), str::to_string),
            endpoint(c.ends.laddr, c.ends.lport),
            endpoint(c.ends.raddr, c.ends.rport),
            what,
            tpid,
            tcomm
        )
    }
}
