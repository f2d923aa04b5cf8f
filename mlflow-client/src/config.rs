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
    /// Credentials.
    pub auth: Auth,
    /// Retries.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
}

/// The default per-request timeout, as MLflow's own client has it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

impl ClientConfig {
    /// A configuration for an `http(s)://` tracking URI, without credentials (unless the URL
    /// carries `user:password@`, which becomes basic auth), with the default retry policy.
    pub fn new(tracking_uri: &str) -> Result<Self, ConfigError> {
        let (base_url, auth) = parse_http_uri(tracking_uri)?;
        Ok(Self { base_url, target: Target::Server, auth, retry: RetryPolicy::default(), timeout: DEFAULT_TIMEOUT })
    }

    /// A configuration for a Databricks workspace: its URL and a personal access token.
    pub fn databricks(host: &str, token: Secret) -> Result<Self, ConfigError> {
        let host = host.trim();
        let with_scheme = if host.contains("://") { host.to_owned() } else { format!("https://{host}") };
        let (base_url, _) = parse_http_uri(&with_scheme).map_err(|_| ConfigError::Invalid {
            var: env_vars::DATABRICKS_HOST,
            reason: format!("`{}` is not a URL", redact_userinfo(host)),
        })?;
        Ok(Self {
            base_url,
            target: Target::Databricks,
            auth: Auth::Bearer(token),
            retry: RetryPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
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
                        "`{uri}`: Databricks config profiles are not supported; use `databricks` with `{}` and `{}`",
                        env_vars::DATABRICKS_HOST,
                        env_vars::DATABRICKS_TOKEN
                    ),
                });
            }
            let host = get(env_vars::DATABRICKS_HOST).ok_or(ConfigError::Missing { var: env_vars::DATABRICKS_HOST })?;
            let token =
                get(env_vars::DATABRICKS_TOKEN).ok_or(ConfigError::Missing { var: env_vars::DATABRICKS_TOKEN })?;
            Self::databricks(&host, Secret::new(token))?
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

    /// The same configuration with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
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
