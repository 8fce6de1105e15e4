//! `bpf(2)`: program load, map create, raw tracepoint open, link create.

use std::ffi::{c_char, c_long, c_void, CStr};
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::Errno;

// bpf(2) commands.
const BPF_MAP_CREATE: c_long = 0;
const BPF_PROG_LOAD: c_long = 5;
const BPF_PROG_TEST_RUN: c_long = 10;
const BPF_RAW_TRACEPOINT_OPEN: c_long = 17;
const BPF_LINK_CREATE: c_long = 28;
const BPF_PROG_GET_FD_BY_ID: c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: c_long = 15;

/// `enum bpf_prog_type` values used by the probe.
pub mod prog_type {
    pub const KPROBE: u32 = 2;
    pub const SCHED_CLS: u32 = 3;
    pub const TRACEPOINT: u32 = 5;
    pub const XDP: u32 = 6;
    pub const RAW_TRACEPOINT: u32 = 17;
    pub const TRACING: u32 = 26;
    pub const NETFILTER: u32 = 32;
}

/// `enum bpf_attach_type` values used by the probe.
pub mod attach_type {
    pub const NONE: u32 = 0;
    pub const TRACE_RAW_TP: u32 = 23;
    pub const TRACE_FENTRY: u32 = 24;
    pub const XDP: u32 = 37;
    pub const TRACE_KPROBE_MULTI: u32 = 42;
    pub const NETFILTER: u32 = 45;
    pub const TCX_INGRESS: u32 = 46;
    pub const TCX_EGRESS: u32 = 47;
}

/// `enum bpf_map_type`: the ring buffer.
pub const MAP_TYPE_RINGBUF: u32 = 27;
/// `XDP_FLAGS_SKB_MODE`: generic XDP.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;

/// One BPF instruction: the filter's type, so that compiled filters and
/// hand-written programs are one thing (encoded for the kernel by
/// [`prog_load`]).
pub use netxray_filter::ebpf::Insn;

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to `log_true_size`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    core_relo_cnt: u32,
    fd_array: u64,
    core_relos: u64,
    core_relo_rec_size: u32,
    log_true_size: u32,
}
const _: () = assert!(std::mem::size_of::<ProgLoadAttr>() == 144);

/// What to load: a program type, its attach type and BTF target, and the code.
#[derive(Debug, Clone, Copy)]
pub struct ProgSpec<'a> {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    /// A vmlinux BTF type id (tp_btf typedef, fentry FUNC), or 0.
    pub attach_btf_id: u32,
    /// Shown by `bpftool prog`; at most 15 bytes are kept.
    pub name: &'a str,
    pub insns: &'a [Insn],
}

/// A refused `BPF_PROG_LOAD`: the errno and the verifier's last words (may be empty).
#[derive(Debug, Clone)]
pub struct LoadError {
    pub errno: Errno,
    pub log: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.log.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => write!(f, "{} ({})", self.errno, last.trim()),
            None => write!(f, "{}", self.errno),
        }
    }
}

const LICENSE: &CStr = c"GPL";

/// `BPF_PROG_LOAD`. On failure, loads again with a verifier log (as libbpf does) so the
/// error says why.
pub fn prog_load(spec: &ProgSpec<'_>) -> Result<OwnedFd, LoadError> {
    let code: Vec<[u8; 8]> = spec.insns.iter().map(|i| i.to_bytes()).collect();
    match prog_load_once(spec, &code, None) {
        Ok(fd) => Ok(fd),
        Err(errno) => {
            let mut log = vec![0u8; 64 * 1024];
            let log = match prog_load_once(spec, &code, Some(&mut log)) {
                Ok(_fd) => String::new(), // loaded the second time: drop it, report the first errno
                Err(_) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    String::from_utf8_lossy(&log[..end]).into_owned()
                }
            };
            Err(LoadError { errno, log })
        }
    }
}

/// `code`: `spec.insns` encoded, as `struct bpf_insn`s.
fn prog_load_once(
    spec: &ProgSpec<'_>,
    code: &[[u8; 8]],
    log: Option<&mut [u8]>,
) -> Result<OwnedFd, Errno> {
    let mut attr = ProgLoadAttr {
        prog_type: spec.prog_type,
        insn_cnt: code.len() as u32,
        insns: code.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        expected_attach_type: spec.expected_attach_type,
        attach_btf_id: spec.attach_btf_id,
        ..Default::default()
    };
    for (dst, src) in attr.prog_name[..15].iter_mut().zip(spec.name.bytes()) {
        *dst = if src.is_ascii_alphanumeric() {
            src
        } else {
            b'_'
        };
    }
    if let Some(buf) = log {
        attr.log_level = 1;
        attr.log_size = buf.len() as u32;
        attr.log_buf = buf.as_mut_ptr() as u64;
    }
    // SAFETY: attr is a fully initialised repr(C) prefix of union bpf_attr; the pointers in it
    // (insns: code's insn_cnt instructions, license, log_buf) outlive the call, and log_size
    // is the log buffer's length.
    unsafe { bpf_fd(BPF_PROG_LOAD, &attr) }
}

/// The `BPF_MAP_CREATE` part of `union bpf_attr`, up to `map_flags`.
#[repr(C)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

/// `BPF_MAP_CREATE` without BTF or name.
pub fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
) -> Result<OwnedFd, Errno> {
    let attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags: 0,
    };
    // SAFETY: attr is a fully initialised repr(C) prefix of union bpf_attr with no pointers.
    unsafe { bpf_fd(BPF_MAP_CREATE, &attr) }
}

/// The `BPF_RAW_TRACEPOINT_OPEN` part of `union bpf_attr` (without the 6.10 cookie).
#[repr(C)]
struct RawTpAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// `BPF_RAW_TRACEPOINT_OPEN`: `name` for raw_tp programs; `None` for tracing programs
/// (tp_btf, fentry), whose target was fixed at load time by `attach_btf_id`.
pub fn raw_tracepoint_open(name: Option<&CStr>, prog: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let attr = RawTpAttr {
        name: name.map_or(0, |n| n.as_ptr() as u64),
        prog_fd: prog.as_raw_fd() as u32,
        _pad: 0,
    };
    // SAFETY: attr is a repr(C) prefix of union bpf_attr; name, if any, is a C string that
    // outlives the call.
    unsafe { bpf_fd(BPF_RAW_TRACEPOINT_OPEN, &attr) }
}

/// The attach-type specific tail of `BPF_LINK_CREATE`.
#[derive(Debug, Clone, Copy)]
pub enum LinkExtra<'a> {
    None,
    /// `link_create.netfilter`.
    Netfilter {
        pf: u32,
        hooknum: u32,
        priority: i32,
        flags: u32,
    },
    /// `link_create.kprobe_multi` by symbol names.
    KprobeMulti {
        syms: &'a [*const c_char],
    },
}

#[repr(C)]
struct LinkCreateAttr<T> {
    prog_fd: u32,
    target: u32, // target_fd or target_ifindex
    attach_type: u32,
    flags: u32,
    tail: T,
}

#[repr(C)]
struct NetfilterTail {
    pf: u32,
    hooknum: u32,
    priority: i32,
    flags: u32,
}

#[repr(C)]
struct KprobeMultiTail {
    flags: u32,
    cnt: u32,
    syms: u64,
    addrs: u64,
    cookies: u64,
}

/// `BPF_LINK_CREATE`. `target` is an ifindex (XDP, tcx), an fd, or 0.
/// For tcx the tail (relative_fd, expected_revision) stays zero: append, any revision.
pub fn link_create(
    prog: BorrowedFd<'_>,
    target: u32,
    attach_type: u32,
    flags: u32,
    extra: LinkExtra<'_>,
) -> Result<OwnedFd, Errno> {
    let prog_fd = prog.as_raw_fd() as u32;
    match extra {
        LinkExtra::None => {
            let attr = LinkCreateAttr {
                prog_fd,
                target,
                attach_type,
                flags,
                tail: [0u64; 2],
            };
            // SAFETY: repr(C) prefix of union bpf_attr, no pointers.
            unsafe { bpf_fd(BPF_LINK_CREATE, &attr) }
        }
        LinkExtra::Netfilter {
            pf,
            hooknum,
            priority,
            flags: nf_flags,
        } => {
            let tail = NetfilterTail {
                pf,
                hooknum,
                priority,
                flags: nf_flags,
            };
            let attr = LinkCreateAttr {
                prog_fd,
                target,
                attach_type,
                flags,
                tail,
            };
            // SAFETY: repr(C) prefix of union bpf_attr, no pointers.
            unsafe { bpf_fd(BPF_LINK_CREATE, &attr) }
        }
        LinkExtra::KprobeMulti { syms } => {
            let tail = KprobeMultiTail {
                flags: 0,
                cnt: syms.len() as u32,
                syms: syms.as_ptr() as u64,
                addrs: 0,
                cookies: 0,
            };
            let attr = LinkCreateAttr {
                prog_fd,
                target,
                attach_type,
                flags,
                tail,
            };
            // SAFETY: repr(C) prefix of union bpf_attr; syms points to cnt C-string pointers
            // that the caller keeps alive for the call.
            unsafe { bpf_fd(BPF_LINK_CREATE, &attr) }
        }
    }
}

/// # Safety
/// `attr` must be a valid prefix of `union bpf_attr` for `cmd`, and every pointer in it must
/// be valid for the duration of the call.
/// The `BPF_PROG_TEST_RUN` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}
const _: () = assert!(std::mem::size_of::<TestRunAttr>() == 80);

/// Run a program once on `data` (and a context such as a `struct
/// __sk_buff`), returning its return value.
pub fn prog_test_run(prog: BorrowedFd<'_>, data: &[u8], ctx: &[u8]) -> Result<u32, Errno> {
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: data.len() as u32,
        data_in: data.as_ptr() as u64,
        repeat: 1,
        ..Default::default()
    };
    if !ctx.is_empty() {
        attr.ctx_size_in = ctx.len() as u32;
        attr.ctx_in = ctx.as_ptr() as u64;
    }
    let size = std::mem::size_of::<TestRunAttr>() as c_long;
    // SAFETY: attr is a valid BPF_PROG_TEST_RUN attribute; data and ctx
    // outlive the call and the kernel only reads them (no output buffers).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr as *mut c_void,
            size,
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    Ok(attr.retval)
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
struct InfoByFdAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The name of the loaded program with id `id` (as `bpftool prog` shows
/// it), e.g. to say who holds an interface's XDP.
pub fn prog_name_by_id(id: u32) -> Result<String, Errno> {
    let attr = GetFdByIdAttr {
        id,
        ..Default::default()
    };
    // SAFETY: a valid BPF_PROG_GET_FD_BY_ID attribute.
    let fd = unsafe { bpf_fd(BPF_PROG_GET_FD_BY_ID, &attr)? };
    // struct bpf_prog_info: name[16] at offset 64; the rest is zero (the
    // kernel accepts a longer, zeroed buffer).
    let mut info = [0u8; 256];
    let mut attr = InfoByFdAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    let size = std::mem::size_of::<InfoByFdAttr>() as c_long;
    // SAFETY: attr points to `info`, which outlives the call; the kernel
    // writes at most info_len bytes into it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut InfoByFdAttr as *mut c_void,
            size,
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    let name = &info[64..80];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..end]).into_owned())
}

unsafe fn bpf_fd<T>(cmd: c_long, attr: &T) -> Result<OwnedFd, Errno> {
    let size = std::mem::size_of::<T>() as c_long;
    // SAFETY: the caller guarantees attr is valid for cmd; the kernel reads at most `size` bytes.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *const T as *const c_void, size) };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: on success these commands return a new file descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}
