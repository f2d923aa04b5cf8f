//! The HTTP entry point: the host's request in, the core's answer out.

use std::sync::OnceLock;

use edge_classifier::service::{self, Limits};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

/// What every request gets from a component that has no model baked in.
const NO_MODEL: &str = "no model is baked into this component: it is the generic build; \
    bake a bundle in with `scripts/build-edge.sh bake --bundle DIR`";

/// Where `max_body_bytes` comes from, on every host: an environment variable, which
/// `wasmtime serve --env` and Spin's `environment` (spin.toml) both set. A Spin variable would
/// import Spin's variables interface, which the wasmtime CLI cannot provide, so a component
/// using one could not be baked by `wasmtime wizer`; one baked file must serve both hosts.
const MAX_BODY_ENV: &str = "STACKTAG_MAX_BODY_BYTES";

/// Resolved once per instance from the host's configuration.
fn limits() -> &'static Result<Limits, String> {
    static LIMITS: OnceLock<Result<Limits, String>> = OnceLock::new();
    LIMITS.get_or_init(|| {
        // Straight from the host, not `std::env`: wasi-libc caches the environment on first
        // use, and a pre-initialised snapshot would then hold the build machine's (empty) one.
        let raw = wasi::cli::environment::get_environment()
            .into_iter()
            .find_map(|(key, value)| (key == MAX_BODY_ENV).then_some(value));
        Limits::with_max_body_bytes(raw.as_deref())
    })
}

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    let Some(classifier) = crate::preinit::classifier() else {
        return respond(service::unavailable(NO_MODEL));
    };
    let limits = match limits() {
        Ok(limits) => limits,
        Err(e) => return respond(service::unavailable(e)),
    };
    let method = request.method().to_string();
    let path = request.path_with_query().unwrap_or_default();
    let content_type =
        request.headers().get("content-type").into_iter().next().and_then(|value| String::from_utf8(value).ok());
    let body = read_body(request, limits.max_body_bytes);
    let answer = service::handle(
        classifier,
        &service::Request { method: &method, path: &path, content_type: content_type.as_deref(), body: &body },
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
    response.status(answer.status).header("content-type", answer.content_type);
    if let Some(allow) = answer.allow {
        response.header("allow", allow);
    }
    response.body(answer.body).build()
}
