//! `trainer retrain`, the scheduler's step: train only when the data changed, then register
//! and gate.

use std::time::Instant;

use model_registry::{GateOutcome, Registered, TrainedBefore};
use serde::Serialize;

use crate::config::TrainConfig;
use crate::data;
use crate::data::EvalSet;
use crate::pipeline;
use crate::registry::{self, Connection};

/// What `trainer retrain` did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Retrain {
    /// The data snapshot is one the registry already has a gated model for.
    Skipped {
        /// The data snapshot.
        data_snapshot: String,
        /// The version trained on it.
        version: String,
        /// Why nothing was done.
        reason: String,
    },
    /// The data snapshot is the newest version's, whose promotion was cut short before
    /// `champion` moved: that version was gated again instead (nothing trained).
    Regated {
        /// The data snapshot.
        data_snapshot: String,
        /// The version gated again.
        version: String,
        /// Why it was gated again.
        reason: String,
        /// The gate's answer this time.
        gate: GateOutcome,
    },
    /// A new model was trained, registered and gated, after the champion was judged on the
    /// batches it had not seen.
    Trained {
        /// The champion's judgement on the newest batches, before training on them.
        judged: registry::Judgement,
        /// The registration.
        registered: Registered,
        /// The gate's answer.
        gate: GateOutcome,
    },
}

/// Retrains on `train_cfg.data` only when its snapshot differs from the champion's (and from
/// the newest version's, once that was gated): first judges the champion on the batches it
/// never saw, then trains, registers the model and gates it on `train_cfg.eval` and the
/// held-out slices of the data ([`crate::data::holdout`]), the same set it was evaluated on
/// while training. A newest version whose
/// promotion was cut short is gated again on the same files instead. Each file is read once.
pub fn retrain(
    conn: &Connection,
    train_cfg: &TrainConfig,
    gate: &model_registry::GateConfig,
) -> anyhow::Result<Retrain> {
    let started = Instant::now();
    let batches = data::read_sources(&train_cfg.data, "training")?;
    let snapshot = data::snapshot_of(&batches);
    let before = conn.block(model_registry::trained_before(conn.registry(), &snapshot))?;
    if let Some(TrainedBefore { version, reason, gate_again }) = before {
        if !gate_again {
            return Ok(Retrain::Skipped { data_snapshot: snapshot, version, reason });
        }
        let eval = EvalSet::read(&train_cfg.eval)?.with_held_out(&batches);
        let cfg = model_registry::GateConfig { version: Some(version.clone()), ..gate.clone() };
        let gate = registry::promote_on(conn, &cfg, &eval)?;
        return Ok(Retrain::Regated { data_snapshot: snapshot, version, reason, gate });
    }
    // Before the new batches are trained on, while the champion has still never seen them.
    let judged = registry::judge_champion(conn, &batches)?;
    let eval = EvalSet::read(&train_cfg.eval)?.with_held_out(&batches);
    let outcome = pipeline::train_on(train_cfg, &batches, eval.batches().to_vec(), started)?;
    let registered = registry::register(conn, &outcome.bundle_dir, &outcome.manifest)?;
    let gate = model_registry::GateConfig { version: Some(registered.version.clone()), ..gate.clone() };
    let gate = registry::promote_on(conn, &gate, &eval)?;
    Ok(Retrain::Trained { judged, registered, gate })
}
