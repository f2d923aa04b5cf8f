//! The gateway's own routes: `/metrics` (OpenMetrics), `/gateway/health`, and the answer to a
//! path no route matches.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use edge_classifier::api::ErrorCode;
use serde::Serialize;

use super::{AppState, api_error};

pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
        .into_response()
}

/// `/gateway/health`: the gateway itself answers, whether a model serves or not.
#[derive(Debug, Serialize)]
struct GatewayHealth<'a> {
    status: &'static str,
    serving: Option<&'a str>,
    run_id: Option<&'a str>,
}

pub(super) async fn health(State(state): State<Arc<AppState>>) -> Response {
    let current = state.upstream.current();
    let model = current.as_ref().map(|i| &i.model);
    let body = GatewayHealth {
        status: "ok",
        serving: model.map(|m| m.version.as_str()),
        run_id: model.map(|m| m.run_id.as_str()),
    };
    (StatusCode::OK, Json(body)).into_response()
}

pub(super) async fn not_found(uri: Uri) -> Response {
    api_error(ErrorCode::NotFound, format!("no route `{}` on the gateway", uri.path()))
}
