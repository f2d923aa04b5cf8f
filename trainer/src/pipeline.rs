//! `trainer train`: data → tokenizer → classifier → ONNX → verified bundle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use edge_classifier::api::{
    COUNTED_MANIFEST_FORMAT_VERSION, Calibration, IDS_MANIFEST_FORMAT_VERSION, LEGACY_MANIFEST_FORMAT_VERSION,
    MANIFEST_FORMAT_VERSION, ModelManifest, PRESENCE_MANIFEST_FORMAT_VERSION, files,
};
use edge_classifier::normalize::Normalization;
use edge_classifier::{BundleFiles, Classifier, TextEncoder, argmax};
use serde::Serialize;
use serde_json::json;

use crate::bundle::{self, BundleBytes};
use crate::config::TrainConfig;
use crate::data::{self, Batch, Dataset, EvalSource, Example, RowReport};
use crate::export;
use crate::model::{self, FeatureSpec, FitParams, LinearModel, Weighting, Weights};
use crate::progress::Progress;
use crate::tokenizer;

/// The export check's bound on |trainer probability − tract probability|.
pub const PARITY_TOLERANCE: f32 = 1e-5;

/// How long each stage took, in seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Reading and cleaning the data.
    pub load: f64,
    /// Training the tokenizer.
    pub tokenizer: f64,
    /// Encoding every text.
    pub encode: f64,
    /// Fitting the classifier.
    pub fit: f64,
    /// Fitting it again once per calibration fold, and the calibration (0 when uncalibrated).
    pub calibrate: f64,
    /// Writing ONNX and verifying it with tract over the evaluation set.
    pub export_and_verify: f64,
}

impl Timings {
    /// Learning time: tokenizer + encoding + fit + calibration (what a model costs to train, without I/O
    /// and the export check).
    pub fn train_seconds(&self) -> f64 {
        self.tokenizer + self.encode + self.fit + self.calibrate
    }

    /// Everything.
    pub fn total_seconds(&self) -> f64 {
        self.load + self.train_seconds() + self.export_and_verify
    }
}

/// The agreement between the trainer's own probabilities and tract's.
#[derive(Debug, Clone, Serialize)]
pub struct Parity {
    /// Texts compared.
    pub examples: usize,
    /// Largest absolute probability difference.
    pub max_abs_diff: f32,
    /// Texts whose top label differs.
    pub argmax_mismatches: usize,
}

/// What a training run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The bundle directory.
    pub bundle_dir: PathBuf,
    /// Its manifest.
    pub manifest: ModelManifest,
    /// Rows read and skipped.
    pub train_report: RowReport,
    /// Rows read and skipped from `--eval`.
    pub eval_report: Option<RowReport>,
    /// Stage timings.
    pub timings: Timings,
    /// The export check's figures.
    pub parity: Parity,
    /// Evaluation texts, for callers that go on to measure the bundle (bench).
    pub eval_texts: Vec<String>,
    /// The model before calibration (the same as the bundle's when uncalibrated), for callers
    /// that report what calibration changed (bench).
    pub uncalibrated: LinearModel,
}

/// Trains a model as `cfg` says and writes a verified bundle to `cfg.out`.
pub fn train(cfg: &TrainConfig) -> anyhow::Result<TrainOutcome> {
    let t = Instant::now();
    let train = data::read_sources(&cfg.data, "training")?;
    // With separate evaluation data, the held-out slices of the training batches join it (a
    // split of the training rows is its own evaluation).
    let eval = match cfg.eval.is_empty() {
        true => Vec::new(),
        false => data::EvalSet::read(&cfg.eval)?.with_held_out(&train).batches().to_vec(),
    };
    train_on(cfg, &train, eval, t)
}

/// [`train`] on batches already read from `cfg.data` and `cfg.eval` (`eval` empty: a held-out
/// split), so a caller that needed the data first (`retrain` hashes it) does not read it
/// twice. `started` is when reading began, for the `load` timing.
pub fn train_on(
    cfg: &TrainConfig,
    train: &[Batch],
    eval: Vec<Batch>,
    started: Instant,
) -> anyhow::Result<TrainOutcome> {
    let progress = Progress::new(cfg.quiet);
    let mut timings = Timings::default();

    let eval = match cfg.eval.is_empty() {
        true => EvalSource::Split { fraction: cfg.eval_fraction, seed: cfg.seed },
        false => EvalSource::Batches(eval),
    };
    let dataset = data::prepare(train, eval, &cfg.labels)?;
    timings.load = started.elapsed().as_secs_f64();
    progress.note(format!(
        "training data: {} used, {}; evaluation rows: {}",
        dataset.train_report.used,
        dataset.train_report.describe(),
        dataset.eval.len()
    ));

    let t = Instant::now();
    let spinner = progress.spinner("training tokenizer");
    let train_normalized: Vec<String> = dataset.train.iter().map(|e| cfg.normalization.apply(&e.text).text).collect();
    let tokenizer_json = tokenizer::train(&train_normalized, cfg.vocab_size, cfg.min_frequency)?;
    spinner.finish_and_clear();
    timings.tokenizer = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let encoder = TextEncoder::new(&tokenizer_json, cfg.normalization, cfg.max_tokens)
        .context("the trained tokenizer cannot be served")?;
    let train_ids = encode_all(&encoder, &dataset.train, &progress, "encoding training set")?;
    let eval_ids = encode_all(&encoder, &dataset.eval, &progress, "encoding evaluation set")?;
    timings.encode = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let spec = FeatureSpec { vocab: encoder.vocab_size(), buckets: cfg.buckets, pair_mul: cfg.pair_mul };
    let targets: Vec<usize> = dataset.train.iter().map(|e| e.label).collect();
    let bar = progress.bar(cfg.epochs as u64, "fitting");
    let fitted = model::fit(&train_ids, &targets, spec, dataset.labels.len(), fit_params(cfg), |_| bar.inc(1));
    bar.finish_and_clear();
    timings.fit = t.elapsed().as_secs_f64();

    // Format 5 (presence) models are calibrated; the older weightings stay as they were, and
    // so does presence with no folds (format 4).
    let t = Instant::now();
    let calibrated = match cfg.weighting {
        Weighting::Presence if cfg.calibration_folds > 0 => {
            let bar = progress.bar(cfg.calibration_folds as u64, "calibrating (out-of-fold fits)");
            let c = crate::calibrate::calibrate(
                &train_ids,
                &targets,
                spec,
                dataset.labels.len(),
                fit_params(cfg),
                cfg.calibration_folds,
                |_| bar.inc(1),
            )?;
            bar.finish_and_clear();
            Some(c)
        }
        Weighting::Presence | Weighting::Sublinear | Weighting::Occurrences => None,
    };
    timings.calibrate = t.elapsed().as_secs_f64();
    // The model the bundle serves; the uncalibrated one is kept for the outcome.
    let served = match &calibrated {
        Some(c) => std::borrow::Cow::Owned(fitted.calibrated(&c.scale, &c.shift)),
        None => std::borrow::Cow::Borrowed(&fitted),
    };

    let t = Instant::now();
    let (bytes, manifest, parity) = export_and_verify(
        cfg,
        &dataset,
        tokenizer_json,
        (&*served, calibrated),
        &eval_ids,
        train.last().map(|b| crate::arrivals::batch_name(&b.path)),
        &progress,
    )?;
    timings.export_and_verify = t.elapsed().as_secs_f64();

    bundle::write_dir(&cfg.out, &bytes, &manifest)
        .with_context(|| format!("failed to write bundle to `{}`", cfg.out.display()))?;
    progress.note(format!(
        "bundle written to `{}`: accuracy {:.4}, macro-F1 {:.4} on {} evaluation rows",
        cfg.out.display(),
        manifest.metrics.accuracy,
        manifest.metrics.macro_f1,
        manifest.metrics.examples
    ));
    Ok(TrainOutcome {
        bundle_dir: cfg.out.clone(),
        manifest,
        train_report: dataset.train_report,
        eval_report: dataset.eval_report,
        timings,
        parity,
        eval_texts: dataset.eval.into_iter().map(|e| e.text).collect(),
        uncalibrated: fitted,
    })
}

/// The optimiser settings of `cfg`, for the model and each calibration fold alike.
fn fit_params(cfg: &TrainConfig) -> FitParams {
    FitParams {
        epochs: cfg.epochs,
        learning_rate: cfg.learning_rate,
        l2: cfg.l2,
        seed: cfg.seed,
        nb_alpha: cfg.nb_alpha,
        weighting: cfg.weighting,
    }
}

/// Encodes `examples` with the core's own encoder, on every core.
fn encode_all(
    encoder: &TextEncoder,
    examples: &[Example],
    progress: &Progress,
    what: &str,
) -> anyhow::Result<Vec<Vec<i64>>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = examples.len().div_ceil(threads).max(1);
    let bar = progress.bar(examples.len() as u64, what);
    // Each thread fills its own slice, so the result's order never depends on timing.
    let results: Vec<anyhow::Result<Vec<Vec<i64>>>> = std::thread::scope(|s| {
        let handles: Vec<_> = examples
            .chunks(chunk)
            .map(|part| {
                let bar = bar.clone();
                s.spawn(move || {
                    part.iter()
                        .map(|e| {
                            bar.inc(1);
                            encoder.encode(&e.text).map(|enc| enc.ids).map_err(anyhow::Error::from)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("encoder thread panicked"))))
            .collect()
    });
    bar.finish_and_clear();
    let mut all = Vec::with_capacity(examples.len());
    for part in results {
        all.extend(part?);
    }
    Ok(all)
}

/// Exports `served` (the model the bundle serves, and its calibration when it has one, already
/// folded into the model) and checks the export through the serving core.
fn export_and_verify(
    cfg: &TrainConfig,
    dataset: &Dataset,
    tokenizer_json: Vec<u8>,
    (fitted, calibration): (&LinearModel, Option<Calibration>),
    eval_ids: &[Vec<i64>],
    last_batch: Option<String>,
    progress: &Progress,
) -> anyhow::Result<(BundleBytes, ModelManifest, Parity)> {
    // In 8 bits, the model served (and checked below) is the one the 8-bit table holds.
    let int8 = (cfg.weights == Weights::Int8).then(|| fitted.int8_table());
    let stored = int8.as_ref().map(|t| fitted.with_table(t));
    let (fitted, table) = match (&int8, &stored) {
        (Some(t), Some(m)) => (m, export::Table::Int8(t)),
        _ => (fitted, export::Table::F16),
    };
    let onnx = export::to_onnx(fitted, table, &dataset.labels, &cfg.model_name);
    // A token-id graph with normalisation 1 is written exactly as before the field existed
    // (format 1, no field), so rebuilding an old bundle (the golden `tiny`) gives the same
    // manifest shape; with a newer normalisation it is format 2. Counted features need format
    // 3, distinct features alone format 4, and calibrated with an unsure rule format 5. Cores
    // that predate a format refuse it rather than serve it wrongly.
    let (format_version, normalization) = match (cfg.weighting, cfg.normalization) {
        (Weighting::Occurrences, Normalization::V1) => (LEGACY_MANIFEST_FORMAT_VERSION, None),
        (Weighting::Occurrences, n) => (IDS_MANIFEST_FORMAT_VERSION, Some(n.version())),
        (Weighting::Sublinear, n) => (COUNTED_MANIFEST_FORMAT_VERSION, Some(n.version())),
        (Weighting::Presence, n) if calibration.is_some() => (MANIFEST_FORMAT_VERSION, Some(n.version())),
        (Weighting::Presence, n) => (PRESENCE_MANIFEST_FORMAT_VERSION, Some(n.version())),
    };
    let mut manifest = ModelManifest {
        format_version,
        normalization,
        model_name: cfg.model_name.clone(),
        model_version: None,
        labels: dataset.labels.clone(),
        created_at: model_registry::now_rfc3339(),
        data_snapshot: dataset.snapshot.clone(),
        graph: export::graph_spec(fitted, cfg.max_tokens),
        training: training_params(cfg, dataset, fitted, last_batch),
        // Filled in below from the verified bundle's own answers.
        metrics: edge_classifier::metrics::evaluate(&dataset.labels, std::iter::empty()),
        calibration,
        files: BTreeMap::new(),
    };
    manifest.files.insert(files::MODEL.into(), bundle::digest(&onnx));
    manifest.files.insert(files::TOKENIZER.into(), bundle::digest(&tokenizer_json));
    let manifest_json = serde_json::to_vec_pretty(&manifest)?;

    // The check runs the bundle through the serving core, exactly as the edge will.
    let classifier =
        Classifier::load(BundleFiles { manifest: &manifest_json, model: &onnx, tokenizer: &tokenizer_json })
            .context("exported bundle does not load in the edge core")?;
    let (parity, pairs) = verify(&classifier, fitted, &dataset.eval, eval_ids, progress)?;
    manifest.metrics = edge_classifier::metrics::evaluate(&dataset.labels, pairs);
    Ok((BundleBytes { model: onnx, tokenizer: tokenizer_json }, manifest, parity))
}

/// The export check: runs every example through the serving core and compares with `own`,
/// the trainer's model. Fails unless every probability is within [`PARITY_TOLERANCE`] and every
/// top label agrees. Returns the figures and the (truth, served prediction) pairs.
pub fn verify(
    classifier: &Classifier,
    own: &LinearModel,
    examples: &[Example],
    ids: &[Vec<i64>],
    progress: &Progress,
) -> anyhow::Result<(Parity, Vec<(usize, usize)>)> {
    let bar = progress.bar(examples.len() as u64, "verifying export with tract");
    let mut parity = Parity { examples: 0, max_abs_diff: 0.0, argmax_mismatches: 0 };
    let mut pairs = Vec::with_capacity(examples.len());
    for (example, ids) in examples.iter().zip(ids) {
        let served = classifier.probabilities(&example.text)?;
        let mine = own.probabilities(ids);
        for (a, b) in served.iter().zip(&mine) {
            parity.max_abs_diff = parity.max_abs_diff.max((a - b).abs());
        }
        let predicted = argmax(&served);
        if predicted != argmax(&mine) {
            parity.argmax_mismatches += 1;
        }
        parity.examples += 1;
        pairs.push((example.label, predicted));
        bar.inc(1);
    }
    bar.finish_and_clear();
    if parity.max_abs_diff > PARITY_TOLERANCE || parity.argmax_mismatches > 0 {
        anyhow::bail!(
            "export check failed: tract and the trainer disagree (max |Δp| {:.3e} > {PARITY_TOLERANCE:e} or {} argmax mismatches over {} texts)",
            parity.max_abs_diff,
            parity.argmax_mismatches,
            parity.examples
        );
    }
    Ok((parity, pairs))
}

fn training_params(
    cfg: &TrainConfig,
    dataset: &Dataset,
    fitted: &LinearModel,
    last_batch: Option<String>,
) -> BTreeMap<String, serde_json::Value> {
    let value = json!({
        "trainer_version": env!("CARGO_PKG_VERSION"),
        "seed": cfg.seed,
        "tokenizer": "bpe",
        "vocab_size": fitted.spec.vocab,
        "min_frequency": cfg.min_frequency,
        "pair_buckets": fitted.spec.buckets,
        "pair_mul": fitted.spec.pair_mul,
        "features": cfg.weighting.features(),
        "epochs": cfg.epochs,
        "learning_rate": cfg.learning_rate,
        "l2": cfg.l2,
        "nb_alpha": cfg.nb_alpha,
        "weighting": cfg.weighting,
        "calibration_folds": (cfg.weighting == Weighting::Presence && cfg.calibration_folds > 0).then_some(cfg.calibration_folds),
        "max_tokens": cfg.max_tokens,
        "train_rows": dataset.train.len(),
        "eval_rows": dataset.eval.len(),
        "eval_source": if cfg.eval.is_empty() { "split" } else { "separate" },
        "eval_fraction": cfg.eval.is_empty().then_some(cfg.eval_fraction),
        "train_skipped": dataset.train_report.skipped,
        "data_paths": cfg.data.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        // What a later retrain judges this model on: the batches after this one
        // (`arrivals`). Rows held out by this rule were evaluated on, never trained on.
        (crate::arrivals::LAST_BATCH): last_batch,
        "holdout_rule": data::holdout::RULE,
    });
    let mut params: BTreeMap<String, serde_json::Value> = match value {
        serde_json::Value::Object(map) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    // Only when not f16, so bundles trained as before (the golden ones) keep their bytes.
    if cfg.weights != Weights::F16 {
        params.insert("weights".into(), json!(cfg.weights));
    }
    params
}

/// Reads and verifies the bundle at `dir` and loads it in the core.
pub fn load_bundle(dir: &Path) -> anyhow::Result<Classifier> {
    model_registry::verify_bundle(dir).with_context(|| format!("bundle `{}` is not valid", dir.display()))
}
