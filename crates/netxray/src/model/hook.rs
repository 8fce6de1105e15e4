//! The hook catalog: every place netxray can watch, grouped the way a network
//! engineer thinks, with what each hook really hands us (checked on 6.18).

use netxray_abi::hook_id as id;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    LinkIn,
    LinkOut,
    Qdisc,
    Route,
    Neigh,
    L4,
    Socket,
    Life,
    Ret,
    Netfilter,
    Tc,
    Xdp,
}

impl Group {
    pub const ALL: [Group; 12] = [
        Group::LinkIn,
        Group::LinkOut,
        Group::Qdisc,
        Group::Route,
        Group::Neigh,
        Group::L4,
        Group::Socket,
        Group::Life,
        Group::Ret,
        Group::Netfilter,
        Group::Tc,
        Group::Xdp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Group::LinkIn => "link-in",
            Group::LinkOut => "link-out",
            Group::Qdisc => "qdisc",
            Group::Route => "route",
            Group::Neigh => "neigh",
            Group::L4 => "l4",
            Group::Socket => "socket",
            Group::Life => "life",
            Group::Ret => "ret",
            Group::Netfilter => "netfilter",
            Group::Tc => "tc",
            Group::Xdp => "xdp",
        }
    }

    pub fn about(self) -> &'static str {
        match self {
            Group::LinkIn => "packets arriving at a device (L2 in)",
            Group::LinkOut => "packets leaving through a device (L2 out)",
            Group::Qdisc => "traffic control queues",
            Group::Route => "routing decisions (context, no packet)",
            Group::Neigh => "ARP / neighbour discovery (context, no packet)",
            Group::L4 => "TCP, UDP and ICMP events",
            Group::Socket => "delivery to sockets",
            Group::Life => "where an skb ends: freed (dropped) or consumed",
            Group::Ret => "what receive functions returned (--ret; not in the default set)",
            Group::Tc => "tc ingress and egress of the interface given with -i (a tcx link, or clsact + cls_bpf without tcx; TCX_NEXT: nothing changes); not in the default set",
            Group::Xdp => "XDP of the interface given with -i (--xdp=generic|native, generic by default); not in the default set",
            Group::Netfilter => "netfilter hooks, entered (before any chain) and done (every chain accepted; after NAT, with conntrack state); netfilter BPF links in each namespace, not in the default set",
        }
    }
}

/// How a hook attaches. Only tracepoints for now; kernel-function backends
/// (kprobe-multi, fentry) slot in here without touching decode or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// BTF-enabled raw tracepoint (`tp_btf/NAME`).
    TpBtf,
    /// A netfilter BPF link (`bpf/netfilter.bpf.c`) at the first or last
    /// priority of a hook, IPv4 and IPv6.
    Netfilter { hooknum: u8, last: bool },
    /// A tcx link (or a cls_bpf filter, without tcx) on the interface traced.
    Tc { egress: bool },
    /// An XDP link on the interface traced.
    Xdp,
}

/// `enum nf_inet_hooks`, as nft names them: [`Backend::Netfilter`]'s
/// `hooknum`, and the hook in an `NX_NF_AT()` value.
pub const NF_HOOK_NAMES: [&str; 5] = ["prerouting", "input", "forward", "output", "postrouting"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HookPoint {
    /// ABI id (`enum nx_hook`).
    pub id: u16,
    /// `category:event`, as the kernel names it.
    pub name: &'static str,
    pub group: Group,
    pub backend: Backend,
    /// What the hook really hands us, and when it fires.
    pub note: &'static str,
}

impl HookPoint {
    /// The tracepoint's event name (after the colon): the BTF `btf_trace_*`
    /// suffix and the name of the BPF program in trace.bpf.o.
    pub fn event(&self) -> &'static str {
        self.name.split_once(':').map_or(self.name, |(_, e)| e)
    }

    pub fn by_id(hook: u16) -> Option<&'static HookPoint> {
        HOOKS.iter().find(|h| h.id == hook)
    }

    pub fn by_name(name: &str) -> Option<&'static HookPoint> {
        HOOKS.iter().find(|h| h.name == name || h.event() == name)
    }

    /// Traced when no -t is given: not the --ret exits, not netfilter
    /// (links in every namespace: asked for by name).
    pub fn in_default_set(&self) -> bool {
        !matches!(
            self.group,
            Group::Ret | Group::Netfilter | Group::Tc | Group::Xdp
        )
    }

    /// Context hooks carry no skb: they are shown next to the packets.
    pub fn is_context(&self) -> bool {
        matches!(self.group, Group::Route | Group::Neigh)
    }
}

macro_rules! nf_hook {
    ($id:expr, $name:literal, $hooknum:expr, $last:expr, $note:literal) => {
        HookPoint {
            id: $id,
            name: $name,
            group: Group::Netfilter,
            backend: Backend::Netfilter {
                hooknum: $hooknum,
                last: $last,
            },
            note: $note,
        }
    };
}

macro_rules! hook {
    ($id:expr, $name:literal, $group:ident, $note:literal) => {
        HookPoint {
            id: $id,
            name: $name,
            group: Group::$group,
            backend: Backend::TpBtf,
            note: $note,
        }
    };
}

pub static HOOKS: &[HookPoint] = &[
    hook!(id::NAPI_GRO_RECEIVE_ENTRY, "net:napi_gro_receive_entry", LinkIn,
        "driver hands a packet to GRO; does not fire on veth without XDP"),
    hook!(id::NETIF_RECEIVE_SKB_ENTRY, "net:netif_receive_skb_entry", LinkIn,
        "driver hands a packet to the stack; does not fire on veth without XDP"),
    hook!(id::NETIF_RECEIVE_SKB_LIST_ENTRY, "net:netif_receive_skb_list_entry", LinkIn,
        "batched variant of netif_receive_skb_entry"),
    hook!(id::NETIF_RX_ENTRY, "net:netif_rx_entry", LinkIn,
        "packet queued to the CPU backlog (veth, loopback, tunnels)"),
    hook!(id::NETIF_RX, "net:netif_rx", LinkIn,
        "packet queued to the backlog (after netif_rx_entry)"),
    hook!(id::NETIF_RECEIVE_SKB, "net:netif_receive_skb", LinkIn,
        "the stack takes the packet (every received packet, per device it crosses)"),
    hook!(id::NET_DEV_QUEUE, "net:net_dev_queue", LinkOut,
        "packet handed to a device for transmission"),
    hook!(id::NET_DEV_START_XMIT, "net:net_dev_start_xmit", LinkOut,
        "driver is about to transmit"),
    hook!(id::NET_DEV_XMIT, "net:net_dev_xmit", LinkOut,
        "driver returned (rc); the skb may already be freed: not decoded, reported when its start_xmit matched"),
    hook!(id::QDISC_ENQUEUE, "qdisc:qdisc_enqueue", Qdisc,
        "packet queued on a qdisc; only devices with a queue (veth has none), and not when an empty pfifo/fq lets it bypass the queue"),
    hook!(id::QDISC_DEQUEUE, "qdisc:qdisc_dequeue", Qdisc,
        "packet taken off a qdisc; only devices with a queue"),
    hook!(id::ICMP_SEND, "icmp:icmp_send", L4,
        "IPv4 ICMP error sent (after rate limiting); the skb is the offending packet. IPv6 errors show at net_dev_queue"),
    hook!(id::TCP_RETRANSMIT_SKB, "tcp:tcp_retransmit_skb", L4,
        "TCP segment retransmitted; headers not built yet: the flow comes from the socket"),
    hook!(id::TCP_SEND_RESET, "tcp:tcp_send_reset", L4,
        "RST sent; the skb is the segment that caused it, or none (flow from the socket)"),
    hook!(id::TCP_RECEIVE_RESET, "tcp:tcp_receive_reset", L4,
        "RST received; socket only"),
    hook!(id::UDP_FAIL_QUEUE_RCV_SKB, "udp:udp_fail_queue_rcv_skb", L4,
        "UDP datagram could not be queued to its socket (receive buffer full)"),
    hook!(id::SK_DATA_READY, "sock:sk_data_ready", Socket,
        "socket woken with data; skb->dev is not valid here: flow and namespace from the socket"),
    hook!(id::SKB_COPY_DATAGRAM_IOVEC, "skb:skb_copy_datagram_iovec", Socket,
        "data copied to the application (TCP reads; not ordinary UDP); flow from the socket"),
    hook!(id::KFREE_SKB, "skb:kfree_skb", Life,
        "skb dropped, with the drop reason and the function that dropped it; skb->dev may be NULL"),
    hook!(id::CONSUME_SKB, "skb:consume_skb", Life,
        "skb freed after normal use"),
    hook!(id::FIB_TABLE_LOOKUP, "fib:fib_table_lookup", Route,
        "IPv4 route lookup (flow and result); none when the route is cached"),
    hook!(id::FIB6_TABLE_LOOKUP, "fib6:fib6_table_lookup", Route,
        "IPv6 route lookup (flow and result); none when the route is cached"),
    hook!(id::NEIGH_CREATE, "neigh:neigh_create", Neigh, "neighbour entry created"),
    hook!(id::NEIGH_UPDATE, "neigh:neigh_update", Neigh, "neighbour entry about to change state"),
    hook!(id::NEIGH_UPDATE_DONE, "neigh:neigh_update_done", Neigh, "neighbour entry changed state"),
    hook!(id::NEIGH_TIMER_HANDLER, "neigh:neigh_timer_handler", Neigh,
        "neighbour timer (probe, retransmit, failure)"),
    hook!(id::NEIGH_EVENT_SEND_DONE, "neigh:neigh_event_send_done", Neigh,
        "packet waits for / triggers resolution"),
    hook!(id::NEIGH_EVENT_SEND_DEAD, "neigh:neigh_event_send_dead", Neigh,
        "packet sent to a dead neighbour entry"),
    hook!(id::NEIGH_CLEANUP_AND_RELEASE, "neigh:neigh_cleanup_and_release", Neigh,
        "neighbour entry removed"),
    hook!(id::NETIF_RX_EXIT, "net:netif_rx_exit", Ret,
        "netif_rx returned (NET_RX_SUCCESS, NET_RX_DROP: backlog full) for the packet netif_rx_entry matched on this CPU"),
    hook!(id::NETIF_RECEIVE_SKB_EXIT, "net:netif_receive_skb_exit", Ret,
        "netif_receive_skb returned, for the packet netif_receive_skb_entry matched; like it, not on veth without XDP"),
    hook!(id::NAPI_GRO_RECEIVE_EXIT, "net:napi_gro_receive_exit", Ret,
        "GRO's verdict (merged, held, normal, ...) for the packet napi_gro_receive_entry matched; not on veth without XDP"),
    hook!(id::NETIF_RECEIVE_SKB_LIST_EXIT, "net:netif_receive_skb_list_exit", Ret,
        "netif_receive_skb_list returned, for the batch whose last packet its entry matched"),
    nf_hook!(id::NF_PREROUTING, "nf:prerouting", 0, false,
        "packet enters PREROUTING (first priority): before raw, conntrack and DNAT"),
    nf_hook!(id::NF_INPUT, "nf:input", 1, false,
        "packet enters INPUT (first priority): routed to this host, before the input chains"),
    nf_hook!(id::NF_FORWARD, "nf:forward", 2, false,
        "packet enters FORWARD (first priority): routed through this host"),
    nf_hook!(id::NF_OUTPUT, "nf:output", 3, false,
        "locally sent packet enters OUTPUT (first priority): before conntrack and DNAT"),
    nf_hook!(id::NF_POSTROUTING, "nf:postrouting", 4, false,
        "packet enters POSTROUTING (first priority): before SNAT/masquerade"),
    nf_hook!(id::NF_PREROUTING_DONE, "nf:prerouting_done", 0, true,
        "every PREROUTING chain accepted (last priority): after DNAT, conntrack state known"),
    nf_hook!(id::NF_INPUT_DONE, "nf:input_done", 1, true,
        "every INPUT chain accepted (last priority); conntrack confirmed"),
    nf_hook!(id::NF_FORWARD_DONE, "nf:forward_done", 2, true,
        "every FORWARD chain accepted (last priority)"),
    nf_hook!(id::NF_OUTPUT_DONE, "nf:output_done", 3, true,
        "every OUTPUT chain accepted (last priority): after DNAT of local traffic"),
    nf_hook!(id::NF_POSTROUTING_DONE, "nf:postrouting_done", 4, true,
        "every POSTROUTING chain accepted (last priority): after SNAT, conntrack confirmed"),
    HookPoint {
        id: id::TC_INGRESS,
        name: "tc:ingress",
        group: Group::Tc,
        backend: Backend::Tc { egress: false },
        note: "frame received by the interface (-i), at tc ingress: after XDP and the taps, before the stack",
    },
    HookPoint {
        id: id::TC_EGRESS,
        name: "tc:egress",
        group: Group::Tc,
        backend: Backend::Tc { egress: true },
        note: "frame sent through the interface (-i), at tc egress: after the stack, before the qdisc",
    },
    HookPoint {
        id: id::XDP,
        name: "xdp:ingress",
        group: Group::Xdp,
        backend: Backend::Xdp,
        note: "frame at the interface's XDP (-i; generic XDP sees the skb's buffer, native runs in the driver)",
    },
];

/// Resolve `-t/--hooks` words (groups or hook names) into hooks, in catalog
/// order. Unknown words are a usage error naming them.
pub fn select(words: &[String]) -> Result<Vec<&'static HookPoint>, String> {
    Ok(select_named(words)?.0)
}

/// Like [`select`], also returning the hooks named one by one (not through a
/// group): those must exist, a group's missing members are skipped.
pub fn select_named(words: &[String]) -> Result<(Vec<&'static HookPoint>, Vec<u16>), String> {
    let mut named = Vec::new();
    let mut chosen: Vec<&'static HookPoint> = Vec::new();
    for word in words.iter().map(|w| w.trim()).filter(|w| !w.is_empty()) {
        if word == "all" {
            chosen.extend(HOOKS.iter());
        } else if word == "default" {
            chosen.extend(HOOKS.iter().filter(|h| h.in_default_set()));
        } else if let Some(g) = Group::ALL.iter().find(|g| g.name() == word) {
            chosen.extend(HOOKS.iter().filter(|h| h.group == *g));
        } else if let Some(h) = HookPoint::by_name(word) {
            chosen.push(h);
            named.push(h.id);
        } else {
            return Err(format!(
                "unknown hook or group '{word}' (groups: {}; see `netxray hooks`)",
                Group::ALL.map(Group::name).join(", ")
            ));
        }
    }
    chosen.sort_by_key(|h| h.id);
    chosen.dedup_by_key(|h| h.id);
    Ok((chosen, named))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_covers_every_abi_hook_once() {
        for hook in 1..id::MAX {
            assert_eq!(
                HOOKS.iter().filter(|h| h.id == hook).count(),
                1,
                "hook id {hook}"
            );
        }
    }

    #[test]
    fn selects_groups_and_names() {
        let sel = select(&[
            "link-out".into(),
            "skb:kfree_skb".into(),
            "consume_skb".into(),
        ])
        .unwrap();
        let names: Vec<_> = sel.iter().map(|h| h.name).collect();
        assert_eq!(
            names,
            [
                "net:net_dev_queue",
                "net:net_dev_start_xmit",
                "net:net_dev_xmit",
                "skb:kfree_skb",
                "skb:consume_skb"
            ]
        );
        assert!(select(&["nope".into()])
            .unwrap_err()
            .contains("unknown hook or group 'nope'"));
        assert_eq!(select(&["all".into()]).unwrap().len(), HOOKS.len());
    }
}
