//! Every environment variable the client reads, in one place. The names are MLflow's and
//! Databricks' own, so a machine set up for the Python client works unchanged.
//!
//! Only [`ClientConfig::from_env`](crate::ClientConfig::from_env) reads them; everything
//! else takes a resolved [`ClientConfig`](crate::ClientConfig).

/// The tracking server: an `http(s)://` URL, or `databricks` (then [`DATABRICKS_HOST`] and
/// [`DATABRICKS_TOKEN`], or [`DATABRICKS_CLIENT_ID`] and [`DATABRICKS_CLIENT_SECRET`], say
/// where and who).
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
/// Databricks personal access token. Never printed. Wins over OAuth when both are set, as in
/// databricks-sdk.
pub const DATABRICKS_TOKEN: &str = "DATABRICKS_TOKEN";
/// A Databricks service principal's OAuth client id (machine-to-machine, with
/// [`DATABRICKS_CLIENT_SECRET`]).
pub const DATABRICKS_CLIENT_ID: &str = "DATABRICKS_CLIENT_ID";
/// That service principal's OAuth secret. Never printed.
pub const DATABRICKS_CLIENT_SECRET: &str = "DATABRICKS_CLIENT_SECRET";
/// The model registry: unset (the tracking server's own; with a `databricks` tracking URI,
/// Unity Catalog, as in MLflow 3), `databricks-uc` (Unity Catalog) or `databricks` (the
/// workspace registry, which has no aliases).
pub const REGISTRY_URI: &str = "MLFLOW_REGISTRY_URI";
/// An S3 endpoint in place of AWS's, for files behind temporary credentials (MLflow's own
/// variable; wins over [`AWS_ENDPOINT_URL_S3`]).
pub const S3_ENDPOINT_URL: &str = "MLFLOW_S3_ENDPOINT_URL";
/// The AWS SDKs' S3 endpoint override, honoured the same way.
pub const AWS_ENDPOINT_URL_S3: &str = "AWS_ENDPOINT_URL_S3";
/// The AWS region of the buckets behind temporary credentials.
pub const AWS_REGION: &str = "AWS_REGION";
/// Read when [`AWS_REGION`] is not set.
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// How many times a failed call is retried (connection errors, 429, 5xx). Default 5.
pub const HTTP_REQUEST_MAX_RETRIES: &str = "MLFLOW_HTTP_REQUEST_MAX_RETRIES";
/// The first retry's delay in seconds (a float); each later one doubles, up to
/// [`RetryPolicy::max_backoff`](crate::RetryPolicy::max_backoff). Default 0.5.
pub const HTTP_REQUEST_BACKOFF_FACTOR: &str = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR";
/// Timeout of one HTTP request, in seconds. Default 120.
pub const HTTP_REQUEST_TIMEOUT: &str = "MLFLOW_HTTP_REQUEST_TIMEOUT";
