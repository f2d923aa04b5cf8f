//! registry-sync on Databricks: `once` (the deploy workflow's step) and `serve`'s polling
//! against a loopback Unity Catalog workspace (`testing::DatabricksStandin`), where versions
//! are downloaded with temporary credentials from their own storage; and `--register-webhook`
//! refused there, since Databricks delivers no MLflow webhooks.

use mlflow_client::testing::{DatabricksStandin, unique_name};
use model_registry::{Registry, RegistryConfig};
use registry_sync::{OnceOutput, Selector, WebhookRegistration, once, serve};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_and_polling_follow_champion_on_unity_catalog() {
    ensure_component();
    let db = tokio::task::spawn_blocking(DatabricksStandin::shared).await.expect("stand-in thread");
    let model = format!("main.stacktag.{}", unique_name("sync").replace('-', "_"));
    let experiment = format!("/Shared/{}", unique_name("sync"));
    let cfg =
        RegistryConfig::new(db.config(), &experiment, &model, ["--experiment", "--registered-model"]).expect("cfg");
    let reg = Registry::new(cfg).expect("registry");
    let v1 = register_tiny(&reg).await;
    let v2 = register_tiny(&reg).await;
    set_champion(&reg, &v1.version).await;

    let dir = tempfile::tempdir().expect("out dir");
    let out = OnceOutput { wasm: dir.path().join("edge.wasm"), bundle: Some(dir.path().join("bundle")) };
    let deployed =
        once(&sync_config(&reg), &Selector::Alias("champion".into()), &out).await.expect("once on Unity Catalog");
    assert_eq!(deployed.version, v1.version);
    let files = edge_classifier::bundle::read_verified_dir(&dir.path().join("bundle")).expect("the bundle verifies");
    let manifest = edge_classifier::bundle::parse_manifest(&files.manifest).expect("manifest");
    assert_eq!(manifest.model_version.as_deref(), Some(v1.version.as_str()));

    // Polling (no webhook on Databricks) follows the alias.
    let state = tempfile::tempdir().expect("state dir");
    let running = serve(serve_config(&reg, state.path())).await.expect("serve starts");
    let (http, base) = (http(), format!("http://{}", running.addr));
    wait_for_version(&http, &base, &v1.version).await;
    set_champion(&reg, &v2.version).await;
    wait_for_version(&http, &base, &v2.version).await;
    running.stop().await;

    let other = tempfile::tempdir().expect("state dir");
    let mut cfg = serve_config(&reg, other.path());
    cfg.webhook_secret = Some(mlflow_client::Secret::new("whsec-test-0123456789abcdef0123456789abcdef"));
    cfg.register_webhook =
        Some(WebhookRegistration { name: "stacktag".into(), url: "http://127.0.0.1:9/webhooks/mlflow".into() });
    let err = serve(cfg).await.expect_err("no webhooks on Databricks");
    let text = format!("{err:#}");
    assert!(text.contains("--register-webhook") && text.contains("--poll-interval"), "{text}");
}
