//! The champion judged on what arrived: before `trainer retrain` trains on batches the
//! champion never saw, the champion answers them, and the figures are recorded twice: as an
//! MLflow run (everything, with the per-batch figures as an artifact) and as one tag on the
//! champion version ([`tags::ARRIVALS`], a small JSON [`Summary`]), which registry-sync reads
//! with every alias it resolves and exports as metrics, so an alert can fire when the world
//! moved while the model stood still.
//!
//! The figures are computed by the caller (the trainer owns the data); this module owns where
//! they go and the tag's format, for the writer and the reader.

use std::collections::BTreeMap;

use anyhow::Context;
use edge_classifier::api::Evaluation;
use mlflow_client::types::{Metric, ModelVersion, Param, Tag};
use serde::{Deserialize, Serialize};

use std::path::Path;

use crate::download::{Downloaded, download_verified};
use crate::names::{aliases, tags};
use crate::register::{Provenance, in_run};
use crate::registry::{Registry, aliased_version, registered_model};

/// The artifact of a judgement's run: the whole [`Arrivals`] as JSON.
pub const ARTIFACT: &str = "arrivals.json";

/// The champion's figures on the batches that arrived after the last one it trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrivals {
    /// The champion version judged.
    pub champion_version: String,
    /// The last batch it trained on (a file name); the batches judged are the ones after it.
    pub since_batch: String,
    /// Each batch judged, in arrival order.
    pub batches: Vec<BatchFigures>,
    /// Questions judged (rows with one of the champion's labels), over every batch.
    pub questions: u64,
    /// Accuracy, macro-F1, per-class figures and the confusion matrix over every batch.
    pub evaluation: Evaluation,
    /// Each label's share of the questions judged (their true labels).
    pub label_mix: BTreeMap<String, f64>,
    /// Each label's share of the questions the champion trained on.
    pub training_label_mix: BTreeMap<String, f64>,
    /// Of the features of the questions judged (each distinct feature of a question counted
    /// once, as the model weighs them), the share that no training question had.
    pub unseen_feature_share: f64,
}

/// One batch's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchFigures {
    /// The batch's file name.
    pub name: String,
    /// Questions judged in it.
    pub questions: u64,
    /// The champion's accuracy on them.
    pub accuracy: f64,
    /// Their unseen feature share.
    pub unseen_feature_share: f64,
    /// Each label's share of its questions.
    pub label_mix: BTreeMap<String, f64>,
}

/// What the champion version's [`tags::ARRIVALS`] tag holds: the headline figures of its last
/// judgement. One tag, so a reader never sees half of one judgement and half of another, and
/// small (Unity Catalog takes tag values up to 1,000 characters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Accuracy on the questions judged.
    pub accuracy: f64,
    /// Questions judged.
    pub questions: u64,
    /// Unseen feature share.
    pub unseen_feature_share: f64,
    /// Each label's share of the questions judged.
    pub label_mix: BTreeMap<String, f64>,
    /// Each label's share of the training questions.
    pub training_label_mix: BTreeMap<String, f64>,
    /// The newest batch judged.
    pub last_batch: String,
    /// When, Unix seconds.
    pub judged_at: i64,
    /// The run that holds the rest.
    pub run_id: String,
}

impl Arrivals {
    /// The share of questions the champion got right.
    pub fn accuracy(&self) -> f64 {
        self.evaluation.accuracy
    }
}

impl Summary {
    /// The summary `version` carries, if it was judged: `Ok(None)` without the tag, an error
    /// naming the version when the tag is not a summary (so a reader says so instead of
    /// exporting nothing silently).
    pub fn of(version: &ModelVersion) -> anyhow::Result<Option<Self>> {
        let Some(json) = version.tag(tags::ARRIVALS) else { return Ok(None) };
        serde_json::from_str(json).map(Some).with_context(|| {
            format!(
                "tag `{}` of version {} of `{}` is not an arrivals summary",
                tags::ARRIVALS,
                version.version,
                version.name
            )
        })
    }
}

/// The champion version, if the registered model has one, with its bundle downloaded into
/// `dest` and verified (signature included) as the gate verifies it: the one to judge.
pub async fn champion(reg: &Registry, dest: &Path) -> anyhow::Result<Option<(ModelVersion, Downloaded)>> {
    let Some(model) = registered_model(reg).await? else { return Ok(None) };
    let Some(version) = aliased_version(reg, &model, aliases::CHAMPION).await? else { return Ok(None) };
    let downloaded = download_verified(reg, &version, dest).await?;
    Ok(Some((version, downloaded)))
}

/// Logs `a` as a run in the registry's experiment and tags the champion version with its
/// [`Summary`]; returns the run id. The run is marked FAILED if any step fails, and the tag
/// is written last, so a champion's tag always points at a complete run.
pub async fn record(reg: &Registry, a: &Arrivals, from: &Provenance) -> anyhow::Result<String> {
    let c = reg.client();
    let last = a.batches.last().map_or(a.since_batch.as_str(), |b| b.name.as_str());
    let run_tags = vec![
        Tag::new(tags::GIT_COMMIT, &from.git_commit),
        Tag::new(tags::TRAINER_VERSION, &from.trainer_version),
        Tag::new(tags::RUN_KIND, "arrivals"),
        Tag::new(tags::ARRIVALS_VERSION, &a.champion_version),
        Tag::new("mlflow.source.name", "stacktag-trainer"),
        Tag::new("mlflow.source.type", "LOCAL"),
    ];
    let run_name = format!("arrivals-v{}-{}", a.champion_version, last.trim_end_matches(".parquet"));
    let run_id = in_run(reg, &run_name, &run_tags, async |_, run| {
        let now = mlflow_client::now_ms();
        c.log_batch(&run.run_id, &metrics(a, now), &params(a, last), &[])
            .await
            .context("cannot log the judgement's params and metrics")?;
        let json = serde_json::to_vec_pretty(a).context("cannot encode the judgement")?;
        c.upload_artifact(&run.artifact_uri, ARTIFACT, json)
            .await
            .with_context(|| format!("cannot upload `{ARTIFACT}`"))?;
        anyhow::Ok(run.run_id.clone())
    })
    .await?;
    let summary = Summary {
        accuracy: a.accuracy(),
        questions: a.questions,
        unseen_feature_share: a.unseen_feature_share,
        label_mix: a.label_mix.clone(),
        training_label_mix: a.training_label_mix.clone(),
        last_batch: last.to_owned(),
        judged_at: now_unix(),
        run_id: run_id.clone(),
    };
    let value = serde_json::to_string(&summary).context("cannot encode the judgement's summary")?;
    c.set_model_version_tag(reg.model(), &a.champion_version, tags::ARRIVALS, &value).await.with_context(|| {
        format!("cannot tag champion version {} of `{}` with its judgement", a.champion_version, reg.model())
    })?;
    Ok(run_id)
}

fn metrics(a: &Arrivals, now: i64) -> Vec<Metric> {
    let mut out = vec![
        Metric::new("arrivals_accuracy", a.accuracy(), now),
        Metric::new("arrivals_macro_f1", a.evaluation.macro_f1, now),
        Metric::new("arrivals_questions", a.questions as f64, now),
        Metric::new("arrivals_unseen_feature_share", a.unseen_feature_share, now),
    ];
    for (label, share) in &a.label_mix {
        out.push(Metric::new(format!("arrivals_label_share_{label}"), *share, now));
    }
    for (label, share) in &a.training_label_mix {
        out.push(Metric::new(format!("training_label_share_{label}"), *share, now));
    }
    for c in &a.evaluation.per_class {
        out.push(Metric::new(format!("arrivals_recall_{}", c.label), c.recall, now));
    }
    // Per batch, as steps in arrival order: MLflow's chart of a metric over steps shows the
    // batches one after another.
    for (step, b) in a.batches.iter().enumerate() {
        out.push(Metric { step: step as i64, ..Metric::new("batch_accuracy", b.accuracy, now) });
        out.push(Metric { step: step as i64, ..Metric::new("batch_questions", b.questions as f64, now) });
        out.push(Metric {
            step: step as i64,
            ..Metric::new("batch_unseen_feature_share", b.unseen_feature_share, now)
        });
        for (label, share) in &b.label_mix {
            out.push(Metric { step: step as i64, ..Metric::new(format!("batch_label_share_{label}"), *share, now) });
        }
    }
    out
}

fn params(a: &Arrivals, last: &str) -> Vec<Param> {
    vec![
        Param::new("champion_version", &a.champion_version),
        Param::new("since_batch", &a.since_batch),
        Param::new("first_batch", a.batches.first().map_or("", |b| b.name.as_str())),
        Param::new("last_batch", last),
        Param::new("batches", a.batches.len().to_string()),
    ]
}

fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_fits_in_a_unity_catalog_tag_value() {
        let mix: BTreeMap<String, f64> = ["csharp", "java", "javascript", "python"]
            .iter()
            .map(|l| ((*l).to_owned(), 0.123_456_789_012_345_67))
            .collect();
        let s = Summary {
            accuracy: 0.812_345_678_901_234_5,
            questions: 1_234_567,
            unseen_feature_share: 0.098_765_432_109_876_5,
            label_mix: mix.clone(),
            training_label_mix: mix,
            last_batch: "batch-20261203T101112Z-api.parquet".into(),
            judged_at: 1_796_000_000,
            run_id: "0123456789abcdef0123456789abcdef".into(),
        };
        let json = serde_json::to_string(&s).expect("json");
        assert!(json.len() < 1000, "{} characters: {json}", json.len());
    }
}
