//! `netxray trace`: CLI flags -> TraceConfig -> TraceSession -> decode ->
//! printer, until Ctrl-C, SIGTERM, --count, --duration or a closed stdout.

use crate::cli::{MapWhen, OutputFormat, TraceArgs};
use crate::cmd::filter as cmd_filter;
use crate::cmd::nft_trace::NftWatch;
use crate::error::{Error, Result};
use crate::kernel::btf::KernelBtf;
use crate::kernel::kallsyms::Kallsyms;
use crate::kernel::netns::Names;
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
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};

struct Context {
    names: Names,
    strings: NameCache,
    drops: HashMap<i64, Name>,
    rsts: HashMap<i64, Name>,
    syms: Kallsyms,
    stacks: Option<Stacks>,
    wall_offset: i128,
    /// `--nft-trace`.
    nft: Option<NftWatch>,
    nft_shown: u64,
}

fn names_of(m: HashMap<i64, String>) -> HashMap<i64, Name> {
    m.into_iter().map(|(k, v)| (k, Name::from(v))).collect()
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

/// Why the loop ended.
enum Stop {
    Done,
    Signal,
    ClosedStdout,
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
    let filter = cmd_filter::build(&args.expression, &args.filter)?;
    let filter_bpf = filter
        .to_ebpf()
        .map_err(|e| Error::usage(format!("bad filter: {e}")))?;
    let kbtf = KernelBtf::load().map_err(|_| Error::NoBtf)?;
    let (mut hooks, required) = if args.hooks.is_empty() {
        (available_hooks(&kbtf, args.ret), Vec::new())
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
        for h in available_hooks(&kbtf, true) {
            if h.group == hook::Group::Ret && !hooks.contains(&h) {
                hooks.push(h);
            }
        }
    }
    let scope = cmd_filter::scope(&args.filter)?;
    if scope.ifindex == 0 {
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

    let hooks_for_stack = hooks.clone();
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
        stack_hooks: stack_hooks(args.stack.as_deref(), &hooks_for_stack)?,
        ret: args.ret,
        drops: false,
        nf_attribution: args.nf_attribution,
        xdp: args.xdp.map(Into::into),
    };
    let mut session = TraceSession::open(&cfg, &kbtf)?;
    // Before the ready file: the tables and the subscription are in place.
    let nft = if args.nft_trace {
        Some(NftWatch::open(&args.filter, &filter, &scope)?)
    } else {
        None
    };
    for (h, why) in &session.skipped {
        tracing::warn!("skipping {}: {why}", h.name);
    }
    let shown: Vec<&'static str> = cfg.hooks.iter().map(|h| h.name).collect();
    let ring = session.take_ring()?;
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
    let mut ctx = Context {
        names: Names::new(),
        strings: NameCache::default(),
        drops: names_of(kbtf.drop_reasons()),
        rsts: names_of(kbtf.enum_names("sk_rst_reason", "SK_RST_REASON_")),
        syms: if needs_syms {
            Kallsyms::load()
        } else {
            Kallsyms::default()
        },
        stacks,
        wall_offset: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC),
        nft,
        nft_shown: 0,
    };
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

    // Rendering and writing run on a thread of their own (output/threaded.rs).
    let (journey, format, detail, map, max_journeys, count) = (
        args.journey,
        args.output.output,
        args.detail,
        args.map,
        args.max_journeys,
        args.count,
    );
    let make = move || -> Box<dyn Printer> {
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
    };
    let mut printer: Box<dyn Printer> = Box::new(
        ThreadedPrinter::spawn(make).map_err(|e| Error::io("starting the output thread", e))?,
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the event loop", e))?;
    // Signal handlers before the ready file: a script may send SIGINT as soon
    // as it sees the file.
    let signals = {
        let _rt = rt.enter();
        let int = signal(SignalKind::interrupt())
            .map_err(|e| Error::io("installing SIGINT handler", e))?;
        let term = signal(SignalKind::terminate())
            .map_err(|e| Error::io("installing SIGTERM handler", e))?;
        (int, term)
    };
    if let Some(path) = &args.ready_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| Error::io(format!("writing --ready-file {}", path.display()), e))?;
    }
    let mut state = LoopState {
        correlator: Correlator::new(cfg.hooks.iter().any(|h| h.is_context())),
        ready: Vec::new(),
        latest_ts: 0,
        shown: 0,
        decode_errors: 0,
        limit: args.count,
        hooks: shown,
        more: false,
    };
    let stop = rt.block_on(event_loop(
        ring,
        signals,
        &mut session,
        &mut ctx,
        printer.as_mut(),
        &mut state,
        args.duration,
    ))?;
    // Context records still waiting for their packet.
    state.correlator.release(u64::MAX, &mut state.ready);
    let _ = print_ready(printer.as_mut(), &mut state);
    if !matches!(stop, Stop::ClosedStdout) {
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
    let unit = if args.journey { "journeys" } else { "events" };
    if let Some(note) = printer.summary_note() {
        tracing::info!("{note}");
    }
    if let Some(note) = nft_note {
        tracing::info!("{note}");
    }
    summary(&state, &counters, &stop, unit);
    Ok(ExitCode::SUCCESS)
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

async fn event_loop(
    ring: EventRing,
    signals: (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
    session: &mut TraceSession,
    ctx: &mut Context,
    printer: &mut dyn Printer,
    st: &mut LoopState,
    duration: Option<f64>,
) -> Result<Stop> {
    // SAFETY: the ring buffer owns its map fd, which stays open and the same
    // for as long as the AsyncFd owns the ring buffer.
    let mut afd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| Error::io("polling the ring buffer", e.into()))?;
    let (mut sigint, mut sigterm) = signals;
    // The kernel side wakes us only when the ring fills up: drain on a short
    // timer otherwise (a wake-up per event costs more than the event).
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status = tokio::time::interval(Duration::from_secs(1));
    let deadline =
        duration.map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let sleep_until = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep_until);
    let mut last_lost = 0u64;
    let mut last_clobbered = 0u64;
    let mut ticks = 0u32;

    loop {
        let done = tokio::select! {
            _ = sigint.recv() => {
                drain_all(afd.get_mut(), ctx, printer, st);
                return Ok(Stop::Signal);
            }
            _ = sigterm.recv() => {
                drain_all(afd.get_mut(), ctx, printer, st);
                return Ok(Stop::Signal);
            }
            _ = &mut sleep_until => {
                drain_all(afd.get_mut(), ctx, printer, st);
                return Ok(Stop::Done);
            }
            guard = afd.readable_mut() => {
                let mut guard = guard.map_err(|e| Error::io("polling the ring buffer", e))?;
                let r = drain(guard.get_inner_mut(), ctx, printer, st);
                guard.clear_ready();
                r
            }
            // Records left by a drain that stopped at its batch size.
            _ = std::future::ready(()), if st.more => drain(afd.get_mut(), ctx, printer, st),
            _ = tick.tick() => {
                ticks += 1;
                if ticks.is_multiple_of(20) && stdout_closed() {
                    return Ok(Stop::ClosedStdout);
                }
                poll_nft(ctx, printer).and_then(|()| drain(afd.get_mut(), ctx, printer, st))
            }
            _ = status.tick() => {
                // Journeys that went quiet end now, not at the next event.
                let now = ctx.wall_ns(clock_ns(libc::CLOCK_MONOTONIC).max(0) as u64);
                // A write error found by the output thread comes back at any
                // call: a closed stdout here too is the end of the run.
                match printer.idle(now).and_then(|()| printer.flush()) {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                        return Ok(Stop::ClosedStdout)
                    }
                    Err(e) => return Err(Error::io("writing output", e)),
                    Ok(()) => {}
                }
                if let Some(n) = printer.shown() {
                    st.shown = n;
                    if st.limit.is_some_and(|l| n >= l) {
                        return Ok(Stop::Done);
                    }
                }
                // Namespaces created since: their netfilter hooks too.
                for ns in session.refresh_netfilter() {
                    tracing::info!(
                        "netfilter hooks now watched in namespace {} (inode {})",
                        ns.path.display(),
                        ns.inode
                    );
                }
                if let Ok(c) = session.counters() {
                    let lost: u64 = c.iter().map(|c| c.lost).sum();
                    if lost > last_lost {
                        tracing::warn!(
                            "{} events lost in the kernel in the last second (ring buffer full; {} in all): \
                             use a larger --ring-size or a narrower filter",
                            lost - last_lost, lost
                        );
                        last_lost = lost;
                    }
                    let clobbered: u64 = c.iter().map(|c| c.clobbered).sum();
                    if clobbered > last_clobbered {
                        tracing::warn!(
                            "{} records lost in the kernel in the last second ({} in all): \
                             another program on the same CPU (an interrupt's softirq) \
                             overwrote them while they were built",
                            clobbered - last_clobbered, clobbered
                        );
                        last_clobbered = clobbered;
                    }
                }
                Ok(false)
            }
        };
        match done {
            Ok(true) => return Ok(Stop::Done),
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(Stop::ClosedStdout),
            Err(e) => return Err(Error::io("writing output", e)),
        }
    }
}

fn summary(st: &LoopState, counters: &[Counter], stop: &Stop, unit: &str) {
    let mut total = Counter::default();
    for c in counters {
        total += *c;
    }
    let why = match stop {
        Stop::Done => "done",
        Stop::Signal => "interrupted",
        Stop::ClosedStdout => "output closed",
    };
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
