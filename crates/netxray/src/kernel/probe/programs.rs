//! Program types, tracing attachments, the ring buffer and helpers: each tried for real with a
//! two-instruction program, attached, and closed at once (every fd is an `OwnedFd`).

use std::io::ErrorKind;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use aya::Btf;

use super::fs::Tracefs;
use super::{btf, name, Check};
use crate::kernel::sys::{
    self, attach_type, prog_type, Errno, Insn, LinkExtra, LoadError, ProgSpec,
};

/// The tracepoint every tracing probe attaches to.
const TRACEPOINT: &str = "netif_receive_skb";
/// The kernel function the kprobe and fentry probes try.
const FUNC: &str = "tcp_v4_rcv";
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe/type";

const BPF_FUNC_PROBE_READ_KERNEL: i32 = 113;
const BPF_FUNC_LOOP: i32 = 181;

/// `r0 = 0; exit`.
pub(crate) const RETURN_0: [Insn; 2] = [Insn::mov64_imm(0, 0), Insn::exit()];

pub(crate) struct Probed {
    pub tracepoint: Check,
    pub raw_tp: Check,
    pub tp_btf: Check,
    pub kprobe: Check,
    pub kprobe_multi: Check,
    pub fentry: Check,
    /// How loading the fentry program failed, for the lockdown inference.
    pub fentry_errno: Option<Errno>,
    pub ringbuf: Check,
    pub probe_read_kernel: Check,
    pub bpf_loop: Check,
}

pub(crate) fn probe(vmlinux: Option<&Btf>, tracefs: &Tracefs) -> Probed {
    let (fentry, fentry_errno) = fentry(vmlinux);
    Probed {
        tracepoint: tracepoint(tracefs.events.as_deref()),
        raw_tp: raw_tp(),
        tp_btf: tp_btf(vmlinux),
        kprobe: kprobe(),
        kprobe_multi: kprobe_multi(),
        fentry,
        fentry_errno,
        ringbuf: ringbuf(),
        probe_read_kernel: helper(name::PROBE_READ_KERNEL, BPF_FUNC_PROBE_READ_KERNEL),
        bpf_loop: helper(name::BPF_LOOP, BPF_FUNC_LOOP),
    }
}

/// Load `insns` as a program of `prog_type`, named `nxd_<what>` (doctor's programs are easy to
/// spot in `bpftool prog`).
pub(crate) fn load(
    what: &str,
    prog_type: u32,
    expected_attach_type: u32,
    attach_btf_id: u32,
    insns: &[Insn],
) -> Result<OwnedFd, LoadError> {
    let name = format!("nxd_{what}");
    sys::prog_load(&ProgSpec {
        prog_type,
        expected_attach_type,
        attach_btf_id,
        name: &name,
        insns,
    })
}

fn tracepoint(events: Option<&Path>) -> Check {
    let n = name::TRACEPOINT;
    let Some(events) = events else {
        return Check::unknown(n, "needs tracefs for the tracepoint id");
    };
    let id_path = events.join("net").join(TRACEPOINT).join("id");
    let id = match std::fs::read_to_string(&id_path) {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(id) => id,
            Err(_) => return Check::unknown(n, format!("{}: not a number", id_path.display())),
        },
        Err(e) => return Check::missing(n, format!("{}: {}", id_path.display(), Errno::from(&e))),
    };
    let prog = match load(
        "tracepoint",
        prog_type::TRACEPOINT,
        attach_type::NONE,
        0,
        &RETURN_0,
    ) {
        Ok(fd) => fd,
        Err(e) => return Check::missing(n, format!("BPF_PROG_LOAD: {e}")),
    };
    let event = match sys::perf_event_open_tracepoint(id) {
        Ok(fd) => fd,
        Err(e) => {
            return Check::missing(n, format!("loaded; perf_event_open(net:{TRACEPOINT}): {e}"))
        }
    };
    match sys::perf_event_set_bpf(event.as_fd(), prog.as_fd()) {
        Ok(()) => Check::ok(
            n,
            format!("attached to net:{TRACEPOINT} via perf event, closed"),
        ),
        Err(e) => Check::missing(n, format!("loaded; PERF_EVENT_IOC_SET_BPF: {e}")),
    }
}

fn raw_tp() -> Check {
    let n = name::RAW_TP;
    let prog = match load(
        "raw_tp",
        prog_type::RAW_TRACEPOINT,
        attach_type::NONE,
        0,
        &RETURN_0,
    ) {
        Ok(fd) => fd,
        Err(e) => return Check::missing(n, format!("BPF_PROG_LOAD: {e}")),
    };
    let tp = c"netif_receive_skb";
    match sys::raw_tracepoint_open(Some(tp), prog.as_fd()) {
        Ok(_link) => Check::ok(
            n,
            format!("attached to {TRACEPOINT} (BPF_RAW_TRACEPOINT_OPEN), closed"),
        ),
        Err(e) => Check::missing(
            n,
            format!("loaded; BPF_RAW_TRACEPOINT_OPEN({TRACEPOINT}): {e}"),
        ),
    }
}

fn tp_btf(vmlinux: Option<&Btf>) -> Check {
    let n = name::TP_BTF;
    let Some(vmlinux) = vmlinux else {
        return Check::missing(n, "no vmlinux BTF to name the tracepoint");
    };
    let Some(id) = btf::tp_btf_id(vmlinux, TRACEPOINT) else {
        return Check::missing(
            n,
            format!("no typedef btf_trace_{TRACEPOINT} in vmlinux BTF"),
        );
    };
    let prog = match load(
        "tp_btf",
        prog_type::TRACING,
        attach_type::TRACE_RAW_TP,
        id,
        &RETURN_0,
    ) {
        Ok(fd) => fd,
        Err(e) => return Check::missing(n, format!("BPF_PROG_LOAD (btf id {id}): {e}")),
    };
    match sys::raw_tracepoint_open(None, prog.as_fd()) {
        Ok(_link) => Check::ok(n, format!("attached to {TRACEPOINT} (btf id {id}), closed")),
        Err(e) => Check::missing(n, format!("loaded; BPF_RAW_TRACEPOINT_OPEN: {e}")),
    }
}

fn kprobe() -> Check {
    let n = name::KPROBE;
    let pmu = match std::fs::read_to_string(KPROBE_PMU) {
        Ok(text) => text.trim().parse::<u32>().ok(),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Check::missing(
                n,
                "no kprobe PMU in /sys/bus/event_source/devices: kprobes not compiled in",
            );
        }
        Err(e) => return Check::unknown(n, format!("{KPROBE_PMU}: {}", Errno::from(&e))),
    };
    let Some(pmu) = pmu else {
        return Check::unknown(n, format!("{KPROBE_PMU}: not a number"));
    };
    let prog = match load("kprobe", prog_type::KPROBE, attach_type::NONE, 0, &RETURN_0) {
        Ok(fd) => fd,
        Err(e) => return Check::missing(n, format!("BPF_PROG_LOAD: {e}")),
    };
    let event = match sys::perf_event_open_kprobe(pmu, c"tcp_v4_rcv") {
        Ok(fd) => fd,
        Err(e) => return Check::missing(n, format!("loaded; perf_event_open(kprobe {FUNC}): {e}")),
    };
    match sys::perf_event_set_bpf(event.as_fd(), prog.as_fd()) {
        Ok(()) => Check::ok(n, format!("attached to {FUNC} via the kprobe PMU, closed")),
        Err(e) => Check::missing(n, format!("loaded; PERF_EVENT_IOC_SET_BPF: {e}")),
    }
}

fn kprobe_multi() -> Check {
    let n = name::KPROBE_MULTI;
    let multi = attach_type::TRACE_KPROBE_MULTI;
    let prog = match load("kprobe_multi", prog_type::KPROBE, multi, 0, &RETURN_0) {
        Ok(fd) => fd,
        Err(e) => return Check::missing(n, format!("BPF_PROG_LOAD: {e}")),
    };
    let syms = [c"tcp_v4_rcv".as_ptr()];
    match sys::link_create(
        prog.as_fd(),
        0,
        multi,
        0,
        LinkExtra::KprobeMulti { syms: &syms },
    ) {
        Ok(_link) => Check::ok(n, format!("BPF_LINK_CREATE on {FUNC}, closed")),
        Err(e) => Check::missing(
            n,
            format!("loaded; BPF_LINK_CREATE(kprobe_multi {FUNC}): {e}"),
        ),
    }
}

fn fentry(vmlinux: Option<&Btf>) -> (Check, Option<Errno>) {
    let n = name::FENTRY;
    let Some(vmlinux) = vmlinux else {
        return (
            Check::missing(n, "no vmlinux BTF to name the function"),
            None,
        );
    };
    let Some(id) = btf::func_id(vmlinux, FUNC) else {
        return (
            Check::unknown(n, format!("no FUNC {FUNC} in vmlinux BTF")),
            None,
        );
    };
    let prog = match load(
        "fentry",
        prog_type::TRACING,
        attach_type::TRACE_FENTRY,
        id,
        &RETURN_0,
    ) {
        Ok(fd) => fd,
        Err(e) => {
            return (
                Check::missing(n, format!("BPF_PROG_LOAD on {FUNC}: {e}")),
                Some(e.errno),
            )
        }
    };
    let check = match sys::raw_tracepoint_open(None, prog.as_fd()) {
        Ok(_link) => Check::ok(n, format!("attached to {FUNC}, closed")),
        Err(e) => Check::missing(n, format!("loaded; attach to {FUNC}: {e}")),
    };
    (check, None)
}

fn ringbuf() -> Check {
    let n = name::RINGBUF;
    let size = sys::page_size() * 16;
    match sys::map_create(sys::MAP_TYPE_RINGBUF, 0, 0, size as u32) {
        Ok(_map) => Check::ok(
            n,
            format!("BPF_MAP_TYPE_RINGBUF of {size} bytes created, closed"),
        ),
        Err(e) => Check::missing(n, format!("BPF_MAP_CREATE(RINGBUF, {size} bytes): {e}")),
    }
}

/// Whether the verifier knows helper `id` for raw_tp programs (as libbpf probes helpers):
/// load `call id; exit`. The verifier must reject it for its unset arguments; only a
/// rejection that names the helper as unknown or not allowed means it is missing.
fn helper(n: &'static str, id: i32) -> Check {
    let insns = [Insn::call(id), Insn::exit()];
    let e = match load(n, prog_type::RAW_TRACEPOINT, attach_type::NONE, 0, &insns) {
        Ok(_) => return Check::ok(n, format!("helper #{id} accepted by the verifier")),
        Err(e) => e,
    };
    let refused = [
        "invalid func ",
        "unknown func ",
        "program of this type cannot use helper ",
    ];
    if refused.iter().any(|r| e.log.contains(r)) {
        Check::missing(n, format!("helper #{id} refused: {e}"))
    } else if !e.log.is_empty() {
        Check::ok(
            n,
            format!("helper #{id} known to the verifier (raw_tp program)"),
        )
    } else {
        Check::unknown(n, format!("probe program not loaded: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::probe::Status;

    /// The helper probe tells "unknown helper" and "not for this program type" from "known".
    #[test]
    fn helper_probe_tells_missing_from_present() {
        if !crate::kernel::probe::privileges().can_trace() {
            eprintln!("SKIPPED: needs root (CAP_BPF and CAP_PERFMON)");
            return;
        }
        assert_eq!(helper("bogus", 100_000).status, Status::Missing);
        // bpf_skb_load_bytes (#26) exists, but not for raw_tp programs.
        assert_eq!(helper("skb_load_bytes", 26).status, Status::Missing);
        assert_eq!(helper("map_lookup", 1).status, Status::Ok);
    }
}
