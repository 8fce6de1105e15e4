//! Network namespaces: resolving what the user names, naming what the kernel
//! reports (an inode number), and running code inside one.

use crate::error::{Error, Result};
use crate::model::value::Name;
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::AsRawFd;
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
    /// cannot be opened: the run then goes on as before).
    pub fn hold(ns: &Netns) -> Self {
        Pin(std::fs::File::open(&ns.path).ok().map(std::sync::Arc::new))
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
    // SAFETY: ioctl NS_GET_NSTYPE on an fd we own; returns the namespace type.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let t = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_NSTYPE as _) };
    t == libc::CLONE_NEWNET
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
        // SAFETY: setns on a thread of our own with an fd we own; the
        // thread ends after f, so no other code runs in the namespace.
        if !here && unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            let e = std::io::Error::last_os_error();
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
            let made = crate::kernel::probe::sys::unshare_netns()
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
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    let idx = in_netns(&ns.path, move || unsafe {
        libc::if_nametoindex(cname.as_ptr())
    })
    .map_err(|e| {
        Error::io(
            format!("entering network namespace {}", ns.path.display()),
            e,
        )
    })?;
    if idx == 0 {
        return Err(Error::usage(format!(
            "unknown interface '{name}' in network namespace {} (inode {})",
            ns.path.display(),
            ns.inode
        )));
    }
    Ok(idx)
}

/// The name of interface `index` in the namespace at `path`.
pub(crate) fn ifname_in(path: &Path, index: u32) -> Option<String> {
    in_netns(path, move || {
        let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
        // SAFETY: buf has IF_NAMESIZE bytes as if_indextoname requires.
        let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
        if p.is_null() {
            return None;
        }
        // SAFETY: on success buf holds a NUL-terminated name.
        Some(
            unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned(),
        )
    })
    .ok()
    .flatten()
}

/// Names for namespace inodes and (namespace, ifindex) pairs, refreshed when
/// an unknown one shows up (at most once a second, so a storm of unknown
/// namespaces costs nothing).
#[derive(Debug, Default)]
pub struct Names {
    netns: HashMap<u32, (Name, PathBuf)>,
    ifnames: HashMap<(u32, u32), Option<Name>>,
    last_scan: Option<Instant>,
    /// Namespaces named recently, by inode modulo the slot count (only names
    /// found are remembered: an unknown namespace is looked up again, and may
    /// be found by a rescan).
    recent: [Option<(u32, Name)>; 8],
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
        for (ns, name) in scan() {
            self.netns
                .entry(ns.inode)
                .or_insert((Name::from(name), ns.path));
        }
    }

    fn maybe_rescan(&mut self, inode: u32) {
        if inode != 0
            && !self.netns.contains_key(&inode)
            && self
                .last_scan
                .is_none_or(|t| t.elapsed() > Duration::from_secs(1))
        {
            self.rescan();
        }
    }

    pub fn netns_name(&mut self, inode: u32) -> Option<Name> {
        // A packet crosses a few namespaces over and over: remember the last
        // ones found, in a few slots tried before the map (SipHash).
        let slot = inode as usize % self.recent.len();
        if let Some((last, name)) = &self.recent[slot] {
            if *last == inode {
                return Some(name.clone());
            }
        }
        self.maybe_rescan(inode);
        let name = self.netns.get(&inode).map(|(n, _)| n.clone());
        if let Some(n) = &name {
            self.recent[slot] = Some((inode, n.clone()));
        }
        name
    }

    /// The name of an interface the kernel reported only by index.
    pub fn ifname(&mut self, netns: u32, ifindex: u32) -> Option<Name> {
        if ifindex == 0 || netns == 0 {
            return None;
        }
        if let Some(n) = self.ifnames.get(&(netns, ifindex)) {
            return n.clone();
        }
        self.maybe_rescan(netns);
        let name = self
            .netns
            .get(&netns)
            .and_then(|(_, p)| ifname_in(p, ifindex))
            .map(Name::from);
        self.ifnames.insert((netns, ifindex), name.clone());
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
