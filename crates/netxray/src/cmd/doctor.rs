//! `netxray doctor`: probe the running kernel by trying, and say what works, what does not,
//! and what each missing piece costs.

use std::io;
use std::process::ExitCode;

use crate::kernel::probe;
use crate::output::doctor::Doctor;
use crate::output::report;

/// Probe, print the table (or one JSON object with `json`) to stdout, and exit 0 if
/// `netxray trace` can run here, 1 otherwise (saying why on stderr).
pub fn run(json: bool) -> anyhow::Result<ExitCode> {
    let report = probe::probe_all();
    let verdict = report.trace_can_run();
    let mut out = io::stdout().lock();
    let doc = Doctor::new(&report.checks, &verdict);
    match report::print(&mut out, &doc, json) {
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
