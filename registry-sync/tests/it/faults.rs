//! Refusals and outages in the middle of a sync: MLflow failing during the artifact
//! download (a fault server in front of the real one), a bundle cut short at rest, and a
//! bundle whose manifest does not fit its graph. In every case the old model keeps answering
//! and the outcome metric names the failure.

use std::time::Duration;

use mlflow_client::ClientConfig;
use mlflow_client::testing::{Fault, FaultServer, fast_retry, unique_name};
use model_registry::{Registry, RegistryConfig};
use registry_sync::{SyncError, serve};

use crate::common::*;

async fn classify_ok(http: &reqwest::Client, base: &str) -> Option<String> {
    let r = http
        .post(format!("{base}/classify"))
        .header("content-type", "text/plain")
        .body("how do i print a list in python")
        .send()
        .await
        .expect("classify");
    assert!(r.status().is_success(), "the old model stopped answering: {}", r.status());
    r.headers().get(registry_sync::gateway::VERSION_HEADER)?.to_str().ok().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlflow_failing_during_the_download_keeps_the_old_model_and_the_next_poll_recovers() {
    ensure_component();
    let (model, direct, versions) = tiny_model("sync-down", 2, 1).await;
    let [v1, v2] = &versions[..] else { unreachable!() };

    // registry-sync talks to MLflow through the fault server (everything forwarded unless
    // scripted), and polls only when told (its first poll is immediate).
    let faults = FaultServer::start(Some(mlflow().await.url()), []).expect("fault server");
    let client = ClientConfig::new(faults.url()).expect("url").with_retry(fast_retry());
    let via_faults =
        Registry::new(RegistryConfig { client, experiment: unique_name("sync-exp"), model: model.clone() })
            .expect("reg");
    let state_dir = tempfile::tempdir().expect("state dir");
    let mut cfg = serve_config(&via_faults, state_dir.path());
    cfg.poll_interval = Duration::from_secs(3600);
    let running = serve(cfg).await.expect("serve starts");
    let base = format!("http://{}", running.addr);
    let http = http();
    wait_for_version(&http, &base, &v1.version).await;

    // The alias answers and the listing too, then MLflow goes away for the first file: a
    // dropped connection, 503s and a body cut short, as many as the client's retries.
    set_champion(&direct, &v2.version).await;
    let before = faults.seen().len();
    faults.push([Fault::Forward, Fault::Forward, Fault::Drop, Fault::Status(503), Fault::Truncate, Fault::Status(503)]);
    running.poll_now();
    let text = wait_for_metric(&http, &base, r#"stacktag_sync_total{outcome="download_failed"} 1"#).await;
    assert!(!text.contains(r#"outcome="invalid_bundle""#), "an outage must not get the version refused:\n{text}");
    let during: Vec<String> = faults.seen()[before..].iter().map(|r| r.request_line.clone()).collect();
    assert!(
        during.iter().any(|l| l.contains("mlflow-artifacts/artifacts/")),
        "the faults did not hit the download: {during:?}"
    );
    assert_eq!(classify_ok(&http, &base).await.as_deref(), Some(v1.version.as_str()));
    assert!(!state_dir.path().join("models").join(&v2.version).exists(), "a failed download must leave no model dir");

    // MLflow is back: the next poll brings v2.
    running.poll_now();
    wait_for_version(&http, &base, &v2.version).await;
    let text = metrics_once_they_contain(&http, &base, r#"stacktag_sync_total{outcome="success"} 2"#).await;
    assert!(text.contains(r#"stacktag_sync_total{outcome="success"} 2"#), "{text}");
}

async fn wait_for_metric(http: &reqwest::Client, base: &str, line: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let text = metrics_text(http, base).await;
        if text.contains(line) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "no `{line}` in:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Registers v1 and v2, lets `damage` change v2's artifacts, serves v1 with polling off,
/// moves the alias to v2 and runs one sync, which must fail; the old model keeps answering.
async fn refused(prefix: &str, damage: impl AsyncFnOnce(&Registry, &str)) -> (SyncError, String) {
    ensure_component();
    let (_, reg, versions) = tiny_model(prefix, 2, 1).await;
    let [v1, v2] = &versions[..] else { unreachable!() };
    damage(&reg, &v2.source).await;
    let state_dir = tempfile::tempdir().expect("state dir");
    let mut cfg = serve_config(&reg, state_dir.path());
    cfg.poll_interval = Duration::from_secs(3600);
    let running = serve(cfg).await.expect("serve starts");
    let base = format!("http://{}", running.addr);
    let http = http();
    wait_for_version(&http, &base, &v1.version).await;

    set_champion(&reg, &v2.version).await;
    let err = running.syncer.sync().await.expect_err("the damaged version must be refused");
    assert!(err.to_string().contains(&format!("version {}", v2.version)), "{err}");
    assert_eq!(classify_ok(&http, &base).await.as_deref(), Some(v1.version.as_str()));
    assert!(!state_dir.path().join("models").join(&v2.version).exists(), "a refused version must leave no model dir");
    let text = metrics_text(&http, &base).await;
    assert!(text.contains(&format!(r#"stacktag_sync_total{{outcome="{}"}} 1"#, err.outcome())), "{text}");
    (err, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_cut_short_is_refused_and_the_old_model_keeps_answering() {
    let (err, _) = refused("sync-short", async |reg, source| {
        let tokenizer = std::fs::read(tiny_bundle().join("tokenizer.json")).expect("tokenizer");
        let short = tokenizer[..tokenizer.len() / 2].to_vec();
        reg.client().upload_artifact(source, "tokenizer.json", short).await.expect("cut short");
    })
    .await;
    assert!(matches!(err, SyncError::InvalidBundle { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_with_three_labels_for_a_four_output_graph_is_refused() {
    // The files' sizes and digests still match (the manifest does not digest itself), and the
    // manifest parses: only the core's load check, one run of the graph, catches it.
    let (err, _) = refused("sync-shape", async |reg, source| {
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tiny_bundle().join("manifest.json")).expect("manifest"))
                .expect("json");
        let labels = m["labels"].as_array_mut().expect("labels");
        assert_eq!(labels.len(), 4);
        labels.pop();
        let bytes = serde_json::to_vec_pretty(&m).expect("json");
        reg.client().upload_artifact(source, "manifest.json", bytes).await.expect("upload manifest");
    })
    .await;
    assert!(matches!(err, SyncError::InvalidBundle { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("4 probabilities") && message.contains("3 labels"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlflow_down_at_start_up_with_a_webhook_to_register_still_serves_current_then_registers() {
    ensure_component();
    let (model, direct, versions) = tiny_model("sync-start-down", 1, 1).await;
    let v1 = &versions[0];
    let state_dir = tempfile::tempdir().expect("state dir");
    // A first run deploys v1 into the state dir.
    let running = serve(serve_config(&direct, state_dir.path())).await.expect("serve starts");
    let http = http();
    wait_for_version(&http, &format!("http://{}", running.addr), &v1.version).await;
    running.stop().await;

    // Restarted while MLflow answers nothing but 503s, with a webhook to register, as the loop
    // always asks.
    let faults = FaultServer::start(Some(mlflow().await.url()), []).expect("fault server");
    faults.fail_matching("/api/", Fault::Status(503), usize::MAX);
    let client = ClientConfig::new(faults.url()).expect("url").with_retry(fast_retry());
    let down = Registry::new(RegistryConfig { client, experiment: unique_name("sync-exp"), model: model.clone() })
        .expect("reg");
    let mut cfg = serve_config(&down, state_dir.path());
    let hook_name = unique_name("hook");
    cfg.webhook_secret = Some(mlflow_client::Secret::new(unique_name("secret-at-least-32-bytes-long")));
    cfg.register_webhook = Some(registry_sync::WebhookRegistration {
        name: hook_name.clone(),
        url: "http://127.0.0.1:9/webhooks/mlflow".into(),
    });
    let running = serve(cfg).await.expect("serve starts although MLflow is down");
    let base = format!("http://{}", running.addr);
    assert_eq!(served_version(&http, &base).await.as_deref(), Some(v1.version.as_str()), "`current` serves at once");
    assert_eq!(classify_ok(&http, &base).await.as_deref(), Some(v1.version.as_str()));
    let text = wait_for_metric(&http, &base, "\nstacktag_webhook_registration_failures_total 2").await;
    assert!(text.contains("\nstacktag_webhook_registered 0"), "{text}");

    // MLflow is back: the background registration goes through and creates the webhook.
    faults.heal();
    let text = wait_for_metric(&http, &base, "\nstacktag_webhook_registered 1").await;
    assert!(text.contains("\nstacktag_webhook_registered 1"), "{text}");
    let hooks = direct.client().list_webhooks().await.expect("list");
    assert_eq!(hooks.iter().filter(|w| w.name == hook_name).count(), 1, "{hooks:?}");
    running.stop().await;
}
