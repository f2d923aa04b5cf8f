//! Settings chosen on the training data alone, by cross-validation (issue 27 §5): the test set
//! is then scored once, with what was chosen, and never shapes a default.
//!
//! Each candidate setting is scored by `k`-fold cross-validation on the training rows
//! (stratified folds, seeded). In each fold everything is learnt from the other folds only: the
//! tokenizer (its vocabulary is learnt from text, so training it on the held-out fold would
//! leak), the encoding, the model; the held-out fold is then answered by that model. The score
//! is the mean of the folds' accuracies.
//!
//! The search is coordinate-wise, from the shipped defaults: each setting in turn tries its
//! candidate values with the others held, and a value replaces the current one only if its
//! mean is higher by more than one standard error of the paired per-fold differences (the
//! folds are shared, so the pairing removes what the folds themselves add). Passes repeat until
//! one changes nothing, at most [`MAX_PASSES`]. A full grid of every setting would cost the
//! product of their candidates; this costs about their sum per pass.
//!
//! Candidates never make the tables larger than the shipped ones (vocabulary, buckets): the
//! page downloads them (issue 27 §6).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use edge_classifier::TextEncoder;
use edge_classifier::normalize::Normalization;
use serde::Serialize;

use crate::config::{ModelParams, PAIR_MUL};
use crate::data::{self, Example};
use crate::model::{self, FeatureSpec, Weighting};
use crate::progress::Progress;
use crate::tokenizer;

/// Coordinate passes at most (each one that changes something is followed by another).
pub const MAX_PASSES: usize = 3;

/// A setting the search can move, named as its `trainer train` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setting {
    /// `--vocab-size`.
    VocabSize,
    /// `--min-frequency`.
    MinFrequency,
    /// `--buckets`.
    Buckets,
    /// `--epochs`.
    Epochs,
    /// `--learning-rate`.
    LearningRate,
    /// `--l2`.
    L2,
    /// `--nb-alpha`.
    NbAlpha,
    /// `--max-tokens`.
    MaxTokens,
    /// `--weighting`.
    Weighting,
}

impl Setting {
    /// Every setting, in the order a pass visits them: the tokenizer's first, so that the fits
    /// after them reuse its encodings.
    pub const ALL: [Self; 9] = [
        Self::VocabSize,
        Self::MinFrequency,
        Self::MaxTokens,
        Self::Weighting,
        Self::NbAlpha,
        Self::Epochs,
        Self::LearningRate,
        Self::L2,
        Self::Buckets,
    ];

    /// The flag's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::VocabSize => "vocab-size",
            Self::MinFrequency => "min-frequency",
            Self::Buckets => "buckets",
            Self::Epochs => "epochs",
            Self::LearningRate => "learning-rate",
            Self::L2 => "l2",
            Self::NbAlpha => "nb-alpha",
            Self::MaxTokens => "max-tokens",
            Self::Weighting => "weighting",
        }
    }

    /// The setting a flag name names.
    pub fn from_name(name: &str) -> anyhow::Result<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|s| s.name()).collect();
            anyhow::anyhow!("`{name}` is not a setting cross-validation can choose; one of {}", known.join(", "))
        })
    }

    /// The candidates tried when none are given: around the shipped default, never larger
    /// tables than it has.
    pub fn default_candidates(self) -> &'static [&'static str] {
        match self {
            Self::VocabSize => &["4000", "8000", "12000", "16000"],
            Self::MinFrequency => &["1", "2", "3", "5"],
            Self::Buckets => &["65521", "131071", "262139"],
            Self::Epochs => &["5", "10", "15", "20"],
            Self::LearningRate => &["1", "2", "4"],
            Self::L2 => &["0", "0.000001", "0.00001"],
            Self::NbAlpha => &["0", "0.25", "0.5", "1", "2"],
            Self::MaxTokens => &["512", "768", "1024"],
            Self::Weighting => &["presence", "sublinear"],
        }
    }

    /// Its value in `p`, as the flag would be written.
    pub fn get(self, p: &ModelParams) -> String {
        match self {
            Self::VocabSize => p.vocab_size.to_string(),
            Self::MinFrequency => p.min_frequency.to_string(),
            Self::Buckets => p.buckets.to_string(),
            Self::Epochs => p.epochs.to_string(),
            Self::LearningRate => p.learning_rate.to_string(),
            Self::L2 => p.l2.to_string(),
            Self::NbAlpha => p.nb_alpha.to_string(),
            Self::MaxTokens => p.max_tokens.to_string(),
            Self::Weighting => p.weighting.to_string(),
        }
    }

    /// `p` with this setting at `value` (as the flag would take it).
    pub fn set(self, p: &ModelParams, value: &str) -> anyhow::Result<ModelParams> {
        let bad = |e: &dyn std::fmt::Display| anyhow::anyhow!("`--{} {value}`: {e}", self.name());
        let mut p = p.clone();
        match self {
            Self::VocabSize => p.vocab_size = value.parse().map_err(|e| bad(&e))?,
            Self::MinFrequency => p.min_frequency = value.parse().map_err(|e| bad(&e))?,
            Self::Buckets => p.buckets = value.parse().map_err(|e| bad(&e))?,
            Self::Epochs => p.epochs = value.parse().map_err(|e| bad(&e))?,
            Self::LearningRate => p.learning_rate = value.parse().map_err(|e| bad(&e))?,
            Self::L2 => p.l2 = value.parse().map_err(|e| bad(&e))?,
            Self::NbAlpha => p.nb_alpha = value.parse().map_err(|e| bad(&e))?,
            Self::MaxTokens => p.max_tokens = value.parse().map_err(|e| bad(&e))?,
            Self::Weighting => p.weighting = value.parse::<Weighting>().map_err(|e| bad(&e))?,
        }
        Ok(p)
    }
}

/// The axes `--try NAME=V1,V2` flags name, in the order given; with none, every setting with
/// its [`Setting::default_candidates`].
pub fn axes(tries: &[String]) -> anyhow::Result<Vec<(Setting, Vec<String>)>> {
    if tries.is_empty() {
        return Ok(Setting::ALL
            .into_iter()
            .map(|s| (s, s.default_candidates().iter().map(|v| v.to_string()).collect()))
            .collect());
    }
    tries
        .iter()
        .map(|t| {
            let (name, values) = t
                .split_once('=')
                .with_context(|| format!("`--try {t}`: expected NAME=V1,V2,... (e.g. nb-alpha=0.5,1)"))?;
            let values: Vec<String> =
                values.split(',').map(str::trim).filter(|v| !v.is_empty()).map(String::from).collect();
            if values.is_empty() {
                anyhow::bail!("`--try {t}` names no values");
            }
            Ok((Setting::from_name(name.trim())?, values))
        })
        .collect()
}

/// What `trainer cv` does.
#[derive(Debug, Clone)]
pub struct CvConfig {
    /// The training data (nothing else is read).
    pub data: Vec<PathBuf>,
    /// Where the search starts (the shipped defaults unless flags say otherwise).
    pub start: ModelParams,
    /// Folds.
    pub folds: usize,
    /// The settings to search and their candidates, in visiting order.
    pub axes: Vec<(Setting, Vec<String>)>,
    /// No progress bars or notes.
    pub quiet: bool,
}

/// One candidate's score.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    /// The setting moved and its value (`None` for the starting point).
    pub setting: Option<Setting>,
    /// Its value.
    pub value: String,
    /// Accuracy on each held-out fold.
    pub fold_accuracy: Vec<f64>,
    /// Their mean.
    pub mean: f64,
    /// Mean gain over the settings held at the time, fold by fold.
    pub gain: f64,
    /// The standard error of `gain`.
    pub gain_se: f64,
    /// Whether it replaced the setting's value.
    pub taken: bool,
}

/// What the search found.
#[derive(Debug, Clone, Serialize)]
pub struct CvReport {
    /// Training rows used.
    pub examples: usize,
    /// Folds.
    pub folds: usize,
    /// Passes run.
    pub passes: usize,
    /// The starting settings' cross-validated accuracy, per fold and mean.
    pub start: Scored,
    /// Every candidate scored, in order.
    pub tried: Vec<Scored>,
    /// The settings chosen, as flags (`--name value`), every searched setting listed.
    pub chosen: Vec<(String, String)>,
    /// The chosen settings' cross-validated accuracy.
    pub chosen_mean: f64,
    /// The chosen settings, whole.
    #[serde(skip)]
    pub params: ModelParams,
    /// Seconds the search took.
    pub seconds: f64,
}

/// Runs the search.
pub fn search(cfg: &CvConfig) -> anyhow::Result<CvReport> {
    let started = std::time::Instant::now();
    if cfg.folds < 2 {
        anyhow::bail!("`--folds` must be at least 2, got {}", cfg.folds);
    }
    // The settings checked as `trainer train` checks them, and `--labels` in the form it trains
    // with (trimmed, lower-cased, sorted), so the search and its `--test` run read them alike.
    let checked = crate::config::TrainConfig::new(cfg.data.clone(), vec![], PathBuf::new(), &cfg.start)?;
    let start_params = ModelParams { labels: checked.labels, ..cfg.start.clone() };
    let progress = Progress::new(cfg.quiet);
    let batches = data::read_sources(&cfg.data, "training")?;
    let (examples, report) = data::labelled_rows(&batches, &start_params.labels);
    let labels = start_params.labels.len();
    for label in 0..labels {
        let n = examples.iter().filter(|e| e.label == label).count();
        if n < cfg.folds {
            anyhow::bail!(
                "label `{}` has {n} usable training rows, fewer than {} folds ({})",
                start_params.labels[label],
                cfg.folds,
                report.describe()
            );
        }
    }
    let targets: Vec<usize> = examples.iter().map(|e| e.label).collect();
    let fold_of = crate::calibrate::assign_folds(&targets, labels, cfg.folds, start_params.seed);
    let mut folds = Folds { examples: &examples, targets: &targets, fold_of, k: cfg.folds, encoded: HashMap::new() };

    let mut current = start_params;
    let mut current_scores = folds.score(&current, &progress)?;
    let start = scored(None, String::new(), &current_scores, &current_scores);
    let mut tried = Vec::new();
    let mut passes = 0;
    loop {
        passes += 1;
        let mut changed = false;
        for (setting, values) in &cfg.axes {
            for value in values {
                if *value == setting.get(&current) {
                    continue;
                }
                let candidate = setting.set(&current, value)?;
                let scores = folds.score(&candidate, &progress)?;
                let s = scored(Some(*setting), value.clone(), &scores, &current_scores);
                let taken = s.beats_held();
                progress.note(format!(
                    "--{} {value}: cross-validated accuracy {:.4} ({:+.4} ± {:.4}){}",
                    setting.name(),
                    s.mean,
                    s.gain,
                    s.gain_se,
                    if taken { ", taken" } else { "" }
                ));
                tried.push(Scored { taken, ..s });
                if taken {
                    current = candidate;
                    current_scores = scores;
                    changed = true;
                }
            }
        }
        if !changed || passes == MAX_PASSES {
            break;
        }
    }
    let chosen = cfg.axes.iter().map(|(s, _)| (format!("--{}", s.name()), s.get(&current))).collect();
    progress.note(format!("chosen: cross-validated accuracy {:.4}, from {:.4}", mean(&current_scores), start.mean));
    Ok(CvReport {
        examples: examples.len(),
        folds: cfg.folds,
        passes,
        start,
        tried,
        chosen,
        chosen_mean: mean(&current_scores),
        params: current,
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl Scored {
    /// Whether it should replace the held value: higher by more than one standard error of
    /// the paired per-fold differences.
    pub fn beats_held(&self) -> bool {
        self.gain > 0.0 && self.gain > self.gain_se
    }
}

/// `scores` against `held`'s, fold by fold.
fn scored(setting: Option<Setting>, value: String, scores: &[f64], held: &[f64]) -> Scored {
    let d: Vec<f64> = scores.iter().zip(held).map(|(a, b)| a - b).collect();
    let gain = mean(&d);
    let var = d.iter().map(|x| (x - gain).powi(2)).sum::<f64>() / (d.len().saturating_sub(1).max(1)) as f64;
    Scored {
        setting,
        value,
        fold_accuracy: scores.to_vec(),
        mean: mean(scores),
        gain,
        gain_se: (var / d.len() as f64).sqrt(),
        taken: false,
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// What encoding a fold needs: the settings the tokenizer and the encoder read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TokenizerKey {
    vocab_size: usize,
    min_frequency: u64,
    max_tokens: usize,
    normalization: u32,
}

/// Every row's ids under one fold's tokenizer, and that tokenizer's vocabulary size.
type FoldEncoding = (Vec<Vec<i64>>, usize);

/// The folds, and each fold's encoding of every row under each tokenizer setting tried so far.
struct Folds<'a> {
    examples: &'a [Example],
    targets: &'a [usize],
    fold_of: Vec<usize>,
    k: usize,
    /// Per tokenizer setting, per fold: every row under that fold's tokenizer.
    encoded: HashMap<TokenizerKey, Vec<FoldEncoding>>,
}

/// Every text of `encode` under a tokenizer learnt from the texts of `learn` alone, and that
/// tokenizer's vocabulary size: how a held-out score keeps the held-out texts' words out of
/// the tokenizer (the cross-validation's folds, `examples/int8_estimate.rs`).
pub fn encode_apart<'e>(
    p: &ModelParams,
    learn: impl IntoIterator<Item = &'e Example>,
    encode: impl IntoIterator<Item = &'e Example>,
) -> anyhow::Result<(Vec<Vec<i64>>, usize)> {
    let (tokenizer, normalization) = learn_tokenizer(p, learn)?;
    let encoder = TextEncoder::new(&tokenizer, normalization, p.max_tokens)?;
    let ids = encode.into_iter().map(|e| encoder.encode(&e.text).map(|enc| enc.ids)).collect::<Result<Vec<_>, _>>()?;
    Ok((ids, encoder.vocab_size()))
}

/// A tokenizer (`tokenizer.json`) learnt from the texts of `learn` alone, normalised as `p`
/// says, and that normalisation.
fn learn_tokenizer<'e>(
    p: &ModelParams,
    learn: impl IntoIterator<Item = &'e Example>,
) -> anyhow::Result<(Vec<u8>, Normalization)> {
    let normalization = Normalization::from_version(p.normalization)
        .with_context(|| format!("normalisation {} is not known to this core", p.normalization))?;
    let texts: Vec<String> = learn.into_iter().map(|e| normalization.apply(&e.text).text).collect();
    Ok((tokenizer::train(&texts, p.vocab_size, p.min_frequency)?, normalization))
}

/// The model `p` fits on `docs` (ids under a tokenizer of `vocab` tokens) with `targets`.
pub fn fit(p: &ModelParams, vocab: usize, docs: &[Vec<i64>], targets: &[usize]) -> model::LinearModel {
    let spec = FeatureSpec { vocab, buckets: p.buckets, pair_mul: PAIR_MUL };
    model::fit(docs, targets, spec, p.labels.len(), p.fit_params(), |_| {})
}

/// The share of `held` (ids, label) that `m` labels right.
pub fn accuracy<'a>(m: &model::LinearModel, held: impl ExactSizeIterator<Item = (&'a [i64], usize)>) -> f64 {
    let n = held.len();
    let right = held.filter(|(ids, label)| edge_classifier::argmax(&m.logits(ids)) == *label).count();
    right as f64 / n.max(1) as f64
}

impl Folds<'_> {
    /// The examples outside fold `fold`, which its tokenizer and model learn from.
    fn outside(&self, fold: usize) -> impl Iterator<Item = &Example> {
        self.examples.iter().zip(&self.fold_of).filter(move |(_, f)| **f != fold).map(|(e, _)| e)
    }

    /// The held-out accuracy of each fold under `p`.
    fn score(&mut self, p: &ModelParams, progress: &Progress) -> anyhow::Result<Vec<f64>> {
        let key = TokenizerKey {
            vocab_size: p.vocab_size,
            min_frequency: p.min_frequency,
            max_tokens: p.max_tokens,
            normalization: p.normalization,
        };
        if !self.encoded.contains_key(&key) {
            let mut per_fold = Vec::with_capacity(self.k);
            for fold in 0..self.k {
                let spinner = progress.spinner(&format!("fold {}/{}: tokenizer {key:?}", fold + 1, self.k));
                per_fold.push(encode_apart(p, self.outside(fold), self.examples)?);
                spinner.finish_and_clear();
            }
            self.encoded.insert(key.clone(), per_fold);
        }
        let encoded = &self.encoded[&key];
        Ok((0..self.k)
            .map(|fold| {
                let (ids, vocab) = &encoded[fold];
                let (train, held): (Vec<usize>, Vec<usize>) = (0..ids.len()).partition(|&i| self.fold_of[i] != fold);
                let docs: Vec<Vec<i64>> = train.iter().map(|&i| ids[i].clone()).collect();
                let targets: Vec<usize> = train.iter().map(|&i| self.targets[i]).collect();
                let model = fit(p, *vocab, &docs, &targets);
                accuracy(&model, held.iter().map(|&i| (ids[i].as_slice(), self.targets[i])))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fold_tokenizer_never_learns_the_held_out_folds_words() {
        // Each row holds a word of its own, written often enough to become one token.
        let examples: Vec<Example> =
            (0..12).map(|i| Example { text: format!("word{i}zz ").repeat(6) + "shared text", label: i % 2 }).collect();
        let targets: Vec<usize> = examples.iter().map(|e| e.label).collect();
        let fold_of = crate::calibrate::assign_folds(&targets, 2, 3, 7);
        let folds =
            Folds { examples: &examples, targets: &targets, fold_of: fold_of.clone(), k: 3, encoded: HashMap::new() };
        let p = ModelParams { vocab_size: 400, min_frequency: 1, ..ModelParams::default() };
        for fold in 0..3 {
            let (json, _) = learn_tokenizer(&p, folds.outside(fold)).expect("trains");
            let vocab = tokenizers::Tokenizer::from_bytes(&json).expect("loads").get_vocab(true);
            for (i, f) in fold_of.iter().enumerate() {
                let word = format!("word{i}zz");
                assert_eq!(vocab.contains_key(&word), *f != fold, "fold {fold}, row {i} (in fold {f})");
            }
        }
    }

    #[test]
    fn a_value_is_taken_only_one_standard_error_above_the_held_one() {
        let held = [0.90, 0.91, 0.92, 0.93, 0.94];
        // Better on every fold by 0.002: no spread, taken.
        let steady = scored(None, String::new(), &held.map(|x| x + 0.002), &held);
        assert!(steady.beats_held(), "{steady:?}");
        // Higher on average, but by less than its noise.
        let noisy = scored(None, String::new(), &[0.91, 0.90, 0.93, 0.92, 0.95], &held);
        assert!(noisy.gain > 0.0 && !noisy.beats_held(), "{noisy:?}");
        assert!(!scored(None, String::new(), &held.map(|x| x - 0.01), &held).beats_held());
        assert!(!scored(None, String::new(), &held, &held).beats_held());
    }

    #[test]
    fn settings_round_trip_through_their_flags_and_bad_ones_are_named() {
        let p = ModelParams::default();
        for s in Setting::ALL {
            assert_eq!(Setting::from_name(s.name()).expect("known"), s);
            for v in s.default_candidates() {
                assert_eq!(s.get(&s.set(&p, v).expect("parses")), *v, "{}", s.name());
            }
        }
        let e = axes(&["learning_rate=1".into()]).expect_err("unknown");
        assert!(e.to_string().contains("`learning_rate` is not a setting"), "{e}");
        assert!(axes(&["epochs".into()]).expect_err("no =").to_string().contains("NAME=V1,V2"));
        assert!(axes(&["epochs=".into()]).expect_err("no values").to_string().contains("names no values"));
        let e = Setting::Epochs.set(&p, "many").expect_err("not a number");
        assert!(e.to_string().contains("`--epochs many`"), "{e}");
        assert_eq!(axes(&[]).expect("default").len(), Setting::ALL.len());
    }
}
