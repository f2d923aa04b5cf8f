//! The resolved configuration: what the binary's flags and environment become, once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use edge_classifier_bake::Baker;
use mlflow_client::Secret;
use model_registry::RegistryConfig;

use crate::github::GithubConfig;

/// Which version a one-off sync takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The version an alias points at (re-read every time).
    Alias(String),
    /// A fixed version number.
    Version(String),
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Alias(a) => write!(f, "alias `{a}`"),
            Self::Version(v) => write!(f, "version {v}"),
        }
    }
}

/// What every sync needs: where the registry is, how a version is checked and baked.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// MLflow and the registered model's name (its `Debug` redacts credentials).
    pub registry: RegistryConfig,
    /// The labelled evaluation sample, read at start-up.
    pub eval: dataset::EvalSet,
    /// How far below the manifest's accuracy the sample's accuracy may fall.
    pub tolerance: f64,
    /// The bake: wasmtime-cli 48 (which also serves each model) and the generic component.
    pub baker: Baker,
}

/// `--register-webhook`: the webhook MLflow should call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRegistration {
    /// The webhook's name in MLflow (reused when name and URL match).
    pub name: String,
    /// The URL MLflow posts to, e.g. `http://127.0.0.1:8780/webhooks/mlflow`.
    pub url: String,
}

/// Where a synced model goes (`--deployer`, one or both).
#[derive(Debug, Clone)]
pub struct Deployers {
    /// `local`: `wasmtime serve` behind the gateway, swapped blue/green.
    pub local: bool,
    /// `github`: a `repository_dispatch` `model-promoted` event.
    pub github: Option<GithubConfig>,
}

impl Deployers {
    /// Only the local blue/green deployer (the default).
    pub fn local() -> Self {
        Self { local: true, github: None }
    }
}

/// `registry-sync serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The sync steps' configuration.
    pub sync: SyncConfig,
    /// The alias to watch (`champion`).
    pub alias: String,
    /// Versioned model dirs and the `current` pointer.
    pub state_dir: PathBuf,
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// How often the alias is re-read, webhooks or not.
    pub poll_interval: Duration,
    /// `STACKTAG_WEBHOOK_SECRET`; without it `POST /webhooks/mlflow` is off (404).
    pub webhook_secret: Option<Secret>,
    /// Register the webhook in MLflow at start-up.
    pub register_webhook: Option<WebhookRegistration>,
    /// The deployers, run in order: local, then github.
    pub deployers: Deployers,
    /// The web demo's built site (`scripts/build-web.sh --out DIR`), served at `/demo/` with
    /// the serving model's bundle in place of the site's own `bundle/`.
    pub web_demo: Option<PathBuf>,
}
