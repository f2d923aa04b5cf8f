//! What registry-sync tells its operator, as `tracing` events: like its metrics, a public API.
//! Binaries choose where the events go (`registry-sync` prints them on stderr, `stacktag up`
//! tells the loop's story with them); the targets and fields below stay stable.

/// A sync's end: `version` serves (`run_id`, `seconds`, `reused`), or it failed (`outcome`,
/// the bounded label of `stacktag_sync_total`, and `error`).
pub const SYNC: &str = "stacktag::sync";
/// A step within a sync of `version`: `step` is `download`, `evaluate`, `bake` or `instance`,
/// with `seconds` and step-specific fields (`accuracy`, `examples`, `url`).
pub const STEP: &str = "stacktag::sync::step";
/// A webhook delivery that woke the worker (`delivery_id`) or the webhook's registration
/// (`webhook_id`, `url`).
pub const WEBHOOK: &str = "stacktag::webhook";
/// `serve` starting and stopping: the gateway's address, `current` restored, orphans reaped.
pub const SERVE: &str = "stacktag::serve";
