//! Stacktag's inference core as a plain WebAssembly module, for hosts that are neither a
//! browser nor a WASI HTTP server: MLflow's `python_function` flavor runs it with PyPI
//! `wasmtime` (`stacktag_pyfunc.py`, docs/mlflow-pyfunc.md), so Python scores text with the
//! same core, not a rewrite of it.
//!
//! An adapter that only adapts, like the Spin component and the browser module: `load` hands a
//! bundle's three files to `edge_classifier::Classifier::load`, and `call` answers an
//! HTTP-shaped request through `edge_classifier::service::handle`, exactly as the edge does
//! (`POST /classify` with `{"texts": [...]}` answers the `BatchPrediction` JSON; errors are the
//! API's JSON error with its status). The module has no imports.
//!
//! The ABI (all integers are i32 on wasm32):
//! - `stacktag_alloc(len) -> ptr` and `stacktag_free(ptr, len)`: buffers the host writes into.
//! - `stacktag_load(manifest, manifest_len, model, model_len, tokenizer, tokenizer_len) ->
//!   status`: 200 when loaded (the answer is `manifest.json` as the core read it), else the
//!   status of the API error in the answer (422 `invalid_bundle` for a bundle that does not
//!   check out).
//! - `stacktag_call(method, method_len, path, path_len, content_type, content_type_len, body,
//!   body_len) -> status`: one request (`content_type_len` 0: none).
//! - `stacktag_answer() -> ptr` and `stacktag_answer_len() -> len`: the last answer's body,
//!   valid until the next call.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod abi;
