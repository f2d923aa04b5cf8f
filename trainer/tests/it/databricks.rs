//! The trainer's registry path (register, the gate, rollback) against a loopback Databricks
//! workspace (`testing::DatabricksStandin`: Unity Catalog, MLflow-managed artifacts on a real
//! S3), and MLflow's own Python client reading what it wrote: the version, its alias, its
//! tags, its signature, and `mlflow.onnx.load_model("models:/…@champion")`. One test walks
//! the scenarios in turn: faults are set on the one shared stand-in.

use mlflow_client::RegistryApi;
use mlflow_client::testing::{DatabricksStandin, unique_name};
use model_registry::{Decision, RegistryConfig, aliases, tags};
use serde_json::{Value, json};
use trainer::registry::{self, Connection as Registry};

use crate::common::tiny_params;
use crate::registry::{gate_config, train_and_register};

const WHAT: [&str; 2] = ["--experiment", "--registered-model"];

/// MLflow's client, on `model@champion`: it must point at `version`, be READY, carry `tags`,
/// and load with `mlflow.onnx` and `mlflow.pyfunc`.
fn mlflow_reads(db: &DatabricksStandin, model: &str, version: &str, tags: &[(&str, &str)]) -> Value {
    let mut args =
        vec!["check", "--model", model, "--alias", aliases::CHAMPION, "--version", version, "--require-pyfunc"];
    let pairs: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for p in &pairs {
        args.extend(["--tag", p.as_str()]);
    }
    let seen = db.oracle(&args).unwrap_or_else(|e| panic!("MLflow's client disagrees: {e}\n{}", db.log_tail()));
    assert_eq!(seen["version"], version, "{seen}");
    seen
}

#[test]
fn the_registry_path_runs_on_databricks() {
    let db = DatabricksStandin::shared();
    let model = format!("main.stacktag.{}", unique_name("trainer").replace('-', "_"));
    let experiment = format!("/Shared/{}", unique_name("trainer"));

    // Refused before any call: names Databricks would refuse, a registry without aliases.
    let err = RegistryConfig::new(db.config(), &experiment, "stacktag.model", WHAT).expect_err("two levels");
    assert!(format!("{err:#}").contains("catalog.schema.model"), "{err:#}");
    let err = RegistryConfig::new(db.config(), "stacktag", &model, WHAT).expect_err("relative experiment");
    assert!(format!("{err:#}").contains("/Shared/stacktag"), "{err:#}");
    let workspace = db.config().with_registry(RegistryApi::DatabricksWorkspace);
    let err = RegistryConfig::new(workspace, &experiment, "stacktag", WHAT).expect_err("no aliases");
    assert!(format!("{err:#}").contains("databricks-uc"), "{err:#}");

    let reg = Registry::new(RegistryConfig::new(db.config(), &experiment, &model, WHAT).expect("config")).expect("reg");
    let dir = tempfile::tempdir().expect("dir");
    let first = train_and_register(&reg, dir.path(), "v1");
    assert!(first.source.starts_with("dbfs:/databricks/mlflow-tracking/"), "{}", first.source);
    let outcome = registry::promote(&reg, &gate_config()).expect("gate");
    assert_eq!(outcome.decision, Decision::PromotedFirst, "{}", outcome.reason);
    let seen = mlflow_reads(db, &model, &first.version, &[(tags::DECISION, "promoted_first")]);

    // The MLmodel's signature, as MLflow's client reads it back from Unity Catalog, is the
    // Python flavor's: text in, the edge's `Prediction` fields out (docs/mlflow-pyfunc.md).
    let names = |key: &str| -> Vec<String> {
        let text = seen["signature"][key].as_str().unwrap_or_else(|| panic!("signature {key}: {seen}"));
        let list: Vec<Value> = serde_json::from_str(text).expect("signature JSON");
        list.iter().map(|c| c["name"].as_str().expect("name").to_owned()).collect()
    };
    assert_eq!(names("inputs"), ["text"], "{seen}");
    assert_eq!(names("outputs"), ["label", "probabilities", "unsure", "truncated", "explanation", "model"], "{seen}");
    // The ONNX flavor's file is still the graph MLflow's client loads, and the Python flavor,
    // fetched from Unity Catalog's storage, answers a question with one of the model's labels.
    assert!(seen["onnx_outputs"].as_array().is_some_and(|o| !o.is_empty()), "{seen}");
    let labels = seen["pyfunc"]["labels"].as_array().unwrap_or_else(|| panic!("pyfunc labels: {seen}"));
    assert!(matches!(labels.as_slice(), [l] if tiny_params().labels.iter().any(|t| l == t.as_str())), "{seen}");

    // A second version wins on the same evaluation set; rollback returns to the first.
    let second = train_and_register(&reg, dir.path(), "v2");
    let outcome = registry::promote(&reg, &gate_config()).expect("gate");
    assert_eq!(outcome.decision, Decision::Promoted, "{}", outcome.reason);
    mlflow_reads(db, &model, &second.version, &[(tags::PREVIOUS_CHAMPION, &first.version)]);
    let back = registry::rollback(&reg).expect("rollback");
    assert_eq!(
        (back.from_version.as_str(), back.to_version.as_str()),
        (second.version.as_str(), first.version.as_str())
    );
    mlflow_reads(db, &model, &first.version, &[]);

    // Not the model's owner: the gate's alias move is refused, and champion stays.
    let third = train_and_register(&reg, dir.path(), "v3");
    reg.block(db.faults(json!({ "alias_forbidden": true })));
    let refused =
        registry::promote(&reg, &crate::registry::gate_with(model_registry::GateMetric::Accuracy, 0.0, true, None));
    reg.block(db.faults(json!({ "alias_forbidden": false })));
    let err = refused.expect_err("403 on the alias");
    assert!(format!("{err:#}").contains("PERMISSION_DENIED"), "{err:#}");
    mlflow_reads(db, &model, &first.version, &[]);
    assert_ne!(third.version, first.version);
}
