//! Any bytes, turned into a method, a path, a content type and a body, go through the service
//! the Spin component serves. It must answer (never panic), and always well: a wire type on
//! 200, a client error with `{"error": {"code", "message"}}` otherwise, never a 500. The
//! decoding and the judgement live in `src/case.rs`, which the native seed replay test
//! (`edge-classifier/tests/it/fuzz_seeds.rs`) shares.
#![no_main]

use std::sync::LazyLock;

use edge_classifier::Classifier;
use edge_classifier::bundle::read_verified_dir;
use libfuzzer_sys::fuzz_target;

#[path = "../src/case.rs"]
mod case;

static CLASSIFIER: LazyLock<Classifier> = LazyLock::new(|| {
    let dir = std::env::var("STACKTAG_BUNDLE_DIR")
        .expect("set STACKTAG_BUNDLE_DIR to a bundle directory (scripts/fuzz-edge.sh does)");
    let bundle =
        read_verified_dir(std::path::Path::new(&dir)).unwrap_or_else(|e| panic!("`{dir}`: {e}"));
    Classifier::load(bundle.files()).unwrap_or_else(|e| panic!("`{dir}` does not load: {e}"))
});

fuzz_target!(|data: &[u8]| {
    if let Err(e) = case::check(&CLASSIFIER, data) {
        panic!("{e}");
    }
});
