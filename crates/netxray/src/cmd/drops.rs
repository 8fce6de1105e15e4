//! `netxray drops`: kfree_skb counted in the kernel per (reason, location,
//! namespace, interface), shown as a table per interval (or one JSON object
//! per interval), with what each reason means and what to check.

use crate::cli::filter as cmd_filter;
use crate::cli::{DropsArgs, OutputFormat, TraceArgs};
use crate::cmd::run::{self, drive, Flow, Job, Stop};
use crate::error::{Error, Result};
use crate::kernel::btf::KernelBtf;
use crate::kernel::kallsyms::LazyKallsyms;
use crate::kernel::netns::Names;
use crate::kernel::nftables::watch::NftWatch;
use crate::kernel::trace::{TraceConfig, TraceSession};
use crate::model::drops::advice_at;
use crate::model::event::nf_hook_name;
use crate::model::hook::HookPoint;
use crate::model::nft::RuleDrops;
use crate::model::packet::{self, CaptureInfo};
use crate::model::value::NsId;
use crate::output::drops::{Row, Summary};
use crate::output::report;
use netxray_abi::{flags, hook_id, DropKey, DropVal};
use std::collections::HashMap;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

fn sample(v: &DropVal) -> String {
    let n = (v.cap_len as usize).min(v.sample.len());
    let info = CaptureInfo {
        has_l2: v.flags & flags::L2 != 0,
        l3_off: v.l3_off as usize,
        protocol: v.protocol,
        hw_vlan: None,
    };
    packet::decode(&v.sample[..n], &info).summary()
}

pub fn run(args: DropsArgs) -> Result<ExitCode> {
    if args.events {
        // Every drop with its packet: the trace of kfree_skb.
        return crate::cmd::trace::run(TraceArgs {
            hooks: vec!["kfree_skb".into()],
            filter: args.filter,
            output: args.output,
            run: args.run,
            ring_size: 8192,
            snaplen: 128,
            journey: false,
            map: None,
            detail: false,
            max_journeys: 4096,
            follow: false,
            ret: false,
            stack: args.stack.then(Vec::new),
            nf_attribution: true,
            xdp: None,
            nft_trace: args.nft_trace,
            expression: args.expression,
        });
    }
    let mut job = DropsJob::open(&args)?;
    drive(&mut job, &args.run)?;
    job.finish();
    Ok(ExitCode::SUCCESS)
}

/// The drop counter as a job of the run driver: a table per interval.
struct DropsJob {
    session: TraceSession,
    reasons: HashMap<i64, String>,
    syms: LazyKallsyms,
    names: Names,
    /// `--nft-trace`: the trace subscription and the rules' drops.
    nft: Option<(NftWatch, RuleDrops)>,
    /// Each row's total at the last table.
    before: HashMap<DropKey, u64>,
    out: io::StdoutLock<'static>,
    json: bool,
    interval: Duration,
    top: usize,
    /// Tables shown, and --count.
    shown: u64,
    count: Option<u64>,
}

impl DropsJob {
    fn open(args: &DropsArgs) -> Result<Self> {
        let filter = cmd_filter::build(&args.expression, &args.filter)?;
        let filter_bpf = filter
            .to_ebpf()
            .map_err(|e| Error::usage(format!("bad filter: {e}")))?;
        // --interval and --duration are checked when parsed (cli/values.rs).
        let scope = cmd_filter::scope(&args.filter)?;
        let kbtf = KernelBtf::load().map_err(|_| Error::NoBtf)?;
        crate::kernel::caps::require_bpf_privileges()?;
        let kfree = HookPoint::by_id(hook_id::KFREE_SKB)
            .ok_or_else(|| Error::Runtime("no kfree_skb hook".into()))?;
        let cfg = TraceConfig {
            hooks: vec![kfree],
            required: vec![hook_id::KFREE_SKB],
            netns: scope.netns,
            netns_at: scope.ns.clone(),
            ifindex: scope.ifindex,
            tgid: scope.tgid,
            filter_bpf,
            ring_bytes: 4096 * 4,
            snaplen: 128,
            follow_ns: 0,
            stack_hooks: 0,
            ret: false,
            drops: true,
            nf_attribution: true,
            xdp: None,
        };
        let session = TraceSession::open(&cfg, &kbtf)?;
        if let Some(why) = &session.netfilter_error {
            tracing::warn!("NETFILTER_DROP drops will not say in which hook: {why}");
        }
        // Before the ready file: the tables and the subscription are in place.
        let nft = if args.nft_trace {
            Some((
                NftWatch::open(args.filter.netns.as_deref(), &filter, scope.ifindex)?,
                RuleDrops::default(),
            ))
        } else {
            None
        };
        Ok(Self {
            session,
            reasons: kbtf.drop_reasons(),
            syms: LazyKallsyms::spawn(),
            names: Names::new(),
            nft,
            before: HashMap::new(),
            out: io::stdout().lock(),
            json: args.output.output == OutputFormat::Json,
            interval: Duration::from_secs_f64(args.interval),
            top: args.top,
            shown: 0,
            count: args.run.count,
        })
    }

    /// `--nft-trace`: take the rule verdicts waiting. A socket that fails
    /// is reported and given up; the count goes on.
    fn poll_nft(&mut self) {
        let Self { nft, names, .. } = self;
        if let Some((watch, rules)) = nft {
            if let Err(e) = watch.poll(names, |ev| rules.add(ev)) {
                tracing::warn!("--nft-trace stopped: {e}");
                *nft = None;
            }
        }
    }

    /// The table's rows since the last one, most drops first.
    fn rows(&mut self) -> Result<Vec<Row>> {
        // Namespaces created since (a container starting): watch their
        // netfilter hooks too.
        let added = self.session.refresh_netfilter();
        if !added.is_empty() {
            self.names.rescan();
        }
        for ns in added {
            tracing::info!(
                "netfilter hooks now watched in namespace {} (inode {})",
                ns.path.display(),
                ns.inode
            );
        }
        let Self {
            session,
            reasons,
            syms,
            names,
            before,
            ..
        } = self;
        let mut table: Vec<Row> = session
            .drops()?
            .iter()
            .map(|(k, v)| {
                let prev = before.insert(*k, v.count).unwrap_or(0);
                let reason = reasons
                    .get(&(k.reason as i64))
                    .cloned()
                    .unwrap_or_else(|| format!("reason-{}", k.reason));
                let location = syms
                    .symbolize(k.location)
                    .unwrap_or_else(|| format!("{:#x}", k.location));
                let (means, check) = advice_at(&reason, &location).unzip();
                let ns = NsId::new(k.netns, k.netns_cookie);
                Row {
                    count: v.count.saturating_sub(prev),
                    total: v.count,
                    bytes: v.bytes,
                    netns: k.netns,
                    netns_cookie: (k.netns_cookie != 0).then_some(k.netns_cookie),
                    netns_name: names.netns_name(ns).map(|n| n.to_string()),
                    ifindex: k.ifindex,
                    ifname: names.ifname(ns, k.ifindex).map(|n| n.to_string()),
                    location,
                    sample: sample(v),
                    netfilter_hook: nf_hook_name(k.nf_at),
                    reason,
                    means,
                    check,
                }
            })
            .collect();
        table.sort_by(|a, b| b.count.cmp(&a.count).then(b.total.cmp(&a.total)));
        table.truncate(self.top);
        Ok(table)
    }

    /// One table (or JSON summary) for the last `interval` seconds.
    fn report(&mut self, interval: f64) -> Result<()> {
        let table = self.rows()?;
        let drops = table.iter().map(|r| r.count).sum();
        let nft_rules = self.nft.as_mut().map(|(_, rules)| rules.rows());
        let summary = Summary {
            ts_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            interval_s: interval,
            drops,
            rows: table,
            nft_rules,
        };
        report::print(&mut self.out, &summary, self.json).map_err(run::output)?;
        self.shown += 1;
        Ok(())
    }

    /// The summary on stderr, after everything is detached.
    fn finish(self) {
        let counters = self.session.counters().unwrap_or_default();
        let lost: u64 = counters.iter().map(|c| c.lost).sum();
        let counted: u64 = counters.iter().map(|c| c.emitted).sum();
        drop(self.session);
        if let Some((watch, mut rules)) = self.nft {
            let dropped: u64 = rules.rows().iter().map(|r| r.total).sum();
            tracing::info!(
                "{}",
                watch.summary(&format!("{dropped} drops by nftables rules counted"))
            );
        }
        let _ = writeln!(
            io::stderr().lock(),
            "netxray: {counted} drops counted{}",
            if lost > 0 {
                format!(", {lost} not counted (the row table was full)")
            } else {
                String::new()
            }
        );
    }
}

impl Job for DropsJob {
    fn drain(&mut self) -> Result<Flow> {
        self.poll_nft();
        Ok(Flow::Go)
    }

    fn period(&self) -> Duration {
        self.interval
    }

    fn every(&mut self, elapsed: Duration) -> Result<Flow> {
        self.poll_nft();
        self.report(elapsed.as_secs_f64())?;
        Ok(Flow::counted(self.shown, self.count))
    }

    fn end(&mut self, _: Stop, elapsed: Duration) -> Result<()> {
        self.poll_nft();
        // Nothing new since the last table when it was just printed.
        if elapsed.as_secs_f64() < 0.05 {
            return Ok(());
        }
        self.report(elapsed.as_secs_f64())
    }
}
