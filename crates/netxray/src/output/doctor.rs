//! `netxray doctor`: a table of what the kernel can do here (or one JSON
//! object), and whether `trace` can run.

use super::report::Report;
use crate::model::doctor::{Check, Status};
use serde::Serialize;
use std::io::{self, Write};

/// The doctor's answer: every check, and the verdict on `trace`.
#[derive(Serialize)]
pub struct Doctor<'a> {
    checks: &'a [Check],
    trace_can_run: bool,
    reason: Option<&'a str>,
}

impl<'a> Doctor<'a> {
    pub fn new(checks: &'a [Check], verdict: &'a Result<(), String>) -> Self {
        Doctor {
            checks,
            trace_can_run: verdict.is_ok(),
            reason: verdict.as_ref().err().map(String::as_str),
        }
    }
}

impl Report for Doctor<'_> {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let verdict = match self.reason {
            Some(why) => Err(why),
            None => Ok(()),
        };
        print_table(out, self.checks, verdict)
    }
}

fn print_table(out: &mut dyn Write, checks: &[Check], verdict: Result<(), &str>) -> io::Result<()> {
    let header = ("CHECK", "STATUS", "DETAIL", "COST WHEN MISSING");
    let w_name = checks
        .iter()
        .map(|c| c.name.len())
        .chain([header.0.len()])
        .max()
        .unwrap_or(0);
    let w_status = "MISSING".len();
    let w_detail = checks
        .iter()
        .map(|c| c.detail.len())
        .chain([header.2.len()])
        .max()
        .unwrap_or(0);
    let (a, b, c, d) = header;
    writeln!(out, "{a:<w_name$}  {b:<w_status$}  {c:<w_detail$}  {d}")?;
    for check in checks {
        // The cost column only for what is not ok: that is what the user loses here.
        let cost = if check.status == Status::Ok {
            ""
        } else {
            check.cost
        };
        let line = format!(
            "{:<w_name$}  {:<w_status$}  {:<w_detail$}  {cost}",
            check.name,
            check.status.label(),
            check.detail
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    match verdict {
        Ok(()) => writeln!(out, "netxray trace: can run here"),
        Err(why) => writeln!(out, "netxray trace: cannot run here: {why}"),
    }
}
