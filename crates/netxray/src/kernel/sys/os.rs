//! Mounts, rlimits, the page size.

use std::ffi::CStr;

use super::Errno;

/// `mount -t fstype source target`.
pub fn mount(source: &CStr, target: &CStr, fstype: &CStr) -> Result<(), Errno> {
    // SAFETY: three valid C strings, no data argument.
    let ret = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Where classic tracepoints (`syscalls:*`) are found: perf_event_open
/// takes their id from `events/<group>/<name>/id` there.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// How [`ensure_tracefs`] found tracefs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TracefsState {
    AlreadyMounted,
    /// Mounted now, and left mounted (other tracepoint users need it too).
    MountedNow,
}

/// Make sure tracefs is mounted at [`TRACEFS`], mounting it if not (a fresh
/// boot often has it unmounted; classic tracepoints cannot be attached
/// without it). Err: the reason it is not usable.
pub fn ensure_tracefs() -> Result<TracefsState, String> {
    let events = std::path::Path::new(TRACEFS).join("events");
    match std::fs::metadata(&events) {
        Ok(_) => Ok(TracefsState::AlreadyMounted),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            mount(c"tracefs", c"/sys/kernel/tracing", c"tracefs")
                .map_err(|e| format!("not mounted at {TRACEFS}; mount -t tracefs: {e}"))?;
            Ok(TracefsState::MountedNow)
        }
        // tracefs is root-only (mode 0700): mounted or not, this process cannot use it.
        Err(e) => Err(format!("{}: {}", events.display(), Errno::from(&e))),
    }
}

/// `umount -l target`.
pub fn umount_lazy(target: &CStr) -> Result<(), Errno> {
    // SAFETY: a valid C string.
    let ret = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    if ret < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The current `RLIMIT_MEMLOCK` soft limit (`None` = unlimited), then an attempt to raise it
/// to unlimited.
pub fn raise_memlock() -> (Option<u64>, Result<(), Errno>) {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: cur is a valid rlimit to write into.
    let before = match unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur) } {
        0 if cur.rlim_cur == libc::RLIM_INFINITY => None,
        0 => Some(cur.rlim_cur),
        _ => Some(0),
    };
    let want = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: want is a valid rlimit.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &want) };
    (before, if ret < 0 { Err(Errno::last()) } else { Ok(()) })
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Give the pages malloc holds free back to the kernel. A thread gets a
/// malloc arena of its own, and what it frees stays resident there: the
/// text read and the vector's growth (several MB) counted in netxray's peak
/// memory until trimmed.
pub fn release_freed_memory() {
    // SAFETY: malloc_trim has no preconditions; it only returns free pages.
    unsafe { libc::malloc_trim(0) };
}
