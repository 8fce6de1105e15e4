//! Start lines and header blocks: the quick check that says whether bytes
//! can begin an HTTP/1.x message, the parser that turns a header block (whole
//! or cut short) into a [`Head`], and the body framing it implies.
//!
//! Line ends are CRLF; a bare LF is accepted too (RFC 9112 §2.2 allows it).

use super::{
    Framing, Head, Kind, RequestHead, ResponseHead, HOST_MAX, METHOD_MAX, PATH_MAX, REASON_MAX,
};

/// What the bytes seen so far say about a start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// A whole, well-formed start line (it ends with a line end).
    Valid,
    /// Everything so far fits a start line, which has not ended yet.
    Partial,
    /// Not an HTTP/1.x start line.
    Invalid,
}

type Scan = Result<usize, Check>;

/// Checks the start line at the beginning of `b` (a request line or a
/// status line, by `kind`).
pub(super) fn check_start(kind: Kind, b: &[u8]) -> Check {
    let line = match kind {
        Kind::Request => request_line(b),
        Kind::Response => status_line(b),
    };
    match line {
        Ok(_) => Check::Valid,
        Err(c) => c,
    }
}

/// `b` from `i` on (empty past the end).
fn from(b: &[u8], i: usize) -> &[u8] {
    b.get(i..).unwrap_or(&[])
}

/// The methods of RFC 9110 and RFC 5789: no one is the end of another.
const STANDARD_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"PATCH ",
];

/// `b` begins with a standard method and its space.
pub(super) fn standard_method(b: &[u8]) -> bool {
    STANDARD_METHODS.iter().any(|m| b.starts_with(m))
}

/// `METHOD SP target SP HTTP/1.x EOL`: the line's length.
fn request_line(b: &[u8]) -> Scan {
    match b.first() {
        Some(c) if !c.is_ascii_uppercase() => return Err(Check::Invalid),
        None => return Err(Check::Partial),
        _ => {}
    }
    let mut i = run_then(b, is_method_byte, METHOD_MAX)? + 1;
    i += run_then(from(b, i), is_target_byte, usize::MAX)? + 1;
    i += version(from(b, i))?;
    i += eol(from(b, i))?;
    Ok(i)
}

/// `HTTP/1.x SP 3DIGIT [SP reason] EOL`: the line's length.
fn status_line(b: &[u8]) -> Scan {
    let mut i = version(b)?;
    i += literal(from(b, i), b" ")?;
    i += status_digits(from(b, i))?;
    match from(b, i).first() {
        None => return Err(Check::Partial),
        Some(b' ') => i += 1 + reason_len(from(b, i + 1))?,
        Some(_) => {}
    }
    i += eol(from(b, i))?;
    Ok(i)
}

/// The length of a run of `ok` bytes (1 to `max` of them) followed by a
/// space; the space is not counted.
fn run_then(b: &[u8], ok: fn(u8) -> bool, max: usize) -> Scan {
    for (i, &c) in b.iter().enumerate() {
        if c == b' ' && i > 0 {
            return Ok(i);
        }
        if !ok(c) || i >= max {
            return Err(Check::Invalid);
        }
    }
    Err(Check::Partial)
}

/// `b` starts with `want` (as far as `b` goes).
fn literal(b: &[u8], want: &[u8]) -> Scan {
    let n = b.len().min(want.len());
    if b.get(..n) != want.get(..n) {
        Err(Check::Invalid)
    } else if n < want.len() {
        Err(Check::Partial)
    } else {
        Ok(n)
    }
}

/// `HTTP/1.0` or `HTTP/1.1`.
fn version(b: &[u8]) -> Scan {
    let n = literal(b, b"HTTP/1.")?;
    match b.get(n) {
        None => Err(Check::Partial),
        Some(b'0' | b'1') => Ok(n + 1),
        Some(_) => Err(Check::Invalid),
    }
}

fn status_digits(b: &[u8]) -> Scan {
    for i in 0..3 {
        match b.get(i) {
            None => return Err(Check::Partial),
            Some(b'1'..=b'9') => {}
            Some(b'0') if i > 0 => {}
            Some(_) => return Err(Check::Invalid),
        }
    }
    Ok(3)
}

/// The reason phrase's length (up to the line end, not included).
fn reason_len(b: &[u8]) -> Scan {
    for (i, &c) in b.iter().enumerate() {
        if c == b'\r' || c == b'\n' {
            return Ok(i);
        }
        if !is_reason_byte(c) {
            return Err(Check::Invalid);
        }
    }
    Err(Check::Partial)
}

/// CRLF or LF.
fn eol(b: &[u8]) -> Scan {
    match (b.first(), b.get(1)) {
        (Some(b'\n'), _) => Ok(1),
        (Some(b'\r'), Some(b'\n')) => Ok(2),
        (None, _) | (Some(b'\r'), None) => Err(Check::Partial),
        _ => Err(Check::Invalid),
    }
}

/// Method bytes: uppercase letters, `-` and `_` (the first is a letter,
/// checked apart).
fn is_method_byte(c: u8) -> bool {
    c.is_ascii_uppercase() || c == b'-' || c == b'_'
}

/// Request-target bytes: visible ASCII, and bytes >= 0x80 (some clients
/// send raw UTF-8).
fn is_target_byte(c: u8) -> bool {
    (0x21..0x7f).contains(&c) || c >= 0x80
}

fn is_reason_byte(c: u8) -> bool {
    c == b'\t' || (0x20..0x7f).contains(&c) || c >= 0x80
}

/// Where the header block that `b` starts with ends (just past its empty
/// line), searching for the empty line from `from` on.
pub(super) fn find_end(b: &[u8], from: usize) -> Option<usize> {
    let start = from.min(b.len());
    memchr::memchr_iter(b'\n', b.get(start..)?).find_map(|k| {
        let i = start + k;
        match (b.get(i + 1), b.get(i + 2)) {
            (Some(b'\n'), _) => Some(i + 2),
            (Some(b'\r'), Some(b'\n')) => Some(i + 3),
            _ => None,
        }
    })
}

/// `b` cut at each `\n`, as `b.split(|&c| c == b'\n')` does (the piece
/// after a final `\n` is empty), with memchr's scan.
fn lines(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(b);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b'\n', r) {
            Some(i) => {
                rest = r.get(i + 1..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// The framing headers, as read.
#[derive(Debug, Default)]
pub(super) struct Fields {
    /// `Content-Length`: `None` when absent.
    length: Option<Length>,
    /// Some `Transfer-Encoding` was there.
    te: bool,
    /// Its last coding is `chunked`.
    chunked: bool,
    /// `Connection: close`.
    close: bool,
    /// `Connection: keep-alive`.
    keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Valid(u64),
    Invalid,
}

/// A parsed head: the reported part, and what framing needs.
#[derive(Debug)]
pub(super) struct Parsed {
    pub head: Head,
    pub fields: Fields,
}

impl Parsed {
    /// The version the head gave (1 when it was not seen).
    fn version(&self) -> u8 {
        match &self.head {
            Head::Request(r) => r.version,
            Head::Response(r) => r.version,
        }
    }

    /// The status of a response, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match &self.head {
            Head::Request(_) => None,
            Head::Response(r) => Some(r.status),
        }
    }

    /// The connection closes after this message: `Connection: close`, or
    /// HTTP/1.0 without `Connection: keep-alive`.
    pub fn conn_close(&self) -> bool {
        self.fields.close || (self.version() == 0 && !self.fields.keep_alive)
    }

    /// The body framing (RFC 9112 §6.3); `None` when the framing headers are
    /// invalid (a `Content-Length` that is not one number, a request whose
    /// `Transfer-Encoding` does not end with `chunked`). `head_request`: this
    /// response answers a HEAD request.
    pub fn framing(&self, head_request: bool) -> Option<Framing> {
        let f = &self.fields;
        let status = self.status();
        if let Some(s) = status {
            if head_request || (100..200).contains(&s) || s == 204 || s == 304 {
                return Some(Framing::None);
            }
        }
        match (f.chunked, f.te, f.length, status) {
            (true, _, _, _) => Some(Framing::Chunked),
            (false, true, _, Some(_)) => Some(Framing::UntilClose),
            (false, true, _, None) | (_, _, Some(Length::Invalid), _) => None,
            (false, false, Some(Length::Valid(n)), _) => Some(Framing::Length(n)),
            (false, false, None, Some(_)) => Some(Framing::UntilClose),
            (false, false, None, None) => Some(Framing::None),
        }
    }
}

/// Parses a head. `whole`: `b` is the whole header block, up to its empty
/// line; otherwise `b` is what is known of it (cut by the capture or the
/// bound): a start line cut short is taken as far as it goes, and header
/// lines not ended are ignored. `None` when not even the start line's
/// beginning is there (a method and its space; `HTTP/1.x NNN`).
pub(super) fn parse(kind: Kind, b: &[u8], whole: bool) -> Option<Parsed> {
    let mut lines = lines(b);
    let first = lines.next()?;
    // Without a line end after it, the last piece is a line cut short.
    let ended = |line: &[u8]| whole || line.as_ptr_range().end < b.as_ptr_range().end;
    let start_ended = ended(first);
    let start = strip_cr(first);
    let mut fields = Fields::default();
    let mut host = None;
    for line in lines {
        if !ended(line) {
            break;
        }
        let line = strip_cr(line);
        if line.is_empty() {
            break;
        }
        header(line, &mut fields, &mut host);
    }
    let head = match kind {
        Kind::Request => Head::Request(request_head(start, start_ended, host)?),
        Kind::Response => Head::Response(response_head(start)?),
    };
    Some(Parsed { head, fields })
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The request line; `ended`: it was seen to its end (otherwise the target
/// may be cut, and the version, when not seen, is taken as 1).
fn request_head(line: &[u8], ended: bool, host: Option<String>) -> Option<RequestHead> {
    let sp = line.iter().position(|&c| c == b' ')?;
    let method = line.get(..sp)?;
    let first_ok = method.first().is_some_and(u8::is_ascii_uppercase);
    if !first_ok || method.len() > METHOD_MAX || !method.iter().all(|&c| is_method_byte(c)) {
        return None;
    }
    let rest = from(line, sp + 1);
    let (target, version, cut) = match rest.iter().position(|&c| c == b' ') {
        Some(sp2) => (rest.get(..sp2)?, from(rest, sp2 + 1), false),
        None if ended => return None,
        None => (rest, &[][..], true),
    };
    let version = match version_digit(version) {
        Some(v) => v,
        None if ended => return None,
        None => 1,
    };
    let (path, path_cut) = bounded(target, PATH_MAX);
    Some(RequestHead {
        method: String::from_utf8_lossy(method).into_owned(),
        path,
        path_truncated: cut || path_cut,
        version,
        host,
    })
}

/// The status line; a reason cut short (line not ended) is kept as far as
/// it goes.
fn response_head(line: &[u8]) -> Option<ResponseHead> {
    let version = version_digit(line.get(..8)?)?;
    if line.get(8) != Some(&b' ') {
        return None;
    }
    let digits = line.get(9..12)?;
    if status_digits(digits) != Ok(3) {
        return None;
    }
    let status = digits
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    let reason = match line.get(12) {
        None => &[][..],
        Some(b' ') => from(line, 13),
        Some(_) => return None,
    };
    Some(ResponseHead {
        version,
        status,
        reason: bounded(reason, REASON_MAX).0,
    })
}

/// `HTTP/1.x` exactly: x.
fn version_digit(b: &[u8]) -> Option<u8> {
    match b {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d @ (b'0' | b'1')] => Some(d - b'0'),
        _ => None,
    }
}

/// One header line: the fields framing needs, and Host.
fn header(line: &[u8], f: &mut Fields, host: &mut Option<String>) {
    let Some(colon) = memchr::memchr(b':', line) else {
        return; // not a field (or an obsolete folded line): ignored
    };
    let (name, value) = (
        line.get(..colon).unwrap_or(&[]),
        trim(from(line, colon + 1)),
    );
    if name.eq_ignore_ascii_case(b"host") {
        if host.is_none() {
            *host = Some(bounded(value, HOST_MAX).0);
        }
    } else if name.eq_ignore_ascii_case(b"content-length") {
        f.length = Some(content_length(value, f.length));
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        transfer_encoding(value, f);
    } else if name.eq_ignore_ascii_case(b"connection") {
        for token in value.split(|&c| c == b',').map(trim) {
            f.close |= token.eq_ignore_ascii_case(b"close");
            f.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
}

/// A `Content-Length` value merged with what earlier ones said: a list of
/// equal numbers is one number (RFC 9110 §8.6); anything else is invalid.
fn content_length(value: &[u8], before: Option<Length>) -> Length {
    let mut n = before;
    for part in value.split(|&c| c == b',').map(trim) {
        let v = match decimal(part) {
            Some(v) => Length::Valid(v),
            None => Length::Invalid,
        };
        n = match n {
            None => Some(v),
            Some(old) if old == v => Some(v),
            Some(_) => Some(Length::Invalid),
        };
    }
    n.unwrap_or(Length::Invalid)
}

fn decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u64, |n, &c| {
        let d = c.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// `Transfer-Encoding`: chunked when the last coding of all such fields is.
fn transfer_encoding(value: &[u8], f: &mut Fields) {
    for coding in value.split(|&c| c == b',').map(trim) {
        if !coding.is_empty() {
            f.te = true;
            f.chunked = coding.eq_ignore_ascii_case(b"chunked");
        }
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let ws = |c: &u8| *c == b' ' || *c == b'\t';
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or(&[])
}

/// `b` as text (invalid UTF-8 replaced), at most `max` bytes long, cut at a
/// character boundary; true when something was cut.
pub(super) fn bounded(b: &[u8], max: usize) -> (String, bool) {
    let mut cut = b.len() > max;
    let mut s = String::from_utf8_lossy(b.get(..max).unwrap_or(b)).into_owned();
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        cut = true;
    }
    (s, cut)
}
