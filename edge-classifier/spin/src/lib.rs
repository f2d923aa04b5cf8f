//! Stacktag's edge classifier as a Spin HTTP component.
//!
//! A boring adapter: it turns the host's `wasi:http` request into an
//! [`edge_classifier::service::Request`], lets the core answer, and writes the answer back.
//! Routes, limits, content types and error bodies all live in `edge_classifier::service`.
//!
//! Built with spin-sdk 5 for `wasm32-wasip2`, the component exports
//! `wasi:http/incoming-handler@0.2.0`, which both Spin (`spin up`, `spin deploy`) and
//! `wasmtime serve -Scli` run. The model bundle is baked in at build time (see `build.rs`), and
//! `wizer-initialize` lets `wasmtime wizer` parse it before the component is ever served. The
//! snapshot is kept small and dense enough for wasmtime to map it copy-on-write: the raw bundle
//! bytes are zeroed once parsed, and the load's heap is packed and its freed blocks zeroed.

// The only `unsafe`: what the SDK's export macros generate, the baked-in bundle that
// pre-initialisation zeroes, and the allocator that packs the pre-initialised heap
// (`component/heap.rs`).
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component;
