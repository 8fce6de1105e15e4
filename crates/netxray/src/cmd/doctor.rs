//! `netxray doctor`: probe the running kernel by trying, and say what works, what does not,
//! and what each missing piece costs.

use std::io::{self, Write};
use std::process::ExitCode;

use crate::kernel::probe::{self, Check, Report, Status};

/// Probe, print the table (or one JSON object with `json`) to stdout, and exit 0 if
/// `netxray trace` can run here, 1 otherwise (saying why on stderr).
pub fn run(json: bool) -> anyhow::Result<ExitCode> {
    let report = probe::probe_all();
    let verdict = report.trace_can_run();
    let mut out = io::stdout().lock();
    let printed = if json {
        print_json(&mut out, &report, &verdict)
    } else {
        print_table(&mut out, &report, &verdict)
    };
    match printed.and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(e.into()),
    }
    Ok(match verdict {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("netxray: trace cannot run on this kernel: {why}");
            ExitCode::FAILURE
        }
    })
}

fn print_json(
    out: &mut impl Write,
    report: &Report,
    verdict: &Result<(), String>,
) -> io::Result<()> {
    // A struct rather than `json!`, so the fields keep this order.
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        checks: &'a [Check],
        trace_can_run: bool,
        reason: Option<&'a str>,
    }
    let doc = Doc {
        checks: &report.checks,
        trace_can_run: verdict.is_ok(),
        reason: verdict.as_ref().err().map(String::as_str),
    };
    let text = serde_json::to_string(&doc).map_err(io::Error::other)?;
    writeln!(out, "{text}")
}

fn print_table(
    out: &mut impl Write,
    report: &Report,
    verdict: &Result<(), String>,
) -> io::Result<()> {
    let header = ("CHECK", "STATUS", "DETAIL", "COST WHEN MISSING");
    let w_name = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .chain([header.0.len()])
        .max()
        .unwrap_or(0);
    let w_status = "MISSING".len();
    let w_detail = report
        .checks
        .iter()
        .map(|c| c.detail.len())
        .chain([header.2.len()])
        .max()
        .unwrap_or(0);
    let (a, b, c, d) = header;
    writeln!(out, "{a:<w_name$}  {b:<w_status$}  {c:<w_detail$}  {d}")?;
    for check in &report.checks {
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
