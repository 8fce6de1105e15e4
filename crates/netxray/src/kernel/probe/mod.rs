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

use serde::Serialize;

pub use caps::{privileges, Privileges};

/// The check names, stable in the JSON output.
pub mod name {
    pub const PRIVILEGES: &str = "privileges";
    pub const MEMLOCK: &str = "memlock";
    pub const BTF: &str = "btf";
    pub const LOCKDOWN: &str = "lockdown=none";
    pub const TRACEFS: &str = "tracefs";
    pub const TRACEPOINT: &str = "tracepoint";
    pub const RAW_TP: &str = "raw_tp";
    pub const TP_BTF: &str = "tp_btf";
    pub const KPROBE: &str = "kprobe";
    pub const KPROBE_MULTI: &str = "kprobe_multi";
    pub const FENTRY: &str = "fentry";
    pub const XDP: &str = "xdp";
    pub const TCX: &str = "tcx";
    pub const NETFILTER: &str = "netfilter";
    pub const RINGBUF: &str = "ringbuf";
    pub const PROBE_READ_KERNEL: &str = "probe_read_kernel";
    pub const BPF_LOOP: &str = "bpf_loop";
    pub const NFT_TRACE: &str = "nftables_trace";
    pub const NFT_LEFTOVERS: &str = "netxray_tables";
    pub const TC_LEFTOVERS: &str = "netxray_tc_filters";
    pub const PROGRAMS: &str = "netxray_programs";
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Tried, and it worked.
    Ok,
    /// Tried, and the kernel refused (or the piece is absent).
    Missing,
    /// Could not be tried (a prerequisite is missing); the detail says which.
    Unknown,
    /// Works, but something needs a look (the detail says what).
    Warning,
}

impl Status {
    /// The text-table spelling: `ok`, `MISSING`, `unknown`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "MISSING",
            Status::Unknown => "unknown",
            Status::Warning => "WARN",
        }
    }
}

/// One probed feature.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// What was tried and what the kernel said (errno names such as `EPERM`).
    pub detail: String,
    /// What the user loses when this is missing.
    pub cost: &'static str,
}

impl Check {
    pub fn new(name: &'static str, status: Status, detail: impl Into<String>) -> Self {
        Check {
            name,
            status,
            detail: detail.into(),
            cost: cost_of(name),
        }
    }
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Ok, detail)
    }
    pub fn missing(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Missing, detail)
    }
    pub fn unknown(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Unknown, detail)
    }
    pub fn warning(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Warning, detail)
    }
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }
}

/// Every check, in display order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// The check called `name` (see [`name`]).
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Whether the check called `name` is present and ok.
    pub fn is_ok(&self, name: &str) -> bool {
        self.check(name).is_some_and(Check::is_ok)
    }

    /// Whether `netxray trace` can run here: it needs privileges, kernel BTF, tp_btf
    /// programs, kernel memory reads and a ring buffer. `Err` lists what is missing; when
    /// privileges are, the program checks failed because of that, so only it (and BTF) is named.
    pub fn trace_can_run(&self) -> Result<(), String> {
        let needs = [
            (
                name::PRIVILEGES,
                "not privileged (run as root, or grant CAP_BPF and CAP_PERFMON)",
            ),
            (name::BTF, "no kernel BTF (/sys/kernel/btf/vmlinux)"),
            (name::TP_BTF, "no tp_btf programs"),
            (name::PROBE_READ_KERNEL, "bpf_probe_read_kernel refused"),
            (name::RINGBUF, "no BPF ring buffer"),
            (
                name::PROGRAMS,
                "none of netxray trace's programs loads here (netxray hooks --load says why)",
            ),
        ];
        let unprivileged = !self.is_ok(name::PRIVILEGES);
        let why: Vec<&str> = needs
            .iter()
            .filter(|(n, _)| !unprivileged || [name::PRIVILEGES, name::BTF].contains(n))
            // Some of netxray's programs failing is a warning (the row says
            // which); none of trace's loading is a no.
            .filter(|(n, _)| {
                let warned = *n == name::PROGRAMS
                    && self.check(n).is_some_and(|c| c.status == Status::Warning);
                !self.is_ok(n) && !warned
            })
            .map(|(_, why)| *why)
            .collect();
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }
}

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

/// What each check's absence costs the user.
fn cost_of(check: &str) -> &'static str {
    match check {
        name::PRIVILEGES => "everything: no BPF program loads; run as root or grant CAP_BPF+CAP_PERFMON (+CAP_NET_ADMIN for XDP/tc/netfilter)",
        name::MEMLOCK => "nothing since 5.11: BPF memory is charged to the memory cgroup, not RLIMIT_MEMLOCK",
        name::BTF => "netxray trace (tp_btf hooks and CO-RE field reads need kernel BTF)",
        name::LOCKDOWN => "kprobes, fentry/fexit, freplace and tracefs function lists; netxray uses tracepoints instead",
        name::TRACEFS => "classic tracepoint programs and the event list in /sys/kernel/tracing/events",
        name::TRACEPOINT => "classic tracepoint programs (fallback hooks with fixed record layouts)",
        name::RAW_TP => "raw_tp programs (fallback for tp_btf, without typed arguments)",
        name::TP_BTF => "netxray trace: all its hooks are tp_btf programs",
        name::KPROBE => "hooks on arbitrary kernel functions (ip_rcv, tcp_v4_rcv...); netxray sticks to tracepoints",
        name::KPROBE_MULTI => "one program on many functions at once (pwru-style 'every skb function' tracing)",
        name::FENTRY => "fentry/fexit on kernel functions (cheap function entry/return hooks with return values)",
        name::XDP => "XDP hooks: frames seen before the stack, driver-level drops",
        name::TCX => "nothing for netxray: tc hooks and stats attach through clsact + cls_bpf instead (removed on exit; after a kill, by the next netxray)",
        name::NETFILTER => "netfilter hook points (which hook saw or dropped a packet)",
        name::RINGBUF => "netxray trace: its event channel is a BPF ring buffer",
        name::PROBE_READ_KERNEL => "netxray trace: reading skb/sock fields needs bpf_probe_read_kernel",
        name::BPF_LOOP => "long bounded loops in one program (older kernels need unrolled loops)",
        name::NFT_TRACE => "--nft-trace: which nftables rule (table, chain, handle) took each packet",
        name::NFT_LEFTOVERS => "a leftover netxray_* table keeps marking packets for tracing until deleted",
        name::TC_LEFTOVERS => "a cls_bpf filter a killed netxray left runs its program on every packet until deleted",
        name::PROGRAMS => "the hooks named: netxray hooks --load lists each program and why",
        _ => "",
    }
}
