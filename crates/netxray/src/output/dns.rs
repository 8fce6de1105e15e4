//! Printing `netxray dns`: aligned columns, one line per query, or one JSON
//! object per line (schema: docs/dns.md).

use super::clock;
use super::l7::{ms, summary_table, Context, L7Printer, SummaryLabels};
use crate::model::l7::call::Side;
use crate::model::l7::dns::{rcode_name, type_name};
use crate::model::l7::dns_query::{Exchange, Outcome};
use crate::model::l7::summary::Row;
use crate::model::value::Name;
use crate::output::json::{json_object, push_bytes, Field};
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
    netns_name: Option<Name>,
}

impl Field for JsonSide {
    fn put(&self, out: &mut Vec<u8>) {
        json_object!(out, self; pid, tid, comm, netns, netns_cookie, netns_name);
    }
}

#[derive(Serialize)]
struct JsonAnswer<'a> {
    #[serde(rename = "type")]
    rtype: std::borrow::Cow<'static, str>,
    data: &'a str,
}

impl Field for JsonAnswer<'_> {
    fn put(&self, out: &mut Vec<u8>) {
        push_bytes(out, b"{\"type\":");
        self.rtype.put(out);
        push_bytes(out, b",\"data\":");
        self.data.put(out);
        out.push(b'}');
    }
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

/// The JSON line, written by hand (output/json.rs), as serde renders the
/// struct (a test checks).
fn write_query(out: &mut Vec<u8>, j: &JsonQuery<'_>) {
    json_object!(out, j; type = "dns";
        ts_ns, transport, client, server, id, name, qtype, status, rcode, answers, truncated,
        cut, error, latency_ns, latency_side, client_process, server_process,
    );
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
    /// The JSON line being written (its allocation kept).
    line: Vec<u8>,
}

impl<W: Write> DnsPrinter<W> {
    pub fn new(out: W, json: bool) -> Self {
        Self {
            out,
            json,
            header: false,
            line: Vec::with_capacity(1024),
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
        self.line.clear();
        write_query(&mut self.line, &j);
        self.line.push(b'\n');
        self.out.write_all(&self.line)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written line is serde's rendering of the same struct.
    #[test]
    fn json_line_is_serdes() {
        let side = JsonSide {
            pid: 1,
            tid: 2,
            comm: "dig".into(),
            netns: 3,
            netns_cookie: Some(4),
            netns_name: Some("a\"b".into()),
        };
        let a = JsonQuery {
            kind: "dns",
            ts_ns: 5,
            transport: "udp",
            client: "198.18.0.1:53000".parse().expect("addr"),
            server: "[2001:db8::2]:53".parse().expect("addr"),
            id: 7,
            name: "example.test",
            qtype: "AAAA".into(),
            status: "answered",
            rcode: Some("NOERROR".into()),
            answers: vec![
                JsonAnswer {
                    rtype: "A".into(),
                    data: "198.18.0.9",
                },
                JsonAnswer {
                    rtype: "CNAME".into(),
                    data: "x\ty.test",
                },
            ],
            truncated: false,
            cut: true,
            error: None,
            latency_ns: Some(8),
            latency_side: Some("client"),
            client_process: Some(side),
            server_process: None,
        };
        let check = |j: &JsonQuery<'_>| {
            let mut out = Vec::new();
            write_query(&mut out, j);
            assert_eq!(
                String::from_utf8(out).expect("utf-8"),
                serde_json::to_string(j).expect("serde")
            );
        };
        check(&a);
        let b = JsonQuery {
            rcode: None,
            answers: Vec::new(),
            error: Some("short"),
            latency_ns: None,
            latency_side: None,
            client_process: None,
            ..a
        };
        check(&b);
    }
}
