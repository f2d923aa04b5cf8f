//! The state directory: `models/<version>/` (each complete, or absent: built under a
//! `.tmp-*` name and renamed into place) and `current`, a symlink to the model that serves,
//! swapped by renaming a new symlink over it. A `kill -9` at any moment leaves either the old
//! or the new pointer, and never a half-written model dir under a version's name.
//!
//! A model dir holds the verified, stamped bundle ([`BUNDLE_DIR`]), the component baked from
//! it ([`WASM_FILE`]) and, written last, what was deployed ([`DEPLOYED_FILE`], a
//! [`DeployedModel`]): its presence marks the dir complete.
//!
//! Durable as well as atomic: a model dir's files and folders are flushed to disk before it is
//! renamed into place, and each rename (the model dir, `current`) is flushed with its parent,
//! so after a power cut a sync that reported success is still there, whole.
//!
//! One process per state dir: [`StateDir::open`] takes an exclusive lock on `lock` for the
//! life of the [`StateDir`] (the kernel drops it when the process dies, even by `kill -9`), and
//! a second `serve` on the same dir is refused, naming the holder, before it touches anything.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

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
    /// sha256 of the baked component, checked before a kept model dir is deployed again (absent
    /// in dirs built before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_sha256: Option<String>,
}

impl DeployedModel {
    /// Writes it into the model dir `dir` (the step that marks the dir complete).
    pub fn write_into(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(DEPLOYED_FILE);
        let json = serde_json::to_vec_pretty(self)?;
        launcher::durable::write(&path, &json, 0o644).with_context(|| format!("cannot write `{}`", path.display()))
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    /// Held (locked) while this value or a clone lives.
    _lock: std::sync::Arc<std::fs::File>,
}

const MODELS: &str = "models";
const LOCK: &str = "lock";
const CURRENT: &str = "current";
const TMP_PREFIX: &str = ".tmp-";

impl StateDir {
    /// Opens (creates) `root`, locks it, and removes what an interrupted sync left half-built.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let models = root.join(MODELS);
        std::fs::create_dir_all(&models).with_context(|| format!("cannot create state dir `{}`", models.display()))?;
        let lock = lock(root)?;
        for entry in std::fs::read_dir(&models).with_context(|| format!("cannot list `{}`", models.display()))? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                // Leftovers of a sync that was killed: never referenced by `current`.
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        for entry in std::fs::read_dir(root)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Self { root: root.to_owned(), _lock: std::sync::Arc::new(lock) })
    }

    /// Its path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh staging dir for `version` inside `models/` (same file system, so it can be
    /// renamed into place).
    pub fn staging(&self, version: &str) -> anyhow::Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(&format!("{TMP_PREFIX}{version}-"))
            .tempdir_in(self.root.join(MODELS))
            .with_context(|| format!("cannot create a staging dir in `{}`", self.root.display()))
    }

    /// The complete model dir of `version`, if one was built before.
    pub fn model(&self, version: &str) -> Option<(PathBuf, DeployedModel)> {
        let dir = self.root.join(MODELS).join(version);
        let deployed = read_deployed(&dir)?;
        (deployed.version == version).then_some((dir, deployed))
    }

    /// Renames a finished staging dir to `models/<version>` (replacing an older build).
    pub fn commit(&self, staging: tempfile::TempDir, version: &str) -> anyhow::Result<PathBuf> {
        let dest = self.root.join(MODELS).join(version);
        if dest.exists() {
            std::fs::remove_dir_all(&dest).with_context(|| format!("cannot replace `{}`", dest.display()))?;
        }
        launcher::durable::sync_tree(staging.path())
            .with_context(|| format!("cannot flush `{}` to disk", staging.path().display()))?;
        let staged = staging.keep();
        std::fs::rename(&staged, &dest)
            .with_context(|| format!("cannot rename `{}` to `{}`", staged.display(), dest.display()))?;
        launcher::durable::sync_dir(&self.root.join(MODELS))
            .with_context(|| format!("cannot flush `{}` to disk", self.root.join(MODELS).display()))?;
        Ok(dest)
    }

    /// Points `current` at `models/<version>` atomically.
    pub fn set_current(&self, version: &str) -> anyhow::Result<()> {
        let tmp = self.root.join(format!("{TMP_PREFIX}current-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        // Relative, so the state dir can be moved as a whole.
        std::os::unix::fs::symlink(Path::new(MODELS).join(version), &tmp)
            .with_context(|| format!("cannot create symlink `{}`", tmp.display()))?;
        std::fs::rename(&tmp, self.root.join(CURRENT))
            .with_context(|| format!("cannot swap `{}`", self.root.join(CURRENT).display()))?;
        launcher::durable::sync_dir(&self.root)
            .with_context(|| format!("cannot flush `{}` to disk", self.root.display()))
    }

    /// Checks a kept model dir before it is deployed again: its bundle passes the core's
    /// bundle reader (every listed file's size and sha256), and its component is the one baked
    /// from it (the sha256 `deployed.json` recorded, when it recorded one).
    pub fn verify_model(&self, dir: &Path) -> anyhow::Result<()> {
        edge_classifier::bundle::read_verified_dir(&dir.join(BUNDLE_DIR))
            .with_context(|| format!("the bundle in `{}` does not verify", dir.display()))?;
        let deployed =
            read_deployed(dir).with_context(|| format!("`{}` has no readable `{DEPLOYED_FILE}`", dir.display()))?;
        if let Some(expected) = &deployed.wasm_sha256 {
            let wasm = dir.join(WASM_FILE);
            let bytes = std::fs::read(&wasm).with_context(|| format!("cannot read `{}`", wasm.display()))?;
            let actual = edge_classifier::bundle::sha256_hex(&bytes);
            anyhow::ensure!(
                &actual == expected,
                "`{}` has sha256 {actual}, not the {expected} it was baked with",
                wasm.display()
            );
        }
        Ok(())
    }

    /// The model `current` points at, if it is complete.
    pub fn current(&self) -> Option<(PathBuf, DeployedModel)> {
        let target = std::fs::read_link(self.root.join(CURRENT)).ok()?;
        let dir = self.root.join(target);
        let deployed = read_deployed(&dir)?;
        Some((dir, deployed))
    }
}

/// Takes the state dir's lock, recording who holds it; refuses, naming the holder, if another
/// process has it.
fn lock(root: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::Write;
    let path = root.join(LOCK);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open `{}`", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let holder = if holder.is_empty() { "another process".to_owned() } else { holder.to_owned() };
            anyhow::bail!(
                "state dir `{}` is in use by {holder}: stop that registry-sync first, or give this one another `--state-dir`",
                root.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock `{}`", path.display()));
        }
    }
    // Who holds it, for the next one to be refused.
    file.set_len(0)?;
    write!(file, "registry-sync pid {} (since unix time {})", std::process::id(), crate::webhook::unix_now())?;
    file.flush()?;
    Ok(file)
}

/// The model of a complete model dir (its component and its `deployed.json`), if it is one.
fn read_deployed(dir: &Path) -> Option<DeployedModel> {
    if !dir.join(WASM_FILE).is_file() {
        return None;
    }
    serde_json::from_slice(&std::fs::read(dir.join(DEPLOYED_FILE)).ok()?).ok()
}
