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
    let secret = Secret::new(unique_name("secret"));
    let state_dir = tempfile::tempdir().expect("state dir");
    let mut cfg = serve_config(&reg, state_dir.path());
    cfg.listen = format!("127.0.0.1:{port}").parse().expect("addr");
    // The first poll is immediate (it deploys v1); the next would be an hour away.
    cfg.poll_interval = Duration::from_secs(3600);
    cfg.webhook_secret = Some(secret.clone());
    cfg.register_webhook = Some(hook.clone());
    let running = serve(cfg).await.expect("serve starts and registers its webhook");
    let base = format!("http://{}", running.addr);
    let http = http();
    wait_for_version(&http, &base, &v1.version).await;

    // Registering again (a restart) finds the same webhook: still one.
    let id = register_webhook(&reg, &hook, &secret).await.expect("register again");
    let again = register_webhook(&reg, &hook, &secret).await.expect("register a third time");
    assert_eq!(id, again);
    let ours: Vec<_> =
        reg.client().list_webhooks().await.expect("list").into_iter().filter(|w| w.name == hook.name).collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0].webhook_id, id);

    // A new webhook may miss events for up to MLFLOW_WEBHOOK_CACHE_TTL (1 s in the harness).
    tokio::time::sleep(Duration::from_secs(3)).await;
    set_champion(&reg, &v2.version).await;
    wait_for_version(&http, &base, &v2.version).await;

    let text = metrics_once_they_contain(&http, &base, r#"stacktag_sync_total{outcome="success"} 2"#).await;
    let accepted = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"stacktag_webhook_deliveries_total{result="accepted"} "#))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(accepted.is_some_and(|n| n >= 1.0), "no accepted delivery counted:\n{text}");
    assert!(text.contains(r#"stacktag_sync_total{outcome="success"} 2"#), "{text}");
}
