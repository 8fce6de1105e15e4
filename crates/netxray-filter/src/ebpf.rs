//! The filter compiled to BPF instructions, for the kernel's `nx_filter_jit`
//! placeholder (bpf/include/nx_packet.bpf.h; spliced in by [`crate::splice`]).
//! The verifier checks this code like any other, and each primitive costs a
//! few loads and compares: no interpreter loop.
//!
//! Calling convention: r1 = `struct nx_scratch *` (a map value; only its
//! `et_copy` is written), r2 = the packet's bytes, `ev.cap_len` of them: `ev.data` in the
//! scratch, or the packet's own buffer where the kernel lets a program load
//! through `skb->head` (then the filter reads only the bytes it tests and
//! nothing is copied for a packet it rejects); r0 = verdict (1 keep, 0
//! drop). The prologue moves r2 to r9 and loads `ev.cap_len` into r6; r0 is
//! the scratch register of loads; arithmetic lives in r2-r5, r7, r8 as a
//! stack (r6-r9 are saved by the JIT in this subprogram's frame). Packet
//! loads check the offset against `ev.cap_len` (outside: reject the packet,
//! as BPF does) and against NX_CAP_BYTES (for the verifier, when r9 points
//! into the scratch).
//!
//! Set lookups (`Low::Member`, many alternatives of one kind) copy the
//! fields into the scratch's `set_key` and call bpf_map_lookup_elem on the
//! map the placeholder loads into r8 (`nx_filter_sets`, an LPM trie filled
//! from [`Compiled::sets`]); r8 then leaves the pool, and r7 keeps r1 over
//! the call.
//!
//! The formula is compiled twice, for a record with an Ethernet header and
//! for one without, and the entry branches once on which it is: in each
//! version the link-payload offsets are constants, so most loads are a
//! bounds test and a load.

use super::lower::{Base, Cmp, Low, Set, Val};
use super::ArithOp;
use netxray_abi::CAP_BYTES;

pub use crate::insn::Insn;

/// Offsets in `struct nx_scratch` (asserted in abi.h).
mod off {
    pub const LEN: i16 = 48;
    pub const CAP_LEN: i16 = 70;
    pub const FLAGS: i16 = 74;
    pub const ETHERTYPE: i16 = 320;
    pub const ET_COPY: i16 = 322;
    /// `struct nx_set_key set_key`.
    pub const SET_KEY: i16 = 336;
}

/// The most instructions a filter may have: the kernel's placeholder
/// (NX_JIT_SLOTS, 1024) less its magic and its map load ([`crate::splice`]).
pub const MAX_INSNS: usize = crate::splice::CODE_SLOTS;

/// One entry of the kernel's `nx_filter_sets` (`struct nx_set_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetEntry {
    pub prefixlen: u32,
    /// The set's number (big endian), then the value.
    pub data: [u8; 20],
}

/// A filter compiled for the kernel: its code and its sets' entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    pub insns: Vec<Insn>,
    pub sets: Vec<SetEntry>,
}

/// The map entries of `sets`.
pub(super) fn set_entries(sets: &[std::sync::Arc<Set>]) -> Vec<SetEntry> {
    let mut out = Vec::new();
    for set in sets {
        for (value, bits) in &set.entries {
            let mut data = [0u8; 20];
            data[..4].copy_from_slice(&set.id.to_be_bytes());
            data[4..4 + value.len()].copy_from_slice(value);
            out.push(SetEntry {
                prefixlen: 32 + *bits as u32,
                data,
            });
        }
    }
    out
}

/// `NX_F_L2`: data[] starts with an Ethernet header.
const F_L2: i32 = 1;

const fn i(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn::new(code, dst, src, off, imm)
}

// Opcodes.
const LDXB: u8 = 0x71;
const LDXH: u8 = 0x69;
const LDXW: u8 = 0x61;
const STXH: u8 = 0x6b;
const STXW: u8 = 0x63;
const STW_IMM: u8 = 0x62;
const CALL: u8 = 0x85;
const JNE64_IMM: u8 = 0x55;
/// BPF_FUNC_map_lookup_elem.
const MAP_LOOKUP: i32 = 1;
const MOV32_IMM: u8 = 0xb4;
const MOV64_IMM: u8 = 0xb7;
const ADD64_IMM: u8 = 0x07;
const ADD64_REG: u8 = 0x0f;
const MOV64_REG: u8 = 0xbf;
const AND64_IMM: u8 = 0x57;
const ALU32_IMM: u8 = 0x04;
const ALU32_REG: u8 = 0x0c;
const NEG32: u8 = 0x84;
const TO_BE: u8 = 0xdc;
const JA: u8 = 0x05;
const JEQ64_IMM: u8 = 0x15;
const JGT64_IMM: u8 = 0x25;
const JGT64_REG: u8 = 0x2d;
const JMP32_IMM: u8 = 0x06;
const JMP32_REG: u8 = 0x0e;
const EXIT: u8 = 0x95;

// ALU and jump operations (the high nibble).
const OP_ADD: u8 = 0x00;
const OP_SUB: u8 = 0x10;
const OP_MUL: u8 = 0x20;
const OP_DIV: u8 = 0x30;
const OP_OR: u8 = 0x40;
const OP_AND: u8 = 0x50;
const OP_LSH: u8 = 0x60;
const OP_RSH: u8 = 0x70;
const OP_MOD: u8 = 0x90;
const OP_XOR: u8 = 0xa0;
const J_EQ: u8 = 0x10;
const J_GT: u8 = 0x20;
const J_GE: u8 = 0x30;
const J_SET: u8 = 0x40;
const J_LT: u8 = 0xa0;

/// Registers for values, innermost last.
const POOL: [u8; 6] = [2, 3, 4, 5, 7, 8];
/// The pool when the filter looks sets up: r8 holds the map.
const POOL_SETS: [u8; 5] = [2, 3, 4, 5, 7];
/// The set map, loaded by the placeholder.
const SETS_MAP: u8 = 8;
/// r1 over a helper call.
const SAVE_R1: u8 = 7;
/// `ev.cap_len`, loaded once.
const CAP: u8 = 6;
/// The packet's first byte (the second argument, moved out of the pool).
const PKT: u8 = 9;

#[derive(Debug, Clone, Copy)]
enum Item {
    Insn(Insn),
    /// A jump whose target is a label, resolved at layout.
    Jump {
        code: u8,
        dst: u8,
        src: u8,
        imm: i32,
        label: usize,
    },
    Place(usize),
}

struct Gen {
    items: Vec<Item>,
    pool: &'static [u8],
    labels: usize,
    reject: usize,
    /// The version being emitted: records with an Ethernet header or not.
    l2: bool,
    /// A value POOL[0] holds on every path into the current point (set
    /// after a chain's single test: the next test of the same load reuses it).
    cached: Option<Val>,
    /// In the Ethernet version: the outer ethertype was loaded once, at
    /// entry, into the scratch's `et_copy` (a packet load is a checked
    /// PROBE_MEM load when the bytes are read in place; a filter tests the
    /// ethertype once per protocol it names). Not the stack: the filter may
    /// run inline in a program, whose stack is the compiler's.
    ethertype_copied: bool,
}

/// How many times `low` reads the outer ethertype.
fn ethertype_reads(low: &Low) -> usize {
    fn val(v: &Val) -> usize {
        match v {
            Val::EtherType(0) => 1,
            Val::Load { index, .. } => val(index),
            Val::Bin(_, a, b) => val(a) + val(b),
            Val::Neg(a) => val(a),
            _ => 0,
        }
    }
    match low {
        Low::True => 0,
        Low::Cmp(a, _, b) => val(a) + val(b),
        Low::And(parts) | Low::Or(parts) => parts.iter().map(ethertype_reads).sum(),
        Low::Not(l) => ethertype_reads(l),
        Low::Member { .. } => 0,
    }
}

fn has_sets(low: &Low) -> bool {
    match low {
        Low::Member { .. } => true,
        Low::And(parts) | Low::Or(parts) => parts.iter().any(has_sets),
        Low::Not(l) => has_sets(l),
        Low::True | Low::Cmp(..) => false,
    }
}

/// The value a part of a chain leaves in POOL[0] whichever way it goes: a
/// single test (possibly negated) of it.
fn single_test(l: &Low) -> Option<&Val> {
    match l {
        Low::Cmp(a, _, _) => Some(a),
        Low::Not(x) => single_test(x),
        _ => None,
    }
}

type R = Result<(), String>;

impl Gen {
    fn reg(&self, d: usize) -> Result<u8, String> {
        self.pool.get(d).copied().ok_or_else(|| {
            format!(
                "filter arithmetic nested too deeply for the kernel (at most {} levels)",
                self.pool.len()
            )
        })
    }

    fn ins(&mut self, x: Insn) {
        self.items.push(Item::Insn(x));
    }

    fn jmp(&mut self, code: u8, dst: u8, src: u8, imm: i32, label: usize) {
        self.items.push(Item::Jump {
            code,
            dst,
            src,
            imm,
            label,
        });
    }

    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }

    fn place(&mut self, label: usize) {
        self.items.push(Item::Place(label));
    }

    fn goto(&mut self, label: usize) {
        self.jmp(JA, 0, 0, 0, label);
    }

    /// Where link payload `n` starts in data[] in this version.
    fn net(&self, n: u8) -> u32 {
        if self.l2 {
            14 + 4 * n as u32
        } else {
            0
        }
    }

    /// Load `size` bytes at constant offset `at`, big endian, into r.
    fn load_const(&mut self, r: u8, at: u64, size: u8) {
        let rej = self.reject;
        let end = at + size as u64;
        if end > CAP_BYTES as u64 {
            // Past what the kernel ever captures: a load past the end.
            self.goto(rej);
            return;
        }
        self.jmp(JMP32_IMM | J_LT, CAP, 0, end as i32, rej);
        self.fetch(r, PKT, at as i16, size);
    }

    /// r = the `size` bytes at [base + off], big endian.
    fn fetch(&mut self, r: u8, base: u8, at: i16, size: u8) {
        match size {
            1 => self.ins(i(LDXB, r, base, at, 0)),
            2 => {
                self.ins(i(LDXH, r, base, at, 0));
                self.ins(i(TO_BE, r, 0, 0, 16));
            }
            _ => {
                self.ins(i(LDXW, r, base, at, 0));
                self.ins(i(TO_BE, r, 0, 0, 32));
            }
        }
    }

    /// Bounds-check the offset in r for `size` bytes and load them, big
    /// endian, into r.
    fn load_at(&mut self, r: u8, size: u8) {
        let rej = self.reject;
        // Inside data[] for the verifier, then inside the captured bytes.
        self.jmp(JGT64_IMM, r, 0, CAP_BYTES as i32 - size as i32, rej);
        self.ins(i(ADD64_IMM, r, 0, 0, size as i32));
        self.jmp(JGT64_REG, r, CAP, 0, rej);
        self.ins(i(ADD64_REG, r, PKT, 0, 0));
        self.fetch(r, r, -(size as i16), size);
    }

    /// Compute `v` into POOL[d] (zero-extended 32-bit).
    fn val(&mut self, v: &Val, d: usize) -> R {
        let r = self.reg(d)?;
        match v {
            Val::K(k) => self.ins(i(MOV32_IMM, r, 0, 0, *k as i32)),
            Val::Len => self.ins(i(LDXW, r, 1, off::LEN, 0)),
            Val::EtherType(0) if self.ethertype_copied => {
                let rej = self.reject;
                self.jmp(JMP32_IMM | J_LT, CAP, 0, 14, rej);
                self.ins(i(LDXH, r, 1, off::ET_COPY, 0));
            }
            Val::EtherType(n) => {
                if self.l2 {
                    self.load_const(r, 12 + 4 * *n as u64, 2);
                } else {
                    self.ins(i(LDXH, r, 1, off::ETHERTYPE, 0));
                }
            }
            Val::Load { base, index, size } => {
                let (base_off, ip4) = match base {
                    Base::Link if !self.l2 => {
                        // No Ethernet header here: the load fails.
                        let rej = self.reject;
                        self.goto(rej);
                        return Ok(());
                    }
                    Base::Link => (0, None),
                    Base::Net(n) => (self.net(*n), None),
                    Base::Ip6Payload(n) => (self.net(*n) + 40, None),
                    Base::Ip4Payload(n) => (self.net(*n), Some(self.net(*n))),
                };
                match (&**index, ip4) {
                    (Val::K(k), None) => {
                        self.load_const(r, *k as u64 + base_off as u64, *size);
                    }
                    (Val::K(k), Some(net)) => {
                        // 4 * IHL + the constant, then the load.
                        self.load_const(r, net as u64, 1);
                        self.ins(i(ALU32_IMM | OP_AND, r, 0, 0, 0x0f));
                        self.ins(i(ALU32_IMM | OP_LSH, r, 0, 0, 2));
                        // The sum wraps at 32 bits like BPF's X; then the base.
                        if *k != 0 {
                            self.ins(i(ALU32_IMM | OP_ADD, r, 0, 0, *k as i32));
                        }
                        self.ins(i(ADD64_IMM, r, 0, 0, net as i32));
                        self.load_at(r, *size);
                    }
                    _ => {
                        self.val(index, d)?;
                        if let Some(net) = ip4 {
                            // + 4 * IHL, wrapping at 32 bits like BPF's X.
                            let x = self.reg(d + 1)?;
                            self.load_const(x, net as u64, 1);
                            self.ins(i(ALU32_IMM | OP_AND, x, 0, 0, 0x0f));
                            self.ins(i(ALU32_IMM | OP_LSH, x, 0, 0, 2));
                            self.ins(i(ALU32_REG | OP_ADD, r, x, 0, 0));
                        }
                        if base_off != 0 {
                            self.ins(i(ADD64_IMM, r, 0, 0, base_off as i32));
                        }
                        self.load_at(r, *size);
                    }
                }
            }
            Val::Neg(x) => {
                self.val(x, d)?;
                self.ins(i(NEG32, r, 0, 0, 0));
            }
            Val::Bin(op, x, y) => {
                self.val(x, d)?;
                let code = match op {
                    ArithOp::Add => OP_ADD,
                    ArithOp::Sub => OP_SUB,
                    ArithOp::Mul => OP_MUL,
                    ArithOp::Div => OP_DIV,
                    ArithOp::Mod => OP_MOD,
                    ArithOp::And => OP_AND,
                    ArithOp::Or => OP_OR,
                    ArithOp::Xor => OP_XOR,
                    ArithOp::Lsh => OP_LSH,
                    ArithOp::Rsh => OP_RSH,
                };
                // A constant operand: the parser refused /0, %0 and shifts over 31.
                if let Val::K(k) = **y {
                    self.ins(i(ALU32_IMM | code, r, 0, 0, k as i32));
                    return Ok(());
                }
                self.val(y, d + 1)?;
                let s = self.reg(d + 1)?;
                match op {
                    ArithOp::Div | ArithOp::Mod => {
                        // BPF would give 0; libpcap rejects the packet.
                        let rej = self.reject;
                        self.jmp(JMP32_IMM | J_EQ, s, 0, 0, rej);
                        self.ins(i(ALU32_REG | code, r, s, 0, 0));
                    }
                    ArithOp::Lsh | ArithOp::Rsh => {
                        // Shifts by 32 or more give 0, as in libpcap.
                        let (shift, end) = (self.label(), self.label());
                        self.jmp(JMP32_IMM | J_LT, s, 0, 32, shift);
                        self.ins(i(MOV32_IMM, r, 0, 0, 0));
                        self.goto(end);
                        self.place(shift);
                        self.ins(i(ALU32_REG | code, r, s, 0, 0));
                        self.place(end);
                    }
                    _ => self.ins(i(ALU32_REG | code, r, s, 0, 0)),
                }
            }
        }
        Ok(())
    }

    fn test(&mut self, a: &Val, c: Cmp, b: &Val, t: usize, f: usize) -> R {
        let op = match c {
            Cmp::Eq => J_EQ,
            Cmp::Gt => J_GT,
            Cmp::Ge => J_GE,
            Cmp::Set => J_SET,
        };
        if self.cached.as_ref() != Some(a) {
            self.val(a, 0)?;
        }
        self.cached = None;
        let ra = self.reg(0)?;
        if let Val::K(k) = b {
            self.jmp(JMP32_IMM | op, ra, 0, *k as i32, t);
        } else {
            self.val(b, 1)?;
            self.jmp(JMP32_REG | op, ra, self.reg(1)?, 0, t);
        }
        self.goto(f);
        Ok(())
    }

    /// Emit `low`, ending at label `t` when true and `f` when false.
    fn emit(&mut self, low: &Low, t: usize, f: usize) -> R {
        if !matches!(low, Low::Cmp(..) | Low::Not(_)) {
            self.cached = None;
        }
        match low {
            Low::True => {
                self.goto(t);
                Ok(())
            }
            Low::Cmp(a, c, b) => self.test(a, *c, b, t, f),
            Low::Not(x) => self.emit(x, f, t),
            Low::And(parts) => self.chain(parts, true, t, f),
            Low::Or(parts) => self.chain(parts, false, t, f),
            Low::Member { base, fields, set } => self.member(base, fields, set, t, f),
        }
    }

    /// Each field in turn: inside the packet (else reject), copied into the
    /// scratch's set_key and looked up, as [`Low::Member`] says.
    fn member(&mut self, base: &Base, fields: &[u32], set: &Set, t: usize, f: usize) -> R {
        let rej = self.reject;
        let width = u32::from(set.width);
        if width > 16 {
            return Err("a set of values over 16 bytes (netxray bug)".into());
        }
        let (step, ldx, stx) = if width == 2 {
            (2, LDXH, STXH)
        } else {
            (4, LDXW, STXW)
        };
        let key = off::SET_KEY;
        for &field in fields {
            let end = field + width;
            // (register, offset) of the field's first byte.
            let (from, at) = match base {
                Base::Link if !self.l2 => {
                    self.goto(rej);
                    return Ok(());
                }
                Base::Ip4Payload(n) => {
                    let (r, x) = (self.reg(0)?, self.reg(1)?);
                    let net = self.net(*n);
                    self.load_const(r, net as u64, 1);
                    self.ins(i(ALU32_IMM | OP_AND, r, 0, 0, 0x0f));
                    self.ins(i(ALU32_IMM | OP_LSH, r, 0, 0, 2));
                    self.ins(i(ADD64_IMM, r, 0, 0, net as i32));
                    // Inside data[] for the verifier, then inside the captured bytes.
                    self.jmp(JGT64_IMM, r, 0, CAP_BYTES as i32 - end as i32, rej);
                    self.ins(i(MOV64_REG, x, r, 0, 0));
                    self.ins(i(ADD64_IMM, x, 0, 0, end as i32));
                    self.jmp(JGT64_REG, x, CAP, 0, rej);
                    self.ins(i(ADD64_REG, r, PKT, 0, 0));
                    (r, field)
                }
                _ => {
                    let start = match base {
                        Base::Net(n) => self.net(*n),
                        Base::Ip6Payload(n) => self.net(*n) + 40,
                        _ => 0,
                    };
                    if (start + end) as u64 > CAP_BYTES as u64 {
                        self.goto(rej);
                        return Ok(());
                    }
                    self.jmp(JMP32_IMM | J_LT, CAP, 0, (start + end) as i32, rej);
                    (PKT, start + field)
                }
            };
            self.ins(i(STW_IMM, 1, 0, key, 32 + 8 * width as i32));
            let id = i32::from_le_bytes(set.id.to_be_bytes());
            self.ins(i(STW_IMM, 1, 0, key + 4, id));
            for j in (0..width).step_by(step) {
                self.ins(i(ldx, 0, from, (at + j) as i16, 0));
                self.ins(i(stx, 1, 0, key + 8 + j as i16, 0));
            }
            self.ins(i(MOV64_REG, SAVE_R1, 1, 0, 0));
            self.ins(i(MOV64_REG, 1, SETS_MAP, 0, 0));
            self.ins(i(MOV64_REG, 2, SAVE_R1, 0, 0));
            self.ins(i(ADD64_IMM, 2, 0, 0, key as i32));
            self.ins(i(CALL, 0, 0, 0, MAP_LOOKUP));
            self.ins(i(MOV64_REG, 1, SAVE_R1, 0, 0));
            self.jmp(JNE64_IMM, 0, 0, 0, t);
        }
        self.goto(f);
        Ok(())
    }

    /// A conjunction (`all`) or disjunction: each part but the last goes on
    /// to the next part or out; the last decides. Empty: true (and), false (or).
    fn chain(&mut self, parts: &[Low], all: bool, t: usize, f: usize) -> R {
        let Some((last, rest)) = parts.split_last() else {
            self.goto(if all { t } else { f });
            return Ok(());
        };
        for p in rest {
            let next = self.label();
            if all {
                self.emit(p, next, f)?;
            } else {
                self.emit(p, t, next)?;
            }
            self.place(next);
            // Only p jumps to `next`: after a single test, POOL[0] holds its value.
            self.cached = single_test(p).cloned();
        }
        self.emit(last, t, f)
    }
}

/// Compile a lowered filter to BPF instructions.
pub(super) fn compile(low: &Low) -> Result<Vec<Insn>, String> {
    let mut g = Gen {
        items: Vec::new(),
        pool: if has_sets(low) { &POOL_SETS } else { &POOL },
        labels: 0,
        reject: 0,
        l2: true,
        cached: None,
        ethertype_copied: false,
    };
    let acc = g.label();
    g.reject = g.label();
    let rej = g.reject;
    let no_l2 = g.label();
    g.ins(i(MOV64_REG, PKT, 2, 0, 0));
    g.ins(i(LDXH, CAP, 1, off::CAP_LEN, 0));
    g.ins(i(LDXB, 0, 1, off::FLAGS, 0));
    g.ins(i(AND64_IMM, 0, 0, 0, F_L2));
    g.jmp(JEQ64_IMM, 0, 0, 0, no_l2);
    if ethertype_reads(low) >= 2 {
        // r0 = the outer ethertype, 0 in a frame too short for it (every
        // read checks the length first).
        let store = g.label();
        g.ins(i(MOV64_IMM, 0, 0, 0, 0));
        g.jmp(JMP32_IMM | J_LT, CAP, 0, 14, store);
        g.fetch(0, PKT, 12, 2);
        g.place(store);
        g.ins(i(STXH, 1, 0, off::ET_COPY, 0));
        g.ethertype_copied = true;
    }
    g.emit(low, acc, rej)?;
    g.place(no_l2);
    g.l2 = false;
    g.ethertype_copied = false;
    g.cached = None;
    g.emit(low, acc, rej)?;
    g.place(acc);
    g.ins(i(MOV64_IMM, 0, 0, 0, 1));
    g.ins(i(EXIT, 0, 0, 0, 0));
    g.place(rej);
    g.ins(i(MOV64_IMM, 0, 0, 0, 0));
    g.ins(i(EXIT, 0, 0, 0, 0));

    // Drop code that cannot run (the verifier refuses it: a load the view
    // lacks jumps straight to reject) and jumps to the very next
    // instruction, then lay out.
    let items = peephole(reachable(g.items, g.labels));
    let mut pos = vec![0usize; g.labels];
    let mut n = 0;
    for it in &items {
        match it {
            Item::Place(l) => pos[*l] = n,
            _ => n += 1,
        }
    }
    let mut out = Vec::with_capacity(n);
    for it in items {
        match it {
            Item::Place(_) => {}
            Item::Insn(x) => out.push(x),
            Item::Jump {
                code,
                dst,
                src,
                imm,
                label,
            } => {
                let rel = pos[label] as i64 - out.len() as i64 - 1;
                let rel = i16::try_from(rel).map_err(|_| "filter too long for the kernel")?;
                out.push(i(code, dst, src, rel, imm));
            }
        }
    }
    Ok(out)
}

/// Keep only the instructions reachable from the entry (labels stay).
fn reachable(items: Vec<Item>, labels: usize) -> Vec<Item> {
    let mut at = vec![0usize; labels];
    for (k, it) in items.iter().enumerate() {
        if let Item::Place(l) = it {
            at[*l] = k;
        }
    }
    let mut seen = vec![false; items.len()];
    let mut work = vec![0usize];
    while let Some(k) = work.pop() {
        if k >= items.len() || seen[k] {
            continue;
        }
        seen[k] = true;
        match items[k] {
            Item::Insn(x) if x.code == EXIT => {}
            Item::Jump {
                code: JA, label, ..
            } => work.push(at[label]),
            Item::Jump { label, .. } => {
                work.push(at[label]);
                work.push(k + 1);
            }
            _ => work.push(k + 1),
        }
    }
    items
        .into_iter()
        .zip(seen)
        .filter(|(it, seen)| *seen || matches!(it, Item::Place(_)))
        .map(|(it, _)| it)
        .collect()
}

/// The condition that is true when `code`'s is false, if BPF has one.
fn inverse(code: u8) -> Option<u8> {
    const J_NE: u8 = 0x50;
    const J_LE: u8 = 0xb0;
    let class = code & 0x0f;
    let op = match code & 0xf0 {
        J_EQ => J_NE,
        J_NE => J_EQ,
        J_GT => J_LE,
        J_LE => J_GT,
        J_GE => J_LT,
        J_LT => J_GE,
        _ => return None,
    };
    Some(op | class)
}

/// Remove unconditional jumps to a label placed right after them, and turn
/// `if c goto L1; goto L2; L1:` into `if !c goto L2; L1:`.
fn peephole(items: Vec<Item>) -> Vec<Item> {
    let mut items = items;
    for k in 0..items.len().saturating_sub(2) {
        if let (
            Item::Jump {
                code,
                dst,
                src,
                imm,
                label: l1,
            },
            Item::Jump {
                code: JA,
                label: l2,
                ..
            },
            Item::Place(p),
        ) = (items[k], items[k + 1], items[k + 2])
        {
            if code != JA && p == l1 {
                if let Some(inv) = inverse(code) {
                    items[k] = Item::Jump {
                        code: inv,
                        dst,
                        src,
                        imm,
                        label: l2,
                    };
                    // A jump to the label right after it: removed below.
                    items[k + 1] = Item::Jump {
                        code: JA,
                        dst: 0,
                        src: 0,
                        imm: 0,
                        label: l1,
                    };
                }
            }
        }
    }
    let mut out: Vec<Item> = Vec::with_capacity(items.len());
    for (k, it) in items.iter().enumerate() {
        if let Item::Jump {
            code: JA, label, ..
        } = it
        {
            let falls_through = items[k + 1..]
                .iter()
                .take_while(|x| matches!(x, Item::Place(_)))
                .any(|x| matches!(x, Item::Place(l) if l == label));
            if falls_through {
                continue;
            }
        }
        out.push(*it);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Filter;
    use super::*;

    fn prog(e: &str) -> Vec<Insn> {
        Filter::parse(e).unwrap().to_ebpf().unwrap().unwrap().insns
    }

    #[test]
    fn accept_all_is_no_program() {
        assert!(Filter::parse("").unwrap().to_ebpf().unwrap().is_none());
    }

    #[test]
    fn jumps_go_forward_and_end_in_exits() {
        for e in [
            "udp and net 2001:db8::/32",
            "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
            "vlan 100 and (port 53 or icmp6) and not ether broadcast",
            "ip[2:2] / ip[0] > 1 or ip[1] << ip[2] = 0",
        ] {
            let prog = prog(e);
            assert_eq!(prog.last().map(|x| x.code), Some(EXIT));
            for (pc, x) in prog.iter().enumerate() {
                if matches!(x.code & 0x07, 0x05 | 0x06) && x.code != EXIT {
                    assert!(x.off >= 0, "{e}: backward jump at {pc}");
                    assert!(
                        pc + 1 + (x.off as usize) < prog.len(),
                        "{e}: jump past the end at {pc}"
                    );
                }
                if x.code == STXH {
                    // The only store: the ethertype's copy in the scratch.
                    assert!(x.dst == 1 && x.off == off::ET_COPY, "{e}: store at {pc}");
                } else if x.code & 0x07 != 0x05 && x.code & 0x07 != 0x06 {
                    assert_ne!(x.dst, 1, "{e}: r1 written at {pc}");
                    assert!(x.dst != PKT || pc == 0, "{e}: r9 written at {pc}");
                }
                // Never the stack: the filter may run inline in a program.
                assert!(x.dst <= 9 && x.src <= 9, "{e}: bad register at {pc}");
            }
        }
    }

    #[test]
    fn deep_arithmetic_is_refused_not_miscompiled() {
        let deep = "1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + ip[0]))))))) = 9";
        let e = Filter::parse(deep).unwrap().to_ebpf().unwrap_err();
        assert!(e.msg.contains("nested too deeply"), "{e}");
    }

    #[test]
    fn the_nesting_limit_is_what_the_message_says() {
        let nest = |n: usize| format!("{}ip[0]{} = 9", "1 + (".repeat(n - 1), ")".repeat(n - 1));
        let limit = 6;
        assert!(Filter::parse(&nest(limit)).unwrap().to_ebpf().is_ok());
        let e = Filter::parse(&nest(limit + 1))
            .unwrap()
            .to_ebpf()
            .unwrap_err();
        assert!(e.msg.contains(&format!("at most {limit} levels")), "{e}");
    }

    #[test]
    fn encodes_little_endian() {
        assert_eq!(
            i(LDXH, 2, 1, 306, 0).to_bytes(),
            [0x69, 0x12, 0x32, 0x01, 0, 0, 0, 0]
        );
        assert_eq!(
            i(JMP32_IMM | J_EQ, 2, 0, 3, 0x0800).to_bytes(),
            [0x16, 0x02, 3, 0, 0, 8, 0, 0]
        );
    }
}
