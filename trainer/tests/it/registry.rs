//! MLflow tracking, the registry and the promotion gate, against a real `mlflow server`
//! (one per test binary, started on first use; each test uses its own experiment and model
//! names) and, for faults, a scripted loopback server in front of it.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use edge_classifier::api::files;
use mlflow_client::ClientConfig;
use mlflow_client::testing::{Fault, FaultServer, MlflowServer, fast_retry, free_port, unique_name};
use model_registry::{BUNDLE_ARTIFACT_DIR, Decision, GateMetric, Registered, RegistryConfig, aliases, tags};
use trainer::registry::Judgement;
use trainer::registry::{self, Connection as Registry, GateConfig};
use trainer::retrain::{self, Retrain};
use trainer::{data, pipeline};

use crate::common::{TINY_FLAGS, tiny_config, tiny_csv, tiny_params, train_config, write_csv};

const TOKEN: &str = "tok-TRAINER-NEVER-PRINT-9137";

/// The documented exit code of `promote` and `retrain --fail-if-not-promoted` when the gate
/// says no (docs/registry-and-gate.md).
const EXIT_NOT_PROMOTED: i32 = 3;

fn registry_on(client: ClientConfig, model: &str) -> Registry {
    let cfg =
        RegistryConfig { client, experiment: unique_name("exp"), model: model.to_owned(), signing: Default::default() };
    Registry::new(cfg).expect("registry")
}

fn registry_for(model: &str) -> Registry {
    registry_on(MlflowServer::shared().config(), model)
}

pub(crate) fn gate_with(metric: GateMetric, margin: f64, force: bool, version: Option<&str>) -> GateConfig {
    let gate = model_registry::GateConfig::new(metric, margin, force, version.map(str::to_owned)).expect("gate config");
    GateConfig { eval: vec![tiny_csv()], gate }
}

pub(crate) fn gate_config() -> GateConfig {
    gate_with(GateMetric::Accuracy, 0.0, false, None)
}

fn forced() -> GateConfig {
    gate_with(GateMetric::Accuracy, 0.0, true, None)
}

/// Trains the tiny fixture into `dir/name` and registers it.
pub(crate) fn train_and_register(reg: &Registry, dir: &Path, name: &str) -> Registered {
    let outcome = pipeline::train(&tiny_config(&dir.join(name))).expect("tiny fixture trains");
    registry::register(reg, &outcome.bundle_dir, &outcome.manifest).expect("register")
}

/// A new registered model whose champion is a tiny version trained in `dir`, promoted first.
fn tiny_champion(dir: &Path) -> (Registry, Registered) {
    let reg = registry_for(&unique_name("stacktag"));
    let r = train_and_register(&reg, dir, "a");
    assert_eq!(registry::promote(&reg, &gate_config()).expect("gate").decision, Decision::PromotedFirst);
    (reg, r)
}

/// Writes the tiny fixture with every label replaced by the next one: a model trained on it
/// is wrong about nearly everything.
fn mislabelled_csv(path: &Path) {
    let labels: Vec<String> = tiny_params().labels;
    let batches = data::read_source(&tiny_csv()).expect("read tiny");
    let (examples, _) = data::clean_labelled(&batches, &labels).expect("clean");
    let rows: Vec<(&str, &str)> =
        examples.iter().map(|e| (labels[(e.label + 1) % labels.len()].as_str(), e.text.as_str())).collect();
    write_csv(path, &rows);
}

fn train_and_register_bad(reg: &Registry, dir: &Path) -> Registered {
    let csv = dir.join("mislabelled.csv");
    mislabelled_csv(&csv);
    let cfg = train_config(vec![csv], vec![], dir.join("bad"), &tiny_params());
    let outcome = pipeline::train(&cfg).expect("bad model trains");
    registry::register(reg, &outcome.bundle_dir, &outcome.manifest).expect("register bad")
}

fn version_tag(reg: &Registry, version: &str, key: &str) -> Option<String> {
    let v = reg.block(reg.client().get_model_version(reg.model(), version)).expect("version");
    v.tag(key).map(str::to_owned)
}

fn alias(reg: &Registry, name: &str) -> Option<String> {
    let m = reg.block(reg.client().get_registered_model(reg.model())).expect("model");
    m.alias(name).map(str::to_owned)
}

#[test]
fn train_register_then_promote_first_and_an_equal_challenger() {
    let dir = tempfile::tempdir().expect("tmp");
    let reg = registry_for(&unique_name("stacktag"));
    let r1 = train_and_register(&reg, dir.path(), "a");
    assert_eq!(r1.version, "1");
    assert!(r1.source.starts_with("mlflow-artifacts:/") && r1.source.ends_with("/artifacts/bundle"), "{}", r1.source);
    assert_eq!(alias(&reg, aliases::CHALLENGER).as_deref(), Some("1"));

    // The run: params, metrics (per class too), tags and artifacts.
    let c = reg.client();
    let run = reg.block(c.get_run(&r1.run_id)).expect("run");
    let manifest: edge_classifier::api::ModelManifest =
        serde_json::from_slice(&fs::read(dir.path().join("a").join(files::MANIFEST)).expect("manifest")).expect("json");
    assert_eq!(run.tag(tags::DATA_SNAPSHOT), Some(manifest.data_snapshot.as_str()));
    assert_eq!(run.tag(tags::TRAINER_VERSION), Some(env!("CARGO_PKG_VERSION")));
    assert!(run.tag(tags::GIT_COMMIT).is_some_and(|c| !c.is_empty()));
    assert_eq!(run.metric("accuracy"), Some(manifest.metrics.accuracy));
    assert_eq!(run.metric("f1_python"), Some(manifest.metrics.per_class[3].f1));
    assert!(run.metric("support_csharp").is_some());
    assert_eq!(run.param("seed"), Some("7"));
    assert_eq!(run.param("model_name"), Some("stacktag-test"));
    let root: Vec<String> =
        reg.block(c.list_artifacts(&run.info.artifact_uri)).expect("list").into_iter().map(|f| f.path).collect();
    for expected in [BUNDLE_ARTIFACT_DIR, files::METRICS, files::CONFUSION_SVG] {
        assert!(root.iter().any(|p| p == expected), "{expected} missing from {root:?}");
    }
    let v1 = reg.block(c.get_model_version(reg.model(), "1")).expect("v1");
    assert_eq!(v1.run_id.as_deref(), Some(r1.run_id.as_str()));
    assert_eq!(v1.tag(tags::DATA_SNAPSHOT), Some(manifest.data_snapshot.as_str()));

    // No champion yet: the first valid version is promoted.
    let first = registry::promote(&reg, &gate_config()).expect("gate");
    assert_eq!(first.decision, Decision::PromotedFirst);
    assert_eq!(alias(&reg, aliases::CHAMPION).as_deref(), Some("1"));
    assert_eq!(version_tag(&reg, "1", tags::DECISION).as_deref(), Some("promoted_first"));
    assert_eq!(version_tag(&reg, "1", tags::CHAMPION_VERSION).as_deref(), Some("none"));
    assert_eq!(version_tag(&reg, "1", tags::PREVIOUS_CHAMPION).as_deref(), Some("none"));

    // Gating the champion again changes nothing.
    assert_eq!(registry::promote(&reg, &gate_config()).expect("gate").decision, Decision::AlreadyChampion);

    // The same training again scores the same: equal passes a zero margin.
    let r2 = train_and_register(&reg, dir.path(), "b");
    assert_eq!(r2.version, "2");
    // ...but not a margin: an equal macro-F1 is refused when 0.01 more is required.
    let strict = gate_with(GateMetric::MacroF1, 0.01, false, None);
    let refused = registry::promote(&reg, &strict).expect("gate");
    assert_eq!(refused.decision, Decision::Rejected, "{}", refused.reason);
    assert!(refused.reason.contains("macro_f1"), "{}", refused.reason);
    assert_eq!(version_tag(&reg, "2", tags::MARGIN).as_deref(), Some("0.01"));
    assert_eq!(alias(&reg, aliases::CHAMPION).as_deref(), Some("1"));
    let second = registry::promote(&reg, &gate_config()).expect("gate");
    assert_eq!(second.decision, Decision::Promoted, "{}", second.reason);
    assert_eq!(second.challenger_score, second.champion_score);
    assert_eq!(alias(&reg, aliases::CHAMPION).as_deref(), Some("2"));
    assert_eq!(version_tag(&reg, "2", tags::CHAMPION_VERSION).as_deref(), Some("1"));
    assert_eq!(version_tag(&reg, "2", tags::PREVIOUS_CHAMPION).as_deref(), Some("1"));
    assert_eq!(version_tag(&reg, "2", tags::METRIC).as_deref(), Some("accuracy"));
    let score: f64 = version_tag(&reg, "2", tags::CHALLENGER_SCORE).expect("score").parse().expect("number");
    assert!((score - second.challenger_score.expect("scored")).abs() < 1e-12);
}

#[test]
fn the_gate_refuses_a_worse_model_and_records_why() {
    let dir = tempfile::tempdir().expect("tmp");
    let reg = registry_for(&unique_name("stacktag"));
    train_and_register(&reg, dir.path(), "good");
    assert_eq!(registry::promote(&reg, &gate_config()).expect("gate").decision, Decision::PromotedFirst);

    let bad = train_and_register_bad(&reg, dir.path());
    let refused = registry::promote(&reg, &gate_config()).expect("gate");
    assert_eq!(refused.decision, Decision::Rejected, "{}", refused.reason);
    let (chal, champ) = (refused.challenger_score.expect("scored"), refused.champion_score.expect("scored"));
    assert!(chal < champ, "challenger {chal} champion {champ}");
    assert_eq!(alias(&reg, aliases::CHAMPION).as_deref(), Some("1"), "champion unchanged");
    assert_eq!(alias(&reg, aliases::CHALLENGER).as_deref(), Some(bad.version.as_str()));
    assert_eq!(version_tag(&reg, &bad.version, tags::DECISION).as_deref(), Some("rejected"));
    assert_eq!(version_tag(&reg, &bad.version, tags::CHAMPION_VERSION).as_deref(), Some("1"));
    assert_eq!(version_tag(&reg, &bad.version, tags::FORCED).as_deref(), Some("false"));
    let reason = version_tag(&reg, &bad.version, tags::REASON).expect("reason");
    assert!(reason.contains("accuracy") && reason.contains('<'), "{reason}");

    // --force overrides, and says so.
    let forced = registry::promote(&reg, &forced()).expect("gate");
    assert_eq!(forced.decision, Decision::Forced);
    assert_eq!(alias(&reg, aliases::CHAMPION).as_deref(), Some(bad.version.as_str()));
    assert_eq!(version_tag(&reg, &bad.version, tags::DECISION).as_deref(), Some("forced"));
    assert_eq!(version_tag(&reg, &bad.version, tags::FORCED).as_deref(), Some("true"));
}

#[test]
fn the_gate_refuses_a_model_with_other_labels_whose_scores_do_not_compare() {
    let dir = tempfile::tempdir().expect("tmp");
    let reg = registry_for(&unique_name("stacktag"));
    train_and_register(&reg, dir.path(), "four");
    registry::promote(&reg, &gate_config()).expect("gate v1");
    let mut two = tiny_params();
    two.labels = vec!["java".into(), "python".into()];
    let cfg = train_config(vec![tiny_csv()], vec![], dir.path().join("two"), &two);
    let outcome = pipeline::train(&cfg).expect("two-label model trains");
    registry::register(&reg, &outcome.bundle_dir, &outcome.manifest).expect("register");
    let refused = registry::promote(&reg, &gate_config()).expect("gate");
    assert_eq!(refused.decision, Decision::Rejected);
    assert!(refused.reason.contains("labels differ"), "{}", refused.reason);
    assert_eq!(alias(&reg, aliases::CHAMPION).as_deref(), Some("1"));
}

#[test]
fn a_corrupt_bundle_is_never_promoted_even_with_force() {
    let dir = tempfile::tempdir().expect("tmp");
    let reg = registry_for(&unique_name("stacktag"));
    let r = train_and_register(&reg, dir.path(), "a");
    // Overwrite the registered model file behind the registry's back.
    let run = reg.block(reg.client().get_run(&r.run_id)).expect("run");
    reg.block(reg.client().upload_artifact(&run.info.artifact_uri, "bundle/model.onnx", b"not onnx".to_vec()))
        .expect("overwrite");
    let outcome = registry::promote(&reg, &forced()).expect("gate");
    assert_eq!(outcome.decision, Decision::RejectedInvalid);
    assert!(outcome.reason.contains(files::MODEL), "{}", outcome.reason);
    assert_eq!(alias(&reg, aliases::CHAMPION), None);
    assert_eq!(version_tag(&reg, &r.version, tags::DECISION).as_deref(), Some("rejected_invalid"));
}

#[test]
fn a_version_whose_files_are_missing_is_rejected_as_invalid() {
    let reg = registry_for(&unique_name("stacktag"));
    let c = reg.client();
    let exp = reg.block(c.get_or_create_experiment(&reg.registry().config().experiment)).expect("exp");
    let run = reg.block(c.create_run(&exp, None, &[])).expect("run");
    reg.block(c.get_or_create_registered_model(reg.model())).expect("model");
    let source = format!("{}/bundle", run.artifact_uri);
    let v = reg.block(c.create_model_version(reg.model(), &source, Some(&run.run_id), &[])).expect("version");
    reg.block(c.set_alias(reg.model(), aliases::CHALLENGER, &v.version)).expect("alias");
    let outcome = registry::promote(&reg, &forced()).expect("gate");
    assert_eq!(outcome.decision, Decision::RejectedInvalid);
    assert!(outcome.reason.contains("no bundle files"), "{}", outcome.reason);
    assert_eq!(alias(&reg, aliases::CHAMPION), None);
}

#[test]
fn rollback_returns_champion_to_the_previous_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let reg = registry_for(&unique_name("stacktag"));
    train_and_register(&reg, dir.path(), "a");
    registry::promote(&reg, &gate_config()).expect("gate v1");
    train_and_register(&reg, dir.path(), "b");
    assert_eq!(registry::promote(&reg, &gate_config()).expect("gate v2").decision, Decision::Promoted);
    assert_eq!(alias(&reg, aliases::CHAMPION).as_deref(), Some("2"));

    let back = registry::rollback(&reg).expect("rollback");
    assert_eq!((back.from_version.as_str(), back.to_version.as_str()), ("2", "1"));
    assert_eq!(alias(&reg, aliases::CHAMPION).as_deref(), Some("1"));
    assert_eq!(alias(&reg, aliases::CHALLENGER), None, "the rolled-back challenger is not gated again");
    assert!(version_tag(&reg, "2", tags::ROLLED_BACK).expect("tag").starts_with("rolled back to version 1"));
    assert!(version_tag(&reg, "1", tags::RESTORED).expect("tag").starts_with("restored from version 2"));

    // A rolled-back version needs --force to come back.
    let again = registry::promote(&reg, &gate_with(GateMetric::Accuracy, 0.0, false, Some("2"))).expect("gate");
    assert_eq!(again.decision, Decision::Rejected);
    assert!(again.reason.contains("rolled back"), "{}", again.reason);

    // Version 1 was the first champion: there is nothing before it.
    let err = registry::rollback(&reg).expect_err("nothing before v1");
    assert!(format!("{err:#}").contains("has no previous champion"), "{err:#}");
}

#[test]
fn retrain_skips_unchanged_data_and_gates_new_batches() {
    let dir = tempfile::tempdir().expect("tmp");
    let reg = registry_for(&unique_name("stacktag"));
    let labels = tiny_params().labels;
    let batches = data::read_source(&tiny_csv()).expect("read");
    let (examples, _) = data::clean_labelled(&batches, &labels).expect("clean");
    let (mut eval, mut first, mut second, mut later) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, e) in examples.iter().enumerate() {
        let row = (labels[e.label].as_str(), e.text.as_str());
        match i % 5 {
            0 => eval.push(row),
            1 | 2 => first.push(row),
            3 => second.push(row),
            _ => later.push(row),
        }
    }
    let batches_dir = dir.path().join("batches");
    fs::create_dir_all(&batches_dir).expect("mkdir");
    write_csv(&batches_dir.join("0001.csv"), &first);
    write_csv(&batches_dir.join("0002.csv"), &second);
    let eval_csv = dir.path().join("eval.csv");
    write_csv(&eval_csv, &eval);
    let gate_cfg = gate_config().gate;
    let train_cfg = |out: &str| {
        train_config(vec![batches_dir.clone()], vec![eval_csv.clone()], dir.path().join(out), &tiny_params())
    };

    let Retrain::Trained { judged, registered, gate: outcome } =
        retrain::retrain(&reg, &train_cfg("r1"), &gate_cfg).expect("retrain 1")
    else {
        panic!("an empty registry must train");
    };
    assert_eq!((registered.version.as_str(), outcome.decision), ("1", Decision::PromotedFirst));
    assert!(matches!(&judged, Judgement::NotJudged { reason } if reason.contains("no champion")), "{judged:?}");

    match retrain::retrain(&reg, &train_cfg("r2"), &gate_cfg).expect("retrain 2") {
        Retrain::Skipped { version, reason, .. } => {
            assert_eq!(version, "1");
            assert!(reason.contains("unchanged since champion version 1"), "{reason}");
        }
        other => panic!("unchanged data must not retrain: {other:?}"),
    }
    assert!(!dir.path().join("r2").exists(), "nothing was trained");

    write_csv(&batches_dir.join("0003.csv"), &later);
    // Whether more data scores better on 20 tiny rows is not this test's question: a margin of
    // -1 promotes any valid challenger, so the decision is known.
    let lenient = gate_with(GateMetric::Accuracy, -1.0, false, None).gate;
    let Retrain::Trained { judged, registered, gate: outcome } =
        retrain::retrain(&reg, &train_cfg("r3"), &lenient).expect("retrain 3")
    else {
        panic!("a new batch must retrain");
    };
    // Before training on 0003.csv, champion 1 (trained up to 0002.csv) answered it: the figures
    // are on its version as one tag and in a run, and they are what the gate's own scoring says
    // of its bundle on that file.
    let Judgement::Judged { version, run_id, batches, questions, accuracy, .. } = &judged else {
        panic!("the champion must be judged on the new batch: {judged:?}");
    };
    assert_eq!((version.as_str(), *batches, *questions), ("1", 1, later.len() as u64));
    let champion_bundle = trainer::pipeline::load_bundle(&dir.path().join("r1")).expect("bundle 1");
    let on_later =
        data::EvalSet::read(&[batches_dir.join("0003.csv")]).expect("read").score(&champion_bundle).expect("score");
    assert_eq!(*accuracy, on_later.evaluation.accuracy);
    let tag = version_tag(&reg, "1", tags::ARRIVALS).expect("the champion carries its judgement");
    let summary: serde_json::Value = serde_json::from_str(&tag).expect("json");
    assert_eq!(summary["questions"], later.len());
    assert_eq!(summary["last_batch"], "0003.csv");
    assert_eq!(summary["run_id"], run_id.as_str());
    let share = |l: &str| later.iter().filter(|(label, _)| *label == l).count() as f64 / later.len() as f64;
    for l in &labels {
        assert_eq!(summary["label_mix"][l.as_str()].as_f64(), Some(share(l)), "{summary}");
    }
    let run = reg.block(reg.client().get_run(run_id)).expect("the judgement's run");
    assert_eq!(run.tag(tags::RUN_KIND), Some("arrivals"));
    assert_eq!(run.param("since_batch"), Some("0002.csv"));
    assert_eq!(registered.version, "2");
    assert_eq!(outcome.decision, Decision::Promoted, "{outcome:?}");
    assert_eq!(alias(&reg, aliases::CHAMPION).as_deref(), Some("2"));
    assert_eq!(outcome.champion_version.as_deref(), Some("1"));
    assert!(version_tag(&reg, "2", tags::DECISION).is_some());

    // The champion's snapshot: nothing to do, no duplicate version.
    assert!(matches!(retrain::retrain(&reg, &train_cfg("r4"), &gate_cfg).expect("retrain 4"), Retrain::Skipped { .. }));
    assert_eq!(reg.block(reg.client().model_versions(reg.model())).expect("versions").len(), 2);
}

#[test]
fn retrain_skips_a_snapshot_the_gate_already_rejected() {
    let dir = tempfile::tempdir().expect("tmp");
    let reg = registry_for(&unique_name("stacktag"));
    train_and_register(&reg, dir.path(), "good");
    // Half the rows to evaluate on; the other half, every label shifted by one, to train on:
    // scored on the true labels, that model is wrong nearly everywhere, so the gate rejects
    // it for certain.
    let labels = tiny_params().labels;
    let batches = data::read_source(&tiny_csv()).expect("read");
    let (examples, _) = data::clean_labelled(&batches, &labels).expect("clean");
    let (mut eval, mut wrong) = (Vec::new(), Vec::new());
    for (i, e) in examples.iter().enumerate() {
        match i % 2 {
            0 => eval.push((labels[e.label].as_str(), e.text.as_str())),
            _ => wrong.push((labels[(e.label + 1) % labels.len()].as_str(), e.text.as_str())),
        }
    }
    let eval_csv = dir.path().join("eval.csv");
    write_csv(&eval_csv, &eval);
    let gate = GateConfig { eval: vec![eval_csv.clone()], ..gate_config() };
    assert_eq!(registry::promote(&reg, &gate).expect("gate v1").decision, Decision::PromotedFirst);
    let bad = dir.path().join("batches");
    fs::create_dir_all(&bad).expect("mkdir");
    write_csv(&bad.join("0001.csv"), &wrong);
    let cfg = |out: &str| train_config(vec![bad.clone()], vec![eval_csv.clone()], dir.path().join(out), &tiny_params());
    let Retrain::Trained { registered, gate, .. } =
        retrain::retrain(&reg, &cfg("r1"), &gate_config().gate).expect("retrain")
    else {
        panic!("new data must train");
    };
    assert_eq!((registered.version.as_str(), gate.decision), ("2", Decision::Rejected), "{}", gate.reason);
    match retrain::retrain(&reg, &cfg("r2"), &gate_config().gate).expect("retrain again") {
        Retrain::Skipped { version, reason, .. } => {
            assert_eq!(version, "2");
            assert!(reason.contains("already decided on (rejected)"), "{reason}");
        }
        other => panic!("a rejected snapshot must not be trained again: {other:?}"),
    }
    assert!(!dir.path().join("r2").exists(), "nothing was trained");
    assert_eq!(reg.block(reg.client().model_versions(reg.model())).expect("versions").len(), 2);
    assert_eq!(alias(&reg, aliases::CHAMPION).as_deref(), Some("1"));
}

#[test]
fn a_promotion_cut_short_is_finished_or_decided_again_never_skipped() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = unique_name("stacktag");
    let direct = registry_for(&model);
    let faults = FaultServer::start(Some(MlflowServer::shared().url()), []).expect("fault server");
    let via_faults = registry_on(ClientConfig::new(faults.url()).expect("url").with_retry(fast_retry()), &model);
    // Half the rows to evaluate on; the other half to train on, with the true labels (good) or
    // every label shifted by one (bad: a worse model, which only `--force` promotes).
    let labels = tiny_params().labels;
    let batches = data::read_source(&tiny_csv()).expect("read");
    let (examples, _) = data::clean_labelled(&batches, &labels).expect("clean");
    let (mut eval, mut good, mut bad) = (Vec::new(), Vec::new(), Vec::new());
    for (i, e) in examples.iter().enumerate() {
        match i % 2 {
            0 => eval.push((labels[e.label].as_str(), e.text.as_str())),
            _ => {
                good.push((labels[e.label].as_str(), e.text.as_str()));
                bad.push((labels[(e.label + 1) % labels.len()].as_str(), e.text.as_str()));
            }
        }
    }
    let (eval_csv, good_csv, bad_csv) =
        (dir.path().join("eval.csv"), dir.path().join("good.csv"), dir.path().join("bad.csv"));
    write_csv(&eval_csv, &eval);
    write_csv(&good_csv, &good);
    write_csv(&bad_csv, &bad);
    let cfg = |data: &Path, out: &str| {
        train_config(vec![data.to_owned()], vec![eval_csv.clone()], dir.path().join(out), &tiny_params())
    };
    let gate = gate_config().gate;

    // 1. MLflow refuses the alias move: the evidence is written, `champion` did not move.
    faults.fail_matching(r#""alias":"champion""#, Fault::Status(403), 1);
    let err = retrain::retrain(&via_faults, &cfg(&good_csv, "r1"), &gate).expect_err("the alias move failed");
    assert!(format!("{err:#}").contains("cannot point `champion`"), "{err:#}");
    assert_eq!(alias(&direct, aliases::CHAMPION), None);
    assert_eq!(version_tag(&direct, "1", tags::DECISION), None, "no decision took effect");
    assert_eq!(version_tag(&direct, "1", tags::PENDING_DECISION).as_deref(), Some("promoted_first"));

    // The next round gates that version again instead of skipping its data (or training it twice).
    match retrain::retrain(&direct, &cfg(&good_csv, "r2"), &gate).expect("retrain after the fault") {
        Retrain::Regated { version, reason, gate, .. } => {
            assert_eq!((version.as_str(), gate.decision), ("1", Decision::PromotedFirst), "{reason}");
            assert!(reason.contains("cut short"), "{reason}");
        }
        other => panic!("a promotion cut short must be decided again: {other:?}"),
    }
    assert!(!dir.path().join("r2").exists(), "nothing was trained");
    assert_eq!(alias(&direct, aliases::CHAMPION).as_deref(), Some("1"));
    assert_eq!(version_tag(&direct, "1", tags::DECISION).as_deref(), Some("promoted_first"));
    assert!(matches!(retrain::retrain(&direct, &cfg(&good_csv, "r3"), &gate).expect("r3"), Retrain::Skipped { .. }));

    // 2. The alias moves but the decision tag after it is lost: the promotion took effect, and
    // the next gate run on the version writes the decision it left pending.
    let bad = bad_csv.clone();
    faults.fail_matching(r#""stacktag.gate.decision""#, Fault::Status(403), 1);
    let err = retrain::retrain(&via_faults, &cfg(&bad, "r4"), &forced().gate).expect_err("the decision tag failed");
    assert!(format!("{err:#}").contains("now points at version 2"), "{err:#}");
    assert_eq!(alias(&direct, aliases::CHAMPION).as_deref(), Some("2"));
    assert_eq!(version_tag(&direct, "2", tags::DECISION), None);
    match retrain::retrain(&direct, &cfg(&bad, "r5"), &forced().gate).expect("r5") {
        Retrain::Skipped { version, .. } => assert_eq!(version, "2"),
        other => panic!("the champion's own data must not be trained or gated again: {other:?}"),
    }
    let finished =
        registry::promote(&direct, &gate_with(GateMetric::Accuracy, 0.0, false, Some("2"))).expect("gate v2");
    assert_eq!(finished.decision, Decision::AlreadyChampion);
    assert_eq!(version_tag(&direct, "2", tags::DECISION).as_deref(), Some("forced"));
    assert_eq!(reg_versions(&direct), 2, "no version was registered twice");
}

fn reg_versions(reg: &Registry) -> usize {
    reg.block(reg.client().model_versions(reg.model())).expect("versions").len()
}

#[test]
fn a_transport_failure_during_the_gate_decides_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = unique_name("stacktag");
    let direct = registry_for(&model);
    let r = train_and_register(&direct, dir.path(), "a");
    // The gate reads the model and the version, then lists the bundle's files: that listing
    // and all its retries meet a dropped connection.
    let faults = FaultServer::start(
        Some(MlflowServer::shared().url()),
        [Fault::Forward, Fault::Forward, Fault::Drop, Fault::Drop, Fault::Drop, Fault::Drop],
    )
    .expect("fault server");
    let via_faults = registry_on(ClientConfig::new(faults.url()).expect("url").with_retry(fast_retry()), &model);
    let err = registry::promote(&via_faults, &gate_config()).expect_err("an unreachable bundle is an error");
    assert!(format!("{err:#}").contains(&format!("cannot download version {} of `{model}`", r.version)), "{err:#}");
    assert_eq!(version_tag(&direct, &r.version, tags::DECISION), None, "no decision was recorded");
    assert_eq!(alias(&direct, aliases::CHAMPION), None);
    // Once MLflow answers again, the same version is gated normally.
    assert_eq!(registry::promote(&direct, &gate_config()).expect("gate").decision, Decision::PromotedFirst);
}

#[test]
fn mlflow_itself_loads_the_champion_as_an_onnx_model() {
    let dir = tempfile::tempdir().expect("tmp");
    let (reg, _) = tiny_champion(dir.path());
    let python = mlflow_client::testing::tools().python;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/load_champion.py");
    let o = Command::new(&python)
        .arg(&script)
        .arg(MlflowServer::shared().url())
        .arg(format!("models:/{}@{}", reg.model(), aliases::CHAMPION))
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .output()
        .expect("run the venv's python");
    assert!(o.status.success(), "mlflow.onnx.load_model failed: {}", text(&o));
    let outputs = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        outputs.split_whitespace().collect::<Vec<_>>(),
        ["probabilities", "contributions", "scales"],
        "{}",
        text(&o)
    );
    // The bundle itself is untouched by the extra file: it still verifies and loads.
    let v = reg.block(reg.client().get_model_version(reg.model(), "1")).expect("v1");
    let got =
        reg.block(model_registry::download_verified(reg.registry(), &v, &dir.path().join("dl"))).expect("download");
    assert!(got.classifier.is_ok(), "{:?}", got.classifier.err());
    // Stacktag fetches only what the manifest lists: the MLmodel is MLflow's, not the bundle's.
    assert!(!dir.path().join("dl").join(model_registry::MLMODEL).exists());
}

/// Issue 28: MLflow users score text with the registered champion, in the venv's Python,
/// through MLflow's own `pyfunc.load_model(...).predict(DataFrame)` and `mlflow models serve`'s
/// `/invocations`, and get what the edge answers: the same labels, unsure flags and
/// explanations, probabilities within 1e-6. A bundle of the oldest format the core reads,
/// registered today, answers through the flavor as the edge answers it.
#[test]
fn mlflow_users_score_text_with_the_champion_as_the_edge_answers() {
    let dir = tempfile::tempdir().expect("tmp");
    let (reg, r) = tiny_champion(dir.path());
    let mut texts: Vec<String> =
        data::clean_labelled(&data::read_source(&tiny_csv()).expect("read"), &tiny_params().labels)
            .expect("clean")
            .0
            .into_iter()
            .map(|e| e.text)
            .collect();
    // Text no question is made of, and the longest the edge takes.
    texts.extend([
        "x".repeat(60_000),
        "\u{0}\u{7f}\u{feff} <br> Map<String, List<Integer>>".into(),
        "日本語 🦀".into(),
    ]);
    let answer =
        score_as_mlflow_users(&venv_python(), &format!("models:/{}@{}", reg.model(), aliases::CHAMPION), &texts, true);
    // MLflow's client reads the signature the registry wrote: text in, the edge's fields out.
    let names = |key: &str| -> Vec<String> {
        answer["signature"][key]
            .as_array()
            .expect(key)
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_owned())
            .collect()
    };
    assert_eq!(names("inputs"), ["text"]);
    assert_eq!(names("outputs"), ["label", "probabilities", "unsure", "truncated", "explanation", "model"]);
    // A text the core refuses is named by its row in the caller's DataFrame, past the first
    // batch of 1,024 the flavor sends, with the edge's error code.
    let mut long: Vec<String> = (0..1_030).map(|i| format!("question {i}: how do I sort a list?")).collect();
    long[1_029] = "   ".into();
    let refused =
        score_as_mlflow_users(&venv_python(), &format!("models:/{}@{}", reg.model(), aliases::CHAMPION), &long, false);
    assert_eq!(refused["error"]["code"], "empty_text", "{refused}");
    assert!(refused["error"]["message"].as_str().is_some_and(|m| m.starts_with("`texts[1029]`")), "{refused}");
    // `pyfunc.predict` in a notebook's way, and `mlflow models serve`'s `/invocations`.
    let native = native_classifier(&reg, &r.version, &dir.path().join("native"));
    assert_answers_as_the_edge(&native, &texts, &answer["predictions"], &r.version);
    assert_answers_as_the_edge(&native, &texts, &answer["served"], &r.version);

    // Format 1 (token ids, normalisation 1, no calibration): the golden bundle, as old
    // versions hold it.
    let legacy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../edge-classifier/tests/fixtures/tiny-legacy");
    let manifest: edge_classifier::api::ModelManifest =
        serde_json::from_slice(&fs::read(legacy.join(files::MANIFEST)).expect("read")).expect("manifest");
    let old = registry::register(&reg, &legacy, &manifest).expect("register");
    let answer =
        score_as_mlflow_users(&venv_python(), &format!("models:/{}/{}", reg.model(), old.version), &texts, false);
    let native = native_classifier(&reg, &old.version, &dir.path().join("legacy"));
    assert_answers_as_the_edge(&native, &texts, &answer["predictions"], &old.version);
}

/// Issue 28: a user with nothing but a Python and the registry: a fresh venv gets what the
/// champion's environment says it needs (`mlflow.pyfunc.get_model_dependencies`, pip from
/// PyPI), then scores text with it as the edge answers.
#[test]
fn a_fresh_venv_scores_the_champion_from_the_registry_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    let (reg, r) = tiny_champion(dir.path());
    let uri = format!("models:/{}@{}", reg.model(), aliases::CHAMPION);
    let python = mlflow_client::testing::tools().python;
    let run = |command: &mut Command, what: &str| -> Output {
        let o = command.env("MLFLOW_DISABLE_TELEMETRY", "true").output().expect(what);
        assert!(o.status.success(), "{what} failed: {}", text(&o));
        o
    };
    let deps = run(
        Command::new(&python)
            .args(["-c", "import sys, mlflow.pyfunc as p; print(p.get_model_dependencies(sys.argv[1]))", &uri])
            .env("MLFLOW_TRACKING_URI", MlflowServer::shared().url()),
        "get_model_dependencies",
    );
    let requirements = String::from_utf8_lossy(&deps.stdout).lines().last().expect("a path").trim().to_owned();
    let pinned = fs::read_to_string(&requirements).expect("requirements");
    assert!(pinned.lines().any(|l| l.starts_with("wasmtime==")), "{pinned}");
    let venv = dir.path().join("venv");
    run(Command::new(&python).args(["-m", "venv"]).arg(&venv), "python -m venv");
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            &requirements,
        ]),
        "pip install -r the model's requirements",
    );
    let texts: Vec<String> = ["how do I read a file line by line in python?", "public static void main(String[] args)"]
        .map(str::to_owned)
        .to_vec();
    let answer = score_as_mlflow_users(&venv.join("bin/python"), &uri, &texts, false);
    let native = native_classifier(&reg, &r.version, &dir.path().join("native"));
    assert_answers_as_the_edge(&native, &texts, &answer["predictions"], &r.version);
}

/// `trainer/tests/fixtures/score_champion.py`'s answer, run by `python`, for `texts` with the
/// model at `uri` (`serve`: through `mlflow models serve` too).
fn score_as_mlflow_users(python: &Path, uri: &str, texts: &[String], serve: bool) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/score_champion.py");
    let mut command = Command::new(python);
    command.arg(&script).arg(MlflowServer::shared().url()).arg(uri);
    if !serve {
        command.arg("--no-serve");
    }
    let mut child = command
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", python.display()));
    serde_json::to_writer(child.stdin.take().expect("stdin"), texts).expect("texts");
    let o = child.wait_with_output().expect("python");
    assert!(o.status.success(), "scoring {uri} failed: {}", text(&o));
    serde_json::from_slice(&o.stdout).expect("json")
}

/// The venv's Python (scripts/setup.sh), MLflow's client in it.
fn venv_python() -> std::path::PathBuf {
    mlflow_client::testing::tools().python
}

/// The native core with the bundle of `version`, as registry-sync downloads it.
fn native_classifier(reg: &Registry, version: &str, dest: &Path) -> edge_classifier::Classifier {
    let v = reg.block(reg.client().get_model_version(reg.model(), version)).expect("version");
    reg.block(model_registry::download_verified(reg.registry(), &v, dest)).expect("download").classifier.expect("loads")
}

/// Each of `rows` (the flavor's answers, one per text) is what `native` answers for its text.
fn assert_answers_as_the_edge(
    native: &edge_classifier::Classifier,
    texts: &[String],
    rows: &serde_json::Value,
    version: &str,
) {
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), texts.len());
    for (text, row) in texts.iter().zip(rows) {
        let edge = native.classify(text).expect("classifies");
        let what: String = text.chars().take(40).collect();
        assert_eq!(row["label"], edge.label.as_str(), "{what:?}");
        assert_eq!(row["unsure"], serde_json::to_value(edge.unsure).expect("json"), "{what:?}");
        assert_eq!(row["truncated"], edge.truncated, "{what:?}");
        assert_eq!(row["model"]["version"], version, "the version names itself");
        let probabilities = row["probabilities"].as_array().expect("probabilities");
        assert_eq!(probabilities.len(), edge.probabilities.len());
        for (p, e) in probabilities.iter().zip(&edge.probabilities) {
            assert_eq!(p["label"], e.label.as_str());
            let diff = (p["probability"].as_f64().expect("number") - f64::from(e.probability)).abs();
            assert!(diff <= 1e-6, "{what:?}: {} differs by {diff}", e.label);
        }
        let tokens: Vec<&str> = row["explanation"]
            .as_array()
            .expect("explanation")
            .iter()
            .map(|t| t["token"].as_str().expect("token"))
            .collect();
        let edge_tokens: Vec<&str> = edge.explanation.iter().map(|t| t.token.as_str()).collect();
        assert_eq!(tokens, edge_tokens, "{what:?}");
    }
}

#[test]
fn cli_works_with_basic_auth_and_names_refused_credentials_without_printing_them() {
    const ADMIN_PASSWORD: &str = "Adm1n-NEVER-PRINT-7781";
    let server = MlflowServer::start_with_basic_auth(ADMIN_PASSWORD).expect("basic-auth server");
    let dir = tempfile::tempdir().expect("tmp");
    let (experiment, model) = (unique_name("exp"), unique_name("stacktag"));
    let tiny = tiny_csv();
    let out = dir.path().join("bundle");
    let with_password = |args: &[&str], password: &str| {
        Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args(args)
            .env("MLFLOW_TRACKING_URI", server.url())
            .env("MLFLOW_TRACKING_USERNAME", "admin")
            .env("MLFLOW_TRACKING_PASSWORD", password)
            .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            .env("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0.01")
            .env_remove("MLFLOW_TRACKING_TOKEN")
            .env_remove("STACKTAG_DATA")
            .env_remove("STACKTAG_EVAL")
            .output()
            .expect("run trainer")
    };
    let o = with_password(&train_args(path(&tiny), path(&out), &experiment, &model), ADMIN_PASSWORD);
    assert!(o.status.success(), "{}", text(&o));
    let o = with_password(&["promote", "--registered-model", &model, "--eval", path(&tiny), "--json"], ADMIN_PASSWORD);
    assert!(o.status.success(), "{}", text(&o));

    let wrong = "wrong-NEVER-PRINT-1234";
    let o = with_password(&["promote", "--registered-model", &model, "--eval", path(&tiny)], wrong);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("HTTP 401") && stderr.contains("MLFLOW_TRACKING_PASSWORD"), "{stderr}");
    assert!(!text(&o).contains(wrong) && !text(&o).contains(ADMIN_PASSWORD), "{}", text(&o));
    // Without credentials at all, the same clear refusal.
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["rollback", "--registered-model", &model])
        .env("MLFLOW_TRACKING_URI", server.url())
        .env_remove("MLFLOW_TRACKING_USERNAME")
        .env_remove("MLFLOW_TRACKING_PASSWORD")
        .env_remove("MLFLOW_TRACKING_TOKEN")
        .output()
        .expect("run trainer");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HTTP 401"), "{}", text(&o));
}

// ---- the binary: exit codes, messages, faults, secrets ------------------------------------

fn trainer(args: &[&str], tracking_uri: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .env("MLFLOW_TRACKING_URI", tracking_uri)
        .env("MLFLOW_TRACKING_TOKEN", TOKEN)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        .env("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0.01")
        .env_remove("STACKTAG_DATA")
        .env_remove("STACKTAG_EVAL")
        .output()
        .expect("run trainer")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn train_args<'a>(data: &'a str, out: &'a str, experiment: &'a str, model: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--data",
        data,
        "--out",
        out,
        "--register",
        "--experiment",
        experiment,
        "--registered-model",
        model,
    ];
    args.extend_from_slice(TINY_FLAGS);
    args
}

#[test]
fn cli_train_register_and_promote_survive_5xx_bursts_and_never_print_the_token() {
    let dir = tempfile::tempdir().expect("tmp");
    let real = MlflowServer::shared();
    let faults = FaultServer::start(Some(real.url()), [Fault::Status(503), Fault::Status(502), Fault::Status(503)])
        .expect("fault server");
    let (experiment, model) = (unique_name("exp"), unique_name("stacktag"));
    let tiny = tiny_csv();
    let out = dir.path().join("bundle");
    let o = trainer(&train_args(path(&tiny), path(&out), &experiment, &model), faults.url());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("registered version 1"), "{}", text(&o));
    assert!(!text(&o).contains(TOKEN));

    faults.push([Fault::Status(503), Fault::Status(500)]);
    let o = trainer(&["promote", "--registered-model", &model, "--eval", path(&tiny), "--json"], faults.url());
    assert!(o.status.success(), "{}", text(&o));
    let decision: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(decision["decision"], "promoted_first");
    assert!(!text(&o).contains(TOKEN));

    // A worse challenger: exit 0 by default, 3 with --fail-if-not-promoted.
    let bad_csv = dir.path().join("bad.csv");
    mislabelled_csv(&bad_csv);
    let bad_out = dir.path().join("bad");
    let o = trainer(&train_args(path(&bad_csv), path(&bad_out), &experiment, &model), real.url());
    assert!(o.status.success(), "{}", text(&o));
    let o = trainer(
        &["promote", "--registered-model", &model, "--eval", path(&tiny), "--fail-if-not-promoted"],
        real.url(),
    );
    assert_eq!(o.status.code(), Some(EXIT_NOT_PROMOTED), "{}", text(&o));
    assert!(text(&o).contains("not promoted"), "{}", text(&o));
    let o = trainer(&["promote", "--registered-model", &model, "--eval", path(&tiny)], real.url());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let o = trainer(&["rollback", "--registered-model", &model], real.url());
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("has no previous champion"), "{}", text(&o));
    assert!(!text(&o).contains(TOKEN));
}

#[test]
fn cli_retrain_twice_uses_every_eval_file_and_records_the_built_commit() {
    let dir = tempfile::tempdir().expect("tmp");
    let real = MlflowServer::shared();
    let (experiment, model) = (unique_name("exp"), unique_name("stacktag"));
    let labels = tiny_params().labels;
    let batches = data::read_source(&tiny_csv()).expect("read");
    let (examples, _) = data::clean_labelled(&batches, &labels).expect("clean");
    let (mut train, mut eval_a, mut eval_b) = (Vec::new(), Vec::new(), Vec::new());
    for (i, e) in examples.iter().enumerate() {
        let row = (labels[e.label].as_str(), e.text.as_str());
        match i % 4 {
            0 => eval_a.push(row),
            1 => eval_b.push(row),
            _ => train.push(row),
        }
    }
    let inbox = dir.path().join("inbox");
    fs::create_dir_all(&inbox).expect("mkdir");
    write_csv(&inbox.join("0001.csv"), &train);
    let (a, b) = (dir.path().join("eval-a.csv"), dir.path().join("eval-b.csv"));
    write_csv(&a, &eval_a);
    write_csv(&b, &eval_b);
    let out = dir.path().join("bundle");
    let mut args = vec![
        "retrain",
        "--data",
        path(&inbox),
        "--eval",
        path(&a),
        "--eval",
        path(&b),
        "--out",
        path(&out),
        "--experiment",
        &experiment,
        "--registered-model",
        &model,
        "--json",
    ];
    args.extend_from_slice(TINY_FLAGS);
    // Run from a directory that is not a checkout: the commit recorded is the one the
    // binary was built from, not the working directory's.
    let elsewhere = tempfile::tempdir().expect("tmp");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args(args)
            .current_dir(elsewhere.path())
            .env("MLFLOW_TRACKING_URI", real.url())
            .env_remove("STACKTAG_DATA")
            .env_remove("STACKTAG_EVAL")
            .output()
            .expect("run trainer")
    };
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let first: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(first["outcome"], "trained", "{first}");
    assert_eq!(first["gate"]["decision"], "promoted_first", "{first}");
    let reg = registry_for(&model);
    let run_id = first["registered"]["run_id"].as_str().expect("run id");
    let logged = reg.block(reg.client().get_run(run_id)).expect("run");
    // Both files: the evaluation set is every row of a and of b (a bundle evaluated on `a`
    // alone would count only its rows).
    assert_eq!(logged.metric("eval_examples"), Some((eval_a.len() + eval_b.len()) as f64));
    let manifest: edge_classifier::api::ModelManifest =
        serde_json::from_slice(&fs::read(out.join(files::MANIFEST)).expect("manifest")).expect("json");
    assert_eq!(manifest.metrics.examples, eval_a.len() + eval_b.len());
    let head =
        Command::new("git").args(["rev-parse", "HEAD"]).current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("git");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    assert_eq!(logged.tag(tags::GIT_COMMIT), Some(head.as_str()));

    // The same data again: nothing to do, exit 0, and no second version.
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let second: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(second["outcome"], "skipped", "{second}");
    assert!(second["reason"].as_str().expect("reason").contains("unchanged since champion version 1"), "{second}");
    let human: Vec<&str> = args.iter().copied().filter(|a| *a != "--json").collect();
    let o = run(&human);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("nothing to do: data snapshot unchanged"), "{}", text(&o));
    assert_eq!(reg.block(reg.client().model_versions(reg.model())).expect("versions").len(), 1);
}

#[test]
fn cli_unreachable_mlflow_fails_clearly_after_bounded_retries() {
    let url = format!("http://127.0.0.1:{}", free_port().expect("port"));
    let tiny = tiny_csv();
    let o = trainer(&["promote", "--eval", path(&tiny)], &url);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(&format!("failed to reach MLflow at `{url}/`")), "{stderr}");
    assert!(stderr.contains("(3 retries)") && stderr.contains("registered-models/get"), "{stderr}");
    assert!(!text(&o).contains(TOKEN));

    // Help shows where the URI comes from, never its value (it may carry a password).
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["promote", "--help"])
        .env("MLFLOW_TRACKING_URI", "http://ci:pw-SECRET@127.0.0.1:1")
        .env("MLFLOW_TRACKING_TOKEN", TOKEN)
        .output()
        .expect("help");
    assert!(o.status.success());
    assert!(text(&o).contains("MLFLOW_TRACKING_URI"));
    assert!(!text(&o).contains("pw-SECRET") && !text(&o).contains(TOKEN), "{}", text(&o));

    // Misconfiguration is named before anything runs.
    let o = trainer(&["rollback"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("MLFLOW_TRACKING_URI"), "{}", text(&o));
}

#[test]
fn every_subcommands_help_passes_clap_s_own_checks() {
    // A debug build of clap checks the whole command definition (conflicting names, bad
    // defaults) when it builds a command's help, and panics on an inconsistency.
    for sub in ["train", "evaluate", "bench", "latency", "promote", "rollback", "retrain"] {
        let o = Command::new(env!("CARGO_BIN_EXE_trainer")).args([sub, "--help"]).output().expect("help");
        assert!(o.status.success(), "`trainer {sub} --help`: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("Usage: trainer"), "{}", text(&o));
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The trainer signs what it registers (key and signer from the environment, as in CI), the
/// MLflow UI shows who signed, and a download checks the signature against trusted keys before
/// anything else: the reference verifier (`model_signing verify key`) agrees with it on the
/// same files.
#[test]
fn registered_bundles_are_signed_and_downloads_check_who_signed() {
    use model_registry::signing::env_vars as sig;
    use model_registry::{InvalidBundle, Signing, download_verified};

    let dir = tempfile::tempdir().expect("tmp");
    let key = model_registry::signing::PrivateKey::generate();
    let stranger = model_registry::signing::PrivateKey::generate();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        fs::write(&path, text).expect("write key");
        path.display().to_string()
    };
    let (key_file, trusted_file) =
        (write("signing.pem", key.to_pem()), write("trusted.pem", key.public_key().to_pem()));
    let stranger_file = write("stranger.pem", stranger.public_key().to_pem());
    let lookup =
        |pairs: Vec<(&'static str, String)>| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    let signing = Signing::from_lookup(lookup(vec![
        (sig::SIGNING_KEY_FILE, key_file),
        (sig::SIGNER, "trainer-it".into()),
        (sig::TRUSTED_KEYS, trusted_file.clone()),
    ]))
    .expect("signing from the environment");
    assert!(signing.required, "a trusted key makes a signature required");

    let model = unique_name("signed");
    let with = |signing: Signing| {
        let cfg = RegistryConfig {
            client: MlflowServer::shared().config(),
            experiment: unique_name("exp"),
            model: model.clone(),
            signing,
        };
        Registry::new(cfg).expect("registry")
    };
    let signed = with(signing);
    let r = train_and_register(&signed, dir.path(), "b1");
    let v1 = signed.block(signed.client().get_model_version(&model, &r.version)).expect("v1");
    assert_eq!(v1.tag(tags::SIGNATURE_KEY), Some(key.public_key().hint()), "{:?}", v1.tags);
    assert_eq!(v1.tag(tags::SIGNATURE_SIGNER), Some("trainer-it"));

    let dl = dir.path().join("dl1");
    let got = signed.block(download_verified(signed.registry(), &v1, &dl)).expect("download");
    assert!(got.classifier.is_ok(), "{:?}", got.classifier.err());
    assert_eq!(got.signed_by.as_deref(), Some(key.public_key().hint()));
    // The reference implementation accepts the same folder with the same key.
    let verifier = mlflow_client::testing::tools().python.with_file_name("model_signing");
    let o = Command::new(&verifier)
        .args(["verify", "key", "--public_key", &trusted_file, "--signature"])
        .arg(dl.join(model_registry::signing::SIGNATURE_FILE))
        .arg(&dl)
        .output()
        .expect("model_signing");
    assert!(o.status.success() && text(&o).contains("Verification succeeded"), "{}", text(&o));

    // Trusting only someone else: refused before the files are read, with the reason.
    let strangers = Signing {
        trusted: model_registry::signing::trusted_keys(&[stranger_file]).expect("keys"),
        required: true,
        ..Default::default()
    };
    let other = with(strangers.clone());
    let got = other.block(download_verified(other.registry(), &v1, &dir.path().join("dl2"))).expect("download");
    match got.classifier {
        Err(InvalidBundle::Signature(e)) => assert_eq!(e.reason(), "untrusted_key", "{e}"),
        other => panic!("expected an untrusted key, got {other:?}"),
    }

    // An unsigned version (a trainer with no key): refused where a signature is required,
    // served where none is asked for.
    let unsigned = with(Signing::default());
    let r2 = train_and_register(&unsigned, dir.path(), "b2");
    let v2 = unsigned.block(unsigned.client().get_model_version(&model, &r2.version)).expect("v2");
    assert_eq!(v2.tag(tags::SIGNATURE_KEY), None);
    let got = other.block(download_verified(other.registry(), &v2, &dir.path().join("dl3"))).expect("download");
    match got.classifier {
        Err(InvalidBundle::Signature(e)) => assert_eq!(e.reason(), "missing", "{e}"),
        other => panic!("expected a missing signature, got {other:?}"),
    }
    let got = unsigned.block(download_verified(unsigned.registry(), &v2, &dir.path().join("dl4"))).expect("download");
    assert!(got.classifier.is_ok() && got.signed_by.is_none());

    // A key that does not load is named, never printed.
    let err = Signing::from_lookup(lookup(vec![(sig::SIGNING_KEY, "-----BEGIN PRIVATE KEY-----\nnope\n".into())]))
        .expect_err("bad key");
    assert!(format!("{err:#}").contains(sig::SIGNING_KEY), "{err:#}");
    let err = Signing::from_lookup(lookup(vec![(sig::REQUIRE_SIGNATURE, "true".into())])).expect_err("no key");
    assert!(format!("{err:#}").contains("no trusted public key"), "{err:#}");
}
