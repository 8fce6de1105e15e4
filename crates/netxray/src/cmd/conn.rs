//! `netxray conn`: CLI flags -> ConnSession -> records -> Conn -> printer,
//! until Ctrl-C, SIGTERM, --count, --duration or a closed stdout.
//!
//! Filters: the namespace in the kernel; the flow expression, --pid,
//! --comm and --failed here, on each record (a record per connection, so
//! the cost is per connection, not per packet).

use crate::cli::{ConnArgs, OutputFormat};
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
use std::time::{Duration, Instant};

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

fn clock_ns(id: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

enum Stop {
    Done,
    Signal,
    ClosedStdout,
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
    let duration = args
        .duration
        .map(|d| {
            Duration::try_from_secs_f64(d)
                .map_err(|_| Error::usage("--duration must be a number of seconds, 0 or more"))
        })
        .transpose()?;
    if args.pid == Some(0) {
        return Err(Error::usage("--pid 0: no such process"));
    }
    // The namespace is held for the run (netns::Pin): its inode cannot be
    // handed to a namespace created later.
    let (netns_inode, _pin) = match &args.netns {
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
    let mut session = ConnSession::open(&cfg, &kbtf)?;
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
    let mut ring = session.take_ring()?;
    if args.top {
        return crate::cmd::conn_top::run(&args, duration, &session, ring, filter);
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
    let stop = crate::cmd::signals::StopFlag::install()?;
    if let Some(path) = &args.ready_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| Error::io(format!("writing --ready-file {}", path.display()), e))?;
    }
    tracing::info!("following TCP connections ({})", session.attached.join(","));
    let offset = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC);
    let wall = move |mono: u64| (mono as i128 + offset).max(0) as u64;
    let mut names = Names::new();
    let stdout = io::stdout().lock();
    let mut printer = ConnPrinter::new(
        io::BufWriter::with_capacity(1 << 16, stdout),
        args.output.output == OutputFormat::Json,
        args.events,
    );
    let started = Instant::now();
    let deadline = duration.and_then(|d| started.checked_add(d));
    let mut shown = 0u64;
    let mut bad = 0u64;
    let mut last_lost = 0u64;
    let mut last_status = Instant::now();
    let why = loop {
        if stop.raised() {
            let _ = drain(
                &mut ring,
                &sel,
                &mut names,
                &wall,
                &mut printer,
                &mut shown,
                &mut bad,
                None,
            );
            break Stop::Signal;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = drain(
                &mut ring,
                &sel,
                &mut names,
                &wall,
                &mut printer,
                &mut shown,
                &mut bad,
                args.count,
            );
            break Stop::Done;
        }
        wait_readable(&ring, Duration::from_millis(10));
        match drain(
            &mut ring,
            &sel,
            &mut names,
            &wall,
            &mut printer,
            &mut shown,
            &mut bad,
            args.count,
        ) {
            Ok(true) => break Stop::Done,
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break Stop::ClosedStdout,
            Err(e) => return Err(Error::io("writing output", e)),
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = Instant::now();
            if let Ok(c) = session.counters() {
                if c.lost > last_lost {
                    tracing::warn!(
                        "{} conn records lost in the kernel in the last second (ring buffer full; {} in all): use a larger --ring-size",
                        c.lost - last_lost,
                        c.lost
                    );
                    last_lost = c.lost;
                }
            }
            if stdout_closed() {
                break Stop::ClosedStdout;
            }
        }
    };
    let _ = printer.flush();
    let counters = session.counters().unwrap_or_default();
    let left = session.entries_left().unwrap_or((0, 0));
    drop(session);
    summary(&why, shown, bad, &counters, left);
    Ok(ExitCode::SUCCESS)
}

fn wait_readable(ring: &EventRing, timeout: Duration) {
    let mut fds = libc::pollfd {
        fd: ring.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own; EINTR (a signal) just returns.
    unsafe { libc::poll(&mut fds, 1, timeout.as_millis() as libc::c_int) };
}

fn stdout_closed() -> bool {
    let mut fds = libc::pollfd {
        fd: 1,
        events: 0,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own, zero timeout.
    let n = unsafe { libc::poll(&mut fds, 1, 0) };
    n > 0 && fds.revents & (libc::POLLERR | libc::POLLHUP) != 0
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

fn summary(why: &Stop, shown: u64, bad: u64, c: &ConnCounter, (open, pending): (u64, u64)) {
    let why = match why {
        Stop::Done => "done",
        Stop::Signal => "interrupted",
        Stop::ClosedStdout => "output closed",
    };
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
