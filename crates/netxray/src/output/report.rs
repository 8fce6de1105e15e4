//! Reports: what `drops`, `stats` and `conn --top` print each interval, a
//! table for people or one JSON line for programs, through [`Report`].

use serde::Serialize;
use std::io::{self, Write};

/// A report of one interval: serialised for `-o json`, a table otherwise.
pub trait Report: Serialize {
    /// The table, for people.
    fn text(&self, out: &mut dyn Write) -> io::Result<()>;
}

/// Print `r` as `-o` asks (a JSON line, or the table), then flush.
pub fn print(out: &mut impl Write, r: &impl Report, json: bool) -> io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, r).map_err(io::Error::other)?;
        writeln!(out)?;
    } else {
        r.text(out)?;
    }
    out.flush()
}
