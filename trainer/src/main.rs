//! The `trainer` binary: flags in, one call into the `trainer` library, results out.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let flags = cli::flags::Cli::parse();
    match cli::run(flags) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
