//! The loop's own events (registry-sync's are `registry_sync::events`): stable targets.

/// The loop's steps: services up, a batch landed, a version serves, the load's count.
pub const LOOP: &str = "stacktag::loop";
/// The scheduler's rounds: the champion's judgement on the newest batches, `version`,
/// `decision` and `reason` of each retrain that trained, and why a round did nothing (at
/// `debug`).
pub const SCHEDULER: &str = "stacktag::scheduler";
