//! The run driver: the one loop every long-running subcommand (trace, conn,
//! conn --top, drops, stats) runs in. A subcommand opens its kernel session,
//! makes its printer, wraps both in a [`Job`] and hands it to [`drive`],
//! which owns what they all share: the ready file, Ctrl-C and SIGTERM, a
//! closed stdout, `--duration`, and the order of the end (last drains, last
//! report); `--count` is the job's to count (events, connections or
//! reports), its answer [`Flow::Stop`].
//!
//! One loop design: poll(2) on the job's ring buffer (when it has one) with a
//! short tick, and the signals as a flag (a signal interrupts poll). trace
//! used tokio's current-thread runtime for the same thing, the others a
//! sleep loop; one fd and three timers need no runtime, and a plain loop is
//! the same for every subcommand. The kernel side wakes the reader only when
//! the ring fills (a wake-up per event costs more than the event), so the
//! tick (10 ms) is what drains it otherwise, as before.

use crate::cli::RunArgs;
use crate::error::{Error, Result};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the ring is drained when the kernel does not wake us.
const TICK: Duration = Duration::from_millis(10);
/// How often a closed stdout is looked for (a reader that went away while
/// nothing was written).
const STDOUT_CHECK: Duration = Duration::from_millis(200);

// ---- Ctrl-C and SIGTERM as a flag, which poll(2) in the loop notices.

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Raised by SIGINT or SIGTERM once installed.
pub struct StopFlag;

impl StopFlag {
    pub fn install() -> Result<Self> {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: the handler only stores to an atomic, which is
            // async-signal-safe.
            if unsafe { libc::signal(sig, handler) } == libc::SIG_ERR {
                return Err(Error::io(
                    "installing a signal handler",
                    std::io::Error::last_os_error(),
                ));
            }
        }
        Ok(Self)
    }

    pub fn raised(&self) -> bool {
        STOP.load(Ordering::SeqCst)
    }
}

/// What a job says after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Carry on.
    Go,
    /// Carry on, and drain again at once: records are left (a drain handles
    /// a batch at most, so signals and timers get their turn in a flood).
    More,
    /// Done: `--count` reached, or `--once`.
    Stop,
}

/// Why the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `--duration`, `--count`, or the job's own end.
    Done,
    /// SIGINT or SIGTERM.
    Signal,
    /// Whoever read stdout went away.
    ClosedStdout,
}

impl Stop {
    /// The word of the exit summary.
    pub fn word(self) -> &'static str {
        match self {
            Stop::Done => "done",
            Stop::Signal => "interrupted",
            Stop::ClosedStdout => "output closed",
        }
    }
}

/// A subcommand's side of the loop.
pub trait Job {
    /// The ring buffer to wait on, if any.
    fn ring_fd(&self) -> Option<RawFd> {
        None
    }

    /// Handle what has arrived: called when the ring is readable and on
    /// every tick. Output errors go through [`output`] (a closed stdout
    /// then ends the run quietly).
    fn drain(&mut self) -> Result<Flow> {
        Ok(Flow::Go)
    }

    /// How often [`Job::every`] runs.
    fn period(&self) -> Duration;

    /// Called every period, `elapsed` since the last call (or the start):
    /// the status checks of a stream, the report of a table.
    fn every(&mut self, elapsed: Duration) -> Result<Flow>;

    /// The run ends for `stop`, `elapsed` after the last [`Job::every`]:
    /// the last drains, the last (partial) report. Not called when stdout
    /// closed.
    fn end(&mut self, stop: Stop, elapsed: Duration) -> Result<()>;
}

/// An error writing the output (stdout, or a file).
pub fn output(e: io::Error) -> Error {
    Error::io("writing output", e)
}

fn is_closed_stdout(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
}

/// Where the time to start goes (`-v` prints it): named phases, each the
/// time since the one before.
pub struct Phases {
    start: Instant,
    last: Instant,
    parts: Vec<(&'static str, Duration)>,
}

impl Default for Phases {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            start: now,
            last: now,
            parts: Vec::new(),
        }
    }
}

impl Phases {
    /// The phase `name` ends now.
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.parts.push((name, now - self.last));
        self.last = now;
    }

    /// "ready after 212 ms: kernel BTF 31 ms, ..." at debug level.
    pub fn report(&self) {
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|(n, d)| format!("{n} {} ms", d.as_millis()))
            .collect();
        tracing::debug!(
            "ready after {} ms: {}",
            self.start.elapsed().as_millis(),
            parts.join(", ")
        );
    }
}

/// A clock's reading in ns (CLOCK_MONOTONIC is the kernel's timestamps').
pub fn clock_ns(id: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl Flow {
    /// After a report: Stop once `shown` reaches `--count`.
    pub fn counted(shown: u64, count: Option<u64>) -> Self {
        if count.is_some_and(|c| shown >= c) {
            Flow::Stop
        } else {
            Flow::Go
        }
    }
}

/// Write `--ready-file`: netxray's pid, once everything is attached.
pub fn write_ready_file(run: &RunArgs) -> Result<()> {
    if let Some(path) = &run.ready_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| Error::io(format!("writing --ready-file {}", path.display()), e))?;
    }
    Ok(())
}

/// Wait until `fd` is readable or `timeout` passes (or a signal comes).
fn wait(fd: Option<RawFd>, timeout: Duration) {
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    match fd {
        Some(fd) => {
            let mut fds = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one pollfd we own; EINTR (a signal) returns.
            unsafe { libc::poll(&mut fds, 1, ms) };
        }
        None => {
            // SAFETY: poll with no fds is a sleep a signal interrupts.
            unsafe { libc::poll(std::ptr::null_mut(), 0, ms) };
        }
    }
}

/// Whether whoever read stdout has gone (a pipe's reader closed it).
pub fn stdout_closed() -> bool {
    let mut fds = libc::pollfd {
        fd: 1,
        events: 0,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own, zero timeout.
    let n = unsafe { libc::poll(&mut fds, 1, 0) };
    n > 0 && fds.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// A step's result as the loop's next move: None to carry on.
fn settle(step: Result<Flow>, more: &mut bool) -> Result<Option<Stop>> {
    match step {
        Ok(Flow::Go) => {
            *more = false;
            Ok(None)
        }
        Ok(Flow::More) => {
            *more = true;
            Ok(None)
        }
        Ok(Flow::Stop) => Ok(Some(Stop::Done)),
        Err(e) if is_closed_stdout(&e) => Ok(Some(Stop::ClosedStdout)),
        Err(e) => Err(e),
    }
}

/// Run `job` until `--duration`, its own end, a signal or a closed stdout.
/// The signal handlers are in place before the ready file is written: a
/// script may send SIGINT as soon as it sees the file.
pub fn drive(job: &mut dyn Job, run: &RunArgs) -> Result<Stop> {
    let signals = StopFlag::install()?;
    write_ready_file(run)?;
    let started = Instant::now();
    // --duration is checked when parsed (cli/values.rs): finite, not negative.
    let deadline = run
        .duration
        .and_then(|d| Duration::try_from_secs_f64(d).ok())
        .and_then(|d| started.checked_add(d));
    let period = job.period();
    let mut last_period = started;
    let mut next_stdout_check = started + STDOUT_CHECK;
    let mut more = false;
    let stop = loop {
        if signals.raised() {
            break Stop::Signal;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break Stop::Done;
        }
        if !more {
            let mut wake = (now + TICK).min(last_period + period);
            if let Some(d) = deadline {
                wake = wake.min(d);
            }
            wait(job.ring_fd(), wake.saturating_duration_since(now));
            if signals.raised() {
                break Stop::Signal;
            }
        }
        if let Some(stop) = settle(job.drain(), &mut more)? {
            break stop;
        }
        let now = Instant::now();
        if now >= last_period + period {
            let elapsed = now - last_period;
            last_period = now;
            let mut ignored = more;
            if let Some(stop) = settle(job.every(elapsed), &mut ignored)? {
                break stop;
            }
        }
        if now >= next_stdout_check {
            next_stdout_check = now + STDOUT_CHECK;
            if stdout_closed() {
                break Stop::ClosedStdout;
            }
        }
    };
    if stop != Stop::ClosedStdout {
        match job.end(stop, last_period.elapsed()) {
            Ok(()) => {}
            Err(e) if is_closed_stdout(&e) => return Ok(Stop::ClosedStdout),
            Err(e) => return Err(e),
        }
    }
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts its calls; stops after `stop_after` periods.
    struct Counting {
        drains: u32,
        periods: u32,
        stop_after: u32,
        ended: Option<Stop>,
    }

    impl Job for Counting {
        fn drain(&mut self) -> Result<Flow> {
            self.drains += 1;
            Ok(Flow::Go)
        }
        fn period(&self) -> Duration {
            Duration::from_millis(30)
        }
        fn every(&mut self, _: Duration) -> Result<Flow> {
            self.periods += 1;
            Ok(if self.periods >= self.stop_after {
                Flow::Stop
            } else {
                Flow::Go
            })
        }
        fn end(&mut self, stop: Stop, _: Duration) -> Result<()> {
            self.ended = Some(stop);
            Ok(())
        }
    }

    #[test]
    fn a_job_that_stops_ends_the_run_with_its_end_called() {
        let mut job = Counting {
            drains: 0,
            periods: 0,
            stop_after: 3,
            ended: None,
        };
        let stop = drive(&mut job, &RunArgs::default()).unwrap();
        assert_eq!(stop, Stop::Done);
        assert_eq!(job.periods, 3);
        assert!(job.drains >= 3, "drained on every tick");
        assert_eq!(job.ended, Some(Stop::Done));
    }

    #[test]
    fn duration_ends_the_run() {
        let mut job = Counting {
            drains: 0,
            periods: 0,
            stop_after: u32::MAX,
            ended: None,
        };
        let run = RunArgs {
            duration: Some(0.1),
            ..RunArgs::default()
        };
        let t = Instant::now();
        assert_eq!(drive(&mut job, &run).unwrap(), Stop::Done);
        assert!(t.elapsed() >= Duration::from_millis(100));
        assert!(job.periods >= 2, "{}", job.periods);
        assert_eq!(job.ended, Some(Stop::Done));
    }
}
