//! The promotion gate and the commands around it: `trainer promote`, `trainer rollback` and
//! `trainer retrain`.
//!
//! The gate downloads the challenger's and the champion's bundles, verifies every file,
//! and scores both with the serving core (`edge-classifier`) on the same evaluation set.
//! `champion` moves only if the challenger scores at least the champion's score plus the
//! margin. Every decision is written as tags on the challenger version
//! ([`crate::registry::tags`]), and a corrupt bundle is never promoted, not even with
//! `--force`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use edge_classifier::Classifier;
use edge_classifier::api::Evaluation;
use mlflow_client::types::ModelVersion;
use serde::Serialize;

use crate::config::{ModelArgs, TrainConfig, env_vars};
use crate::registry::{self, Registered, Registry, RegistryArgs, RegistryConfig, aliases, tags};
use crate::{data, evaluate, pipeline};

/// Exit code of `promote` and `retrain` with `--fail-if-not-promoted` when the gate said no.
pub const EXIT_NOT_PROMOTED: u8 = 3;

/// Scores are compared with this slack, so that equal counts never differ by rounding.
const SCORE_EPSILON: f64 = 1e-12;

/// The figure the gate compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateMetric {
    /// Share of examples whose top label is right.
    Accuracy,
    /// Unweighted mean of per-class F1.
    #[value(name = "macro_f1", alias = "macro-f1")]
    MacroF1,
}

impl GateMetric {
    /// The metric's name, as tagged.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accuracy => "accuracy",
            Self::MacroF1 => "macro_f1",
        }
    }

    /// Its value in `e`.
    pub fn of(self, e: &Evaluation) -> f64 {
        match self {
            Self::Accuracy => e.accuracy,
            Self::MacroF1 => e.macro_f1,
        }
    }
}

/// Flags of the gate (shared by `promote` and `retrain`).
#[derive(Debug, Clone, Args)]
pub struct GateArgs {
    /// Labelled evaluation data both models are scored on (any format `train` reads).
    #[arg(long, env = env_vars::EVAL, value_delimiter = ',', required = true)]
    pub eval: Vec<PathBuf>,
    /// The figure compared.
    #[arg(long, value_enum, default_value_t = GateMetric::Accuracy)]
    pub metric: GateMetric,
    /// The challenger must score at least the champion's score plus this.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub margin: f64,
    /// Exit with code 3 when the challenger is not promoted (by default that is exit 0).
    #[arg(long)]
    pub fail_if_not_promoted: bool,
    /// Print the decision as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `trainer promote`.
#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Gate settings.
    #[command(flatten)]
    pub gate: GateArgs,
    /// The version to gate (default: the one with alias `challenger`).
    #[arg(long)]
    pub version: Option<String>,
    /// Promote whatever the scores say (recorded as `forced`). A corrupt bundle is still
    /// refused.
    #[arg(long)]
    pub force: bool,
}

/// Flags of `trainer rollback`.
#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `trainer retrain`.
#[derive(Debug, Clone, Args)]
pub struct RetrainArgs {
    /// Training data, as for `train`: typically a directory where batches accumulate.
    #[arg(long, required = true, env = env_vars::DATA, value_delimiter = ',')]
    pub data: Vec<PathBuf>,
    /// Where to write the new bundle (a temporary directory otherwise).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Gate settings.
    #[command(flatten)]
    pub gate: GateArgs,
    /// Model settings.
    #[command(flatten)]
    pub model: ModelArgs,
}

/// A validated gate configuration.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Evaluation data.
    pub eval: Vec<PathBuf>,
    /// The metric compared.
    pub metric: GateMetric,
    /// Required lead over the champion.
    pub margin: f64,
    /// Promote regardless of scores (never a corrupt bundle).
    pub force: bool,
    /// The version to gate; `None` means the `challenger` alias.
    pub version: Option<String>,
}

impl GateConfig {
    /// Checks the gate flags.
    pub fn resolve(args: &GateArgs, force: bool, version: Option<String>) -> anyhow::Result<Self> {
        if !args.margin.is_finite() || args.margin.abs() > 1.0 {
            anyhow::bail!("`--margin` must be between -1 and 1, got {}", args.margin);
        }
        if args.eval.is_empty() {
            anyhow::bail!("no evaluation data: pass `--eval PATH` or set `{}`", env_vars::EVAL);
        }
        Ok(Self { eval: args.eval.clone(), metric: args.metric, margin: args.margin, force, version })
    }
}

/// What the gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The challenger beat the champion by the margin.
    Promoted,
    /// There was no champion; the challenger is the first.
    PromotedFirst,
    /// `--force` promoted a challenger that did not beat the champion.
    Forced,
    /// The challenger did not beat the champion by the margin.
    Rejected,
    /// The challenger's bundle is missing, incomplete or corrupt.
    RejectedInvalid,
    /// The challenger already is the champion: nothing to do.
    AlreadyChampion,
}

impl Decision {
    /// The tag value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Promoted => "promoted",
            Self::PromotedFirst => "promoted_first",
            Self::Forced => "forced",
            Self::Rejected => "rejected",
            Self::RejectedInvalid => "rejected_invalid",
            Self::AlreadyChampion => "already_champion",
        }
    }

    /// True when the challenger is the champion afterwards.
    pub fn is_champion(self) -> bool {
        matches!(self, Self::Promoted | Self::PromotedFirst | Self::Forced | Self::AlreadyChampion)
    }
}

/// The gate's full answer.
#[derive(Debug, Clone, Serialize)]
pub struct GateOutcome {
    /// Registered model.
    pub model: String,
    /// The decision.
    pub decision: Decision,
    /// The version gated.
    pub challenger_version: String,
    /// The champion it was compared with.
    pub champion_version: Option<String>,
    /// The metric.
    pub metric: GateMetric,
    /// The margin.
    pub margin: f64,
    /// The challenger's score.
    pub challenger_score: Option<f64>,
    /// The champion's score.
    pub champion_score: Option<f64>,
    /// `--force` was given.
    pub forced: bool,
    /// The decision in words.
    pub reason: String,
}

/// Runs the gate: see the module docs.
pub fn promote(reg: &Registry, cfg: &GateConfig) -> anyhow::Result<GateOutcome> {
    let c = reg.client();
    let name = reg.model();
    let model = reg.block(c.get_registered_model(name)).map_err(|e| {
        if e.is_not_found() {
            anyhow::anyhow!("registered model `{name}` does not exist: register one with `trainer train --register`")
        } else {
            anyhow::Error::from(e).context(format!("cannot read registered model `{name}`"))
        }
    })?;
    let challenger_version = match &cfg.version {
        Some(v) => v.clone(),
        None => model
            .alias(aliases::CHALLENGER)
            .map(str::to_owned)
            .with_context(|| format!("model `{name}` has no version with alias `{}`", aliases::CHALLENGER))?,
    };
    let challenger = reg
        .block(c.get_model_version(name, &challenger_version))
        .with_context(|| format!("cannot read version {challenger_version} of `{name}`"))?;
    let champion_version = model.alias(aliases::CHAMPION).map(str::to_owned);
    let mut outcome = GateOutcome {
        model: name.to_owned(),
        decision: Decision::Rejected,
        challenger_version: challenger_version.clone(),
        champion_version: champion_version.clone(),
        metric: cfg.metric,
        margin: cfg.margin,
        challenger_score: None,
        champion_score: None,
        forced: cfg.force,
        reason: String::new(),
    };
    if champion_version.as_deref() == Some(challenger_version.as_str()) {
        outcome.decision = Decision::AlreadyChampion;
        outcome.reason = format!("version {challenger_version} already is the champion");
        return Ok(outcome);
    }

    let eval_batches = read_eval(&cfg.eval)?;
    let eval_snapshot = data::snapshot_of(&eval_batches);
    let tmp = tempfile::Builder::new().prefix("stacktag-gate-").tempdir().context("cannot create a temporary directory")?;

    let downloaded = registry::download_bundle(reg, &challenger, &tmp.path().join("challenger"))?;
    let challenger_classifier = match downloaded.classifier {
        Ok(classifier) => classifier,
        Err(invalid) => {
            outcome.decision = Decision::RejectedInvalid;
            outcome.reason = format!("version {challenger_version} is not a valid bundle: {invalid}");
            record(reg, &challenger, &outcome, &eval_snapshot)?;
            return Ok(outcome);
        }
    };
    let challenger_eval = score(&challenger_classifier, &eval_batches)
        .with_context(|| format!("cannot evaluate version {challenger_version} of `{name}`"))?;
    let challenger_score = cfg.metric.of(&challenger_eval);
    outcome.challenger_score = Some(challenger_score);

    if challenger.tag(tags::ROLLED_BACK).is_some() && !cfg.force {
        outcome.decision = Decision::Rejected;
        outcome.reason = format!("version {challenger_version} was rolled back before; promote it again only with `--force`");
        record(reg, &challenger, &outcome, &eval_snapshot)?;
        return Ok(outcome);
    }

    match &champion_version {
        None => {
            outcome.decision = Decision::PromotedFirst;
            outcome.reason =
                format!("no champion yet: version {challenger_version} is the first valid one ({} {challenger_score:.4})", cfg.metric.name());
        }
        Some(champ) => {
            let champion = reg
                .block(c.get_model_version(name, champ))
                .with_context(|| format!("cannot read champion version {champ} of `{name}`"))?;
            let downloaded = registry::download_bundle(reg, &champion, &tmp.path().join("champion"))?;
            match downloaded.classifier {
                Err(invalid) => {
                    outcome.decision = Decision::Promoted;
                    outcome.reason = format!("champion version {champ} is not a valid bundle ({invalid}); the valid challenger replaces it");
                }
                Ok(classifier) if classifier.manifest().labels != challenger_classifier.manifest().labels => {
                    // Each model is scored on the rows of its own labels: the figures would
                    // not compare.
                    outcome.decision = if cfg.force { Decision::Forced } else { Decision::Rejected };
                    outcome.reason = format!(
                        "labels differ (challenger {:?}, champion version {champ} {:?}): the scores do not compare{}",
                        challenger_classifier.manifest().labels,
                        classifier.manifest().labels,
                        if cfg.force { "; promoted anyway by --force" } else { "; promote only with `--force`" }
                    );
                }
                Ok(classifier) => {
                    let champion_eval = score(&classifier, &eval_batches)
                        .with_context(|| format!("cannot evaluate champion version {champ} of `{name}`"))?;
                    let champion_score = cfg.metric.of(&champion_eval);
                    outcome.champion_score = Some(champion_score);
                    let needed = champion_score + cfg.margin;
                    let m = cfg.metric.name();
                    if challenger_score + SCORE_EPSILON >= needed {
                        outcome.decision = Decision::Promoted;
                        outcome.reason = format!(
                            "challenger {m} {challenger_score:.4} >= champion {champion_score:.4} + margin {:.4}",
                            cfg.margin
                        );
                    } else {
                        outcome.decision = if cfg.force { Decision::Forced } else { Decision::Rejected };
                        outcome.reason = format!(
                            "challenger {m} {challenger_score:.4} < champion {champion_score:.4} + margin {:.4}{}",
                            cfg.margin,
                            if cfg.force { "; promoted anyway by --force" } else { "" }
                        );
                    }
                }
            }
        }
    }
    record(reg, &challenger, &outcome, &eval_snapshot)?;
    if outcome.decision.is_champion() {
        let previous = champion_version.as_deref().unwrap_or("none");
        reg.block(c.set_model_version_tag(name, &challenger_version, tags::PREVIOUS_CHAMPION, previous))
            .with_context(|| format!("cannot tag version {challenger_version} of `{name}`"))?;
        // Moving the alias is the commit point: everything above is recorded first.
        reg.block(c.set_alias(name, aliases::CHAMPION, &challenger_version))
            .with_context(|| format!("cannot point `{}` of `{name}` at version {challenger_version}", aliases::CHAMPION))?;
    }
    Ok(outcome)
}

/// Scores `classifier` on the usable rows of `batches` (those with one of its labels).
fn score(classifier: &Classifier, batches: &[data::Batch]) -> anyhow::Result<Evaluation> {
    let (examples, _) = data::clean_labelled(batches, &classifier.manifest().labels)?;
    evaluate::evaluate_examples(classifier, &examples)
}

fn read_eval(paths: &[PathBuf]) -> anyhow::Result<Vec<data::Batch>> {
    let mut batches = Vec::new();
    for path in paths {
        batches.extend(data::read_source(path).with_context(|| format!("failed to read evaluation data `{}`", path.display()))?);
    }
    Ok(batches)
}

/// Writes the decision as tags on the challenger version.
fn record(reg: &Registry, version: &ModelVersion, o: &GateOutcome, eval_snapshot: &str) -> anyhow::Result<()> {
    let score = |s: Option<f64>| s.map_or_else(|| "none".to_owned(), |v| v.to_string());
    let entries = [
        (tags::DECISION, o.decision.name().to_owned()),
        (tags::METRIC, o.metric.name().to_owned()),
        (tags::MARGIN, o.margin.to_string()),
        (tags::CHALLENGER_SCORE, score(o.challenger_score)),
        (tags::CHAMPION_SCORE, score(o.champion_score)),
        (tags::CHAMPION_VERSION, o.champion_version.clone().unwrap_or_else(|| "none".into())),
        (tags::FORCED, o.forced.to_string()),
        (tags::REASON, o.reason.clone()),
        (tags::EVAL_SNAPSHOT, eval_snapshot.to_owned()),
        (tags::DECIDED_AT, now_rfc3339()),
    ];
    for (key, value) in entries {
        reg.block(reg.client().set_model_version_tag(&version.name, &version.version, key, &value))
            .with_context(|| format!("cannot record the gate's `{key}` on version {} of `{}`", version.version, version.name))?;
    }
    Ok(())
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// What `trainer rollback` did.
#[derive(Debug, Clone, Serialize)]
pub struct Rollback {
    /// Registered model.
    pub model: String,
    /// The champion before.
    pub from_version: String,
    /// The champion now.
    pub to_version: String,
}

/// Points `champion` back at the version it replaced (the `stacktag.previous_champion` tag
/// the gate wrote), records it on both versions, and drops `challenger` if it pointed at the
/// version rolled back from (so the next scheduled gate does not promote it again).
pub fn rollback(reg: &Registry) -> anyhow::Result<Rollback> {
    let c = reg.client();
    let name = reg.model();
    let model = reg.block(c.get_registered_model(name)).with_context(|| format!("cannot read registered model `{name}`"))?;
    let current = model
        .alias(aliases::CHAMPION)
        .with_context(|| format!("model `{name}` has no version with alias `{}`: nothing to roll back", aliases::CHAMPION))?
        .to_owned();
    let version = reg.block(c.get_model_version(name, &current)).with_context(|| format!("cannot read version {current} of `{name}`"))?;
    let previous = version
        .tag(tags::PREVIOUS_CHAMPION)
        .filter(|v| *v != "none" && !v.is_empty())
        .with_context(|| format!("champion version {current} of `{name}` has no previous champion to roll back to"))?
        .to_owned();
    reg.block(c.get_model_version(name, &previous))
        .with_context(|| format!("previous champion version {previous} of `{name}` cannot be read"))?;
    let at = now_rfc3339();
    reg.block(c.set_model_version_tag(name, &current, tags::ROLLED_BACK, &format!("rolled back to version {previous} at {at}")))
        .with_context(|| format!("cannot tag version {current} of `{name}`"))?;
    reg.block(c.set_model_version_tag(name, &previous, tags::RESTORED, &format!("restored from version {current} at {at}")))
        .with_context(|| format!("cannot tag version {previous} of `{name}`"))?;
    reg.block(c.set_alias(name, aliases::CHAMPION, &previous))
        .with_context(|| format!("cannot point `{}` of `{name}` at version {previous}", aliases::CHAMPION))?;
    if model.alias(aliases::CHALLENGER) == Some(current.as_str()) {
        reg.block(c.delete_alias(name, aliases::CHALLENGER))
            .with_context(|| format!("cannot remove `{}` from `{name}`", aliases::CHALLENGER))?;
    }
    Ok(Rollback { model: name.to_owned(), from_version: current, to_version: previous })
}

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
    /// A new model was trained, registered and gated.
    Trained {
        /// The registration.
        registered: Registered,
        /// The gate's answer.
        gate: GateOutcome,
    },
}

/// The scheduler's step: retrains on `train_cfg.data` only when its snapshot differs from
/// the champion's (and from the newest version's, once that was gated), then registers the
/// model and runs the gate on the new version.
pub fn retrain(reg: &Registry, train_cfg: &TrainConfig, gate: &GateConfig) -> anyhow::Result<Retrain> {
    let mut batches = Vec::new();
    for path in &train_cfg.data {
        batches.extend(data::read_source(path).with_context(|| format!("failed to read training data `{}`", path.display()))?);
    }
    let snapshot = data::snapshot_of(&batches);
    drop(batches);
    if let Some(skip) = already_trained(reg, &snapshot)? {
        return Ok(skip);
    }
    let outcome = pipeline::train(train_cfg)?;
    let registered = registry::register(reg, &outcome.bundle_dir, &outcome.manifest)?;
    let gate = GateConfig { version: Some(registered.version.clone()), ..gate.clone() };
    let gate = promote(reg, &gate)?;
    Ok(Retrain::Trained { registered, gate })
}

fn already_trained(reg: &Registry, snapshot: &str) -> anyhow::Result<Option<Retrain>> {
    let c = reg.client();
    let name = reg.model();
    let model = match reg.block(c.get_registered_model(name)) {
        Ok(m) => m,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(anyhow::Error::from(e).context(format!("cannot read registered model `{name}`"))),
    };
    if let Some(champ) = model.alias(aliases::CHAMPION) {
        let v = reg.block(c.get_model_version(name, champ)).with_context(|| format!("cannot read champion version {champ} of `{name}`"))?;
        if v.tag(tags::DATA_SNAPSHOT) == Some(snapshot) {
            return Ok(Some(Retrain::Skipped {
                data_snapshot: snapshot.to_owned(),
                version: v.version.clone(),
                reason: format!("data snapshot unchanged since champion version {}", v.version),
            }));
        }
    }
    // A rejected model on the same data would be rejected again: don't register duplicates.
    let versions = reg.block(c.model_versions(name)).with_context(|| format!("cannot list versions of `{name}`"))?;
    if let Some(newest) = versions.last()
        && newest.tag(tags::DATA_SNAPSHOT) == Some(snapshot)
        && let Some(decision) = newest.tag(tags::DECISION)
    {
        return Ok(Some(Retrain::Skipped {
            data_snapshot: snapshot.to_owned(),
            version: newest.version.clone(),
            reason: format!("data snapshot unchanged since version {}, which the gate already decided on ({decision})", newest.version),
        }));
    }
    Ok(None)
}

// ---- the commands (called from `crate::run`) ------------------------------------------

fn gate_exit(o: &GateOutcome, fail_if_not_promoted: bool) -> ExitCode {
    if fail_if_not_promoted && !o.decision.is_champion() { ExitCode::from(EXIT_NOT_PROMOTED) } else { ExitCode::SUCCESS }
}

fn describe_gate(o: &GateOutcome) -> String {
    let verdict = match o.decision {
        Decision::Promoted | Decision::PromotedFirst | Decision::Forced => {
            format!("promoted version {} of `{}` to `{}`", o.challenger_version, o.model, aliases::CHAMPION)
        }
        Decision::AlreadyChampion => format!("version {} of `{}` already is `{}`", o.challenger_version, o.model, aliases::CHAMPION),
        Decision::Rejected | Decision::RejectedInvalid => format!(
            "not promoted: version {} of `{}` stays `{}`{}",
            o.challenger_version,
            o.model,
            aliases::CHALLENGER,
            o.champion_version.as_ref().map(|c| format!(", version {c} stays `{}`", aliases::CHAMPION)).unwrap_or_default()
        ),
    };
    format!("{verdict} ({}: {})", o.decision.name(), o.reason)
}

/// `trainer promote`.
pub fn run_promote(args: PromoteArgs) -> anyhow::Result<ExitCode> {
    let gate = GateConfig::resolve(&args.gate, args.force, args.version.clone())?;
    let reg = Registry::connect(RegistryConfig::resolve(&args.registry)?)?;
    let outcome = promote(&reg, &gate)?;
    if args.gate.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        println!("{}", describe_gate(&outcome));
    }
    Ok(gate_exit(&outcome, args.gate.fail_if_not_promoted))
}

/// `trainer rollback`.
pub fn run_rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let reg = Registry::connect(RegistryConfig::resolve(&args.registry)?)?;
    let r = rollback(&reg)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("rolled back `{}`: `{}` is version {} again (was {})", r.model, aliases::CHAMPION, r.to_version, r.from_version);
    }
    Ok(ExitCode::SUCCESS)
}

/// `trainer retrain`.
pub fn run_retrain(args: RetrainArgs) -> anyhow::Result<ExitCode> {
    let gate = GateConfig::resolve(&args.gate, false, None)?;
    let reg = Registry::connect(RegistryConfig::resolve(&args.registry)?)?;
    let tmp = tempfile::Builder::new().prefix("stacktag-retrain-").tempdir().context("cannot create a temporary directory")?;
    let out = args.out.clone().unwrap_or_else(|| tmp.path().join("bundle"));
    let train_cfg = TrainConfig::resolve(args.data.clone(), gate.eval.first().cloned(), out, &args.model)?;
    let r = retrain(&reg, &train_cfg, &gate)?;
    if args.gate.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    let code = match &r {
        Retrain::Skipped { reason, .. } => {
            if !args.gate.json {
                println!("nothing to do: {reason}");
            }
            ExitCode::SUCCESS
        }
        Retrain::Trained { registered, gate: outcome } => {
            if !args.gate.json {
                println!("registered version {} of `{}` (run {})", registered.version, registered.model, registered.run_id);
                println!("{}", describe_gate(outcome));
            }
            gate_exit(outcome, args.gate.fail_if_not_promoted)
        }
    };
    Ok(code)
}

/// `trainer train --register`: the registration step after a successful training run.
pub fn report_registered(r: &Registered) {
    eprintln!(
        "registered version {} of `{}` with alias `{}` (run {}, source {})",
        r.version,
        r.model,
        aliases::CHALLENGER,
        r.run_id,
        r.source
    );
}
