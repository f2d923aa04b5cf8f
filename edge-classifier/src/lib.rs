//! Stacktag's inference core: the one code path that turns a question into label
//! probabilities and an explanation.
//!
//! The trainer's export check, the promotion gate, the sync gateway's validation, the Spin
//! component and the browser module all call this crate, so they cannot disagree. It does no
//! I/O: a bundle arrives as bytes ([`BundleFiles`]) and leaves as a [`Classifier`].
//!
//! It builds unchanged for the host, `wasm32-wasip2` and `wasm32-unknown-unknown`.

mod classifier;
mod error;
mod explain;
mod piece_cache;
pub mod metrics;
pub mod normalize;
pub mod service;

pub use classifier::{
    BOS_TOKEN, BundleFiles, Classifier, EOS_TOKEN, Encoded, OwnedBundle, Scores, UNK_TOKEN, argmax,
    encode_with, graph_inputs, hex, sha256_hex,
};
pub use edge_classifier_api as api;
pub use error::Error;

/// How many tokens an explanation lists at most.
pub const EXPLANATION_TOP_K: usize = 8;
