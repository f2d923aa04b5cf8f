//! The `github` deployer against a loopback stand-in for GitHub's API: the dispatch's shape,
//! and a refused dispatch as a failed sync.

use std::time::Duration;

use mlflow_client::Secret;
use mlflow_client::testing::{Fault, FaultServer};
use registry_sync::github::GithubConfig;
use registry_sync::{Deployers, SyncOutcome, serve};

use crate::common::*;

const TOKEN: &str = "ghp_test_token_never_printed";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_dispatches_model_promoted_and_a_refusal_is_deploy_failed() {
    ensure_component();
    let (model, reg, versions) = tiny_model("sync-github", 1, 1).await;
    let v1 = &versions[0];

    // First GitHub refuses (a bad token), then accepts with 204 as it does.
    let github = FaultServer::start(
        None,
        [
            Fault::Reply(
                401,
                r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}"#.into(),
            ),
            Fault::Reply(204, String::new()),
        ],
    )
    .expect("stand-in");
    let state_dir = tempfile::tempdir().expect("state dir");
    let mut cfg = serve_config(&reg, state_dir.path());
    cfg.poll_interval = Duration::from_secs(3600);
    cfg.deployers = Deployers {
        local: true,
        github: Some(GithubConfig {
            api_url: format!("{}/", github.url()),
            repository: "acme/stacktag".into(),
            token: Secret::new(TOKEN),
        }),
    };
    assert!(!format!("{cfg:?}").contains(TOKEN), "the config's Debug prints the token");
    let running = serve(cfg).await.expect("serve starts");
    let base = format!("http://{}", running.addr);
    let http = http();

    // The first (immediate) poll: local serves v1, GitHub refuses, so the sync failed and
    // `current` did not move.
    wait_for_version(&http, &base, &v1.version).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = metrics_text(&http, &base).await;
        if text.contains(r#"stacktag_sync_total{outcome="deploy_failed"} 1"#) || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(text.contains(r#"stacktag_sync_total{outcome="deploy_failed"} 1"#), "{text}");
    assert!(!state_dir.path().join("current").exists(), "`current` moved although a deployer failed");

    // The next poll retries only what failed: no second download or bake, GitHub accepts.
    let outcome = running.syncer.sync().await.expect("the retry succeeds");
    assert!(matches!(outcome, SyncOutcome::Deployed { reused: true, .. }), "{outcome:?}");
    assert!(state_dir.path().join("current").exists());
    assert!(matches!(running.syncer.sync().await, Ok(SyncOutcome::Unchanged { .. })));

    let seen = github.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let wasm = std::fs::read(state_dir.path().join("models").join(&v1.version).join("edge.wasm")).expect("edge.wasm");
    for r in &seen {
        assert_eq!(r.request_line, "POST /repos/acme/stacktag/dispatches HTTP/1.1");
        assert_eq!(r.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
        assert!(r.header("user-agent").is_some_and(|ua| ua.starts_with("stacktag-registry-sync/")));
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json body");
        assert_eq!(
            body,
            serde_json::json!({
                "event_type": "model-promoted",
                "client_payload": {
                    "model": model,
                    "version": v1.version,
                    "run_id": v1.run_id,
                    "sha256": edge_classifier::bundle::sha256_hex(&wasm),
                }
            })
        );
    }
}

#[tokio::test]
async fn an_unreachable_github_is_a_deploy_error_naming_the_url_and_not_the_token() {
    let cfg = GithubConfig {
        api_url: "http://127.0.0.1:9".into(),
        repository: "acme/stacktag".into(),
        token: Secret::new(TOKEN),
    };
    let http = registry_sync::github::client(&cfg).expect("client");
    let model = registry_sync::DeployedModel {
        model: "stacktag".into(),
        version: "3".into(),
        run_id: "r".into(),
        data_snapshot: "d".into(),
        labels: vec![],
        wasm_sha256: None,
    };
    let err = registry_sync::github::dispatch(&http, &cfg, &model, "00").await.expect_err("nothing listens on port 9");
    let message = err.to_string();
    assert!(
        message.contains("http://127.0.0.1:9/repos/acme/stacktag/dispatches") && !message.contains(TOKEN),
        "{message}"
    );
}
