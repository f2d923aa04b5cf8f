//! The trainer's command line: each command resolves its flags once, calls the library, and
//! prints (JSON on stdout with `--json`, a line for people otherwise; notes on stderr).

pub mod flags;

use std::process::ExitCode;

use anyhow::Context;
use model_registry::{GateOutcome, aliases};
use trainer::data::EvalSet;
use trainer::registry::{self, Connection};
use trainer::retrain::{self, Retrain};
use trainer::{arrivals, bench, evaluate, pipeline};

use flags::{Cli, Command, FetchArgs, FetchSource};

/// Exit code of `promote` and `retrain` with `--fail-if-not-promoted` when the gate said no.
pub const EXIT_NOT_PROMOTED: u8 = 3;

/// Runs one trainer command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Train(args) => {
            let cfg = args.model.train_config(args.data, args.eval, args.out)?;
            // Resolved before training, so a misconfigured registry fails in a second.
            let conn = match args.register {
                true => Some(Connection::new(args.registry.resolve()?)?),
                false => None,
            };
            let outcome = pipeline::train(&cfg)?;
            if let Some(conn) = &conn {
                let r = registry::register(conn, &outcome.bundle_dir, &outcome.manifest)?;
                eprintln!(
                    "registered version {} of `{}` with alias `{}` (run {}, source {})",
                    r.version,
                    r.model,
                    aliases::CHALLENGER,
                    r.run_id,
                    r.source
                );
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
        Command::Judge(args) => {
            let classifier = pipeline::load_bundle(&args.target.bundle)?;
            let trained = trainer::data::read_sources(&args.trained_on, "training")?;
            let arrived = trainer::data::read_sources(&args.target.data, "arrived")?;
            let since = trained.last().map(|b| arrivals::batch_name(&b.path)).unwrap_or_default();
            let bundle = args.target.bundle.display().to_string();
            let judged = arrivals::judge_between(&classifier, &bundle, &since, &trained, &arrived)?;
            println!("{}", serde_json::to_string_pretty(&judged)?);
        }
        Command::Bench(args) => {
            let report = bench::bench(&args.resolve())?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Cv(args) => {
            let cfg = trainer::cv::CvConfig {
                data: args.data.clone(),
                start: args.model.params(),
                folds: args.folds,
                axes: trainer::cv::axes(&args.tries)?,
                quiet: args.model.quiet,
            };
            let report = trainer::cv::search(&cfg)?;
            // The test set, once, with what the training data chose.
            let test = match &args.test {
                Some(test) => {
                    let dir = tempfile::tempdir()?;
                    let mut train = trainer::config::TrainConfig::new(
                        args.data.clone(),
                        vec![test.clone()],
                        dir.path().join("bundle"),
                        &report.params,
                    )?;
                    train.quiet = args.model.quiet;
                    let m = trainer::pipeline::train(&train)?.manifest.metrics;
                    Some(
                        serde_json::json!({"path": test, "accuracy": m.accuracy, "macro_f1": m.macro_f1, "examples": m.examples}),
                    )
                }
                None => None,
            };
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({"cv": report, "test": test}))?);
        }
        Command::Latency(args) => {
            let report = bench::latency_of_bundle(
                &args.target.bundle,
                &args.target.data,
                args.per_node,
                args.baseline.as_deref(),
            )?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Promote(args) => {
            let gate = args.gate.resolve(args.force, args.version.clone())?;
            let eval = EvalSet::read(&args.gate.eval)?;
            let conn = Connection::new(args.registry.resolve()?)?;
            let outcome = registry::promote_on(&conn, &gate, &eval)?;
            match args.gate.json {
                true => println!("{}", serde_json::to_string_pretty(&outcome)?),
                false => println!("{}", outcome.describe()),
            }
            return Ok(gate_exit(&outcome, args.gate.fail_if_not_promoted));
        }
        Command::Rollback(args) => {
            let conn = Connection::new(args.registry.resolve()?)?;
            let r = registry::rollback(&conn)?;
            match args.json {
                true => println!("{}", serde_json::to_string_pretty(&r)?),
                false => println!(
                    "rolled back `{}`: `{}` is version {} again (was {})",
                    r.model,
                    aliases::CHAMPION,
                    r.to_version,
                    r.from_version
                ),
            }
        }
        Command::Split(args) => {
            let written = trainer::batches::split(&args.data, &args.out, args.first_per_label, args.rest_batches)?;
            for b in &written {
                println!("{}: {} rows", b.path.display(), b.rows);
            }
        }
        Command::Fetch(args) => return fetch(args),
        Command::Retrain(args) => {
            let gate = args.gate.resolve(false, None)?;
            let conn = Connection::new(args.registry.resolve()?)?;
            let tmp = tempfile::Builder::new()
                .prefix("stacktag-retrain-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let out = args.out.clone().unwrap_or_else(|| tmp.path().join("bundle"));
            // The gate's `--eval` files are also the training run's evaluation data, all of them.
            let train_cfg = args.model.train_config(args.data.clone(), args.gate.eval.clone(), out)?;
            let r = retrain::retrain(&conn, &train_cfg, &gate)?;
            if args.gate.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
            return Ok(match &r {
                Retrain::Skipped { reason, .. } => {
                    if !args.gate.json {
                        println!("nothing to do: {reason}");
                    }
                    ExitCode::SUCCESS
                }
                Retrain::Regated { reason, gate: outcome, .. } => {
                    if !args.gate.json {
                        println!("gated again: {reason}");
                        println!("{}", outcome.describe());
                    }
                    gate_exit(outcome, args.gate.fail_if_not_promoted)
                }
                Retrain::Trained { judged, registered, gate: outcome } => {
                    if !args.gate.json {
                        println!("{}", judged.describe());
                        println!(
                            "registered version {} of `{}` (run {})",
                            registered.version, registered.model, registered.run_id
                        );
                        println!("{}", outcome.describe());
                    }
                    gate_exit(outcome, args.gate.fail_if_not_promoted)
                }
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn gate_exit(o: &GateOutcome, fail_if_not_promoted: bool) -> ExitCode {
    match fail_if_not_promoted && !o.decision.is_champion() {
        true => ExitCode::from(EXIT_NOT_PROMOTED),
        false => ExitCode::SUCCESS,
    }
}

/// `trainer fetch`: what came in, written before any failure is reported (exit 1 then).
fn fetch(args: FetchArgs) -> anyhow::Result<ExitCode> {
    let mut inbox = args.open_inbox()?;
    // Batches read for their keys land in the copy at once, so the copy below reads none again.
    if let Some(dir) = &args.copy_to {
        inbox = inbox.with_local_copy(dir);
    }
    let eval_texts = trainer::data::read_texts(&args.eval, "evaluation")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    // One thread: the dump's reader runs on the blocking pool beside it.
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let report = match &args.source {
        FetchSource::Api(a) => {
            let api = harvest::api::Api::new(harvest::api::ApiConfig {
                base_url: a.api_url.clone(),
                site: a.site.clone(),
                key: a.key.clone(),
                max_pages: a.max_pages,
                ..harvest::api::ApiConfig::default()
            })?;
            let since = a.since.unwrap_or(now - 7 * 24 * 3600);
            let until = a.until.unwrap_or(now);
            anyhow::ensure!(since <= until, "`--since` {since} is after `--until` {until}");
            runtime.block_on(harvest::fetch::from_api(&api, &inbox, &eval_texts, since, until, now))?
        }
        FetchSource::Dump(d) => {
            let file = std::fs::File::open(&d.posts).with_context(|| format!("cannot open `{}`", d.posts.display()))?;
            runtime
                .block_on(harvest::fetch::from_dump(file, &inbox, &eval_texts, d.batch_rows, now))
                .with_context(|| format!("cannot read the dump `{}`", d.posts.display()))?
        }
    };
    // Copied whatever the fetch did: a failed fetch still leaves every earlier batch to train on.
    if let Some(dir) = &args.copy_to {
        let files = runtime.block_on(inbox.copy_to(dir))?;
        eprintln!("{} batches of `{}` in `{}`", files.len(), inbox.location, dir.display());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let rows: u64 = report.labels.values().sum();
        println!(
            "{} questions in, {rows} rows written to `{}` ({} batches), {} skipped",
            report.offered,
            inbox.location,
            report.written.len(),
            report.skipped.total()
        );
    }
    match report.failure() {
        Some(why) => {
            eprintln!("error: the fetch stopped early (what came before is written): {why}");
            Ok(ExitCode::FAILURE)
        }
        None => Ok(ExitCode::SUCCESS),
    }
}
