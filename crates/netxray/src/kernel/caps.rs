//! The privileges netxray needs, checked up front so the error names what is
//! missing instead of surfacing as an EPERM from deep inside a load.

use crate::error::{Error, Result};

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability mask from /proc/self/status text.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

fn has(mask: u64, cap: u32) -> bool {
    mask & (1u64 << cap) != 0
}

/// What is missing to load and attach tracing programs, or None.
pub fn missing_for_tracing(mask: u64) -> Option<String> {
    if has(mask, CAP_SYS_ADMIN) {
        return None;
    }
    let mut missing = Vec::new();
    if !has(mask, CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(mask, CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    (!missing.is_empty()).then(|| missing.join(" and "))
}

/// Whether CAP_NET_ADMIN (XDP, tc, netfilter) is there.
pub fn has_net_admin(mask: u64) -> bool {
    has(mask, CAP_NET_ADMIN) || has(mask, CAP_SYS_ADMIN)
}

pub fn effective() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_cap_eff(&s))
        .unwrap_or(0)
}

pub fn require_bpf_privileges() -> Result<()> {
    match missing_for_tracing(effective()) {
        None => Ok(()),
        Some(missing) => Err(Error::Privileges { missing }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_judges() {
        let root = parse_cap_eff("Name:\tx\nCapEff:\t000001ffffffffff\n").unwrap();
        assert_eq!(missing_for_tracing(root), None);
        let none = parse_cap_eff("CapEff:\t0000000000000000\n").unwrap();
        assert_eq!(
            missing_for_tracing(none).as_deref(),
            Some("CAP_BPF and CAP_PERFMON")
        );
        let bpf_only = 1u64 << CAP_BPF;
        assert_eq!(
            missing_for_tracing(bpf_only).as_deref(),
            Some("CAP_PERFMON")
        );
        assert!(parse_cap_eff("nothing").is_none());
    }
}
