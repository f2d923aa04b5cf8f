//! The smoke evaluation: a downloaded model, loaded in the serving core, scores a small
//! labelled sample (a [`dataset::EvalSet`], read once at start-up by the workspace's one
//! reader) before it may serve.

use dataset::EvalSet;
use edge_classifier::Classifier;

/// A model's accuracy on the sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Share of the sample's labelled rows whose top label is the row's label.
    pub accuracy: f64,
    /// Rows judged.
    pub examples: usize,
}

/// Scores `classifier` on `sample` through the core's one evaluation
/// (`edge_classifier::metrics::score`). A row whose label the model does not know counts as
/// wrong, so a model with the wrong labels scores low.
pub fn score(classifier: &Classifier, sample: &EvalSet) -> anyhow::Result<Score> {
    let scored = sample.score(classifier)?;
    let unknown = scored.rows.skipped.get(&dataset::SkipReason::UnknownLabel).copied().unwrap_or(0);
    Ok(Score { accuracy: scored.accuracy_over_all_labels(), examples: scored.evaluation.examples + unknown })
}
