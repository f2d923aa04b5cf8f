//! Unity Catalog model versions: their files live in the version's own storage, not at the
//! run's artifacts. Registering is create (`PENDING_REGISTRATION`, with a `storage_location`)
//! → temporary credentials → upload → finalize (`READY`); reading is temporary credentials →
//! download. The flow is MLflow's `UcModelRegistryStore._create_and_finalize_model_version`
//! and `UnityCatalogModelsArtifactRepository` (`mlflow/store/_unity_catalog/registry/
//! rest_store.py`, `mlflow/store/artifact/unity_catalog_models_artifact_repo.py`).
//!
//! The same two calls work on the other registries, where a version's files are its source:
//! [`Client::create_model_version_with_files`] then only registers, and
//! [`Client::download_model_version`] reads the source.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use crate::client::Client;
use crate::config::RegistryApi;
use crate::error::Error;
use crate::storage::{Store, TemporaryCredentials};
use crate::types::{ModelVersion, READY, Tag};

/// What the temporary credentials may do.
#[derive(Debug, Clone, Copy)]
enum Operation {
    Read,
    ReadWrite,
}

impl Operation {
    fn wire(self) -> &'static str {
        match self {
            Self::Read => "MODEL_VERSION_OPERATION_READ",
            Self::ReadWrite => "MODEL_VERSION_OPERATION_READ_WRITE",
        }
    }
}

/// Work on a new version's files once its number is known
/// ([`Client::create_model_version_with_files`]); an error is the reason.
pub type Prepare<'a> = Box<dyn FnOnce(&ModelVersion) -> Result<(), String> + Send + 'a>;

/// How often a pending version is read again while waiting for `READY`.
const PENDING_POLL: Duration = Duration::from_millis(500);

impl Client {
    /// Registers a new version of `name` from the files in `local_dir`, which are already
    /// uploaded at `source` (the run's artifacts). On Unity Catalog the files are also
    /// uploaded to the version's own storage and the version is finalized; it comes back
    /// `READY`. If the upload or the finalize fails, the pending version is deleted (best
    /// effort, said in the error), so no half-registered version is left to be picked up.
    ///
    /// With `prepare`, it runs on the files once the version's number is known and before they
    /// are the version's (a bundle that names its own version, signed with it); where the
    /// version reads `source` itself (not Unity Catalog), the prepared files are uploaded there
    /// again, over what was there. A failing `prepare` or upload deletes the version too, so
    /// none is left whose files are not the prepared ones.
    pub async fn create_model_version_with_files(
        &self,
        name: &str,
        source: &str,
        run_id: Option<&str>,
        tags: &[Tag],
        local_dir: &Path,
        prepare: Option<Prepare<'_>>,
    ) -> Result<ModelVersion, Error> {
        // Read before any call: a missing directory must not leave a pending version.
        crate::artifacts::local_files(local_dir)?;
        let created = self.create_model_version(name, source, run_id, tags).await?;
        let finished = async {
            let changed_files = prepare.is_some();
            if let Some(prepare) = prepare {
                prepare(&created).map_err(|reason| Error::Artifact {
                    uri: format!("models:/{name}/{}", created.version),
                    reason: format!("cannot prepare the version's files: {reason}"),
                })?;
            }
            let files = crate::artifacts::local_files(local_dir)?;
            match self.cfg.registry {
                RegistryApi::UnityCatalog => self.upload_and_finalize(&created, &files).await,
                _ if changed_files => self.upload_dir(source, "", local_dir).await.map(|_| created.clone()),
                _ => Ok(created.clone()),
            }
        };
        match finished.await {
            Ok(ready) => Ok(ready),
            Err(e) => {
                // A version whose files are not the prepared ones serves nobody; remove it so
                // that a retry starts clean and nothing lists it.
                let _ = self.delete_model_version(name, &created.version).await;
                Err(e)
            }
        }
    }

    async fn upload_and_finalize(
        &self,
        version: &ModelVersion,
        files: &[(String, std::path::PathBuf)],
    ) -> Result<ModelVersion, Error> {
        let (name, number) = (&version.name, &version.version);
        let location = version.storage_location.as_deref().filter(|l| !l.is_empty()).ok_or_else(|| Error::Decode {
            call: "model-versions/create".into(),
            reason: format!("version {number} of `{name}` came without a `storage_location`"),
        })?;
        let mut store = self.open_storage(name, number, location, Operation::ReadWrite).await?;
        for (rel, path) in files {
            let payload = object_store::PutPayload::from(std::fs::read(path).map_err(|source| Error::Io {
                action: "read",
                path: path.display().to_string(),
                source,
            })?);
            if store.put(rel, payload.clone()).await.is_err() {
                // Temporary credentials can expire mid-upload (a big model, a slow link):
                // new ones, and the file once more, as MLflow's client does. A second
                // failure is the error.
                store = self.open_storage(name, number, location, Operation::ReadWrite).await?;
                store.put(rel, payload).await?;
            }
        }
        #[derive(Deserialize)]
        struct Reply {
            model_version: ModelVersion,
        }
        let body = json!({ "name": name, "version": number });
        let finalized: Reply =
            self.call(reqwest::Method::POST, "unity-catalog/model-versions/finalize", &[], Some(&body)).await?;
        self.await_ready(finalized.model_version).await
    }

    /// Waits until `version` is `READY` (finalize is synchronous on Databricks, so this
    /// normally returns at once), for at most [`crate::ClientConfig::pending_timeout`].
    async fn await_ready(&self, mut version: ModelVersion) -> Result<ModelVersion, Error> {
        let started = Instant::now();
        loop {
            match version.status.as_deref() {
                Some(READY) => return Ok(version),
                Some("FAILED_REGISTRATION") => {
                    return Err(Error::RegistrationFailed {
                        reason: version.status_message.clone().unwrap_or_else(|| "no reason given".into()),
                        name: version.name,
                        version: version.version,
                    });
                }
                status if started.elapsed() >= self.cfg.pending_timeout => {
                    return Err(Error::Pending {
                        name: version.name.clone(),
                        version: version.version.clone(),
                        status: status.unwrap_or("without a status").to_owned(),
                        waited: started.elapsed(),
                    });
                }
                _ => {
                    tokio::time::sleep(PENDING_POLL).await;
                    version = self.get_model_version(&version.name, &version.version).await?;
                }
            }
        }
    }

    /// Downloads `version`'s files into `dest` (created) and returns the relative paths
    /// written (sorted): from the version's own storage on Unity Catalog, else from its
    /// source. A version that is not `READY` has no usable files, and is refused.
    pub async fn download_model_version(&self, version: &ModelVersion, dest: &Path) -> Result<Vec<String>, Error> {
        let (store, location) = match VersionFiles::open(self, version).await? {
            VersionFiles::Source(_) => return self.download_dir(&version.source, dest).await,
            VersionFiles::Storage { store, location } => (store, location),
        };
        let files = store.list().await?;
        if files.is_empty() {
            return Err(Error::Artifact { uri: location, reason: "no files there".into() });
        }
        for rel in &files {
            let bytes = store.get(rel).await?;
            crate::artifacts::write_under(dest, rel, &bytes, &location)?;
        }
        Ok(files)
    }

    /// Downloads only the files of `version` its own index names: first `index` (e.g. a
    /// bundle's manifest), then each path `listed` returns for those bytes, into `dest`
    /// (created); returns the paths written, `index` first. Nothing is listed, so a file the
    /// index does not name (say an `x.html` someone added to the version's artifacts) is never
    /// fetched or written. At most `max_files` listed files; an index that is not what
    /// `listed` expects is [`Error::Artifact`] with its reason. Same sources and refusals as
    /// [`Client::download_model_version`]. Then each of `optional` that the version has (a
    /// signature beside the files it signs), skipped where the registry says it does not
    /// exist.
    pub async fn download_model_version_files(
        &self,
        version: &ModelVersion,
        dest: &Path,
        index: &str,
        max_files: usize,
        listed: impl FnOnce(&[u8]) -> Result<Vec<String>, String>,
        optional: &[&str],
    ) -> Result<Vec<String>, Error> {
        let source = VersionFiles::open(self, version).await?;
        let index_bytes = source.get(self, index).await?;
        let names = listed(&index_bytes).map_err(|reason| Error::Artifact { uri: source.uri(index), reason })?;
        if names.len() > max_files {
            return Err(Error::Artifact {
                uri: source.uri(index),
                reason: format!("it lists {} files; at most {max_files} are accepted", names.len()),
            });
        }
        crate::artifacts::write_under(dest, index, &index_bytes, &source.uri(index))?;
        let mut written = vec![index.to_owned()];
        // The index is small and read into memory to be parsed; the files it lists (a model
        // of any size) are streamed to disk.
        for name in names.into_iter().filter(|n| n != index) {
            source.get_to(self, &name, dest).await?;
            written.push(name);
        }
        for name in optional {
            if written.iter().any(|w| w == name) {
                continue;
            }
            match source.get_to(self, name, dest).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
            written.push((*name).to_owned());
        }
        Ok(written)
    }

    async fn open_storage(
        &self,
        name: &str,
        version: &str,
        location: &str,
        operation: Operation,
    ) -> Result<Store, Error> {
        #[derive(Deserialize)]
        struct Reply {
            credentials: TemporaryCredentials,
        }
        let body = json!({ "name": name, "version": version, "operation": operation.wire() });
        let reply: Reply = self
            .call(
                reqwest::Method::POST,
                "unity-catalog/model-versions/generate-temporary-credentials",
                &[],
                Some(&body),
            )
            .await?;
        Store::open(location, &reply.credentials, &self.cfg.storage, self.cfg.retry).await
    }
}

/// Where a version's files are read from: its source in run artifacts (the OSS registry, the
/// workspace registry), or its own storage behind temporary credentials (Unity Catalog).
enum VersionFiles {
    Source(crate::artifacts::ArtifactLocation),
    Storage { store: Store, location: String },
}

impl VersionFiles {
    async fn open(client: &Client, version: &ModelVersion) -> Result<Self, Error> {
        if client.cfg.registry != RegistryApi::UnityCatalog {
            return Ok(Self::Source(crate::artifacts::ArtifactLocation::parse(&version.source)?));
        }
        let (name, number) = (&version.name, &version.version);
        if version.status.as_deref() != Some(READY) {
            return Err(Error::Artifact {
                uri: format!("models:/{name}/{number}"),
                reason: format!(
                    "the version is {}, not READY: its files are incomplete",
                    version.status.as_deref().unwrap_or("without a status")
                ),
            });
        }
        let location = version.storage_location.as_deref().filter(|l| !l.is_empty()).ok_or_else(|| {
            Error::Artifact { uri: format!("models:/{name}/{number}"), reason: "no `storage_location`".into() }
        })?;
        let store = client.open_storage(name, number, location, Operation::Read).await?;
        Ok(Self::Storage { store, location: location.to_owned() })
    }

    /// The bytes of `relative` (one plain path, checked before any request).
    async fn get(&self, client: &Client, relative: &str) -> Result<Vec<u8>, Error> {
        if !crate::artifacts::is_plain_path(relative) {
            return Err(Error::Artifact {
                uri: self.uri(""),
                reason: format!("refusing the listed name `{relative}`"),
            });
        }
        match self {
            Self::Source(root) => client.download_artifact(&root.join(relative).uri()).await,
            Self::Storage { store, .. } => store.get(relative).await,
        }
    }

    /// Writes `relative` (one plain path, checked before any request) under `dest`,
    /// streamed to disk.
    async fn get_to(&self, client: &Client, relative: &str, dest: &Path) -> Result<(), Error> {
        if !crate::artifacts::is_plain_path(relative) {
            return Err(Error::Artifact {
                uri: self.uri(""),
                reason: format!("refusing the listed name `{relative}`"),
            });
        }
        match self {
            Self::Source(root) => client.download_artifact_to(&root.join(relative).uri(), dest, relative).await,
            Self::Storage { store, .. } => {
                let local = crate::artifacts::local_path(dest, relative, &self.uri(relative))?;
                store.get_to(relative, &local, client.cfg.max_response_bytes).await
            }
        }
    }

    fn uri(&self, relative: &str) -> String {
        match self {
            Self::Source(root) => root.join(relative).uri(),
            Self::Storage { location, .. } => format!("{}/{relative}", location.trim_end_matches('/')),
        }
    }
}
