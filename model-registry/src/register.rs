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
        stage_mlflow_model(&model_dir, &run.run_id)?;
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

/// The environment variable naming the Python flavor's core: the inference core built as a
/// plain WebAssembly module (crate `edge-classifier-python`; scripts/lib.sh's `pyfunc_build`
/// builds it and sets this).
pub const PYFUNC_CORE_ENV: &str = "STACKTAG_PYFUNC_CORE";

/// The Python flavor's files in the version's directory: its loader module and the core it
/// runs, under `code/` (which MLflow puts on `sys.path`).
pub mod pyfunc {
    /// The directory MLflow adds to `sys.path`.
    pub const CODE_DIR: &str = "code";
    /// The loader module (`loader_module`), from edge-classifier/python.
    pub const LOADER: &str = "stacktag_pyfunc.py";
    /// The core, as the loader module expects it.
    pub const CORE: &str = "stacktag_core.wasm";
    /// The loader module's source.
    pub const LOADER_SOURCE: &str = include_str!("../../edge-classifier/python/stacktag_pyfunc.py");
    /// What the flavor needs in Python, pinned as the tests ran it (scripts/requirements.txt).
    pub const REQUIREMENTS: &[&str] = &["mlflow==3.17.2", "pandas==3.1.1", "wasmtime==50.0.1"];
    /// The Python it was tested with.
    pub const PYTHON: &str = "3.11.7";
    /// What `predict` takes: text, one question per row (MLflow's `ModelSignature` JSON).
    pub const INPUTS: &str = r#"[{"type": "string", "name": "text", "required": true}]"#;
    /// What `predict` answers: the edge's `Prediction`, one row per text.
    pub const OUTPUTS: &str = concat!(
        r#"[{"type": "string", "name": "label", "required": true}, "#,
        r#"{"type": "array", "items": {"type": "object", "properties": {"label": {"type": "string", "required": true}, "probability": {"type": "float", "required": true}}}, "name": "probabilities", "required": true}, "#,
        r#"{"type": "string", "name": "unsure", "required": false}, "#,
        r#"{"type": "boolean", "name": "truncated", "required": true}, "#,
        r#"{"type": "array", "items": {"type": "object", "properties": {"count": {"type": "long", "required": true}, "spans": {"type": "array", "items": {"type": "array", "items": {"type": "long"}}, "required": true}, "token": {"type": "string", "required": true}, "weight": {"type": "float", "required": true}}}, "name": "explanation", "required": true}, "#,
        r#"{"type": "object", "properties": {"name": {"type": "string", "required": true}, "version": {"type": "string", "required": false}}, "name": "model", "required": true}]"#
    );
}

/// Makes the bundle in `model_dir` a complete MLflow Model: its `MLmodel`, the Python flavor's
/// code and core, and the environment files that say what the flavor needs. Without the core
/// no version is registered: one without it would fail every MLflow user who scores text.
pub fn stage_mlflow_model(model_dir: &Path, run_id: &str) -> anyhow::Result<()> {
    let core_path = pyfunc_core_path()?;
    let core = std::fs::read(&core_path)
        .with_context(|| format!("cannot read the Python flavor's core `{}`", core_path.display()))?;
    let code = model_dir.join(pyfunc::CODE_DIR);
    std::fs::create_dir_all(&code).with_context(|| format!("cannot create `{}`", code.display()))?;
    let requirements: String = pyfunc::REQUIREMENTS.iter().map(|r| format!("{r}\n")).collect();
    let pip: String = pyfunc::REQUIREMENTS.iter().map(|r| format!("  - {r}\n")).collect();
    let staged = [
        (code.join(pyfunc::LOADER), pyfunc::LOADER_SOURCE.as_bytes().to_vec()),
        (code.join(pyfunc::CORE), core),
        (model_dir.join("requirements.txt"), requirements.into_bytes()),
        (
            model_dir.join("python_env.yaml"),
            format!(
                "python: {}\nbuild_dependencies:\n- pip\n- setuptools\n- wheel\ndependencies:\n- -r requirements.txt\n",
                pyfunc::PYTHON
            )
            .into_bytes(),
        ),
        (
            model_dir.join("conda.yaml"),
            format!(
                "channels:\n- conda-forge\ndependencies:\n- python={}\n- pip\n- pip:\n{pip}name: mlflow-env\n",
                pyfunc::PYTHON
            )
            .into_bytes(),
        ),
        (model_dir.join(MLMODEL), mlmodel(run_id).into_bytes()),
    ];
    for (path, bytes) in staged {
        std::fs::write(&path, bytes).with_context(|| format!("cannot stage `{}`", path.display()))?;
    }
    Ok(())
}

/// Where the Python flavor's core is: [`PYFUNC_CORE_ENV`], else where the workspace's `wasm`
/// build puts it in the target directory this program runs from (`target/debug/trainer`, or a
/// test in `target/debug/deps/`).
fn pyfunc_core_path() -> anyhow::Result<std::path::PathBuf> {
    if let Some(path) = std::env::var_os(PYFUNC_CORE_ENV) {
        return Ok(path.into());
    }
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let tried: Vec<_> = exe
        .ancestors()
        .skip(2)
        .take(2)
        .map(|dir| dir.join("wasm32-unknown-unknown/wasm/edge_classifier_python.wasm"))
        .collect();
    tried.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "the Python flavor's core is not built: set `{PYFUNC_CORE_ENV}` to edge_classifier_python.wasm \
             (scripts/lib.sh's `pyfunc_build` builds it; looked in {})",
            tried.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(" and ")
        )
    })
}

/// An `MLmodel` that makes the bundle directory an MLflow Model with two flavors: `onnx` (the
/// graph, for `mlflow.onnx.load_model`: it reads the core's feature rows, not text) and
/// `python_function`, which takes text and answers exactly as the edge does, through the same
/// core ([`stage_mlflow_model`] puts its files beside it; docs/mlflow-pyfunc.md). The bundle's
/// files stay as they are: Stacktag reads `manifest.json`, MLflow reads this. The signature is
/// the Python flavor's (MLflow checks `predict`'s input against it; Unity Catalog refuses a
/// version without one).
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
         \x20   code: {code}\n\
         \x20   env:\n\
         \x20     conda: conda.yaml\n\
         \x20     virtualenv: python_env.yaml\n\
         \x20   loader_module: stacktag_pyfunc\n\
         \x20   python_version: {python}\n\
         run_id: {run_id}\n\
         signature:\n\
         \x20 inputs: '{inputs}'\n\
         \x20 outputs: '{outputs}'\n\
         \x20 params: null\n\
         utc_time_created: '{created}'\n",
        model = files::MODEL,
        code = pyfunc::CODE_DIR,
        python = pyfunc::PYTHON,
        inputs = pyfunc::INPUTS,
        outputs = pyfunc::OUTPUTS,
        created = crate::now_rfc3339(),
    )
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
    fn the_mlmodel_has_the_onnx_flavor_and_a_text_python_flavor() {
        let text = mlmodel("abc123");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "artifact_path: bundle");
        assert_eq!(lines[1], "flavors:");
        assert_eq!(lines[2], "  onnx:");
        assert_eq!(lines[4], "    data: model.onnx");
        for line in ["  python_function:", "    loader_module: stacktag_pyfunc", "    code: code", "run_id: abc123"] {
            assert!(lines.contains(&line), "{line} in {text}");
        }
        // The signature strings are JSON (MLflow's own reader parses them in the registry tests).
        for key in ["inputs", "outputs"] {
            let line = text.lines().find(|l| l.starts_with(&format!("  {key}: '"))).expect(key);
            let json = line.split_once('\'').expect("quoted").1.trim_end_matches('\'');
            serde_json::from_str::<serde_json::Value>(json).expect(key);
        }
        // The loader module is in the crate as MLflow will import it, and names the core's file.
        assert!(pyfunc::LOADER_SOURCE.contains(&format!("CORE = \"{}\"", pyfunc::CORE)));
    }
}
