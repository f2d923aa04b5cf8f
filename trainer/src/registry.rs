//! The trainer's side of MLflow: `trainer train --register` logs a run (params, metrics, tags,
//! the whole bundle as artifacts) and registers it as a new model version with the alias
//! `challenger`; the gate ([`crate::gate`]) reads versions back and verifies them.
//!
//! MLflow calls are async ([`mlflow_client`]); the trainer is a batch tool, so a [`Registry`]
//! owns a small current-thread runtime and offers blocking calls.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use edge_classifier::Classifier;
use edge_classifier::api::{ModelManifest, files};
use mlflow_client::types::{Metric, ModelVersion, Param, RunStatus, Tag};
use mlflow_client::{Client, ClientConfig, env_vars as mlflow_env};

use crate::bundle;

/// The aliases the registry uses.
pub mod aliases {
    /// The latest registered version, waiting for the gate.
    pub const CHALLENGER: &str = "challenger";
    /// The version that serves.
    pub const CHAMPION: &str = "champion";
}

/// Tag keys Stacktag writes on runs and model versions (values are strings).
pub mod tags {
    /// sha256 of the training data snapshot (run and version).
    pub const DATA_SNAPSHOT: &str = "stacktag.data_snapshot";
    /// The trainer's crate version (run and version).
    pub const TRAINER_VERSION: &str = "stacktag.trainer_version";
    /// The git commit the trainer was built from, MLflow's own key (run).
    pub const GIT_COMMIT: &str = "mlflow.source.git.commit";
    /// Gate: `promoted`, `promoted_first`, `forced`, `rejected` or `rejected_invalid`.
    pub const DECISION: &str = "stacktag.gate.decision";
    /// Gate: the metric compared, `accuracy` or `macro_f1`.
    pub const METRIC: &str = "stacktag.gate.metric";
    /// Gate: the margin the challenger had to beat the champion by.
    pub const MARGIN: &str = "stacktag.gate.margin";
    /// Gate: the challenger's score on the evaluation set (`none` if it could not be scored).
    pub const CHALLENGER_SCORE: &str = "stacktag.gate.challenger_score";
    /// Gate: the champion's score on the same set (`none` without a valid champion).
    pub const CHAMPION_SCORE: &str = "stacktag.gate.champion_score";
    /// Gate: the champion version compared with (`none` without one).
    pub const CHAMPION_VERSION: &str = "stacktag.gate.champion_version";
    /// Gate: `true` when `--force` decided.
    pub const FORCED: &str = "stacktag.gate.forced";
    /// Gate: the decision in words.
    pub const REASON: &str = "stacktag.gate.reason";
    /// Gate: sha256 of the evaluation data.
    pub const EVAL_SNAPSHOT: &str = "stacktag.gate.eval_snapshot";
    /// Gate: RFC 3339 time of the decision.
    pub const DECIDED_AT: &str = "stacktag.gate.decided_at";
    /// On a promoted version: the champion it replaced (`none` for the first), which
    /// `trainer rollback` returns to.
    pub const PREVIOUS_CHAMPION: &str = "stacktag.previous_champion";
    /// On a version rolled back from: `rolled back to version N at T`.
    pub const ROLLED_BACK: &str = "stacktag.rollback";
    /// On the version rolled back to: `restored from version N at T`.
    pub const RESTORED: &str = "stacktag.restored";
}

/// The artifact directory that holds the bundle inside a run (and the version's `source`).
pub const BUNDLE_ARTIFACT_DIR: &str = "bundle";

/// Where the registry is and which names to use (shared by every registry command).
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// MLflow tracking server: an http(s) URL, or `databricks` (with `DATABRICKS_HOST` and
    /// `DATABRICKS_TOKEN`). Auth: `MLFLOW_TRACKING_TOKEN`, or `MLFLOW_TRACKING_USERNAME` and
    /// `MLFLOW_TRACKING_PASSWORD`.
    #[arg(long, env = mlflow_env::TRACKING_URI, hide_env_values = true)]
    pub tracking_uri: Option<String>,
    /// MLflow experiment that training runs are logged to.
    #[arg(long, default_value = "stacktag")]
    pub experiment: String,
    /// Registered model name.
    #[arg(long, default_value = "stacktag")]
    pub registered_model: String,
}

/// A resolved registry configuration.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The MLflow client's configuration (its `Debug` redacts secrets).
    pub client: ClientConfig,
    /// Experiment name.
    pub experiment: String,
    /// Registered model name.
    pub model: String,
    /// The trainer's git commit, for the run's tag (`unknown` outside a checkout).
    pub git_commit: String,
}

impl RegistryConfig {
    /// Resolves flags and MLflow's environment variables, once.
    pub fn resolve(args: &RegistryArgs) -> anyhow::Result<Self> {
        let uri = args.tracking_uri.clone().filter(|u| !u.trim().is_empty()).with_context(|| {
            format!("no MLflow server: pass `--tracking-uri URL` or set `{}`", mlflow_env::TRACKING_URI)
        })?;
        let client = ClientConfig::from_lookup(|name| {
            if name == mlflow_env::TRACKING_URI { Some(uri.clone()) } else { std::env::var(name).ok() }
        })
        .context("invalid MLflow configuration")?;
        for (flag, value) in [("--experiment", &args.experiment), ("--registered-model", &args.registered_model)] {
            if value.trim().is_empty() {
                anyhow::bail!("`{flag}` must not be empty");
            }
        }
        Ok(Self {
            client,
            experiment: args.experiment.trim().to_owned(),
            model: args.registered_model.trim().to_owned(),
            git_commit: current_git_commit(),
        })
    }
}

/// `git rev-parse HEAD` in the current directory, or `unknown`.
pub fn current_git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// A connection to the registry with blocking calls.
#[derive(Debug)]
pub struct Registry {
    runtime: tokio::runtime::Runtime,
    client: Client,
    cfg: RegistryConfig,
}

impl Registry {
    /// Builds the client (no request is sent yet).
    pub fn connect(cfg: RegistryConfig) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the MLflow client's runtime")?;
        let client = Client::new(cfg.client.clone())?;
        Ok(Self { runtime, client, cfg })
    }

    /// Runs one client future to completion.
    pub fn block<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The async client, for calls this module does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.cfg
    }

    /// The registered model's name.
    pub fn model(&self) -> &str {
        &self.cfg.model
    }
}

/// What `train --register` created.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Registered {
    /// Registered model name.
    pub model: String,
    /// The new version.
    pub version: String,
    /// The run that logged it.
    pub run_id: String,
    /// Its experiment.
    pub experiment_id: String,
    /// The version's `source` (`mlflow-artifacts:/…/artifacts/bundle`).
    pub source: String,
}

/// Logs the bundle at `bundle_dir` (described by `manifest`) as a run, registers it as a new
/// version and points `challenger` at it.
pub fn register(reg: &Registry, bundle_dir: &Path, manifest: &ModelManifest) -> anyhow::Result<Registered> {
    let c = reg.client();
    let cfg = reg.config();
    let experiment_id = reg
        .block(c.get_or_create_experiment(&cfg.experiment))
        .with_context(|| format!("cannot open MLflow experiment `{}`", cfg.experiment))?;
    let trainer_version = env!("CARGO_PKG_VERSION");
    let run_tags = vec![
        Tag::new(tags::GIT_COMMIT, &cfg.git_commit),
        Tag::new(tags::DATA_SNAPSHOT, &manifest.data_snapshot),
        Tag::new(tags::TRAINER_VERSION, trainer_version),
        Tag::new("mlflow.source.name", "stacktag-trainer"),
        Tag::new("mlflow.source.type", "LOCAL"),
    ];
    let run_name = format!("train-{}", short(&manifest.data_snapshot));
    let run = reg
        .block(c.create_run(&experiment_id, Some(&run_name), &run_tags))
        .with_context(|| format!("cannot start an MLflow run in experiment `{}`", cfg.experiment))?;
    let logged = (|| -> anyhow::Result<Registered> {
        let now = now_ms();
        reg.block(c.log_batch(&run.run_id, &metrics_of(manifest, now), &params_of(manifest), &[]))
            .context("cannot log the run's params and metrics")?;
        reg.block(c.upload_dir(&run.artifact_uri, BUNDLE_ARTIFACT_DIR, bundle_dir))
            .with_context(|| format!("cannot upload bundle `{}`", bundle_dir.display()))?;
        for name in [files::METRICS, files::CONFUSION_SVG] {
            let path = bundle_dir.join(name);
            if let Ok(bytes) = std::fs::read(&path) {
                reg.block(c.upload_artifact(&run.artifact_uri, name, bytes))
                    .with_context(|| format!("cannot upload `{}`", path.display()))?;
            }
        }
        let model = reg
            .block(c.get_or_create_registered_model(&cfg.model))
            .with_context(|| format!("cannot open registered model `{}`", cfg.model))?;
        let source = format!("{}/{BUNDLE_ARTIFACT_DIR}", run.artifact_uri.trim_end_matches('/'));
        let version_tags = [
            Tag::new(tags::DATA_SNAPSHOT, &manifest.data_snapshot),
            Tag::new(tags::TRAINER_VERSION, trainer_version),
            Tag::new("stacktag.accuracy", manifest.metrics.accuracy.to_string()),
            Tag::new("stacktag.macro_f1", manifest.metrics.macro_f1.to_string()),
        ];
        let version = reg
            .block(c.create_model_version(&model.name, &source, Some(&run.run_id), &version_tags))
            .with_context(|| format!("cannot register a version of `{}`", cfg.model))?;
        reg.block(c.set_alias(&model.name, aliases::CHALLENGER, &version.version))
            .with_context(|| format!("cannot point `{}` of `{}` at version {}", aliases::CHALLENGER, cfg.model, version.version))?;
        Ok(Registered {
            model: model.name,
            version: version.version,
            run_id: run.run_id.clone(),
            experiment_id: experiment_id.clone(),
            source,
        })
    })();
    let status = if logged.is_ok() { RunStatus::Finished } else { RunStatus::Failed };
    // Closing the run is best effort when logging already failed: that error is the news.
    let closed = reg.block(c.update_run(&run.run_id, status));
    match (logged, closed) {
        (Ok(r), Ok(())) => Ok(r),
        (Ok(_), Err(e)) => Err(anyhow::Error::from(e).context(format!("cannot finish MLflow run `{}`", run.run_id))),
        (Err(e), _) => Err(e.context(format!("MLflow run `{}` marked FAILED", run.run_id))),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// The run's metrics: accuracy, macro-F1, the evaluation size, and precision, recall, F1
/// and support per class (`f1_python`, ...).
pub fn metrics_of(manifest: &ModelManifest, timestamp: i64) -> Vec<Metric> {
    let m = &manifest.metrics;
    let mut out = vec![
        Metric::new("accuracy", m.accuracy, timestamp),
        Metric::new("macro_f1", m.macro_f1, timestamp),
        Metric::new("eval_examples", m.examples as f64, timestamp),
    ];
    for c in &m.per_class {
        let label: String = c.label.chars().map(|ch| if ch.is_ascii_alphanumeric() || ch == '-' { ch } else { '_' }).collect();
        out.push(Metric::new(format!("precision_{label}"), c.precision, timestamp));
        out.push(Metric::new(format!("recall_{label}"), c.recall, timestamp));
        out.push(Metric::new(format!("f1_{label}"), c.f1, timestamp));
        out.push(Metric::new(format!("support_{label}"), c.support as f64, timestamp));
    }
    out
}

/// The run's params: the manifest's training parameters, plus the model name and labels.
pub fn params_of(manifest: &ModelManifest) -> Vec<Param> {
    // MLflow keeps at most 6000 characters per param value.
    const MAX: usize = 6000;
    let mut map: BTreeMap<String, String> = manifest
        .training
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text.chars().take(MAX).collect())
        })
        .collect();
    map.insert("model_name".into(), manifest.model_name.clone());
    map.insert("labels".into(), manifest.labels.join(","));
    map.into_iter().map(|(k, v)| Param::new(k, v)).collect()
}

/// Why a downloaded bundle cannot be used. Never promoted.
#[derive(Debug, thiserror::Error)]
pub enum InvalidBundle {
    /// A file is missing or unreadable.
    #[error("bundle file `{file}` is missing or unreadable")]
    Missing {
        /// The file.
        file: String,
    },
    /// A file's size or sha256 differs from the manifest's.
    #[error("bundle file `{file}` does not match the manifest ({reason})")]
    Digest {
        /// The file.
        file: String,
        /// Size or sha256, expected and found.
        reason: String,
    },
    /// The manifest or the model does not load in the serving core.
    #[error("bundle does not load in the edge core: {0:#}")]
    Load(anyhow::Error),
    /// The registry holds no files for the version.
    #[error("no bundle files at `{source_uri}`: {reason}")]
    Empty {
        /// The version's source.
        source_uri: String,
        /// What the registry said.
        reason: String,
    },
}

/// Checks every file the manifest lists (size and sha256), then loads the bundle in the
/// serving core (which checks the format version and digests again, and runs the graph's
/// checks). The classifier it returns is the one the gate evaluates.
pub fn verify_bundle(dir: &Path) -> Result<Classifier, InvalidBundle> {
    let manifest_bytes = std::fs::read(dir.join(files::MANIFEST))
        .map_err(|_| InvalidBundle::Missing { file: files::MANIFEST.into() })?;
    let manifest: ModelManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| InvalidBundle::Load(anyhow::anyhow!("`{}` is invalid: {e}", files::MANIFEST)))?;
    if manifest.files.is_empty() {
        return Err(InvalidBundle::Load(anyhow::anyhow!("the manifest lists no file digests")));
    }
    for (name, expected) in &manifest.files {
        if Path::new(name).components().count() != 1 || name.contains("..") {
            return Err(InvalidBundle::Digest { file: name.clone(), reason: "not a plain file name".into() });
        }
        let bytes = std::fs::read(dir.join(name)).map_err(|_| InvalidBundle::Missing { file: name.clone() })?;
        let actual = bundle::digest(&bytes);
        if actual.bytes != expected.bytes {
            return Err(InvalidBundle::Digest {
                file: name.clone(),
                reason: format!("{} bytes, expected {}", actual.bytes, expected.bytes),
            });
        }
        if actual.sha256 != expected.sha256 {
            return Err(InvalidBundle::Digest {
                file: name.clone(),
                reason: format!("sha256 {}, expected {}", short(&actual.sha256), short(&expected.sha256)),
            });
        }
    }
    let read = edge_classifier::OwnedBundle::read_dir(dir).map_err(|e| InvalidBundle::Load(e.into()))?;
    Classifier::load(read.files()).map_err(|e| InvalidBundle::Load(e.into()))
}

/// A downloaded version: either a verified classifier or why it is unusable.
#[derive(Debug)]
pub struct Downloaded {
    /// Where the files are.
    pub dir: PathBuf,
    /// The verified classifier, or why not.
    pub classifier: Result<Classifier, InvalidBundle>,
}

/// Downloads `version`'s bundle into `dest` and verifies it. Transport failures are errors;
/// a bundle that is missing, incomplete or corrupt comes back as [`InvalidBundle`].
pub fn download_bundle(reg: &Registry, version: &ModelVersion, dest: &Path) -> anyhow::Result<Downloaded> {
    let fetched = reg.block(reg.client().download_dir(&version.source, dest));
    let classifier = match fetched {
        Ok(_) => verify_bundle(dest),
        // Missing files are the bundle's fault; anything else (unreachable, refused
        // credentials, a full disk) is not, and must not get a version rejected.
        Err(e) if e.is_not_found() || matches!(e, mlflow_client::Error::Artifact { .. }) => {
            Err(InvalidBundle::Empty { source_uri: version.source.clone(), reason: e.to_string() })
        }
        Err(e) => {
            return Err(anyhow::Error::from(e)
                .context(format!("cannot download version {} of `{}`", version.version, version.name)));
        }
    };
    Ok(Downloaded { dir: dest.to_path_buf(), classifier })
}
