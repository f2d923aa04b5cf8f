//! The trainer's side of the registry: it registers what it trained, and feeds the gate its
//! evaluation data. Every MLflow rule (aliases, tags, the gate's decision, rollback, verified
//! downloads) lives in [`model_registry`]; this module only runs those async calls to
//! completion for a batch tool, with evaluation data as a [`dataset::EvalSet`].

use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::Context;
use dataset::EvalSet;
use edge_classifier::Classifier;
use edge_classifier::api::ModelManifest;
use model_registry::gate::Scoring;
use model_registry::{GateOutcome, Provenance, Registered, Registry, RegistryConfig, Rollback};

/// The git commit this trainer was built from (`build.rs`), or `unknown` outside a checkout.
pub const GIT_COMMIT: &str = env!("STACKTAG_GIT_COMMIT");

/// A registry connection with blocking calls: a small current-thread runtime and the
/// registry's async client.
#[derive(Debug)]
pub struct Connection {
    runtime: tokio::runtime::Runtime,
    registry: Registry,
}

impl Connection {
    /// Builds the client (no request is sent yet).
    pub fn new(cfg: RegistryConfig) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the MLflow client's runtime")?;
        Ok(Self { runtime, registry: Registry::new(cfg)? })
    }

    /// Runs one future to completion.
    pub fn block<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The async client, for calls the registry does not wrap.
    pub fn client(&self) -> &mlflow_client::Client {
        self.registry.client()
    }

    /// The registered model's name.
    pub fn model(&self) -> &str {
        self.registry.model()
    }
}

/// What this trainer tags its runs with.
pub fn provenance() -> Provenance {
    Provenance { git_commit: GIT_COMMIT.to_owned(), trainer_version: env!("CARGO_PKG_VERSION").to_owned() }
}

/// Logs the bundle in `bundle_dir` as a run and registers it as the new `challenger`.
pub fn register(conn: &Connection, bundle_dir: &Path, manifest: &ModelManifest) -> anyhow::Result<Registered> {
    conn.block(model_registry::register(conn.registry(), bundle_dir, manifest, &provenance()))
}

/// Points `champion` back at the version it replaced.
pub fn rollback(conn: &Connection) -> anyhow::Result<Rollback> {
    conn.block(model_registry::rollback(conn.registry()))
}

/// The gate's settings with the data it scores on.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Labelled evaluation data, every path read in order.
    pub eval: Vec<PathBuf>,
    /// The rules and the version to gate.
    pub gate: model_registry::GateConfig,
}

/// Runs the gate on `cfg.gate.version` (or the `challenger` alias) with `cfg.eval`.
pub fn promote(conn: &Connection, cfg: &GateConfig) -> anyhow::Result<GateOutcome> {
    promote_on(conn, &cfg.gate, &EvalSet::read(&cfg.eval)?)
}

/// Runs the gate with evaluation data already read.
pub fn promote_on(conn: &Connection, gate: &model_registry::GateConfig, eval: &EvalSet) -> anyhow::Result<GateOutcome> {
    let score = |c: &Classifier| Ok(eval.score(c)?.evaluation);
    conn.block(model_registry::gate::promote(
        conn.registry(),
        gate,
        &Scoring { snapshot: eval.snapshot(), score: &score },
    ))
}
