//! netxray's entry point: parse arguments, run the subcommand, map errors to
//! exit codes (0 success or Ctrl-C, 1 runtime error, 2 usage error).

use clap::Parser;
use netxray::cli::{Cli, Command};
use netxray::cmd;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    let level = match cli.verbose {
        0 => "netxray=info",
        1 => "netxray=debug",
        _ => "netxray=trace",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .init();
    let result = match cli.command {
        Command::Trace(a) => cmd::trace::run(*a),
        Command::Drops(a) => cmd::drops::run(*a),
        Command::Stats(a) => cmd::stats::run(*a),
        Command::Conn(a) => cmd::conn::run(*a),
        Command::Dns(a) => cmd::dns::run(*a),
        Command::Http(a) => cmd::http::run(*a),
        Command::Hooks(a) => cmd::hooks::run(a),
        Command::Doctor(a) => cmd::doctor::run(a.output.output == netxray::cli::OutputFormat::Json)
            .map_err(|e| netxray::error::Error::Runtime(format!("{e:#}"))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netxray: error: {e}");
            e.exit_code()
        }
    }
}
