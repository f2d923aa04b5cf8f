//! Training end to end on the tiny fixture: the bundle, determinism, export parity (tract
//! and onnxruntime), safe writes, evaluation and the CLI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use edge_classifier::api::{ModelManifest, files};
use trainer::pipeline;

use crate::common::{TINY_FLAGS, tiny_config, tiny_csv, tiny_params, tokenizer_json_ids, train_config};
use trainer::config::ModelParams;
use trainer::model::{Weighting, Weights};

fn train_tiny(out: &Path) -> pipeline::TrainOutcome {
    pipeline::train(&tiny_config(out)).expect("tiny fixture trains")
}

#[test]
fn tiny_fixture_trains_into_a_complete_verified_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bundle");
    let outcome = train_tiny(&out);

    for f in [files::MODEL, files::TOKENIZER, files::MANIFEST, files::METRICS, files::CONFUSION_SVG] {
        assert!(out.join(f).is_file(), "bundle lacks {f}");
    }
    let manifest: ModelManifest =
        serde_json::from_slice(&fs::read(out.join(files::MANIFEST)).expect("read")).expect("manifest parses");
    assert_eq!(manifest.labels, ["csharp", "java", "javascript", "python"]);
    assert_eq!(manifest.model_name, "stacktag-test");
    assert_eq!(manifest.data_snapshot.len(), 64);
    assert_eq!(manifest.training["seed"], 7);
    for f in [files::MODEL, files::TOKENIZER] {
        let bytes = fs::read(out.join(f)).expect("read");
        assert_eq!(manifest.files[f].sha256, edge_classifier::sha256_hex(&bytes), "{f} digest");
        assert_eq!(manifest.files[f].bytes, bytes.len() as u64);
    }
    // 10 held out per label; the fixture's languages are easy to tell apart.
    assert_eq!(manifest.metrics.examples, 40);
    assert!(manifest.metrics.accuracy >= 0.9, "accuracy {}", manifest.metrics.accuracy);
    let confusion_total: u64 = manifest.metrics.confusion.iter().flatten().sum();
    assert_eq!(confusion_total, 40);

    let metrics: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join(files::METRICS)).expect("read")).expect("json");
    assert_eq!(metrics["accuracy"], serde_json::json!(manifest.metrics.accuracy));
    let svg = fs::read_to_string(out.join(files::CONFUSION_SVG)).expect("svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<rect x=").count(), 16, "one cell per (true, predicted) pair");

    assert!(outcome.parity.max_abs_diff <= pipeline::PARITY_TOLERANCE);
    assert_eq!(outcome.parity.argmax_mismatches, 0);
    assert_eq!(outcome.parity.examples, 40);
}

#[test]
fn same_data_and_seed_give_a_byte_identical_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    train_tiny(&a);
    train_tiny(&b);
    let read = |d: &Path, f: &str| fs::read(d.join(f)).expect("read");
    assert!(read(&a, files::MODEL) == read(&b, files::MODEL), "model.onnx differs between identical runs");
    assert!(read(&a, files::TOKENIZER) == read(&b, files::TOKENIZER), "tokenizer.json differs");

    let mut cfg = tiny_config(&c);
    cfg.seed = 8;
    pipeline::train(&cfg).expect("train");
    assert!(read(&a, files::MODEL) != read(&c, files::MODEL), "the seed must matter");
}

#[test]
fn the_export_check_fails_when_the_graph_and_the_trainer_disagree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bundle");
    let cfg = tiny_config(&out);
    train_tiny(&out);
    let classifier = pipeline::load_bundle(&out).expect("load");
    let batches = trainer::data::read_source(&tiny_csv()).expect("read");
    let (examples, _) = trainer::data::clean_labelled(&batches, &cfg.labels).expect("clean");
    let ids: Vec<Vec<i64>> = examples.iter().map(|e| classifier.encode(&e.text).expect("encode").ids).collect();
    // A model other than the exported one (one epoch instead of thirty) stands in for a
    // trainer whose arithmetic drifted from the graph: the check must refuse it.
    let spec = trainer::model::FeatureSpec {
        vocab: classifier.encoder().vocab_size(),
        buckets: cfg.buckets,
        pair_mul: cfg.pair_mul,
    };
    let targets: Vec<usize> = examples.iter().map(|e| e.label).collect();
    let params = trainer::model::FitParams {
        epochs: 1,
        learning_rate: 0.5,
        l2: 0.0,
        seed: 1,
        nb_alpha: 1.0,
        weighting: cfg.weighting,
    };
    let other = trainer::model::fit(&ids, &targets, spec, 4, params, |_| {});
    let progress = trainer::progress::Progress::new(true);
    let err = pipeline::verify(&classifier, &other, &examples, &ids, &progress)
        .expect_err("a mismatched export must be refused");
    assert!(format!("{err:#}").contains("export check failed"), "{err:#}");
}

fn venv_python() -> PathBuf {
    let cache = std::env::var_os("STACKTAG_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/stacktag"));
    let python = cache.join("venv/bin/python");
    assert!(python.is_file(), "no venv at `{}`: run scripts/setup.sh", python.display());
    python
}

fn onnxruntime_check(model: &Path, cases: &Path) -> std::process::Output {
    Command::new(venv_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/onnxruntime_check.py"))
        .arg(model)
        .arg(cases)
        .output()
        .expect("run onnxruntime check")
}

#[test]
fn onnxruntime_and_onnx_checker_accept_the_export_and_agree_with_the_core() {
    // The current format (presence, no counts) and format 3 (counts), which registries may
    // still hold and `--weighting sublinear` still writes.
    check_with_onnxruntime(Weighting::Presence, Weights::F16);
    check_with_onnxruntime(Weighting::Sublinear, Weights::F16);
    // And the 8-bit table (`--weights int8`): its dequantising nodes run alike in both.
    check_with_onnxruntime(Weighting::Presence, Weights::Int8);
}

fn check_with_onnxruntime(weighting: Weighting, weights: Weights) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bundle");
    let params = ModelParams { weighting, weights, ..tiny_params() };
    let outcome = pipeline::train(&train_config(vec![tiny_csv()], vec![], out.clone(), &params)).expect("trains");
    let classifier = pipeline::load_bundle(&out).expect("load");
    // The browser's runtime (the core's interpreter) runs this graph as tract does.
    let bundle = edge_classifier::bundle::read_verified_dir(&out).expect("read");
    let interpreted = edge_classifier::Classifier::load_with(
        bundle.files(),
        edge_classifier::Runtime::Interpreter,
        edge_classifier::Hashes::Computed,
    )
    .expect("interpreter");
    for t in &outcome.eval_texts {
        let ids = classifier.encode(t).expect("encode").ids;
        let (a, b) = (classifier.run(&ids).expect("tract"), interpreted.run(&ids).expect("interpreter"));
        for (x, y) in [(&a.probabilities, &b.probabilities), (&a.token_contributions, &b.token_contributions)] {
            assert_eq!(x.len(), y.len(), "{weighting} {weights}");
            assert!(x.iter().zip(y).all(|(p, q)| (p - q).abs() <= 1e-6), "{weighting} {weights}: {x:?} vs {y:?}");
        }
    }
    let mut cases: Vec<serde_json::Value> = outcome
        .eval_texts
        .iter()
        .map(|t| {
            let ids = classifier.encode(t).expect("encode").ids;
            let scores = classifier.run(&ids).expect("run");
            // The graph's inputs: the distinct features, found by the core's own function, and
            // their counts where the graph reads them (format 3).
            let counted = classifier.manifest().graph.counted.as_ref().expect("the trainer writes distinct features");
            assert_eq!(counted.counts.is_some(), weighting == Weighting::Sublinear, "{weighting}");
            let c = edge_classifier::features::count(&counted.features, &ids);
            let inputs = if counted.counts.is_some() {
                serde_json::json!({"feature_rows": c.rows, "feature_counts": c.counts})
            } else {
                serde_json::json!({"feature_rows": c.rows})
            };
            serde_json::json!({
                "inputs": inputs,
                "of_position": c.of_position,
                "counts": c.counts,
                "probabilities": scores.probabilities,
                "token_contributions": scores.token_contributions,
                "pair_contributions": scores.pair_contributions,
            })
        })
        .collect();
    let cases_path = dir.path().join("cases.json");
    fs::write(&cases_path, serde_json::to_vec(&cases).expect("json")).expect("write");
    let ok = onnxruntime_check(&out.join(files::MODEL), &cases_path);
    assert!(
        ok.status.success(),
        "onnxruntime check failed: {}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );

    // The check itself must be able to fail: a wrong expectation is reported.
    let ok_probabilities = cases[0]["probabilities"].clone();
    cases[0]["probabilities"][0] = serde_json::json!(2.0);
    fs::write(&cases_path, serde_json::to_vec(&cases).expect("json")).expect("write");
    let bad = onnxruntime_check(&out.join(files::MODEL), &cases_path);
    assert!(!bad.status.success(), "a wrong expectation passed the onnxruntime check");
    assert!(String::from_utf8_lossy(&bad.stdout).contains("case 0"));

    // So must its comparison of the explanation's inputs.
    cases[0]["probabilities"] = ok_probabilities;
    cases[1]["token_contributions"][2] =
        serde_json::json!(cases[1]["token_contributions"][2].as_f64().expect("number") + 0.5);
    fs::write(&cases_path, serde_json::to_vec(&cases).expect("json")).expect("write");
    let bad = onnxruntime_check(&out.join(files::MODEL), &cases_path);
    assert!(!bad.status.success(), "a wrong contribution passed the onnxruntime check");
    assert!(String::from_utf8_lossy(&bad.stdout).contains("case 1"), "{}", String::from_utf8_lossy(&bad.stdout));
}

#[test]
fn an_int8_table_answers_as_its_f16_model_within_a_step_and_is_smaller() {
    let dir = tempfile::tempdir().expect("tempdir");
    let train = |weights: Weights, name: &str| {
        let out = dir.path().join(name);
        let params = ModelParams { weights, ..tiny_params() };
        let outcome = pipeline::train(&train_config(vec![tiny_csv()], vec![], out.clone(), &params)).expect("trains");
        (
            outcome,
            pipeline::load_bundle(&out).expect("loads"),
            fs::metadata(out.join(files::MODEL)).expect("model").len(),
        )
    };
    let (f16, f16_core, f16_bytes) = train(Weights::F16, "f16");
    let (int8, int8_core, int8_bytes) = train(Weights::Int8, "int8");
    // The export check held the graph to the trainer's dequantised model; the manifest says so.
    assert_eq!(int8.manifest.training.get("weights"), Some(&serde_json::json!("int8")));
    assert_eq!(f16.manifest.training.get("weights"), None, "f16 bundles keep their manifest as before");
    assert!(int8.parity.max_abs_diff <= 1e-6, "{:?}", int8.parity);
    assert!(int8_bytes * 10 < f16_bytes * 8, "int8 {int8_bytes} bytes against f16 {f16_bytes}");
    // tract folds the dequantising nodes into one constant when it loads the graph, so each
    // request runs the f16 graph's nodes and nothing more (a broadcast per request cost 1.3×).
    let ops = |core: &edge_classifier::Classifier| -> Vec<String> {
        core.graph().expect("tract runs it").model().nodes().iter().map(|n| n.op().name().to_string()).collect()
    };
    assert_eq!(ops(&int8_core), ops(&f16_core), "the int8 plan is the f16 plan");
    // Same fit, so the same answers but for the rounding: probabilities close, labels equal
    // wherever the f16 model is clear.
    for text in &f16.eval_texts {
        let (a, b) = (f16_core.classify(text).expect("f16"), int8_core.classify(text).expect("int8"));
        let top = a.probabilities.iter().map(|p| p.probability).fold(0f32, f32::max);
        for (x, y) in a.probabilities.iter().zip(&b.probabilities) {
            assert!((x.probability - y.probability).abs() < 0.02, "{text:?}: {} vs {}", x.probability, y.probability);
        }
        if top > 0.6 {
            assert_eq!(a.label, b.label, "{text:?}");
        }
    }
}

#[test]
fn writing_over_a_directory_that_is_not_a_bundle_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("precious");
    fs::create_dir(&out).expect("mkdir");
    fs::write(out.join("thesis.txt"), "do not delete").expect("write");
    let err = pipeline::train(&tiny_config(&out)).expect_err("must refuse");
    assert!(format!("{err:#}").contains("is not a bundle directory"), "{err:#}");
    assert_eq!(fs::read_to_string(out.join("thesis.txt")).expect("kept"), "do not delete");
}

#[test]
fn retraining_into_an_existing_bundle_replaces_it_and_leaves_no_temporaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bundle");
    train_tiny(&out);
    fs::write(out.join("stale.txt"), "from the old bundle").expect("write");
    train_tiny(&out);
    assert!(!out.join("stale.txt").exists(), "the old bundle must be replaced whole");
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "bundle")
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

fn trainer_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
}

/// Runs `trainer <args> --bundle <bundle> --data tiny.csv`, which must succeed, and parses the
/// JSON it prints.
fn json_on_tiny(args: &[&str], bundle: &Path) -> serde_json::Value {
    let run = trainer_bin().args(args).arg("--bundle").arg(bundle).arg("--data").arg(tiny_csv()).output().expect("run");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    serde_json::from_slice(&run.stdout).expect("json on stdout")
}

#[test]
fn evaluate_prints_the_metrics_json_shape_with_row_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bundle");
    train_tiny(&out);
    let report = json_on_tiny(&["evaluate", "--json"], &out);
    let metrics: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join(files::METRICS)).expect("read")).expect("json");
    for key in ["accuracy", "macro_f1", "per_class", "confusion", "labels", "examples"] {
        assert!(report.get(key).is_some() && metrics.get(key).is_some(), "missing `{key}`");
    }
    assert_eq!(report["examples"], 160);
    assert_eq!(report["rows"]["read"], 160);
    // Training rows are in this set too, so it scores at least as well as the held-out part.
    assert!(report["accuracy"].as_f64().expect("number") >= 0.9);
}

#[test]
fn latency_times_every_question_and_refuses_a_non_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bundle");
    train_tiny(&out);
    let report = json_on_tiny(&["latency"], &out);
    assert_eq!(report["timed_questions"], 160);
    // Times are figures for the bench to print, not for a test to judge: only their presence.
    for key in ["classify_p50_us", "classify_p99_us", "encode_p50_us", "run_p50_us"] {
        assert!(report[key].as_f64().is_some_and(f64::is_finite), "{key}: {}", report[key]);
    }
    assert!(report.get("nodes").is_none(), "nodes only with --per-node");
    assert!(report.get("baseline").is_none(), "a baseline only with --baseline");
    // A baseline is timed alongside, on every question, and compared.
    let base = dir.path().join("base");
    train_tiny(&base);
    let base_arg = base.display().to_string();
    let report = json_on_tiny(&["latency", "--baseline", &base_arg], &out);
    assert_eq!(report["baseline"]["timed_questions"], 160);
    let ratio = report["classify_p50_vs_baseline"].as_f64().expect("ratio");
    let p50 = |r: &serde_json::Value| r["classify_p50_us"].as_f64().expect("p50");
    // (serde_json's default float parsing may miss the last bit.)
    assert!((ratio - p50(&report) / p50(&report["baseline"])).abs() < 1e-12, "{ratio}");
    let report = json_on_tiny(&["latency", "--per-node"], &out);
    let nodes = report["nodes"].as_array().expect("nodes");
    let ops: Vec<&str> = nodes.iter().map(|n| n["op"].as_str().expect("op")).collect();
    // The plan the core runs: ids in order, and the export's ops as tract optimised them (no
    // Concat: a slice of the sum would bring one back after the cast).
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["id"], i);
        assert!(n["mean_us"].as_f64().is_some_and(f64::is_finite), "{n}");
    }
    for op in ["Source", "Gather", "Cast", "Softmax"] {
        assert!(ops.contains(&op), "{op} in {ops:?}");
    }
    assert_eq!(ops.iter().filter(|op| **op == "Concat").count(), 0, "{ops:?}");
    assert_eq!(ops.iter().filter(|op| **op == "Cast").count(), 1, "{ops:?}");
    let run = trainer_bin()
        .args(["latency", "--bundle"])
        .arg(dir.path())
        .arg("--data")
        .arg(tiny_csv())
        .output()
        .expect("run");
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains(&dir.path().display().to_string()));
}

#[test]
fn the_cli_names_a_missing_data_file_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = trainer_bin()
        .args(["train", "--quiet", "--data", "/no/such/batch.csv", "--out"])
        .arg(dir.path().join("b"))
        .env_remove("STACKTAG_DATA")
        .output()
        .expect("run");
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("`/no/such/batch.csv`"), "{stderr}");
}

#[test]
fn the_cli_takes_the_data_location_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("b");
    let run = trainer_bin()
        .args(["train", "--json", "--out"])
        .arg(&out)
        .args(TINY_FLAGS)
        .env("STACKTAG_DATA", tiny_csv())
        .output()
        .expect("run");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).expect("json");
    assert_eq!(summary["train_rows"]["read"], 160);
    assert!(out.join(files::MODEL).is_file());
}

#[test]
fn bad_settings_are_refused_before_any_work() {
    let run = trainer_bin()
        .args(["train", "--quiet", "--eval-fraction", "1.5", "--out", "/tmp/never", "--data"])
        .arg(tiny_csv())
        .output()
        .expect("run");
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("`--eval-fraction`"));
}

#[test]
fn the_cores_encode_matches_the_saved_tokenizer_json_on_real_questions() {
    // The core runs the BPE model on its own pieces; tools that load only tokenizer.json run
    // its pre-tokenizer. Both must give the same ids, or the bundle would mean two things.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bundle");
    // Room for whole questions: the tiny vocabulary cuts real ones into many tokens, and at
    // the fixture's 256 most would be compared by their first ids only.
    let params = ModelParams { max_tokens: 1 << 16, ..tiny_params() };
    pipeline::train(&train_config(vec![tiny_csv()], vec![], out.clone(), &params)).expect("trains");
    let classifier = pipeline::load_bundle(&out).expect("load");
    let full = tokenizers::Tokenizer::from_file(out.join(files::TOKENIZER)).expect("tokenizer.json loads");
    let batches = trainer::data::read_source(&crate::common::shared_data().join("test.csv.gz")).expect("read");
    let (mut compared, mut truncated) = (0, 0);
    for row in batches[0].rows.iter().step_by(4) {
        let trainer::data::RawText::Text(text) = &row.text else { continue };
        let fast = classifier.encode(text).expect("encode");
        let reference = tokenizer_json_ids(&full, classifier.normalization(), text);
        let body = &fast.ids[1..fast.ids.len() - 1];
        let room = classifier.manifest().graph.max_tokens - 2;
        let what: String = text.chars().take(60).collect();
        if reference.len() <= room {
            // Whole: every id, and nothing cut.
            assert_eq!(body, &reference[..], "ids differ for {what:?}");
        } else {
            // Cut at max_tokens: the core keeps exactly the first `room` ids, and says so.
            assert_eq!(body, &reference[..room], "ids differ for {what:?}");
            assert!(fast.truncated, "{what:?} was cut but not flagged");
            truncated += 1;
        }
        compared += 1;
    }
    assert!(compared >= 1900, "compared {compared}");
    assert!(truncated < compared / 2, "most questions are compared whole ({truncated} of {compared} cut)");
}

#[test]
fn the_documented_command_reproduces_the_golden_model() {
    // Each golden tiny bundle's flags live beside it (`train-args`), and
    // scripts/regenerate-golden.sh trains with them: the same flags must give the committed
    // files byte for byte, or the golden answers no longer describe what the trainer makes.
    // `tiny` is a format 1 bundle (old normalisation, token-id graph), `tiny-counted` format
    // 3 (counts), `tiny-presence` format 4, `tiny-calibrated` the current format (5, its
    // calibration folded into the graph's weights).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for name in ["tiny", "tiny-counted", "tiny-presence", "tiny-calibrated"] {
        let fixture = root.join("edge-classifier/tests/fixtures").join(name);
        let flags = fs::read_to_string(fixture.join("train-args")).expect("train-args");
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join(name);
        let run = trainer_bin()
            .current_dir(&root)
            .args(["train", "--quiet"])
            .args(flags.split_whitespace())
            .arg("--out")
            .arg(&out)
            .env_remove("STACKTAG_DATA")
            .env_remove("STACKTAG_EVAL")
            .output()
            .expect("run");
        assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
        for f in [files::MODEL, files::TOKENIZER] {
            let made = fs::read(out.join(f)).expect("made");
            let committed = fs::read(fixture.join(f)).expect("committed");
            assert!(
                made == committed,
                "{name}: `{f}` differs from the committed fixture: run scripts/regenerate-golden.sh {name} and review"
            );
        }
    }
}

/// The dump's recorded questions (harvest's fixtures: real Stack Overflow questions).
fn posts_xml() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../harvest/tests/fixtures/Posts.xml")
}

#[test]
fn fetch_dump_lands_batches_the_trainer_reads_and_a_rerun_adds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inbox = dir.path().join("inbox");
    let fetch = |posts: &Path| {
        trainer_bin()
            .args(["fetch", "--json", "--inbox"])
            .arg(&inbox)
            .args(["dump", "--batch-rows", "4", "--posts"])
            .arg(posts)
            .env_remove("STACKTAG_EVAL")
            .output()
            .expect("run")
    };
    let first = fetch(&posts_xml());
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).expect("json");
    // 14 questions: 11 with one language tag, 1 with two, 2 with none; 4 rows a batch.
    assert_eq!(report["offered"], 14, "{report}");
    assert_eq!(report["skipped"]["several_language_tags"], 1, "{report}");
    assert_eq!(report["skipped"]["no_language_tag"], 2, "{report}");
    assert_eq!(report["written"].as_array().map(Vec::len), Some(3), "{report}");
    assert_eq!(report["dump"]["questions"], 14);
    let batches = trainer::data::read_source(&inbox).expect("the trainer reads the inbox");
    assert_eq!(batches.iter().map(|b| b.rows.len()).sum::<usize>(), 11);
    // The batches' ids survive into the reader, and the one labelled question the rule holds
    // out (computed by Python's hashlib, dataset::holdout) joins the evaluation data.
    let held: Vec<_> = trainer::data::holdout::held_out(&batches).into_iter().flat_map(|b| b.rows).collect();
    assert_eq!(held.iter().map(|r| r.question_id).collect::<Vec<_>>(), vec![Some(5222)]);

    let again = fetch(&posts_xml());
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(report["written"].as_array().map(Vec::len), Some(0), "{report}");
    assert_eq!(report["skipped"]["seen_question"], 11, "{report}");

    // A dump cut mid-row: the error names the file and where; what came before is kept.
    let whole = fs::read(posts_xml()).expect("read");
    let cut = dir.path().join("cut.xml");
    fs::write(&cut, &whole[..whole.len() / 2]).expect("write");
    let broken = fetch(&cut);
    assert!(!broken.status.success());
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(err.contains("cut.xml") && err.contains("malformed at byte"), "{err}");
}
