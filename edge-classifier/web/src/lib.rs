//! Stacktag's edge classifier in the browser: a wasm-bindgen adapter over the inference core.
//!
//! A boring adapter, like the Spin component: `WebClassifier::load` hands the three bundle
//! files (fetched by the page at run time, so a new model needs no rebuild of the module) to
//! `edge_classifier::Classifier::load`, which checks each file's size and sha256 against the
//! manifest; `classify` answers through `edge_classifier::service::handle` exactly as
//! `POST /classify` with a `text/plain` body does on the edge. So the browser gets the same
//! `Prediction` JSON and the same error codes (`empty_text`, `body_too_large`,
//! `invalid_bundle`, ...) as every other host, and nothing here decides anything.
//!
//! Errors reach JavaScript as an `Error` whose `message` is the core's and which carries the
//! edge API's `code` (and the HTTP `status` the edge would have answered with).
//!
//! Built by `scripts/build-web.sh` (opt-level z, fat LTO, simd128, then `wasm-bindgen
//! --target web`); the page in `web-demo/` runs it in a Web Worker.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod module;
