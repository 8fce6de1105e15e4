//! Checks that tests leave nothing behind: namespaces with our prefix, BPF links.

use super::netns::NETNS_DIR;
use super::NAME_PREFIX;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// All names in `/run/netns` (empty if the directory does not exist).
pub fn netns_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Namespaces starting with `prefix`.
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    netns_names()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Namespaces this test process made and has not deleted (`nxt<our pid>-...`).
pub fn our_netns() -> Vec<String> {
    netns_with_prefix(&format!("{NAME_PREFIX}{}-", std::process::id()))
}

/// The pid in a test namespace name `nxt<pid>-<n>-<name>`, if it is one.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// Every test namespace of any run, live or dead (`nxt<pid>-...`).
pub fn test_netns() -> Vec<String> {
    netns_names()
        .into_iter()
        .filter(|n| owner_pid(n).is_some())
        .collect()
}

/// Deletes test namespaces whose owning process no longer exists (a run that was killed
/// before its guards could drop). Returns the names deleted.
pub fn reap_stale_netns() -> Vec<String> {
    let mut reaped = Vec::new();
    for name in test_netns() {
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let ok = Command::new("ip")
            .args(["netns", "del", &name])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            eprintln!("note: removed namespace {name} left by dead test process {pid}");
            reaped.push(name);
        }
    }
    reaped
}

/// Ids of all BPF links on the system: from `bpftool -j link list` when bpftool exists,
/// else from `link_id:` lines of every process's fdinfo (which misses links held by no fd,
/// e.g. pinned ones). `None` if neither works.
pub fn bpf_link_ids() -> Option<BTreeSet<u32>> {
    bpf_link_ids_bpftool().or_else(bpf_link_ids_procfs)
}

/// Number of BPF links on the system (see [`bpf_link_ids`]).
pub fn bpf_link_count() -> Option<usize> {
    bpf_link_ids().map(|ids| ids.len())
}

fn bpf_link_ids_bpftool() -> Option<BTreeSet<u32>> {
    let out = Command::new("bpftool")
        .args(["-j", "link", "list"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.as_array()?
        .iter()
        .map(|l| l["id"].as_u64().and_then(|id| u32::try_from(id).ok()))
        .collect()
}

fn bpf_link_ids_procfs() -> Option<BTreeSet<u32>> {
    let mut ids = BTreeSet::new();
    for proc_entry in std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()) {
        let pid = proc_entry.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        ids.extend(bpf_links_held_by_path(&proc_entry.path()));
    }
    Some(ids)
}

/// Ids of the BPF links process `pid` holds open (from its fdinfo).
pub fn bpf_links_held_by(pid: u32) -> BTreeSet<u32> {
    bpf_links_held_by_path(&Path::new("/proc").join(pid.to_string()))
}

fn bpf_links_held_by_path(proc_dir: &Path) -> BTreeSet<u32> {
    let Ok(fds) = std::fs::read_dir(proc_dir.join("fdinfo")) else {
        return BTreeSet::new();
    };
    fds.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("link_id:"))
                .and_then(|id| id.trim().parse().ok())
        })
        .collect()
}
