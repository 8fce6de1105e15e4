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

const SYSCALL_NOTE: &str = "at its return (sys_exit_*): the first 1024 bytes of each message";

const SOCK_PATH_NOTE: &str = "6.3+: carry the data of the calls above on TCP and connected UDP \
     sockets (no file table walk), and count sendfile/splice from 6.5; the returns then serve only \
     UDP's mmsg calls and datagram reads with the sender's address";

/// A system call whose data `dns` (and `http`) read: its entry and return
/// tracepoints.
#[derive(Serialize)]
pub struct SyscallRow {
    pub call: &'static str,
    /// None: tracefs is not mounted, so not checked.
    pub available: Option<bool>,
}

/// Every hook netxray knows.
#[derive(Serialize)]
pub struct HookList {
    /// Checked against this kernel's BTF.
    pub btf_checked: bool,
    pub rows: Vec<HookRow>,
    pub syscalls: Vec<SyscallRow>,
    /// Whether sock:sock_send_length and sock_recv_length carry the data of
    /// dns and http here (6.3+); None without BTF to check.
    pub l7_sock_path: Option<bool>,
}

fn mark(available: Option<bool>) -> &'static str {
    match available {
        Some(true) => "ok",
        Some(false) => "MISSING",
        None => "?",
    }
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
        for r in &self.syscalls {
            let v = serde_json::json!({
                "hook": format!("syscalls:{}", r.call), "group": "syscalls",
                "backend": "syscall-tracepoints", "available": r.available,
                "note": SYSCALL_NOTE,
            });
            writeln!(out, "{v}")?;
        }
        let v = serde_json::json!({
            "hook": "sock:sock_send_length,sock_recv_length", "group": "syscalls",
            "backend": "tp_btf", "available": self.l7_sock_path, "note": SOCK_PATH_NOTE,
        });
        writeln!(out, "{v}")?;
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
                let mark = mark(r.available);
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
        )?;
        writeln!(
            out,
            "\nsyscalls: data processes write to and read from TCP and UDP sockets, for netxray dns and http ({})",
            if self.syscalls.iter().any(|r| r.available.is_none()) {
                "not checked: tracefs is not mounted; netxray dns and doctor mount it"
            } else {
                "checked in tracefs"
            }
        )?;
        for r in &self.syscalls {
            writeln!(
                out,
                "    {:<34} {:<8} {SYSCALL_NOTE}",
                format!("syscalls:{}", r.call),
                mark(r.available)
            )?;
        }
        writeln!(
            out,
            "    {:<34} {:<8} {SOCK_PATH_NOTE}",
            "sock:sock_send_length,recv_length",
            match self.l7_sock_path {
                Some(true) => "ok",
                Some(false) => "no (<6.3)",
                None => "?",
            }
        )?;
        Ok(())
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
