//! The scheduler: `trainer retrain` on the inbox every few seconds, through the trainer's
//! library, on its own thread (training is blocking work). Each round trains only when the
//! inbox's data changed since the champion; a trained model is registered as `challenger` and
//! gated against the champion on the test set.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use model_registry::{GateConfig, GateMetric, RegistryConfig};
use tracing::{debug, info, warn};
use trainer::config::{ModelParams, TrainConfig};
use trainer::registry::Connection;
use trainer::retrain::{Retrain, retrain};

use crate::events;

/// What the rounds so far did, for the loop to wait on.
#[derive(Debug, Default, Clone)]
pub struct Rounds {
    /// Rounds finished.
    pub finished: u64,
    /// The last round's "nothing to do" reason, if it skipped.
    pub last_skip: Option<String>,
    /// The last round that trained a model: its version, the gate's answer, and the champion's
    /// judgement before it.
    pub last_trained: Option<Trained>,
}

/// A round that trained, registered and gated a model.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The version registered.
    pub version: String,
    /// Whether the gate made it the champion.
    pub promoted: bool,
    /// The gate's answer in words.
    pub gate: String,
    /// The champion's judgement on the new batches, in words.
    pub judged: String,
}

/// What one round did.
enum Round {
    Skipped(String),
    Trained(Trained),
    Other,
}

/// The running scheduler; [`Scheduler::stop`] (or drop) ends it after the current round.
pub struct Scheduler {
    stop: Arc<AtomicBool>,
    rounds: Arc<Mutex<Rounds>>,
    thread: Option<JoinHandle<()>>,
}

impl Scheduler {
    /// Starts the rounds: `inbox` is the training data, `eval` the evaluation and gate data.
    pub fn start(registry: RegistryConfig, inbox: PathBuf, eval: PathBuf, every: Duration) -> anyhow::Result<Self> {
        let conn = Connection::new(registry)?;
        let mut cfg = TrainConfig::new(vec![inbox], vec![eval], PathBuf::new(), &ModelParams::default())?;
        // The loop tells its own story; the trainer's progress notes would drown it.
        cfg.quiet = true;
        let gate = GateConfig::new(GateMetric::Accuracy, 0.0, false, None)?;
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(Mutex::new(Rounds::default()));
        let thread = {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            std::thread::Builder::new()
                .name("scheduler".into())
                .spawn(move || run(&conn, cfg, &gate, every, &stop, &rounds))?
        };
        Ok(Self { stop, rounds, thread: Some(thread) })
    }

    /// What the rounds did so far.
    pub fn rounds(&self) -> Rounds {
        self.rounds.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Ends the rounds (a round under way finishes first) and waits for the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(
    conn: &Connection,
    mut cfg: TrainConfig,
    gate: &GateConfig,
    every: Duration,
    stop: &AtomicBool,
    rounds: &Mutex<Rounds>,
) {
    while !stop.load(Ordering::Relaxed) {
        // Each round's bundle in a fresh temporary directory, as `trainer retrain` does: the
        // registry keeps what was registered.
        let done = match tempfile::Builder::new().prefix("stacktag-retrain-").tempdir() {
            Ok(tmp) => {
                cfg.out = tmp.path().join("bundle");
                round(conn, &cfg, gate)
            }
            Err(e) => {
                warn!(target: events::SCHEDULER, error = %e, "cannot create a temporary directory");
                Round::Other
            }
        };
        {
            let mut r = rounds.lock().unwrap_or_else(|p| p.into_inner());
            r.finished += 1;
            r.last_skip = None;
            match done {
                Round::Skipped(reason) => r.last_skip = Some(reason),
                Round::Trained(t) => r.last_trained = Some(t),
                Round::Other => {}
            }
        }
        let until = Instant::now() + every;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One retrain.
fn round(conn: &Connection, cfg: &TrainConfig, gate: &GateConfig) -> Round {
    let started = Instant::now();
    match retrain(conn, cfg, gate) {
        Ok(Retrain::Skipped { reason, .. }) => {
            debug!(target: events::SCHEDULER, %reason, "nothing to do");
            Round::Skipped(reason)
        }
        Ok(Retrain::Regated { version, reason, gate, .. }) => {
            info!(
                target: events::SCHEDULER,
                %version,
                decision = gate.decision.name(),
                %reason,
                seconds = started.elapsed().as_secs_f64(),
                "gated again: {}",
                gate.describe()
            );
            Round::Other
        }
        Ok(Retrain::Trained { judged, registered, gate }) => {
            info!(target: events::SCHEDULER, "{}", judged.describe());
            info!(
                target: events::SCHEDULER,
                version = %registered.version,
                run_id = %registered.run_id,
                decision = gate.decision.name(),
                seconds = started.elapsed().as_secs_f64(),
                "{}",
                gate.describe()
            );
            Round::Trained(Trained {
                version: registered.version,
                promoted: gate.decision.is_champion(),
                gate: gate.describe(),
                judged: judged.describe(),
            })
        }
        Err(e) => {
            warn!(target: events::SCHEDULER, error = %format!("{e:#}"), "retrain failed; the next round tries again");
            Round::Other
        }
    }
}
