//! A Databricks run's artifacts in MLflow-managed storage, through signed URLs, as MLflow's
//! `DatabricksArtifactRepository` (`mlflow/store/artifact/databricks_artifact_repo.py`)
//! reaches them: `artifacts/credentials-for-write` / `credentials-for-read` answer, per
//! path, a signed URL, its type and the headers that must go with it; the bytes go to cloud
//! storage directly, with exactly those headers and without the workspace's credentials.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder};
use serde::Deserialize;
use serde_json::json;

use crate::client::{Client, api_error};
use crate::error::Error;
use crate::types::FileInfo;

/// `ArtifactCredentialInfo` of MLflow's `databricks_artifacts.proto`.
#[derive(Debug, Clone, Deserialize)]
struct Credential {
    signed_uri: String,
    /// `AWS_PRESIGNED_URL`, `GCP_SIGNED_URL`, `AZURE_SAS_URI` or `AZURE_ADLS_GEN2_SAS_URI`.
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    headers: Vec<Header>,
    #[serde(skip)]
    header_map: HeaderMap,
}

#[derive(Debug, Clone, Deserialize)]
struct Header {
    name: String,
    value: String,
}

#[derive(Debug, Clone, Copy)]
enum Access {
    Read,
    Write,
}

impl Client {
    /// Uploads `bytes` to `path` of run `run_id`'s artifacts. A refused signed URL (it may
    /// have expired between issue and use) gets new credentials and one more try.
    pub(crate) async fn managed_upload(&self, run_id: &str, path: &str, bytes: Vec<u8>) -> Result<(), Error> {
        let first = self.credential(run_id, path, Access::Write).await?;
        if self.put_signed(&first, path, &bytes).await.is_ok() {
            return Ok(());
        }
        let second = self.credential(run_id, path, Access::Write).await?;
        self.put_signed(&second, path, &bytes).await
    }

    /// The bytes of `path` of run `run_id`'s artifacts.
    pub(crate) async fn managed_download(&self, run_id: &str, path: &str) -> Result<Vec<u8>, Error> {
        let cred = self.credential(run_id, path, Access::Read).await?;
        let call = format!("signed GET of `{path}`");
        let answer = self.send(&call, |http| with_headers(http.get(&cred.signed_uri), &cred)).await?;
        if !answer.status.is_success() {
            return Err(storage_error(&call, &answer));
        }
        Ok(answer.body)
    }

    /// The entries directly under `path` of run `run_id`'s artifacts, relative to it, through
    /// the tracking API's `artifacts/list` (all pages). A file lists as empty, as in MLflow.
    pub(crate) async fn managed_list(&self, run_id: &str, path: &str) -> Result<Vec<FileInfo>, Error> {
        #[derive(Deserialize)]
        struct Reply {
            #[serde(default)]
            files: Vec<FileInfo>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut files = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("run_id", run_id), ("path", path)];
            if let Some(t) = &token {
                query.push(("page_token", t));
            }
            let reply: Reply = self.call(Method::GET, "artifacts/list", &query, None).await?;
            files.extend(reply.files);
            match reply.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        if let [only] = files.as_slice()
            && only.path == path
            && !only.is_dir
        {
            return Ok(Vec::new());
        }
        // Paths come relative to the run's artifact root; callers want them relative to `path`.
        let base = if path.is_empty() { String::new() } else { format!("{}/", path.trim_end_matches('/')) };
        Ok(files
            .into_iter()
            .map(|f| FileInfo { path: f.path.strip_prefix(&base).unwrap_or(&f.path).to_owned(), ..f })
            .collect())
    }

    async fn credential(&self, run_id: &str, path: &str, access: Access) -> Result<Credential, Error> {
        #[derive(Deserialize)]
        struct Reply {
            #[serde(default)]
            credential_infos: Vec<Credential>,
        }
        let endpoint = match access {
            Access::Read => "artifacts/credentials-for-read",
            Access::Write => "artifacts/credentials-for-write",
        };
        let body = json!({ "run_id": run_id, "path": [path] });
        let reply: Reply = self.call(Method::POST, endpoint, &[], Some(&body)).await?;
        let cred = reply.credential_infos.into_iter().next().ok_or_else(|| Error::Decode {
            call: endpoint.into(),
            reason: format!("no credential for `{path}` of run `{run_id}`"),
        })?;
        cred.checked(endpoint)
    }

    /// One file to a signed URL, the way its type needs it.
    async fn put_signed(&self, cred: &Credential, path: &str, bytes: &[u8]) -> Result<(), Error> {
        let call = format!("signed PUT of `{path}`");
        let check = |answer: crate::client::Answer| match answer.status.is_success() {
            true => Ok(()),
            false => Err(storage_error(&call, &answer)),
        };
        match cred.kind.as_str() {
            "AWS_PRESIGNED_URL" | "GCP_SIGNED_URL" => {
                let answer = self
                    .send(&call, |http| with_headers(http.put(&cred.signed_uri), cred).body(bytes.to_vec()))
                    .await?;
                check(answer)
            }
            // One Put Blob: the bundle's files are far below its 5000 MiB limit.
            "AZURE_SAS_URI" => {
                let answer = self
                    .send(&call, |http| {
                        with_headers(http.put(&cred.signed_uri), cred)
                            .header("x-ms-blob-type", "BlockBlob")
                            .body(bytes.to_vec())
                    })
                    .await?;
                check(answer)
            }
            // ADLS Gen2: create the file, append the bytes, flush them.
            "AZURE_ADLS_GEN2_SAS_URI" => {
                let with_query = |extra: &str| {
                    let sep = if cred.signed_uri.contains('?') { '&' } else { '?' };
                    format!("{}{sep}{extra}", cred.signed_uri)
                };
                let create = with_query("resource=file");
                check(self.send(&call, |http| with_headers(http.put(&create), cred)).await?)?;
                if !bytes.is_empty() {
                    let append = with_query("action=append&position=0");
                    check(
                        self.send(&call, |http| with_headers(http.patch(&append), cred).body(bytes.to_vec())).await?,
                    )?;
                }
                let flush = with_query(&format!("action=flush&position={}", bytes.len()));
                check(self.send(&call, |http| with_headers(http.patch(&flush), cred)).await?)
            }
            other => Err(Error::Artifact {
                uri: path.to_owned(),
                reason: format!("Databricks sent a signed URL of type `{other}`, which this client cannot use"),
            }),
        }
    }
}

/// The request with every header the credential came with (checked when it arrived).
fn with_headers(rb: RequestBuilder, cred: &Credential) -> RequestBuilder {
    rb.headers(cred.header_map.clone())
}

impl Credential {
    /// Its headers as HTTP headers. One that is not a valid header is an error, not dropped:
    /// the signature would not match without it.
    fn checked(mut self, call: &str) -> Result<Self, Error> {
        let mut map = HeaderMap::new();
        for h in &self.headers {
            let (Ok(name), Ok(value)) = (HeaderName::try_from(h.name.as_str()), HeaderValue::from_str(&h.value)) else {
                return Err(Error::Decode {
                    call: call.to_owned(),
                    reason: format!("the signed URL came with header `{}`, which is not a valid HTTP header", h.name),
                });
            };
            map.append(name, value);
        }
        self.header_map = map;
        Ok(self)
    }
}

/// A refused signed-URL request. Cloud storage answers in XML; the signed URL itself is not
/// repeated (its query string is a credential).
fn storage_error(call: &str, answer: &crate::client::Answer) -> Error {
    let text = String::from_utf8_lossy(&answer.body);
    let code = xml_tag(&text, "Code")
        .unwrap_or_else(|| answer.status.canonical_reason().unwrap_or("HTTP_ERROR").to_uppercase().replace(' ', "_"));
    let message = xml_tag(&text, "Message").unwrap_or_else(|| match api_error(call, answer) {
        Error::Api { message, .. } => message,
        other => other.to_string(),
    });
    Error::Api { call: call.to_owned(), status: answer.status.as_u16(), error_code: code, message }
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim().to_owned()).filter(|s| !s.is_empty())
}
