//! The trainer's flags and environment variables, parsed by clap and resolved once into the
//! library's configs. This is the only place that knows about clap or reads the environment.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use mlflow_client::{ClientConfig, env_vars as mlflow_env};
use model_registry::{GateConfig, GateMetric, RegistryConfig};
use strum::VariantNames;
use trainer::bench::BenchConfig;
use trainer::config::{ModelParams, TrainConfig};
use trainer::model::{Weighting, Weights};

/// Environment variables the trainer reads (through clap, here and nowhere else), besides
/// MLflow's own (`mlflow_client::env_vars`).
pub mod env_vars {
    /// Training data paths, comma-separated; same as repeating `--data`.
    pub const DATA: &str = "STACKTAG_DATA";
    /// Evaluation data paths, comma-separated; same as `--eval`.
    pub const EVAL: &str = "STACKTAG_EVAL";
    /// The inbox `fetch` writes to and `retrain` reads: a folder or `s3://`, `az://`, `gs://`.
    pub const INBOX: &str = "STACKTAG_INBOX";
    /// A Stack Exchange API key (optional; raises the daily quota from 300 to 10,000).
    pub const STACKEXCHANGE_KEY: &str = "STACKEXCHANGE_KEY";
    /// Prefixes of the object stores' own settings, passed to them as they are (lowercased):
    /// `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AZURE_STORAGE_ACCOUNT_NAME`, `GOOGLE_SERVICE_ACCOUNT`...
    pub const STORE_PREFIXES: [&str; 3] = ["AWS_", "AZURE_", "GOOGLE_"];
}

/// `trainer`: trains, evaluates, registers and gates Stacktag models.
#[derive(Debug, Parser)]
#[command(name = "trainer", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The trainer's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model and write a verified bundle.
    Train(TrainArgs),
    /// Score a bundle on any labelled data.
    Evaluate(EvaluateArgs),
    /// Judge a bundle on data that arrived after its training data, as `retrain` judges the
    /// champion: accuracy, label mix and the share of features it never saw (JSON).
    Judge(JudgeArgs),
    /// Train on DIR/train.csv.gz, evaluate on DIR/test.csv.gz, and print the figures.
    Bench(BenchArgs),
    /// Choose settings by cross-validation on the training data alone (the tokenizer learnt in
    /// each fold too), then, with `--test`, score the chosen ones on the test set once (JSON).
    Cv(CvArgs),
    /// Time the serving core on a bundle: one classify per question of the data, each seen
    /// for the first time (after a warm-up), in this process; prints one JSON object.
    Latency(LatencyArgs),
    /// The gate: score the `challenger` and the `champion` on the same data and move
    /// `champion` only if the challenger is at least as good (plus the margin).
    Promote(PromoteArgs),
    /// Point `champion` back at the version it replaced.
    Rollback(RollbackArgs),
    /// Retrain when the data snapshot changed since the champion, then register and gate.
    Retrain(RetrainArgs),
    /// Cut labelled data into batches that can land in an inbox over time (Parquet files).
    Split(SplitArgs),
    /// Bring new real questions into the inbox: from the Stack Exchange API or a data dump,
    /// labelled by tag, without any question the inbox or the evaluation data already has.
    Fetch(FetchArgs),
}

/// Flags of `trainer fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Where the batches go: a folder, or `s3://bucket/prefix`, `az://container/prefix`,
    /// `gs://bucket/prefix` (the stores' settings from `AWS_*`, `AZURE_*`, `GOOGLE_*`).
    #[arg(long, env = env_vars::INBOX)]
    pub inbox: String,
    /// Evaluation data (any format `train` reads): its questions never land in the inbox.
    #[arg(long, env = env_vars::EVAL, value_delimiter = ',')]
    pub eval: Vec<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Afterwards, copy every batch of the inbox into this folder (what `retrain --data DIR`
    /// reads when the inbox is an object store); batches already there are not fetched again.
    #[arg(long, value_name = "DIR")]
    pub copy_to: Option<PathBuf>,
    /// The source.
    #[command(subcommand)]
    pub source: FetchSource,
}

/// Where `trainer fetch` reads questions.
#[derive(Debug, Subcommand)]
pub enum FetchSource {
    /// The Stack Exchange API (v2.3): each language tag's questions since the inbox's newest
    /// of that label.
    Api(FetchApiArgs),
    /// A Stack Exchange data dump's `Posts.xml` (plain or gzip), streamed.
    Dump(FetchDumpArgs),
}

/// Flags of `trainer fetch api`.
#[derive(Debug, Args)]
pub struct FetchApiArgs {
    /// Where a label the inbox has none of starts, Unix seconds (default: 7 days ago).
    #[arg(long)]
    pub since: Option<i64>,
    /// The newest creation date fetched, Unix seconds (default: now).
    #[arg(long)]
    pub until: Option<i64>,
    /// Pages per tag at most in this run (100 questions a page; the rest waits for the next run).
    #[arg(long)]
    pub max_pages: Option<u32>,
    /// The Stack Exchange site.
    #[arg(long, default_value = "stackoverflow")]
    pub site: String,
    /// The API's base URL.
    #[arg(long, default_value = harvest::api::DEFAULT_BASE_URL)]
    pub api_url: String,
    /// An app key for the higher quota (never printed).
    #[arg(long, env = env_vars::STACKEXCHANGE_KEY, hide_env_values = true)]
    pub key: Option<String>,
}

/// Flags of `trainer fetch dump`.
#[derive(Debug, Args)]
pub struct FetchDumpArgs {
    /// The dump's `Posts.xml` (or `Posts.xml.gz`).
    #[arg(long)]
    pub posts: PathBuf,
    /// Rows per batch at most (memory stays bounded by it).
    #[arg(long, default_value_t = harvest::fetch::DEFAULT_BATCH_ROWS)]
    pub batch_rows: usize,
}

impl FetchArgs {
    /// The inbox, with the stores' settings from the environment.
    pub fn open_inbox(&self) -> anyhow::Result<harvest::inbox::Inbox> {
        let options = std::env::vars()
            .filter(|(k, _)| env_vars::STORE_PREFIXES.iter().any(|p| k.starts_with(p)))
            .map(|(k, v)| (k.to_ascii_lowercase(), v));
        harvest::inbox::Inbox::open(&self.inbox, options)
    }
}

/// Flags of `trainer split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// Labelled data, in any format `train` reads.
    #[arg(long, required = true, value_delimiter = ',')]
    pub data: Vec<PathBuf>,
    /// The directory the batches are written to (`batch-0001.parquet`, ...).
    #[arg(long)]
    pub out: PathBuf,
    /// Rows of each label in the first batch (in file order).
    #[arg(long, default_value_t = 500)]
    pub first_per_label: usize,
    /// How many batches the remaining rows are cut into.
    #[arg(long, default_value_t = 1)]
    pub rest_batches: usize,
}

/// Flags of `trainer train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training data: CSV, CSV.gz, Parquet, a `<label>/*.txt` directory or its .tar.gz, or a
    /// directory of such files (one batch each). Repeat for several batches.
    #[arg(long, required = true, env = env_vars::DATA, value_delimiter = ',')]
    pub data: Vec<PathBuf>,
    /// Separate evaluation data (repeat or comma-separate for several files); without it a
    /// seeded, stratified split is held out.
    #[arg(long, env = env_vars::EVAL, value_delimiter = ',')]
    pub eval: Vec<PathBuf>,
    /// Where to write the bundle directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Print the run's summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Log the run to MLflow and register the bundle as a new version with alias `challenger`.
    #[arg(long)]
    pub register: bool,
    /// Registry settings (used with `--register`).
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Model settings.
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Settings that shape the model (shared by `train`, `bench` and `retrain`); the defaults are
/// [`ModelParams::default`]'s.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Labels to learn, comma-separated; rows with any other label are skipped.
    #[arg(long, value_delimiter = ',', default_values_t = ModelParams::default().labels)]
    pub labels: Vec<String>,
    /// Registered model name written into the manifest.
    #[arg(long, default_value_t = ModelParams::default().model_name)]
    pub model_name: String,
    /// Seed for the split and the example order.
    #[arg(long, default_value_t = ModelParams::default().seed)]
    pub seed: u64,
    /// Share of each label held out for evaluation when `--eval` is not given.
    #[arg(long, default_value_t = ModelParams::default().eval_fraction)]
    pub eval_fraction: f64,
    /// Tokenizer vocabulary size.
    #[arg(long, default_value_t = ModelParams::default().vocab_size)]
    pub vocab_size: usize,
    /// A merge must occur this often to enter the vocabulary.
    #[arg(long, default_value_t = ModelParams::default().min_frequency)]
    pub min_frequency: u64,
    /// Buckets for hashed adjacent-token pairs (a prime is best).
    #[arg(long, default_value_t = ModelParams::default().buckets)]
    pub buckets: usize,
    /// Passes over the training data.
    #[arg(long, default_value_t = ModelParams::default().epochs)]
    pub epochs: usize,
    /// Initial SGD step (decays linearly to 0).
    #[arg(long, default_value_t = ModelParams::default().learning_rate)]
    pub learning_rate: f32,
    /// L2 penalty.
    #[arg(long, default_value_t = ModelParams::default().l2)]
    pub l2: f32,
    /// Smoothing of the naive-Bayes feature ratios; 0 turns them off.
    #[arg(long, default_value_t = ModelParams::default().nb_alpha)]
    pub nb_alpha: f32,
    /// Tokens the model reads at most ([BOS] and [EOS] included); see docs/benchmarks.md for why 768.
    #[arg(long, default_value_t = ModelParams::default().max_tokens)]
    pub max_tokens: usize,
    /// Text normalisation version (see docs/bundle-format.md): 2 strips HTML and Markdown code markup and
    /// blanks the language names; 1 is the first one, kept to rebuild older bundles alike.
    #[arg(long, default_value_t = ModelParams::default().normalization)]
    pub normalization: u32,
    /// Feature weighting (see docs/trainer.md): `presence` (each distinct feature once, exact L2
    /// norm; the core finds the distinct features, format 4 bundles), `sublinear` (1 + ln
    /// count, exact L2 norm; the graph also reads the counts, format 3) or `occurrences` (raw
    /// counts over occurrences; the graph reads token ids, as every bundle before format 3).
    #[arg(long, default_value_t = ModelParams::default().weighting,
        value_parser = PossibleValuesParser::new(Weighting::VARIANTS).try_map(|s| s.parse::<Weighting>()))]
    pub weighting: Weighting,
    /// How the graph stores the table: `f16` (every value) or `int8` (each row's weights in
    /// 8-bit steps of its own scale, idf² in 8 bits: `model.onnx` 40% smaller gzipped, accuracy
    /// unchanged on held-out data, dequantised once when the graph loads, which the page's
    /// first answer feels: docs/trainer.md).
    #[arg(long, default_value_t = ModelParams::default().weights,
        value_parser = PossibleValuesParser::new(Weights::VARIANTS).try_map(|s| s.parse::<Weights>()))]
    pub weights: Weights,
    /// Folds of the out-of-fold answers that the calibration and the unsure rule are fitted on
    /// (`presence` models, format 5; see docs/trainer.md): the model is fitted this many more
    /// times. 0 leaves it uncalibrated, with no unsure rule (format 4).
    #[arg(long, default_value_t = ModelParams::default().calibration_folds)]
    pub calibration_folds: usize,
    /// No progress bars or notes.
    #[arg(long, short)]
    pub quiet: bool,
}

impl ModelArgs {
    /// The model settings.
    pub fn params(&self) -> ModelParams {
        ModelParams {
            labels: self.labels.clone(),
            model_name: self.model_name.clone(),
            seed: self.seed,
            eval_fraction: self.eval_fraction,
            vocab_size: self.vocab_size,
            min_frequency: self.min_frequency,
            buckets: self.buckets,
            epochs: self.epochs,
            learning_rate: self.learning_rate,
            l2: self.l2,
            nb_alpha: self.nb_alpha,
            calibration_folds: self.calibration_folds,
            max_tokens: self.max_tokens,
            normalization: self.normalization,
            weighting: self.weighting,
            weights: self.weights,
        }
    }

    /// A validated training config for `data` → `out`, evaluated on `eval`.
    pub fn train_config(&self, data: Vec<PathBuf>, eval: Vec<PathBuf>, out: PathBuf) -> anyhow::Result<TrainConfig> {
        if data.is_empty() {
            anyhow::bail!("no training data: pass `--data PATH` or set `{}`", env_vars::DATA);
        }
        let mut cfg = TrainConfig::new(data, eval, out, &self.params())?;
        cfg.quiet = self.quiet;
        Ok(cfg)
    }
}

/// Where the registry is and which names to use (shared by every registry command).
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// MLflow tracking server: an http(s) URL, or `databricks` (with `DATABRICKS_HOST` and
    /// `DATABRICKS_TOKEN`, or `DATABRICKS_CLIENT_ID` and `DATABRICKS_CLIENT_SECRET`; the
    /// registry is then Unity Catalog). Auth: `MLFLOW_TRACKING_TOKEN`, or
    /// `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`.
    #[arg(long, env = mlflow_env::TRACKING_URI, hide_env_values = true)]
    pub tracking_uri: Option<String>,
    /// MLflow experiment that training runs are logged to (on Databricks a workspace path,
    /// e.g. `/Shared/stacktag`).
    #[arg(long, default_value = "stacktag")]
    pub experiment: String,
    /// Registered model name (on Unity Catalog `catalog.schema.model`).
    #[arg(long, default_value = "stacktag")]
    pub registered_model: String,
}

impl RegistryArgs {
    /// Resolves the flags and MLflow's environment variables, once.
    pub fn resolve(&self) -> anyhow::Result<RegistryConfig> {
        let uri = self.tracking_uri.clone().filter(|u| !u.trim().is_empty()).ok_or_else(|| {
            anyhow::anyhow!("no MLflow server: pass `--tracking-uri URL` or set `{}`", mlflow_env::TRACKING_URI)
        })?;
        let client = ClientConfig::from_lookup(|name| match name == mlflow_env::TRACKING_URI {
            true => Some(uri.clone()),
            false => std::env::var(name).ok(),
        })
        .map_err(|e| anyhow::anyhow!(e).context("invalid MLflow configuration"))?;
        let signing = model_registry::Signing::from_lookup(|k| std::env::var(k).ok())?;
        Ok(RegistryConfig::new(
            client,
            &self.experiment,
            &self.registered_model,
            ["--experiment", "--registered-model"],
        )?
        .with_signing(signing))
    }
}

/// Flags of the gate (shared by `promote` and `retrain`).
#[derive(Debug, Clone, Args)]
pub struct GateArgs {
    /// Labelled evaluation data both models are scored on (any format `train` reads; repeat
    /// or comma-separate for several files).
    #[arg(long, env = env_vars::EVAL, value_delimiter = ',', required = true)]
    pub eval: Vec<PathBuf>,
    /// The figure compared: `accuracy` or `macro_f1`.
    #[arg(long, default_value = "accuracy")]
    pub metric: String,
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

impl GateArgs {
    /// The gate's settings.
    pub fn resolve(&self, force: bool, version: Option<String>) -> anyhow::Result<GateConfig> {
        let metric: GateMetric = self.metric.parse().map_err(|_| {
            anyhow::anyhow!("`--metric` must be one of {:?}, got `{}`", GateMetric::VARIANTS, self.metric)
        })?;
        GateConfig::new(metric, self.margin, force, version)
    }
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
    /// Gate settings; `--eval` is also the data the model is evaluated on while training.
    #[command(flatten)]
    pub gate: GateArgs,
    /// Model settings.
    #[command(flatten)]
    pub model: ModelArgs,
}

/// A bundle and the labelled data to run it on (`evaluate`, `latency`).
#[derive(Debug, Args)]
pub struct BundleOnData {
    /// The bundle directory.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Labelled data, in any format `train` reads.
    #[arg(long, required = true, value_delimiter = ',')]
    pub data: Vec<PathBuf>,
}

/// Flags of `trainer evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// What to score on what.
    #[command(flatten)]
    pub target: BundleOnData,
    /// Print the figures as JSON (the shape of metrics.json, plus row counts).
    #[arg(long)]
    pub json: bool,
    /// No notes.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Flags of `trainer judge`.
#[derive(Debug, Args)]
pub struct JudgeArgs {
    /// The bundle, and the data that arrived after it was trained (`--data`).
    #[command(flatten)]
    pub target: BundleOnData,
    /// The data the bundle was trained on, for the label mix and the unseen features.
    #[arg(long, required = true, value_delimiter = ',')]
    pub trained_on: Vec<PathBuf>,
}

/// Flags of `trainer latency`.
#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// What to time on which questions (their labels are not used).
    #[command(flatten)]
    pub target: BundleOnData,
    /// Also time every tract node of the graph, over one run per question (adds `nodes`).
    #[arg(long)]
    pub per_node: bool,
    /// Another bundle to time alongside, question by question in the same process (adds
    /// `baseline` and `classify_p50_vs_baseline`): the way to compare two bundles on a machine
    /// whose speed drifts between runs.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Print one JSON object (the default prints it too; kept for symmetry with other tools).
    #[arg(long)]
    pub json: bool,
}

/// Flags of `trainer cv`.
#[derive(Debug, Args)]
pub struct CvArgs {
    /// Training data (repeat or comma-separate); nothing else shapes the choice.
    #[arg(long, required = true, value_delimiter = ',')]
    pub data: Vec<PathBuf>,
    /// Stratified folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// A setting to search and its candidates, `NAME=V1,V2,...` with NAME a `trainer train`
    /// flag (`nb-alpha`, `weighting`, `vocab-size`...); repeat for several, searched in that
    /// order. Without any: every setting with its default candidates (docs/trainer.md).
    #[arg(long = "try", value_name = "NAME=VALUES")]
    pub tries: Vec<String>,
    /// Test data, scored once by a model trained on all of `--data` with the chosen settings.
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Model settings: where the search starts.
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Flags of `trainer bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Directory holding train.csv.gz and test.csv.gz.
    #[arg(long, env = env_vars::DATA)]
    pub data: PathBuf,
    /// Print one JSON object (the default prints it too; kept for symmetry with other tools).
    #[arg(long)]
    pub json: bool,
    /// Where to keep the bundle (a temporary directory otherwise).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Raw questions to score for `accuracy_raw_dev` (CSV with label and text); by default
    /// `raw-dev/questions.csv.gz` beside the `--data` directory, when it exists.
    #[arg(long)]
    pub raw_dev: Option<PathBuf>,
    /// Model settings.
    #[command(flatten)]
    pub model: ModelArgs,
}

impl BenchArgs {
    /// The bench's settings.
    pub fn resolve(&self) -> BenchConfig {
        BenchConfig {
            data: self.data.clone(),
            out: self.out.clone(),
            raw_dev: self.raw_dev.clone().or_else(|| {
                let beside = self.data.join("../raw-dev/questions.csv.gz");
                beside.is_file().then_some(beside)
            }),
            model: self.model.params(),
            quiet: self.model.quiet,
        }
    }
}
