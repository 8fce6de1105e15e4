//! A small reader for the kernel's BTF: enough to name drop reasons (the
//! `skb_drop_reason` enum changes numbering between kernels, so it is read at
//! run time, never compiled in) and to tell which tracepoints exist
//! (`btf_trace_<event>` typedefs) and how many arguments each passes (they
//! change between kernels: `consume_skb` gained its location in 6.3).
//!
//! Kept beside `aya::Btf` because aya 0.14's `Btf` only finds a type's id by name and kind
//! (its `type_by_id`/`types` are crate-private): it cannot follow `btf_trace_*` to the func
//! proto to count arguments, nor list an enum's values (drop reasons).

use std::collections::{HashMap, HashSet};

const BTF_MAGIC: u16 = 0xEB9F;
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
}

/// What netxray needs from the kernel's BTF.
#[derive(Debug, Default)]
pub struct KernelBtf {
    typedefs: HashSet<String>,
    /// Tracepoint (event name) -> the arguments it passes to a BPF program.
    tp_args: HashMap<String, u16>,
    enums: HashMap<String, Vec<(String, i64)>>,
}

struct Cursor<'a> {
    data: &'a [u8],
}

impl Cursor<'_> {
    fn u32_at(&self, off: usize) -> Result<u32, BtfError> {
        self.data
            .get(off..off + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(BtfError::Malformed("truncated"))
    }
}

/// The running kernel's BTF, read once while someone holds it: sysfs hands
/// its 5 MB out a page per read(2), and two parsers (this one, aya's) read
/// it. Not kept for the whole run (its memory counts in netxray's peak):
/// a caller that will parse it twice holds the returned bytes across both.
pub fn vmlinux_bytes() -> Result<std::sync::Arc<Vec<u8>>, BtfError> {
    use std::sync::{Arc, Mutex, Weak};
    static HELD: Mutex<Weak<Vec<u8>>> = Mutex::new(Weak::new());
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = held.upgrade() {
        return Ok(b);
    }
    let path = KernelBtf::VMLINUX;
    let data = std::fs::read(path).map_err(|source| BtfError::Read {
        path: path.into(),
        source,
    })?;
    let data = Arc::new(data);
    *held = Arc::downgrade(&data);
    Ok(data)
}

/// aya's view of the running kernel's BTF (for loading programs), parsed
/// from the bytes [`vmlinux_bytes`] read.
pub fn aya_btf() -> Option<aya::Btf> {
    aya::Btf::parse(&vmlinux_bytes().ok()?, aya::Endianness::default()).ok()
}

impl KernelBtf {
    pub const VMLINUX: &'static str = "/sys/kernel/btf/vmlinux";

    /// Load the running kernel's BTF. For tests, `NETXRAY_BTF` names another
    /// file, and `NETXRAY_HIDE_TRACEPOINTS` (comma separated event names)
    /// pretends the kernel lacks those tracepoints.
    pub fn load() -> Result<Self, BtfError> {
        let mut btf = match std::env::var("NETXRAY_BTF") {
            Ok(path) => {
                let data =
                    std::fs::read(&path).map_err(|source| BtfError::Read { path, source })?;
                Self::parse(&data)?
            }
            Err(_) => Self::parse(&vmlinux_bytes()?)?,
        };
        if let Ok(hide) = std::env::var("NETXRAY_HIDE_TRACEPOINTS") {
            for ev in hide.split(',').map(|e| e.rsplit(':').next().unwrap_or(e)) {
                btf.typedefs.remove(&format!("btf_trace_{ev}"));
            }
        }
        Ok(btf)
    }

    /// Parse raw BTF (little endian, as on x86-64 and arm64).
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let c = Cursor { data };
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != BTF_MAGIC {
            return Err(BtfError::Malformed("bad magic"));
        }
        let hdr_len = c.u32_at(4)? as usize;
        let type_off = c.u32_at(8)? as usize;
        let type_len = c.u32_at(12)? as usize;
        let str_off = c.u32_at(16)? as usize;
        let str_len = c.u32_at(20)? as usize;
        let types_start = hdr_len + type_off;
        let types_end = types_start + type_len;
        let strs_start = hdr_len + str_off;
        let strs = data
            .get(strs_start..strs_start + str_len)
            .ok_or(BtfError::Malformed("string section out of bounds"))?;
        if types_end > data.len() {
            return Err(BtfError::Malformed("type section out of bounds"));
        }
        let name = |off: u32| -> String {
            let start = off as usize;
            let rest = strs.get(start..).unwrap_or(&[]);
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end]).into_owned()
        };

        let mut out = KernelBtf::default();
        // For tracepoint signatures: btf_trace_X is a typedef of a pointer
        // to a function prototype whose first parameter is the tracepoint's
        // private data. Type ids count from 1 in section order.
        let mut tp_typedefs: Vec<(String, u32)> = Vec::new();
        let mut targets: HashMap<u32, (u32, u32)> = HashMap::new(); // id -> (kind, type or vlen)
        let mut id: u32 = 0;
        let mut off = types_start;
        while off + 12 <= types_end {
            id += 1;
            let name_off = c.u32_at(off)?;
            let info = c.u32_at(off + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let body = off + 12;
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC => vlen * 12,
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_ENUM64 => vlen * 12,
                _ => 0,
            };
            match kind {
                KIND_TYPEDEF => {
                    let n = name(name_off);
                    if let Some(ev) = n.strip_prefix("btf_trace_") {
                        tp_typedefs.push((ev.to_string(), c.u32_at(off + 8)?));
                    }
                    out.typedefs.insert(n);
                }
                KIND_PTR => {
                    targets.insert(id, (KIND_PTR, c.u32_at(off + 8)?));
                }
                KIND_FUNC_PROTO => {
                    targets.insert(id, (KIND_FUNC_PROTO, vlen as u32));
                }
                KIND_ENUM | KIND_ENUM64 if name_off != 0 => {
                    let step = if kind == KIND_ENUM { 8 } else { 12 };
                    let mut vals = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let m = body + i * step;
                        let lo = c.u32_at(m + 4)?;
                        let v = if kind == KIND_ENUM {
                            lo as i32 as i64
                        } else {
                            ((c.u32_at(m + 8)? as i64) << 32) | lo as i64
                        };
                        vals.push((name(c.u32_at(m)?), v));
                    }
                    out.enums.insert(name(name_off), vals);
                }
                _ => {}
            }
            off = body + extra;
        }
        for (ev, ty) in tp_typedefs {
            if let Some(&(KIND_PTR, proto)) = targets.get(&ty) {
                if let Some(&(KIND_FUNC_PROTO, vlen)) = targets.get(&proto) {
                    out.tp_args.insert(ev, vlen.saturating_sub(1) as u16);
                }
            }
        }
        Ok(out)
    }

    /// Whether the kernel has the tracepoint `event` (e.g. `netif_receive_skb`).
    pub fn has_tracepoint(&self, event: &str) -> bool {
        self.typedefs.contains(&format!("btf_trace_{event}"))
    }

    /// How many arguments tracepoint `event` passes to a BPF program (None:
    /// unknown, or no such tracepoint).
    pub fn tracepoint_args(&self, event: &str) -> Option<u16> {
        if !self.has_tracepoint(event) {
            return None;
        }
        self.tp_args.get(event).copied()
    }

    /// Whether enum `enum_name` has a variant `variant`.
    pub fn has_enum_value(&self, enum_name: &str, variant: &str) -> bool {
        self.enums
            .get(enum_name)
            .is_some_and(|v| v.iter().any(|(n, _)| n == variant))
    }

    /// Drop reasons by value, without the `SKB_DROP_REASON_` prefix. A
    /// kernel without drop reasons (before 5.17: kfree_skb passes none, the
    /// programs report 0) gets `NOT_SPECIFIED` for 0: where, not why.
    pub fn drop_reasons(&self) -> HashMap<i64, String> {
        let mut names = self.enum_names("skb_drop_reason", "SKB_DROP_REASON_");
        if names.is_empty() {
            names.insert(0, "NOT_SPECIFIED".into());
        }
        names
    }

    /// The variants of an enum, by value.
    pub fn enum_names(&self, enum_name: &str, strip_prefix: &str) -> HashMap<i64, String> {
        self.enums
            .get(enum_name)
            .into_iter()
            .flatten()
            .map(|(n, v)| (*v, n.strip_prefix(strip_prefix).unwrap_or(n).to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a tiny BTF blob: a tracepoint typedef (two arguments) and one enum.
    fn blob() -> Vec<u8> {
        let strs = b"\0btf_trace_foo\0skb_drop_reason\0SKB_DROP_REASON_NOT_SPECIFIED\0SKB_DROP_REASON_NO_SOCKET\0";
        let mut types = Vec::new();
        let push = |t: &mut Vec<u8>, v: u32| t.extend_from_slice(&v.to_le_bytes());
        // [1] typedef btf_trace_foo -> [2]
        push(&mut types, 1);
        push(&mut types, KIND_TYPEDEF << 24);
        push(&mut types, 2);
        // [2] pointer -> [3]
        push(&mut types, 0);
        push(&mut types, KIND_PTR << 24);
        push(&mut types, 3);
        // [3] void (*)(void *, void *, int): three parameters
        push(&mut types, 0);
        push(&mut types, (KIND_FUNC_PROTO << 24) | 3);
        push(&mut types, 0);
        for _ in 0..3 {
            push(&mut types, 0);
            push(&mut types, 0);
        }
        // enum skb_drop_reason { NOT_SPECIFIED = 2, NO_SOCKET = 3 }
        push(&mut types, 15);
        push(&mut types, (KIND_ENUM << 24) | 2);
        push(&mut types, 4);
        push(&mut types, 31);
        push(&mut types, 2);
        push(&mut types, 61);
        push(&mut types, 3);
        let mut out = Vec::new();
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for v in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strs.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&types);
        out.extend_from_slice(strs);
        out
    }

    #[test]
    fn reads_typedefs_and_enums() {
        let btf = KernelBtf::parse(&blob()).unwrap();
        assert!(btf.has_tracepoint("foo"));
        assert!(!btf.has_tracepoint("bar"));
        assert_eq!(btf.tracepoint_args("foo"), Some(2));
        assert_eq!(btf.tracepoint_args("bar"), None);
        let names = btf.enum_names("skb_drop_reason", "SKB_DROP_REASON_");
        assert_eq!(names.get(&3).map(String::as_str), Some("NO_SOCKET"));
        assert_eq!(btf.drop_reasons(), names);
        let none = KernelBtf::default().drop_reasons();
        assert_eq!(none.get(&0).map(String::as_str), Some("NOT_SPECIFIED"));
        assert_eq!(names.get(&2).map(String::as_str), Some("NOT_SPECIFIED"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(KernelBtf::parse(b"nope").is_err());
        let mut b = blob();
        b.truncate(40);
        assert!(KernelBtf::parse(&b).is_err());
    }

    #[test]
    fn reads_this_kernel_when_present() {
        if let Ok(btf) = KernelBtf::load() {
            assert!(btf.has_tracepoint("netif_receive_skb"));
            assert_eq!(btf.tracepoint_args("netif_receive_skb"), Some(1));
            assert!(btf.tracepoint_args("kfree_skb").is_some_and(|n| n >= 2));
            let reasons = btf.enum_names("skb_drop_reason", "SKB_DROP_REASON_");
            assert!(reasons.values().any(|n| n == "NO_SOCKET"));
        }
    }
}
