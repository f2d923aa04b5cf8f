//! Baking: the generic component without a model answers 503 and never traps, a bundle bakes
//! into it in seconds without a Rust compile (`edge_classifier_bake`, which registry-sync and
//! `scripts/build-edge.sh bake` run), and a bundle that does not verify fails the bake and
//! leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use edge_classifier_bake::{BakeError, Baked, Baker};

use edge_classifier::Classifier;
use edge_classifier::api::{ModelManifest, files};
use edge_classifier::bundle::read_verified_dir;

use crate::host::{Build, Instances, Server, precompile, root, wasmtime};

/// The golden tiny bundle: a second model, different from the one test-edge.sh baked.
fn tiny() -> PathBuf {
    root().join("edge-classifier/tests/fixtures/tiny")
}

/// A fresh directory under `CARGO_TARGET_TMPDIR` for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// The real bake, into the generic build.
fn bake(bundle: &Path, out: &Path) -> Result<Baked, BakeError> {
    Baker { wasmtime: wasmtime(), generic: Build::Generic.wasm() }.bake(bundle, out, &())
}

/// Checks that every route answers 503 `unavailable` saying that no model is baked in.
fn expect_unavailable(server: &Server) {
    let requests: [(&str, &str, Option<&str>, &[u8]); 4] = [
        ("POST", "/classify", Some("application/json"), br#"{"text": "how do i sort a list"}"#),
        ("POST", "/classify", Some("text/plain"), b"how do i sort a list"),
        ("GET", "/model", None, b""),
        ("GET", "/health", None, b""),
    ];
    // Twice round: an instance that answered once must still answer (no trap, no poisoning).
    for (method, path, content_type, body) in requests.iter().chain(&requests) {
        let answer = server.send(method, path, *content_type, body);
        let what = format!("{method} {path}");
        let value = answer.json_with(503, &what);
        assert_eq!(value["error"]["code"], "unavailable", "{what}: {value}");
        let message = value["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("no model is baked"), "{what}: {message}");
    }
}

#[test]
fn the_generic_component_answers_503_unavailable_without_trapping() {
    for instances in [Instances::Fresh, Instances::Reused] {
        expect_unavailable(&Server::start_build(Build::Generic, instances));
    }
}

#[test]
fn wizer_without_a_bundle_leaves_the_component_generic() {
    let dir = scratch("wizer-without-bundle");
    let out = dir.join("no-bundle.wasm");
    // The bake's wizer call, minus the preopened bundle directory.
    let status = Command::new(wasmtime())
        .args(["wizer", "-Scli", "-Shttp", "--keep-init-func=true"])
        .arg(Build::Generic.wasm())
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run wasmtime wizer");
    assert!(status.success(), "wizer without a bundle failed: {status}");
    let cwasm = precompile(&out, "no-bundle");
    expect_unavailable(&Server::serve(&cwasm, Instances::Fresh, &[]));
}

#[test]
fn a_second_bundle_bakes_into_the_same_generic_build() {
    let dir = scratch("bake-tiny");
    let out = dir.join("tiny.wasm");
    let baked = bake(&tiny(), &out).unwrap_or_else(|e| panic!("baking the tiny bundle failed: {e}"));
    assert!(!baked.snapshot.is_empty() && baked.snapshot.iter().all(|s| s.mapped()), "{:?}", baked.snapshot);
    assert_eq!(baked.bytes, std::fs::metadata(&out).expect("the baked file").len());

    let bundle = read_verified_dir(&tiny()).expect("the tiny bundle verifies");
    let native = Classifier::load(bundle.files()).expect("the tiny bundle loads");
    let server = Server::serve(&precompile(&out, "tiny"), Instances::Fresh, &[]);
    let model = server.send("GET", "/model", None, b"");
    assert_eq!(model.status, 200);
    let manifest: ModelManifest = serde_json::from_slice(&model.body).expect("a manifest");
    assert_eq!(&manifest, native.manifest(), "the tiny bundle is what is served");
    let text = "how do i print a list in blank";
    let edge = server.classify(text, "the tiny bundle's answer");
    assert_eq!(edge.label, native.classify(text).expect("classify").label);
}

#[test]
fn a_tampered_bundle_fails_the_bake_and_leaves_no_output() {
    let dir = scratch("bake-tampered");
    let bundle = dir.join("bundle");
    std::fs::create_dir(&bundle).expect("mkdir");
    for entry in std::fs::read_dir(tiny()).expect("the tiny fixture") {
        let path = entry.expect("an entry").path();
        std::fs::copy(&path, bundle.join(path.file_name().expect("a name"))).expect("copy");
    }
    // Same size, one bit off: only the digest check can tell.
    let model = bundle.join(files::MODEL);
    let mut bytes = std::fs::read(&model).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&model, bytes).expect("write");

    let out = dir.join("out/tampered.wasm");
    let err = bake(&bundle, &out).expect_err("a tampered bundle was baked");
    let message = format!("{err:#}");
    assert!(matches!(err, BakeError::Bundle { .. }), "{message}");
    assert!(message.contains("`model.onnx`"), "the error names the file: {message}");
    assert!(!out.exists(), "a failed bake left `{}`", out.display());
    let left: Vec<_> = std::fs::read_dir(dir.join("out"))
        .map(|entries| entries.map(|e| e.expect("an entry").file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "a failed bake left {left:?}");
}
