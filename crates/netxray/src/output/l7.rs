//! What the `dns` and `http` printers share: their trait, the context of
//! a record (wall clock, namespace names) and the per-endpoint table at the
//! end.

use crate::model::l7::call::Side;
use crate::model::l7::summary::Row;
use crate::model::value::Name;
use serde_json::json;
use std::io::{self, Write};

/// What a printer needs besides the record.
pub struct Context<'a> {
    /// Wall-clock nanoseconds of a monotonic timestamp.
    pub wall_ns: &'a dyn Fn(u64) -> u64,
    /// A namespace's name, if it has one.
    pub netns_name: &'a mut dyn FnMut(&Side) -> Option<Name>,
}

/// A protocol's printer (`dns`, `http`), driven by cmd/l7.rs.
pub trait L7Printer<R> {
    fn record(&mut self, r: &R, cx: &mut Context<'_>) -> io::Result<()>;
    /// The end of the run: per-endpoint totals.
    fn summary(&mut self, rows: &[Row]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

/// Nanoseconds as milliseconds with three decimals, `-` for none.
pub fn ms(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".to_string(), |l| format!("{:.3}", l as f64 / 1e6))
}

/// The words of a summary: JSON `type`, the key's field, the count's.
pub struct SummaryLabels {
    pub kind: &'static str,
    pub key: &'static str,
    pub count: &'static str,
}

/// Per endpoint: count, errors, latency p50/p90/p99/max. Text: a table
/// after a blank line; JSON: one object per endpoint.
pub fn summary_table(
    out: &mut dyn Write,
    as_json: bool,
    l: &SummaryLabels,
    rows: &[Row],
) -> io::Result<()> {
    if as_json {
        for r in rows {
            let v = json!({
                "type": l.kind, l.key: r.key, l.count: r.count, "errors": r.errors,
                "p50_ns": r.p50, "p90_ns": r.p90, "p99_ns": r.p99, "max_ns": r.max,
            });
            writeln!(out, "{v}")?;
        }
        return out.flush();
    }
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n{:<40} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
        l.key.to_uppercase(),
        l.count.to_uppercase(),
        "ERRORS",
        "P50(ms)",
        "P90(ms)",
        "P99(ms)",
        "MAX(ms)"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<40} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
            r.key,
            r.count,
            r.errors,
            ms(r.p50),
            ms(r.p90),
            ms(r.p99),
            ms(r.max)
        )?;
    }
    out.flush()
}
