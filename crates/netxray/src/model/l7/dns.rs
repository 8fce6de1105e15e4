//! DNS messages (RFC 1035) as a process sent or received them.
//!
//! The kernel copies a bounded prefix of each message (a UDP datagram's
//! payload, or what one TCP system call carried) and says how long the
//! message really was. [`parse`] decodes the header, the question section
//! and the answer section from that prefix; the authority and additional
//! sections are not decoded (their records are counted in the header only).
//!
//! Running out of bytes means two different things. When the capture was
//! cut (`bytes.len() < full_len`), [`parse`] keeps what it read before the
//! cut and sets [`Message::cut`]; when the whole message is there, it is
//! malformed and [`parse`] returns a [`DnsError`]. A read that would run
//! past `full_len` itself is malformed either way.
//!
//! The parser never panics and never trusts a count for an allocation:
//! at most [`MAX_RECORDS`] questions and answers are kept, a name follows at
//! most [`MAX_JUMPS`] compression pointers and spans at most
//! [`MAX_NAME_LEN`] bytes on the wire. Names come out as text safe to
//! print: bytes outside printable ASCII are written `\DDD` (decimal) and
//! the characters that mean something in zone files (`.` `\` `"` `(` `)`
//! `;`) are written with a backslash, as `dig` does.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Bytes in the fixed DNS header.
pub const HEADER_LEN: usize = 12;
/// At most this many questions, and this many answers, are kept from one
/// message: further questions are skipped, further answers not read.
pub const MAX_RECORDS: usize = 64;
/// The longest name on the wire, length bytes and the final zero included
/// (RFC 1035 section 3.1).
pub const MAX_NAME_LEN: usize = 255;
/// The longest label (RFC 1035 section 3.1).
pub const MAX_LABEL_LEN: usize = 63;
/// Compression pointers followed in one name before it counts as a loop.
pub const MAX_JUMPS: usize = 128;

/// The smallest question: the root name (1 byte), type and class.
const MIN_QUESTION: usize = 5;
/// The smallest resource record: the root name, type, class, TTL, length.
const MIN_RECORD: usize = 11;
/// The fixed part of a resource record after its name.
const RECORD_FIXED: usize = 10;

const TYPE_A: u16 = 1;
const TYPE_NS: u16 = 2;
const TYPE_CNAME: u16 = 5;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// The class's top bit is mDNS's cache-flush (answers) or unicast-response
/// (questions) flag, not part of the class.
const CLASS_MASK: u16 = 0x7fff;

/// A decoded DNS message: header, questions and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The transaction id, matching a response to its query.
    pub id: u16,
    /// QR: a response (true) or a query (false).
    pub response: bool,
    /// The 4-bit opcode (0 is a standard query).
    pub opcode: u8,
    /// AA: the answer comes from an authoritative server.
    pub authoritative: bool,
    /// TC: the sender truncated the message (retry over TCP). Not to be
    /// confused with [`Message::cut`].
    pub truncated: bool,
    /// RD: the query asks for recursion.
    pub recursion_desired: bool,
    /// RA: the server offers recursion.
    pub recursion_available: bool,
    /// The 4-bit header response code (see [`rcode_name`]); the extended
    /// bits of an EDNS OPT record are not included.
    pub rcode: u8,
    /// QDCOUNT: questions the header claims.
    pub question_count: u16,
    /// ANCOUNT: answers the header claims.
    pub answer_count: u16,
    /// NSCOUNT: authority records the header claims (not decoded).
    pub authority_count: u16,
    /// ARCOUNT: additional records the header claims (not decoded).
    pub additional_count: u16,
    /// The questions decoded, at most [`MAX_RECORDS`].
    pub questions: Vec<Question>,
    /// The answers decoded, at most [`MAX_RECORDS`].
    pub answers: Vec<Answer>,
    /// Answers past the captured bytes were not read (`bytes.len() <
    /// full_len` and the questions or answers ran into the cut).
    pub cut: bool,
}

/// One entry of the question section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name asked about, without a trailing dot; the root is `.`.
    pub name: String,
    /// The type asked for (see [`type_name`]).
    pub qtype: u16,
    /// The class, 1 for IN; mDNS's unicast-response bit is kept.
    pub qclass: u16,
}

/// One resource record of the answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The owner name, without a trailing dot; the root is `.`.
    pub name: String,
    /// The record type (see [`type_name`]).
    pub rtype: u16,
    /// The class, 1 for IN; mDNS's cache-flush bit is kept.
    pub class: u16,
    /// Seconds the record may be cached.
    pub ttl: u32,
    /// The record's data, decoded for the common types.
    pub data: Rdata,
}

/// A resource record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rdata {
    /// An IPv4 address (type A, class IN).
    A(Ipv4Addr),
    /// An IPv6 address (type AAAA, class IN).
    Aaaa(Ipv6Addr),
    /// The canonical name the owner is an alias of.
    Cname(String),
    /// The name a reverse-lookup name points to.
    Ptr(String),
    /// A name server for the owner's zone.
    Ns(String),
    /// Any other type (or A/AAAA outside class IN): only its length. The
    /// data itself may lie past the captured bytes.
    Other {
        /// RDLENGTH: bytes of data.
        len: u16,
    },
}

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum DnsError {
    /// Fewer captured bytes than the fixed header.
    #[error("{len} bytes, shorter than the {HEADER_LEN}-byte DNS header")]
    Short {
        /// Bytes captured.
        len: usize,
    },
    /// The header claims more records than the message could hold.
    #[error(
        "the header claims {questions} questions and {records} records, \
         more than a {len}-byte message can hold"
    )]
    TooManyRecords {
        /// QDCOUNT.
        questions: u16,
        /// ANCOUNT + NSCOUNT + ARCOUNT.
        records: u32,
        /// The message's length.
        len: usize,
    },
    /// A read runs past the end of the message.
    #[error("{what} at offset {offset} runs past the end of the {len}-byte message")]
    PastEnd {
        /// What was being read: a name, a question, a record or record data.
        what: &'static str,
        /// Where the read started.
        offset: usize,
        /// The message's length.
        len: usize,
    },
    /// A label length byte of 64..=127: longer than a label may be.
    #[error("label at offset {offset} claims {len} bytes, more than {MAX_LABEL_LEN}")]
    LabelTooLong {
        /// Where the length byte is.
        offset: usize,
        /// The length it claims.
        len: u8,
    },
    /// A label length byte with the top bits 10, a label type nobody uses.
    #[error("unknown label type 0x{byte:02x} at offset {offset}")]
    BadLabelType {
        /// Where the byte is.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// A name longer than [`MAX_NAME_LEN`] bytes on the wire (labels that
    /// a compression pointer repeats end here too).
    #[error("name at offset {offset} is longer than {MAX_NAME_LEN} bytes")]
    NameTooLong {
        /// Where the name starts.
        offset: usize,
    },
    /// A name that follows more than [`MAX_JUMPS`] compression pointers.
    #[error("name at offset {offset} loops: more than {MAX_JUMPS} compression pointers")]
    PointerLoop {
        /// Where the name starts.
        offset: usize,
    },
    /// Record data whose length does not fit its type.
    #[error(
        "{} record data at offset {offset} is {len} bytes, but its content takes {used}",
        type_name(*rtype)
    )]
    BadRdata {
        /// The record type.
        rtype: u16,
        /// Where the data starts.
        offset: usize,
        /// RDLENGTH.
        len: u16,
        /// What the data's content takes: 4 for A, 16 for AAAA, the name's
        /// bytes for CNAME, PTR and NS.
        used: usize,
    },
}

/// Decodes a DNS message from the `bytes` captured of it; `full_len` is
/// the message's real length (taken as `bytes.len()` when smaller).
///
/// # Errors
///
/// [`DnsError::Short`] without a whole header; any other [`DnsError`] when
/// the message is malformed. Running into the end of a cut capture is not
/// an error: the result has [`Message::cut`] set.
pub fn parse(bytes: &[u8], full_len: usize) -> Result<Message, DnsError> {
    let header = bytes
        .first_chunk::<HEADER_LEN>()
        .ok_or(DnsError::Short { len: bytes.len() })?;
    let full = full_len.max(bytes.len());
    let mut msg = decode_header(header);
    check_counts(&msg, full)?;
    let reader = Reader { buf: bytes, full };
    match read_sections(&reader, &mut msg) {
        Ok(()) => Ok(msg),
        Err(Stop::Cut) => {
            msg.cut = true;
            Ok(msg)
        }
        Err(Stop::Bad(e)) => Err(e),
    }
}

/// DNS over TCP: each message is preceded by a 2-byte big-endian length.
/// Returns (the declared length, the message bytes that follow in `bytes`,
/// at most the declared length of them), or `None` when `bytes` has fewer
/// than 2 bytes. Feed the result to [`parse`] as `(message, declared)`.
pub fn split_tcp(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    Some((len, rest.get(..len).unwrap_or(rest)))
}

/// The mnemonic of a record type; unknown types as `TYPE{n}` (RFC 3597).
pub fn type_name(t: u16) -> Cow<'static, str> {
    let name = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        41 => "OPT",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        _ => return Cow::Owned(format!("TYPE{t}")),
    };
    Cow::Borrowed(name)
}

/// The mnemonic of a response code; unknown codes as `RCODE{n}`.
pub fn rcode_name(r: u8) -> Cow<'static, str> {
    let name = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return Cow::Owned(format!("RCODE{r}")),
    };
    Cow::Borrowed(name)
}

/// The header's fields, with no sections yet.
fn decode_header(h: &[u8; HEADER_LEN]) -> Message {
    let [id0, id1, f0, f1, qd0, qd1, an0, an1, ns0, ns1, ar0, ar1] = *h;
    let flags = u16::from_be_bytes([f0, f1]);
    let bit = |n: u16| flags & (1 << n) != 0;
    Message {
        id: u16::from_be_bytes([id0, id1]),
        response: bit(15),
        opcode: (f0 >> 3) & 0x0f,
        authoritative: bit(10),
        truncated: bit(9),
        recursion_desired: bit(8),
        recursion_available: bit(7),
        rcode: f1 & 0x0f,
        question_count: u16::from_be_bytes([qd0, qd1]),
        answer_count: u16::from_be_bytes([an0, an1]),
        authority_count: u16::from_be_bytes([ns0, ns1]),
        additional_count: u16::from_be_bytes([ar0, ar1]),
        questions: Vec::new(),
        answers: Vec::new(),
        cut: false,
    }
}

/// The counts in the header must fit the message: every question takes at
/// least 5 bytes and every record at least 11.
fn check_counts(msg: &Message, full: usize) -> Result<(), DnsError> {
    let records = u32::from(msg.answer_count)
        + u32::from(msg.authority_count)
        + u32::from(msg.additional_count);
    let need = usize::from(msg.question_count) * MIN_QUESTION
        + (usize::from(msg.answer_count)
            + usize::from(msg.authority_count)
            + usize::from(msg.additional_count))
            * MIN_RECORD;
    if need > full.saturating_sub(HEADER_LEN) {
        return Err(DnsError::TooManyRecords {
            questions: msg.question_count,
            records,
            len: full,
        });
    }
    Ok(())
}

/// The question section, then the answer section.
fn read_sections(reader: &Reader<'_>, msg: &mut Message) -> Result<(), Stop> {
    let mut pos = HEADER_LEN;
    for _ in 0..msg.question_count {
        let (question, next) = reader.question(pos)?;
        if msg.questions.len() < MAX_RECORDS {
            msg.questions.push(question);
        }
        pos = next;
    }
    for _ in 0..usize::from(msg.answer_count).min(MAX_RECORDS) {
        let (answer, next) = reader.record(pos)?;
        msg.answers.push(answer);
        pos = next;
    }
    Ok(())
}

/// Why reading stopped early.
enum Stop {
    /// The capture ends before the message does.
    Cut,
    /// The message is malformed.
    Bad(DnsError),
}

impl From<DnsError> for Stop {
    fn from(e: DnsError) -> Self {
        Stop::Bad(e)
    }
}

/// Bounds-checked reads from a captured prefix of a message of `full`
/// bytes.
struct Reader<'a> {
    buf: &'a [u8],
    full: usize,
}

impl<'a> Reader<'a> {
    /// The end of the `n` bytes at `at`, when they lie inside the message.
    fn within(&self, at: usize, n: usize, what: &'static str) -> Result<usize, DnsError> {
        match at.checked_add(n) {
            Some(end) if end <= self.full => Ok(end),
            _ => Err(DnsError::PastEnd {
                what,
                offset: at,
                len: self.full,
            }),
        }
    }

    /// The `n` bytes at `at`: past the message is malformed, past the
    /// capture is a cut.
    fn take(&self, at: usize, n: usize, what: &'static str) -> Result<&'a [u8], Stop> {
        let end = self.within(at, n, what)?;
        self.buf.get(at..end).ok_or(Stop::Cut)
    }

    /// `N` bytes at `at`, as an array.
    fn array<const N: usize>(&self, at: usize, what: &'static str) -> Result<[u8; N], Stop> {
        let bytes = self.take(at, N, what)?;
        bytes.first_chunk::<N>().copied().ok_or(Stop::Cut)
    }

    /// The name at `start` as text, and where it ends in place (after its
    /// final zero or its first compression pointer).
    fn name(&self, start: usize) -> Result<(String, usize), Stop> {
        let mut text = NameText::default();
        let mut pos = start;
        let mut end = None;
        let mut jumps = 0;
        loop {
            let [byte] = self.array::<1>(pos, "name")?;
            match byte {
                0 => return Ok((text.finish(), end.unwrap_or(pos + 1))),
                1..=0x3f => {
                    let len = usize::from(byte);
                    text.grow(start, len)?;
                    text.push(self.take(pos + 1, len, "name")?);
                    pos += 1 + len;
                }
                0xc0..=0xff => {
                    let [hi, lo] = self.array::<2>(pos, "name")?;
                    end.get_or_insert(pos + 2);
                    jumps += 1;
                    if jumps > MAX_JUMPS {
                        return Err(DnsError::PointerLoop { offset: start }.into());
                    }
                    pos = usize::from(u16::from_be_bytes([hi & 0x3f, lo]));
                }
                0x40..=0x7f => {
                    return Err(DnsError::LabelTooLong {
                        offset: pos,
                        len: byte,
                    }
                    .into())
                }
                _ => return Err(DnsError::BadLabelType { offset: pos, byte }.into()),
            }
        }
    }

    /// The question at `at`, and where the next entry starts.
    fn question(&self, at: usize) -> Result<(Question, usize), Stop> {
        let (name, fixed) = self.name(at)?;
        let [t0, t1, c0, c1] = self.array::<4>(fixed, "question")?;
        let question = Question {
            name,
            qtype: u16::from_be_bytes([t0, t1]),
            qclass: u16::from_be_bytes([c0, c1]),
        };
        Ok((question, fixed + 4))
    }

    /// The resource record at `at`, and where the next one starts.
    fn record(&self, at: usize) -> Result<(Answer, usize), Stop> {
        let (name, fixed) = self.name(at)?;
        let [t0, t1, c0, c1, l0, l1, l2, l3, d0, d1] =
            self.array::<RECORD_FIXED>(fixed, "record")?;
        let rtype = u16::from_be_bytes([t0, t1]);
        let class = u16::from_be_bytes([c0, c1]);
        let rdlen = u16::from_be_bytes([d0, d1]);
        let data_at = fixed + RECORD_FIXED;
        let next = self.within(data_at, usize::from(rdlen), "record data")?;
        let answer = Answer {
            name,
            rtype,
            class,
            ttl: u32::from_be_bytes([l0, l1, l2, l3]),
            data: self.rdata(rtype, class, data_at, rdlen)?,
        };
        Ok((answer, next))
    }

    /// The data of a record of type `rtype`, `len` bytes at `at` (known to
    /// lie inside the message).
    fn rdata(&self, rtype: u16, class: u16, at: usize, len: u16) -> Result<Rdata, Stop> {
        let internet = class & CLASS_MASK == CLASS_IN;
        match rtype {
            TYPE_A if internet => Ok(Rdata::A(self.fixed::<4>(rtype, at, len)?.into())),
            TYPE_AAAA if internet => Ok(Rdata::Aaaa(self.fixed::<16>(rtype, at, len)?.into())),
            TYPE_CNAME => Ok(Rdata::Cname(self.data_name(rtype, at, len)?)),
            TYPE_PTR => Ok(Rdata::Ptr(self.data_name(rtype, at, len)?)),
            TYPE_NS => Ok(Rdata::Ns(self.data_name(rtype, at, len)?)),
            _ => Ok(Rdata::Other { len }),
        }
    }

    /// Record data of exactly `N` bytes.
    fn fixed<const N: usize>(&self, rtype: u16, at: usize, len: u16) -> Result<[u8; N], Stop> {
        if usize::from(len) != N {
            return Err(bad_rdata(rtype, at, len, N));
        }
        self.array::<N>(at, "record data")
    }

    /// Record data that is one name, taking all `len` bytes.
    fn data_name(&self, rtype: u16, at: usize, len: u16) -> Result<String, Stop> {
        let (name, end) = self.name(at)?;
        let used = end.saturating_sub(at);
        if used != usize::from(len) {
            return Err(bad_rdata(rtype, at, len, used));
        }
        Ok(name)
    }
}

fn bad_rdata(rtype: u16, offset: usize, len: u16, used: usize) -> Stop {
    Stop::Bad(DnsError::BadRdata {
        rtype,
        offset,
        len,
        used,
    })
}

/// A name being assembled: its text and its length on the wire.
struct NameText {
    text: String,
    /// Wire bytes so far, the final zero included.
    wire: usize,
}

impl Default for NameText {
    fn default() -> Self {
        NameText {
            text: String::new(),
            wire: 1,
        }
    }
}

impl NameText {
    /// Counts a label of `len` bytes against [`MAX_NAME_LEN`].
    fn grow(&mut self, start: usize, len: usize) -> Result<(), DnsError> {
        self.wire += 1 + len;
        if self.wire > MAX_NAME_LEN {
            return Err(DnsError::NameTooLong { offset: start });
        }
        Ok(())
    }

    /// Appends a label, escaped.
    fn push(&mut self, label: &[u8]) {
        if !self.text.is_empty() {
            self.text.push('.');
        }
        escape_label(&mut self.text, label);
    }

    fn finish(self) -> String {
        if self.text.is_empty() {
            ".".to_owned()
        } else {
            self.text
        }
    }
}

/// Writes a label as `dig` does: printable ASCII as is, the zone-file
/// specials after a backslash, every other byte as `\DDD`.
fn escape_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' | b'"' | b'(' | b')' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x21..=0x7e => out.push(char::from(b)),
            _ => {
                out.push('\\');
                for digit in [b / 100, b / 10 % 10, b % 10] {
                    out.push(char::from(b'0' + digit));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn complete(bytes: &[u8]) -> Result<Message, DnsError> {
        parse(bytes, bytes.len())
    }

    /// `dig example.com A`: RD and AD set, an EDNS OPT record (UDP size
    /// 1232) in the additional section.
    fn a_query() -> Vec<u8> {
        cat(&[
            b"\x12\x34\x01\x20\x00\x01\x00\x00\x00\x00\x00\x01",
            b"\x07example\x03com\x00\x00\x01\x00\x01",
            b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00",
        ])
    }

    /// www.example.com: a CNAME to cdn.example.com, then two A records for
    /// it; every name after the question is compressed.
    fn cname_response() -> Vec<u8> {
        cat(&[
            b"\xbe\xef\x81\x80\x00\x01\x00\x03\x00\x00\x00\x00",
            // 12: www.example.com A IN (example.com at 16)
            b"\x03www\x07example\x03com\x00\x00\x01\x00\x01",
            // 33: -> 12, CNAME IN 3600, 6 bytes: cdn + -> 16 (cdn at 45)
            b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x0e\x10\x00\x06\x03cdn\xc0\x10",
            // 51: -> 45, A IN 60, 93.184.216.34
            b"\xc0\x2d\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x5d\xb8\xd8\x22",
            // 67: -> 45, A IN 60, 93.184.216.35
            b"\xc0\x2d\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x5d\xb8\xd8\x23",
        ])
    }

    fn aaaa_response() -> Vec<u8> {
        cat(&[
            b"\x5a\x5a\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00",
            b"\x07example\x03com\x00\x00\x1c\x00\x01",
            b"\xc0\x0c\x00\x1c\x00\x01\x00\x00\x0e\x10\x00\x10",
            b"\x26\x06\x28\x00\x02\x20\x00\x01\x02\x48\x18\x93\x25\xc8\x19\x46",
        ])
    }

    /// NXDOMAIN for nonexistent.example.com, the zone's SOA in authority.
    fn nxdomain_response() -> Vec<u8> {
        cat(&[
            b"\x0b\xad\x81\x83\x00\x01\x00\x00\x00\x01\x00\x00",
            // 12: nonexistent.example.com A IN (example.com at 24)
            b"\x0bnonexistent\x07example\x03com\x00\x00\x01\x00\x01",
            // 41: -> 24, SOA IN 3600, 44 bytes
            b"\xc0\x18\x00\x06\x00\x01\x00\x00\x0e\x10\x00\x2c",
            // 53: ns.icann.org (icann.org at 56), noc.dns -> 56
            b"\x02ns\x05icann\x03org\x00\x03noc\x03dns\xc0\x38",
            // serial, refresh, retry, expire, minimum
            b"\x78\xa5\x2b\x3d\x00\x00\x1c\x20\x00\x00\x0e\x10\x00\x12\x75\x00\x00\x00\x0e\x10",
        ])
    }

    /// A UDP answer too big for the datagram: TC set, no answers.
    fn truncated_response() -> Vec<u8> {
        cat(&[
            b"\x77\x77\x83\x80\x00\x01\x00\x00\x00\x00\x00\x00",
            b"\x07example\x03com\x00\x00\x10\x00\x01",
        ])
    }

    /// A header with `qd` questions and `an` answers, then `body`.
    fn with_header(qd: u8, an: u8, body: &[u8]) -> Vec<u8> {
        cat(&[&[0, 1, 0x81, 0x80, 0, qd, 0, an, 0, 0, 0, 0], body])
    }

    fn question(name: &str, qtype: u16) -> Question {
        Question {
            name: name.to_owned(),
            qtype,
            qclass: 1,
        }
    }

    fn answer(name: &str, rtype: u16, ttl: u32, data: Rdata) -> Answer {
        Answer {
            name: name.to_owned(),
            rtype,
            class: 1,
            ttl,
            data,
        }
    }

    #[test]
    fn a_query_for_example_com() {
        let m = complete(&a_query()).unwrap();
        assert_eq!(m.id, 0x1234);
        assert!(!m.response && m.recursion_desired && !m.recursion_available);
        assert_eq!((m.opcode, m.rcode, m.cut), (0, 0, false));
        assert_eq!(m.questions, vec![question("example.com", 1)]);
        assert!(m.answers.is_empty());
        assert_eq!((m.question_count, m.additional_count), (1, 1));
    }

    #[test]
    fn cname_then_two_a_records_through_pointers() {
        let m = complete(&cname_response()).unwrap();
        assert!(m.response && m.recursion_desired && m.recursion_available);
        assert!(!m.authoritative && !m.truncated && !m.cut);
        assert_eq!(m.questions, vec![question("www.example.com", 1)]);
        let cdn = || "cdn.example.com".to_owned();
        assert_eq!(
            m.answers,
            vec![
                answer("www.example.com", 5, 3600, Rdata::Cname(cdn())),
                answer(&cdn(), 1, 60, Rdata::A(Ipv4Addr::new(93, 184, 216, 34))),
                answer(&cdn(), 1, 60, Rdata::A(Ipv4Addr::new(93, 184, 216, 35))),
            ]
        );
    }

    #[test]
    fn aaaa_answer() {
        let m = complete(&aaaa_response()).unwrap();
        let addr: Ipv6Addr = "2606:2800:220:1:248:1893:25c8:1946".parse().unwrap();
        assert_eq!(m.questions, vec![question("example.com", 28)]);
        assert_eq!(
            m.answers,
            vec![answer("example.com", 28, 3600, Rdata::Aaaa(addr))]
        );
    }

    #[test]
    fn nxdomain_with_soa_in_authority() {
        let m = complete(&nxdomain_response()).unwrap();
        assert_eq!((m.rcode, rcode_name(m.rcode).as_ref()), (3, "NXDOMAIN"));
        assert_eq!(m.questions, vec![question("nonexistent.example.com", 1)]);
        assert!(m.answers.is_empty() && !m.cut);
        assert_eq!(m.authority_count, 1);
    }

    #[test]
    fn truncated_response_is_not_a_cut() {
        let m = complete(&truncated_response()).unwrap();
        assert!(m.truncated && !m.cut);
        assert_eq!(m.questions, vec![question("example.com", 16)]);
    }

    #[test]
    fn capture_cut_in_the_answers_keeps_the_answers_before() {
        let msg = cname_response();
        let full = msg.len();
        // 60: inside the first A record's fixed part.
        let m = parse(&msg[..60], full).unwrap();
        assert!(m.cut);
        assert_eq!(m.questions.len(), 1);
        assert_eq!(m.answers.len(), 1);
        assert!(matches!(m.answers[0].data, Rdata::Cname(_)));
        // 70: the second A record's name is there, not its fixed part.
        let m = parse(&msg[..70], full).unwrap();
        assert_eq!((m.answers.len(), m.cut), (2, true));
        // 47: inside the CNAME's data.
        let m = parse(&msg[..47], full).unwrap();
        assert_eq!((m.questions.len(), m.answers.len(), m.cut), (1, 0, true));
    }

    #[test]
    fn capture_cut_in_the_questions() {
        let msg = cname_response();
        let m = parse(&msg[..20], msg.len()).unwrap();
        assert_eq!((m.id, m.answer_count, m.cut), (0xbeef, 3, true));
        assert!(m.questions.is_empty() && m.answers.is_empty());
    }

    #[test]
    fn capture_cut_after_the_answers_is_no_cut() {
        // The OPT record is left out; only it was missing.
        let msg = a_query();
        let m = parse(&msg[..29], msg.len()).unwrap();
        assert!(!m.cut);
        assert_eq!(m.questions.len(), 1);
    }

    #[test]
    fn complete_message_running_out_is_malformed() {
        let msg = cname_response();
        assert_eq!(
            complete(&msg[..60]),
            Err(DnsError::PastEnd {
                what: "record",
                offset: 53,
                len: 60
            })
        );
    }

    #[test]
    fn pointer_loop() {
        let msg = with_header(1, 0, b"\xc0\x0c\x00\x01\x00\x01");
        assert_eq!(complete(&msg), Err(DnsError::PointerLoop { offset: 12 }));
    }

    #[test]
    fn pointer_loop_through_a_label_is_too_long() {
        let msg = with_header(1, 0, b"\x03abc\xc0\x0c\x00\x01\x00\x01");
        assert_eq!(complete(&msg), Err(DnsError::NameTooLong { offset: 12 }));
    }

    #[test]
    fn label_longer_than_63() {
        let msg = cat(&[
            &with_header(1, 0, b"\x40"),
            &[b'a'; 64],
            b"\x00\x00\x01\x00\x01",
        ]);
        assert_eq!(
            complete(&msg),
            Err(DnsError::LabelTooLong {
                offset: 12,
                len: 64
            })
        );
    }

    #[test]
    fn unknown_label_type() {
        let msg = with_header(1, 0, b"\x03www\x80\x00\x00\x01\x00\x01");
        assert_eq!(
            complete(&msg),
            Err(DnsError::BadLabelType {
                offset: 16,
                byte: 0x80
            })
        );
    }

    #[test]
    fn names_up_to_255_bytes() {
        let label = |n: usize| cat(&[&[u8::try_from(n).unwrap()], &vec![b'x'; n]]);
        let (l63, l61) = (label(63), label(61));
        // 3 * 64 + 62 + 1 = 255 bytes.
        let longest = cat(&[&l63, &l63, &l63, &l61, b"\x00\x00\x01\x00\x01"]);
        let m = complete(&with_header(1, 0, &longest)).unwrap();
        assert_eq!(m.questions[0].name.len(), 253);
        let too_long = cat(&[&l63, &l63, &l63, &l63, b"\x00\x00\x01\x00\x01"]);
        assert_eq!(
            complete(&with_header(1, 0, &too_long)),
            Err(DnsError::NameTooLong { offset: 12 })
        );
    }

    #[test]
    fn record_running_past_the_end() {
        // An A record claiming 255 bytes of data.
        let msg = with_header(
            1,
            1,
            b"\x00\x00\x01\x00\x01\x00\x00\x01\x00\x01\x00\x00\x00\x3c\x00\xff\x7f\x00\x00\x01",
        );
        assert_eq!(
            complete(&msg),
            Err(DnsError::PastEnd {
                what: "record data",
                offset: 28,
                len: 32
            })
        );
        // Cut or not, past the message's own end is malformed.
        assert!(matches!(
            parse(&msg[..30], msg.len()),
            Err(DnsError::PastEnd { .. })
        ));
    }

    #[test]
    fn header_shorter_than_12() {
        assert_eq!(complete(&[1, 2, 3, 4, 5]), Err(DnsError::Short { len: 5 }));
        assert_eq!(
            parse(&a_query()[..11], 100),
            Err(DnsError::Short { len: 11 })
        );
        assert_eq!(complete(&[]), Err(DnsError::Short { len: 0 }));
    }

    #[test]
    fn more_records_than_the_size_holds() {
        let msg = b"\x00\x01\x01\x00\xff\xff\x00\x00\x00\x00\x00\x00";
        assert_eq!(
            parse(msg, 1000),
            Err(DnsError::TooManyRecords {
                questions: 0xffff,
                records: 0,
                len: 1000
            })
        );
        // One question (5) and one record (11) fit in 16 bytes.
        let header = with_header(1, 1, b"");
        assert!(parse(&header, 28).is_ok());
        assert!(matches!(
            parse(&header, 27),
            Err(DnsError::TooManyRecords { .. })
        ));
    }

    #[test]
    fn a_record_of_the_wrong_size() {
        let msg = with_header(
            0,
            1,
            b"\x00\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x05\x7f\x00\x00\x01\x00",
        );
        assert_eq!(
            complete(&msg),
            Err(DnsError::BadRdata {
                rtype: 1,
                offset: 23,
                len: 5,
                used: 4
            })
        );
    }

    #[test]
    fn cname_data_longer_than_its_name() {
        let msg = with_header(
            0,
            1,
            b"\x00\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x04\x01a\x00\x00",
        );
        assert!(matches!(
            complete(&msg),
            Err(DnsError::BadRdata { used: 3, .. })
        ));
    }

    #[test]
    fn other_classes_and_types_keep_the_length() {
        // A in class CH with 6 bytes; TXT; mDNS's cache-flush A.
        let msg = with_header(
            0,
            3,
            &cat(&[
                b"\x00\x00\x01\x00\x03\x00\x00\x00\x00\x00\x06abcdef",
                b"\x00\x00\x10\x00\x01\x00\x00\x00\x00\x00\x02\x01x",
                b"\x00\x00\x01\x80\x01\x00\x00\x00\x78\x00\x04\xc0\xa8\x00\x01",
            ]),
        );
        let m = complete(&msg).unwrap();
        assert_eq!(m.answers[0].data, Rdata::Other { len: 6 });
        assert_eq!(m.answers[1].data, Rdata::Other { len: 2 });
        assert_eq!(m.answers[2].data, Rdata::A(Ipv4Addr::new(192, 168, 0, 1)));
        assert_eq!(
            (m.answers[2].name.as_str(), m.answers[2].class),
            (".", 0x8001)
        );
    }

    #[test]
    fn other_data_past_the_capture_keeps_the_record() {
        let msg = with_header(0, 1, b"\x00\x00\x10\x00\x01\x00\x00\x00\x00\x00\x04\x03abc");
        let m = parse(&msg[..25], msg.len()).unwrap();
        assert_eq!(m.answers[0].data, Rdata::Other { len: 4 });
        assert!(!m.cut);
    }

    #[test]
    fn ptr_and_ns_data() {
        let msg = with_header(
            0,
            2,
            &cat(&[
                b"\x011\x010\x010\x03127\x07in-addr\x04arpa\x00",
                b"\x00\x0c\x00\x01\x00\x00\x00\x3c\x00\x0b\x09localhost\x00",
                b"\x04arpa\x00\x00\x02\x00\x01\x00\x00\x00\x3c\x00\x04\x01a\xc0\x1e",
            ]),
        );
        let m = complete(&msg).unwrap();
        assert_eq!(m.answers[0].name, "1.0.0.127.in-addr.arpa");
        assert_eq!(m.answers[0].data, Rdata::Ptr("localhost".to_owned()));
        assert_eq!(m.answers[1].data, Rdata::Ns("a.arpa".to_owned()));
    }

    #[test]
    fn forward_pointers_are_followed() {
        // The question's name points at the answer's owner name.
        let msg = with_header(
            1,
            1,
            b"\xc0\x12\x00\x01\x00\x01\x03www\x00\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x01",
        );
        let m = complete(&msg).unwrap();
        assert_eq!(m.questions[0].name, "www");
        assert_eq!(m.answers[0].name, "www");
    }

    #[test]
    fn names_are_escaped_like_dig() {
        let msg = with_header(1, 0, b"\x07a.b c\xff\\\x01(\x00\x00\x01\x00\x01");
        let m = complete(&msg).unwrap();
        assert_eq!(m.questions[0].name, r"a\.b\032c\255\\.\(");
    }

    #[test]
    fn the_root_name() {
        let m = complete(&with_header(1, 0, b"\x00\x00\x02\x00\x01")).unwrap();
        assert_eq!(m.questions, vec![question(".", 2)]);
    }

    #[test]
    fn at_most_64_records_kept() {
        let mut body = Vec::new();
        for _ in 0..70 {
            body.extend_from_slice(b"\x00\x00\x01\x00\x01");
        }
        for _ in 0..70 {
            body.extend_from_slice(b"\x00\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x01");
        }
        let m = complete(&with_header(70, 70, &body)).unwrap();
        assert_eq!((m.questions.len(), m.answers.len()), (64, 64));
        assert_eq!((m.question_count, m.answer_count), (70, 70));
    }

    #[test]
    fn header_flags() {
        // QR, opcode 5 (UPDATE), AA, TC, RD, RA, rcode 9.
        let msg = b"\xff\xff\xaf\x89\x00\x00\x00\x00\x00\x00\x00\x00";
        let m = complete(msg).unwrap();
        assert_eq!((m.id, m.opcode, m.rcode), (0xffff, 5, 9));
        assert!(m.response && m.authoritative && m.truncated);
        assert!(m.recursion_desired && m.recursion_available);
    }

    #[test]
    fn split_tcp_framing() {
        assert_eq!(split_tcp(&[]), None);
        assert_eq!(split_tcp(&[0]), None);
        assert_eq!(split_tcp(&[0, 0]), Some((0, &[][..])));
        assert_eq!(split_tcp(&[0, 5, 1, 2, 3]), Some((5, &[1, 2, 3][..])));
        // A second message behind the first is not part of it.
        assert_eq!(split_tcp(&[0, 2, 1, 2, 0, 9]), Some((2, &[1, 2][..])));
        let framed = cat(&[&[0, 83], &cname_response()]);
        let (len, msg) = split_tcp(&framed).unwrap();
        assert_eq!(complete(msg), parse(msg, len));
        assert_eq!(parse(msg, len).unwrap().answers.len(), 3);
    }

    #[test]
    fn names_of_types_and_rcodes() {
        let types: Vec<_> = [1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 64, 65, 255, 99]
            .into_iter()
            .map(type_name)
            .collect();
        assert_eq!(
            types,
            [
                "A", "NS", "CNAME", "SOA", "PTR", "MX", "TXT", "AAAA", "SRV", "OPT", "SVCB",
                "HTTPS", "ANY", "TYPE99"
            ]
        );
        let rcodes: Vec<_> = (0..=11).map(rcode_name).collect();
        assert_eq!(
            rcodes,
            [
                "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
                "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11"
            ]
        );
    }

    #[test]
    fn errors_read_well() {
        let e = DnsError::BadRdata {
            rtype: 28,
            offset: 40,
            len: 4,
            used: 16,
        };
        assert_eq!(
            e.to_string(),
            "AAAA record data at offset 40 is 4 bytes, but its content takes 16"
        );
        assert_eq!(
            DnsError::Short { len: 3 }.to_string(),
            "3 bytes, shorter than the 12-byte DNS header"
        );
    }
}
