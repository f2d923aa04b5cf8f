//! Probabilities that mean what they say, and the rule that says "unsure" (format 5).
//!
//! A model fitted to its training set is overconfident on anything else. Calibrating it needs
//! logits of questions it never trained on, and the training set is the only data that may be
//! used for that (the evaluation set decides promotions; the test set is reported once). So,
//! as scikit-learn's `CalibratedClassifierCV(ensemble=False)` does: the model is fitted `k`
//! times, each time without one of `k` stratified folds, and scores the fold it left out. Every
//! training question then has an out-of-fold logit vector from a model that never saw it.
//!
//! On those, two calibrations are fitted by minimising the log loss and scored on questions
//! they were not fitted on (two halves, each fitted on one and scored on the other):
//! **temperature** scaling (one multiplier for every logit: the ranking, hence the accuracy,
//! stays exactly as it was) and **vector scaling** (a multiplier and an offset per label).
//! Vector scaling is kept only if its held-out log loss is lower by more than two standard
//! errors of the paired difference: it may move the ranking, so it must earn it. The final model, fitted on every question, gets the chosen one folded into its
//! weights and bias ([`LinearModel::calibrated`]), so the graph itself answers calibrated.
//!
//! The unsure rule is derived on the same out-of-fold answers:
//! - `below_confidence` is 0.5: with calibrated probabilities, an answer under 0.5 is more
//!   likely wrong than right. The out-of-fold accuracy of such answers is recorded to show it.
//! - `min_known_features`: a probability calibrated on whole questions says nothing about a
//!   text with almost no evidence in it (a title, a word, 60 KB of one letter). The evidence is
//!   the number of the text's distinct features the model learnt weights for
//!   ([`edge_classifier::features::known`]). Snippets of 1 to 32 tokens are cut from every
//!   out-of-fold question at random places, and each answered by the model that never saw
//!   the question; the rule starts just
//!   above the highest known-feature count at which the cuts' calibrated probability overstates
//!   how often they are right (see [`min_known_features`]).
//!
//! The tokenizer is trained once on the whole training set, so a held-out fold's words were
//! seen by the tokenizer (not by the classifier): it is unsupervised and its share of the
//! fit is small, and training it `k` times would cost more than the folds themselves.

use std::collections::BTreeMap;

use edge_classifier::api::{Calibration, UnsureRule};
use edge_classifier::features;
use edge_classifier::metrics::{CALIBRATION_BINS, calibration_error};
use serde::Serialize;
use serde_json::json;

use crate::model::{self, FeatureSpec, FitParams, LinearModel, softmax};
use crate::rng::SplitMix64;

/// Folds of the out-of-fold logits unless told otherwise.
pub const DEFAULT_FOLDS: usize = 5;

/// An answer under this calibrated probability is more likely wrong than right.
pub const BELOW_CONFIDENCE: f32 = 0.5;

/// The lengths, in tokens, of the snippets cut from each question to measure answers on little
/// evidence: one run of each from a random place (a question's first tokens are mostly prose,
/// so its beginning alone would understate what a short text can say).
const CUT_TOKENS: [usize; 10] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32];

/// Known-feature counts at or above this are pooled into one bin.
const MAX_KNOWN_BIN: u32 = 48;

/// A known-feature count is judged only with at least this many cuts (below, its accuracy is
/// too uncertain to move the rule: ±0.09 at 30).
const MIN_CUTS_PER_BIN: usize = 30;

/// How far the cuts' mean probability may exceed their accuracy (beyond sampling noise) before
/// their evidence counts as too little: 5 points, several times the out-of-fold calibration
/// error of whole questions.
const MAX_OVERSTATEMENT: f64 = 0.05;

/// Salt of the fold assignment's generator, so folds do not follow the example order's shuffle.
const FOLD_SALT: u64 = 0x5EED_CA11_B4A7_E000;

/// Salt of the snippets' generator.
const CUT_SALT: u64 = 0x5EED_C075_0000_0001;

/// A calibration: per-label logit multiplier and offset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scaling {
    /// `temperature` or `vector_scaling`.
    pub method: &'static str,
    /// Per label.
    pub scale: Vec<f32>,
    /// Per label.
    pub shift: Vec<f32>,
}

impl Scaling {
    fn identity(labels: usize) -> Self {
        Self { method: "none", scale: vec![1.0; labels], shift: vec![0.0; labels] }
    }

    /// The calibrated answer to `a`: its top probability, and whether its label is right.
    fn top(&self, a: &Answer) -> (f32, bool) {
        let p = self.probabilities(&a.logits);
        let top = edge_classifier::argmax(&p);
        (p[top], top == a.target)
    }

    /// Calibrated probabilities for raw `logits`.
    pub fn probabilities(&self, logits: &[f32]) -> Vec<f32> {
        let z: Vec<f32> = logits.iter().zip(&self.scale).zip(&self.shift).map(|((z, a), b)| a * z + b).collect();
        softmax(&z)
    }
}

/// A calibration method: out-of-fold answers and the label count in, a scaling out.
type Fitter = fn(&[Answer], usize) -> Scaling;

/// One held-out answer: the logits of a model that never saw the question, and its truth.
#[derive(Debug, Clone)]
struct Answer {
    logits: Vec<f32>,
    target: usize,
    known: u32,
}

/// Fits `k = folds` models on the training set without one fold each, and from their
/// out-of-fold answers chooses and fits the calibration and derives the unsure rule (see the
/// module's documentation): what the manifest records, whose scale and shift
/// [`LinearModel::calibrated`] folds into the final model. `on_fold` is called after each
/// fold. Fails with fewer than two rows per fold.
pub fn calibrate(
    docs: &[Vec<i64>],
    targets: &[usize],
    spec: FeatureSpec,
    labels: usize,
    params: FitParams,
    folds: usize,
    mut on_fold: impl FnMut(usize),
) -> anyhow::Result<Calibration> {
    if folds < 2 {
        anyhow::bail!("calibration needs at least 2 folds, got {folds}");
    }
    if docs.len() < folds * 2 {
        anyhow::bail!("calibration with {folds} folds needs at least {} training rows, got {}", folds * 2, docs.len());
    }
    let fold_of = assign_folds(targets, labels, folds, params.seed);
    let mut cut_rng = SplitMix64::new(params.seed ^ CUT_SALT);
    let mut answers: Vec<Option<Answer>> = vec![None; docs.len()];
    let mut cuts: Vec<Answer> = Vec::new();
    for k in 0..folds {
        let train: Vec<usize> = (0..docs.len()).filter(|&i| fold_of[i] != k).collect();
        let fold_docs: Vec<Vec<i64>> = train.iter().map(|&i| docs[i].clone()).collect();
        let fold_targets: Vec<usize> = train.iter().map(|&i| targets[i]).collect();
        let m = model::fit(&fold_docs, &fold_targets, spec, labels, params, |_| {});
        for i in (0..docs.len()).filter(|&i| fold_of[i] == k) {
            let ids = &docs[i];
            answers[i] = Some(Answer { logits: m.logits(ids), target: targets[i], known: known_features(&m, ids) });
            // Snippets of the question: a run of each length from a seeded random place,
            // between the question's own [BOS] and [EOS].
            let inner = &ids[1..ids.len().saturating_sub(1).max(1)];
            for &len in CUT_TOKENS.iter().filter(|&&len| len <= inner.len()) {
                let start = cut_rng.below(inner.len() - len + 1);
                let cut: Vec<i64> =
                    ids[..1].iter().chain(&inner[start..start + len]).chain(ids.last()).copied().collect();
                cuts.push(Answer { logits: m.logits(&cut), target: targets[i], known: known_features(&m, &cut) });
            }
        }
        on_fold(k);
    }
    let answers: Vec<Answer> = answers.into_iter().flatten().collect();

    // Each method fitted on one half, scored on the other, both ways.
    let halves: [Vec<Answer>; 2] = [0, 1].map(|h| answers.iter().skip(h).step_by(2).cloned().collect());
    let methods: [(&str, Fitter); 3] =
        [("none", |_, l| Scaling::identity(l)), ("temperature", fit_temperature), ("vector_scaling", fit_vector)];
    let mut held_out = BTreeMap::new();
    // Per held-out answer, each method's loss, in the same order for every method.
    let mut losses: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (name, fit) in methods {
        let mut ece = 0.0;
        let mut each = Vec::with_capacity(answers.len());
        for h in 0..2 {
            let s = fit(&halves[h], labels);
            each.extend(halves[1 - h].iter().map(|a| loss_of(&s, a)));
            ece += ece_of(&s, &halves[1 - h]) / 2.0;
        }
        let nll = each.iter().sum::<f64>() / each.len().max(1) as f64;
        held_out.insert(name.to_owned(), json!({ "log_loss": round(nll), "ece": round(ece) }));
        losses.insert(name, each);
    }
    // Vector scaling has four times the parameters and may move the ranking (so the accuracy):
    // it is kept only when it beats temperature scaling on held-out answers by more than two
    // standard errors of the paired difference.
    let (gain, se) = paired_gain(&losses["temperature"], &losses["vector_scaling"]);
    let chosen = if gain > 2.0 * se { "vector_scaling" } else { "temperature" };
    held_out.insert(
        "vector_over_temperature".to_owned(),
        json!({ "log_loss_gain": round(gain), "standard_error": round(se) }),
    );
    let scaling =
        if chosen == "vector_scaling" { fit_vector(&answers, labels) } else { fit_temperature(&answers, labels) };

    let below = calibrated_below(&scaling, &answers);
    let (min_known, by_known) = min_known_features(&scaling, &cuts);
    let (little_below, little_table) = little_evidence_below(&scaling, &cuts, min_known);
    let rule = UnsureRule {
        min_known_features: min_known,
        little_evidence_below: little_below,
        below_confidence: BELOW_CONFIDENCE,
    };
    let fitted = json!({
        "folds": folds,
        "examples": answers.len(),
        "chosen_by": "log loss on out-of-fold answers it was not fitted on (two halves, each way): vector scaling only if it beats temperature scaling by more than two standard errors",
        "held_out": held_out,
        "out_of_fold": {
            "log_loss_before": round(log_loss(&Scaling::identity(labels), &answers)),
            "log_loss_after": round(log_loss(&scaling, &answers)),
            "ece_before": round(ece_of(&Scaling::identity(labels), &answers)),
            "ece_after": round(ece_of(&scaling, &answers)),
            "answers_below_confidence": below.0,
            "accuracy_below_confidence": below.1.map(round),
        },
        "cut_accuracy_by_known_features": by_known,
        "little_evidence_cuts_at_or_above": little_table,
    });
    let fitted = match fitted {
        serde_json::Value::Object(map) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    Ok(Calibration {
        method: scaling.method.to_owned(),
        scale: scaling.scale,
        shift: scaling.shift,
        unsure: rule,
        fitted,
    })
}

/// How many of `ids`' distinct features `model` learnt weights for, counted as the core counts
/// a served answer's ([`features::known`] over the graph's rows).
pub fn known_features(model: &LinearModel, ids: &[i64]) -> u32 {
    let c = features::count(&model.spec, ids);
    let l = model.labels;
    features::known(&c.of_position, c.rows.len(), |f| {
        model.weights[c.rows[f] as usize * l..][..l].iter().any(|w| *w != 0.0)
    })
}

/// Stratified folds: each label's examples shuffled, then dealt in turn, so every fold has
/// each label's share.
pub(crate) fn assign_folds(targets: &[usize], labels: usize, folds: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed ^ FOLD_SALT);
    let mut fold_of = vec![0; targets.len()];
    let mut next = 0;
    for label in 0..labels {
        let mut of_label: Vec<usize> = (0..targets.len()).filter(|&i| targets[i] == label).collect();
        rng.shuffle(&mut of_label);
        for i in of_label {
            fold_of[i] = next % folds;
            next += 1;
        }
    }
    fold_of
}

/// Mean negative log-likelihood of the truth.
fn log_loss(s: &Scaling, answers: &[Answer]) -> f64 {
    answers.iter().map(|a| loss_of(s, a)).sum::<f64>() / answers.len().max(1) as f64
}

/// One answer's negative log-likelihood of its truth.
fn loss_of(s: &Scaling, a: &Answer) -> f64 {
    -f64::from(s.probabilities(&a.logits)[a.target].max(1e-12)).ln()
}

/// How much lower `b`'s losses are than `a`'s on the same answers: the mean paired difference
/// and its standard error.
fn paired_gain(a: &[f64], b: &[f64]) -> (f64, f64) {
    let n = a.len().min(b.len()).max(1) as f64;
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mean = d.iter().sum::<f64>() / n;
    let var = d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

/// The expected calibration error of `answers` once scaled by `s`.
fn ece_of(s: &Scaling, answers: &[Answer]) -> f64 {
    calibration_error(answers.iter().map(|a| s.top(a)), CALIBRATION_BINS)
}

/// Temperature scaling: the one multiplier of every logit with the lowest log loss. The loss is
/// convex in the multiplier, so it has one minimum along its logarithm too, which a
/// golden-section search over [e⁻⁶, e⁴] finds to 1e-6.
fn fit_temperature(answers: &[Answer], labels: usize) -> Scaling {
    let loss = |ln_a: f64| {
        let s = Scaling { method: "temperature", scale: vec![ln_a.exp() as f32; labels], shift: vec![0.0; labels] };
        log_loss(&s, answers)
    };
    let (mut lo, mut hi) = (-6.0f64, 4.0f64);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut x1, mut x2) = (hi - g * (hi - lo), lo + g * (hi - lo));
    let (mut f1, mut f2) = (loss(x1), loss(x2));
    while hi - lo > 1e-6 {
        if f1 <= f2 {
            (hi, x2, f2) = (x2, x1, f1);
            x1 = hi - g * (hi - lo);
            f1 = loss(x1);
        } else {
            (lo, x1, f1) = (x1, x2, f2);
            x2 = lo + g * (hi - lo);
            f2 = loss(x2);
        }
    }
    let a = ((lo + hi) / 2.0).exp() as f32;
    Scaling { method: "temperature", scale: vec![a; labels], shift: vec![0.0; labels] }
}

/// Vector scaling: a multiplier and an offset per label with the lowest log loss, by gradient
/// descent from the temperature's solution (the loss is convex in them: the calibrated logits
/// are linear in the parameters), each step halved until it lowers the loss.
fn fit_vector(answers: &[Answer], labels: usize) -> Scaling {
    let start = fit_temperature(answers, labels);
    let (mut a, mut b): (Vec<f64>, Vec<f64>) = (start.scale.iter().map(|&v| f64::from(v)).collect(), vec![0.0; labels]);
    let n = answers.len().max(1) as f64;
    let loss_and_grad = |a: &[f64], b: &[f64]| {
        let (mut loss, mut ga, mut gb) = (0.0, vec![0.0; labels], vec![0.0; labels]);
        for ans in answers {
            let z: Vec<f64> = (0..labels).map(|c| a[c] * f64::from(ans.logits[c]) + b[c]).collect();
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
            loss += sum.ln() + max - z[ans.target];
            for c in 0..labels {
                let g = (z[c] - max).exp() / sum - f64::from(u8::from(c == ans.target));
                ga[c] += g * f64::from(ans.logits[c]) / n;
                gb[c] += g / n;
            }
        }
        (loss / n, ga, gb)
    };
    let (mut loss, mut ga, mut gb) = loss_and_grad(&a, &b);
    let mut step = 1.0;
    for _ in 0..300 {
        let norm: f64 = ga.iter().chain(&gb).map(|g| g * g).sum::<f64>();
        if norm < 1e-14 {
            break;
        }
        loop {
            let na: Vec<f64> = a.iter().zip(&ga).map(|(v, g)| v - step * g).collect();
            let nb: Vec<f64> = b.iter().zip(&gb).map(|(v, g)| v - step * g).collect();
            let (l, nga, ngb) = loss_and_grad(&na, &nb);
            // Armijo: a step is taken once it lowers the loss by a share of what the slope promised.
            if l <= loss - 1e-4 * step * norm || step < 1e-8 {
                (a, b, loss, ga, gb) = (na, nb, l, nga, ngb);
                step *= 2.0;
                break;
            }
            step /= 2.0;
        }
        if step < 1e-8 {
            break;
        }
    }
    // A multiplier must stay positive for the core to accept it; the loss would never ask for
    // less, but a degenerate set could.
    Scaling {
        method: "vector_scaling",
        scale: a.iter().map(|&v| (v as f32).max(1e-3)).collect(),
        shift: b.iter().map(|&v| v as f32).collect(),
    }
}

/// How many out-of-fold answers fall under [`BELOW_CONFIDENCE`] once calibrated, and how
/// often they are right (`None` when none do).
fn calibrated_below(s: &Scaling, answers: &[Answer]) -> (usize, Option<f64>) {
    let (mut n, mut right) = (0usize, 0usize);
    for a in answers {
        let (confidence, is_right) = s.top(a);
        if confidence < BELOW_CONFIDENCE {
            n += 1;
            right += usize::from(is_right);
        }
    }
    (n, (n > 0).then(|| right as f64 / n as f64))
}

/// The unsure rule's `min_known_features` from the cut questions' calibrated answers, and the
/// table it was read from (per known-feature count: cuts, mean confidence, accuracy).
///
/// Calibrated on whole questions, the probability may still overstate how often a text with
/// little evidence is right. At each count of known features with enough cuts to tell, the
/// cuts' mean probability is compared with their accuracy; the rule starts just above the
/// highest count where the probability overstates it by more than [`MAX_OVERSTATEMENT`] beyond
/// two standard errors of that accuracy. At and above the rule, the probability can be taken
/// at its word (and the confidence line then applies).
fn min_known_features(s: &Scaling, cuts: &[Answer]) -> (u32, serde_json::Value) {
    let bins = MAX_KNOWN_BIN as usize + 1;
    let (mut n, mut right, mut confidence) = (vec![0usize; bins], vec![0usize; bins], vec![0f64; bins]);
    for a in cuts {
        let bin = a.known.min(MAX_KNOWN_BIN) as usize;
        let (p, is_right) = s.top(a);
        n[bin] += 1;
        right[bin] += usize::from(is_right);
        confidence[bin] += f64::from(p);
    }
    let accuracy = |k: usize| right[k] as f64 / n[k] as f64;
    let overstated = |k: usize| {
        let (acc, m) = (accuracy(k), n[k] as f64);
        confidence[k] / m - acc - 2.0 * (acc * (1.0 - acc) / m).sqrt() > MAX_OVERSTATEMENT
    };
    let min_known = (0..bins).rev().find(|&k| n[k] >= MIN_CUTS_PER_BIN && overstated(k)).map_or(0, |k| k as u32 + 1);
    let table: Vec<serde_json::Value> = (0..bins)
        .filter(|&k| n[k] > 0)
        .map(|k| {
            json!({ "known": k, "cuts": n[k], "confidence": round(confidence[k] / n[k] as f64), "accuracy": round(accuracy(k)) })
        })
        .collect();
    (min_known, serde_json::Value::Array(table))
}

/// The probability from which an answer on little evidence (fewer than `min_known` known
/// features) is right as often as it says, and the table it was read from. The lines tried
/// are 0.5 to 1 ([`LITTLE_EVIDENCE_LINES`]); at each, the cuts with little evidence and at least
/// that probability are pooled, and the lowest line whose pool is not overstated (as in
/// [`min_known_features`], with enough cuts) is the rule. With a line of 1, every answer on
/// little evidence is unsure but a certain one.
fn little_evidence_below(s: &Scaling, cuts: &[Answer], min_known: u32) -> (f32, serde_json::Value) {
    let little: Vec<(f32, bool)> = cuts.iter().filter(|a| a.known < min_known).map(|a| s.top(a)).collect();
    let mut table = Vec::new();
    let mut line = 1.0;
    for &c in LITTLE_EVIDENCE_LINES.iter().rev() {
        let pool: Vec<&(f32, bool)> = little.iter().filter(|(p, _)| *p >= c).collect();
        let n = pool.len() as f64;
        if pool.is_empty() {
            continue;
        }
        let acc = pool.iter().filter(|(_, right)| *right).count() as f64 / n;
        let conf = pool.iter().map(|(p, _)| f64::from(*p)).sum::<f64>() / n;
        table.push(json!({ "at_least": round(f64::from(c)), "cuts": pool.len(), "confidence": round(conf), "accuracy": round(acc) }));
        let overstated = conf - acc - 2.0 * (acc * (1.0 - acc) / n).sqrt() > MAX_OVERSTATEMENT;
        // From the top down: the line moves down while the pool stays honest.
        if pool.len() >= MIN_CUTS_PER_BIN && !overstated {
            line = c;
        } else if pool.len() >= MIN_CUTS_PER_BIN {
            break;
        }
    }
    table.reverse();
    (line, serde_json::Value::Array(table))
}

/// The lines [`little_evidence_below`] tries.
const LITTLE_EVIDENCE_LINES: [f32; 11] = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999];

/// Four decimals, for figures people read in the manifest.
fn round(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(rows: &[([f32; 2], usize)]) -> Vec<Answer> {
        rows.iter().map(|(l, t)| Answer { logits: l.to_vec(), target: *t, known: 10 }).collect()
    }

    #[test]
    fn temperature_scaling_softens_an_overconfident_model() {
        // Logit margin 4 (p = 0.982) but right 3 times in 4: the best single multiplier makes
        // the answer's probability 0.75, i.e. a margin of ln 3.
        let mut rows = vec![([4.0, 0.0], 0); 3];
        rows.push(([4.0, 0.0], 1));
        let s = fit_temperature(&answers(&rows), 2);
        let p = s.probabilities(&[4.0, 0.0]);
        assert!((p[0] - 0.75).abs() < 1e-3, "{p:?}");
        assert!((s.scale[0] * 4.0 - 3f32.ln()).abs() < 1e-3, "{:?}", s.scale);
    }

    #[test]
    fn vector_scaling_learns_a_per_label_offset_temperature_cannot() {
        // No logit evidence at all (zeros), label 1 right 3 times in 4: only an offset fits.
        let mut rows = vec![([0.0, 0.0], 1); 3];
        rows.push(([0.0, 0.0], 0));
        let a = answers(&rows);
        let v = fit_vector(&a, 2);
        let p = v.probabilities(&[0.0, 0.0]);
        assert!((p[1] - 0.75).abs() < 1e-3, "{p:?}");
        assert!(log_loss(&v, &a) < log_loss(&fit_temperature(&a, 2), &a));
    }

    #[test]
    fn folds_are_stratified_and_cover_every_example() {
        let targets: Vec<usize> = (0..100).map(|i| usize::from(i % 4 == 0)).collect();
        let fold_of = assign_folds(&targets, 2, 5, 7);
        for k in 0..5 {
            let in_fold: Vec<usize> = (0..100).filter(|&i| fold_of[i] == k).collect();
            assert_eq!(in_fold.len(), 20, "fold {k}");
            assert_eq!(in_fold.iter().filter(|&&i| targets[i] == 1).count(), 5, "fold {k}'s label 1");
        }
    }

    #[test]
    fn the_known_feature_rule_starts_above_the_last_count_whose_probability_overstates() {
        // Logits [1, 0]: probability 0.731 for label 0 at every cut.
        let s = Scaling::identity(2);
        let mut cuts = Vec::new();
        let mut add = |known: u32, right: usize, wrong: usize| {
            cuts.extend((0..right).map(|_| Answer { logits: vec![1.0, 0.0], target: 0, known }));
            cuts.extend((0..wrong).map(|_| Answer { logits: vec![1.0, 0.0], target: 1, known }));
        };
        add(0, 10, 30); // right 25%: overstated
        add(1, 12, 28); // 30%: overstated
        add(2, 5, 6); // 45%, but too few cuts to tell
        add(3, 60, 20); // 75%: as the probability says
        add(20, 73, 27); // 73%: as it says
        let (min_known, table) = min_known_features(&s, &cuts);
        assert_eq!(min_known, 2, "{table}");
        let (none, _) = min_known_features(&s, &[]);
        assert_eq!(none, 0);
    }
}
