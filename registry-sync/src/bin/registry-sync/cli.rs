//! The flags and environment, parsed by clap and resolved once into the library's configs.
//! The only place that knows about clap or reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edge_classifier_bake::Baker;
use mlflow_client::{ClientConfig, Secret, env_vars as mlflow_env};
use model_registry::RegistryConfig;
use registry_sync::github::GithubConfig;
use registry_sync::{Deployers, Listen, OnceOutput, Selector, ServeConfig, SyncConfig, Trigger, WebhookRegistration};

/// The webhook secret's variable (never printed; `hide_env_values`).
const WEBHOOK_SECRET: &str = "STACKTAG_WEBHOOK_SECRET";
/// The secret before a rotation, still accepted for a while (docs/registry-sync.md).
const WEBHOOK_PREVIOUS_SECRET: &str = "STACKTAG_WEBHOOK_PREVIOUS_SECRET";
/// The `github` deployer's token (never printed).
const GITHUB_TOKEN: &str = "GITHUB_TOKEN";

/// `--deployer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DeployerKind {
    /// `wasmtime serve` behind the gateway, swapped blue/green.
    Local,
    /// A `repository_dispatch` `model-promoted` event.
    Github,
}

/// Keeps the edge serving the registry's champion.
#[derive(Debug, Parser)]
#[command(name = "registry-sync", version)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Resolve, download, verify, evaluate, stamp and bake one version; write the component.
    Once {
        #[command(flatten)]
        common: Common,
        /// The alias to take the version from.
        #[arg(long, default_value = "champion", conflicts_with = "version")]
        alias: String,
        /// A fixed version instead of an alias.
        #[arg(long)]
        version: Option<String>,
        /// Where the baked component goes (written atomically).
        #[arg(long)]
        out: PathBuf,
        /// Also write the verified, version-stamped bundle to this directory (replaced whole),
        /// for the web demo's site.
        #[arg(long, value_name = "DIR")]
        bundle_out: Option<PathBuf>,
    },
    /// Watch the alias (polling and webhooks) and serve it through the gateway.
    Serve {
        #[command(flatten)]
        common: Common,
        /// The alias to watch.
        #[arg(long, default_value = "champion")]
        alias: String,
        /// Versioned model dirs and the `current` pointer.
        #[arg(long, default_value = ".stacktag/sync")]
        state_dir: PathBuf,
        /// The gateway's address. Under socket activation (`LISTEN_FDS`, as systemd's
        /// `.socket` units set it) the handed-over socket is used instead.
        #[arg(long, default_value = "127.0.0.1:8780")]
        listen: SocketAddr,
        /// Seconds between polls of the alias.
        #[arg(long, default_value_t = 10.0)]
        poll_interval: f64,
        /// Create the MLflow webhook (idempotent) posting to `--webhook-url`.
        #[arg(long)]
        register_webhook: bool,
        /// The URL MLflow should post to (default: the gateway's `/webhooks/mlflow`).
        #[arg(long)]
        webhook_url: Option<String>,
        /// The webhook's name in MLflow.
        #[arg(long, default_value = "stacktag-registry-sync")]
        webhook_name: String,
        /// Where a synced model goes (repeat for both: `--deployer local --deployer github`).
        #[arg(long = "deployer", value_enum, default_values_t = [DeployerKind::Local])]
        deployers: Vec<DeployerKind>,
        /// The repository the `github` deployer dispatches to (`owner/name`).
        #[arg(long, env = "GITHUB_REPOSITORY")]
        github_repository: Option<String>,
        /// GitHub's REST API.
        #[arg(long, env = "GITHUB_API_URL", default_value = registry_sync::github::DEFAULT_API_URL)]
        github_api_url: String,
        /// Serve the web demo's built site (`scripts/build-web.sh --out DIR`) at `/demo/`, with
        /// the serving model's bundle.
        #[arg(long, value_name = "DIR")]
        web_demo: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct Common {
    /// MLflow tracking URI.
    #[arg(long, env = mlflow_env::TRACKING_URI, hide_env_values = true)]
    tracking_uri: Option<String>,
    /// Registered model name.
    #[arg(long, default_value = "stacktag")]
    registered_model: String,
    /// Labelled evaluation sample (`label,text` CSV or CSV.gz, Parquet: what the trainer reads).
    #[arg(long, env = "STACKTAG_SYNC_EVAL")]
    eval: PathBuf,
    /// How far below the manifest's accuracy the sample's may fall.
    #[arg(long, default_value_t = 0.05)]
    tolerance: f64,
    /// The generic edge component every version is baked into (`scripts/build-edge.sh
    /// build`).
    #[arg(long, value_name = "FILE", default_value = "target/wasm32-wasip2/wasm/edge_classifier_spin.wasm")]
    generic_component: PathBuf,
    /// The wasmtime-cli 48 that bakes (and, in `serve`, runs) each version (default: the
    /// set-up cache's).
    #[arg(long, env = launcher::tools::WASMTIME_VAR)]
    wasmtime: Option<PathBuf>,
    /// A PEM file of public keys whose bundle signatures (`model.sig`, OpenSSF Model Signing)
    /// are trusted; repeat or comma-separate for several (key rotation).
    #[arg(long = "trusted-key", value_name = "FILE", env = model_registry::signing::env_vars::TRUSTED_KEYS, value_delimiter = ',')]
    trusted_keys: Vec<String>,
    /// Refuse versions without a trusted signature (default: true once a key is trusted).
    #[arg(long, value_name = "BOOL", env = model_registry::signing::env_vars::REQUIRE_SIGNATURE)]
    require_signature: Option<bool>,
    /// Seconds one bake may run before `wasmtime wizer` is killed and the sync fails.
    #[arg(long, value_name = "SECONDS", default_value_t = edge_classifier_bake::BAKE_TIMEOUT.as_secs_f64())]
    bake_timeout: f64,
}

impl Common {
    /// Verification only: registry-sync signs nothing.
    fn signing(&self) -> anyhow::Result<model_registry::Signing> {
        let trusted = model_registry::signing::trusted_keys(&self.trusted_keys).context("`--trusted-key`")?;
        let required = self.require_signature.unwrap_or(!trusted.is_empty());
        model_registry::Signing { key: None, signer: None, trusted, required }.checked()
    }

    fn resolve(&self) -> anyhow::Result<SyncConfig> {
        let uri = self.tracking_uri.clone();
        let client = ClientConfig::from_lookup(|name| match (name == mlflow_env::TRACKING_URI, &uri) {
            (true, Some(u)) => Some(u.clone()),
            _ => std::env::var(name).ok(),
        })
        .map_err(|e| anyhow::anyhow!(e).context("invalid MLflow configuration"))?;
        // The experiment is never written by a sync; the name only satisfies the config (a
        // workspace path, valid on Databricks and on an OSS server alike).
        let registry = RegistryConfig::new(
            client,
            "/Shared/stacktag",
            &self.registered_model,
            ["--experiment", "--registered-model"],
        )?
        .with_signing(self.signing()?);
        if !(0.0..=1.0).contains(&self.tolerance) {
            anyhow::bail!("`--tolerance` must be within 0 and 1, not {}", self.tolerance);
        }
        let eval = dataset::EvalSet::read(std::slice::from_ref(&self.eval))?;
        let wasmtime = self.wasmtime.clone().unwrap_or_else(|| launcher::tools::Tools::from_env().wasmtime);
        let baker = Baker { wasmtime, generic: self.generic_component.clone() };
        if !(self.bake_timeout.is_finite() && self.bake_timeout > 0.0) {
            anyhow::bail!("`--bake-timeout` must be a positive number of seconds, not {}", self.bake_timeout);
        }
        let bake_timeout = Duration::from_secs_f64(self.bake_timeout);
        Ok(SyncConfig { registry, eval, tolerance: self.tolerance, baker, bake_timeout })
    }
}

/// Runs the command. `handed_over` is the listening socket a supervisor passed in
/// `LISTEN_FDS` (read in `main` before any thread starts: reading it clears the variables).
pub async fn run(args: Args, handed_over: Option<std::net::TcpListener>) -> anyhow::Result<()> {
    match args.command {
        Command::Once { common, alias, version, out, bundle_out } => {
            let cfg = common.resolve()?;
            let selector = version.map_or(Selector::Alias(alias), Selector::Version);
            let out = OnceOutput { wasm: out, bundle: bundle_out };
            let m =
                registry_sync::once(&cfg, &selector, &out).await.with_context(|| format!("cannot bake {selector}"))?;
            println!(
                "{}",
                serde_json::json!({ "version": m.version, "run_id": m.run_id, "out": out.wasm, "bundle_out": out.bundle })
            );
            Ok(())
        }
        Command::Serve {
            common,
            alias,
            state_dir,
            listen,
            poll_interval,
            register_webhook,
            webhook_url,
            webhook_name,
            deployers,
            github_repository,
            github_api_url,
            web_demo,
        } => {
            if !(poll_interval.is_finite() && poll_interval > 0.0) {
                anyhow::bail!("`--poll-interval` must be a positive number of seconds, not {poll_interval}");
            }
            if let Some(dir) = &web_demo
                && !dir.join("index.html").is_file()
            {
                anyhow::bail!(
                    "`--web-demo {}` has no index.html: pass what `scripts/build-web.sh --out DIR` wrote",
                    dir.display()
                );
            }
            let secret_var = |name| std::env::var(name).ok().filter(|s| !s.is_empty()).map(Secret::new);
            let webhook_secret = secret_var(WEBHOOK_SECRET);
            let webhook_previous_secret = secret_var(WEBHOOK_PREVIOUS_SECRET);
            if register_webhook && webhook_secret.is_none() {
                anyhow::bail!("`--register-webhook` needs `{WEBHOOK_SECRET}`");
            }
            let url = webhook_url.unwrap_or_else(|| format!("http://{listen}/webhooks/mlflow"));
            let github = match deployers.contains(&DeployerKind::Github) {
                false => None,
                true => {
                    let repository =
                        github_repository.filter(|r| r.split('/').filter(|p| !p.is_empty()).count() == 2).context(
                            "`--deployer github` needs `--github-repository owner/name` (or `GITHUB_REPOSITORY`)",
                        )?;
                    let token = std::env::var(GITHUB_TOKEN)
                        .ok()
                        .filter(|t| !t.is_empty())
                        .with_context(|| format!("`--deployer github` needs `{GITHUB_TOKEN}`"))?;
                    Some(GithubConfig { api_url: github_api_url, repository, token: Secret::new(token) })
                }
            };
            let listen = match handed_over {
                Some(socket) => {
                    let addr = socket.local_addr().context("the socket handed over in `LISTEN_FDS`")?;
                    tracing::info!(target: registry_sync::events::SERVE, %addr, "serving on the socket handed over in `LISTEN_FDS` (`--listen` unused)");
                    Listen::Socket(std::sync::Arc::new(socket))
                }
                None => Listen::Addr(listen),
            };
            let cfg = ServeConfig {
                sync: common.resolve()?,
                alias,
                state_dir,
                listen,
                poll_interval: Duration::from_secs_f64(poll_interval),
                webhook_secret,
                webhook_previous_secret,
                register_webhook: register_webhook.then_some(WebhookRegistration { name: webhook_name, url }),
                deployers: Deployers { local: deployers.contains(&DeployerKind::Local), github },
                web_demo,
            };
            let running = registry_sync::serve(cfg).await?;
            let retry = retry_on_sighup(running.triggers())?;
            let ended = running.run_until(shutdown_signal()).await;
            retry.abort();
            ended
        }
    }
}

/// SIGHUP (`systemctl reload`, `kill -HUP`): try the version known bad again, without a
/// restart.
fn retry_on_sighup(triggers: tokio::sync::mpsc::Sender<Trigger>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let _ = triggers.try_send(Trigger::Retry);
        }
    }))
}

/// SIGTERM (what Kubernetes, systemd and `kill` send) or SIGINT (Ctrl-C). If the SIGTERM
/// handler cannot be installed, Ctrl-C alone.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
