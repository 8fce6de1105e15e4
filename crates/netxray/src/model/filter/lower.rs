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

use super::{Arith, ArithOp, Dir, Expr, Prim, Proto, Rel, V4On};

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
}

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

fn port(n: u8, l4: Option<u8>, dir: Dir, lo: u16, hi: u16) -> Low {
    let protos: Vec<u32> = match l4 {
        Some(p) => vec![p.into()],
        None => vec![6, 17, 132],
    };
    // One family: its ethertype, where its protocol byte is, where the
    // transport header is, and (IPv4) the first-fragment test.
    let family = |et: u32, proto_at: u32, l4: Base, frag: Option<Low>| {
        let ports = combine(
            dir,
            port_cmp(load(l4, 0, 2), lo, hi),
            port_cmp(load(l4, 2, 2), lo, hi),
        );
        let proto = Low::Or(
            protos
                .iter()
                .map(|&p| cmp(load(Base::Net(n), proto_at, 1), Cmp::Eq, p))
                .collect(),
        );
        Low::And(
            [Some(ethertype(n, et)), Some(proto), frag, Some(ports)]
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

fn host4(n: u8, on: V4On, dir: Dir, addr: u32, mask: u32) -> Low {
    let one = |et: u32, src: u32, dst: u32| {
        Low::And(vec![
            ethertype(n, et),
            combine(
                dir,
                mcmp(load(Base::Net(n), src, 4), mask, addr),
                mcmp(load(Base::Net(n), dst, 4), mask, addr),
            ),
        ])
    };
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

pub(super) fn lower(e: &Expr) -> Low {
    match e {
        Expr::True => Low::True,
        Expr::And(a, b) => Low::And(vec![lower(a), lower(b)]),
        Expr::Or(a, b) => Low::Or(vec![lower(a), lower(b)]),
        Expr::Not(a) => Low::Not(Box::new(lower(a))),
        Expr::Prim(p, at) => prim(p, at.vlans),
    }
}
