//! HTTP/1.x messages cut out of one direction of one TCP connection, seen
//! only through what the kernel copied from each system call.
//!
//! # What the parser sees
//!
//! Each read/write/send/recv call is a [`Segment`]: its byte count `len`
//! (the call's return value), the first bytes (`head`, up to 1024) and the
//! last bytes (`tail`, up to 32, empty when `head` holds everything). Bytes
//! between the two are counted but unknown. A [`Stream`] follows the bytes a
//! process wrote (or read) on one connection and returns each message when
//! it ends: its head (start line, Host) and how many bytes it took.
//!
//! # Choices
//!
//! - **Not HTTP.** The first bytes of the stream decide: a request stream
//!   must begin with an uppercase method token and a space, a response
//!   stream with `HTTP/1.`, and the start line must then be well formed.
//!   Otherwise the stream is not HTTP ([`Stream::is_http`] is
//!   `Some(false)`) and every later byte is ignored: TLS or a binary
//!   protocol on the port makes no noise. (A start line cut by the capture
//!   of the stream's first call counts when at least 64 of its bytes were
//!   captured.) So a stream must be followed from the connection's start:
//!   one joined in the middle of a body is taken as not HTTP. Empty lines before
//!   a head are skipped (RFC 9112 §2.2).
//! - **Heads.** A head (start line and fields, up to the empty line) may
//!   arrive over several calls; it is gathered up to [`HEAD_MAX`] bytes.
//!   When the rest of a head is unknown (the call was longer than what was
//!   captured and the empty line is not in the captured part), or a head is
//!   longer than [`HEAD_MAX`], the message is reported from what was seen:
//!   the start line (a target cut short sets `path_truncated`; a version not
//!   seen is taken as 1) and the fields on whole lines (a Host not seen is
//!   `None`). Such a message has [`Message::head_partial`] set, `complete`
//!   false, `head_len` running to the end of that call and `body_len` 0: its
//!   body framing is not known, so the stream resynchronises (below).
//! - **Framing** follows RFC 9112 §6.3 (see [`Framing`]): chunked beats
//!   `Content-Length`; responses to HEAD, 1xx, 204 and 304 have no body; a
//!   response with neither length nor chunked runs until the connection
//!   closes; a request with neither has no body. A response to a HEAD
//!   request the stream was not told about is framed by its
//!   `Content-Length`, and takes the bytes that follow. Framing headers
//!   that make no sense (a `Content-Length` that is not one number, a
//!   request whose `Transfer-Encoding` does not end with `chunked`) end the
//!   message at its head with `complete` false, and the stream
//!   resynchronises.
//! - **Lengths** are counted with `len`, captured or not, so a body may run
//!   through uncaptured bytes. The next message may start inside the same
//!   call (keep-alive, pipelining): where that falls inside `head`, its head
//!   is parsed from there; where it falls in the uncaptured middle, its head
//!   is unknown and the stream resynchronises.
//! - **Chunked** bodies are decoded where the bytes were captured; a chunk's
//!   data may run through uncaptured bytes. When a chunk-size line falls in
//!   uncaptured bytes (or the bytes are not valid chunked framing), the
//!   chunk boundaries are lost: the body then ends with the first call
//!   after which the stream's last known bytes are the last chunk (a line
//!   `0`, optional trailer fields, the empty line; at most 64 bytes, seen in
//!   that call's tail or across calls captured whole), or, incomplete,
//!   before a call that begins with a plausible head. Body bytes that happen
//!   to look like a last chunk at the end of a call end the body early.
//! - **Resynchronising** means skipping calls until one begins with a
//!   plausible head: a whole, well-formed start line in its captured bytes
//!   (or, when the call is longer than the capture, at least 64 captured
//!   bytes that could start one), with one of the nine standard methods
//!   (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH: none
//!   ends another, so a call that begins inside a method is not taken for
//!   a head); other methods are found only where the framing leads. Messages skipped that way are not
//!   reported, so a response stream's HEAD queue
//!   ([`Stream::expect_head_request`]) can then be out of step.
//! - **Bounds.** Memory per stream: the head being gathered (at most
//!   [`HEAD_MAX`] bytes), the stream's last 64 bytes, and the HEAD queue (at
//!   most [`PENDING_MAX`] entries). Chunk sizes, extensions and trailers
//!   are only counted. The strings reported are cut to [`METHOD_MAX`],
//!   [`PATH_MAX`], [`HOST_MAX`] and [`REASON_MAX`] bytes (invalid UTF-8
//!   replaced). Nothing panics.

mod chunked;
mod head;
#[cfg(test)]
mod tests;

use chunked::Chunk;
use head::{Check, Parsed};
use std::collections::VecDeque;
use std::mem;

/// The longest request target kept, in bytes; longer ones are cut (at a
/// character boundary) and [`RequestHead::path_truncated`] is set.
pub const PATH_MAX: usize = 256;
/// The longest method accepted: a longer token is not a method (the stream
/// is not HTTP, or resynchronises).
pub const METHOD_MAX: usize = 24;
/// The longest Host value kept, in bytes; longer ones are cut.
pub const HOST_MAX: usize = 256;
/// The longest reason phrase kept, in bytes; longer ones are cut.
pub const REASON_MAX: usize = 128;
/// The longest head gathered (start line, fields, empty line). A longer
/// head is reported from its first `HEAD_MAX` bytes, as one whose end was
/// not seen.
pub const HEAD_MAX: usize = 16 * 1024;
/// The most [`Stream::expect_head_request`] entries kept waiting for their
/// response; past it the oldest are dropped.
pub const PENDING_MAX: usize = 256;
/// The stream's last bytes kept to recognise the end of a chunked body
/// (the last chunk, short trailers, the empty line) across calls.
const RECENT: usize = 64;
/// Captured bytes a call needs, when it is longer than the capture, to
/// resynchronise on a start line that does not end within them.
const RESYNC_MIN: usize = 64;

/// One system call's data, as the kernel copied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The call's byte count (its return value).
    pub len: u64,
    /// The first bytes of the data (at most `len`; more are ignored).
    pub head: &'a [u8],
    /// The last bytes of the data; empty when `head` holds everything.
    /// They may overlap `head` when `len` is less than both together.
    pub tail: &'a [u8],
    /// When the call happened (any monotonic unit; copied into messages).
    pub ts: u64,
}

/// Which direction a [`Stream`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Client to server: requests.
    Request,
    /// Server to client: responses.
    Response,
}

/// A request's start line and Host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method: an uppercase token (`-` and `_` allowed after the first
    /// letter), at most [`METHOD_MAX`] bytes.
    pub method: String,
    /// The request target as sent (origin form `/a?b`, absolute form,
    /// `host:port` for CONNECT, `*`), at most [`PATH_MAX`] bytes.
    pub path: String,
    /// The target was longer than [`PATH_MAX`], or cut by the capture.
    pub path_truncated: bool,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1 (also when the
    /// start line was cut before it).
    pub version: u8,
    /// The first Host field, trimmed, at most [`HOST_MAX`] bytes; `None`
    /// when absent, or not seen in a head cut short
    /// ([`Message::head_partial`]).
    pub host: Option<String>,
}

/// A response's status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// The status code, 100 to 999.
    pub status: u16,
    /// The reason phrase (may be empty), at most [`REASON_MAX`] bytes.
    pub reason: String,
}

/// A message's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// On a [`Kind::Request`] stream.
    Request(RequestHead),
    /// On a [`Kind::Response`] stream.
    Response(ResponseHead),
}

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`: this many bytes.
    Length(u64),
    /// `Transfer-Encoding` ending with `chunked`: up to the last chunk and
    /// the trailer section.
    Chunked,
    /// A response with neither: until the connection closes. Also a
    /// response whose `Transfer-Encoding` does not end with `chunked`.
    UntilClose,
    /// No body: requests without length or chunked, 1xx, 204 and 304
    /// responses, responses to HEAD; also messages whose framing headers
    /// were invalid (then `complete` is false).
    None,
}

/// One HTTP message found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its start line and the fields kept.
    pub head: Head,
    /// Bytes of the head: start line, fields and the empty line (empty lines
    /// before the start line are not counted). For a head cut short
    /// ([`Message::head_partial`]): up to the end of the call where its end
    /// was lost.
    pub head_len: u64,
    /// Bytes on the wire after the head, as framed: the `Content-Length`;
    /// for chunked, everything up to the end of the trailer section (sizes,
    /// extensions, line ends, data, trailers); for until-close, everything
    /// up to the close; 0 without body. For an incomplete message, the bytes
    /// counted until it stopped. When chunk boundaries were lost, the body
    /// is taken to end with the call that ended with the last chunk.
    pub body_len: u64,
    /// `ts` of the call holding the head's first byte.
    pub first_ts: u64,
    /// `ts` of the call holding the message's last byte (for until-close,
    /// the last call before the close).
    pub last_ts: u64,
    /// The framing said where the message ends and it ended there (an
    /// until-close body is complete when [`Stream::close`] ends it).
    pub complete: bool,
    /// How the body was delimited.
    pub framing: Framing,
    /// The end of the head was not seen (cut by the capture, longer than
    /// [`HEAD_MAX`], or the connection closed inside it): fields after the
    /// cut are unknown.
    pub head_partial: bool,
    /// The connection closes after this message: `Connection: close`, or
    /// HTTP/1.0 without `Connection: keep-alive`.
    pub conn_close: bool,
}

/// Cuts one direction of one connection into HTTP messages.
#[derive(Debug)]
pub struct Stream {
    kind: Kind,
    state: State,
    /// The head being gathered (at most [`HEAD_MAX`] bytes).
    buf: Vec<u8>,
    http: Option<bool>,
    /// For responses: whether each request still unanswered was HEAD.
    pending: VecDeque<bool>,
    /// The stream's last bytes up to the end of the last call, as far as
    /// they are known contiguously (at most [`RECENT`]): where a chunked body
    /// whose boundaries were lost ends.
    recent: Vec<u8>,
}

#[derive(Debug)]
enum State {
    /// Between messages (`buf` empty) or inside a head (in `buf`).
    /// `line_ok`: its start line was checked whole.
    Head {
        first_ts: u64,
        last_ts: u64,
        line_ok: bool,
    },
    /// Inside a body.
    Body(Box<Message>, Body),
    /// Position lost: skipping calls until one begins with a head.
    Resync,
    /// Not HTTP: everything is ignored.
    NotHttp,
}

impl State {
    fn between() -> State {
        State::Head {
            first_ts: 0,
            last_ts: 0,
            line_ok: false,
        }
    }
}

#[derive(Debug)]
enum Body {
    /// Bytes left.
    Length(u64),
    Chunked(Chunk),
    /// Chunked, boundaries lost: looking for the end in calls' last bytes.
    Lost,
    UntilClose,
}

/// What a body step did.
enum Outcome {
    /// Took this many bytes; the body goes on.
    Go(u64),
    /// Took this many bytes; the body ended.
    Done(u64),
    /// The rest of the call belongs to the body.
    Rest,
    /// Chunk boundaries lost here.
    Lost,
}

/// A segment with its parts clamped to `len`.
struct View<'a> {
    len: u64,
    head: &'a [u8],
    /// The last bytes.
    tail: &'a [u8],
    /// The part of `tail` that `head` does not cover.
    fresh_tail: &'a [u8],
    ts: u64,
}

/// Part of a call: bytes known, or only counted.
#[derive(Debug, Clone, Copy)]
enum Piece<'a> {
    Known(&'a [u8]),
    Gap(u64),
}

impl Piece<'_> {
    fn len(&self) -> u64 {
        match self {
            Piece::Known(b) => b.len() as u64,
            Piece::Gap(n) => *n,
        }
    }

    fn advance(self, n: u64) -> Self {
        match self {
            Piece::Known(b) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                Piece::Known(b.get(n..).unwrap_or(&[]))
            }
            Piece::Gap(g) => Piece::Gap(g.saturating_sub(n)),
        }
    }
}

/// The first `n` bytes of `b` (all if fewer).
fn first(b: &[u8], n: u64) -> &[u8] {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    b.get(..n).unwrap_or(b)
}

/// The last `n` bytes of `b` (all if fewer).
fn last(b: &[u8], n: u64) -> &[u8] {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    b.get(b.len().saturating_sub(n)..).unwrap_or(b)
}

impl<'a> View<'a> {
    fn new(seg: &Segment<'a>) -> Self {
        let head = first(seg.head, seg.len);
        let tail = last(seg.tail, seg.len);
        let fresh_tail = last(tail, seg.len - head.len() as u64);
        View {
            len: seg.len,
            head,
            tail,
            fresh_tail,
            ts: seg.ts,
        }
    }

    fn pieces(&self) -> [Piece<'a>; 3] {
        let known = (self.head.len() + self.fresh_tail.len()) as u64;
        [
            Piece::Known(self.head),
            Piece::Gap(self.len.saturating_sub(known)),
            Piece::Known(self.fresh_tail),
        ]
    }

    /// Adds the call's bytes to the stream's last bytes `recent`.
    fn keep_end(&self, recent: &mut Vec<u8>) {
        let known = (self.head.len() + self.fresh_tail.len()) as u64;
        let max = RECENT as u64;
        if known < self.len {
            // A gap: only the tail is known, and nothing before it.
            recent.clear();
            recent.extend_from_slice(last(self.tail, max));
        } else {
            recent.extend_from_slice(last(self.head, max));
            recent.extend_from_slice(last(self.fresh_tail, max));
        }
        let extra = recent.len().saturating_sub(RECENT);
        recent.drain(..extra);
    }
}

impl Stream {
    /// A stream of requests or responses, before its first byte.
    pub fn new(kind: Kind) -> Self {
        Stream {
            kind,
            state: State::between(),
            buf: Vec::new(),
            http: None,
            pending: VecDeque::new(),
            recent: Vec::with_capacity(3 * RECENT),
        }
    }

    /// Feeds the next call's data, in order. Returns the messages that
    /// ended in it (none once the stream is known not to be HTTP).
    pub fn feed(&mut self, seg: &Segment) -> Vec<Message> {
        let mut out = Vec::new();
        let v = View::new(seg);
        if v.len == 0 || matches!(self.state, State::NotHttp) {
            return out;
        }
        v.keep_end(&mut self.recent);
        if self.call_start(&v, &mut out) {
            self.walk(&v, &mut out);
        }
        out
    }

    /// The connection ended. A message in progress is finished and
    /// returned: complete for an until-close body, incomplete otherwise (a
    /// head cut short is returned only once the stream is known to be
    /// HTTP). `last_ts` stays the `ts` of the message's last call; the
    /// close's time `_ts` is the caller's to report. The stream is then
    /// back between messages, with an empty HEAD queue.
    pub fn close(&mut self, _ts: u64) -> Option<Message> {
        self.pending.clear();
        self.recent.clear();
        match mem::replace(&mut self.state, State::between()) {
            State::NotHttp => {
                self.state = State::NotHttp;
                None
            }
            State::Body(mut msg, body) => {
                msg.complete = matches!(body, Body::UntilClose);
                Some(*msg)
            }
            State::Head {
                first_ts, last_ts, ..
            } if self.http == Some(true) => {
                let len = self.buf.len() as u64;
                self.cut_head(len, first_ts, last_ts)
            }
            State::Head { .. } | State::Resync => {
                self.clear_buf();
                None
            }
        }
    }

    /// For responses: whether the request the next response answers was
    /// HEAD (its response has no body). Call once per request, in order,
    /// before that response's head arrives; interim (1xx but 101) responses
    /// do not use an entry. At most [`PENDING_MAX`] wait (the oldest are
    /// dropped). No effect on a request stream's parsing.
    pub fn expect_head_request(&mut self, is_head: bool) {
        if self.http == Some(false) {
            return;
        }
        if self.pending.len() >= PENDING_MAX {
            self.pending.pop_front();
        }
        self.pending.push_back(is_head);
    }

    /// Whether the stream is HTTP: `None` until its first start line
    /// decided; `Some(false)` when its first bytes did not look like HTTP
    /// (everything is ignored from then on).
    pub fn is_http(&self) -> Option<bool> {
        self.http
    }

    /// At the start of a call: resynchronising, or chunk boundaries lost.
    /// Returns whether the call's bytes are to be walked.
    fn call_start(&mut self, v: &View, out: &mut Vec<Message>) -> bool {
        match self.state {
            State::Resync => {
                if self.plausible(v) {
                    self.state = State::between();
                }
                !matches!(self.state, State::Resync)
            }
            State::Body(_, Body::Lost) => {
                if self.plausible(v) {
                    self.finish(out, false);
                    return true;
                }
                self.lose(v.len, v, out);
                false
            }
            _ => true,
        }
    }

    /// Whether the call begins with a head. For requests the method must
    /// be a standard one: a call beginning inside a request line (`ET /
    /// HTTP/1.1`) does not count.
    fn plausible(&self, v: &View) -> bool {
        if self.kind == Kind::Request && !head::standard_method(v.head) {
            return false;
        }
        match head::check_start(self.kind, v.head) {
            Check::Valid => true,
            Check::Partial => v.head.len() >= RESYNC_MIN && (v.head.len() as u64) < v.len,
            Check::Invalid => false,
        }
    }

    /// Takes the call's bytes, piece by piece, until the state says the
    /// rest is skipped.
    fn walk(&mut self, v: &View, out: &mut Vec<Message>) {
        let mut pos = 0u64;
        for mut piece in v.pieces() {
            while piece.len() > 0 {
                match self.step(piece, pos, v, out) {
                    Some(n) if n > 0 => {
                        piece = piece.advance(n);
                        pos += n;
                    }
                    _ => return,
                }
            }
        }
    }

    /// Takes bytes from `piece` (at `pos` in the call): how many, or `None`
    /// when the rest of the call is done with.
    fn step(&mut self, piece: Piece, pos: u64, v: &View, out: &mut Vec<Message>) -> Option<u64> {
        match (&self.state, piece) {
            (State::Head { .. }, Piece::Known(b)) => self.head_bytes(b, pos, v, out),
            (State::Head { .. }, Piece::Gap(_)) => {
                self.head_lost(v.len.saturating_sub(pos), v, out);
                None
            }
            (State::Body(..), _) => self.body(piece, pos, v, out),
            (State::Resync | State::NotHttp, _) => None,
        }
    }

    /// Captured bytes at or inside a head.
    fn head_bytes(&mut self, b: &[u8], pos: u64, v: &View, out: &mut Vec<Message>) -> Option<u64> {
        if self.buf.is_empty() {
            let blank = b.iter().take_while(|&&c| c == b'\r' || c == b'\n').count();
            if blank > 0 {
                return Some(blank as u64);
            }
            self.state = State::Head {
                first_ts: v.ts,
                last_ts: v.ts,
                line_ok: false,
            };
        } else if let State::Head { last_ts, .. } = &mut self.state {
            *last_ts = v.ts;
        }
        let old = self.buf.len();
        let take = b.len().min(HEAD_MAX.saturating_sub(old));
        self.buf.extend_from_slice(b.get(..take).unwrap_or(&[]));
        if !self.check_line() {
            return None;
        }
        if let Some(end) = head::find_end(&self.buf, old.saturating_sub(2)) {
            self.buf.truncate(end);
            self.head_done(v, out);
            return Some((end - old) as u64);
        }
        if self.buf.len() >= HEAD_MAX {
            self.head_lost(v.len.saturating_sub(pos + take as u64), v, out);
            return None;
        }
        Some(take as u64)
    }

    /// Checks the start line gathered so far; false when it is not one (the
    /// stream is then not HTTP, or resynchronises).
    fn check_line(&mut self) -> bool {
        let State::Head { line_ok, .. } = &mut self.state else {
            return false;
        };
        if *line_ok {
            return true;
        }
        match head::check_start(self.kind, &self.buf) {
            Check::Valid => {
                *line_ok = true;
                self.http = Some(true);
                true
            }
            Check::Partial => true,
            Check::Invalid => {
                self.reject();
                false
            }
        }
    }

    /// Bytes that are not HTTP where a head was due: the stream is not HTTP
    /// if nothing was yet, otherwise it resynchronises.
    fn reject(&mut self) {
        self.clear_buf();
        if self.http == Some(true) {
            self.state = State::Resync;
        } else {
            self.http = Some(false);
            self.state = State::NotHttp;
            self.pending.clear();
        }
    }

    /// Empties `buf`, giving back what a long head took.
    fn clear_buf(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > 4096 {
            self.buf.shrink_to(2048);
        }
    }

    /// The head in `buf` ended: report it or start its body.
    fn head_done(&mut self, v: &View, out: &mut Vec<Message>) {
        let State::Head { first_ts, .. } = self.state else {
            return;
        };
        let head_len = self.buf.len() as u64;
        let parsed = head::parse(self.kind, &self.buf, true);
        self.clear_buf();
        let Some(parsed) = parsed else {
            self.reject();
            return;
        };
        let head_request = self.head_request(&parsed);
        let framing = parsed.framing(head_request);
        let mut msg = message(parsed, head_len, first_ts, v.ts);
        msg.framing = framing.unwrap_or(Framing::None);
        self.state = match framing {
            None => {
                out.push(msg);
                State::Resync
            }
            Some(Framing::None | Framing::Length(0)) => {
                msg.complete = true;
                out.push(msg);
                State::between()
            }
            Some(Framing::Length(n)) => State::Body(Box::new(msg), Body::Length(n)),
            Some(Framing::Chunked) => State::Body(Box::new(msg), Body::Chunked(Chunk::start())),
            Some(Framing::UntilClose) => State::Body(Box::new(msg), Body::UntilClose),
        };
    }

    /// The rest of the head is unknown (uncaptured, or past [`HEAD_MAX`]);
    /// `rest`: the call's bytes after those in `buf`. Reports the head as
    /// far as seen, then resynchronises. On a stream not yet known to be
    /// HTTP, fewer than [`RESYNC_MIN`] bytes of a start line not seen whole
    /// are not enough: the stream is then not HTTP.
    fn head_lost(&mut self, rest: u64, v: &View, out: &mut Vec<Message>) {
        let State::Head { first_ts, .. } = self.state else {
            return;
        };
        if self.buf.is_empty() {
            // The next head starts in uncaptured bytes.
            self.state = State::Resync;
            return;
        }
        let undecided = self.http != Some(true);
        let head_len = (self.buf.len() as u64).saturating_add(rest);
        let msg = if undecided && self.buf.len() < RESYNC_MIN {
            None
        } else {
            self.cut_head(head_len, first_ts, v.ts)
        };
        match msg {
            Some(msg) => {
                out.push(msg);
                self.state = State::Resync;
            }
            None => self.reject(),
        }
    }

    /// The message for the head in `buf`, whose end was not seen; empties
    /// `buf`.
    fn cut_head(&mut self, head_len: u64, first_ts: u64, last_ts: u64) -> Option<Message> {
        let parsed = head::parse(self.kind, &self.buf, false);
        self.clear_buf();
        let parsed = parsed?;
        self.http = Some(true);
        let head_request = self.head_request(&parsed);
        let framing = parsed.framing(head_request).unwrap_or(Framing::None);
        let mut msg = message(parsed, head_len, first_ts, last_ts);
        msg.framing = framing;
        msg.head_partial = true;
        Some(msg)
    }

    /// For a final response: whether its request was HEAD (from the queue).
    fn head_request(&mut self, parsed: &Parsed) -> bool {
        match parsed.status() {
            Some(s) if s >= 200 || s == 101 => self.pending.pop_front().unwrap_or(false),
            _ => false,
        }
    }

    /// Body bytes from `piece`, at `pos` in the call.
    fn body(&mut self, piece: Piece, pos: u64, v: &View, out: &mut Vec<Message>) -> Option<u64> {
        let State::Body(msg, body) = &mut self.state else {
            return None;
        };
        msg.last_ts = v.ts;
        let outcome = match body {
            Body::Length(left) => {
                let n = piece.len().min(*left);
                *left -= n;
                if *left == 0 {
                    Outcome::Done(n)
                } else {
                    Outcome::Go(n)
                }
            }
            Body::Chunked(c) => chunk_step(c, piece),
            Body::Lost => Outcome::Lost,
            Body::UntilClose => {
                msg.body_len = msg.body_len.saturating_add(v.len.saturating_sub(pos));
                Outcome::Rest
            }
        };
        match outcome {
            Outcome::Go(n) => {
                msg.body_len = msg.body_len.saturating_add(n);
                Some(n)
            }
            Outcome::Done(n) => {
                msg.body_len = msg.body_len.saturating_add(n);
                self.finish(out, true);
                Some(n)
            }
            Outcome::Rest => None,
            Outcome::Lost => {
                self.lose(v.len.saturating_sub(pos), v, out);
                None
            }
        }
    }

    /// Chunk boundaries are lost for the last `rest` bytes of the call: they
    /// are counted, and the body ends if the call ends with the last chunk.
    fn lose(&mut self, rest: u64, v: &View, out: &mut Vec<Message>) {
        let ends = chunked::ends_body(&self.recent);
        if let State::Body(msg, body) = &mut self.state {
            msg.body_len = msg.body_len.saturating_add(rest);
            msg.last_ts = v.ts;
            *body = Body::Lost;
        }
        if ends {
            self.finish(out, true);
        }
    }

    /// The body in progress ended.
    fn finish(&mut self, out: &mut Vec<Message>, complete: bool) {
        if let State::Body(mut msg, _) = mem::replace(&mut self.state, State::between()) {
            msg.complete = complete;
            out.push(*msg);
        }
    }
}

/// A chunked body's bytes from `piece`.
fn chunk_step(c: &mut Chunk, piece: Piece) -> Outcome {
    match piece {
        Piece::Known(b) => match c.feed(b) {
            chunked::Step::More => Outcome::Go(b.len() as u64),
            chunked::Step::End(n) => Outcome::Done(n as u64),
            chunked::Step::Bad => Outcome::Lost,
        },
        Piece::Gap(g) => match c.skip(g) {
            0 => Outcome::Lost,
            n => Outcome::Go(n),
        },
    }
}

/// A message for a parsed head, before its body.
fn message(parsed: Parsed, head_len: u64, first_ts: u64, last_ts: u64) -> Message {
    let conn_close = parsed.conn_close();
    Message {
        head: parsed.head,
        head_len,
        body_len: 0,
        first_ts,
        last_ts,
        complete: false,
        framing: Framing::None,
        head_partial: false,
        conn_close,
    }
}
