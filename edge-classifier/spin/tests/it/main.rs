//! The Spin component served by a real WASM host (`wasmtime serve -Scli` on loopback), driven
//! over HTTP: every route, every error, and parity with the native core; the generic build
//! without a model; baking; and the snapshot's copy-on-write check.
//!
//! Inputs (scripts/test-edge.sh sets them up, builds the generic component and bakes it first):
//! - `STACKTAG_BUNDLE_DIR`: the bundle baked into the component (the native side loads it);
//! - `STACKTAG_EDGE_WASM`: the baked component (default: the bake's default output under
//!   `target/`); the generic one is always cargo's `edge_classifier_spin.wasm` there;
//! - `STACKTAG_WASMTIME`: wasmtime-cli 48 (default: the set-up script's cache);
//! - `STACKTAG_SHARED_DATA`: the folder holding `stackoverflow16k/` (default `../shared/data`).

mod bake;
mod host;
mod parity;
mod routes;
mod snapshot;
