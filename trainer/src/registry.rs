//! The trainer's side of the registry: it registers what it trained, and feeds the gate its
//! evaluation data. Every MLflow rule (aliases, tags, the gate's decision, rollback, verified
//! downloads) lives in [`model_registry`]; this module only runs those async calls to
//! completion for a batch tool, with evaluation data as a [`dataset::EvalSet`].

use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::Context;
use dataset::{Batch, EvalSet};
use edge_classifier::Classifier;
use edge_classifier::api::ModelManifest;
use model_registry::gate::Scoring;
use model_registry::{GateOutcome, Provenance, Registered, Registry, RegistryConfig, Rollback};
use serde::Serialize;

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

/// What judging the champion on the newest batches came to.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Judgement {
    /// It answered the batches after its training data; the figures are in the registry.
    Judged {
        /// The champion version.
        version: String,
        /// The run that holds the figures.
        run_id: String,
        /// The batches judged.
        batches: usize,
        /// Questions judged.
        questions: u64,
        /// Its accuracy on them.
        accuracy: f64,
        /// The share of their features it never saw.
        unseen_feature_share: f64,
    },
    /// Nothing was judged, and why (no champion, nothing new, a bundle that does not load).
    NotJudged {
        /// In words.
        reason: String,
    },
}

impl Judgement {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Judged { version, batches, questions, accuracy, unseen_feature_share, run_id } => format!(
                "champion version {version} on {questions} new questions ({batches} batch(es)): accuracy {accuracy:.4}, \
                 unseen features {:.1}% (run {run_id})",
                unseen_feature_share * 100.0
            ),
            Self::NotJudged { reason } => format!("champion not judged: {reason}"),
        }
    }
}

/// Judges the champion on the batches of `batches` after its training data
/// ([`crate::arrivals`]) and records the judgement (a run, and a tag on the champion that
/// registry-sync exports). A champion that cannot be judged is a [`Judgement::NotJudged`];
/// only a registry that cannot be reached or written is an error.
pub fn judge_champion(conn: &Connection, batches: &[Batch]) -> anyhow::Result<Judgement> {
    let not = |reason: String| Ok(Judgement::NotJudged { reason });
    let tmp =
        tempfile::Builder::new().prefix("stacktag-judge-").tempdir().context("cannot create a temporary directory")?;
    let Some((version, downloaded)) = conn.block(model_registry::arrivals::champion(conn.registry(), tmp.path()))?
    else {
        return not(format!("`{}` has no champion yet", conn.model()));
    };
    let classifier = match downloaded.classifier {
        Ok(c) => c,
        Err(e) => {
            return not(format!(
                "champion version {} is not a valid bundle: {}",
                version.version,
                edge_classifier::chain(&e)
            ));
        }
    };
    let arrivals = match crate::arrivals::judge(&classifier, &version.version, batches)? {
        Ok(a) => a,
        Err(not_judged) => return not(not_judged.reason),
    };
    let run_id = conn.block(model_registry::arrivals::record(conn.registry(), &arrivals, &provenance()))?;
    Ok(Judgement::Judged {
        version: version.version,
        run_id,
        batches: arrivals.batches.len(),
        questions: arrivals.questions,
        accuracy: arrivals.accuracy(),
        unseen_feature_share: arrivals.unseen_feature_share,
    })
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
