//! Type ids in the kernel's own BTF (`/sys/kernel/btf/vmlinux`), for `attach_btf_id`.

use aya::{Btf, BtfError};

/// BTF kinds, by their number in the BTF format (`BTF_KIND_*`).
///
/// aya re-exports `Btf` but not `BtfKind` (that lives in aya-obj). Rather than add aya-obj as
/// a direct dependency for one enum, the kind is built from its number through
/// `TryFrom<u32>`, which `BtfKind` implements; type inference picks `BtfKind` from the
/// parameter of `Btf::id_by_type_name_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Typedef = 8,
    Func = 12,
}

/// Parse the running kernel's BTF.
pub fn vmlinux() -> Result<Btf, BtfError> {
    Btf::from_sys_fs()
}

/// The id of the type `name` of `kind`, or `None` if the kernel has no such type.
pub fn type_id(btf: &Btf, name: &str, kind: Kind) -> Option<u32> {
    let kind = TryFrom::try_from(kind as u32).ok()?;
    btf.id_by_type_name_kind(name, kind).ok()
}

/// The `attach_btf_id` of a `tp_btf/<tracepoint>` program: the typedef
/// `btf_trace_<tracepoint>` (this is how libbpf finds it).
pub fn tp_btf_id(btf: &Btf, tracepoint: &str) -> Option<u32> {
    type_id(btf, &format!("btf_trace_{tracepoint}"), Kind::Typedef)
}

/// The `attach_btf_id` of an fentry/fexit program on kernel function `func`.
pub fn func_id(btf: &Btf, func: &str) -> Option<u32> {
    type_id(btf, func, Kind::Func)
}
