// Temporary wiring for `netxray doctor [--output json]` (helper/doctor); the integrator
// replaces this file.
use clap::Parser;

#[derive(Parser)]
enum Cli {
    /// Probe the running kernel and say what netxray can do here.
    Doctor {
        #[arg(long, value_parser = ["text", "json"], default_value = "text")]
        output: String,
    },
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    match Cli::parse() {
        Cli::Doctor { output } => netxray::cmd::doctor::run(output == "json"),
    }
}
