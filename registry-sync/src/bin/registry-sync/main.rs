//! `registry-sync`: a thin shell over the library; flags are resolved once in [`cli`].

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    // Socket activation: read (and clear) `LISTEN_FDS` while this is the only thread.
    let handed_over = match listenfd::ListenFd::from_env().take_tcp_listener(0) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!("error: `LISTEN_FDS` is set, but its first descriptor is not a listening TCP socket: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The library's events on stderr, one line each (`RUST_LOG` narrows or widens them).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args, handed_over)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
