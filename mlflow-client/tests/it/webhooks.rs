//! Webhooks: signatures (MLflow's own test vector), and a real delivery from a real server
//! to a loopback receiver.

use std::time::{Duration, Instant};

use mlflow_client::testing::{Fault, FaultServer, MlflowServer, unique_name};
use mlflow_client::webhooks::{self, WebhookEvent, headers};
use mlflow_client::{Client, Secret};

#[test]
fn signatures_match_mlflow_test_vector() {
    let body = br#"{"entity": "model_version_alias", "action": "created"}"#;
    let (id, ts) = ("42937335-4529-48ee-95bf-ebf31808a5b6", "1795665865");
    let expected = "v1,ndkZpFv7AAUeA8P7aJ7gl6KgN19VKFaiyR9gE2mRlgY=";
    assert_eq!(webhooks::sign(b"s3cr3t", id, ts, body), expected);
    assert!(webhooks::signature_matches(b"s3cr3t", id, ts, body, expected));
    assert!(!webhooks::signature_matches(b"wrong", id, ts, body, expected));
    assert!(!webhooks::signature_matches(b"s3cr3t", id, "1795665866", body, expected));
    assert!(!webhooks::signature_matches(b"s3cr3t", id, ts, b"{}", expected));
    // Keys longer than a block are hashed first (RFC 2104); they must still round-trip.
    let long = [7u8; 100];
    let sig = webhooks::sign(&long, id, ts, body);
    assert!(webhooks::signature_matches(&long, id, ts, body, &sig));
}

#[tokio::test]
async fn an_alias_move_is_delivered_signed_to_a_loopback_receiver() {
    let c = Client::new(MlflowServer::shared().config()).expect("client");
    let receiver = FaultServer::start(None, vec![Fault::Status(200); 50]).expect("receiver");
    let secret = "hook-secret-123";
    let hook = c
        .create_webhook(
            &unique_name("hook"),
            &format!("{}/hook", receiver.url()),
            &[WebhookEvent::alias_created()],
            &Secret::new(secret),
        )
        .await
        .expect("create webhook");
    assert!(c.list_webhooks().await.expect("list").iter().any(|w| w.webhook_id == hook.webhook_id));
    let tested = c.test_webhook(&hook.webhook_id).await.expect("test delivery");
    assert!(tested.success, "{tested:?}");

    let exp = c.get_or_create_experiment(&unique_name("exp")).await.expect("exp");
    let run = c.create_run(&exp, None, &[]).await.expect("run");
    let model = unique_name("model");
    c.create_registered_model(&model).await.expect("model");
    c.create_model_version(&model, &format!("{}/bundle", run.artifact_uri), Some(&run.run_id), &[]).await.expect("v1");

    // Deliveries are asynchronous and a new webhook may miss an event while the server's
    // cache refreshes: move the alias again until one arrives (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivery = loop {
        c.set_alias(&model, "champion", "1").await.expect("alias");
        let waited = Instant::now() + Duration::from_secs(3);
        let found = loop {
            let hit = receiver.seen().into_iter().find(|r| String::from_utf8_lossy(&r.body).contains(&model));
            if hit.is_some() || Instant::now() > waited {
                break hit;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if let Some(d) = found {
            break d;
        }
        assert!(Instant::now() < deadline, "no delivery for model `{model}`; seen: {:?}", receiver.seen());
    };
    let (id, ts, sig) = (
        delivery.header(headers::DELIVERY_ID).expect("id"),
        delivery.header(headers::TIMESTAMP).expect("timestamp"),
        delivery.header(headers::SIGNATURE).expect("signature"),
    );
    assert!(webhooks::signature_matches(secret.as_bytes(), id, ts, &delivery.body, sig), "{delivery:?}");
    let payload: serde_json::Value = serde_json::from_slice(&delivery.body).expect("json");
    assert_eq!(payload["entity"], "model_version_alias");
    assert_eq!(payload["data"]["alias"], "champion");
    assert_eq!(payload["data"]["version"], "1");

    c.delete_webhook(&hook.webhook_id).await.expect("delete");
    assert!(!c.list_webhooks().await.expect("list").iter().any(|w| w.webhook_id == hook.webhook_id));
}
