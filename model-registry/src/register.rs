//! Logging a trained bundle as an MLflow run and registering it as a new version.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use edge_classifier::api::{ModelManifest, files};
use mlflow_client::types::{Metric, Param, RunStatus, Tag};

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
    let experiment_id = c
        .get_or_create_experiment(&cfg.experiment)
        .await
        .with_context(|| format!("cannot open MLflow experiment `{}`", cfg.experiment))?;
    let run_tags = vec![
        Tag::new(tags::GIT_COMMIT, &from.git_commit),
        Tag::new(tags::DATA_SNAPSHOT, &manifest.data_snapshot),
        Tag::new(tags::TRAINER_VERSION, &from.trainer_version),
        Tag::new("mlflow.source.name", "stacktag-trainer"),
        Tag::new("mlflow.source.type", "LOCAL"),
    ];
    let run_name = format!("train-{}", &manifest.data_snapshot[..manifest.data_snapshot.len().min(12)]);
    let run = c
        .create_run(&experiment_id, Some(&run_name), &run_tags)
        .await
        .with_context(|| format!("cannot start an MLflow run in experiment `{}`", cfg.experiment))?;
    let logged = async {
        let now = mlflow_client::now_ms();
        c.log_batch(&run.run_id, &metrics_of(manifest, now), &params_of(manifest), &[])
            .await
            .context("cannot log the run's params and metrics")?;
        c.upload_dir(&run.artifact_uri, BUNDLE_ARTIFACT_DIR, bundle_dir)
            .await
            .with_context(|| format!("cannot upload bundle `{}`", bundle_dir.display()))?;
        // Beside the bundle's own files, so the version is also a plain MLflow Model.
        c.upload_artifact(
            &run.artifact_uri,
            &format!("{BUNDLE_ARTIFACT_DIR}/{MLMODEL}"),
            mlmodel(&run.run_id).into_bytes(),
        )
        .await
        .context("cannot upload the version's `MLmodel`")?;
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
        let version_tags = [
            Tag::new(tags::DATA_SNAPSHOT, &manifest.data_snapshot),
            Tag::new(tags::TRAINER_VERSION, &from.trainer_version),
            Tag::new(tags::ACCURACY, manifest.metrics.accuracy.to_string()),
            Tag::new(tags::MACRO_F1, manifest.metrics.macro_f1.to_string()),
        ];
        let version = c
            .create_model_version(&model.name, &source, Some(&run.run_id), &version_tags)
            .await
            .with_context(|| format!("cannot register a version of `{}`", cfg.model))?;
        c.set_alias(&model.name, aliases::CHALLENGER, &version.version).await.with_context(|| {
            format!("cannot point `{}` of `{}` at version {}", aliases::CHALLENGER, cfg.model, version.version)
        })?;
        anyhow::Ok(Registered {
            model: model.name,
            version: version.version,
            run_id: run.run_id.clone(),
            experiment_id: experiment_id.clone(),
            source,
        })
    }
    .await;
    let status = if logged.is_ok() { RunStatus::Finished } else { RunStatus::Failed };
    // Closing the run is best effort when logging already failed: that error is the news.
    let closed = c.update_run(&run.run_id, status).await;
    match (logged, closed) {
        (Ok(r), Ok(())) => Ok(r),
        (Ok(_), Err(e)) => Err(anyhow::Error::from(e).context(format!("cannot finish MLflow run `{}`", run.run_id))),
        (Err(e), _) => Err(e.context(format!("MLflow run `{}` marked FAILED", run.run_id))),
    }
}

/// The MLflow Model descriptor in the version's artifact directory.
pub const MLMODEL: &str = "MLmodel";

/// An `MLmodel` that makes the bundle directory an MLflow Model with the `onnx` flavor (and
/// `python_function`, served by onnxruntime), so MLflow's own clients can
/// `mlflow.onnx.load_model("models:/stacktag@champion")`. The bundle's files stay as they are:
/// Stacktag reads `manifest.json`, MLflow reads this.
pub fn mlmodel(run_id: &str) -> String {
    format!(
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
         utc_time_created: '{created}'\n",
        model = files::MODEL,
        created = crate::now_rfc3339(),
    )
}

/// The run's metrics: accuracy, macro-F1, the evaluation size, and precision, recall, F1
/// and support per class (`f1_python`, ...).
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
    map.into_iter().map(|(k, v)| Param::new(k, v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mlmodel_names_the_onnx_file_for_both_flavors() {
        let text = mlmodel("abc123");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "artifact_path: bundle");
        assert_eq!(lines[1], "flavors:");
        assert_eq!(lines[2], "  onnx:");
        assert_eq!(lines[4], "    data: model.onnx");
        assert!(lines.contains(&"  python_function:") && lines.contains(&"    loader_module: mlflow.onnx"), "{text}");
        assert!(lines.contains(&"run_id: abc123"), "{text}");
    }
}
