//! The privileges netxray needs, checked up front so the error names what is
//! missing instead of surfacing as an EPERM from deep inside a load.

use crate::error::{Error, Result};
use crate::kernel::probe::{privileges, Privileges};

/// What is missing to load and attach tracing programs, or None.
pub fn missing_for_tracing(p: &Privileges) -> Option<String> {
    if p.can_trace() {
        return None;
    }
    let mut missing = Vec::new();
    if !p.cap_bpf {
        missing.push("CAP_BPF");
    }
    if !p.cap_perfmon {
        missing.push("CAP_PERFMON");
    }
    Some(missing.join(" and "))
}

pub fn require_bpf_privileges() -> Result<()> {
    match missing_for_tracing(&privileges()) {
        None => Ok(()),
        Some(missing) => Err(Error::Privileges { missing }),
    }
}

/// tc, XDP and netfilter programs (and the links that attach them) need
/// CAP_NET_ADMIN besides CAP_BPF; `what` says who asks.
pub fn require_net_admin(what: &str) -> Result<()> {
    let p = privileges();
    if p.cap_net_admin || p.cap_sys_admin {
        Ok(())
    } else {
        Err(Error::Privileges {
            missing: format!("CAP_NET_ADMIN (for {what})"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_is_missing() {
        assert_eq!(
            missing_for_tracing(&Privileges::from_mask(0x1ff_ffff_ffff)),
            None
        );
        assert_eq!(
            missing_for_tracing(&Privileges::from_mask(0)).as_deref(),
            Some("CAP_BPF and CAP_PERFMON")
        );
        assert_eq!(
            missing_for_tracing(&Privileges::from_mask(1 << 39)).as_deref(),
            Some("CAP_PERFMON")
        );
    }
}
