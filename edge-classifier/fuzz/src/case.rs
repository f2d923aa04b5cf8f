//! One fuzz input: how its bytes become a request, and what the service's answer must be.
//!
//! Shared, by `#[path]`, by the fuzz target (`fuzz_targets/service.rs`) and the native test
//! that replays the seeds and the corpus (`edge-classifier/tests/it/fuzz_seeds.rs`), so a seed
//! is decoded and judged the same way in both. It needs only `edge-classifier` and
//! `serde_json`, which both crates have.

use edge_classifier::Classifier;
use edge_classifier::api::{ApiError, BatchPrediction, ErrorCode, Health, ModelManifest, Prediction};
use edge_classifier::service::{self, Limits};

const METHODS: [&str; 6] = ["POST", "GET", "PUT", "DELETE", "HEAD", "OPTIONS"];
const PATHS: [&str; 6] = ["/classify", "/model", "/health", "/", "/classify?x=1", "/classify/"];
const TYPES: [Option<&str>; 6] = [
    Some("application/json"),
    Some("text/plain"),
    None,
    Some("application/json; charset=utf-8"),
    Some("TEXT/PLAIN ;q=1"),
    Some("application/xml"),
];

/// Small limits so that the fuzzer reaches 413 and `batch_too_large` cheaply.
pub const LIMITS: Limits = Limits { max_body_bytes: 4096, max_batch: 4 };

/// Decodes an input: three selector bytes (method, path, content type), then the body. A
/// selector past the known values takes that field raw from the body's first line instead.
/// Inputs shorter than three bytes are no request.
pub fn decode(data: &[u8]) -> Option<service::Request<'_>> {
    let [m, p, t, rest @ ..] = data else {
        return None;
    };
    let (line, after_line) = match rest.iter().position(|&b| b == b'\n') {
        Some(n) => (std::str::from_utf8(&rest[..n]).unwrap_or(""), &rest[n + 1..]),
        None => ("", rest),
    };
    let any_raw = usize::from(*m) >= METHODS.len() || usize::from(*p) >= PATHS.len() || usize::from(*t) >= TYPES.len();
    Some(service::Request {
        method: METHODS.get(usize::from(*m)).copied().unwrap_or(line),
        path: PATHS.get(usize::from(*p)).copied().unwrap_or(line),
        content_type: TYPES.get(usize::from(*t)).copied().unwrap_or(Some(line)),
        body: if any_raw { after_line } else { rest },
    })
}

/// Sends the decoded input through `service::handle` and judges the answer: a JSON body
/// always; on 200 the route's wire type; otherwise a client error (400, 404, 405 with `Allow`,
/// 413, 415) with an `{"error": {"code", "message"}}` body. A 500, or any other status, is a
/// bug. `Err` says what is wrong.
pub fn check(classifier: &Classifier, data: &[u8]) -> Result<(), String> {
    let Some(request) = decode(data) else {
        return Ok(());
    };
    let response = service::handle(classifier, &request, &LIMITS);
    let what = format!(
        "`{} {}` ({:?}, {} body bytes) answered {}",
        request.method,
        request.path,
        request.content_type,
        request.body.len(),
        response.status
    );
    let body = String::from_utf8_lossy(&response.body);
    if response.content_type != service::JSON {
        return Err(format!("{what} as `{}`", response.content_type));
    }
    if response.status == 200 {
        let route = request.path.split('?').next().unwrap_or_default();
        let parsed = match route {
            "/classify" => serde_json::from_slice::<Prediction>(&response.body)
                .map(drop)
                .or_else(|_| serde_json::from_slice::<BatchPrediction>(&response.body).map(drop)),
            "/model" => serde_json::from_slice::<ModelManifest>(&response.body).map(drop),
            "/health" => serde_json::from_slice::<Health>(&response.body).map(drop),
            _ => return Err(format!("{what} on a route that does not exist: {body}")),
        };
        return parsed.map_err(|e| format!("{what} with a body that is not its wire type ({e}): {body}"));
    }
    if !matches!(response.status, 400 | 404 | 405 | 413 | 415) {
        return Err(format!("{what}, which no request may get: {body}"));
    }
    let error: ApiError =
        serde_json::from_slice(&response.body).map_err(|e| format!("{what} without an ApiError body ({e}): {body}"))?;
    if error.error.code == ErrorCode::Unknown || error.error.message.is_empty() {
        return Err(format!("{what} with an unknown code or an empty message: {body}"));
    }
    if error.error.code.status() != response.status {
        return Err(format!("{what} whose code `{}` sets {}: {body}", error.error.code, error.error.code.status()));
    }
    if response.allow.is_some() != (response.status == 405) {
        return Err(format!("{what} with `Allow` {:?}", response.allow));
    }
    Ok(())
}
