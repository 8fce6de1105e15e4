//! What killed netxrays left on the legacy tc path (clsact + cls_bpf, on
//! kernels without tcx): their filters on every interface of netxray's
//! namespace and of those under /run/netns, and the clsact qdiscs they
//! made, now empty. Unlike nftables tables, these do not go away by
//! themselves, so doctor deletes them (as the next `trace -t tc` or `stats`
//! would) and says what it removed.

use super::{name, Check};
use crate::kernel::netns::{self, Netns, RUN_NETNS};
use crate::kernel::tc;

/// Namespaces to look in: netxray's own and those under /run/netns.
fn namespaces() -> Vec<(String, Netns)> {
    let mut out = Vec::new();
    if let Ok(me) = netns::current() {
        out.push(("netxray's namespace".to_string(), me));
    }
    if let Ok(rd) = std::fs::read_dir(RUN_NETNS) {
        for e in rd.flatten() {
            let label = e.file_name().to_string_lossy().into_owned();
            if let Ok(ns) = netns::resolve(&e.path().to_string_lossy()) {
                if !out.iter().any(|(_, n)| n.inode == ns.inode) {
                    out.push((label, ns));
                }
            }
        }
    }
    out
}

pub(crate) fn leftovers() -> Check {
    let n = name::TC_LEFTOVERS;
    let mut removed = tc::sweep_records();
    let mut looked = 0;
    let mut failed = None;
    for (label, ns) in namespaces() {
        match tc::clean_namespace(&ns) {
            Ok(r) => {
                looked += 1;
                removed.extend(r.into_iter().map(|w| format!("{w} in {label}")));
            }
            Err(e) => failed = Some(format!("{label}: {e}")),
        }
    }
    if looked == 0 {
        let why = failed.unwrap_or_else(|| "no namespace".into());
        return Check::unknown(n, format!("could not list tc filters: {why}"));
    }
    if removed.is_empty() {
        Check::ok(n, format!("none in {looked} namespaces"))
    } else {
        Check::warning(
            n,
            format!("removed, left by killed netxrays: {}", removed.join(", ")),
        )
    }
}
