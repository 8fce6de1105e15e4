//! `netxray hooks`: the hook tree, marked available or not on this kernel.

use crate::cli::{HooksArgs, OutputFormat};
use crate::error::{Error, Result};
use crate::kernel::btf::KernelBtf;
use crate::kernel::loadcheck::{self, Device, Outcome};
use crate::kernel::netns;
use crate::kernel::tc::{self, TcPath};
use crate::kernel::trace::{hook_available, hook_lacks};
use crate::model::hook::{Backend, Group, HookPoint, HOOKS};
use std::io::Write;
use std::process::ExitCode;

pub fn run(args: HooksArgs) -> Result<ExitCode> {
    if args.load {
        return load(&args);
    }
    let btf = KernelBtf::load().ok();
    let avail = |h: &HookPoint| btf.as_ref().map(|b| hook_available(b, h));
    let lacks = |h: &HookPoint| btf.as_ref().and_then(|b| hook_lacks(b, h));
    // tc hooks: through tcx, or legacy tc on kernels without it.
    let tc_path = btf.as_ref().map(|b| tc::path(Some(b)));
    let via = |h: &HookPoint| match (h.backend, tc_path) {
        (Backend::Tc { .. }, Some(TcPath::Tcx)) => Some("tcx"),
        (Backend::Tc { .. }, Some(TcPath::Legacy)) => Some("clsact"),
        _ => None,
    };
    let mut out = std::io::stdout().lock();
    let w = |e: std::io::Error| Error::io("writing output", e);
    match args.output.output {
        OutputFormat::Json => {
            for h in HOOKS {
                let v = serde_json::json!({
                    "hook": h.name, "group": h.group.name(), "backend": h.backend,
                    "available": avail(h), "via": via(h), "note": h.note,
                    "kernel_lacks": lacks(h),
                });
                writeln!(out, "{v}").map_err(w)?;
            }
        }
        OutputFormat::Text => {
            writeln!(
                out,
                "all: every hook netxray knows ({})",
                if btf.is_some() {
                    "checked against this kernel's BTF"
                } else {
                    "no BTF: availability unknown"
                }
            )
            .map_err(w)?;
            for g in Group::ALL {
                writeln!(out, "  {}: {}", g.name(), g.about()).map_err(w)?;
                for h in HOOKS.iter().filter(|h| h.group == g) {
                    let mark = match avail(h) {
                        Some(true) => "ok",
                        Some(false) => "MISSING",
                        None => "?",
                    };
                    let legacy = if via(h) == Some("clsact") {
                        " [no tcx in this kernel: through legacy tc, clsact + cls_bpf]".to_string()
                    } else if let Some(what) = lacks(h) {
                        format!(" [this kernel lacks {what}]")
                    } else {
                        String::new()
                    };
                    writeln!(out, "    {:<34} {:<8} {}{legacy}", h.name, mark, h.note)
                        .map_err(w)?;
                }
            }
            writeln!(
                out,
                "\nSelect with -t/--hooks GROUP|HOOK[,...]; default: every available hook but the ret and netfilter groups (the word `default` selects that set)."
            )
            .map_err(w)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `hooks --load`: every program loaded and attached, one line each.
fn load(args: &HooksArgs) -> Result<ExitCode> {
    let kbtf = KernelBtf::load().map_err(|_| Error::NoBtf)?;
    crate::kernel::caps::require_bpf_privileges()?;
    let dev = match &args.iface {
        Some(name) => {
            let ns = match &args.netns {
                Some(spec) => netns::resolve(spec)?,
                None => netns::current()?,
            };
            let ifindex = netns::ifindex(&ns, name)?;
            Some(Device {
                ns,
                ifindex,
                name: name.clone(),
            })
        }
        None => None,
    };
    let checks = loadcheck::check_all(&kbtf, dev.as_ref());
    let mut out = std::io::stdout().lock();
    let w = |e: std::io::Error| Error::io("writing output", e);
    for c in &checks {
        match args.output.output {
            OutputFormat::Json => {
                let v = serde_json::to_string(c).map_err(|e| Error::io("json", e.into()))?;
                writeln!(out, "{v}").map_err(w)?;
            }
            OutputFormat::Text => {
                let (mark, detail) = match &c.outcome {
                    Outcome::Ok => ("ok", ""),
                    Outcome::Missing(d) => ("missing", d.as_str()),
                    Outcome::Refused(d) => ("REFUSED", d.as_str()),
                    Outcome::Skipped(d) => ("skipped", d.as_str()),
                    Outcome::Failed(d) => ("FAILED", d.as_str()),
                };
                let f = if c.filtered { "filter" } else { "-" };
                writeln!(
                    out,
                    "{:<6} {:<34} {:<6} {:<8} {}",
                    c.area, c.hook, f, mark, detail
                )
                .map_err(w)?;
            }
        }
    }
    let bad = checks.iter().filter(|c| c.outcome.is_failure()).count();
    let ok = checks.iter().filter(|c| c.outcome == Outcome::Ok).count();
    if bad > 0 {
        eprintln!(
            "netxray: {bad} of {} programs failed to load or attach ({ok} ok); run with -vv for the verifier's log",
            checks.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    eprintln!(
        "netxray: every program loads here: {ok} ok, {} not on this kernel or not tried",
        checks.len() - ok
    );
    Ok(ExitCode::SUCCESS)
}
