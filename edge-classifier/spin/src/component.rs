//! The wasm side: the pre-initialisation hook that bakes a bundle in, its allocator, and the
//! HTTP entry point.

use std::path::Path;
use std::sync::OnceLock;

use edge_classifier::Classifier;
use edge_classifier::bundle::read_verified_dir;
use edge_classifier::service::{self, Limits};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

mod heap;

/// Where `wizer-initialize` finds the bundle to bake in: the guest path that
/// `scripts/build-edge.sh bake` preopens (`wasmtime wizer --dir BUNDLE::/bundle`).
const BUNDLE_DIR: &str = "/bundle";

/// What every request gets from a component that has no model baked in.
const NO_MODEL: &str = "no model is baked into this component: it is the generic build; \
    bake a bundle in with `scripts/build-edge.sh bake --bundle DIR`";

/// Where `max_body_bytes` comes from, on every host: an environment variable, which
/// `wasmtime serve --env` and Spin's `environment` (spin.toml) both set. A Spin variable would
/// import Spin's variables interface, which the wasmtime CLI cannot provide, so a component
/// using one could not be baked by `wasmtime wizer`; one baked file must serve both hosts.
const MAX_BODY_ENV: &str = "STACKTAG_MAX_BODY_BYTES";

/// The baked-in classifier. Only `wizer-initialize` sets it, so it lives in the snapshot; in
/// the generic component (never pre-initialised) it stays empty and every request gets 503.
static CLASSIFIER: OnceLock<Classifier> = OnceLock::new();

unsafe extern "C" {
    /// wasi-libc: closes the preopened directories it opened on first use of a path and forgets
    /// them. Only memories and globals are snapshotted, so a table of the build machine's
    /// preopen handles must not outlive pre-initialisation (wasi-libc provides this for wizer).
    fn __wasilibc_reset_preopens();
}

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
    let Some(classifier) = CLASSIFIER.get() else {
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

spin_sdk::wit_bindgen::generate!({
    inline: "package stacktag:edge-classifier; world preinit { export wizer-initialize: func(); }",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
});

/// `wasmtime wizer` calls `wizer-initialize` once, at bake time, and snapshots the memory, so
/// the parsed, optimised model ships inside the component instead of being built per instance.
/// The generic component is compiled once; each bundle is baked into a copy of it in seconds.
struct Preinit;

impl Guest for Preinit {
    fn wizer_initialize() {
        if CLASSIFIER.get().is_some() {
            return;
        }
        let dir = Path::new(BUNDLE_DIR);
        // Without a preopened bundle (wizer run without `--dir`) the component stays generic:
        // it answers 503, it does not trap.
        let loaded = dir.is_dir().then(|| {
            // Read through the system allocator, before the pre-init heap takes its pages:
            // reading a file also allocates in wasi-libc's own heap (and the host copies the
            // bytes in through it), and a 3 MB model read that way while the pre-init heap
            // was growing trapped with an out-of-bounds access.
            let bundle = read_verified_dir(dir).map_err(|e| e.to_string())?;
            heap::preinitialise(move || {
                let classifier = Classifier::load(bundle.files()).map_err(|e| e.to_string());
                // Freed while pre-initialising, so the raw bytes are zeroed and left out of
                // the snapshot.
                drop(bundle);
                classifier
            })
        });
        // SAFETY: every file `read_verified_dir` opened is closed again, and nothing in this
        // instance uses a path afterwards.
        unsafe { __wasilibc_reset_preopens() };
        match loaded {
            Some(Ok(classifier)) => {
                let _ = CLASSIFIER.set(classifier);
            }
            // wizer reports the trap with this message, and the bake stops.
            Some(Err(e)) => panic!("the bundle in `{BUNDLE_DIR}` does not load: {e}"),
            None => {}
        }
    }
}

export!(Preinit);
