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

#[test]
#[ignore = "prints, for people"]
fn which_answer_where_the_optimizer_matters() {
    let packets = corpus();
    let opt = expected();
    for (expr, unopt) in expected_unoptimized() {
        let got = user_space(&expr, &packets).unwrap_or_default();
        let want = &opt.iter().find(|(e, _)| *e == expr).unwrap().1;
        let n = Filter::parse(&expr)
            .ok()
            .and_then(|f| f.to_ebpf().ok())
            .flatten()
            .map_or(0, |p| p.insns.len());
        println!(
            "{expr:50} optimized={} unoptimized={} insns={n}",
            got == *want,
            got == unopt
        );
    }
    let mut sizes: Vec<(usize, String)> = expected()
        .iter()
        .filter_map(|(e, _)| {
            Some((
                Filter::parse(e).ok()?.to_ebpf().ok()??.insns.len(),
                e.clone(),
            ))
        })
        .collect();
    sizes.sort();
    println!("largest: {:?}", &sizes[sizes.len() - 3..]);
    for e in ["host 198.18.0.1 and port 80", "tcp port 80", "udp and not src net 198.19.0.0/16 and ip[8] > 1 and (dst port 53 or dst portrange 9000-10000) and greater 60 and dst host 198.19.255.254"] {
        println!("{e}: {}", Filter::parse(e).unwrap().to_ebpf().unwrap().unwrap().insns.len());
    }
}
