//! `POST /webhooks/mlflow` at the router level: only a signed, fresh, first-seen delivery
//! about our alias wakes the sync worker.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use mlflow_client::Secret;
use mlflow_client::webhooks::{headers, sign};
use registry_sync::instance::Upstream;
use registry_sync::metrics::Metrics;
use registry_sync::webhook::{Receiver, Verdict, unix_now};
use registry_sync::{AppState, Trigger, app};
use tokio::sync::mpsc;
use tower::ServiceExt;

const SECRET: &str = "s3cr3t";

fn state() -> (Arc<AppState>, mpsc::Receiver<Trigger>) {
    let (tx, rx) = mpsc::channel(16);
    let receiver = Receiver::new(Some(Secret::new(SECRET)), "stacktag", "champion");
    let metrics = Arc::new(Metrics::new());
    let upstream = Arc::new(Upstream::new(metrics.clone()));
    (Arc::new(AppState::new(upstream, metrics, receiver, tx).expect("state")), rx)
}

fn alias_body(alias: &str) -> String {
    format!(
        r#"{{"entity":"model_version_alias","action":"created","timestamp":"t","data":{{"name":"stacktag","alias":"{alias}","version":"2"}}}}"#
    )
}

fn delivery(id: &str, ts: i64, body: &str, signature: Option<String>) -> Request<Body> {
    let mut b = Request::post("/webhooks/mlflow")
        .header("content-type", "application/json")
        .header(headers::DELIVERY_ID, id)
        .header(headers::TIMESTAMP, ts.to_string());
    if let Some(s) = signature {
        b = b.header(headers::SIGNATURE, s);
    }
    b.body(Body::from(body.to_owned())).expect("request")
}

fn signed(id: &str, ts: i64, body: &str) -> Request<Body> {
    delivery(id, ts, body, Some(sign(SECRET.as_bytes(), id, &ts.to_string(), body.as_bytes())))
}

async fn status(state: &Arc<AppState>, req: Request<Body>) -> StatusCode {
    app(state.clone()).oneshot(req).await.expect("router answers").status()
}

#[test]
fn toolchain_test_vector_verifies() {
    // docs/toolchain.md's vector: the receiver accepts its signature (and ignores the event, which
    // names no alias).
    let receiver = Receiver::new(Some(Secret::new("s3cr3t")), "stacktag", "champion");
    let mut h = HeaderMap::new();
    h.insert(headers::DELIVERY_ID, "42937335-4529-48ee-95bf-ebf31808a5b6".parse().expect("h"));
    h.insert(headers::TIMESTAMP, "1795665865".parse().expect("h"));
    h.insert(headers::SIGNATURE, "v1,ndkZpFv7AAUeA8P7aJ7gl6KgN19VKFaiyR9gE2mRlgY=".parse().expect("h"));
    let body = br#"{"entity": "model_version_alias", "action": "created"}"#;
    assert_eq!(receiver.judge(&h, body, 1795665865), Verdict::Ignored);
    h.insert(headers::SIGNATURE, "v1,AAAApFv7AAUeA8P7aJ7gl6KgN19VKFaiyR9gE2mRlgY=".parse().expect("h"));
    assert_eq!(receiver.judge(&h, body, 1795665865), Verdict::BadSignature);
}

#[tokio::test]
async fn bad_signature_stale_timestamp_and_replay_trigger_no_sync() {
    let (state, mut rx) = state();
    let now = unix_now();
    let body = alias_body("champion");

    let unsigned = delivery("d-1", now, &body, None);
    assert_eq!(status(&state, unsigned).await, StatusCode::UNAUTHORIZED);
    let forged = delivery("d-2", now, &body, Some("v1,bm90IHRoZSBzaWduYXR1cmU=".into()));
    assert_eq!(status(&state, forged).await, StatusCode::UNAUTHORIZED);
    let stale = signed("d-3", now - 6 * 60, &body);
    assert_eq!(status(&state, stale).await, StatusCode::UNAUTHORIZED);
    // Signed for another body: the signature covers the raw bytes.
    let mut tampered = signed("d-4", now, &body);
    *tampered.body_mut() = Body::from(alias_body("challenger"));
    assert_eq!(status(&state, tampered).await, StatusCode::UNAUTHORIZED);
    assert!(rx.try_recv().is_err(), "a refused delivery must not wake the sync worker");

    assert_eq!(status(&state, signed("d-5", now, &body)).await, StatusCode::ACCEPTED);
    assert_eq!(rx.try_recv().ok(), Some(Trigger::Webhook));
    // MLflow retries with the same id and signature: acknowledged, not acted on twice.
    assert_eq!(status(&state, signed("d-5", now, &body)).await, StatusCode::OK);
    assert!(rx.try_recv().is_err(), "a replayed delivery must not sync again");
    // Another alias: acknowledged, nothing to do.
    assert_eq!(status(&state, signed("d-6", now, &alias_body("challenger"))).await, StatusCode::OK);
    assert!(rx.try_recv().is_err());

    // Each counted as often as it happened (every result's counter exists at 0 from the start).
    let text = state.metrics.encode();
    for (result, n) in
        [("missing_headers", 1), ("bad_signature", 2), ("stale", 1), ("accepted", 1), ("duplicate", 1), ("ignored", 1)]
    {
        let line = format!("stacktag_webhook_deliveries_total{{result=\"{result}\"}} {n}");
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}

#[tokio::test]
async fn a_future_dated_delivery_and_a_signed_body_that_is_not_json_trigger_no_sync() {
    let (state, mut rx) = state();
    let now = unix_now();
    let body = alias_body("champion");
    // Signed correctly, but dated 6 minutes ahead: outside the 5-minute window either way, so
    // a captured delivery cannot be replayed later by forging a future time.
    assert_eq!(status(&state, signed("f-1", now + 6 * 60, &body)).await, StatusCode::UNAUTHORIZED);
    // Just inside the window ahead (clocks differ): accepted.
    assert_eq!(status(&state, signed("f-2", now + 4 * 60, &body)).await, StatusCode::ACCEPTED);
    assert_eq!(rx.try_recv().ok(), Some(Trigger::Webhook));
    // Signed with the secret, but not JSON: refused as a bad payload, nothing synced.
    let garbage = "entity=model_version_alias&alias=champion";
    assert_eq!(status(&state, signed("f-3", now, garbage)).await, StatusCode::BAD_REQUEST);
    assert!(rx.try_recv().is_err(), "a delivery that is not JSON must not wake the sync worker");
    let text = state.metrics.encode();
    for line in [
        r#"stacktag_webhook_deliveries_total{result="stale"} 1"#,
        r#"stacktag_webhook_deliveries_total{result="accepted"} 1"#,
        r#"stacktag_webhook_deliveries_total{result="bad_payload"} 1"#,
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
}

#[tokio::test]
async fn an_oversized_delivery_gets_413_and_no_sync() {
    let (state, mut rx) = state();
    let body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(registry_sync::webhook::MAX_BODY_BYTES));
    assert_eq!(status(&state, signed("big", unix_now(), &body)).await, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn without_a_secret_webhooks_are_off() {
    let (tx, mut rx) = mpsc::channel(1);
    let metrics = Arc::new(Metrics::new());
    let upstream = Arc::new(Upstream::new(metrics.clone()));
    let receiver = Receiver::new(None, "stacktag", "champion");
    let state = Arc::new(AppState::new(upstream, metrics, receiver, tx).expect("state"));
    assert_eq!(status(&state, signed("x", unix_now(), &alias_body("champion"))).await, StatusCode::NOT_FOUND);
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn with_no_model_the_gateway_says_unavailable_and_its_own_health_is_ok() {
    let (state, _rx) = state();
    let classify = Request::post("/classify").header("content-type", "text/plain").body(Body::from("hi")).expect("req");
    assert_eq!(status(&state, classify).await, StatusCode::SERVICE_UNAVAILABLE);
    let health = Request::get("/gateway/health").body(Body::empty()).expect("req");
    assert_eq!(status(&state, health).await, StatusCode::OK);
    let text = state.metrics.encode();
    assert!(text.contains(r#"stacktag_gateway_requests_total{route="classify",status="503"} 1"#), "{text}");
}

#[tokio::test]
async fn after_a_rotation_the_previous_secret_is_accepted_apart_until_removed() {
    const OLD: &str = "the-secret-before-the-rotation-0123456789";
    let with_previous = |previous: Option<&str>| {
        let (tx, rx) = mpsc::channel(16);
        let receiver = Receiver::new(Some(Secret::new(SECRET)), "stacktag", "champion")
            .with_previous_secret(previous.map(Secret::new));
        let metrics = Arc::new(Metrics::new());
        let upstream = Arc::new(Upstream::new(metrics.clone()));
        (Arc::new(AppState::new(upstream, metrics, receiver, tx).expect("state")), rx)
    };
    let now = unix_now();
    let body = alias_body("champion");
    let old_signed =
        |id: &str| delivery(id, now, &body, Some(sign(OLD.as_bytes(), id, &now.to_string(), body.as_bytes())));

    // MLflow still signs with its cached copy of the webhook: accepted, counted apart.
    let (state, mut rx) = with_previous(Some(OLD));
    assert_eq!(status(&state, old_signed("r-1")).await, StatusCode::ACCEPTED);
    assert_eq!(rx.try_recv().ok(), Some(Trigger::Webhook));
    assert_eq!(status(&state, signed("r-2", now, &body)).await, StatusCode::ACCEPTED);
    assert_eq!(rx.try_recv().ok(), Some(Trigger::Webhook));
    let text = state.metrics.encode();
    assert!(text.contains(r#"stacktag_webhook_deliveries_total{result="accepted_previous_secret"} 1"#), "{text}");
    assert!(text.contains(r#"stacktag_webhook_deliveries_total{result="accepted"} 1"#), "{text}");

    // Once the operator removes it, the old secret is a bad signature like any other.
    let (state, mut rx) = with_previous(None);
    assert_eq!(status(&state, old_signed("r-3")).await, StatusCode::UNAUTHORIZED);
    assert!(rx.try_recv().is_err());
}
