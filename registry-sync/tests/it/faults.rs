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
    let via_faults = Registry::new(RegistryConfig {
        client,
        experiment: unique_name("sync-exp"),
        model: model.clone(),
        signing: Default::default(),
    })
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
    // Every outcome's counter exists from the start: the refusal's must still be 0.
    assert!(
        text.lines().any(|l| l == r#"stacktag_sync_total{outcome="invalid_bundle"} 0"#),
        "an outage must not get the version refused:\n{text}"
    );
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
    // The next poll does not download and check it all again: the version is known bad until
    // the alias moves, and the failure is still counted under its own outcome.
    let again = running.syncer.sync().await.expect_err("still refused");
    assert!(matches!(again, SyncError::KnownBad { .. }), "{again}");
    assert_eq!(again.outcome(), err.outcome());
    assert!(!state_dir.path().join("models").join(&v2.version).exists());
    let text = metrics_text(&http, &base).await;
    assert!(text.contains(&format!(r#"stacktag_sync_total{{outcome="{}"}} 2"#, err.outcome())), "{text}");
    // An operator's SIGHUP (`Trigger::Retry`) forgets it: the next sync checks it again from
    // the registry, and refuses it again for the same reason.
    assert_eq!(running.syncer.forget_known_bad().as_deref(), Some(v2.version.as_str()));
    let retried = running.syncer.sync().await.expect_err("refused again after the retry");
    assert!(!matches!(retried, SyncError::KnownBad { .. }), "the retry did not check the version again: {retried}");
    assert_eq!(retried.outcome(), err.outcome());
    assert_eq!(classify_ok(&http, &base).await.as_deref(), Some(v1.version.as_str()));
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
    let down = Registry::new(RegistryConfig {
        client,
        experiment: unique_name("sync-exp"),
        model: model.clone(),
        signing: Default::default(),
    })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_the_manifest_does_not_list_are_never_downloaded_or_served_and_answers_are_hardened() {
    ensure_component();
    let (_, reg, versions) = tiny_model("sync-stray", 2, 1).await;
    let [v1, v2] = &versions[..] else { unreachable!() };
    // Someone with write access to v2's artifacts adds a page and a scripted image beside the
    // bundle's files; the manifest (and so every listed file) is untouched.
    let page = b"<script>fetch('/metrics').then(r => r.text()).then(alert)</script>".to_vec();
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#.to_vec();
    reg.client().upload_artifact(&v2.source, "x.html", page).await.expect("stray page");
    reg.client().upload_artifact(&v2.source, "logo.svg", svg).await.expect("stray svg");

    let state_dir = tempfile::tempdir().expect("state dir");
    let site = tempfile::tempdir().expect("site");
    std::fs::write(site.path().join("index.html"), "<!doctype html><title>demo</title>").expect("index");
    let mut cfg = serve_config(&reg, state_dir.path());
    cfg.poll_interval = Duration::from_secs(3600);
    cfg.web_demo = Some(site.path().to_owned());
    let running = serve(cfg).await.expect("serve starts");
    let base = format!("http://{}", running.addr);
    let http = http();
    wait_for_version(&http, &base, &v1.version).await;
    set_champion(&reg, &v2.version).await;
    running.syncer.sync().await.expect("v2 is a valid model");
    wait_for_version(&http, &base, &v2.version).await;

    let model_dir = state_dir.path().join("models").join(&v2.version);
    let mut kept: Vec<String> = walk_names(&model_dir);
    kept.sort();
    assert!(!kept.iter().any(|n| n.ends_with("x.html") || n.ends_with("logo.svg")), "stray files were kept: {kept:?}");
    for stray in ["x.html", "logo.svg"] {
        let r = http.get(format!("{base}/demo/bundle/{stray}")).send().await.expect("GET");
        assert_eq!(r.status(), 404, "{stray} must not be served");
    }
    let manifest = http.get(format!("{base}/demo/bundle/manifest.json")).send().await.expect("manifest");
    assert_eq!(manifest.status(), 200);
    // Every answer, from the gateway or proxied from the instance, is hardened.
    for path in ["/demo/bundle/manifest.json", "/demo/", "/model", "/metrics", "/no-such-route"] {
        let r = http.get(format!("{base}{path}")).send().await.expect("GET");
        let h = r.headers();
        assert_eq!(h.get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"), "{path}");
        let csp = h.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(csp, registry_sync::gateway::CONTENT_SECURITY_POLICY, "{path}");
        assert!(csp.contains("default-src 'self'") && csp.contains("object-src 'none'"), "{path}: {csp}");
    }
    // Every error the gateway itself gives is the API's JSON error, a route with the wrong
    // method included (with `Allow`).
    for (method, path, status, code, allow) in [
        (reqwest::Method::GET, "/no-such-route", 404, "not_found", None),
        (reqwest::Method::POST, "/metrics", 405, "method_not_allowed", Some("GET")),
        (reqwest::Method::DELETE, "/gateway/health", 405, "method_not_allowed", Some("GET")),
        (reqwest::Method::GET, "/webhooks/mlflow", 405, "method_not_allowed", Some("POST")),
        (reqwest::Method::POST, "/demo/", 405, "method_not_allowed", Some("GET")),
    ] {
        let r = http.request(method.clone(), format!("{base}{path}")).send().await.expect("request");
        assert_eq!(r.status(), status, "{method} {path}");
        assert_eq!(r.headers().get("allow").and_then(|v| v.to_str().ok()), allow, "{method} {path}");
        assert_eq!(
            r.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{method} {path}"
        );
        let body: serde_json::Value = r.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains(path)), "{method} {path}: {body}");
    }
    running.stop().await;
}

/// Every file's path under `dir`, relative to it.
fn walk_names(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk_names(&path).into_iter().map(|n| format!("{}/{n}", entry.file_name().to_string_lossy())));
        } else {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn the_web_demo_page_carries_the_gateway_s_content_security_policy() {
    let page = std::fs::read_to_string(root().join("web-demo/index.html")).expect("index.html");
    let meta = page
        .split("<meta http-equiv=\"Content-Security-Policy\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page declares a Content-Security-Policy");
    // `frame-ancestors` is ignored in a `<meta>`, so the page leaves it out; the rest is equal.
    let gateway = registry_sync::gateway::CONTENT_SECURITY_POLICY.replace("; frame-ancestors 'none'", "");
    assert_eq!(meta, gateway);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_secret_shorter_than_32_bytes_is_refused_before_anything_starts() {
    let client = ClientConfig::new("http://127.0.0.1:9").expect("url");
    let reg = Registry::new(RegistryConfig {
        client,
        experiment: unique_name("exp"),
        model: "stacktag".into(),
        signing: Default::default(),
    })
    .expect("reg");
    let state_dir = tempfile::tempdir().expect("state dir");
    let mut cfg = serve_config(&reg, state_dir.path());
    cfg.webhook_secret = Some(mlflow_client::Secret::new("s3cr3t-but-31-bytes-0123456789a"));
    let err = serve(cfg.clone()).await.expect_err("a 31-byte secret");
    assert!(format!("{err:#}").contains("is 31 bytes; at least 32 are needed"), "{err:#}");
    assert!(!format!("{err:#}").contains("s3cr3t"), "the secret is never printed: {err:#}");
    assert_eq!(std::fs::read_dir(state_dir.path()).expect("list").count(), 0, "nothing was written");
    cfg.webhook_secret = Some(mlflow_client::Secret::new("s3cr3t-and-32-bytes-0123456789ab"));
    serve(cfg).await.expect("32 bytes are enough").stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_the_same_state_dir_is_refused_naming_the_first_and_touches_nothing() {
    ensure_component();
    let (_, reg, versions) = tiny_model("sync-lock", 1, 1).await;
    let v1 = &versions[0];
    let state_dir = tempfile::tempdir().expect("state dir");
    let first = serve(serve_config(&reg, state_dir.path())).await.expect("the first serve starts");
    let base = format!("http://{}", first.addr);
    let http = http();
    wait_for_version(&http, &base, &v1.version).await;
    let instances = first.syncer.children().recorded();
    assert_eq!(instances.len(), 1, "{instances:?}");

    let err = serve(serve_config(&reg, state_dir.path())).await.expect_err("a second serve on the same dir");
    let text = format!("{err:#}");
    assert!(
        text.contains("is in use by registry-sync pid") && text.contains(&std::process::id().to_string()),
        "{text}"
    );
    // The first one's instance was not reaped by the second, and it still answers.
    assert_eq!(first.syncer.children().recorded(), instances);
    assert!(registry_sync::children::start_time(instances[0]).is_some(), "the first serve's instance was killed");
    assert_eq!(classify_ok(&http, &base).await.as_deref(), Some(v1.version.as_str()));

    // Once the first is gone, the dir is free.
    first.stop().await;
    let running = serve(serve_config(&reg, state_dir.path())).await.expect("the lock is released with its holder");
    wait_for_version(&http, &format!("http://{}", running.addr), &v1.version).await;
    running.stop().await;
}
