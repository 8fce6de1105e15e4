//! `netxray hooks`: the hook tree marked available or not on this kernel,
//! and `hooks --load`'s line per program; text, or a JSON line per item.

use super::report::Report;
use crate::model::doctor::{Outcome, ProgramCheck};
use crate::model::hook::{Group, HookPoint};
use serde::Serialize;
use std::io::{self, Write};

/// One hook and what this kernel says of it.
#[derive(Serialize)]
pub struct HookRow {
    #[serde(skip)]
    pub hook: &'static HookPoint,
    /// None: no BTF to check against.
    pub available: Option<bool>,
    /// tc hooks: `tcx`, or `clsact` (legacy tc) on kernels without tcx.
    pub via: Option<&'static str>,
    /// What the kernel lacks for it, when it does.
    pub kernel_lacks: Option<String>,
}

/// Every hook netxray knows.
#[derive(Serialize)]
pub struct HookList {
    /// Checked against this kernel's BTF.
    pub btf_checked: bool,
    pub rows: Vec<HookRow>,
}

impl Report for HookList {
    /// A JSON line per hook.
    fn json(&self, out: &mut dyn Write) -> io::Result<()> {
        for r in &self.rows {
            let h = r.hook;
            let v = serde_json::json!({
                "hook": h.name, "group": h.group.name(), "backend": h.backend,
                "available": r.available, "via": r.via, "note": h.note,
                "kernel_lacks": r.kernel_lacks,
            });
            writeln!(out, "{v}")?;
        }
        Ok(())
    }

    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "all: every hook netxray knows ({})",
            if self.btf_checked {
                "checked against this kernel's BTF"
            } else {
                "no BTF: availability unknown"
            }
        )?;
        for g in Group::ALL {
            writeln!(out, "  {}: {}", g.name(), g.about())?;
            for r in self.rows.iter().filter(|r| r.hook.group == g) {
                let h = r.hook;
                let mark = match r.available {
                    Some(true) => "ok",
                    Some(false) => "MISSING",
                    None => "?",
                };
                let legacy = if r.via == Some("clsact") {
                    " [no tcx in this kernel: through legacy tc, clsact + cls_bpf]".to_string()
                } else if let Some(what) = &r.kernel_lacks {
                    format!(" [this kernel lacks {what}]")
                } else {
                    String::new()
                };
                writeln!(out, "    {:<34} {:<8} {}{legacy}", h.name, mark, h.note)?;
            }
        }
        writeln!(
            out,
            "\nSelect with -t/--hooks GROUP|HOOK[,...]; default: every available hook but the ret and netfilter groups (the word `default` selects that set)."
        )
    }
}

/// `hooks --load`: what happened to each program.
#[derive(Serialize)]
#[serde(transparent)]
pub struct LoadList<'a>(pub &'a [ProgramCheck]);

impl Report for LoadList<'_> {
    /// A JSON line per program.
    fn json(&self, out: &mut dyn Write) -> io::Result<()> {
        for c in self.0 {
            serde_json::to_writer(&mut *out, c).map_err(io::Error::other)?;
            writeln!(out)?;
        }
        Ok(())
    }

    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        for c in self.0 {
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
            )?;
        }
        Ok(())
    }
}
