//! Why a sync failed, each case with the version and the cause, and a bounded metric label.

/// A failed sync step. The model that was serving keeps serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The registry could not be asked (unreachable, refused, no such alias or version).
    #[error("cannot resolve {what} of `{model}` in MLflow: {cause:#}")]
    Resolve {
        /// `alias `champion`` or `version 3`.
        what: String,
        /// Registered model name.
        model: String,
        /// Why.
        cause: anyhow::Error,
    },
    /// The download failed for a reason that says nothing about the version (transport).
    #[error("cannot download version {version}: {cause:#}")]
    Download {
        /// The version.
        version: String,
        /// Why.
        cause: anyhow::Error,
    },
    /// The files are missing, cut short or altered, or do not load in the core.
    #[error("version {version} is refused: {}", edge_classifier::chain(cause))]
    InvalidBundle {
        /// The version.
        version: String,
        /// Why.
        cause: model_registry::InvalidBundle,
    },
    /// The evaluation sample could not be scored.
    #[error("version {version} cannot be evaluated: {reason}")]
    Evaluation {
        /// The version.
        version: String,
        /// Why.
        reason: String,
    },
    /// The sample's accuracy fell more than the tolerance below the manifest's.
    #[error(
        "version {version} is refused: accuracy {accuracy:.4} on the evaluation sample ({examples} examples) is more than {tolerance} below the manifest's {expected:.4}"
    )]
    BelowTolerance {
        /// The version.
        version: String,
        /// Accuracy on the sample.
        accuracy: f64,
        /// The manifest's accuracy.
        expected: f64,
        /// The allowed drop.
        tolerance: f64,
        /// Sample size.
        examples: usize,
    },
    /// Stamping the version into the manifest failed.
    #[error("cannot stamp version {version} into `{path}`: {reason}")]
    Stamp {
        /// The version.
        version: String,
        /// The manifest.
        path: String,
        /// Why.
        reason: String,
    },
    /// The bake failed (`edge_classifier_bake`).
    #[error("cannot bake version {version} into the edge component: {reason}")]
    Bake {
        /// The version.
        version: String,
        /// What the script said.
        reason: String,
    },
    /// The new instance did not start or get healthy.
    #[error("cannot deploy version {version}: {reason}")]
    Deploy {
        /// The version.
        version: String,
        /// Why.
        reason: String,
    },
    /// The version failed before in this process for a reason of its own (its files, its
    /// scores, its bake), so it is not downloaded or baked again on every poll. A new
    /// promotion (the alias names another version), a SIGHUP or a restart of `serve` tries again.
    #[error(
        "version {version} is not tried again until the alias moves, `serve` gets SIGHUP or restarts: it failed with: {reason}"
    )]
    KnownBad {
        /// The version.
        version: String,
        /// The first failure's `outcome` label, repeated so alerts keep seeing it.
        outcome: &'static str,
        /// The first failure, in words.
        reason: String,
    },
    /// The state directory could not be written.
    #[error("cannot update the state directory for version {version}: {cause:#}")]
    State {
        /// The version.
        version: String,
        /// Why.
        cause: anyhow::Error,
    },
}

/// Every `outcome` label of `stacktag_sync_total`: `success`, `nothing_yet` (a registry with no
/// champion yet: not a failure) and each failure's ([`SyncError::outcome`]). The counters exist
/// at 0 from the start, so a rate or an `absent()` over them means what it says.
pub const OUTCOMES: &[&str] = &[
    "success",
    "nothing_yet",
    "resolve_failed",
    "download_failed",
    "signature_refused",
    "invalid_bundle",
    "evaluation_failed",
    "below_tolerance",
    "stamp_failed",
    "bake_failed",
    "deploy_failed",
    "state_failed",
];

impl SyncError {
    /// The bounded `outcome` label of `stacktag_sync_total` for this failure (one of
    /// [`OUTCOMES`]).
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Resolve { .. } => "resolve_failed",
            Self::Download { .. } => "download_failed",
            Self::InvalidBundle { cause: model_registry::InvalidBundle::Signature(_), .. } => "signature_refused",
            Self::InvalidBundle { .. } => "invalid_bundle",
            Self::Evaluation { .. } => "evaluation_failed",
            Self::BelowTolerance { .. } => "below_tolerance",
            Self::Stamp { .. } => "stamp_failed",
            Self::Bake { .. } => "bake_failed",
            Self::Deploy { .. } => "deploy_failed",
            Self::State { .. } => "state_failed",
            Self::KnownBad { outcome, .. } => outcome,
        }
    }

    /// Whether the failure belongs to the version itself (its files, its scores, its bake, its
    /// instance never getting healthy), so trying it again without a change cannot help. A
    /// transport or state-dir failure is the world's, and is tried again on the next poll.
    pub fn is_the_versions(&self) -> bool {
        matches!(
            self,
            Self::InvalidBundle { .. }
                | Self::Evaluation { .. }
                | Self::BelowTolerance { .. }
                | Self::Stamp { .. }
                | Self::Bake { .. }
                | Self::KnownBad { .. }
        )
    }
}
