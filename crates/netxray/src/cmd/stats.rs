//! `netxray stats`: packets and bits per second per interface and direction,
//! by protocol, with the top flows and sources, counted in the kernel at TC
//! (and XDP); a table per interval, or one JSON snapshot per interval.

use crate::cli::filter as cmd_filter;
use crate::cli::FilterArgs;
use crate::cli::{OutputFormat, StatsArgs};
use crate::cmd::run::{self, drive, Flow, Job, Stop};
use crate::error::{Error, Result};
use crate::kernel::netns;
use crate::kernel::stats::{StatsConfig, StatsSession};
use crate::model::stats::{Rates, Sample};
use crate::model::value::NsId;
use crate::output::report;
use std::collections::BTreeMap;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

pub fn run(args: StatsArgs) -> Result<ExitCode> {
    let filter = cmd_filter::build(&args.expression, &FilterArgs::default())?;
    let filter_bpf = filter
        .to_ebpf()
        .map_err(|e| Error::usage(format!("bad filter: {e}")))?;
    // --interval, --duration and --flows are checked when parsed (cli/values.rs).
    let ns = match &args.netns {
        Some(spec) => netns::resolve(spec)?,
        None => netns::current()?,
    };
    // Interfaces named must exist (before loading anything).
    let present = crate::kernel::stats::interfaces(&ns).map_err(|e| {
        Error::io(
            format!("entering network namespace {}", ns.path.display()),
            e,
        )
    })?;
    for name in &args.ifaces {
        if !present.iter().any(|(_, n)| n == name) {
            return Err(Error::usage(format!(
                "unknown interface '{name}' in network namespace {}",
                ns.path.display()
            )));
        }
    }
    crate::kernel::caps::require_bpf_privileges()?;
    crate::kernel::caps::require_net_admin("stats: tc and XDP programs")?;
    let mut session = StatsSession::open(StatsConfig {
        filter_bpf,
        flows: args.flows,
        xdp: args.xdp.map(Into::into),
        ns: ns.clone(),
        only: args.ifaces.clone(),
    })?;
    for note in session.refresh()? {
        tracing::info!("{note}");
    }
    if session.watched.is_empty() {
        return Err(Error::usage(format!(
            "no interface to watch in network namespace {}",
            ns.path.display()
        )));
    }
    let mut names = netns::Names::new();
    let netns_name = names
        .netns_name(NsId::new(ns.inode, 0))
        .map(|n| n.to_string());
    let mut job = StatsJob {
        session,
        rates: Rates::default(),
        out: io::stdout().lock(),
        json: args.output.output == OutputFormat::Json,
        interval: Duration::from_secs_f64(args.interval),
        flows: args.flows,
        top: args.top,
        netns: ns.inode,
        netns_name,
        shown: 0,
        // --once is -c 1.
        count: if args.once { Some(1) } else { args.run.count },
    };
    drive(&mut job, &args.run)?;
    Ok(ExitCode::SUCCESS)
}

/// The counters as a job of the run driver: a report per interval.
struct StatsJob {
    session: StatsSession,
    rates: Rates,
    out: io::StdoutLock<'static>,
    json: bool,
    interval: Duration,
    flows: u32,
    top: usize,
    netns: u32,
    netns_name: Option<String>,
    /// Reports shown, and --count.
    shown: u64,
    count: Option<u64>,
}

impl StatsJob {
    /// One report for the last `interval` seconds.
    fn report(&mut self, interval: f64) -> Result<()> {
        let snap = self.session.snapshot()?;
        let watched: BTreeMap<u32, (String, bool)> = self
            .session
            .watched
            .iter()
            .map(|(i, w)| (*i, (w.name.clone(), w.xdp)))
            .collect();
        let mut report = self.rates.report(
            &Sample {
                ifaces: &snap.ifaces,
                flows: &snap.flows,
                names: &watched,
                flows_inserted: snap.ctl.flows_inserted,
                flows_failed: snap.ctl.flows_failed,
                capacity: self.flows,
                entries: snap.table_entries,
            },
            interval,
            self.top,
        );
        report.netns = self.netns;
        report.netns_name = self.netns_name.clone();
        report::print(&mut self.out, &report, self.json).map_err(run::output)?;
        self.shown += 1;
        Ok(())
    }
}

impl Job for StatsJob {
    fn period(&self) -> Duration {
        self.interval
    }

    fn every(&mut self, elapsed: Duration) -> Result<Flow> {
        self.report(elapsed.as_secs_f64())?;
        if Flow::counted(self.shown, self.count) == Flow::Stop {
            return Ok(Flow::Stop);
        }
        // Interfaces created or deleted meanwhile.
        for note in self.session.refresh()? {
            tracing::info!("{note}");
        }
        Ok(Flow::Go)
    }

    fn end(&mut self, stop: Stop, elapsed: Duration) -> Result<()> {
        // The interval cut short by a signal or --duration, reported too
        // (not after the report that reached --count).
        if stop == Stop::Signal || self.count.is_none_or(|c| self.shown < c) {
            self.report(elapsed.as_secs_f64())?;
        }
        Ok(())
    }
}
