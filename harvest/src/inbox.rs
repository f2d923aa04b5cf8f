//! The trainer's inbox: a local folder or an object-store prefix (`s3://bucket/prefix`,
//! `az://container/prefix`, `gs://bucket/prefix`; a Unity Catalog volume is a folder on a
//! Databricks cluster). A batch is one Parquet object, put whole: a folder gets a staged file
//! renamed into place, S3 and Azure a single PUT, so no reader ever lists half a batch.
//!
//! A new batch repeats nothing: not a question id an earlier batch has, not a text an earlier
//! batch or the evaluation data has (texts compared with case and runs of whitespace folded).
//! So re-running a fetch for the same window writes nothing, and a question never lands in
//! training and in the evaluation data both.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Question;
use crate::label::{self, Label, Skip, SkipCounts};

/// Where batches go.
#[derive(Debug, Clone)]
pub struct Inbox {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    /// The location as given, for messages.
    pub location: String,
    /// A local folder every batch read or written also lands in ([`Inbox::with_local_copy`]).
    local: Option<std::path::PathBuf>,
}

impl Inbox {
    /// A folder (created if missing) or an object-store URL. `options` are the store's
    /// settings (`aws_endpoint`, `azure_storage_account_name`, ...), as the binary read them.
    pub fn open<I, K, V>(location: &str, options: I) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let remote = ["s3://", "s3a://", "az://", "abfs://", "abfss://", "azure://", "gs://"]
            .iter()
            .any(|scheme| location.starts_with(scheme));
        if remote {
            let url = url::Url::parse(location).with_context(|| format!("`{location}` is not a store URL"))?;
            let (store, prefix) = object_store::parse_url_opts(&url, options)
                .with_context(|| format!("cannot open the inbox `{location}`"))?;
            return Ok(Self { store: Arc::from(store), prefix, location: location.to_owned(), local: None });
        }
        std::fs::create_dir_all(location).with_context(|| format!("cannot create the inbox `{location}`"))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(location)
            .with_context(|| format!("cannot open the inbox `{location}`"))?;
        Ok(Self { store: Arc::new(store), prefix: StorePath::default(), location: location.to_owned(), local: None })
    }

    /// An inbox over any store (tests give one that fails on purpose).
    pub fn with_store(store: Arc<dyn ObjectStore>, prefix: StorePath, location: &str) -> Self {
        Self { store, prefix, location: location.to_owned(), local: None }
    }

    /// Keeps a local copy of the inbox in `dir` (created when first written): every batch read
    /// ([`Inbox::seen`]) or put lands there too, and one already there at the size the store
    /// lists is read from there. So a fetch that ends with [`Inbox::copy_to`] the same folder
    /// reads each remote batch once, not once for its keys and again for the copy.
    pub fn with_local_copy(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.local = Some(dir.into());
        self
    }

    /// The batches already there (`*.parquet` directly under the prefix), by name.
    pub async fn batch_names(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.batches().await?.into_iter().map(|(name, _)| name).collect())
    }

    /// The batches with the sizes the store lists, by name.
    async fn batches(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let listing = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .with_context(|| format!("cannot list the inbox `{}`", self.location))?;
        let mut batches: Vec<(String, u64)> = listing
            .objects
            .into_iter()
            .filter_map(|o| o.location.filename().map(|n| (n.to_owned(), o.size)))
            .filter(|(n, _)| n.ends_with(".parquet") && !n.starts_with('.'))
            .collect();
        batches.sort();
        Ok(batches)
    }

    /// One batch's bytes: from `copy` when it holds the batch at the listed size, else from the
    /// store, then kept in `copy`.
    async fn read_batch(&self, name: &str, size: u64, copy: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
        if let Some(local) = copy.map(|dir| dir.join(name))
            && std::fs::metadata(&local).is_ok_and(|m| m.len() == size)
        {
            return std::fs::read(&local).with_context(|| format!("cannot read `{}`", local.display()));
        }
        let path = self.prefix.clone().join(name);
        let read = async { self.store.get(&path).await?.bytes().await };
        let bytes = read.await.with_context(|| format!("cannot read `{name}` in `{}`", self.location))?.to_vec();
        if let Some(dir) = copy {
            keep(dir, name, &bytes)?;
        }
        Ok(bytes)
    }

    /// What every batch there holds: the ids and texts a new batch must not repeat, and the
    /// newest question per label (where to resume).
    pub async fn seen(&self) -> anyhow::Result<Seen> {
        let mut seen = Seen::default();
        for (name, size) in self.batches().await? {
            let bytes = self.read_batch(&name, size, self.local.as_deref()).await?;
            let keys = dataset::batch_keys(&bytes)
                .with_context(|| format!("`{name}` in `{}` is not a batch", self.location))?;
            for key in keys {
                if let Some(id) = key.question_id {
                    seen.ids.insert(id);
                }
                if let Some(text) = &key.text {
                    seen.texts.insert(text_key(text));
                }
                if let (Some(label), Some(created)) = (key.label, key.created) {
                    let newest = seen.newest.entry(label).or_insert(created);
                    *newest = (*newest).max(created);
                }
            }
        }
        Ok(seen)
    }

    /// Copies every batch to the folder `dir` (created), for a reader of local files (`trainer
    /// retrain --data DIR`): a batch already there at the listed size is not fetched again.
    /// Returns the batch files there.
    pub async fn copy_to(&self, dir: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
        let mut out = Vec::new();
        for (name, size) in self.batches().await? {
            self.read_batch(&name, size, Some(dir)).await?;
            out.push(dir.join(name));
        }
        Ok(out)
    }

    /// Puts `batch` as `name` in one write; nothing is written for an empty batch.
    pub async fn put(&self, name: &str, batch: &Batch) -> anyhow::Result<Option<String>> {
        if batch.rows.is_empty() {
            return Ok(None);
        }
        anyhow::ensure!(
            name.ends_with(".parquet") && !name.contains('/'),
            "a batch name is `NAME.parquet`, not `{name}`"
        );
        let bytes = dataset::batch_parquet(&batch.rows).context("cannot encode the batch")?;
        let path = self.prefix.clone().join(name);
        self.store.put(&path, bytes.clone().into()).await.with_context(|| {
            format!("cannot write `{name}` to the inbox `{}` (nothing of it is there)", self.location)
        })?;
        if let Some(dir) = &self.local {
            keep(dir, name, &bytes)?;
        }
        Ok(Some(path.to_string()))
    }
}

/// Writes a batch into a local copy: beside its name, then renamed, so no reader of `dir`
/// sees half of it.
fn keep(dir: &std::path::Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let staged = dir.join(format!(".{name}.tmp"));
    std::fs::write(&staged, bytes).with_context(|| format!("cannot write `{}`", staged.display()))?;
    let local = dir.join(name);
    std::fs::rename(&staged, &local).with_context(|| format!("cannot write `{}`", local.display()))
}

/// What the inbox (and the evaluation data) already hold.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Question ids in earlier batches.
    pub ids: HashSet<u64>,
    /// Texts (folded, hashed) in earlier batches and the evaluation data.
    pub texts: HashSet<[u8; 32]>,
    /// The newest creation date per label in earlier batches: each tag's fetch resumes there.
    pub newest: BTreeMap<String, i64>,
}

impl Seen {
    /// Adds texts the batches must not repeat (the evaluation data).
    pub fn add_texts<'a>(&mut self, texts: impl IntoIterator<Item = &'a str>) {
        self.texts.extend(texts.into_iter().map(text_key));
    }
}

/// A text compared without case or runs of whitespace, hashed.
pub fn text_key(text: &str) -> [u8; 32] {
    let folded: String = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    Sha256::digest(folded.as_bytes()).into()
}

/// A batch being made: labelled, deduplicated rows and what was skipped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Batch {
    /// The rows, in arrival order.
    #[serde(skip)]
    pub rows: Vec<dataset::BatchRow>,
    /// Rows per label.
    pub labels: BTreeMap<Label, u64>,
    /// Questions left out, by reason.
    pub skipped: SkipCounts,
    /// The oldest and newest creation date taken.
    pub created: Option<(i64, i64)>,
}

impl Batch {
    /// Labels `question` and adds it unless it is skipped; ids and texts taken join `seen`, so
    /// a question fetched under two tags or twice in a dump lands once.
    pub fn offer(&mut self, question: &Question, seen: &mut Seen) {
        let label = match label::label(&question.tags) {
            Ok(l) => l,
            Err(why) => return self.skipped.add(why),
        };
        if seen.ids.contains(&question.id) {
            return self.skipped.add(Skip::SeenQuestion);
        }
        let key = text_key(&question.text());
        if seen.texts.contains(&key) {
            return self.skipped.add(Skip::SeenText);
        }
        seen.ids.insert(question.id);
        seen.texts.insert(key);
        *self.labels.entry(label).or_default() += 1;
        self.created = Some(match self.created {
            None => (question.created, question.created),
            Some((a, b)) => (a.min(question.created), b.max(question.created)),
        });
        self.rows.push(question.row(label));
    }

    /// Questions that came in, labelled or not.
    pub fn offered(&self) -> u64 {
        self.rows.len() as u64 + self.skipped.total()
    }
}

/// `batch-<UTC time>-<source>.parquet`: names sort by arrival, which is the trainer's order.
pub fn batch_name(now_unix: i64, source: &str) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(now_unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "batch-{:04}{:02}{:02}T{:02}{:02}{:02}Z-{source}.parquet",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}
