//! An evaluation set: labelled batches read once (their snapshot recorded with every gate
//! decision), each model scored on the rows of its own labels through the serving core.

use std::path::PathBuf;

use edge_classifier::Classifier;
use edge_classifier::api::Evaluation;

use crate::clean::{RowReport, SkipReason, clean_labelled};
use crate::read::{Batch, read_sources, snapshot_of};

/// Labelled evaluation data, read once.
#[derive(Debug, Clone)]
pub struct EvalSet {
    batches: Vec<Batch>,
    snapshot: String,
}

/// A model's figures on an [`EvalSet`], and what happened to the rows.
#[derive(Debug, Clone)]
pub struct Scored {
    /// Accuracy, macro-F1, per-class figures and the confusion matrix on the usable rows.
    pub evaluation: Evaluation,
    /// Rows read, used and skipped by reason (`unknown_label`: a label the model lacks).
    pub rows: RowReport,
}

impl Scored {
    /// Correct answers over every labelled row, a row whose label the model does not know
    /// counting as wrong: a smoke check's accuracy, under which a model with the wrong labels
    /// scores low instead of being judged on the rows it happens to know.
    pub fn accuracy_over_all_labels(&self) -> f64 {
        let correct: u64 = (0..self.evaluation.labels.len()).map(|i| self.evaluation.confusion[i][i]).sum();
        let unknown = self.rows.skipped.get(&SkipReason::UnknownLabel).copied().unwrap_or(0);
        let judged = self.evaluation.examples + unknown;
        if judged == 0 { 0.0 } else { correct as f64 / judged as f64 }
    }
}

impl EvalSet {
    /// Reads `paths` (every format the reader takes), in order.
    pub fn read(paths: &[PathBuf]) -> anyhow::Result<Self> {
        if paths.is_empty() {
            anyhow::bail!("no evaluation data: pass `--eval PATH`");
        }
        Ok(Self::from_batches(read_sources(paths, "evaluation")?))
    }

    /// Wraps batches already read.
    pub fn from_batches(batches: Vec<Batch>) -> Self {
        let snapshot = snapshot_of(&batches);
        Self { batches, snapshot }
    }

    /// This set and the held-out slice of each of `training`'s batches ([`crate::holdout`]):
    /// the evaluation data of a run that trains on `training`, which then never trains on those
    /// rows, and the set its gate scores both contenders on.
    pub fn with_held_out(self, training: &[Batch]) -> Self {
        let mut batches = self.batches;
        batches.extend(crate::holdout::held_out(training));
        Self::from_batches(batches)
    }

    /// The batches.
    pub fn batches(&self) -> &[Batch] {
        &self.batches
    }

    /// sha256 over the batches' digests: which data a decision was made on.
    pub fn snapshot(&self) -> &str {
        &self.snapshot
    }

    /// Where the data came from, for messages.
    pub fn describe(&self) -> String {
        self.batches.iter().map(|b| format!("`{}`", b.path.display())).collect::<Vec<_>>().join(", ")
    }

    /// Scores `classifier` on the usable rows (those with one of its labels).
    pub fn score(&self, classifier: &Classifier) -> anyhow::Result<Scored> {
        let (examples, rows) = clean_labelled(&self.batches, &classifier.manifest().labels)?;
        let evaluation =
            edge_classifier::metrics::score(classifier, examples.iter().map(|e| (e.label, e.text.as_str())))?;
        Ok(Scored { evaluation, rows })
    }
}
