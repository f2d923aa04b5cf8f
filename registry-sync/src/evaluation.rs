//! The smoke evaluation: a downloaded model, loaded in the serving core, scores a small
//! labelled sample before it may serve.

use std::path::{Path, PathBuf};

use edge_classifier::Classifier;
use edge_classifier::argmax;

/// A labelled sample read from a `label,text` CSV (header required, other columns ignored).
#[derive(Debug, Clone)]
pub struct Sample {
    /// Where it came from, for messages.
    pub path: PathBuf,
    /// `(label, text)` rows.
    pub rows: Vec<(String, String)>,
}

/// Why a sample cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// Unreadable or not CSV.
    #[error("cannot read evaluation sample `{path}`: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No `label` or `text` column.
    #[error("evaluation sample `{path}` has no `{column}` column")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: &'static str,
    },
    /// No usable row.
    #[error("evaluation sample `{path}` has no rows with a label and a text")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl Sample {
    /// Reads `path`; rows with an empty label or text are skipped.
    pub fn read(path: &Path) -> Result<Self, SampleError> {
        let read_err = |e: &dyn std::fmt::Display| SampleError::Read { path: path.to_owned(), reason: e.to_string() };
        let mut reader = csv::Reader::from_path(path).map_err(|e| read_err(&e))?;
        let headers = reader.headers().map_err(|e| read_err(&e))?.clone();
        let col = |column: &'static str| {
            headers
                .iter()
                .position(|h| h.trim() == column)
                .ok_or(SampleError::MissingColumn { path: path.to_owned(), column })
        };
        let (label, text) = (col("label")?, col("text")?);
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| read_err(&e))?;
            let (l, t) = (record.get(label).unwrap_or_default().trim(), record.get(text).unwrap_or_default());
            if !l.is_empty() && !t.trim().is_empty() {
                rows.push((l.to_owned(), t.to_owned()));
            }
        }
        if rows.is_empty() {
            return Err(SampleError::Empty { path: path.to_owned() });
        }
        Ok(Self { path: path.to_owned(), rows })
    }
}

/// A model's accuracy on a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Share of rows whose top label is the row's label.
    pub accuracy: f64,
    /// Rows scored.
    pub examples: usize,
}

/// Scores `classifier` on `sample` with the serving core's own code path. A row whose label
/// the model does not know counts as wrong, so a model with the wrong labels scores low.
pub fn score(classifier: &Classifier, sample: &Sample) -> Result<Score, edge_classifier::Error> {
    let labels = &classifier.manifest().labels;
    let mut right = 0usize;
    for (label, text) in &sample.rows {
        let p = classifier.probabilities(text)?;
        if labels.get(argmax(&p)) == Some(label) {
            right += 1;
        }
    }
    let examples = sample.rows.len();
    Ok(Score { accuracy: right as f64 / examples as f64, examples })
}
