//! Stacktag's trainer: labelled Stack Overflow questions in (CSV, Parquet, the TensorFlow
//! layout), a verified, self-contained ONNX bundle out, registered in MLflow and gated.
//!
//! The pipeline is `data` (the `dataset` crate) → `tokenizer` → `model` → `export` → `bundle`, with the export
//! checked by running it through the serving core (`edge-classifier`). The registry's rules
//! live in `model-registry`; [`registry`] and [`retrain`] drive them with the trainer's data, and
//! [`arrivals`] judges the champion on the batches it never saw before a retrain trains on them.
//! The `trainer` binary (`src/main.rs`, `src/cli/`) parses flags, resolves them once into
//! the configs of [`config`], calls this library and prints.

pub mod arrivals;
pub mod batches;
pub mod bench;
pub mod bundle;
pub mod calibrate;
pub mod config;
pub mod cv;
pub mod evaluate;
pub mod export;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod registry;
pub mod report;
pub mod retrain;
pub mod tokenizer;

/// Labelled data (the `dataset` crate): the trainer reads and cleans through it.
pub use dataset as data;
/// The seeded generator training and splitting share (the `dataset` crate's).
pub use dataset::rng;
