//! `POST /webhooks/mlflow`: a delivery judged by [`crate::webhook::Receiver`]; an accepted one
//! wakes the sync worker.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use edge_classifier::api::ErrorCode;
use serde::Serialize;

use super::{AppState, api_error};
use crate::webhook::{self, Receiver};
use crate::worker::Trigger;

/// A delivery's answer when it is not refused.
#[derive(Debug, Serialize)]
struct Acknowledged {
    result: &'static str,
}

pub(super) async fn mlflow(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let verdict = match axum::body::to_bytes(body, webhook::MAX_BODY_BYTES).await {
        Ok(bytes) => state.receiver.judge(&headers, &bytes, webhook::unix_now()),
        Err(_) => {
            state.metrics.delivery("too_large");
            return api_error(
                ErrorCode::BodyTooLarge,
                format!("webhook body is over {} bytes", webhook::MAX_BODY_BYTES),
            );
        }
    };
    state.metrics.delivery(verdict.label());
    if Receiver::wakes(verdict) {
        // Full channel: a sync is already pending and will re-read the alias anyway.
        let _ = state.triggers.try_send(Trigger::Webhook);
    }
    match verdict.refusal() {
        Some((code, message)) => api_error(code, message),
        None => {
            let status = if Receiver::wakes(verdict) { StatusCode::ACCEPTED } else { StatusCode::OK };
            (status, Json(Acknowledged { result: verdict.label() })).into_response()
        }
    }
}
