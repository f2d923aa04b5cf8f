//! `stacktag up`: the loop, from the stack's start to the second model serving, then (unless
//! `once`) serving until stopped. Everything it starts stops when it returns.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use edge_classifier::api::Prediction;
use edge_classifier_bake::Baker;
use launcher::Service;
use mlflow_client::{ClientConfig, Secret};
use model_registry::{Registry, RegistryConfig, aliases};
use registry_sync::gateway::VERSION_HEADER;
use registry_sync::{Deployers, Running, ServeConfig, SyncConfig, WebhookRegistration};
use tokio::sync::watch;
use tracing::info;

use crate::config::{FIRST_BATCH_PER_LABEL, MODEL, UpConfig};
use crate::events;
use crate::load::Load;
use crate::report::{Answered, Report, Step};
use crate::scheduler::{Scheduler, Trained};

/// Tells the loop to stop (Ctrl-C, SIGTERM): it then stops everything it started and returns.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// A stop signal and the sender that raises it.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a stop is requested (never, if the sender is gone without one).
    pub async fn wait(&mut self) {
        while !*self.0.borrow() {
            if self.0.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Why the loop returned early.
#[derive(Debug, thiserror::Error)]
#[error("stopped (Ctrl-C or SIGTERM) before the loop finished")]
pub struct Interrupted;

/// What the loop started, stopped in reverse order however it ends.
#[derive(Default)]
struct Stack {
    mlflow: Option<Service>,
    sync: Option<Running>,
    prometheus: Option<Service>,
    scheduler: Option<Scheduler>,
}

impl Stack {
    async fn shutdown(mut self) {
        if let Some(s) = self.scheduler.take() {
            // A round under way finishes first (seconds); on a blocking thread.
            let _ = tokio::task::spawn_blocking(move || s.stop()).await;
        }
        if let Some(p) = self.prometheus.take() {
            let _ = tokio::task::spawn_blocking(move || drop(p)).await;
        }
        if let Some(r) = self.sync.take() {
            r.stop().await;
        }
        if let Some(m) = self.mlflow.take() {
            let _ = tokio::task::spawn_blocking(move || drop(m)).await;
        }
    }
}

/// Runs the loop on `cfg` until it has served the second model (and, unless `cfg.once`,
/// until `stop`); returns its report.
pub async fn up(cfg: &UpConfig, stop: Stop) -> anyhow::Result<Report> {
    cfg.check()?;
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("cannot create the state dir `{}`", cfg.state_dir.display()))?;
    let mut stack = Stack::default();
    let result = run(cfg, &mut stack, stop).await;
    stack.shutdown().await;
    result
}

/// Seconds since the stack started, and the steps so far.
struct Clock {
    started: Instant,
    steps: Vec<Step>,
}

impl Clock {
    fn mark(&mut self, what: String) {
        let at_seconds = (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        info!(target: events::LOOP, at_seconds, "{what}");
        self.steps.push(Step { at_seconds, what });
    }
}

async fn run(cfg: &UpConfig, stack: &mut Stack, mut stop: Stop) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?;
    let gateway = format!("http://127.0.0.1:{}", cfg.gateway_port);
    if launcher::http_ok(&format!("{gateway}/gateway/health")) {
        bail!("something already answers at `{gateway}`: stop it or set STACKTAG_GATEWAY_PORT");
    }
    let mut clock = Clock { started: Instant::now(), steps: Vec::new() };

    // 1. MLflow: the one named by MLFLOW_TRACKING_URI, one already on the port, or ours.
    let client = match &cfg.mlflow {
        Some(external) => external.clone(),
        None => {
            let url = format!("http://127.0.0.1:{}", cfg.mlflow_port);
            if !launcher::http_ok(&format!("{url}/health")) {
                let opts = launcher::mlflow::MlflowOptions {
                    bin: cfg.tools.mlflow.clone(),
                    dir: cfg.state("mlflow"),
                    port: cfg.mlflow_port,
                    basic_auth_admin_password: None,
                };
                let service = tokio::task::spawn_blocking(move || launcher::mlflow::start(&opts)).await??;
                stack.mlflow = Some(service);
            }
            ClientConfig::new(&url)?
        }
    };
    clock.mark(format!("MLflow up at {}", client.base_url));
    let registry = RegistryConfig::new(client, MODEL, MODEL, ["experiment", "registered model"])?
        .with_signing(loop_signing(&cfg.state("signing-key.pem"))?);
    let reg = Registry::new(registry.clone())?;
    let initial_champion = champion(&reg).await;

    // 2. registry-sync, in this process: webhook registered, polling as the fallback.
    let secret = webhook_secret(&cfg.state("webhook-secret"))?;
    let eval = dataset::EvalSet::read(&[cfg.test_csv()])?;
    let running = registry_sync::serve(ServeConfig {
        sync: SyncConfig {
            registry: registry.clone(),
            eval,
            tolerance: 0.05,
            baker: Baker { wasmtime: cfg.tools.wasmtime.clone(), generic: cfg.generic_component.clone() },
            bake_timeout: edge_classifier_bake::BAKE_TIMEOUT,
        },
        alias: aliases::CHAMPION.to_owned(),
        state_dir: cfg.state("sync"),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], cfg.gateway_port)).into(),
        poll_interval: cfg.poll_every,
        webhook_secret: Some(secret.clone()),
        webhook_previous_secret: None,
        register_webhook: Some(WebhookRegistration {
            name: "stacktag-registry-sync".into(),
            url: format!("{gateway}/webhooks/mlflow"),
        }),
        deployers: Deployers::local(),
        web_demo: cfg.web_demo.clone(),
    })
    .await?;
    stack.sync = Some(running);

    // 3. Prometheus scraping the gateway every 2 s, unless one already answers there.
    let prometheus = format!("http://127.0.0.1:{}", cfg.prometheus_port);
    let scraping = if launcher::http_ok(&format!("{prometheus}/-/ready")) {
        info!(target: events::LOOP, url = %prometheus, "something already answers there: not starting Prometheus");
        false
    } else {
        let opts = launcher::prometheus::PrometheusOptions {
            bin: cfg.tools.prometheus.clone(),
            shipped: cfg.repo.join("prometheus"),
            dir: cfg.state("prometheus"),
            port: cfg.prometheus_port,
            target: format!("127.0.0.1:{}", cfg.gateway_port),
            interval_s: 2,
        };
        stack.prometheus = Some(tokio::task::spawn_blocking(move || launcher::prometheus::start(&opts)).await??);
        true
    };
    clock.mark("registry-sync and Prometheus up".into());

    // 4. The training data in batches; the first lands in the inbox.
    let (batches, inbox) = (cfg.state("batches"), cfg.state("inbox"));
    if !batches.join("batch-0002.parquet").is_file() {
        let (train, out) = (cfg.train_csv(), batches.clone());
        let written =
            tokio::task::spawn_blocking(move || trainer::batches::split(&[train], &out, FIRST_BATCH_PER_LABEL, 1))
                .await??;
        for b in &written {
            info!(target: events::LOOP, batch = %b.path.display(), rows = b.rows, "split");
        }
    }
    std::fs::create_dir_all(&inbox).with_context(|| format!("cannot create `{}`", inbox.display()))?;
    if !inbox.join("batch-0001.parquet").is_file() {
        land(&batches, &inbox, "batch-0001.parquet")?;
        clock.mark(format!("landed batch-0001.parquet in {}", inbox.display()));
    }

    // 5. The scheduler: a retrain round every few seconds.
    stack.scheduler = Some(Scheduler::start(registry.clone(), inbox.clone(), cfg.test_csv(), cfg.retrain_every)?);
    let running = stack.sync.as_ref().context("registry-sync is not running")?;
    let scheduler = stack.scheduler.as_ref().context("the scheduler is not running")?;
    let v1 = match wait_outcome(&reg, running, scheduler, None, None, "the first model", cfg.serve_timeout, &mut stop)
        .await?
    {
        Outcome::Serves(v) => v,
        Outcome::Rejected(t) => bail!("the first model, version {}, was not promoted: {}", t.version, t.gate),
    };
    clock.mark(format!("version {v1} serves"));
    if scraping {
        wait_scraped(&http, &prometheus, &v1, &mut stop).await?;
    }

    // 6. The next batch lands while a client classifies through the gateway: the rest of the
    // 16k set, or a dump's questions.
    let (mut load_requests, mut failed_requests, mut v2, mut rejected) = (0, 0, None, None);
    let landed = match &cfg.dump {
        None => inbox.join("batch-0002.parquet").is_file(),
        Some(_) => has_dump_batch(&inbox)?,
    };
    if !landed {
        let trained_before = scheduler.rounds().last_trained.map(|t| t.version);
        let load = Load::start(http.clone(), &gateway);
        let what = match &cfg.dump {
            None => {
                land(&batches, &inbox, "batch-0002.parquet")?;
                "batch-0002.parquet".to_owned()
            }
            Some(dump) => land_dump(dump, &inbox, &cfg.test_csv()).await?,
        };
        clock.mark(format!("landed {what} in {}, under load", inbox.display()));
        let what = "the model trained on the new batch";
        let outcome =
            wait_outcome(&reg, running, scheduler, Some(&v1), trained_before, what, cfg.serve_timeout, &mut stop).await;
        let (ok, failed) = load.stop().await;
        info!(target: events::LOOP, answered = ok, failed, "load through the gateway during the swap");
        (load_requests, failed_requests) = (ok + failed, failed);
        match outcome? {
            Outcome::Serves(served) => {
                clock.mark(format!("version {served} serves"));
                if scraping {
                    wait_scraped(&http, &prometheus, &served, &mut stop).await?;
                }
                v2 = Some(served);
            }
            Outcome::Rejected(t) => {
                clock.mark(format!("version {} was not promoted; version {v1} serves on: {}", t.version, t.gate));
                rejected = Some(t.gate);
            }
        }
    } else {
        // Every batch is in already: the scheduler's first round says there is nothing to do.
        let deadline = Instant::now() + Duration::from_secs(120);
        let reason = loop {
            if let Some(reason) = scheduler.rounds().last_skip {
                break reason;
            }
            if Instant::now() > deadline {
                bail!("the scheduler never finished a round within 120 s");
            }
            pause(&mut stop, Duration::from_millis(200)).await?;
        };
        clock.mark(format!("every batch is in the inbox already; nothing to do: {reason}"));
    }
    let judged = scheduler.rounds().last_trained.map(|t| t.judged);
    let loop_seconds = (clock.started.elapsed().as_secs_f64() * 10.0).round() / 10.0;

    // 7. What serves now: real test questions through the gateway.
    let questions = ask(&http, &gateway, &cfg.test_csv()).await?;
    for q in &questions {
        info!(target: events::LOOP, truth = %q.truth, label = %q.label, probability = q.probability, version = q.version.as_deref().unwrap_or("?"), "{}", q.excerpt);
    }
    let prometheus_model_versions = if scraping { scraped_versions(&http, &prometheus).await? } else { Vec::new() };
    info!(target: events::LOOP, url = %format!("{gateway}/demo/"), "web demo{}", if cfg.web_demo.is_some() { "" } else { " (not built: scripts/loop.sh --web-demo)" });
    info!(target: events::LOOP, url = %gateway, "gateway: POST /classify, GET /model, GET /health, GET /metrics");
    info!(target: events::LOOP, url = %reg.config().client.base_url, "MLflow UI");
    if scraping {
        info!(target: events::LOOP, url = %prometheus, "Prometheus");
    }

    let mut versions_promoted = Vec::new();
    if initial_champion.as_deref() != Some(v1.as_str()) {
        versions_promoted.push(v1.clone());
    }
    versions_promoted.extend(v2);
    if !cfg.once {
        info!(target: events::LOOP, inbox = %inbox.display(), "serving until Ctrl-C; drop more batches into the inbox and the scheduler picks them up");
        stop.wait().await;
    }
    Ok(Report {
        champion_version: champion(&reg).await,
        served_version: running.app.upstream().current().map(|i| i.model.version.clone()),
        versions_promoted,
        load_requests,
        failed_requests,
        loop_seconds,
        prometheus_model_versions,
        state_dir: cfg.state_dir.clone(),
        steps: clock.steps,
        questions,
        judged,
        rejected,
    })
}

/// Sleeps, unless a stop comes first.
async fn pause(stop: &mut Stop, d: Duration) -> Result<(), Interrupted> {
    if stop.requested() {
        return Err(Interrupted);
    }
    tokio::select! {
        () = tokio::time::sleep(d) => Ok(()),
        () = stop.wait() => Err(Interrupted),
    }
}

/// The version `champion` points at, if any.
async fn champion(reg: &Registry) -> Option<String> {
    reg.client().get_model_version_by_alias(reg.model(), aliases::CHAMPION).await.ok().map(|v| v.version)
}

/// How the round after a landing ended.
enum Outcome {
    /// A new champion serves.
    Serves(String),
    /// The gate kept the champion.
    Rejected(Trained),
}

/// Until a champion other than `previous` is set and the gateway serves it, or the scheduler
/// trained a model after `trained_before` that the gate did not promote.
#[allow(clippy::too_many_arguments)] // each is one thing the wait reads; a struct would only rename them
async fn wait_outcome(
    reg: &Registry,
    running: &Running,
    scheduler: &Scheduler,
    previous: Option<&str>,
    trained_before: Option<String>,
    what: &str,
    timeout: Duration,
    stop: &mut Stop,
) -> anyhow::Result<Outcome> {
    let deadline = Instant::now() + timeout;
    loop {
        let champion = champion(reg).await;
        let served = running.app.upstream().current().map(|i| i.model.version.clone());
        if let Some(c) = &champion
            && served.as_ref() == Some(c)
            && previous != Some(c.as_str())
        {
            return Ok(Outcome::Serves(c.clone()));
        }
        if let Some(t) = scheduler.rounds().last_trained
            && Some(&t.version) != trained_before.as_ref()
            && !t.promoted
        {
            return Ok(Outcome::Rejected(t));
        }
        if Instant::now() > deadline {
            bail!(
                "{what} did not reach the gateway within {timeout:?} (champion: {}, served: {}); the scheduler's \
                 and registry-sync's events above say why",
                champion.as_deref().unwrap_or("none"),
                served.as_deref().unwrap_or("none")
            );
        }
        pause(stop, Duration::from_millis(200)).await?;
    }
}

/// Whether a dump's batches are in the inbox (the harvest names them `batch-<time>-dump…`).
fn has_dump_batch(inbox: &Path) -> anyhow::Result<bool> {
    Ok(std::fs::read_dir(inbox)
        .with_context(|| format!("cannot list `{}`", inbox.display()))?
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_str().is_some_and(|n| n.contains("-dump") && n.ends_with(".parquet"))))
}

/// Lands the dump's questions in the inbox as `trainer fetch dump` does (labelled by their
/// tags; none the inbox or the test set has); says what landed.
async fn land_dump(dump: &Path, inbox: &Path, eval: &Path) -> anyhow::Result<String> {
    let location = inbox.to_str().with_context(|| format!("the inbox `{}` is not UTF-8", inbox.display()))?;
    let store = harvest::inbox::Inbox::open(location, std::iter::empty::<(String, String)>())?;
    let eval_texts = dataset::read_texts(&[eval.to_path_buf()], "evaluation")?;
    let file = std::fs::File::open(dump).with_context(|| format!("cannot open the dump `{}`", dump.display()))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let report = harvest::fetch::from_dump(file, &store, &eval_texts, harvest::fetch::DEFAULT_BATCH_ROWS, now)
        .await
        .with_context(|| format!("cannot read the dump `{}`", dump.display()))?;
    if let Some(why) = report.failure() {
        bail!("the dump `{}` stopped early: {why}", dump.display());
    }
    let rows: u64 = report.labels.values().sum();
    anyhow::ensure!(rows > 0, "the dump `{}` holds no new question with one language tag", dump.display());
    Ok(format!("{rows} questions of the dump ({})", report.written.join(", ")))
}

/// Prometheus's answer to an instant query: the label sets of its series.
async fn query(
    http: &reqwest::Client,
    prometheus: &str,
    q: &str,
) -> anyhow::Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    #[derive(serde::Deserialize)]
    struct Answer {
        data: Data,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        result: Vec<Series>,
    }
    #[derive(serde::Deserialize)]
    struct Series {
        metric: serde_json::Map<String, serde_json::Value>,
    }
    let answer: Answer = http
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("Prometheus at `{prometheus}` did not answer `{q}`"))?
        .json()
        .await?;
    Ok(answer.data.result.into_iter().map(|s| s.metric).collect())
}

/// Until Prometheus has stored `stacktag_model_info` for `version`.
async fn wait_scraped(http: &reqwest::Client, prometheus: &str, version: &str, stop: &mut Stop) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let q = format!("stacktag_model_info{{version=\"{version}\"}}");
    while !query(http, prometheus, &q).await.is_ok_and(|r| !r.is_empty()) {
        if Instant::now() > deadline {
            bail!("Prometheus at `{prometheus}` never scraped `stacktag_model_info` for version {version}");
        }
        pause(stop, Duration::from_millis(500)).await?;
    }
    Ok(())
}

/// Every version Prometheus scraped `stacktag_model_info` for in the last hour, sorted.
async fn scraped_versions(http: &reqwest::Client, prometheus: &str) -> anyhow::Result<Vec<String>> {
    let q = "count by (version) (count_over_time(stacktag_model_info[1h]))";
    let mut versions: Vec<String> = query(http, prometheus, q)
        .await?
        .into_iter()
        .filter_map(|m| m.get("version")?.as_str().map(str::to_owned))
        .collect();
    versions.sort();
    Ok(versions)
}

/// Copies a batch into the inbox under a name the trainer does not read, then renames it
/// into place, so a round never reads half a batch.
fn land(batches: &Path, inbox: &Path, name: &str) -> anyhow::Result<()> {
    let landing = inbox.join(format!(".{name}.landing"));
    std::fs::copy(batches.join(name), &landing)
        .with_context(|| format!("cannot copy `{name}` into `{}`", inbox.display()))?;
    std::fs::rename(&landing, inbox.join(name)).with_context(|| format!("cannot land `{name}`"))?;
    Ok(())
}

/// The webhook's signing secret, made once per state dir (owner-only, written whole or not at
/// all) and reused.
fn webhook_secret(path: &Path) -> anyhow::Result<Secret> {
    let secret = launcher::durable::kept_secret(path, |bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
        .with_context(|| format!("cannot keep the webhook secret in `{}`", path.display()))?;
    Ok(Secret::new(secret))
}

/// The loop signs what it trains and serves only what it signed, as production does with a CI
/// secret and configured public keys: its key is made once and kept in the state dir
/// (owner-only), like its other secrets.
fn loop_signing(path: &Path) -> anyhow::Result<model_registry::Signing> {
    use model_registry::signing::{PrivateKey, TrustedKeys};
    let key = match std::fs::read_to_string(path) {
        Ok(pem) => {
            PrivateKey::from_pem(&pem).with_context(|| format!("the loop's signing key `{}`", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKey::generate();
            launcher::durable::write(path, key.to_pem().as_bytes(), 0o600)
                .with_context(|| format!("cannot keep the loop's signing key in `{}`", path.display()))?;
            key
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    };
    let trusted = TrustedKeys::from_keys([key.public_key().clone()]);
    let signing = model_registry::Signing {
        key: Some(std::sync::Arc::new(key)),
        signer: Some("stacktag loop".into()),
        trusted,
        required: true,
    };
    signing.checked()
}

/// The first question of each label in the test set, classified through the gateway.
async fn ask(http: &reqwest::Client, gateway: &str, test: &Path) -> anyhow::Result<Vec<Answered>> {
    let path: PathBuf = test.to_owned();
    let rows = tokio::task::spawn_blocking(move || dataset::read_sources(&[path], "test")).await??;
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for row in rows.iter().flat_map(|b| &b.rows) {
        let (Some(label), dataset::RawText::Text(text)) = (&row.label, &row.text) else { continue };
        if !seen.insert(label.clone()) {
            continue;
        }
        let answer = http
            .post(format!("{gateway}/classify"))
            .header("content-type", "text/plain")
            .body(text.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("classifying a test question through the gateway")?;
        let version = answer.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let p: Prediction = answer.json().await?;
        let probability = p.probabilities.iter().find(|l| l.label == p.label).map_or(0.0, |l| l.probability);
        let excerpt: String = text.chars().take(70).map(|c| if c.is_control() { ' ' } else { c }).collect();
        out.push(Answered { truth: label.clone(), label: p.label, probability, version, excerpt });
    }
    Ok(out)
}
