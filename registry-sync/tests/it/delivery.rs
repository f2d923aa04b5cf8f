//! A real MLflow webhook delivery end to end: `serve` registers its webhook in the real
//! server, polling is effectively off, the alias moves, and MLflow's signed delivery alone
//! brings the new version to serving through the gateway.

use std::time::Duration;

use mlflow_client::Secret;
use mlflow_client::testing::{free_port, unique_name};
use registry_sync::serve::register_webhook;
use registry_sync::{WebhookRegistration, serve};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_webhook_delivery_deploys_the_new_champion_with_polling_off() {
    ensure_component();
    let (_, reg, versions) = tiny_model("sync-hook", 2, 1).await;
    let [v1, v2] = &versions[..] else { unreachable!() };

    let port = free_port().expect("port");
    let hook =
        WebhookRegistration { name: unique_name("hook"), url: format!("http://127.0.0.1:{port}/webhooks/mlflow") };
    let secret = Secret::new(unique_name("secret-0123456789abcdef0123456789"));
    let state_dir = tempfile::tempdir().expect("state dir");
    let mut cfg = serve_config(&reg, state_dir.path());
    cfg.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port)).into();
    // The first poll is immediate (it deploys v1); the next would be an hour away.
    cfg.poll_interval = Duration::from_secs(3600);
    cfg.webhook_secret = Some(secret.clone());
    cfg.register_webhook = Some(hook.clone());
    let running = serve(cfg.clone()).await.expect("serve starts; it registers its webhook in the background");
    let base = format!("http://{}", running.addr);
    let http = http();
    wait_for_version(&http, &base, &v1.version).await;
    metrics_once_they_contain(&http, &base, "\nstacktag_webhook_registered 1").await;
    let id = webhook_id(&reg, &hook.name).await;

    // Registering again (a restart) finds the same webhook: still one.
    assert_eq!(register_webhook(&reg, &hook, &secret).await.expect("register again"), id);
    assert_eq!(register_webhook(&reg, &hook, &secret).await.expect("register a third time"), id);
    let ours: Vec<_> =
        reg.client().list_webhooks().await.expect("list").into_iter().filter(|w| w.name == hook.name).collect();
    assert_eq!(ours.len(), 1, "{ours:?}");

    promote_until_delivered(&http, &base, &reg, &v2.version, "accepted").await;
    wait_for_version(&http, &base, &v2.version).await;
    let text = metrics_once_they_contain(&http, &base, r#"stacktag_sync_total{outcome="success"} 2"#).await;
    assert!(text.contains(r#"stacktag_sync_total{outcome="success"} 2"#), "{text}");

    // The secret is rotated and registry-sync restarted with it: the same webhook now signs
    // with the new secret (MLflow kept the old one before, and every delivery got 401). MLflow
    // caches webhooks for a moment, so a delivery right after the change may still carry the
    // old signature; one must be accepted soon after.
    running.stop().await;
    let rotated = Secret::new(unique_name("rotated-secret"));
    cfg.webhook_secret = Some(rotated.clone());
    let running = serve(cfg).await.expect("serve restarts with the rotated secret");
    let base = format!("http://{}", running.addr);
    wait_for_version(&http, &base, &v2.version).await;
    // The restart's registration (the PATCH of the secret) lands in the background.
    let text = metrics_once_they_contain(&http, &base, "\nstacktag_webhook_registered 1").await;
    assert!(text.contains("\nstacktag_webhook_registered 1"), "the restart never registered:\n{text}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !delivery_counted(&http, &base, "accepted").await {
        assert!(std::time::Instant::now() < deadline, "no delivery accepted with the rotated secret");
        set_champion(&reg, &v1.version).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let ours: Vec<_> =
        reg.client().list_webhooks().await.expect("list").into_iter().filter(|w| w.name == hook.name).collect();
    assert_eq!(ours.len(), 1, "rotation updates the webhook, not adds one: {ours:?}");
    running.stop().await;
}

/// The id of webhook `name`.
async fn webhook_id(reg: &model_registry::Registry, name: &str) -> String {
    let hooks = reg.client().list_webhooks().await.expect("list webhooks");
    hooks.into_iter().find(|w| w.name == name).map(|w| w.webhook_id).expect("serve registered its webhook")
}

/// Whether the gateway counted a delivery with `result` (every result's counter exists at 0).
async fn delivery_counted(http: &reqwest::Client, base: &str, result: &str) -> bool {
    let needle = format!(r#"stacktag_webhook_deliveries_total{{result="{result}"}} "#);
    metrics_text(http, base)
        .await
        .lines()
        .filter_map(|l| l.strip_prefix(&needle))
        .any(|v| v.trim().parse::<f64>().is_ok_and(|n| n > 0.0))
}

/// Points `champion` at `version` until the gateway counts a delivery with `result`: a new
/// webhook may miss events for up to MLflow's webhook cache TTL (1 s in the harness), so the
/// event is repeated (bounded) rather than waited for a fixed time.
async fn promote_until_delivered(
    http: &reqwest::Client,
    base: &str,
    reg: &model_registry::Registry,
    version: &str,
    result: &str,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        set_champion(reg, version).await;
        let settle = std::time::Instant::now() + Duration::from_millis(1500);
        while std::time::Instant::now() < settle {
            if delivery_counted(http, base, result).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(std::time::Instant::now() < deadline, "no `{result}` delivery within 30 s of moving the alias");
    }
}
