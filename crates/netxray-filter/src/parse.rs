//! The pcap-filter(7) grammar (libpcap 1.10's grammar.y), by recursive
//! descent. What tcpdump accepts and netxray cannot do is refused with the
//! position of the word, never ignored.
//!
//! Points where libpcap surprises, kept here on purpose:
//! - `and` and `or` have the same precedence and group left to right:
//!   `a or b and c` is `(a or b) and c`.
//! - A bare value after `and`/`or` takes the previous primitive's
//!   qualifiers: `host a or b`, `tcp port 80 or 443`.
//! - `vlan` shifts the link-payload offsets of every primitive after it.
//! - In arithmetic, `%` and `^` have no precedence in libpcap's grammar, so
//!   the parser always shifts on them: everything to their right binds first.

use super::lex::{self, Tok, Token};
use super::{Arith, ArithOp, At, Dir, Expr, FilterError, Prim, Proto, Rel, V4On};

/// Qualifiers in front of an id: `[proto] [dir] [type]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Quals {
    proto: Option<Proto>,
    dir: Option<Dir>,
    addr: Option<Addr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addr {
    Host,
    Net,
    Port,
    Portrange,
    Proto,
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    i: usize,
    vlans: u8,
    /// Recursion depth, bounded so that no input exhausts the stack.
    depth: usize,
}

/// Deeper nesting than any real filter; refused rather than recursed into.
const MAX_DEPTH: usize = 64;

type R<T> = Result<T, FilterError>;

pub(super) fn parse(text: &str) -> R<Expr> {
    let toks = lex::lex(text)?;
    if toks.is_empty() {
        return Ok(Expr::True);
    }
    let mut p = Parser {
        text,
        toks,
        i: 0,
        vlans: 0,
        depth: 0,
    };
    let (e, _) = p.expr()?;
    if let Some(t) = p.toks.get(p.i) {
        return Err(p.err_at(t, "syntax error: unexpected word here"));
    }
    check(text, &e)?;
    Ok(e)
}

fn pname(kw: &str) -> Option<Proto> {
    Some(match kw {
        "ether" => Proto::Link,
        "ip" => Proto::Ip,
        "ip6" => Proto::Ip6,
        "arp" => Proto::Arp,
        "rarp" => Proto::Rarp,
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => Proto::Sctp,
        "icmp" => Proto::Icmp,
        "icmp6" => Proto::Icmp6,
        "igmp" => Proto::Igmp,
        "igrp" => Proto::Igrp,
        "pim" => Proto::Pim,
        "vrrp" => Proto::Vrrp,
        "carp" => Proto::Carp,
        "ah" => Proto::Ah,
        "esp" => Proto::Esp,
        _ => return None,
    })
}

/// Protocol qualifiers and keywords libpcap has that netxray does not.
const UNSUPPORTED: &[&str] = &[
    "radio",
    "atalk",
    "aarp",
    "decnet",
    "lat",
    "sca",
    "moprc",
    "mopdl",
    "iso",
    "esis",
    "isis",
    "l1",
    "l2",
    "iih",
    "lsp",
    "snp",
    "csnp",
    "psnp",
    "clnp",
    "stp",
    "ipx",
    "netbeui",
    "protochain",
    "gateway",
    "type",
    "subtype",
    "dir",
    "addr1",
    "addr2",
    "addr3",
    "addr4",
    "ra",
    "ta",
    "byte",
    "inbound",
    "outbound",
    "ifindex",
    "mpls",
    "pppoed",
    "pppoes",
    "geneve",
    "lane",
    "llc",
    "metac",
    "bcc",
    "oam",
    "oamf4",
    "oamf4ec",
    "oamf4sc",
    "sc",
    "ilmic",
    "vpi",
    "vci",
    "connectmsg",
    "metaconnect",
    "ifname",
    "ruleset",
    "rulenum",
    "subrulenum",
    "reason",
    "action",
    "fisu",
    "lssu",
    "msu",
    "hfisu",
    "hlssu",
    "hmsu",
    "sio",
    "opc",
    "dpc",
    "sls",
    "hsio",
    "hopc",
    "hdpc",
    "hsls",
];

fn relop(t: &Tok) -> Option<Rel> {
    Some(match t {
        Tok::Op(">") => Rel::Gt,
        Tok::Op(">=") => Rel::Ge,
        Tok::Op("=") => Rel::Eq,
        Tok::Op("!=") => Rel::Ne,
        Tok::Op("<") => Rel::Lt,
        Tok::Op("<=") => Rel::Le,
        _ => return None,
    })
}

/// Binary arithmetic operators with their precedence (None: `%` and `^`,
/// which libpcap's grammar leaves without one).
fn arith_op(t: &Tok) -> Option<(ArithOp, Option<u8>)> {
    Some(match t {
        Tok::Op("|") => (ArithOp::Or, Some(1)),
        Tok::Op("&") => (ArithOp::And, Some(2)),
        Tok::Op("<<") => (ArithOp::Lsh, Some(3)),
        Tok::Op(">>") => (ArithOp::Rsh, Some(3)),
        Tok::Op("+") => (ArithOp::Add, Some(4)),
        Tok::Op("-") => (ArithOp::Sub, Some(4)),
        Tok::Op("*") => (ArithOp::Mul, Some(5)),
        Tok::Op("/") => (ArithOp::Div, Some(5)),
        Tok::Op("%") => (ArithOp::Mod, None),
        Tok::Op("^") => (ArithOp::Xor, None),
        _ => return None,
    })
}

fn is_value(t: &Tok) -> bool {
    matches!(
        t,
        Tok::Num(_) | Tok::Hid(_) | Tok::Hid6(_) | Tok::Mac(_) | Tok::Id(_)
    )
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.i + n).map(|t| &t.tok)
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Kw(k)) if *k == kw)
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }

    fn err_at(&self, t: &Token, msg: impl Into<String>) -> FilterError {
        FilterError::at(self.text, t.pos, t.len, msg)
    }

    /// An error at the current token, or at the end of the text.
    fn err(&self, msg: impl Into<String>) -> FilterError {
        match self.toks.get(self.i) {
            Some(t) => self.err_at(t, msg),
            None => FilterError::at(self.text, self.text.len(), 1, msg),
        }
    }

    fn here(&self) -> (usize, usize) {
        match self.toks.get(self.i) {
            Some(t) => (t.pos, t.len),
            None => (self.text.len(), 0),
        }
    }

    /// An `At` spanning from token `from` to the last consumed token.
    fn at_from(&self, from: usize) -> At {
        let first = &self.toks[from.min(self.toks.len() - 1)];
        let last = &self.toks[self.i.saturating_sub(1).max(from).min(self.toks.len() - 1)];
        At {
            pos: first.pos,
            len: last.pos + last.len - first.pos,
            vlans: self.vlans,
        }
    }

    fn expect_op(&mut self, op: &str) -> R<()> {
        if self.is_op(op) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(format!("syntax error: expected '{op}'")))
        }
    }

    fn num(&mut self) -> R<u32> {
        // pnum: NUM | '(' pnum ')'
        if self.is_op("(") {
            self.i += 1;
            let n = self.nest(|p| p.num())?;
            self.expect_op(")")?;
            return Ok(n);
        }
        match self.peek() {
            Some(Tok::Num(n)) => {
                let n = *n;
                self.i += 1;
                Ok(n)
            }
            _ => Err(self.err("syntax error: expected a number")),
        }
    }

    fn unsupported(&self, t: &Token, what: &str) -> FilterError {
        self.err_at(
            t,
            format!("'{what}' is valid in tcpdump but not supported by netxray"),
        )
    }

    // ---- boolean structure ----

    /// expr: term (("and"|"or") (term | id))*. Returns the qualifiers of the
    /// last primitive, for a following bare id.
    fn expr(&mut self) -> R<(Expr, Option<Quals>)> {
        let (mut e, mut q) = self.term(None)?;
        loop {
            let and = if self.is_kw("and") {
                true
            } else if self.is_kw("or") {
                false
            } else {
                break;
            };
            self.i += 1;
            let (rhs, rq) = if self.starts_id() {
                let quals = q.ok_or_else(|| {
                    self.err("syntax error: a value needs a qualifier here (host, net, port, ...)")
                })?;
                let id = self.id(quals)?;
                (id, Some(quals))
            } else {
                self.term(q)?
            };
            e = if and {
                Expr::And(Box::new(e), Box::new(rhs))
            } else {
                Expr::Or(Box::new(e), Box::new(rhs))
            };
            q = rq;
        }
        Ok((e, q))
    }

    /// After `and`/`or`: does an id (a bare value, `not` value, or a
    /// parenthesised list of values) follow rather than a term?
    fn starts_id(&self) -> bool {
        let mut n = 0;
        while self.peek_at(n) == Some(&Tok::Kw("not")) {
            n += 1;
        }
        let mut parens = 0;
        while self.peek_at(n + parens) == Some(&Tok::Op("(")) {
            parens += 1;
        }
        match self.peek_at(n + parens) {
            Some(Tok::Num(_)) => {
                // A number starts arithmetic when an operator or a relation follows.
                let next = self.peek_at(n + parens + 1);
                !next.is_some_and(|t| relop(t).is_some() || arith_op(t).is_some())
            }
            Some(t) => is_value(t),
            None => false,
        }
    }

    /// term: "not" term | rterm. `inherited` are the qualifiers in force
    /// before a parenthesised expression.
    fn term(&mut self, inherited: Option<Quals>) -> R<(Expr, Option<Quals>)> {
        self.nest(|p| p.term_inner(inherited))
    }

    /// Run `f` one level deeper, refusing absurd nesting.
    fn nest<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<T> {
        if self.depth >= MAX_DEPTH {
            return Err(self.err("expression nested too deeply"));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn term_inner(&mut self, inherited: Option<Quals>) -> R<(Expr, Option<Quals>)> {
        if self.is_kw("not") {
            self.i += 1;
            let (e, q) = self.term(inherited)?;
            return Ok((Expr::Not(Box::new(e)), q));
        }
        self.rterm(inherited)
    }

    fn rterm(&mut self, inherited: Option<Quals>) -> R<(Expr, Option<Quals>)> {
        let Some(tok) = self.toks.get(self.i).cloned() else {
            return Err(self.err("syntax error: the expression ends too early"));
        };
        match &tok.tok {
            Tok::Op("(") => {
                // Arithmetic in parentheses, or a parenthesised expression.
                let save = (self.i, self.vlans);
                if let Ok(e) = self.relation() {
                    return Ok((e, None));
                }
                (self.i, self.vlans) = save;
                self.i += 1;
                let (e, _) = self.expr()?;
                self.expect_op(")")?;
                Ok((e, inherited))
            }
            Tok::Num(_) | Tok::Op("-") | Tok::Kw("len") => Ok((self.relation()?, None)),
            Tok::Kw(kw) => {
                let kw = *kw;
                if let Some(p) = pname(kw) {
                    match self.peek_at(1) {
                        Some(Tok::Op("[")) => return Ok((self.relation()?, None)),
                        Some(Tok::Kw(
                            "src" | "dst" | "host" | "net" | "port" | "portrange" | "proto"
                            | "protochain" | "gateway",
                        )) => return self.head_id(),
                        Some(Tok::Kw(w @ ("broadcast" | "multicast"))) => {
                            let w = *w;
                            let start = self.i;
                            self.i += 2;
                            let prim = self.cast(p, w, &tok)?;
                            return Ok((Expr::Prim(prim, self.at_from(start)), None));
                        }
                        _ => {}
                    }
                    if p == Proto::Link {
                        return Err(self.err_at(
                            &tok,
                            "'ether' needs host, src, dst, proto, broadcast or multicast after it",
                        ));
                    }
                    let start = self.i;
                    self.i += 1;
                    return Ok((Expr::Prim(Prim::Proto(p), self.at_from(start)), None));
                }
                match kw {
                    "src" | "dst" | "host" | "net" | "port" | "portrange" | "proto" => {
                        self.head_id()
                    }
                    "broadcast" | "multicast" => {
                        let start = self.i;
                        self.i += 1;
                        let prim = self.cast(Proto::Link, kw, &tok)?;
                        Ok((Expr::Prim(prim, self.at_from(start)), None))
                    }
                    // 802.2 LLC frames, and protocols known by their SAP.
                    "llc" | "stp" | "netbeui" | "iso"
                        if !matches!(self.peek_at(1), Some(Tok::Id(_) | Tok::Op("["))) =>
                    {
                        let start = self.i;
                        self.i += 1;
                        let prim = match kw {
                            "llc" => Prim::Llc,
                            "stp" => Prim::EtherProto(0x42),
                            "netbeui" => Prim::EtherProto(0xf0),
                            _ => Prim::EtherProto(0xfe),
                        };
                        Ok((Expr::Prim(prim, self.at_from(start)), None))
                    }
                    "less" | "greater" => {
                        let start = self.i;
                        self.i += 1;
                        let n = self.num()?;
                        let rel = if kw == "less" { Rel::Le } else { Rel::Ge };
                        let prim = Prim::Compare(Arith::Len, rel, Arith::Num(n));
                        Ok((Expr::Prim(prim, self.at_from(start)), None))
                    }
                    "vlan" => {
                        let start = self.i;
                        self.i += 1;
                        let id = if matches!(self.peek(), Some(Tok::Num(_)))
                            || (self.is_op("(") && matches!(self.peek_at(1), Some(Tok::Num(_))))
                        {
                            let n = self.num()?;
                            if n > 0x0fff {
                                return Err(FilterError::at(
                                    self.text,
                                    tok.pos,
                                    self.at_from(start).len,
                                    format!("VLAN tag {n} greater than maximum 4095"),
                                ));
                            }
                            Some(n as u16)
                        } else {
                            None
                        };
                        let at = self.at_from(start);
                        self.vlans = self.vlans.saturating_add(1);
                        Ok((Expr::Prim(Prim::Vlan(id), at), None))
                    }
                    "and" | "or" => Err(self.err_at(
                        &tok,
                        format!("syntax error: '{kw}' needs an expression before it"),
                    )),
                    w if UNSUPPORTED.contains(&w) => Err(self.unsupported(&tok, w)),
                    w => Err(self.err_at(&tok, format!("syntax error: unexpected '{w}'"))),
                }
            }
            Tok::Hid(_) | Tok::Hid6(_) | Tok::Mac(_) | Tok::Id(_) => Err(self.err_at(
                &tok,
                "syntax error: a value needs a qualifier in front (host, net, port, ...)",
            )),
            _ => Err(self.err_at(&tok, "syntax error")),
        }
    }

    /// `broadcast` / `multicast` after a protocol qualifier.
    fn cast(&self, p: Proto, what: &str, tok: &Token) -> R<Prim> {
        Ok(match (what, p) {
            ("broadcast", Proto::Link) => Prim::Broadcast,
            ("multicast", Proto::Link) => Prim::Multicast,
            ("multicast", Proto::Ip) => Prim::IpMulticast,
            ("multicast", Proto::Ip6) => Prim::Ip6Multicast,
            ("broadcast", Proto::Ip) => Prim::IpBroadcast,
            ("broadcast", _) => {
                return Err(self.err_at(tok, "only link-layer/IP broadcast filters supported"))
            }
            _ => {
                return Err(self.err_at(tok, "only link-layer/IP/IPv6 multicast filters supported"))
            }
        })
    }

    // ---- qualifiers and ids ----

    fn head_id(&mut self) -> R<(Expr, Option<Quals>)> {
        let mut q = Quals::default();
        if let Some(Tok::Kw(kw)) = self.peek() {
            if let Some(p) = pname(kw) {
                q.proto = Some(p);
                self.i += 1;
            }
        }
        // dqual
        if let Some(Tok::Kw(d @ ("src" | "dst"))) = self.peek() {
            let first = *d;
            self.i += 1;
            let other = if first == "src" { "dst" } else { "src" };
            let combined = match (self.peek(), self.peek_at(1)) {
                (Some(Tok::Kw("or")), Some(Tok::Kw(o))) if *o == other => Some(Dir::SrcOrDst),
                (Some(Tok::Kw("and")), Some(Tok::Kw(o))) if *o == other => Some(Dir::SrcAndDst),
                _ => None,
            };
            q.dir = Some(match combined {
                Some(d) => {
                    self.i += 2;
                    d
                }
                None if first == "src" => Dir::Src,
                None => Dir::Dst,
            });
        }
        // aqual
        if let Some(Tok::Kw(a)) = self.peek() {
            let addr = match *a {
                "host" => Some(Addr::Host),
                "net" => Some(Addr::Net),
                "port" => Some(Addr::Port),
                "portrange" => Some(Addr::Portrange),
                "proto" if q.dir.is_none() => Some(Addr::Proto),
                "protochain" | "gateway" => {
                    let t = self.toks[self.i].clone();
                    return Err(self.unsupported(&t, a));
                }
                _ => None,
            };
            if addr.is_some() {
                q.addr = addr;
                self.i += 1;
            }
        }
        if q.dir.is_none() && q.addr.is_none() {
            return Err(self.err("syntax error: expected host, net, port, portrange or proto"));
        }
        let e = self.id(q)?;
        Ok((e, Some(q)))
    }

    /// id: value | "not" id | "(" ids joined by and/or ")".
    fn id(&mut self, q: Quals) -> R<Expr> {
        self.nest(|p| p.id_inner(q))
    }

    fn id_inner(&mut self, q: Quals) -> R<Expr> {
        if self.is_kw("not") {
            self.i += 1;
            return Ok(Expr::Not(Box::new(self.id(q)?)));
        }
        if self.is_op("(") {
            // A parenthesised number is a value; otherwise a list of ids.
            if matches!(self.peek_at(1), Some(Tok::Num(_)))
                && self.peek_at(2) == Some(&Tok::Op(")"))
            {
                let start = self.i;
                let n = self.num()?;
                return self.value_num(q, n, start);
            }
            self.i += 1;
            let mut e = self.id(q)?;
            loop {
                if self.is_kw("and") {
                    self.i += 1;
                    e = Expr::And(Box::new(e), Box::new(self.id(q)?));
                } else if self.is_kw("or") {
                    self.i += 1;
                    e = Expr::Or(Box::new(e), Box::new(self.id(q)?));
                } else {
                    break;
                }
            }
            self.expect_op(")")?;
            return Ok(e);
        }
        let Some(tok) = self.toks.get(self.i).cloned() else {
            return Err(self.err("syntax error: expected an address, port or number"));
        };
        let start = self.i;
        self.i += 1;
        match tok.tok.clone() {
            Tok::Num(n) => self.value_num(q, n, start),
            Tok::Hid(s) => {
                if self.is_op("/") {
                    self.i += 1;
                    let len = self.num()?;
                    let prim = self.mcode(q, &s, MaskSpec::Len(len), start)?;
                    return Ok(Expr::Prim(prim, self.at_from(start)));
                }
                if self.is_kw("mask") {
                    self.i += 1;
                    let m = match self.peek().cloned() {
                        Some(Tok::Hid(m)) => m,
                        _ => return Err(self.err("syntax error: expected a dotted netmask")),
                    };
                    self.i += 1;
                    let prim = self.mcode(q, &s, MaskSpec::Dotted(&m), start)?;
                    return Ok(Expr::Prim(prim, self.at_from(start)));
                }
                let at = self.at_from(start);
                let what = match q.addr {
                    Some(Addr::Port) => Some("port"),
                    Some(Addr::Portrange) => Some("portrange"),
                    Some(Addr::Proto) => Some("proto"),
                    _ => None,
                };
                if let Some(w) = what {
                    return Err(self.err_at(&tok, format!("'{w}' modifier applied to ip host")));
                }
                let (v, bits) = atoin(&s)
                    .ok_or_else(|| self.err_at(&tok, format!("invalid IPv4 address '{s}'")))?;
                let shift = 32 - bits;
                let (addr, mask) = (shl(v, shift), shl(u32::MAX, shift));
                Ok(Expr::Prim(self.host4(q, addr, mask, &tok)?, at))
            }
            Tok::Hid6(a) => {
                let len = if self.is_op("/") {
                    self.i += 1;
                    self.num()?
                } else {
                    128
                };
                let at = self.at_from(start);
                let t = &self.toks[start];
                if len > 128 {
                    return Err(self.err_at(t, "mask length must be <= 128"));
                }
                let words = ipv6_words(&a);
                let mut mask = [0u32; 4];
                for (i, m) in mask.iter_mut().enumerate() {
                    let bits = (len as i32 - 32 * i as i32).clamp(0, 32) as u32;
                    *m = if bits == 0 {
                        0
                    } else {
                        u32::MAX << (32 - bits)
                    };
                }
                if words.iter().zip(mask).any(|(w, m)| w & !m != 0) {
                    return Err(self.err_at(t, format!("non-network bits set in \"{a}/{len}\"")));
                }
                match q.addr {
                    None | Some(Addr::Host) if len != 128 => {
                        return Err(self.err_at(t, "Mask syntax for networks only"))
                    }
                    None | Some(Addr::Host) | Some(Addr::Net) => {}
                    _ => return Err(self.err_at(t, "invalid qualifier against IPv6 address")),
                }
                match q.proto {
                    None | Some(Proto::Ip6) => {}
                    Some(p) => {
                        return Err(self.err_at(
                            t,
                            format!("'{}' modifier applied to ip6 host", proto_name(p)),
                        ))
                    }
                }
                Ok(Expr::Prim(
                    Prim::Host6 {
                        dir: q.dir.unwrap_or(Dir::SrcOrDst),
                        addr: words,
                        mask,
                    },
                    at,
                ))
            }
            Tok::Mac(mac) => {
                if matches!(q.addr, None | Some(Addr::Host)) && q.proto == Some(Proto::Link) {
                    Ok(Expr::Prim(
                        Prim::EtherHost {
                            dir: q.dir.unwrap_or(Dir::SrcOrDst),
                            mac,
                        },
                        self.at_from(start),
                    ))
                } else {
                    Err(self.err_at(&tok, "ethernet address used in non-ether expression"))
                }
            }
            Tok::Id(name) => {
                let at = self.at_from(start);
                Ok(Expr::Prim(self.scode(q, &name, &tok)?, at))
            }
            _ => {
                self.i -= 1;
                Err(self.err("syntax error: expected an address, port or number"))
            }
        }
    }

    /// A number as an id (libpcap's gen_ncode with no string).
    fn value_num(&mut self, q: Quals, v: u32, start: usize) -> R<Expr> {
        let at = self.at_from(start);
        let tok = self.toks[start].clone();
        let prim = match q.addr {
            None | Some(Addr::Host) | Some(Addr::Net) => {
                let (mut v, mut mask) = (v, u32::MAX);
                if q.addr == Some(Addr::Net) {
                    while v != 0 && v & 0xff00_0000 == 0 {
                        v <<= 8;
                        mask <<= 8;
                    }
                }
                self.host4(q, v, mask, &tok)?
            }
            Some(Addr::Port) | Some(Addr::Portrange) => {
                let l4 = self.port_proto(q, &tok)?;
                if v > 65535 {
                    return Err(self.err_at(&tok, format!("illegal port number {v} > 65535")));
                }
                Prim::Port {
                    l4,
                    dir: q.dir.unwrap_or(Dir::SrcOrDst),
                    lo: v as u16,
                    hi: v as u16,
                }
            }
            Some(Addr::Proto) => self.proto_prim(q, v, &tok)?,
        };
        Ok(Expr::Prim(prim, at))
    }

    fn port_proto(&self, q: Quals, tok: &Token) -> R<Option<u8>> {
        match q.proto {
            None => Ok(None),
            Some(Proto::Tcp) => Ok(Some(6)),
            Some(Proto::Udp) => Ok(Some(17)),
            Some(Proto::Sctp) => Ok(Some(132)),
            Some(_) => {
                let w = if q.addr == Some(Addr::Portrange) {
                    "portrange"
                } else {
                    "port"
                };
                Err(self.err_at(tok, format!("illegal qualifier of '{w}'")))
            }
        }
    }

    fn proto_prim(&self, q: Quals, v: u32, tok: &Token) -> R<Prim> {
        if q.dir.is_some() {
            return Err(self.err_at(tok, "direction applied to 'proto'"));
        }
        match q.proto {
            None => Ok(Prim::IpProto(None, v)),
            Some(Proto::Ip) => Ok(Prim::IpProto(Some(Proto::Ip), v)),
            Some(Proto::Ip6) => Ok(Prim::IpProto(Some(Proto::Ip6), v)),
            Some(Proto::Link) if matches!(v, 0xe0 | 0x809b | 0x80f3) => Err(self.err_at(
                tok,
                "ether proto for IPX/AppleTalk is not supported by netxray",
            )),
            Some(Proto::Link) => Ok(Prim::EtherProto(v)),
            Some(Proto::Arp) => Err(self.err_at(tok, "arp does not encapsulate another protocol")),
            Some(Proto::Rarp) => {
                Err(self.err_at(tok, "rarp does not encapsulate another protocol"))
            }
            Some(p) => Err(self.err_at(tok, format!("'{} proto' is bogus", proto_name(p)))),
        }
    }

    fn host4(&self, q: Quals, addr: u32, mask: u32, tok: &Token) -> R<Prim> {
        let kind = if q.addr == Some(Addr::Net) {
            "net"
        } else {
            "host"
        };
        let on = match q.proto {
            None => V4On::Any,
            Some(Proto::Ip) => V4On::Ip,
            Some(Proto::Arp) => V4On::Arp,
            Some(Proto::Rarp) => V4On::Rarp,
            Some(Proto::Link) => return Err(self.err_at(tok, "illegal link layer address")),
            Some(p) => {
                return Err(self.err_at(
                    tok,
                    format!("'{}' modifier applied to {kind}", proto_name(p)),
                ))
            }
        };
        Ok(Prim::Host4 {
            on,
            dir: q.dir.unwrap_or(Dir::SrcOrDst),
            addr,
            mask,
        })
    }

    /// `net a.b.c.d/len` and `net a.b.c.d mask m.m.m.m` (gen_mcode).
    fn mcode(&self, q: Quals, s: &str, m: MaskSpec<'_>, start: usize) -> R<Prim> {
        let tok = &self.toks[start];
        let (n, nbits) =
            atoin(s).ok_or_else(|| self.err_at(tok, format!("invalid IPv4 address '{s}'")))?;
        let n = shl(n, 32 - nbits);
        let (mask, shown) = match m {
            MaskSpec::Len(len) => {
                if len > 32 {
                    return Err(self.err_at(tok, "mask length must be <= 32"));
                }
                (shl(u32::MAX, 32 - len), format!("{s}/{len}"))
            }
            MaskSpec::Dotted(ms) => {
                let (m, mbits) = atoin(ms)
                    .ok_or_else(|| self.err_at(tok, format!("invalid IPv4 address '{ms}'")))?;
                (shl(m, 32 - mbits), format!("{s} mask {ms}"))
            }
        };
        if n & !mask != 0 {
            return Err(self.err_at(tok, format!("non-network bits set in \"{shown}\"")));
        }
        if q.addr != Some(Addr::Net) {
            return Err(self.err_at(tok, "Mask syntax for networks only"));
        }
        self.host4(q, n, mask, tok)
    }

    /// A name as an id (gen_scode): service and protocol names are looked
    /// up; host and network names are not (no DNS from a packet filter).
    fn scode(&self, q: Quals, name: &str, tok: &Token) -> R<Prim> {
        match q.addr {
            None | Some(Addr::Host) | Some(Addr::Net) => Err(self.err_at(
                tok,
                format!("'{name}': host and network names are not resolved; give an address"),
            )),
            Some(Addr::Port) => {
                let l4 = self.port_proto(q, tok)?;
                let (port, real) = names::service(name, l4)
                    .map_err(|m| self.err_at(tok, m))?
                    .ok_or_else(|| self.err_at(tok, format!("unknown port '{name}'")))?;
                Ok(Prim::Port {
                    l4: l4.or(real),
                    dir: q.dir.unwrap_or(Dir::SrcOrDst),
                    lo: port,
                    hi: port,
                })
            }
            Some(Addr::Portrange) => {
                let l4 = self.port_proto(q, tok)?;
                let (lo, hi, real) = names::port_range(name, l4)
                    .map_err(|m| self.err_at(tok, m))?
                    .ok_or_else(|| self.err_at(tok, format!("unknown port in range '{name}'")))?;
                Ok(Prim::Port {
                    l4: l4.or(real),
                    dir: q.dir.unwrap_or(Dir::SrcOrDst),
                    lo: lo.min(hi),
                    hi: lo.max(hi),
                })
            }
            Some(Addr::Proto) => {
                let v = if q.proto == Some(Proto::Link) {
                    names::ether_proto(name)
                        .ok_or_else(|| self.err_at(tok, format!("unknown ether proto '{name}'")))?
                } else {
                    names::ip_proto(name)
                        .ok_or_else(|| self.err_at(tok, format!("unknown ip proto '{name}'")))?
                };
                self.proto_prim(q, v, tok)
            }
        }
    }

    // ---- arithmetic ----

    /// arth relop arth
    fn relation(&mut self) -> R<Expr> {
        let start = self.i;
        let a = self.arith()?;
        let rel = match self.peek().and_then(relop) {
            Some(r) => r,
            None => return Err(self.err("syntax error: expected a comparison (=, !=, <, >, ...)")),
        };
        self.i += 1;
        let b = self.arith()?;
        Ok(Expr::Prim(Prim::Compare(a, rel, b), self.at_from(start)))
    }

    fn arith(&mut self) -> R<Arith> {
        self.arith_prec(0)
    }

    /// Precedence climbing, with libpcap's shift on `%` and `^`.
    fn arith_prec(&mut self, min: u8) -> R<Arith> {
        self.nest(|p| p.arith_prec_inner(min))
    }

    fn arith_prec_inner(&mut self, min: u8) -> R<Arith> {
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.peek().and_then(arith_op) {
            match prec {
                None => {
                    self.i += 1;
                    let rhs = self.arith_prec(0)?;
                    lhs = Arith::Bin(op, Box::new(lhs), Box::new(rhs));
                }
                Some(p) if p >= min => {
                    self.i += 1;
                    let rhs = self.arith_prec(p + 1)?;
                    lhs = Arith::Bin(op, Box::new(lhs), Box::new(rhs));
                }
                Some(_) => break,
            }
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> R<Arith> {
        self.nest(|p| p.unary_inner())
    }

    fn unary_inner(&mut self) -> R<Arith> {
        if self.is_op("-") {
            self.i += 1;
            let mut a = self.unary()?;
            // `- a ^ b` is `-(a ^ b)`: the grammar shifts on `^` and `%`.
            while let Some((op, None)) = self.peek().and_then(arith_op) {
                self.i += 1;
                let rhs = self.arith_prec(0)?;
                a = Arith::Bin(op, Box::new(a), Box::new(rhs));
            }
            return Ok(Arith::Neg(Box::new(a)));
        }
        self.primary()
    }

    fn primary(&mut self) -> R<Arith> {
        let Some(tok) = self.toks.get(self.i).cloned() else {
            return Err(self.err("syntax error: expected a number or a load"));
        };
        match &tok.tok {
            Tok::Num(n) => {
                self.i += 1;
                Ok(Arith::Num(*n))
            }
            Tok::Kw("len") => {
                self.i += 1;
                Ok(Arith::Len)
            }
            Tok::Op("(") => {
                self.i += 1;
                let a = self.arith()?;
                self.expect_op(")")?;
                Ok(a)
            }
            Tok::Kw(kw) => {
                let Some(proto) = pname(kw) else {
                    if UNSUPPORTED.contains(kw) {
                        return Err(self.unsupported(&tok, kw));
                    }
                    return Err(self.err_at(&tok, "syntax error: expected a number or a load"));
                };
                if matches!(proto, Proto::Ah | Proto::Esp) {
                    return Err(self.err_at(&tok, "unsupported index operation"));
                }
                self.i += 1;
                self.expect_op("[")?;
                let index = self.arith()?;
                let size = if self.is_op(":") {
                    self.i += 1;
                    let at = self.here();
                    let n = self.num()?;
                    if !matches!(n, 1 | 2 | 4) {
                        return Err(FilterError::at(
                            self.text,
                            at.0,
                            at.1,
                            "data size must be 1, 2, or 4",
                        ));
                    }
                    n as u8
                } else {
                    1
                };
                self.expect_op("]")?;
                Ok(Arith::Load {
                    proto,
                    index: Box::new(index),
                    size,
                })
            }
            _ => Err(self.err_at(&tok, "syntax error: expected a number or a load")),
        }
    }
}

fn check_arith(text: &str, a: &Arith, at: At) -> R<()> {
    if let Arith::Bin(op, x, y) = a {
        check_arith(text, x, at)?;
        check_arith(text, y, at)?;
        if let Arith::Num(k) = **y {
            let bad = match op {
                ArithOp::Div if k == 0 => Some("division by zero"),
                ArithOp::Mod if k == 0 => Some("modulus by zero"),
                ArithOp::Lsh | ArithOp::Rsh if k > 31 => Some("shift by more than 31 bits"),
                _ => None,
            };
            if let Some(m) = bad {
                return Err(FilterError::at(text, at.pos, at.len, m));
            }
        }
    }
    if let Arith::Neg(x) = a {
        check_arith(text, x, at)?;
    }
    if let Arith::Load { index, .. } = a {
        check_arith(text, index, at)?;
    }
    Ok(())
}

/// Compile-time errors libpcap raises for constant operands.
pub(super) fn check(text: &str, e: &Expr) -> R<()> {
    match e {
        Expr::True => Ok(()),
        Expr::And(a, b) | Expr::Or(a, b) => {
            check(text, a)?;
            check(text, b)
        }
        Expr::Not(a) => check(text, a),
        Expr::Prim(Prim::Compare(a, _, b), at) => {
            check_arith(text, a, *at)?;
            check_arith(text, b, *at)
        }
        Expr::Prim(..) => Ok(()),
    }
}

enum MaskSpec<'a> {
    Len(u32),
    Dotted(&'a str),
}

fn shl(v: u32, n: u32) -> u32 {
    if n >= 32 {
        0
    } else {
        v << n
    }
}

/// libpcap's __pcap_atoin: dotted decimal parts, value and bits given.
fn atoin(s: &str) -> Option<(u32, u32)> {
    let mut v: u32 = 0;
    let mut bits = 0;
    for part in s.split('.') {
        let n: u32 = part.parse().ok()?;
        if n > 255 {
            return None;
        }
        v = (v << 8) | n;
        bits += 8;
    }
    (bits <= 32).then_some((v, bits))
}

fn ipv6_words(a: &std::net::Ipv6Addr) -> [u32; 4] {
    let o = a.octets();
    std::array::from_fn(|i| {
        u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
    })
}

pub(super) fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Link => "link",
        Proto::Ip => "ip",
        Proto::Ip6 => "ip6",
        Proto::Arp => "arp",
        Proto::Rarp => "rarp",
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Sctp => "sctp",
        Proto::Icmp => "icmp",
        Proto::Icmp6 => "icmp6",
        Proto::Igmp => "igmp",
        Proto::Igrp => "igrp",
        Proto::Pim => "pim",
        Proto::Vrrp => "vrrp",
        Proto::Carp => "carp",
        Proto::Ah => "ah",
        Proto::Esp => "esp",
    }
}

/// Service, protocol and ethertype names (what libpcap looks up in
/// /etc/services, /etc/protocols and its own tables).
mod names {
    use std::fs;

    fn services() -> Vec<(String, u16, String)> {
        let Ok(text) = fs::read_to_string("/etc/services") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(pp)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, proto)) = pp.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            for n in std::iter::once(name).chain(words) {
                out.push((n.to_string(), port, proto.to_string()));
            }
        }
        out
    }

    /// A service name -> (port, the protocol it is defined for when only
    /// one of tcp/udp/sctp has it).
    pub fn service(name: &str, l4: Option<u8>) -> Result<Option<(u16, Option<u8>)>, String> {
        let all = services();
        let find = |proto: &str| {
            all.iter()
                .find(|(n, _, p)| n == name && p == proto)
                .map(|(_, port, _)| *port)
        };
        let (tcp, udp, sctp) = (find("tcp"), find("udp"), find("sctp"));
        Ok(match l4 {
            Some(6) => tcp.map(|p| (p, None)),
            Some(17) => udp.map(|p| (p, None)),
            Some(132) => sctp.map(|p| (p, None)),
            _ => match (tcp, udp, sctp) {
                (Some(t), Some(u), _) if t == u => Some((t, None)),
                (Some(_), Some(_), _) => {
                    return Err(format!(
                        "port '{name}' differs between tcp and udp; say 'tcp port' or 'udp port'"
                    ))
                }
                (Some(t), None, _) => Some((t, Some(6))),
                (None, Some(u), _) => Some((u, Some(17))),
                (None, None, Some(s)) => Some((s, Some(132))),
                (None, None, None) => None,
            },
        })
    }

    /// `lo-hi` with numbers (decimal, as libpcap's sscanf) or names.
    #[allow(clippy::type_complexity)]
    pub fn port_range(s: &str, l4: Option<u8>) -> Result<Option<(u16, u16, Option<u8>)>, String> {
        let Some((a, b)) = s.split_once('-') else {
            return Ok(None);
        };
        let one = |w: &str| -> Result<Option<(u16, Option<u8>)>, String> {
            if let Ok(n) = w.parse::<u32>() {
                if n > 65535 {
                    return Err(format!("illegal port number {n} > 65535"));
                }
                return Ok(Some((n as u16, None)));
            }
            service(w, l4)
        };
        let (Some((lo, p1)), Some((hi, p2))) = (one(a)?, one(b)?) else {
            return Ok(None);
        };
        Ok(Some((lo, hi, p1.or(p2))))
    }

    pub fn ip_proto(name: &str) -> Option<u32> {
        if let Ok(text) = fs::read_to_string("/etc/protocols") {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("");
                let mut words = line.split_whitespace();
                let (Some(n), Some(num)) = (words.next(), words.next()) else {
                    continue;
                };
                if n == name || words.any(|a| a == name) {
                    return num.parse().ok();
                }
            }
        }
        Some(match name {
            "ip" => 0,
            "icmp" => 1,
            "igmp" => 2,
            "tcp" => 6,
            "udp" => 17,
            "ipv6" => 41,
            "gre" => 47,
            "esp" => 50,
            "ah" => 51,
            "ipv6-icmp" => 58,
            "pim" => 103,
            "vrrp" => 112,
            "sctp" => 132,
            _ => return None,
        })
    }

    pub fn ether_proto(name: &str) -> Option<u32> {
        Some(match name {
            "ip" => 0x0800,
            "ip6" => 0x86dd,
            "arp" => 0x0806,
            "rarp" => 0x8035,
            "loopback" => 0x9000,
            "decnet" => 0x6003,
            "lat" => 0x6004,
            "sca" => 0x6007,
            "moprc" => 0x6002,
            "mopdl" => 0x6001,
            "iso" => 0xfe,
            "stp" => 0x42,
            "netbeui" => 0xf0,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> FilterError {
        parse(s).expect_err(s)
    }

    #[test]
    fn and_or_are_left_associative_with_equal_precedence() {
        let e = p("udp or tcp and icmp");
        let Expr::And(l, _) = e else { panic!("{e:?}") };
        assert!(matches!(*l, Expr::Or(..)));
    }

    #[test]
    fn bare_values_inherit_qualifiers() {
        let e = p("tcp port 80 or 443");
        let Expr::Or(_, r) = e else { panic!() };
        assert!(matches!(
            *r,
            Expr::Prim(
                Prim::Port {
                    l4: Some(6),
                    lo: 443,
                    hi: 443,
                    ..
                },
                _
            )
        ));
        let e = p("host 198.18.0.1 and not 198.18.0.2");
        let Expr::And(_, r) = e else { panic!() };
        assert!(matches!(*r, Expr::Not(_)));
        assert!(parse("host (198.18.0.1 or 198.18.0.2)").is_ok());
        assert_eq!(err("tcp or 80").pos, 7);
    }

    #[test]
    fn vlan_counts_for_what_follows() {
        let e = p("vlan 100 and ip");
        let Expr::And(l, r) = e else { panic!() };
        assert!(matches!(
            *l,
            Expr::Prim(Prim::Vlan(Some(100)), At { vlans: 0, .. })
        ));
        assert!(matches!(
            *r,
            Expr::Prim(Prim::Proto(Proto::Ip), At { vlans: 1, .. })
        ));
    }

    #[test]
    fn arithmetic_precedence_follows_libpcap() {
        // '|' binds looser than '+'.
        let Expr::Prim(Prim::Compare(a, Rel::Eq, _), _) = p("1 | 2 + 3 = 5") else {
            panic!()
        };
        assert!(matches!(a, Arith::Bin(ArithOp::Or, _, _)));
        // '^' grabs everything to its right.
        let Expr::Prim(Prim::Compare(a, _, _), _) = p("ip[2:2] ^ 3 | 4 = 1") else {
            panic!()
        };
        let Arith::Bin(ArithOp::Xor, _, r) = a else {
            panic!("{a:?}")
        };
        assert!(matches!(*r, Arith::Bin(ArithOp::Or, _, _)));
        assert!(parse("(ip[0] & 0xf) > 5").is_ok());
        assert!(parse("(tcp[0] = 1)").is_ok());
        assert!(parse("tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420").is_ok());
    }

    #[test]
    fn nets_and_masks() {
        let e = p("net 198.18.0.0/15");
        assert!(matches!(
            e,
            Expr::Prim(
                Prim::Host4 {
                    on: V4On::Any,
                    addr: 0xc612_0000,
                    mask: 0xfffe_0000,
                    ..
                },
                _
            )
        ));
        assert!(matches!(
            p("net 198.18"),
            Expr::Prim(
                Prim::Host4 {
                    mask: 0xffff_0000,
                    ..
                },
                _
            )
        ));
        assert!(matches!(
            p("net 10"),
            Expr::Prim(
                Prim::Host4 {
                    addr: 0x0a00_0000,
                    mask: 0xff00_0000,
                    ..
                },
                _
            )
        ));
        assert!(err("host 198.18.0.0/15").msg.contains("networks only"));
        assert!(err("net 198.18.0.1/15").msg.contains("non-network bits"));
        assert!(err("net 2001:db8::1/32").msg.contains("non-network bits"));
        assert!(parse("net 2001:db8::/32").is_ok());
    }

    #[test]
    fn refusals_name_the_word_and_its_position() {
        let e = err("tcp and protochain 6");
        assert_eq!(e.pos, 8);
        assert!(e.msg.contains("protochain"));
        let e = err("ip and mpls");
        assert_eq!(e.pos, 7);
        assert!(err("host example.com").msg.contains("not resolved"));
        assert!(err("198.18.0.1").msg.contains("qualifier"));
        assert!(err("ip[0] / 0 = 1").msg.contains("division by zero"));
        assert!(err("vlan 4096").msg.contains("4095"));
        assert!(err("tcp[0:3] = 1").msg.contains("size"));
        assert!(err("ip port 80").msg.contains("illegal qualifier"));
        assert!(err("tcp and").msg.contains("ends too early"));
        let shown = err("tcp and gateway x").to_string();
        assert!(
            shown.contains("\n  tcp and gateway x\n          ^^^^^^^"),
            "{shown}"
        );
    }

    #[test]
    fn absurd_nesting_is_refused_not_overflowed() {
        for open in ["(", "not ", "-", "ip["] {
            let text = format!("{}tcp", open.repeat(100_000));
            assert!(err(&text).msg.contains("nested too deeply"), "{open}");
        }
    }

    #[test]
    fn flow_only_contexts_refuse_packet_primitives() {
        let text = "tcp and port 80 and tcp[13] = 2";
        let e = p(text);
        let err = e.check_flow_only(text).unwrap_err();
        assert_eq!(err.pos, 20);
        let text = "host 198.18.0.1 and (tcp or udp) and not port 53";
        assert!(p(text).check_flow_only(text).is_ok());
    }
}
