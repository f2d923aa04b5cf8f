//! `trainer evaluate`: how a bundle does on any labelled data, through the serving core.

use std::path::PathBuf;

use edge_classifier::api::Evaluation;
use edge_classifier::{Classifier, argmax};
use serde::Serialize;

use crate::data::{self, Example, RowReport};

/// The figures `trainer evaluate --json` prints: metrics.json's shape plus the row counts.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluateReport {
    /// Accuracy, macro-F1, per-class figures and the confusion matrix.
    #[serde(flatten)]
    pub metrics: Evaluation,
    /// Rows read and skipped.
    pub rows: RowReport,
}

/// Reads `paths` and scores `classifier` on their usable rows.
pub fn evaluate_paths(classifier: &Classifier, paths: &[PathBuf]) -> anyhow::Result<EvaluateReport> {
    let (examples, rows) = read_examples(paths, &classifier.manifest().labels)?;
    Ok(EvaluateReport { metrics: evaluate_examples(classifier, &examples)?, rows })
}

/// The usable rows of `paths` (read in order), with `labels` as the label set.
pub fn read_examples(paths: &[PathBuf], labels: &[String]) -> anyhow::Result<(Vec<Example>, RowReport)> {
    let batches = data::read_sources(paths, "labelled")?;
    Ok(data::clean_labelled(&batches, labels)?)
}

/// Scores `classifier` on `examples` (labels index the classifier's labels).
pub fn evaluate_examples(classifier: &Classifier, examples: &[Example]) -> anyhow::Result<Evaluation> {
    let mut pairs = Vec::with_capacity(examples.len());
    for e in examples {
        let p = classifier.probabilities(&e.text)?;
        pairs.push((e.label, argmax(&p)));
    }
    Ok(edge_classifier::metrics::evaluate(&classifier.manifest().labels, pairs))
}
