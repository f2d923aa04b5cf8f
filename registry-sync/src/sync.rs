//! `registry-sync serve`: one sync at a time, woken by polls and webhooks, deploying through
//! the local blue/green deployer behind the gateway and/or the `github` dispatch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mlflow_client::webhooks::WebhookEvent;
use model_registry::Registry;
use tokio::sync::{Mutex, mpsc};

use crate::children::Children;
use crate::config::{Deployers, Selector, ServeConfig, SyncConfig, WebhookRegistration};
use crate::error::SyncError;
pub use crate::gateway::Trigger;
use crate::gateway::{AppState, unix_now};
use crate::github::{self, GithubConfig};
use crate::instance::Instance;
use crate::metrics::{Metrics, Outcome};
use crate::prepare::{self, DeployedModel, WASM_FILE};
use crate::state::StateDir;
use crate::webhook::Receiver;

/// How long the old instance may take to finish its in-flight requests after a swap.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The alias points at the version already serving.
    Unchanged {
        /// That version.
        version: String,
    },
    /// A new version serves.
    Deployed {
        /// It.
        model: DeployedModel,
        /// It was built before (a rollback to a kept version): no download, no bake.
        reused: bool,
    },
}

/// Runs syncs, one at a time, against one state dir and one gateway.
#[derive(Debug)]
pub struct Syncer {
    reg: Registry,
    cfg: SyncConfig,
    alias: String,
    state: StateDir,
    children: Children,
    wasmtime: PathBuf,
    deployers: Deployers,
    github_http: Option<reqwest::Client>,
    app: Arc<AppState>,
    // The version every deployer has taken (what `current` points at): a sync whose alias
    // names it has nothing to do. A failed deployer leaves it, so the next poll retries.
    deployed: std::sync::Mutex<Option<String>>,
    one_at_a_time: Mutex<()>,
}

impl Syncer {
    /// A syncer for `alias`, deploying through `deployers` (the local one behind `app`).
    pub fn new(
        cfg: SyncConfig,
        alias: &str,
        state: StateDir,
        wasmtime: PathBuf,
        deployers: Deployers,
        app: Arc<AppState>,
    ) -> anyhow::Result<Self> {
        let reg = Registry::new(cfg.registry.clone())?;
        let children = Children::in_state_dir(state.root())
            .with_context(|| format!("cannot create the pid records in `{}`", state.root().display()))?;
        let github_http = deployers.github.as_ref().map(github::client).transpose()?;
        Ok(Self {
            reg,
            cfg,
            alias: alias.to_owned(),
            state,
            children,
            wasmtime,
            deployers,
            github_http,
            app,
            deployed: std::sync::Mutex::new(None),
            one_at_a_time: Mutex::new(()),
        })
    }

    /// The gateway state it deploys behind.
    pub fn app(&self) -> &Arc<AppState> {
        &self.app
    }

    /// The processes it started and has not stopped yet (recorded in the state dir).
    pub fn children(&self) -> &Children {
        &self.children
    }

    fn metrics(&self) -> &Metrics {
        &self.app.metrics
    }

    fn deployed_version(&self) -> Option<String> {
        self.deployed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Serves what `current` points at, if anything (start-up after a restart or a crash).
    /// Every deployer took it before `current` moved, so only the local one acts again.
    pub async fn restore(&self) -> Result<Option<DeployedModel>, SyncError> {
        let _guard = self.one_at_a_time.lock().await;
        let Some((dir, model)) = self.state.current() else {
            return Ok(None);
        };
        if self.deployers.local {
            let old = self.deploy_local(&dir.join(WASM_FILE), &model).await?;
            if let Some(old) = old {
                drain(old).await;
            }
        }
        *self.deployed.lock().unwrap_or_else(|p| p.into_inner()) = Some(model.version.clone());
        Ok(Some(model))
    }

    /// Re-reads the alias and, if it moved, brings its version to serving. On failure the
    /// serving model stays; a log line and `stacktag_sync_total{outcome}` name the cause.
    pub async fn sync(&self) -> Result<SyncOutcome, SyncError> {
        let _guard = self.one_at_a_time.lock().await;
        let start = Instant::now();
        let result = self.sync_locked().await;
        let m = self.metrics();
        match &result {
            Ok(SyncOutcome::Unchanged { .. }) => {}
            Ok(SyncOutcome::Deployed { model, reused }) => {
                m.sync.get_or_create(&Outcome { outcome: "success" }).inc();
                m.sync_duration.observe(start.elapsed().as_secs_f64());
                m.last_success.set(unix_now() as f64);
                eprintln!(
                    "registry-sync: version {} (run {}) serves{} after {:.1} s",
                    model.version,
                    model.run_id,
                    if *reused { ", rebuilt before" } else { "" },
                    start.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                m.sync.get_or_create(&Outcome { outcome: e.outcome() }).inc();
                m.sync_duration.observe(start.elapsed().as_secs_f64());
                eprintln!("registry-sync: sync failed ({}), the serving model stays: {e}", e.outcome());
            }
        }
        result
    }

    async fn sync_locked(&self) -> Result<SyncOutcome, SyncError> {
        let mv = prepare::resolve(&self.reg, &Selector::Alias(self.alias.clone())).await?;
        let version = mv.version.clone();
        if self.deployed_version().as_deref() == Some(version.as_str()) {
            return Ok(SyncOutcome::Unchanged { version });
        }
        let (dir, model, reused) = match self.state.model(&version) {
            // Built and checked before (a rollback, or a crash after the build): the dir is
            // complete, since it only gets its name by a rename after the bake.
            Some((dir, model)) => (dir, model, true),
            None => {
                let staging = self.state.staging(&version).map_err(|cause| state_err(&version, cause))?;
                let model = prepare::prepare(&self.reg, &self.cfg, &mv, staging.path(), &self.children).await?;
                let dir = self.state.commit(staging, &version).map_err(|cause| state_err(&version, cause))?;
                (dir, model, false)
            }
        };
        self.deploy(&dir.join(WASM_FILE), &model).await?;
        Ok(SyncOutcome::Deployed { model, reused })
    }

    /// Every deployer in order (local, then github); `current` moves only once all of them
    /// took the version, so a restart never skips one that failed.
    async fn deploy(&self, wasm: &Path, model: &DeployedModel) -> Result<(), SyncError> {
        let version = model.version.clone();
        let old = match self.deployers.local {
            true => self.deploy_local(wasm, model).await?,
            false => None,
        };
        let result = match &self.deployers.github {
            Some(gh) => self.deploy_github(gh, wasm, model).await,
            None => Ok(()),
        };
        if result.is_ok() {
            // A crash before this line leaves `current` on the old model, which a restart
            // serves and the next poll replaces again.
            if let Err(cause) = self.state.set_current(&version) {
                eprintln!("registry-sync: {}", state_err(&version, cause));
            }
            *self.deployed.lock().unwrap_or_else(|p| p.into_inner()) = Some(version);
        }
        if let Some(old) = old {
            drain(old).await;
        }
        result
    }

    /// Blue/green: start the new instance, health-check it, switch the gateway; returns the
    /// old instance, to drain. Nothing to do if `model` serves already (a retried sync).
    async fn deploy_local(&self, wasm: &Path, model: &DeployedModel) -> Result<Option<Arc<Instance>>, SyncError> {
        if self.app.current().is_some_and(|i| i.model.version == model.version) {
            return Ok(None);
        }
        let started = Instant::now();
        let next = Instance::start(&self.wasmtime, wasm, model.clone(), self.app.http(), &self.children)
            .await
            .map_err(|reason| SyncError::Deploy { version: model.version.clone(), reason })?;
        // Most of a promotion's time: `wasmtime serve` compiles the baked component first.
        eprintln!(
            "registry-sync: version {}: instance {} healthy in {:.2} s; switching traffic",
            model.version,
            next.url,
            started.elapsed().as_secs_f64()
        );
        Ok(self.app.swap(Arc::new(next)))
    }

    /// `repository_dispatch` `model-promoted` with the baked component's sha256.
    async fn deploy_github(&self, gh: &GithubConfig, wasm: &Path, model: &DeployedModel) -> Result<(), SyncError> {
        let version = model.version.clone();
        let deploy_err = |reason: String| SyncError::Deploy { version: version.clone(), reason };
        let Some(http) = &self.github_http else {
            return Err(deploy_err("no GitHub client".into()));
        };
        let bytes =
            tokio::fs::read(wasm).await.map_err(|e| deploy_err(format!("cannot read `{}`: {e}", wasm.display())))?;
        let sha256 = edge_classifier::bundle::sha256_hex(&bytes);
        let payload = github::dispatch(http, gh, model, &sha256).await.map_err(|e| deploy_err(e.to_string()))?;
        eprintln!(
            "registry-sync: version {} announced to `{}` (`{}`, sha256 {})",
            payload.version,
            gh.repository,
            github::EVENT_TYPE,
            payload.sha256
        );
        Ok(())
    }
}

fn state_err(version: &str, cause: anyhow::Error) -> SyncError {
    SyncError::State { version: version.to_owned(), cause }
}

/// Waits until no request holds `old` (or the timeout), then stops it.
async fn drain(old: Arc<Instance>) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    old.stop().await;
}

/// The worker: one sync per wake-up (a poll tick or a webhook), triggers that arrive during
/// a sync folded into one more.
pub async fn run_worker(syncer: Arc<Syncer>, mut triggers: mpsc::Receiver<Trigger>, poll_interval: Duration) {
    let mut tick = tokio::time::interval(poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            t = triggers.recv() => if t.is_none() { return },
        }
        while triggers.try_recv().is_ok() {}
        // Errors are logged and counted inside; the next tick retries.
        let _ = syncer.sync().await;
    }
}

/// Creates the webhook in MLflow unless one with the same name and URL exists.
pub async fn register_webhook(
    reg: &Registry,
    hook: &WebhookRegistration,
    secret: &mlflow_client::Secret,
) -> anyhow::Result<String> {
    let c = reg.client();
    let existing = c.list_webhooks().await.context("cannot list MLflow webhooks")?;
    if let Some(w) = existing.iter().find(|w| w.name == hook.name && w.url == hook.url) {
        return Ok(w.webhook_id.clone());
    }
    let w = c
        .create_webhook(&hook.name, &hook.url, &[WebhookEvent::alias_created()], secret)
        .await
        .with_context(|| format!("cannot create MLflow webhook `{}` for `{}`", hook.name, hook.url))?;
    Ok(w.webhook_id)
}

/// A running `serve`: its gateway address and the syncer (tests drive both).
#[derive(Debug)]
pub struct Running {
    /// Where the gateway listens.
    pub addr: std::net::SocketAddr,
    /// The syncer.
    pub syncer: Arc<Syncer>,
    triggers: mpsc::Sender<Trigger>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Wakes the worker as a poll tick would (a sync already pending absorbs it).
    pub fn poll_now(&self) {
        let _ = self.triggers.try_send(Trigger::Poll);
    }

    /// Waits until the server task ends (an error, or never).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        if let Some(server) = self.tasks.pop() {
            server.await.context("the gateway task failed")?;
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts `serve`: opens the state dir, serves `current`, registers the webhook if asked,
/// binds the gateway and starts the worker (its first poll is immediate).
pub async fn serve(cfg: ServeConfig) -> anyhow::Result<Running> {
    let state = StateDir::open(&cfg.state_dir)?;
    // Before anything new starts: what a `kill -9` of an earlier run left running.
    let orphans = Children::in_state_dir(state.root())
        .with_context(|| format!("cannot create the pid records in `{}`", state.root().display()))?
        .reap_orphans();
    if !orphans.is_empty() {
        eprintln!("registry-sync: stopped {} process(es) an earlier run left behind: {orphans:?}", orphans.len());
    }
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = mpsc::channel(16);
    let receiver = Receiver::new(cfg.webhook_secret.clone(), &cfg.sync.registry.model, &cfg.alias);
    let app_state = Arc::new(AppState::new(metrics, receiver, tx.clone())?.with_web_demo(cfg.web_demo.clone()));
    let syncer = Arc::new(Syncer::new(
        cfg.sync.clone(),
        &cfg.alias,
        state,
        cfg.wasmtime.clone(),
        cfg.deployers.clone(),
        app_state.clone(),
    )?);
    match syncer.restore().await {
        Ok(Some(m)) => eprintln!("registry-sync: serving version {} from `current`", m.version),
        Ok(None) => {}
        Err(e) => {
            eprintln!("registry-sync: cannot serve `current` ({e}); waiting for the next sync")
        }
    }
    if let (Some(hook), Some(secret)) = (&cfg.register_webhook, &cfg.webhook_secret) {
        let id = register_webhook(&syncer.reg, hook, secret).await?;
        eprintln!("registry-sync: MLflow webhook `{}` ({id}) posts to `{}`", hook.name, hook.url);
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on `{}`", cfg.listen))?;
    let addr = listener.local_addr()?;
    let router = crate::gateway::app(app_state);
    let worker = tokio::spawn(run_worker(syncer.clone(), rx, cfg.poll_interval));
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("registry-sync: the gateway stopped: {e}");
        }
    });
    eprintln!("registry-sync: gateway on http://{addr}/ (alias `{}` of `{}`)", cfg.alias, cfg.sync.registry.model);
    Ok(Running { addr, syncer, triggers: tx, tasks: vec![worker, server] })
}
