//! Raw rows into usable examples: empty, unlabelled, unknown, undecodable and duplicate rows
//! skipped and counted by reason, evaluation rows kept out of training, a stratified split.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::{Batch, DataError, RawText, snapshot_of};
use crate::rng::SplitMix64;

/// Why a row was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SkipReason {
    /// The text is empty, or only whitespace and control characters.
    EmptyText,
    /// The label cell is null or empty.
    MissingLabel,
    /// The label is not one of the configured labels.
    UnknownLabel,
    /// The text was not valid UTF-8.
    InvalidUtf8,
    /// The same (normalised) text came earlier.
    Duplicate,
    /// A training row whose text is also in the evaluation data.
    InEvalData,
}

impl SkipReason {
    /// The reason's snake_case name, as serialised.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Rows read, used and skipped (by reason) for one set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RowReport {
    /// Rows read.
    pub read: usize,
    /// Rows kept.
    pub used: usize,
    /// Rows skipped, by reason.
    pub skipped: BTreeMap<SkipReason, usize>,
}

impl RowReport {
    fn skip(&mut self, reason: SkipReason) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    /// One line for people: rows read and skipped by reason.
    pub fn describe(&self) -> String {
        if self.skipped.is_empty() {
            return format!("{} rows read", self.read);
        }
        let parts: Vec<String> = self.skipped.iter().map(|(r, n)| format!("{n} {}", r.name())).collect();
        format!("{} rows read, skipped: {}", self.read, parts.join(", "))
    }
}

/// One usable, labelled question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Index into [`Dataset::labels`].
    pub label: usize,
    /// The text, as read (normalisation happens in the core's encode).
    pub text: String,
}

impl Example {
    /// As [`edge_classifier::metrics::score`] takes it: (label index, text).
    pub fn pair(&self) -> (usize, &str) {
        (self.label, &self.text)
    }
}

/// Clean training and evaluation sets.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Labels, in model output order.
    pub labels: Vec<String>,
    /// Training examples, in input order.
    pub train: Vec<Example>,
    /// Evaluation examples.
    pub eval: Vec<Example>,
    /// What happened to the training rows.
    pub train_report: RowReport,
    /// What happened to the evaluation rows (when `--eval` was given).
    pub eval_report: Option<RowReport>,
    /// sha256 over the training batches' digests, in order.
    pub snapshot: String,
}

/// Where the evaluation set comes from.
#[derive(Debug, Clone)]
pub enum EvalSource {
    /// Separate labelled batches (`--eval`).
    Batches(Vec<Batch>),
    /// A seeded, stratified share of the training rows.
    Split {
        /// Share of each label's rows that goes to evaluation, in (0, 1).
        fraction: f64,
        /// Seed of the split's shuffle.
        seed: u64,
    },
}

/// Cleans the rows and builds the training and evaluation sets over `labels`.
pub fn prepare(train: &[Batch], eval: EvalSource, labels: &[String]) -> Result<Dataset, DataError> {
    let index = |l: &str| labels.iter().position(|x| x == l);
    let snapshot = snapshot_of(train);

    let (eval_examples, eval_report) = match &eval {
        EvalSource::Batches(batches) => {
            let (examples, report) = clean_labelled(batches, labels)?;
            (Some(examples), Some(report))
        }
        EvalSource::Split { .. } => (None, None),
    };
    let eval_keys: HashSet<String> = eval_examples.iter().flatten().map(|e| dedup_key(&e.text)).collect();
    let (mut train_examples, mut train_report) = clean(train, &index, &eval_keys);

    let eval_examples = match (eval_examples, &eval) {
        (Some(e), _) => e,
        (None, EvalSource::Split { fraction, seed }) => {
            let (kept, held) = stratified_split(train_examples, labels.len(), *fraction, *seed);
            train_examples = kept;
            train_report.used = train_examples.len();
            held
        }
        (None, EvalSource::Batches(_)) => unreachable!("batches always produce examples"),
    };
    check_usable("training", &train_examples, &train_report, labels)?;
    if eval_examples.is_empty() {
        return Err(DataError::NoUsableRows {
            set: "evaluation",
            skipped: "the split left no rows to evaluate on".into(),
        });
    }
    Ok(Dataset {
        labels: labels.to_vec(),
        train: train_examples,
        eval: eval_examples,
        train_report,
        eval_report,
        snapshot,
    })
}

/// The usable rows of `batches` whose label is one of `labels`, and what happened to the rest,
/// without [`clean_labelled`]'s demand that two labels have rows: for judging a model on one
/// batch, which may hold a single label.
pub fn labelled_rows(batches: &[Batch], labels: &[String]) -> (Vec<Example>, RowReport) {
    let index = |l: &str| labels.iter().position(|x| x == l);
    clean(batches, &index, &HashSet::new())
}

/// Cleans labelled evaluation rows over `labels` (every check but train/eval overlap).
pub fn clean_labelled(batches: &[Batch], labels: &[String]) -> Result<(Vec<Example>, RowReport), DataError> {
    let index = |l: &str| labels.iter().position(|x| x == l);
    let (examples, report) = clean(batches, &index, &HashSet::new());
    check_usable("evaluation", &examples, &report, labels)?;
    Ok((examples, report))
}

/// The key two texts share when they are the same question: normalised, whitespace folded.
/// Always with version 1: which rows a run uses must not depend on the model's normalisation,
/// so a version 1 bundle (the golden one) is rebuilt from exactly the rows it was.
fn dedup_key(text: &str) -> String {
    edge_classifier::normalize::Normalization::V1.apply(text).text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn clean(
    batches: &[Batch],
    index: &dyn Fn(&str) -> Option<usize>,
    exclude: &HashSet<String>,
) -> (Vec<Example>, RowReport) {
    let mut report = RowReport::default();
    let mut seen = HashSet::new();
    let mut examples = Vec::new();
    for row in batches.iter().flat_map(|b| &b.rows) {
        report.read += 1;
        let text = match &row.text {
            RawText::Text(t) if !edge_classifier::normalize::is_blank(t) => t,
            RawText::Text(_) | RawText::Missing => {
                report.skip(SkipReason::EmptyText);
                continue;
            }
            RawText::InvalidUtf8 => {
                report.skip(SkipReason::InvalidUtf8);
                continue;
            }
        };
        let label = match row.label.as_deref().map(|l| l.trim().to_lowercase()) {
            None => {
                report.skip(SkipReason::MissingLabel);
                continue;
            }
            Some(l) if l.is_empty() => {
                report.skip(SkipReason::MissingLabel);
                continue;
            }
            Some(l) => match index(&l) {
                Some(i) => i,
                None => {
                    report.skip(SkipReason::UnknownLabel);
                    continue;
                }
            },
        };
        let key = dedup_key(text);
        if exclude.contains(&key) {
            report.skip(SkipReason::InEvalData);
            continue;
        }
        if !seen.insert(key) {
            report.skip(SkipReason::Duplicate);
            continue;
        }
        examples.push(Example { label, text: text.clone() });
    }
    report.used = examples.len();
    (examples, report)
}

fn check_usable(
    set: &'static str,
    examples: &[Example],
    report: &RowReport,
    labels: &[String],
) -> Result<(), DataError> {
    if examples.is_empty() {
        return Err(DataError::NoUsableRows { set, skipped: report.describe() });
    }
    let mut present: Vec<&str> = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        if examples.iter().any(|e| e.label == i) {
            present.push(l);
        }
    }
    if present.len() < 2 {
        return Err(DataError::TooFewLabels { set, found: present.len(), labels: present.join(", ") });
    }
    Ok(())
}

/// Splits off `fraction` of each label's examples for evaluation, shuffled with `seed`.
/// Every label with at least two examples keeps one on each side.
fn stratified_split(examples: Vec<Example>, labels: usize, fraction: f64, seed: u64) -> (Vec<Example>, Vec<Example>) {
    let mut rng = SplitMix64::new(seed);
    let mut by_label: Vec<Vec<Example>> = vec![Vec::new(); labels];
    for e in examples {
        by_label[e.label].push(e);
    }
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for mut group in by_label {
        rng.shuffle(&mut group);
        let n = group.len();
        let mut held = ((n as f64) * fraction).round() as usize;
        if n >= 2 {
            held = held.clamp(1, n - 1);
        } else {
            held = 0;
        }
        eval.extend(group.drain(..held));
        train.extend(group);
    }
    (train, eval)
}
