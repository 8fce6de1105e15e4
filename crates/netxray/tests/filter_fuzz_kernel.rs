//! The filter compiler through the kernel's verifier (issue #16, item 7):
//! random expressions built from the language's primitives, combined with
//! and/or/not and parentheses, are parsed, lowered and compiled; every one
//! that compiles must load in the TC twin (`bpf/filter_twin.bpf.c`: the
//! verifier sees the spliced code, as in the tracing programs) and give, on
//! every frame of the filter corpus (tests/common/filter_corpus), the
//! user-space evaluator's verdict (BPF_PROG_TEST_RUN).
//!
//! The suite runs 200 cases (about 3 s here). A longer run: 8500 cases are
//! about a million kernel verdicts, 2.5 minutes here (2026-12-07: 1500 cases,
//! 180 k verdicts, all agreed, 25 s):
//!
//!     PROPTEST_CASES=8500 cargo test --test filter_fuzz_kernel
//!
//! Some primitives are runs of alternatives that compile to set lookups.
//!
//! A failing case is kept by proptest in
//! `crates/netxray/proptest-regressions/` (commit it: it is replayed first).

mod common;

use common::filter_corpus::{corpus, Packet};
use netxray::kernel::filter_twin::FilterTwin;
use netxray::model::filter::{Filter, Frame};
use proptest::prelude::*;
use std::sync::OnceLock;

/// NX_CAP_BYTES: what the kernel copies for the filter.
const CAPTURED: usize = 128;

const PRIMITIVES: &[&str] = &[
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "ip",
    "ip6",
    "arp",
    "vlan",
    "vlan 100",
    "host 198.18.0.1",
    "src host 198.18.0.2",
    "dst net 198.18.0.0/15",
    "net 198.18.1.0/24",
    "host 2001:db8::1",
    "net 2001:db8::/32",
    "port 80",
    "src port 53",
    "dst port 443",
    "portrange 1000-2000",
    "tcp port 8080",
    "udp dst port 53",
    "less 100",
    "greater 200",
    "len > 60",
    "ip proto 17",
    "ip6 proto 6",
    "ether proto 0x0800",
    "ether host 00:11:22:33:44:55",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
    "icmp[icmptype] == icmp-echo",
    "ip[8] < 64",
    "udp[4:2] > 20",
    "ip[2:2] & 0x1fff != 0",
    "ip6[6] == 58",
    // Runs of 8+ alternatives: set lookups (docs/filter.md, "Big filters").
    "host (198.18.0.1 or 198.18.0.2 or 198.19.0.1 or 198.19.0.2 or 198.19.0.3 or 198.19.0.4 or 198.19.0.5 or 198.19.0.6 or 198.19.0.7)",
    "src host (198.18.0.1 or 198.18.0.2 or 198.19.0.1 or 198.19.0.2 or 198.19.0.3 or 198.19.0.4 or 198.19.0.5 or 198.19.0.6 or 198.19.0.7)",
    "dst net (198.18.0.0/24 or 198.18.1.0/24 or 198.19.1.0/24 or 198.19.2.0/24 or 198.19.3.0/24 or 198.19.4.0/24 or 198.19.5.0/24 or 198.19.6.0/24 or 198.19.7.0/24)",
    "host (2001:db8::1 or 2001:db8::2 or 2001:db8:9::1 or 2001:db8:9::2 or 2001:db8:9::3 or 2001:db8:9::4 or 2001:db8:9::5 or 2001:db8:9::6 or 2001:db8:9::7)",
    "port (53 or 80 or 443 or 8080 or 9000 or 9001 or 9002 or 9003 or 9004)",
    "udp dst port (53 or 80 or 443 or 8080 or 9000 or 9001 or 9002 or 9003) or udp dst portrange 1000-2000",
];

/// A random expression: primitives joined by and/or, some negated, some
/// grouped, up to `depth` levels.
fn expr(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop::sample::select(PRIMITIVES)
        .prop_map(str::to_string)
        .boxed();
    leaf.prop_recursive(depth, 12, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(&["and", "or"][..]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
    .boxed()
}

fn frames() -> &'static [Packet] {
    static C: OnceLock<Vec<Packet>> = OnceLock::new();
    C.get_or_init(|| {
        corpus()
            .into_iter()
            .filter(|p| p.bytes.len() >= 14)
            .collect()
    })
}

fn btf() -> &'static aya::Btf {
    static B: OnceLock<aya::Btf> = OnceLock::new();
    B.get_or_init(|| aya::Btf::from_sys_fs().expect("kernel BTF"))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(200),
        ..ProptestConfig::default()
    })]

    #[test]
    fn compiled_filters_load_and_agree_with_the_evaluator(text in expr(4)) {
        if !common::require_root() {
            return Ok(());
        }
        let filter = Filter::parse(&text).expect("the generator makes valid expressions");
        // Too large for the kernel's 1024 slots: refused at compile time
        // with a message, never at load.
        if filter.to_ebpf().is_err() {
            return Ok(());
        }
        let twin = FilterTwin::load_with(btf(), &filter)
            .unwrap_or_else(|e| panic!("`{text}` compiles but the verifier refused it: {e}"));
        for (i, p) in frames().iter().enumerate() {
            let head = Frame {
                data: &p.bytes[..p.bytes.len().min(CAPTURED)],
                len: p.wire_len,
                ..Frame::ethernet(&p.bytes)
            };
            let kernel = twin.matches(&p.bytes, true).expect("test run");
            prop_assert_eq!(
                kernel,
                filter.matches(&head),
                "`{}` on frame {} ({})", text, i, p.desc
            );
        }
    }
}
