//! The champion judged on what arrived after its training data, before anything is trained on
//! it: its accuracy on the newest real questions, their label mix against the training data's,
//! and the share of their features the champion never saw ([`model_registry::arrivals`]
//! records them).
//!
//! What arrived is read from the data, not from a clock: the champion's manifest names the last
//! batch it trained on (`training.last_batch`, a file name), batches are read in name order
//! (the inbox names them by arrival), so the batches after that one are the ones it never saw.
//! All their rows are judged, the held-out ones too: the champion trained on none of them.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::Context;
use edge_classifier::{Classifier, argmax};
use model_registry::arrivals::{Arrivals, BatchFigures};
use serde::Serialize;

use crate::data::{self, Batch, Example};

/// The manifest's `training` key naming the last batch a bundle trained on.
pub const LAST_BATCH: &str = "last_batch";

/// The name a batch is known by across runs: its file name (the inbox's folder differs from
/// run to run, e.g. a runner's copy).
pub fn batch_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Why a champion was not judged.
#[derive(Debug, Clone, Serialize)]
pub struct NotJudged {
    /// In words.
    pub reason: String,
}

/// Judges `champion` (registry version `version`) on the batches of `batches` after the last
/// one it trained on; `Err(NotJudged)` when there are none, or they cannot be told apart.
pub fn judge(champion: &Classifier, version: &str, batches: &[Batch]) -> anyhow::Result<Result<Arrivals, NotJudged>> {
    let not = |reason: String| Ok(Err(NotJudged { reason }));
    let Some(since) = champion.manifest().training.get(LAST_BATCH).and_then(|v| v.as_str()) else {
        return not(format!(
            "version {version}'s bundle does not name the last batch it trained on (it predates `training.{LAST_BATCH}`)"
        ));
    };
    let Some(pos) = batches.iter().position(|b| batch_name(&b.path) == since) else {
        return not(format!(
            "`{since}`, the last batch version {version} trained on, is not in the training data: what arrived after it \
             cannot be told"
        ));
    };
    let (trained, arrived) = batches.split_at(pos + 1);
    if arrived.is_empty() {
        return not(format!("no batch arrived after `{since}`, the last one version {version} trained on"));
    }
    judge_between(champion, version, since, trained, arrived).map(Ok)
}

/// The figures of `champion` on `arrived`, against what it trained on (`trained`, whose
/// held-out rows it never trained on and which are left out here too).
pub fn judge_between(
    champion: &Classifier,
    version: &str,
    since: &str,
    trained: &[Batch],
    arrived: &[Batch],
) -> anyhow::Result<Arrivals> {
    let labels = &champion.manifest().labels;
    let training: Vec<Batch> = trained
        .iter()
        .map(|b| Batch {
            rows: b.rows.iter().filter(|r| !r.question_id.is_some_and(data::holdout::is_held_out)).cloned().collect(),
            ..b.clone()
        })
        .collect();
    let (train_rows, _) = data::labelled_rows(&training, labels);
    let mut seen = HashSet::new();
    for e in &train_rows {
        seen.extend(champion.features(&e.text).with_context(|| "cannot encode a training question")?);
    }

    let mut batches = Vec::new();
    let mut all_pairs = Vec::new();
    let (mut all_features, mut all_unseen) = (0u64, 0u64);
    for b in arrived {
        let (rows, _) = data::labelled_rows(std::slice::from_ref(b), labels);
        let mut pairs = Vec::with_capacity(rows.len());
        let (mut features, mut unseen) = (0u64, 0u64);
        for Example { label, text } in &rows {
            // Encoded once: the answer and the features read the same ids.
            let ids = champion
                .encode(text)
                .with_context(|| format!("cannot encode a question of `{}`", b.path.display()))?
                .ids;
            let p = champion
                .run(&ids)
                .with_context(|| format!("cannot classify a question of `{}`", b.path.display()))?
                .probabilities;
            pairs.push((*label, argmax(&p)));
            let f = champion.features_of(&ids);
            features += f.len() as u64;
            unseen += f.iter().filter(|x| !seen.contains(*x)).count() as u64;
        }
        let evaluation = edge_classifier::metrics::evaluate(labels, pairs.iter().copied());
        batches.push(BatchFigures {
            name: batch_name(&b.path),
            questions: rows.len() as u64,
            accuracy: evaluation.accuracy,
            unseen_feature_share: share(unseen, features),
            label_mix: mix(labels, rows.iter().map(|e| e.label)),
        });
        all_pairs.extend(pairs);
        (all_features, all_unseen) = (all_features + features, all_unseen + unseen);
    }
    anyhow::ensure!(
        !all_pairs.is_empty(),
        "the batches after `{since}` hold no question with one of version {version}'s labels ({})",
        labels.join(", ")
    );
    Ok(Arrivals {
        champion_version: version.to_owned(),
        since_batch: since.to_owned(),
        batches,
        questions: all_pairs.len() as u64,
        label_mix: mix(labels, all_pairs.iter().map(|&(truth, _)| truth)),
        evaluation: edge_classifier::metrics::evaluate(labels, all_pairs),
        training_label_mix: mix(labels, train_rows.iter().map(|e| e.label)),
        unseen_feature_share: share(all_unseen, all_features),
    })
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// Each label's share of `rows` (label indices), every label listed.
fn mix(labels: &[String], rows: impl Iterator<Item = usize>) -> BTreeMap<String, f64> {
    let mut counts = vec![0u64; labels.len()];
    for r in rows {
        counts[r] += 1;
    }
    let total: u64 = counts.iter().sum();
    labels.iter().zip(counts).map(|(l, n)| (l.clone(), share(n, total))).collect()
}
