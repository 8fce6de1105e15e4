//! Expression -> BPF instructions, for the kernel's `nx_filter_jit`
//! placeholder (bpf/include/nx_packet.bpf.h). Same semantics as the
//! interpreter program (`codegen`), without its per-step cost: each test is a
//! few loads, a bounds check and a compare-and-jump, checked by the verifier
//! like any other code.
//!
//! Calling convention: r1 = `struct nx_scratch *` (a map value), r0 = verdict.
//! Only r0-r4 are used. Packet loads check the offset against `ev.cap_len`
//! (reject if outside, as cBPF) and against the buffer size (for the verifier).

use super::codegen::{emit, lower, Backend, Load};
use super::Expr;
use netxray_abi::filter_op as op;
use netxray_abi::CAP_BYTES;

/// Offsets in `struct nx_scratch` (asserted in abi.h).
mod off {
    pub const IFINDEX: i16 = 44;
    pub const LEN: i16 = 48;
    pub const CAP_LEN: i16 = 70;
    pub const L3_OFF: i16 = 72;
    pub const FLAGS: i16 = 74;
    pub const DATA: i16 = 168;
    pub const L4_OFF: i16 = 304;
    pub const ETHERTYPE: i16 = 306;
    pub const L4PROTO: i16 = 308;
    pub const HAS_L4: i16 = 309;
    pub const VLAN: i16 = 310;
    pub const FRAG: i16 = 311;
    pub const VLAN_ID: i16 = 312;
}

/// One BPF instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub fn to_bytes(self) -> [u8; 8] {
        let o = self.off.to_le_bytes();
        let i = self.imm.to_le_bytes();
        [
            self.code,
            (self.src << 4) | (self.dst & 0x0f),
            o[0],
            o[1],
            i[0],
            i[1],
            i[2],
            i[3],
        ]
    }
}

const fn i(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

// Opcodes.
const LDXB: u8 = 0x71;
const LDXH: u8 = 0x69;
const LDXW: u8 = 0x61;
const MOV64_IMM: u8 = 0xb7;
const MOV64_REG: u8 = 0xbf;
const ADD64_IMM: u8 = 0x07;
const ADD64_REG: u8 = 0x0f;
const AND32_IMM: u8 = 0x54;
const TO_BE: u8 = 0xdc;
const JA: u8 = 0x05;
const JGT64_REG: u8 = 0x2d;
const JGT64_IMM: u8 = 0x25;
const JEQ32_IMM: u8 = 0x16;
const JGT32_IMM: u8 = 0x26;
const JGE32_IMM: u8 = 0x36;
const JSET32_IMM: u8 = 0x46;
const EXIT: u8 = 0x95;

/// A jump whose target is a label, resolved at layout.
#[derive(Debug)]
enum Item {
    Insn(Insn),
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
    labels: usize,
    reject: usize,
}

impl Gen {
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

    /// r2 = the loaded value (zero-extended).
    fn load(&mut self, load: Load) {
        match load {
            Load::Meta(m) => {
                let (code, at) = match m {
                    op::META_ETHERTYPE => (LDXH, off::ETHERTYPE),
                    op::META_L4PROTO => (LDXB, off::L4PROTO),
                    op::META_LEN => (LDXW, off::LEN),
                    op::META_HAS_L2 => (LDXB, off::FLAGS),
                    op::META_VLAN => (LDXB, off::VLAN),
                    op::META_VLAN_ID => (LDXH, off::VLAN_ID),
                    op::META_L4_OK => (LDXB, off::HAS_L4),
                    op::META_IFINDEX => (LDXW, off::IFINDEX),
                    op::META_FRAG => (LDXB, off::FRAG),
                    _ => {
                        self.ins(i(MOV64_IMM, 2, 0, 0, 0));
                        return;
                    }
                };
                self.ins(i(code, 2, 1, at, 0));
                if m == op::META_HAS_L2 {
                    self.ins(i(AND32_IMM, 2, 0, 0, 1));
                }
            }
            Load::Abs(base, at, size) => {
                let rej = self.reject;
                // r3 = offset of the base in data[]
                match base {
                    op::BASE_L2 => {
                        self.ins(i(LDXB, 3, 1, off::FLAGS, 0));
                        self.ins(i(AND32_IMM, 3, 0, 0, 1));
                        self.jmp(JEQ32_IMM, 3, 0, 0, rej);
                        self.ins(i(MOV64_IMM, 3, 0, 0, 0));
                    }
                    op::BASE_L3 => self.ins(i(LDXH, 3, 1, off::L3_OFF, 0)),
                    _ => {
                        self.ins(i(LDXB, 3, 1, off::HAS_L4, 0));
                        self.jmp(JEQ32_IMM, 3, 0, 0, rej);
                        self.ins(i(LDXH, 3, 1, off::L4_OFF, 0));
                    }
                }
                let at = i32::try_from(at).unwrap_or(i32::MAX);
                self.ins(i(ADD64_IMM, 3, 0, 0, at));
                // within the captured bytes
                self.ins(i(LDXH, 4, 1, off::CAP_LEN, 0));
                self.ins(i(MOV64_REG, 2, 3, 0, 0));
                self.ins(i(ADD64_IMM, 2, 0, 0, size as i32));
                self.jmp(JGT64_REG, 2, 4, 0, rej);
                // and inside data[] for the verifier
                self.jmp(JGT64_IMM, 3, 0, (CAP_BYTES - 4) as i32, rej);
                self.ins(i(MOV64_REG, 4, 1, 0, 0));
                self.ins(i(ADD64_REG, 4, 3, 0, 0));
                match size {
                    1 => self.ins(i(LDXB, 2, 4, off::DATA, 0)),
                    2 => {
                        self.ins(i(LDXH, 2, 4, off::DATA, 0));
                        self.ins(i(TO_BE, 2, 0, 0, 16));
                    }
                    _ => {
                        self.ins(i(LDXW, 2, 4, off::DATA, 0));
                        self.ins(i(TO_BE, 2, 0, 0, 32));
                    }
                }
            }
        }
    }
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
        self.jmp(JA, 0, 0, 0, label);
    }

    fn test(&mut self, load: Load, mask: Option<u32>, cmp: u8, k: u32, t: usize, f: usize) {
        self.load(load);
        if let Some(m) = mask {
            self.ins(i(AND32_IMM, 2, 0, 0, m as i32));
        }
        let code = match cmp {
            op::CMP_JEQ => JEQ32_IMM,
            op::CMP_JGT => JGT32_IMM,
            op::CMP_JGE => JGE32_IMM,
            op::CMP_JSET => JSET32_IMM,
            _ => JA,
        };
        if code == JA {
            self.goto(t);
        } else {
            self.jmp(code, 2, 0, k as i32, t);
            self.goto(f);
        }
    }
}

/// Compile to BPF instructions; None for "accept everything" (no filter).
pub fn compile(e: &Expr) -> Option<Vec<Insn>> {
    if *e == Expr::True {
        return None;
    }
    let mut g = Gen {
        items: Vec::new(),
        labels: 0,
        reject: 0,
    };
    let acc = g.label();
    g.reject = g.label();
    let rej = g.reject;
    emit(&mut g, &lower(e), acc, rej);
    g.place(acc);
    g.ins(i(MOV64_IMM, 0, 0, 0, 1));
    g.ins(i(EXIT, 0, 0, 0, 0));
    g.place(rej);
    g.ins(i(MOV64_IMM, 0, 0, 0, 0));
    g.ins(i(EXIT, 0, 0, 0, 0));

    let items = g.items;
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
                out.push(i(code, dst, src, rel as i16, imm));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::{Dir, Net, Proto};
    use super::*;

    #[test]
    fn accept_all_is_no_program() {
        assert!(compile(&Expr::True).is_none());
    }

    #[test]
    fn jumps_go_forward_and_end_in_exits() {
        let e = Expr::Proto(Proto::Udp).and(Expr::Host(
            Dir::SrcOrDst,
            Net::parse("2001:db8::/32").unwrap(),
        ));
        let prog = compile(&e).unwrap();
        assert_eq!(prog.last().map(|x| x.code), Some(EXIT));
        for (pc, x) in prog.iter().enumerate() {
            if matches!(x.code & 0x07, 0x05 | 0x06) && x.code != EXIT {
                assert!(x.off >= 0, "backward jump at {pc}");
                assert!(
                    pc + 1 + (x.off as usize) < prog.len(),
                    "jump past the end at {pc}"
                );
            }
        }
        // ETHERTYPE test first: ldxh r2, [r1+306]
        assert!(prog
            .iter()
            .any(|x| x.code == LDXH && x.off == off::ETHERTYPE));
    }

    #[test]
    fn encodes_little_endian() {
        assert_eq!(
            i(LDXH, 2, 1, 306, 0).to_bytes(),
            [0x69, 0x12, 0x32, 0x01, 0, 0, 0, 0]
        );
        assert_eq!(
            i(JEQ32_IMM, 2, 0, 3, 0x0800).to_bytes(),
            [0x16, 0x02, 3, 0, 0, 8, 0, 0]
        );
    }
}
