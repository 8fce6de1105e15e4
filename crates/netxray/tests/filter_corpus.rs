//! The oracle side of the pcap-filter differential test: a corpus of frames, a list of
//! expressions, and what tcpdump (libpcap 1.10.3) keeps of the corpus for each one,
//! recorded in `filter_corpus/expected.txt`.
//!
//! Regenerate the golden file after changing the corpus or the expression list:
//!
//! ```text
//! NETXRAY_BLESS=1 cargo test -p netxray --test filter_corpus
//! ```
//!
//! Tests that need tcpdump print a loud SKIPPED line when it cannot be run.
//!
//! To check an evaluator (no tcpdump needed, the golden files are the oracle):
//!
//! ```ignore
//! let report = common::filter_corpus::diff_against_expected(
//!     |expr, packets| {
//!         let filter = compile(expr).map_err(|e| e.to_string())?;
//!         Ok((0..packets.len()).filter(|&i| filter.matches(&packets[i].bytes)).collect())
//!     },
//!     false, // true: also accept `tcpdump -O`'s answer where the optimizer changes it
//! );
//! assert!(report.is_empty(), "{report}");
//! ```

mod common;

use common::filter_corpus::*;
use common::pcap::read_pcap_seconds;
use common::tcpdump::{tcpdump_compile, tcpdump_matches_all, tcpdump_version, Answer, Optimizer};
use std::io::Write;
use std::sync::OnceLock;

/// The corpus written to a temp file, and tcpdump's answer for every expression; built
/// once per test binary. `None` when tcpdump cannot be run.
struct Oracle {
    dir: TempDir,
    version: String,
    packets: Vec<Packet>,
    exprs: Vec<String>,
    /// tcpdump's answers (optimizer on, as tcpdump runs by default).
    results: Vec<Answer>,
    /// `tcpdump -O`'s answers (optimizer off).
    unoptimized: Vec<Answer>,
}

impl Oracle {
    /// `(expression, kept)` for every expression, refusals as empty lists.
    fn entries(&self) -> Vec<(String, Vec<usize>)> {
        self.exprs
            .iter()
            .zip(&self.results)
            .map(|(e, r)| (e.clone(), r.clone().unwrap_or_default()))
            .collect()
    }

    /// `(expression, kept by -O)` where `-O` keeps other packets than the default.
    fn unoptimized_entries(&self) -> Vec<(String, Vec<usize>)> {
        self.exprs
            .iter()
            .zip(self.results.iter().zip(&self.unoptimized))
            .filter(|(_, (on, off))| on != off)
            .map(|(e, (_, off))| (e.clone(), off.clone().unwrap_or_default()))
            .collect()
    }
}

fn oracle() -> Option<&'static Oracle> {
    static ORACLE: OnceLock<Option<Oracle>> = OnceLock::new();
    let oracle = ORACLE.get_or_init(|| {
        let version = tcpdump_version()?;
        let packets = corpus();
        let dir = TempDir::new();
        let pcap = write_corpus_pcap(dir.path(), &packets);
        let exprs = expressions();
        let results = tcpdump_matches_all(&pcap, &exprs, Optimizer::On);
        let unoptimized = tcpdump_matches_all(&pcap, &exprs, Optimizer::Off);
        Some(Oracle {
            dir,
            version,
            packets,
            exprs,
            results,
            unoptimized,
        })
    });
    if oracle.is_none() {
        let test = std::thread::current().name().unwrap_or("?").to_string();
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: tcpdump cannot be run (install tcpdump or set NETXRAY_TCPDUMP): {test} ***\n"
        );
    }
    oracle.as_ref()
}

const LONG_FRAMES_MAX: usize = 8;

#[test]
fn corpus_is_well_formed() {
    let packets = corpus();
    assert!(packets.len() >= 120, "only {} packets", packets.len());
    let long: Vec<&Packet> = packets.iter().filter(|p| p.bytes.len() > 128).collect();
    assert!(
        long.len() <= LONG_FRAMES_MAX,
        "too many frames over 128 bytes: {:?}",
        long.iter().map(|p| &p.desc).collect::<Vec<_>>()
    );
    for (i, p) in packets.iter().enumerate() {
        assert!(
            p.bytes.len() <= 1500,
            "#{i} {}: {} bytes",
            p.desc,
            p.bytes.len()
        );
        assert_eq!(p.wire_len as usize, p.bytes.len(), "#{i} {}", p.desc);
        assert!(
            packets[..i].iter().all(|q| q.desc != p.desc),
            "#{i}: description {:?} used twice",
            p.desc
        );
    }
    let mut file = Vec::new();
    common::pcap::write_pcap_to(&mut file, packets.iter().map(Packet::record))
        .expect("serialise the corpus");
    let secs = read_pcap_seconds(&file).expect("read back");
    assert_eq!(secs, (0..packets.len() as u32).collect::<Vec<_>>());
}

#[test]
fn expression_lists_are_clean() {
    let exprs = expressions();
    let rejected = rejected_expressions();
    assert!(exprs.len() >= 180, "only {} expressions", exprs.len());
    for (i, e) in exprs.iter().enumerate() {
        assert!(!exprs[..i].contains(e), "expression listed twice: {e}");
        assert!(
            !rejected.contains(e),
            "expression both accepted and rejected: {e}"
        );
        assert!(
            !e.contains(" => "),
            "expression would break expected.txt: {e}"
        );
    }
}

#[test]
fn expected_file_matches_corpus_and_expressions() {
    if std::env::var_os("NETXRAY_BLESS").is_some() {
        return; // being rewritten by expected_file_matches_tcpdump
    }
    let listed: Vec<String> = expected().into_iter().map(|(e, _)| e).collect();
    assert_eq!(
        listed,
        expressions(),
        "expected.txt is stale for expressions.txt: rerun with NETXRAY_BLESS=1"
    );
    assert_eq!(
        expected_fingerprint(),
        Some(corpus_fingerprint(&corpus())),
        "expected.txt was made from another corpus: rerun with NETXRAY_BLESS=1"
    );
}

#[test]
fn tcpdump_accepts_every_expression() {
    let Some(o) = oracle() else { return };
    let refused: Vec<String> = o
        .exprs
        .iter()
        .zip(&o.results)
        .filter_map(|(e, r)| r.as_ref().err().map(|m| format!("`{e}`: {m}")))
        .collect();
    assert!(
        refused.is_empty(),
        "tcpdump refuses:\n{}",
        refused.join("\n")
    );
}

#[test]
fn tcpdump_refuses_every_rejected_expression() {
    let Some(o) = oracle() else { return };
    let pcap = o.dir.path().join("corpus.pcap");
    let accepted: Vec<String> = rejected_expressions()
        .into_iter()
        .filter(|e| tcpdump_compile(&pcap, e).is_ok())
        .collect();
    assert!(
        accepted.is_empty(),
        "tcpdump accepts:\n{}",
        accepted.join("\n")
    );
}

/// The corpus's own labels predict what tcpdump keeps for the bare protocol keywords.
#[test]
fn tcpdump_agrees_with_corpus_labels() {
    let Some(o) = oracle() else { return };
    let keywords = [
        "ip", "ip6", "arp", "rarp", "vlan", "llc", "tcp", "udp", "icmp", "icmp6", "sctp", "igmp",
    ];
    let mut report = String::new();
    for kw in keywords {
        let Some(i) = o.exprs.iter().position(|e| e == kw) else {
            panic!("expressions.txt lacks `{kw}`");
        };
        let got = o.results[i]
            .as_ref()
            .unwrap_or_else(|e| panic!("`{kw}`: {e}"));
        let want: Vec<usize> = (0..o.packets.len())
            .filter(|&p| o.packets[p].has(kw))
            .collect();
        assert!(!want.is_empty(), "no packet labelled `{kw}`");
        report.push_str(&describe_difference(kw, got, &want, &o.packets));
    }
    assert!(report.is_empty(), "labels disagree with tcpdump:\n{report}");
}

#[test]
fn expected_files_match_tcpdump() {
    let Some(o) = oracle() else { return };
    let entries = o.entries();
    let unoptimized = o.unoptimized_entries();
    if std::env::var_os("NETXRAY_BLESS").is_some() {
        bless(o, &entries, &unoptimized);
        return;
    }
    let mut report = String::new();
    for (file, want_all, got_all) in [
        ("expected.txt", expected(), &entries),
        (
            "expected_unoptimized.txt",
            expected_unoptimized(),
            &unoptimized,
        ),
    ] {
        let listed: Vec<&String> = want_all.iter().map(|(e, _)| e).collect();
        let now: Vec<&String> = got_all.iter().map(|(e, _)| e).collect();
        if listed != now {
            report.push_str(&format!(
                "{file} lists other expressions than tcpdump answers now\n"
            ));
        }
        for (expr, got) in got_all {
            if let Some((_, want)) = want_all.iter().find(|(e, _)| e == expr) {
                report.push_str(&describe_difference(expr, got, want, &o.packets));
            }
        }
    }
    assert!(
        report.is_empty(),
        "tcpdump ({}) now disagrees with the golden files (rerun with NETXRAY_BLESS=1 if \
         the corpus changed on purpose; \"tcpdump keeps\" means tcpdump now):\n{report}",
        o.version
    );
}

/// Rewrites expected.txt and expected_unoptimized.txt from tcpdump's answers.
fn bless(o: &Oracle, entries: &[(String, Vec<usize>)], unoptimized: &[(String, Vec<usize>)]) {
    let common = format!(
        "as decided by {}\n\
         on the corpus of tests/common/filter_corpus/ ({} packets; packet i is pcap record i).\n\
         Generated: NETXRAY_BLESS=1 cargo test -p netxray --test filter_corpus\n\
         corpus fnv1a64 {}\n\
         Format: EXPRESSION => KEPT PACKET INDICES (- for none)",
        o.version,
        o.packets.len(),
        corpus_fingerprint(&o.packets),
    );
    let header = format!(
        "What `tcpdump -r corpus.pcap EXPR` keeps (libpcap's optimizer on, the default),\n{common}"
    );
    let header_o = format!(
        "What `tcpdump -O -r corpus.pcap EXPR` keeps (optimizer OFF), listed only where it\n\
         differs from expected.txt: the optimizer can delete a load past the end of the\n\
         packet (which would reject it) or fold a comparison, changing the answer.\n{common}"
    );
    for (path, header, entries) in [
        (expected_path(), header, entries),
        (expected_unoptimized_path(), header_o, unoptimized),
    ] {
        std::fs::write(&path, format_expected(&header, entries))
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// The comparison helper itself: tcpdump's own answers pass it.
#[test]
fn tcpdump_passes_diff_against_expected() {
    let Some(o) = oracle() else { return };
    if std::env::var_os("NETXRAY_BLESS").is_some() {
        return;
    }
    let pcap = o.dir.path().join("corpus.pcap");
    let report = diff_against_expected(
        |expr, _| match o.exprs.iter().position(|e| e == expr) {
            Some(i) => o.results[i].clone(),
            None => tcpdump_compile(&pcap, expr).map(|_| Vec::new()),
        },
        false,
    );
    assert!(report.is_empty(), "{report}");
}

/// Lists the corpus (index, length, labels, description):
/// `cargo test -p netxray --test filter_corpus -- --ignored --nocapture list_corpus`.
#[test]
#[ignore = "prints the corpus for people; asserts nothing"]
fn list_corpus() {
    for (i, p) in corpus().iter().enumerate() {
        println!(
            "{i:3} {:4}B {:12} {}",
            p.bytes.len(),
            p.labels.join(","),
            p.desc
        );
    }
}

#[test]
#[ignore = "writes the corpus for people"]
fn dump_corpus_pcap() {
    let path = std::env::var("NETXRAY_CORPUS_PCAP").unwrap_or("/tmp/netxray-corpus.pcap".into());
    let packets = corpus();
    common::pcap::write_pcap(
        std::path::Path::new(&path),
        packets.iter().map(Packet::record),
    )
    .expect("write the corpus");
}
