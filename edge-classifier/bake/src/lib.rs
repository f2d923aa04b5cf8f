//! Bakes a model bundle into the generic edge component: the one bake every caller uses
//! (registry-sync's syncs, `scripts/build-edge.sh bake` through the `edge-bake` binary, and
//! the tests).
//!
//! The generic component (`edge-classifier-spin`, compiled once without a model) exports
//! `wizer-initialize`; `wasmtime wizer` runs it with the bundle directory preopened at
//! `/bundle`, so the component reads, verifies and parses the bundle once, and the snapshot
//! ships the ready classifier: a new model costs seconds and no Rust compile. The bake then
//! checks that wasmtime will map that snapshot copy-on-write ([`snapshot`]) and renames the
//! result into place, so a failed bake never leaves a half-written component.

pub mod snapshot;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use edge_classifier::bundle::{BundleError, read_verified_dir};

pub use snapshot::{Span, spans};

/// The generic component under cargo's target directory (`scripts/build-edge.sh build`: the
/// workspace's `wasm` profile for `wasm32-wasip2`).
pub const GENERIC_IN_TARGET: &str = "wasm32-wasip2/wasm/edge_classifier_spin.wasm";
/// The baked component's default place beside it (what `spin.toml`'s `source` serves).
pub const BAKED_IN_TARGET: &str = "wasm32-wasip2/wasm/edge_classifier_spin.baked.wasm";

/// Where the component's `wizer-initialize` looks for the bundle (its preopened directory).
pub const GUEST_BUNDLE_DIR: &str = "/bundle";

/// What a bake needs: the wasmtime-cli that runs wizer, and the generic component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baker {
    /// wasmtime-cli 48 (`wasmtime wizer` is built in).
    pub wasmtime: PathBuf,
    /// The generic component (`scripts/build-edge.sh build`).
    pub generic: PathBuf,
}

/// A finished bake.
#[derive(Debug, Clone)]
pub struct Baked {
    /// Where the component is.
    pub out: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its snapshot, memory by memory (every one mapped copy-on-write).
    pub snapshot: Vec<Span>,
    /// How long the bake took.
    pub seconds: f64,
}

/// Why a bake failed. Nothing is left at the output path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BakeError {
    /// The bundle does not verify (a missing file, a size or digest that differs).
    #[error("`{dir}` is not a bundle to bake: {source}")]
    Bundle {
        /// The bundle directory.
        dir: PathBuf,
        /// What is wrong, naming the file.
        #[source]
        source: BundleError,
    },
    /// The generic component is not there.
    #[error("no generic component at `{path}`: run `scripts/build-edge.sh build` first")]
    NoGeneric {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// wasmtime could not be run.
    #[error("cannot run `{path}` (run scripts/setup.sh, or set STACKTAG_WASMTIME): {source}")]
    Wasmtime {
        /// The wasmtime looked for.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `wasmtime wizer` failed, e.g. the bundle did not load inside the component.
    #[error("`wasmtime wizer` failed ({status}) baking `{bundle}`: {message}")]
    Wizer {
        /// The bundle.
        bundle: PathBuf,
        /// wizer's exit status.
        status: std::process::ExitStatus,
        /// The last lines wizer printed.
        message: String,
    },
    /// The baked file's snapshot could not be read.
    #[error("cannot read the snapshot of the baked `{bundle}`: {source}")]
    Snapshot {
        /// The bundle.
        bundle: PathBuf,
        /// Why.
        #[source]
        source: snapshot::SnapshotError,
    },
    /// wasmtime would copy the snapshot into every instance instead of mapping it.
    #[error(
        "baking `{bundle}` gives a snapshot too sparse for copy-on-write ({}); shrink the bundle \
         or pack the pre-init heap (edge-classifier/spin/src/preinit/heap.rs)",
        spans.iter().filter(|s| !s.mapped()).map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Sparse {
        /// The bundle.
        bundle: PathBuf,
        /// Every memory's span.
        spans: Vec<Span>,
    },
    /// The output could not be written.
    #[error("cannot write `{path}`: {source}")]
    Output {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Hears about the `wasmtime wizer` process a bake starts, so a supervisor can record it and
/// stop it after a crash (registry-sync keeps pid files). `()` hears nothing.
pub trait Watch {
    /// The process started.
    fn started(&self, pid: u32);
    /// The process ended (or was reaped).
    fn ended(&self, pid: u32);
}

impl Watch for () {
    fn started(&self, _: u32) {}
    fn ended(&self, _: u32) {}
}

impl Baker {
    /// Bakes `bundle` into a copy of the generic component at `out` (replaced atomically).
    /// Blocks for the bake (about a second); async callers run it on a blocking thread.
    pub fn bake(&self, bundle: &Path, out: &Path, watch: &dyn Watch) -> Result<Baked, BakeError> {
        let started = Instant::now();
        // The component verifies it too, but here a bad bundle gets an error naming the file
        // instead of a trap inside wizer.
        read_verified_dir(bundle).map_err(|source| BakeError::Bundle { dir: bundle.to_owned(), source })?;
        if !self.generic.is_file() {
            return Err(BakeError::NoGeneric { path: self.generic.clone() });
        }
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let output_err = |path: &Path| {
            let path = path.to_owned();
            move |source| BakeError::Output { path, source }
        };
        std::fs::create_dir_all(&parent).map_err(output_err(&parent))?;
        // Beside the output (same file system, so the rename is atomic); removed on any error.
        let tmp = tempfile::Builder::new()
            .prefix(".edge-bake-")
            .suffix(".wasm")
            .tempfile_in(&parent)
            .map_err(output_err(&parent))?;
        self.wizer(bundle, tmp.path(), watch)?;
        let bytes = std::fs::read(tmp.path()).map_err(output_err(tmp.path()))?;
        let snapshot = spans(&bytes).map_err(|source| BakeError::Snapshot { bundle: bundle.to_owned(), source })?;
        if !snapshot.iter().all(Span::mapped) {
            return Err(BakeError::Sparse { bundle: bundle.to_owned(), spans: snapshot });
        }
        tmp.persist(out).map_err(|e| BakeError::Output { path: out.to_owned(), source: e.error })?;
        Ok(Baked { out: out.to_owned(), bytes: bytes.len() as u64, snapshot, seconds: started.elapsed().as_secs_f64() })
    }

    /// `wasmtime wizer -Scli -Shttp --keep-init-func=true --dir BUNDLE::/bundle GENERIC -o OUT`.
    /// Only the bundle directory is preopened and no environment is passed.
    /// `--keep-init-func=true`: without it wizer's output is not a valid component
    /// (docs/toolchain.md).
    fn wizer(&self, bundle: &Path, out: &Path, watch: &dyn Watch) -> Result<(), BakeError> {
        use std::os::unix::process::CommandExt;
        let mut dir = bundle.as_os_str().to_owned();
        dir.push("::");
        dir.push(GUEST_BUNDLE_DIR);
        let mut child = Command::new(&self.wasmtime)
            .args(["wizer", "-Scli", "-Shttp", "--keep-init-func=true", "--dir"])
            .arg(dir)
            .arg(&self.generic)
            .arg("-o")
            .arg(out)
            .env_clear()
            .stdin(Stdio::null())
            // wizer prints the init function's result (`()`) on stdout: not ours to pass on.
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own group, so a supervisor that finds it orphaned can stop it whole.
            .process_group(0)
            .spawn()
            .map_err(|source| BakeError::Wasmtime { path: self.wasmtime.clone(), source })?;
        let pid = child.id();
        watch.started(pid);
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let status = child.wait();
        watch.ended(pid);
        let status = status.map_err(|source| BakeError::Wasmtime { path: self.wasmtime.clone(), source })?;
        if status.success() {
            return Ok(());
        }
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let message = lines[lines.len().saturating_sub(6)..].join(" | ");
        Err(BakeError::Wizer { bundle: bundle.to_owned(), status, message })
    }
}
