//! Effective capabilities, read from `/proc/self/status` (`CapEff`).

use serde::Serialize;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_RESOURCE: u32 = 24;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The capabilities that matter for BPF tracing, as the process holds them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Privileges {
    /// Loading programs and creating maps (or CAP_SYS_ADMIN).
    pub cap_bpf: bool,
    /// Tracing programs, perf events, reading kernel memory (or CAP_SYS_ADMIN).
    pub cap_perfmon: bool,
    /// XDP, tc/tcx and netfilter attachment.
    pub cap_net_admin: bool,
    /// Stands in for CAP_BPF and CAP_PERFMON; needed for namespaces and mounts.
    pub cap_sys_admin: bool,
    /// Raising RLIMIT_MEMLOCK (harmless when missing since 5.11).
    pub cap_sys_resource: bool,
    /// The whole CapEff mask.
    pub cap_eff: u64,
}

impl Privileges {
    /// Parse the `CapEff:` line of a `/proc/<pid>/status` text. `None` when absent or malformed.
    pub fn from_status(status: &str) -> Option<Self> {
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))?
            .trim();
        let mask = u64::from_str_radix(hex, 16).ok()?;
        Some(Self::from_mask(mask))
    }

    /// Privileges from a raw capability mask.
    pub fn from_mask(mask: u64) -> Self {
        let has = |cap: u32| mask & (1u64 << cap) != 0;
        Privileges {
            cap_bpf: has(CAP_BPF),
            cap_perfmon: has(CAP_PERFMON),
            cap_net_admin: has(CAP_NET_ADMIN),
            cap_sys_admin: has(CAP_SYS_ADMIN),
            cap_sys_resource: has(CAP_SYS_RESOURCE),
            cap_eff: mask,
        }
    }

    /// Enough to load and attach tracing programs and create maps.
    pub fn can_trace(&self) -> bool {
        self.cap_sys_admin || (self.cap_bpf && self.cap_perfmon)
    }

    /// The names of the capabilities held, in the order of the fields.
    pub fn held(&self) -> Vec<&'static str> {
        self.named()
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| n)
            .collect()
    }

    /// The names of the capabilities not held.
    pub fn lacking(&self) -> Vec<&'static str> {
        self.named()
            .into_iter()
            .filter(|(_, on)| !*on)
            .map(|(n, _)| n)
            .collect()
    }

    fn named(&self) -> [(&'static str, bool); 5] {
        [
            ("CAP_BPF", self.cap_bpf),
            ("CAP_PERFMON", self.cap_perfmon),
            ("CAP_NET_ADMIN", self.cap_net_admin),
            ("CAP_SYS_ADMIN", self.cap_sys_admin),
            ("CAP_SYS_RESOURCE", self.cap_sys_resource),
        ]
    }
}

/// The effective capabilities of this process (all false if `/proc/self/status` is unreadable).
pub fn privileges() -> Privileges {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| Privileges::from_status(&s))
        .unwrap_or_default()
}
