//! Checks made through files and mounts: privileges, RLIMIT_MEMLOCK, tracefs, lockdown.

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use super::{name, Check, Privileges};
use crate::kernel::sys::{self, Errno};

pub(crate) use crate::kernel::sys::TRACEFS;
const LOCKDOWN: &str = "/sys/kernel/security/lockdown";

pub(crate) fn check_privileges(p: &Privileges) -> Check {
    let held = p.held();
    let held = if held.is_empty() {
        "none".to_string()
    } else {
        held.join(" ")
    };
    let lacking = p.lacking();
    let lacking = if lacking.is_empty() {
        String::new()
    } else {
        format!("; lacking {}", lacking.join(" "))
    };
    let detail = format!("effective {held}{lacking}");
    if p.can_trace() {
        Check::ok(name::PRIVILEGES, detail)
    } else {
        Check::missing(name::PRIVILEGES, detail)
    }
}

pub(crate) fn check_memlock() -> Check {
    match sys::raise_memlock() {
        (None, _) => Check::ok(name::MEMLOCK, "RLIMIT_MEMLOCK already unlimited"),
        (Some(_), Ok(())) => Check::ok(name::MEMLOCK, "RLIMIT_MEMLOCK raised to unlimited"),
        (Some(cur), Err(e)) => Check::missing(
            name::MEMLOCK,
            format!("setrlimit(RLIMIT_MEMLOCK): {e}, stays {cur} bytes; harmless, never fatal"),
        ),
    }
}

/// What the tracefs probe found, for the program probes and the lockdown inference.
pub(crate) struct Tracefs {
    pub check: Check,
    /// `/sys/kernel/tracing/events`, when mounted.
    pub events: Option<PathBuf>,
    /// How reading `available_filter_functions` failed (`None`: readable or not tried).
    pub filter_functions_errno: Option<Errno>,
}

/// Make sure tracefs is mounted at /sys/kernel/tracing (mounting it if not, and leaving it
/// mounted: tracepoint users need it) and that the `net` events are there.
pub(crate) fn probe_tracefs() -> Tracefs {
    let root = Path::new(TRACEFS);
    let events = root.join("events");
    let how = match sys::ensure_tracefs() {
        Ok(sys::TracefsState::AlreadyMounted) => "already mounted",
        Ok(sys::TracefsState::MountedNow) => "mounted by doctor, left mounted",
        Err(why) => {
            return Tracefs {
                check: Check::missing(name::TRACEFS, why),
                events: None,
                filter_functions_errno: None,
            }
        }
    };
    let filter_functions_errno = read_one_byte(&root.join("available_filter_functions")).err();
    let check = if events.join("net").is_dir() {
        Check::ok(
            name::TRACEFS,
            format!("{TRACEFS} ({how}), events/net present"),
        )
    } else {
        Check::missing(
            name::TRACEFS,
            format!("{TRACEFS} ({how}), but no events/net"),
        )
    };
    Tracefs {
        check,
        events: events.is_dir().then_some(events),
        filter_functions_errno,
    }
}

fn read_one_byte(path: &Path) -> Result<(), Errno> {
    let mut byte = [0u8; 1];
    std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut byte))
        .map(|_| ())
        .map_err(|e| (&e).into())
}

/// The lockdown mode: from securityfs (mounting it for the read if needed), else inferred
/// from what the kernel refused. `fentry_errno` is how loading an fentry program failed.
pub(crate) fn check_lockdown(fentry_errno: Option<Errno>, tracefs: &Tracefs) -> Check {
    let read = |how: &str| match std::fs::read_to_string(LOCKDOWN) {
        Ok(text) => Ok(from_text(&text, how)),
        Err(e) => Err(e),
    };
    let mount_err = match read("read from securityfs") {
        Ok(check) => return check,
        Err(e) if e.kind() != ErrorKind::NotFound => {
            return Check::unknown(name::LOCKDOWN, format!("{LOCKDOWN}: {}", Errno::from(&e)))
        }
        Err(_) => match sys::mount(c"securityfs", c"/sys/kernel/security", c"securityfs") {
            Ok(()) => {
                let found = read("securityfs was not mounted: mounted it, read, unmounted");
                // Unmount again: doctor leaves the host's mounts as it found them (tracefs
                // excepted, which tracing needs). A lazy unmount cannot fail on busy files.
                let _ = sys::umount_lazy(c"/sys/kernel/security");
                match found {
                    Ok(check) => return check,
                    Err(e) => format!("securityfs mounted, but {LOCKDOWN}: {}", Errno::from(&e)),
                }
            }
            Err(e) => format!("securityfs not mounted, mount: {e}"),
        },
    };
    infer(fentry_errno, tracefs.filter_functions_errno, &mount_err)
}

fn infer(fentry: Option<Errno>, filter_functions: Option<Errno>, why: &str) -> Check {
    const EPERM: Option<Errno> = Some(Errno(libc::EPERM));
    match (fentry, filter_functions) {
        (EPERM, EPERM) => Check::missing(
            name::LOCKDOWN,
            format!("locked down (inferred: fentry load EPERM, available_filter_functions EPERM; {why})"),
        ),
        (None, _) => Check::ok(name::LOCKDOWN, format!("none (inferred: fentry loads; {why})")),
        _ => Check::unknown(name::LOCKDOWN, format!("cannot tell ({why})")),
    }
}

/// `none [integrity] confidentiality` -> the bracketed mode.
fn from_text(text: &str, how: &str) -> Check {
    let mode = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or("unreadable");
    let detail = format!("{mode} ({how})");
    match mode {
        "none" => Check::ok(name::LOCKDOWN, detail),
        "integrity" | "confidentiality" => Check::missing(name::LOCKDOWN, detail),
        _ => Check::unknown(name::LOCKDOWN, detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::probe::Status;

    #[test]
    fn lockdown_text() {
        assert_eq!(
            from_text("none [integrity] confidentiality\n", "x").status,
            Status::Missing
        );
        assert_eq!(
            from_text("[none] integrity confidentiality\n", "x").status,
            Status::Ok
        );
        assert!(from_text("none integrity [confidentiality]", "x")
            .detail
            .starts_with("confid"));
    }

    #[test]
    fn lockdown_inferred() {
        let eperm = Some(Errno(libc::EPERM));
        assert_eq!(infer(eperm, eperm, "").status, Status::Missing);
        assert_eq!(infer(None, eperm, "").status, Status::Ok);
        assert_eq!(
            infer(Some(Errno(libc::EINVAL)), None, "").status,
            Status::Unknown
        );
    }
}
