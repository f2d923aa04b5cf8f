//! `stacktag`: the main job. A shell around the library: flags resolved once ([`cli`]), the
//! events printed on stderr, the report printed last on stdout.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    // The loop's story (the loop's, the scheduler's and registry-sync's events) on stderr, one
    // line each, timed from the start; everything else only when it warns. `RUST_LOG` overrides.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,stacktag=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_level(false)
        .with_timer(tracing_subscriber::fmt::time::Uptime::default())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            // 130, as a shell reports a Ctrl-C, when a signal ended it.
            match e.downcast_ref::<stacktag::up::Interrupted>() {
                Some(_) => ExitCode::from(130),
                None => ExitCode::FAILURE,
            }
        }
    }
}
