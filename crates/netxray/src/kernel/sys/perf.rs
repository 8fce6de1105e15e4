//! `perf_event_open(2)` for tracepoints and kprobes, and attaching a program to the event.

use std::ffi::{c_long, CStr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::Errno;

/// `struct perf_event_attr` up to `config2` (PERF_ATTR_SIZE_VER1).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
}
const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == 72);

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FLAG_FD_CLOEXEC: c_long = 1 << 3;
/// `_IOW('$', 8, __u32)`.
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;

/// `perf_event_open` on a tracefs tracepoint id, all processes, CPU 0.
pub fn perf_event_open_tracepoint(id: u64) -> Result<OwnedFd, Errno> {
    perf_event_open(PerfEventAttr {
        type_: PERF_TYPE_TRACEPOINT,
        config: id,
        sample_period: 1,
        wakeup_events: 1,
        ..Default::default()
    })
}

/// `perf_event_open` of a kprobe on `func` through the kprobe PMU (`pmu_type` from
/// `/sys/bus/event_source/devices/kprobe/type`).
pub fn perf_event_open_kprobe(pmu_type: u32, func: &CStr) -> Result<OwnedFd, Errno> {
    perf_event_open(PerfEventAttr {
        type_: pmu_type,
        sample_period: 1,
        wakeup_events: 1,
        config1: func.as_ptr() as u64, // kprobe_func; config2 = offset 0
        ..Default::default()
    })
}

fn perf_event_open(mut attr: PerfEventAttr) -> Result<OwnedFd, Errno> {
    attr.size = std::mem::size_of::<PerfEventAttr>() as u32;
    let (pid, cpu, group): (c_long, c_long, c_long) = (-1, 0, -1);
    // SAFETY: attr is a valid perf_event_attr of the size it declares; any pointer in it
    // (config1 for kprobes) is borrowed from the caller for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            pid,
            cpu,
            group,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

/// `PERF_EVENT_IOC_SET_BPF`: attach a program to a perf event (detached when the event closes).
pub fn perf_event_set_bpf(event: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: both are open fds; the ioctl takes the program fd by value.
    let ret = unsafe { libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd()) };
    if ret < 0 {
        return Err(Errno::last());
    }
    Ok(())
}
