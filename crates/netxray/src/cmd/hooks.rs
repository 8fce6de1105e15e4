//! `netxray hooks`: the hook tree, marked available or not on this kernel.

use crate::cli::{HooksArgs, OutputFormat};
use crate::error::{Error, Result};
use crate::kernel::btf::KernelBtf;
use crate::kernel::loadcheck::{self, Device, Outcome};
use crate::kernel::netns;
use crate::kernel::tc::{self, TcPath};
use crate::kernel::trace::{hook_available, hook_lacks};
use crate::model::hook::{Backend, HookPoint, HOOKS};
use crate::output::hooks::{HookList, HookRow, LoadList, SyscallRow};
use crate::output::report;
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
    let list = HookList {
        btf_checked: btf.is_some(),
        rows: HOOKS
            .iter()
            .map(|h| HookRow {
                hook: h,
                available: avail(h),
                via: via(h),
                kernel_lacks: lacks(h),
            })
            .collect(),
        syscalls: crate::kernel::l7::SYSCALLS
            .iter()
            .map(|call| SyscallRow {
                call,
                available: crate::kernel::l7::syscall_available(call),
            })
            .collect(),
        l7_sock_path: btf.as_ref().map(|b| {
            crate::kernel::l7::SOCK_TRACEPOINTS
                .iter()
                .all(|t| b.has_tracepoint(t))
        }),
    };
    let json = args.output.output == OutputFormat::Json;
    report::print(&mut std::io::stdout().lock(), &list, json)
        .map_err(|e| Error::io("writing output", e))?;
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
    let json = args.output.output == OutputFormat::Json;
    report::print(&mut std::io::stdout().lock(), &LoadList(&checks), json)
        .map_err(|e| Error::io("writing output", e))?;
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
