//! One sync at a time against one state dir: re-read the alias, build the version (or reuse
//! its kept model dir), deploy it through every deployer in order (local blue/green behind the
//! gateway, then the `github` dispatch), and only then move `current`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mlflow_client::types::ModelVersion;
use model_registry::Registry;
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::children::Children;
use crate::config::{Deployers, Selector, SyncConfig};
use crate::error::SyncError;
use crate::events;
use crate::github::{self, GithubConfig};
use crate::instance::{Instance, Upstream};
use crate::metrics::Metrics;
use crate::prepare;
use crate::state::{DeployedModel, StateDir, WASM_FILE};

/// How long the old instance may take to finish its in-flight requests after a swap: longer
/// than any one request can hold it.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(crate::gateway::LONGEST_REQUEST.as_secs() + 5);

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Nothing to serve yet: the registered model or its alias does not exist (a fresh
    /// registry, before the first promotion). Not a failure: no metric counts it.
    NothingYet {
        /// Which of the two is missing.
        reason: String,
    },
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
    deployers: Deployers,
    github_http: Option<reqwest::Client>,
    upstream: Arc<Upstream>,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    // The version every deployer has taken (what `current` points at): a sync whose alias
    // names it has nothing to do. A failed deployer leaves it, so the next poll retries.
    deployed: std::sync::Mutex<Option<String>>,
    // The last version that failed for a reason of its own: version, outcome label, reason.
    // Not tried again while the alias names it (the next promotion or a restart clears it).
    bad: std::sync::Mutex<Option<(String, &'static str, String)>>,
    one_at_a_time: Mutex<()>,
}

impl Syncer {
    /// A syncer for `alias`, deploying through `deployers` (the local one into `upstream`,
    /// health-checking new instances with `http`).
    pub fn new(
        cfg: SyncConfig,
        alias: &str,
        state: StateDir,
        deployers: Deployers,
        upstream: Arc<Upstream>,
        http: reqwest::Client,
        metrics: Arc<Metrics>,
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
            deployers,
            github_http,
            upstream,
            http,
            metrics,
            deployed: std::sync::Mutex::new(None),
            bad: std::sync::Mutex::new(None),
            one_at_a_time: Mutex::new(()),
        })
    }

    /// The registry it reads.
    pub fn registry(&self) -> &Registry {
        &self.reg
    }

    /// The processes it started and has not stopped yet (recorded in the state dir).
    pub fn children(&self) -> &Children {
        &self.children
    }

    /// Every deployer took `version`: remembered, and exported as `stacktag_deployed_version`
    /// (one place, so the gauge never says other than what the syncer knows).
    fn set_deployed(&self, version: &str) {
        self.metrics.deployed_version.set(Metrics::version_value(version));
        *self.deployed.lock().unwrap_or_else(|p| p.into_inner()) = Some(version.to_owned());
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
        self.set_deployed(&model.version);
        self.metrics.restored();
        Ok(Some(model))
    }

    /// Re-reads the alias and, if it moved, brings its version to serving. On failure the
    /// serving model stays; an event and `stacktag_sync_total{outcome}` name the cause.
    pub async fn sync(&self) -> Result<SyncOutcome, SyncError> {
        let _guard = self.one_at_a_time.lock().await;
        let start = Instant::now();
        let result = self.sync_locked().await;
        let seconds = start.elapsed().as_secs_f64();
        match &result {
            Ok(SyncOutcome::Unchanged { .. }) => {}
            Ok(SyncOutcome::NothingYet { reason }) => {
                self.metrics.nothing_yet();
                debug!(target: events::SYNC, %reason, "nothing to serve yet");
            }
            Ok(SyncOutcome::Deployed { model, reused }) => {
                self.metrics.sync_succeeded(seconds);
                info!(target: events::SYNC, version = %model.version, run_id = %model.run_id, reused, seconds, "version serves");
            }
            Err(e) => {
                self.metrics.sync_failed(e.outcome(), seconds);
                warn!(target: events::SYNC, outcome = e.outcome(), error = %e, seconds, "sync failed, the serving model stays");
            }
        }
        result
    }

    async fn sync_locked(&self) -> Result<SyncOutcome, SyncError> {
        let mv = match prepare::resolve(&self.reg, &Selector::Alias(self.alias.clone())).await {
            Ok(mv) => mv,
            Err(e) => {
                return match self.nothing_to_serve().await {
                    Some(reason) => Ok(SyncOutcome::NothingYet { reason }),
                    None => Err(e),
                };
            }
        };
        let version = mv.version.clone();
        self.metrics.champion_version.set(Metrics::version_value(&version));
        // The champion's judgement on the newest data rides on the alias read: the trainer
        // tags it before a retrain, whether or not the alias then moves.
        match model_registry::arrivals::Summary::of(&mv) {
            Ok(summary) => self.metrics.set_arrivals(&version, summary.as_ref()),
            Err(e) => {
                self.metrics.set_arrivals(&version, None);
                warn!(target: events::SYNC, version, error = %format!("{e:#}"), "the champion's judgement is not readable");
            }
        }
        if self.deployed_version().as_deref() == Some(version.as_str()) {
            return Ok(SyncOutcome::Unchanged { version });
        }
        if let Some(known) = self.known_bad(&version) {
            return Err(known);
        }
        let result = self.build_and_deploy(&mv).await;
        if let Err(e) = &result
            && e.is_the_versions()
        {
            *self.bad.lock().unwrap_or_else(|p| p.into_inner()) = Some((version, e.outcome(), e.to_string()));
        }
        result
    }

    /// Forgets the version remembered as bad, so the next sync tries it again (an operator's
    /// SIGHUP, through [`crate::Trigger::Retry`]); returns it.
    pub fn forget_known_bad(&self) -> Option<String> {
        let forgotten = self.bad.lock().unwrap_or_else(|p| p.into_inner()).take().map(|(v, ..)| v);
        if let Some(version) = &forgotten {
            info!(target: events::SYNC, %version, "an operator asked to try again the version known bad");
        }
        forgotten
    }

    /// The failure remembered for `version`, if it failed before for a reason of its own.
    fn known_bad(&self, version: &str) -> Option<SyncError> {
        let bad = self.bad.lock().unwrap_or_else(|p| p.into_inner());
        let (v, outcome, reason) = bad.as_ref().filter(|(v, ..)| v == version)?;
        Some(SyncError::KnownBad { version: v.clone(), outcome, reason: reason.clone() })
    }

    async fn build_and_deploy(&self, mv: &ModelVersion) -> Result<SyncOutcome, SyncError> {
        let version = mv.version.clone();
        // A dir built before (a rollback, or a crash after the build) is complete, since it only
        // gets its name by a rename after the bake; it is checked again all the same (a disk
        // can rot, a hand can edit), and rebuilt if it fails.
        let kept = match self.state.model(&version) {
            Some((dir, model)) => match self.state.verify_model(&dir) {
                Ok(()) => Some((dir, model)),
                Err(cause) => {
                    warn!(target: events::SYNC, version, error = %format!("{cause:#}"), "a kept model dir fails its check; building it again");
                    None
                }
            },
            None => None,
        };
        let (dir, model, reused) = match kept {
            Some((dir, model)) => (dir, model, true),
            None => {
                let staging = self.state.staging(&version).map_err(|cause| state_err(&version, cause))?;
                let model = prepare::prepare(&self.reg, &self.cfg, mv, staging.path(), &self.children).await?;
                let dir = self.state.commit(staging, &version).map_err(|cause| state_err(&version, cause))?;
                (dir, model, false)
            }
        };
        self.deploy(&dir.join(WASM_FILE), &model).await?;
        Ok(SyncOutcome::Deployed { model, reused })
    }

    /// Why the alias cannot resolve, when that is because nothing was promoted yet: MLflow
    /// answers a missing alias with the same error as a bad request, so the model is read to
    /// tell. `None` when the model and the alias exist (the failure is real).
    async fn nothing_to_serve(&self) -> Option<String> {
        let model = self.reg.model();
        match self.reg.client().get_registered_model(model).await {
            Err(e) if e.is_not_found() => Some(format!("no registered model `{model}` yet")),
            Ok(m) if m.alias(&self.alias).is_none() => Some(format!("`{model}` has no alias `{}` yet", self.alias)),
            _ => None,
        }
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
                warn!(target: events::SYNC, version, error = %state_err(&version, cause), "cannot move `current`");
            }
            self.set_deployed(&version);
        }
        if let Some(old) = old {
            drain(old).await;
        }
        result
    }

    /// Blue/green: start the new instance, health-check it, switch the gateway; returns the
    /// old instance, to drain. Nothing to do if `model` serves already (a retried sync).
    async fn deploy_local(&self, wasm: &Path, model: &DeployedModel) -> Result<Option<Arc<Instance>>, SyncError> {
        if self.upstream.current().is_some_and(|i| i.model.version == model.version) {
            return Ok(None);
        }
        let started = Instant::now();
        let next = Instance::start(&self.cfg.baker.wasmtime, wasm, model.clone(), &self.http, &self.children)
            .await
            .map_err(|reason| SyncError::Deploy { version: model.version.clone(), reason })?;
        // Most of a promotion's time: `wasmtime serve` compiles the baked component first.
        info!(target: events::STEP, version = %model.version, step = "instance", url = %next.url, seconds = started.elapsed().as_secs_f64(), "instance healthy, switching traffic");
        Ok(self.upstream.swap(Arc::new(next)))
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
        info!(target: events::STEP, version = %payload.version, step = "dispatch", repository = %gh.repository, event = github::EVENT_TYPE, sha256 = %payload.sha256, "announced to GitHub");
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
