//! Ready-made topologies, and a small builder for ad-hoc ones.

use super::netns::{veth, Netns};
use super::traffic::{udp_receiver, udp_recv};
use super::unique_prefix;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A set of namespaces sharing one prefix `nxt<pid>-<n>-`, looked up by short name.
/// Dropping it deletes them, last created first.
#[derive(Debug)]
pub struct Topology {
    prefix: String,
    namespaces: Vec<(String, Netns)>,
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}

impl Topology {
    pub fn new() -> Topology {
        Topology {
            prefix: unique_prefix(),
            namespaces: Vec::new(),
        }
    }

    /// The shared prefix, e.g. `nxt4242-3-`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Creates namespace `<prefix><short>` (loopback up, baseline sysctls).
    pub fn add_netns(&mut self, short: &str) -> &Netns {
        assert!(
            self.namespaces.iter().all(|(s, _)| s != short),
            "namespace {short} added twice"
        );
        let ns = Netns::with_full_name(format!("{}{short}", self.prefix));
        self.namespaces.push((short.to_string(), ns));
        &self.namespaces[self.namespaces.len() - 1].1
    }

    /// The namespace added as `short`.
    pub fn ns(&self, short: &str) -> &Netns {
        self.namespaces
            .iter()
            .find(|(s, _)| s == short)
            .map(|(_, ns)| ns)
            .unwrap_or_else(|| panic!("no namespace {short} in topology {}", self.prefix))
    }

    /// Full names of all namespaces, in creation order.
    pub fn netns_names(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .map(|(_, ns)| ns.name().to_string())
            .collect()
    }

    /// A veth pair between two namespaces of this topology (short names).
    pub fn veth(&self, ns_a: &str, name_a: &str, ns_b: &str, name_b: &str) {
        veth(self.ns(ns_a), name_a, self.ns(ns_b), name_b);
    }

    pub fn bridge(&self, ns: &str, name: &str, ports: &[&str]) {
        self.ns(ns).bridge(name, ports);
    }

    pub fn addr(&self, ns: &str, ifname: &str, cidr: &str) {
        self.ns(ns).addr(ifname, cidr);
    }

    pub fn up(&self, ns: &str, ifname: &str) {
        self.ns(ns).up(ifname);
    }

    pub fn run(&self, ns: &str, argv: &[&str]) -> String {
        self.ns(ns).run(argv)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        while let Some((_, ns)) = self.namespaces.pop() {
            drop(ns);
        }
    }
}

/// ```text
///  ns A                    ns BR                          ns B
///  a0 ───── veth ───── br-a ┐                ┌ br-b ───── veth ───── b0
///  198.18.0.1/24             └──── br0 ──────┘                       198.18.0.2/24
///  2001:db8::1/64          (no addresses, IPv6 off)                  2001:db8::2/64
/// ```
///
/// `new()` returns once both bridge ports forward and both end interfaces are up with
/// usable addresses. Everything is deleted when the value is dropped.
#[derive(Debug)]
pub struct LinearBridged {
    topo: Topology,
}

impl Default for LinearBridged {
    fn default() -> Self {
        Self::new()
    }
}

impl LinearBridged {
    pub const A_IF: &'static str = "a0";
    pub const B_IF: &'static str = "b0";
    pub const BRIDGE: &'static str = "br0";
    pub const BR_A: &'static str = "br-a";
    pub const BR_B: &'static str = "br-b";
    pub const A_IP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    pub const B_IP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    pub const A_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    pub const B_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    pub fn new() -> LinearBridged {
        let mut topo = Topology::new();
        topo.add_netns("a");
        let br = topo.add_netns("br");
        // The bridge namespace needs no IPv6: off before its interfaces exist, so they
        // never send MLD/ND.
        br.sysctl("net.ipv6.conf.all.disable_ipv6", "1");
        br.sysctl("net.ipv6.conf.default.disable_ipv6", "1");
        topo.add_netns("b");

        topo.veth("a", Self::A_IF, "br", Self::BR_A);
        topo.veth("b", Self::B_IF, "br", Self::BR_B);
        topo.bridge("br", Self::BRIDGE, &[Self::BR_A, Self::BR_B]);
        for (ns, ifname, v4, v6) in [
            ("a", Self::A_IF, Self::A_IP4, Self::A_IP6),
            ("b", Self::B_IF, Self::B_IP4, Self::B_IP6),
        ] {
            topo.addr(ns, ifname, &format!("{v4}/24"));
            topo.addr(ns, ifname, &format!("{v6}/64"));
            topo.up(ns, ifname);
        }

        topo.ns("br").wait_forwarding(&[Self::BR_A, Self::BR_B]);
        topo.ns("a").wait_ready(Self::A_IF);
        topo.ns("b").wait_ready(Self::B_IF);
        LinearBridged { topo }
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }
    pub fn a(&self) -> &Netns {
        self.topo.ns("a")
    }
    pub fn br(&self) -> &Netns {
        self.topo.ns("br")
    }
    pub fn b(&self) -> &Netns {
        self.topo.ns("b")
    }

    /// Full namespace names, `[A, BR, B]`.
    pub fn netns_names(&self) -> Vec<String> {
        self.topo.netns_names()
    }
    pub fn a_inode(&self) -> u64 {
        self.a().inode()
    }
    pub fn br_inode(&self) -> u64 {
        self.br().inode()
    }
    pub fn b_inode(&self) -> u64 {
        self.b().inode()
    }

    /// B's address of the given family.
    pub fn b_ip(&self, v6: bool) -> IpAddr {
        if v6 {
            Self::B_IP6.into()
        } else {
            Self::B_IP4.into()
        }
    }
    /// A's address of the given family.
    pub fn a_ip(&self, v6: bool) -> IpAddr {
        if v6 {
            Self::A_IP6.into()
        } else {
            Self::A_IP4.into()
        }
    }
    pub fn b_sock4(&self, port: u16) -> SocketAddr {
        SocketAddr::new(Self::B_IP4.into(), port)
    }
    pub fn b_sock6(&self, port: u16) -> SocketAddr {
        SocketAddr::new(Self::B_IP6.into(), port)
    }

    /// With DNAT in the bridge namespace, rewriting the destination port
    /// 5353 -> 5354 (a port rewrite: an address rewrite on a pure bridge
    /// would make br_netfilter re-route). Conntrack un-NATs the replies'
    /// source port.
    pub fn with_dnat() -> LinearBridged {
        let t = LinearBridged::new();
        t.br().sysctl("net.bridge.bridge-nf-call-iptables", "1");
        t.nft(
            t.br(),
            &[
                "add table ip nxt",
                "add chain ip nxt pre { type nat hook prerouting priority dstnat; }",
                "add rule ip nxt pre udp dport 5353 dnat to 198.18.0.2:5354",
            ],
        );
        t
    }

    /// Run nft commands (words separated by single spaces) in `ns`.
    pub fn nft(&self, ns: &Netns, cmds: &[&str]) {
        for cmd in cmds {
            let argv: Vec<&str> = std::iter::once("nft").chain(cmd.split(' ')).collect();
            ns.run(&argv);
        }
    }

    /// One datagram A -> B:5353 (DNAT to 5354 with [`Self::with_dnat`]),
    /// echoed back by B; returns the echo.
    pub fn udp_dnat_round_trip(&self) -> Option<Vec<u8>> {
        let server = udp_receiver(self.b(), self.b_sock4(5354));
        let echo = std::thread::spawn(move || {
            if let Some((data, from)) = udp_recv(&server) {
                server.send_to(&data, from).ok();
            }
        });
        let client = udp_receiver(self.a(), SocketAddr::from((Self::A_IP4, 0)));
        client.connect(self.b_sock4(5353)).ok()?;
        client.send(b"through the NAT").ok()?;
        let mut buf = [0u8; 64];
        let n = client.recv(&mut buf).ok()?;
        echo.join().ok()?;
        Some(buf[..n].to_vec())
    }
}
