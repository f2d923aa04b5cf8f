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
    /// Its sha256, hex: what a kept copy is checked against, and what the deploy workflow
    /// compares its own bake with.
    pub sha256: String,
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
    /// `wasmtime wizer` ran past its time limit ([`BAKE_TIMEOUT`] by default) and was killed
    /// with its process group: a hung bake must not hold up every later sync.
    #[error("baking `{bundle}` took longer than {seconds} s; `wasmtime wizer` was killed")]
    TimedOut {
        /// The bundle.
        bundle: PathBuf,
        /// The limit.
        seconds: f64,
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

/// The longest a bake may run. A bake takes about a second (a few with the machine busy); one
/// still running after this is hung, and is killed.
pub const BAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

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
        self.bake_within(bundle, out, watch, BAKE_TIMEOUT)
    }

    /// [`Baker::bake`], killing `wasmtime wizer` (and its process group) after `limit`.
    pub fn bake_within(
        &self,
        bundle: &Path,
        out: &Path,
        watch: &dyn Watch,
        limit: std::time::Duration,
    ) -> Result<Baked, BakeError> {
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
        self.wizer(bundle, tmp.path(), watch, limit)?;
        let bytes = std::fs::read(tmp.path()).map_err(output_err(tmp.path()))?;
        let snapshot = spans(&bytes).map_err(|source| BakeError::Snapshot { bundle: bundle.to_owned(), source })?;
        if !snapshot.iter().all(Span::mapped) {
            return Err(BakeError::Sparse { bundle: bundle.to_owned(), spans: snapshot });
        }
        tmp.persist(out).map_err(|e| BakeError::Output { path: out.to_owned(), source: e.error })?;
        Ok(Baked {
            out: out.to_owned(),
            bytes: bytes.len() as u64,
            sha256: edge_classifier::bundle::sha256_hex(&bytes),
            snapshot,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// `wasmtime wizer -Scli -Shttp --keep-init-func=true --dir BUNDLE::/bundle GENERIC -o OUT`.
    /// Only the bundle directory is preopened and no environment is passed.
    /// `--keep-init-func=true`: without it wizer's output is not a valid component
    /// (docs/toolchain.md).
    fn wizer(&self, bundle: &Path, out: &Path, watch: &dyn Watch, limit: std::time::Duration) -> Result<(), BakeError> {
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
        // stderr is read on a thread so the wait below can keep time.
        let reader = child.stderr.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        });
        let deadline = Instant::now() + limit;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    // The whole group: wizer is its leader, and nothing it started may stay.
                    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
                    let _ = child.wait();
                    watch.ended(pid);
                    return Err(BakeError::TimedOut { bundle: bundle.to_owned(), seconds: limit.as_secs_f64() });
                }
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
                Err(e) => break Err(e),
            }
        };
        let stderr = reader.and_then(|r| r.join().ok()).unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what the bake reports.
    #[derive(Default)]
    struct Seen(std::sync::Mutex<Vec<(&'static str, u32)>>);

    impl Watch for Seen {
        fn started(&self, pid: u32) {
            self.0.lock().expect("lock").push(("started", pid));
        }
        fn ended(&self, pid: u32) {
            self.0.lock().expect("lock").push(("ended", pid));
        }
    }

    #[test]
    fn a_hung_bake_is_killed_with_its_group_at_the_limit() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        // A "wasmtime" that hangs, and leaves a grandchild in its group that hangs too.
        let fake = dir.path().join("wasmtime");
        std::fs::write(&fake, "#!/bin/sh\nsleep 300 &\necho $! > \"$0.child\"\nsleep 300\n").expect("script");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let generic = dir.path().join("generic.wasm");
        std::fs::write(&generic, b"\0asm").expect("generic");
        let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny");
        let baker = Baker { wasmtime: fake.clone(), generic };
        let seen = Seen::default();
        let started = Instant::now();
        let err = baker
            .bake_within(&bundle, &dir.path().join("out.wasm"), &seen, std::time::Duration::from_millis(1500))
            .expect_err("a hung bake");
        assert!(matches!(err, BakeError::TimedOut { .. }), "{err}");
        assert!(err.to_string().contains("took longer than 1.5 s"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the limit was not kept");
        let events = seen.0.lock().expect("lock").clone();
        assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), ["started", "ended"], "{events:?}");
        let grandchild = std::fs::read_to_string(dir.path().join("wasmtime.child")).expect("child pid");
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            !Path::new(&format!("/proc/{}", grandchild.trim())).exists()
                || std::fs::read_to_string(format!("/proc/{}/stat", grandchild.trim()))
                    .is_ok_and(|s| s.contains(") Z")),
            "the bake's group outlived the limit"
        );
        assert!(!dir.path().join("out.wasm").exists(), "a killed bake wrote its output");
    }
}
