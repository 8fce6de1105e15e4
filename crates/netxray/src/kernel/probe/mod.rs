//! Kernel feature probing, by trying: load a tiny program, attach it, close it, and record
//! what the kernel answered. Never by kernel version.
//!
//! [`probe_all`] runs every check and returns a [`Report`]; `netxray doctor` prints it and
//! `netxray trace` asks it [`Report::trace_can_run`]. Nothing stays attached: every program,
//! link, map and perf event is an `OwnedFd` closed right after the try, and the XDP, tcx and
//! netfilter attachments are made inside a throwaway network namespace.
//!
//! The syscalls it makes are in [`crate::kernel::sys`]. Submodules other code may reuse:
//! [`btf`] (vmlinux BTF type ids for `attach_btf_id`), [`caps`] (CapEff parsing).

pub mod btf;
pub mod caps;
mod fs;
mod netns;
mod nftables;
mod programs;
mod tc;

pub use caps::{privileges, Privileges};

pub use crate::model::doctor::{name, Check, Report, Status};

/// Whether `/sys/kernel/btf/vmlinux` is present and parses.
pub fn has_btf() -> bool {
    btf::vmlinux().is_ok()
}

/// Run every check. Mounts tracefs at /sys/kernel/tracing if it is not mounted (and leaves
/// it: tracepoint users need it); everything else is left as found.
pub fn probe_all() -> Report {
    let privileges = privileges();
    let vmlinux = btf::vmlinux();
    let tracefs = fs::probe_tracefs();

    let mut checks = vec![
        fs::check_privileges(&privileges),
        fs::check_memlock(),
        match &vmlinux {
            Ok(_) => Check::ok(name::BTF, "/sys/kernel/btf/vmlinux parsed"),
            Err(e) => Check::missing(name::BTF, format!("/sys/kernel/btf/vmlinux: {e}")),
        },
    ];
    let vmlinux = vmlinux.ok();
    let progs = programs::probe(vmlinux.as_ref(), &tracefs);
    let lockdown = fs::check_lockdown(progs.fentry_errno, &tracefs);
    checks.push(lockdown);
    checks.push(tracefs.check.clone());
    checks.extend([progs.tracepoint, progs.raw_tp, progs.tp_btf, progs.kprobe]);
    checks.extend([progs.kprobe_multi, progs.fentry]);
    checks.extend(netns::probe());
    checks.extend([progs.ringbuf, progs.probe_read_kernel, progs.bpf_loop]);
    checks.extend(nftables::probe());
    checks.push(tc::leftovers());
    checks.push(netxray_programs(privileges.can_trace()));
    Report { checks }
}

/// Every program netxray has, loaded and attached (interface and netfilter
/// programs in a throwaway namespace): the verdict rests on what really
/// loads, not on a sample.
fn netxray_programs(privileged: bool) -> Check {
    use crate::kernel::{btf::KernelBtf, loadcheck};
    let n = name::PROGRAMS;
    if !privileged {
        return Check::unknown(n, "not tried: not privileged");
    }
    let Ok(kbtf) = KernelBtf::load() else {
        return Check::unknown(n, "not tried: no kernel BTF");
    };
    let checks = loadcheck::check_all(&kbtf, None);
    let (ok, detail) = loadcheck::summary(&checks);
    let trace_loads = checks
        .iter()
        .any(|c| c.area == "trace" && c.outcome == loadcheck::Outcome::Ok);
    match (ok, trace_loads) {
        (true, _) => Check::ok(n, detail),
        (false, true) => Check::warning(n, detail),
        (false, false) => Check::missing(n, detail),
    }
}
