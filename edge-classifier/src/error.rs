//! The core's errors. Each names the thing that failed; adapters map them to their
//! transport (an HTTP status, a JS exception) and add no logic.

/// Everything that can go wrong loading a bundle or classifying a text.
#[derive(Debug, thiserror::Error)]
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
    /// The manifest's labels are unusable.
    #[error("bundle manifest labels are invalid: {0}")]
    BadLabels(String),
    /// The manifest's graph section is unusable (e.g. a `max_tokens` too small to run).
    #[error("bundle manifest graph is invalid: {0}")]
    InvalidGraphSpec(String),
    /// `tokenizer.json` could not be loaded or used.
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
    /// The tokenizer lacks a special token the graph contract needs.
    #[error("tokenizer has no special token `{0}`")]
    MissingSpecialToken(&'static str),
    /// `model.onnx` could not be loaded or optimised.
    #[error("model failed to load: {0}")]
    ModelLoad(String),
    /// The model's output does not fit the manifest.
    #[error("model output has {model} probabilities but the manifest lists {manifest} labels")]
    LabelCountMismatch {
        /// Labels in the manifest.
        manifest: usize,
        /// Probabilities the graph returns.
        model: usize,
    },
    /// Running the graph failed.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The text is empty once normalised (or only whitespace).
    #[error("text is empty")]
    EmptyText,
}

impl Error {
    /// A stable, bounded code for metric labels and API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Error::EmptyText => "empty_text",
            Error::Inference(_) => "inference_failed",
            _ => "invalid_bundle",
        }
    }
}
