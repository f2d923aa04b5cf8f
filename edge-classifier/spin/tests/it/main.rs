//! The Spin component served by a real WASM host (`wasmtime serve -Scli` on loopback), driven
//! over HTTP: every route, every error, and parity with the native core.
//!
//! Inputs (scripts/test.sh sets them up and builds the component first):
//! - `STACKTAG_BUNDLE_DIR`: the bundle the component was built with (the native side loads it);
//! - `STACKTAG_EDGE_WASM`: the component (default: the release build under `target/`);
//! - `STACKTAG_WASMTIME`: wasmtime-cli 48 (default: the set-up script's cache);
//! - `STACKTAG_SHARED_DATA`: the folder holding `stackoverflow16k/` (default `../shared/data`).

mod host;
mod parity;
mod routes;
