//! Artifacts: where they live (an [`ArtifactLocation`]) and how they travel.
//!
//! - `mlflow-artifacts:/…`: the OSS server's artifact proxy
//!   (`/api/2.0/mlflow-artifacts/artifacts/<path>`): a `PUT` of raw bytes, a `GET`, and a
//!   listing with `?path=`.
//! - `dbfs:/databricks/mlflow-tracking/<experiment>/<run>/artifacts/…`: a Databricks run's
//!   artifacts in MLflow-managed storage ([`ArtifactLocation::Managed`]). As MLflow's
//!   `DatabricksArtifactRepository` does: `artifacts/credentials-for-write` (or `-read`) gives
//!   a signed URL per file (AWS presigned, GCP signed, Azure SAS, ADLS Gen2 SAS) with the
//!   headers that must go with it; the bytes go straight to cloud storage with those headers
//!   and no Databricks credentials; listing is the tracking API's `artifacts/list`.
//! - any other `dbfs:/…`: Databricks' DBFS API 2.0. A file up to [`DBFS_PUT_MAX`] is one
//!   `dbfs/put` (idempotent with `overwrite`); a larger one streams through `dbfs/create`,
//!   `dbfs/add-block` (base64 blocks of at most 1 MB) and `dbfs/close`. Reads go through
//!   `dbfs/read` in 1 MB windows.

use std::fs;
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{Client, api_error};
use crate::config::Target;
use crate::error::Error;
use crate::types::FileInfo;

/// The artifact proxy's prefix, relative to the server's base URL.
const PROXY: &str = "api/2.0/mlflow-artifacts/artifacts";
/// Largest file sent in one `dbfs/put` (its limit is 1 MB of base64-encoded contents).
pub const DBFS_PUT_MAX: usize = 512 * 1024;
/// Raw bytes per `dbfs/add-block` (base64 grows them by a third: 512 KiB → 683 KiB < 1 MB).
const DBFS_BLOCK: usize = 512 * 1024;
/// Bytes per `dbfs/read` (its limit is 1 MB).
const DBFS_READ: usize = 1024 * 1024;

/// Where an artifact (a file or a directory) lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactLocation {
    /// Behind the OSS server's artifact proxy: the path under its artifact root, e.g.
    /// `1/<run>/artifacts/bundle`.
    Proxy(String),
    /// In Databricks' DBFS: the absolute path, e.g. `/FileStore/stacktag`.
    Dbfs(String),
    /// A Databricks run's artifacts in MLflow-managed storage
    /// (`dbfs:/databricks/mlflow-tracking/<experiment>/<run>/artifacts/<path>`), reached
    /// through signed URLs.
    Managed {
        /// The experiment id.
        experiment: String,
        /// The run id.
        run_id: String,
        /// The path under the run's artifact root (empty for the root).
        path: String,
    },
}

/// Where Databricks keeps runs' artifacts (MLflow's `is_databricks_acled_artifacts_uri`).
const MANAGED_PREFIX: &str = "dbfs:/databricks/mlflow-tracking";

impl ArtifactLocation {
    /// Parses `mlflow-artifacts:/…` (with or without a `//host:port` authority) or `dbfs:/…`.
    pub fn parse(uri: &str) -> Result<Self, Error> {
        let unsupported = || {
            Error::Artifact {
            uri: uri.to_owned(),
            reason: "only `mlflow-artifacts:/…` (the server's artifact proxy) and `dbfs:/…` locations are supported; start the server with `--artifacts-destination` so runs get proxied locations".into(),
        }
        };
        if let Some(rest) = uri.strip_prefix("mlflow-artifacts:") {
            let path = match rest.strip_prefix("//") {
                Some(with_authority) => with_authority.find('/').map_or("", |i| &with_authority[i..]),
                None => rest,
            };
            Ok(Self::Proxy(clean(path)))
        } else if let Some(rest) = uri.strip_prefix("dbfs:") {
            let path = clean(rest);
            let managed_root = clean(&MANAGED_PREFIX["dbfs:".len()..]);
            match path.strip_prefix(managed_root.as_str()).map(clean) {
                Some(managed) => {
                    let parts: Vec<&str> = managed.splitn(4, '/').collect();
                    match parts.as_slice() {
                        [experiment, run_id, "artifacts", rest @ ..] => Ok(Self::Managed {
                            experiment: (*experiment).to_owned(),
                            run_id: (*run_id).to_owned(),
                            path: rest.first().map_or_else(String::new, |r| clean(r)),
                        }),
                        _ => Err(Error::Artifact {
                            uri: uri.to_owned(),
                            reason: format!(
                                "a run's artifacts on Databricks are at `{MANAGED_PREFIX}/<experiment>/<run>/artifacts/…`"
                            ),
                        }),
                    }
                }
                None => Ok(Self::Dbfs(format!("/{path}"))),
            }
        } else {
            Err(unsupported())
        }
    }

    /// The location of `relative` under this one.
    pub fn join(&self, relative: &str) -> Self {
        let rel = clean(relative);
        if rel.is_empty() {
            return self.clone();
        }
        match self {
            Self::Proxy(p) if p.is_empty() => Self::Proxy(rel),
            Self::Proxy(p) => Self::Proxy(format!("{p}/{rel}")),
            Self::Dbfs(p) => Self::Dbfs(format!("{}/{rel}", p.trim_end_matches('/'))),
            Self::Managed { experiment, run_id, path } => Self::Managed {
                experiment: experiment.clone(),
                run_id: run_id.clone(),
                path: if path.is_empty() { rel } else { format!("{path}/{rel}") },
            },
        }
    }

    /// The URI form, e.g. `mlflow-artifacts:/1/<run>/artifacts/bundle`.
    pub fn uri(&self) -> String {
        match self {
            Self::Proxy(p) => format!("mlflow-artifacts:/{p}"),
            Self::Dbfs(p) => format!("dbfs:{p}"),
            Self::Managed { experiment, run_id, path } if path.is_empty() => {
                format!("{MANAGED_PREFIX}/{experiment}/{run_id}/artifacts")
            }
            Self::Managed { experiment, run_id, path } => {
                format!("{MANAGED_PREFIX}/{experiment}/{run_id}/artifacts/{path}")
            }
        }
    }
}

/// Trims slashes at both ends and collapses empty segments.
fn clean(path: &str) -> String {
    path.split('/').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("/")
}

impl Client {
    fn proxy_url(&self, path: &str) -> reqwest::Url {
        let mut url = self.url(PROXY);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path.split('/').filter(|s| !s.is_empty()));
        }
        url
    }

    fn check_target(&self, location: &ArtifactLocation) -> Result<(), Error> {
        match (location, self.config().target) {
            (ArtifactLocation::Proxy(_), Target::Server)
            | (ArtifactLocation::Dbfs(_) | ArtifactLocation::Managed { .. }, Target::Databricks) => Ok(()),
            (l, t) => Err(Error::Artifact {
                uri: l.uri(),
                reason: format!("this location cannot be reached through a {t:?} tracking target"),
            }),
        }
    }

    /// Uploads `bytes` as `relative` under the artifact root `root_uri` (a run's
    /// `artifact_uri`).
    pub async fn upload_artifact(&self, root_uri: &str, relative: &str, bytes: Vec<u8>) -> Result<(), Error> {
        let location = ArtifactLocation::parse(root_uri)?.join(relative);
        self.check_target(&location)?;
        match &location {
            ArtifactLocation::Proxy(path) => {
                let url = self.proxy_url(path);
                let call = format!("artifacts PUT {}", location.uri());
                let answer = self
                    .execute(&call, |http| {
                        http.put(url.clone()).header(CONTENT_TYPE, "application/octet-stream").body(bytes.clone())
                    })
                    .await?;
                if !answer.status.is_success() {
                    return Err(api_error(&call, &answer));
                }
                Ok(())
            }
            ArtifactLocation::Dbfs(path) => self.dbfs_upload(path, &bytes).await,
            ArtifactLocation::Managed { run_id, path, .. } => self.managed_upload(run_id, path, bytes).await,
        }
    }

    /// Uploads every file under the local directory `dir`, recursively, to `prefix` under
    /// `root_uri`, and returns the artifact paths written (sorted).
    pub async fn upload_dir(&self, root_uri: &str, prefix: &str, dir: &Path) -> Result<Vec<String>, Error> {
        let files = local_files(dir)?;
        let mut written = Vec::with_capacity(files.len());
        for (rel, local) in files {
            let bytes = fs::read(&local).map_err(|source| Error::Io {
                action: "read",
                path: local.display().to_string(),
                source,
            })?;
            let target = if prefix.is_empty() { rel } else { format!("{}/{rel}", clean(prefix)) };
            self.upload_artifact(root_uri, &target, bytes).await?;
            written.push(target);
        }
        Ok(written)
    }

    /// The entries directly under `uri`, with paths relative to it. A directory that does not
    /// exist lists as empty.
    pub async fn list_artifacts(&self, uri: &str) -> Result<Vec<FileInfo>, Error> {
        let location = ArtifactLocation::parse(uri)?;
        self.check_target(&location)?;
        #[derive(Deserialize)]
        struct Reply {
            #[serde(default)]
            files: Vec<FileInfo>,
        }
        match &location {
            ArtifactLocation::Proxy(path) => {
                let url = self.url(PROXY);
                let call = format!("artifacts list {}", location.uri());
                let answer = self.execute(&call, |http| http.get(url.clone()).query(&[("path", path)])).await?;
                let reply: Reply = crate::client::decode(&call, answer)?;
                // The proxy answers with paths relative to the listed directory.
                Ok(reply.files)
            }
            ArtifactLocation::Dbfs(path) => {
                let reply: Reply = match self.dbfs_call(Method::GET, "dbfs/list", &[("path", path)], None).await {
                    Ok(v) => serde_json::from_value(v)
                        .map_err(|e| Error::Decode { call: "dbfs/list".into(), reason: e.to_string() })?,
                    Err(e) if e.is_not_found() => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                };
                let base = format!("{}/", path.trim_end_matches('/'));
                Ok(reply
                    .files
                    .into_iter()
                    .map(|f| FileInfo { path: f.path.strip_prefix(&base).unwrap_or(&f.path).to_owned(), ..f })
                    .collect())
            }
            ArtifactLocation::Managed { run_id, path, .. } => self.managed_list(run_id, path).await,
        }
    }

    /// The bytes of the artifact file at `uri`.
    pub async fn download_artifact(&self, uri: &str) -> Result<Vec<u8>, Error> {
        let location = ArtifactLocation::parse(uri)?;
        self.check_target(&location)?;
        match &location {
            ArtifactLocation::Proxy(path) => Ok(self.proxy_get(&location, path, None).await?.body),
            ArtifactLocation::Dbfs(path) => self.dbfs_download(path).await,
            ArtifactLocation::Managed { run_id, path, .. } => self.managed_download(run_id, path).await,
        }
    }

    /// `GET` of a file from the artifact proxy: its body in the answer, or streamed into
    /// `into`; anything but a success is the API's error.
    async fn proxy_get(
        &self,
        location: &ArtifactLocation,
        path: &str,
        into: Option<&Path>,
    ) -> Result<crate::client::Answer, Error> {
        let url = self.proxy_url(path);
        let call = format!("artifacts GET {}", location.uri());
        let answer = self.execute_into(&call, |http| http.get(url.clone()), into).await?;
        match answer.status.is_success() {
            true => Ok(answer),
            false => Err(api_error(&call, &answer)),
        }
    }

    /// Downloads the artifact file at `uri` to the plain relative path `rel` under `dest`
    /// (parents created). From the artifact proxy (OSS MLflow) the body is streamed to disk, so
    /// a file's size costs no memory; DBFS (read through JSON in 1 MiB blocks) and managed
    /// artifacts (one signed URL) are read whole, capped like every answer, then written.
    pub async fn download_artifact_to(&self, uri: &str, dest: &Path, rel: &str) -> Result<(), Error> {
        let local = local_path(dest, rel, uri)?;
        let location = ArtifactLocation::parse(uri)?;
        self.check_target(&location)?;
        match &location {
            ArtifactLocation::Proxy(path) => self.proxy_get(&location, path, Some(&local)).await.map(|_| ()),
            ArtifactLocation::Dbfs(_) | ArtifactLocation::Managed { .. } => {
                let bytes = self.download_artifact(uri).await?;
                fs::write(&local, bytes).map_err(|source| Error::Io {
                    action: "write",
                    path: local.display().to_string(),
                    source,
                })
            }
        }
    }

    /// Downloads the artifact directory at `uri` into the local directory `dest` (created),
    /// recursively, and returns the relative paths written (sorted). An empty or missing
    /// directory is an error: there is nothing to download.
    pub async fn download_dir(&self, uri: &str, dest: &Path) -> Result<Vec<String>, Error> {
        let mut pending = vec![String::new()];
        let mut written = Vec::new();
        let root = ArtifactLocation::parse(uri)?;
        while let Some(dir) = pending.pop() {
            let here = root.join(&dir);
            for entry in self.list_artifacts(&here.uri()).await? {
                // Listings come from the server: each entry must name one plain file or folder
                // directly under the listed one (some servers prefix the folder's own path),
                // or joining it to `dest` could write outside it.
                let listed = entry.path.trim_end_matches('/');
                let name = match dir.is_empty() {
                    true => listed,
                    false => listed.strip_prefix(&format!("{dir}/")).unwrap_or(listed),
                };
                if !is_plain_name(name) {
                    return Err(Error::Artifact {
                        uri: here.uri(),
                        reason: format!("refusing the listed name `{}`", entry.path),
                    });
                }
                let rel = if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") };
                if entry.is_dir {
                    pending.push(rel);
                    continue;
                }
                self.download_artifact_to(&root.join(&rel).uri(), dest, &rel).await?;
                written.push(rel);
            }
        }
        if written.is_empty() {
            return Err(Error::Artifact { uri: uri.to_owned(), reason: "no files there".into() });
        }
        written.sort();
        Ok(written)
    }

    // ---- DBFS (Databricks) -------------------------------------------------------------

    async fn dbfs_call(
        &self,
        method: Method,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, Error> {
        let url = self.url(&format!("api/2.0/{endpoint}"));
        let answer = self
            .execute(endpoint, |http| {
                let mut rb = http.request(method.clone(), url.clone()).query(query);
                if let Some(body) = &body {
                    rb = rb.header(CONTENT_TYPE, "application/json").body(body.to_string());
                }
                rb
            })
            .await?;
        crate::client::decode(endpoint, answer)
    }

    async fn dbfs_upload(&self, path: &str, bytes: &[u8]) -> Result<(), Error> {
        if bytes.len() <= DBFS_PUT_MAX {
            let body = json!({ "path": path, "contents": BASE64.encode(bytes), "overwrite": true });
            self.dbfs_call(Method::POST, "dbfs/put", &[], Some(body)).await?;
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Handle {
            handle: i64,
        }
        let created =
            self.dbfs_call(Method::POST, "dbfs/create", &[], Some(json!({ "path": path, "overwrite": true }))).await?;
        let Handle { handle } = serde_json::from_value(created)
            .map_err(|e| Error::Decode { call: "dbfs/create".into(), reason: e.to_string() })?;
        for block in bytes.chunks(DBFS_BLOCK) {
            // A retried block whose first attempt did land would be appended twice; the
            // caller's digest check catches that (Stacktag verifies every bundle it reads).
            self.dbfs_call(
                Method::POST,
                "dbfs/add-block",
                &[],
                Some(json!({ "handle": handle, "data": BASE64.encode(block) })),
            )
            .await?;
        }
        self.dbfs_call(Method::POST, "dbfs/close", &[], Some(json!({ "handle": handle }))).await?;
        Ok(())
    }

    async fn dbfs_download(&self, path: &str) -> Result<Vec<u8>, Error> {
        #[derive(Deserialize)]
        struct Read {
            #[serde(default)]
            bytes_read: usize,
            #[serde(default)]
            data: String,
        }
        let mut out = Vec::new();
        let length = DBFS_READ.to_string();
        loop {
            let offset = out.len().to_string();
            let v = self
                .dbfs_call(Method::GET, "dbfs/read", &[("path", path), ("offset", &offset), ("length", &length)], None)
                .await?;
            let read: Read = serde_json::from_value(v)
                .map_err(|e| Error::Decode { call: "dbfs/read".into(), reason: e.to_string() })?;
            let chunk = BASE64
                .decode(read.data.as_bytes())
                .map_err(|e| Error::Decode { call: "dbfs/read".into(), reason: e.to_string() })?;
            out.extend_from_slice(&chunk);
            if read.bytes_read == 0 || read.bytes_read < DBFS_READ {
                return Ok(out);
            }
        }
    }
}

/// One path segment that stays where it is joined: not empty, no separator, not `.` or `..`.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// A relative path whose every `/`-separated segment is a plain name: it cannot leave the
/// folder it is joined to.
pub(crate) fn is_plain_path(path: &str) -> bool {
    path.split('/').all(is_plain_name)
}

/// Every file under the local directory `dir`, recursively: its `/`-separated path relative
/// to `dir` and its path on disk, sorted by the former.
pub(crate) fn local_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut files = Vec::new();
    walk(dir, Path::new(""), &mut files)?;
    let mut out: Vec<(String, PathBuf)> = files
        .into_iter()
        .map(|rel| {
            let name = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            (name, dir.join(rel))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Writes `bytes` to `rel` under `dest`, creating folders; `rel` comes from a server's
/// listing, so every segment must be a plain name (or it could write outside `dest`).
pub(crate) fn write_under(dest: &Path, rel: &str, bytes: &[u8], uri: &str) -> Result<(), Error> {
    let local = local_path(dest, rel, uri)?;
    fs::write(&local, bytes).map_err(|source| Error::Io { action: "write", path: local.display().to_string(), source })
}

/// A local file a download is written into chunk by chunk, at most `limit` bytes in all: what
/// the artifact proxy and Unity Catalog storage both stream into (one chunk in memory).
pub(crate) struct CappedFile {
    file: std::io::BufWriter<fs::File>,
    path: PathBuf,
    written: u64,
    limit: u64,
}

impl CappedFile {
    /// Creates (or truncates: a retried download starts again) the file at `path`.
    pub(crate) fn create(path: &Path, limit: u64) -> Result<Self, Error> {
        let file = fs::File::create(path).map_err(|source| Self::io(path, source))?;
        Ok(Self { file: std::io::BufWriter::new(file), path: path.to_owned(), written: 0, limit })
    }

    /// Appends `chunk`, or fails with `too_large()` once the total would pass the limit.
    /// Plain blocking writes: one chunk (kilobytes) to a local disk costs microseconds, less
    /// than a hop to a blocking thread.
    pub(crate) fn write(&mut self, chunk: &[u8], too_large: impl Fn() -> Error) -> Result<(), Error> {
        use std::io::Write;
        self.written += chunk.len() as u64;
        if self.written > self.limit {
            return Err(too_large());
        }
        self.file.write_all(chunk).map_err(|source| Self::io(&self.path, source))
    }

    /// Flushes what is buffered.
    pub(crate) fn finish(mut self) -> Result<(), Error> {
        use std::io::Write;
        self.file.flush().map_err(|source| Self::io(&self.path, source))
    }

    fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { action: "write", path: path.display().to_string(), source }
    }
}

/// Where the listed name `rel` (of the artifact at `uri`) goes under `dest`, with its parent
/// dirs created; refused unless it is a plain relative path.
pub(crate) fn local_path(dest: &Path, rel: &str, uri: &str) -> Result<PathBuf, Error> {
    if !is_plain_path(rel) {
        return Err(Error::Artifact { uri: uri.to_owned(), reason: format!("refusing the listed name `{rel}`") });
    }
    let local = dest.join(rel);
    if let Some(parent) = local.parent() {
        fs::create_dir_all(parent).map_err(|source| Error::Io {
            action: "create",
            path: parent.display().to_string(),
            source,
        })?;
    }
    Ok(local)
}

/// Collects the files under `dir` (relative to it). A symlink is followed only when it stays
/// inside `dir` (a link to `/etc/passwd` or `../secrets` would upload what the folder does not
/// hold): one that leaves it is refused, naming it.
fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let root = fs::canonicalize(dir).map_err(|source| Error::Io {
        action: "resolve",
        path: dir.display().to_string(),
        source,
    })?;
    walk_in(&root, dir, rel, out)
}

fn walk_in(root: &Path, dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let here = dir.join(rel);
    let entries =
        fs::read_dir(&here).map_err(|source| Error::Io { action: "list", path: here.display().to_string(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io { action: "list", path: here.display().to_string(), source })?;
        let rel = rel.join(entry.file_name());
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            continue;
        }
        let path = entry.path();
        let io = |action: &'static str| {
            let path = path.display().to_string();
            move |source| Error::Io { action, path, source }
        };
        if entry.file_type().map_err(io("stat"))?.is_symlink() {
            let target = fs::canonicalize(&path).map_err(io("resolve"))?;
            if !target.starts_with(root) {
                return Err(Error::Io {
                    action: "upload",
                    path: path.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!("a symlink to `{}`, outside the folder being uploaded", target.display()),
                    ),
                });
            }
        }
        if fs::metadata(&path).map_err(io("stat"))?.is_dir() {
            walk_in(root, dir, &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_inside_the_folder_is_uploaded_and_one_leaving_it_is_refused() {
        let outside = tempfile::tempdir().expect("outside");
        std::fs::write(outside.path().join("secret"), "not part of the bundle").expect("secret");
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("model.onnx"), "m").expect("file");
        std::os::unix::fs::symlink(dir.path().join("model.onnx"), dir.path().join("alias.onnx")).expect("link in");
        let names: Vec<String> = local_files(dir.path()).expect("files").into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["alias.onnx", "model.onnx"]);

        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("leak")).expect("link out");
        let err = local_files(dir.path()).expect_err("a link out of the folder").to_string();
        assert!(err.contains("leak") && err.contains("outside the folder"), "{err}");
        std::fs::remove_file(dir.path().join("leak")).expect("rm");
        std::os::unix::fs::symlink("../..", dir.path().join("up")).expect("link up");
        let err = local_files(dir.path()).expect_err("a link to a parent").to_string();
        assert!(err.contains("outside the folder"), "{err}");
    }
}
