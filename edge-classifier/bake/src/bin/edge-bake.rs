//! `edge-bake`: bakes a bundle into the generic edge component, or checks a baked component's
//! snapshot. A shell around `edge_classifier_bake` for `scripts/build-edge.sh`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edge_classifier_bake::{Baker, spans};

/// Bakes model bundles into the generic edge component.
#[derive(Debug, Parser)]
#[command(name = "edge-bake", version)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Bake BUNDLE into a copy of the generic component at OUT (written atomically).
    Bake {
        /// The bundle directory (`trainer train --out DIR`).
        #[arg(long)]
        bundle: PathBuf,
        /// Where the baked component goes.
        #[arg(long)]
        out: PathBuf,
        /// The generic component (`scripts/build-edge.sh build`).
        #[arg(long)]
        generic: PathBuf,
        /// wasmtime-cli 48 (default: the set-up cache's).
        #[arg(long, env = launcher::tools::WASMTIME_VAR)]
        wasmtime: Option<PathBuf>,
    },
    /// Print a baked component's snapshot, memory by memory; exit 1 unless every memory is
    /// mapped copy-on-write.
    Check {
        /// The baked component.
        file: PathBuf,
    },
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Cmd::Bake { bundle, out, generic, wasmtime } => {
            let wasmtime = wasmtime.unwrap_or_else(|| launcher::tools::Tools::from_env().wasmtime);
            let baked = Baker { wasmtime, generic }.bake(&bundle, &out, &())?;
            for span in &baked.snapshot {
                eprintln!("snapshot: {span}");
            }
            eprintln!(
                "baked `{}` into `{}` ({} bytes) in {:.2} s",
                bundle.display(),
                baked.out.display(),
                baked.bytes,
                baked.seconds
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check { file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read `{}`", file.display()))?;
            let spans = spans(&bytes).with_context(|| format!("`{}`", file.display()))?;
            for span in &spans {
                println!("snapshot: {span}");
            }
            Ok(if spans.iter().all(|s| s.mapped()) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
