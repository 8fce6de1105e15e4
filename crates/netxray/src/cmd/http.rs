//! `netxray http`: the shared L7 run (cmd/l7.rs) over TCP sockets, each
//! connection cut into HTTP/1.x messages and paired
//! (model/l7/http_exchange.rs), printed by output/http.rs. Without a
//! filter every TCP socket is looked at; what is not HTTP is ignored.

use crate::cli::{HttpArgs, OutputFormat};
use crate::cmd::l7::{self, Pairing, Spec};
use crate::error::Result;
use crate::kernel::l7::Transports;
use crate::model::l7::call::Observed;
use crate::model::l7::http_exchange::{HttpExchange, Tracker};
use crate::output::http::{latency, HttpPrinter};
use std::io;
use std::process::ExitCode;

/// Connections followed at once (past it the idlest is closed, its
/// requests reported, and counted).
const MAX_CONNS: usize = 65536;

impl Pairing for Tracker {
    type Record = HttpExchange;

    fn observe(&mut self, o: &Observed) -> Vec<HttpExchange> {
        Tracker::observe(self, o)
    }

    fn expire(&mut self, now: u64, timeout_ns: u64) -> Vec<HttpExchange> {
        Tracker::expire(self, now, timeout_ns)
    }

    fn finish(&mut self, now: u64) -> Vec<HttpExchange> {
        Tracker::finish(self, now)
    }

    fn tally(e: &HttpExchange) -> (String, Option<u64>, bool) {
        let path = e.path.split('?').next().unwrap_or("");
        let error = e.response.as_ref().is_none_or(|r| r.status >= 400);
        (format!("{} {path}", e.method), latency(e), error)
    }

    fn overflow(&self) -> u64 {
        self.evicted
    }
}

pub fn run(args: HttpArgs) -> Result<ExitCode> {
    let json = args.l7.output.output == OutputFormat::Json;
    let printer = HttpPrinter::new(
        io::BufWriter::with_capacity(1 << 16, io::stdout().lock()),
        json,
    );
    let spec = Spec {
        what: "HTTP",
        noun: "exchanges",
        args: &args.l7,
        default_filter: None,
        transports: Transports {
            tcp: true,
            udp: false,
        },
    };
    l7::run(spec, Tracker::new(MAX_CONNS), printer)
}
