//! The DNS parser never panics: random bytes, random headers over random
//! bodies, generated well-formed messages and mutations of them (bits
//! flipped, bytes set, inserted, deleted, the capture cut short) either
//! parse or give an error. Names that come out are safe to print (printable
//! ASCII, no spaces or control characters) and no longer than a name may
//! be; generated messages parse back to what was written, and every prefix
//! of one parses, with `cut`, to a prefix of its questions and answers.
//!
//! Each property runs 20 000 cases unless `NETXRAY_FUZZ_CASES` says
//! otherwise. The long run:
//!
//! ```text
//! NETXRAY_FUZZ_CASES=1000000 cargo test --release --test dns_fuzz
//! ```
//!
//! Measured on the development machine (2 cores shared with other builds,
//! load average about 4), the release test binary already built (building
//! it took 1 min 49 s): the four properties at 1 000 000 cases each pass
//! in 33 s wall clock, 26 s CPU. The default 20 000 cases take about 21 s
//! in a debug build.

use netxray::model::l7::dns::{self, Message, Rdata, MAX_RECORDS};
use proptest::prelude::*;
use proptest::sample::Index;

/// Cases per property: `NETXRAY_FUZZ_CASES`, else 20 000.
fn cases() -> u32 {
    std::env::var("NETXRAY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(20_000)
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(cases())
}

/// The unescaped length of a name as `dig` prints it: `\DDD` and `\X`
/// stand for one byte each.
fn presentation_len(name: &str) -> usize {
    let bytes = name.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < bytes.len() {
        i += match bytes.get(i..i + 2) {
            Some([b'\\', d]) if d.is_ascii_digit() => 4,
            Some([b'\\', _]) => 2,
            _ => 1,
        };
        n += 1;
    }
    n
}

fn check_name(name: &str) {
    assert!(!name.is_empty(), "an empty name");
    assert!(
        name.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "{name:?} has a byte outside printable ASCII"
    );
    // 255 bytes on the wire are at most 253 characters of text.
    assert!(
        presentation_len(name) <= 253,
        "{name:?} is longer than a name may be"
    );
    assert!(name.len() <= 4 * 253, "{name:?} escapes to too much");
}

fn data_name(data: &Rdata) -> Option<&str> {
    match data {
        Rdata::Cname(n) | Rdata::Ptr(n) | Rdata::Ns(n) => Some(n),
        _ => None,
    }
}

fn check_message(m: &Message, bytes: &[u8], full_len: usize) {
    assert!(m.questions.len() <= MAX_RECORDS.min(usize::from(m.question_count)));
    assert!(m.answers.len() <= MAX_RECORDS.min(usize::from(m.answer_count)));
    assert!(!m.cut || bytes.len() < full_len, "cut with nothing missing");
    assert!(m.opcode < 16 && m.rcode < 16);
    for q in &m.questions {
        check_name(&q.name);
    }
    for a in &m.answers {
        check_name(&a.name);
        if let Some(n) = data_name(&a.data) {
            check_name(n);
        }
    }
}

/// Parses and checks what came out; never panics on its own.
fn check(bytes: &[u8], full_len: usize) -> Result<Message, dns::DnsError> {
    let result = dns::parse(bytes, full_len);
    match &result {
        Ok(m) => check_message(m, bytes, full_len.max(bytes.len())),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    result
}

// ---- generated well-formed messages ----

/// A name to write: its labels, then maybe a pointer to a name written
/// before (picked by the index). Labels are long enough, and pointers
/// chain, for names to run past 255 bytes.
#[derive(Debug, Clone)]
struct NameSpec {
    labels: Vec<String>,
    pointer: Option<Index>,
}

#[derive(Debug, Clone)]
enum DataSpec {
    A([u8; 4]),
    Aaaa([u8; 16]),
    Cname(NameSpec),
    Ptr(NameSpec),
    Ns(NameSpec),
    Txt(Vec<u8>),
}

#[derive(Debug, Clone)]
struct MsgSpec {
    id: u16,
    flags: u16,
    questions: Vec<(NameSpec, u16)>,
    answers: Vec<(NameSpec, u32, DataSpec)>,
    /// Bytes of an authority/additional section that is never decoded.
    tail: Vec<u8>,
}

/// A label of `len` letters, digits, `-` and `_` drawn from `seed` (cheaper
/// than proptest's regex strategies, which made this property slow).
fn label(len: usize, mut seed: u64) -> String {
    const CHARS: &[u8; 38] = b"abcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len)
        .map(|_| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(CHARS[(seed >> 58) as usize % CHARS.len()])
        })
        .collect()
}

fn name_spec() -> impl Strategy<Value = NameSpec> {
    (
        prop::collection::vec(
            (1..=63usize, any::<u64>()).prop_map(|(n, s)| label(n, s)),
            0..5,
        ),
        prop::option::of(any::<Index>()),
    )
        .prop_map(|(labels, pointer)| NameSpec { labels, pointer })
}

fn data_spec() -> impl Strategy<Value = DataSpec> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(DataSpec::A),
        any::<[u8; 16]>().prop_map(DataSpec::Aaaa),
        name_spec().prop_map(DataSpec::Cname),
        name_spec().prop_map(DataSpec::Ptr),
        name_spec().prop_map(DataSpec::Ns),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(DataSpec::Txt),
    ]
}

fn msg_spec() -> impl Strategy<Value = MsgSpec> {
    (
        any::<u16>(),
        any::<u16>(),
        prop::collection::vec((name_spec(), any::<u16>()), 0..3),
        prop::collection::vec((name_spec(), any::<u32>(), data_spec()), 0..6),
        prop::collection::vec(any::<u8>(), 0..20),
    )
        .prop_map(|(id, flags, questions, answers, tail)| MsgSpec {
            id,
            flags,
            questions,
            answers,
            tail,
        })
}

/// Writes messages with compression, remembering what each name says.
#[derive(Default)]
struct Builder {
    buf: Vec<u8>,
    /// (offset, text, bytes on the wire) of each name written in full.
    names: Vec<(usize, String, usize)>,
    /// A name written is longer than 255 bytes.
    too_long: bool,
}

impl Builder {
    fn name(&mut self, spec: &NameSpec) -> String {
        let own: usize = spec.labels.iter().map(|l| l.len() + 1).sum();
        let target = spec
            .pointer
            .filter(|_| !self.names.is_empty())
            .map(|i| self.names[i.index(self.names.len())].clone());
        let start = self.buf.len();
        for label in &spec.labels {
            self.buf
                .push(u8::try_from(label.len()).expect("labels are at most 63 bytes"));
            self.buf.extend_from_slice(label.as_bytes());
        }
        let mut text = spec.labels.join(".");
        let wire = match &target {
            Some((offset, suffix, wire)) => {
                let offset = u16::try_from(*offset).expect("messages stay under 16 KiB");
                self.buf.extend_from_slice(&(0xc000 | offset).to_be_bytes());
                if suffix != "." {
                    if !text.is_empty() {
                        text.push('.');
                    }
                    text.push_str(suffix);
                }
                own + wire
            }
            None => {
                self.buf.push(0);
                own + 1
            }
        };
        if text.is_empty() {
            text.push('.');
        }
        self.too_long |= wire > 255;
        if !spec.labels.is_empty() {
            self.names.push((start, text.clone(), wire));
        }
        text
    }

    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Writes the data after a placeholder length, then fills it in.
    fn data(&mut self, spec: &DataSpec) -> (u16, Rdata) {
        let len_at = self.buf.len();
        self.u16(0);
        let (rtype, data) = match spec {
            DataSpec::A(b) => {
                self.buf.extend_from_slice(b);
                (1, Rdata::A((*b).into()))
            }
            DataSpec::Aaaa(b) => {
                self.buf.extend_from_slice(b);
                (28, Rdata::Aaaa((*b).into()))
            }
            DataSpec::Cname(n) => (5, Rdata::Cname(self.name(n))),
            DataSpec::Ptr(n) => (12, Rdata::Ptr(self.name(n))),
            DataSpec::Ns(n) => (2, Rdata::Ns(self.name(n))),
            DataSpec::Txt(b) => {
                self.buf.extend_from_slice(b);
                let len = u16::try_from(b.len()).expect("TXT data is short");
                (16, Rdata::Other { len })
            }
        };
        let len = u16::try_from(self.buf.len() - len_at - 2).expect("record data is short");
        self.buf[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
        (rtype, data)
    }
}

/// What a generated message says.
struct Built {
    bytes: Vec<u8>,
    questions: Vec<dns::Question>,
    answers: Vec<dns::Answer>,
    /// A name in it is longer than 255 bytes: it is malformed.
    too_long: bool,
}

/// The wire bytes of a spec, and the questions and answers they say.
fn build(spec: &MsgSpec) -> Built {
    let mut b = Builder::default();
    let count = |n: usize| u16::try_from(n).expect("a few records");
    for v in [spec.id, spec.flags, count(spec.questions.len())] {
        b.u16(v);
    }
    // ANCOUNT, NSCOUNT 0, and ARCOUNT 0: the tail is just extra bytes.
    for v in [count(spec.answers.len()), 0, 0] {
        b.u16(v);
    }
    let mut questions = Vec::new();
    for (name, qtype) in &spec.questions {
        let name = b.name(name);
        b.u16(*qtype);
        b.u16(1);
        questions.push(dns::Question {
            name,
            qtype: *qtype,
            qclass: 1,
        });
    }
    let mut answers = Vec::new();
    for (name, ttl, data) in &spec.answers {
        let name = b.name(name);
        let type_at = b.buf.len();
        b.u16(0);
        b.u16(1);
        b.buf.extend_from_slice(&ttl.to_be_bytes());
        let (rtype, data) = b.data(data);
        b.buf[type_at..type_at + 2].copy_from_slice(&rtype.to_be_bytes());
        answers.push(dns::Answer {
            name,
            rtype,
            class: 1,
            ttl: *ttl,
            data,
        });
    }
    b.buf.extend_from_slice(&spec.tail);
    Built {
        bytes: b.buf,
        questions,
        answers,
        too_long: b.too_long,
    }
}

// ---- mutations ----

/// Real messages: `dig example.com A`, a CNAME and two A records, an
/// AAAA answer, an NXDOMAIN with the zone's SOA.
const CORPUS: &[&[u8]] = &[
    b"\x12\x34\x01\x20\x00\x01\x00\x00\x00\x00\x00\x01\x07example\x03com\x00\x00\x01\x00\x01\
      \x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00",
    b"\xbe\xef\x81\x80\x00\x01\x00\x03\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\
      \x00\x01\xc0\x0c\x00\x05\x00\x01\x00\x00\x0e\x10\x00\x06\x03cdn\xc0\x10\xc0\x2d\x00\x01\
      \x00\x01\x00\x00\x00\x3c\x00\x04\x5d\xb8\xd8\x22\xc0\x2d\x00\x01\x00\x01\x00\x00\x00\x3c\
      \x00\x04\x5d\xb8\xd8\x23",
    b"\x5a\x5a\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x07example\x03com\x00\x00\x1c\x00\x01\
      \xc0\x0c\x00\x1c\x00\x01\x00\x00\x0e\x10\x00\x10\x26\x06\x28\x00\x02\x20\x00\x01\x02\x48\
      \x18\x93\x25\xc8\x19\x46",
    b"\x0b\xad\x81\x83\x00\x01\x00\x00\x00\x01\x00\x00\x0bnonexistent\x07example\x03com\x00\
      \x00\x01\x00\x01\xc0\x18\x00\x06\x00\x01\x00\x00\x0e\x10\x00\x2c\x02ns\x05icann\x03org\
      \x00\x03noc\x03dns\xc0\x38\x78\xa5\x2b\x3d\x00\x00\x1c\x20\x00\x00\x0e\x10\x00\x12\x75\
      \x00\x00\x00\x0e\x10",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    /// A compression pointer to anywhere, written anywhere.
    Pointer(Index, u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
        (any::<Index>(), any::<u16>()).prop_map(|(i, p)| Mutation::Pointer(i, p)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match *m {
        Mutation::Insert(i, b) => bytes.insert(i.index(len + 1), b),
        _ if len == 0 => {}
        Mutation::Flip(i, bit) => bytes[i.index(len)] ^= 1 << bit,
        Mutation::Set(i, b) => bytes[i.index(len)] = b,
        Mutation::Delete(i) => {
            bytes.remove(i.index(len));
        }
        Mutation::Pointer(i, p) => {
            let at = i.index(len);
            for (k, b) in (0xc000 | p).to_be_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + k) {
                    *slot = b;
                }
            }
        }
    }
}

/// A message to start from: one of the corpus or a generated one.
fn seed() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(CORPUS).prop_map(<[u8]>::to_vec),
        msg_spec().prop_map(|s| build(&s).bytes),
    ]
}

/// How much of the message was captured: all of it, or a prefix (the
/// message's length stays the full length).
fn parse_captured(bytes: &[u8], cut: Option<Index>, extra: usize) {
    let full = bytes.len() + extra;
    let captured = cut.map_or(bytes.len(), |c| c.index(bytes.len() + 1));
    let _ = check(&bytes[..captured], full);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        extra in prop_oneof![Just(0usize), 0..2048usize, Just(usize::MAX / 2)],
    ) {
        let _ = check(&bytes, bytes.len() + extra);
        if let Some((declared, msg)) = dns::split_tcp(&bytes) {
            prop_assert!(msg.len() <= declared && msg.len() + 2 <= bytes.len());
            let _ = check(msg, declared);
        }
    }

    #[test]
    fn random_bodies_behind_plausible_headers_never_panic(
        header in any::<[u8; 4]>(),
        counts in any::<[u8; 4]>(),
        body in prop::collection::vec(any::<u8>(), 0..600),
        cut in prop::option::of(any::<Index>()),
        extra in 0..64usize,
    ) {
        let mut bytes = header.to_vec();
        for n in counts {
            bytes.extend_from_slice(&[0, n % 8]);
        }
        bytes.extend_from_slice(&body);
        parse_captured(&bytes, cut, extra);
    }

    #[test]
    fn mutated_messages_never_panic(
        seed in seed(),
        mutations in prop::collection::vec(mutation(), 1..8),
        cut in prop::option::of(any::<Index>()),
        extra in prop_oneof![Just(0usize), 0..64usize],
    ) {
        let mut bytes = seed;
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        parse_captured(&bytes, cut, extra);
    }

    #[test]
    fn generated_messages_parse_back_and_prefixes_cut(spec in msg_spec(), cut in any::<Index>()) {
        let Built { bytes, questions, answers, too_long } = build(&spec);
        let whole = check(&bytes, bytes.len());
        if too_long {
            prop_assert!(matches!(whole, Err(dns::DnsError::NameTooLong { .. })), "{:?}", whole);
            return Ok(());
        }
        prop_assert!(whole.is_ok(), "{:?}", whole);
        let whole = whole.unwrap();
        prop_assert_eq!(&whole.questions, &questions);
        prop_assert_eq!(&whole.answers, &answers);
        prop_assert!(!whole.cut);

        let captured = cut.index(bytes.len() - 11) + 12;
        let part = check(&bytes[..captured], bytes.len());
        prop_assert!(part.is_ok(), "{:?}", part);
        let part = part.unwrap();
        prop_assert!(questions.starts_with(&part.questions));
        prop_assert!(answers.starts_with(&part.answers));
        let fewer = part.questions.len() < questions.len() || part.answers.len() < answers.len();
        prop_assert_eq!(part.cut, fewer);
    }
}
