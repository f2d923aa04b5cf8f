//! Configuration: MLflow's variables, Databricks, and secrets that never print.

use std::collections::HashMap;
use std::time::Duration;

use mlflow_client::{Auth, ClientConfig, ConfigError, Target, env_vars};

fn resolve(vars: &[(&str, &str)]) -> Result<ClientConfig, ConfigError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    ClientConfig::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn http_uri_with_bearer_token_resolves_and_never_prints_the_token() {
    let cfg =
        resolve(&[(env_vars::TRACKING_URI, "http://127.0.0.1:5000"), (env_vars::TRACKING_TOKEN, "tok-SECRET-123")])
            .expect("valid");
    assert_eq!(cfg.base_url.as_str(), "http://127.0.0.1:5000/");
    assert_eq!(cfg.target, Target::Server);
    assert!(matches!(&cfg.auth, Auth::Bearer(t) if t.expose() == "tok-SECRET-123"));
    let printed = format!(
        "{cfg:?} {:?} {}",
        cfg.auth,
        match &cfg.auth {
            Auth::Bearer(t) => t.to_string(),
            _ => String::new(),
        }
    );
    assert!(!printed.contains("tok-SECRET-123"), "{printed}");
    assert!(printed.contains("****"));
}

#[test]
fn basic_auth_from_variables_and_from_the_url_is_redacted() {
    let cfg = resolve(&[
        (env_vars::TRACKING_URI, "https://mlflow.example/prefix"),
        (env_vars::TRACKING_USERNAME, "ci"),
        (env_vars::TRACKING_PASSWORD, "pw-SECRET"),
    ])
    .expect("valid");
    assert_eq!(cfg.base_url.as_str(), "https://mlflow.example/prefix/");
    assert!(
        matches!(&cfg.auth, Auth::Basic { username, password } if username == "ci" && password.expose() == "pw-SECRET")
    );
    assert!(!format!("{cfg:?}").contains("pw-SECRET"));

    let cfg = ClientConfig::new("http://bob:url-SECRET@127.0.0.1:5000").expect("valid");
    assert_eq!(cfg.base_url.as_str(), "http://127.0.0.1:5000/", "credentials leave the URL");
    assert!(!format!("{cfg:?}").contains("url-SECRET"));

    let err =
        resolve(&[(env_vars::TRACKING_URI, "http://x"), (env_vars::TRACKING_USERNAME, "ci")]).expect_err("no password");
    assert_eq!(err, ConfigError::Missing { var: env_vars::TRACKING_PASSWORD });
}

#[test]
fn databricks_uses_host_and_token() {
    let cfg = resolve(&[
        (env_vars::TRACKING_URI, "databricks"),
        (env_vars::DATABRICKS_HOST, "adb-1.2.azuredatabricks.net"),
        (env_vars::DATABRICKS_TOKEN, "dapi-SECRET"),
    ])
    .expect("valid");
    assert_eq!(cfg.target, Target::Databricks);
    assert_eq!(cfg.base_url.as_str(), "https://adb-1.2.azuredatabricks.net/");
    assert!(!format!("{cfg:?}").contains("dapi-SECRET"));

    assert_eq!(cfg.registry, mlflow_client::RegistryApi::UnityCatalog, "MLflow 3's default on Databricks");

    let err =
        resolve(&[(env_vars::TRACKING_URI, "databricks"), (env_vars::DATABRICKS_HOST, "h")]).expect_err("no token");
    assert!(matches!(&err, ConfigError::Invalid { var: env_vars::DATABRICKS_TOKEN, .. }), "{err:?}");
    assert!(err.to_string().contains(env_vars::DATABRICKS_CLIENT_ID), "{err}");
    let err = resolve(&[(env_vars::TRACKING_URI, "databricks://profile")]).expect_err("profiles unsupported");
    assert!(err.to_string().contains("profiles are not supported"), "{err}");
}

#[test]
fn databricks_oauth_registries_and_storage_follow_mlflows_variables() {
    use mlflow_client::{RegistryApi, env_vars as v};
    let base = [(v::TRACKING_URI, "databricks"), (v::DATABRICKS_HOST, "https://w.cloud.databricks.com")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut all = base.to_vec();
        all.extend_from_slice(extra);
        resolve(&all)
    };
    let cfg = with(&[(v::DATABRICKS_CLIENT_ID, "sp-1"), (v::DATABRICKS_CLIENT_SECRET, "dose-SECRET")]).expect("oauth");
    assert!(matches!(&cfg.auth, Auth::OAuthM2m { client_id, .. } if client_id == "sp-1"));
    assert!(!format!("{cfg:?}").contains("dose-SECRET"));
    // A token wins, as in databricks-sdk; half an OAuth pair is named.
    let cfg = with(&[(v::DATABRICKS_TOKEN, "dapi"), (v::DATABRICKS_CLIENT_ID, "sp-1")]).expect("pat");
    assert!(matches!(cfg.auth, Auth::Bearer(_)));
    let err = with(&[(v::DATABRICKS_CLIENT_ID, "sp-1")]).expect_err("no secret");
    assert_eq!(err, ConfigError::Missing { var: v::DATABRICKS_CLIENT_SECRET });

    let pat = [(v::DATABRICKS_TOKEN, "dapi")];
    let registry = |uri: &'static str| with(&[pat[0], (v::REGISTRY_URI, uri)]).map(|c| c.registry);
    assert_eq!(registry("databricks-uc"), Ok(RegistryApi::UnityCatalog));
    assert_eq!(registry("databricks"), Ok(RegistryApi::DatabricksWorkspace));
    assert!(registry("databricks-uc://profile").is_err());
    assert!(registry("http://elsewhere:5000").is_err(), "a registry apart from tracking");
    let err = resolve(&[(v::TRACKING_URI, "http://127.0.0.1:5000"), (v::REGISTRY_URI, "databricks-uc")])
        .expect_err("UC without a workspace");
    assert!(err.to_string().contains("MLFLOW_TRACKING_URI=databricks"), "{err}");
    assert_eq!(
        resolve(&[(v::TRACKING_URI, "http://127.0.0.1:5000"), (v::REGISTRY_URI, "http://127.0.0.1:5000/")])
            .map(|c| c.registry),
        Ok(RegistryApi::Tracking)
    );

    let cfg = with(&[pat[0], (v::AWS_ENDPOINT_URL_S3, "http://127.0.0.1:9000"), (v::AWS_DEFAULT_REGION, "eu-west-1")])
        .expect("storage");
    assert_eq!(cfg.storage.s3_endpoint.as_ref().map(|u| u.as_str()), Some("http://127.0.0.1:9000/"));
    assert_eq!(cfg.storage.aws_region.as_deref(), Some("eu-west-1"));
    let cfg =
        with(&[pat[0], (v::S3_ENDPOINT_URL, "http://a:1"), (v::AWS_ENDPOINT_URL_S3, "http://b:2")]).expect("both");
    assert_eq!(cfg.storage.s3_endpoint.expect("set").host_str(), Some("a"), "MLflow's variable wins");
    assert!(with(&[pat[0], (v::S3_ENDPOINT_URL, "not a url")]).is_err());
}

#[test]
fn missing_or_unsupported_tracking_uri_is_named() {
    assert_eq!(resolve(&[]).expect_err("unset"), ConfigError::Missing { var: env_vars::TRACKING_URI });
    let err = resolve(&[(env_vars::TRACKING_URI, "file:///tmp/mlruns")]).expect_err("file store");
    assert!(err.to_string().contains("MLFLOW_TRACKING_URI"), "{err}");
}

#[test]
fn retry_settings_follow_mlflow_variables_and_backoff_is_bounded() {
    let cfg = resolve(&[
        (env_vars::TRACKING_URI, "http://127.0.0.1:1"),
        (env_vars::HTTP_REQUEST_MAX_RETRIES, "2"),
        (env_vars::HTTP_REQUEST_BACKOFF_FACTOR, "0.25"),
        (env_vars::HTTP_REQUEST_TIMEOUT, "3"),
    ])
    .expect("valid");
    assert_eq!(cfg.retry.max_retries, 2);
    assert_eq!(cfg.retry.initial_backoff, Duration::from_millis(250));
    assert_eq!(cfg.timeout, Duration::from_secs(3));
    let policy = mlflow_client::RetryPolicy::default();
    assert_eq!(policy.delay(0), Duration::from_millis(500));
    assert_eq!(policy.delay(1), Duration::from_secs(1));
    assert_eq!(policy.delay(40), policy.max_backoff, "capped, no overflow");
    let err = resolve(&[(env_vars::TRACKING_URI, "http://x"), (env_vars::HTTP_REQUEST_MAX_RETRIES, "many")])
        .expect_err("bad");
    assert!(err.to_string().contains(env_vars::HTTP_REQUEST_MAX_RETRIES));
}

#[test]
fn artifact_locations_parse_and_join() {
    use mlflow_client::ArtifactLocation;
    let l = ArtifactLocation::parse("mlflow-artifacts:/1/abc/artifacts").expect("proxy");
    assert_eq!(l, ArtifactLocation::Proxy("1/abc/artifacts".into()));
    assert_eq!(l.join("bundle/").uri(), "mlflow-artifacts:/1/abc/artifacts/bundle");
    let l = ArtifactLocation::parse("mlflow-artifacts://127.0.0.1:5000/1/abc/artifacts").expect("authority");
    assert_eq!(l, ArtifactLocation::Proxy("1/abc/artifacts".into()));
    let l = ArtifactLocation::parse("dbfs:/databricks/mlflow-tracking/1/abc/artifacts").expect("dbfs");
    assert_eq!(l.join("bundle").uri(), "dbfs:/databricks/mlflow-tracking/1/abc/artifacts/bundle");
    let managed =
        ArtifactLocation::parse("dbfs:/databricks/mlflow-tracking/1/abc/artifacts/bundle/m.onnx").expect("managed");
    assert_eq!(
        managed,
        ArtifactLocation::Managed { experiment: "1".into(), run_id: "abc".into(), path: "bundle/m.onnx".into() }
    );
    assert!(ArtifactLocation::parse("dbfs:/databricks/mlflow-tracking/1").is_err(), "no run");
    let plain = ArtifactLocation::parse("dbfs:/FileStore/x").expect("plain dbfs");
    assert_eq!(plain, ArtifactLocation::Dbfs("/FileStore/x".into()));
    let err = ArtifactLocation::parse("s3://bucket/x").expect_err("unsupported");
    assert!(err.to_string().contains("s3://bucket/x"));
}

/// `registry-sync` runs these calls inside axum handlers and tokio tasks, which need `Send`
/// futures; this only has to compile.
#[test]
fn client_futures_are_send() {
    fn is_send<T: Send>(_: T) {}
    let c = mlflow_client::Client::new(ClientConfig::new("http://127.0.0.1:1").expect("url")).expect("client");
    let dir = std::path::Path::new("/nonexistent");
    is_send(c.get_registered_model("m"));
    is_send(c.get_or_create_experiment("e"));
    is_send(c.log_batch("r", &[], &[], &[]));
    is_send(c.upload_artifact("mlflow-artifacts:/1/r/artifacts", "x", Vec::new()));
    is_send(c.upload_dir("mlflow-artifacts:/1/r/artifacts", "bundle", dir));
    is_send(c.download_dir("mlflow-artifacts:/1/r/artifacts/bundle", dir));
    is_send(c.model_versions("m"));
    is_send(c.list_webhooks());
    fn is_sync_clone<T: Send + Sync + Clone>(_: &T) {}
    is_sync_clone(&c);
}
