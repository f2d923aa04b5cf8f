//! Labelled data cut into batches that land over time: the local loop (`scripts/loop.sh`)
//! lands a small first batch, then the rest, in an inbox that `trainer retrain --data INBOX`
//! reads (one batch per file, in name order).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::data::{self, RawText};

/// One batch file written.
#[derive(Debug, Clone, Serialize)]
pub struct BatchFile {
    /// `DIR/batch-0001.parquet`, ...
    pub path: PathBuf,
    /// Rows in it.
    pub rows: usize,
}

/// Reads `sources` and writes them to `out` as Parquet batches: the first `first_per_label`
/// rows of each label (in file order) in `batch-0001.parquet`, so the first batch trains a
/// model on every label, then the remaining rows in `rest` batches of near-equal size.
/// Rows keep their order within a batch. Each file is written beside its name and renamed, so
/// a reader watching `out` never sees half a batch.
pub fn split(sources: &[PathBuf], out: &Path, first_per_label: usize, rest: usize) -> anyhow::Result<Vec<BatchFile>> {
    anyhow::ensure!(first_per_label > 0, "`first_per_label` must be at least 1");
    anyhow::ensure!(rest > 0, "`rest` must be at least 1 batch");
    let rows: Vec<_> = data::read_sources(sources, "source")?.into_iter().flat_map(|b| b.rows).collect();
    let mut seen: HashMap<Option<String>, usize> = HashMap::new();
    let (mut first, mut later) = (Vec::new(), Vec::new());
    for row in rows {
        let n = seen.entry(row.label.clone()).or_default();
        *n += 1;
        if *n <= first_per_label { first.push(row) } else { later.push(row) }
    }
    anyhow::ensure!(!later.is_empty(), "every row fits in the first batch: nothing is left to land later");
    std::fs::create_dir_all(out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let per_batch = later.len().div_ceil(rest);
    let mut batches = vec![first];
    batches.extend(later.chunks(per_batch).map(<[_]>::to_vec));
    batches
        .into_iter()
        .enumerate()
        .map(|(i, rows)| {
            let path = out.join(format!("batch-{:04}.parquet", i + 1));
            write_parquet(&path, &rows)?;
            Ok(BatchFile { path, rows: rows.len() })
        })
        .collect()
}

fn write_parquet(path: &Path, rows: &[data::RawRow]) -> anyhow::Result<()> {
    let rows: Vec<dataset::BatchRow> = rows
        .iter()
        .map(|r| dataset::BatchRow {
            label: r.label.clone(),
            text: match &r.text {
                RawText::Text(t) => Some(t.clone()),
                // Kept as nulls: the trainer's row report counts them where the source had them.
                RawText::Missing | RawText::InvalidUtf8 => None,
            },
            attribution: None,
        })
        .collect();
    let bytes = dataset::batch_parquet(&rows).with_context(|| format!("cannot encode `{}`", path.display()))?;
    // A dot-file until complete: `read_source` only lists `*.parquet`.
    let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("batch")));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}
