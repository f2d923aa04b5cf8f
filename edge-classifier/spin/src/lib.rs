//! Stacktag's edge classifier as a Spin HTTP component.
//!
//! A boring adapter (`http`): it turns the host's `wasi:http` request into an
//! `edge_classifier::service::Request`, lets the core answer, and writes the answer back.
//! Routes, limits, content types and error bodies all live in `edge_classifier::service`.
//!
//! Built with spin-sdk 5 for `wasm32-wasip2`, the component exports
//! `wasi:http/incoming-handler@0.2.0`, which both Spin (`spin up`, `spin deploy`) and
//! `wasmtime serve -Scli` run. It is compiled once, without a model; a bundle is baked in
//! afterwards (`preinit`: `wasmtime wizer` through `edge_classifier_bake`), so a new model
//! needs no Rust compile and no request parses anything. A component with no model baked in
//! answers 503 `unavailable`.

// The only `unsafe`: what the SDK's export macros generate, the wasi-libc call that forgets the
// bake's preopened directory, and the allocator that packs the pre-initialised heap
// (`preinit/heap.rs`).
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod http;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod preinit;
