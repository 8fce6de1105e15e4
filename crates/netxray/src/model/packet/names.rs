//! Names for IP protocols and ICMP types and codes, as tcpdump words them.

use super::{Icmp, Icmpv6};

/// The usual name of an IP protocol number ("TCP", "UDP", "ICMP6", "GRE", ...).
pub fn ip_proto_name(proto: u8) -> Option<&'static str> {
    Some(match proto {
        0 => "HBH",
        1 => "ICMP",
        2 => "IGMP",
        4 => "IPIP",
        6 => "TCP",
        17 => "UDP",
        41 => "IP6",
        43 => "routing",
        44 => "frag",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        58 => "ICMP6",
        59 => "no next header",
        60 => "DSTOPT",
        89 => "OSPF",
        103 => "PIM",
        112 => "VRRP",
        132 => "SCTP",
        136 => "UDPLITE",
        _ => return None,
    })
}

impl Icmp {
    /// "echo request", "destination unreachable", "time exceeded", ...
    pub fn type_name(&self) -> Option<&'static str> {
        Some(match self.icmp_type {
            0 => "echo reply",
            3 => "destination unreachable",
            4 => "source quench",
            5 => "redirect",
            8 => "echo request",
            9 => "router advertisement",
            10 => "router solicitation",
            11 => "time exceeded",
            12 => "parameter problem",
            13 => "timestamp request",
            14 => "timestamp reply",
            15 => "information request",
            16 => "information reply",
            17 => "address mask request",
            18 => "address mask reply",
            _ => return None,
        })
    }

    /// The code's meaning for unreachable, redirect, time exceeded and
    /// parameter problem messages: "port unreachable", "need to frag", ...
    pub fn code_name(&self) -> Option<&'static str> {
        Some(match (self.icmp_type, self.code) {
            (3, 0) => "net unreachable",
            (3, 1) => "host unreachable",
            (3, 2) => "protocol unreachable",
            (3, 3) => "port unreachable",
            (3, 4) => "need to frag",
            (3, 5) => "source route failed",
            (3, 6) => "net unknown",
            (3, 7) => "host unknown",
            (3, 8) => "source host isolated",
            (3, 9) => "net prohibited",
            (3, 10) => "host prohibited",
            (3, 11) => "net unreachable for tos",
            (3, 12) => "host unreachable for tos",
            (3, 13) => "admin prohibited filter",
            (3, 14) => "host precedence violation",
            (3, 15) => "precedence cutoff",
            (5, 0) => "net",
            (5, 1) => "host",
            (5, 2) => "tos and net",
            (5, 3) => "tos and host",
            (11, 0) => "time exceeded in-transit",
            (11, 1) => "ip reassembly time exceeded",
            (12, 0) => "pointer indicates the error",
            (12, 1) => "missing a required option",
            (12, 2) => "bad length",
            _ => return None,
        })
    }
}

impl Icmpv6 {
    /// "echo request", "neighbor solicitation", "packet too big", ...
    pub fn type_name(&self) -> Option<&'static str> {
        Some(match self.icmp_type {
            1 => "destination unreachable",
            2 => "packet too big",
            3 => "time exceeded",
            4 => "parameter problem",
            128 => "echo request",
            129 => "echo reply",
            130 => "multicast listener query",
            131 => "multicast listener report",
            132 => "multicast listener done",
            133 => "router solicitation",
            134 => "router advertisement",
            135 => "neighbor solicitation",
            136 => "neighbor advertisement",
            137 => "redirect",
            143 => "multicast listener report v2",
            _ => return None,
        })
    }

    /// The code's meaning for error messages: "unreachable port", ...
    pub fn code_name(&self) -> Option<&'static str> {
        Some(match (self.icmp_type, self.code) {
            (1, 0) => "unreachable route",
            (1, 1) => "unreachable prohibited",
            (1, 2) => "beyond scope",
            (1, 3) => "unreachable address",
            (1, 4) => "unreachable port",
            (1, 5) => "source address failed policy",
            (1, 6) => "reject route",
            (3, 0) => "time exceeded in-transit",
            (3, 1) => "reassembly time exceeded",
            (4, 0) => "erroneous header field",
            (4, 1) => "unrecognized next header",
            (4, 2) => "unrecognized option",
            _ => return None,
        })
    }
}
