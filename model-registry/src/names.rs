//! The names Stacktag gives things in MLflow: aliases, tag keys, the bundle's artifact folder.

/// The aliases the registry uses.
pub mod aliases {
    /// The latest registered version, waiting for the gate.
    pub const CHALLENGER: &str = "challenger";
    /// The version that serves.
    pub const CHAMPION: &str = "champion";
}

/// Tag keys Stacktag writes on runs and model versions (values are strings).
pub mod tags {
    /// sha256 of the training data snapshot (run and version).
    pub const DATA_SNAPSHOT: &str = "stacktag.data_snapshot";
    /// The trainer's crate version (run and version).
    pub const TRAINER_VERSION: &str = "stacktag.trainer_version";
    /// The git commit the trainer was built from, MLflow's own key (run).
    pub const GIT_COMMIT: &str = "mlflow.source.git.commit";
    /// The bundle's accuracy on the trainer's evaluation set (version).
    pub const ACCURACY: &str = "stacktag.accuracy";
    /// The bundle's macro-F1 on the trainer's evaluation set (version).
    pub const MACRO_F1: &str = "stacktag.macro_f1";
    /// The hint (sha256 of the PEM public key) of the key that signed the version's bundle.
    pub const SIGNATURE_KEY: &str = "stacktag.signature.key";
    /// Who signed it, as the signer named itself (`STACKTAG_SIGNER`).
    pub const SIGNATURE_SIGNER: &str = "stacktag.signature.signer";
    /// Gate: `promoted`, `promoted_first`, `forced`, `rejected` or `rejected_invalid`. On a
    /// promotion it is written after `champion` moved: a version has a decision only once the
    /// decision took effect.
    pub const DECISION: &str = "stacktag.gate.decision";
    /// Gate: a promotion decided but not yet committed (`champion` not yet confirmed moved).
    /// The next gate run on the version finishes it (alias moved) or decides again (not).
    pub const PENDING_DECISION: &str = "stacktag.gate.pending_decision";
    /// Gate: the metric compared, `accuracy` or `macro_f1`.
    pub const METRIC: &str = "stacktag.gate.metric";
    /// Gate: the margin the challenger had to beat the champion by.
    pub const MARGIN: &str = "stacktag.gate.margin";
    /// Gate: the challenger's score on the evaluation set (`none` if it could not be scored).
    pub const CHALLENGER_SCORE: &str = "stacktag.gate.challenger_score";
    /// Gate: the champion's score on the same set (`none` without a valid champion).
    pub const CHAMPION_SCORE: &str = "stacktag.gate.champion_score";
    /// Gate: the champion version compared with (`none` without one).
    pub const CHAMPION_VERSION: &str = "stacktag.gate.champion_version";
    /// Gate: `true` when `--force` decided.
    pub const FORCED: &str = "stacktag.gate.forced";
    /// Gate: the decision in words.
    pub const REASON: &str = "stacktag.gate.reason";
    /// Gate: sha256 of the evaluation data.
    pub const EVAL_SNAPSHOT: &str = "stacktag.gate.eval_snapshot";
    /// Gate: RFC 3339 time of the decision.
    pub const DECIDED_AT: &str = "stacktag.gate.decided_at";
    /// On a promoted version: the champion it replaced (`none` for the first), which
    /// rollback returns to.
    pub const PREVIOUS_CHAMPION: &str = "stacktag.previous_champion";
    /// On a version rolled back from: `rolled back to version N at T`.
    pub const ROLLED_BACK: &str = "stacktag.rollback";
    /// On the version rolled back to: `restored from version N at T`.
    pub const RESTORED: &str = "stacktag.restored";
    /// On the champion: its last judgement on the data that arrived after its training data,
    /// a JSON [`crate::arrivals::Summary`].
    pub const ARRIVALS: &str = "stacktag.arrivals";
    /// On a run: what it is (`arrivals` for a judgement; training runs have none).
    pub const RUN_KIND: &str = "stacktag.run_kind";
    /// On a judgement's run: the champion version judged.
    pub const ARRIVALS_VERSION: &str = "stacktag.arrivals.champion_version";
}

/// The artifact directory that holds the bundle inside a run (and the version's `source`).
pub const BUNDLE_ARTIFACT_DIR: &str = "bundle";

/// The value tags use for "nothing" (no champion, no score).
pub const NONE: &str = "none";
