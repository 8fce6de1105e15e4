//! `netxray conn`: CLI flags -> ConnSession -> records -> Conn -> printer,
//! until Ctrl-C, SIGTERM, --count, --duration or a closed stdout.
//!
//! Filters: the namespace in the kernel; the flow expression, --pid,
//! --comm and --failed here, on each record (a record per connection, so
//! the cost is per connection, not per packet).

mod top;

use crate::cli::{ConnArgs, OutputFormat};
use crate::cmd::run::{self, clock_ns, drive, Flow, Job, Stop};
use crate::error::{Error, Result};
use crate::kernel::btf::KernelBtf;
use crate::kernel::conn::{ConnConfigArgs, ConnSession};
use crate::kernel::netns::{self, Names};
use crate::kernel::ring::EventRing;
use crate::model::conn::Conn;
use crate::model::filter::{Filter, Prepared};
use crate::model::value::NsId;
use crate::output::conn::{ConnPrinter, Context};
use netxray_abi::conn::{ConnCounter, ConnEvent, ConnKind};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::Duration;

/// What is shown, after the kernel's netns test.
struct Selection {
    filter: Prepared,
    pid: Option<u32>,
    comm: Option<String>,
    failed: bool,
    /// Close records (not with --states).
    closes: bool,
    /// Transitions, retransmissions, resets, accepts.
    events: bool,
    listen: bool,
}

impl Selection {
    fn wants(&self, c: &Conn) -> bool {
        let kind_ok = match c.kind {
            ConnKind::Close => self.closes,
            ConnKind::Listen | ConnKind::ListenStop => self.listen,
            _ => self.events,
        };
        if !kind_ok || !c.ends.matches(&self.filter) {
            return false;
        }
        if self
            .pid
            .is_some_and(|p| c.owner.as_ref().is_none_or(|o| o.pid != p))
        {
            return false;
        }
        if let Some(comm) = &self.comm {
            if c.owner.as_ref().is_none_or(|o| &o.comm != comm) {
                return false;
            }
        }
        !(self.failed && c.kind == ConnKind::Close && !c.outcome().is_failure())
    }
}

pub fn run(args: ConnArgs) -> Result<ExitCode> {
    let filter = Filter::from_words(&args.expression)
        .map_err(|e| Error::usage(format!("bad filter: {e}")))?;
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
    let (mut session, _pin) = open(&args, filter_bpf)?;
    let ring = session.take_ring()?;
    if args.top {
        return top::run(&args, session, ring, filter);
    }
    let sel = Selection {
        filter: filter.prepare(),
        pid: args.pid,
        comm: args.comm.clone(),
        failed: args.failed,
        closes: !args.states,
        events: args.events || args.states,
        listen: args.listen,
    };
    tracing::info!("following TCP connections ({})", session.attached.join(","));
    let offset = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC);
    let stdout = io::stdout().lock();
    let mut job = ConnJob {
        session,
        ring,
        sel,
        names: Names::new(),
        wall: Box::new(move |mono: u64| (mono as i128 + offset).max(0) as u64),
        printer: ConnPrinter::new(
            io::BufWriter::with_capacity(1 << 16, stdout),
            args.output.output == OutputFormat::Json,
            args.events,
        ),
        shown: 0,
        bad: 0,
        count: args.run.count,
        last_lost: 0,
    };
    let stop = drive(&mut job, &args.run)?;
    let _ = job.printer.flush();
    let counters = job.session.counters().unwrap_or_default();
    let left = job.session.entries_left().unwrap_or((0, 0));
    drop(job.session);
    summary(stop, job.shown, job.bad, &counters, left);
    Ok(ExitCode::SUCCESS)
}

/// Load and attach, in the namespace asked for (held for the run, see
/// netns::Pin: its inode cannot be handed to a namespace created later).
fn open(
    args: &ConnArgs,
    filter_bpf: Option<crate::model::filter::ebpf::Compiled>,
) -> Result<(ConnSession, netns::Pin)> {
    let (netns_inode, pin) = match &args.netns {
        Some(spec) => {
            let ns = netns::resolve(spec)?;
            (ns.inode, netns::Pin::hold(&ns))
        }
        None => (0, netns::Pin::default()),
    };
    let kbtf = KernelBtf::load().map_err(|_| Error::NoBtf)?;
    crate::kernel::caps::require_bpf_privileges()?;
    let cfg = ConnConfigArgs {
        netns: netns_inode,
        states: args.events || args.states,
        events: args.events,
        listen: args.listen,
        ring_bytes: args.ring_size.saturating_mul(1024),
        max_conns: args.max_conns,
        top: args.top,
        filter_bpf,
    };
    let session = ConnSession::open(&cfg, &kbtf)?;
    for (name, why) in &session.skipped {
        tracing::warn!("skipping {name}: {why}");
    }
    if session
        .skipped
        .iter()
        .any(|(n, _)| n.starts_with("sys_exit_accept"))
    {
        tracing::warn!("accepted connections will show their listener's process, not the one that accepted them");
    }
    Ok((session, pin))
}

/// Connection records as a job of the run driver.
struct ConnJob {
    session: ConnSession,
    ring: EventRing,
    sel: Selection,
    names: Names,
    wall: Box<dyn Fn(u64) -> u64>,
    printer: ConnPrinter<io::BufWriter<io::StdoutLock<'static>>>,
    shown: u64,
    bad: u64,
    count: Option<u64>,
    last_lost: u64,
}

impl ConnJob {
    /// Print what the ring holds, up to `limit`; Stop once it is reached.
    fn drain_up_to(&mut self, limit: Option<u64>) -> Result<Flow> {
        let done = drain(
            &mut self.ring,
            &self.sel,
            &mut self.names,
            &*self.wall,
            &mut self.printer,
            &mut self.shown,
            &mut self.bad,
            limit,
        )
        .map_err(run::output)?;
        Ok(if done { Flow::Stop } else { Flow::Go })
    }
}

impl Job for ConnJob {
    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.ring.as_raw_fd())
    }

    fn drain(&mut self) -> Result<Flow> {
        self.drain_up_to(self.count)
    }

    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn every(&mut self, _: Duration) -> Result<Flow> {
        if let Ok(c) = self.session.counters() {
            if c.lost > self.last_lost {
                tracing::warn!(
                    "{} conn records lost in the kernel in the last second (ring buffer full; {} in all): use a larger --ring-size",
                    c.lost - self.last_lost,
                    c.lost
                );
                self.last_lost = c.lost;
            }
        }
        Ok(Flow::Go)
    }

    fn end(&mut self, stop: Stop, _: Duration) -> Result<()> {
        // Interrupted: everything that arrived is shown, --count or not.
        let limit = if stop == Stop::Signal {
            None
        } else {
            self.count
        };
        self.drain_up_to(limit).map(|_| ())
    }
}

/// Print what the ring holds; Ok(true) once --count is reached.
#[allow(clippy::too_many_arguments)]
fn drain<W: Write>(
    ring: &mut EventRing,
    sel: &Selection,
    names: &mut Names,
    wall: &dyn Fn(u64) -> u64,
    printer: &mut ConnPrinter<W>,
    shown: &mut u64,
    bad: &mut u64,
    limit: Option<u64>,
) -> io::Result<bool> {
    let mut res = Ok(false);
    let handed = ring.drain(|rec| {
        let ev = match ConnEvent::decode(rec) {
            Ok(ev) => ev,
            Err(e) => {
                *bad += 1;
                if *bad == 1 {
                    tracing::warn!("undecodable conn record: {e}");
                }
                return true;
            }
        };
        let c = Conn::from_event(&ev);
        if !sel.wants(&c) {
            return true;
        }
        let ns_name = names.netns_name(NsId::new(c.raw.netns, c.raw.netns_cookie));
        let cx = Context {
            wall_ns: wall,
            netns_name: ns_name.as_deref(),
        };
        let r = if c.kind == ConnKind::Close && sel.closes {
            printer.conn(&c, &cx)
        } else {
            printer.event(&c, &cx)
        };
        if let Err(e) = r {
            res = Err(e);
            return false;
        }
        *shown += 1;
        if limit.is_some_and(|l| *shown >= l) {
            res = Ok(true);
            return false;
        }
        true
    });
    if handed > 0 {
        printer.flush()?;
    }
    res
}

fn summary(why: Stop, shown: u64, bad: u64, c: &ConnCounter, (open, pending): (u64, u64)) {
    let why = why.word();
    let evicted = c.tracked.saturating_sub(c.removed + open + pending);
    let mut err = io::stderr().lock();
    let _ = writeln!(
        err,
        "netxray: {why}: {shown} records shown; kernel: {} connections followed, {} reported, {} still open, \
         {} records sent, {} filtered out, {} lost (ring buffer full; {} of them final records), {} evicted (table full, --max-conns){}{}{}",
        c.tracked,
        c.removed,
        open,
        c.emitted,
        c.filtered,
        c.lost,
        c.close_lost,
        evicted,
        if c.untracked > 0 { format!(", {} not followed (table refused)", c.untracked) } else { String::new() },
        if pending > 0 { format!(", {pending} closed but not yet released by their process (not reported)") } else { String::new() },
        if bad > 0 { format!(", {bad} undecodable") } else { String::new() },
    );
}
