//! Files into raw rows: each supported format, and the digests that name a data snapshot.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use edge_classifier::hex;
use polars::prelude::*;
use sha2::{Digest, Sha256};

use super::DataError;

/// One row as read, before any check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRow {
    /// The label cell, if present.
    pub label: Option<String>,
    /// The text cell.
    pub text: RawText,
    /// The question's id on Stack Overflow, where the file has a `question_id` column (the
    /// inbox's batches do): what decides whether the row is held out for evaluation
    /// ([`crate::holdout`]).
    pub question_id: Option<u64>,
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

/// Every readable text of `paths` (rows with a missing or undecodable text left out): what a
/// fetch keeps out of the inbox, so that no evaluation question lands in training.
pub fn read_texts(paths: &[PathBuf], set: &str) -> anyhow::Result<Vec<String>> {
    Ok(read_sources(paths, set)?
        .into_iter()
        .flat_map(|b| b.rows)
        .filter_map(|r| match r.text {
            RawText::Text(t) => Some(t),
            RawText::InvalidUtf8 | RawText::Missing => None,
        })
        .collect())
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
    // Optional: only the inbox's batches carry it. A cell that is not a non-negative integer
    // is no id (CSV columns arrive as text).
    let ids: Vec<Option<u64>> = match df.column("question_id") {
        Ok(c) => c
            .cast(&DataType::String)
            .and_then(|c| c.str().cloned())
            .map_err(|e| parse_error(path, e))?
            .iter()
            .map(|v| v.and_then(|v| v.trim().parse().ok()))
            .collect(),
        Err(_) => vec![None; df.height()],
    };
    Ok(labels
        .iter()
        .zip(texts.iter())
        .zip(ids)
        .map(|((label, text), question_id)| RawRow {
            question_id,
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
        rows.push(RawRow { label, text: text_of(bytes), question_id: None });
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
        rows.push(RawRow { label: Some(label), text: text_of(content), question_id: None });
    }
    Ok(rows)
}

fn unreadable(path: &Path, source: std::io::Error) -> DataError {
    DataError::Unreadable { path: path.to_path_buf(), source }
}

fn parse_error(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Parse { path: path.to_path_buf(), message: e.to_string() }
}

/// The snapshot digest of a list of batches: sha256 over their digests, in order.
pub fn snapshot_of(batches: &[Batch]) -> String {
    let mut hasher = Sha256::new();
    for b in batches {
        hasher.update(b.digest.as_bytes());
    }
    hex(&hasher.finalize())
}
