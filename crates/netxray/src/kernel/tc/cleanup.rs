//! Cleaning up after netxrays that were killed (see the module above for
//! what and when): which filters are stale, the qdiscs netxray recorded,
//! and the sweeps `trace`/`stats` and `doctor` make.

use super::rtnl::{self, Direction, FilterInfo, QdiscInfo, TC_H_CLSACT};
use super::state;
use super::{route_socket, FILTER_PREFIX};
use crate::kernel::netns::{self, Netns};
use crate::kernel::sys::netlink::NlSocket;
use std::io;
use std::sync::Mutex;

/// The filters this process has made and not yet deleted:
/// (netns inode, ifindex, side).
static LIVE: Mutex<Vec<(u32, u32, Direction)>> = Mutex::new(Vec::new());

pub(super) fn live(key: (u32, u32, Direction)) -> bool {
    LIVE.lock().is_ok_and(|l| l.contains(&key))
}

pub(super) fn set_live(key: (u32, u32, Direction), on: bool) {
    if let Ok(mut l) = LIVE.lock() {
        l.retain(|k| *k != key);
        if on {
            l.push(key);
        }
    }
}

/// A netxray process with this pid runs (this one included).
pub(super) fn netxray_alive(pid: u32) -> bool {
    pid == std::process::id()
        || std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "netxray")
}

/// The pid in a netxray filter's name (`netxray:<pid>[:<program>]`).
pub(super) fn owner(f: &FilterInfo) -> Option<u32> {
    if f.kind != "bpf" || f.handle == 0 {
        return None;
    }
    let rest = f.name.as_deref()?.strip_prefix(FILTER_PREFIX)?;
    rest.split(':').next()?.parse().ok()
}

/// What is in an interface's clsact qdisc, once stale netxray filters are
/// deleted.
#[derive(Debug, Default)]
pub(super) struct Survey {
    pub qdisc: Option<QdiscInfo>,
    /// What was deleted, for the user.
    pub removed: Vec<String>,
    /// Filters of running netxrays (this one included).
    pub netxray: usize,
    /// Anyone else's.
    pub foreign: usize,
}

/// Look at both sides of `ifindex` and delete the netxray filters whose
/// owner is gone.
pub(super) fn survey(sock: &NlSocket, netns_inode: u32, ifindex: u32) -> io::Result<Survey> {
    let mut s = Survey {
        qdisc: rtnl::ingress_qdisc(sock, ifindex)?,
        ..Survey::default()
    };
    let sides: &[Direction] = match s.qdisc.as_ref().map(|q| q.kind.as_str()) {
        Some("clsact") => &Direction::BOTH,
        // The ingress qdisc has one side (and answers for "egress" with it).
        Some("ingress") => &[Direction::Ingress],
        _ => &[],
    };
    let me = std::process::id();
    for &dir in sides {
        for f in rtnl::filters(sock, ifindex, dir)? {
            if f.handle == 0 {
                continue; // a priority's head, not a filter
            }
            let stale = match owner(&f) {
                None => {
                    s.foreign += 1;
                    continue;
                }
                Some(pid) if pid == me => !live((netns_inode, ifindex, dir)),
                Some(pid) => !netxray_alive(pid),
            };
            if !stale {
                s.netxray += 1;
                continue;
            }
            let what = format!(
                "filter {} (pref {}) at {} of ifindex {ifindex}",
                f.name.as_deref().unwrap_or_default(),
                f.prio,
                dir.name()
            );
            match rtnl::ack(sock, |seq| rtnl::del_filter(ifindex, dir, &f, seq)) {
                Ok(()) => s.removed.push(what),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => {
                    tracing::warn!("cannot delete the leftover {what}: {e}");
                    s.netxray += 1;
                }
            }
        }
    }
    Ok(s)
}

/// After a netxray filter went from `ifindex`: delete the clsact qdisc
/// if a netxray created it (its creator is this process or gone) and
/// nothing is left in it. What was removed, for the user.
pub(super) fn release_qdisc(sock: &NlSocket, netns_inode: u32, ifindex: u32) -> Vec<String> {
    let Some(rec) = state::read(netns_inode, ifindex) else {
        return Vec::new();
    };
    if !rec.same_netns(sock.netns_cookie()) {
        state::remove(netns_inode, ifindex); // the inode was reused
        return Vec::new();
    }
    if rec.pid != std::process::id() && netxray_alive(rec.pid) {
        return Vec::new(); // its creator will
    }
    let s = match survey(sock, netns_inode, ifindex) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("clsact qdisc of ifindex {ifindex}: {e}");
            return Vec::new();
        }
    };
    let mut removed = s.removed;
    if s.qdisc.as_ref().is_none_or(|q| q.kind != "clsact") {
        state::remove(netns_inode, ifindex); // gone already
        return removed;
    }
    if s.foreign > 0 {
        tracing::debug!(
            "the clsact qdisc netxray made on {} holds others' filters now: left in place",
            rec.ifname
        );
        state::remove(netns_inode, ifindex);
        return removed;
    }
    if s.netxray > 0 {
        return removed; // the last netxray to leave deletes it
    }
    match rtnl::ack(sock, |seq| rtnl::del_clsact(ifindex, seq)) {
        Ok(()) => {
            removed.push(format!(
                "clsact qdisc on {} (made by netxray {})",
                rec.ifname, rec.pid
            ));
            state::remove(netns_inode, ifindex);
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) => {
            state::remove(netns_inode, ifindex);
        }
        Err(e) => tracing::warn!("cannot delete the clsact qdisc on {}: {e}", rec.ifname),
    }
    removed
}

/// Go through the records of clsact qdiscs whose netxray is gone: delete
/// the qdisc where nothing is left in it. What was removed.
pub fn sweep_records() -> Vec<String> {
    let me = std::process::id();
    let mut out = Vec::new();
    for rec in state::all() {
        if rec.pid != me && netxray_alive(rec.pid) {
            continue;
        }
        let Ok(ns) = netns::resolve(&rec.netns_inode.to_string()) else {
            state::remove(rec.netns_inode, rec.ifindex); // namespace gone
            continue;
        };
        match route_socket(&ns.path) {
            Ok(sock) => out.extend(
                release_qdisc(&sock, rec.netns_inode, rec.ifindex)
                    .into_iter()
                    .map(|w| {
                        let w = w.replace(&format!("ifindex {}", rec.ifindex), &rec.ifname);
                        format!("{w} in {}", ns.path.display())
                    }),
            ),
            Err(e) => tracing::debug!("{}: {e}", ns.path.display()),
        }
    }
    out
}

/// Everything dead netxrays left on the legacy path in namespace `ns`:
/// stale filters on every interface, and recorded qdiscs left empty.
/// What was removed (for `doctor`).
pub fn clean_namespace(ns: &Netns) -> io::Result<Vec<String>> {
    let sock = route_socket(&ns.path)?;
    let mut out = Vec::new();
    for q in rtnl::qdiscs(&sock)? {
        if q.parent != TC_H_CLSACT {
            continue;
        }
        let name = netns::ifname_in(&ns.path, q.ifindex).unwrap_or_else(|| q.ifindex.to_string());
        let mut here = survey(&sock, ns.inode, q.ifindex)?.removed;
        here.extend(release_qdisc(&sock, ns.inode, q.ifindex));
        let number = format!("ifindex {}", q.ifindex);
        out.extend(here.into_iter().map(|w| w.replace(&number, &name)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::rtnl::ETH_P_ALL;
    use super::*;

    fn filter(kind: &str, handle: u32, name: Option<&str>) -> FilterInfo {
        FilterInfo {
            prio: 1,
            protocol: ETH_P_ALL,
            handle,
            kind: kind.into(),
            name: name.map(str::to_string),
            prog_id: None,
            direct_action: true,
        }
    }

    #[test]
    fn the_owner_is_read_from_netxray_names_only() {
        assert_eq!(
            owner(&filter("bpf", 5, Some("netxray:42:nx_tc_ingress"))),
            Some(42)
        );
        assert_eq!(owner(&filter("bpf", 5, Some("netxray:42"))), Some(42));
        assert_eq!(owner(&filter("bpf", 5, Some("cilium:42"))), None);
        assert_eq!(owner(&filter("bpf", 5, None)), None);
        assert_eq!(owner(&filter("flower", 5, Some("netxray:42"))), None);
        assert_eq!(owner(&filter("bpf", 0, Some("netxray:42"))), None, "a head");
    }
}
