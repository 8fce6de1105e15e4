//! `netxray dns`: CLI flags -> L7Session (UDP and TCP sockets) -> records
//! -> DNS messages -> one record per query (model/l7/dns_query.rs) ->
//! printer, until Ctrl-C, SIGTERM, --count, --duration or a closed stdout.
//!
//! Filters: --pid, --comm, --netns and the flow expression in the kernel,
//! before any data is copied. Default expression: `port 53`.

use crate::cli::{DnsArgs, OutputFormat};
use crate::cmd::run::{self, clock_ns, drive, Flow, Job, Stop};
use crate::error::{Error, Result};
use crate::kernel::l7::{L7ConfigArgs, L7Session, Transports};
use crate::kernel::netns::{self, Names};
use crate::kernel::ring::EventRing;
use crate::model::conn::Ends;
use crate::model::filter::Filter;
use crate::model::l7::dns_query::{
    Direction, Exchange, Observed, Outcome, Side, Tracker, Transport,
};
use crate::model::l7::summary::Summary;
use crate::model::value::NsId;
use crate::output::dns::{Context, DnsPrinter};
use netxray_abi::l7::{Dir, L7Counter, L7Event, SOCK_STREAM};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::Duration;

/// Queries waiting for their answer at once (past it the oldest is
/// reported unanswered, and counted).
const MAX_PENDING: usize = 65536;
/// Bytes of each message copied: a DNS message over UDP is at most 512
/// bytes without EDNS, and answers past the copy are marked as cut.
const CAP_BYTES: u32 = 1024;

pub fn run(args: DnsArgs) -> Result<ExitCode> {
    let text = if args.expression.is_empty() {
        vec!["port".to_string(), "53".to_string()]
    } else {
        args.expression.clone()
    };
    let filter = Filter::from_words(&text).map_err(|e| Error::usage(format!("bad filter: {e}")))?;
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
        Some(spec) => {
            let ns = netns::resolve(spec)?;
            (ns.inode, netns::Pin::hold(&ns))
        }
        None => (0, netns::Pin::default()),
    };
    crate::kernel::caps::require_bpf_privileges()?;
    let cfg = L7ConfigArgs {
        netns: netns_inode,
        tgid: args.pid.unwrap_or(0),
        comm: args.comm.clone(),
        transports: Transports {
            tcp: true,
            udp: true,
        },
        cap_bytes: CAP_BYTES,
        ring_bytes: args.ring_size.saturating_mul(1024),
        max_calls: 16384,
        filter_bpf,
    };
    let mut session = L7Session::open(&cfg)?;
    for (call, why) in &session.skipped {
        tracing::warn!("not following {call}(2): {why}");
    }
    tracing::info!(
        "following DNS in {} system calls ({})",
        session.attached.len() / 2,
        filter.text
    );
    let ring = session.take_ring()?;
    let offset = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC);
    let stdout = io::stdout().lock();
    let mut job = DnsJob {
        session,
        ring,
        tracker: Tracker::new(MAX_PENDING),
        summary: Summary::default(),
        names: Names::new(),
        wall: Box::new(move |mono: u64| (mono as i128 + offset).max(0) as u64),
        printer: DnsPrinter::new(
            io::BufWriter::with_capacity(1 << 16, stdout),
            args.output.output == OutputFormat::Json,
        ),
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
    summary(stop, job.shown, job.bad, job.tracker.overflow, &counters);
    Ok(ExitCode::SUCCESS)
}

/// DNS records as a job of the run driver.
struct DnsJob {
    session: L7Session,
    ring: EventRing,
    tracker: Tracker,
    summary: Summary,
    names: Names,
    wall: Box<dyn Fn(u64) -> u64>,
    printer: DnsPrinter<io::BufWriter<io::StdoutLock<'static>>>,
    timeout_ns: u64,
    shown: u64,
    bad: u64,
    count: Option<u64>,
    last: L7Counter,
}

impl DnsJob {
    /// Print records, up to --count: Stop once it is reached.
    fn print(&mut self, records: Vec<Exchange>, limit: Option<u64>) -> Result<Flow> {
        let names = &mut self.names;
        let mut netns_name = |s: &Side| names.netns_name(s.netns).map(|n| n.to_string());
        let mut cx = Context {
            wall_ns: &*self.wall,
            netns_name: &mut netns_name,
        };
        for e in &records {
            if limit.is_some_and(|l| self.shown >= l) {
                return Ok(Flow::Stop);
            }
            self.printer.exchange(e, &mut cx).map_err(run::output)?;
            self.shown += 1;
            let error = !matches!(e.outcome, Outcome::Answered { rcode: 0, .. });
            let key = if e.name.is_empty() { "(none)" } else { &e.name };
            self.summary.add(key, e.latency_ns, error);
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
        let tracker = &mut self.tracker;
        let bad = &mut self.bad;
        self.ring.drain(|rec| {
            match L7Event::decode(rec) {
                Ok(ev) => records.extend(tracker.observe(&observed(&ev))),
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

/// The model's view of a record.
fn observed(ev: &L7Event) -> Observed<'_> {
    let r = &ev.raw;
    let ends = Ends::from_tuple(&r.tuple);
    Observed {
        ts_ns: r.ts_ns,
        enter_ns: r.enter_ns,
        side: Side {
            pid: r.tgid,
            tid: r.tid,
            comm: netxray_abi::c_str(&r.comm),
            netns: NsId::new(r.netns, r.netns_cookie),
        },
        dir: match ev.dir {
            Dir::Send => Direction::Sent,
            Dir::Recv => Direction::Received,
        },
        transport: if r.sock_type == SOCK_STREAM {
            Transport::Tcp
        } else {
            Transport::Udp
        },
        local: SocketAddr::new(ends.laddr, ends.lport),
        remote: SocketAddr::new(ends.raddr, ends.rport),
        sk: r.sk,
        bytes: &ev.data,
        len: r.len as usize,
    }
}

impl Job for DnsJob {
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
        let now = clock_ns(libc::CLOCK_MONOTONIC).max(0) as u64;
        let expired = self.tracker.expire(now, self.timeout_ns);
        let flow = self.print(expired, self.count)?;
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
            let left = self.tracker.finish();
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
    if c.pending_full > last.pending_full {
        tracing::warn!(
            "{} system calls not followed: too many calls in flight at once ({} in all)",
            c.pending_full - last.pending_full,
            c.pending_full
        );
    }
}

fn summary(why: Stop, shown: u64, bad: u64, overflow: u64, c: &L7Counter) {
    let why = why.word();
    let mut err = io::stderr().lock();
    let _ = writeln!(
        err,
        "netxray: {why}: {shown} queries shown; kernel: {} calls with data on TCP/UDP sockets, {} kept by the filters, \
         {} messages sent, {} lost (ring buffer full), {} calls not followed (in flight when netxray started; any file), \
         {} not followed (too many in flight), {} unreadable buffers{}{}",
        c.calls,
        c.matched,
        c.emitted,
        c.lost,
        c.unpaired,
        c.pending_full,
        c.read_errors,
        if overflow > 0 { format!(", {overflow} queries reported unanswered early (too many waiting)") } else { String::new() },
        if bad > 0 { format!(", {bad} undecodable") } else { String::new() },
    );
}
