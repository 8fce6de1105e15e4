//! `netxray dns`: DNS messages seen in system calls, paired into one record
//! per query.
//!
//! Each message a process sends or receives on a UDP or TCP socket is
//! parsed (`dns.rs`); its role follows from the direction and the QR bit:
//! a query sent is the client's, a query received the server's, and so on.
//! Both ends of a query on this host (in any namespaces) join on the
//! client's address and port, the server's port, the transport, the id and
//! the question; the server's address is left out of the key because a
//! server socket bound to the wildcard address does not know which of its
//! addresses the query came to.
//!
//! A record is made when the asking side reads the answer. A server's
//! answer waits a moment ([`GRACE_NS`]) for the asking side: records come
//! in the order the calls *returned*, and on this host a client's send can
//! return after the server has already read and answered the query. No
//! client by then: the asking process is not on this host, and the record
//! is made from the server's side. A query still unanswered after the
//! timeout, or at the end, is reported as such. A message that does not
//! parse is reported at once as malformed.
//!
//! Times: a write counts from the call's entry, a read from its return.
//! The client's latency is query written -> answer read; the server's,
//! query read -> answer written.

use super::call::{Direction, Observed, Side, Transport};
use super::dns::{self, Message, Rdata};
use crate::model::value::Name;
use std::collections::VecDeque;
/// Maps on the per-message path: foldhash (as model/journey.rs), seeded
/// per run: names and paths from the network cannot be picked to collide
/// without the seed.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::net::SocketAddr;

/// An answer, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownAnswer {
    pub rtype: u16,
    pub data: String,
}

/// How a query ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Answered {
        rcode: u8,
        answers: Vec<ShownAnswer>,
        /// The TC bit: the answer did not fit (UDP), retry over TCP.
        truncated: bool,
        /// The copied bytes ended before the answers did.
        cut: bool,
    },
    /// No answer within the timeout, or by the end of the run.
    Unanswered,
    /// A message that is not valid DNS (why).
    Malformed(String),
}

/// One record: a query, its answer and its latency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// When the query was first seen (CLOCK_MONOTONIC, ns).
    pub ts_ns: u64,
    pub transport: Transport,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub id: u16,
    pub name: String,
    pub qtype: u16,
    /// The asking process, when it is on this host.
    pub client_side: Option<Side>,
    /// The answering process, when it is on this host.
    pub server_side: Option<Side>,
    pub outcome: Outcome,
    /// The client's wait (query written -> answer read) when the client is
    /// seen, else the server's time (query read -> answer written).
    pub latency_ns: Option<u64>,
    /// Which side [`Exchange::latency_ns`] was measured on.
    pub latency_side: Option<&'static str>,
}

/// How long a server's answer waits for the asking side to show up.
pub const GRACE_NS: u64 = 300_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The client's port: its address is not in the key (a client socket
    /// bound to the wildcard address, as dnsperf's, does not know it).
    client_port: u16,
    server_port: u16,
    transport: Transport,
    id: u16,
    /// Lower-cased; inline when short: the key is cloned into the queues.
    name: Name,
    qtype: u16,
}

/// `s` in lower case, without an allocation when it is short.
fn lower_name(s: &str) -> Name {
    let b = s.as_bytes();
    let mut buf = [0u8; 22];
    match buf.get_mut(..b.len()) {
        Some(dst) if b.is_ascii() => {
            for (d, c) in dst.iter_mut().zip(b) {
                *d = c.to_ascii_lowercase();
            }
            Name::from(std::str::from_utf8(dst).unwrap_or_default())
        }
        _ => Name::from(s.to_ascii_lowercase()),
    }
}

impl Pending {
    /// Addresses as one side sees them: a socket bound to the wildcard
    /// address does not know its own, the other side does.
    fn learn(&mut self, client: SocketAddr, server: SocketAddr) {
        if self.client_addr.ip().is_unspecified() && !client.ip().is_unspecified() {
            self.client_addr = client;
        }
        if self.server.ip().is_unspecified() && !server.ip().is_unspecified() {
            self.server = server;
        }
    }

    fn new(first_ns: u64, client: SocketAddr, server: SocketAddr) -> Self {
        Self {
            seq: 0,
            first_ns,
            client_addr: client,
            server,
            client: None,
            server_side: None,
            answer: None,
            answer_name: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Pending {
    /// Which insertion this is (the queues' entries name it).
    seq: u64,
    first_ns: u64,
    client_addr: SocketAddr,
    server: SocketAddr,
    /// The client's process and when it wrote the query.
    client: Option<(Side, u64)>,
    /// The server's process and when it read the query.
    server_side: Option<(Side, u64)>,
    /// The server wrote the answer, then: the record waits for the
    /// client to read it.
    answer: Option<(Outcome, u64)>,
    /// The question as the answer spelled it.
    answer_name: Option<String>,
}

/// Pairs queries with answers.
#[derive(Debug, Default)]
pub struct Tracker {
    pending: HashMap<Key, Pending>,
    /// Pending queries in the order they came (time, insertion number,
    /// key): expiry and eviction take from the front. Entries whose query
    /// is gone are skipped there (and compacted away when too many).
    order: VecDeque<(u64, u64, Key)>,
    /// Answers a server wrote, waiting for their client, in order.
    answered: VecDeque<(u64, u64, Key)>,
    seq: u64,
    /// TCP: the length prefix read or written apart from its message (in
    /// a call of its own, or a byte at a time), per (socket, direction).
    tcp: HashMap<(u64, bool), TcpFrame>,
    /// Queries dropped because too many were pending (--max-pending).
    pub overflow: u64,
    max_pending: usize,
}

/// A TCP direction between messages: length bytes seen so far, or the
/// length of the message the next call carries.
#[derive(Debug, Default, Clone)]
struct TcpFrame {
    len_bytes: Vec<u8>,
    want: Option<usize>,
}

/// What is kept from a message for pairing.
struct Parsed {
    msg: Message,
}

impl Tracker {
    /// At most `max_pending` queries wait for their answer at once; past
    /// that the oldest is reported unanswered.
    pub fn new(max_pending: usize) -> Self {
        Self {
            max_pending: max_pending.max(1),
            ..Self::default()
        }
    }

    /// Queries waiting for an answer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// One message; returns the records it completes.
    pub fn observe(&mut self, o: &Observed) -> Vec<Exchange> {
        let Some((bytes, len)) = self.frame(o) else {
            return Vec::new();
        };
        match dns::parse(bytes, len) {
            Ok(msg) => self.message(o, Parsed { msg }),
            Err(e) => vec![malformed(o, e.to_string())],
        }
    }

    /// TCP messages carry a 2-byte length first: written in the same call
    /// as the message, or apart from it (dnsmasq reads it a byte at a
    /// time). One message per call is followed.
    fn frame<'a>(&mut self, o: &Observed<'a>) -> Option<(&'a [u8], usize)> {
        if o.transport == Transport::Udp {
            return Some((o.bytes, o.len));
        }
        let key = (o.sk, o.dir == Direction::Sent);
        let mut f = self.tcp.remove(&key).unwrap_or_default();
        if f.want.is_some() {
            return Some((o.bytes, o.len));
        }
        let mut bytes = o.bytes;
        let mut len = o.len;
        while f.len_bytes.len() < 2 && !bytes.is_empty() {
            f.len_bytes.push(bytes[0]);
            bytes = &bytes[1..];
            len = len.saturating_sub(1);
        }
        if f.len_bytes.len() < 2 || len == 0 {
            if f.len_bytes.len() == 2 {
                f.want = Some(usize::from(u16::from_be_bytes([
                    f.len_bytes[0],
                    f.len_bytes[1],
                ])));
            }
            if self.tcp.len() < self.max_pending {
                self.tcp.insert(key, f);
            }
            return None;
        }
        let declared = usize::from(u16::from_be_bytes([f.len_bytes[0], f.len_bytes[1]]));
        Some((bytes, declared.min(len)))
    }

    fn message(&mut self, o: &Observed, p: Parsed) -> Vec<Exchange> {
        let sent = o.dir == Direction::Sent;
        let (client, server) = if sent != p.msg.response {
            (o.local, o.remote)
        } else {
            (o.remote, o.local)
        };
        let q = p.msg.questions.first();
        let key = Key {
            client_port: client.port(),
            server_port: server.port(),
            transport: o.transport,
            id: p.msg.id,
            name: q.map_or_else(|| Name::from(""), |q| lower_name(&q.name)),
            qtype: q.map_or(0, |q| q.qtype),
        };
        let ends = (client, server);
        if !p.msg.response {
            self.query(key, ends, o, sent)
        } else {
            let outcome = answered(&p.msg);
            self.answer(key, ends, o, sent, outcome, q.map(|q| q.name.clone()))
        }
    }

    fn query(
        &mut self,
        key: Key,
        (client, server): (SocketAddr, SocketAddr),
        o: &Observed,
        sent: bool,
    ) -> Vec<Exchange> {
        let mut out = Vec::new();
        if !self.pending.contains_key(&key) {
            if self.pending.len() >= self.max_pending {
                out.extend(self.evict_oldest());
            }
            let p = self.fresh(o.at(), (client, server), &key);
            self.pending.insert(key.clone(), p);
        }
        let Some(entry) = self.pending.get_mut(&key) else {
            return out;
        };
        entry.learn(client, server);
        entry.first_ns = entry.first_ns.min(o.at());
        if sent {
            // A retry of the same query keeps the first time.
            entry.client.get_or_insert((o.side.clone(), o.at()));
        } else {
            entry.server_side.get_or_insert((o.side.clone(), o.at()));
        }
        out
    }

    fn answer(
        &mut self,
        key: Key,
        (client, server): (SocketAddr, SocketAddr),
        o: &Observed,
        sent: bool,
        outcome: Outcome,
        name: Option<String>,
    ) -> Vec<Exchange> {
        let at = o.at();
        let mut p = match self.pending.remove(&key) {
            Some(p) => p,
            None => self.fresh(at, (client, server), &key),
        };
        p.learn(client, server);
        if sent {
            // The server wrote the answer: the record waits for the asking
            // side (see GRACE_NS).
            // Its read of the query unseen: the time is unknown (0).
            p.server_side.get_or_insert((o.side.clone(), 0));
            p.answer = Some((outcome, at));
            p.answer_name = name;
            self.answered.push_back((at, p.seq, key.clone()));
            let mut out = Vec::new();
            if self.pending.len() >= self.max_pending {
                out.extend(self.evict_oldest());
            }
            self.pending.insert(key, p);
            return out;
        }
        let latency = p
            .client
            .as_ref()
            .and_then(|(_, t)| at.checked_sub(*t))
            .map(|l| (l, "client"));
        // Asked before netxray started: the asking process is this one.
        p.client.get_or_insert((o.side.clone(), 0));
        vec![record(&key, name, &p, outcome, latency)]
    }

    /// A new pending query, queued for expiry.
    fn fresh(&mut self, at: u64, (client, server): (SocketAddr, SocketAddr), key: &Key) -> Pending {
        self.seq += 1;
        self.order.push_back((at, self.seq, key.clone()));
        if self.order.len() > 4 * self.max_pending {
            let pending = &self.pending;
            self.order
                .retain(|(_, seq, k)| pending.get(k).is_some_and(|p| p.seq == *seq));
            self.answered
                .retain(|(_, seq, k)| pending.get(k).is_some_and(|p| p.seq == *seq));
        }
        Pending {
            seq: self.seq,
            ..Pending::new(at, client, server)
        }
    }

    /// The pending query a queue entry names, if it is still that one.
    fn take_live(&mut self, seq: u64, key: &Key) -> Option<Pending> {
        if self.pending.get(key).is_some_and(|p| p.seq == seq) {
            self.pending.remove(key)
        } else {
            None
        }
    }

    /// Queries older than `timeout_ns` at `now_ns`, and answers a server
    /// wrote more than [`GRACE_NS`] ago that no client of this host read:
    /// reported (unanswered, or from the server's side).
    pub fn expire(&mut self, now_ns: u64, timeout_ns: u64) -> Vec<Exchange> {
        let mut out = Vec::new();
        let grace = GRACE_NS.min(timeout_ns);
        while let Some((at, seq, key)) = self.answered.front().cloned() {
            if now_ns.saturating_sub(at) < grace {
                break;
            }
            self.answered.pop_front();
            if let Some(p) = self.take_live(seq, &key) {
                out.push(unanswered(&key, &p));
            }
        }
        while let Some((at, seq, key)) = self.order.front().cloned() {
            if now_ns.saturating_sub(at) < timeout_ns {
                break;
            }
            self.order.pop_front();
            if let Some(p) = self.take_live(seq, &key) {
                out.push(unanswered(&key, &p));
            }
        }
        out.sort_by_key(|e| e.ts_ns);
        out
    }

    /// The end of the run: every query still waiting.
    pub fn finish(&mut self) -> Vec<Exchange> {
        self.order.clear();
        self.answered.clear();
        let mut out: Vec<Exchange> = self
            .pending
            .drain()
            .map(|(k, p)| unanswered(&k, &p))
            .collect();
        out.sort_by_key(|e| e.ts_ns);
        out
    }

    fn evict_oldest(&mut self) -> Option<Exchange> {
        while let Some((_, seq, key)) = self.order.pop_front() {
            if let Some(p) = self.take_live(seq, &key) {
                self.overflow += 1;
                return Some(unanswered(&key, &p));
            }
        }
        None
    }
}

/// A query nobody was seen to read the answer of.
fn unanswered(key: &Key, p: &Pending) -> Exchange {
    match &p.answer {
        Some((outcome, at)) => {
            let latency = p
                .server_side
                .as_ref()
                .filter(|(_, t)| *t > 0 && t <= at)
                .map(|(_, t)| (at - t, "server"));
            record(key, p.answer_name.clone(), p, outcome.clone(), latency)
        }
        None => record(key, None, p, Outcome::Unanswered, None),
    }
}

fn record(
    key: &Key,
    name: Option<String>,
    p: &Pending,
    outcome: Outcome,
    latency: Option<(u64, &'static str)>,
) -> Exchange {
    Exchange {
        ts_ns: p
            .client
            .as_ref()
            .map(|(_, t)| *t)
            .filter(|t| *t > 0)
            .unwrap_or(p.first_ns),
        transport: key.transport,
        client: SocketAddr::new(p.client_addr.ip(), key.client_port),
        server: SocketAddr::new(p.server.ip(), key.server_port),
        id: key.id,
        name: name.unwrap_or_else(|| key.name.to_string()),
        qtype: key.qtype,
        client_side: p.client.as_ref().map(|(s, _)| s.clone()),
        server_side: p.server_side.as_ref().map(|(s, _)| s.clone()),
        outcome,
        latency_ns: latency.map(|(l, _)| l),
        latency_side: latency.map(|(_, s)| s),
    }
}

fn answered(msg: &Message) -> Outcome {
    Outcome::Answered {
        rcode: msg.rcode,
        answers: msg
            .answers
            .iter()
            .map(|a| ShownAnswer {
                rtype: a.rtype,
                data: rdata_text(&a.data),
            })
            .collect(),
        truncated: msg.truncated,
        cut: msg.cut,
    }
}

/// An answer's data as dig shows it.
pub fn rdata_text(d: &Rdata) -> String {
    match d {
        Rdata::A(a) => a.to_string(),
        Rdata::Aaaa(a) => a.to_string(),
        Rdata::Cname(n) | Rdata::Ptr(n) | Rdata::Ns(n) => n.clone(),
        Rdata::Other { len } => format!("({len} bytes)"),
    }
}

/// A message that did not parse: a record of its own.
fn malformed(o: &Observed, why: String) -> Exchange {
    let sent = o.dir == Direction::Sent;
    // Unknown role: the side that sent it is taken as the client.
    let (client, server) = if sent {
        (o.local, o.remote)
    } else {
        (o.remote, o.local)
    };
    Exchange {
        ts_ns: o.at(),
        transport: o.transport,
        client,
        server,
        id: 0,
        name: String::new(),
        qtype: 0,
        client_side: sent.then(|| o.side.clone()),
        server_side: (!sent).then(|| o.side.clone()),
        outcome: Outcome::Malformed(why),
        latency_ns: None,
        latency_side: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(pid: u32, comm: &str) -> Side {
        Side::for_test(pid, comm)
    }

    /// A query for `name` (A), or its answer with one A record.
    fn wire(id: u16, name: &str, answer: Option<[u8; 4]>) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(if answer.is_some() {
            &[0x81, 0x80]
        } else {
            &[0x01, 0x00]
        });
        m.extend_from_slice(&[0, 1, 0, u8::from(answer.is_some()), 0, 0, 0, 0]);
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        if let Some(a) = answer {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            m.extend_from_slice(&a);
        }
        m
    }

    fn obs<'a>(
        ts: u64,
        s: &Side,
        dir: Direction,
        local: &str,
        remote: &str,
        bytes: &'a [u8],
    ) -> Observed<'a> {
        Observed {
            ts_ns: ts,
            side: s.clone(),
            dir,
            transport: Transport::Udp,
            local: local.parse().expect("addr"),
            remote: remote.parse().expect("addr"),
            sk: 1,
            bytes,
            tail: &[],
            len: bytes.len(),
        }
    }

    #[test]
    fn both_ends_on_this_host_make_one_record_at_the_clients_read() {
        let mut t = Tracker::new(100);
        let (c, s) = (side(10, "dig"), side(20, "dnsmasq"));
        let q = wire(7, "example.test", None);
        let a = wire(7, "example.test", Some([198, 18, 0, 9]));
        let cl = "198.18.0.1:40000";
        let sv = "198.18.0.2:53";
        // Records from two CPUs: the client's send (its data moved at
        // 120) comes after the server's read and answer.
        assert!(t
            .observe(&obs(150, &s, Direction::Received, "0.0.0.0:53", cl, &q))
            .is_empty());
        assert!(t
            .observe(&obs(400, &s, Direction::Sent, "0.0.0.0:53", cl, &a))
            .is_empty());
        let send = obs(120, &c, Direction::Sent, cl, sv, &q);
        assert!(t.observe(&send).is_empty());
        let out = t.observe(&obs(500, &c, Direction::Received, cl, sv, &a));
        assert_eq!(out.len(), 1, "{out:?}");
        let e = &out[0];
        assert_eq!(e.name, "example.test");
        assert_eq!(e.server, sv.parse::<SocketAddr>().expect("addr"));
        assert_eq!(e.latency_ns, Some(380));
        assert_eq!(e.latency_side, Some("client"));
        assert_eq!(e.client_side.as_ref().map(|s| s.pid), Some(10));
        assert_eq!(e.server_side.as_ref().map(|s| s.pid), Some(20));
        match &e.outcome {
            Outcome::Answered { rcode, answers, .. } => {
                assert_eq!(*rcode, 0);
                assert_eq!(answers[0].data, "198.18.0.9");
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_remote_client_is_recorded_when_the_server_answers() {
        let mut t = Tracker::new(100);
        let s = side(20, "dnsmasq");
        let q = wire(9, "a.test", None);
        let a = wire(9, "a.test", Some([198, 18, 0, 1]));
        let cl = "198.18.0.7:5555";
        t.observe(&obs(10, &s, Direction::Received, "198.18.0.2:53", cl, &q));
        assert!(t
            .observe(&obs(30, &s, Direction::Sent, "198.18.0.2:53", cl, &a))
            .is_empty());
        // The asking side gets a moment to show up.
        assert!(t.expire(30 + GRACE_NS - 1, 5 * GRACE_NS).is_empty());
        let out = t.expire(30 + GRACE_NS, 5 * GRACE_NS);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].latency_ns, Some(20));
        assert_eq!(out[0].latency_side, Some("server"));
        assert!(out[0].client_side.is_none());
    }

    #[test]
    fn unanswered_after_the_timeout_and_malformed_at_once() {
        let mut t = Tracker::new(100);
        let c = side(10, "getent");
        let q = wire(1, "nobody.test", None);
        t.observe(&obs(
            1_000,
            &c,
            Direction::Sent,
            "198.18.0.1:1",
            "198.18.0.3:53",
            &q,
        ));
        assert!(t.expire(1_500, 1_000).is_empty());
        let out = t.expire(2_000, 1_000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].outcome, Outcome::Unanswered);
        let bad = t.observe(&obs(
            3_000,
            &c,
            Direction::Sent,
            "198.18.0.1:1",
            "198.18.0.3:53",
            &[1, 2, 3],
        ));
        assert!(matches!(bad[0].outcome, Outcome::Malformed(_)));
    }

    #[test]
    fn too_many_waiting_reports_the_oldest_unanswered() {
        let mut t = Tracker::new(2);
        let c = side(10, "dnsperf");
        let q: Vec<Vec<u8>> = (0..3).map(|i| wire(i, "a.test", None)).collect();
        let send = |t: &mut Tracker, i: usize| {
            t.observe(&obs(
                i as u64,
                &c,
                Direction::Sent,
                "198.18.0.1:1",
                "198.18.0.2:53",
                &q[i],
            ))
        };
        assert!(send(&mut t, 0).is_empty());
        assert!(send(&mut t, 1).is_empty());
        let out = send(&mut t, 2);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].id, &out[0].outcome), (0, &Outcome::Unanswered));
        assert_eq!(t.overflow, 1);
        assert_eq!(t.pending(), 2);
        assert_eq!(t.finish().len(), 2);
    }

    #[test]
    fn tcp_length_prefix_in_the_same_write_or_its_own() {
        let mut t = Tracker::new(100);
        let c = side(10, "dig");
        let q = wire(3, "t.test", None);
        let a = wire(3, "t.test", Some([198, 18, 0, 4]));
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        let mut o = obs(
            1,
            &c,
            Direction::Sent,
            "198.18.0.1:3000",
            "198.18.0.2:53",
            &framed,
        );
        o.transport = Transport::Tcp;
        assert!(t.observe(&o).is_empty());
        let len = (a.len() as u16).to_be_bytes();
        let mut o = obs(
            5,
            &c,
            Direction::Received,
            "198.18.0.1:3000",
            "198.18.0.2:53",
            &len,
        );
        o.transport = Transport::Tcp;
        assert!(t.observe(&o).is_empty());
        let mut o = obs(
            6,
            &c,
            Direction::Received,
            "198.18.0.1:3000",
            "198.18.0.2:53",
            &a,
        );
        o.transport = Transport::Tcp;
        let out = t.observe(&o);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].transport, Transport::Tcp);
        assert_eq!(out[0].latency_ns, Some(5));
    }
}
