//! Labelled batches as the inbox holds them: one Parquet file per batch, `label` and `text`
//! (what the reader needs) and the question's attribution, which Stack Overflow's licence
//! (CC BY-SA) asks to keep with the text: its id, link and creation date. Rows cut from a file
//! without them (the 16k split) leave those columns null.

use polars::prelude::*;

/// Where a row's question came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// The question's id on its site.
    pub question_id: u64,
    /// Its page (`https://stackoverflow.com/q/<id>`), which credits its authors.
    pub link: String,
    /// When it was asked, Unix seconds (UTC).
    pub created: i64,
}

/// One labelled row of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRow {
    /// The label; `None` keeps a null the source had (the trainer counts it).
    pub label: Option<String>,
    /// The question's text; `None` keeps a null or undecodable cell the source had.
    pub text: Option<String>,
    /// The question's attribution, when known.
    pub attribution: Option<Attribution>,
}

/// The columns, in order.
pub const COLUMNS: [&str; 5] = ["label", "text", "question_id", "link", "created"];

/// The batch as Parquet bytes (written whole by the caller, so no reader sees half of it).
pub fn batch_parquet(rows: &[BatchRow]) -> PolarsResult<Vec<u8>> {
    let mut df = df!(
        COLUMNS[0] => rows.iter().map(|r| r.label.as_deref()).collect::<Vec<_>>(),
        COLUMNS[1] => rows.iter().map(|r| r.text.as_deref()).collect::<Vec<_>>(),
        COLUMNS[2] => rows.iter().map(|r| r.attribution.as_ref().map(|a| a.question_id)).collect::<Vec<_>>(),
        COLUMNS[3] => rows.iter().map(|r| r.attribution.as_ref().map(|a| a.link.as_str())).collect::<Vec<_>>(),
        COLUMNS[4] => rows.iter().map(|r| r.attribution.as_ref().map(|a| a.created)).collect::<Vec<_>>(),
    )?;
    let mut out = Vec::new();
    ParquetWriter::new(&mut out).finish(&mut df)?;
    Ok(out)
}

/// One row of an earlier batch, as much as a new batch is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchKey {
    /// The question's id, where the row has one.
    pub question_id: Option<u64>,
    /// Its text.
    pub text: Option<String>,
    /// Its label.
    pub label: Option<String>,
    /// When it was asked (Unix seconds), where known.
    pub created: Option<i64>,
}

/// What an earlier batch holds that a new one must not repeat. Batches written before
/// attribution existed have only `label` and `text`: their ids and dates are `None`.
pub fn batch_keys(parquet: &[u8]) -> PolarsResult<Vec<BatchKey>> {
    let df = ParquetReader::new(std::io::Cursor::new(parquet)).finish()?;
    let n = df.height();
    let strings = |name: &str| -> PolarsResult<Vec<Option<String>>> {
        match df.column(name) {
            Ok(c) => Ok(c.cast(&DataType::String)?.str()?.iter().map(|v| v.map(str::to_owned)).collect()),
            Err(_) => Ok(vec![None; n]),
        }
    };
    let ints = |name: &str| -> PolarsResult<Vec<Option<i64>>> {
        match df.column(name) {
            Ok(c) => Ok(c.cast(&DataType::Int64)?.i64()?.iter().collect()),
            Err(_) => Ok(vec![None; n]),
        }
    };
    let (labels, texts, ids, created) = (strings("label")?, strings("text")?, ints("question_id")?, ints("created")?);
    Ok((0..n)
        .map(|i| BatchKey {
            question_id: ids[i].and_then(|v| u64::try_from(v).ok()),
            text: texts[i].clone(),
            label: labels[i].clone(),
            created: created[i],
        })
        .collect())
}
