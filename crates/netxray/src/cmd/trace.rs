//! `netxray trace`: CLI flags -> TraceConfig -> TraceSession -> decode ->
//! printer, until Ctrl-C, SIGTERM, --count, --duration or a closed stdout.

use crate::cli::filter as cmd_filter;
use crate::cli::{MapWhen, OutputFormat, TraceArgs};
use crate::cmd::run::{self, clock_ns, drive, Flow, Job, Phases, Stop};
use crate::error::{Error, Result};
use crate::kernel::btf::KernelBtf;
use crate::kernel::kallsyms::LazyKallsyms;
use crate::kernel::netns::Names;
use crate::kernel::nftables::watch::NftWatch;
use crate::kernel::ring::EventRing;
use crate::kernel::trace::{available_hooks, TraceConfig, TraceSession};
use crate::model::correlate::Correlator;
use crate::model::event::{Resolver, TraceEvent};
use crate::model::hook::{self, Backend, HookPoint};
use crate::model::journey::JourneyConfig;
use crate::model::value::{Name, NameCache, NsId};
use crate::output::journey::{JourneyPrinter, JourneyStyle};
use crate::output::threaded::ThreadedPrinter;
use crate::output::{JsonPrinter, Printer, TextPrinter};
use aya::maps::{MapData, StackTraceMap};
use netxray_abi::{hook_id, Counter, Event};
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::Duration;

struct Context {
    names: Names,
    strings: NameCache,
    drops: HashMap<i64, Name>,
    rsts: HashMap<i64, Name>,
    syms: LazyKallsyms,
    stacks: Option<Stacks>,
    wall_offset: i128,
    /// `--nft-trace`.
    nft: Option<NftWatch>,
    nft_shown: u64,
}

fn names_of(m: HashMap<i64, String>) -> HashMap<i64, Name> {
    m.into_iter().map(|(k, v)| (k, Name::from(v))).collect()
}

impl Resolver for Context {
    fn netns_name(&mut self, ns: NsId) -> Option<Name> {
        self.names.netns_name(ns)
    }
    fn ifname(&mut self, ns: NsId, ifindex: u32) -> Option<Name> {
        self.names.ifname(ns, ifindex)
    }
    fn drop_reason(&self, reason: u32) -> Option<Name> {
        self.drops.get(&(reason as i64)).cloned()
    }
    fn rst_reason(&self, reason: u32) -> Option<Name> {
        self.rsts.get(&(reason as i64)).cloned()
    }
    fn name(&mut self, raw: &[u8; 16]) -> Name {
        self.strings.get(raw)
    }
    fn symbol(&self, addr: u64) -> Option<String> {
        self.syms.symbolize(addr)
    }
    fn wall_ns(&self, mono_ns: u64) -> u64 {
        (mono_ns as i128 + self.wall_offset).max(0) as u64
    }
    fn stack(&mut self, id: u32) -> Option<Vec<String>> {
        let stacks = self.stacks.as_mut()?;
        if let Some(frames) = stacks.seen.get(&id) {
            return Some(frames.clone());
        }
        // Identical stacks share an id: resolve each once.
        let trace = stacks.map.get(&id, 0).ok()?;
        // The first frames are netxray's own program and the tracepoint runner.
        let frames: Vec<String> = trace
            .frames()
            .iter()
            .map(|f| {
                self.syms
                    .symbolize(f.ip)
                    .unwrap_or_else(|| format!("{:#x}", f.ip))
            })
            .skip_while(|f| f.starts_with("bpf_prog_") || f.starts_with("bpf_trace_run"))
            .collect();
        stacks.seen.insert(id, frames.clone());
        Some(frames)
    }
}

/// --stack: the kernel's stack map and the stacks already symbolised.
struct Stacks {
    map: StackTraceMap<MapData>,
    seen: HashMap<u32, Vec<String>>,
}

/// How long `--follow` keeps a packet's buffer followed between two hops.
const FOLLOW_NS: u32 = 2_000_000_000;

/// `--stack` as a hook bit mask: every traced hook, or the ones named.
fn stack_hooks(named: Option<&[String]>, traced: &[&'static HookPoint]) -> Result<u64> {
    let Some(named) = named else { return Ok(0) };
    let hooks: Vec<&'static HookPoint> = if named.is_empty() {
        traced.to_vec()
    } else {
        hook::select_named(named)
            .map_err(|e| Error::usage(format!("--stack: {e}")))?
            .0
    };
    Ok(hooks.iter().fold(0u64, |m, h| m | 1u64 << (h.id & 63)))
}

pub fn run(args: TraceArgs) -> Result<ExitCode> {
    let mut phases = Phases::default();
    let filter = cmd_filter::build(&args.expression, &args.filter)?;
    let filter_bpf = filter
        .to_ebpf()
        .map_err(|e| Error::usage(format!("bad filter: {e}")))?;
    phases.mark("filter");
    let kbtf = KernelBtf::load().map_err(|_| Error::NoBtf)?;
    phases.mark("kernel BTF");
    let (hooks, required) = select_hooks(&args, &kbtf)?;
    let scope = cmd_filter::scope(&args.filter)?;
    check_scope(&args, &hooks, &required, scope.ifindex)?;
    let stack_hooks = stack_hooks(args.stack.as_deref(), &hooks)?;
    let cfg = TraceConfig {
        hooks,
        required,
        netns: scope.netns,
        netns_at: scope.ns.clone(),
        ifindex: scope.ifindex,
        tgid: scope.tgid,
        filter_bpf,
        ring_bytes: args.ring_size.saturating_mul(1024),
        snaplen: args.snaplen,
        follow_ns: if args.follow { FOLLOW_NS } else { 0 },
        stack_hooks,
        ret: args.ret,
        drops: false,
        nf_attribution: args.nf_attribution,
        xdp: args.xdp.map(Into::into),
    };
    let mut session = TraceSession::open(&cfg, &kbtf)?;
    phases.mark("programs loaded and attached");
    // Before the ready file: the tables and the subscription are in place.
    let nft = if args.nft_trace {
        Some(NftWatch::open(
            args.filter.netns.as_deref(),
            &filter,
            scope.ifindex,
        )?)
    } else {
        None
    };
    for (h, why) in &session.skipped {
        tracing::warn!("skipping {}: {why}", h.name);
    }
    let ctx = context(&cfg, &kbtf, &mut session, nft)?;
    log_attached(&session);
    let ring = session.take_ring()?;
    // Rendering and writing run on a thread of their own (output/threaded.rs).
    let printer: Box<dyn Printer> = Box::new(
        ThreadedPrinter::spawn(printer_maker(&args))
            .map_err(|e| Error::io("starting the output thread", e))?,
    );
    let mut job = TraceJob {
        ring,
        session,
        ctx,
        printer,
        st: LoopState {
            correlator: Correlator::new(cfg.hooks.iter().any(|h| h.is_context())),
            ready: Vec::new(),
            latest_ts: 0,
            shown: 0,
            decode_errors: 0,
            limit: args.run.count,
            hooks: cfg.hooks.iter().map(|h| h.name).collect(),
            more: false,
        },
        last_lost: 0,
        last_clobbered: 0,
    };
    phases.mark("names and output");
    phases.report();
    let stop = drive(&mut job, &args.run)?;
    job.finish(stop, if args.journey { "journeys" } else { "events" });
    Ok(ExitCode::SUCCESS)
}

/// The hooks asked for (-t, else every hook this kernel has), with the
/// exit hooks of --ret; and the ones named one by one (required).
fn select_hooks(args: &TraceArgs, kbtf: &KernelBtf) -> Result<(Vec<&'static HookPoint>, Vec<u16>)> {
    let (mut hooks, required) = if args.hooks.is_empty() {
        (available_hooks(kbtf, args.ret), Vec::new())
    } else {
        hook::select_named(&args.hooks).map_err(Error::usage)?
    };
    if hooks.is_empty() {
        return Err(Error::usage(
            "no hook selected: name hooks or groups with -t (see netxray hooks)",
        ));
    }
    if args.ret {
        // The exit hooks of the entry hooks being traced.
        for h in available_hooks(kbtf, true) {
            if h.group == hook::Group::Ret && !hooks.contains(&h) {
                hooks.push(h);
            }
        }
    }
    Ok((hooks, required))
}

/// Interface hooks need -i; the privileges the hooks need.
fn check_scope(
    args: &TraceArgs,
    hooks: &[&'static HookPoint],
    required: &[u16],
    ifindex: u32,
) -> Result<()> {
    if ifindex == 0 {
        if let Some(h) = hooks
            .iter()
            .find(|h| matches!(h.backend, Backend::Tc { .. } | Backend::Xdp))
        {
            if required.contains(&h.id) || args.hooks.iter().any(|w| w == "tc" || w == "xdp") {
                return Err(Error::usage(format!(
                    "{} attaches to one interface: give it with -i IFACE (and --netns NS)",
                    h.name
                )));
            }
        }
    }
    crate::kernel::caps::require_bpf_privileges()?;
    if let Some(h) = hooks.iter().find(|h| {
        matches!(
            h.backend,
            Backend::Tc { .. } | Backend::Xdp | Backend::Netfilter { .. }
        )
    }) {
        crate::kernel::caps::require_net_admin(&format!("the {} hooks", h.group.name()))?;
    }
    Ok(())
}

/// What decoding needs: names, reasons, symbols, --stack's map.
fn context(
    cfg: &TraceConfig,
    kbtf: &KernelBtf,
    session: &mut TraceSession,
    nft: Option<NftWatch>,
) -> Result<Context> {
    let stacks = if cfg.stack_hooks != 0 {
        Some(Stacks {
            map: session.take_stacks()?,
            seen: HashMap::new(),
        })
    } else {
        None
    };
    let needs_syms = stacks.is_some()
        || cfg
            .hooks
            .iter()
            .any(|h| h.id == hook_id::KFREE_SKB || h.id == hook_id::CONSUME_SKB);
    Ok(Context {
        names: Names::new(),
        strings: NameCache::default(),
        drops: names_of(kbtf.drop_reasons()),
        rsts: names_of(kbtf.enum_names("sk_rst_reason", "SK_RST_REASON_")),
        syms: if needs_syms {
            LazyKallsyms::spawn()
        } else {
            LazyKallsyms::default()
        },
        stacks,
        wall_offset: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC),
        nft,
        nft_shown: 0,
    })
}

fn log_attached(session: &TraceSession) {
    tracing::info!(
        "tracing {} hooks ({}){}",
        session.attached.len(),
        session
            .attached
            .iter()
            .map(|h| h.event())
            .collect::<Vec<_>>()
            .join(","),
        if session.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} skipped", session.skipped.len())
        }
    );
}

/// The printer the output thread makes: lines, JSON or journeys.
fn printer_maker(args: &TraceArgs) -> impl FnOnce() -> Box<dyn Printer> + Send + 'static {
    let (journey, format, detail, map, max_journeys, count) = (
        args.journey,
        args.output.output,
        args.detail,
        args.map,
        args.max_journeys,
        args.run.count,
    );
    move || -> Box<dyn Printer> {
        let stdout = io::stdout().lock();
        let out = io::BufWriter::with_capacity(1 << 16, stdout);
        match (journey, format) {
            (true, format) => Box::new(
                JourneyPrinter::new(
                    out,
                    JourneyStyle {
                        json: format == OutputFormat::Json,
                        detail,
                        map: map.is_some(),
                        map_each: map == Some(MapWhen::Each),
                    },
                    JourneyConfig {
                        max_in_flight: max_journeys.max(1),
                        ..JourneyConfig::default()
                    },
                )
                .with_limit(count),
            ),
            (false, OutputFormat::Json) => Box::new(JsonPrinter::new(out)),
            (false, OutputFormat::Text) => Box::new(TextPrinter::new(out)),
        }
    }
}

/// The trace as a job of the run driver.
struct TraceJob {
    ring: EventRing,
    session: TraceSession,
    ctx: Context,
    printer: Box<dyn Printer>,
    st: LoopState,
    /// Kernel losses already warned about.
    last_lost: u64,
    last_clobbered: u64,
}

impl TraceJob {
    /// After the run: what is still held, the summary, everything detached
    /// before it is reported.
    fn finish(self, stop: Stop, unit: &str) {
        let TraceJob {
            session,
            mut ctx,
            mut printer,
            st: mut state,
            ..
        } = self;
        // Context records still waiting for their packet.
        state.correlator.release(u64::MAX, &mut state.ready);
        let _ = print_ready(printer.as_mut(), &mut state);
        if stop != Stop::ClosedStdout {
            let _ = printer.finish();
        }
        state.shown = printer.shown().unwrap_or(state.shown);
        let _ = printer.flush();
        let counters = session.counters().unwrap_or_default();
        drop(session); // detach everything before reporting
        let nft_note = ctx
            .nft
            .take()
            .map(|w| w.summary(&format!("{} nftables trace lines shown", ctx.nft_shown)));
        if let Some(note) = printer.summary_note() {
            tracing::info!("{note}");
        }
        if let Some(note) = nft_note {
            tracing::info!("{note}");
        }
        summary(&state, &counters, stop, unit);
    }
}

impl Job for TraceJob {
    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.ring.as_raw_fd())
    }

    fn drain(&mut self) -> Result<Flow> {
        let done = poll_nft(&mut self.ctx, self.printer.as_mut())
            .and_then(|()| {
                drain(
                    &mut self.ring,
                    &mut self.ctx,
                    self.printer.as_mut(),
                    &mut self.st,
                )
            })
            .map_err(run::output)?;
        Ok(if done {
            Flow::Stop
        } else if self.st.more {
            Flow::More
        } else {
            Flow::Go
        })
    }

    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// The status tick: journeys that went quiet, --count, namespaces
    /// created since, losses.
    fn every(&mut self, _: Duration) -> Result<Flow> {
        // Journeys that went quiet end now, not at the next event.
        let now = self
            .ctx
            .wall_ns(clock_ns(libc::CLOCK_MONOTONIC).max(0) as u64);
        // A write error found by the output thread comes back at any call:
        // a closed stdout here too is the end of the run.
        self.printer
            .idle(now)
            .and_then(|()| self.printer.flush())
            .map_err(run::output)?;
        if let Some(n) = self.printer.shown() {
            self.st.shown = n;
            if self.st.limit.is_some_and(|l| n >= l) {
                return Ok(Flow::Stop);
            }
        }
        // Namespaces created since: their netfilter hooks too.
        for ns in self.session.refresh_netfilter() {
            tracing::info!(
                "netfilter hooks now watched in namespace {} (inode {})",
                ns.path.display(),
                ns.inode
            );
        }
        if let Ok(c) = self.session.counters() {
            let lost: u64 = c.iter().map(|c| c.lost).sum();
            if lost > self.last_lost {
                tracing::warn!(
                    "{} events lost in the kernel in the last second (ring buffer full; {} in all): \
                     use a larger --ring-size or a narrower filter",
                    lost - self.last_lost,
                    lost
                );
                self.last_lost = lost;
            }
            let clobbered: u64 = c.iter().map(|c| c.clobbered).sum();
            if clobbered > self.last_clobbered {
                tracing::warn!(
                    "{} records lost in the kernel in the last second ({} in all): \
                     another program on the same CPU (an interrupt's softirq) \
                     overwrote them while they were built",
                    clobbered - self.last_clobbered,
                    clobbered
                );
                self.last_clobbered = clobbered;
            }
        }
        Ok(Flow::Go)
    }

    fn end(&mut self, _: Stop, _: Duration) -> Result<()> {
        // What the ring still holds, unless --count was reached.
        if self.st.limit.is_none_or(|l| self.st.shown < l) {
            drain_all(
                &mut self.ring,
                &mut self.ctx,
                self.printer.as_mut(),
                &mut self.st,
            );
        }
        Ok(())
    }
}

struct LoopState {
    correlator: Correlator,
    /// Events released by the correlator, to print.
    ready: Vec<TraceEvent>,
    latest_ts: u64,
    /// Names of the hooks to show.
    shown: u64,
    decode_errors: u64,
    limit: Option<u64>,
    hooks: Vec<&'static str>,
    /// The last drain stopped at DRAIN_BATCH with records left.
    more: bool,
}

/// Records handled per drain before going back to the event loop: under a
/// sustained flood the ring never empties, and signals, --duration and the
/// loss warnings must still get their turn.
const DRAIN_BATCH: u32 = 16384;

/// Drain the ring buffer (at most [`DRAIN_BATCH`] records: `st.more` says
/// whether some were left); Ok(true) when the count is reached.
fn drain(
    ring: &mut EventRing,
    ctx: &mut Context,
    printer: &mut dyn Printer,
    st: &mut LoopState,
) -> std::result::Result<bool, io::Error> {
    let mut outcome = Ok(false);
    let mut seen = 0u32;
    let handed = ring.drain(|rec| {
        seen += 1;
        let go_on = match Event::decode(rec) {
            Ok(ev) => {
                let te = TraceEvent::from_raw(&ev, ctx);
                st.latest_ts = st.latest_ts.max(te.ts_ns);
                st.correlator
                    .push(te, ev.hdr.hook, ev.hdr.cpu, ev.hdr.skb, &mut st.ready);
                outcome = print_ready(printer, st);
                matches!(outcome, Ok(false))
            }
            Err(e) => {
                st.decode_errors += 1;
                if st.decode_errors == 1 {
                    tracing::warn!("undecodable record: {e}");
                }
                true
            }
        };
        go_on && seen < DRAIN_BATCH
    });
    st.more = seen >= DRAIN_BATCH;
    if !matches!(outcome, Ok(false)) {
        return outcome;
    }
    st.correlator.release(st.latest_ts, &mut st.ready);
    if print_ready(printer, st)? {
        return Ok(true);
    }
    if handed > 0 {
        printer.flush()?;
    }
    Ok(false)
}

/// `--nft-trace`: print the rule verdicts waiting. A socket that fails is
/// reported and given up; the trace goes on.
fn poll_nft(ctx: &mut Context, printer: &mut dyn Printer) -> io::Result<()> {
    let Context {
        nft,
        names,
        nft_shown,
        ..
    } = ctx;
    let Some(watch) = nft else { return Ok(()) };
    let mut res = Ok(());
    let polled = watch.poll(names, |ev| {
        if res.is_ok() {
            res = printer.nft(&ev);
            *nft_shown += 1;
        }
    });
    if let Err(e) = polled {
        tracing::warn!("--nft-trace stopped: {e}");
        *nft = None;
    }
    res
}

/// The last drains before exiting: what the ring holds, in batches, but not
/// for ever if the traced traffic goes on (at most as many records as the
/// ring can hold).
fn drain_all(
    ring: &mut EventRing,
    ctx: &mut Context,
    printer: &mut dyn Printer,
    st: &mut LoopState,
) {
    let _ = poll_nft(ctx, printer);
    let most = ring.size() / (netxray_abi::EVENT_HDR_SIZE as u64 + 8);
    for _ in 0..=most / u64::from(DRAIN_BATCH) {
        match drain(ring, ctx, printer, st) {
            Ok(false) if st.more => {}
            _ => return,
        }
    }
}

/// Print what the correlator released; Ok(true) once --count is reached.
fn print_ready(printer: &mut dyn Printer, st: &mut LoopState) -> io::Result<bool> {
    let LoopState {
        ready,
        shown,
        limit,
        hooks,
        ..
    } = st;
    // Drained in place: the vector keeps its capacity from one event to the
    // next; whatever is left when we stop early is dropped, as before.
    for te in ready.drain(..) {
        if limit.is_some_and(|l| *shown >= l) {
            return Ok(true);
        }
        if !hooks.contains(&te.hook) {
            continue;
        }
        printer.event_owned(te)?;
        *shown = printer.shown().unwrap_or(*shown + 1);
        if limit.is_some_and(|l| *shown >= l) {
            printer.flush()?;
            return Ok(true);
        }
    }
    Ok(false)
}

fn summary(st: &LoopState, counters: &[Counter], stop: Stop, unit: &str) {
    let mut total = Counter::default();
    for c in counters {
        total += *c;
    }
    let why = stop.word();
    let mut err = io::stderr().lock();
    let _ = writeln!(
        err,
        "netxray: {why}: {} {unit} shown; kernel: {} hook hits, {} filtered out, {} sent, {} lost (ring buffer full){}{}{}",
        st.shown,
        total.hits,
        total.hits - total.matched,
        total.emitted,
        total.lost,
        if total.stack_lost > 0 { format!(", {} stacks lost (stack map full)", total.stack_lost) } else { String::new() },
        if total.clobbered > 0 { format!(", {} lost to an interrupting program (same CPU)", total.clobbered) } else { String::new() },
        if st.decode_errors > 0 { format!(", {} undecodable", st.decode_errors) } else { String::new() }
    );
    for (id, c) in counters.iter().enumerate() {
        if c.hits > 0 {
            let name = HookPoint::by_id(id as u16).map_or("?", |h| h.name);
            tracing::debug!(
                "{name}: hits {} matched {} sent {} lost {}",
                c.hits,
                c.matched,
                c.emitted,
                c.lost
            );
        }
    }
}
