//! Printing `netxray dns`: aligned columns, one line per query, or one JSON
//! object per line (schema: docs/dns.md).

use super::clock;
use super::l7::{ms, summary_table, Context, L7Printer, SummaryLabels};
use crate::model::l7::call::Side;
use crate::model::l7::dns::{rcode_name, type_name};
use crate::model::l7::dns_query::{Exchange, Outcome};
use crate::model::l7::summary::Row;
use crate::model::value::Name;
use serde::Serialize;
use std::io::{self, Write};
use std::net::SocketAddr;

#[derive(Serialize)]
struct JsonSide {
    pid: u32,
    tid: u32,
    comm: Name,
    netns: u32,
    netns_cookie: Option<u64>,
    netns_name: Option<String>,
}

#[derive(Serialize)]
struct JsonAnswer<'a> {
    #[serde(rename = "type")]
    rtype: std::borrow::Cow<'static, str>,
    data: &'a str,
}

#[derive(Serialize)]
struct JsonQuery<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    ts_ns: u64,
    transport: &'static str,
    client: SocketAddr,
    server: SocketAddr,
    id: u16,
    name: &'a str,
    qtype: std::borrow::Cow<'static, str>,
    status: &'static str,
    rcode: Option<std::borrow::Cow<'static, str>>,
    answers: Vec<JsonAnswer<'a>>,
    truncated: bool,
    cut: bool,
    error: Option<&'a str>,
    latency_ns: Option<u64>,
    latency_side: Option<&'static str>,
    client_process: Option<JsonSide>,
    server_process: Option<JsonSide>,
}

/// `answered`, `unanswered` or `malformed`.
pub fn status(o: &Outcome) -> &'static str {
    match o {
        Outcome::Answered { .. } => "answered",
        Outcome::Unanswered => "unanswered",
        Outcome::Malformed(_) => "malformed",
    }
}

pub struct DnsPrinter<W: Write> {
    out: W,
    json: bool,
    header: bool,
}

impl<W: Write> DnsPrinter<W> {
    pub fn new(out: W, json: bool) -> Self {
        Self {
            out,
            json,
            header: false,
        }
    }

    pub fn exchange(&mut self, e: &Exchange, cx: &mut Context<'_>) -> io::Result<()> {
        if self.json {
            self.json_line(e, cx)
        } else {
            self.text_line(e, cx)
        }
    }

    fn json_line(&mut self, e: &Exchange, cx: &mut Context<'_>) -> io::Result<()> {
        let mut side = |s: &Option<Side>| {
            s.as_ref().map(|s| JsonSide {
                pid: s.pid,
                tid: s.tid,
                comm: s.comm.clone(),
                netns: s.netns.inode,
                netns_cookie: (s.netns.cookie != 0).then_some(s.netns.cookie),
                netns_name: (cx.netns_name)(s),
            })
        };
        let (rcode, answers, truncated, cut, error) = match &e.outcome {
            Outcome::Answered {
                rcode,
                answers,
                truncated,
                cut,
            } => (
                Some(rcode_name(*rcode)),
                answers
                    .iter()
                    .map(|a| JsonAnswer {
                        rtype: type_name(a.rtype),
                        data: &a.data,
                    })
                    .collect(),
                *truncated,
                *cut,
                None,
            ),
            Outcome::Unanswered => (None, Vec::new(), false, false, None),
            Outcome::Malformed(why) => (None, Vec::new(), false, false, Some(why.as_str())),
        };
        let j = JsonQuery {
            kind: "dns",
            ts_ns: (cx.wall_ns)(e.ts_ns),
            transport: e.transport.name(),
            client: e.client,
            server: e.server,
            id: e.id,
            name: &e.name,
            qtype: type_name(e.qtype),
            status: status(&e.outcome),
            rcode,
            answers,
            truncated,
            cut,
            error,
            latency_ns: e.latency_ns,
            latency_side: e.latency_side,
            client_process: side(&e.client_side),
            server_process: side(&e.server_side),
        };
        serde_json::to_writer(&mut self.out, &j).map_err(io::Error::other)?;
        self.out.write_all(b"\n")
    }

    fn text_line(&mut self, e: &Exchange, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.header {
            self.header = true;
            writeln!(
                self.out,
                "{:<15} {:<5} {:<22} {:<22} {:>5} {:<6} {:<32} {:<9} {:>9}  {:<20} {:<20} ANSWERS",
                "TIME",
                "PROTO",
                "CLIENT",
                "SERVER",
                "ID",
                "TYPE",
                "NAME",
                "RCODE",
                "LAT(ms)",
                "CLIENT PROCESS",
                "SERVER PROCESS"
            )?;
        }
        let proc_ = |s: &Option<Side>| {
            s.as_ref()
                .map_or_else(|| "-".to_string(), |s| format!("{}/{}", s.pid, s.comm))
        };
        let (rcode, answers) = match &e.outcome {
            Outcome::Answered {
                rcode,
                answers,
                truncated,
                cut,
            } => {
                let mut a: Vec<String> = answers
                    .iter()
                    .map(|a| format!("{} {}", type_name(a.rtype), a.data))
                    .collect();
                if *truncated {
                    a.push("(truncated: TC)".into());
                }
                if *cut {
                    a.push("(more not copied)".into());
                }
                (rcode_name(*rcode).into_owned(), a.join(", "))
            }
            Outcome::Unanswered => ("-".into(), "(no answer)".into()),
            Outcome::Malformed(why) => ("MALFORMED".into(), why.clone()),
        };
        let lat = ms(e.latency_ns);
        writeln!(
            self.out,
            "{:<15} {:<5} {:<22} {:<22} {:>5} {:<6} {:<32} {:<9} {:>9}  {:<20} {:<20} {}",
            clock((cx.wall_ns)(e.ts_ns)),
            e.transport.name(),
            e.client.to_string(),
            e.server.to_string(),
            e.id,
            type_name(e.qtype),
            if e.name.is_empty() { "-" } else { &e.name },
            rcode,
            lat,
            proc_(&e.client_side),
            proc_(&e.server_side),
            answers
        )
    }
}

impl<W: Write> L7Printer<Exchange> for DnsPrinter<W> {
    fn record(&mut self, e: &Exchange, cx: &mut Context<'_>) -> io::Result<()> {
        self.exchange(e, cx)
    }

    /// The end of the run: per name, queries, errors (an rcode other than
    /// NOERROR, no answer, malformed) and latency percentiles.
    fn summary(&mut self, rows: &[Row]) -> io::Result<()> {
        let labels = SummaryLabels {
            kind: "dns_summary",
            key: "name",
            count: "queries",
        };
        summary_table(&mut self.out, self.json, &labels, rows)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
