//! netxray's filter against tcpdump's answers (`filter_corpus/expected.txt`,
//! produced by libpcap 1.10.3 on the corpus in `common/filter_corpus`):
//! the user-space evaluator here; the kernel's compiled code in
//! `filter_kernel.rs`.

mod common;

use common::filter_corpus::*;
use netxray::model::filter::{Filter, Frame};

/// tcpdump refuses these only because its optimizer proves they match
/// nothing; netxray accepts them and must match nothing.
const MATCH_NOTHING: &[&str] = &[
    "tcp and not tcp",
    "ip and (tcp or ip6) and udp",
    "ip and ip6",
    "arp and tcp",
    "1 = 2",
    "ip6 and tcp[13] & 2 != 0",
    "ip6 and udp[0:2] = 53",
];

/// Primitives netxray refuses by design (named, with their position):
/// MPLS and PPPoE encapsulations, IPX, and `protochain`.
const REFUSED_BY_DESIGN: &[&str] = &[
    "mpls",
    "pppoed",
    "pppoes",
    "protochain",
    "ipx",
    "ether proto 0xe0",
];

fn frame(p: &Packet) -> Frame<'_> {
    Frame {
        data: &p.bytes,
        l2: true,
        ethertype: 0,
        len: p.wire_len,
    }
}

pub fn user_space(expr: &str, packets: &[Packet]) -> Result<Vec<usize>, String> {
    let f = Filter::parse(expr).map_err(|e| e.to_string())?;
    Ok((0..packets.len())
        .filter(|&i| f.matches(&frame(&packets[i])))
        .collect())
}

#[test]
fn user_space_evaluation_matches_tcpdump() {
    let packets = corpus();
    let unoptimized = expected_unoptimized();
    let mut report = String::new();
    let mut checked = 0;
    for (expr, want) in expected() {
        checked += 1;
        match user_space(&expr, &packets) {
            Err(e) => {
                let by_design = REFUSED_BY_DESIGN.iter().any(|w| expr.contains(w));
                let named = e.contains("not supported by netxray") && e.contains("at position");
                if !(by_design && named) {
                    report.push_str(&format!("`{expr}`: refused ({e}), tcpdump accepts\n"));
                }
            }
            Ok(got) => {
                // Where tcpdump's optimizer changes the answer (it deletes
                // loads past the end of the packet), either answer is libpcap's.
                let alt = unoptimized.iter().find(|(e, _)| *e == expr).map(|(_, k)| k);
                if got != want && alt != Some(&got) {
                    report.push_str(&describe_difference(&expr, &want, &got, &packets));
                }
            }
        }
    }
    for expr in rejected_expressions() {
        match user_space(&expr, &packets) {
            Err(_) => {}
            Ok(got) if MATCH_NOTHING.contains(&expr.as_str()) => {
                if !got.is_empty() {
                    report.push_str(&format!("`{expr}` must match nothing, got {got:?}\n"));
                }
            }
            Ok(_) => report.push_str(&format!("`{expr}`: accepted, tcpdump refuses\n")),
        }
    }
    assert!(checked >= 150, "only {checked} expressions");
    assert!(report.is_empty(), "differences from tcpdump:\n{report}");
}
