//! Why the kernel drops packets, for people: a one-line explanation of the
//! common `skb_drop_reason`s and what to check (as nettrace's diagnosis
//! mode does). Reasons are named from the running kernel's BTF; this table
//! only adds advice.

/// Advice for a drop at a place: some (reason, function) pairs have a
/// meaning of their own.
pub fn advice_at(reason: &str, location: &str) -> Option<(&'static str, &'static str)> {
    let func = location.split('+').next().unwrap_or(location);
    match (reason, func) {
        ("NO_SOCKET", "ping_rcv" | "ping_v6_rcv" | "icmp_rcv" | "icmpv6_rcv") => Some((
            "an ICMP echo reply no ping socket wanted: what a raw-socket ping (ping run as root, \
             or with CAP_NET_RAW) leaves behind on the sender, its raw socket got a copy",
            "nothing, if a ping ran from here; else who sends echo replies to this host",
        )),
        _ => advice(reason),
    }
}

/// (what it means, what to check) for a reason name without its prefix.
pub fn advice(reason: &str) -> Option<(&'static str, &'static str)> {
    Some(match reason {
        "NO_SOCKET" => (
            "no socket wants the packet: nothing listens on that port",
            "is the service running and bound to this address/port, in this namespace? (ss -lnup / ss -lntp)",
        ),
        "NETFILTER_DROP" => (
            "a netfilter rule (or conntrack) dropped it, in the hook shown",
            "that hook's chains: nft -a list ruleset / iptables-save in that namespace; netxray drops --nft-trace names the rule",
        ),
        "SOCKET_RCVBUFF" => (
            "the socket's receive buffer is full: the application reads too slowly",
            "the reader's speed; net.core.rmem_max / SO_RCVBUF",
        ),
        "SOCKET_FILTER" => ("a socket filter (SO_ATTACH_FILTER/BPF) rejected it", "the socket's attached filter"),
        "IP_NOROUTE" => (
            "no route to the destination",
            "ip route get DST in that namespace; forwarding (net.ipv4.ip_forward)",
        ),
        "IP_RPFILTER" => ("reverse-path filtering: the source is not routed back through this interface", "net.ipv4.conf.*.rp_filter, routes to the source"),
        "IP_INADDRERRORS" | "IP_INNOROUTES" => ("the destination address is invalid or unroutable here", "addresses and routes in that namespace"),
        "OTHERHOST" => (
            "the frame is for another host (destination MAC not ours), or a VLAN nobody handles",
            "MAC addresses, promiscuous taps, VLAN devices",
        ),
        "PKT_TOO_SMALL" => ("the packet is shorter than its headers say", "the sender; truncation on the way"),
        "HDR_TRUNC" => ("a header is cut short", "the sender; MTU and fragmentation"),
        "TCP_CSUM" | "UDP_CSUM" | "ICMP_CSUM" => ("bad checksum", "offload settings (ethtool -k), the sender, corruption on the way"),
        "TCP_INVALID_SEQUENCE" | "TCP_OLD_DATA" | "TCP_OUTOFWINDOW" => ("a TCP segment outside the window", "retransmissions, middleboxes rewriting sequence numbers"),
        "TCP_RESET" => ("the segment was a reset, or arrived for a reset connection", "who sends the RST (netxray conn)"),
        "TCP_LISTEN_OVERFLOW" => ("the listen queue is full", "the server's accept rate; the listen backlog; net.core.somaxconn"),
        "QDISC_DROP" => ("the device's queue discipline dropped it (queue full or policer)", "tc -s qdisc show dev DEV"),
        "FULL_RING" | "DEV_READY" => ("the device could not take it", "the device's state and queue (ip -s link)"),
        "NEIGH_FAILED" | "NEIGH_QUEUEFULL" | "NEIGH_DEAD" => ("the next hop's link-layer address could not be resolved", "ARP/ND for the gateway: ip neigh"),
        "UNICAST_IN_L2_MULTICAST" => ("a unicast IP packet in a link-layer multicast frame", "the sender's MAC addressing"),
        "IP_OUTNOROUTES" => ("no route for an outgoing packet", "ip route get DST"),
        "BPF_CGROUP_EGRESS" | "BPF_CGROUP_INGRESS" => ("a cgroup BPF program dropped it", "bpftool cgroup tree"),
        "XDP" => ("an XDP program dropped it", "bpftool net"),
        "TC_INGRESS" | "TC_EGRESS" | "TC_DROP" => ("a tc program or action dropped it", "tc filter show dev DEV ingress/egress; bpftool net"),
        "SKB_UCOPY_FAULT" => ("copying to the application failed", "the application's buffer"),
        "QUEUE_PURGE" => ("the socket or device queue was purged (closed)", "normal when a socket closes with unread data"),
        "NOT_SPECIFIED" => ("the kernel gave no reason", "the location column says where"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_ping_reply_is_explained() {
        let (means, _) = advice_at("NO_SOCKET", "ping_rcv+0x51").expect("advice");
        assert!(means.contains("raw-socket ping"), "{means}");
        let (means, _) = advice_at("NO_SOCKET", "__udp4_lib_rcv+0x4bc").expect("advice");
        assert!(means.contains("nothing listens"), "{means}");
    }

    #[test]
    fn common_reasons_have_advice() {
        for r in [
            "NO_SOCKET",
            "NETFILTER_DROP",
            "SOCKET_RCVBUFF",
            "IP_NOROUTE",
            "TCP_CSUM",
            "OTHERHOST",
            "PKT_TOO_SMALL",
            "QDISC_DROP",
        ] {
            assert!(advice(r).is_some(), "{r}");
        }
        assert!(advice("SOMETHING_NEW").is_none());
    }
}
