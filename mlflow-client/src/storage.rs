//! Cloud storage behind Unity Catalog's temporary credentials, through the `object_store`
//! crate (S3, Azure Data Lake/Blob, GCS; R2 as S3): no request signing is written here.
//!
//! Which credential goes with which store, and how a location is read, follows MLflow's
//! `_get_artifact_repo_from_storage_info` (`mlflow/utils/_unity_catalog_utils.py`): AWS
//! session credentials for `s3://bucket/prefix` (with the server-side encryption the
//! credentials ask for), a user delegation SAS for
//! `abfss://container@account.dfs.core.windows.net/prefix`, an OAuth token for
//! `gs://bucket/prefix`, R2 session credentials for
//! `r2://bucket@account.r2.cloudflarestorage.com/prefix`. The S3 endpoint and region come
//! from the same variables as MLflow's client ([`StorageConfig`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, StaticCredentialProvider};
use serde::Deserialize;

use crate::config::{RetryPolicy, Secret, StorageConfig};
use crate::error::Error;

/// `TemporaryCredentials` of MLflow's `databricks_uc_registry_messages.proto`, as much of it
/// as is used. Exactly one credential kind is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TemporaryCredentials {
    pub aws_temp_credentials: Option<AwsCredentials>,
    pub azure_user_delegation_sas: Option<AzureSas>,
    pub gcp_oauth_token: Option<GcpToken>,
    pub r2_temp_credentials: Option<AwsCredentials>,
    /// `CUSTOMER_HOSTED` or `DEFAULT_STORAGE` (Databricks-managed storage, reached through
    /// presigned URLs instead: not supported here).
    pub storage_mode: Option<String>,
    pub encryption_details: Option<EncryptionDetails>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    #[serde(default)]
    pub session_token: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AzureSas {
    pub sas_token: Secret,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GcpToken {
    pub oauth_token: Secret,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EncryptionDetails {
    pub sse_encryption_details: Option<SseDetails>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SseDetails {
    /// `AWS_SSE_S3` or `AWS_SSE_KMS`.
    pub algorithm: Option<String>,
    pub aws_kms_key_arn: Option<String>,
}

/// One storage location, opened with one set of credentials.
pub(crate) struct Store {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    /// The location, for messages (it holds no credentials).
    pub location: String,
}

impl Store {
    /// Opens `location` with `creds`.
    pub async fn open(
        location: &str,
        creds: &TemporaryCredentials,
        cfg: &StorageConfig,
        retry: RetryPolicy,
    ) -> Result<Self, Error> {
        let fail = |reason: String| Error::Storage { location: location.to_owned(), action: "open".into(), reason };
        if creds.storage_mode.as_deref() == Some("DEFAULT_STORAGE") {
            return Err(Error::Unsupported {
                call: format!("storage `{location}`"),
                reason: "the version lives in Databricks default storage, which is reached through presigned URLs of the Files API; this client supports customer-hosted storage (S3, ADLS, GCS, R2) only".into(),
            });
        }
        let url = reqwest::Url::parse(location).map_err(|e| fail(format!("not a URL: {e}")))?;
        let prefix = StorePath::from(url.path().trim_matches('/'));
        let retry = RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: retry.initial_backoff,
                max_backoff: retry.max_backoff,
                base: 2.0,
            },
            max_retries: retry.max_retries as usize,
            retry_timeout: Duration::from_secs(120),
        };
        let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match (url.scheme(), creds) {
            ("s3" | "s3a", TemporaryCredentials { aws_temp_credentials: Some(aws), .. }) => {
                let bucket = url.host_str().unwrap_or_default().to_owned();
                let region = match (&cfg.aws_region, &cfg.s3_endpoint) {
                    (Some(r), _) => r.clone(),
                    // An emulator answers for any region.
                    (None, Some(_)) => "us-east-1".to_owned(),
                    // Signing needs the bucket's region; S3 says it to anyone who asks.
                    (None, None) => object_store::aws::resolve_bucket_region(&bucket, &Default::default())
                        .await
                        .map_err(|e| fail(format!("cannot find the region of bucket `{bucket}`: {e}")))?,
                };
                let mut b = s3(aws, &bucket, &region, retry);
                if let Some(endpoint) = &cfg.s3_endpoint {
                    b = b
                        .with_endpoint(endpoint.as_str().trim_end_matches('/'))
                        .with_allow_http(endpoint.scheme() == "http")
                        .with_virtual_hosted_style_request(false);
                }
                if let Some(sse) = creds.encryption_details.as_ref().and_then(|e| e.sse_encryption_details.as_ref()) {
                    b = match (sse.algorithm.as_deref(), &sse.aws_kms_key_arn) {
                        // The key's enum is not exported; its documented name is.
                        (Some("AWS_SSE_S3"), _) => match "aws_server_side_encryption".parse() {
                            Ok(key) => b.with_config(key, "AES256"),
                            Err(e) => return Err(fail(format!("cannot ask for SSE-S3: {e}"))),
                        },
                        (Some("AWS_SSE_KMS"), Some(key)) => b.with_sse_kms_encryption(key),
                        _ => b,
                    };
                }
                b.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            ("r2", TemporaryCredentials { r2_temp_credentials: Some(r2), .. }) => {
                let bucket = url.username().to_owned();
                let host = url.host_str().unwrap_or_default();
                s3(r2, &bucket, "auto", retry)
                    .with_endpoint(format!("https://{host}"))
                    .with_virtual_hosted_style_request(false)
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            ("abfss" | "abfs", TemporaryCredentials { azure_user_delegation_sas: Some(sas), .. }) => {
                object_store::azure::MicrosoftAzureBuilder::new()
                    .with_url(location)
                    .with_config(object_store::azure::AzureConfigKey::SasKey, sas.sas_token.expose())
                    .with_retry(retry)
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            ("gs", TemporaryCredentials { gcp_oauth_token: Some(token), .. }) => {
                let credential = object_store::gcp::GcpCredential { bearer: token.oauth_token.expose().to_owned() };
                object_store::gcp::GoogleCloudStorageBuilder::new()
                    .with_bucket_name(url.host_str().unwrap_or_default())
                    .with_credentials(Arc::new(StaticCredentialProvider::new(credential)))
                    .with_retry(retry)
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            (scheme, _) => {
                return Err(fail(format!(
                    "no credentials for `{scheme}:` storage came with the version (Databricks sent {})",
                    creds.kind()
                )));
            }
        };
        let store = built.map_err(|e| fail(e.to_string()))?;
        Ok(Self { store, prefix, location: location.to_owned() })
    }

    fn at(&self, relative: &str) -> StorePath {
        relative.split('/').filter(|s| !s.is_empty()).fold(self.prefix.clone(), |p, part| p.clone().join(part))
    }

    /// Writes `payload` to `relative` under the location (a payload clones without copying
    /// its bytes, so a retry costs nothing).
    pub async fn put(&self, relative: &str, payload: PutPayload) -> Result<(), Error> {
        self.store.put(&self.at(relative), payload).await.map(|_| ()).map_err(|e| Error::Storage {
            location: self.location.clone(),
            action: format!("upload `{relative}`"),
            reason: e.to_string(),
        })
    }

    /// Reads `relative` under the location.
    pub async fn get(&self, relative: &str) -> Result<Vec<u8>, Error> {
        let got = self.object(relative).await?;
        Ok(got.bytes().await.map_err(|e| self.download_failed(relative, e))?.to_vec())
    }

    /// The object at `relative`, not read yet; a missing one is [`Error::StorageNotFound`].
    async fn object(&self, relative: &str) -> Result<object_store::GetResult, Error> {
        match self.store.get(&self.at(relative)).await {
            Err(object_store::Error::NotFound { .. }) => {
                Err(Error::StorageNotFound { location: self.location.clone(), file: relative.to_owned() })
            }
            other => other.map_err(|e| self.download_failed(relative, e)),
        }
    }

    fn download_failed(&self, relative: &str, e: object_store::Error) -> Error {
        Error::Storage {
            location: self.location.clone(),
            action: format!("download `{relative}`"),
            reason: e.to_string(),
        }
    }

    /// Streams `relative` under the location into the local file `to` (created or
    /// truncated), at most `limit` bytes: one chunk in memory at a time.
    pub async fn get_to(&self, relative: &str, to: &Path, limit: u64) -> Result<(), Error> {
        use futures::StreamExt;
        let too_large = || Error::TooLarge { call: format!("download `{relative}` from `{}`", self.location), limit };
        let got = self.object(relative).await?;
        if got.meta.size > limit {
            return Err(too_large());
        }
        let mut file = crate::artifacts::CappedFile::create(to, limit)?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            file.write(&chunk.map_err(|e| self.download_failed(relative, e))?, too_large)?;
        }
        file.finish()
    }

    /// Every file under the location, as paths relative to it (sorted).
    pub async fn list(&self) -> Result<Vec<String>, Error> {
        let fail = |e: object_store::Error| Error::Storage {
            location: self.location.clone(),
            action: "list".into(),
            reason: e.to_string(),
        };
        let mut pending = vec![self.prefix.clone()];
        let mut files = Vec::new();
        while let Some(dir) = pending.pop() {
            let listed = self.store.list_with_delimiter(Some(&dir)).await.map_err(fail)?;
            pending.extend(listed.common_prefixes);
            for object in listed.objects {
                let rel = object
                    .location
                    .prefix_match(&self.prefix)
                    .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect::<Vec<_>>().join("/"));
                match rel {
                    Some(rel) if !rel.is_empty() => files.push(rel),
                    _ => {
                        return Err(Error::Storage {
                            location: self.location.clone(),
                            action: "list".into(),
                            reason: format!("the store listed `{}`, outside the location", object.location),
                        });
                    }
                }
            }
        }
        files.sort();
        Ok(files)
    }
}

fn s3(creds: &AwsCredentials, bucket: &str, region: &str, retry: RetryConfig) -> object_store::aws::AmazonS3Builder {
    let mut b = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_access_key_id(&creds.access_key_id)
        .with_secret_access_key(creds.secret_access_key.expose())
        .with_retry(retry);
    if let Some(token) = &creds.session_token {
        b = b.with_token(token.expose());
    }
    b
}

impl TemporaryCredentials {
    /// Which kind of credential this is, for messages.
    fn kind(&self) -> &'static str {
        match self {
            Self { aws_temp_credentials: Some(_), .. } => "AWS credentials",
            Self { azure_user_delegation_sas: Some(_), .. } => "an Azure SAS",
            Self { gcp_oauth_token: Some(_), .. } => "a GCP token",
            Self { r2_temp_credentials: Some(_), .. } => "R2 credentials",
            _ => "no credentials",
        }
    }
}
