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
/// passed, and nothing half-written is ever there: both outputs are staged whole (and flushed)
/// beside their targets first, then renamed into place back to back, the component first.
pub async fn once(cfg: &SyncConfig, selector: &Selector, out: &OnceOutput) -> anyhow::Result<DeployedModel> {
    let reg = Registry::new(cfg.registry.clone())?;
    let mv = resolve(&reg, selector).await?;
    let parent = existing_parent(&out.wasm)?;
    let work = tempfile::Builder::new().prefix(".registry-sync-").tempdir_in(&parent)?;
    let deployed = prepare(&reg, cfg, &mv, work.path(), &Children::none()).await?;
    let staged_bundle = match &out.bundle {
        Some(dest) => Some((stage_bundle_dir(&work.path().join(BUNDLE_DIR), dest)?, dest)),
        None => None,
    };
    let wasm = work.path().join(WASM_FILE);
    std::fs::File::open(&wasm)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush `{}`", wasm.display()))?;
    std::fs::rename(&wasm, &out.wasm).with_context(|| format!("cannot write `{}`", out.wasm.display()))?;
    launcher::durable::sync_dir(&parent).with_context(|| format!("cannot flush `{}`", parent.display()))?;
    if let Some((staged, dest)) = staged_bundle {
        swap_dir(staged, dest)?;
    }
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

/// Copies the bundle's manifest and the files it lists (nothing else: this is what gets
/// published) into a temporary directory beside `dest`, verifies and flushes it.
fn stage_bundle_dir(bundle: &Path, dest: &Path) -> anyhow::Result<tempfile::TempDir> {
    let parent = existing_parent(dest)?;
    let tmp = tempfile::Builder::new().prefix(".registry-sync-bundle-").tempdir_in(&parent)?;
    let verified = edge_classifier::bundle::read_verified_dir(bundle)
        .with_context(|| format!("the bundle in `{}` does not verify", bundle.display()))?;
    let manifest = edge_classifier::bundle::parse_manifest(&verified.manifest)?;
    for name in edge_classifier::bundle::shipped_names(&manifest, bundle) {
        std::fs::copy(bundle.join(&name), tmp.path().join(&name))
            .with_context(|| format!("cannot copy `{}`", bundle.join(&name).display()))?;
    }
    // What the page will load must pass the same reader as every other consumer.
    edge_classifier::bundle::read_verified_dir(tmp.path())
        .with_context(|| format!("the copied bundle in `{}` does not verify", tmp.path().display()))?;
    launcher::durable::sync_tree(tmp.path())?;
    Ok(tmp)
}

/// Puts the staged directory at `dest`: the old one is renamed aside first, the new one
/// renamed in, then the old one removed, so `dest` is never a half-deleted directory.
fn swap_dir(staged: tempfile::TempDir, dest: &Path) -> anyhow::Result<()> {
    let parent = existing_parent(dest)?;
    let aside = match dest.is_dir() {
        true => {
            let aside = tempfile::Builder::new().prefix(".registry-sync-old-").tempdir_in(&parent)?;
            std::fs::rename(dest, aside.path().join("old"))
                .with_context(|| format!("cannot move `{}` aside", dest.display()))?;
            Some(aside)
        }
        false => None,
    };
    let kept = staged.keep();
    std::fs::rename(&kept, dest).with_context(|| format!("cannot write `{}`", dest.display()))?;
    launcher::durable::sync_dir(&parent).with_context(|| format!("cannot flush `{}`", parent.display()))?;
    // Dropping `aside` removes the old directory.
    drop(aside);
    Ok(())
}
