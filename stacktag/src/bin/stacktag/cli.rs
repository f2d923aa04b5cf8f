//! The flags and environment, resolved once into [`stacktag::UpConfig`]; the only place that
//! reads either.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use launcher::tools::{self, Tools};
use stacktag::UpConfig;
use stacktag::up::Stop;

/// Stacktag's main job and its local services.
#[derive(Debug, Parser)]
#[command(name = "stacktag", version)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The loop: MLflow, registry-sync and Prometheus up; the data lands in two batches; each
    /// is trained, gated, synced and served. Serves until Ctrl-C; prints a JSON report last.
    Up {
        /// Stop once the second model serves.
        #[arg(long)]
        once: bool,
        /// Where everything the loop keeps lives (reused by the next run).
        #[arg(long, env = "STACKTAG_STATE_DIR", default_value = ".stacktag")]
        state_dir: PathBuf,
        /// The gateway's port on 127.0.0.1.
        #[arg(long, env = "STACKTAG_GATEWAY_PORT", default_value_t = 8780)]
        gateway_port: u16,
        /// Prometheus's port on 127.0.0.1.
        #[arg(long, env = "STACKTAG_PROMETHEUS_PORT", default_value_t = 9090)]
        prometheus_port: u16,
        /// The port of the MLflow the loop starts (unless MLFLOW_TRACKING_URI names one).
        #[arg(long, env = "STACKTAG_MLFLOW_PORT", default_value_t = 5000)]
        mlflow_port: u16,
        /// Seconds between the scheduler's retrain rounds.
        #[arg(long, env = "STACKTAG_RETRAIN_EVERY", default_value_t = 5.0)]
        retrain_every: f64,
        /// The generic edge component (default: `target/` under the repository).
        #[arg(long, value_name = "FILE")]
        generic_component: Option<PathBuf>,
        /// Serve the web demo's built site at `/demo/` (`scripts/build-web.sh --out DIR`).
        #[arg(long, value_name = "DIR")]
        web_demo: Option<PathBuf>,
        /// The repository (its `prometheus/` configuration).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Take the second batch from a Stack Exchange data dump (`Posts.xml`, plain or gzip)
        /// instead of the rest of the 16k training set: real questions, labelled by their tags.
        #[arg(long, value_name = "FILE")]
        dump: Option<PathBuf>,
    },
    /// A local MLflow server as the loop starts it (sqlite and artifacts in DIR, webhooks on),
    /// in the foreground until Ctrl-C: for the bench scripts and for trying things.
    Mlflow {
        /// Where its database, artifacts and log live.
        #[arg(long)]
        dir: PathBuf,
        /// Its port on 127.0.0.1.
        #[arg(long, default_value_t = 5000)]
        port: u16,
    },
}

/// Ctrl-C or SIGTERM raise the loop's stop.
fn stop_on_signals() -> anyhow::Result<Stop> {
    let (tx, stop) = Stop::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = tx.send(true);
    });
    Ok(stop)
}

/// Runs the command.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let env = |name: &str| std::env::var(name).ok();
    match args.command {
        Command::Up {
            once,
            state_dir,
            gateway_port,
            prometheus_port,
            mlflow_port,
            retrain_every,
            generic_component,
            web_demo,
            repo,
            dump,
        } => {
            if !(retrain_every.is_finite() && retrain_every > 0.0) {
                anyhow::bail!("`--retrain-every` must be a positive number of seconds, not {retrain_every}");
            }
            let repo =
                std::fs::canonicalize(&repo).with_context(|| format!("no repository at `{}`", repo.display()))?;
            let state_dir = absolute(&state_dir)?;
            let target = env("CARGO_TARGET_DIR").map_or_else(|| repo.join("target"), PathBuf::from);
            // An MLflow named in the environment (with its credentials) is used as it is.
            let mlflow = match env(mlflow_client::env_vars::TRACKING_URI) {
                Some(_) => Some(
                    mlflow_client::ClientConfig::from_lookup(env)
                        .map_err(|e| anyhow::anyhow!(e).context("invalid MLflow configuration"))?,
                ),
                None => None,
            };
            let cfg = UpConfig {
                data: tools::shared_data(&repo, env),
                repo,
                state_dir,
                gateway_port,
                prometheus_port,
                mlflow_port,
                mlflow,
                retrain_every: Duration::from_secs_f64(retrain_every),
                poll_every: Duration::from_secs(10),
                serve_timeout: Duration::from_secs(600),
                tools: Tools::from_env(),
                generic_component: generic_component
                    .unwrap_or_else(|| target.join(edge_classifier_bake::GENERIC_IN_TARGET)),
                web_demo,
                once,
                dump: dump.map(|d| absolute(&d)).transpose()?,
            };
            let report = stacktag::up(&cfg, stop_on_signals()?).await?;
            // The report is the last thing printed, and the only thing on stdout.
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Mlflow { dir, port } => {
            let opts = launcher::mlflow::MlflowOptions {
                bin: Tools::from_env().mlflow,
                dir: absolute(&dir)?,
                port,
                basic_auth_admin_password: None,
            };
            let mut stop = stop_on_signals()?;
            let service = tokio::task::spawn_blocking(move || launcher::mlflow::start(&opts)).await??;
            eprintln!("MLflow at {} (log: {}); Ctrl-C stops it", service.url(), service.log().display());
            stop.wait().await;
            tokio::task::spawn_blocking(move || drop(service)).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn absolute(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() { path.to_owned() } else { std::env::current_dir()?.join(path) })
}
