//! Putting events in context as they stream by:
//! - `net_dev_xmit` never reads its skb (it may be freed): it takes the
//!   packet fields its `net_dev_start_xmit` saw (same CPU, same skb);
//! - route and neighbour records carry no skb: each is linked to the packet
//!   event around it on the same CPU with the same flow (`linked_skb`,
//!   `linked_hook`): the packet just before it (a received packet being
//!   routed), or else the next one (a lookup made before sending). A context
//!   record waits at most [`HOLD_NS`] for that next packet.

use crate::model::event::TraceEvent;
use crate::model::value::SkbAddr;
use std::collections::HashMap;
use std::net::IpAddr;

/// How long a context record waits for the packet it belongs to.
pub const HOLD_NS: u64 = 20_000_000;
/// How far back a packet may be to explain a context record.
const BEHIND_NS: u64 = 2_000_000;

#[derive(Debug, Clone)]
struct Seen {
    ts: u64,
    skb: Option<SkbAddr>,
    hook: &'static str,
    saddr: Option<IpAddr>,
    daddr: Option<IpAddr>,
}

#[derive(Debug, Default)]
pub struct Correlator {
    /// Route/neighbour records are traced: remember packets to link them to.
    context: bool,
    xmit: HashMap<(u32, u64), TraceEvent>,
    last: HashMap<u32, Seen>,
    pending: HashMap<u32, Vec<TraceEvent>>,
}

/// Does context record `c` concern the packet `p`?
fn same_flow(c: &TraceEvent, p_saddr: Option<IpAddr>, p_daddr: Option<IpAddr>) -> bool {
    let (Some(cd), Some(pd)) = (c.daddr, p_daddr) else {
        return false;
    };
    if cd != pd {
        return false;
    }
    match (c.saddr, p_saddr) {
        (Some(cs), Some(ps)) => cs.is_unspecified() || cs == ps,
        _ => true,
    }
}

fn link(c: &mut TraceEvent, skb: Option<SkbAddr>, hook: &'static str) {
    c.linked_skb = skb;
    c.linked_hook = Some(hook);
}

impl Correlator {
    /// `context`: route or neighbour hooks are traced (else packets need
    /// not be remembered).
    pub fn new(context: bool) -> Self {
        Self {
            context,
            ..Self::default()
        }
    }

    /// Feed one event (with its raw hook, CPU and skb); events ready to print
    /// are appended to `out`, in order per CPU.
    pub fn push(
        &mut self,
        mut te: TraceEvent,
        hook: u16,
        cpu: u32,
        skb: u64,
        out: &mut Vec<TraceEvent>,
    ) {
        use netxray_abi::hook_id;
        if hook == hook_id::NET_DEV_START_XMIT {
            if self.xmit.len() > 4096 {
                self.xmit.clear();
            }
            self.xmit.insert((cpu, skb), te.clone());
        } else if hook == hook_id::NET_DEV_XMIT {
            if let Some(start) = self.xmit.remove(&(cpu, skb)) {
                te.inherit_packet(&start);
            }
        }

        if te.kind == "fib" || te.kind == "neigh" {
            if let Some(l) = self.last.get(&cpu) {
                if te.ts_ns.saturating_sub(l.ts) <= BEHIND_NS && same_flow(&te, l.saddr, l.daddr) {
                    link(&mut te, l.skb, l.hook);
                    out.push(te);
                    return;
                }
            }
            self.pending.entry(cpu).or_default().push(te);
            return;
        }

        if let Some(waiting) = (!self.pending.is_empty())
            .then(|| self.pending.remove(&cpu))
            .flatten()
        {
            for mut c in waiting {
                if te.ts_ns.saturating_sub(c.ts_ns) <= HOLD_NS && same_flow(&c, te.saddr, te.daddr)
                {
                    link(&mut c, te.skb, te.hook);
                }
                out.push(c);
            }
        }
        if self.context && te.saddr.is_some() {
            self.last.insert(
                cpu,
                Seen {
                    ts: te.ts_ns,
                    skb: te.skb,
                    hook: te.hook,
                    saddr: te.saddr,
                    daddr: te.daddr,
                },
            );
        }
        out.push(te);
    }

    /// Release context records that waited longer than [`HOLD_NS`] before
    /// `now_ns` (or all of them with `u64::MAX`), unlinked.
    pub fn release(&mut self, now_ns: u64, out: &mut Vec<TraceEvent>) {
        for waiting in self.pending.values_mut() {
            let keep = waiting
                .iter()
                .position(|c| now_ns.saturating_sub(c.ts_ns) <= HOLD_NS)
                .unwrap_or(waiting.len());
            out.extend(waiting.drain(..keep));
        }
        self.pending.retain(|_, v| !v.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netxray_abi::hook_id;

    fn ip(a: &str) -> Option<IpAddr> {
        Some(a.parse().expect("an address"))
    }

    fn pkt(ts: u64, skb: u64, s: &str, d: &str) -> TraceEvent {
        TraceEvent {
            ts_ns: ts,
            kind: "packet",
            hook: "net:netif_receive_skb",
            skb: Some(SkbAddr(skb)),
            saddr: ip(s),
            daddr: ip(d),
            ..Default::default()
        }
    }

    fn fib(ts: u64, s: &str, d: &str) -> TraceEvent {
        TraceEvent {
            ts_ns: ts,
            kind: "fib",
            hook: "fib:fib_table_lookup",
            saddr: ip(s),
            daddr: ip(d),
            ..Default::default()
        }
    }

    #[test]
    fn links_to_the_packet_before_on_the_same_cpu() {
        let mut c = Correlator::new(true);
        let mut out = Vec::new();
        c.push(
            pkt(1000, 1, "198.18.0.1", "198.18.0.2"),
            hook_id::NETIF_RECEIVE_SKB,
            0,
            1,
            &mut out,
        );
        c.push(
            fib(1500, "198.18.0.1", "198.18.0.2"),
            hook_id::FIB_TABLE_LOOKUP,
            0,
            0,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].linked_skb, Some(SkbAddr(1)));
    }

    #[test]
    fn holds_a_lookup_until_the_packet_it_routes() {
        let mut c = Correlator::new(true);
        let mut out = Vec::new();
        c.push(
            fib(1000, "0.0.0.0", "198.18.0.2"),
            hook_id::FIB_TABLE_LOOKUP,
            1,
            0,
            &mut out,
        );
        assert!(out.is_empty());
        // Another CPU's packet does not release it.
        c.push(
            pkt(1100, 9, "198.18.0.1", "198.18.0.2"),
            hook_id::NET_DEV_QUEUE,
            0,
            9,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        c.push(
            pkt(1200, 2, "198.18.0.1", "198.18.0.2"),
            hook_id::NET_DEV_QUEUE,
            1,
            2,
            &mut out,
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].kind, "fib");
        assert_eq!(out[1].linked_skb, Some(SkbAddr(2)));
        assert_eq!(out[1].linked_hook, Some("net:netif_receive_skb"));
    }

    #[test]
    fn unrelated_or_late_records_are_released_unlinked() {
        let mut c = Correlator::new(true);
        let mut out = Vec::new();
        c.push(
            fib(1000, "0.0.0.0", "198.18.0.99"),
            hook_id::FIB_TABLE_LOOKUP,
            0,
            0,
            &mut out,
        );
        c.release(1000 + HOLD_NS / 2, &mut out);
        assert!(out.is_empty());
        c.release(1001 + HOLD_NS, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].linked_skb, None);
    }
}
