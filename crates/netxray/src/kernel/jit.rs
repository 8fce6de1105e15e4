//! Splicing the compiled filter into trace.bpf.o before it is loaded.
//!
//! The object has a placeholder subprogram `nx_filter_jit` (a magic 64-bit
//! load, `goto +0` slots, `r0 = 1; exit`). We overwrite it, in a copy of the
//! ELF, with `goto +0` padding followed by the compiled filter, so it keeps its
//! size, symbol and BTF line info. The verifier then checks the filter like
//! the rest of the program. (freplace would be the kernel's way, but it is
//! refused under lockdown.)

use crate::model::filter::ebpf::Insn;
use object::{Object, ObjectSection, ObjectSymbol};

pub const SYMBOL: &str = "nx_filter_jit";
/// NX_JIT_SLOTS in abi.h.
pub const SLOTS: usize = 1024;
/// `r0 = NX_JIT_MAGIC ll` as two instruction slots.
const MAGIC: [u8; 16] = [
    0x18, 0x00, 0, 0, 0x54, 0x4c, 0x46, 0x54, 0, 0, 0, 0, 0x49, 0x4a, 0x58, 0x4e,
];
const NOP: [u8; 8] = [0x05, 0, 0, 0, 0, 0, 0, 0];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JitError {
    #[error("the BPF object cannot be parsed: {0}")]
    Elf(String),
    #[error("the BPF object has no filter placeholder {SYMBOL}")]
    NoPlaceholder,
    #[error("the filter placeholder does not look as expected (object and binary out of step?)")]
    BadPlaceholder,
    #[error("filter too complex for the kernel: {0} instructions, at most {SLOTS}")]
    TooLong(usize),
}

/// A copy of `obj` with the filter spliced in, 8-byte aligned as ELF
/// parsing wants (hence u64 storage).
pub struct Patched {
    words: Vec<u64>,
    len: usize,
}

impl Patched {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: words holds at least len bytes; u8 has no alignment needs.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

fn placeholder_range(obj: &[u8]) -> Result<std::ops::Range<usize>, JitError> {
    let file = object::File::parse(obj).map_err(|e| JitError::Elf(e.to_string()))?;
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok(SYMBOL))
        .ok_or(JitError::NoPlaceholder)?;
    let idx = sym.section_index().ok_or(JitError::NoPlaceholder)?;
    let section = file
        .section_by_index(idx)
        .map_err(|e| JitError::Elf(e.to_string()))?;
    let (sec_off, sec_len) = section.file_range().ok_or(JitError::NoPlaceholder)?;
    let start = sec_off as usize + sym.address() as usize;
    let end = start + SLOTS * 8;
    if sym.address() as usize + SLOTS * 8 > sec_len as usize || end > obj.len() {
        return Err(JitError::BadPlaceholder);
    }
    Ok(start..end)
}

pub fn splice(obj: &[u8], prog: &[Insn]) -> Result<Patched, JitError> {
    if prog.len() > SLOTS {
        return Err(JitError::TooLong(prog.len()));
    }
    let range = placeholder_range(obj)?;
    if obj[range.start..range.start + 16] != MAGIC {
        return Err(JitError::BadPlaceholder);
    }
    let mut words = vec![0u64; obj.len().div_ceil(8)];
    let mut p = Patched {
        len: obj.len(),
        words: Vec::new(),
    };
    {
        // SAFETY: words has room for obj.len() bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), obj.len()) };
        bytes.copy_from_slice(obj);
        let region = &mut bytes[range];
        let pad = SLOTS - prog.len();
        for (slot, chunk) in region.chunks_exact_mut(8).enumerate() {
            let insn = if slot < pad {
                NOP
            } else {
                prog[slot - pad].to_bytes()
            };
            chunk.copy_from_slice(&insn);
        }
    }
    p.words = words;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::filter::{ebpf, Filter};

    static OBJ: &[u8] = aya::include_bytes_aligned!("../../../../bpf/trace.bpf.o");

    #[test]
    fn splices_into_the_placeholder_only() {
        let prog = Filter::parse("tcp").unwrap().to_ebpf().unwrap().unwrap();
        let patched = splice(OBJ, &prog).unwrap();
        let out = patched.bytes();
        assert_eq!(out.len(), OBJ.len());
        let range = placeholder_range(OBJ).unwrap();
        assert_eq!(&out[..range.start], &OBJ[..range.start]);
        assert_eq!(&out[range.end..], &OBJ[range.end..]);
        let region = &out[range.clone()];
        assert_eq!(&region[..8], &NOP);
        let tail = &region[region.len() - 8 * prog.len()..];
        assert_eq!(
            tail,
            prog.iter()
                .flat_map(|i| i.to_bytes())
                .collect::<Vec<u8>>()
                .as_slice()
        );
        // The patched object no longer has the magic: it cannot be patched twice.
        assert_eq!(splice(out, &prog).err(), Some(JitError::BadPlaceholder));
    }

    #[test]
    fn too_long_is_refused() {
        let prog = vec![
            ebpf::Insn {
                code: 0x05,
                dst: 0,
                src: 0,
                off: 0,
                imm: 0
            };
            SLOTS + 1
        ];
        assert_eq!(splice(OBJ, &prog).err(), Some(JitError::TooLong(SLOTS + 1)));
    }
}
