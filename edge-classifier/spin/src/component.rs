//! The wasm side: bundle, pre-initialisation hook and the HTTP entry point.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, PoisonError};

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
        SCRUBBING.store(true, Ordering::Relaxed);
        let mut model = bundle::MODEL.lock().unwrap_or_else(PoisonError::into_inner);
        let mut tokenizer = bundle::TOKENIZER
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let manifest = bundle::MANIFEST
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let loaded = Classifier::load(BundleFiles {
            manifest: &manifest[..],
            model: &model[..],
            tokenizer: &tokenizer[..],
        })
        .map_err(|e| format!("{e}"));
        // The parsed copies are all that is used from here on. Zeroed pages are left out of a
        // pre-initialised snapshot, so this keeps the raw bytes from being shipped twice.
        scrub(&mut model);
        scrub(&mut tokenizer);
        drop((model, tokenizer, manifest));
        SCRUBBING.store(false, Ordering::Relaxed);
        loaded
    })
}

fn scrub<const N: usize>(bytes: &mut std::sync::MutexGuard<'_, [u8; N]>) {
    bytes.fill(0);
}

/// Zeroes freed memory while the bundle loads. A pre-initialised snapshot keeps every non-zero
/// page of linear memory, so without this it would also ship the parsers' freed scratch copies
/// of the model and tokenizer (megabytes). Off once loading is done: a plain pass-through.
struct ScrubFreed;

static SCRUBBING: AtomicBool = AtomicBool::new(false);

#[global_allocator]
static ALLOCATOR: ScrubFreed = ScrubFreed;

// SAFETY: every call forwards to `System` with the caller's own pointer and layout; the only
// additions are zeroing a block the caller is giving back (its `layout.size()` bytes are ours to
// write until `System.dealloc`) and, in `realloc`, a copy between two live blocks.
unsafe impl GlobalAlloc for ScrubFreed {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if SCRUBBING.load(Ordering::Relaxed) {
            unsafe { ptr.write_bytes(0, layout.size()) };
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !SCRUBBING.load(Ordering::Relaxed) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Move, so that the old block goes through the scrubbing `dealloc`.
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        let new = unsafe { System.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
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
