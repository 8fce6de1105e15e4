//! Load and attach every program netxray has, on this kernel, and say for
//! each whether it works, whether the kernel lacks what it needs, or whether
//! the kernel refused netxray's program (a netxray bug). `netxray hooks
//! --load` prints it and `netxray doctor` bases its verdict on it: a hook
//! that `hooks` calls ok must really load.
//!
//! Each object is loaded twice: without a filter and with one spliced in
//! (the spliced code is what runs when the user gives an expression, and
//! the verifier sees a different program). The tc, XDP and netfilter
//! programs are attached for the moment of the check only: to the interface
//! given (`-i`), or to `lo` of a throwaway namespace, so that the host's
//! interfaces and netfilter hooks are never touched.

use crate::kernel::btf::KernelBtf;
use crate::kernel::conn::{ConnConfigArgs, ConnSession, TOP_TRACEPOINTS};
use crate::kernel::l7::{L7ConfigArgs, L7Session, Transports};
use crate::kernel::netns::{self, Netns};
use crate::kernel::session::AttachError;
use crate::kernel::stats::{StatsConfig, StatsSession, XdpMode};
use crate::kernel::trace::{TraceConfig, TraceSession};
use crate::model::hook::{Backend, HOOKS};
use netxray_filter::Filter;

/// A filter that exercises the spliced code: addresses, ports, protocols.
/// Runs of eight alternatives: the programs are also checked with set
/// lookups (nx_filter_sets), in IPv4, IPv6 and ports.
const CHECK_FILTER: &str = "host (198.18.0.1 or 198.18.0.2 or 198.18.0.3 or 198.18.0.4 or 198.18.0.5 or 198.18.0.6 or 198.18.0.7 or 198.18.0.8) and (tcp port (80 or 81 or 82 or 83 or 84 or 85 or 86 or 87) or udp or icmp) or ip6 and net (2001:db8:0::/48 or 2001:db8:1::/48 or 2001:db8:2::/48 or 2001:db8:3::/48 or 2001:db8:4::/48 or 2001:db8:5::/48 or 2001:db8:6::/48 or 2001:db8:7::/48)";

pub use crate::model::doctor::{Outcome, ProgramCheck};

/// What an attach error means for the load check.
fn outcome_of(e: &AttachError) -> Outcome {
    match e {
        AttachError::Missing(_) => Outcome::Missing(e.to_string()),
        AttachError::Refused { .. } => Outcome::Refused(e.to_string()),
        AttachError::Failed(_) => Outcome::Failed(e.to_string()),
    }
}

/// Where the interface-bound programs (tc, XDP) go.
#[derive(Debug, Clone)]
pub struct Device {
    pub ns: Netns,
    pub ifindex: u32,
    pub name: String,
}

/// Load and attach every program, each object without and with a filter,
/// the interface-bound ones on `dev` or, without one, on `lo` of a
/// throwaway namespace.
pub fn check_all(kbtf: &KernelBtf, dev: Option<&Device>) -> Vec<ProgramCheck> {
    if let Some(dev) = dev {
        return check_on(kbtf, Some(dev));
    }
    netns::throwaway(|ns| {
        let lo = Device {
            ns: ns.clone(),
            ifindex: LO_IFINDEX,
            name: "lo".into(),
        };
        check_on(kbtf, Some(&lo))
    })
    .unwrap_or_else(|e| {
        // No namespace of our own (no CAP_SYS_ADMIN): tracepoints only.
        tracing::debug!("no throwaway namespace ({e}): interface programs not tried");
        check_on(kbtf, None)
    })
}

/// `lo` is the first interface of every namespace.
const LO_IFINDEX: u32 = 1;

fn check_on(kbtf: &KernelBtf, dev: Option<&Device>) -> Vec<ProgramCheck> {
    let filter = Filter::parse(CHECK_FILTER)
        .ok()
        .and_then(|f| f.to_ebpf().ok().flatten());
    let mut out = Vec::new();
    for f in [None, filter] {
        trace(kbtf, dev, f.clone(), &mut out);
        conn(kbtf, f.clone(), &mut out);
        l7(kbtf, f.clone(), &mut out);
        stats(dev, f, &mut out);
    }
    out
}

/// One line for doctor: (ok, detail). Not ok when a program was refused or
/// failed; the detail names them and the hooks this kernel lacks.
pub fn summary(checks: &[ProgramCheck]) -> (bool, String) {
    let names = |pred: &dyn Fn(&Outcome) -> bool| {
        // Each object is checked twice (without and with a filter): a hook
        // is named once.
        let mut v: Vec<String> = Vec::new();
        for c in checks.iter().filter(|c| pred(&c.outcome)) {
            if !v.contains(&c.hook) {
                v.push(c.hook.clone());
            }
        }
        v
    };
    let ok = checks.iter().filter(|c| c.outcome == Outcome::Ok).count();
    let bad = names(&|o| o.is_failure());
    let missing = names(&|o| matches!(o, Outcome::Missing(_)));
    let mut detail = format!("{ok} of {} load and attach", checks.len());
    if !missing.is_empty() {
        detail.push_str(&format!("; this kernel lacks {}", missing.join(", ")));
    }
    if !bad.is_empty() {
        detail.push_str(&format!(
            "; REFUSED or FAILED (a netxray bug: `netxray -vv hooks --load` says why): {}",
            bad.join(", ")
        ));
    }
    (bad.is_empty(), detail)
}

fn push(out: &mut Vec<ProgramCheck>, area: &'static str, hook: &str, f: bool, outcome: Outcome) {
    out.push(ProgramCheck {
        area,
        hook: hook.to_string(),
        filtered: f,
        outcome,
    });
}

fn trace(
    kbtf: &KernelBtf,
    dev: Option<&Device>,
    filter_bpf: Option<netxray_filter::ebpf::Compiled>,
    out: &mut Vec<ProgramCheck>,
) {
    let f = filter_bpf.is_some();
    let mut hooks = Vec::new();
    for h in HOOKS {
        if matches!(h.backend, Backend::Tc { .. } | Backend::Xdp) && dev.is_none() {
            push(
                out,
                "trace",
                h.name,
                f,
                Outcome::Skipped("attaches to an interface: give one with -i".into()),
            );
            continue;
        }
        hooks.push(h);
    }
    let cfg = TraceConfig {
        hooks: hooks.clone(),
        required: Vec::new(),
        netns: 0,
        netns_at: dev.map(|d| d.ns.clone()),
        ifindex: dev.map_or(0, |d| d.ifindex),
        tgid: 0,
        filter_bpf,
        ring_bytes: 1 << 16,
        snaplen: 128,
        follow_ns: 1_000_000,
        stack_hooks: 1,
        ret: true,
        drops: false,
        nf_attribution: false,
        xdp: Some(XdpMode::Generic),
    };
    match TraceSession::open(&cfg, kbtf) {
        Ok(session) => {
            for h in &hooks {
                let outcome = match session.skipped.iter().find(|(s, _)| s.id == h.id) {
                    Some((_, why)) => outcome_of(why),
                    None if session.attached.iter().any(|a| a.id == h.id) => Outcome::Ok,
                    None => Outcome::Failed("neither attached nor skipped".into()),
                };
                push(out, "trace", h.name, f, outcome);
            }
        }
        Err(e) => push(
            out,
            "trace",
            "trace.bpf.o",
            f,
            Outcome::Failed(e.to_string()),
        ),
    }
}

fn conn(
    kbtf: &KernelBtf,
    filter_bpf: Option<netxray_filter::ebpf::Compiled>,
    out: &mut Vec<ProgramCheck>,
) {
    let f = filter_bpf.is_some();
    // --top needs the sock:sock_{send,recv}_length tracepoints (6.3+): without
    // them conn runs, conn --top says what is missing.
    let top = TOP_TRACEPOINTS.iter().all(|t| kbtf.has_tracepoint(t));
    if !top {
        for t in TOP_TRACEPOINTS {
            let why = AttachError::Missing(format!("the tracepoint {t} (conn --top)"));
            push(out, "conn", t, f, outcome_of(&why));
        }
    }
    let cfg = ConnConfigArgs {
        netns: 0,
        states: true,
        events: true,
        listen: true,
        ring_bytes: 1 << 16,
        max_conns: 1024,
        top,
        filter_bpf,
    };
    match ConnSession::open(&cfg, kbtf) {
        Ok(session) => {
            for name in &session.attached {
                push(out, "conn", name, f, Outcome::Ok);
            }
            for (name, why) in &session.skipped {
                push(out, "conn", name, f, outcome_of(why));
            }
        }
        Err(e) => push(out, "conn", "conn.bpf.o", f, outcome_of_error(&e)),
    }
}

/// netxray dns / http: every system call's entry and return, both
/// transports.
fn l7(
    kbtf: &KernelBtf,
    filter_bpf: Option<netxray_filter::ebpf::Compiled>,
    out: &mut Vec<ProgramCheck>,
) {
    let f = filter_bpf.is_some();
    let cfg = L7ConfigArgs {
        netns: 0,
        tgid: 0,
        comm: Some("netxray-check".into()),
        transports: Transports {
            tcp: true,
            udp: true,
        },
        cap_bytes: 1024,
        ring_bytes: 1 << 16,
        filter_bpf,
    };
    match L7Session::open(&cfg, kbtf) {
        Ok(session) => {
            for name in &session.attached {
                push(out, "l7", name, f, Outcome::Ok);
            }
            for (call, why) in &session.skipped {
                push(out, "l7", &format!("syscalls:{call}"), f, outcome_of(why));
            }
        }
        Err(e) => push(out, "l7", "l7.bpf.o", f, outcome_of_error(&e)),
    }
}

/// A session that could not open at all: refused (a netxray bug) or failed.
fn outcome_of_error(e: &crate::error::Error) -> Outcome {
    let msg = e.to_string();
    if msg.contains("netxray bug") {
        Outcome::Refused(msg)
    } else {
        Outcome::Failed(msg)
    }
}

fn stats(
    dev: Option<&Device>,
    filter_bpf: Option<netxray_filter::ebpf::Compiled>,
    out: &mut Vec<ProgramCheck>,
) {
    let f = filter_bpf.is_some();
    let Some(dev) = dev else {
        push(
            out,
            "stats",
            "stats.bpf.o",
            f,
            Outcome::Skipped("attaches to an interface: give one with -i".into()),
        );
        return;
    };
    let cfg = StatsConfig {
        filter_bpf,
        flows: 1024,
        xdp: Some(XdpMode::Generic),
        ns: dev.ns.clone(),
        only: vec![dev.name.clone()],
    };
    let outcome = match StatsSession::open(cfg) {
        Ok(mut s) => match s.refresh() {
            Ok(notes) => match notes
                .iter()
                .find(|n| n.contains("cannot attach") || n.contains("no XDP"))
            {
                Some(n) => Outcome::Failed(n.clone()),
                None if s.watched.values().any(|w| w.xdp) => Outcome::Ok,
                None => Outcome::Failed(format!(
                    "not attached to {}: {}",
                    dev.name,
                    notes.join("; ")
                )),
            },
            Err(e) => Outcome::Failed(e.to_string()),
        },
        Err(e) => Outcome::Failed(e.to_string()),
    };
    push(
        out,
        "stats",
        "stats_tc_ingress,stats_tc_egress,stats_xdp",
        f,
        outcome,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_filter_has_sets_of_every_kind() {
        let c = Filter::parse(CHECK_FILTER)
            .expect("parses")
            .to_ebpf()
            .expect("compiles")
            .expect("a filter");
        // 8 hosts, 8 ports, 8 nets: three sets.
        assert_eq!(c.sets.len(), 24);
        let ids: std::collections::BTreeSet<u8> = c.sets.iter().map(|e| e.data[3]).collect();
        assert_eq!(ids.len(), 3);
    }
}
