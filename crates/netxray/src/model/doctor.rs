//! What `doctor` and `hooks --load` find: probe checks and their verdict on
//! `trace`, and the load check's line per program. The kernel side
//! (kernel/probe, kernel/loadcheck) fills them; output/doctor.rs and
//! output/hooks.rs print them.

use serde::Serialize;

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

/// What happened to one program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    /// The kernel lacks what the hook needs (said how).
    Missing(String),
    /// The verifier refused netxray's program: a bug.
    Refused(String),
    /// Not tried (e.g. no interface given for tc/xdp).
    Skipped(String),
    /// Another failure (permissions, a busy attachment point).
    Failed(String),
}

impl Outcome {
    /// Whether this outcome fails the check.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Refused(_) | Outcome::Failed(_))
    }
}

/// One program's line.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramCheck {
    /// trace, conn, stats.
    pub area: &'static str,
    /// The hook (or program) name.
    pub hook: String,
    /// Whether the filter was spliced in.
    pub filtered: bool,
    #[serde(flatten)]
    pub outcome: Outcome,
}
