//! What the tests share: paths, the generic component (built once if missing), a registry
//! with the golden tiny bundle registered, and a running `serve`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use edge_classifier::api::ModelManifest;
use mlflow_client::testing::{MlflowServer, unique_name};
use model_registry::{Provenance, Registry, RegistryConfig};
use registry_sync::{ServeConfig, SyncConfig};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn tiny_bundle() -> PathBuf {
    root().join("edge-classifier/tests/fixtures/tiny")
}

pub fn wasmtime() -> PathBuf {
    mlflow_client::testing::tools().wasmtime
}

/// The generic component every test bakes into.
pub fn generic_component() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    target.join(edge_classifier_bake::GENERIC_IN_TARGET)
}

/// Builds the generic component with `scripts/build-edge.sh build` unless it is there (once
/// per test binary).
pub fn ensure_component() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if generic_component().is_file() {
            return;
        }
        let status = Command::new("bash").arg(root().join("scripts/build-edge.sh")).arg("build").status();
        assert!(matches!(status, Ok(s) if s.success()), "`scripts/build-edge.sh build` failed: {status:?}");
    });
}

pub async fn mlflow() -> &'static MlflowServer {
    tokio::task::spawn_blocking(MlflowServer::shared).await.expect("mlflow server thread")
}

pub async fn registry(model: &str) -> Registry {
    let server = mlflow().await;
    let cfg = RegistryConfig {
        client: server.config(),
        experiment: unique_name("sync-exp"),
        model: model.to_owned(),
        signing: Default::default(),
    };
    Registry::new(cfg).expect("registry")
}

/// Registers the golden tiny bundle as a new version of `reg`'s model.
pub async fn register_tiny(reg: &Registry) -> model_registry::Registered {
    let manifest: ModelManifest =
        serde_json::from_slice(&std::fs::read(tiny_bundle().join("manifest.json")).expect("manifest")).expect("parse");
    let from = Provenance { git_commit: "test".into(), trainer_version: "test".into() };
    model_registry::register(reg, &tiny_bundle(), &manifest, &from).await.expect("register tiny bundle")
}

/// A fresh model in the test MLflow (named after `prefix`) with the golden tiny bundle
/// registered `versions` times and `champion` on version number `champion` (1-based): where
/// every sync test starts. Returns the model's name, its registry and the versions in order.
pub async fn tiny_model(
    prefix: &str,
    versions: usize,
    champion: usize,
) -> (String, Registry, Vec<model_registry::Registered>) {
    let model = unique_name(prefix);
    let reg = registry(&model).await;
    let mut registered = Vec::with_capacity(versions);
    for _ in 0..versions {
        registered.push(register_tiny(&reg).await);
    }
    set_champion(&reg, &registered[champion - 1].version).await;
    (model, reg, registered)
}

/// Points `champion` at `version` (a promotion, or a rollback).
pub async fn set_champion(reg: &Registry, version: &str) {
    reg.client().set_alias(reg.model(), "champion", version).await.expect("set champion");
}

pub fn sync_config(reg: &Registry) -> SyncConfig {
    SyncConfig {
        registry: reg.config().clone(),
        eval: dataset::EvalSet::read(&[root().join("trainer/tests/fixtures/tiny.csv")]).expect("eval sample"),
        tolerance: 0.05,
        baker: edge_classifier_bake::Baker { wasmtime: wasmtime(), generic: generic_component() },
        bake_timeout: edge_classifier_bake::BAKE_TIMEOUT,
    }
}

pub fn serve_config(reg: &Registry, state_dir: &Path) -> ServeConfig {
    ServeConfig {
        sync: sync_config(reg),
        alias: "champion".into(),
        state_dir: state_dir.to_owned(),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into(),
        poll_interval: Duration::from_millis(300),
        webhook_secret: None,
        webhook_previous_secret: None,
        register_webhook: None,
        deployers: registry_sync::Deployers::local(),
        web_demo: None,
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("client")
}

/// The version header of `GET /model` through the gateway, if it answers 200.
pub async fn served_version(http: &reqwest::Client, base: &str) -> Option<String> {
    let r = http.get(format!("{base}/model")).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.headers().get(registry_sync::gateway::VERSION_HEADER)?.to_str().ok().map(str::to_owned)
}

/// Waits (bounded) until the gateway serves `version`.
pub async fn wait_for_version(http: &reqwest::Client, base: &str, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let got = served_version(http, base).await;
        if got.as_deref() == Some(version) {
            return;
        }
        assert!(Instant::now() < deadline, "the gateway at `{base}` never served version {version} (last: {got:?})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("metrics body")
}

/// `/metrics` once it contains `needle` (bounded). A sync counts as done only after the old
/// instance drained and stopped, a moment after the new version starts answering.
pub async fn metrics_once_they_contain(http: &reqwest::Client, base: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = metrics_text(http, base).await;
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
