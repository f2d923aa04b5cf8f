//! Validated configurations. The binary's flags (`src/cli/flags.rs`) resolve into these once;
//! the library never sees a flag or reads the environment.

use std::path::PathBuf;

use edge_classifier::normalize::Normalization;

use crate::model::{FitParams, Weighting, Weights};

/// The labels a Stacktag model tells apart unless told otherwise.
pub const DEFAULT_LABELS: [&str; 4] = ["csharp", "java", "javascript", "python"];

/// The pair hash multiplier: a prime above any vocabulary size, so `a * PAIR_MUL + b` is
/// unique before the modulo.
pub const PAIR_MUL: i64 = 1_000_003;

/// Settings that shape the model. [`Default`] holds the shipped defaults, which the
/// command line's defaults are taken from.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelParams {
    /// Labels to learn; rows with any other label are skipped.
    pub labels: Vec<String>,
    /// Registered model name written into the manifest.
    pub model_name: String,
    /// Seed for the split and the example order.
    pub seed: u64,
    /// Share of each label held out for evaluation when no evaluation data is given.
    pub eval_fraction: f64,
    /// Tokenizer vocabulary size.
    pub vocab_size: usize,
    /// A merge must occur this often to enter the vocabulary.
    pub min_frequency: u64,
    /// Buckets for hashed adjacent-token pairs (a prime is best).
    pub buckets: usize,
    /// Passes over the training data.
    pub epochs: usize,
    /// Initial SGD step (decays linearly to 0).
    pub learning_rate: f32,
    /// L2 penalty.
    pub l2: f32,
    /// Smoothing of the naive-Bayes feature ratios; 0 turns them off.
    pub nb_alpha: f32,
    /// Tokens the model reads at most (`[BOS]` and `[EOS]` included).
    pub max_tokens: usize,
    /// Text normalisation version to train with (and that the bundle records).
    pub normalization: u32,
    /// Feature weighting (decides the graph's input and the manifest format).
    pub weighting: Weighting,
    /// How the graph stores the table.
    pub weights: Weights,
    /// Folds of the out-of-fold answers the calibration and the unsure rule are fitted on
    /// ([`crate::calibrate`]); `presence` models only (format 5). 0 leaves the model
    /// uncalibrated, without an unsure rule (format 4).
    pub calibration_folds: usize,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self {
            labels: DEFAULT_LABELS.map(String::from).to_vec(),
            model_name: "stacktag".into(),
            seed: 42,
            eval_fraction: 0.2,
            vocab_size: 16_000,
            min_frequency: 2,
            buckets: 262_139,
            epochs: 10,
            learning_rate: 2.0,
            l2: 0.0,
            nb_alpha: 1.0,
            // 768 cuts the longest few percent of questions: accuracy on held-out splits of the
            // training data matched 2048 tokens, and p99 latency fell by about a third (docs/benchmarks.md).
            max_tokens: 768,
            normalization: Normalization::CURRENT.version(),
            weighting: Weighting::Presence,
            // int8 makes the page's download smaller at no held-out accuracy and the same speed
            // per request, but the page's first answer comes later on a fast link (the
            // browser's interpreter dequantises the table at load; docs/benchmarks.md#int8-page).
            weights: Weights::F16,
            calibration_folds: crate::calibrate::DEFAULT_FOLDS,
        }
    }
}

impl ModelParams {
    /// The optimiser's settings among these.
    pub fn fit_params(&self) -> FitParams {
        FitParams {
            epochs: self.epochs,
            learning_rate: self.learning_rate,
            l2: self.l2,
            seed: self.seed,
            nb_alpha: self.nb_alpha,
            weighting: self.weighting,
        }
    }
}

/// A validated training configuration.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Training batches, in order.
    pub data: Vec<PathBuf>,
    /// Separate evaluation data, every path read in order; empty means a held-out split.
    pub eval: Vec<PathBuf>,
    /// Bundle directory.
    pub out: PathBuf,
    /// Labels, in output order (sorted, unique, lower case).
    pub labels: Vec<String>,
    /// Model name.
    pub model_name: String,
    /// Seed.
    pub seed: u64,
    /// Held-out share when splitting.
    pub eval_fraction: f64,
    /// Tokenizer vocabulary size.
    pub vocab_size: usize,
    /// Merge frequency floor.
    pub min_frequency: u64,
    /// Pair buckets.
    pub buckets: usize,
    /// Pair hash multiplier.
    pub pair_mul: i64,
    /// Epochs.
    pub epochs: usize,
    /// Learning rate.
    pub learning_rate: f32,
    /// L2 penalty.
    pub l2: f32,
    /// Naive-Bayes smoothing.
    pub nb_alpha: f32,
    /// Token cap.
    pub max_tokens: usize,
    /// Text normalisation.
    pub normalization: Normalization,
    /// Feature weighting.
    pub weighting: Weighting,
    /// Table storage.
    pub weights: Weights,
    /// Calibration folds.
    pub calibration_folds: usize,
    /// No progress bars or notes.
    pub quiet: bool,
}

impl TrainConfig {
    /// Checks the settings and builds the config (not quiet; set [`TrainConfig::quiet`]).
    pub fn new(data: Vec<PathBuf>, eval: Vec<PathBuf>, out: PathBuf, m: &ModelParams) -> anyhow::Result<Self> {
        let mut labels: Vec<String> = m.labels.iter().map(|l| l.trim().to_lowercase()).collect();
        labels.retain(|l| !l.is_empty());
        labels.sort();
        labels.dedup();
        if labels.len() < 2 {
            anyhow::bail!("`--labels` must name at least 2 distinct labels, got {}", labels.len());
        }
        if data.is_empty() {
            anyhow::bail!("no training data: pass `--data PATH`");
        }
        if !(m.eval_fraction > 0.0 && m.eval_fraction < 1.0) {
            anyhow::bail!("`--eval-fraction` must be between 0 and 1, got {}", m.eval_fraction);
        }
        if m.vocab_size < 64 {
            anyhow::bail!("`--vocab-size` must be at least 64, got {}", m.vocab_size);
        }
        if m.vocab_size as i64 >= PAIR_MUL {
            anyhow::bail!("`--vocab-size` must be below {PAIR_MUL}, got {}", m.vocab_size);
        }
        if m.buckets == 0 || m.buckets > (1 << 26) {
            anyhow::bail!("`--buckets` must be between 1 and {}, got {}", 1 << 26, m.buckets);
        }
        if m.epochs == 0 {
            anyhow::bail!("`--epochs` must be at least 1");
        }
        if !(m.learning_rate.is_finite() && m.learning_rate > 0.0) {
            anyhow::bail!("`--learning-rate` must be positive, got {}", m.learning_rate);
        }
        if !(m.l2.is_finite() && m.l2 >= 0.0) {
            anyhow::bail!("`--l2` must be zero or positive, got {}", m.l2);
        }
        if !(m.nb_alpha.is_finite() && m.nb_alpha >= 0.0) {
            anyhow::bail!("`--nb-alpha` must be zero or positive, got {}", m.nb_alpha);
        }
        if m.calibration_folds == 1 {
            anyhow::bail!("`--calibration-folds` must be 0 (uncalibrated) or at least 2, got 1");
        }
        if m.max_tokens < 3 {
            anyhow::bail!("`--max-tokens` must be at least 3, got {}", m.max_tokens);
        }
        let Some(normalization) = Normalization::from_version(m.normalization) else {
            let known: Vec<String> = Normalization::ALL.iter().map(|n| n.version().to_string()).collect();
            anyhow::bail!("`--normalization` must be one of {}, got {}", known.join(", "), m.normalization);
        };
        if m.model_name.trim().is_empty() {
            anyhow::bail!("`--model-name` must not be empty");
        }
        Ok(Self {
            data,
            eval,
            out,
            labels,
            model_name: m.model_name.trim().to_owned(),
            seed: m.seed,
            eval_fraction: m.eval_fraction,
            vocab_size: m.vocab_size,
            min_frequency: m.min_frequency,
            buckets: m.buckets,
            pair_mul: PAIR_MUL,
            epochs: m.epochs,
            learning_rate: m.learning_rate,
            l2: m.l2,
            nb_alpha: m.nb_alpha,
            max_tokens: m.max_tokens,
            normalization,
            weighting: m.weighting,
            weights: m.weights,
            calibration_folds: m.calibration_folds,
            quiet: false,
        })
    }
}
