//! The classifier: multinomial logistic regression on TF-IDF features of a text's BPE tokens
//! and of its hashed adjacent token pairs.
//!
//! Per feature `f` (a token id, or a pair bucket `h(a, b) = (a·pair_mul + b) mod buckets`)
//! occurring `c_f` times, with weight `tf_f`: `x_f = tf_f · idf_f`, scaled by
//! `1 / √(Σ_f tf_f² · idf_f²)`, and `logits = bias + Σ_f W_f · x_f`, then a softmax.
//! [`Weighting`] chooses `tf`:
//! - `Presence` (the default, format 4): `tf = 1` for every distinct feature, however often
//!   it occurs, with the exact L2 norm. The core finds the distinct features
//!   (`edge_classifier::features`), and the graph sums their rows: one gather and one sum.
//! - `Sublinear` (format 3): `tf = 1 + ln c`, with the exact L2 norm. The graph also reads each
//!   feature's count and weighs its row, which tract does through a matrix product (packing
//!   both sides) and a handful of element-wise nodes: about a quarter more per classify than
//!   `Presence`, for about 0.2 points of held-out accuracy (see docs/benchmarks.md). The
//!   counting itself is in the core for both, because counting in the graph takes a
//!   `ScatterElements`, which tract runs element by element (about 45 of 70 µs of graph time
//!   when measured).
//! - `Occurrences` (formats 1 and 2): every occurrence adds its feature's row with `tf = 1`
//!   per position, i.e. raw counts with the norm taken over occurrences, so the graph reads
//!   token ids and nothing needs to know how often a feature occurs.
//!
//! The ONNX graph computes exactly this (see `export`). [`LinearModel::probabilities`] mirrors
//! it in f32, which is what the export check compares against tract.

use serde::{Deserialize, Serialize};

use edge_classifier::features;

use crate::rng::SplitMix64;

pub use edge_classifier::api::FeatureSpec;

/// How the graph stores the model's table (issue 27 §6: the table is most of what the page
/// downloads). Either way the graph computes the same `[weights…, idf²]` rows for the core.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display, strum::EnumString, strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Weights {
    /// Every value as f16.
    F16,
    /// Each row's weights as int8 steps of its own f16 scale, the idf² column as uint8 steps of
    /// one f16 step ([`Int8Table`]): 0.0000 of held-out accuracy, the table gzipped 40% smaller;
    /// the graph dequantises it once when it loads (docs/benchmarks.md#int8).
    Int8,
}

/// A model's table in 8 bits: row `r`'s weights are `weights[r·l..] × scales[r]`, its idf² is
/// `idf[r] × idf_step`, each product rounded to f16. The scales and the step are f16 values,
/// rounded up so that no weight needs more than 127 steps and no idf² more than 255; each
/// product is exact in f32 before that one rounding, so the graph (which dequantises the table
/// in f16 once, when it loads) and [`LinearModel::with_table`] compute the same numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Table {
    /// `[rows × labels]` steps.
    pub weights: Vec<i8>,
    /// `[rows]` each row's step (f16-exact).
    pub scales: Vec<f32>,
    /// `[rows]` idf² steps.
    pub idf: Vec<u8>,
    /// The idf² step (f16-exact).
    pub idf_step: f32,
}

/// The smallest f16 value at or above `v` (`v` ≥ 0 and finite), as f32.
fn f16_at_or_above(v: f32) -> f32 {
    let h = half::f16::from_f32(v);
    if h.to_f32() >= v { h.to_f32() } else { half::f16::from_bits(h.to_bits() + 1).to_f32() }
}

/// How a text's features are weighted: the term frequency and the norm.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display, strum::EnumString, strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Weighting {
    /// Each distinct feature once (`tf = 1`) with the exact L2 norm: the core finds the
    /// distinct features (`edge_classifier::features`) and the graph reads their rows (format
    /// 4).
    Presence,
    /// Raw counts, normalised over occurrences (`1/√Σ idf²` over every position): the graph
    /// reads token ids and needs no counting. Every bundle before format 3.
    Occurrences,
    /// Sublinear counts (`1 + ln c`) with the exact L2 norm: the core counts the features
    /// (`edge_classifier::features`) and the graph reads distinct rows and their counts
    /// (format 3).
    Sublinear,
}

impl Weighting {
    /// The features as the manifest's `training.features` describes them.
    pub fn features(self) -> &'static str {
        match self {
            Self::Occurrences => "tf-idf (raw tf, norm over occurrences) over bpe tokens and hashed token pairs",
            Self::Sublinear => "tf-idf (1 + ln tf, exact l2 norm) over bpe tokens and hashed token pairs",
            Self::Presence => "tf-idf (binary tf, exact l2 norm) over bpe tokens and hashed token pairs",
        }
    }
}

/// Optimiser settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitParams {
    /// Passes over the training set.
    pub epochs: usize,
    /// Initial SGD step; it decays linearly to zero over the run.
    pub learning_rate: f32,
    /// L2 penalty (per example, applied to the rows a step touches).
    pub l2: f32,
    /// Seed of the example order.
    pub seed: u64,
    /// Smoothing of the naive-Bayes ratios (0 turns them off: every ratio is 1).
    pub nb_alpha: f32,
    /// The feature weighting.
    pub weighting: Weighting,
}

/// A trained model, laid out as the graph's initialisers. Rows `0..vocab` are tokens, rows
/// `vocab..vocab + buckets` pair buckets: one table, so the graph runs one stream of features.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearModel {
    /// The feature space.
    pub spec: FeatureSpec,
    /// Number of labels.
    pub labels: usize,
    /// `[(vocab + buckets) × labels]` weights with NB ratios and idf folded in, row-major.
    pub weights: Vec<f32>,
    /// `[vocab + buckets]` squared idf (for the norm).
    pub idf_sq: Vec<f32>,
    /// `[labels]` bias.
    pub bias: Vec<f32>,
    /// The feature weighting the weights were fitted for.
    pub weighting: Weighting,
}

/// One text's features as the graph reads them: the row of each in the combined table, its
/// term-frequency weight, and the multiplier `1 / norm` they all share.
struct TextFeatures {
    rows: Vec<usize>,
    tf: Vec<f32>,
    scale: f32,
}

/// Computes, as the graph does, a text's features and its scale. `idf_sq` is indexed by
/// combined row.
fn text_features(spec: &FeatureSpec, weighting: Weighting, idf_sq: &[f32], ids: &[i64]) -> TextFeatures {
    let (rows, tf): (Vec<usize>, Vec<f32>) = match weighting {
        // Every position, in the graph's order (its tokens, then its pairs).
        Weighting::Occurrences => features::position_rows(spec, ids).map(|row| (row as usize, 1.0)).unzip(),
        Weighting::Sublinear => {
            let counted = features::count(spec, ids);
            counted.rows.iter().zip(&counted.counts).map(|(&row, &c)| (row as usize, sublinear_tf(c))).unzip()
        }
        Weighting::Presence => features::count(spec, ids).rows.iter().map(|&row| (row as usize, 1.0)).unzip(),
    };
    let nsq: f32 = rows.iter().zip(&tf).map(|(&r, &t)| t * t * idf_sq[r]).sum();
    TextFeatures { rows, tf, scale: 1.0 / nsq.sqrt() }
}

/// `1 + ln c`, as the graph computes it.
pub fn sublinear_tf(count: f32) -> f32 {
    count.ln() + 1.0
}

impl LinearModel {
    /// Pre-softmax scores, computed as the graph does.
    pub fn logits(&self, ids: &[i64]) -> Vec<f32> {
        let l = self.labels;
        let p = text_features(&self.spec, self.weighting, &self.idf_sq, ids);
        // Summed first, then scaled, in the graph's order.
        let mut sum = vec![0f32; l];
        for (&row, &tf) in p.rows.iter().zip(&p.tf) {
            let w = &self.weights[row * l..][..l];
            for c in 0..l {
                sum[c] += w[c] * tf;
            }
        }
        (0..l).map(|c| sum[c] * p.scale + self.bias[c]).collect()
    }

    /// This model with every label's logit `z` turned into `scale · z + shift` (a calibration,
    /// [`crate::calibrate`]): its weights and bias scaled, so the graph computes it with no
    /// node of its own. The scaled weights are rounded to f16 again, as the graph stores them;
    /// a zero weight stays zero, so the features the model knows stay the ones it learnt.
    pub fn calibrated(&self, scale: &[f32], shift: &[f32]) -> LinearModel {
        let l = self.labels;
        let weights = self.weights.iter().enumerate().map(|(i, w)| round_f16(w * scale[i % l])).collect();
        let bias = (0..l).map(|c| self.bias[c] * scale[c] + shift[c]).collect();
        LinearModel {
            spec: self.spec,
            labels: l,
            weights,
            idf_sq: self.idf_sq.clone(),
            bias,
            weighting: self.weighting,
        }
    }

    /// This model's table in 8 bits ([`Int8Table`]).
    pub fn int8_table(&self) -> Int8Table {
        let l = self.labels;
        let mut weights = Vec::with_capacity(self.weights.len());
        let mut scales = Vec::with_capacity(self.weights.len() / l);
        for row in self.weights.chunks(l) {
            let max = row.iter().fold(0f32, |a, w| a.max(w.abs()));
            let scale = if max > 0.0 { f16_at_or_above(max / 127.0) } else { 1.0 };
            weights.extend(row.iter().map(|w| (w / scale).round().clamp(-127.0, 127.0) as i8));
            scales.push(scale);
        }
        let max_idf = self.idf_sq.iter().fold(0f32, |a, v| a.max(*v));
        let idf_step = if max_idf > 0.0 { f16_at_or_above(max_idf / 255.0) } else { 1.0 };
        let idf = self.idf_sq.iter().map(|v| (v / idf_step).round().clamp(0.0, 255.0) as u8).collect();
        Int8Table { weights, scales, idf, idf_step }
    }

    /// This model as `table` stores it: the weights and idf² the graph computes from it.
    pub fn with_table(&self, table: &Int8Table) -> LinearModel {
        let l = self.labels;
        let weights =
            table.weights.iter().enumerate().map(|(i, q)| round_f16(f32::from(*q) * table.scales[i / l])).collect();
        let idf_sq = table.idf.iter().map(|q| round_f16(f32::from(*q) * table.idf_step)).collect();
        LinearModel { weights, idf_sq, ..self.clone() }
    }

    /// Label probabilities for already-encoded `ids`.
    pub fn probabilities(&self, ids: &[i64]) -> Vec<f32> {
        softmax(&self.logits(ids))
    }
}

/// A numerically safe softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// Smoothed idf, as scikit-learn computes it: `ln((1 + n) / (1 + df)) + 1`.
fn idf(docs: usize, df: u32) -> f32 {
    ((1.0 + docs as f64) / (1.0 + f64::from(df))).ln() as f32 + 1.0
}

/// Naive-Bayes log-count ratios per (feature, class) (Wang & Manning 2012, "NBSVM"):
/// `r = ln((p_c / ‖p_c‖₁) / (q_c / ‖q_c‖₁))` with `p_c = α + docs of class c holding the
/// feature` and `q_c` the same over the other classes, tokens and pairs in one space. Scaling
/// each class's features by them before fitting is a reparametrisation (the model stays linear,
/// the ratios fold into the exported weights) that fits text far better: +1.7 points here.
fn nb_ratios(df: &[u32], labels: usize, alpha: f32) -> Vec<f32> {
    if alpha <= 0.0 {
        return vec![1.0; df.len()];
    }
    let alpha = f64::from(alpha);
    let mut p_sum = vec![0f64; labels];
    let mut q_sum = vec![0f64; labels];
    for row in df.chunks(labels) {
        let total: u32 = row.iter().sum();
        for c in 0..labels {
            p_sum[c] += alpha + f64::from(row[c]);
            q_sum[c] += alpha + f64::from(total - row[c]);
        }
    }
    let mut r = Vec::with_capacity(df.len());
    for row in df.chunks(labels) {
        let total: u32 = row.iter().sum();
        for c in 0..labels {
            let p = (alpha + f64::from(row[c])) / p_sum[c];
            let q = (alpha + f64::from(total - row[c])) / q_sum[c];
            r.push((p / q).ln() as f32);
        }
    }
    r
}

/// A training example's TF-IDF features: unique combined rows (sorted) and summed values.
type Sparse = Vec<(usize, f32)>;

fn collapse(mut pairs: Vec<(usize, f32)>) -> Sparse {
    pairs.sort_by_key(|p| p.0);
    let mut out: Vec<(usize, f32)> = Vec::with_capacity(pairs.len());
    for (row, v) in pairs {
        match out.last_mut() {
            Some(last) if last.0 == row => last.1 += v,
            _ => out.push((row, v)),
        }
    }
    out
}

/// Trains the model with SGD on cross-entropy. Single-threaded and seeded, so the same inputs
/// give bit-identical weights. `on_epoch` is called after every pass.
pub fn fit(
    docs: &[Vec<i64>],
    targets: &[usize],
    spec: FeatureSpec,
    labels: usize,
    params: FitParams,
    mut on_epoch: impl FnMut(usize),
) -> LinearModel {
    // Document frequencies over the training texts, per class, in the combined table (token
    // rows, then pair rows).
    let mut df = vec![0u32; (spec.vocab + spec.buckets) * labels];
    let mut seen: Vec<usize> = Vec::new();
    for (ids, &y) in docs.iter().zip(targets) {
        seen.clear();
        seen.extend(features::position_rows(&spec, ids).map(|r| r as usize));
        seen.sort_unstable();
        seen.dedup();
        for &r in &seen {
            df[r * labels + y] += 1;
        }
    }
    let idf: Vec<f32> = df.chunks(labels).map(|row| idf(docs.len(), row.iter().sum())).collect();
    let nb = nb_ratios(&df, labels, params.nb_alpha);
    // The squared idf as the graph will read it (f16-rounded), so that training sees the
    // exact norms serving computes.
    let idf_sq: Vec<f32> = idf.iter().map(|v| round_f16(v * v)).collect();

    let sparse: Vec<Sparse> = docs
        .iter()
        .map(|ids| {
            let p = text_features(&spec, params.weighting, &idf_sq, ids);
            collapse(p.rows.iter().zip(&p.tf).map(|(&r, &tf)| (r, tf * p.scale * idf[r])).collect())
        })
        .collect();

    let mut weights = vec![0f32; (spec.vocab + spec.buckets) * labels];
    let mut bias = vec![0f32; labels];
    let mut order: Vec<usize> = (0..docs.len()).collect();
    let mut rng = SplitMix64::new(params.seed);
    let total = (params.epochs * docs.len()).max(1) as f32;
    let mut step = 0usize;
    let mut logits = vec![0f32; labels];
    for epoch in 0..params.epochs {
        rng.shuffle(&mut order);
        for &d in &order {
            let lr = params.learning_rate * (1.0 - step as f32 / total);
            step += 1;
            logits.copy_from_slice(&bias);
            for &(row, v) in &sparse[d] {
                let (w, r) = (&weights[row * labels..][..labels], &nb[row * labels..][..labels]);
                for c in 0..labels {
                    logits[c] += w[c] * r[c] * v;
                }
            }
            let mut grad = softmax(&logits);
            grad[targets[d]] -= 1.0;
            let decay = 1.0 - lr * params.l2;
            for &(row, v) in &sparse[d] {
                let (w, r) = (&mut weights[row * labels..][..labels], &nb[row * labels..][..labels]);
                for c in 0..labels {
                    w[c] = w[c] * decay - lr * v * r[c] * grad[c];
                }
            }
            for c in 0..labels {
                bias[c] -= lr * grad[c];
            }
        }
        on_epoch(epoch);
    }

    // Fold the NB ratios and the idf into the weights: the graph then needs one multiply per
    // feature. The graph stores the table in f16 (half the bundle; the rounding costs no
    // accuracy here), so the model keeps exactly the values the graph will see.
    for (row, &f) in idf.iter().enumerate() {
        for c in 0..labels {
            let w = &mut weights[row * labels + c];
            *w = round_f16(*w * (nb[row * labels + c] * f));
        }
    }
    LinearModel { spec, labels, weights, idf_sq, bias, weighting: params.weighting }
}

/// `v` rounded to the nearest f16 and back; f16 → f32 is exact, so this is what the graph's
/// `Cast` produces.
pub fn round_f16(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_int8_table_holds_each_weight_within_half_a_step_and_keeps_zero_rows_zero() {
        let spec = FeatureSpec { vocab: 3, buckets: 1, pair_mul: 7 };
        let weights =
            vec![0.5, -1.25, 3.0e-3, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0, -0.001, 7.5, 0.25, 1e-6, -2e-6, 0.0, 3e-6];
        let m = LinearModel {
            spec,
            labels: 4,
            weights: weights.clone(),
            idf_sq: vec![1.0, 0.0, 42.5, 9.0],
            bias: vec![0.1, 0.2, 0.3, 0.4],
            weighting: Weighting::Presence,
        };
        let t = m.int8_table();
        let q = m.with_table(&t);
        for (r, row) in weights.chunks(4).enumerate() {
            let scale = t.scales[r];
            // An f16, large enough that no step passes 127.
            assert_eq!(scale, round_f16(scale));
            for (c, w) in row.iter().enumerate() {
                assert!((q.weights[r * 4 + c] - w).abs() <= scale / 2.0 + f32::EPSILON, "row {r} col {c}");
            }
        }
        assert!(q.weights[4..8].iter().all(|w| *w == 0.0), "an unseen feature's row stays zero");
        for (a, b) in m.idf_sq.iter().zip(&q.idf_sq) {
            assert!((a - b).abs() <= t.idf_step / 2.0 + f32::EPSILON, "{a} vs {b}");
        }
        assert_eq!(q.bias, m.bias);
        // What the graph computes: steps × f16 scales, exact in f32, then rounded to f16 once.
        assert_eq!(q.weights[0], round_f16(f32::from(t.weights[0]) * t.scales[0]));
        assert_eq!(t.weights[8], 127, "the largest weight of a row is 127 steps");
    }
}
