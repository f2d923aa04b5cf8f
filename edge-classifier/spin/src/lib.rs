//! Stacktag's edge classifier as a Spin HTTP component.
//!
//! A boring adapter: it turns the host's `wasi:http` request into an
//! [`edge_classifier::service::Request`], lets the core answer, and writes the answer back.
//! Routes, limits, content types and error bodies all live in `edge_classifier::service`.
//!
//! Built with spin-sdk 5 for `wasm32-wasip2`, the component exports
//! `wasi:http/incoming-handler@0.2.0`, which both Spin (`spin up`, `spin deploy`) and
//! `wasmtime serve -Scli` run. It is compiled once, without a model; a bundle is baked in
//! afterwards by `wasmtime wizer` (`scripts/build-edge.sh bake`), which preopens the bundle
//! directory and calls `wizer-initialize`: that reads and verifies the bundle, parses it, and
//! the snapshot ships the ready classifier, so a new model needs no Rust compile and no request
//! parses anything. The snapshot is kept small and dense enough for wasmtime to map it
//! copy-on-write: the load's heap is packed, and its freed blocks (the raw bundle bytes among
//! them) are zeroed. A component with no model baked in answers 503 `unavailable`.
//!
//! `src/bin/snapshot-span.rs` is the native check of a baked component's snapshot that the bake
//! step and the tests run.

// The only `unsafe`: what the SDK's export macros generate, the wasi-libc call that forgets the
// bake's preopened directory, and the allocator that packs the pre-initialised heap
// (`component/heap.rs`).
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component;
