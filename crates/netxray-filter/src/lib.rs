//! netxray's packet filters: the pcap-filter(7) language (tcpdump's
//! expressions), with libpcap 1.10's meaning, compiled for the kernel and
//! evaluated in user space.
//!
//! A filter goes through it in this order:
//!
//! - text -> `lex` (tokens) -> `parse`: an [`Expr`] of primitives ([`Prim`]),
//!   qualifiers resolved, each primitive knowing how many `vlan` keywords
//!   came before it, since `vlan` shifts the offsets of everything after it,
//!   as in libpcap ([`Filter::parse`]);
//! - `lower`: a small formula of loads and compares (`Low`), where a run of
//!   host, net or port alternatives of one kind becomes a set lookup;
//! - then either [`ebpf`]: BPF instructions ([`Insn`](ebpf::Insn)) and the
//!   sets' entries for the kernel ([`Filter::to_ebpf`]), or `eval`: the same
//!   formula run on a record in user space ([`Filter::matches`], [`Frame`]);
//! - [`splice`]: the compiled code written over the placeholders of a BPF
//!   object (the subprogram `nx_filter_jit` and the inline regions,
//!   bpf/include/nx_packet.bpf.h) before it is loaded.
//!
//! Both ends share `Low`, so they cannot disagree on what a primitive means;
//! the differential tests (crates/netxray/tests/filter_*.rs) check both
//! against tcpdump itself. The crate knows nothing of aya or of loading: it
//! turns text into code and bytes into bytes.
//!
//! # Why not libpcap
//!
//! retis and pwru hand the expression to libpcap, translate the classic BPF
//! it returns to eBPF and run that. netxray compiles the language itself:
//!
//! - the user-space evaluator and the kernel code come from one lowered form,
//!   so they cannot disagree (libpcap's output would need an interpreter of
//!   its own in user space, for packets only);
//! - the code is spliced into the tracing programs, inline where they filter
//!   a packet in place: no bpf-to-bpf call and return on every run;
//! - a run of 8 or more host, net or port alternatives (`host (A or B or
//!   ...)`) is one lookup in an LPM trie, where libpcap compares each
//!   alternative in turn: a thousand hosts compile to the instructions of ten;
//! - filters apply to records without packets, flows (`conn`) and sockets,
//!   given the same code as a header built from their addresses and ports;
//!   the parsed expression says, with its position, which primitive such a
//!   record cannot answer ([`Expr::check_flow_only`]);
//! - no C library to build against or link: cargo alone builds netxray.

pub mod ebpf;
mod eval;
mod insn;
mod lex;
mod lower;
mod parse;
pub mod splice;

pub use eval::Frame;

use std::fmt;

/// A filter that does not parse or compile: what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// The whole expression.
    pub text: String,
    /// Byte offset of the offending token in `text`.
    pub pos: usize,
    pub len: usize,
    pub msg: String,
}

impl FilterError {
    pub(crate) fn at(text: &str, pos: usize, len: usize, msg: impl Into<String>) -> Self {
        Self {
            text: text.to_string(),
            pos,
            len,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for FilterError {
    /// `msg`, then the expression with a caret line under the offending part.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let col = self.text[..self.pos.min(self.text.len())].chars().count();
        write!(
            f,
            "{} (at position {})\n  {}\n  {}{}",
            self.msg,
            self.pos + 1,
            self.text,
            " ".repeat(col),
            "^".repeat(self.len.max(1))
        )
    }
}

impl std::error::Error for FilterError {}

/// Where a primitive sits in the text, and how many `vlan` keywords were
/// parsed before it (libpcap shifts link-payload offsets by 4 per tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct At {
    pub pos: usize,
    pub len: usize,
    pub vlans: u8,
}

/// Source, destination, either, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Src,
    Dst,
    SrcOrDst,
    SrcAndDst,
}

/// libpcap's protocol abbreviations, as primitives on their own (`tcp`)
/// and as the base of byte loads (`tcp[13]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Link,
    Ip,
    Ip6,
    Arp,
    Rarp,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmp6,
    Igmp,
    Igrp,
    Pim,
    Vrrp,
    Carp,
    Ah,
    Esp,
}

/// Where `host`/`net` with an IPv4 address looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V4On {
    /// IPv4, ARP and RARP (no protocol qualifier).
    Any,
    Ip,
    Arp,
    Rarp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
    Lsh,
    Rsh,
}

/// An arithmetic expression (`proto[expr:size]`, `len`, numbers), 32-bit
/// unsigned as in BPF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arith {
    Num(u32),
    Len,
    Load {
        proto: Proto,
        index: Box<Arith>,
        size: u8,
    },
    Bin(ArithOp, Box<Arith>, Box<Arith>),
    Neg(Box<Arith>),
}

/// Comparison operators as libpcap generates them: `!=`, `<`, `<=` are the
/// negations of `=`, `>=`, `>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    Eq,
    Gt,
    Ge,
    Ne,
    Lt,
    Le,
}

/// One primitive of the language, qualifiers resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prim {
    /// `ip`, `tcp`, `icmp6`, ...
    Proto(Proto),
    /// `proto N` (None: IPv4 or IPv6), `ip proto N`, `ip6 proto N`.
    IpProto(Option<Proto>, u32),
    /// `ether proto N`.
    EtherProto(u32),
    /// `host`/`net` with an IPv4 address and mask.
    Host4 {
        on: V4On,
        dir: Dir,
        addr: u32,
        mask: u32,
    },
    /// `host`/`net` with an IPv6 address and mask (four big-endian words).
    Host6 {
        dir: Dir,
        addr: [u32; 4],
        mask: [u32; 4],
    },
    /// `ether host|src|dst MAC`.
    EtherHost { dir: Dir, mac: [u8; 6] },
    /// `[tcp|udp|sctp] port|portrange` (l4 None: all three), inclusive.
    Port {
        l4: Option<u8>,
        dir: Dir,
        lo: u16,
        hi: u16,
    },
    /// `vlan [id]`.
    Vlan(Option<u16>),
    /// `[ether] broadcast`.
    Broadcast,
    /// `[ether] multicast`.
    Multicast,
    /// `ip multicast`.
    IpMulticast,
    /// `ip broadcast`, with the netmask unknown (as tcpdump reading a file):
    /// destination 0.0.0.0 or 255.255.255.255.
    IpBroadcast,
    /// `llc`: an 802.3 length field and not raw Novell.
    Llc,
    /// `ip6 multicast`.
    Ip6Multicast,
    /// `arith relop arith`, and `len`, `less`, `greater`.
    Compare(Arith, Rel, Arith),
}

/// A filter expression. `True` is "no filter".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    True,
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Prim(Prim, At),
}

impl Expr {
    pub fn and(self, other: Expr) -> Expr {
        match (self, other) {
            (Expr::True, e) | (e, Expr::True) => e,
            (a, b) => Expr::And(Box::new(a), Box::new(b)),
        }
    }

    /// Refuse primitives that need packet bytes, for records that have only
    /// a flow (addresses, ports, protocol): `conn` and the like.
    pub fn check_flow_only(&self, text: &str) -> Result<(), FilterError> {
        match self {
            Expr::True => Ok(()),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.check_flow_only(text)?;
                b.check_flow_only(text)
            }
            Expr::Not(a) => a.check_flow_only(text),
            Expr::Prim(p, at) => {
                let ok = at.vlans == 0
                    && match p {
                        Prim::Proto(pr) => matches!(
                            pr,
                            Proto::Ip | Proto::Ip6 | Proto::Tcp | Proto::Udp | Proto::Sctp
                        ),
                        Prim::IpProto(..) | Prim::Host6 { .. } | Prim::Port { .. } => true,
                        Prim::Host4 { on, .. } => matches!(on, V4On::Any | V4On::Ip),
                        _ => false,
                    };
                if ok {
                    Ok(())
                } else {
                    Err(FilterError::at(
                        text,
                        at.pos,
                        at.len,
                        "this primitive needs packet contents; here only hosts, nets, ports and ip/ip6/tcp/udp/sctp/proto apply",
                    ))
                }
            }
        }
    }
}

/// A filter lowered once ([`Filter::prepare`]); None matches everything.
#[derive(Debug)]
pub struct Prepared(Option<lower::Low>);

impl Prepared {
    pub fn matches_all(&self) -> bool {
        self.0.is_none()
    }

    /// [`Filter::matches`], without lowering again.
    pub fn matches(&self, frame: &Frame<'_>) -> bool {
        self.0.as_ref().is_none_or(|l| eval::matches(l, frame))
    }
}

/// A parsed filter, with the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub text: String,
    pub expr: Expr,
}

impl Filter {
    /// Parse a pcap-filter expression. Several words are joined with spaces,
    /// as tcpdump does; an empty expression matches everything.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let expr = parse::parse(text)?;
        Ok(Self {
            text: text.to_string(),
            expr,
        })
    }

    pub fn from_words<S: AsRef<str>>(words: &[S]) -> Result<Self, FilterError> {
        let text = words
            .iter()
            .map(|w| w.as_ref())
            .collect::<Vec<_>>()
            .join(" ");
        Self::parse(&text)
    }

    pub fn matches_all(&self) -> bool {
        self.expr == Expr::True
    }

    /// Evaluate in user space, with the kernel's exact semantics.
    pub fn matches(&self, frame: &Frame<'_>) -> bool {
        eval::matches(&lower::lower(&self.expr), frame)
    }

    /// Lowered once, to evaluate many records (`conn`: one per connection).
    pub fn prepare(&self) -> Prepared {
        Prepared(if self.matches_all() {
            None
        } else {
            Some(lower::lower(&self.expr))
        })
    }

    /// Compile for the kernel; None when the filter matches everything.
    pub fn to_ebpf(&self) -> Result<Option<ebpf::Compiled>, FilterError> {
        if self.matches_all() {
            return Ok(None);
        }
        let low = lower::lower(&self.expr);
        let whole = |m: String| FilterError::at(&self.text, 0, self.text.len(), m);
        let insns = ebpf::compile(&low).map_err(whole)?;
        if insns.len() > ebpf::MAX_INSNS {
            return Err(self.too_long(insns.len()));
        }
        Ok(Some(ebpf::Compiled {
            insns,
            sets: ebpf::set_entries(&lower::sets(&low)),
        }))
    }

    /// The error for a filter of `n` instructions: which primitive takes
    /// the most of them.
    fn too_long(&self, n: usize) -> FilterError {
        fn prims<'e>(e: &'e Expr, out: &mut Vec<(&'e Prim, At)>) {
            match e {
                Expr::True => {}
                Expr::And(a, b) | Expr::Or(a, b) => {
                    prims(a, out);
                    prims(b, out);
                }
                Expr::Not(a) => prims(a, out),
                Expr::Prim(p, at) => out.push((p, *at)),
            }
        }
        let mut all = Vec::new();
        prims(&self.expr, &mut all);
        let head = format!(
            "filter too complex for the kernel: {n} instructions, at most {}",
            ebpf::MAX_INSNS
        );
        let largest = all
            .iter()
            .filter_map(|(p, at)| {
                ebpf::compile(&lower::lower_prim(p, at))
                    .ok()
                    .map(|c| (c.len(), *at))
            })
            .max_by_key(|(len, at)| (*len, std::cmp::Reverse(at.pos)));
        match largest {
            Some((len, at)) => FilterError::at(
                &self.text,
                at.pos,
                at.len,
                format!(
                    "{head}; of its {} primitives the largest (marked) takes {len} on its own \
                     (runs of {} or more host, net or port alternatives of one kind are \
                     looked up in a set and cost about as much as one)",
                    all.len(),
                    lower::SET_MIN
                ),
            ),
            None => FilterError::at(&self.text, 0, self.text.len(), head),
        }
    }
}
