//! What `netxray dns` and `netxray http` share: the CLI's common flags ->
//! an L7Session -> records -> the model's pairing (a [`Pairing`]) -> a
//! printer (an `output::l7::L7Printer`), in the run driver, with the per-endpoint
//! summary at the end and the kernel's counters on stderr.
//!
//! Filters: --pid, --comm, --netns and the flow expression in the kernel,
//! before any data is copied.

use crate::cli::L7Args;
use crate::cmd::run::{self, clock_ns, drive, Flow, Job, Stop};
use crate::error::{Error, Result};
use crate::kernel::btf::KernelBtf;
use crate::kernel::l7::{DataPath, L7ConfigArgs, L7Session, Transports};
use crate::kernel::netns::{self, Names};
use crate::kernel::ring::EventRing;
use crate::model::filter::Filter;
use crate::model::l7::call::{Observed, Side};
use crate::model::l7::summary::Summary;
use crate::output::l7::{Context, L7Printer};
use netxray_abi::l7::{L7Counter, L7Event};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::Duration;

/// Bytes copied from each message's start.
const CAP_BYTES: u32 = 1024;

/// A protocol's pairing of messages into records.
pub trait Pairing {
    type Record;
    /// One message; the records it completes.
    fn observe(&mut self, o: &Observed) -> Vec<Self::Record>;
    /// Records due at `now` (timeouts, waits for the other end).
    fn expire(&mut self, now: u64, timeout_ns: u64) -> Vec<Self::Record>;
    /// The end of the run: everything still waiting.
    fn finish(&mut self, now: u64) -> Vec<Self::Record>;
    /// A record's summary key, latency and whether it is an error.
    fn tally(r: &Self::Record) -> (String, Option<u64>, bool);
    /// Records reported early for want of room (for the exit summary).
    fn overflow(&self) -> u64;
}

/// What a subcommand hands over.
pub struct Spec<'a> {
    /// `DNS`, `HTTP`: for messages.
    pub what: &'static str,
    /// `queries`, `exchanges`: for the exit summary.
    pub noun: &'static str,
    pub args: &'a L7Args,
    /// The filter when none is given (`port 53`), or None.
    pub default_filter: Option<&'a str>,
    pub transports: Transports,
}

pub fn run<P, W>(spec: Spec, pairing: P, printer: W) -> Result<ExitCode>
where
    P: Pairing,
    W: L7Printer<P::Record>,
{
    let args = spec.args;
    let words: Vec<String> = match (args.expression.is_empty(), spec.default_filter) {
        (true, Some(d)) => d.split_whitespace().map(String::from).collect(),
        _ => args.expression.clone(),
    };
    let filter =
        Filter::from_words(&words).map_err(|e| Error::usage(format!("bad filter: {e}")))?;
    filter
        .expr
        .check_flow_only(&filter.text)
        .map_err(|e| Error::usage(format!("bad filter: {e}")))?;
    let filter_bpf = filter
        .to_ebpf()
        .map_err(|e| Error::usage(format!("bad filter: {e}")))?;
    if args.pid == Some(0) {
        return Err(Error::usage("--pid 0: no such process"));
    }
    let (netns_inode, _pin) = match &args.netns {
        Some(s) => {
            let ns = netns::resolve(s)?;
            (ns.inode, netns::Pin::hold(&ns))
        }
        None => (0, netns::Pin::default()),
    };
    crate::kernel::caps::require_bpf_privileges()?;
    let cfg = L7ConfigArgs {
        netns: netns_inode,
        tgid: args.pid.unwrap_or(0),
        comm: args.comm.clone(),
        transports: spec.transports,
        cap_bytes: CAP_BYTES,
        ring_bytes: args.ring_size.saturating_mul(1024),
        filter_bpf,
    };
    let kbtf = KernelBtf::load().map_err(|_| Error::NoBtf)?;
    let mut session = L7Session::open(&cfg, &kbtf)?;
    drop(kbtf);
    for (call, why) in &session.skipped {
        tracing::warn!("not following {call}(2): {why}");
    }
    let shown_filter = if filter.text.is_empty() {
        "every socket"
    } else {
        &filter.text
    };
    tracing::info!(
        "following {} in {} system calls ({shown_filter}){}",
        spec.what,
        session.followed(),
        match session.path {
            DataPath::Sock => ", from the socket hooks",
            DataPath::Syscalls => "",
        }
    );
    let ring = session.take_ring()?;
    let offset = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC);
    let mut job = L7Job {
        session,
        ring,
        pairing,
        printer,
        summary: Summary::default(),
        names: Names::new(),
        wall: Box::new(move |mono: u64| (mono as i128 + offset).max(0) as u64),
        timeout_ns: (args.timeout * 1e9) as u64,
        shown: 0,
        bad: 0,
        count: args.run.count,
        last: L7Counter::default(),
    };
    let stop = drive(&mut job, &args.run)?;
    let _ = job.printer.flush();
    let counters = job.session.counters().unwrap_or_default();
    drop(job.session);
    summary(
        stop,
        spec.noun,
        job.shown,
        job.bad,
        job.pairing.overflow(),
        &counters,
    );
    Ok(ExitCode::SUCCESS)
}

/// Records as a job of the run driver.
struct L7Job<P: Pairing, W> {
    session: L7Session,
    ring: EventRing,
    pairing: P,
    printer: W,
    summary: Summary,
    names: Names,
    wall: Box<dyn Fn(u64) -> u64>,
    timeout_ns: u64,
    shown: u64,
    bad: u64,
    count: Option<u64>,
    last: L7Counter,
}

fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC).max(0) as u64
}

impl<P: Pairing, W: L7Printer<P::Record>> L7Job<P, W> {
    /// Print records, up to --count: Stop once it is reached.
    fn print(&mut self, records: Vec<P::Record>, limit: Option<u64>) -> Result<Flow> {
        let names = &mut self.names;
        let mut netns_name = |s: &Side| names.netns_name(s.netns);
        let mut cx = Context {
            wall_ns: &*self.wall,
            netns_name: &mut netns_name,
        };
        for r in &records {
            if limit.is_some_and(|l| self.shown >= l) {
                return Ok(Flow::Stop);
            }
            self.printer.record(r, &mut cx).map_err(run::output)?;
            self.shown += 1;
            let (key, latency, error) = P::tally(r);
            self.summary.add(&key, latency, error);
        }
        if !records.is_empty() {
            self.printer.flush().map_err(run::output)?;
        }
        Ok(if limit.is_some_and(|l| self.shown >= l) {
            Flow::Stop
        } else {
            Flow::Go
        })
    }

    fn drain_up_to(&mut self, limit: Option<u64>) -> Result<Flow> {
        let mut records = Vec::new();
        let pairing = &mut self.pairing;
        let bad = &mut self.bad;
        self.ring.drain(|rec| {
            match L7Event::decode(rec) {
                Ok(ev) => records.extend(pairing.observe(&Observed::from_event(&ev))),
                Err(e) => {
                    *bad += 1;
                    if *bad == 1 {
                        tracing::warn!("undecodable l7 record: {e}");
                    }
                }
            }
            true
        });
        self.print(records, limit)
    }
}

impl<P: Pairing, W: L7Printer<P::Record>> Job for L7Job<P, W> {
    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.ring.as_raw_fd())
    }

    fn drain(&mut self) -> Result<Flow> {
        self.drain_up_to(self.count)
    }

    fn period(&self) -> Duration {
        Duration::from_millis(250)
    }

    fn every(&mut self, _: Duration) -> Result<Flow> {
        let due = self.pairing.expire(now_ns(), self.timeout_ns);
        let flow = self.print(due, self.count)?;
        if let Ok(c) = self.session.counters() {
            warn_losses(&self.last, &c);
            self.last = c;
        }
        Ok(flow)
    }

    fn end(&mut self, stop: Stop, _: Duration) -> Result<()> {
        // Interrupted: everything that arrived is shown, --count or not.
        let limit = if stop == Stop::Signal {
            None
        } else {
            self.count
        };
        if self.drain_up_to(limit)? == Flow::Go {
            let left = self.pairing.finish(now_ns());
            self.print(left, limit)?;
        }
        self.printer
            .summary(&self.summary.rows())
            .map_err(run::output)
    }
}

/// What the kernel could not hand over since the last check.
fn warn_losses(last: &L7Counter, c: &L7Counter) {
    if c.lost > last.lost {
        tracing::warn!(
            "{} messages lost in the kernel (ring buffer full; {} in all): use a larger --ring-size",
            c.lost - last.lost,
            c.lost
        );
    }
}

fn summary(why: Stop, noun: &str, shown: u64, bad: u64, overflow: u64, c: &L7Counter) {
    let why = why.word();
    let mut err = io::stderr().lock();
    let _ = writeln!(
        err,
        "netxray: {why}: {shown} {noun} shown; kernel: {} calls with data on TCP/UDP sockets, {} kept by the filters, \
         {} messages sent, {} lost (ring buffer full), {} unreadable buffers{}{}",
        c.calls,
        c.matched,
        c.emitted,
        c.lost,
        c.read_errors,
        if overflow > 0 { format!(", {overflow} {noun} reported early (too many waiting)") } else { String::new() },
        if bad > 0 { format!(", {bad} undecodable") } else { String::new() },
    );
}
