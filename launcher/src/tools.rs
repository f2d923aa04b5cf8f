//! The tools `scripts/setup.sh` installs and where they are, resolved once from the
//! environment. The one place that knows the cache's layout and the variables that move it.

use std::path::{Path, PathBuf};

/// The cache holding the tools and the Python venv (default `~/.cache/stacktag`).
pub const CACHE_VAR: &str = "STACKTAG_CACHE";
/// The wasmtime-cli that bakes and serves the edge component (default: the cache's).
pub const WASMTIME_VAR: &str = "STACKTAG_WASMTIME";
/// The `mlflow` executable (default: the cache's venv).
pub const MLFLOW_VAR: &str = "STACKTAG_MLFLOW";
/// The folder holding `stackoverflow16k/` (default: `../shared/data` beside the repository).
pub const SHARED_DATA_VAR: &str = "STACKTAG_SHARED_DATA";

/// The tools' paths. Built by binaries and test harnesses from the environment
/// ([`Tools::from_env`]); libraries take the paths they need as arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// `$STACKTAG_CACHE`.
    pub cache: PathBuf,
    /// wasmtime-cli 48 (`wasmtime serve`, `wasmtime wizer`, `wasmtime compile`).
    pub wasmtime: PathBuf,
    /// `mlflow` from the venv.
    pub mlflow: PathBuf,
    /// The venv's Python (the onnxruntime and monitoring checks).
    pub python: PathBuf,
    /// Debian's `prometheus` (on `PATH`).
    pub prometheus: PathBuf,
    /// Debian's `prometheus-alertmanager` (on `PATH`).
    pub alertmanager: PathBuf,
}

impl Tools {
    /// Resolves every path from `lookup` (the environment, in binaries): the variables above,
    /// else the cache's layout under `$HOME/.cache/stacktag`.
    pub fn resolve(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| lookup(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let cache =
            set(CACHE_VAR).unwrap_or_else(|| PathBuf::from(lookup("HOME").unwrap_or_default()).join(".cache/stacktag"));
        let venv = cache.join("venv/bin");
        Self {
            wasmtime: set(WASMTIME_VAR).unwrap_or_else(|| cache.join("tools/bin/wasmtime")),
            mlflow: set(MLFLOW_VAR).unwrap_or_else(|| venv.join("mlflow")),
            python: venv.join("python"),
            prometheus: PathBuf::from("prometheus"),
            alertmanager: PathBuf::from("prometheus-alertmanager"),
            cache,
        }
    }

    /// [`Tools::resolve`] over the process environment.
    pub fn from_env() -> Self {
        Self::resolve(|name| std::env::var(name).ok())
    }
}

/// The shared data folder: `$STACKTAG_SHARED_DATA`, else `../shared/data` beside `repo`.
pub fn shared_data(repo: &Path, lookup: impl Fn(&str) -> Option<String>) -> PathBuf {
    lookup(SHARED_DATA_VAR).filter(|v| !v.is_empty()).map_or_else(|| repo.join("../shared/data"), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_layout_follows_the_variables() {
        let home = Tools::resolve(|k| (k == "HOME").then(|| "/home/u".to_owned()));
        assert_eq!(home.wasmtime, Path::new("/home/u/.cache/stacktag/tools/bin/wasmtime"));
        assert_eq!(home.mlflow, Path::new("/home/u/.cache/stacktag/venv/bin/mlflow"));
        let moved = Tools::resolve(|k| match k {
            CACHE_VAR => Some("/c".to_owned()),
            WASMTIME_VAR => Some("/w/wasmtime".to_owned()),
            _ => None,
        });
        assert_eq!(moved.wasmtime, Path::new("/w/wasmtime"));
        assert_eq!(moved.python, Path::new("/c/venv/bin/python"));
    }
}
