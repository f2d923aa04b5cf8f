//! The promotion gate: a challenger becomes `champion` only if it scores at least the
//! champion's score plus a margin on the same evaluation set.
//!
//! [`decide`] is the whole rule set, pure: it takes what is known about both versions and
//! returns the decision and its reason. [`promote`] gathers that evidence (downloads and
//! verifies both bundles, scores them with the caller's evaluation set), records the decision
//! as tags on the challenger version, and moves the alias last, so a crash leaves the old
//! champion in place.
//!
//! Moving `champion` is the commit point of a promotion. Its evidence is written first with
//! the decision as [`tags::PENDING_DECISION`]; [`tags::DECISION`] follows the alias. A version
//! with a pending decision and no decision is a promotion cut short: the next gate run on it
//! finishes it when `champion` did move (only the decision tag was lost) and decides again when
//! it did not. `trainer retrain` gates such a version again instead of skipping its data
//! ([`crate::trained_before`]).

use std::fmt::Write as _;

use anyhow::Context;
use edge_classifier::Classifier;
use edge_classifier::api::Evaluation;
use mlflow_client::types::ModelVersion;
use serde::Serialize;

use crate::download::download_verified;
use crate::names::{NONE, aliases, tags};
use crate::registry::Registry;

/// Scores are compared with this slack, so that equal counts never differ by rounding.
const SCORE_EPSILON: f64 = 1e-12;

/// The figure the gate compares.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::EnumString, strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum GateMetric {
    /// Share of examples whose top label is right.
    Accuracy,
    /// Unweighted mean of per-class F1.
    #[strum(to_string = "macro_f1", serialize = "macro-f1")]
    MacroF1,
}

impl GateMetric {
    /// The metric's name, as tagged and printed.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Its value in `e`.
    pub fn of(self, e: &Evaluation) -> f64 {
        match self {
            Self::Accuracy => e.accuracy,
            Self::MacroF1 => e.macro_f1,
        }
    }
}

/// What the gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Decision {
    /// The challenger beat the champion by the margin (or the champion is not a valid bundle).
    Promoted,
    /// There was no champion; the challenger is the first.
    PromotedFirst,
    /// `force` promoted a challenger that did not beat the champion, or whose scores do not
    /// compare with the champion's.
    Forced,
    /// The challenger did not beat the champion by the margin, or needs `force`.
    Rejected,
    /// The challenger's bundle is missing, incomplete or corrupt. Even `force` cannot help.
    RejectedInvalid,
    /// The challenger already is the champion: nothing to do.
    AlreadyChampion,
}

impl Decision {
    /// The tag value.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// True when the challenger is the champion afterwards.
    pub fn is_champion(self) -> bool {
        matches!(self, Self::Promoted | Self::PromotedFirst | Self::Forced | Self::AlreadyChampion)
    }
}

/// The rules a decision follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// The figure compared.
    pub metric: GateMetric,
    /// Required lead over the champion, in `[-1, 1]`.
    pub margin: f64,
    /// Promote whatever the scores say (never an invalid bundle).
    pub force: bool,
}

/// What the gate knows of one version's bundle.
#[derive(Debug, Clone, PartialEq)]
pub enum Assessment {
    /// It verified and loaded; its labels and its score on the evaluation set (on the rows of
    /// its own labels).
    Valid {
        /// Its labels, in output order.
        labels: Vec<String>,
        /// Its score in the rules' metric.
        score: f64,
    },
    /// It cannot be used, and why.
    Invalid(String),
}

/// One side of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Contender {
    /// The version.
    pub version: String,
    /// Its bundle.
    pub assessment: Assessment,
    /// It was rolled back from before (`stacktag.rollback` is set).
    pub rolled_back: bool,
}

/// A decision and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The decision.
    pub decision: Decision,
    /// The decision in words.
    pub reason: String,
    /// The two scores were compared (so the champion's score is part of the record).
    pub compared: bool,
}

/// The gate's rules, in order: an invalid challenger is never promoted; a rolled-back one
/// needs `force`; with no champion the first valid one wins; an invalid champion is replaced;
/// labels that differ make the scores incomparable, so only `force` promotes; otherwise the
/// challenger needs at least the champion's score plus the margin, or `force`.
pub fn decide(challenger: &Contender, champion: Option<&Contender>, rules: &Rules) -> Verdict {
    let v = &challenger.version;
    let m = rules.metric.name();
    let verdict = |decision, reason: String| Verdict { decision, reason, compared: false };
    let (labels, score) = match &challenger.assessment {
        Assessment::Invalid(why) => {
            return verdict(Decision::RejectedInvalid, format!("version {v} is not a valid bundle: {why}"));
        }
        Assessment::Valid { labels, score } => (labels, *score),
    };
    if challenger.rolled_back && !rules.force {
        return verdict(
            Decision::Rejected,
            format!("version {v} was rolled back before; promote it again only with `--force`"),
        );
    }
    let or_forced = |reason: String, hint: &str| match rules.force {
        true => verdict(Decision::Forced, format!("{reason}; promoted anyway by --force")),
        false => verdict(Decision::Rejected, format!("{reason}{hint}")),
    };
    let Some(champion) = champion else {
        return verdict(
            Decision::PromotedFirst,
            format!("no champion yet: version {v} is the first valid one ({m} {score:.4})"),
        );
    };
    let c = &champion.version;
    match &champion.assessment {
        Assessment::Invalid(why) => verdict(
            Decision::Promoted,
            format!("champion version {c} is not a valid bundle ({why}); the valid challenger replaces it"),
        ),
        // Each model is scored on the rows of its own labels: the figures would not compare.
        Assessment::Valid { labels: theirs, .. } if theirs != labels => or_forced(
            format!(
                "labels differ (challenger {labels:?}, champion version {c} {theirs:?}): the scores do not compare"
            ),
            "; promote only with `--force`",
        ),
        Assessment::Valid { score: theirs, .. } => {
            let margin = rules.margin;
            let mut verdict = if score + SCORE_EPSILON >= theirs + margin {
                verdict(
                    Decision::Promoted,
                    format!("challenger {m} {score:.4} >= champion {theirs:.4} + margin {margin:.4}"),
                )
            } else {
                or_forced(format!("challenger {m} {score:.4} < champion {theirs:.4} + margin {margin:.4}"), "")
            };
            verdict.compared = true;
            verdict
        }
    }
}

/// The gate's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GateConfig {
    /// The rules.
    pub rules: Rules,
    /// The version to gate; `None` means the `challenger` alias.
    pub version: Option<String>,
}

impl GateConfig {
    /// Checks the settings: the margin is a finite number in `[-1, 1]`.
    pub fn new(metric: GateMetric, margin: f64, force: bool, version: Option<String>) -> anyhow::Result<Self> {
        if !margin.is_finite() || margin.abs() > 1.0 {
            anyhow::bail!("`--margin` must be between -1 and 1, got {margin}");
        }
        Ok(Self { rules: Rules { metric, margin, force }, version })
    }
}

/// How the gate scores both versions: on one evaluation set (a `dataset::EvalSet` in the
/// trainer), the same function for both.
pub struct Scoring<'a> {
    /// sha256 of the data, recorded with the decision.
    pub snapshot: &'a str,
    /// Scores a verified classifier on the rows of its own labels.
    pub score: &'a dyn Fn(&Classifier) -> anyhow::Result<Evaluation>,
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
    /// The champion's score, when the scores were compared.
    pub champion_score: Option<f64>,
    /// `force` was given.
    pub forced: bool,
    /// The decision in words.
    pub reason: String,
}

impl GateOutcome {
    /// One line for people: what happened to which version, and why.
    pub fn describe(&self) -> String {
        let mut line = match self.decision {
            Decision::Promoted | Decision::PromotedFirst | Decision::Forced => {
                format!("promoted version {} of `{}` to `{}`", self.challenger_version, self.model, aliases::CHAMPION)
            }
            Decision::AlreadyChampion => {
                format!("version {} of `{}` already is `{}`", self.challenger_version, self.model, aliases::CHAMPION)
            }
            Decision::Rejected | Decision::RejectedInvalid => {
                format!(
                    "not promoted: version {} of `{}` stays `{}`",
                    self.challenger_version,
                    self.model,
                    aliases::CHALLENGER
                )
            }
        };
        if !self.decision.is_champion()
            && let Some(c) = &self.champion_version
        {
            let _ = write!(line, ", version {c} stays `{}`", aliases::CHAMPION);
        }
        format!("{line} ({}: {})", self.decision.name(), self.reason)
    }
}

/// Runs the gate on `cfg.version` (or the `challenger` alias): see the module docs. Transport
/// failures are errors and decide nothing; a bundle that cannot be used is a decision
/// (`rejected_invalid`), recorded like any other.
pub async fn promote(reg: &Registry, cfg: &GateConfig, eval: &Scoring<'_>) -> anyhow::Result<GateOutcome> {
    let c = reg.client();
    let name = reg.model();
    let model = c.get_registered_model(name).await.map_err(|e| {
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
    let challenger = c
        .get_model_version(name, &challenger_version)
        .await
        .with_context(|| format!("cannot read version {challenger_version} of `{name}`"))?;
    let champion_version = model.alias(aliases::CHAMPION).map(str::to_owned);
    let mut outcome = GateOutcome {
        model: name.to_owned(),
        decision: Decision::AlreadyChampion,
        challenger_version: challenger_version.clone(),
        champion_version: champion_version.clone(),
        metric: cfg.rules.metric,
        margin: cfg.rules.margin,
        challenger_score: None,
        champion_score: None,
        forced: cfg.rules.force,
        reason: format!("version {challenger_version} already is the champion"),
    };
    if champion_version.as_deref() == Some(challenger_version.as_str()) {
        // A promotion whose alias moved but whose decision tag was lost: finish recording it.
        if let Some(pending) = unfinished_promotion(&challenger) {
            c.set_model_version_tag(name, &challenger_version, tags::DECISION, pending)
                .await
                .with_context(|| format!("cannot finish the decision on version {challenger_version} of `{name}`"))?;
            outcome.reason =
                format!("version {challenger_version} already is the champion (its `{pending}` recorded now)");
        }
        return Ok(outcome);
    }

    let tmp =
        tempfile::Builder::new().prefix("stacktag-gate-").tempdir().context("cannot create a temporary directory")?;
    let challenger_side = assess(reg, &challenger, &tmp.path().join("challenger"), cfg.rules.metric, eval).await?;
    let champion_side = match &champion_version {
        None => None,
        Some(v) => {
            let version = c
                .get_model_version(name, v)
                .await
                .with_context(|| format!("cannot read champion version {v} of `{name}`"))?;
            Some(assess(reg, &version, &tmp.path().join("champion"), cfg.rules.metric, eval).await?)
        }
    };
    let verdict = decide(&challenger_side, champion_side.as_ref(), &cfg.rules);
    let score_of = |side: Option<&Contender>| match side.map(|s| &s.assessment) {
        Some(Assessment::Valid { score, .. }) => Some(*score),
        _ => None,
    };
    outcome.decision = verdict.decision;
    outcome.reason = verdict.reason;
    outcome.challenger_score = score_of(Some(&challenger_side));
    outcome.champion_score = if verdict.compared { score_of(champion_side.as_ref()) } else { None };

    record(reg, &challenger, &outcome, eval.snapshot).await?;
    if outcome.decision.is_champion() {
        let previous = champion_version.as_deref().unwrap_or(NONE);
        c.set_model_version_tag(name, &challenger_version, tags::PREVIOUS_CHAMPION, previous)
            .await
            .with_context(|| format!("cannot tag version {challenger_version} of `{name}`"))?;
        // Moving the alias is the commit point: the evidence is recorded first, the decision
        // after (module docs).
        c.set_alias(name, aliases::CHAMPION, &challenger_version).await.with_context(|| {
            format!("cannot point `{}` of `{name}` at version {challenger_version}", aliases::CHAMPION)
        })?;
        c.set_model_version_tag(name, &challenger_version, tags::DECISION, outcome.decision.name())
            .await
            .with_context(|| {
                format!(
                    "`{}` of `{name}` now points at version {challenger_version}, but its decision tag could not be \
                     written (the next gate run on it writes it)",
                    aliases::CHAMPION
                )
            })?;
    }
    Ok(outcome)
}

/// The decision a promotion cut short left pending on `version`, if any: one recorded as
/// pending that its decision tag does not (yet) repeat (module docs).
pub(crate) fn unfinished_promotion(version: &ModelVersion) -> Option<&str> {
    let pending = version.tag(tags::PENDING_DECISION).filter(|p| *p != NONE)?;
    (version.tag(tags::DECISION) != Some(pending)).then_some(pending)
}

/// Downloads, verifies and scores one version.
async fn assess(
    reg: &Registry,
    version: &ModelVersion,
    dest: &std::path::Path,
    metric: GateMetric,
    eval: &Scoring<'_>,
) -> anyhow::Result<Contender> {
    let downloaded = download_verified(reg, version, dest).await?;
    let assessment = match downloaded.classifier {
        Err(invalid) => Assessment::Invalid(edge_classifier::chain(&invalid)),
        Ok(classifier) => {
            let evaluation = (eval.score)(&classifier)
                .with_context(|| format!("cannot evaluate version {} of `{}`", version.version, version.name))?;
            Assessment::Valid { labels: classifier.manifest().labels.clone(), score: metric.of(&evaluation) }
        }
    };
    Ok(Contender {
        version: version.version.clone(),
        assessment,
        rolled_back: version.tag(tags::ROLLED_BACK).is_some(),
    })
}

/// Writes the decision and its evidence as tags on the challenger version: a promotion's as
/// pending (its decision tag follows the alias), any other's as final.
async fn record(reg: &Registry, version: &ModelVersion, o: &GateOutcome, eval_snapshot: &str) -> anyhow::Result<()> {
    let score = |s: Option<f64>| s.map_or_else(|| NONE.to_owned(), |v| v.to_string());
    // A promotion's decision stays pending until the alias moved; any other is final now, and
    // clears what an earlier run on this version left pending.
    let (pending, decision) = match o.decision.is_champion() {
        true => (o.decision.name(), None),
        false => (NONE, Some(o.decision.name())),
    };
    let entries = [
        (tags::PENDING_DECISION, pending.to_owned()),
        (tags::METRIC, o.metric.name().to_owned()),
        (tags::MARGIN, o.margin.to_string()),
        (tags::CHALLENGER_SCORE, score(o.challenger_score)),
        (tags::CHAMPION_SCORE, score(o.champion_score)),
        (tags::CHAMPION_VERSION, o.champion_version.clone().unwrap_or_else(|| NONE.into())),
        (tags::FORCED, o.forced.to_string()),
        (tags::REASON, o.reason.clone()),
        (tags::EVAL_SNAPSHOT, eval_snapshot.to_owned()),
        (tags::DECIDED_AT, crate::now_rfc3339()),
    ];
    let last = decision.map(|d| (tags::DECISION, d.to_owned()));
    for (key, value) in entries.into_iter().chain(last) {
        reg.client().set_model_version_tag(&version.name, &version.version, key, &value).await.with_context(|| {
            format!("cannot record the gate's `{key}` on version {} of `{}`", version.version, version.name)
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Every rule of [`decide`], without a server.

    use super::*;

    const LABELS: [&str; 4] = ["csharp", "java", "javascript", "python"];

    fn valid(version: &str, score: f64) -> Contender {
        Contender {
            version: version.into(),
            assessment: Assessment::Valid { labels: LABELS.map(String::from).to_vec(), score },
            rolled_back: false,
        }
    }

    fn invalid(version: &str) -> Contender {
        Contender {
            version: version.into(),
            assessment: Assessment::Invalid("`model.onnx` is cut short".into()),
            rolled_back: false,
        }
    }

    fn rules(margin: f64, force: bool) -> Rules {
        Rules { metric: GateMetric::Accuracy, margin, force }
    }

    #[test]
    fn the_first_valid_version_is_promoted() {
        let v = decide(&valid("1", 0.5), None, &rules(0.0, false));
        assert_eq!(v.decision, Decision::PromotedFirst);
        assert!(!v.compared);
    }

    #[test]
    fn an_invalid_challenger_is_never_promoted_not_even_with_force() {
        for champion in [None, Some(valid("1", 0.1)), Some(invalid("1"))] {
            for force in [false, true] {
                let v = decide(&invalid("2"), champion.as_ref(), &rules(0.0, force));
                assert_eq!(v.decision, Decision::RejectedInvalid, "force {force}, champion {champion:?}");
                assert!(v.reason.contains("cut short"), "{}", v.reason);
            }
        }
    }

    #[test]
    fn an_invalid_champion_is_replaced_by_a_valid_challenger() {
        let v = decide(&valid("2", 0.1), Some(&invalid("1")), &rules(0.5, false));
        assert_eq!(v.decision, Decision::Promoted);
        assert!(v.reason.contains("champion version 1 is not a valid bundle"), "{}", v.reason);
        assert!(!v.compared, "there was no score to compare with");
    }

    #[test]
    fn the_margin_is_a_lower_bound_that_an_equal_score_meets() {
        // Equal scores pass a zero margin, and a score exactly at champion + margin passes.
        assert_eq!(decide(&valid("2", 0.9), Some(&valid("1", 0.9)), &rules(0.0, false)).decision, Decision::Promoted);
        assert_eq!(decide(&valid("2", 0.75), Some(&valid("1", 0.5)), &rules(0.25, false)).decision, Decision::Promoted);
        // Just below it fails; a negative margin lets a slightly worse model through.
        let below = decide(&valid("2", 0.7499), Some(&valid("1", 0.5)), &rules(0.25, false));
        assert_eq!(below.decision, Decision::Rejected);
        assert!(below.compared && below.reason.contains("< champion 0.5000 + margin 0.2500"), "{}", below.reason);
        assert_eq!(
            decide(&valid("2", 0.89), Some(&valid("1", 0.9)), &rules(-0.02, false)).decision,
            Decision::Promoted
        );
        assert_eq!(decide(&valid("2", 0.89), Some(&valid("1", 0.9)), &rules(0.0, false)).decision, Decision::Rejected);
    }

    #[test]
    fn force_promotes_a_worse_challenger_and_says_so() {
        let v = decide(&valid("2", 0.1), Some(&valid("1", 0.9)), &rules(0.0, true));
        assert_eq!(v.decision, Decision::Forced);
        assert!(v.compared && v.reason.ends_with("promoted anyway by --force"), "{}", v.reason);
        // A better challenger with force is simply promoted: force did not decide.
        assert_eq!(decide(&valid("2", 0.95), Some(&valid("1", 0.9)), &rules(0.0, true)).decision, Decision::Promoted);
    }

    #[test]
    fn labels_that_differ_need_force() {
        let mut other = valid("1", 0.99);
        other.assessment = Assessment::Valid { labels: vec!["go".into(), "rust".into()], score: 0.2 };
        let refused = decide(&valid("2", 0.9), Some(&other), &rules(0.0, false));
        assert_eq!(refused.decision, Decision::Rejected);
        assert!(refused.reason.contains("labels differ") && refused.reason.contains("`--force`"), "{}", refused.reason);
        assert!(!refused.compared, "scores on different labels are not compared");
        let forced = decide(&valid("2", 0.1), Some(&other), &rules(0.0, true));
        assert_eq!(forced.decision, Decision::Forced);
        assert!(!forced.compared);
    }

    #[test]
    fn a_rolled_back_version_needs_force_and_then_still_competes() {
        let mut back = valid("2", 0.95);
        back.rolled_back = true;
        let refused = decide(&back, Some(&valid("3", 0.5)), &rules(0.0, false));
        assert_eq!(refused.decision, Decision::Rejected);
        assert!(refused.reason.contains("rolled back"), "{}", refused.reason);
        // Not even as the first version.
        assert_eq!(decide(&back, None, &rules(0.0, false)).decision, Decision::Rejected);
        // With force it competes on its score like any other.
        assert_eq!(decide(&back, Some(&valid("3", 0.5)), &rules(0.0, true)).decision, Decision::Promoted);
        back.assessment = Assessment::Valid { labels: LABELS.map(String::from).to_vec(), score: 0.1 };
        assert_eq!(decide(&back, Some(&valid("3", 0.5)), &rules(0.0, true)).decision, Decision::Forced);
    }

    #[test]
    fn rounding_never_separates_equal_counts() {
        // 0.1 + 0.2 != 0.3 in floating point; the slack keeps equal scores equal.
        let v = decide(&valid("2", 0.3), Some(&valid("1", 0.1)), &rules(0.2, false));
        assert_eq!(v.decision, Decision::Promoted, "{}", v.reason);
    }

    #[test]
    fn margins_outside_minus_one_to_one_are_refused() {
        for bad in [1.5, -2.0, f64::NAN, f64::INFINITY] {
            assert!(GateConfig::new(GateMetric::Accuracy, bad, false, None).is_err(), "{bad}");
        }
        assert!(GateConfig::new(GateMetric::MacroF1, -1.0, false, None).is_ok());
    }

    #[test]
    fn names_are_the_tag_values() {
        assert_eq!(Decision::PromotedFirst.name(), "promoted_first");
        assert_eq!(Decision::RejectedInvalid.name(), "rejected_invalid");
        assert_eq!(GateMetric::MacroF1.name(), "macro_f1");
        assert_eq!("macro-f1".parse::<GateMetric>().expect("alias"), GateMetric::MacroF1);
        for d in [Decision::Promoted, Decision::Forced, Decision::AlreadyChampion] {
            assert_eq!(serde_json::to_value(d).expect("json"), d.name(), "serde and the tag agree");
        }
    }
}
