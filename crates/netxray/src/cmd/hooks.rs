//! `netxray hooks`: the hook tree, marked available or not on this kernel.

use crate::cli::{HooksArgs, OutputFormat};
use crate::error::{Error, Result};
use crate::kernel::btf::KernelBtf;
use crate::kernel::tc::{self, TcPath};
use crate::kernel::trace::hook_available;
use crate::model::hook::{Backend, Group, HookPoint, HOOKS};
use std::io::Write;
use std::process::ExitCode;

pub fn run(args: HooksArgs) -> Result<ExitCode> {
    let btf = KernelBtf::load().ok();
    let avail = |h: &HookPoint| btf.as_ref().map(|b| hook_available(b, h));
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
                        " [no tcx in this kernel: through legacy tc, clsact + cls_bpf]"
                    } else {
                        ""
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
