//! Where the tracking server is, who we are to it and how hard to retry: resolved once from
//! MLflow's environment variables (or built in code), then handed to [`Client::new`](crate::Client::new).

use std::fmt;
use std::time::Duration;

use reqwest::Url;

use crate::env_vars;
use crate::error::ConfigError;

/// A secret string (token, password). Its `Debug` and `Display` print `****`; only
/// [`Secret::expose`] gives the value, for the one place that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call it only to put it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Secrets arrive in answers too (temporary storage credentials); they stay wrapped.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(d).map(Self)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No credentials (a local OSS server).
    None,
    /// `Authorization: Bearer …` ([`env_vars::TRACKING_TOKEN`] or [`env_vars::DATABRICKS_TOKEN`]).
    Bearer(Secret),
    /// Databricks OAuth machine-to-machine: a service principal's client id and secret traded
    /// at the workspace's `/oidc/v1/token` for short-lived bearer tokens, as databricks-sdk's
    /// `oauth-m2m` does ([`env_vars::DATABRICKS_CLIENT_ID`], [`env_vars::DATABRICKS_CLIENT_SECRET`]).
    OAuthM2m {
        /// The service principal's application (client) id.
        client_id: String,
        /// Its OAuth secret.
        client_secret: Secret,
    },
    /// HTTP basic auth ([`env_vars::TRACKING_USERNAME`] and [`env_vars::TRACKING_PASSWORD`]).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
}

/// Which kind of server this is: it decides how artifacts travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An OSS `mlflow server`: artifacts go through its proxy (`mlflow-artifacts:/…`).
    Server,
    /// A Databricks workspace: artifacts live in DBFS (`dbfs:/…`) and go through the DBFS API.
    Databricks,
}

/// Which model registry API the client speaks. The tracking API is the same everywhere; the
/// registries are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryApi {
    /// The tracking server's own registry (an OSS `mlflow server`): aliases, webhooks.
    Tracking,
    /// Databricks' workspace model registry (`MLFLOW_REGISTRY_URI=databricks`): versions and
    /// tags, but **no aliases**, so nothing that moves or reads `champion` works there.
    DatabricksWorkspace,
    /// Databricks Unity Catalog (`MLFLOW_REGISTRY_URI=databricks-uc`, MLflow's default with a
    /// `databricks` tracking URI): `catalog.schema.model` names, versions whose files are
    /// uploaded to the version's own storage with temporary credentials and then finalized.
    UnityCatalog,
}

impl RegistryApi {
    /// True when the registry has aliases (`champion`, `challenger`).
    pub fn has_aliases(self) -> bool {
        !matches!(self, Self::DatabricksWorkspace)
    }
}

/// Where cloud storage is reached, for files behind temporary credentials (Unity Catalog
/// model versions). Read from the same variables as MLflow's own client, so one test
/// environment (an S3 emulator) serves both clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageConfig {
    /// An S3 endpoint in place of AWS's ([`env_vars::S3_ENDPOINT_URL`], else
    /// [`env_vars::AWS_ENDPOINT_URL_S3`]); path-style requests are used with it.
    pub s3_endpoint: Option<Url>,
    /// The buckets' AWS region ([`env_vars::AWS_REGION`], else [`env_vars::AWS_DEFAULT_REGION`]);
    /// without it the region is asked of the bucket itself.
    pub aws_region: Option<String>,
}

/// Bounded exponential backoff for connection errors, 429 and 5xx answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so at most `max_retries + 1` requests per call).
    pub max_retries: u32,
    /// Delay before the first retry; each later one doubles.
    pub initial_backoff: Duration,
    /// No delay exceeds this (a server's `Retry-After` included).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 5 retries, 0.5 s doubling up to 8 s: a call gives up after about 16 s of waiting,
    /// long enough to ride out a server restart, short enough for a scheduler to notice.
    fn default() -> Self {
        Self { max_retries: 5, initial_backoff: Duration::from_millis(500), max_backoff: Duration::from_secs(8) }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self { max_retries: 0, ..Self::default() }
    }

    /// The delay before retry number `retry` (0-based).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(30));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// A resolved client configuration. Build it with [`ClientConfig::new`] or
/// [`ClientConfig::from_env`]; its `Debug` never shows a secret.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server's base URL (no credentials in it: they were moved into [`Self::auth`]).
    pub base_url: Url,
    /// OSS server or Databricks.
    pub target: Target,
    /// The registry API: the tracking server's own, or one of Databricks' two.
    pub registry: RegistryApi,
    /// Credentials.
    pub auth: Auth,
    /// Cloud storage reached with temporary credentials.
    pub storage: StorageConfig,
    /// How long a Unity Catalog version may stay `PENDING_REGISTRATION` after it was
    /// finalized before registering it fails.
    pub pending_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// The largest answer read, in bytes (each artifact file is one answer); a larger one is
    /// [`crate::Error::TooLarge`], checked as it streams in, not after.
    pub max_response_bytes: u64,
}

/// The default [`ClientConfig::max_response_bytes`]: far above any answer or bundle file this
/// project reads (bundles are a few MB), far below what would exhaust a machine.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 512 * 1024 * 1024;

/// The default per-request timeout, as MLflow's own client has it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The default [`ClientConfig::pending_timeout`]: finalizing is synchronous on Databricks (a
/// finalized version is `READY`), so a minute of `PENDING_REGISTRATION` means it is stuck.
pub const DEFAULT_PENDING_TIMEOUT: Duration = Duration::from_secs(60);

impl ClientConfig {
    /// A configuration for an `http(s)://` tracking URI, without credentials (unless the URL
    /// carries `user:password@`, which becomes basic auth), with the default retry policy.
    pub fn new(tracking_uri: &str) -> Result<Self, ConfigError> {
        let (base_url, auth) = parse_http_uri(tracking_uri)?;
        Ok(Self {
            base_url,
            target: Target::Server,
            registry: RegistryApi::Tracking,
            auth,
            storage: StorageConfig::default(),
            retry: RetryPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            pending_timeout: DEFAULT_PENDING_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
    }

    /// A configuration for a Databricks workspace: its URL and credentials (a personal access
    /// token as [`Auth::Bearer`], or [`Auth::OAuthM2m`]), with Unity Catalog as the registry
    /// (MLflow's default there; see [`Self::with_registry`]).
    pub fn databricks(host: &str, auth: Auth) -> Result<Self, ConfigError> {
        let host = host.trim();
        let with_scheme = if host.contains("://") { host.to_owned() } else { format!("https://{host}") };
        let (base_url, _) = parse_http_uri(&with_scheme).map_err(|_| ConfigError::Invalid {
            var: env_vars::DATABRICKS_HOST,
            reason: format!("`{}` is not a URL", redact_userinfo(host)),
        })?;
        Ok(Self {
            base_url,
            target: Target::Databricks,
            registry: RegistryApi::UnityCatalog,
            auth,
            storage: StorageConfig::default(),
            retry: RetryPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            pending_timeout: DEFAULT_PENDING_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
    }

    /// Resolves the configuration from the process environment ([`env_vars`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Resolves the configuration from `lookup` (a variable name → its value), so callers
    /// can layer flags over the environment and tests need not touch it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let uri = get(env_vars::TRACKING_URI).ok_or(ConfigError::Missing { var: env_vars::TRACKING_URI })?;
        let mut cfg = if uri == "databricks" || uri.starts_with("databricks://") {
            if uri != "databricks" {
                return Err(ConfigError::Invalid {
                    var: env_vars::TRACKING_URI,
                    reason: format!(
                        "`{uri}`: Databricks config profiles are not supported; use `databricks` with `{}` and `{}` (or `{}` and `{}`)",
                        env_vars::DATABRICKS_HOST,
                        env_vars::DATABRICKS_TOKEN,
                        env_vars::DATABRICKS_CLIENT_ID,
                        env_vars::DATABRICKS_CLIENT_SECRET,
                    ),
                });
            }
            let host = get(env_vars::DATABRICKS_HOST).ok_or(ConfigError::Missing { var: env_vars::DATABRICKS_HOST })?;
            Self::databricks(&host, databricks_auth(&get)?)?
        } else {
            let mut cfg = Self::new(&uri)?;
            if let Some(token) = get(env_vars::TRACKING_TOKEN) {
                cfg.auth = Auth::Bearer(Secret::new(token));
            } else if let Some(username) = get(env_vars::TRACKING_USERNAME) {
                let password = get(env_vars::TRACKING_PASSWORD)
                    .ok_or(ConfigError::Missing { var: env_vars::TRACKING_PASSWORD })?;
                cfg.auth = Auth::Basic { username, password: Secret::new(password) };
            }
            cfg
        };
        if let Some(registry) = get(env_vars::REGISTRY_URI) {
            cfg.registry = registry_api(&registry, &uri, cfg.target)?;
        }
        let endpoint = [env_vars::S3_ENDPOINT_URL, env_vars::AWS_ENDPOINT_URL_S3]
            .into_iter()
            .find_map(|var| get(var).map(|v| (var, v)));
        if let Some((var, v)) = endpoint {
            let url = Url::parse(&v).ok().filter(|u| matches!(u.scheme(), "http" | "https")).ok_or_else(|| {
                ConfigError::Invalid { var, reason: format!("`{}` is not an http(s) URL", redact_userinfo(&v)) }
            })?;
            cfg.storage.s3_endpoint = Some(url);
        }
        cfg.storage.aws_region = get(env_vars::AWS_REGION).or_else(|| get(env_vars::AWS_DEFAULT_REGION));
        if let Some(v) = get(env_vars::HTTP_REQUEST_MAX_RETRIES) {
            cfg.retry.max_retries = v.parse().map_err(|_| ConfigError::Invalid {
                var: env_vars::HTTP_REQUEST_MAX_RETRIES,
                reason: format!("`{v}` is not a whole number"),
            })?;
        }
        if let Some(v) = get(env_vars::HTTP_REQUEST_BACKOFF_FACTOR) {
            cfg.retry.initial_backoff = seconds(&v, env_vars::HTTP_REQUEST_BACKOFF_FACTOR)?;
        }
        if let Some(v) = get(env_vars::HTTP_REQUEST_TIMEOUT) {
            cfg.timeout = seconds(&v, env_vars::HTTP_REQUEST_TIMEOUT)?;
        }
        Ok(cfg)
    }

    /// The same configuration with another registry API.
    pub fn with_registry(mut self, registry: RegistryApi) -> Self {
        self.registry = registry;
        self
    }

    /// The same configuration with other storage endpoints.
    pub fn with_storage(mut self, storage: StorageConfig) -> Self {
        self.storage = storage;
        self
    }

    /// The same configuration with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The same configuration with other credentials.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// The same configuration with another limit on one answer's size.
    pub fn with_max_response_bytes(mut self, limit: u64) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// The same configuration with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Databricks credentials as databricks-sdk picks them: a personal access token first, then
/// OAuth machine-to-machine. Half an OAuth pair is named, not ignored.
fn databricks_auth(get: &impl Fn(&str) -> Option<String>) -> Result<Auth, ConfigError> {
    if let Some(token) = get(env_vars::DATABRICKS_TOKEN) {
        return Ok(Auth::Bearer(Secret::new(token)));
    }
    match (get(env_vars::DATABRICKS_CLIENT_ID), get(env_vars::DATABRICKS_CLIENT_SECRET)) {
        (Some(client_id), Some(secret)) => Ok(Auth::OAuthM2m { client_id, client_secret: Secret::new(secret) }),
        (Some(_), None) => Err(ConfigError::Missing { var: env_vars::DATABRICKS_CLIENT_SECRET }),
        (None, Some(_)) => Err(ConfigError::Missing { var: env_vars::DATABRICKS_CLIENT_ID }),
        (None, None) => Err(ConfigError::Invalid {
            var: env_vars::DATABRICKS_TOKEN,
            reason: format!(
                "not set, and neither are `{}` and `{}`: Databricks needs a personal access token or a service principal's OAuth client id and secret",
                env_vars::DATABRICKS_CLIENT_ID,
                env_vars::DATABRICKS_CLIENT_SECRET
            ),
        }),
    }
}

/// `MLFLOW_REGISTRY_URI` → the registry API. Databricks' registries live in the Databricks
/// workspace the tracking URI names; any other registry URI must be the tracking server.
fn registry_api(registry: &str, tracking_uri: &str, target: Target) -> Result<RegistryApi, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { var: env_vars::REGISTRY_URI, reason };
    let api = match registry {
        "databricks-uc" => RegistryApi::UnityCatalog,
        "databricks" => RegistryApi::DatabricksWorkspace,
        r if r.starts_with("databricks") => {
            return Err(invalid(format!(
                "`{r}`: Databricks config profiles are not supported; use `databricks-uc` (Unity Catalog) or `databricks` (the workspace registry)"
            )));
        }
        r if r.trim_end_matches('/') == tracking_uri.trim_end_matches('/') => return Ok(RegistryApi::Tracking),
        r => {
            return Err(invalid(format!(
                "`{}`: a registry apart from the tracking server is supported only as `databricks-uc` or `databricks`",
                redact_userinfo(r)
            )));
        }
    };
    if target != Target::Databricks {
        return Err(invalid(format!(
            "`{registry}` is a Databricks registry: it needs `{}=databricks` and the workspace's `{}`",
            env_vars::TRACKING_URI,
            env_vars::DATABRICKS_HOST
        )));
    }
    Ok(api)
}

fn seconds(v: &str, var: &'static str) -> Result<Duration, ConfigError> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or(ConfigError::Invalid { var, reason: format!("`{v}` is not a number of seconds") })
}

/// Parses an `http(s)://` URI into a base URL (ending in `/`, credentials removed) and the
/// basic auth its userinfo carried.
fn parse_http_uri(uri: &str) -> Result<(Url, Auth), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { var: env_vars::TRACKING_URI, reason };
    let mut url =
        Url::parse(uri.trim()).map_err(|e| invalid(format!("`{}` is not a URL: {e}", redact_userinfo(uri))))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(format!(
            "`{}`: only http(s) tracking servers and `databricks` are supported",
            redact_userinfo(uri)
        )));
    }
    let auth = match url.password() {
        Some(p) => Auth::Basic { username: url.username().to_owned(), password: Secret::new(p) },
        None => Auth::None,
    };
    // Credentials never stay in the URL: reqwest's errors print URLs.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok((url, auth))
}

/// `scheme://user:pass@host…` → `scheme://****@host…`, for messages about a URI.
fn redact_userinfo(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(s), Some(a)) if a > s => format!("{}****{}", &uri[..s + 3], &uri[a..]),
        _ => uri.to_owned(),
    }
}
