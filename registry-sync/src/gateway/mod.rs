//! The gateway: one router over four route families, each in its module: the edge routes
//! proxied to the serving instance (`proxy`), the web demo (`demo`), the MLflow webhook
//! (`hooks`) and the gateway's own metrics and health (`ops`). Every route is registered
//! with its metric label, so the label comes from the route that matched.

mod demo;
mod hooks;
mod ops;
mod proxy;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use axum::{Json, Router};
use edge_classifier::api::{ApiError, ErrorCode};
use tokio::sync::mpsc;

use crate::instance::Upstream;
use crate::metrics::{Metrics, Route, RouteStatus};
use crate::state::DeployedModel;
use crate::webhook::Receiver;
use crate::worker::Trigger;

/// Header naming the registry version that answered.
pub const VERSION_HEADER: &str = "x-stacktag-model-version";
/// Header naming the MLflow run of that version.
pub const RUN_ID_HEADER: &str = "x-stacktag-run-id";
/// Per-request timeout towards the instance.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest one request can hold an instance: an attempt and the proxy's one retry, each
/// up to [`UPSTREAM_TIMEOUT`]. Every drain waits longer than this, so it never cuts a request
/// it was meant to let finish.
pub const LONGEST_REQUEST: Duration = Duration::from_secs(2 * UPSTREAM_TIMEOUT.as_secs());
/// The `route` label of a request no route matched.
const UNMATCHED: &str = "other";

/// What the gateway shares between requests.
#[derive(Debug)]
pub struct AppState {
    upstream: Arc<Upstream>,
    http: reqwest::Client,
    /// The app's metrics.
    pub metrics: Arc<Metrics>,
    receiver: Receiver,
    triggers: mpsc::Sender<Trigger>,
    web_demo: Option<PathBuf>,
    /// The keys whose signatures registry-sync trusts, PEM (empty: none), given to the page.
    trusted_keys: String,
}

impl AppState {
    /// State in front of `upstream`; verified webhook deliveries go to `triggers`.
    pub fn new(
        upstream: Arc<Upstream>,
        metrics: Arc<Metrics>,
        receiver: Receiver,
        triggers: mpsc::Sender<Trigger>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            upstream,
            http: http_client()?,
            metrics,
            receiver,
            triggers,
            web_demo: None,
            trusted_keys: String::new(),
        })
    }

    /// Also serves the web demo's site from `root` at `/demo/`.
    pub fn with_web_demo(mut self, root: Option<PathBuf>) -> Self {
        self.web_demo = root;
        self
    }

    /// Gives the web demo `keys` (PEM) at `/demo/trusted-keys.pem`, so the page checks who
    /// signed the bundle it loads against the keys registry-sync checked it with.
    pub fn with_trusted_keys(mut self, keys: String) -> Self {
        self.trusted_keys = keys;
        self
    }

    /// The pooled client used for the instances (also for their health checks).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The serving instance's slot.
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
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
    // Each route carries its own bounded `route` label into the metrics.
    let observed = |label: &'static str, route: MethodRouter<Arc<AppState>>| {
        route.layer(middleware::from_fn_with_state(Observed { state: state.clone(), label }, observe))
    };
    let mut router = Router::new()
        .route("/classify", observed("classify", any(proxy::forward)))
        .route("/model", observed("model", any(proxy::forward)))
        .route("/health", observed("health", any(proxy::forward)))
        .route("/metrics", observed("metrics", only("GET", get(ops::metrics))))
        .route("/gateway/health", observed("gateway_health", only("GET", get(ops::health))))
        .route("/webhooks/mlflow", observed("webhook", only("POST", post(hooks::mlflow))));
    if state.web_demo.is_some() {
        router = router
            .route("/demo", observed("demo", only("GET", get(demo::redirect))))
            .route("/demo/", observed("demo", only("GET", get(demo::site))))
            .route("/demo/bundle/{file}", observed("demo", only("GET", get(demo::bundle_file))))
            .route("/demo/trusted-keys.pem", observed("demo", only("GET", get(demo::trusted_keys))))
            .route("/demo/{*path}", observed("demo", only("GET", get(demo::site))));
    }
    router
        .fallback(observed(UNMATCHED, any(ops::not_found)))
        .layer(middleware::map_response(hardened))
        .with_state(state)
}

/// `route` for its one method (`allow`); any other method answers 405 with `Allow` and the
/// API's JSON error, as the edge does (axum's own 405 has an empty body).
fn only(allow: &'static str, route: MethodRouter<Arc<AppState>>) -> MethodRouter<Arc<AppState>> {
    route.fallback(move |method: axum::http::Method, uri: axum::http::Uri| async move {
        let path = uri.path();
        let mut response =
            api_error(ErrorCode::MethodNotAllowed, format!("`{method} {path}` is not supported; use `{allow} {path}`"));
        response.headers_mut().insert(axum::http::header::ALLOW, HeaderValue::from_static(allow));
        response
    })
}

/// What every answer may run, whatever route or instance made it: its own origin's scripts and
/// WebAssembly (the web demo compiles its module), styles, workers and fetches; no plugins, no
/// inline code, no framing, no forms. A file that slipped into a bundle (`x.html`, a scripted
/// `.svg`) can then run nothing. The web demo's page carries the same policy in a `<meta>` for
/// hosts that cannot set headers (GitHub Pages).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; worker-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Adds `X-Content-Type-Options: nosniff` (a browser never reads a file as another type than
/// the one it is sent as) and [`CONTENT_SECURITY_POLICY`] to every answer.
async fn hardened(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(axum::http::header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(axum::http::header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    response
}

/// A route's label and the state whose metrics it feeds.
#[derive(Clone)]
struct Observed {
    state: Arc<AppState>,
    label: &'static str,
}

async fn observe(State(observed): State<Observed>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let response = next.run(req).await;
    let m = &observed.state.metrics;
    let route = observed.label;
    m.request_duration.get_or_create(&Route { route }).observe(start.elapsed().as_secs_f64());
    m.requests.get_or_create(&RouteStatus { route, status: response.status().as_u16() }).inc();
    response
}

/// An error answer: the code sets the status.
fn api_error(code: ErrorCode, message: impl Into<String>) -> Response {
    let body = ApiError::new(code, message);
    (
        axum::http::StatusCode::from_u16(code.status()).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response()
}

/// 503 `unavailable` before the first sync.
fn no_model() -> Response {
    api_error(ErrorCode::Unavailable, "no model is deployed yet; registry-sync is waiting for one")
}

/// Names the version and run that produced `response`.
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
