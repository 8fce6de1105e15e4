//! Splicing the compiled filter into a BPF object before it is loaded.
//!
//! The objects have placeholders of NX_JIT_SLOTS instruction slots (a magic
//! 64-bit load, `goto +0` slots, `r0 = 1`; bpf/include/nx_packet.bpf.h):
//! - the subprogram `nx_filter_jit`, ending in `exit`, called with the
//!   packet's bytes in the scratch record (every object has it);
//! - inline regions, one per place a program of trace.bpf.o or
//!   netfilter.bpf.o runs the filter on a packet read in place: they fall
//!   through to the program's next instruction, so the filter's `exit`s
//!   become jumps to the end of the region (a bpf-to-bpf call and return
//!   cost ~15 ns a run on this machine). Found by their magic.
//!
//! Both start, after the magic, with `r8 = &nx_filter_sets ll`, a map load
//! the loader relocates: it stays in place (a filter with set lookups finds
//! the map in r8), so the filter gets the slots after it.
//!
//! The verifier wants one pointer type per load instruction, hence the two
//! kinds. We overwrite each placeholder, in a copy of the ELF, with
//! `r0 = 0; if r0 == 0 goto CODE`, `goto +0` padding, and the compiled
//! filter at the end, so sizes, symbols and BTF line info are unchanged. The
//! verifier knows the branch is always taken: it never walks the padding
//! (dead code, removed after verification), and checks the filter like the
//! rest of the program. Walking a thousand `goto +0`, each a pruning point,
//! was a third of the time a default `trace` took to load (0.3 of 0.95 s
//! here), so every load splices, with [`ACCEPT_ALL`] when there is no
//! filter. (freplace would be the kernel's way, but it is refused under
//! lockdown.)

use crate::insn::Insn;
use object::{Object, ObjectSection, ObjectSymbol, SectionKind};
use std::ops::Range;

/// The placeholder subprogram every object has.
pub const SYMBOL: &str = "nx_filter_jit";
/// NX_JIT_SLOTS in abi.h.
pub const SLOTS: usize = 1024;
/// The slots a filter can fill: all but the magic, the map load and the
/// jump over the padding.
pub const CODE_SLOTS: usize = SLOTS - 6;
/// The filter of a run without one: keep every record.
pub const ACCEPT_ALL: [Insn; 2] = [Insn::mov64_imm(0, 1), Insn::exit()];
/// `r0 = 0`, then `if r0 == 0 goto +off` over the padding (slots 4 and 5).
const SKIP_SET: Insn = Insn::mov64_imm(0, 0);
const JEQ64_IMM: u8 = 0x15;
/// `r8 = &nx_filter_sets ll` before relocation: two slots after the magic.
const SETS_LOAD: [u8; 16] = [0x18, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// `r0 = NX_JIT_MAGIC ll` as two instruction slots.
const MAGIC: [u8; 16] = [
    0x18, 0x00, 0, 0, 0x54, 0x4c, 0x46, 0x54, 0, 0, 0, 0, 0x49, 0x4a, 0x58, 0x4e,
];
/// `r0 = NX_JIT_MAGIC_INLINE ll`.
const MAGIC_INLINE: [u8; 16] = [
    0x18, 0x00, 0, 0, 0x4c, 0x4e, 0x49, 0x54, 0, 0, 0, 0, 0x49, 0x4a, 0x58, 0x4e,
];
const NOP: [u8; 8] = [0x05, 0, 0, 0, 0, 0, 0, 0];
/// `r0 = 1`, the last slot of an inline region.
const ACCEPT: [u8; 8] = [0xb7, 0, 0, 0, 1, 0, 0, 0];
const EXIT: u8 = 0x95;
const JA: u8 = 0x05;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpliceError {
    #[error("the BPF object cannot be parsed: {0}")]
    Elf(String),
    #[error("the BPF object has no filter placeholder {SYMBOL}")]
    NoPlaceholder,
    #[error("the filter placeholder does not look as expected (object and binary out of step?)")]
    BadPlaceholder,
    #[error("filter too complex for the kernel: {0} instructions, at most {CODE_SLOTS}")]
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

/// A placeholder's bytes in the file, and whether it is an inline region.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placeholder {
    range: Range<usize>,
    inline: bool,
}

/// Every placeholder in the object: the subprogram `SYMBOL` (which must
/// exist) and the inline regions of every program section.
fn placeholders(obj: &[u8]) -> Result<Vec<Placeholder>, SpliceError> {
    let file = object::File::parse(obj).map_err(|e| SpliceError::Elf(e.to_string()))?;
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok(SYMBOL))
        .ok_or(SpliceError::NoPlaceholder)?;
    let idx = sym.section_index().ok_or(SpliceError::NoPlaceholder)?;
    let section = file
        .section_by_index(idx)
        .map_err(|e| SpliceError::Elf(e.to_string()))?;
    let (sec_off, sec_len) = section.file_range().ok_or(SpliceError::NoPlaceholder)?;
    let start = sec_off as usize + sym.address() as usize;
    if sym.address() as usize + SLOTS * 8 > sec_len as usize || start + SLOTS * 8 > obj.len() {
        return Err(SpliceError::BadPlaceholder);
    }
    if obj[start..start + 16] != MAGIC || obj[start + 16..start + 32] != SETS_LOAD {
        return Err(SpliceError::BadPlaceholder);
    }
    let mut all = vec![Placeholder {
        range: start..start + SLOTS * 8,
        inline: false,
    }];
    for section in file.sections().filter(|s| s.kind() == SectionKind::Text) {
        let Some((off, len)) = section.file_range() else {
            continue;
        };
        let (off, len) = (off as usize, len as usize);
        let text = obj.get(off..off + len).ok_or(SpliceError::BadPlaceholder)?;
        let mut at = 0;
        while at + 16 <= text.len() {
            if text[at..at + 16] != MAGIC_INLINE {
                at += 8;
                continue;
            }
            let end = at + SLOTS * 8;
            if end > text.len()
                || text[end - 8..end] != ACCEPT
                || text[at + 16..at + 32] != SETS_LOAD
            {
                return Err(SpliceError::BadPlaceholder);
            }
            all.push(Placeholder {
                range: off + at..off + end,
                inline: true,
            });
            at = end;
        }
    }
    Ok(all)
}

/// The filter as an inline region runs it: each `exit` jumps to the first
/// instruction after the region (the filter fills the region's end).
fn inlined(prog: &[Insn]) -> Vec<Insn> {
    let n = prog.len();
    prog.iter()
        .enumerate()
        .map(|(k, x)| {
            if x.code == EXIT {
                Insn {
                    code: JA,
                    dst: 0,
                    src: 0,
                    off: (n - 1 - k) as i16,
                    imm: 0,
                }
            } else {
                *x
            }
        })
        .collect()
}

pub fn splice(obj: &[u8], prog: &[Insn]) -> Result<Patched, SpliceError> {
    if prog.len() > CODE_SLOTS {
        return Err(SpliceError::TooLong(prog.len()));
    }
    let places = placeholders(obj)?;
    let inline = inlined(prog);
    let mut words = vec![0u64; obj.len().div_ceil(8)];
    {
        // SAFETY: words has room for obj.len() bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), obj.len()) };
        bytes.copy_from_slice(obj);
        // The code fills the last slots; slots 6 .. pad are never run.
        let pad = SLOTS - prog.len();
        let skip = Insn::new(JEQ64_IMM, 0, 0, (pad - 6) as i16, 0);
        for p in places {
            let code = if p.inline { &inline } else { prog };
            for (slot, chunk) in bytes[p.range].chunks_exact_mut(8).enumerate() {
                let insn = match slot {
                    2 | 3 => continue, // the map load
                    4 => SKIP_SET.to_bytes(),
                    5 => skip.to_bytes(),
                    s if s < pad => NOP,
                    s => code[s - pad].to_bytes(),
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
    use crate::{ebpf, Filter};

    /// `include_bytes!`, 8-byte aligned as ELF parsing wants (what
    /// `aya::include_bytes_aligned!` does, without aya).
    macro_rules! include_aligned {
        ($path:literal) => {{
            #[repr(C, align(8))]
            struct Aligned<B: ?Sized>(B);
            static ALIGNED: &Aligned<[u8]> = &Aligned(*include_bytes!($path));
            &ALIGNED.0
        }};
    }

    static OBJ: &[u8] = include_aligned!("../../../bpf/trace.bpf.o");

    #[test]
    fn splices_into_the_placeholders_only() {
        let prog = Filter::parse("tcp")
            .unwrap()
            .to_ebpf()
            .unwrap()
            .unwrap()
            .insns;
        let patched = splice(OBJ, &prog).unwrap();
        let out = patched.bytes();
        assert_eq!(out.len(), OBJ.len());
        let mut places = placeholders(OBJ).unwrap();
        assert!(!places[0].inline, "the subprogram first");
        assert!(
            places.iter().filter(|p| p.inline).count() >= 10,
            "trace.bpf.o inlines the filter in its packet programs"
        );
        places.sort_by_key(|p| p.range.start);
        let mut from = 0;
        for p in &places {
            assert_eq!(&out[from..p.range.start], &OBJ[from..p.range.start]);
            from = p.range.end;
            let region = &out[p.range.clone()];
            assert_eq!(&region[..8], &NOP);
            assert_eq!(&region[16..32], &SETS_LOAD, "the map load stays");
            assert_eq!(&region[32..40], &SKIP_SET.to_bytes());
            let over = SLOTS - prog.len() - 6;
            assert_eq!(
                &region[40..48],
                &Insn::new(JEQ64_IMM, 0, 0, over as i16, 0).to_bytes(),
                "a jump over the padding, to the code"
            );
            let code = if p.inline {
                inlined(&prog)
            } else {
                prog.clone()
            };
            let tail = &region[region.len() - 8 * prog.len()..];
            assert_eq!(
                tail,
                code.iter()
                    .flat_map(|i| i.to_bytes())
                    .collect::<Vec<u8>>()
                    .as_slice()
            );
        }
        assert_eq!(&out[from..], &OBJ[from..]);
        // The patched object no longer has the magic: it cannot be patched twice.
        assert_eq!(splice(out, &prog).err(), Some(SpliceError::BadPlaceholder));
    }

    #[test]
    fn inline_exits_jump_past_the_region() {
        let prog = Filter::parse("ip")
            .unwrap()
            .to_ebpf()
            .unwrap()
            .unwrap()
            .insns;
        let code = inlined(&prog);
        assert!(code.iter().all(|x| x.code != EXIT));
        for (k, (a, b)) in prog.iter().zip(&code).enumerate() {
            if a.code == EXIT {
                assert_eq!(b.code, JA);
                assert_eq!(k + 1 + b.off as usize, prog.len(), "to the region's end");
            } else {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn objects_without_packets_have_no_inline_region() {
        static CONN: &[u8] = include_aligned!("../../../bpf/conn.bpf.o");
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
            CODE_SLOTS + 1
        ];
        assert_eq!(
            splice(OBJ, &prog).err(),
            Some(SpliceError::TooLong(CODE_SLOTS + 1))
        );
    }
}
