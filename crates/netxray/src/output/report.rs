//! Reports: what `drops`, `stats` and `conn --top` print each interval, and
//! what `doctor` and `hooks` print once: a table for people or JSON for
//! programs, through [`Report`].

use serde::Serialize;
use std::io::{self, Write};

/// A report of one interval: serialised for `-o json`, a table otherwise.
pub trait Report: Serialize {
    /// The table, for people.
    fn text(&self, out: &mut dyn Write) -> io::Result<()>;

    /// `-o json`: the report as one line (a listing may write a line per
    /// item instead).
    fn json(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer(&mut *out, self).map_err(io::Error::other)?;
        writeln!(out)
    }
}

/// Print `r` as `-o` asks (a JSON line, or the table), then flush.
pub fn print(out: &mut impl Write, r: &impl Report, json: bool) -> io::Result<()> {
    if json {
        r.json(out)?;
    } else {
        r.text(out)?;
    }
    out.flush()
}
