//! Splicing the compiled filter into a BPF object before it is loaded.
//!
//! The objects have placeholder subprograms (a magic 64-bit load, `goto +0`
//! slots, `r0 = 1; exit`): `nx_filter_jit`, called with the packet's bytes
//! in the scratch record, and in the packet objects `nx_filter_jit_direct`,
//! called with them where they lie in the packet (the verifier wants one
//! pointer type per load instruction, so each way of calling has its own
//! copy). We overwrite each, in a copy of the ELF, with `goto +0` padding
//! followed by the compiled filter, so it keeps its size, symbol and BTF
//! line info. The verifier then checks the filter like the rest of the
//! program. (freplace would be the kernel's way, but it is refused under
//! lockdown.)

use crate::model::filter::ebpf::Insn;
use object::{Object, ObjectSection, ObjectSymbol};

/// The placeholder every object has.
pub const SYMBOL: &str = "nx_filter_jit";
/// The placeholder for packet bytes read in place (nx_packet.bpf.h).
pub const SYMBOL_DIRECT: &str = "nx_filter_jit_direct";
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

/// Where the placeholder `name` is in the file, None if the object has none.
fn placeholder_range(obj: &[u8], name: &str) -> Result<Option<std::ops::Range<usize>>, JitError> {
    let file = object::File::parse(obj).map_err(|e| JitError::Elf(e.to_string()))?;
    let Some(sym) = file.symbols().find(|s| s.name() == Ok(name)) else {
        return Ok(None);
    };
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
    Ok(Some(start..end))
}

/// Every placeholder in the object, `SYMBOL`'s first (it must exist).
fn placeholders(obj: &[u8]) -> Result<Vec<std::ops::Range<usize>>, JitError> {
    let main = placeholder_range(obj, SYMBOL)?.ok_or(JitError::NoPlaceholder)?;
    let mut all = vec![main];
    all.extend(placeholder_range(obj, SYMBOL_DIRECT)?);
    Ok(all)
}

pub fn splice(obj: &[u8], prog: &[Insn]) -> Result<Patched, JitError> {
    if prog.len() > SLOTS {
        return Err(JitError::TooLong(prog.len()));
    }
    let ranges = placeholders(obj)?;
    if ranges.iter().any(|r| obj[r.start..r.start + 16] != MAGIC) {
        return Err(JitError::BadPlaceholder);
    }
    let mut words = vec![0u64; obj.len().div_ceil(8)];
    {
        // SAFETY: words has room for obj.len() bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), obj.len()) };
        bytes.copy_from_slice(obj);
        let pad = SLOTS - prog.len();
        for range in ranges {
            for (slot, chunk) in bytes[range].chunks_exact_mut(8).enumerate() {
                let insn = if slot < pad {
                    NOP
                } else {
                    prog[slot - pad].to_bytes()
                };
                chunk.copy_from_slice(&insn);
            }
        }
    }
    Ok(Patched {
        words,
        len: obj.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::filter::{ebpf, Filter};

    static OBJ: &[u8] = aya::include_bytes_aligned!("../../../../bpf/trace.bpf.o");

    #[test]
    fn splices_into_the_placeholders_only() {
        let prog = Filter::parse("tcp").unwrap().to_ebpf().unwrap().unwrap();
        let patched = splice(OBJ, &prog).unwrap();
        let out = patched.bytes();
        assert_eq!(out.len(), OBJ.len());
        let mut ranges = placeholders(OBJ).unwrap();
        assert_eq!(ranges.len(), 2, "trace.bpf.o has both placeholders");
        ranges.sort_by_key(|r| r.start);
        let mut from = 0;
        for range in &ranges {
            assert_eq!(&out[from..range.start], &OBJ[from..range.start]);
            from = range.end;
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
        }
        assert_eq!(&out[from..], &OBJ[from..]);
        // The patched object no longer has the magic: it cannot be patched twice.
        assert_eq!(splice(out, &prog).err(), Some(JitError::BadPlaceholder));
    }

    #[test]
    fn objects_without_packets_have_one_placeholder() {
        static CONN: &[u8] = aya::include_bytes_aligned!("../../../../bpf/conn.bpf.o");
        assert_eq!(placeholders(CONN).unwrap().len(), 1);
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
