//! Network attachments (XDP, tcx, netfilter), tried inside a throwaway network namespace so
//! the host's interfaces and netfilter hooks are never touched.
//!
//! A dedicated thread calls `unshare(CLONE_NEWNET)`: that moves only this thread into a new,
//! empty namespace (with `lo`, down). The programs return pass verdicts (XDP_PASS, TCX_NEXT,
//! NF_ACCEPT), so even a packet that did arrive would go on as before. Every link is closed at
//! once; when the thread ends, the namespace goes with it.

use std::os::fd::AsFd;

use super::programs::load;
use super::{name, Check};
use crate::kernel::sys::{self, attach_type, prog_type, Insn, LinkExtra};

const XDP_PASS: i32 = 2;
const TCX_NEXT: i32 = -1;
const NF_ACCEPT: i32 = 1;
const NFPROTO_IPV4: u32 = 2;
const NF_INET_LOCAL_IN: u32 = 1;

pub(crate) fn probe() -> Vec<Check> {
    let names = [name::XDP, name::TCX, name::NETFILTER];
    let joined = std::thread::Builder::new()
        .name("nx-doctor-netns".into())
        .spawn(move || match sys::unshare_netns() {
            Ok(()) => vec![xdp(), tcx(), netfilter()],
            Err(e) => {
                let why = format!("not tried: cannot make a throwaway netns (unshare: {e})");
                names
                    .iter()
                    .map(|n| Check::unknown(n, why.clone()))
                    .collect()
            }
        })
        .map(|thread| thread.join());
    match joined {
        Ok(Ok(checks)) => checks,
        _ => names
            .iter()
            .map(|n| Check::unknown(n, "probe thread failed"))
            .collect(),
    }
}

/// `lo`'s ifindex in this thread's (throwaway) namespace.
fn lo() -> Result<u32, String> {
    sys::ifindex(c"lo").map_err(|e| format!("no lo in the throwaway netns: {e}"))
}

fn xdp() -> Check {
    let n = name::XDP;
    let insns = [Insn::mov64_imm(0, XDP_PASS), Insn::exit()];
    let prog = match load("xdp", prog_type::XDP, attach_type::XDP, 0, &insns) {
        Ok(fd) => fd,
        Err(e) => return Check::missing(n, format!("BPF_PROG_LOAD: {e}")),
    };
    let lo = match lo() {
        Ok(i) => i,
        Err(why) => return Check::unknown(n, format!("loaded; {why}")),
    };
    let generic = sys::XDP_FLAGS_SKB_MODE;
    match sys::link_create(prog.as_fd(), lo, attach_type::XDP, generic, LinkExtra::None) {
        Ok(_link) => Check::ok(n, "generic XDP link on lo (throwaway netns), closed"),
        Err(e) => Check::missing(
            n,
            format!("loaded; BPF_LINK_CREATE(BPF_XDP, lo, generic): {e}"),
        ),
    }
}

fn tcx() -> Check {
    let n = name::TCX;
    let insns = [Insn::mov64_imm(0, TCX_NEXT), Insn::exit()];
    let prog = match load(
        "tcx",
        prog_type::SCHED_CLS,
        attach_type::TCX_INGRESS,
        0,
        &insns,
    ) {
        Ok(fd) => fd,
        Err(e) => return Check::missing(n, format!("BPF_PROG_LOAD: {e}")),
    };
    let lo = match lo() {
        Ok(i) => i,
        Err(why) => return Check::unknown(n, format!("loaded; {why}")),
    };
    match sys::link_create(
        prog.as_fd(),
        lo,
        attach_type::TCX_INGRESS,
        0,
        LinkExtra::None,
    ) {
        Ok(_link) => Check::ok(n, "tcx ingress link on lo (throwaway netns), closed"),
        Err(e) => Check::missing(
            n,
            format!("loaded; BPF_LINK_CREATE(BPF_TCX_INGRESS, lo): {e}"),
        ),
    }
}

fn netfilter() -> Check {
    let n = name::NETFILTER;
    let insns = [Insn::mov64_imm(0, NF_ACCEPT), Insn::exit()];
    let prog = match load(
        "netfilter",
        prog_type::NETFILTER,
        attach_type::NETFILTER,
        0,
        &insns,
    ) {
        Ok(fd) => fd,
        Err(e) => return Check::missing(n, format!("BPF_PROG_LOAD (type 32): {e}")),
    };
    let hook = LinkExtra::Netfilter {
        pf: NFPROTO_IPV4,
        hooknum: NF_INET_LOCAL_IN,
        priority: -128,
        flags: 0,
    };
    match sys::link_create(prog.as_fd(), 0, attach_type::NETFILTER, 0, hook) {
        Ok(_link) => Check::ok(
            n,
            "link on ipv4 LOCAL_IN, priority -128 (throwaway netns), closed",
        ),
        Err(e) => Check::missing(n, format!("loaded; BPF_LINK_CREATE(BPF_NETFILTER): {e}")),
    }
}
