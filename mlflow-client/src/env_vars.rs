//! Every environment variable the client reads, in one place. The names are MLflow's and
//! Databricks' own, so a machine set up for the Python client works unchanged.
//!
//! Only [`ClientConfig::from_env`](crate::ClientConfig::from_env) reads them; everything
//! else takes a resolved [`ClientConfig`](crate::ClientConfig).

/// The tracking server: an `http(s)://` URL, or `databricks` (then [`DATABRICKS_HOST`] and
/// [`DATABRICKS_TOKEN`] say where and who).
pub const TRACKING_URI: &str = "MLFLOW_TRACKING_URI";
/// A bearer token for the tracking server. Never printed.
pub const TRACKING_TOKEN: &str = "MLFLOW_TRACKING_TOKEN";
/// Basic-auth user name for the tracking server (with [`TRACKING_PASSWORD`]).
pub const TRACKING_USERNAME: &str = "MLFLOW_TRACKING_USERNAME";
/// Basic-auth password for the tracking server. Never printed.
pub const TRACKING_PASSWORD: &str = "MLFLOW_TRACKING_PASSWORD";
/// Databricks workspace URL, e.g. `https://adb-123.4.azuredatabricks.net` (the scheme may be
/// left out), used when [`TRACKING_URI`] is `databricks`.
pub const DATABRICKS_HOST: &str = "DATABRICKS_HOST";
/// Databricks personal access token. Never printed.
pub const DATABRICKS_TOKEN: &str = "DATABRICKS_TOKEN";
/// How many times a failed call is retried (connection errors, 429, 5xx). Default 5.
pub const HTTP_REQUEST_MAX_RETRIES: &str = "MLFLOW_HTTP_REQUEST_MAX_RETRIES";
/// The first retry's delay in seconds (a float); each later one doubles, up to
/// [`RetryPolicy::max_backoff`](crate::RetryPolicy::max_backoff). Default 0.5.
pub const HTTP_REQUEST_BACKOFF_FACTOR: &str = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR";
/// Timeout of one HTTP request, in seconds. Default 120.
pub const HTTP_REQUEST_TIMEOUT: &str = "MLFLOW_HTTP_REQUEST_TIMEOUT";
