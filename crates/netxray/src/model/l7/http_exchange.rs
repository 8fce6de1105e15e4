//! `netxray http`: each connection's two directions cut into HTTP/1.x
//! messages (`http.rs`), requests paired with responses in order
//! (keep-alive, pipelining), and the two ends of a connection on this host
//! (in any namespaces) joined into one record per exchange.
//!
//! A connection side is a socket (its kernel address) with its flow; its
//! role comes from the first data seen: a side that writes a request (or
//! reads a response) is the client. A direction whose first bytes are not
//! HTTP makes the whole connection ignored, quietly.
//!
//! Joining: each side's finished exchange waits [`GRACE_NS`] for the other
//! side's (same client and server address and port, method and path, in
//! order); records come in the order the calls returned, so either may
//! come first. Not there by then: the other end is not on this host, and
//! the record has one side.
//!
//! Times: a write counts from the call's entry, a read from its return
//! ([`Observed::at`]). Latency on the client: request's last byte written
//! -> response's first byte read; on the server: request's last byte read
//! -> response's first byte written.

use super::call::{Direction, Observed, Side};
use super::http::{Head, Kind, Message, Segment, Stream};
use std::collections::VecDeque;
/// Maps on the per-message path: foldhash (as model/journey.rs), seeded
/// per run: names and paths from the network cannot be picked to collide
/// without the seed.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::net::SocketAddr;

/// How long one side's record waits for the other side's.
pub const GRACE_NS: u64 = 300_000_000;

/// Which end of the connection a side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// One end's view of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideView {
    pub process: Side,
    /// The socket (kernel address): the connection's identity on this side.
    pub sk: u64,
    /// See the module doc; None without a response.
    pub latency_ns: Option<u64>,
}

/// One request and its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpExchange {
    /// When the request's first byte was written (client) or read (server).
    pub ts_ns: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub method: String,
    pub path: String,
    pub path_truncated: bool,
    pub host: Option<String>,
    /// 0: HTTP/1.0, 1: HTTP/1.1.
    pub version: u8,
    /// Head and body bytes, as the framing says.
    pub request_bytes: u64,
    pub request_complete: bool,
    pub response: Option<ResponseView>,
    pub client_side: Option<SideView>,
    pub server_side: Option<SideView>,
}

/// The response, when there was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseView {
    pub status: u16,
    pub reason: String,
    pub bytes: u64,
    pub complete: bool,
}

/// One socket's state.
struct ConnSide {
    local: SocketAddr,
    remote: SocketAddr,
    process: Side,
    role: Role,
    /// The request direction and the response direction.
    requests: Stream,
    responses: Stream,
    /// Requests waiting for their response, in order.
    waiting: VecDeque<Message>,
    last_ns: u64,
    ignored: bool,
}

impl ConnSide {
    fn new(o: &Observed, role: Role) -> Self {
        ConnSide {
            local: o.local,
            remote: o.remote,
            process: o.side.clone(),
            role,
            requests: Stream::new(Kind::Request),
            responses: Stream::new(Kind::Response),
            waiting: VecDeque::new(),
            last_ns: o.at(),
            ignored: false,
        }
    }

    fn ends(&self) -> (SocketAddr, SocketAddr) {
        match self.role {
            Role::Client => (self.local, self.remote),
            Role::Server => (self.remote, self.local),
        }
    }
}

/// One side's finished exchange, waiting for the other side's.
struct Half {
    deadline: u64,
    role: Role,
    ex: HttpExchange,
}

/// Pairs requests and responses.
pub struct Tracker {
    conns: HashMap<u64, ConnSide>,
    /// By (client, server): halves waiting to be joined, in order.
    halves: HashMap<(SocketAddr, SocketAddr), VecDeque<Half>>,
    max_conns: usize,
    /// Connections dropped for room (their requests reported).
    pub evicted: u64,
}

impl Tracker {
    pub fn new(max_conns: usize) -> Self {
        Tracker {
            conns: HashMap::default(),
            halves: HashMap::default(),
            max_conns: max_conns.max(1),
            evicted: 0,
        }
    }

    /// One call's data; returns the records it completes.
    pub fn observe(&mut self, o: &Observed) -> Vec<HttpExchange> {
        let mut out = Vec::new();
        let at = o.at();
        // A socket address used again by a new connection starts afresh.
        let known = match self.conns.get(&o.sk) {
            Some(c) if c.local == o.local && c.remote == o.remote => true,
            Some(_) => {
                if let Some(c) = self.conns.remove(&o.sk) {
                    self.close_side(o.sk, c, at, &mut out);
                }
                false
            }
            None => false,
        };
        if !known {
            let Some(role) = role_of(o) else {
                return out;
            };
            if self.conns.len() >= self.max_conns {
                self.evict_idlest(at, &mut out);
            }
            self.conns.insert(o.sk, ConnSide::new(o, role));
        }
        let Some(c) = self.conns.get_mut(&o.sk) else {
            return out;
        };
        c.last_ns = at;
        if c.ignored {
            return out;
        }
        c.process = o.side.clone();
        let seg = Segment {
            len: o.len as u64,
            head: o.bytes,
            tail: o.tail,
            ts: at,
        };
        let writes_requests = c.role == Role::Client;
        let is_request_dir = (o.dir == Direction::Sent) == writes_requests;
        let mut done = Vec::new();
        if is_request_dir {
            for m in c.requests.feed(&seg) {
                let head_req = matches!(&m.head, Head::Request(r) if r.method == "HEAD");
                c.responses.expect_head_request(head_req);
                c.waiting.push_back(m);
            }
            if c.requests.is_http() == Some(false) {
                c.ignored = true;
            }
        } else {
            for resp in c.responses.feed(&seg) {
                if let Some(req) = c.waiting.pop_front() {
                    done.push((req, Some(resp)));
                }
            }
            if c.responses.is_http() == Some(false) {
                c.ignored = true;
            }
        }
        let (role, sk, process, ends) = (c.role, o.sk, c.process.clone(), c.ends());
        for (req, resp) in done {
            let half = half_of(role, sk, &process, ends, req, resp);
            self.join(half, at, &mut out);
        }
        out
    }

    /// Put one side's exchange with the other side's, or keep it waiting.
    fn join(&mut self, ex: HttpExchange, now: u64, out: &mut Vec<HttpExchange>) {
        let role = if ex.client_side.is_some() {
            Role::Client
        } else {
            Role::Server
        };
        let key = (ex.client, ex.server);
        let q = self.halves.entry(key).or_default();
        let other = q
            .iter()
            .position(|h| h.role != role && h.ex.method == ex.method && h.ex.path == ex.path);
        if let Some(i) = other {
            if let Some(h) = q.remove(i) {
                out.push(merge(h.ex, ex));
            }
        } else {
            q.push_back(Half {
                deadline: now.saturating_add(GRACE_NS),
                role,
                ex,
            });
        }
        // An emptied queue stays until the next expiry (flush_halves): a
        // keep-alive connection's next exchange reuses it, no allocation
        // per exchange.
    }

    /// Halves whose other side did not come, requests without a response
    /// after `timeout_ns`, and connections idle that long (their streams
    /// closed: an until-close body ends there).
    pub fn expire(&mut self, now: u64, timeout_ns: u64) -> Vec<HttpExchange> {
        let mut out = Vec::new();
        let idle: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| now.saturating_sub(c.last_ns) >= timeout_ns)
            .map(|(sk, _)| *sk)
            .collect();
        for sk in idle {
            if let Some(c) = self.conns.remove(&sk) {
                self.close_side(sk, c, now, &mut out);
            }
        }
        self.flush_halves(|h| h.deadline <= now, &mut out);
        out.sort_by_key(|e| e.ts_ns);
        out
    }

    /// The end of the run: every connection closed, every half reported.
    pub fn finish(&mut self, now: u64) -> Vec<HttpExchange> {
        let mut out = Vec::new();
        let sks: Vec<u64> = self.conns.keys().copied().collect();
        for sk in sks {
            if let Some(c) = self.conns.remove(&sk) {
                self.close_side(sk, c, now, &mut out);
            }
        }
        // Halves made just now may still join each other.
        self.flush_halves(|_| true, &mut out);
        out.sort_by_key(|e| e.ts_ns);
        out
    }

    fn flush_halves(&mut self, due: impl Fn(&Half) -> bool, out: &mut Vec<HttpExchange>) {
        for q in self.halves.values_mut() {
            while q.front().is_some_and(&due) {
                if let Some(h) = q.pop_front() {
                    out.push(h.ex);
                }
            }
        }
        self.halves.retain(|_, q| !q.is_empty());
    }

    /// A side is done: an until-close response ends, requests left have no
    /// response.
    fn close_side(&mut self, sk: u64, mut c: ConnSide, now: u64, out: &mut Vec<HttpExchange>) {
        if c.ignored {
            return;
        }
        let mut done = Vec::new();
        if let Some(resp) = c.responses.close(now) {
            if let Some(req) = c.waiting.pop_front() {
                done.push((req, Some(resp)));
            }
        }
        done.extend(c.waiting.drain(..).map(|r| (r, None)));
        let ends = c.ends();
        for (req, resp) in done {
            let half = half_of(c.role, sk, &c.process, ends, req, resp);
            self.join(half, now, out);
        }
    }

    fn evict_idlest(&mut self, now: u64, out: &mut Vec<HttpExchange>) {
        let Some(sk) = self
            .conns
            .iter()
            .min_by_key(|(_, c)| c.last_ns)
            .map(|(sk, _)| *sk)
        else {
            return;
        };
        if let Some(c) = self.conns.remove(&sk) {
            self.evicted += 1;
            self.close_side(sk, c, now, out);
        }
    }
}

/// A side's role from its first data: writing a request or reading a
/// response is the client's; None when the data is neither (not HTTP).
fn role_of(o: &Observed) -> Option<Role> {
    let response = o.bytes.starts_with(b"HTTP/1.");
    let request = !response && looks_like_request(o.bytes);
    match (o.dir, response, request) {
        (Direction::Sent, false, true) | (Direction::Received, true, false) => Some(Role::Client),
        (Direction::Sent, true, false) | (Direction::Received, false, true) => Some(Role::Server),
        _ => None,
    }
}

/// An uppercase token and a space: a request line's start.
fn looks_like_request(b: &[u8]) -> bool {
    let n = b
        .iter()
        .take(21)
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    n > 0 && n < 21 && b.get(n) == Some(&b' ')
}

fn half_of(
    role: Role,
    sk: u64,
    process: &Side,
    (client, server): (SocketAddr, SocketAddr),
    req: Message,
    resp: Option<Message>,
) -> HttpExchange {
    let latency_ns = resp
        .as_ref()
        .and_then(|m| m.first_ts.checked_sub(req.last_ts));
    let (first_ts, request_bytes, request_complete) =
        (req.first_ts, req.head_len + req.body_len, req.complete);
    let (method, path, path_truncated, host, version) = match req.head {
        Head::Request(r) => (r.method, r.path, r.path_truncated, r.host, r.version),
        Head::Response(_) => (String::new(), String::new(), false, None, 1),
    };
    let response = resp.and_then(|m| {
        let (bytes, complete) = (m.head_len + m.body_len, m.complete);
        match m.head {
            Head::Response(h) => Some(ResponseView {
                status: h.status,
                reason: h.reason,
                bytes,
                complete,
            }),
            Head::Request(_) => None,
        }
    });
    let view = SideView {
        process: process.clone(),
        sk,
        latency_ns,
    };
    HttpExchange {
        ts_ns: first_ts,
        client,
        server,
        method,
        path,
        path_truncated,
        host,
        version,
        request_bytes,
        request_complete,
        response,
        client_side: (role == Role::Client).then(|| view.clone()),
        server_side: (role == Role::Server).then_some(view),
    }
}

/// Both ends' halves: the client's times and sizes first (what the user
/// waited for), the server's side added.
fn merge(a: HttpExchange, b: HttpExchange) -> HttpExchange {
    let (client, server) = if a.client_side.is_some() {
        (a, b)
    } else {
        (b, a)
    };
    HttpExchange {
        server_side: server.server_side,
        response: client.response.or(server.response),
        host: client.host.or(server.host),
        ..client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::l7::call::Transport;

    fn side(pid: u32, comm: &str) -> Side {
        Side::for_test(pid, comm)
    }

    struct Call<'a> {
        at: u64,
        sk: u64,
        who: &'a Side,
        dir: Direction,
        local: &'a str,
        remote: &'a str,
        data: &'a [u8],
    }

    fn feed(t: &mut Tracker, c: Call) -> Vec<HttpExchange> {
        t.observe(&Observed {
            ts_ns: c.at,
            side: c.who.clone(),
            dir: c.dir,
            transport: Transport::Tcp,
            local: c.local.parse().expect("addr"),
            remote: c.remote.parse().expect("addr"),
            sk: c.sk,
            bytes: c.data,
            tail: &[],
            len: c.data.len(),
        })
    }

    const CL: &str = "198.18.0.1:40000";
    const SV: &str = "198.18.0.2:8080";
    const REQ: &[u8] = b"GET /a HTTP/1.1\r\nHost: x.test\r\n\r\n";
    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";

    #[test]
    fn both_ends_make_one_record_in_any_order() {
        let mut t = Tracker::new(100);
        let (curl, srv) = (side(1, "curl"), side(2, "nginx"));
        let s = |at, sk, who, dir, local, remote, data| Call {
            at,
            sk,
            who,
            dir,
            local,
            remote,
            data,
        };
        // The server reads and answers before the client's write is seen.
        assert!(feed(&mut t, s(10, 2, &srv, Direction::Received, SV, CL, REQ)).is_empty());
        assert!(feed(&mut t, s(30, 2, &srv, Direction::Sent, SV, CL, RESP)).is_empty());
        assert!(feed(&mut t, s(5, 1, &curl, Direction::Sent, CL, SV, REQ)).is_empty());
        let out = feed(&mut t, s(40, 1, &curl, Direction::Received, CL, SV, RESP));
        assert_eq!(out.len(), 1);
        let e = &out[0];
        assert_eq!((e.method.as_str(), e.path.as_str()), ("GET", "/a"));
        assert_eq!(e.host.as_deref(), Some("x.test"));
        assert_eq!(e.response.as_ref().map(|r| r.status), Some(200));
        assert_eq!(e.request_bytes, REQ.len() as u64);
        assert_eq!(
            e.response.as_ref().map(|r| r.bytes),
            Some(RESP.len() as u64)
        );
        assert_eq!(e.client_side.as_ref().and_then(|s| s.latency_ns), Some(35));
        assert_eq!(e.server_side.as_ref().and_then(|s| s.latency_ns), Some(20));
        assert_eq!(e.server_side.as_ref().map(|s| s.process.pid), Some(2));
        assert!(t.finish(100).is_empty());
    }

    #[test]
    fn one_side_waits_then_goes_alone_and_no_response_is_reported() {
        let mut t = Tracker::new(100);
        let curl = side(1, "curl");
        let call = |at, dir, data| Call {
            at,
            sk: 1,
            who: &curl,
            dir,
            local: CL,
            remote: SV,
            data,
        };
        feed(&mut t, call(0, Direction::Sent, REQ));
        assert!(feed(&mut t, call(10, Direction::Received, RESP)).is_empty());
        assert!(t.expire(10 + GRACE_NS - 1, 60 * GRACE_NS).is_empty());
        let out = t.expire(10 + GRACE_NS, 60 * GRACE_NS);
        assert_eq!(out.len(), 1);
        assert!(out[0].server_side.is_none());
        // A second request on the keep-alive connection, never answered.
        feed(
            &mut t,
            call(20, Direction::Sent, b"GET /b HTTP/1.1\r\n\r\n"),
        );
        let out = t.finish(30);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].path, "/b");
        assert!(out[0].response.is_none());
    }

    #[test]
    fn not_http_is_ignored() {
        let mut t = Tracker::new(100);
        let c = side(1, "ssh");
        let out = feed(
            &mut t,
            Call {
                at: 0,
                sk: 1,
                who: &c,
                dir: Direction::Sent,
                local: CL,
                remote: SV,
                data: b"SSH-2.0-OpenSSH_9.2\r\n",
            },
        );
        assert!(out.is_empty());
        assert!(t.finish(1).is_empty());
    }
}
