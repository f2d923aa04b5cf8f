//! Sync steps 1–4 for one version: resolve, download and verify, evaluate, stamp, bake.
//! `registry-sync once` ([`crate::once()`]) is exactly this; `serve` then deploys the result.

use std::path::Path;
use std::time::Instant;

use edge_classifier::api::files;
use mlflow_client::types::ModelVersion;
use model_registry::Registry;
use tracing::info;

use crate::children::Children;
use crate::config::{Selector, SyncConfig};
use crate::error::SyncError;
use crate::evaluation;
use crate::events;
use crate::state::{BUNDLE_DIR, DeployedModel, WASM_FILE};

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
/// be an empty, private directory. The bake's process is recorded in `children`.
pub async fn prepare(
    reg: &Registry,
    cfg: &SyncConfig,
    mv: &ModelVersion,
    work: &Path,
    children: &Children,
) -> Result<DeployedModel, SyncError> {
    let version = mv.version.clone();
    let bundle = work.join(BUNDLE_DIR);
    let started = Instant::now();
    let downloaded = model_registry::download_verified(reg, mv, &bundle)
        .await
        .map_err(|cause| SyncError::Download { version: version.clone(), cause })?;
    let classifier =
        downloaded.classifier.map_err(|cause| SyncError::InvalidBundle { version: version.clone(), cause })?;
    info!(target: events::STEP, version, step = "download", source = %mv.source, seconds = started.elapsed().as_secs_f64(), "downloaded and verified");
    let started = Instant::now();
    let score = evaluation::score(&classifier, &cfg.eval).map_err(|e| SyncError::Evaluation {
        version: version.clone(),
        reason: format!("scoring {} failed: {e:#}", cfg.eval.describe()),
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
    info!(target: events::STEP, version, step = "evaluate", accuracy = score.accuracy, examples = score.examples, seconds = started.elapsed().as_secs_f64(), "evaluated");
    stamp(&bundle, &version)?;
    let (baker, children, bundle_dir, wasm, limit) =
        (cfg.baker.clone(), children.clone(), bundle.clone(), work.join(WASM_FILE), cfg.bake_timeout);
    // The bake blocks (wizer runs for about a second), so off the async workers.
    let baked = tokio::task::spawn_blocking(move || baker.bake_within(&bundle_dir, &wasm, &children, limit))
        .await
        .map_err(|e| SyncError::Bake { version: version.clone(), reason: format!("the bake's thread failed: {e}") })?
        .map_err(|e| SyncError::Bake { version: version.clone(), reason: e.to_string() })?;
    info!(target: events::STEP, version, step = "bake", bytes = baked.bytes, seconds = baked.seconds, "baked");
    let manifest = classifier.manifest();
    let deployed = DeployedModel {
        model: mv.name.clone(),
        version: version.clone(),
        run_id: mv.run_id.clone().unwrap_or_else(|| "unknown".into()),
        data_snapshot: manifest.data_snapshot.clone(),
        labels: manifest.labels.clone(),
        wasm_sha256: Some(baked.sha256),
    };
    deployed.write_into(work).map_err(|cause| SyncError::State { version, cause })?;
    Ok(deployed)
}

/// Makes `bundle/manifest.json` name `version` ([`model_registry::stamp_version`]): a bundle
/// the trainer stamped and signed already does, one stamped for another version is refused.
pub fn stamp(bundle: &Path, version: &str) -> Result<(), SyncError> {
    let path = bundle.join(files::MANIFEST);
    model_registry::stamp_version(bundle, version, false).map(|_| ()).map_err(|reason| SyncError::Stamp {
        version: version.to_owned(),
        path: path.display().to_string(),
        reason,
    })
}
