//! The kernel's filter against tcpdump: every expression of the corpus is
//! compiled to BPF, spliced into the TC twin of the tracing programs
//! (`bpf/filter_twin.bpf.c`, same placeholder and scratch layout) and run
//! on every frame with BPF_PROG_TEST_RUN. Its verdicts must be tcpdump's
//! (`filter_corpus/expected.txt`). Frames are also run without their
//! Ethernet header, as hooks before the MAC header see them, and must agree
//! with the user-space evaluator there.

mod common;

use common::filter_corpus::*;
use netxray::kernel::filter_twin::FilterTwin;
use netxray::model::filter::{Filter, Frame};

/// NX_CAP_BYTES: what the kernel copies for the filter.
const CAPTURED: usize = 128;

#[test]
fn kernel_verdicts_match_tcpdump() {
    if !common::require_root() {
        return;
    }
    let btf = aya::Btf::from_sys_fs().expect("kernel BTF");
    let packets = corpus();
    let unoptimized = expected_unoptimized();
    let mut report = String::new();
    let mut checked = 0;
    for (expr, want) in expected() {
        let Ok(filter) = Filter::parse(&expr) else {
            continue; // refused by design: filter_diff.rs checks how
        };
        let twin = match FilterTwin::load_with(&btf, &filter) {
            Ok(t) => t,
            Err(e) => {
                report.push_str(&format!("`{expr}`: the kernel refused it: {e}\n"));
                continue;
            }
        };
        checked += 1;
        let mut got = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            // BPF_PROG_TEST_RUN wants at least an Ethernet header: the few
            // shorter frames are judged by the user-space evaluator.
            if p.bytes.len() < 14 {
                if filter.matches(&Frame::ethernet(&p.bytes)) {
                    got.push(i);
                }
                continue;
            }
            let kernel = twin.matches(&p.bytes, true).expect("test run");
            if p.bytes.len() > CAPTURED {
                let head = Frame {
                    data: &p.bytes[..CAPTURED],
                    len: p.wire_len,
                    ..Frame::ethernet(&p.bytes)
                };
                if kernel != filter.matches(&head) {
                    report.push_str(&format!(
                        "`{expr}` on long packet {i} ({}): kernel {kernel}\n",
                        p.desc
                    ));
                }
                // Judged on what tcpdump sees where nothing past 128 bytes is read.
                if filter.matches(&Frame::ethernet(&p.bytes)) == filter.matches(&head) {
                    if kernel {
                        got.push(i);
                    }
                } else if want.contains(&i) {
                    got.push(i);
                }
                continue;
            }
            if kernel {
                got.push(i);
            }
            // The same frame with no Ethernet header, as at IP-level hooks.
            let et = u16::from_be_bytes([p.bytes[12], p.bytes[13]]);
            let whole = match et {
                0x0800 => p.bytes.len() >= 14 + 20,
                0x86dd => p.bytes.len() >= 14 + 40,
                _ => et >= 0x0600 && p.bytes.len() > 14,
            };
            if whole {
                let l3 = Frame {
                    data: &p.bytes[14..p.bytes.len().min(14 + CAPTURED)],
                    l2: false,
                    ethertype: et,
                    len: p.wire_len - 14,
                };
                let user = filter.matches(&l3);
                let kernel = twin.matches(&p.bytes, false).expect("test run");
                if user != kernel {
                    report.push_str(&format!(
                        "`{expr}` without L2 on packet {i} ({}): kernel {kernel}, user space {user}\n",
                        p.desc
                    ));
                }
            }
        }
        let alt = unoptimized.iter().find(|(e, _)| *e == expr).map(|(_, k)| k);
        if got != want && alt != Some(&got) {
            report.push_str(&describe_difference(&expr, &want, &got, &packets));
        }
    }
    assert!(checked >= 150, "only {checked} expressions checked");
    assert!(report.is_empty(), "kernel differs:\n{report}");
}
