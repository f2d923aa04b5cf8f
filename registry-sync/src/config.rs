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
    /// How long one bake may run before `wasmtime wizer` is killed and the sync fails
    /// (`bake_failed`); [`edge_classifier_bake::BAKE_TIMEOUT`] by default.
    pub bake_timeout: Duration,
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

/// Where the gateway accepts connections.
#[derive(Debug, Clone)]
pub enum Listen {
    /// Bind this address.
    Addr(SocketAddr),
    /// A listening socket handed over by a supervisor (systemd socket activation's
    /// `LISTEN_FDS`). The supervisor keeps it open across restarts of `serve`, so connections
    /// that arrive while `serve` restarts or crashes wait in the kernel's backlog and are
    /// answered by the next process instead of being refused.
    Socket(std::sync::Arc<std::net::TcpListener>),
}

impl From<SocketAddr> for Listen {
    fn from(addr: SocketAddr) -> Self {
        Self::Addr(addr)
    }
}

impl Listen {
    /// The gateway's listener, for tokio.
    pub(crate) async fn bind(&self) -> anyhow::Result<tokio::net::TcpListener> {
        use anyhow::Context;
        match self {
            Self::Addr(addr) => {
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on `{addr}`"))
            }
            Self::Socket(socket) => {
                let own = socket.try_clone().context("cannot take the socket handed over in `LISTEN_FDS`")?;
                own.set_nonblocking(true).context("cannot make the handed-over socket non-blocking")?;
                tokio::net::TcpListener::from_std(own).context("cannot serve on the socket handed over in `LISTEN_FDS`")
            }
        }
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
    /// Where the gateway listens: an address, or a socket handed over by a supervisor.
    pub listen: Listen,
    /// How often the alias is re-read, webhooks or not.
    pub poll_interval: Duration,
    /// `STACKTAG_WEBHOOK_SECRET`; without it `POST /webhooks/mlflow` is off (404).
    pub webhook_secret: Option<Secret>,
    /// `STACKTAG_WEBHOOK_PREVIOUS_SECRET`: the secret before a rotation, still accepted (never
    /// registered) while MLflow signs with its cached copy.
    pub webhook_previous_secret: Option<Secret>,
    /// Register the webhook in MLflow at start-up.
    pub register_webhook: Option<WebhookRegistration>,
    /// The deployers, run in order: local, then github.
    pub deployers: Deployers,
    /// The web demo's built site (`scripts/build-web.sh --out DIR`), served at `/demo/` with
    /// the serving model's bundle in place of the site's own `bundle/`.
    pub web_demo: Option<PathBuf>,
}
