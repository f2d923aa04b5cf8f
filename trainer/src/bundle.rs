//! Bundle directories on disk: written whole or not at all, and read back for the core.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use edge_classifier::api::{FileDigest, ModelManifest, files};

use crate::report;

/// The two model files of a bundle, before the manifest is written.
#[derive(Debug, Clone)]
pub struct BundleBytes {
    /// `model.onnx`
    pub model: Vec<u8>,
    /// `tokenizer.json`
    pub tokenizer: Vec<u8>,
}

/// Size and sha256 of `bytes`.
pub fn digest(bytes: &[u8]) -> FileDigest {
    FileDigest { sha256: edge_classifier::sha256_hex(bytes), bytes: bytes.len() as u64 }
}

/// Writes the bundle to `out`: every file goes into a temporary sibling directory, which then
/// replaces `out` by rename. A crash leaves either the old bundle or the new one, never half.
/// An existing `out` that is not a bundle directory is refused rather than replaced.
pub fn write_dir(out: &Path, bytes: &BundleBytes, manifest: &ModelManifest) -> anyhow::Result<()> {
    let name = out
        .file_name()
        .with_context(|| format!("`{}` has no directory name", out.display()))?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if out.exists() {
        let is_bundle = out.is_dir() && out.join(files::MANIFEST).is_file();
        let is_empty = out.is_dir() && fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !is_bundle && !is_empty {
            anyhow::bail!("refusing to replace `{}`: it exists and is not a bundle directory", out.display());
        }
    }
    fs::create_dir_all(&parent).with_context(|| format!("cannot create `{}`", parent.display()))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot clear `{}`", tmp.display()))?;
    }
    fs::create_dir(&tmp).with_context(|| format!("cannot create `{}`", tmp.display()))?;
    let result = (|| -> anyhow::Result<()> {
        write_synced(&tmp.join(files::MODEL), &bytes.model)?;
        write_synced(&tmp.join(files::TOKENIZER), &bytes.tokenizer)?;
        write_synced(&tmp.join(files::MANIFEST), &serde_json::to_vec_pretty(manifest)?)?;
        write_synced(&tmp.join(files::METRICS), &serde_json::to_vec_pretty(&manifest.metrics)?)?;
        write_synced(&tmp.join(files::CONFUSION_SVG), report::confusion_svg(&manifest.metrics).as_bytes())?;
        if out.exists() {
            let old = parent.join(format!(".{name}.old-{}", std::process::id()));
            fs::rename(out, &old).with_context(|| format!("cannot move old bundle `{}` aside", out.display()))?;
            fs::rename(&tmp, out).with_context(|| format!("cannot move new bundle into `{}`", out.display()))?;
            fs::remove_dir_all(&old).with_context(|| format!("cannot remove old bundle `{}`", old.display()))?;
        } else {
            fs::rename(&tmp, out).with_context(|| format!("cannot move new bundle into `{}`", out.display()))?;
        }
        Ok(())
    })();
    if result.is_err() && tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = fs::File::create(path).with_context(|| format!("cannot create `{}`", path.display()))?;
    f.write_all(bytes).with_context(|| format!("cannot write `{}`", path.display()))?;
    f.sync_all().with_context(|| format!("cannot sync `{}`", path.display()))?;
    Ok(())
}
