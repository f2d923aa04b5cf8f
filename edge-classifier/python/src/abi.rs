//! The exported functions (see the crate's docs for the ABI).

use std::sync::Mutex;

use edge_classifier::api::ErrorCode;
use edge_classifier::service::{self, Limits, Request, Response};
use edge_classifier::{BundleFiles, Classifier};

/// The module's state: the loaded bundle and the last answer (wasm32-unknown-unknown has one
/// thread; the locks are never contended).
static CLASSIFIER: Mutex<Option<Classifier>> = Mutex::new(None);
static ANSWER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Texts one `{"texts": [...]}` request may hold. The host sends a DataFrame in batches of this
/// size; the edge's default (64) keeps one request small, which a host in-process has no need for.
const MAX_BATCH: usize = 1024;
/// A batch of [`MAX_BATCH`] texts at the edge's per-text limit.
const MAX_BODY_BYTES: usize = MAX_BATCH * service::DEFAULT_MAX_BODY_BYTES;

/// A buffer of `len` bytes for the host to write into.
#[unsafe(no_mangle)]
pub extern "C" fn stacktag_alloc(len: usize) -> *mut u8 {
    let mut buffer = std::mem::ManuallyDrop::new(vec![0u8; len]);
    buffer.as_mut_ptr()
}

/// Frees a buffer [`stacktag_alloc`] returned, with the same `len`.
#[unsafe(no_mangle)]
pub extern "C" fn stacktag_free(ptr: *mut u8, len: usize) {
    if !ptr.is_null() {
        // SAFETY: `ptr` and `len` are an allocation of `stacktag_alloc` (the host's contract).
        drop(unsafe { Vec::from_raw_parts(ptr, len, len) });
    }
}

/// Loads the bundle whose files the host wrote at these places.
#[unsafe(no_mangle)]
pub extern "C" fn stacktag_load(
    manifest: *const u8,
    manifest_len: usize,
    model: *const u8,
    model_len: usize,
    tokenizer: *const u8,
    tokenizer_len: usize,
) -> u32 {
    // SAFETY: each pointer and length is a buffer the host wrote (the ABI's contract).
    let (manifest, model, tokenizer) =
        unsafe { (bytes(manifest, manifest_len), bytes(model, model_len), bytes(tokenizer, tokenizer_len)) };
    let mut slot = CLASSIFIER.lock().unwrap_or_else(|e| e.into_inner());
    match Classifier::load(BundleFiles { manifest, model, tokenizer }) {
        Ok(classifier) => {
            let status = keep(Response::json(200, classifier.manifest()));
            *slot = Some(classifier);
            status
        }
        Err(e) => {
            *slot = None;
            keep(Response::error(e.code(), edge_classifier::chain(&e)))
        }
    }
}

/// Answers one request as the edge would.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn stacktag_call(
    method: *const u8,
    method_len: usize,
    path: *const u8,
    path_len: usize,
    content_type: *const u8,
    content_type_len: usize,
    body: *const u8,
    body_len: usize,
) -> u32 {
    // SAFETY: each pointer and length is a buffer the host wrote (the ABI's contract).
    let (method, path, content_type, body) = unsafe {
        (bytes(method, method_len), bytes(path, path_len), bytes(content_type, content_type_len), bytes(body, body_len))
    };
    let (Ok(method), Ok(path), Ok(content_type)) =
        (std::str::from_utf8(method), std::str::from_utf8(path), std::str::from_utf8(content_type))
    else {
        return keep(Response::error(ErrorCode::Internal, "the method, path or content type is not UTF-8"));
    };
    let slot = CLASSIFIER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(classifier) = slot.as_ref() else {
        return keep(Response::error(ErrorCode::Internal, "no bundle is loaded: call `stacktag_load` first"));
    };
    let request = Request { method, path, content_type: (!content_type.is_empty()).then_some(content_type), body };
    keep(service::handle(classifier, &request, &Limits { max_body_bytes: MAX_BODY_BYTES, max_batch: MAX_BATCH }))
}

/// Where the last answer's body is.
#[unsafe(no_mangle)]
pub extern "C" fn stacktag_answer() -> *const u8 {
    ANSWER.lock().unwrap_or_else(|e| e.into_inner()).as_ptr()
}

/// How long the last answer's body is.
#[unsafe(no_mangle)]
pub extern "C" fn stacktag_answer_len() -> usize {
    ANSWER.lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// # Safety
/// `ptr` must point to `len` readable bytes (or `len` be 0).
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// Keeps `response`'s body as the answer and returns its status.
fn keep(response: Response) -> u32 {
    *ANSWER.lock().unwrap_or_else(|e| e.into_inner()) = response.body;
    u32::from(response.status)
}
