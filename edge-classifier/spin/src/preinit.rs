//! Pre-initialisation: `wasmtime wizer` (driven by `edge_classifier_bake`) calls
//! `wizer-initialize` once, at bake time, with the bundle directory preopened at `/bundle`;
//! the bundle is read, verified and parsed, and the memory snapshot ships the ready classifier
//! inside the component instead of it being built per instance. The snapshot is kept small and
//! dense enough for wasmtime to map it copy-on-write: the load's heap is packed and its freed
//! blocks (the raw bundle bytes among them) are zeroed ([`heap`]).

use std::path::Path;
use std::sync::OnceLock;

use edge_classifier::Classifier;
use edge_classifier::bundle::read_verified_dir;

mod heap;

/// Where `wizer-initialize` finds the bundle to bake in: the guest path the bake preopens
/// (`edge_classifier_bake::GUEST_BUNDLE_DIR`).
const BUNDLE_DIR: &str = "/bundle";

/// The baked-in classifier. Only `wizer-initialize` sets it, so it lives in the snapshot; in
/// the generic component (never pre-initialised) it stays empty and every request gets 503.
static CLASSIFIER: OnceLock<Classifier> = OnceLock::new();

/// The baked-in classifier, if this component has one.
pub fn classifier() -> Option<&'static Classifier> {
    CLASSIFIER.get()
}

unsafe extern "C" {
    /// wasi-libc: closes the preopened directories it opened on first use of a path and forgets
    /// them. Only memories and globals are snapshotted, so a table of the build machine's
    /// preopen handles must not outlive pre-initialisation (wasi-libc provides this for wizer).
    fn __wasilibc_reset_preopens();
}

spin_sdk::wit_bindgen::generate!({
    inline: "package stacktag:edge-classifier; world preinit { export wizer-initialize: func(); }",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
});

/// The generic component is compiled once; each bundle is baked into a copy of it in seconds.
struct Preinit;

impl Guest for Preinit {
    fn wizer_initialize() {
        if CLASSIFIER.get().is_some() {
            return;
        }
        let dir = Path::new(BUNDLE_DIR);
        // Without a preopened bundle (wizer run without `--dir`) the component stays generic:
        // it answers 503, it does not trap.
        let loaded = dir.is_dir().then(|| {
            // Read through the system allocator, before the pre-init heap takes its pages:
            // reading a file also allocates in wasi-libc's own heap (and the host copies the
            // bytes in through it), and a 3 MB model read that way while the pre-init heap
            // was growing trapped with an out-of-bounds access.
            let bundle = read_verified_dir(dir).map_err(|e| e.to_string())?;
            heap::preinitialise(move || {
                let classifier = Classifier::load(bundle.files()).map_err(|e| edge_classifier::chain(&e));
                // Freed while pre-initialising, so the raw bytes are zeroed and left out of
                // the snapshot.
                drop(bundle);
                classifier
            })
        });
        // SAFETY: every file `read_verified_dir` opened is closed again, and nothing in this
        // instance uses a path afterwards.
        unsafe { __wasilibc_reset_preopens() };
        match loaded {
            Some(Ok(classifier)) => {
                let _ = CLASSIFIER.set(classifier);
            }
            // wizer reports the trap with this message, and the bake stops.
            Some(Err(e)) => panic!("the bundle in `{BUNDLE_DIR}` does not load: {e}"),
            None => {}
        }
    }
}

export!(Preinit);
