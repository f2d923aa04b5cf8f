//! The `trainer` binary: a shell around [`trainer::run`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = trainer::config::Cli::parse();
    match trainer::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
