//! Printing `netxray http`: aligned columns, one line per exchange, or one
//! JSON object per line (schema: docs/http.md).

use super::clock;
use super::l7::{ms, summary_table, Context, L7Printer, SummaryLabels};
use crate::model::l7::http_exchange::{HttpExchange, SideView};
use crate::model::l7::summary::Row;
use crate::model::value::{Name, SkbAddr};
use crate::output::json::{json_object, Field};
use serde::Serialize;
use std::io::{self, Write};
use std::net::SocketAddr;

/// Text: paths longer than this are cut (JSON has them whole, up to the
/// parser's 256 bytes).
const PATH_COLUMN: usize = 40;

#[derive(Serialize)]
struct JsonSide {
    pid: u32,
    tid: u32,
    comm: Name,
    netns: u32,
    netns_cookie: Option<u64>,
    netns_name: Option<Name>,
    sk: SkbAddr,
    latency_ns: Option<u64>,
}

impl Field for JsonSide {
    fn put(&self, out: &mut Vec<u8>) {
        json_object!(out, self; pid, tid, comm, netns, netns_cookie, netns_name, sk, latency_ns);
    }
}

#[derive(Serialize)]
struct JsonExchange<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    ts_ns: u64,
    client: SocketAddr,
    server: SocketAddr,
    method: &'a str,
    path: &'a str,
    path_truncated: bool,
    host: Option<&'a str>,
    version: &'static str,
    status: Option<u16>,
    reason: Option<&'a str>,
    request_bytes: u64,
    request_complete: bool,
    response_bytes: Option<u64>,
    response_complete: Option<bool>,
    outcome: &'static str,
    latency_ns: Option<u64>,
    client_process: Option<JsonSide>,
    server_process: Option<JsonSide>,
}

/// The JSON line, written by hand (output/json.rs): the generic serializer
/// was a fifth of netxray's CPU under an HTTP load. Same keys, order and
/// values as serde's rendering of the struct (a test checks).
fn write_exchange(out: &mut Vec<u8>, j: &JsonExchange<'_>) {
    json_object!(out, j; type = "http";
        ts_ns, client, server, method, path, path_truncated, host, version, status, reason,
        request_bytes, request_complete, response_bytes, response_complete, outcome,
        latency_ns, client_process, server_process,
    );
}

pub struct HttpPrinter<W: Write> {
    out: W,
    json: bool,
    header: bool,
    /// The JSON line being written (its allocation kept).
    line: Vec<u8>,
}

impl<W: Write> HttpPrinter<W> {
    pub fn new(out: W, json: bool) -> Self {
        Self {
            out,
            json,
            header: false,
            line: Vec::with_capacity(1024),
        }
    }

    fn json_line(&mut self, e: &HttpExchange, cx: &mut Context<'_>) -> io::Result<()> {
        let mut side = |s: &Option<SideView>| {
            s.as_ref().map(|s| JsonSide {
                pid: s.process.pid,
                tid: s.process.tid,
                comm: s.process.comm.clone(),
                netns: s.process.netns.inode,
                netns_cookie: (s.process.netns.cookie != 0).then_some(s.process.netns.cookie),
                netns_name: (cx.netns_name)(&s.process),
                sk: SkbAddr(s.sk),
                latency_ns: s.latency_ns,
            })
        };
        let (client_process, server_process) = (side(&e.client_side), side(&e.server_side));
        let r = e.response.as_ref();
        let j = JsonExchange {
            kind: "http",
            ts_ns: (cx.wall_ns)(e.ts_ns),
            client: e.client,
            server: e.server,
            method: &e.method,
            path: &e.path,
            path_truncated: e.path_truncated,
            host: e.host.as_deref(),
            version: if e.version == 0 {
                "HTTP/1.0"
            } else {
                "HTTP/1.1"
            },
            status: r.map(|r| r.status),
            reason: r.map(|r| r.reason.as_str()),
            request_bytes: e.request_bytes,
            request_complete: e.request_complete,
            response_bytes: r.map(|r| r.bytes),
            response_complete: r.map(|r| r.complete),
            outcome: if r.is_some() {
                "answered"
            } else {
                "no_response"
            },
            latency_ns: latency(e),
            client_process,
            server_process,
        };
        self.line.clear();
        write_exchange(&mut self.line, &j);
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    fn text_line(&mut self, e: &HttpExchange, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.header {
            self.header = true;
            writeln!(
                self.out,
                "{:<15} {:<22} {:<22} {:<7} {:<40} {:>6} {:>8} {:>9} {:>9}  {:<20} SERVER PROCESS",
                "TIME",
                "CLIENT",
                "SERVER",
                "METHOD",
                "PATH",
                "STATUS",
                "REQ_B",
                "RESP_B",
                "LAT(ms)",
                "CLIENT PROCESS"
            )?;
        }
        let proc_ = |s: &Option<SideView>| {
            s.as_ref().map_or_else(
                || "-".to_string(),
                |s| format!("{}/{}", s.process.pid, s.process.comm),
            )
        };
        let mut path: String = e.path.chars().take(PATH_COLUMN).collect();
        if e.path.chars().count() > PATH_COLUMN || e.path_truncated {
            path.pop();
            path.push('~');
        }
        let r = e.response.as_ref();
        writeln!(
            self.out,
            "{:<15} {:<22} {:<22} {:<7} {:<40} {:>6} {:>8} {:>9} {:>9}  {:<20} {}",
            clock((cx.wall_ns)(e.ts_ns)),
            e.client.to_string(),
            e.server.to_string(),
            e.method,
            path,
            r.map_or_else(|| "-".to_string(), |r| r.status.to_string()),
            e.request_bytes,
            r.map_or_else(|| "-".to_string(), |r| r.bytes.to_string()),
            ms(latency(e)),
            proc_(&e.client_side),
            proc_(&e.server_side)
        )
    }
}

/// The client's wait when the client is seen, else the server's time.
pub fn latency(e: &HttpExchange) -> Option<u64> {
    e.client_side
        .as_ref()
        .and_then(|s| s.latency_ns)
        .or_else(|| e.server_side.as_ref().and_then(|s| s.latency_ns))
}

impl<W: Write> L7Printer<HttpExchange> for HttpPrinter<W> {
    fn record(&mut self, e: &HttpExchange, cx: &mut Context<'_>) -> io::Result<()> {
        if self.json {
            self.json_line(e, cx)
        } else {
            self.text_line(e, cx)
        }
    }

    /// Per method and path (the query string left out): requests, errors
    /// (no response, or a status of 400 or more), latency percentiles.
    fn summary(&mut self, rows: &[Row]) -> io::Result<()> {
        let labels = SummaryLabels {
            kind: "http_summary",
            key: "endpoint",
            count: "requests",
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

    fn side(netns_name: Option<&str>) -> JsonSide {
        JsonSide {
            pid: 42,
            tid: 43,
            comm: "curl \"x\"".into(),
            netns: 4026531840,
            netns_cookie: netns_name.map(|_| 7),
            netns_name: netns_name.map(Name::from),
            sk: SkbAddr(0xffff_8880_1234_5678),
            latency_ns: Some(1500),
        }
    }

    /// The hand-written line is serde's rendering of the same struct.
    #[test]
    fn json_line_is_serdes() {
        let a = JsonExchange {
            kind: "http",
            ts_ns: 1_795_441_842_810_332_333,
            client: "198.18.0.1:48094".parse().expect("addr"),
            server: "[2001:db8::2]:8080".parse().expect("addr"),
            method: "GET",
            path: "/a\\b\n\u{1}é",
            path_truncated: true,
            host: Some("web.test"),
            version: "HTTP/1.1",
            status: Some(200),
            reason: Some("OK"),
            request_bytes: 79,
            request_complete: true,
            response_bytes: Some(204),
            response_complete: Some(false),
            outcome: "answered",
            latency_ns: Some(763_000),
            client_process: Some(side(Some("nxdoc1"))),
            server_process: Some(side(None)),
        };
        let b = JsonExchange {
            host: None,
            status: None,
            reason: None,
            response_bytes: None,
            response_complete: None,
            outcome: "no_response",
            latency_ns: None,
            client_process: None,
            server_process: None,
            ..a
        };
        for j in [&a, &b] {
            let mut out = Vec::new();
            write_exchange(&mut out, j);
            let want = serde_json::to_string(j).expect("serde");
            assert_eq!(String::from_utf8(out).expect("utf-8"), want);
        }
    }
}
