//! One fetch, from a source into the inbox: what `trainer fetch api` and `trainer fetch dump`
//! run. Each reads what the inbox already holds (and the evaluation data's texts), labels and
//! deduplicates what arrives, and writes it as new batches; what came before a failure is
//! written before the failure is reported.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde::Serialize;

use crate::api::{Api, Stop, Window};
use crate::dump::{self, DumpCounts};
use crate::inbox::{Batch, Inbox, batch_name};
use crate::label::{Label, SkipCounts};

/// What a fetch did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// `api` or `dump`.
    pub source: &'static str,
    /// The batches written (store paths), in order.
    pub written: Vec<String>,
    /// Questions that came in.
    pub offered: u64,
    /// Rows written, per label.
    pub labels: BTreeMap<Label, u64>,
    /// Questions left out, by reason.
    pub skipped: SkipCounts,
    /// Per tag (API): the window asked, pages read and why it ended.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, TagReport>,
    /// The dump's rows (dump).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump: Option<DumpCounts>,
    /// The quota left after the last page (API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_remaining: Option<u64>,
}

impl Report {
    fn take(&mut self, batch: &Batch) {
        self.offered += batch.offered();
        for (label, n) in &batch.labels {
            *self.labels.entry(*label).or_default() += n;
        }
        self.skipped.merge(&batch.skipped);
    }

    /// Why some tag stopped early on an error (the batch with what came before is written).
    pub fn failure(&self) -> Option<String> {
        let failed: Vec<String> = self
            .tags
            .iter()
            .filter_map(|(tag, r)| match &r.stop {
                Stop::Failed(why) => Some(format!("`{tag}`: {why}")),
                _ => None,
            })
            .collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }
}

/// One tag's part of an API fetch.
#[derive(Debug, Clone, Serialize)]
pub struct TagReport {
    /// `fromdate`: the inbox's newest question of this label, else `since`.
    pub from: i64,
    /// `todate`.
    pub to: i64,
    /// Pages read.
    pub pages: u32,
    /// Questions the pages held.
    pub questions: usize,
    /// Seconds waited on `backoff`.
    pub backoff_waited: u64,
    /// Why it ended.
    #[serde(flatten)]
    pub stop: Stop,
}

/// Every language tag's questions created since the inbox's newest of that label (or `since`
/// for a label it has none of) up to `until`, in one batch named for `now`.
pub async fn from_api(
    api: &Api,
    inbox: &Inbox,
    eval_texts: &[String],
    since: i64,
    until: i64,
    now: i64,
) -> anyhow::Result<Report> {
    let mut seen = inbox.seen().await?;
    seen.add_texts(eval_texts.iter().map(String::as_str));
    let mut report = Report { source: "api", ..Report::default() };
    let mut batch = Batch::default();
    for (label, tag) in Label::ALL {
        // The newest second again: a question asked in the same second as the newest one
        // landed may have come after the last fetch; the id check drops the repeats.
        let from = seen.newest.get(label.as_str()).copied().unwrap_or(since);
        let window = Window { from, to: until };
        let fetched = api.questions(tag, window).await;
        for q in &fetched.questions {
            batch.offer(q, &mut seen);
        }
        if fetched.quota_remaining.is_some() {
            report.quota_remaining = fetched.quota_remaining;
        }
        let stop = fetched.stopped.clone();
        report.tags.insert(
            tag.to_owned(),
            TagReport {
                from,
                to: until,
                pages: fetched.pages,
                questions: fetched.questions.len(),
                backoff_waited: fetched.backoff_waited,
                stop: stop.clone(),
            },
        );
        // Out of quota: the other tags would fail the same way; they wait for the next run.
        if stop == Stop::QuotaExhausted {
            break;
        }
    }
    report.take(&batch);
    if let Some(path) = inbox.put(&batch_name(now, "api"), &batch).await? {
        report.written.push(path);
    }
    Ok(report)
}

/// Rows per batch of a dump unless told otherwise: a large dump lands in pieces the trainer
/// reads one file at a time.
pub const DEFAULT_BATCH_ROWS: usize = 50_000;

/// Every question of a dump (plain or gzip `Posts.xml`), in batches of at most `batch_rows`,
/// each put as soon as it is full, so memory stays bounded however large the dump (the reader
/// runs on a blocking thread and waits while a batch is being written). Batches are named for
/// `now` and numbered. A malformed byte ends the read: the batches before it, and the rows
/// read since, are written first, then the error is returned.
pub async fn from_dump(
    posts: impl std::io::Read + Send + 'static,
    inbox: &Inbox,
    eval_texts: &[String],
    batch_rows: usize,
    now: i64,
) -> anyhow::Result<Report> {
    anyhow::ensure!(batch_rows > 0, "a batch holds at least one row");
    let mut seen = inbox.seen().await?;
    seen.add_texts(eval_texts.iter().map(String::as_str));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(1);
    let reader = tokio::task::spawn_blocking(move || {
        let mut batch = Batch::default();
        let counts = dump::read_questions(posts, |q| {
            batch.offer(&q, &mut seen);
            if batch.rows.len() < batch_rows {
                return ControlFlow::Continue(());
            }
            // The writer is gone (a put failed): stop reading.
            match tx.blocking_send(std::mem::take(&mut batch)) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        });
        let _ = tx.blocking_send(batch);
        counts
    });
    let mut report = Report { source: "dump", ..Report::default() };
    let mut part = 0usize;
    while let Some(batch) = rx.recv().await {
        report.take(&batch);
        if batch.rows.is_empty() {
            continue;
        }
        part += 1;
        if let Some(path) = inbox.put(&batch_name(now, &format!("dump-{part:04}")), &batch).await? {
            report.written.push(path);
        }
    }
    let counts = reader.await.map_err(|e| anyhow::anyhow!("the dump reader died: {e}"))?;
    report.dump = Some(
        counts.map_err(|e| anyhow::anyhow!(e).context(format!("wrote {} batches before it", report.written.len())))?,
    );
    Ok(report)
}
