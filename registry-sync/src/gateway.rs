//! The gateway: proxies `/classify`, `/model` and `/health` to the serving instance, names
//! the version and run in every answer, and serves `/metrics`, `/gateway/health` and the
//! webhook receiver; optionally the web demo at `/demo/`, with the serving model's bundle.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use edge_classifier::api::ApiError;
use tokio::sync::mpsc;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::instance::Instance;
use crate::metrics::{Metrics, PredictedLabel, Route, RouteStatus};
use crate::prepare::DeployedModel;
use crate::webhook::{self, Receiver, Verdict};

/// Header naming the registry version that answered.
pub const VERSION_HEADER: &str = "x-stacktag-model-version";
/// Header naming the MLflow run of that version.
pub const RUN_ID_HEADER: &str = "x-stacktag-run-id";
/// Largest request body forwarded (the component applies its own, smaller limit).
const MAX_PROXY_BODY: usize = 1024 * 1024;
/// Per-request timeout towards the instance.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the sync worker should look at the alias now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A verified webhook delivery.
    Webhook,
    /// The poll interval passed.
    Poll,
}

/// What the gateway shares between requests.
#[derive(Debug)]
pub struct AppState {
    // A request clones the `Arc` under the read lock and holds it until its answer is read, so
    // after a swap the old instance's strong count falls to the deployer's own as requests
    // finish: that is the drain.
    upstream: RwLock<Option<Arc<Instance>>>,
    http: reqwest::Client,
    /// The app's metrics.
    pub metrics: Arc<Metrics>,
    receiver: Receiver,
    triggers: mpsc::Sender<Trigger>,
    web_demo: Option<PathBuf>,
}

impl AppState {
    /// State with no instance yet; verified webhook deliveries go to `triggers`.
    pub fn new(metrics: Arc<Metrics>, receiver: Receiver, triggers: mpsc::Sender<Trigger>) -> anyhow::Result<Self> {
        Ok(Self { upstream: RwLock::new(None), http: http_client()?, metrics, receiver, triggers, web_demo: None })
    }

    /// Also serves the web demo's site from `root` at `/demo/`.
    pub fn with_web_demo(mut self, root: Option<PathBuf>) -> Self {
        self.web_demo = root;
        self
    }

    /// The pooled client used for the instances (also for their health checks).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The instance serving now.
    pub fn current(&self) -> Option<Arc<Instance>> {
        self.upstream.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Points the gateway at `next` atomically; returns the instance it replaced.
    pub fn swap(&self, next: Arc<Instance>) -> Option<Arc<Instance>> {
        self.metrics.set_model(&next.model);
        self.upstream.write().unwrap_or_else(|p| p.into_inner()).replace(next)
    }
}

/// The HTTP client towards instances: keep-alive pool, no proxy (loopback only), timeouts.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(30))
        .timeout(UPSTREAM_TIMEOUT)
        .build()?)
}

/// The gateway's router.
pub fn app(state: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/classify", any(proxy))
        .route("/model", any(proxy))
        .route("/health", any(proxy))
        .route("/metrics", get(metrics))
        .route("/gateway/health", get(gateway_health))
        .route("/webhooks/mlflow", post(webhook));
    if state.web_demo.is_some() {
        // The page's URLs are relative, so it must be loaded as `/demo/`.
        router = router
            .route("/demo", get(|| async { Redirect::permanent("/demo/") }))
            .route("/demo/", get(demo_site))
            .route("/demo/bundle/{file}", get(demo_bundle_file))
            .route("/demo/{*path}", get(demo_site));
    }
    router.layer(middleware::from_fn_with_state(state.clone(), observe)).with_state(state)
}

/// The bounded `route` label for a path.
fn route_of(path: &str) -> &'static str {
    match path {
        "/classify" => "classify",
        "/model" => "model",
        "/health" => "health",
        "/metrics" => "metrics",
        "/gateway/health" => "gateway_health",
        "/webhooks/mlflow" => "webhook",
        p if p == "/demo" || p.starts_with("/demo/") => "demo",
        _ => "other",
    }
}

async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = route_of(req.uri().path());
    let start = Instant::now();
    let response = next.run(req).await;
    let m = &state.metrics;
    m.request_duration.get_or_create(&Route { route }).observe(start.elapsed().as_secs_f64());
    m.requests.get_or_create(&RouteStatus { route, status: response.status().as_u16() }).inc();
    response
}

fn api_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(ApiError::new(code, message))).into_response()
}

async fn proxy(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let Some(instance) = state.current() else {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no model is deployed yet; registry-sync is waiting for one",
        );
    };
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_PROXY_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request body is over the gateway's limit of {MAX_PROXY_BODY} bytes"),
            );
        }
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
                return with_model(
                    api_error(
                        StatusCode::BAD_GATEWAY,
                        "upstream_failed",
                        format!("edge instance `{}` failed: {e}", instance.url),
                    ),
                    &instance.model,
                );
            }
        }
    };
    let status = upstream.status();
    let ct = upstream.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = match upstream.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return with_model(
                api_error(
                    StatusCode::BAD_GATEWAY,
                    "upstream_failed",
                    format!("edge instance `{}` cut its answer: {e}", instance.url),
                ),
                &instance.model,
            );
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

/// `/demo/...`: the site's files (ServeDir: content types, conditional and range requests,
/// no path outside the root).
async fn demo_site(State(state): State<Arc<AppState>>, mut req: Request) -> Response {
    let Some(root) = &state.web_demo else {
        return api_error(StatusCode::NOT_FOUND, "not_found", "the web demo is not served here");
    };
    let inner = req.uri().path_and_query().map_or("/", |p| p.as_str()).strip_prefix("/demo").unwrap_or("/");
    match inner.parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return api_error(StatusCode::BAD_REQUEST, "bad_path", "the path is not a valid URI"),
    }
    match ServeDir::new(root).oneshot(req).await {
        Ok(r) => r.into_response(),
        Err(never) => match never {},
    }
}

/// `/demo/bundle/FILE`: the serving model's bundle file, so the page always runs the model the
/// edge serves (the page checks every file against the manifest's sha256 before use).
async fn demo_bundle_file(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(file): axum::extract::Path<String>,
    req: Request,
) -> Response {
    if !edge_classifier::bundle::is_plain_file_name(&file) {
        return api_error(StatusCode::NOT_FOUND, "not_found", format!("`{file}` is not a bundle file name"));
    }
    let Some(instance) = state.current() else {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no model is deployed yet; registry-sync is waiting for one",
        );
    };
    let mut response = match ServeFile::new(instance.bundle_dir().join(&file)).oneshot(req).await {
        Ok(r) => r.into_response(),
        Err(never) => match never {},
    };
    // A promotion replaces these files under the same URL: revalidate every time.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_model(response, &instance.model)
}

fn with_model(mut response: Response, model: &DeployedModel) -> Response {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&model.version) {
        h.insert(VERSION_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&model.run_id) {
        h.insert(RUN_ID_HEADER, v);
    }
    response
}

/// Counts each predicted label of a `/classify` answer (one object or `{"predictions": […]}`);
/// a label the model does not list is counted as `other`, so the label set stays bounded.
fn count_predictions(metrics: &Metrics, model: &DeployedModel, body: &Bytes) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    let one = |p: &serde_json::Value| {
        if let Some(label) = p.get("label").and_then(|l| l.as_str()) {
            let label = if model.labels.iter().any(|l| l == label) { label } else { "other" };
            metrics.predictions.get_or_create(&PredictedLabel { label: label.to_owned() }).inc();
        }
    };
    match v.get("predictions").and_then(|p| p.as_array()) {
        Some(all) => all.iter().for_each(one),
        None => one(&v),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
        .into_response()
}

async fn gateway_health(State(state): State<Arc<AppState>>) -> Response {
    let model = state.current().map(|i| i.model.clone());
    let body = serde_json::json!({
        "status": "ok",
        "serving": model.as_ref().map(|m| &m.version),
        "run_id": model.as_ref().map(|m| &m.run_id),
    });
    (StatusCode::OK, Json(body)).into_response()
}

async fn webhook(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let verdict = match axum::body::to_bytes(body, webhook::MAX_BODY_BYTES).await {
        Ok(bytes) => state.receiver.judge(&headers, &bytes, unix_now()),
        Err(_) => {
            state.metrics.delivery("too_large");
            return api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("webhook body is over {} bytes", webhook::MAX_BODY_BYTES),
            );
        }
    };
    state.metrics.delivery(verdict.label());
    if verdict == Verdict::Accepted {
        // Full channel: a sync is already pending and will re-read the alias anyway.
        let _ = state.triggers.try_send(Trigger::Webhook);
    }
    let status = verdict.status();
    if status.is_success() {
        (status, Json(serde_json::json!({ "result": verdict.label() }))).into_response()
    } else {
        api_error(status, verdict.label(), webhook_message(verdict))
    }
}

fn webhook_message(v: Verdict) -> &'static str {
    match v {
        Verdict::MissingHeaders => "missing `X-MLflow-Delivery-Id`, `X-MLflow-Timestamp` or `X-MLflow-Signature`",
        Verdict::BadSignature => "the signature does not match",
        Verdict::Stale => "the timestamp is more than 5 minutes away",
        Verdict::BadPayload => "the body is not an MLflow webhook payload",
        Verdict::Disabled => "webhooks are off: set `STACKTAG_WEBHOOK_SECRET`",
        _ => "",
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
