//! The HTTP/1.x stream parser (`netxray::model::l7::http`) never panics and
//! keeps its output bounded whatever the calls bring (random bytes, random
//! lengths past the captured part, mutated message streams, random capture
//! limits); valid message streams cut at random call boundaries, all bytes
//! captured, come out as they went in; and with bytes lost to the capture,
//! every head reported whole is one that was sent, in order.
//!
//! Cases per property: `NETXRAY_FUZZ_CASES` (default 5000). A million:
//!
//! ```text
//! NETXRAY_FUZZ_CASES=1000000 cargo test --release --test http_fuzz
//! ```
//!
//! Last run (2026-12-07, the four properties a million cases each, all
//! passed): 750 s wall, 914 s CPU, on 2 cores shared with other builds,
//! at `nice -n 19`.

use netxray::model::l7::http::{
    Head, Kind, Message, Segment, Stream, HOST_MAX, METHOD_MAX, PATH_MAX, REASON_MAX,
};
use proptest::prelude::*;
use proptest::sample::{select, Index};

fn cases() -> u32 {
    std::env::var("NETXRAY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
}

/// Pieces of HTTP, so that random calls often come close to it.
const FRAGMENTS: &[&str] = &[
    "GET ",
    "POST ",
    "HEAD ",
    "X-Y ",
    "/",
    "/a?b=c",
    "*",
    " ",
    "HTTP/1.1",
    "HTTP/1.0",
    "HTTP/1.",
    "HTTP/1.1 ",
    "200",
    "204",
    "304",
    "100",
    "404 Not Found",
    "\r\n",
    "\n",
    "\r",
    "\r\n\r\n",
    "Host: h",
    "Content-Length: ",
    "content-length:5",
    "Content-Length: 18446744073709551616",
    "Transfer-Encoding: chunked",
    "Transfer-Encoding: gzip",
    "Connection: close",
    ": ",
    ",",
    "0",
    "5",
    "ffffffffffffffff",
    "10000000000000000",
    ";ext=1",
    "0\r\n\r\n",
    "5\r\nhello\r\n",
    "X: y",
    "\u{e9}",
    "\u{0}",
];

/// Random bytes, or HTTP-looking ones.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..max),
        proptest::collection::vec(select(FRAGMENTS), 0..max / 8)
            .prop_map(|f| f.concat().into_bytes()),
    ]
}

/// One call: captured head, uncaptured middle, captured tail.
#[derive(Debug, Clone)]
struct Call {
    head: Vec<u8>,
    middle: u64,
    tail: Vec<u8>,
    /// For responses: tell the stream about a request (HEAD or not) first.
    request: Option<bool>,
}

fn call() -> impl Strategy<Value = Call> {
    (
        bytes(1100),
        prop_oneof![4 => Just(0u64), 4 => 0..64u64, 4 => 0..200_000u64, 1 => Just(u64::MAX / 3)],
        prop_oneof![Just(Vec::new()), bytes(40)],
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(head, middle, tail, request)| Call {
            head,
            middle,
            tail,
            request,
        })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Request), Just(Kind::Response)]
}

/// Feeds the calls (after telling a response stream which requests were
/// HEAD), checking every message; returns them (and what close gave).
fn feed_checked(kind: Kind, heads: &[bool], calls: &[Segment]) -> Vec<Message> {
    let mut s = Stream::new(kind);
    for &is_head in heads {
        s.expect_head_request(is_head);
    }
    let mut out = Vec::new();
    let mut total = 0u128;
    for seg in calls {
        total += u128::from(seg.len);
        let msgs = s.feed(seg);
        let known = seg.head.len() + seg.tail.len();
        assert!(msgs.len() <= known / 8 + 2, "{} messages", msgs.len());
        out.extend(msgs);
    }
    let last_ts = calls.last().map_or(0, |c| c.ts);
    out.extend(s.close(last_ts + 1));
    let mut counted = 0u128;
    for m in &out {
        check(m, last_ts);
        counted += u128::from(m.head_len) + u128::from(m.body_len);
    }
    assert!(counted <= total, "{counted} bytes in messages, {total} fed");
    if s.is_http() == Some(false) {
        assert!(out.is_empty());
    }
    out
}

/// The bounds every message keeps.
fn check(m: &Message, last_ts: u64) {
    match &m.head {
        Head::Request(r) => {
            assert!(!r.method.is_empty() && r.method.len() <= METHOD_MAX);
            assert!(r
                .method
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c == b'-' || c == b'_'));
            assert!(r.path.len() <= PATH_MAX, "path of {}", r.path.len());
            assert!(r.host.as_ref().is_none_or(|h| h.len() <= HOST_MAX));
            assert!(r.version <= 1);
        }
        Head::Response(r) => {
            assert!((100..=999).contains(&r.status));
            assert!(r.reason.len() <= REASON_MAX);
            assert!(r.version <= 1);
        }
    }
    assert!(m.head_len > 0);
    assert!(m.first_ts <= m.last_ts && m.last_ts <= last_ts);
    assert!(!(m.head_partial && m.complete));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_calls_never_panic(kind in kind(), calls in proptest::collection::vec(call(), 1..10)) {
        let mut s = Stream::new(kind);
        let segs: Vec<Segment> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| Segment {
                len: (c.head.len() + c.tail.len()) as u64 + c.middle,
                head: &c.head,
                tail: &c.tail,
                ts: i as u64,
            })
            .collect();
        for (c, seg) in calls.iter().zip(&segs) {
            if let Some(is_head) = c.request {
                s.expect_head_request(is_head);
            }
            for m in s.feed(seg) {
                check(&m, seg.ts);
            }
        }
        if let Some(m) = s.close(99) {
            check(&m, calls.len() as u64);
        }
        feed_checked(kind, &[], &segs);
    }

    #[test]
    fn valid_streams_come_out_whole(
        (kind, msgs) in messages(),
        cuts in proptest::collection::vec(any::<Index>(), 0..24),
    ) {
        let (bytes, heads) = encode(kind, &msgs);
        let calls = cut(&bytes, &cuts);
        let mut s = Stream::new(kind);
        for is_head in heads {
            s.expect_head_request(is_head);
        }
        let mut got = Vec::new();
        for (i, c) in calls.iter().enumerate() {
            got.extend(s.feed(&whole(c, i as u64)));
        }
        got.extend(s.close(calls.len() as u64));
        prop_assert_eq!(s.is_http(), Some(true));
        let want: Vec<Summary> = msgs.iter().map(|m| m.summary(kind)).collect();
        let got: Vec<Summary> = got.iter().map(summary).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn mutated_streams_never_panic(
        (kind, msgs) in messages(),
        mutations in proptest::collection::vec((any::<Index>(), 0..4u8, any::<u8>()), 0..6),
        cuts in proptest::collection::vec(any::<Index>(), 0..24),
        cap in prop_oneof![Just(1024usize), 0..200usize],
    ) {
        let (mut bytes, heads) = encode(kind, &msgs);
        for (at, op, byte) in mutations {
            mutate(&mut bytes, at, op, byte);
        }
        let calls = cut(&bytes, &cuts);
        let segs: Vec<Segment> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| captured(c, cap, i as u64))
            .collect();
        feed_checked(kind, &heads, &segs);
    }

    #[test]
    fn captured_streams_report_real_heads(
        (kind, msgs) in messages(),
        cuts in proptest::collection::vec(any::<Index>(), 0..24),
        cap in prop_oneof![Just(1024usize), 0..200usize],
    ) {
        let (bytes, heads) = encode(kind, &msgs);
        let calls = cut(&bytes, &cuts);
        let segs: Vec<Segment> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| captured(c, cap, i as u64))
            .collect();
        // Parts of the stream are lost, but every head reported whole is
        // one that was sent, in order.
        let got: Vec<Summary> = feed_checked(kind, &heads, &segs)
            .iter()
            .filter(|m| !m.head_partial)
            .map(|m| head_only(summary(m)))
            .collect();
        let want: Vec<Summary> = msgs.iter().map(|m| head_only(m.summary(kind))).collect();
        let mut sent = want.iter();
        for g in &got {
            prop_assert!(sent.any(|w| w == g), "{:?} not sent (or out of order): {:?}", g, want);
        }
    }
}

/// A summary without what depends on the framing.
fn head_only(s: Summary) -> Summary {
    Summary {
        body_len: 0,
        complete: false,
        ..s
    }
}

/// A call with all its bytes captured.
fn whole(b: &[u8], ts: u64) -> Segment<'_> {
    Segment {
        len: b.len() as u64,
        head: b,
        tail: &[],
        ts,
    }
}

/// A call of which the first `cap` bytes and the last 32 were captured.
fn captured(b: &[u8], cap: usize, ts: u64) -> Segment<'_> {
    let head = &b[..b.len().min(cap)];
    let tail = if b.len() > cap {
        &b[b.len() - b.len().min(32)..]
    } else {
        &[]
    };
    Segment {
        len: b.len() as u64,
        head,
        tail,
        ts,
    }
}

/// `b` cut at the given points (empty calls dropped).
fn cut<'a>(b: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(b.len() + 1)).collect();
    at.push(0);
    at.push(b.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &b[w[0]..w[1]]).collect()
}

fn mutate(b: &mut Vec<u8>, at: Index, op: u8, byte: u8) {
    if b.is_empty() {
        b.push(byte);
        return;
    }
    let i = at.index(b.len());
    match op {
        0 => b[i] ^= byte | 1,
        1 => b.insert(i, byte),
        2 => {
            b.drain(i..(i + usize::from(byte)).min(b.len()));
        }
        _ => {
            let piece = b[i..(i + usize::from(byte)).min(b.len())].to_vec();
            b.splice(i..i, piece);
        }
    }
}

/// A body as generated.
#[derive(Debug, Clone)]
enum Body {
    /// No framing header (a response then runs until close).
    None,
    Length(Vec<u8>),
    /// Chunks (upper-case hex or not, with an extension or not), and
    /// whether a trailer follows.
    Chunked(Vec<Vec<u8>>, bool, bool),
}

/// One generated message.
#[derive(Debug, Clone)]
struct Msg {
    method: String,
    path: String,
    status: u16,
    reason: String,
    version: u8,
    host: Option<String>,
    fields: Vec<(String, String)>,
    body: Body,
    /// Responses: answers a HEAD request.
    head_request: bool,
    /// Requests: an empty line before it.
    blank: bool,
    lower_names: bool,
}

/// What is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    method: String,
    path: String,
    status: u16,
    reason: String,
    version: u8,
    host: Option<String>,
    body_len: u64,
    complete: bool,
}

fn summary(m: &Message) -> Summary {
    let (method, path, status, reason, version, host) = match &m.head {
        Head::Request(r) => (
            r.method.clone(),
            r.path.clone(),
            0,
            String::new(),
            r.version,
            r.host.clone(),
        ),
        Head::Response(r) => (
            String::new(),
            String::new(),
            r.status,
            r.reason.clone(),
            r.version,
            None,
        ),
    };
    Summary {
        method,
        path,
        status,
        reason,
        version,
        host,
        body_len: m.body_len,
        complete: m.complete,
    }
}

impl Msg {
    /// The response has no body whatever its fields say.
    fn bodiless(&self) -> bool {
        self.head_request || (100..200).contains(&self.status) || [204, 304].contains(&self.status)
    }

    fn summary(&self, kind: Kind) -> Summary {
        let body_len = match (&self.body, kind) {
            (_, Kind::Response) if self.bodiless() => 0,
            (Body::None, _) => 0,
            (Body::Length(b), _) => b.len() as u64,
            (Body::Chunked(..), _) => self.body_bytes().len() as u64,
        };
        match kind {
            Kind::Request => Summary {
                method: self.method.clone(),
                path: self.path.chars().take(PATH_MAX).collect(),
                status: 0,
                reason: String::new(),
                version: self.version,
                host: self.host.clone(),
                body_len,
                complete: true,
            },
            Kind::Response => Summary {
                method: String::new(),
                path: String::new(),
                status: self.status,
                reason: self.reason.clone(),
                version: self.version,
                host: None,
                body_len,
                complete: true,
            },
        }
    }

    fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::None => Vec::new(),
            Body::Length(b) => b.clone(),
            Body::Chunked(chunks, upper, trailer) => {
                let mut out = Vec::new();
                for (i, c) in chunks.iter().enumerate() {
                    let size = if *upper {
                        format!("{:X}", c.len())
                    } else {
                        format!("{:x}", c.len())
                    };
                    out.extend_from_slice(size.as_bytes());
                    if i % 2 == 1 {
                        out.extend_from_slice(b";name=value");
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                if *trailer {
                    out.extend_from_slice(b"X-Checksum: 1234\r\n");
                }
                out.extend_from_slice(b"\r\n");
                out
            }
        }
    }

    fn encode(&self, kind: Kind, out: &mut Vec<u8>) {
        let name = |n: &str| {
            if self.lower_names {
                n.to_ascii_lowercase()
            } else {
                n.to_string()
            }
        };
        let mut text = match kind {
            Kind::Request => {
                let blank = if self.blank { "\r\n" } else { "" };
                format!(
                    "{blank}{} {} HTTP/1.{}\r\n",
                    self.method, self.path, self.version
                )
            }
            Kind::Response if self.reason.is_empty() && self.status.is_multiple_of(2) => {
                format!("HTTP/1.{} {}\r\n", self.version, self.status)
            }
            Kind::Response => format!(
                "HTTP/1.{} {} {}\r\n",
                self.version, self.status, self.reason
            ),
        };
        if let Some(h) = &self.host {
            text += &format!("{}: {h}\r\n", name("Host"));
        }
        for (n, v) in &self.fields {
            text += &format!("{n}: {v}\r\n");
        }
        let body = self.body_bytes();
        match &self.body {
            Body::None => {}
            Body::Length(b) => text += &format!("{}: {}\r\n", name("Content-Length"), b.len()),
            Body::Chunked(..) => text += &format!("{}: chunked\r\n", name("Transfer-Encoding")),
        }
        text += "\r\n";
        out.extend_from_slice(text.as_bytes());
        if kind == Kind::Request || !self.bodiless() {
            out.extend_from_slice(&body);
        }
    }
}

/// The stream's bytes, and for responses whether each final one answers
/// HEAD (what the pairing code would tell).
fn encode(kind: Kind, msgs: &[Msg]) -> (Vec<u8>, Vec<bool>) {
    let mut out = Vec::new();
    let mut heads = Vec::new();
    for m in msgs {
        m.encode(kind, &mut out);
        if kind == Kind::Response && !(100..200).contains(&m.status) {
            heads.push(m.head_request);
        }
    }
    (out, heads)
}

fn body() -> impl Strategy<Value = Body> {
    let data = proptest::collection::vec(any::<u8>(), 0..600);
    let chunk = proptest::collection::vec(any::<u8>(), 1..300);
    prop_oneof![
        Just(Body::None),
        data.prop_map(Body::Length),
        (
            proptest::collection::vec(chunk, 0..5),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(c, upper, trailer)| Body::Chunked(c, upper, trailer)),
    ]
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "PROPFIND",
];

const STATUSES: &[u16] = &[100, 103, 200, 201, 204, 301, 304, 404, 500, 503];

fn field() -> impl Strategy<Value = (String, String)> {
    ("[A-Za-z][A-Za-z-]{0,19}", "[ -~]{0,50}").prop_filter("not a framing field", |(n, _)| {
        !["host", "content-length", "transfer-encoding", "connection"]
            .contains(&n.to_ascii_lowercase().as_str())
    })
}

fn msg() -> impl Strategy<Value = Msg> {
    (
        prop_oneof![select(METHODS).prop_map(String::from), "[A-Z][A-Z_-]{0,15}"],
        "/[A-Za-z0-9._~%/?=&-]{0,400}",
        (select(STATUSES), "[A-Za-z][A-Za-z ]{0,19}|"),
        0..2u8,
        proptest::option::of("[a-z0-9.-]{1,30}(:[0-9]{1,5})?"),
        proptest::collection::vec(field(), 0..4),
        body(),
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(method, path, (status, reason), version, host, fields, body, flags)| Msg {
                method,
                path,
                status,
                reason,
                version,
                host,
                fields,
                body,
                head_request: flags.0,
                blank: flags.1,
                lower_names: flags.2,
            },
        )
}

/// A valid stream: requests, or responses where only the last may run
/// until the close (a response without length).
fn messages() -> impl Strategy<Value = (Kind, Vec<Msg>)> {
    (kind(), proptest::collection::vec(msg(), 1..8)).prop_map(|(kind, mut msgs)| {
        if kind == Kind::Response {
            let n = msgs.len();
            for (i, m) in msgs.iter_mut().enumerate() {
                m.blank = false;
                if matches!(m.body, Body::None) && !m.bodiless() && i + 1 < n {
                    m.body = Body::Length(Vec::new());
                }
            }
        }
        (kind, msgs)
    })
}
