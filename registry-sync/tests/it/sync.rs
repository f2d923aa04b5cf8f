//! Whole syncs: a real `mlflow server`, the golden tiny bundle registered as versions, real
//! bakes and real `wasmtime serve` instances behind the gateway, all on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use mlflow_client::testing::unique_name;
use model_registry::{Registered, Registry};
use registry_sync::gateway::{RUN_ID_HEADER, VERSION_HEADER};
use registry_sync::{Running, SyncError, SyncOutcome, serve};

use crate::common::*;

const DEMO_PAGE: &str = "<!doctype html><title>stacktag demo stand-in</title>";

/// The web demo's `bundle/manifest.json` through the gateway: its `model_version`, and the
/// version header.
async fn demo_manifest_version(http: &reqwest::Client, base: &str) -> (Option<String>, Option<String>) {
    let r = http.get(format!("{base}/demo/bundle/manifest.json")).send().await.expect("demo manifest");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-cache"));
    let header = r.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let manifest: serde_json::Value = r.json().await.expect("manifest json");
    (manifest["model_version"].as_str().map(str::to_owned), header)
}

/// A model with two versions of the tiny bundle, `champion` on the first, served.
struct Fixture {
    reg: &'static Registry,
    v1: Registered,
    v2: Registered,
    state_dir: tempfile::TempDir,
    // The web demo's site: a stand-in page (the gateway serves whatever the build wrote).
    _site: tempfile::TempDir,
    running: Running,
    base: String,
    http: reqwest::Client,
}

/// Registers two versions, lets `before_serve` change the second's artifacts, sets
/// `champion` on the first and waits until the gateway serves it.
async fn two_versions<F, Fut>(prefix: &str, poll_interval: Duration, before_serve: F) -> Fixture
where
    F: FnOnce(&'static Registry, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    ensure_component();
    let (_, reg, versions) = tiny_model(prefix, 2, 1).await;
    // Leaked: one small client per test, for the test's lifetime.
    let reg: &'static Registry = Box::leak(Box::new(reg));
    let [v1, v2]: [_; 2] = versions.try_into().unwrap_or_else(|_| unreachable!());
    before_serve(reg, v2.source.clone()).await;
    let state_dir = tempfile::tempdir().expect("state dir");
    let site = tempfile::tempdir().expect("site dir");
    std::fs::write(site.path().join("index.html"), DEMO_PAGE).expect("index.html");
    let mut cfg = serve_config(reg, state_dir.path());
    cfg.web_demo = Some(site.path().to_owned());
    cfg.poll_interval = poll_interval;
    let running = serve(cfg).await.expect("serve starts");
    let base = format!("http://{}", running.addr);
    let http = http();
    wait_for_version(&http, &base, &v1.version).await;
    Fixture { reg, v1, v2, state_dir, _site: site, running, base, http }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_deploys_the_champion_and_a_swap_fails_no_request() {
    let Fixture { reg, v1, v2, state_dir, running: _running, base, http, _site } =
        two_versions("sync-poll", Duration::from_millis(300), |_, _| async {}).await;

    // The web demo: the site's page, and the serving model's bundle under `bundle/`.
    let no_redirects = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build();
    let r = no_redirects.expect("client").get(format!("{base}/demo")).send().await.expect("demo");
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/demo/");
    let page = http.get(format!("{base}/demo/")).send().await.expect("page").text().await.expect("page text");
    assert_eq!(page, DEMO_PAGE);
    let v1_version = Some(v1.version.clone());
    assert_eq!(demo_manifest_version(&http, &base).await, (v1_version.clone(), v1_version));
    for bad in ["/demo/bundle/..%2Fdeployed.json", "/demo/bundle/.manifest.json.tmp", "/demo/missing.js"] {
        let status = http.get(format!("{base}{bad}")).send().await.expect("bad path").status();
        assert_eq!(status, 404, "{bad}");
    }

    // The stamped manifest names the version too, and the run id is in the header.
    let r = http.get(format!("{base}/model")).send().await.expect("model");
    assert_eq!(r.headers()[RUN_ID_HEADER].to_str().ok(), Some(v1.run_id.as_str()));
    let manifest: serde_json::Value = r.json().await.expect("manifest");
    assert_eq!(manifest["model_version"].as_str(), Some(v1.version.as_str()));

    // Two clients classify back to back while the alias moves and the gateway swaps instances
    // (bounded: they stop once version 2 has answered 50 times, or at the deadline).
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, on_v2) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (http, base, stop, ok, failed, on_v2) =
            (http.clone(), base.clone(), stop.clone(), ok.clone(), failed.clone(), on_v2.clone());
        let v2 = v2.version.clone();
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = http
                    .post(format!("{base}/classify"))
                    .header("content-type", "text/plain")
                    .body("how do i print a list in python")
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if r.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok()) == Some(v2.as_str()) {
                            on_v2.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        failures.push(format!("{other:?}"));
                    }
                }
                // A short pause leaves the 2 cores to the bake and wasmtime's compile.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            failures
        }));
    }
    set_champion(reg, &v2.version).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    while on_v2.load(Ordering::Relaxed) < 50 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.expect("client task"));
    }
    assert!(on_v2.load(Ordering::Relaxed) >= 50, "version {} never answered through the gateway", v2.version);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests during the swap: {failures:?}");
    assert!(ok.load(Ordering::Relaxed) > 50);
    let v2_version = Some(v2.version.clone());
    assert_eq!(demo_manifest_version(&http, &base).await, (v2_version.clone(), v2_version), "the demo's bundle");

    let text = metrics_once_they_contain(&http, &base, r#"stacktag_sync_total{outcome="success"} 2"#).await;
    assert!(
        text.contains(&format!(r#"stacktag_model_info{{version="{}",run_id="{}""#, v2.version, v2.run_id)),
        "{text}"
    );
    assert!(!text.contains(&format!(r#"stacktag_model_info{{version="{}","#, v1.version)), "{text}");
    assert!(text.contains(r#"stacktag_sync_total{outcome="success"} 2"#), "{text}");
    assert!(text.contains(r#"stacktag_predictions_total{label="python"}"#), "{text}");
    assert!(text.contains("stacktag_last_sync_success_timestamp_seconds"), "{text}");
    assert!(
        text.contains(r#"stacktag_gateway_request_duration_seconds_bucket{le="#)
            || text.contains("stacktag_gateway_request_duration_seconds_bucket{route"),
        "{text}"
    );

    // `current` follows, and nothing half-built is left.
    let current = std::fs::read_link(state_dir.path().join("current")).expect("current");
    assert_eq!(current, std::path::Path::new("models").join(&v2.version));
    let leftovers: Vec<_> = std::fs::read_dir(state_dir.path().join("models"))
        .expect("models")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A rollback through the registry's own `rollback` (what `trainer rollback` runs), which
    // follows the `stacktag.previous_champion` tag a promotion writes (written here as the gate
    // would have, since this test moved the alias itself): `champion` goes back, and the
    // gateway follows it like any alias move, reusing v1's model dir.
    let c = reg.client();
    c.set_model_version_tag(reg.model(), &v2.version, model_registry::tags::PREVIOUS_CHAMPION, &v1.version)
        .await
        .expect("previous champion");
    // v1's kept model dir rots meanwhile (half its tokenizer gone): it is checked before reuse
    // and built again from the registry, not deployed broken.
    let kept_tokenizer = state_dir.path().join("models").join(&v1.version).join("bundle/tokenizer.json");
    let whole = std::fs::read(&kept_tokenizer).expect("kept tokenizer");
    std::fs::write(&kept_tokenizer, &whole[..whole.len() / 2]).expect("rot");
    let back = model_registry::rollback(reg).await.expect("rollback");
    assert_eq!((back.from_version.as_str(), back.to_version.as_str()), (v2.version.as_str(), v1.version.as_str()));
    wait_for_version(&http, &base, &v1.version).await;
    let v1_again = Some(v1.version.clone());
    assert_eq!(demo_manifest_version(&http, &base).await, (v1_again.clone(), v1_again));
    let current = std::fs::read_link(state_dir.path().join("current")).expect("current");
    assert_eq!(current, std::path::Path::new("models").join(&v1.version));
    assert_eq!(std::fs::read(&kept_tokenizer).expect("rebuilt tokenizer"), whole, "the rotten dir was deployed");
    let text = metrics_once_they_contain(&http, &base, r#"stacktag_sync_total{outcome="success"} 3"#).await;
    assert!(text.contains(r#"stacktag_sync_total{outcome="success"} 3"#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_artifact_is_refused_and_the_old_model_keeps_answering() {
    // Same size, one byte changed: only the sha256 catches it.
    let tamper = |reg: &'static Registry, source: String| async move {
        let mut onnx = std::fs::read(tiny_bundle().join("model.onnx")).expect("model.onnx");
        let last = onnx.len() - 1;
        onnx[last] ^= 0x01;
        reg.client().upload_artifact(&source, "model.onnx", onnx).await.expect("tamper");
    };
    // Polling once an hour (the first poll serves v1 at start): only the test's own sync tries
    // v2, so it is the one that finds it tampered, not a poll racing it.
    let Fixture { reg, v1, v2, state_dir, running, base, http, _site } =
        two_versions("sync-tamper", Duration::from_secs(3600), tamper).await;

    set_champion(reg, &v2.version).await;
    let err = running.syncer.sync().await.expect_err("a tampered version must be refused");
    assert!(matches!(err, SyncError::InvalidBundle { ref version, .. } if *version == v2.version), "{err}");
    let message = err.to_string();
    assert!(message.contains(&format!("version {}", v2.version)) && message.contains("model.onnx"), "{message}");
    assert_eq!(served_version(&http, &base).await.as_deref(), Some(v1.version.as_str()));
    let r = http
        .post(format!("{base}/classify"))
        .header("content-type", "text/plain")
        .body("java public static void main")
        .send()
        .await
        .expect("classify");
    assert!(r.status().is_success());
    let text = metrics_text(&http, &base).await;
    assert!(text.contains(r#"stacktag_sync_total{outcome="invalid_bundle"} 1"#), "{text}");
    assert!(!state_dir.path().join("models").join(&v2.version).exists(), "a refused version must leave no model dir");

    // A restart serves what `current` points at before it asks MLflow anything.
    drop(running);
    set_champion(reg, &v1.version).await;
    let mut cfg = serve_config(reg, state_dir.path());
    cfg.poll_interval = Duration::from_secs(3600);
    let restarted = serve(cfg).await.expect("serve restarts");
    let base = format!("http://{}", restarted.addr);
    assert_eq!(served_version(&http, &base).await.as_deref(), Some(v1.version.as_str()));
    // The restart restores the gauges, and every outcome's counter is there at 0 before any
    // sync failed (so `rate()` and `absent()` mean what they say).
    let text = metrics_once_they_contain(&http, &base, &format!("stacktag_champion_version {}", v1.version)).await;
    for line in [
        format!("stacktag_deployed_version {}", v1.version),
        format!("stacktag_champion_version {}", v1.version),
        r#"stacktag_sync_total{outcome="invalid_bundle"} 0"#.to_owned(),
        r#"stacktag_sync_total{outcome="resolve_failed"} 0"#.to_owned(),
        r#"stacktag_webhook_deliveries_total{result="bad_signature"} 0"#.to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` after a restart:\n{text}");
    }
    let last_success = text
        .lines()
        .find_map(|l| l.strip_prefix("stacktag_last_sync_success_timestamp_seconds "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(last_success.is_some_and(|t| t > 1.7e9), "the restart did not restore the last success: {last_success:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_the_first_promotion_there_is_nothing_to_serve_and_nothing_failed() {
    ensure_component();
    let reg = registry(&unique_name("sync-empty")).await;
    let state_dir = tempfile::tempdir().expect("state dir");
    let running = serve(serve_config(&reg, state_dir.path())).await.expect("serve starts");
    let base = format!("http://{}", running.addr);
    let http = http();
    // No registered model, then a model without `champion`: nothing to serve, no failure.
    let outcome = running.syncer.sync().await;
    assert!(
        matches!(outcome, Ok(SyncOutcome::NothingYet { ref reason }) if reason.contains("no registered model")),
        "{outcome:?}"
    );
    let v1 = register_tiny(&reg).await;
    let outcome = running.syncer.sync().await;
    assert!(
        matches!(outcome, Ok(SyncOutcome::NothingYet { ref reason }) if reason.contains("no alias")),
        "{outcome:?}"
    );
    let text = metrics_text(&http, &base).await;
    for line in [
        r#"stacktag_sync_total{outcome="resolve_failed"} 0"#,
        "stacktag_champion_version 0",
        "stacktag_deployed_version 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "a fresh registry is its own outcome, not a failure: no `{line}` in:\n{text}"
        );
    }
    // The two syncs above, and the worker's own polls.
    let nothing_yet = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"stacktag_sync_total{outcome="nothing_yet"} "#))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(nothing_yet.is_some_and(|n| n >= 2.0), "nothing_yet counted {nothing_yet:?} times:\n{text}");
    // The first promotion serves as usual.
    set_champion(&reg, &v1.version).await;
    wait_for_version(&http, &base, &v1.version).await;
}

/// A client that sends its body slowly across a swap: it must not hold the old instance (the
/// drain would wait on it, and a body slower than the drain would get a 502), and it is
/// answered by the instance that serves when its request is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_across_a_swap_holds_no_instance_and_is_answered_by_the_new_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Every field bound: the temp dirs live as long as the test.
    let Fixture { reg, v1: _, v2, state_dir: _state_dir, _site, running, base, http } =
        two_versions("sync-slow", Duration::from_secs(3600), |_, _| async {}).await;
    let body = b"how do i print a list in python";
    let mut slow = tokio::net::TcpStream::connect(running.addr).await.expect("connect");
    let head = format!(
        "POST /classify HTTP/1.1\r\nhost: {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        running.addr,
        body.len()
    );
    slow.write_all(head.as_bytes()).await.expect("head");
    slow.write_all(&body[..5]).await.expect("first bytes");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The swap completes (the old instance drained and stopped) while the upload is pending:
    // a sync reports success only after its drain, so it must not wait for this client.
    set_champion(reg, &v2.version).await;
    let synced = tokio::time::timeout(Duration::from_secs(120), running.syncer.sync()).await;
    let outcome = synced.expect("the swap waited on a client that holds no instance").expect("sync");
    assert!(matches!(outcome, SyncOutcome::Deployed { .. }), "{outcome:?}");

    slow.write_all(&body[5..]).await.expect("rest of the body");
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "the slow request failed: {answer}");
    let version =
        answer.lines().find_map(|l| l.strip_prefix(&format!("{VERSION_HEADER}: "))).map(|v| v.trim().to_owned());
    assert_eq!(version.as_deref(), Some(v2.version.as_str()), "answered by the instance serving when it was complete");
    assert_eq!(served_version(&http, &base).await.as_deref(), Some(v2.version.as_str()));
}
