//! The classifier: multinomial logistic regression over a text's tokens and its hashed
//! adjacent token pairs, pooled over the text's length.
//!
//! `logits = bias + (Σ tok[id_i] + Σ pair[h(id_i, id_i+1)]) / pool(n)` and a softmax. This is
//! the bag-of-n-grams linear model that TF-IDF + a linear SVM is, trained end to end on the
//! same pooling the ONNX graph applies, so the exported graph is this model exactly.
//! [`LinearModel::probabilities`] computes it the way the graph does, in f32 and in the same
//! order, which is what the export check compares against tract.

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// How the summed contributions are scaled by the token count `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Divide by `n` (fastText's mean).
    Mean,
    /// Divide by `sqrt(n)` (close to TF-IDF's L2 normalisation for mostly distinct tokens).
    Sqrt,
}

/// The feature space: token ids below `vocab`, and adjacent pairs hashed into `buckets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Tokenizer vocabulary size; every id is below it.
    pub vocab: usize,
    /// Number of pair buckets (a prime spreads the multiplicative hash best).
    pub buckets: usize,
    /// The pair hash multiplier: `h(a, b) = (a * pair_mul + b) mod buckets`.
    pub pair_mul: i64,
    /// Length pooling.
    pub pooling: Pooling,
}

impl FeatureSpec {
    /// The bucket of the pair `(a, b)`; the graph computes the same in int64.
    pub fn pair_bucket(&self, a: i64, b: i64) -> usize {
        ((a * self.pair_mul + b).rem_euclid(self.buckets as i64)) as usize
    }

    /// The factor every contribution is multiplied by for a text of `n` tokens.
    pub fn scale(&self, n: usize) -> f32 {
        let n = n as f32;
        match self.pooling {
            Pooling::Mean => 1.0 / n,
            Pooling::Sqrt => 1.0 / n.sqrt(),
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
    /// L2 penalty, applied to the rows a step touches.
    pub l2: f32,
    /// Seed of the example order.
    pub seed: u64,
}

/// A trained model: weights laid out as the graph's initialisers.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearModel {
    /// The feature space.
    pub spec: FeatureSpec,
    /// Number of labels.
    pub labels: usize,
    /// `[vocab × labels]` token weights, row-major.
    pub tok: Vec<f32>,
    /// `[buckets × labels]` pair weights, row-major.
    pub pair: Vec<f32>,
    /// `[labels]` bias.
    pub bias: Vec<f32>,
}

impl LinearModel {
    fn zeros(spec: FeatureSpec, labels: usize) -> Self {
        Self {
            spec,
            labels,
            tok: vec![0.0; spec.vocab * labels],
            pair: vec![0.0; spec.buckets * labels],
            bias: vec![0.0; labels],
        }
    }

    /// Pre-softmax scores, computed as the graph does: token rows scaled then summed, pair rows
    /// scaled then summed, the two sums added, then the bias.
    pub fn logits(&self, ids: &[i64]) -> Vec<f32> {
        let l = self.labels;
        let s = self.spec.scale(ids.len());
        let mut tok_sum = vec![0f32; l];
        for &id in ids {
            let row = &self.tok[id as usize * l..][..l];
            for c in 0..l {
                tok_sum[c] += row[c] * s;
            }
        }
        let mut pair_sum = vec![0f32; l];
        for w in ids.windows(2) {
            let row = &self.pair[self.spec.pair_bucket(w[0], w[1]) * l..][..l];
            for c in 0..l {
                pair_sum[c] += row[c] * s;
            }
        }
        (0..l).map(|c| (tok_sum[c] + pair_sum[c]) + self.bias[c]).collect()
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

/// Trains the model with SGD on cross-entropy. Single-threaded and seeded, so the same
/// inputs give bit-identical weights. `on_epoch` is called after every pass.
pub fn fit(
    docs: &[Vec<i64>],
    targets: &[usize],
    spec: FeatureSpec,
    labels: usize,
    params: FitParams,
    mut on_epoch: impl FnMut(usize),
) -> LinearModel {
    let mut model = LinearModel::zeros(spec, labels);
    let mut order: Vec<usize> = (0..docs.len()).collect();
    let mut rng = SplitMix64::new(params.seed);
    let total = (params.epochs * docs.len()).max(1) as f32;
    let mut step = 0usize;
    let mut grad = vec![0f32; labels];
    let mut pairs = Vec::new();
    for epoch in 0..params.epochs {
        rng.shuffle(&mut order);
        for &d in &order {
            let ids = &docs[d];
            let lr = params.learning_rate * (1.0 - step as f32 / total);
            step += 1;
            let p = model.probabilities(ids);
            for c in 0..labels {
                grad[c] = p[c] - if c == targets[d] { 1.0 } else { 0.0 };
            }
            let s = spec.scale(ids.len());
            let decay = 1.0 - lr * params.l2;
            for &id in ids {
                let row = &mut model.tok[id as usize * labels..][..labels];
                for c in 0..labels {
                    row[c] = row[c] * decay - lr * s * grad[c];
                }
            }
            pairs.clear();
            pairs.extend(ids.windows(2).map(|w| spec.pair_bucket(w[0], w[1])));
            for &h in &pairs {
                let row = &mut model.pair[h * labels..][..labels];
                for c in 0..labels {
                    row[c] = row[c] * decay - lr * s * grad[c];
                }
            }
            for c in 0..labels {
                model.bias[c] -= lr * grad[c];
            }
        }
        on_epoch(epoch);
    }
    model
}
