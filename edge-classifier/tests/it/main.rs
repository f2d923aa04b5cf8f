//! The core's integration tests: the transport-neutral HTTP service on the golden tiny bundle.
//! (The same routes served by a real WASM host are tested in `edge-classifier/spin`.)

mod fuzz_seeds;
mod normalization;
mod runtimes;
mod service;
