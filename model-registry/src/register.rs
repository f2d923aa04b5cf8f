//! Logging a trained bundle as an MLflow run and registering it as a new version.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use edge_classifier::api::{ModelManifest, files};
use mlflow_client::types::{Metric, Param, RunInfo, RunStatus, Tag};

use crate::names::{BUNDLE_ARTIFACT_DIR, aliases, tags};
use crate::registry::Registry;

/// Where a bundle came from, for the run's tags.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The git commit the trainer was built from (`unknown` when it was not built in a
    /// checkout).
    pub git_commit: String,
    /// The trainer's version.
    pub trainer_version: String,
}

/// What [`register`] created.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Registered {
    /// Registered model name.
    pub model: String,
    /// The new version.
    pub version: String,
    /// The run that logged it.
    pub run_id: String,
    /// Its experiment.
    pub experiment_id: String,
    /// The version's `source` (`mlflow-artifacts:/…/artifacts/bundle`).
    pub source: String,
}

/// Logs the bundle at `bundle_dir` (described by `manifest`) as a run, registers it as a new
/// version and points `challenger` at it. The run is marked FAILED if any step fails.
pub async fn register(
    reg: &Registry,
    bundle_dir: &Path,
    manifest: &ModelManifest,
    from: &Provenance,
) -> anyhow::Result<Registered> {
    let c = reg.client();
    let cfg = reg.config();
    let run_tags = vec![
        Tag::new(tags::GIT_COMMIT, &from.git_commit),
        Tag::new(tags::DATA_SNAPSHOT, &manifest.data_snapshot),
        Tag::new(tags::TRAINER_VERSION, &from.trainer_version),
        Tag::new("mlflow.source.name", "stacktag-trainer"),
        Tag::new("mlflow.source.type", "LOCAL"),
    ];
    let run_name = format!("train-{}", &manifest.data_snapshot[..manifest.data_snapshot.len().min(12)]);
    in_run(reg, &run_name, &run_tags, async |experiment_id, run| {
        let now = mlflow_client::now_ms();
        c.log_batch(&run.run_id, &metrics_of(manifest, now), &params_of(manifest), &[])
            .await
            .context("cannot log the run's params and metrics")?;
        // The version's files, staged once: the bundle and, beside it, the `MLmodel` that makes
        // it a plain MLflow Model. The run's artifacts and (on Unity Catalog) the version's
        // own storage get the same directory.
        let staging = tempfile::Builder::new()
            .prefix("stacktag-register-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let model_dir = staging.path().join(BUNDLE_ARTIFACT_DIR);
        copy_dir(bundle_dir, &model_dir).with_context(|| format!("cannot stage bundle `{}`", bundle_dir.display()))?;
        let onnx = std::fs::read(model_dir.join(files::MODEL)).context("cannot read the bundle's ONNX model")?;
        std::fs::write(model_dir.join(MLMODEL), mlmodel(&run.run_id, &onnx)?)
            .context("cannot stage the version's `MLmodel`")?;
        // A signature that came with the copied files is not this version's.
        remove_stale_signature(&model_dir)?;
        c.upload_dir(&run.artifact_uri, BUNDLE_ARTIFACT_DIR, &model_dir)
            .await
            .with_context(|| format!("cannot upload bundle `{}`", bundle_dir.display()))?;
        for name in [files::METRICS, files::CONFUSION_SVG] {
            let path = bundle_dir.join(name);
            if let Ok(bytes) = std::fs::read(&path) {
                c.upload_artifact(&run.artifact_uri, name, bytes)
                    .await
                    .with_context(|| format!("cannot upload `{}`", path.display()))?;
            }
        }
        let model = c
            .get_or_create_registered_model(&cfg.model)
            .await
            .with_context(|| format!("cannot open registered model `{}`", cfg.model))?;
        let source = format!("{}/{BUNDLE_ARTIFACT_DIR}", run.artifact_uri.trim_end_matches('/'));
        let mut version_tags = vec![
            Tag::new(tags::DATA_SNAPSHOT, &manifest.data_snapshot),
            Tag::new(tags::TRAINER_VERSION, &from.trainer_version),
            Tag::new(tags::ACCURACY, manifest.metrics.accuracy.to_string()),
            Tag::new(tags::MACRO_F1, manifest.metrics.macro_f1.to_string()),
        ];
        if let Some(key) = &cfg.signing.key {
            version_tags.push(Tag::new(tags::SIGNATURE_KEY, key.public_key().hint()));
            version_tags.push(Tag::new(tags::SIGNATURE_SIGNER, cfg.signing.signer.as_deref().unwrap_or("unnamed")));
        }
        // Once MLflow has numbered the version: the manifest names it, then the signature
        // covers exactly the files a reader fetches (the manifest and what it lists, not the
        // `MLmodel` beside them). A signed bundle so names its version, and cannot be served
        // as another one.
        let names = edge_classifier::bundle::file_names(manifest);
        let prepare: mlflow_client::Prepare = Box::new(|mv| {
            crate::stamp_version(&model_dir, &mv.version, true)?;
            cfg.signing.sign_dir(&model_dir, &cfg.model, &names).map(|_| ()).map_err(|e| format!("{e:#}"))
        });
        let version = c
            .create_model_version_with_files(
                &model.name,
                &source,
                Some(&run.run_id),
                &version_tags,
                &model_dir,
                Some(prepare),
            )
            .await
            .with_context(|| format!("cannot register a version of `{}`", cfg.model))?;
        c.set_alias(&model.name, aliases::CHALLENGER, &version.version).await.with_context(|| {
            format!("cannot point `{}` of `{}` at version {}", aliases::CHALLENGER, cfg.model, version.version)
        })?;
        anyhow::Ok(Registered {
            model: model.name,
            version: version.version,
            run_id: run.run_id.clone(),
            experiment_id: experiment_id.to_owned(),
            source,
        })
    })
    .await
}

/// Starts a run named `name` with `tags` in the registry's experiment, runs `body` on it (with
/// the experiment's id), and ends the run FINISHED, or FAILED when `body` failed: a run is
/// logged whole or marked as not.
pub(crate) async fn in_run<T>(
    reg: &Registry,
    name: &str,
    tags: &[Tag],
    body: impl AsyncFnOnce(&str, &RunInfo) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let c = reg.client();
    let experiment = &reg.config().experiment;
    let experiment_id = c
        .get_or_create_experiment(experiment)
        .await
        .with_context(|| format!("cannot open MLflow experiment `{experiment}`"))?;
    let run = c
        .create_run(&experiment_id, Some(name), tags)
        .await
        .with_context(|| format!("cannot start an MLflow run in experiment `{experiment}`"))?;
    let logged = body(&experiment_id, &run).await;
    let status = if logged.is_ok() { RunStatus::Finished } else { RunStatus::Failed };
    // Closing the run is best effort when logging already failed: that error is the news.
    let closed = c.update_run(&run.run_id, status).await;
    match (logged, closed) {
        (Ok(r), Ok(())) => Ok(r),
        (Ok(_), Err(e)) => Err(anyhow::Error::from(e).context(format!("cannot finish MLflow run `{}`", run.run_id))),
        (Err(e), _) => Err(e.context(format!("MLflow run `{}` marked FAILED", run.run_id))),
    }
}

fn remove_stale_signature(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(crate::signing::SIGNATURE_FILE);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove stale `{}`", path.display()))
        }
        _ => Ok(()),
    }
}

/// The MLflow Model descriptor in the version's artifact directory.
pub const MLMODEL: &str = "MLmodel";

/// An `MLmodel` that makes the bundle directory an MLflow Model with the `onnx` flavor (and
/// `python_function`, served by onnxruntime), so MLflow's own clients can
/// `mlflow.onnx.load_model("models:/stacktag@champion")`. The bundle's files stay as they are:
/// Stacktag reads `manifest.json`, MLflow reads this.
///
/// Its `signature` is the graph's own interface, read from the ONNX model: every input that
/// is not an initializer and every output, with its dtype and shape (a symbolic dimension is
/// MLflow's `-1`). Unity Catalog refuses a version without one, and MLflow checks inputs
/// against it.
pub fn mlmodel(run_id: &str, onnx: &[u8]) -> anyhow::Result<String> {
    let (inputs, outputs) = signature(onnx)?;
    Ok(format!(
        "artifact_path: {BUNDLE_ARTIFACT_DIR}\n\
         flavors:\n\
         \x20 onnx:\n\
         \x20   code: null\n\
         \x20   data: {model}\n\
         \x20   providers:\n\
         \x20   - CPUExecutionProvider\n\
         \x20 python_function:\n\
         \x20   data: {model}\n\
         \x20   loader_module: mlflow.onnx\n\
         run_id: {run_id}\n\
         signature:\n\
         \x20 inputs: '{inputs}'\n\
         \x20 outputs: '{outputs}'\n\
         \x20 params: null\n\
         utc_time_created: '{created}'\n",
        model = files::MODEL,
        created = crate::now_rfc3339(),
    ))
}

/// MLflow's tensor signature of an ONNX model, as the JSON strings `MLmodel` holds
/// (`ModelSignature.to_dict`): inputs, then outputs.
fn signature(onnx: &[u8]) -> anyhow::Result<(String, String)> {
    use prost::Message;
    use tract_onnx::pb::{ModelProto, ValueInfoProto, tensor_shape_proto::dimension, type_proto};
    let model = ModelProto::decode(onnx).context("the bundle's ONNX model does not parse")?;
    let graph = model.graph.context("the ONNX model has no graph")?;
    let initializers: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let tensor = |v: &ValueInfoProto| -> anyhow::Result<serde_json::Value> {
        let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            anyhow::bail!("ONNX value `{}` is not a tensor", v.name);
        };
        // ONNX's TensorProto.DataType numbers → numpy's names, as MLflow writes them.
        let dtype = match t.elem_type {
            1 => "float32",
            2 => "uint8",
            3 => "int8",
            6 => "int32",
            7 => "int64",
            9 => "bool",
            10 => "float16",
            11 => "float64",
            other => anyhow::bail!("ONNX value `{}` has element type {other}, which has no MLflow dtype", v.name),
        };
        let shape: Vec<i64> = t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(dimension::Value::DimValue(n)) if n >= 0 => n,
                        _ => -1,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(serde_json::json!({ "type": "tensor", "tensor-spec": { "dtype": dtype, "shape": shape }, "name": v.name }))
    };
    let inputs: Vec<serde_json::Value> = graph
        .input
        .iter()
        .filter(|v| !initializers.contains(v.name.as_str()))
        .map(tensor)
        .collect::<anyhow::Result<_>>()?;
    let outputs: Vec<serde_json::Value> = graph.output.iter().map(tensor).collect::<anyhow::Result<_>>()?;
    Ok((serde_json::Value::from(inputs).to_string(), serde_json::Value::from(outputs).to_string()))
}

/// Copies the files of `from` into `to` (created), recursively.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The run's metrics: accuracy, macro-F1, the evaluation size, precision, recall, F1 and
/// support per class (`f1_python`, ...), and for a calibrated bundle the out-of-fold
/// calibration error before and after (`ece_out_of_fold_before`, `_after`).
pub fn metrics_of(manifest: &ModelManifest, timestamp: i64) -> Vec<Metric> {
    let m = &manifest.metrics;
    let mut out = vec![
        Metric::new("accuracy", m.accuracy, timestamp),
        Metric::new("macro_f1", m.macro_f1, timestamp),
        Metric::new("eval_examples", m.examples as f64, timestamp),
    ];
    for c in &m.per_class {
        let label: String =
            c.label.chars().map(|ch| if ch.is_ascii_alphanumeric() || ch == '-' { ch } else { '_' }).collect();
        out.push(Metric::new(format!("precision_{label}"), c.precision, timestamp));
        out.push(Metric::new(format!("recall_{label}"), c.recall, timestamp));
        out.push(Metric::new(format!("f1_{label}"), c.f1, timestamp));
        out.push(Metric::new(format!("support_{label}"), c.support as f64, timestamp));
    }
    let out_of_fold = manifest.calibration.as_ref().and_then(|c| c.fitted.get("out_of_fold"));
    for when in ["before", "after"] {
        if let Some(ece) = out_of_fold.and_then(|f| f.get(format!("ece_{when}"))).and_then(|v| v.as_f64()) {
            out.push(Metric::new(format!("ece_out_of_fold_{when}"), ece, timestamp));
        }
    }
    out
}

/// The run's params: the manifest's training parameters, plus the model name and labels.
pub fn params_of(manifest: &ModelManifest) -> Vec<Param> {
    // MLflow keeps at most 6000 characters per param value.
    const MAX: usize = 6000;
    let mut map: BTreeMap<String, String> = manifest
        .training
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text.chars().take(MAX).collect())
        })
        .collect();
    map.insert("model_name".into(), manifest.model_name.clone());
    map.insert("labels".into(), manifest.labels.join(","));
    // The calibration as people compare runs by it; its tables stay in the bundle's manifest.
    if let Some(c) = &manifest.calibration {
        map.insert("calibration_method".into(), c.method.clone());
        map.insert("unsure_min_known_features".into(), c.unsure.min_known_features.to_string());
        map.insert("unsure_little_evidence_below".into(), c.unsure.little_evidence_below.to_string());
        map.insert("unsure_below_confidence".into(), c.unsure.below_confidence.to_string());
    }
    map.into_iter().map(|(k, v)| Param::new(k, v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> (ModelManifest, Vec<u8>) {
        let dir = format!("{}/../edge-classifier/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let manifest = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/manifest.json")).expect("fixture"))
            .expect("manifest");
        (manifest, std::fs::read(format!("{dir}/model.onnx")).expect("onnx"))
    }

    #[test]
    fn a_calibrated_bundle_logs_its_calibration_and_an_older_one_nothing_of_it() {
        let (calibrated, _) = fixture("tiny-calibrated");
        let metrics = metrics_of(&calibrated, 1);
        let fitted = &calibrated.calibration.as_ref().expect("format 5").fitted["out_of_fold"];
        for when in ["before", "after"] {
            let m = metrics.iter().find(|m| m.key == format!("ece_out_of_fold_{when}")).expect(when);
            assert_eq!(Some(m.value), fitted[format!("ece_{when}")].as_f64());
        }
        let params = params_of(&calibrated);
        let param = |k: &str| params.iter().find(|p| p.key == k).map(|p| p.value.clone());
        assert_eq!(param("calibration_method").as_deref(), Some("temperature"));
        assert_eq!(param("unsure_below_confidence").as_deref(), Some("0.5"));
        let (old, _) = fixture("tiny-presence");
        assert!(!metrics_of(&old, 1).iter().any(|m| m.key.starts_with("ece_")));
        assert!(!params_of(&old).iter().any(|p| p.key.starts_with("unsure_") || p.key == "calibration_method"));
    }

    #[test]
    fn the_mlmodel_names_the_onnx_file_for_both_flavors() {
        let text = mlmodel("abc123", &fixture("tiny").1).expect("mlmodel");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "artifact_path: bundle");
        assert_eq!(lines[1], "flavors:");
        assert_eq!(lines[2], "  onnx:");
        assert_eq!(lines[4], "    data: model.onnx");
        assert!(lines.contains(&"  python_function:") && lines.contains(&"    loader_module: mlflow.onnx"), "{text}");
        assert!(lines.contains(&"run_id: abc123"), "{text}");
    }

    /// The signature names the tensors the manifest says the graph has (MLflow's client
    /// compares it with the ONNX model itself in the Databricks tests).
    #[test]
    fn the_signature_lists_the_graphs_tensors() {
        let json_of = |text: &str, key: &str| -> serde_json::Value {
            let line = text.lines().find(|l| l.starts_with(&format!("  {key}: '"))).expect(key);
            serde_json::from_str(line.split_once('\'').expect("quoted").1.trim_end_matches('\'')).expect("json")
        };
        for name in ["tiny", "tiny-counted", "tiny-feature-scales"] {
            let (manifest, onnx) = fixture(name);
            let text = mlmodel("r", &onnx).expect("mlmodel");
            let names = |v: &serde_json::Value| -> Vec<String> {
                let mut n: Vec<String> =
                    v.as_array().expect("list").iter().map(|t| t["name"].as_str().expect("name").to_owned()).collect();
                n.sort();
                n
            };
            let g = &manifest.graph;
            let mut inputs = vec![g.input.clone()];
            inputs.extend(g.counted.as_ref().and_then(|c| c.counts.clone()));
            inputs.sort();
            let mut outputs = vec![g.probabilities.clone(), g.contributions.clone()];
            outputs.extend(g.scales.clone());
            outputs.sort();
            assert_eq!(names(&json_of(&text, "inputs")), inputs, "{name}");
            assert_eq!(names(&json_of(&text, "outputs")), outputs, "{name}");
            let probabilities = json_of(&text, "outputs")
                .as_array()
                .expect("list")
                .iter()
                .find(|t| t["name"] == g.probabilities.as_str())
                .cloned()
                .expect("probabilities");
            assert_eq!(
                probabilities["tensor-spec"],
                serde_json::json!({ "dtype": "float32", "shape": [manifest.labels.len()] })
            );
        }
        assert!(mlmodel("r", b"not onnx").is_err(), "a model that does not parse has no signature");
    }
}
