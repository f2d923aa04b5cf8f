//! `trainer bench`: the figures in one JSON object, measured in one run.

use std::time::Instant;

use anyhow::Context;
use edge_classifier::Classifier;
use serde::Serialize;

use std::path::{Path, PathBuf};

use crate::config::{ModelParams, TrainConfig};
use crate::data::Example;
use crate::evaluate;
use crate::pipeline::{self, Parity, Timings};

/// What `trainer bench` prints.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Accuracy on DIR/test.csv.gz.
    pub accuracy: f64,
    /// Macro-F1 on DIR/test.csv.gz.
    pub macro_f1: f64,
    /// Accuracy on DIR/test.csv.gz with each question's own language name put back where the
    /// data set wrote `blank` ([`evaluate::unblank`]): how the model does when people name it.
    pub accuracy_unblanked: f64,
    /// Accuracy on the raw-dev questions (Stack Overflow HTML, capitals, names), or null when
    /// that file was not found.
    pub accuracy_raw_dev: Option<f64>,
    /// Expected calibration error (15 bins) of the bundle's answers on DIR/test.csv.gz.
    pub ece_test: f64,
    /// The same, of the model before calibration.
    pub ece_test_uncalibrated: f64,
    /// Expected calibration error on the raw-dev questions (null without them).
    pub ece_raw_dev: Option<f64>,
    /// The same, of the model before calibration.
    pub ece_raw_dev_uncalibrated: Option<f64>,
    /// Share of the test set's answers flagged unsure (0 for an uncalibrated bundle).
    pub unsure_rate_test: f64,
    /// Accuracy of the test set's answers not flagged unsure.
    pub accuracy_sure_test: f64,
    /// Share of the raw-dev answers flagged unsure.
    pub unsure_rate_raw_dev: Option<f64>,
    /// Accuracy of the raw-dev answers not flagged unsure.
    pub accuracy_sure_raw_dev: Option<f64>,
    /// The unsure rule the bundle applies (null for an uncalibrated one).
    pub unsure_rule: Option<edge_classifier::api::UnsureRule>,
    /// Coverage against accuracy on the test set: for each confidence threshold (with the
    /// bundle's known-feature rule), the share of answers it leaves sure and their accuracy.
    pub coverage_test: Vec<CoveragePoint>,
    /// Tokenizer training + encoding + fitting + calibration, in seconds.
    pub train_seconds: f64,
    /// The whole `train` run: reading data, learning, export and the tract check.
    pub total_seconds: f64,
    /// The serving core's latency (what `trainer latency` prints for the bundle).
    #[serde(flatten)]
    pub latency: Latency,
    /// Every file in the bundle directory.
    pub bundle_bytes: u64,
    /// What the edge ships: model.onnx + tokenizer.json + manifest.json.
    pub served_bytes: u64,
    /// Stage timings.
    pub timings: Timings,
    /// The export check.
    pub parity: Parity,
}

/// What `trainer bench` runs on.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Directory holding `train.csv.gz` and `test.csv.gz`.
    pub data: PathBuf,
    /// Where to keep the bundle (a temporary directory otherwise).
    pub out: Option<PathBuf>,
    /// Raw questions (label,text CSV) scored for `accuracy_raw_dev`; never trained on.
    pub raw_dev: Option<PathBuf>,
    /// Model settings.
    pub model: ModelParams,
    /// No progress bars or notes.
    pub quiet: bool,
}

/// Trains on `DIR/train.csv.gz`, evaluates on `DIR/test.csv.gz` and measures the bundle.
pub fn bench(args: &BenchConfig) -> anyhow::Result<BenchReport> {
    // Without `--out` the bundle lives in a temporary directory removed when `tmp` drops.
    let tmp;
    let out = match &args.out {
        Some(o) => o.clone(),
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
            tmp.path().join("bundle")
        }
    };
    let mut cfg = TrainConfig::new(
        vec![args.data.join("train.csv.gz")],
        vec![args.data.join("test.csv.gz")],
        out.clone(),
        &args.model,
    )?;
    cfg.quiet = args.quiet;
    let outcome = pipeline::train(&cfg)?;
    let classifier = pipeline::load_bundle(&out)?;
    let texts: Vec<&str> = outcome.eval_texts.iter().map(String::as_str).collect();
    let latency = latency(&[&classifier], &texts)?.remove(0);
    let labels = &classifier.manifest().labels;
    let (test, _) = evaluate::read_examples(&cfg.eval, labels)?;
    let unblanked: Vec<Example> =
        test.iter().map(|e| Example { text: evaluate::unblank(&e.text, &labels[e.label]), label: e.label }).collect();
    let accuracy_unblanked =
        edge_classifier::metrics::score(&classifier, unblanked.iter().map(Example::pair))?.accuracy;
    let model = &outcome.uncalibrated;
    let on_test = answers(&classifier, model, &test)?;
    // Raw-dev is read and classified once, for its accuracy and its calibration figures alike.
    let on_raw_dev = match &args.raw_dev {
        Some(path) => Some(
            evaluate::read_examples(std::slice::from_ref(path), labels)
                .and_then(|(examples, _)| answers(&classifier, model, &examples))
                .with_context(|| format!("failed to score the raw-dev set `{}`", path.display()))?,
        ),
        None => None,
    };
    let accuracy_raw_dev = on_raw_dev.as_ref().map(Answers::accuracy);
    let rule = classifier.manifest().calibration.as_ref().map(|c| c.unsure);
    let mut bundle_bytes = 0;
    let mut served_bytes = 0;
    for entry in std::fs::read_dir(&out).with_context(|| format!("cannot list `{}`", out.display()))? {
        let entry = entry?;
        let len = entry.metadata()?.len();
        bundle_bytes += len;
        let name = entry.file_name();
        if [
            edge_classifier::api::files::MODEL,
            edge_classifier::api::files::TOKENIZER,
            edge_classifier::api::files::MANIFEST,
        ]
        .iter()
        .any(|f| name == *f)
        {
            served_bytes += len;
        }
    }
    Ok(BenchReport {
        accuracy: outcome.manifest.metrics.accuracy,
        macro_f1: outcome.manifest.metrics.macro_f1,
        accuracy_unblanked,
        accuracy_raw_dev,
        ece_test: on_test.ece(false),
        ece_test_uncalibrated: on_test.ece(true),
        ece_raw_dev: on_raw_dev.as_ref().map(|a| a.ece(false)),
        ece_raw_dev_uncalibrated: on_raw_dev.as_ref().map(|a| a.ece(true)),
        unsure_rate_test: on_test.unsure_rate(),
        accuracy_sure_test: on_test.accuracy_sure(),
        unsure_rate_raw_dev: on_raw_dev.as_ref().map(Answers::unsure_rate),
        accuracy_sure_raw_dev: on_raw_dev.as_ref().map(Answers::accuracy_sure),
        unsure_rule: rule,
        coverage_test: on_test.coverage(rule),
        train_seconds: outcome.timings.train_seconds(),
        total_seconds: outcome.timings.total_seconds(),
        latency,
        bundle_bytes,
        served_bytes,
        timings: outcome.timings,
        parity: outcome.parity,
    })
}

/// One point of the coverage against accuracy curve.
#[derive(Debug, Serialize)]
pub struct CoveragePoint {
    /// Answers under this calibrated probability are unsure.
    pub below_confidence: f32,
    /// Share of answers left sure.
    pub coverage: f64,
    /// Their accuracy.
    pub accuracy: f64,
}

/// One served answer and what it would have been before calibration.
struct Answer {
    /// The served (calibrated) probability of the label answered, and whether it is right.
    served: (f32, bool),
    /// The same for the model before calibration.
    uncalibrated: (f32, bool),
    /// The served answer was flagged unsure.
    unsure: bool,
    /// Its known features ([`crate::calibrate::known_features`]).
    known: u32,
}

/// A labelled set's answers.
struct Answers(Vec<Answer>);

/// Runs every example through the serving core (its calibrated answer and unsure flag) and the
/// trainer's model before calibration (`model`), on the same ids.
fn answers(
    classifier: &Classifier,
    model: &crate::model::LinearModel,
    examples: &[Example],
) -> anyhow::Result<Answers> {
    let mut out = Vec::with_capacity(examples.len());
    for e in examples {
        let ids = classifier.encode(&e.text)?.ids;
        let (p, unsure) = classifier.judge(&ids)?;
        let q = model.probabilities(&ids);
        let (top, raw_top) = (edge_classifier::argmax(&p), edge_classifier::argmax(&q));
        out.push(Answer {
            served: (p[top], top == e.label),
            uncalibrated: (q[raw_top], raw_top == e.label),
            unsure: unsure.is_some(),
            known: crate::calibrate::known_features(model, &ids),
        });
    }
    Ok(Answers(out))
}

impl Answers {
    fn ece(&self, uncalibrated: bool) -> f64 {
        let pick = |a: &Answer| if uncalibrated { a.uncalibrated } else { a.served };
        edge_classifier::metrics::calibration_error(self.0.iter().map(pick), edge_classifier::metrics::CALIBRATION_BINS)
    }

    fn unsure_rate(&self) -> f64 {
        self.0.iter().filter(|a| a.unsure).count() as f64 / self.0.len().max(1) as f64
    }

    /// Accuracy of every served answer.
    fn accuracy(&self) -> f64 {
        self.0.iter().filter(|a| a.served.1).count() as f64 / self.0.len().max(1) as f64
    }

    fn accuracy_sure(&self) -> f64 {
        let sure: Vec<&Answer> = self.0.iter().filter(|a| !a.unsure).collect();
        sure.iter().filter(|a| a.served.1).count() as f64 / sure.len().max(1) as f64
    }

    /// Coverage and accuracy of the sure answers at each confidence line, the bundle's
    /// little-evidence rule (`rule`, none for an uncalibrated bundle) kept as it is.
    fn coverage(&self, rule: Option<edge_classifier::api::UnsureRule>) -> Vec<CoveragePoint> {
        let rule = rule.unwrap_or(edge_classifier::api::UnsureRule {
            min_known_features: 0,
            little_evidence_below: 0.0,
            below_confidence: 0.0,
        });
        [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
            .into_iter()
            .map(|t: f32| {
                let rule = edge_classifier::api::UnsureRule { below_confidence: t, ..rule };
                let sure: Vec<&Answer> =
                    self.0.iter().filter(|a| edge_classifier::unsure(&rule, a.served.0, a.known).is_none()).collect();
                CoveragePoint {
                    below_confidence: t,
                    coverage: sure.len() as f64 / self.0.len().max(1) as f64,
                    accuracy: sure.iter().filter(|a| a.served.1).count() as f64 / sure.len().max(1) as f64,
                }
            })
            .collect()
    }
}

/// What `trainer latency` prints.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Median latency of one `Classifier::classify` (native core, warm, explanation included,
    /// each question seen for the first time).
    pub classify_p50_us: f64,
    /// 99th percentile of the same.
    pub classify_p99_us: f64,
    /// Median of normalise + tokenize alone, measured right after that question's classify
    /// (so its words are in the instance's piece cache).
    pub encode_p50_us: f64,
    /// Median of one `Classifier::run` on that question's ids, right after: the tract graph, and
    /// for bundles of distinct features (formats 3 and 4) the core's count and the hand-back
    /// to positions.
    pub run_p50_us: f64,
    /// Questions timed.
    pub timed_questions: usize,
    /// With `--per-node`: each tract node's mean time per graph run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeTime>>,
    /// With `--baseline`: the baseline bundle's figures, timed in the same process on the same
    /// questions, interleaved with this bundle's (see [`latency`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Box<Latency>>,
    /// With `--baseline`: this bundle's classify p50 over the baseline's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classify_p50_vs_baseline: Option<f64>,
}

/// One node of the optimised tract plan and its mean time per run.
#[derive(Debug, Serialize)]
pub struct NodeTime {
    /// The node's id in the plan (the order it runs in).
    pub id: usize,
    /// tract's op name (`Gather`, `Reduce<Sum>`, …).
    pub op: String,
    /// The node's name, derived by tract from the ONNX node it came from.
    pub name: String,
    /// Mean wall time of this node per graph run, in µs.
    pub mean_us: f64,
}

/// `trainer latency`: loads the bundle and times it on the questions of `data`; `per_node`
/// adds each tract node's mean time; `baseline` times another bundle alongside (see
/// [`latency`]).
pub fn latency_of_bundle(
    bundle: &Path,
    data: &[PathBuf],
    with_nodes: bool,
    baseline: Option<&Path>,
) -> anyhow::Result<Latency> {
    let classifier = pipeline::load_bundle(bundle)?;
    let (examples, _) = evaluate::read_examples(data, &classifier.manifest().labels)?;
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let report = match baseline {
        None => latency(&[&classifier], &texts)?.remove(0),
        Some(path) => {
            let base = pipeline::load_bundle(path)?;
            let mut both = latency(&[&classifier, &base], &texts)?;
            let base = both.remove(1);
            let mut report = both.remove(0);
            report.classify_p50_vs_baseline = Some(report.classify_p50_us / base.classify_p50_us);
            report.baseline = Some(Box::new(base));
            report
        }
    };
    let nodes = if with_nodes { Some(per_node(&classifier, &texts)?) } else { None };
    Ok(Latency { nodes, ..report })
}

/// Times every node of the classifier's own tract plan, one run per question (encoded first,
/// outside the timing), by wrapping tract's per-node evaluation. This is how the graph's cost
/// was found to be per node rather than per value, and where tract's optimiser had split ops.
pub fn per_node(classifier: &Classifier, texts: &[&str]) -> anyhow::Result<Vec<NodeTime>> {
    let plan = classifier.graph().context("the classifier runs its graph in the interpreter, not in tract")?;
    let mut state = plan.spawn()?;
    let mut seconds = vec![0f64; plan.model().nodes().len()];
    for t in texts {
        let ids = classifier.encode(t)?.ids;
        state.run_plan_with_eval(classifier.graph_inputs(&ids), |ctx, op_state, node, inputs| {
            let start = Instant::now();
            let outputs = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
            seconds[node.id] += start.elapsed().as_secs_f64();
            outputs
        })?;
    }
    let runs = texts.len().max(1) as f64;
    Ok(plan
        .model()
        .nodes()
        .iter()
        .map(|node| NodeTime {
            id: node.id,
            op: node.op().name().to_string(),
            name: node.name.clone(),
            mean_us: seconds[node.id] / runs * 1e6,
        })
        .collect())
}

/// Times each of `classifiers` on `texts`: a classify on each question's first sight (after a
/// warm-up on the first 200, the way a serving instance is warm), then that question's encode
/// and run. With several, each question goes to all of them in turn, starting with a
/// different one each time, so they share the machine's state from moment to moment: on
/// machines whose speed drifts by tens of percent over minutes, separate runs compare the
/// drift, this compares the bundles.
pub fn latency(classifiers: &[&Classifier], texts: &[&str]) -> anyhow::Result<Vec<Latency>> {
    for c in classifiers {
        for t in texts.iter().take(200) {
            c.classify(t)?;
        }
    }
    let k = classifiers.len();
    let mut classify_us = vec![Vec::with_capacity(texts.len()); k];
    let mut encode_us = vec![Vec::with_capacity(texts.len()); k];
    let mut run_us = vec![Vec::with_capacity(texts.len()); k];
    for (i, t) in texts.iter().enumerate() {
        for turn in 0..k {
            let which = (i + turn) % k;
            let classifier = classifiers[which];
            let start = Instant::now();
            let p = classifier.classify(t)?;
            classify_us[which].push(start.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(p);
            let start = Instant::now();
            let e = classifier.encode(t)?;
            encode_us[which].push(start.elapsed().as_secs_f64() * 1e6);
            let start = Instant::now();
            let scores = classifier.run(&e.ids)?;
            run_us[which].push(start.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(scores);
        }
    }
    Ok((0..k)
        .map(|which| Latency {
            classify_p50_us: percentile(&mut classify_us[which], 0.50),
            classify_p99_us: percentile(&mut classify_us[which], 0.99),
            encode_p50_us: percentile(&mut encode_us[which], 0.50),
            run_p50_us: percentile(&mut run_us[which], 0.50),
            timed_questions: texts.len(),
            nodes: None,
            baseline: None,
            classify_p50_vs_baseline: None,
        })
        .collect())
}

/// The `q` quantile (nearest rank) of `values`.
fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}
