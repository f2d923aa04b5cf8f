//! `/classify`, `/model`, `/health`: forwarded to the serving instance, answered with the
//! version and run that produced the answer, and `/classify`'s predictions counted.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use edge_classifier::api::{ClassifyAnswer, ErrorCode};

use super::{AppState, api_error, no_model, with_model};
use crate::metrics::{Metrics, PredictedLabel, UnsureReason};
use crate::state::DeployedModel;

/// Largest request body forwarded (the component applies its own, smaller limit).
const MAX_PROXY_BODY: usize = 1024 * 1024;

/// How long a client may take to send its body. Without a limit, a client trickling its body
/// would hold a connection (and a worker) for as long as it likes.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) async fn forward(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // The whole body first, the instance after: a slow upload then holds no instance, so an
    // instance is held only for what `LONGEST_REQUEST` bounds, and a swap's drain (which waits
    // for the old instance's holders) always outlasts it.
    let body = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_PROXY_BODY)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return api_error(
                ErrorCode::BodyTooLarge,
                format!("request body is over the gateway's limit of {MAX_PROXY_BODY} bytes"),
            );
        }
        Err(_) => {
            return api_error(
                ErrorCode::RequestTimeout,
                format!("the request body did not arrive within {} s", BODY_TIMEOUT.as_secs()),
            );
        }
    };
    let Some(instance) = state.upstream.current() else {
        return no_model();
    };
    let path_and_query = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
    let url = format!("{}{path_and_query}", instance.url);
    let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
    // One retry: a pooled keep-alive connection the instance closed while idle fails before
    // anything is processed, and every proxied route is free of side effects.
    let mut attempt = 0;
    let upstream = loop {
        let mut rb = state.http.request(parts.method.clone(), &url).body(body.clone());
        if let Some(ct) = &content_type {
            rb = rb.header(header::CONTENT_TYPE, ct);
        }
        match rb.send().await {
            Ok(r) => break r,
            Err(e) if attempt == 0 && (e.is_connect() || e.is_request()) => attempt += 1,
            Err(e) => {
                let message = format!("edge instance `{}` failed: {e}", instance.url);
                return with_model(api_error(ErrorCode::UpstreamFailed, message), &instance.model);
            }
        }
    };
    let status = upstream.status();
    let ct = upstream.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = match upstream.bytes().await {
        Ok(b) => b,
        Err(e) => {
            let message = format!("edge instance `{}` cut its answer: {e}", instance.url);
            return with_model(api_error(ErrorCode::UpstreamFailed, message), &instance.model);
        }
    };
    if parts.method == Method::POST && parts.uri.path() == "/classify" && status.is_success() {
        count_predictions(&state.metrics, &instance.model, &bytes);
    }
    let mut response = Response::builder().status(status.as_u16());
    if let Some(ct) = ct {
        response = response.header(header::CONTENT_TYPE, ct);
    }
    let response = response.body(Body::from(bytes)).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response());
    // The answer names the instance that produced it, not whatever serves after a swap.
    with_model(response, &instance.model)
}

/// Counts each predicted label of a `/classify` answer (the edge's own wire type, one
/// prediction or a batch); a label the model does not list is counted as `other`, so the
/// label set stays bounded.
fn count_predictions(metrics: &Metrics, model: &DeployedModel, body: &Bytes) {
    let Ok(answer) = serde_json::from_slice::<ClassifyAnswer>(body) else { return };
    for p in answer.predictions() {
        let label = if model.labels.contains(&p.label) { p.label.as_str() } else { "other" };
        metrics.predictions.get_or_create(&PredictedLabel { label: label.to_owned() }).inc();
        if let Some(reason) = p.unsure {
            metrics.unsure.get_or_create(&UnsureReason { reason: reason.as_str() }).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsure_answers_are_counted_by_reason_beside_every_label() {
        let metrics = Metrics::new();
        // Both reasons exist at 0 before any answer, so the dashboard's share is 0, not absent.
        let text = metrics.encode();
        for reason in ["little_evidence", "low_confidence"] {
            let line = format!(r#"stacktag_unsure_predictions_total{{reason="{reason}"}} 0"#);
            assert!(text.lines().any(|l| l == line), "`{line}` missing from:\n{text}");
        }
        let model = DeployedModel {
            model: "stacktag".into(),
            version: "5".into(),
            run_id: "r".into(),
            data_snapshot: "s".into(),
            labels: vec!["java".into(), "python".into()],
            wasm_sha256: None,
        };
        let one = |label: &str, unsure: &str| {
            format!(
                r#"{{"label":"{label}","probabilities":[],"explanation":[],"truncated":false,"unsure":{unsure},"model":{{"name":"stacktag","version":"5"}}}}"#
            )
        };
        let batch = format!(
            r#"{{"predictions":[{},{},{}]}}"#,
            one("java", r#""little_evidence""#),
            one("python", "null"),
            one("java", r#""low_confidence""#)
        );
        count_predictions(&metrics, &model, &Bytes::from(batch));
        // An edge that predates format 5 writes no `unsure`: counted as a sure answer.
        let old = r#"{"label":"python","probabilities":[],"explanation":[],"truncated":false,"model":{"name":"stacktag","version":"4"}}"#;
        count_predictions(&metrics, &model, &Bytes::from(old));
        let text = metrics.encode();
        for line in [
            r#"stacktag_predictions_total{label="java"} 2"#,
            r#"stacktag_predictions_total{label="python"} 2"#,
            r#"stacktag_unsure_predictions_total{reason="little_evidence"} 1"#,
            r#"stacktag_unsure_predictions_total{reason="low_confidence"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "`{line}` missing from:\n{text}");
        }
    }
}
