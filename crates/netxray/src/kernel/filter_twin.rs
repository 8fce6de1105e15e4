//! The kernel's filter on a test bench: `bpf/filter_twin.bpf.o` has the same
//! `nx_filter_jit` placeholder and scratch layout as the tracing programs,
//! on a TC program that `BPF_PROG_TEST_RUN` can run (tp_btf programs cannot
//! be test-run). Used by the test suite to check the kernel's verdicts
//! against tcpdump's, and by nothing at run time.

use crate::error::{Error, Result};
use crate::kernel::session;
use crate::kernel::sys;
use aya::programs::SchedClassifier;
use aya::{Btf, Ebpf, EbpfLoader};
use netxray_filter::{splice, Filter};
use std::os::fd::AsFd;

static TWIN_OBJ: &[u8] = aya::include_bytes_aligned!("../../../../bpf/filter_twin.bpf.o");

/// `struct __sk_buff` as BPF_PROG_TEST_RUN takes it; `mark` at offset 8.
const SKB_CTX_SIZE: usize = 192;

pub struct FilterTwin {
    ebpf: Ebpf,
}

impl FilterTwin {
    /// Load the twin with `filter` compiled and spliced in.
    pub fn load(filter: &Filter) -> Result<Self> {
        let btf = crate::kernel::btf::aya_btf().ok_or(Error::NoBtf)?;
        Self::load_with(&btf, filter)
    }

    /// The same, with the kernel's BTF already parsed (loading many filters).
    pub fn load_with(btf: &Btf, filter: &Filter) -> Result<Self> {
        let prog = filter
            .to_ebpf()
            .map_err(|e| Error::usage(format!("bad filter: {e}")))?;
        let code = prog
            .as_ref()
            .map_or(&splice::ACCEPT_ALL[..], |p| &p.insns[..]);
        let patched = splice::splice(TWIN_OBJ, code).map_err(|e| Error::usage(e.to_string()))?;
        let object = patched.bytes();
        let sets = prog.as_ref().map_or(&[][..], |p| &p.sets[..]);
        let mut ebpf = EbpfLoader::new()
            .btf(Some(btf))
            .map_max_entries(session::SETS_MAP, sets.len().max(1) as u32)
            .load(object)
            .map_err(|e| Error::kernel("loading filter_twin.bpf.o", e))?;
        session::fill_sets(&mut ebpf, "filter_twin.bpf.o", sets)?;
        let p: &mut SchedClassifier = ebpf
            .program_mut("nx_filter_twin")
            .ok_or_else(|| Error::Runtime("filter_twin.bpf.o has no nx_filter_twin".into()))?
            .try_into()
            .map_err(|e| Error::kernel("nx_filter_twin", e))?;
        p.load()
            .map_err(|e| Error::kernel("verifying the filter twin", e))?;
        Ok(Self { ebpf })
    }

    /// The kernel's verdict on an Ethernet frame, seen from its Ethernet
    /// header (`l2`) or, like at hooks before the MAC header exists, from
    /// its network header with the protocol taken from the ethertype.
    pub fn matches(&self, frame: &[u8], l2: bool) -> Result<bool> {
        if frame.len() < 14 {
            return Err(Error::usage(
                "the filter twin needs at least an Ethernet header",
            ));
        }
        let p: &SchedClassifier = self
            .ebpf
            .program("nx_filter_twin")
            .ok_or_else(|| Error::Runtime("nx_filter_twin missing".into()))?
            .try_into()
            .map_err(|e| Error::kernel("nx_filter_twin", e))?;
        let fd = p.fd().map_err(|e| Error::kernel("nx_filter_twin", e))?;
        let mut ctx = [0u8; SKB_CTX_SIZE];
        let mut mark = u32::from(!l2);
        let mut data = std::borrow::Cow::Borrowed(frame);
        // The kernel refuses to test-run an IPv4/IPv6 frame with a short
        // header: send it as another ethertype; the twin puts it back.
        let et = u16::from_be_bytes([frame[12], frame[13]]);
        let short = match et {
            0x0800 => frame.len() < 14 + 20,
            0x86dd => frame.len() < 14 + 40,
            _ => false,
        };
        if l2 && short {
            mark |= 2;
            ctx[32..36].copy_from_slice(&u32::from(et).to_ne_bytes());
            let mut f = frame.to_vec();
            f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            data = std::borrow::Cow::Owned(f);
        }
        ctx[8..12].copy_from_slice(&mark.to_ne_bytes());
        let ret = sys::prog_test_run(fd.as_fd(), &data, &ctx).map_err(|e| {
            Error::Runtime(format!(
                "BPF_PROG_TEST_RUN of the filter twin failed: {}",
                e.name().unwrap_or("error")
            ))
        })?;
        Ok(ret == 1)
    }
}
