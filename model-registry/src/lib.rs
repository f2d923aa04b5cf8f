//! Stacktag's registry rules, written once over MLflow ([`mlflow_client`]) and the serving
//! core ([`edge_classifier`]), for the trainer and for registry-sync.
//!
//! - [`names`]: the aliases (`challenger`, `champion`), the tag keys and where a bundle sits in
//!   a run's artifacts.
//! - [`register()`]: log a trained bundle as a run and register it as a new version.
//! - [`gate`]: the pure [`gate::decide`] over the evidence, and [`gate::promote`], which
//!   gathers that evidence, records the decision as tags and moves `champion`.
//! - [`arrivals`]: record the champion's judgement on data it never saw (a run, and a tag
//!   registry-sync exports).
//! - [`rollback()`]: point `champion` back at the version it replaced.
//! - [`download`]: fetch a version's bundle and verify it with the core's bundle reader, the
//!   same code that serves it, after its signature ([`signing`]).
//!
//! Every call is async; the trainer drives them from a small runtime of its own, the gateway
//! from its server's. Nothing here reads flags or the environment: callers pass a resolved
//! [`RegistryConfig`].

pub mod arrivals;
pub mod download;
pub mod gate;
pub mod names;
mod register;
mod registry;
mod rollback;
pub mod signing;
mod stamp;

pub use download::{Downloaded, InvalidBundle, download_verified, verify_bundle};
pub use gate::{Decision, GateConfig, GateMetric, GateOutcome};
pub use names::{BUNDLE_ARTIFACT_DIR, aliases, tags};
pub use register::{MLMODEL, Provenance, Registered, metrics_of, mlmodel, params_of, register};
pub use registry::{Registry, RegistryConfig, TrainedBefore, trained_before};
pub use rollback::{Rollback, rollback};
pub use signing::Signing;
pub use stamp::{Stamped, stamp_version};

/// The current UTC time in RFC 3339, as every Stacktag timestamp is written (manifests, tags).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}
