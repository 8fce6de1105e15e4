//! Expression -> kernel filter program. Each primitive lowers to tests on
//! packet fields; booleans become forward jumps, as libpcap does.

use super::{Dir, Expr, Net, Proto};
use netxray_abi::filter_op as op;
use netxray_abi::{FilterInsn, FILTER_MAX_INSNS};
use std::net::IpAddr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompileError {
    #[error("filter too complex for the kernel: {0} instructions, at most {FILTER_MAX_INSNS}")]
    TooLong(usize),
}

const ETH_IP: u32 = 0x0800;
const ETH_IP6: u32 = 0x86dd;
const ETH_ARP: u32 = 0x0806;

/// What a single test loads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Load {
    Meta(u32),
    /// base, offset, size in bytes
    Abs(u8, u32, u8),
}

/// A lowered boolean formula over single tests.
#[derive(Debug, Clone)]
pub(super) enum Low {
    True,
    Test {
        load: Load,
        mask: Option<u32>,
        cmp: u8,
        k: u32,
    },
    And(Vec<Low>),
    Or(Vec<Low>),
    Not(Box<Low>),
}

fn eq(load: Load, k: u32) -> Low {
    Low::Test {
        load,
        mask: None,
        cmp: op::CMP_JEQ,
        k,
    }
}

fn masked_eq(load: Load, mask: u32, k: u32) -> Low {
    if mask == 0 {
        return Low::True;
    }
    Low::Test {
        load,
        mask: (mask != u32::MAX).then_some(mask),
        cmp: op::CMP_JEQ,
        k: k & mask,
    }
}

fn ethertype(t: u32) -> Low {
    eq(Load::Meta(op::META_ETHERTYPE), t)
}

fn l4proto(p: u32) -> Low {
    eq(Load::Meta(op::META_L4PROTO), p)
}

fn proto(p: Proto) -> Low {
    match p {
        Proto::Ip => ethertype(ETH_IP),
        Proto::Ip6 => ethertype(ETH_IP6),
        Proto::Arp => ethertype(ETH_ARP),
        // The L4 protocol meta field is 0 unless the packet is IPv4 or IPv6.
        Proto::Tcp => l4proto(6),
        Proto::Udp => l4proto(17),
        Proto::Sctp => l4proto(132),
        Proto::Icmp => Low::And(vec![ethertype(ETH_IP), l4proto(1)]),
        Proto::Icmp6 => Low::And(vec![ethertype(ETH_IP6), l4proto(58)]),
    }
}

/// An address field at byte offset `off` of the network header matches `net`.
fn addr_at(off: u32, net: &Net) -> Low {
    match net.addr {
        IpAddr::V4(a) => {
            let mask = if net.prefix == 0 {
                0
            } else {
                u32::MAX << (32 - net.prefix)
            };
            masked_eq(Load::Abs(op::BASE_L3, off, 4), mask, u32::from(a))
        }
        IpAddr::V6(a) => {
            let words = a.octets();
            let mut tests = Vec::new();
            for i in 0..4u32 {
                let bits = (net.prefix as i32 - 32 * i as i32).clamp(0, 32) as u32;
                if bits == 0 {
                    break;
                }
                let mask = if bits == 32 {
                    u32::MAX
                } else {
                    u32::MAX << (32 - bits)
                };
                let w = &words[i as usize * 4..i as usize * 4 + 4];
                let k = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                tests.push(masked_eq(Load::Abs(op::BASE_L3, off + 4 * i, 4), mask, k));
            }
            Low::And(tests)
        }
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

fn host(dir: Dir, net: &Net) -> Low {
    match net.addr {
        IpAddr::V4(_) => Low::And(vec![
            ethertype(ETH_IP),
            combine(dir, addr_at(12, net), addr_at(16, net)),
        ]),
        IpAddr::V6(_) => Low::And(vec![
            ethertype(ETH_IP6),
            combine(dir, addr_at(8, net), addr_at(24, net)),
        ]),
    }
}

fn port_at(off: u32, lo: u16, hi: u16) -> Low {
    let load = Load::Abs(op::BASE_L4, off, 2);
    if lo == hi {
        eq(load, lo.into())
    } else {
        Low::And(vec![
            Low::Test {
                load,
                mask: None,
                cmp: op::CMP_JGE,
                k: lo.into(),
            },
            Low::Not(Box::new(Low::Test {
                load,
                mask: None,
                cmp: op::CMP_JGT,
                k: hi.into(),
            })),
        ])
    }
}

fn port(dir: Dir, lo: u16, hi: u16) -> Low {
    // TCP, UDP or SCTP over IPv4 (not a later fragment) or IPv6 (the fixed
    // header's next header, as libpcap: extension headers are not walked).
    let l4 = Low::Or(vec![l4proto(6), l4proto(17), l4proto(132)]);
    // FRAG is set only for a later IPv4 fragment (no ports in it).
    let first = eq(Load::Meta(op::META_FRAG), 0);
    Low::And(vec![
        l4,
        first,
        combine(dir, port_at(0, lo, hi), port_at(2, lo, hi)),
    ])
}

pub(super) fn lower(e: &Expr) -> Low {
    match e {
        Expr::True => Low::True,
        Expr::And(a, b) => Low::And(vec![lower(a), lower(b)]),
        Expr::Or(a, b) => Low::Or(vec![lower(a), lower(b)]),
        Expr::Not(a) => Low::Not(Box::new(lower(a))),
        Expr::Proto(p) => proto(*p),
        Expr::Host(d, n) => host(*d, n),
        Expr::Port(d, lo, hi) => port(*d, *lo, *hi),
    }
}

/// Jump targets before layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Label(usize),
}

#[derive(Debug)]
enum Item {
    Insn(FilterInsn),
    /// A conditional jump whose targets are labels.
    Jump {
        cmp: u8,
        k: u32,
        t: Target,
        f: Target,
    },
    Place(usize),
    /// A fused load-and-compare whose targets are labels.
    Test {
        arg: u8,
        off: u8,
        cmp: u8,
        k: u32,
        mask: u32,
        t: Target,
        f: Target,
    },
}

/// A target for the boolean structure: labels are placed after every jump
/// to them, so all jumps go forward.
pub(super) trait Backend {
    fn label(&mut self) -> usize;
    fn place(&mut self, label: usize);
    fn goto(&mut self, label: usize);
    /// Load, mask, compare with k; jump to t when true, f when false.
    fn test(&mut self, load: Load, mask: Option<u32>, cmp: u8, k: u32, t: usize, f: usize);
}

/// Emit a lowered formula that ends at `on_true` or `on_false`.
pub(super) fn emit<B: Backend>(b: &mut B, low: &Low, on_true: usize, on_false: usize) {
    match low {
        Low::True => b.goto(on_true),
        Low::Test { load, mask, cmp, k } => b.test(*load, *mask, *cmp, *k, on_true, on_false),
        Low::Not(a) => emit(b, a, on_false, on_true),
        Low::And(parts) => emit_chain(b, parts, true, on_true, on_false),
        Low::Or(parts) => emit_chain(b, parts, false, on_true, on_false),
    }
}

/// A conjunction (`all`) or disjunction of parts: every part but the last
/// jumps to the next part on the "keep going" outcome and out on the other;
/// the last part decides. An empty chain is true (and) or false (or).
fn emit_chain<B: Backend>(b: &mut B, parts: &[Low], all: bool, on_true: usize, on_false: usize) {
    let Some((last, rest)) = parts.split_last() else {
        return b.goto(if all { on_true } else { on_false });
    };
    for p in rest {
        let next = b.label();
        if all {
            emit(b, p, next, on_false);
        } else {
            emit(b, p, on_true, next);
        }
        b.place(next);
    }
    emit(b, last, on_true, on_false);
}

struct Gen {
    items: Vec<Item>,
    labels: usize,
}

impl Backend for Gen {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }

    fn place(&mut self, label: usize) {
        self.items.push(Item::Place(label));
    }

    fn goto(&mut self, label: usize) {
        self.items.push(Item::Jump {
            cmp: op::CMP_JA,
            k: 0,
            t: Target::Label(label),
            f: Target::Label(label),
        });
    }

    fn test(&mut self, load: Load, mask: Option<u32>, cmp: u8, k: u32, t: usize, f: usize) {
        let (t, f) = (Target::Label(t), Target::Label(f));
        // One fused TEST instruction when the offset fits, else load, mask
        // and jump.
        let fused = match load {
            Load::Meta(m) => u8::try_from(m).ok().map(|m| (op::TEST_META, m)),
            Load::Abs(base, off, size) => u8::try_from(off).ok().map(|o| (base | (size << 4), o)),
        };
        if let Some((arg, off)) = fused {
            let mask = mask.unwrap_or(u32::MAX);
            self.items.push(Item::Test {
                arg,
                off,
                cmp,
                k,
                mask,
                t,
                f,
            });
            return;
        }
        self.items.push(Item::Insn(match load {
            Load::Meta(m) => FilterInsn {
                op: op::LD_META,
                k: m,
                ..Default::default()
            },
            Load::Abs(base, off, size) => FilterInsn {
                op: op::LD_ABS,
                arg: base | (size << 4),
                k: off,
                ..Default::default()
            },
        }));
        if let Some(m) = mask {
            self.items.push(Item::Insn(FilterInsn {
                op: op::ALU,
                arg: op::ALU_AND,
                k: m,
                ..Default::default()
            }));
        }
        self.items.push(Item::Jump { cmp, k, t, f });
    }
}

/// Compile an expression. `Expr::True` compiles to an empty program, which
/// the kernel treats as "accept everything" without running anything.
pub fn compile(e: &Expr) -> Result<Vec<FilterInsn>, CompileError> {
    if *e == Expr::True {
        return Ok(Vec::new());
    }
    let mut g = Gen {
        items: Vec::new(),
        labels: 0,
    };
    let (acc, rej) = (g.label(), g.label());
    emit(&mut g, &lower(e), acc, rej);
    g.items.push(Item::Place(acc));
    g.items.push(Item::Insn(FilterInsn {
        op: op::RET,
        k: 1,
        ..Default::default()
    }));
    g.items.push(Item::Place(rej));
    g.items.push(Item::Insn(FilterInsn {
        op: op::RET,
        k: 0,
        ..Default::default()
    }));

    // Drop jumps to the very next instruction, then lay out.
    let mut pos = vec![0usize; g.labels];
    let mut n = 0;
    for it in &g.items {
        match it {
            Item::Place(l) => pos[*l] = n,
            _ => n += 1,
        }
    }
    if n > FILTER_MAX_INSNS {
        return Err(CompileError::TooLong(n));
    }
    let mut out = Vec::with_capacity(n);
    for it in &g.items {
        match it {
            Item::Place(_) => {}
            Item::Insn(i) => out.push(*i),
            Item::Test {
                arg,
                off,
                cmp,
                k,
                mask,
                t,
                f,
            } => {
                let pc = out.len();
                let rel = |Target::Label(l): Target| (pos[l] - pc - 1) as u8;
                out.push(FilterInsn {
                    op: op::TEST,
                    arg: *arg,
                    src: *off,
                    cmp: *cmp,
                    k: *k,
                    mask: *mask,
                    jt: rel(*t),
                    jf: rel(*f),
                    ..Default::default()
                });
            }
            Item::Jump { cmp, k, t, f } => {
                let pc = out.len();
                let rel = |Target::Label(l): Target| (pos[l] - pc - 1) as u8;
                out.push(FilterInsn {
                    op: op::JMP,
                    arg: *cmp,
                    k: *k,
                    jt: rel(*t),
                    jf: rel(*f),
                    ..Default::default()
                });
            }
        }
    }
    Ok(out)
}
