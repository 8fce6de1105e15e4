//! Network namespaces as RAII guards, and running code or commands inside them.

use super::{poll_until, unique_prefix};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// How long setup steps wait for the kernel (link up, bridge port forwarding, addresses).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Sysctls every test namespace gets: no ICMP rate limit (so every probe gets its error),
/// and IPv6 without DAD, router solicitations or RAs (quiet, and addresses usable at once).
/// `all` and `default` are set before any interface exists, so new interfaces inherit them.
const BASELINE_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.icmp_ratelimit", "0"),
    ("net.ipv6.icmp.ratelimit", "0"),
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
    ("net.ipv6.conf.all.dad_transmits", "0"),
    ("net.ipv6.conf.default.dad_transmits", "0"),
    ("net.ipv6.conf.all.router_solicitations", "0"),
    ("net.ipv6.conf.default.router_solicitations", "0"),
    ("net.ipv6.conf.all.accept_ra", "0"),
    ("net.ipv6.conf.default.accept_ra", "0"),
];

/// A named network namespace (`/run/netns/<name>`), deleted when dropped.
///
/// Interfaces inside die with the namespace once nothing else holds it: drop sockets made
/// in it and join threads that entered it before (or let them go out of scope first:
/// declare the topology before them).
#[derive(Debug)]
pub struct Netns {
    name: String,
    inode: u64,
}

impl Netns {
    /// Creates `nxt<pid>-<n>-<name>` with a fresh `<n>`, loopback up, baseline sysctls.
    pub fn new(name: &str) -> Netns {
        Netns::with_full_name(format!("{}{name}", unique_prefix()))
    }

    /// Creates a namespace with exactly this name (callers supply the `nxt...` prefix).
    pub fn with_full_name(name: String) -> Netns {
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap_or_else(|e| panic!("spawn `ip netns add {name}`: {e}"));
        if !out.status.success() {
            // A half-made namespace (file created, mount failed) must not stay behind.
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
            panic!(
                "ip netns add {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        // From here on the guard owns it: a panic below still deletes the namespace.
        let mut ns = Netns { name, inode: 0 };
        ns.inode = std::fs::metadata(ns.path())
            .unwrap_or_else(|e| panic!("stat {}: {e}", ns.path().display()))
            .ino();
        ns.up("lo");
        for (key, value) in BASELINE_SYSCTLS {
            ns.sysctl(key, value);
        }
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// The namespace's inode number: what BPF reads as `dev->nd_net.net->ns.inum`, and what
    /// `stat -L -c %i /run/netns/<name>` prints.
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// Runs `argv` inside the namespace (`ip netns exec`); panics with its stderr if it
    /// fails; returns its stdout.
    pub fn run(&self, argv: &[&str]) -> String {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(argv);
        command_stdout("ip", &args)
    }

    /// `ip -n <name> <args>`; panics on failure; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        command_stdout("ip", &full)
    }

    /// `ip -n <name> -j <args>`, parsed.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        let out = self.ip(&full);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
    }

    /// `bridge -n <name> <args>`; panics on failure; returns stdout.
    pub fn bridge_cmd(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        command_stdout("bridge", &full)
    }

    /// Sets a sysctl inside the namespace (`net.ipv4.icmp_ratelimit`-style key) by writing
    /// `/proc/sys/...` from a thread that entered it: no dependency on procps' `sysctl`.
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        in_netns(self, || {
            std::fs::write(&path, value)
                .unwrap_or_else(|e| panic!("sysctl {key}={value} ({}): {e}", path.display()));
        });
    }

    /// Reads a sysctl inside the namespace.
    pub fn read_sysctl(&self, key: &str) -> String {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        in_netns(self, || {
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read sysctl {key}: {e}"))
                .trim()
                .to_string()
        })
    }

    /// `ip link set <ifname> up`.
    pub fn up(&self, ifname: &str) {
        self.ip(&["link", "set", ifname, "up"]);
    }

    /// Adds an address (`198.18.0.1/24` or `2001:db8::1/64`; IPv6 gets `nodad`).
    pub fn addr(&self, ifname: &str, cidr: &str) {
        let ip: std::net::IpAddr = cidr
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("not an address/prefix: {cidr}"));
        super::traffic::assert_test_addr(ip);
        if ip.is_ipv6() {
            self.ip(&["addr", "add", cidr, "dev", ifname, "nodad"]);
        } else {
            self.ip(&["addr", "add", cidr, "dev", ifname]);
        }
    }

    /// Turns IPv6 off on one interface (no MLD/ND noise from it).
    pub fn disable_ipv6(&self, ifname: &str) {
        self.sysctl(&format!("net.ipv6.conf.{ifname}.disable_ipv6"), "1");
    }

    /// Creates bridge `name` (STP off, forward delay 0), enslaves `ports` and brings them and
    /// the bridge up. Ports forward only once their carrier is up (a veth port needs its
    /// peer up): call [`Netns::wait_forwarding`] after the whole topology is up.
    pub fn bridge(&self, name: &str, ports: &[&str]) {
        self.ip(&[
            "link",
            "add",
            name,
            "type",
            "bridge",
            "forward_delay",
            "0",
            "stp_state",
            "0",
        ]);
        for port in ports {
            self.ip(&["link", "set", port, "master", name]);
            self.up(port);
        }
        self.up(name);
    }

    /// The interface's ifindex in this namespace.
    /// The interface's MAC address.
    pub fn mac(&self, ifname: &str) -> [u8; 6] {
        let v = self.ip_json(&["link", "show", "dev", ifname]);
        let text = v[0]["address"].as_str().unwrap_or("");
        let bytes: Vec<u8> = text
            .split(':')
            .filter_map(|b| u8::from_str_radix(b, 16).ok())
            .collect();
        bytes
            .try_into()
            .unwrap_or_else(|_| panic!("no MAC for {ifname} in {}: {v}", self.name))
    }

    pub fn ifindex(&self, ifname: &str) -> u32 {
        let v = self.ip_json(&["link", "show", "dev", ifname]);
        v[0]["ifindex"]
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or_else(|| panic!("no ifindex for {ifname} in {}: {v}", self.name))
    }

    /// Waits until the interface is operationally up (carrier on both veth ends) and none of
    /// its addresses is tentative.
    pub fn wait_ready(&self, ifname: &str) {
        let ok = poll_until(SETUP_TIMEOUT, POLL_EVERY, || {
            let v = self.ip_json(&["addr", "show", "dev", ifname]);
            let link = &v[0];
            let up = link["operstate"] == "UP";
            let settled = link["addr_info"].as_array().is_some_and(|addrs| {
                addrs
                    .iter()
                    .all(|a| a.get("tentative").is_none() && a.get("dadfailed").is_none())
            });
            (up && settled).then_some(())
        });
        if ok.is_none() {
            let state = self.ip(&["addr", "show", "dev", ifname]);
            panic!(
                "{ifname} in {} not ready after {SETUP_TIMEOUT:?}:\n{state}",
                self.name
            );
        }
    }

    /// Waits until every bridge port in `ports` is in state `forwarding`.
    pub fn wait_forwarding(&self, ports: &[&str]) {
        for port in ports {
            let ok = poll_until(SETUP_TIMEOUT, POLL_EVERY, || {
                let out = self.bridge_cmd(&["-j", "link", "show", "dev", port]);
                let v: serde_json::Value = serde_json::from_str(&out).ok()?;
                (v[0]["state"] == "forwarding").then_some(())
            });
            if ok.is_none() {
                let state = self.bridge_cmd(&["link", "show"]);
                panic!(
                    "bridge port {port} in {} not forwarding after {SETUP_TIMEOUT:?}:\n{state}",
                    self.name
                );
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Never panic here: this may run while a failed test unwinds.
        match Command::new("ip")
            .args(["netns", "del", &self.name])
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: ip netns del {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("warning: spawn ip netns del {}: {e}", self.name),
        }
    }
}

/// A veth pair: `name_a` in `a`, its peer `name_b` in `b`. Both ends are created directly in
/// their namespaces (never in the host namespace, where names could collide). Down; addresses
/// none.
pub fn veth(a: &Netns, name_a: &str, b: &Netns, name_b: &str) {
    a.ip(&[
        "link", "add", name_a, "type", "veth", "peer", "name", name_b, "netns", &b.name,
    ]);
}

/// Runs `f` on a new thread that entered `ns` (setns on that thread only; the caller's
/// thread stays where it is) and returns its result. A panic in `f` is re-raised here.
///
/// Sockets created inside `f` stay in `ns` for their whole life, whichever thread uses them
/// later: returning a socket from `f` is the easy way to keep a receiver open.
pub fn in_netns<T: Send, F: FnOnce() -> T + Send>(ns: &Netns, f: F) -> T {
    let path = ns.path();
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name(format!("netns:{}", ns.name))
            .spawn_scoped(scope, move || {
                enter_netns(&path);
                f()
            })
            .unwrap_or_else(|e| panic!("spawn thread for netns {}: {e}", ns.name));
        match handle.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Like [`in_netns`], but does not wait: the thread runs `f` in `ns` in the background.
pub fn spawn_in_netns<T, F>(ns: &Netns, f: F) -> JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = ns.path();
    std::thread::Builder::new()
        .name(format!("netns:{}", ns.name))
        .spawn(move || {
            enter_netns(&path);
            f()
        })
        .unwrap_or_else(|e| panic!("spawn thread for netns {}: {e}", ns.name))
}

/// Moves the calling thread into the network namespace at `path`.
fn enter_netns(path: &Path) {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    // SAFETY: setns on a valid fd of an nsfs file; affects only the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        panic!(
            "setns({}, CLONE_NEWNET): {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
}

/// Runs a program; panics with its stderr when it fails; returns its stdout.
pub fn command_stdout(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn `{program} {}`: {e}", args.join(" ")));
    if !out.status.success() {
        panic!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}
