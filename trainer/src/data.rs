//! Labelled questions in: CSV and CSV.gz (read with polars), Parquet, the TensorFlow
//! `DIR/<label>/*.txt` layout and its `.tar.gz`.
//!
//! Reading ([`read_source`]) only turns files into raw rows and fails on files it cannot use.
//! Cleaning ([`prepare`]) decides which rows are usable, counts the rest by reason, and splits
//! off the evaluation set.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use edge_classifier::hex;
use polars::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::rng::SplitMix64;

/// One row as read, before any check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRow {
    /// The label cell, if present.
    pub label: Option<String>,
    /// The text cell.
    pub text: RawText,
}

/// The text cell of a [`RawRow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawText {
    /// Valid text.
    Text(String),
    /// The bytes were not valid UTF-8.
    InvalidUtf8,
    /// The cell was null.
    Missing,
}

/// The rows of one input file or directory, with a digest of its bytes.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Where the rows came from.
    pub path: PathBuf,
    /// sha256 of the batch's bytes (for a directory: of its sorted file names and contents).
    pub digest: String,
    /// The rows, in file order.
    pub rows: Vec<RawRow>,
}

/// Why a data source could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The path could not be read.
    #[error("cannot read `{path}`: {source}")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid CSV, Parquet or gzip.
    #[error("cannot parse `{path}`: {message}")]
    Parse {
        /// The path.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The file lacks `label` or `text`.
    #[error("`{path}` has no `{missing}` column (columns found: {found})")]
    MissingColumn {
        /// The path.
        path: PathBuf,
        /// The missing column.
        missing: &'static str,
        /// The columns it has, comma-separated.
        found: String,
    },
    /// The extension is none of the supported ones.
    #[error("`{path}` is not a supported data file (expected .csv, .csv.gz, .parquet, .tar.gz or a directory)")]
    UnsupportedFormat {
        /// The path.
        path: PathBuf,
    },
    /// A directory holds neither data files nor `<label>/*.txt`.
    #[error("directory `{path}` holds no data files and no `<label>/*.txt` folders")]
    EmptyDirectory {
        /// The path.
        path: PathBuf,
    },
    /// After cleaning, a set has fewer than two labels.
    #[error("{set} data has usable rows for {found} label(s) ({labels}); at least 2 are needed")]
    TooFewLabels {
        /// `training` or `evaluation`.
        set: &'static str,
        /// How many labels have rows.
        found: usize,
        /// Which.
        labels: String,
    },
    /// After cleaning, nothing is left.
    #[error("{set} data has no usable rows ({skipped})")]
    NoUsableRows {
        /// `training` or `evaluation`.
        set: &'static str,
        /// The skip counts, for the reader to see why.
        skipped: String,
    },
}

/// Reads every path in order (see [`read_source`]) into one list of batches; `set` names the
/// data in errors (`training`, `evaluation`).
pub fn read_sources(paths: &[PathBuf], set: &str) -> anyhow::Result<Vec<Batch>> {
    let mut batches = Vec::new();
    for path in paths {
        batches.extend(
            read_source(path)
                .map_err(|e| anyhow::anyhow!(e).context(format!("failed to read {set} data `{}`", path.display())))?,
        );
    }
    Ok(batches)
}

/// Reads one `--data`/`--eval` path: a file is one batch, a directory of data files is one
/// batch per file (sorted by name: batches that arrived over time), and a directory of
/// `<label>/` folders is one batch.
pub fn read_source(path: &Path) -> Result<Vec<Batch>, DataError> {
    let meta = fs::metadata(path).map_err(|source| unreadable(path, source))?;
    if !meta.is_dir() {
        return Ok(vec![read_file(path)?]);
    }
    if has_label_folders(path)? {
        return Ok(vec![read_label_dirs(path)?]);
    }
    let mut files: Vec<PathBuf> = fs::read_dir(path)
        .map_err(|source| unreadable(path, source))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && format_of(p).is_some())
        .collect();
    if files.is_empty() {
        return Err(DataError::EmptyDirectory { path: path.to_path_buf() });
    }
    files.sort();
    files.iter().map(|f| read_file(f)).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Parquet,
    TarGz,
}

fn format_of(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        Some(Format::Csv)
    } else if name.ends_with(".parquet") {
        Some(Format::Parquet)
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(Format::TarGz)
    } else {
        None
    }
}

fn read_file(path: &Path) -> Result<Batch, DataError> {
    let format = format_of(path).ok_or_else(|| DataError::UnsupportedFormat { path: path.to_path_buf() })?;
    let bytes = fs::read(path).map_err(|source| unreadable(path, source))?;
    let digest = edge_classifier::sha256_hex(&bytes);
    let rows = match format {
        Format::Csv => read_csv(path, &bytes)?,
        Format::Parquet => read_parquet(path, bytes)?,
        Format::TarGz => read_tar_gz(path, &bytes)?,
    };
    Ok(Batch { path: path.to_path_buf(), digest, rows })
}

fn read_csv(path: &Path, bytes: &[u8]) -> Result<Vec<RawRow>, DataError> {
    let plain = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| parse_error(path, format!("bad gzip: {e}")))?;
        out
    } else {
        bytes.to_vec()
    };
    // A file that is valid UTF-8 throughout is read strictly, so a real U+FFFD in a question
    // is kept. Only a file with undecodable bytes is read lossily, and there the rows that
    // came out with U+FFFD are the invalid ones.
    let lossy = std::str::from_utf8(&plain).is_err();
    let encoding = if lossy { CsvEncoding::LossyUtf8 } else { CsvEncoding::Utf8 };
    // Every column is read as text (no schema inference).
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_parse_options(CsvParseOptions::default().with_encoding(encoding))
        .into_reader_with_file_handle(std::io::Cursor::new(plain))
        .finish()
        .map_err(|e| parse_error(path, e))?;
    rows_of(path, &df, lossy)
}

fn read_parquet(path: &Path, bytes: Vec<u8>) -> Result<Vec<RawRow>, DataError> {
    let df = ParquetReader::new(std::io::Cursor::new(bytes)).finish().map_err(|e| parse_error(path, e))?;
    rows_of(path, &df, false)
}

fn rows_of(path: &Path, df: &DataFrame, lossy: bool) -> Result<Vec<RawRow>, DataError> {
    let column = |name: &'static str| -> Result<StringChunked, DataError> {
        let col = df.column(name).map_err(|_| DataError::MissingColumn {
            path: path.to_path_buf(),
            missing: name,
            found: df.get_column_names().iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
        })?;
        let cast = col.cast(&DataType::String).map_err(|e| parse_error(path, e))?;
        cast.str().cloned().map_err(|e| parse_error(path, e))
    };
    let labels = column("label")?;
    let texts = column("text")?;
    Ok(labels
        .iter()
        .zip(texts.iter())
        .map(|(label, text)| RawRow {
            label: label.map(str::to_owned),
            text: match text {
                None => RawText::Missing,
                // The lossy reader marks undecodable bytes with U+FFFD.
                Some(t) if lossy && t.contains('\u{FFFD}') => RawText::InvalidUtf8,
                Some(t) => RawText::Text(t.to_owned()),
            },
        })
        .collect())
}

fn text_of(bytes: Vec<u8>) -> RawText {
    match String::from_utf8(bytes) {
        Ok(t) => RawText::Text(t),
        Err(_) => RawText::InvalidUtf8,
    }
}

fn has_label_folders(dir: &Path) -> Result<bool, DataError> {
    for entry in fs::read_dir(dir).map_err(|source| unreadable(dir, source))? {
        let sub = entry.map_err(|source| unreadable(dir, source))?.path();
        if sub.is_dir()
            && fs::read_dir(&sub)
                .map_err(|source| unreadable(&sub, source))?
                .filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|x| x == "txt"))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn read_label_dirs(dir: &Path) -> Result<Batch, DataError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|source| unreadable(dir, source))? {
        let sub = entry.map_err(|source| unreadable(dir, source))?.path();
        if !sub.is_dir() {
            continue;
        }
        for file in fs::read_dir(&sub).map_err(|source| unreadable(&sub, source))? {
            let file = file.map_err(|source| unreadable(&sub, source))?.path();
            if file.extension().is_some_and(|x| x == "txt") {
                files.push(file);
            }
        }
    }
    // Sorted so that the digest and the row order do not depend on the file system.
    files.sort();
    let mut hasher = Sha256::new();
    let mut rows = Vec::with_capacity(files.len());
    for file in &files {
        let bytes = fs::read(file).map_err(|source| unreadable(file, source))?;
        let rel = file.strip_prefix(dir).unwrap_or(file).to_string_lossy().into_owned();
        hasher.update((rel.len() as u64).to_le_bytes());
        hasher.update(rel.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
        let label = file.parent().and_then(Path::file_name).map(|l| l.to_string_lossy().into_owned());
        rows.push(RawRow { label, text: text_of(bytes) });
    }
    Ok(Batch { path: dir.to_path_buf(), digest: hex(&hasher.finalize()), rows })
}

fn read_tar_gz(path: &Path, bytes: &[u8]) -> Result<Vec<RawRow>, DataError> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let entries = archive.entries().map_err(|e| parse_error(path, e))?;
    let mut rows = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| parse_error(path, e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(|e| parse_error(path, e))?.into_owned();
        if name.extension().is_none_or(|x| x != "txt") {
            continue;
        }
        // The label is the folder the file sits in, as in the TensorFlow layout.
        let Some(label) = name.parent().and_then(Path::file_name) else { continue };
        let label = label.to_string_lossy().into_owned();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).map_err(|e| parse_error(path, e))?;
        rows.push(RawRow { label: Some(label), text: text_of(content) });
    }
    Ok(rows)
}

fn unreadable(path: &Path, source: std::io::Error) -> DataError {
    DataError::Unreadable { path: path.to_path_buf(), source }
}

fn parse_error(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Parse { path: path.to_path_buf(), message: e.to_string() }
}

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

/// The snapshot digest of a list of batches: sha256 over their digests, in order.
pub fn snapshot_of(batches: &[Batch]) -> String {
    let mut hasher = Sha256::new();
    for b in batches {
        hasher.update(b.digest.as_bytes());
    }
    hex(&hasher.finalize())
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
