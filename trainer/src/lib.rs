//! Stacktag's trainer: labelled Stack Overflow questions in (CSV, Parquet, the TensorFlow
//! layout), a verified, self-contained ONNX bundle out.
//!
//! The pipeline is `data` → `tokenizer` → `model` → `export` → `bundle`, with the export
//! checked by running it through the serving core (`edge-classifier`).

pub mod bench;
pub mod bundle;
pub mod config;
pub mod data;
pub mod evaluate;
pub mod export;
pub mod gate;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod registry;
pub mod report;
pub mod rng;
pub mod tokenizer;

use std::process::ExitCode;

use config::{Cli, Command, TrainConfig};

/// Runs one trainer command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Train(args) => {
            let cfg = TrainConfig::resolve(args.data, args.eval, args.out, &args.model)?;
            // Resolved before training, so a misconfigured registry fails in a second.
            let mlflow = match args.register {
                true => Some(registry::Registry::connect(registry::RegistryConfig::resolve(&args.registry)?)?),
                false => None,
            };
            let outcome = pipeline::train(&cfg)?;
            if let Some(reg) = &mlflow {
                let registered = registry::register(reg, &outcome.bundle_dir, &outcome.manifest)?;
                gate::report_registered(&registered);
            }
            if args.json {
                let summary = serde_json::json!({
                    "bundle": outcome.bundle_dir,
                    "metrics": outcome.manifest.metrics,
                    "data_snapshot": outcome.manifest.data_snapshot,
                    "train_rows": outcome.train_report,
                    "eval_rows": outcome.eval_report,
                    "timings": outcome.timings,
                    "parity": outcome.parity,
                });
                println!("{}", serde_json::to_string_pretty(&summary)?);
            }
        }
        Command::Evaluate(args) => {
            let classifier = pipeline::load_bundle(&args.target.bundle)?;
            let report = evaluate::evaluate_paths(&classifier, &args.target.data)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "accuracy {:.4}  macro-F1 {:.4}  on {} rows ({})",
                    report.metrics.accuracy,
                    report.metrics.macro_f1,
                    report.metrics.examples,
                    report.rows.describe()
                );
                for c in &report.metrics.per_class {
                    println!(
                        "  {:<12} precision {:.4}  recall {:.4}  f1 {:.4}  support {}",
                        c.label, c.precision, c.recall, c.f1, c.support
                    );
                }
            }
        }
        Command::Promote(args) => return gate::run_promote(args),
        Command::Rollback(args) => return gate::run_rollback(args),
        Command::Retrain(args) => return gate::run_retrain(args),
        Command::Bench(args) => {
            let report = bench::bench(&args)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Latency(args) => {
            let report = bench::latency_of_bundle(&args)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
