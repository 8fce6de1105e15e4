//! One BPF instruction (`struct bpf_insn`): what the filter compiles to, and
//! what netxray's own small programs (probes, test helpers) are written in.

/// One BPF instruction, its fields apart; [`Insn::to_bytes`] gives the
/// kernel's encoding (registers packed in one byte, little endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// Any instruction, from its fields.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// `dst = imm` (64-bit, sign-extended).
    pub const fn mov64_imm(dst: u8, imm: i32) -> Self {
        Self::new(0xb7, dst, 0, 0, imm)
    }

    /// `call helper`.
    pub const fn call(helper: i32) -> Self {
        Self::new(0x85, 0, 0, 0, helper)
    }

    /// `exit`.
    pub const fn exit() -> Self {
        Self::new(0x95, 0, 0, 0, 0)
    }

    /// As the kernel reads it: code, dst in the low nibble and src in the
    /// high one, offset, immediate.
    pub const fn to_bytes(self) -> [u8; 8] {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_struct_bpf_insn() {
        assert_eq!(
            Insn::new(0x61, 2, 9, -4, 0x1234_5678).to_bytes(),
            [0x61, 0x92, 0xfc, 0xff, 0x78, 0x56, 0x34, 0x12]
        );
        assert_eq!(
            Insn::mov64_imm(0, -1).to_bytes(),
            [0xb7, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(Insn::call(18).to_bytes(), [0x85, 0, 0, 0, 18, 0, 0, 0]);
        assert_eq!(Insn::exit().to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }
}
