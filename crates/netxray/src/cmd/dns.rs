//! `netxray dns`: the shared L7 run (cmd/l7.rs) over UDP and TCP sockets,
//! messages paired into one record per query (model/l7/dns_query.rs),
//! printed by output/dns.rs. Default filter: `port 53`.

use crate::cli::{DnsArgs, OutputFormat};
use crate::cmd::l7::{self, Pairing, Spec};
use crate::error::Result;
use crate::kernel::l7::Transports;
use crate::model::l7::call::Observed;
use crate::model::l7::dns_query::{Exchange, Outcome, Tracker};
use crate::output::dns::DnsPrinter;
use std::io;
use std::process::ExitCode;

/// Queries waiting for their answer at once (past it the oldest is
/// reported unanswered, and counted).
const MAX_PENDING: usize = 65536;

impl Pairing for Tracker {
    type Record = Exchange;

    fn observe(&mut self, o: &Observed) -> Vec<Exchange> {
        Tracker::observe(self, o)
    }

    fn expire(&mut self, now: u64, timeout_ns: u64) -> Vec<Exchange> {
        Tracker::expire(self, now, timeout_ns)
    }

    fn finish(&mut self, _now: u64) -> Vec<Exchange> {
        Tracker::finish(self)
    }

    fn tally(e: &Exchange) -> (String, Option<u64>, bool) {
        let error = !matches!(e.outcome, Outcome::Answered { rcode: 0, .. });
        let key = if e.name.is_empty() { "(none)" } else { &e.name };
        (key.to_string(), e.latency_ns, error)
    }

    fn overflow(&self) -> u64 {
        self.overflow
    }
}

pub fn run(args: DnsArgs) -> Result<ExitCode> {
    let json = args.l7.output.output == OutputFormat::Json;
    let printer = DnsPrinter::new(
        io::BufWriter::with_capacity(1 << 16, io::stdout().lock()),
        json,
    );
    let spec = Spec {
        what: "DNS",
        noun: "queries",
        args: &args.l7,
        default_filter: Some("port 53"),
        transports: Transports {
            tcp: true,
            udp: true,
        },
    };
    l7::run(spec, Tracker::new(MAX_PENDING), printer)
}
