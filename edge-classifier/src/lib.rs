//! Stacktag's inference core: the one code path that turns a question into label
//! probabilities and an explanation.
//!
//! The trainer's export check, the promotion gate, the sync gateway's validation, the Spin
//! component and the browser module all call this crate, so they cannot disagree. Its only I/O
//! is [`bundle::read_verified_dir`], which reads and verifies a bundle directory; a bundle
//! then arrives as bytes ([`BundleFiles`]) and leaves as a [`Classifier`].
//!
//! It builds unchanged for the host, `wasm32-wasip2` and `wasm32-unknown-unknown`. tract runs
//! the graph (the `tract` feature, on by default); the browser module builds without it and
//! [`Runtime::Interpreter`] runs the graph there (docs/edge.md#two-runtimes).

mod bpe;
pub mod bundle;
mod classifier;
mod encode;
mod error;
mod explain;
pub mod features;
mod graph;
pub mod metrics;
pub mod normalize;
mod onnx;
mod piece_cache;
pub mod service;
mod tokenizer;

pub use bundle::{BundleFiles, Hashes, OwnedBundle, hex, sha256_hex};
pub use classifier::{Classifier, argmax, unsure};
pub use edge_classifier_api as api;
pub use encode::{BOS_TOKEN, EOS_TOKEN, Encoded, TextEncoder, UNK_TOKEN};
pub use error::{Cause, Error, chain};
pub use graph::Scores;

/// What runs a bundle's ONNX graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// tract (the `tract` feature, on by default): native, the Spin component, the trainer.
    #[cfg(feature = "tract")]
    Tract,
    /// The core's own interpreter of the operators the trainer writes: the browser module,
    /// built without tract to be small and quick to start (see `onnx`'s docs).
    Interpreter,
}

impl Runtime {
    /// tract where it is built in, else the interpreter.
    #[cfg(feature = "tract")]
    pub const DEFAULT: Runtime = Runtime::Tract;
    /// tract where it is built in, else the interpreter.
    #[cfg(not(feature = "tract"))]
    pub const DEFAULT: Runtime = Runtime::Interpreter;
}

/// How many tokens an explanation lists at most.
pub const EXPLANATION_TOP_K: usize = 8;
