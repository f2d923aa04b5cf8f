//! Labelled questions: the one reader and the one evaluation set of the workspace. The
//! trainer reads its training and evaluation data here, the gate and registry-sync's smoke
//! check score models on an [`EvalSet`] from here, and the loop reads its test questions here.
//!
//! Reading ([`read_source`], module `read`) takes CSV and CSV.gz (read with polars), Parquet,
//! the TensorFlow `DIR/<label>/*.txt` layout and its `.tar.gz`; it only turns files into raw
//! rows and fails on files it cannot use. Cleaning ([`prepare`], [`clean_labelled`], module
//! `clean`) decides which rows are usable, counts the rest by reason, and splits off the
//! evaluation set. Scoring a model on the usable rows goes through the serving core
//! ([`edge_classifier::metrics::score`]).

mod clean;
mod eval;
pub mod holdout;
mod read;
pub mod rng;
mod write;

use std::path::PathBuf;

pub use clean::{Dataset, EvalSource, Example, RowReport, SkipReason, clean_labelled, labelled_rows, prepare};
pub use eval::{EvalSet, Scored};
pub use read::{Batch, RawRow, RawText, read_source, read_sources, read_texts, snapshot_of};
pub use write::{Attribution, BatchKey, BatchRow, COLUMNS as BATCH_COLUMNS, batch_keys, batch_parquet};

/// Why a data source could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
