//! `registry-sync serve`: the state dir, the gateway and the sync worker, started together.

use std::sync::Arc;

use anyhow::Context;
use mlflow_client::webhooks::WebhookEvent;
use model_registry::Registry;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::children::Children;
use crate::config::{ServeConfig, WebhookRegistration};
use crate::events;
use crate::gateway::{self, AppState};
use crate::instance::Upstream;
use crate::metrics::Metrics;
use crate::state::StateDir;
use crate::sync::Syncer;
use crate::webhook::Receiver;
use crate::worker::{self, Trigger};

/// Refuses `--register-webhook` where MLflow delivers no webhooks (Databricks), saying what to
/// do instead. No network: a start-up check.
pub fn require_webhooks(reg: &Registry) -> anyhow::Result<()> {
    reg.client().require_webhooks().context(
        "`--register-webhook`: run `registry-sync serve` without it; it polls the registry every `--poll-interval` seconds, and deploy.yml's scheduled reconcile deploys any promotion a poll missed (docs/databricks.md)",
    )
}

/// Creates the webhook in MLflow unless one with the same name and URL exists, and sets that
/// one's secret (MLflow never returns a secret, so a rotated one is set on every start rather
/// than detected); returns its id.
pub async fn register_webhook(
    reg: &Registry,
    hook: &WebhookRegistration,
    secret: &mlflow_client::Secret,
) -> anyhow::Result<String> {
    require_webhooks(reg)?;
    let c = reg.client();
    let existing = c.list_webhooks().await.context("cannot list MLflow webhooks")?;
    if let Some(w) = existing.iter().find(|w| w.name == hook.name && w.url == hook.url) {
        c.update_webhook_secret(&w.webhook_id, secret)
            .await
            .with_context(|| format!("cannot set the secret of MLflow webhook `{}` ({})", hook.name, w.webhook_id))?;
        return Ok(w.webhook_id.clone());
    }
    let w = c
        .create_webhook(&hook.name, &hook.url, &[WebhookEvent::alias_created()], secret)
        .await
        .with_context(|| format!("cannot create MLflow webhook `{}` for `{}`", hook.name, hook.url))?;
    Ok(w.webhook_id)
}

/// A running `serve`: its gateway address and the syncer (the loop and the tests drive both).
#[derive(Debug)]
pub struct Running {
    /// Where the gateway listens.
    pub addr: std::net::SocketAddr,
    /// The syncer.
    pub syncer: Arc<Syncer>,
    /// The gateway's state (its metrics, the serving instance).
    pub app: Arc<AppState>,
    triggers: mpsc::Sender<Trigger>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Tells the gateway to stop accepting and finish what it answers (graceful shutdown).
    drain: Arc<tokio::sync::Notify>,
}

/// How long a shutdown lets the gateway finish the requests it is answering: longer than any
/// one request can take ([`crate::gateway::LONGEST_REQUEST`]), so a request in flight is
/// never cut.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(crate::gateway::LONGEST_REQUEST.as_secs() + 15);

impl Running {
    /// Wakes the worker as a poll tick would (a sync already pending absorbs it).
    pub fn poll_now(&self) {
        let _ = self.triggers.try_send(Trigger::Poll);
    }

    /// A sender of triggers to the worker: what a signal handler (SIGHUP: [`Trigger::Retry`])
    /// or a test wakes it with.
    pub fn triggers(&self) -> mpsc::Sender<Trigger> {
        self.triggers.clone()
    }

    /// Waits until the gateway task ends (an error, or never).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        if let Some(server) = self.tasks.pop() {
            server.await.context("the gateway task failed")?;
        }
        Ok(())
    }

    /// Shuts down now, as [`Running::run_until`] does on its signal.
    pub async fn stop(mut self) {
        if let Some(server) = self.tasks.pop() {
            self.shutdown(server).await;
        }
    }

    /// Serves until `signal` completes (or the gateway fails), then shuts down in order: no new
    /// sync starts and the one running is abandoned; the gateway stops accepting, closes idle
    /// connections and finishes the requests it is answering (at most [`DRAIN`]); the serving
    /// instance stops; and every process registry-sync started that still runs (a bake's
    /// `wasmtime wizer` group, an instance) is killed and reaped. The abandoned sync's staging
    /// dir is removed on the next start; `current` is untouched.
    pub async fn run_until(mut self, signal: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let Some(mut server) = self.tasks.pop() else { return Ok(()) };
        tokio::select! {
            ended = &mut server => return ended.context("the gateway task failed"),
            () = signal => {}
        }
        info!(target: events::SERVE, "shutting down: draining the gateway, then stopping every child process");
        self.shutdown(server).await;
        Ok(())
    }

    /// The shutdown of [`Running::run_until`]; `server` is the gateway's task.
    async fn shutdown(&mut self, mut server: tokio::task::JoinHandle<()>) {
        for worker in &self.tasks {
            worker.abort();
        }
        // Until each task is gone, it may still hold the syncer and with it the state dir's lock.
        for worker in self.tasks.drain(..) {
            let _ = worker.await;
        }
        self.drain.notify_one();
        if tokio::time::timeout(DRAIN, &mut server).await.is_err() {
            warn!(target: events::SERVE, seconds = DRAIN.as_secs(), "requests still open after the drain; closing them");
            server.abort();
            let _ = server.await;
        }
        if let Some(instance) = self.app.upstream().current() {
            instance.stop().await;
        }
        let reaped = self.syncer.children().reap_orphans();
        info!(target: events::SERVE, ?reaped, "stopped");
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
    for secret in [&cfg.webhook_secret, &cfg.webhook_previous_secret].into_iter().flatten() {
        crate::webhook::check_secret(secret)?;
    }
    if cfg.webhook_previous_secret.is_some() && cfg.webhook_secret.is_none() {
        anyhow::bail!("a previous webhook secret is set without a webhook secret: set `STACKTAG_WEBHOOK_SECRET` too");
    }
    let state = StateDir::open(&cfg.state_dir)?;
    // Before anything new starts: what a `kill -9` of an earlier run left running.
    let orphans = Children::in_state_dir(state.root())
        .with_context(|| format!("cannot create the pid records in `{}`", state.root().display()))?
        .reap_orphans();
    if !orphans.is_empty() {
        warn!(target: events::SERVE, ?orphans, "stopped processes an earlier run left behind");
    }
    let metrics = Arc::new(Metrics::new());
    let upstream = Arc::new(Upstream::new(metrics.clone()));
    let (tx, rx) = mpsc::channel(16);
    let receiver = Receiver::new(cfg.webhook_secret.clone(), &cfg.sync.registry.model, &cfg.alias)
        .with_previous_secret(cfg.webhook_previous_secret.clone());
    let app = Arc::new(
        AppState::new(upstream.clone(), metrics.clone(), receiver, tx.clone())?
            .with_web_demo(cfg.web_demo.clone())
            .with_trusted_keys(cfg.sync.registry.signing.trusted.to_pem()),
    );
    let syncer = Arc::new(Syncer::new(
        cfg.sync.clone(),
        &cfg.alias,
        state,
        cfg.deployers.clone(),
        upstream,
        app.http().clone(),
        metrics,
    )?);
    match syncer.restore().await {
        Ok(Some(m)) => info!(target: events::SERVE, version = %m.version, "serving version from `current`"),
        Ok(None) => {}
        Err(e) => warn!(target: events::SERVE, error = %e, "cannot serve `current`; waiting for the next sync"),
    }
    // Registration needs MLflow, serving does not: `current` is served already, and MLflow
    // being down at start-up only delays the webhook (polling covers promotions meanwhile).
    let mut tasks = Vec::new();
    if let (Some(hook), Some(secret)) = (&cfg.register_webhook, &cfg.webhook_secret) {
        require_webhooks(syncer.registry())?;
        let (syncer, hook, secret) = (syncer.clone(), hook.clone(), secret.clone());
        let metrics = app.metrics.clone();
        tasks.push(tokio::spawn(async move { keep_registering(&syncer, &hook, &secret, &metrics).await }));
    }
    let listener = cfg.listen.bind().await?;
    let addr = listener.local_addr()?;
    let router = gateway::app(app.clone());
    let worker = tokio::spawn(worker::run(syncer.clone(), rx, cfg.poll_interval));
    let drain = Arc::new(tokio::sync::Notify::new());
    let drained = drain.clone();
    let server = tokio::spawn(async move {
        let serving = axum::serve(listener, router).with_graceful_shutdown(async move { drained.notified().await });
        if let Err(e) = serving.await {
            warn!(target: events::SERVE, error = %e, "the gateway stopped");
        }
    });
    info!(target: events::SERVE, url = %format!("http://{addr}/"), alias = %cfg.alias, model = %cfg.sync.registry.model, "gateway listening");
    // The gateway last: `wait` waits on it.
    tasks.extend([worker, server]);
    Ok(Running { addr, syncer, app, triggers: tx, tasks, drain })
}

/// Registers the webhook, retrying with backoff (1 s doubling to 30 s) until MLflow takes it;
/// each failure is logged and counted (`stacktag_webhook_registration_failures_total`).
async fn keep_registering(
    syncer: &Syncer,
    hook: &WebhookRegistration,
    secret: &mlflow_client::Secret,
    metrics: &Metrics,
) {
    let mut delay = std::time::Duration::from_secs(1);
    for attempt in 1u32.. {
        match register_webhook(syncer.registry(), hook, secret).await {
            Ok(id) => {
                metrics.webhook_registered.set(1);
                info!(target: events::WEBHOOK, webhook_id = %id, name = %hook.name, url = %hook.url, attempt, "MLflow webhook registered");
                return;
            }
            Err(e) => {
                metrics.webhook_registration_failures.inc();
                warn!(
                    target: events::WEBHOOK,
                    error = %format!("{e:#}"),
                    attempt,
                    retry_in_s = delay.as_secs(),
                    "cannot register the MLflow webhook; polling covers promotions meanwhile"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(30));
            }
        }
    }
}
