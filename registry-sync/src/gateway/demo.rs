//! `/demo/...`: the web demo's site, with the serving model's bundle in place of its own, so
//! the page runs the model the edge serves.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use edge_classifier::api::ErrorCode;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use super::{AppState, api_error, no_model, with_model};

/// `/demo`: the page's URLs are relative, so it must be loaded as `/demo/`.
pub(super) async fn redirect() -> Redirect {
    Redirect::permanent("/demo/")
}

/// The site's files (ServeDir: content types, conditional and range requests, no path outside
/// the root).
pub(super) async fn site(State(state): State<Arc<AppState>>, mut req: Request) -> Response {
    let Some(root) = &state.web_demo else {
        return api_error(ErrorCode::NotFound, "the web demo is not served here");
    };
    let inner = req.uri().path_and_query().map_or("/", |p| p.as_str()).strip_prefix("/demo").unwrap_or("/");
    match inner.parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return api_error(ErrorCode::BadPath, "the path is not a valid URI"),
    }
    match ServeDir::new(root).oneshot(req).await {
        Ok(r) => r.into_response(),
        Err(never) => match never {},
    }
}

/// `/demo/trusted-keys.pem`: the keys registry-sync verifies signatures with, so the page
/// checks the bundle against the same ones; with none configured, the site's own file if it
/// has one.
pub(super) async fn trusted_keys(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if state.trusted_keys.is_empty() {
        return site(State(state), req).await;
    }
    let mut response = state.trusted_keys.clone().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-pem-file"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `/demo/bundle/FILE`: the serving model's bundle file (the page checks every file against
/// the manifest's sha256 before use): the manifest, or a file it lists. Anything else in the
/// directory is not served, whatever its name.
pub(super) async fn bundle_file(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(file): axum::extract::Path<String>,
    req: Request,
) -> Response {
    if !edge_classifier::bundle::is_plain_file_name(&file) {
        return api_error(ErrorCode::NotFound, format!("`{file}` is not a bundle file name"));
    }
    let Some(instance) = state.upstream.current() else {
        return no_model();
    };
    if !instance.lists(&file) {
        return api_error(ErrorCode::NotFound, format!("`{file}` is not a file of the serving model's bundle"));
    }
    let mut response = match ServeFile::new(instance.bundle_dir().join(&file)).oneshot(req).await {
        Ok(r) => r.into_response(),
        Err(never) => match never {},
    };
    // A promotion replaces these files under the same URL: revalidate every time.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_model(response, &instance.model)
}
