//! Any bytes, turned into a method, a path, a content type and a body, go through the service
//! the Spin component serves. It must answer (never panic), and always with a well-formed body:
//! a wire type on 200, `{"error": {"code", "message"}}` otherwise.
#![no_main]

use std::sync::LazyLock;

use edge_classifier::api::ApiError;
use edge_classifier::service::{self, Limits};
use edge_classifier::{Classifier, OwnedBundle};
use libfuzzer_sys::fuzz_target;

static CLASSIFIER: LazyLock<Classifier> = LazyLock::new(|| {
    let dir = std::env::var("STACKTAG_BUNDLE_DIR")
        .expect("set STACKTAG_BUNDLE_DIR to a bundle directory (scripts/fuzz-edge.sh does)");
    let bundle = OwnedBundle::read_dir(std::path::Path::new(&dir)).unwrap_or_else(|e| panic!("{e}"));
    Classifier::load(bundle.files()).expect("the bundle loads")
});

const METHODS: [&str; 6] = ["POST", "GET", "PUT", "DELETE", "HEAD", "OPTIONS"];
const PATHS: [&str; 6] = [
    "/classify",
    "/model",
    "/health",
    "/",
    "/classify?x=1",
    "/classify/",
];
const TYPES: [Option<&str>; 6] = [
    Some("application/json"),
    Some("text/plain"),
    None,
    Some("application/json; charset=utf-8"),
    Some("TEXT/PLAIN ;q=1"),
    Some("application/xml"),
];

/// Small limits so that the fuzzer reaches 413 and `batch_too_large` cheaply.
const LIMITS: Limits = Limits {
    max_body_bytes: 4096,
    max_batch: 4,
};

fuzz_target!(|data: &[u8]| {
    // Three selector bytes (method, path, content type), then the body. A selector past the
    // known values takes that field raw from the body's first line instead.
    let [m, p, t, rest @ ..] = data else { return };
    let (line, after_line) = match rest.iter().position(|&b| b == b'\n') {
        Some(n) => (
            std::str::from_utf8(&rest[..n]).unwrap_or(""),
            &rest[n + 1..],
        ),
        None => ("", rest),
    };
    let any_raw = usize::from(*m) >= METHODS.len()
        || usize::from(*p) >= PATHS.len()
        || usize::from(*t) >= TYPES.len();
    let body = if any_raw { after_line } else { rest };
    let method = METHODS.get(usize::from(*m)).copied().unwrap_or(line);
    let path = PATHS.get(usize::from(*p)).copied().unwrap_or(line);
    let content_type = TYPES.get(usize::from(*t)).copied().unwrap_or(Some(line));
    let request = service::Request {
        method,
        path,
        content_type,
        body,
    };

    let response = service::handle(&CLASSIFIER, &request, &LIMITS);

    assert_eq!(response.content_type, service::JSON);
    let value: serde_json::Value = serde_json::from_slice(&response.body).expect("a JSON body");
    if response.status == 200 {
        assert!(value.get("error").is_none());
    } else {
        assert!(
            matches!(response.status, 400 | 404 | 405 | 413 | 415 | 500),
            "{}",
            response.status
        );
        let error: ApiError = serde_json::from_value(value).expect("an ApiError body");
        assert!(!error.error.code.is_empty() && !error.error.message.is_empty());
        assert_eq!(response.allow.is_some(), response.status == 405);
    }
});
