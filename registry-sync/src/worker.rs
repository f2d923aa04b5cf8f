//! The sync worker: one sync per wake-up, from a poll tick or a verified webhook delivery.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::sync::Syncer;

/// Why the worker should look at the alias now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A verified webhook delivery.
    Webhook,
    /// The poll interval passed, or someone asked for a poll.
    Poll,
    /// An operator asked for the version known bad to be tried again without a restart
    /// (SIGHUP): after fixing what made it fail (a bake host, a trusted key), or to retry a
    /// bake that timed out.
    Retry,
}

/// One sync per wake-up (a poll tick or a trigger); triggers that arrive during a sync are
/// folded into one more. Returns when every trigger sender is gone.
pub async fn run(syncer: Arc<Syncer>, mut triggers: mpsc::Receiver<Trigger>, poll_interval: Duration) {
    let mut tick = tokio::time::interval(poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut retry = false;
        tokio::select! {
            _ = tick.tick() => {}
            t = triggers.recv() => match t {
                None => return,
                Some(t) => retry = t == Trigger::Retry,
            },
        }
        while let Ok(t) = triggers.try_recv() {
            retry |= t == Trigger::Retry;
        }
        if retry {
            syncer.forget_known_bad();
        }
        // Errors are counted and reported inside; the next tick retries.
        let _ = syncer.sync().await;
    }
}
