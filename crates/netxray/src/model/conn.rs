//! TCP connections as `netxray conn` reports them: the kernel's records
//! (`netxray_abi::conn`) turned into what a network engineer asks about a
//! connection (who opened it, who owns it, how much went each way, how it
//! ended), and the flow filter applied to them.

use netxray_abi::conn::{conn_flags as f, owner_src, ConnEvent, ConnKind, RawConnEvent};
use netxray_abi::{c_str, RawTuple};
use netxray_filter::{Frame, Prepared};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ETIMEDOUT: i32 = 110;
const ECONNREFUSED: i32 = 111;

/// TCP state names (include/net/tcp_states.h).
pub fn state_name(s: u8) -> &'static str {
    match s {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

/// Who opened the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// This side called connect().
    Active,
    /// This side accepted it (a listener's child).
    Passive,
    /// Open before netxray started.
    Unknown,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Normal close, this side sent the first FIN.
    ClosedLocal,
    /// Normal close, the peer sent the first FIN.
    ClosedRemote,
    /// Closed, who first is unknown (open before netxray).
    Closed,
    /// This side sent a reset (close with SO_LINGER 0, unread data, ...).
    ResetSent,
    /// The peer reset an established connection.
    ResetReceived,
    /// connect() answered by a reset: nothing listens there.
    Refused,
    /// Timed out: SYN or data retransmissions unanswered.
    Timeout,
    /// Closed by this side before it was established.
    Aborted,
    /// Ended before it was established, otherwise.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClosedLocal => "closed-local",
            Self::ClosedRemote => "closed-remote",
            Self::Closed => "closed",
            Self::ResetSent => "reset-sent",
            Self::ResetReceived => "reset-received",
            Self::Refused => "refused",
            Self::Timeout => "timeout",
            Self::Aborted => "aborted",
            Self::Failed => "failed",
        }
    }

    /// `--failed`: never established, reset, or timed out.
    pub fn is_failure(self) -> bool {
        !matches!(self, Self::ClosedLocal | Self::ClosedRemote | Self::Closed)
    }
}

/// How the owner was found.
pub fn owner_source(src: u8) -> Option<&'static str> {
    match src {
        owner_src::CONNECT => Some("connect"),
        owner_src::ACCEPT => Some("accept"),
        owner_src::LISTENER => Some("listener"),
        owner_src::LISTEN => Some("listen"),
        _ => None,
    }
}

/// Local and remote ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ends {
    pub laddr: IpAddr,
    pub lport: u16,
    pub raddr: IpAddr,
    pub rport: u16,
}

impl Ends {
    /// An IPv6 socket talking IPv4 (`::ffff:a.b.c.d` on both ends) shows
    /// IPv4 addresses: that is what is on the wire, and what filters test.
    pub fn from_tuple(t: &RawTuple) -> Self {
        let mapped = t.family == 10
            && [&t.saddr, &t.daddr]
                .iter()
                .all(|b| Ipv6Addr::from(**b).to_ipv4_mapped().is_some());
        let ip = |b: &[u8; 16]| -> IpAddr {
            if t.family == 10 && !mapped {
                IpAddr::V6(Ipv6Addr::from(*b))
            } else if mapped {
                IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15]))
            } else {
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
        };
        Self {
            laddr: ip(&t.saddr),
            lport: t.sport,
            raddr: ip(&t.daddr),
            rport: t.dport,
        }
    }

    /// Whether a packet of this connection, either way, passes `filter`
    /// (addresses, ports and protocols only: see `Expr::check_flow_only`).
    pub fn matches(&self, filter: &Prepared) -> bool {
        if filter.matches_all() {
            return true;
        }
        let out = self.packet(false);
        let back = self.packet(true);
        [out, back].iter().any(|(bytes, et)| {
            filter.matches(&Frame {
                data: bytes,
                l2: false,
                ethertype: *et,
                len: bytes.len() as u32,
            })
        })
    }

    /// A TCP/IP header pair for one direction (`back`: remote -> local).
    fn packet(&self, back: bool) -> (Vec<u8>, u16) {
        let (src, sport, dst, dport) = if back {
            (self.raddr, self.rport, self.laddr, self.lport)
        } else {
            (self.laddr, self.lport, self.raddr, self.rport)
        };
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        tcp[12] = 5 << 4;
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut p = vec![0u8; 20];
                p[0] = 0x45;
                p[2..4].copy_from_slice(&40u16.to_be_bytes());
                p[8] = 64;
                p[9] = 6;
                p[12..16].copy_from_slice(&s.octets());
                p[16..20].copy_from_slice(&d.octets());
                p.extend_from_slice(&tcp);
                (p, 0x0800)
            }
            (s, d) => {
                let v6 = |a: IpAddr| match a {
                    IpAddr::V6(a) => a.octets(),
                    IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                };
                let mut p = vec![0u8; 40];
                p[0] = 0x60;
                p[4..6].copy_from_slice(&20u16.to_be_bytes());
                p[6] = 6;
                p[7] = 64;
                p[8..24].copy_from_slice(&v6(s));
                p[24..40].copy_from_slice(&v6(d));
                p.extend_from_slice(&tcp);
                (p, 0x86DD)
            }
        }
    }
}

/// A process: pid and command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub pid: u32,
    pub comm: String,
}

/// One connection, at its end (a CLOSE record), or as known at an event.
#[derive(Debug, Clone)]
pub struct Conn {
    pub raw: RawConnEvent,
    pub kind: ConnKind,
    pub ends: Ends,
    pub direction: Direction,
    pub owner: Option<Task>,
    pub owner_source: Option<&'static str>,
    /// The task the kernel ran when the event was raised (None in
    /// interrupt context).
    pub task: Option<Task>,
}

impl Conn {
    pub fn from_event(ev: &ConnEvent) -> Self {
        let r = ev.raw;
        let direction = if r.flags & f::ACTIVE != 0 {
            Direction::Active
        } else if r.flags & f::PASSIVE != 0 {
            Direction::Passive
        } else {
            Direction::Unknown
        };
        let owner = (r.owner_tgid != 0).then(|| Task {
            pid: r.owner_tgid,
            comm: c_str(&r.owner_comm),
        });
        let task = (r.flags & f::IN_IRQ == 0).then(|| Task {
            pid: r.tgid,
            comm: c_str(&r.comm),
        });
        Self {
            raw: r,
            kind: ev.kind,
            ends: Ends::from_tuple(&r.tuple),
            direction,
            owner,
            owner_source: owner_source(r.owner_src),
            task,
        }
    }

    fn has(&self, flag: u16) -> bool {
        self.raw.flags & flag != 0
    }

    /// Open before netxray started: start, direction and handshake unknown.
    pub fn before(&self) -> bool {
        self.has(f::BEFORE)
    }

    pub fn established(&self) -> bool {
        self.has(f::ESTABLISHED)
    }

    /// Application bytes this side sent that the peer acknowledged:
    /// tcpi_bytes_acked without the SYN (counted on the active side) and
    /// the FIN. None when unknown (open before netxray: the SYN's share is).
    pub fn tx_bytes(&self) -> Option<u64> {
        if !self.has(f::STATS) || self.before() {
            return None;
        }
        let syn = u64::from(self.direction == Direction::Active && self.established());
        let fin = u64::from(self.has(f::FIN_ACKED));
        Some(self.raw.bytes_acked.saturating_sub(syn + fin))
    }

    /// Application bytes received in order: tcpi_bytes_received without
    /// the FIN.
    pub fn rx_bytes(&self) -> Option<u64> {
        if !self.has(f::STATS) {
            return None;
        }
        Some(
            self.raw
                .bytes_received
                .saturating_sub(u64::from(self.has(f::FIN_RECV))),
        )
    }

    /// SYN to ESTABLISHED, on the active side (connect() to the SYN-ACK).
    /// Unknown on the passive side: its socket is born at the handshake's
    /// last ACK (request sockets have no tracepoint), so the SYN's arrival
    /// is not seen.
    pub fn handshake_ns(&self) -> Option<u64> {
        (self.direction == Direction::Active
            && self.raw.start_ns != 0
            && self.raw.established_ns != 0)
            .then(|| self.raw.established_ns.saturating_sub(self.raw.start_ns))
    }

    /// Start to CLOSE.
    pub fn duration_ns(&self) -> Option<u64> {
        let end = if self.raw.close_ns != 0 {
            self.raw.close_ns
        } else {
            self.raw.ts_ns
        };
        (self.raw.start_ns != 0).then(|| end.saturating_sub(self.raw.start_ns))
    }

    pub fn outcome(&self) -> Outcome {
        let err = self.raw.sk_err;
        if !self.established() && !self.before() {
            return match self.direction {
                Direction::Active if self.has(f::RST_RECV) || err == ECONNREFUSED => {
                    Outcome::Refused
                }
                Direction::Active if err == ETIMEDOUT => Outcome::Timeout,
                Direction::Active if err == 0 && !self.has(f::RST_SENT) => Outcome::Aborted,
                _ if self.has(f::RST_RECV) => Outcome::ResetReceived,
                _ => Outcome::Failed,
            };
        }
        if self.has(f::RST_SENT) {
            Outcome::ResetSent
        } else if self.has(f::RST_RECV) {
            Outcome::ResetReceived
        } else if err == ETIMEDOUT {
            Outcome::Timeout
        } else if self.has(f::LOCAL_FIRST) {
            Outcome::ClosedLocal
        } else if self.has(f::REMOTE_FIRST) {
            Outcome::ClosedRemote
        } else {
            Outcome::Closed
        }
    }

    /// The kernel's error at CLOSE, by name.
    pub fn error_name(&self) -> Option<&'static str> {
        Some(match self.raw.sk_err {
            0 => return None,
            104 => "ECONNRESET",
            110 => "ETIMEDOUT",
            111 => "ECONNREFUSED",
            32 => "EPIPE",
            113 => "EHOSTUNREACH",
            101 => "ENETUNREACH",
            _ => "other",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netxray_abi::conn::CONN_ABI_VERSION;
    use netxray_filter::Filter;

    fn conn(flags: u16, err: i32, acked: u64, received: u64) -> Conn {
        let raw = RawConnEvent {
            abi_version: CONN_ABI_VERSION,
            kind: 6,
            flags: flags | f::STATS,
            sk_err: err,
            bytes_acked: acked,
            bytes_received: received,
            start_ns: 10,
            established_ns: 30,
            close_ns: 110,
            tuple: RawTuple {
                saddr: [198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                daddr: [198, 18, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                sport: 40000,
                dport: 8080,
                family: 2,
                l4proto: 6,
                _pad: [0; 2],
            },
            ..Default::default()
        };
        Conn::from_event(&ConnEvent::decode(&ConnEvent::encode(&raw)).unwrap())
    }

    #[test]
    fn payload_bytes_leave_out_syn_and_fins() {
        let c = conn(
            f::ACTIVE | f::ESTABLISHED | f::FIN_SENT | f::FIN_ACKED | f::FIN_RECV | f::LOCAL_FIRST,
            0,
            1002,
            301,
        );
        assert_eq!(c.tx_bytes(), Some(1000));
        assert_eq!(c.rx_bytes(), Some(300));
        assert_eq!(c.outcome(), Outcome::ClosedLocal);
        assert_eq!(c.handshake_ns(), Some(20));
        assert_eq!(c.duration_ns(), Some(100));
        let s = conn(
            f::PASSIVE
                | f::ESTABLISHED
                | f::FIN_SENT
                | f::FIN_ACKED
                | f::FIN_RECV
                | f::REMOTE_FIRST,
            0,
            301,
            1001,
        );
        assert_eq!(s.tx_bytes(), Some(300));
        assert_eq!(s.rx_bytes(), Some(1000));
        assert_eq!(s.outcome(), Outcome::ClosedRemote);
        let before = conn(f::BEFORE | f::ESTABLISHED, 0, 5, 5);
        assert_eq!(before.tx_bytes(), None);
        assert_eq!(before.direction, Direction::Unknown);
    }

    #[test]
    fn outcomes() {
        assert_eq!(
            conn(f::ACTIVE | f::RST_RECV, 111, 0, 0).outcome(),
            Outcome::Refused
        );
        assert_eq!(conn(f::ACTIVE, 110, 0, 0).outcome(), Outcome::Timeout);
        assert_eq!(conn(f::ACTIVE, 0, 0, 0).outcome(), Outcome::Aborted);
        assert_eq!(
            conn(f::ACTIVE | f::ESTABLISHED | f::RST_SENT, 0, 1, 0).outcome(),
            Outcome::ResetSent
        );
        assert_eq!(
            conn(f::PASSIVE | f::ESTABLISHED | f::RST_RECV, 104, 0, 0).outcome(),
            Outcome::ResetReceived
        );
        assert!(Outcome::Refused.is_failure());
        assert!(!Outcome::ClosedRemote.is_failure());
    }

    #[test]
    fn v4_mapped_ends_are_ipv4() {
        let mut t = RawTuple {
            family: 10,
            sport: 1,
            dport: 2,
            ..Default::default()
        };
        t.saddr[10..].copy_from_slice(&[0xff, 0xff, 198, 18, 0, 1]);
        t.daddr[10..].copy_from_slice(&[0xff, 0xff, 198, 18, 0, 2]);
        let e = Ends::from_tuple(&t);
        assert_eq!(e.laddr, "198.18.0.1".parse::<IpAddr>().unwrap());
        assert!(e.matches(&Filter::parse("host 198.18.0.2").unwrap().prepare()));
        t.daddr = [0; 16];
        t.daddr[..2].copy_from_slice(&[0x20, 0x01]);
        assert!(Ends::from_tuple(&t).laddr.is_ipv6());
    }

    #[test]
    fn flow_filter_either_direction() {
        let c = conn(f::ACTIVE, 0, 0, 0);
        let ok = |t: &str| c.ends.matches(&Filter::parse(t).unwrap().prepare());
        assert!(ok("tcp port 8080"));
        assert!(ok("src port 8080"), "the reply direction counts");
        assert!(ok("host 198.18.0.2 and dst port 8080"));
        assert!(!ok("port 53"));
        assert!(!ok("ip6"));
        assert!(!ok("udp"));
    }
}
