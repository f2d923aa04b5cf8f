//! The core's errors. Each names the thing that failed; adapters map them to their
//! transport (an HTTP status, a JS exception) and add no logic.

use crate::api::ErrorCode;

/// A lower library's error (tract's, tokenizers'), kept as the source of ours.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// `error` and each of its sources, joined by `: `: what an API message or a log line shows.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

/// Everything that can go wrong loading a bundle or classifying a text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bundle file is missing, unreadable, or does not match its manifest.
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    /// The manifest has a format version this core does not read.
    #[error("bundle format version {found} is not supported (this core reads {legacy} to {expected})")]
    UnsupportedFormat {
        /// The manifest's version.
        found: u32,
        /// The newest version this core reads.
        expected: u32,
        /// The oldest version it still reads.
        legacy: u32,
    },
    /// The manifest's normalisation is missing where its format requires it, present where its
    /// format predates it, or a version this core does not know.
    #[error("bundle manifest normalization is invalid: {0}")]
    BadNormalization(String),
    /// The manifest's calibration is missing where its format requires it, present where its
    /// format predates it, or does not fit the labels.
    #[error("bundle manifest calibration is invalid: {0}")]
    BadCalibration(String),
    /// The manifest's labels are unusable.
    #[error("bundle manifest labels are invalid: {0}")]
    BadLabels(String),
    /// The manifest's graph section is unusable (e.g. a `max_tokens` too small to run).
    #[error("bundle manifest graph is invalid: {0}")]
    InvalidGraphSpec(String),
    /// `tokenizer.json` could not be loaded or used.
    #[error("tokenizer failed: {what}")]
    Tokenizer {
        /// What failed.
        what: String,
        /// The tokenizers or serde error behind it, if any.
        #[source]
        source: Option<Cause>,
    },
    /// The tokenizer lacks a special token the graph contract needs.
    #[error("tokenizer has no special token `{0}`")]
    MissingSpecialToken(&'static str),
    /// `model.onnx` could not be loaded or optimised.
    #[error("model failed to load")]
    ModelLoad(#[source] Cause),
    /// The model's output does not fit the manifest.
    #[error("model output has {model} probabilities but the manifest lists {manifest} labels")]
    LabelCountMismatch {
        /// Labels in the manifest.
        manifest: usize,
        /// Probabilities the graph returns.
        model: usize,
    },
    /// Running the graph failed.
    #[error("inference failed: {what}")]
    Inference {
        /// What failed.
        what: String,
        /// tract's error behind it, if any.
        #[source]
        source: Option<Cause>,
    },
    /// The text is empty once normalised (or only whitespace).
    #[error("text is empty")]
    EmptyText,
}

impl Error {
    /// Its code in API error bodies (which sets the HTTP status): the caller's fault
    /// (`empty_text`, 400), the graph's (`inference_failed`, 500), else the bundle's
    /// (`invalid_bundle`, 503).
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::EmptyText => ErrorCode::EmptyText,
            Error::Inference { .. } => ErrorCode::InferenceFailed,
            _ => ErrorCode::InvalidBundle,
        }
    }
}
