//! Packet journeys: trace events grouped per packet, in order, with the time
//! between hops, how the packet's life ended, NAT rewrites, and the pairing
//! of a request with its reply.
//!
//! Identity. An skb address alone is not one: addresses are reused within
//! microseconds. A packet is its data buffer (`skb->head`, shared by clones)
//! together with the skbs seen holding it:
//! - an event whose buffer belongs to an open journey joins it if its skb is
//!   one the journey holds (the same packet, possibly rewritten by NAT), or
//!   if it is a new skb that the kernel marks cloned, with the same contents
//!   (a clone, e.g. for an AF_PACKET listener);
//! - a new skb with other contents in that buffer means the buffer was freed
//!   without a tracepoint (TCP receive buffers are) and reused: the old
//!   journey ends as "not traced to its end" and a new one starts;
//! - events with no buffer (`net_dev_xmit`, some socket hooks) join the
//!   journey holding their skb.
//!
//! A journey ends when the last skb holding it is freed (`kfree_skb`: dropped;
//! `consume_skb`: delivered or consumed), after an idle time with no hop
//! (normal for TCP), when too many are in flight (the oldest is closed and
//! counted), or when the run ends.

use crate::model::event::TraceEvent;
use std::collections::VecDeque;
use std::net::IpAddr;

/// Maps keyed by kernel addresses and ids, on the per-event path: foldhash,
/// not SipHash (no untrusted keys here).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Limits: how long a journey may sit without a hop, how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct JourneyConfig {
    pub idle_ns: u64,
    pub max_in_flight: usize,
}

impl Default for JourneyConfig {
    fn default() -> Self {
        Self {
            idle_ns: 1_000_000_000,
            max_in_flight: 4096,
        }
    }
}

/// One hop of a journey.
#[derive(Debug, Clone)]
pub struct Hop {
    pub event: TraceEvent,
    /// Since the previous hop.
    pub delta_ns: u64,
    /// Since the first hop.
    pub since_first_ns: u64,
    /// The flow before and after, when this hop shows it rewritten (NAT).
    pub rewrite: Option<(String, String)>,
}

/// How a journey ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// `kfree_skb`: dropped, with the kernel's reason and where.
    Dropped {
        reason: String,
        location: String,
        at: String,
    },
    /// Handed to a socket (a socket hook was on the way) and then freed.
    Delivered { at: String, to: String },
    /// `consume_skb` with no socket on the way: used up by the stack (an
    /// ICMP echo answered, a frame a bridge flooded, ...).
    Consumed { location: String, at: String },
    /// No hop for the idle time: freed where no tracepoint fires (TCP
    /// receive buffers), or still queued.
    TimedOut,
    /// The buffer showed up holding another packet: the end was not traced.
    BufferReused,
    /// Closed to keep the number in flight bounded.
    Evicted,
    /// Still in flight when the run ended.
    RunEnded,
}

impl End {
    pub fn kind(&self) -> &'static str {
        match self {
            End::Dropped { .. } => "dropped",
            End::Delivered { .. } => "delivered",
            End::Consumed { .. } => "consumed",
            End::TimedOut => "timed_out",
            End::BufferReused => "buffer_reused",
            End::Evicted => "evicted",
            End::RunEnded => "run_ended",
        }
    }
}

/// A finished journey.
#[derive(Debug, Clone)]
pub struct Journey {
    pub id: u64,
    pub hops: Vec<Hop>,
    pub end: End,
    /// The request this journey answers, and the round trip inside this
    /// host: from the request's first hop to this one's first hop.
    pub reply_to: Option<(u64, u64)>,
}

impl Journey {
    pub fn first_ts(&self) -> u64 {
        self.hops.first().map_or(0, |h| h.event.ts_ns)
    }
    pub fn duration_ns(&self) -> u64 {
        self.hops.last().map_or(0, |h| h.since_first_ns)
    }
    /// The first hop's description of the packet.
    pub fn summary(&self) -> &str {
        self.hops
            .iter()
            .find(|h| h.event.kind == "packet")
            .or(self.hops.first())
            .map_or("", |h| h.event.summary.as_str())
    }
    /// (namespace, interface) of each interface the packet crossed, in the
    /// order first seen there.
    pub fn path(&self) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        self.hops
            .iter()
            .filter(|h| h.event.kind == "packet")
            .filter_map(|h| {
                let ifname = h.event.ifname.as_ref()?.to_string();
                let ns = match (&h.event.netns_name, h.event.netns) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(i)) => i.to_string(),
                    (None, None) => "-".into(),
                };
                Some((ns, ifname))
            })
            .filter(|p| {
                let new = !seen.contains(p);
                if new {
                    seen.push(p.clone());
                }
                new
            })
            .collect()
    }
}

/// The flow of an event: addresses and ports, for rewrite detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flow {
    s: IpAddr,
    d: IpAddr,
    sp: Option<u16>,
    dp: Option<u16>,
}

impl std::fmt::Display for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.sp, self.dp) {
            (Some(sp), Some(dp)) => write!(f, "{}.{sp} > {}.{dp}", self.s, self.d),
            _ => write!(f, "{} > {}", self.s, self.d),
        }
    }
}

impl Flow {
    fn reversed(self) -> Flow {
        Flow {
            s: self.d,
            d: self.s,
            sp: self.dp,
            dp: self.sp,
        }
    }
}

fn flow(e: &TraceEvent) -> Option<Flow> {
    Some(Flow {
        s: e.saddr?,
        d: e.daddr?,
        sp: e.sport,
        dp: e.dport,
    })
}

/// What a request's answer carries: protocol, its source and destination,
/// and for ICMP echo the id and sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ReplyKey {
    proto: u8,
    s: IpAddr,
    d: IpAddr,
    a: u32,
    b: u32,
}

/// What stays the same across NAT and identifies one packet's contents:
/// protocol, IPv4 identification, TCP sequence and acknowledgement, ICMP
/// sequence and type.
#[derive(Debug, PartialEq, Eq)]
struct Contents<'a> {
    proto: Option<&'a str>,
    ip_id: Option<u16>,
    tcp: (Option<u32>, Option<u32>),
    icmp: (Option<u16>, Option<u8>),
}

fn contents(e: &TraceEvent) -> Contents<'_> {
    Contents {
        proto: e.proto.as_deref(),
        ip_id: e.ip_id,
        tcp: (e.tcp_seq, e.tcp_ack),
        icmp: (e.icmp_seq, e.icmp_type),
    }
}

/// Whether `ev` carries the contents of the journey's packet (its first
/// packet hop).
fn same_packet_contents(j: &Journey, ev: &TraceEvent) -> bool {
    j.hops
        .iter()
        .find(|h| h.event.kind == "packet")
        .is_some_and(|f| contents(&f.event) == contents(ev))
}

/// A packet enters a device once: the same skb at the same entry hook of
/// the same device again is the next packet in a buffer freed untraced.
fn entered_again(j: &Journey, ev: &TraceEvent) -> bool {
    ev.kind == "packet"
        && is_entry_hook(ev.hook)
        && j.hops.iter().any(|h| {
            h.event.hook == ev.hook
                && h.event.ifindex == ev.ifindex
                && h.event.netns == ev.netns
                && h.event.ifname == ev.ifname
                && h.event.netns_name == ev.netns_name
        })
}

/// How soon after its last hop a packet may show up in a new buffer and
/// still be the same packet.
const REALLOC_NS: u64 = 10_000_000;

/// The socket-side hooks: a packet reaching them was delivered.
fn is_socket_hook(hook: &str) -> bool {
    matches!(hook, "sock:sk_data_ready" | "skb:skb_copy_datagram_iovec")
}

fn place(e: &TraceEvent) -> String {
    let ns = match (&e.netns_name, e.netns) {
        (Some(n), _) => n.to_string(),
        (None, Some(i)) => i.to_string(),
        (None, None) => "?".into(),
    };
    match &e.ifname {
        Some(i) => format!("{ns} {i}"),
        None => ns,
    }
}

/// Where an event happened; an event that names no namespace (a free after
/// the stack let go of the device: TCP's receive path) happened where the
/// packet last was.
fn place_in(e: &TraceEvent, j: &Journey) -> String {
    if e.netns.is_none() && e.netns_name.is_none() {
        if let Some(h) = j
            .hops
            .iter()
            .rev()
            .find(|h| h.event.netns.is_some() || h.event.netns_name.is_some())
        {
            return place(&h.event);
        }
    }
    place(e)
}

/// A packet socket's copy (tcpdump's clone) used up after it was copied to
/// the listener: that copy's end, not the packet's.
fn is_capture_copy(end: &End) -> bool {
    matches!(end, End::Consumed { location, .. }
        if location.starts_with("tpacket_rcv") || location.starts_with("packet_rcv"))
}

/// Whether a socket hook had the packet.
fn is_delivered(j: &Journey) -> bool {
    j.hops.iter().any(|h| is_socket_hook(h.event.hook))
}

/// Hooks a packet passes once per device it enters or leaves (a requeued
/// packet repeats net_dev_start_xmit, never these).
fn is_entry_hook(hook: &str) -> bool {
    matches!(
        hook,
        "net:net_dev_queue"
            | "net:netif_rx"
            | "net:netif_rx_entry"
            | "net:netif_receive_skb"
            | "net:netif_receive_skb_entry"
            | "net:netif_receive_skb_list_entry"
            | "net:napi_gro_receive_entry"
            | "tc:ingress"
            | "tc:egress"
    )
}

/// The hooks a packet still passes once a socket has it.
fn after_delivery(hook: &str) -> bool {
    is_socket_hook(hook) || matches!(hook, "skb:kfree_skb" | "skb:consume_skb")
}

/// Delivered, if a socket hook had the packet.
fn delivered(j: &Journey) -> Option<End> {
    let h = j.hops.iter().rev().find(|h| is_socket_hook(h.event.hook))?;
    Some(End::Delivered {
        at: place(&h.event),
        to: match (&h.event.comm, h.event.pid) {
            (Some(c), Some(p)) => format!("{c} ({p})"),
            _ => "a socket".into(),
        },
    })
}

struct Open {
    journey: Journey,
    head: Option<u64>,
    /// Few (the skb and its clones): a list beats a hash set.
    skbs: Vec<u64>,
    last_ts: u64,
    flow: Option<Flow>,
}

/// A request waiting for its reply.
#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u64,
    first_ts: u64,
    /// TCP: the sequence number the answer must acknowledge past.
    seq: Option<u32>,
}

/// Groups events into journeys.
pub struct Tracker {
    cfg: JourneyConfig,
    next_id: u64,
    open: HashMap<u64, Open>,
    by_head: HashMap<u64, u64>,
    by_skb: HashMap<u64, u64>,
    /// (hop time, id) of every hop, in arrival order: the oldest first, for
    /// expiry and eviction. An entry is live while it is its journey's
    /// latest (`Open::last_ts`); older ones are skipped when they come to
    /// the front (cheaper than a sorted set updated at every hop). Events
    /// from different CPUs may arrive a little out of time order: a journey
    /// then expires that much later.
    idle: VecDeque<(u64, u64)>,
    /// Requests by the key their reply will have.
    pending: HashMap<ReplyKey, VecDeque<Pending>>,
    pending_order: VecDeque<(u64, ReplyKey)>,
    /// The journey of the last packet hop on each CPU, and when: a socket
    /// hook with no skb (`sk_data_ready`) joins the packet just delivered on
    /// the same CPU.
    last_on_cpu: PerCpu,
    /// Event time of the last expiry pass: `push` runs one when time has
    /// moved on by a 64th of the idle time, not at every event.
    expired_at: u64,
    /// Journeys closed to respect `max_in_flight`.
    pub evicted: u64,
}

/// (time, journey) of the last packet hop on each CPU, by CPU number.
#[derive(Default)]
struct PerCpu(Vec<Option<(u64, u64)>>);

impl PerCpu {
    fn get(&self, cpu: &u32) -> Option<&(u64, u64)> {
        self.0.get(*cpu as usize).and_then(Option::as_ref)
    }
    fn insert(&mut self, cpu: u32, v: (u64, u64)) {
        let i = cpu as usize;
        if i >= self.0.len() {
            // CPU numbers are small (the kernel's nr_cpu_ids); past a
            // sane bound, forget rather than grow.
            if i >= 1 << 16 {
                return;
            }
            self.0.resize(i + 1, None);
        }
        self.0[i] = Some(v);
    }
}

/// How close a socket hook must follow its packet on the same CPU.
const SAME_CPU_NS: u64 = 1_000_000;

/// How long a request waits for its reply.
const REPLY_WINDOW_NS: u64 = 2_000_000_000;
/// Requests remembered at most.
const MAX_PENDING: usize = 10_000;

impl Tracker {
    pub fn new(cfg: JourneyConfig) -> Self {
        Self {
            cfg,
            next_id: 1,
            open: HashMap::default(),
            by_head: HashMap::default(),
            by_skb: HashMap::default(),
            idle: VecDeque::new(),
            pending: HashMap::default(),
            pending_order: VecDeque::new(),
            last_on_cpu: PerCpu::default(),
            expired_at: 0,
            evicted: 0,
        }
    }

    pub fn in_flight(&self) -> usize {
        self.open.len()
    }

    /// Add an event; returns the journeys it (or time) closed, in order.
    pub fn push(&mut self, ev: TraceEvent, done: &mut Vec<Journey>) {
        if ev.ts_ns.saturating_sub(self.expired_at) >= (self.cfg.idle_ns / 64).max(1) {
            self.expire(ev.ts_ns, done);
        }
        // Route and neighbour records join the packet they were linked to.
        let skb = if ev.kind == "fib" || ev.kind == "neigh" {
            match ev.linked_skb {
                Some(s) => Some(s.0),
                None => return,
            }
        } else {
            ev.skb.map(|s| s.0)
        };
        let head = ev.head.map(|h| h.0);
        let mut id = None;
        // An XDP hop (no skb): generic XDP runs right after the packet's
        // netif_receive_skb on the same CPU, and may copy it into a new
        // buffer (too little headroom) or one a delivered packet left:
        // the packet just seen on this CPU, if the contents agree, before
        // any buffer match.
        if skb.is_none() && ev.kind == "packet" && head.is_some() {
            id = self.recent_same_contents(&ev);
        }
        if head.is_none() && skb.is_none() {
            // A socket hook without its skb: the packet just handled here.
            let recent = self
                .last_on_cpu
                .get(&ev.cpu)
                .filter(|(ts, j)| {
                    ev.ts_ns.saturating_sub(*ts) <= SAME_CPU_NS && self.open.contains_key(j)
                })
                .map(|&(_, j)| j);
            if let Some(j) = recent {
                self.add_hop(j, ev, None, None, done);
            }
            return;
        }
        if let Some(h) = head.filter(|_| id.is_none()) {
            if let Some(&j) = self.by_head.get(&h) {
                let o = &self.open[&j];
                let same_contents = || same_packet_contents(&o.journey, &ev);
                // XDP names no skb (generic XDP runs on the skb's buffer; an
                // skb built after native XDP keeps it): same buffer and same
                // contents is the same packet.
                let same_skb = match skb {
                    Some(s) => o.skbs.contains(&s) || (o.skbs.is_empty() && same_contents()),
                    None => ev.kind == "packet" && same_contents(),
                };
                // A clone: the same contents and the same flow as the packet
                // now (UDP has no sequence number to tell two datagrams of a
                // flow apart, the direction at least tells a reply).
                let clone = ev.cloned && same_contents() && o.flow.is_some() && o.flow == flow(&ev);
                // After a socket had it, the packet only gets read and
                // freed: the same skb and buffer leaving again is a new
                // packet (UDP frees what it delivered without a tracepoint,
                // and the reply often gets both back).
                let reused = is_delivered(&o.journey) && !after_delivery(ev.hook);
                // NAT rewrites addresses and ports but never turns a packet
                // around: the reverse flow in the same skb and buffer is the
                // answer, built in them after the request's end went
                // unseen (a filter that stopped matching past a rewrite).
                let turned = ev.kind == "packet"
                    && o.flow
                        .zip(flow(&ev))
                        .is_some_and(|(a, b)| a != b && a.reversed() == b);
                // A packet enters a device once: the same skb at the same
                // entry hook of the same device again is the next packet in
                // a buffer freed untraced (no life hook, or a filter that
                // skipped its end) and reused for the same flow.
                let again = entered_again(&o.journey, &ev);
                // Socket-side views carry no packet contents to compare.
                if !reused && !turned && !again && (same_skb || clone || ev.kind != "packet") {
                    id = Some(j);
                } else {
                    // Its buffer was freed untraced and reused.
                    self.close(j, End::BufferReused, done);
                }
            }
        }
        if id.is_none() && head.is_none() {
            id = skb
                .and_then(|s| self.by_skb.get(&s).copied())
                .filter(|j| !is_delivered(&self.open[j].journey) || after_delivery(ev.hook));
        }
        // The same skb in a new buffer: the kernel moved the packet
        // (pskb_expand_head), as NAT does before writing into a cloned TCP
        // segment (TCP keeps the original to retransmit) or a device that
        // needs more headroom does. Same skb, same contents, moments after
        // its last hop, not a device entered twice.
        if id.is_none() && head.is_some() && ev.kind == "packet" {
            id = skb
                .and_then(|s| self.by_skb.get(&s).copied())
                .filter(|j| self.reallocated(*j, &ev, head));
        }
        let id = match id {
            Some(j) => j,
            None => {
                if ev.kind == "fib" || ev.kind == "neigh" {
                    return; // context for a packet we are not following
                }
                self.start(&ev, head)
            }
        };
        self.add_hop(id, ev, head, skb, done);
        while self.open.len() > self.cfg.max_in_flight {
            let Some(oldest) = self.oldest_live() else {
                break;
            };
            self.evicted += 1;
            self.close(oldest, End::Evicted, done);
        }
    }

    /// Whether `ev`, with the skb of journey `j` in buffer `head`, is that
    /// journey's packet moved to a new buffer.
    fn reallocated(&self, j: u64, ev: &TraceEvent, head: Option<u64>) -> bool {
        let Some(o) = self.open.get(&j) else {
            return false;
        };
        o.head != head
            && ev.ts_ns.saturating_sub(o.last_ts) <= REALLOC_NS
            && !is_delivered(&o.journey)
            && !entered_again(&o.journey, ev)
            && same_packet_contents(&o.journey, ev)
    }

    /// The journey that just had a hop on this CPU, if its packet has the
    /// contents of `ev`.
    fn recent_same_contents(&self, ev: &TraceEvent) -> Option<u64> {
        self.last_on_cpu
            .get(&ev.cpu)
            .filter(|(ts, j)| {
                ev.ts_ns.saturating_sub(*ts) <= SAME_CPU_NS && self.open.contains_key(j)
            })
            .map(|&(_, j)| j)
            .filter(|j| same_packet_contents(&self.open[j].journey, ev))
    }

    fn start(&mut self, ev: &TraceEvent, head: Option<u64>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let reply_to = self
            .match_reply(ev)
            .map(|p| (p.id, ev.ts_ns.saturating_sub(p.first_ts)));
        self.remember_request(ev, id);
        self.open.insert(
            id,
            Open {
                journey: Journey {
                    id,
                    hops: Vec::new(),
                    end: End::RunEnded,
                    reply_to,
                },
                head,
                skbs: Vec::new(),
                last_ts: ev.ts_ns,
                flow: if ev.kind == "packet" { flow(ev) } else { None },
            },
        );
        if let Some(h) = head {
            self.by_head.insert(h, id);
        }
        id
    }

    fn add_hop(
        &mut self,
        id: u64,
        ev: TraceEvent,
        head: Option<u64>,
        skb: Option<u64>,
        done: &mut Vec<Journey>,
    ) {
        let Some(o) = self.open.get_mut(&id) else {
            return;
        };
        let first_ts = o.journey.hops.first().map_or(ev.ts_ns, |h| h.event.ts_ns);
        let prev_ts = o.journey.hops.last().map_or(ev.ts_ns, |h| h.event.ts_ns);
        // Events arrive per CPU in order; across CPUs a hop may be stamped a
        // little before the one printed before it: never a negative delta.
        let ts = ev.ts_ns.max(prev_ts);
        let mut rewrite = None;
        if ev.kind == "packet" {
            self.last_on_cpu.insert(ev.cpu, (ts, id));
            if let Some(now) = flow(&ev) {
                if let Some(before) = o.flow {
                    if before != now {
                        rewrite = Some((before.to_string(), now.to_string()));
                    }
                }
                o.flow = Some(now);
            }
        }
        if let Some(s) = skb {
            if ev.kind != "fib" && ev.kind != "neigh" && !o.skbs.contains(&s) {
                o.skbs.push(s);
                self.by_skb.insert(s, id);
            }
        }
        // The packet in another buffer (reallocated, or copied for XDP):
        // the old one is freed and may carry another packet next.
        if let Some(h) = head.filter(|h| o.head != Some(*h)) {
            if o.head.is_none() || ev.kind == "packet" {
                if let Some(old) = o.head {
                    if self.by_head.get(&old) == Some(&id) {
                        self.by_head.remove(&old);
                    }
                }
                o.head = Some(h);
                self.by_head.insert(h, id);
            }
        }
        o.last_ts = ts;
        self.idle.push_back((ts, id));
        let hook = ev.hook;
        let end = match hook {
            "skb:kfree_skb" => Some(End::Dropped {
                reason: ev
                    .drop_reason
                    .as_ref()
                    .map_or_else(|| "?".into(), |r| r.to_string()),
                location: ev.location.clone().unwrap_or_default(),
                at: place_in(&ev, &o.journey),
            }),
            "skb:consume_skb" => Some(delivered(&o.journey).unwrap_or_else(|| End::Consumed {
                location: ev.location.clone().unwrap_or_default(),
                at: place_in(&ev, &o.journey),
            })),
            _ => None,
        };
        o.journey.hops.push(Hop {
            delta_ns: ts - prev_ts,
            since_first_ns: ts - first_ts,
            rewrite,
            event: ev,
        });
        let shared = o.journey.hops.last().is_some_and(|h| h.event.shared);
        if let (Some(end), Some(s)) = (end, skb) {
            o.skbs.retain(|&x| x != s);
            if self.by_skb.get(&s) == Some(&id) {
                self.by_skb.remove(&s);
            }
            // A clone still holds the buffer: its hops are to come. A
            // capture's copy used up is not the packet's end.
            if o.skbs.is_empty() && !shared {
                self.close(id, end, done);
            } else if !is_capture_copy(&end) {
                o.journey.end = end;
            }
        }
    }

    fn close(&mut self, id: u64, end: End, done: &mut Vec<Journey>) {
        let Some(mut o) = self.open.remove(&id) else {
            return;
        };
        if let Some(h) = o.head {
            if self.by_head.get(&h) == Some(&id) {
                self.by_head.remove(&h);
            }
        }
        for s in &o.skbs {
            if self.by_skb.get(s) == Some(&id) {
                self.by_skb.remove(s);
            }
        }
        // A clone freed first leaves its end here; a later timeout keeps it.
        // A packet a socket had, then nothing: delivered (UDP and TCP free
        // what they delivered without a tracepoint).
        o.journey.end = match (end, &o.journey.end) {
            (
                End::TimedOut | End::RunEnded | End::BufferReused,
                prev @ (End::Dropped { .. } | End::Delivered { .. } | End::Consumed { .. }),
            ) => prev.clone(),
            // The capture's copy went last: the packet ended where it did.
            (e, prev @ (End::Dropped { .. } | End::Delivered { .. } | End::Consumed { .. }))
                if is_capture_copy(&e) =>
            {
                prev.clone()
            }
            (e @ (End::TimedOut | End::RunEnded | End::BufferReused), _) => {
                delivered(&o.journey).unwrap_or(e)
            }
            (e, _) => e,
        };
        done.push(o.journey);
    }

    /// Whether an `idle` entry is its journey's latest hop.
    fn is_live(&self, ts: u64, id: u64) -> bool {
        self.open.get(&id).is_some_and(|o| o.last_ts == ts)
    }

    /// Take the journey idle the longest off the queue.
    fn oldest_live(&mut self) -> Option<u64> {
        while let Some((ts, id)) = self.idle.pop_front() {
            if self.is_live(ts, id) {
                return Some(id);
            }
        }
        None
    }

    /// Close journeys idle for longer than the limit, as of `now_ns`.
    pub fn expire(&mut self, now_ns: u64, done: &mut Vec<Journey>) {
        self.expired_at = now_ns;
        while let Some(&(last, id)) = self.idle.front() {
            if !self.is_live(last, id) {
                self.idle.pop_front();
                continue;
            }
            if now_ns.saturating_sub(last) <= self.cfg.idle_ns {
                break;
            }
            self.idle.pop_front();
            self.close(id, End::TimedOut, done);
        }
        // Journeys that end by themselves leave their entries behind:
        // keep the queue within a small multiple of what is open.
        if self.idle.len() > 4 * self.open.len() + 1024 {
            let open = &self.open;
            self.idle
                .retain(|&(ts, id)| open.get(&id).is_some_and(|o| o.last_ts == ts));
        }
        while let Some((ts, _)) = self.pending_order.front() {
            if now_ns.saturating_sub(*ts) <= REPLY_WINDOW_NS
                && self.pending_order.len() <= MAX_PENDING
            {
                break;
            }
            self.forget_oldest_request();
        }
    }

    /// Close everything still open (the run is over).
    pub fn finish(&mut self, done: &mut Vec<Journey>) {
        while let Some(id) = self.oldest_live() {
            self.close(id, End::RunEnded, done);
        }
        // Every open journey has its live entry; should one not, it still
        // ends here.
        let mut rest: Vec<(u64, u64)> = self.open.iter().map(|(&id, o)| (o.last_ts, id)).collect();
        rest.sort_unstable();
        for (_, id) in rest {
            self.close(id, End::RunEnded, done);
        }
    }

    /// The key a reply to `ev` will carry, and the one `ev` carries as a
    /// reply: ICMP echo by id and sequence, TCP and UDP by the reversed flow.
    fn keys(ev: &TraceEvent) -> Option<(Option<ReplyKey>, Option<ReplyKey>)> {
        let (s, d) = (ev.saddr?, ev.daddr?);
        let proto = ev.proto.as_deref()?;
        match proto {
            "icmp" | "icmp6" => {
                let (id, seq, t) = (ev.icmp_id?, ev.icmp_seq?, ev.icmp_type?);
                let (p, req, rep) = if proto == "icmp" {
                    (1, 8, 0)
                } else {
                    (58, 128, 129)
                };
                let k = |s, d| ReplyKey {
                    proto: p,
                    s,
                    d,
                    a: id.into(),
                    b: seq.into(),
                };
                if t == req {
                    Some((Some(k(d, s)), None))
                } else if t == rep {
                    Some((None, Some(k(s, d))))
                } else {
                    None
                }
            }
            "tcp" | "udp" => {
                let (sp, dp) = (ev.sport?, ev.dport?);
                let p = if proto == "tcp" { 6 } else { 17 };
                let k = |s, sp: u16, d, dp: u16| ReplyKey {
                    proto: p,
                    s,
                    d,
                    a: sp.into(),
                    b: dp.into(),
                };
                Some((Some(k(d, dp, s, sp)), Some(k(s, sp, d, dp))))
            }
            _ => None,
        }
    }

    fn remember_request(&mut self, ev: &TraceEvent, id: u64) {
        let Some((Some(as_request), _)) = Self::keys(ev) else {
            return;
        };
        // TCP: only a segment that carries something to acknowledge.
        let seq = if ev.proto.as_deref() == Some("tcp") {
            let flags = ev.tcp_flags.as_deref().unwrap_or("");
            let payload = ev.len.unwrap_or(0) > 80; // headers only: no payload
            if !(flags.contains('S') || flags.contains('F') || payload) {
                return;
            }
            ev.tcp_seq
        } else {
            None
        };
        self.pending
            .entry(as_request)
            .or_default()
            .push_back(Pending {
                id,
                first_ts: ev.ts_ns,
                seq,
            });
        self.pending_order.push_back((ev.ts_ns, as_request));
        if self.pending_order.len() > MAX_PENDING {
            self.forget_oldest_request();
        }
    }

    fn forget_oldest_request(&mut self) {
        if let Some((_, key)) = self.pending_order.pop_front() {
            if let Some(q) = self.pending.get_mut(&key) {
                q.pop_front();
                if q.is_empty() {
                    self.pending.remove(&key);
                }
            }
        }
    }

    fn match_reply(&mut self, ev: &TraceEvent) -> Option<Pending> {
        let (_, as_reply) = Self::keys(ev)?;
        let q = self.pending.get_mut(&as_reply?)?;
        let pos = match (ev.proto.as_deref(), ev.tcp_ack) {
            // The ACK answers the segments it acknowledges: the latest one.
            (Some("tcp"), Some(ack)) => q
                .iter()
                .rposition(|p| p.seq.is_some_and(|s| ack.wrapping_sub(s) as i32 > 0))?,
            (Some("tcp"), None) => return None,
            _ => 0,
        };
        let p = q.remove(pos)?;
        // Older unanswered segments of the flow are answered by this too.
        if ev.proto.as_deref() == Some("tcp") {
            q.drain(..pos);
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::value::{Name, SkbAddr};
    use std::net::IpAddr;

    fn ev(ts: u64, hook: &'static str, skb: u64, head: u64, ns: &str, ifname: &str) -> TraceEvent {
        TraceEvent {
            ts_ns: ts,
            hook,
            kind: "packet",
            skb: Some(SkbAddr(skb)),
            head: Some(SkbAddr(head)),
            netns_name: Some(Name::from(ns)),
            ifname: Some(Name::from(ifname)),
            proto: Some("icmp".into()),
            saddr: Some("198.18.0.1".parse::<IpAddr>().unwrap()),
            daddr: Some("198.18.0.2".parse::<IpAddr>().unwrap()),
            icmp_type: Some(8),
            icmp_id: Some(7),
            icmp_seq: Some(1),
            summary: "ICMP echo request".into(),
            ..Default::default()
        }
    }

    /// `e` as a TCP or UDP packet between the same addresses.
    fn with_ports(mut e: TraceEvent, proto: &'static str, sport: u16, dport: u16) -> TraceEvent {
        e.proto = Some(proto.into());
        e.icmp_type = None;
        e.icmp_id = None;
        e.icmp_seq = None;
        e.sport = Some(sport);
        e.dport = Some(dport);
        e
    }

    fn reply(mut e: TraceEvent) -> TraceEvent {
        std::mem::swap(&mut e.saddr, &mut e.daddr);
        e.icmp_type = Some(0);
        e
    }

    #[test]
    fn generic_xdp_copying_the_packet_does_not_split_its_journey() {
        let mut t = Tracker::new(JourneyConfig::default());
        let mut done = Vec::new();
        t.push(
            ev(100, "net:netif_receive_skb", 1, 10, "b", "b0"),
            &mut done,
        );
        // Generic XDP copied it into buffer 20; XDP names no skb.
        let mut xdp = ev(110, "xdp:ingress", 0, 20, "b", "b0");
        xdp.skb = None;
        t.push(xdp, &mut done);
        t.push(ev(120, "tc:ingress", 1, 20, "b", "b0"), &mut done);
        // Buffer 10 was freed: the next packet in it is another journey.
        t.push(
            ev(130, "net:netif_receive_skb", 2, 10, "b", "b0"),
            &mut done,
        );
        t.push(ev(140, "skb:kfree_skb", 1, 20, "b", "b0"), &mut done);
        t.finish(&mut done);
        let first = done
            .iter()
            .find(|j| j.hops[0].event.ts_ns == 100)
            .expect("journey");
        let hooks: Vec<&str> = first.hops.iter().map(|h| h.event.hook).collect();
        assert_eq!(
            hooks,
            [
                "net:netif_receive_skb",
                "xdp:ingress",
                "tc:ingress",
                "skb:kfree_skb"
            ]
        );
        assert!(matches!(first.end, End::Dropped { .. }), "{:?}", first.end);
        assert_eq!(done.len(), 2);
    }

    #[test]
    fn one_packet_across_namespaces_then_its_reply() {
        let mut t = Tracker::new(JourneyConfig::default());
        let mut done = Vec::new();
        t.push(ev(100, "net:net_dev_queue", 1, 10, "a", "a0"), &mut done);
        t.push(ev(150, "net:netif_rx", 1, 10, "br", "br-a"), &mut done);
        t.push(ev(170, "net:net_dev_queue", 1, 10, "br", "br-b"), &mut done);
        t.push(ev(200, "net:netif_rx", 1, 10, "b", "b0"), &mut done);
        // The same skb address is reused for the reply, in another buffer.
        t.push(
            reply(ev(260, "net:net_dev_queue", 1, 20, "b", "b0")),
            &mut done,
        );
        t.push(ev(250, "skb:consume_skb", 1, 10, "b", "b0"), &mut done);
        assert_eq!(done.len(), 1, "{done:?}");
        let req = done[0].clone();
        assert_eq!(req.hops.len(), 5);
        assert!(req.hops.iter().all(|h| h.rewrite.is_none()));
        assert_eq!(req.duration_ns(), 150);
        let sum: u64 = req.hops.iter().map(|h| h.delta_ns).sum();
        assert_eq!(sum, req.duration_ns());
        assert!(matches!(req.end, End::Consumed { .. }));
        // A clone of the reply (a raw socket's copy) is freed in A.
        let mut copy = reply(ev(300, "skb:kfree_skb", 2, 20, "a", "a0"));
        copy.cloned = true;
        t.push(copy, &mut done);
        t.finish(&mut done);
        let rep = &done[1];
        assert_eq!(rep.reply_to, Some((req.id, 160)));
        assert_eq!(
            rep.path(),
            vec![
                ("b".to_string(), "b0".to_string()),
                ("a".into(), "a0".into())
            ]
        );
    }

    #[test]
    fn a_clone_joins_and_the_journey_ends_with_the_last_holder() {
        let mut t = Tracker::new(JourneyConfig::default());
        let mut done = Vec::new();
        t.push(
            ev(100, "net:netif_receive_skb", 1, 10, "b", "b0"),
            &mut done,
        );
        // tcpdump's clone: another skb, the same buffer and contents.
        let mut clone = ev(110, "skb:consume_skb", 2, 10, "b", "b0");
        clone.cloned = true;
        t.push(clone, &mut done);
        assert!(done.is_empty());
        t.push(ev(120, "skb:kfree_skb", 1, 10, "b", "b0"), &mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].hops.len(), 3);
        assert!(matches!(done[0].end, End::Dropped { .. }));
    }

    #[test]
    fn a_capture_copy_used_up_is_not_the_packets_end() {
        // The copy first, then the packet times out (TCP frees it untraced):
        // the end is not the copy's.
        let mut t = Tracker::new(JourneyConfig::default());
        let mut done = Vec::new();
        t.push(ev(100, "net:net_dev_queue", 1, 10, "r", "r1"), &mut done);
        let mut copy = ev(110, "skb:consume_skb", 2, 10, "r", "r1");
        copy.cloned = true;
        copy.location = Some("tpacket_rcv+0x7a".into());
        t.push(copy.clone(), &mut done);
        t.finish(&mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].hops.len(), 2);
        assert_eq!(done[0].end, End::RunEnded, "{:?}", done[0].end);

        // The packet first (a clone still holds the buffer), then the copy:
        // the packet's end.
        let mut t = Tracker::new(JourneyConfig::default());
        let mut done = Vec::new();
        t.push(
            ev(100, "net:netif_receive_skb", 1, 10, "b", "b0"),
            &mut done,
        );
        copy.ts_ns = 105;
        copy.hook = "net:netif_receive_skb";
        copy.location = None;
        t.push(copy.clone(), &mut done);
        let mut used = ev(120, "skb:consume_skb", 1, 10, "b", "b0");
        used.shared = true;
        used.location = Some("icmp_rcv+0x259".into());
        t.push(used, &mut done);
        assert!(done.is_empty());
        copy.ts_ns = 130;
        copy.hook = "skb:consume_skb";
        copy.location = Some("tpacket_rcv+0x7a".into());
        t.push(copy, &mut done);
        assert_eq!(done.len(), 1, "{done:?}");
        assert!(
            matches!(&done[0].end, End::Consumed { location, .. } if location.starts_with("icmp_rcv")),
            "{:?}",
            done[0].end
        );
    }

    #[test]
    fn nat_shows_the_rewrite_on_its_hop() {
        let mut t = Tracker::new(JourneyConfig::default());
        let mut done = Vec::new();
        let mut a = ev(100, "net:netif_receive_skb", 1, 10, "br", "br-a");
        a.proto = Some("udp".into());
        a.sport = Some(1000);
        a.dport = Some(53);
        let mut b = a.clone();
        b.ts_ns = 200;
        b.hook = "net:net_dev_queue";
        b.dport = Some(5353);
        b.followed = true;
        t.push(a, &mut done);
        t.push(b, &mut done);
        t.finish(&mut done);
        let j = &done[0];
        assert_eq!(j.hops.len(), 2);
        assert_eq!(
            j.hops[1].rewrite,
            Some((
                "198.18.0.1.1000 > 198.18.0.2.53".into(),
                "198.18.0.1.1000 > 198.18.0.2.5353".into()
            ))
        );
    }

    /// A TCP SYN from A, its DNAT in the bridge namespace after the
    /// kernel moved it to a new buffer (NAT writing into a cloned segment).
    fn syn_through_nat() -> (TraceEvent, TraceEvent, TraceEvent) {
        let mut a = with_ports(
            ev(100, "net:net_dev_queue", 1, 10, "a", "a0"),
            "tcp",
            40000,
            8080,
        );
        a.ip_id = Some(4242);
        a.tcp_seq = Some(1000);
        a.tcp_ack = Some(0);
        a.tcp_flags = Some("S".into());
        let mut b = a.clone();
        b.ts_ns = 200;
        b.hook = "net:netif_receive_skb";
        b.netns_name = Some(Name::from("br"));
        b.ifname = Some(Name::from("br-a"));
        let mut c = b.clone();
        c.ts_ns = 300;
        c.hook = "net:net_dev_queue";
        c.ifname = Some(Name::from("br-b"));
        c.head = Some(SkbAddr(11));
        c.dport = Some(80);
        c.followed = true;
        (a, b, c)
    }

    #[test]
    fn the_same_skb_moved_to_a_new_buffer_stays_one_journey() {
        let mut t = Tracker::new(JourneyConfig::default());
        let mut done = Vec::new();
        let (a, b, c) = syn_through_nat();
        t.push(a, &mut done);
        t.push(b, &mut done);
        t.push(c, &mut done);
        t.finish(&mut done);
        assert_eq!(done.len(), 1, "{done:?}");
        let j = &done[0];
        assert_eq!(j.hops.len(), 3);
        assert_eq!(
            j.hops[2].rewrite,
            Some((
                "198.18.0.1.40000 > 198.18.0.2.8080".into(),
                "198.18.0.1.40000 > 198.18.0.2.80".into()
            ))
        );
    }

    #[test]
    fn the_same_skb_in_a_new_buffer_with_other_contents_is_another_packet() {
        for change in 0..3 {
            let mut t = Tracker::new(JourneyConfig::default());
            let mut done = Vec::new();
            let (a, b, mut c) = syn_through_nat();
            match change {
                0 => c.ip_id = Some(4243),
                1 => c.tcp_seq = Some(2000),
                // Long after: the skb was freed untraced and reused.
                _ => c.ts_ns += 10 * REALLOC_NS,
            }
            t.push(a, &mut done);
            t.push(b, &mut done);
            t.push(c, &mut done);
            t.finish(&mut done);
            assert_eq!(done.len(), 2, "change {change}: {done:?}");
        }
    }

    #[test]
    fn a_reply_built_in_the_requests_buffer_is_its_own_journey() {
        let mut t = Tracker::new(JourneyConfig::default());
        let mut done = Vec::new();
        let a = with_ports(
            ev(100, "net:net_dev_queue", 1, 10, "a", "a0"),
            "udp",
            1000,
            5353,
        );
        t.push(a.clone(), &mut done);
        // Its end went unseen (the filter stopped matching past a DNAT);
        // the answer came back in the same skb and buffer, un-NATted.
        let mut b = a;
        b.ts_ns = 300;
        b.netns_name = Some(Name::from("br"));
        std::mem::swap(&mut b.saddr, &mut b.daddr);
        std::mem::swap(&mut b.sport, &mut b.dport);
        t.push(b, &mut done);
        t.finish(&mut done);
        assert_eq!(done.len(), 2, "{done:?}");
        let req = done.iter().find(|j| j.hops[0].event.ts_ns == 100).unwrap();
        let rep = done.iter().find(|j| j.hops[0].event.ts_ns == 300).unwrap();
        assert_eq!(req.hops.len(), 1);
        assert_eq!(req.end, End::BufferReused);
        assert!(rep.hops.iter().all(|h| h.rewrite.is_none()));
        assert_eq!(rep.reply_to.map(|r| r.0), Some(req.id));
    }

    #[test]
    fn the_next_datagram_in_a_reused_buffer_is_a_new_journey() {
        // Seed hooks only: no life hook ends a packet, and a flood of one
        // flow gets its skb and buffer back every few packets.
        let mut t = Tracker::new(JourneyConfig::default());
        let mut done = Vec::new();
        let udp = |ts, hook, ns, ifname| {
            let mut e = ev(ts, hook, 1, 10, ns, ifname);
            e.proto = Some("udp".into());
            (e.icmp_type, e.icmp_seq, e.icmp_id) = (None, None, None);
            (e.sport, e.dport) = (Some(40000), Some(9));
            e
        };
        let ifx = |mut e: TraceEvent, i| {
            e.ifindex = Some(i);
            e
        };
        for k in 0..3u64 {
            let q = ifx(udp(100 + 10 * k, "net:net_dev_queue", "a", "a0"), 2);
            t.push(q, &mut done);
            let r = ifx(udp(105 + 10 * k, "net:netif_rx", "b", "b0"), 3);
            t.push(r, &mut done);
        }
        t.finish(&mut done);
        assert_eq!(done.len(), 3, "{done:?}");
        assert!(done.iter().all(|j| j.hops.len() == 2));
        assert_eq!(done[0].end, End::BufferReused);
    }

    #[test]
    fn idle_journeys_time_out_and_in_flight_is_bounded() {
        let mut t = Tracker::new(JourneyConfig {
            idle_ns: 1000,
            max_in_flight: 3,
        });
        let mut done = Vec::new();
        for i in 0..5u64 {
            let mut e = ev(100 + i, "net:netif_rx", 100 + i, 1000 + i, "a", "a0");
            e.icmp_seq = Some(i as u16);
            t.push(e, &mut done);
        }
        assert_eq!(t.in_flight(), 3);
        assert_eq!(t.evicted, 2);
        assert!(done.iter().all(|j| j.end == End::Evicted));
        t.expire(5000, &mut done);
        assert_eq!(t.in_flight(), 0);
        assert_eq!(done.iter().filter(|j| j.end == End::TimedOut).count(), 3);
    }

    #[test]
    fn a_tcp_segment_is_paired_with_the_ack_that_covers_it() {
        let mut t = Tracker::new(JourneyConfig::default());
        let mut done = Vec::new();
        let seg = |ts, skb, head, fwd: bool, flags: &str, seq, ack| {
            let mut e = ev(ts, "net:netif_rx", skb, head, "b", "b0");
            e.proto = Some("tcp".into());
            e.icmp_type = None;
            e.icmp_seq = None;
            e.icmp_id = None;
            e.sport = Some(if fwd { 40000 } else { 80 });
            e.dport = Some(if fwd { 80 } else { 40000 });
            if !fwd {
                std::mem::swap(&mut e.saddr, &mut e.daddr);
            }
            e.tcp_flags = Some(flags.into());
            e.tcp_seq = Some(seq);
            e.tcp_ack = Some(ack);
            e.len = Some(if flags.contains('P') { 200 } else { 66 });
            e
        };
        t.push(seg(100, 1, 10, true, "S", 1000, 0), &mut done);
        t.push(seg(200, 2, 20, false, "S.", 5000, 1001), &mut done);
        t.push(seg(300, 3, 30, true, ".", 1001, 5001), &mut done);
        t.push(seg(400, 4, 40, true, "P.", 1001, 5001), &mut done);
        t.push(seg(500, 5, 50, false, ".", 5001, 1135), &mut done);
        t.finish(&mut done);
        let by_id = |id: u64| done.iter().find(|j| j.id == id).expect("journey");
        // SYN-ACK answers the SYN; the ACK answers the SYN-ACK; the data
        // segment is answered by the last ACK.
        assert_eq!(by_id(2).reply_to, Some((1, 100)));
        assert_eq!(by_id(3).reply_to, Some((2, 100)));
        assert_eq!(by_id(5).reply_to, Some((4, 100)));
        assert_eq!(by_id(4).reply_to, None);
    }

    #[test]
    fn the_same_skb_and_buffer_leaving_after_delivery_is_a_new_packet() {
        let mut t = Tracker::new(JourneyConfig::default());
        let mut done = Vec::new();
        t.push(
            ev(100, "net:netif_receive_skb", 1, 10, "b", "b0"),
            &mut done,
        );
        let mut ready = ev(110, "sock:sk_data_ready", 1, 10, "b", "b0");
        ready.kind = "socket";
        t.push(ready, &mut done);
        t.push(
            reply(ev(200, "net:net_dev_queue", 1, 10, "b", "b0")),
            &mut done,
        );
        assert_eq!(done.len(), 1, "{done:?}");
        assert!(matches!(done[0].end, End::Delivered { .. }));
        assert_eq!(t.in_flight(), 1);
    }

    #[test]
    fn a_reused_buffer_starts_a_new_journey() {
        let mut t = Tracker::new(JourneyConfig::default());
        let mut done = Vec::new();
        t.push(
            ev(100, "net:netif_receive_skb", 1, 10, "b", "b0"),
            &mut done,
        );
        let mut other = ev(200, "net:net_dev_queue", 2, 10, "b", "b0");
        other.icmp_seq = Some(2);
        t.push(other, &mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].end, End::BufferReused);
        assert_eq!(t.in_flight(), 1);
    }
}
