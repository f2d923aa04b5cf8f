//! `trainer evaluate`: how a bundle does on any labelled data, through the serving core.

use std::path::PathBuf;

use edge_classifier::Classifier;
use edge_classifier::api::Evaluation;
use serde::Serialize;

use crate::data::{self, EvalSet, Example, RowReport};

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
    let scored = EvalSet::read(paths)?.score(classifier)?;
    Ok(EvaluateReport { metrics: scored.evaluation, rows: scored.rows })
}

/// The usable rows of `paths` (read in order), with `labels` as the label set.
pub fn read_examples(paths: &[PathBuf], labels: &[String]) -> anyhow::Result<(Vec<Example>, RowReport)> {
    Ok(data::clean_labelled(EvalSet::read(paths)?.batches(), labels)?)
}

/// What the data set's `blank` stood for in a question labelled `label`: the data set replaced
/// only the question's own language name (`c#` for csharp; see
/// `edge_classifier::normalize::BLANKED_NAMES`). Other labels are their own name.
pub fn name_of(label: &str) -> &str {
    match label {
        "csharp" => "c#",
        other => other,
    }
}

/// `text` with the language name of `label` put back wherever the data set wrote `blank`, also
/// inside words (`blankx.swing` → `javax.swing`), as the data set had replaced it. The data's
/// own word "blank" (`target="_blank"`) cannot be told apart and is replaced too.
pub fn unblank(text: &str, label: &str) -> String {
    text.replace("blank", name_of(label))
}
