//! `registry-sync once`: sync steps 1–4 for one version, written to files, for a deploy
//! pipeline (`deploy.yml`) that ships the component itself.

use std::path::{Path, PathBuf};

use anyhow::Context;
use model_registry::Registry;

use crate::children::Children;
use crate::config::{Selector, SyncConfig};
use crate::prepare::{prepare, resolve};
use crate::state::{BUNDLE_DIR, DeployedModel, WASM_FILE};

/// Where `registry-sync once` writes what it made.
#[derive(Debug, Clone)]
pub struct OnceOutput {
    /// The baked component (a temporary file beside it, then a rename).
    pub wasm: PathBuf,
    /// Also the verified, version-stamped bundle it baked, for the web demo (a temporary
    /// directory beside it, then a rename; an existing directory there is replaced whole).
    pub bundle: Option<PathBuf>,
}

/// Steps 1–4 for the version `selector` names. Nothing is written at `out` unless every step
/// passed, and nothing half-written is ever there.
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
