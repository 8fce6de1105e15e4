//! Ctrl-C and SIGTERM as a flag, for the run driver (cmd/run.rs), whose
//! poll(2) a signal interrupts.

use crate::error::Result;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Raised by SIGINT or SIGTERM once installed.
pub struct StopFlag;

impl StopFlag {
    pub fn install() -> Result<Self> {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: the handler only stores to an atomic, which is
            // async-signal-safe.
            if unsafe { libc::signal(sig, handler) } == libc::SIG_ERR {
                return Err(crate::error::Error::io(
                    "installing a signal handler",
                    std::io::Error::last_os_error(),
                ));
            }
        }
        Ok(Self)
    }

    pub fn raised(&self) -> bool {
        STOP.load(Ordering::SeqCst)
    }
}
