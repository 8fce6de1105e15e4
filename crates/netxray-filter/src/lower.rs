//! Primitives -> a formula of loads and compares with libpcap 1.10's exact
//! meaning (gencode.c), shared by the kernel code generator and the
//! user-space evaluator.
//!
//! A load outside the packet makes the whole filter reject, even under
//! `not`, as in BPF. Checks run in libpcap's order, which matters only for
//! that rule. Known libpcap behaviours kept on purpose: `tcp[..]`, `udp[..]`,
//! `icmp[..]` are IPv4 only; `port` on IPv6 does not walk extension headers
//! while `tcp`/`udp`/`proto N` on IPv6 also accept one fragment header; in
//! arithmetic the right operand's protocol checks are dropped
//! (`1 + tcp[0] > 0` has none).

use super::{Arith, ArithOp, At, Dir, Expr, Prim, Proto, Rel, V4On};
use std::sync::Arc;

/// Where a load's offset counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Base {
    /// The Ethernet header; the load fails when there is none.
    Link,
    /// The link-layer payload after `n` VLAN tags (14 + 4n; 0 without L2).
    Net(u8),
    /// Net(n) + 40: the byte after the fixed IPv6 header.
    Ip6Payload(u8),
    /// Net(n) + 4 * IHL: the IPv4 payload. The index plus the header length
    /// wrap at 32 bits, as in BPF's X register.
    Ip4Payload(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Val {
    K(u32),
    /// The packet's length on the wire.
    Len,
    /// The ethertype after `n` tags: bytes 12 + 4n with L2, else the
    /// kernel's protocol for the packet.
    EtherType(u8),
    Load {
        base: Base,
        index: Box<Val>,
        size: u8,
    },
    Bin(ArithOp, Box<Val>, Box<Val>),
    Neg(Box<Val>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmp {
    Eq,
    Gt,
    Ge,
    /// `a & b != 0`
    Set,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Low {
    True,
    Cmp(Val, Cmp, Val),
    And(Vec<Low>),
    Or(Vec<Low>),
    Not(Box<Low>),
    /// Each field in turn (`set.width` bytes at each of `fields` past
    /// `base`): outside the packet, the whole filter rejects; in the set,
    /// true.
    Member {
        base: Base,
        fields: Vec<u32>,
        set: Arc<Set>,
    },
}

/// Addresses, nets or ports a filter looks up instead of comparing them
/// one by one: a run of at least [`SET_MIN`] alternatives of one kind
/// (`host A or host B or ...`, `port (1 or 2 or ...)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// Its number in the filter (the key's first 4 bytes in the kernel).
    pub id: u32,
    /// Bytes of a value: 2 (port), 4 (IPv4), 4 to 16 (IPv6, whole words).
    pub width: u8,
    pub entries: Vec<Entry>,
}

/// A value in network order, with the number of its leading bits that
/// must match.
pub type Entry = (Vec<u8>, u8);

impl Set {
    pub fn contains(&self, v: &[u8]) -> bool {
        self.entries.iter().any(|(e, bits)| prefix_eq(e, v, *bits))
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let whole = bits as usize / 8;
    let rest = bits % 8;
    if a.len() < whole || b.len() < whole || a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(whole), b.get(whole)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// Below this many alternatives of one kind, compares: a set lookup costs
/// a helper call and a trie walk, about what 8 compares cost.
pub(super) const SET_MIN: usize = 8;

fn cmp(v: Val, c: Cmp, k: u32) -> Low {
    Low::Cmp(v, c, Val::K(k))
}

fn load(base: Base, off: u32, size: u8) -> Val {
    Val::Load {
        base,
        index: Box::new(Val::K(off)),
        size,
    }
}

fn masked(v: Val, mask: u32) -> Val {
    if mask == u32::MAX {
        v
    } else {
        Val::Bin(ArithOp::And, Box::new(v), Box::new(Val::K(mask)))
    }
}

/// `(v & mask) == k`; a zero mask tests nothing (libpcap's optimizer drops
/// the load too).
fn mcmp(v: Val, mask: u32, k: u32) -> Low {
    if mask == 0 {
        Low::True
    } else {
        cmp(masked(v, mask), Cmp::Eq, k & mask)
    }
}

fn ethertype(n: u8, t: u32) -> Low {
    cmp(Val::EtherType(n), Cmp::Eq, t)
}

fn ip4_proto(n: u8, p: u32) -> Low {
    Low::And(vec![
        ethertype(n, 0x0800),
        cmp(load(Base::Net(n), 9, 1), Cmp::Eq, p),
    ])
}

/// `ip6 proto p`: the next header, or a fragment header followed by p.
fn ip6_proto(n: u8, p: u32) -> Low {
    let nh = || load(Base::Net(n), 6, 1);
    Low::And(vec![
        ethertype(n, 0x86dd),
        Low::Or(vec![
            cmp(nh(), Cmp::Eq, p),
            Low::And(vec![
                cmp(nh(), Cmp::Eq, 44),
                cmp(load(Base::Net(n), 40, 1), Cmp::Eq, p),
            ]),
        ]),
    ])
}

fn ip_proto(n: u8, p: u32) -> Low {
    Low::Or(vec![ip4_proto(n, p), ip6_proto(n, p)])
}

fn not_ip4_fragment(n: u8) -> Low {
    Low::Not(Box::new(cmp(load(Base::Net(n), 6, 2), Cmp::Set, 0x1fff)))
}

/// The primitive `proto` on its own (gen_proto_abbrev).
fn abbrev(n: u8, p: Proto) -> Low {
    match p {
        Proto::Link => Low::True,
        Proto::Ip => ethertype(n, 0x0800),
        Proto::Ip6 => ethertype(n, 0x86dd),
        Proto::Arp => ethertype(n, 0x0806),
        Proto::Rarp => ethertype(n, 0x8035),
        Proto::Tcp => ip_proto(n, 6),
        Proto::Udp => ip_proto(n, 17),
        Proto::Sctp => ip_proto(n, 132),
        Proto::Pim => ip_proto(n, 103),
        Proto::Ah => ip_proto(n, 51),
        Proto::Esp => ip_proto(n, 50),
        Proto::Icmp => ip4_proto(n, 1),
        Proto::Igmp => ip4_proto(n, 2),
        Proto::Igrp => ip4_proto(n, 9),
        Proto::Vrrp | Proto::Carp => ip4_proto(n, 112),
        Proto::Icmp6 => ip6_proto(n, 58),
    }
}

fn combine(dir: Dir, src: Low, dst: Low) -> Low {
    match dir {
        Dir::Src => src,
        Dir::Dst => dst,
        Dir::SrcOrDst => Low::Or(vec![src, dst]),
        Dir::SrcAndDst => Low::And(vec![src, dst]),
    }
}

fn port_cmp(v: Val, lo: u16, hi: u16) -> Low {
    if lo == hi {
        cmp(v, Cmp::Eq, lo.into())
    } else {
        Low::And(vec![
            cmp(v.clone(), Cmp::Ge, lo.into()),
            Low::Not(Box::new(cmp(v, Cmp::Gt, hi.into()))),
        ])
    }
}

/// `[tcp|udp|sctp] port` in both families; `ports(base)` tests the
/// transport header at `base`.
fn port_with(n: u8, l4: Option<u8>, ports: impl Fn(Base) -> Low) -> Low {
    let protos: Vec<u32> = match l4 {
        Some(p) => vec![p.into()],
        None => vec![6, 17, 132],
    };
    // One family: its ethertype, where its protocol byte is, where the
    // transport header is, and (IPv4) the first-fragment test.
    let family = |et: u32, proto_at: u32, l4: Base, frag: Option<Low>| {
        let proto = Low::Or(
            protos
                .iter()
                .map(|&p| cmp(load(Base::Net(n), proto_at, 1), Cmp::Eq, p))
                .collect(),
        );
        Low::And(
            [Some(ethertype(n, et)), Some(proto), frag, Some(ports(l4))]
                .into_iter()
                .flatten()
                .collect(),
        )
    };
    Low::Or(vec![
        family(0x0800, 9, Base::Ip4Payload(n), Some(not_ip4_fragment(n))),
        family(0x86dd, 6, Base::Ip6Payload(n), None),
    ])
}

fn port(n: u8, l4: Option<u8>, dir: Dir, lo: u16, hi: u16) -> Low {
    port_with(n, l4, |l4| {
        combine(
            dir,
            port_cmp(load(l4, 0, 2), lo, hi),
            port_cmp(load(l4, 2, 2), lo, hi),
        )
    })
}

/// An IPv4 address test in the families `on` names; `test(src, dst)` gets
/// where the addresses are in each.
fn v4_with(n: u8, on: V4On, test: impl Fn(u32, u32) -> Low) -> Low {
    let one = |et: u32, src: u32, dst: u32| Low::And(vec![ethertype(n, et), test(src, dst)]);
    match on {
        V4On::Ip => one(0x0800, 12, 16),
        V4On::Arp => one(0x0806, 14, 24),
        V4On::Rarp => one(0x8035, 14, 24),
        V4On::Any => Low::Or(vec![
            one(0x0800, 12, 16),
            one(0x0806, 14, 24),
            one(0x8035, 14, 24),
        ]),
    }
}

fn host4(n: u8, on: V4On, dir: Dir, addr: u32, mask: u32) -> Low {
    v4_with(n, on, |src, dst| {
        combine(
            dir,
            mcmp(load(Base::Net(n), src, 4), mask, addr),
            mcmp(load(Base::Net(n), dst, 4), mask, addr),
        )
    })
}

fn host6(n: u8, dir: Dir, addr: [u32; 4], mask: [u32; 4]) -> Low {
    let at = |off: u32| {
        Low::And(
            (0..4)
                .map(|i| mcmp(load(Base::Net(n), off + 4 * i as u32, 4), mask[i], addr[i]))
                .collect(),
        )
    };
    Low::And(vec![ethertype(n, 0x86dd), combine(dir, at(8), at(24))])
}

fn ether_host(dir: Dir, mac: [u8; 6]) -> Low {
    let at = |off: u32| {
        Low::And(vec![
            cmp(
                load(Base::Link, off + 2, 4),
                Cmp::Eq,
                u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]),
            ),
            cmp(
                load(Base::Link, off, 2),
                Cmp::Eq,
                u16::from_be_bytes([mac[0], mac[1]]).into(),
            ),
        ])
    };
    combine(dir, at(6), at(0))
}

fn ether_proto(n: u8, v: u32) -> Low {
    if v > 1500 {
        return ethertype(n, v);
    }
    let llc = Low::Not(Box::new(cmp(Val::EtherType(n), Cmp::Gt, 1500)));
    let sap = match v {
        // ISO, IP and NetBEUI SAPs: DSAP and SSAP both.
        0x06 | 0xfe | 0xf0 => cmp(load(Base::Net(n), 0, 2), Cmp::Eq, (v << 8) | v),
        _ => cmp(load(Base::Net(n), 0, 1), Cmp::Eq, v),
    };
    Low::And(vec![llc, sap])
}

fn vlan(n: u8, id: Option<u16>) -> Low {
    let tpid = Low::Or(vec![
        ethertype(n, 0x8100),
        ethertype(n, 0x88a8),
        ethertype(n, 0x9100),
    ]);
    match id {
        None => tpid,
        Some(id) => Low::And(vec![
            tpid,
            mcmp(load(Base::Net(n), 0, 2), 0x0fff, id.into()),
        ]),
    }
}

/// An arithmetic expression: its value and the protocol checks that must
/// hold before it is computed.
fn arith(n: u8, a: &Arith) -> (Val, Vec<Low>) {
    match a {
        Arith::Num(k) => (Val::K(*k), Vec::new()),
        Arith::Len => (Val::Len, Vec::new()),
        Arith::Neg(x) => {
            let (v, c) = arith(n, x);
            (Val::Neg(Box::new(v)), c)
        }
        Arith::Bin(op, x, y) => {
            let (vx, cx) = arith(n, x);
            // libpcap 1.10's gen_arth keeps only the left operand's checks.
            let (vy, _) = arith(n, y);
            (Val::Bin(*op, Box::new(vx), Box::new(vy)), cx)
        }
        Arith::Load { proto, index, size } => {
            let (vi, ci) = arith(n, index);
            let (base, checks) = match proto {
                Proto::Link => (Base::Link, ci),
                Proto::Ip | Proto::Ip6 | Proto::Arp | Proto::Rarp => {
                    let mut c = ci;
                    c.push(abbrev(n, *proto));
                    (Base::Net(n), c)
                }
                Proto::Icmp6 => {
                    let mut c = ci;
                    c.push(ethertype(n, 0x86dd));
                    c.push(cmp(load(Base::Net(n), 6, 1), Cmp::Eq, 58));
                    (Base::Ip6Payload(n), c)
                }
                _ => {
                    let mut c = vec![ethertype(n, 0x0800)];
                    c.extend(ci);
                    c.push(abbrev(n, *proto));
                    c.push(not_ip4_fragment(n));
                    (Base::Ip4Payload(n), c)
                }
            };
            (
                Val::Load {
                    base,
                    index: Box::new(vi),
                    size: *size,
                },
                checks,
            )
        }
    }
}

fn compare(n: u8, a: &Arith, rel: Rel, b: &Arith) -> Low {
    let (va, mut checks) = arith(n, a);
    let (vb, cb) = arith(n, b);
    checks.extend(cb);
    let test = match rel {
        Rel::Eq => Low::Cmp(va, Cmp::Eq, vb),
        Rel::Gt => Low::Cmp(va, Cmp::Gt, vb),
        Rel::Ge => Low::Cmp(va, Cmp::Ge, vb),
        Rel::Ne => Low::Not(Box::new(Low::Cmp(va, Cmp::Eq, vb))),
        Rel::Lt => Low::Not(Box::new(Low::Cmp(va, Cmp::Ge, vb))),
        Rel::Le => Low::Not(Box::new(Low::Cmp(va, Cmp::Gt, vb))),
    };
    checks.push(test);
    Low::And(checks)
}

fn prim(p: &Prim, n: u8) -> Low {
    match p {
        Prim::Proto(pr) => abbrev(n, *pr),
        Prim::IpProto(None, v) => ip_proto(n, *v),
        Prim::IpProto(Some(Proto::Ip6), v) => ip6_proto(n, *v),
        Prim::IpProto(Some(_), v) => ip4_proto(n, *v),
        Prim::EtherProto(v) => ether_proto(n, *v),
        Prim::Host4 {
            on,
            dir,
            addr,
            mask,
        } => host4(n, *on, *dir, *addr, *mask),
        Prim::Host6 { dir, addr, mask } => host6(n, *dir, *addr, *mask),
        Prim::EtherHost { dir, mac } => ether_host(*dir, *mac),
        Prim::Port { l4, dir, lo, hi } => port(n, *l4, *dir, *lo, *hi),
        Prim::Vlan(id) => vlan(n, *id),
        Prim::Broadcast => Low::And(vec![
            cmp(load(Base::Link, 2, 4), Cmp::Eq, u32::MAX),
            cmp(load(Base::Link, 0, 2), Cmp::Eq, 0xffff),
        ]),
        Prim::Multicast => cmp(load(Base::Link, 0, 1), Cmp::Set, 1),
        Prim::IpMulticast => Low::And(vec![
            ethertype(n, 0x0800),
            cmp(load(Base::Net(n), 16, 1), Cmp::Ge, 224),
        ]),
        Prim::IpBroadcast => Low::And(vec![
            ethertype(n, 0x0800),
            Low::Or(vec![
                cmp(load(Base::Net(n), 16, 4), Cmp::Eq, 0),
                cmp(load(Base::Net(n), 16, 4), Cmp::Eq, u32::MAX),
            ]),
        ]),
        Prim::Llc => Low::And(vec![
            Low::Not(Box::new(cmp(Val::EtherType(n), Cmp::Gt, 1500))),
            Low::Not(Box::new(cmp(load(Base::Net(n), 0, 2), Cmp::Eq, 0xffff))),
        ]),
        Prim::Ip6Multicast => Low::And(vec![
            ethertype(n, 0x86dd),
            cmp(load(Base::Net(n), 24, 1), Cmp::Eq, 255),
        ]),
        Prim::Compare(a, rel, b) => compare(n, a, *rel, b),
    }
}

/// The fields a set test looks at, by direction.
fn fields(dir: Dir, src: u32, dst: u32) -> Vec<u32> {
    match dir {
        Dir::Src => vec![src],
        Dir::Dst => vec![dst],
        _ => vec![src, dst],
    }
}

/// What alternatives must share to be looked up in one set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    V4(V4On, Dir, u8),
    /// Direction, VLAN tags, and how many 32-bit words the prefixes span
    /// (so every alternative loads the same words).
    V6(Dir, u8, u8),
    Port(Option<u8>, Dir, u8),
}

impl Shape {
    fn dir(self) -> Dir {
        match self {
            Shape::V4(_, d, _) | Shape::V6(d, _, _) | Shape::Port(_, d, _) => d,
        }
    }

    fn width(self) -> u8 {
        match self {
            Shape::V4(..) => 4,
            Shape::V6(_, _, words) => 4 * words,
            Shape::Port(..) => 2,
        }
    }
}

/// The length of a contiguous mask of `bits` bits, None when it has holes.
fn prefix_len(mask: u128, bits: u32) -> Option<u8> {
    let top = mask << (128 - bits);
    let ones = top.leading_ones();
    (top.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// [lo, hi] as prefixes of 16-bit ports.
fn port_prefixes(lo: u16, hi: u16) -> Vec<Entry> {
    let mut out = Vec::new();
    let (mut lo, hi) = (lo as u32, hi as u32);
    while lo <= hi {
        // The largest aligned block at lo that ends at or before hi.
        let mut size = if lo == 0 {
            1 << 16
        } else {
            1 << lo.trailing_zeros()
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        out.push((
            (lo as u16).to_be_bytes().to_vec(),
            16 - size.trailing_zeros() as u8,
        ));
        lo += size;
    }
    out
}

/// A primitive that can join a set: its shape and its values.
fn member(e: &Expr) -> Option<(Shape, Vec<Entry>)> {
    let Expr::Prim(p, at) = e else { return None };
    let n = at.vlans;
    // Both fields of one alternative would have to match the same entry.
    let dir_ok = |d: &Dir| *d != Dir::SrcAndDst;
    match p {
        Prim::Host4 {
            on,
            dir,
            addr,
            mask,
        } if dir_ok(dir) => {
            let bits = prefix_len(*mask as u128, 32)?;
            (bits > 0).then(|| {
                (
                    Shape::V4(*on, *dir, n),
                    vec![((addr & mask).to_be_bytes().to_vec(), bits)],
                )
            })
        }
        Prim::Host6 { dir, addr, mask } if dir_ok(dir) => {
            let wide = |w: &[u32; 4]| w.iter().fold(0u128, |a, x| (a << 32) | *x as u128);
            let bits = prefix_len(wide(mask), 128)?;
            if bits == 0 {
                return None;
            }
            let words = bits.div_ceil(32);
            let value = (wide(addr) & wide(mask)).to_be_bytes();
            Some((
                Shape::V6(*dir, n, words),
                vec![(value[..4 * words as usize].to_vec(), bits)],
            ))
        }
        Prim::Port { l4, dir, lo, hi } if dir_ok(dir) => {
            Some((Shape::Port(*l4, *dir, n), port_prefixes(*lo, *hi)))
        }
        _ => None,
    }
}

/// Lowering state: the sets made so far.
#[derive(Default)]
struct Lower {
    sets: u32,
}

impl Lower {
    fn expr(&mut self, e: &Expr) -> Low {
        match e {
            Expr::True => Low::True,
            Expr::And(a, b) => Low::And(vec![self.expr(a), self.expr(b)]),
            Expr::Or(..) => self.or(e),
            Expr::Not(a) => Low::Not(Box::new(self.expr(a))),
            Expr::Prim(p, at) => prim(p, at.vlans),
        }
    }

    /// An or-chain, its runs of alternatives of one shape as set lookups.
    /// Only consecutive alternatives join (the order of loads decides which
    /// packets a load past the end rejects).
    fn or(&mut self, e: &Expr) -> Low {
        fn flatten<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
            match e {
                Expr::Or(a, b) => {
                    flatten(a, out);
                    flatten(b, out);
                }
                _ => out.push(e),
            }
        }
        let mut alts = Vec::new();
        flatten(e, &mut alts);
        let shapes: Vec<_> = alts.iter().map(|a| member(a)).collect();
        let mut out = Vec::new();
        let mut k = 0;
        while k < alts.len() {
            let run = match &shapes[k] {
                Some((shape, _)) => shapes[k..]
                    .iter()
                    .take_while(|m| m.as_ref().is_some_and(|(s, _)| s == shape))
                    .count(),
                None => 0,
            };
            if run >= SET_MIN {
                let shape = shapes[k].as_ref().map(|(s, _)| *s).expect("a member");
                let entries = shapes[k..k + run]
                    .iter()
                    .flat_map(|m| m.as_ref().map(|(_, v)| v.clone()).unwrap_or_default())
                    .collect();
                out.push(self.set(shape, entries, alts[k]));
                k += run;
            } else {
                out.push(self.expr(alts[k]));
                k += 1;
            }
        }
        if out.len() == 1 {
            out.pop().expect("one")
        } else {
            Low::Or(out)
        }
    }

    /// The alternatives of one shape as one lookup. With both directions,
    /// the first alternative stays a compare: the chain returns on its
    /// source address before it loads the destination, and so must this.
    /// Exact for IPv4 and ports (one load per field). An IPv6 chain
    /// compares word by word and stops at the first word that differs, so
    /// on a frame cut inside the destination address it may accept or
    /// answer false where the set rejects (and under `not`, differ).
    fn set(&mut self, shape: Shape, entries: Vec<Entry>, first: &Expr) -> Low {
        let set = Arc::new(Set {
            id: self.sets,
            width: shape.width(),
            entries,
        });
        self.sets += 1;
        let dir = shape.dir();
        let test = |base: Base, src: u32, dst: u32| Low::Member {
            base,
            fields: fields(dir, src, dst),
            set: set.clone(),
        };
        let lookup = match shape {
            Shape::V4(on, _, n) => v4_with(n, on, |src, dst| test(Base::Net(n), src, dst)),
            Shape::V6(_, n, _) => Low::And(vec![ethertype(n, 0x86dd), test(Base::Net(n), 8, 24)]),
            Shape::Port(l4, _, n) => port_with(n, l4, |base| test(base, 0, 2)),
        };
        if dir == Dir::SrcOrDst {
            Low::Or(vec![self.expr(first), lookup])
        } else {
            lookup
        }
    }
}

pub(super) fn lower(e: &Expr) -> Low {
    Lower::default().expr(e)
}

/// The sets of a lowered filter, each once, by number.
pub(super) fn sets(low: &Low) -> Vec<Arc<Set>> {
    fn walk(l: &Low, out: &mut Vec<Arc<Set>>) {
        match l {
            Low::And(xs) | Low::Or(xs) => xs.iter().for_each(|x| walk(x, out)),
            Low::Not(x) => walk(x, out),
            Low::Member { set, .. } => {
                if !out.iter().any(|s| s.id == set.id) {
                    out.push(set.clone());
                }
            }
            Low::True | Low::Cmp(..) => {}
        }
    }
    let mut out = Vec::new();
    walk(low, &mut out);
    out.sort_by_key(|s| s.id);
    out
}

/// A primitive on its own (to say which part of a filter is large).
pub(super) fn lower_prim(p: &Prim, at: &At) -> Low {
    prim(p, at.vlans)
}
