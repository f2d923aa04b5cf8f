//! The state directory: `models/<version>/` (each complete, or absent: built under a
//! `.tmp-*` name and renamed into place) and `current`, a symlink to the model that serves,
//! swapped by renaming a new symlink over it. A `kill -9` at any moment leaves either the old
//! or the new pointer, and never a half-written model dir under a version's name.
//!
//! A model dir holds the verified, stamped bundle ([`BUNDLE_DIR`]), the component baked from
//! it ([`WASM_FILE`]) and, written last, what was deployed ([`DEPLOYED_FILE`], a
//! [`DeployedModel`]): its presence marks the dir complete.

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
}

impl DeployedModel {
    /// Writes it into the model dir `dir` (the step that marks the dir complete).
    pub fn write_into(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(DEPLOYED_FILE);
        let json = serde_json::to_vec_pretty(self)?;
        std::fs::write(&path, json).with_context(|| format!("cannot write `{}`", path.display()))
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

const MODELS: &str = "models";
const CURRENT: &str = "current";
const TMP_PREFIX: &str = ".tmp-";

impl StateDir {
    /// Opens (creates) `root` and removes what an interrupted sync left half-built.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let models = root.join(MODELS);
        std::fs::create_dir_all(&models).with_context(|| format!("cannot create state dir `{}`", models.display()))?;
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
        Ok(Self { root: root.to_owned() })
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
        let staged = staging.keep();
        std::fs::rename(&staged, &dest)
            .with_context(|| format!("cannot rename `{}` to `{}`", staged.display(), dest.display()))?;
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
            .with_context(|| format!("cannot swap `{}`", self.root.join(CURRENT).display()))
    }

    /// The model `current` points at, if it is complete.
    pub fn current(&self) -> Option<(PathBuf, DeployedModel)> {
        let target = std::fs::read_link(self.root.join(CURRENT)).ok()?;
        let dir = self.root.join(target);
        let deployed = read_deployed(&dir)?;
        Some((dir, deployed))
    }
}

/// The model of a complete model dir (its component and its `deployed.json`), if it is one.
fn read_deployed(dir: &Path) -> Option<DeployedModel> {
    if !dir.join(WASM_FILE).is_file() {
        return None;
    }
    serde_json::from_slice(&std::fs::read(dir.join(DEPLOYED_FILE)).ok()?).ok()
}
