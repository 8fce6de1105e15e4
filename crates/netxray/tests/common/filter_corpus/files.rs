//! The expression lists and golden files next to the test, and helpers to compare
//! results with them.

use super::Packet;
use crate::common::pcap::write_pcap;
use crate::common::pcap::write_pcap_to;
use std::path::{Path, PathBuf};

/// Where the expression lists and the golden file live.
pub const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/filter_corpus");

/// The expressions libpcap 1.10.3 accepts (`expressions.txt`), in file order.
pub fn expressions() -> Vec<String> {
    read_list("expressions.txt")
}

/// The expressions libpcap 1.10.3 refuses (`rejected.txt`), in file order.
pub fn rejected_expressions() -> Vec<String> {
    read_list("rejected.txt")
}

/// Non-blank lines of a list file that do not start with `#`, trimmed.
fn read_list(name: &str) -> Vec<String> {
    let path = Path::new(CORPUS_DIR).join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Path of the golden file: each expression with the indices tcpdump keeps.
pub fn expected_path() -> PathBuf {
    Path::new(CORPUS_DIR).join("expected.txt")
}

/// Path of the second golden file: the expressions whose unoptimized BPF program
/// (`tcpdump -O`) keeps other packets than the optimized one, with what `-O` keeps.
pub fn expected_unoptimized_path() -> PathBuf {
    Path::new(CORPUS_DIR).join("expected_unoptimized.txt")
}

/// The golden file's entries, `(expression, kept packet indices)`, in file order: what
/// `tcpdump -r corpus.pcap EXPR` keeps, i.e. with libpcap's optimizer on.
/// Format: `EXPR => 0,3,17` (or `EXPR => -` when nothing is kept); `#` lines are comments.
pub fn expected() -> Vec<(String, Vec<usize>)> {
    read_expected(&expected_path())
}

/// The entries of [`expected_unoptimized_path`]: only the expressions for which
/// `tcpdump -O` disagrees with [`expected`]. An evaluator without libpcap's optimizer
/// should agree with one of the two answers.
pub fn expected_unoptimized() -> Vec<(String, Vec<usize>)> {
    read_expected(&expected_unoptimized_path())
}

fn read_expected(path: &Path) -> Vec<(String, Vec<usize>)> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            parse_expected_line(l).unwrap_or_else(|| panic!("{}: bad line {l:?}", path.display()))
        })
        .collect()
}

fn parse_expected_line(line: &str) -> Option<(String, Vec<usize>)> {
    let (expr, ids) = line.rsplit_once(" => ")?;
    let ids = match ids.trim() {
        "-" => Vec::new(),
        list => list
            .split(',')
            .map(|n| n.parse().ok())
            .collect::<Option<Vec<usize>>>()?,
    };
    Some((expr.to_string(), ids))
}

/// The golden file's text for `entries` (see [`expected`] for the format).
pub fn format_expected(header: &str, entries: &[(String, Vec<usize>)]) -> String {
    let mut out = String::new();
    for l in header.lines() {
        out.push_str("# ");
        out.push_str(l);
        out.push('\n');
    }
    for (expr, ids) in entries {
        let list = if ids.is_empty() {
            "-".to_string()
        } else {
            ids.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push_str(&format!("{expr} => {list}\n"));
    }
    out
}

/// A directory under the system temp dir, removed with its contents on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("{}filter", crate::common::unique_prefix()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `packets` as `corpus.pcap` in `dir` (packet `i` at `i` seconds) and returns
/// its path.
pub fn write_corpus_pcap(dir: &Path, packets: &[Packet]) -> PathBuf {
    let path = dir.join("corpus.pcap");
    write_pcap(&path, packets.iter().map(Packet::record))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// FNV-1a (64 bit) of the pcap file the corpus makes: recorded in the golden file so a
/// changed corpus is noticed even where tcpdump is absent.
pub fn corpus_fingerprint(packets: &[Packet]) -> String {
    let mut bytes = Vec::new();
    write_pcap_to(&mut bytes, packets.iter().map(Packet::record))
        .unwrap_or_else(|e| panic!("serialise the corpus: {e}"));
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// The fingerprint recorded in the golden file's header (`# corpus fnv1a64 HEX`).
pub fn expected_fingerprint() -> Option<String> {
    let text = std::fs::read_to_string(expected_path()).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("# corpus fnv1a64 "))
        .map(|s| s.trim().to_string())
}

/// A readable account of how `got` differs from `want` for `expr`: each packet kept by
/// only one side, with its index and description. Empty when they agree.
pub fn describe_difference(
    expr: &str,
    want: &[usize],
    got: &[usize],
    packets: &[Packet],
) -> String {
    let only = |a: &[usize], b: &[usize]| -> Vec<usize> {
        a.iter().copied().filter(|i| !b.contains(i)).collect()
    };
    let missing = only(want, got);
    let extra = only(got, want);
    if missing.is_empty() && extra.is_empty() {
        return String::new();
    }
    let desc = |i: usize| {
        packets
            .get(i)
            .map_or("<no such packet>", |p| p.desc.as_str())
    };
    let mut out = format!("`{expr}`:\n");
    for i in missing {
        out.push_str(&format!("  tcpdump keeps, we do not: #{i} {}\n", desc(i)));
    }
    for i in extra {
        out.push_str(&format!("  we keep, tcpdump does not: #{i} {}\n", desc(i)));
    }
    out
}

/// Compares an evaluator with the golden files; returns a report of every disagreement
/// (empty when it agrees everywhere).
///
/// `eval(expr, packets)` compiles `expr` once and returns the indices of the packets it
/// keeps (ascending), or `Err` when it refuses the expression. It must keep what
/// expected.txt says for every expression of expressions.txt (or, when
/// `accept_unoptimized`, what expected_unoptimized.txt says where that file lists the
/// expression), and refuse every expression of rejected.txt.
pub fn diff_against_expected(
    mut eval: impl FnMut(&str, &[Packet]) -> Result<Vec<usize>, String>,
    accept_unoptimized: bool,
) -> String {
    let packets = super::corpus();
    let unoptimized = expected_unoptimized();
    let mut report = String::new();
    for (expr, want) in expected() {
        match eval(&expr, &packets) {
            Err(e) => report.push_str(&format!("`{expr}`: refused ({e}), tcpdump accepts\n")),
            Ok(got) => {
                let alt = unoptimized
                    .iter()
                    .find(|(e, _)| accept_unoptimized && *e == expr)
                    .map(|(_, kept)| kept);
                if got != want && alt != Some(&got) {
                    report.push_str(&describe_difference(&expr, &want, &got, &packets));
                }
            }
        }
    }
    for expr in rejected_expressions() {
        if eval(&expr, &packets).is_ok() {
            report.push_str(&format!("`{expr}`: accepted, tcpdump refuses\n"));
        }
    }
    report
}
