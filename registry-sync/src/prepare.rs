//! Sync steps 1–4 for one version: resolve, download and verify, evaluate, stamp, bake.
//! `registry-sync once` is exactly this; `serve` then deploys the result.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use edge_classifier::api::files;
use mlflow_client::types::ModelVersion;
use model_registry::Registry;
use serde::{Deserialize, Serialize};

use crate::children::{Children, Kind};
use crate::config::{Selector, SyncConfig};
use crate::error::SyncError;
use crate::evaluation;

/// The bundle's folder inside a model dir.
pub const BUNDLE_DIR: &str = "bundle";
/// The baked component inside a model dir.
pub const WASM_FILE: &str = "edge.wasm";
/// What was deployed, inside a model dir (written last: its presence marks the dir complete).
pub const DEPLOYED_FILE: &str = "deployed.json";

/// What a model dir holds, and what the gateway names in its answers and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedModel {
    /// Registered model name.
    pub model: String,
    /// Registry version.
    pub version: String,
    /// The run that logged it (`unknown` if the registry had none).
    pub run_id: String,
    /// The manifest's data snapshot hash.
    pub data_snapshot: String,
    /// The model's labels, in output order (the bounded label set of the predictions metric).
    pub labels: Vec<String>,
}

/// Reads the version `selector` names (an alias is re-read every call).
pub async fn resolve(reg: &Registry, selector: &Selector) -> Result<ModelVersion, SyncError> {
    let c = reg.client();
    let got = match selector {
        Selector::Alias(alias) => c.get_model_version_by_alias(reg.model(), alias).await,
        Selector::Version(v) => c.get_model_version(reg.model(), v).await,
    };
    got.map_err(|e| SyncError::Resolve { what: selector.to_string(), model: reg.model().to_owned(), cause: e.into() })
}

/// Downloads `mv` into `work/bundle`, verifies and evaluates it, stamps its version into the
/// manifest and bakes it into `work/edge.wasm`; writes `work/deployed.json` last. `work` must
/// be an empty, private directory. The bake's process group is recorded in `children`.
pub async fn prepare(
    reg: &Registry,
    cfg: &SyncConfig,
    mv: &ModelVersion,
    work: &Path,
    children: &Children,
) -> Result<DeployedModel, SyncError> {
    let version = mv.version.clone();
    let bundle = work.join(BUNDLE_DIR);
    eprintln!("registry-sync: version {version}: downloading `{}`", mv.source);
    let started = std::time::Instant::now();
    let downloaded = model_registry::download_verified(reg, mv, &bundle)
        .await
        .map_err(|cause| SyncError::Download { version: version.clone(), cause })?;
    let classifier =
        downloaded.classifier.map_err(|cause| SyncError::InvalidBundle { version: version.clone(), cause })?;
    let downloaded_s = started.elapsed().as_secs_f64();
    let score = evaluation::score(&classifier, &cfg.eval).map_err(|e| SyncError::Evaluation {
        version: version.clone(),
        reason: format!("scoring `{}` failed: {e}", cfg.eval.path.display()),
    })?;
    let expected = classifier.manifest().metrics.accuracy;
    // The manifest's accuracy is on the trainer's evaluation set; the sample is another, small
    // one, so only a clear drop (a broken or mismatched model) is refused.
    if score.accuracy < expected - cfg.tolerance {
        return Err(SyncError::BelowTolerance {
            version,
            accuracy: score.accuracy,
            expected,
            tolerance: cfg.tolerance,
            examples: score.examples,
        });
    }
    stamp(&bundle, &version)?;
    let wasm = work.join(WASM_FILE);
    eprintln!(
        "registry-sync: version {version}: downloaded and verified in {downloaded_s:.2} s, accuracy {:.4} on {} \
         examples in {:.2} s; baking",
        score.accuracy,
        score.examples,
        started.elapsed().as_secs_f64() - downloaded_s
    );
    let bake_started = std::time::Instant::now();
    bake(&cfg.bake_script, &bundle, &wasm, children)
        .await
        .map_err(|reason| SyncError::Bake { version: version.clone(), reason })?;
    eprintln!("registry-sync: version {version}: baked in {:.2} s", bake_started.elapsed().as_secs_f64());
    let manifest = classifier.manifest();
    let deployed = DeployedModel {
        model: mv.name.clone(),
        version: version.clone(),
        run_id: mv.run_id.clone().unwrap_or_else(|| "unknown".into()),
        data_snapshot: manifest.data_snapshot.clone(),
        labels: manifest.labels.clone(),
    };
    let json = serde_json::to_vec_pretty(&deployed).map_err(|e| state_err(&version, e.into()))?;
    std::fs::write(work.join(DEPLOYED_FILE), json)
        .with_context(|| format!("cannot write `{}`", work.join(DEPLOYED_FILE).display()))
        .map_err(|e| state_err(&version, e))?;
    Ok(deployed)
}

fn state_err(version: &str, cause: anyhow::Error) -> SyncError {
    SyncError::State { version: version.to_owned(), cause }
}

/// Writes the registry version into `bundle/manifest.json` (`model_version`), so the edge
/// names it in every answer. The manifest's digests cover the other files only, so the
/// bundle stays valid; it is read back through the core's bundle reader to be sure.
pub fn stamp(bundle: &Path, version: &str) -> Result<(), SyncError> {
    let path = bundle.join(files::MANIFEST);
    let err =
        |reason: String| SyncError::Stamp { version: version.to_owned(), path: path.display().to_string(), reason };
    let bytes = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
    // Edited as JSON, not through `ModelManifest`, so fields this build does not know survive.
    let mut manifest: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
    let obj = manifest.as_object_mut().ok_or_else(|| err("not a JSON object".into()))?;
    obj.insert("model_version".into(), serde_json::Value::String(version.to_owned()));
    let out = serde_json::to_vec_pretty(&manifest).map_err(|e| err(e.to_string()))?;
    let tmp = bundle.join(".manifest.json.tmp");
    std::fs::write(&tmp, out).and_then(|()| std::fs::rename(&tmp, &path)).map_err(|e| err(e.to_string()))?;
    let files = edge_classifier::bundle::read_verified_dir(bundle).map_err(|e| err(e.to_string()))?;
    let read_back = edge_classifier::bundle::parse_manifest(&files.manifest).map_err(|e| err(e.to_string()))?;
    match read_back.model_version.as_deref() {
        Some(v) if v == version => Ok(()),
        other => Err(err(format!("read back `model_version` {other:?}"))),
    }
}

/// Runs `script bake --bundle DIR --out FILE`; on failure, the script's last lines.
async fn bake(script: &Path, bundle: &Path, out: &Path, children: &Children) -> Result<(), String> {
    let child = tokio::process::Command::new("bash")
        .arg(script)
        .arg("bake")
        .arg("--bundle")
        .arg(bundle)
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a restart after a `kill -9` can stop the script and
        // its `wasmtime wizer` together. (`kill_on_drop` stops only the script itself.)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", script.display()))?;
    let pid = child.id();
    if let Some(pid) = pid {
        children.record(pid, Kind::Group);
    }
    let output = child.wait_with_output().await;
    if let Some(pid) = pid {
        children.forget(pid);
    }
    let output = output.map_err(|e| format!("`{}` failed: {e}", script.display()))?;
    if output.status.success() && out.is_file() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!("`{} bake` exited with {}: {}", script.display(), output.status, tail.join(" | ")))
}

/// Where `registry-sync once` writes what it made.
#[derive(Debug, Clone)]
pub struct OnceOutput {
    /// The baked component (a temporary file beside it, then a rename).
    pub wasm: PathBuf,
    /// Also the verified, version-stamped bundle it baked, for the web demo (a temporary
    /// directory beside it, then a rename; an existing directory there is replaced whole).
    pub bundle: Option<PathBuf>,
}

/// `registry-sync once`: steps 1–4 for the version `selector` names. Nothing is written at
/// `out` unless every step passed, and nothing half-written is ever there.
pub async fn once(cfg: &SyncConfig, selector: &Selector, out: &OnceOutput) -> anyhow::Result<DeployedModel> {
    let reg = Registry::new(cfg.registry.clone())?;
    let mv = resolve(&reg, selector).await?;
    let parent = existing_parent(&out.wasm)?;
    let work = tempfile::Builder::new().prefix(".registry-sync-").tempdir_in(&parent)?;
    let deployed = prepare(&reg, cfg, &mv, work.path(), &Children::none()).await?;
    if let Some(dir) = &out.bundle {
        write_bundle_dir(&work.path().join(BUNDLE_DIR), dir)?;
    }
    let tmp = work.path().join("out.wasm");
    std::fs::copy(work.path().join(WASM_FILE), &tmp)
        .with_context(|| format!("cannot copy into `{}`", parent.display()))?;
    std::fs::rename(&tmp, &out.wasm).with_context(|| format!("cannot write `{}`", out.wasm.display()))?;
    Ok(deployed)
}

/// The directory `path` goes in, created if missing.
fn existing_parent(path: &Path) -> anyhow::Result<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create `{}`", parent.display()))?;
    Ok(parent)
}

/// Copies the bundle's files to `dest` through a sibling temporary directory and renames it
/// into place, replacing whatever was at `dest`.
fn write_bundle_dir(bundle: &Path, dest: &Path) -> anyhow::Result<()> {
    let parent = existing_parent(dest)?;
    let tmp = tempfile::Builder::new().prefix(".registry-sync-bundle-").tempdir_in(&parent)?;
    for entry in std::fs::read_dir(bundle).with_context(|| format!("cannot list `{}`", bundle.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), tmp.path().join(entry.file_name()))
                .with_context(|| format!("cannot copy `{}`", entry.path().display()))?;
        }
    }
    // What the page will load must pass the same reader as every other consumer.
    edge_classifier::bundle::read_verified_dir(tmp.path())
        .with_context(|| format!("the copied bundle in `{}` does not verify", tmp.path().display()))?;
    if dest.is_dir() {
        std::fs::remove_dir_all(dest).with_context(|| format!("cannot replace `{}`", dest.display()))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, dest).with_context(|| format!("cannot write `{}`", dest.display()))?;
    Ok(())
}
