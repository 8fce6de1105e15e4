//! Network namespaces: resolving what the user names, naming what the kernel
//! reports (an inode number), and running code inside one.

use crate::error::{Error, Result};
use crate::kernel::sys;
use crate::model::value::{Name, NsId};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const RUN_NETNS: &str = "/run/netns";

/// A network namespace the user named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    pub inode: u32,
    /// A path that opens it (for entering it).
    pub path: PathBuf,
}

fn inode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().map(|m| m.ino() as u32)
}

/// An open file of a namespace the user named, held for the whole run: it
/// keeps the namespace (and so its inode number) alive, so a namespace
/// created after the named one was deleted cannot take its inode and be
/// taken for it (the kernel hands freed inode numbers out again at once).
/// Not part of a value's identity: pins compare equal.
#[derive(Debug, Clone, Default)]
pub struct Pin(#[allow(dead_code)] Option<std::sync::Arc<std::fs::File>>);

impl Pin {
    /// Hold the namespace at `ns.path` (a pin holding nothing when it
    /// cannot be opened: the run then goes on as before), and watch that
    /// path: when it no longer names the namespace (`ip netns del`, or the
    /// process holding it exited), the run stops with a message, as on
    /// SIGTERM, instead of watching a namespace nobody can reach.
    pub fn hold(ns: &Netns) -> Self {
        let Ok(file) = std::fs::File::open(&ns.path) else {
            return Pin(None);
        };
        let file = std::sync::Arc::new(file);
        if let Ok(meta) = file.metadata() {
            watch(
                ns.path.clone(),
                (meta.dev(), meta.ino()),
                std::sync::Arc::downgrade(&file),
            );
        }
        Pin(Some(file))
    }
}

/// How often a held namespace's path is checked.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// Check every [`WATCH_EVERY`] that `path` is still the namespace `id`
/// (device, inode) while the pin lives; when not, say so and stop the run
/// (SIGTERM to ourselves: every subcommand ends on it cleanly, detaching
/// and printing its summary). The shared run driver of issue #17 should
/// take this over.
fn watch(path: PathBuf, id: (u64, u64), pin: std::sync::Weak<std::fs::File>) {
    let shown = path.display().to_string();
    let spawned = std::thread::Builder::new()
        .name("nx-netns-watch".into())
        .spawn(move || loop {
            std::thread::sleep(WATCH_EVERY);
            if pin.upgrade().is_none() {
                return;
            }
            let now = std::fs::metadata(&path).map(|m| (m.dev(), m.ino()));
            if now.ok() != Some(id) {
                eprintln!(
                    "netxray: network namespace {} is gone (deleted, or the process holding it exited): stopping",
                    path.display()
                );
                // SAFETY: kill on our own pid with a signal every
                // subcommand handles.
                unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
                return;
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("not watching namespace {shown}: {e}");
    }
}

impl PartialEq for Pin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Pin {}

/// netxray's own namespace.
pub fn current() -> Result<Netns> {
    let path = PathBuf::from("/proc/self/ns/net");
    let inode = inode_of(&path).ok_or_else(|| Error::usage("cannot stat /proc/self/ns/net"))?;
    Ok(Netns {
        inode,
        path: PathBuf::from(format!("/proc/{}/ns/net", std::process::id())),
    })
}

/// Resolve `--netns`: an inode number, a name under /run/netns, or a path.
pub fn resolve(spec: &str) -> Result<Netns> {
    if let Ok(inode) = spec.parse::<u32>() {
        return find_by_inode(inode).ok_or_else(|| {
            Error::usage(format!(
                "network namespace {spec}: no namespace with that inode under {RUN_NETNS} or held by a process"
            ))
        });
    }
    let path = if spec.contains('/') {
        PathBuf::from(spec)
    } else {
        Path::new(RUN_NETNS).join(spec)
    };
    match std::fs::metadata(&path) {
        Ok(m) => {
            // A real netns file is an nsfs inode; refuse ordinary files.
            let ns = Netns { inode: m.ino() as u32, path };
            if !is_netns(&ns.path) {
                return Err(Error::usage(format!("{}: not a network namespace", ns.path.display())));
            }
            Ok(ns)
        }
        Err(_) => Err(Error::usage(format!(
            "unknown network namespace '{spec}': not under {RUN_NETNS} (see `ip netns list`) and not a path"
        ))),
    }
}

fn is_netns(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    sys::is_netns(f.as_fd())
}

fn find_by_inode(inode: u32) -> Option<Netns> {
    scan()
        .into_iter()
        .find(|(n, _)| n.inode == inode)
        .map(|(n, _)| n)
}

/// Every network namespace we can see (named under /run/netns or held by a
/// process), once each.
pub fn all() -> Vec<Netns> {
    scan().into_iter().map(|(n, _)| n).collect()
}

/// Every namespace we can see, with a name: /run/netns entries first, then
/// one process per namespace ("pid 42 (containerd)"); the first process's
/// namespace is "init".
fn scan() -> Vec<(Netns, String)> {
    let mut out: Vec<(Netns, String)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(RUN_NETNS) {
        for e in rd.flatten() {
            let path = e.path();
            if let Some(inode) = inode_of(&path) {
                out.push((
                    Netns { inode, path },
                    e.file_name().to_string_lossy().into_owned(),
                ));
            }
        }
    }
    // kthreadd (pid 2) always lives in the initial namespace; pid 1 may not
    // (a container's init).
    let init =
        inode_of(Path::new("/proc/2/ns/net")).or_else(|| inode_of(Path::new("/proc/1/ns/net")));
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
            let Some(inode) = inode_of(&path) else {
                continue;
            };
            if out.iter().any(|(n, _)| n.inode == inode) {
                continue;
            }
            let name = if Some(inode) == init {
                "init".to_string()
            } else {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                format!("pid {pid} ({})", comm.trim())
            };
            out.push((Netns { inode, path }, name));
        }
    }
    out
}

/// Run `f` on a thread that entered the namespace at `path`.
pub fn in_netns<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let file = std::fs::File::open(path)?;
    // Already there (netxray's own namespace): no setns, which would need
    // CAP_SYS_ADMIN for nothing.
    let here = same_netns(&file, Path::new("/proc/thread-self/ns/net"));
    std::thread::spawn(move || {
        // On a thread of our own: the thread ends after f, so no other code
        // runs in the namespace.
        let entered = if here {
            Ok(())
        } else {
            sys::setns_net(file.as_fd())
        };
        if let Err(e) = entered {
            let e = std::io::Error::from_raw_os_error(e.0);
            if e.raw_os_error() == Some(libc::EPERM) {
                return Err(std::io::Error::new(
                    e.kind(),
                    "CAP_SYS_ADMIN is needed to enter another network namespace",
                ));
            }
            return Err(e);
        }
        Ok(f())
    })
    .join()
    .map_err(|_| std::io::Error::other("namespace thread panicked"))?
}

/// Run `f` with a throwaway network namespace: a thread of ours unshares
/// one (with `lo` only, down) and holds it until `f` returns; then the
/// namespace goes with the thread. For trying attachments without touching
/// the host's interfaces or netfilter hooks.
pub fn throwaway<T>(f: impl FnOnce(&Netns) -> T) -> std::io::Result<T> {
    use std::sync::mpsc;
    let (tx, rx) = mpsc::channel::<std::io::Result<Netns>>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let holder = std::thread::Builder::new()
        .name("nx-throwaway-netns".into())
        .spawn(move || {
            let made = sys::unshare_netns()
                .map_err(|e| std::io::Error::from_raw_os_error(e.0))
                .and_then(|()| {
                    // SAFETY: gettid has no preconditions.
                    let tid = unsafe { libc::gettid() };
                    let path =
                        PathBuf::from(format!("/proc/{}/task/{tid}/ns/net", std::process::id()));
                    let inode = inode_of(&path)
                        .ok_or_else(|| std::io::Error::other("cannot stat the new namespace"))?;
                    Ok(Netns { inode, path })
                });
            let ok = made.is_ok();
            let _ = tx.send(made);
            if ok {
                // Hold the namespace until the caller is done.
                let _ = done_rx.recv();
            }
        })?;
    let ns = rx
        .recv()
        .map_err(|_| std::io::Error::other("namespace thread failed"))??;
    let out = f(&ns);
    let _ = done_tx.send(());
    let _ = holder.join();
    Ok(out)
}

/// Whether the open namespace file is the namespace at `other`.
fn same_netns(file: &std::fs::File, other: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(other)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// The ifindex of interface `name` inside `ns`.
pub fn ifindex(ns: &Netns, name: &str) -> Result<u32> {
    let cname =
        CString::new(name).map_err(|_| Error::usage(format!("bad interface name '{name}'")))?;
    in_netns(&ns.path, move || sys::ifindex(&cname))
        .map_err(|e| {
            Error::io(
                format!("entering network namespace {}", ns.path.display()),
                e,
            )
        })?
        .map_err(|_| {
            Error::usage(format!(
                "unknown interface '{name}' in network namespace {} (inode {})",
                ns.path.display(),
                ns.inode
            ))
        })
}

/// The name of interface `index` in the namespace at `path`.
pub(crate) fn ifname_in(path: &Path, index: u32) -> Option<String> {
    in_netns(path, move || sys::ifname(index).ok())
        .ok()
        .flatten()
}

/// The cookie of the namespace at `path` (SO_NETNS_COOKIE on a socket made
/// inside it, Linux 5.14+); None when it cannot be had (no CAP_SYS_ADMIN to
/// enter it, an older kernel).
pub fn cookie_of(path: &Path) -> Option<u64> {
    in_netns(path, sys::netns_cookie).ok().flatten()
}

/// How often the namespaces are looked at again, at most, when records name
/// one known by inode alone (before 5.12). One with a cookie is looked for
/// in a fresh scan the first time (each namespace once: a namespace made
/// just after the last scan is not in it), then at most every
/// [`RETRY_MISSING`].
const RESCAN_EVERY: Duration = Duration::from_millis(250);
/// A namespace not found is looked for again after this.
const RETRY_MISSING: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
enum Known {
    Found(Name, PathBuf),
    Missing(Instant),
}

/// Names for the namespaces the kernel reports (inode and cookie) and for
/// (namespace, ifindex) pairs. A namespace not seen before makes netxray look
/// at /run/netns and the processes again, so a namespace that took the inode
/// number of a deleted one gets its own name, not the deleted one's: the
/// name found for its inode is checked against its cookie (when netxray can
/// enter the namespace), and a namespace that is gone gets no name rather
/// than another's. Before 5.12 records have no cookie: names go by inode,
/// refreshed whenever a rescan happens.
#[derive(Debug, Default)]
pub struct Names {
    /// What each namespace seen is called, and a path to enter it.
    known: HashMap<NsId, Known>,
    /// The latest scan: inode -> name and path.
    scanned: HashMap<u32, (Name, PathBuf)>,
    ifnames: HashMap<(NsId, u32), Option<Name>>,
    last_scan: Option<Instant>,
    /// Namespaces named recently, by inode modulo the slot count (a packet
    /// crosses a few namespaces over and over: tried before the map).
    recent: [Option<(NsId, Name)>; 8],
}

impl Names {
    pub fn new() -> Self {
        let mut n = Self::default();
        n.rescan();
        n
    }

    /// Look at the namespaces again now (some were just seen to appear).
    pub fn rescan(&mut self) {
        self.last_scan = Some(Instant::now());
        self.scanned = scan()
            .into_iter()
            .map(|(ns, name)| (ns.inode, (Name::from(name), ns.path)))
            .collect();
        // What was named by inode alone may have changed hands.
        self.known.retain(|id, _| id.cookie != 0);
        self.ifnames.retain(|(id, _), _| id.cookie != 0);
        self.recent = Default::default();
    }

    /// Name and path of `id` in the latest scan, its cookie checked where
    /// it can be (a reused inode then names another namespace).
    fn lookup(&self, id: NsId) -> Option<(Name, PathBuf)> {
        let (name, path) = self.scanned.get(&id.inode).cloned()?;
        // The path may have gone since the scan (and the inode with it).
        if inode_of(&path) != Some(id.inode) {
            return None;
        }
        if id.cookie != 0 && cookie_of(&path).is_some_and(|c| c != id.cookie) {
            return None;
        }
        Some((name, path))
    }

    /// Name and path of a namespace not seen before: from the latest scan,
    /// else from a new one (a namespace made since, or one that took a
    /// deleted one's inode).
    fn find(&mut self, id: NsId) -> Option<(Name, PathBuf)> {
        if let Some(found) = self.lookup(id) {
            return Some(found);
        }
        if id.cookie != 0 || self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN_EVERY) {
            self.rescan();
            return self.lookup(id);
        }
        None
    }

    fn entry(&mut self, id: NsId) -> Option<(Name, PathBuf)> {
        match self.known.get(&id) {
            Some(Known::Found(n, p)) => return Some((n.clone(), p.clone())),
            Some(Known::Missing(t)) if t.elapsed() < RETRY_MISSING => return None,
            _ => {}
        }
        let found = self.find(id);
        let known = match &found {
            Some((n, p)) => Known::Found(n.clone(), p.clone()),
            None => Known::Missing(Instant::now()),
        };
        self.known.insert(id, known);
        found
    }

    pub fn netns_name(&mut self, id: NsId) -> Option<Name> {
        if id.inode == 0 {
            return None;
        }
        let slot = id.inode as usize % self.recent.len();
        if let Some((last, name)) = &self.recent[slot] {
            if *last == id {
                return Some(name.clone());
            }
        }
        let name = self.entry(id).map(|(n, _)| n);
        if let Some(n) = &name {
            self.recent[slot] = Some((id, n.clone()));
        }
        name
    }

    /// The name of an interface the kernel reported only by index.
    pub fn ifname(&mut self, id: NsId, ifindex: u32) -> Option<Name> {
        if ifindex == 0 || id.inode == 0 {
            return None;
        }
        if let Some(n) = self.ifnames.get(&(id, ifindex)) {
            return n.clone();
        }
        let name = self
            .entry(id)
            .and_then(|(_, p)| ifname_in(&p, ifindex))
            .map(Name::from);
        self.ifnames.insert((id, ifindex), name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_namespace_is_a_usage_error() {
        let err = resolve("definitely-not-a-netns-xyz").unwrap_err();
        assert!(matches!(err, Error::Usage(_)));
        assert!(err.to_string().contains("unknown network namespace"));
        assert!(matches!(resolve("/etc/hostname"), Err(Error::Usage(_))));
    }

    #[test]
    fn resolves_own_namespace_by_path_and_inode() {
        let me = current().unwrap();
        let by_path = resolve("/proc/self/ns/net").unwrap();
        assert_eq!(by_path.inode, me.inode);
        if let Ok(by_inode) = resolve(&me.inode.to_string()) {
            assert_eq!(by_inode.inode, me.inode);
        }
    }

    #[test]
    fn loopback_is_index_1() {
        let me = current().unwrap();
        assert_eq!(ifindex(&me, "lo").unwrap(), 1);
        assert!(matches!(ifindex(&me, "nx-no-such0"), Err(Error::Usage(_))));
    }
}
