//! Shared helpers: fixture paths and small training configs.

use std::path::{Path, PathBuf};

use edge_classifier::normalize::Normalization;
use trainer::config::{ModelParams, TrainConfig};

/// The hand-made 160-row fixture (see fixtures/make_tiny.py).
pub fn tiny_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.csv")
}

/// The real stack_overflow_16k directory, `../shared/data/stackoverflow16k` beside the repo
/// unless `STACKTAG_SHARED_DATA` points elsewhere.
pub fn shared_data() -> PathBuf {
    let base = std::env::var_os("STACKTAG_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let dir = base.join("stackoverflow16k");
    assert!(
        dir.join("train.csv.gz").is_file(),
        "the shared data set is missing at `{}` (set STACKTAG_SHARED_DATA to the folder holding stackoverflow16k/)",
        dir.display()
    );
    dir
}

/// Model settings sized for the tiny fixture: small vocabulary and pair table.
pub fn tiny_params() -> ModelParams {
    ModelParams {
        labels: vec!["csharp".into(), "java".into(), "javascript".into(), "python".into()],
        model_name: "stacktag-test".into(),
        seed: 7,
        eval_fraction: 0.25,
        vocab_size: 400,
        min_frequency: 1,
        buckets: 1009,
        epochs: 30,
        learning_rate: 0.5,
        l2: 0.0,
        calibration_folds: trainer::calibrate::DEFAULT_FOLDS,
        nb_alpha: 1.0,
        max_tokens: 256,
        normalization: edge_classifier::normalize::Normalization::CURRENT.version(),
        weighting: trainer::model::Weighting::Presence,
        weights: trainer::model::Weights::F16,
    }
}

/// [`tiny_params`] as the trainer's flags, for the tests that run the binary (`train`,
/// `retrain`), quiet.
pub const TINY_FLAGS: &[&str] = &[
    "--seed",
    "7",
    "--eval-fraction",
    "0.25",
    "--vocab-size",
    "400",
    "--min-frequency",
    "1",
    "--buckets",
    "1009",
    "--epochs",
    "30",
    "--max-tokens",
    "256",
    "--quiet",
];

/// A quiet training config (`eval` empty: a held-out split).
pub fn train_config(data: Vec<PathBuf>, eval: Vec<PathBuf>, out: PathBuf, params: &ModelParams) -> TrainConfig {
    let mut cfg = TrainConfig::new(data, eval, out, params).expect("config is valid");
    cfg.quiet = true;
    cfg
}

/// A config that trains the tiny fixture into `out`.
pub fn tiny_config(out: &Path) -> TrainConfig {
    train_config(vec![tiny_csv()], vec![], out.to_path_buf(), &tiny_params())
}

/// Writes `rows` (label, text) as a CSV file at `path`.
pub fn write_csv(path: &Path, rows: &[(&str, &str)]) {
    let mut s = String::from("label,text\n");
    for (l, t) in rows {
        s.push_str(&format!("{},\"{}\"\n", l, t.replace('"', "\"\"")));
    }
    std::fs::write(path, s).expect("write csv");
}

/// The ids `tokenizer.json` alone gives `text` (its own pre-tokenizer and model, no specials),
/// after `normalization`: the reference the core's encode is held to.
pub fn tokenizer_json_ids(tokenizer: &tokenizers::Tokenizer, normalization: Normalization, text: &str) -> Vec<i64> {
    let normalized = normalization.apply(text).text;
    let encoding = tokenizer.encode(normalized.as_str(), false).expect("tokenizers encodes");
    encoding.get_ids().iter().map(|&id| i64::from(id)).collect()
}
