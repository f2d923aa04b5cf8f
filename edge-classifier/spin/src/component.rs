//! The wasm side: bundle, pre-initialisation hook and the HTTP entry point.

use std::sync::OnceLock;

use edge_classifier::service::{self, Limits};
use edge_classifier::{BundleFiles, Classifier};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

mod bundle {
    include!(concat!(env!("OUT_DIR"), "/bundle.rs"));
}

/// Where `max_body_bytes` comes from when the Spin variable is compiled out.
#[cfg(not(feature = "spin-variables"))]
const MAX_BODY_ENV: &str = "STACKTAG_MAX_BODY_BYTES";

static CLASSIFIER: OnceLock<Result<Classifier, String>> = OnceLock::new();

/// The loaded bundle. A host that builds a fresh instance per request runs this on every
/// request unless the component was pre-initialised (`wasmtime wizer`), in which case the
/// snapshot already holds it; a host that reuses instances runs it once per instance.
fn classifier() -> &'static Result<Classifier, String> {
    CLASSIFIER.get_or_init(|| {
        Classifier::load(BundleFiles {
            manifest: bundle::MANIFEST,
            model: bundle::MODEL,
            tokenizer: bundle::TOKENIZER,
        })
        .map_err(|e| format!("{e}"))
    })
}

/// Resolved once per instance from the host's configuration.
fn limits() -> &'static Result<Limits, String> {
    static LIMITS: OnceLock<Result<Limits, String>> = OnceLock::new();
    LIMITS.get_or_init(|| {
        #[cfg(feature = "spin-variables")]
        let raw = match spin_sdk::variables::get("max_body_bytes") {
            Ok(value) => Some(value),
            Err(spin_sdk::variables::Error::Undefined(_)) => None,
            Err(e) => {
                return Err(format!(
                    "failed to read the Spin variable `max_body_bytes`: {e}"
                ));
            }
        };
        // Straight from the host, not `std::env`: wasi-libc caches the environment on first
        // use, and a pre-initialised snapshot would then hold the build machine's (empty) one.
        #[cfg(not(feature = "spin-variables"))]
        let raw = wasi::cli::environment::get_environment()
            .into_iter()
            .find_map(|(key, value)| (key == MAX_BODY_ENV).then_some(value));
        Limits::with_max_body_bytes(raw.as_deref())
    })
}

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    let (classifier, limits) = match (classifier(), limits()) {
        (Ok(classifier), Ok(limits)) => (classifier, limits),
        (Err(e), _) | (_, Err(e)) => return respond(service::unavailable(e)),
    };
    let method = request.method().to_string();
    let path = request.path_with_query().unwrap_or_default();
    let content_type = request
        .headers()
        .get("content-type")
        .into_iter()
        .next()
        .and_then(|value| String::from_utf8(value).ok());
    let body = read_body(request, limits.max_body_bytes);
    let answer = service::handle(
        classifier,
        &service::Request {
            method: &method,
            path: &path,
            content_type: content_type.as_deref(),
            body: &body,
        },
        limits,
    );
    respond(answer)
}

/// Reads at most `max + 1` bytes: enough for the service to tell an over-limit body (413)
/// without buffering whatever a client sends.
fn read_body(request: IncomingRequest, max: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let Ok(incoming) = request.consume() else {
        return body;
    };
    let Ok(stream) = incoming.stream() else {
        return body;
    };
    let cap = max.saturating_add(1);
    while body.len() < cap {
        let want = (cap - body.len()).min(64 * 1024) as u64;
        match stream.blocking_read(want) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            // Closed (the end) or a failed stream: answer from what arrived.
            Err(_) => break,
        }
    }
    body
}

/// Writes the core's answer back through the SDK.
fn respond(answer: service::Response) -> Response {
    let mut response = Response::builder();
    response
        .status(answer.status)
        .header("content-type", answer.content_type);
    if let Some(allow) = answer.allow {
        response.header("allow", allow);
    }
    response.body(answer.body).build()
}

spin_sdk::wit_bindgen::generate!({
    inline: "package stacktag:edge-classifier; world preinit { export wizer-initialize: func(); }",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
});

/// `wasmtime wizer` calls `wizer-initialize` once at build time and snapshots the memory, so
/// the parsed, optimised model ships inside the component instead of being built per instance.
struct Preinit;

impl Guest for Preinit {
    fn wizer_initialize() {
        if let Err(e) = classifier() {
            // A build-time failure: wizer reports it and the build stops.
            panic!("the baked-in bundle does not load: {e}");
        }
    }
}

export!(Preinit);
