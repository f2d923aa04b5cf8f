//! A bundle's files and their checks: the core's only I/O.
//!
//! A bundle is the directory `trainer train --out DIR` writes. Its `manifest.json` lists the
//! size and sha256 of every other file. Every host reads a bundle through this module: the
//! trainer's export check, the promotion gate, registry-sync, the Spin component (at
//! pre-initialisation, from a preopened directory), the fuzz target and the tests call
//! [`read_verified_dir`]; the browser module, which has no file system, fetches the bytes and
//! hands them to [`crate::Classifier::load`], which checks the files it uses with the same
//! [`verify_file`]. Classifying never touches a file.

use std::path::{Component, Path};

use sha2::{Digest, Sha256};

use crate::api::{ModelManifest, files};

/// The three files of a bundle the core needs, as bytes.
#[derive(Debug, Clone, Copy)]
pub struct BundleFiles<'a> {
    /// `manifest.json`
    pub manifest: &'a [u8],
    /// `model.onnx`
    pub model: &'a [u8],
    /// `tokenizer.json`
    pub tokenizer: &'a [u8],
}

/// The three files of a bundle, owned: what [`read_verified_dir`] returns.
#[derive(Debug, Clone)]
pub struct OwnedBundle {
    /// `manifest.json`
    pub manifest: Vec<u8>,
    /// `model.onnx`
    pub model: Vec<u8>,
    /// `tokenizer.json`
    pub tokenizer: Vec<u8>,
}

impl OwnedBundle {
    /// The bytes as [`crate::Classifier::load`] takes them.
    pub fn files(&self) -> BundleFiles<'_> {
        BundleFiles { manifest: &self.manifest, model: &self.model, tokenizer: &self.tokenizer }
    }
}

/// Why a bundle's files cannot be used. Each variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// A file cannot be read (missing, a directory, no permission).
    #[error("bundle file `{file}` cannot be read: {source}")]
    Unreadable {
        /// The file name.
        file: String,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// `manifest.json` is not a valid manifest.
    #[error("bundle manifest `manifest.json` is invalid: {0}")]
    ManifestInvalid(#[source] serde_json::Error),
    /// The manifest names a file by a path, not a plain name in the bundle directory
    /// (`../model.onnx`, `a/b`, an absolute path): reading it could leave the bundle.
    #[error("bundle manifest names `{file}`, which is not a plain file name in the bundle")]
    UnsafeName {
        /// The name as the manifest gives it.
        file: String,
    },
    /// The manifest lists no digest for a file the bundle needs.
    #[error("bundle manifest has no digest for `{file}`")]
    MissingDigest {
        /// The file name.
        file: String,
    },
    /// A file's size differs from the manifest's (e.g. a truncated download).
    #[error("bundle file `{file}` has {actual} bytes, but its manifest says {expected}")]
    SizeMismatch {
        /// The file name.
        file: String,
        /// The manifest's size.
        expected: u64,
        /// The file's size.
        actual: u64,
    },
    /// A file's bytes do not match the manifest's sha256.
    #[error("bundle file `{file}` does not match its manifest digest (expected sha256 {expected}, got {actual})")]
    DigestMismatch {
        /// The file name.
        file: String,
        /// The manifest's sha256.
        expected: String,
        /// The file's sha256.
        actual: String,
    },
}

/// The files the core itself reads; the manifest must list a digest for each.
pub const REQUIRED: [&str; 2] = [files::MODEL, files::TOKENIZER];

/// Reads the bundle in `dir` and verifies it: the manifest parses, it lists the files the core
/// needs, every file it lists is a plain name in `dir` whose size and sha256 match. Returns the
/// three files [`crate::Classifier::load`] takes (which checks the format, the labels and the
/// graph). Any other file the manifest lists is checked too, and not kept.
pub fn read_verified_dir(dir: &Path) -> Result<OwnedBundle, BundleError> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|source| BundleError::Unreadable { file: name.to_owned(), source })
    };
    let manifest_bytes = read(files::MANIFEST)?;
    let manifest = parse_manifest(&manifest_bytes)?;
    for file in REQUIRED {
        if !manifest.files.contains_key(file) {
            return Err(BundleError::MissingDigest { file: file.to_owned() });
        }
    }
    let (mut model, mut tokenizer) = (None, None);
    for name in manifest.files.keys() {
        // Checked before the name is joined to `dir`: nothing outside the bundle is opened.
        if !is_plain_file_name(name) {
            return Err(BundleError::UnsafeName { file: name.clone() });
        }
        let bytes = read(name)?;
        verify_file(&manifest, name, &bytes)?;
        match name.as_str() {
            files::MODEL => model = Some(bytes),
            files::TOKENIZER => tokenizer = Some(bytes),
            _ => {}
        }
    }
    match (model, tokenizer) {
        (Some(model), Some(tokenizer)) => Ok(OwnedBundle { manifest: manifest_bytes, model, tokenizer }),
        // Unreachable after the REQUIRED check, but named rather than unwrapped.
        (None, _) => Err(BundleError::MissingDigest { file: files::MODEL.to_owned() }),
        (_, None) => Err(BundleError::MissingDigest { file: files::TOKENIZER.to_owned() }),
    }
}

/// Every file of a bundle by name: `manifest.json`, then the files its manifest lists. What a
/// consumer downloads, copies, publishes or serves, and nothing else.
pub fn file_names(manifest: &ModelManifest) -> Vec<String> {
    std::iter::once(files::MANIFEST.to_owned()).chain(manifest.files.keys().cloned()).collect()
}

/// [`file_names`] and, when `dir` holds one, the bundle's signature ([`files::SIGNATURE`]):
/// what is copied, published or served with the bundle in `dir`, so a reader further on (the
/// page) can check who made it.
pub fn shipped_names(manifest: &ModelManifest, dir: &std::path::Path) -> Vec<String> {
    let mut names = file_names(manifest);
    if dir.join(files::SIGNATURE).is_file() {
        names.push(files::SIGNATURE.to_owned());
    }
    names
}

/// Parses `manifest.json`.
pub fn parse_manifest(bytes: &[u8]) -> Result<ModelManifest, BundleError> {
    serde_json::from_slice(bytes).map_err(BundleError::ManifestInvalid)
}

/// Who hashes the files [`crate::Classifier::load_with`] compares with their manifest digests.
#[derive(Debug, Clone, Copy, Default)]
pub enum Hashes<'a> {
    /// The core, with `sha2`.
    #[default]
    Computed,
    /// The host, which hashed exactly the bytes it passes: the hex sha256 of `model.onnx` and
    /// of `tokenizer.json`. The core still compares them with the manifest (and sizes with
    /// the bytes). The browser's worker hashes the files with WebCrypto for the signature
    /// check anyway, and the core's `sha2` compiled to wasm took 61 ms of each load there
    /// (docs/benchmarks.md#web-load-profile).
    Given {
        /// `model.onnx`'s digest.
        model: &'a str,
        /// `tokenizer.json`'s digest.
        tokenizer: &'a str,
    },
}

/// Checks `bytes` against the manifest's size and sha256 for `file`.
pub fn verify_file(manifest: &ModelManifest, file: &str, bytes: &[u8]) -> Result<(), BundleError> {
    verify_hashed(manifest, file, bytes, None)
}

/// [`verify_file`], with the sha256 of `bytes` already computed (hex) when `sha256` is given.
pub(crate) fn verify_hashed(
    manifest: &ModelManifest,
    file: &str,
    bytes: &[u8],
    sha256: Option<&str>,
) -> Result<(), BundleError> {
    let expected = manifest.files.get(file).ok_or_else(|| BundleError::MissingDigest { file: file.to_owned() })?;
    if expected.bytes != bytes.len() as u64 {
        return Err(BundleError::SizeMismatch {
            file: file.to_owned(),
            expected: expected.bytes,
            actual: bytes.len() as u64,
        });
    }
    let actual = sha256.map_or_else(|| sha256_hex(bytes), str::to_ascii_lowercase);
    if !actual.eq_ignore_ascii_case(&expected.sha256) {
        return Err(BundleError::DigestMismatch { file: file.to_owned(), expected: expected.sha256.clone(), actual });
    }
    Ok(())
}

/// True when `name` is one plain file name: not empty, no separator, not `.` or `..`, not
/// absolute. Registry listings and manifests come from outside, so every name is checked
/// before it is joined to a directory.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['/', '\\', '\0'])
        && matches!(Path::new(name).components().collect::<Vec<_>>().as_slice(), [Component::Normal(_)])
}

/// Lower-case hex sha256 of `bytes`: the digest form of every manifest.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of any digest (the trainer's streamed snapshot hashes use it too).
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny");

    /// A copy of the golden bundle in a temporary directory, with `edit` applied to its
    /// manifest (the `files` entries' digests are left as they were).
    fn copy_with(edit: impl FnOnce(&mut serde_json::Value)) -> tempdir::Dir {
        let dir = tempdir::Dir::new();
        for entry in std::fs::read_dir(FIXTURE).expect("fixture") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
        let path = dir.path().join(files::MANIFEST);
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        edit(&mut manifest);
        std::fs::write(&path, serde_json::to_vec_pretty(&manifest).expect("json")).expect("write");
        dir
    }

    /// A temporary directory without a dev-dependency: the core keeps its dependency list short.
    mod tempdir {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicUsize, Ordering};

        pub struct Dir(PathBuf);

        impl Dir {
            pub fn new() -> Self {
                static N: AtomicUsize = AtomicUsize::new(0);
                let n = N.fetch_add(1, Ordering::Relaxed);
                let path = std::env::temp_dir().join(format!("stacktag-bundle-test-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&path);
                std::fs::create_dir_all(&path).expect("temp dir");
                Self(path)
            }

            pub fn path(&self) -> &Path {
                &self.0
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn the_golden_bundle_reads_and_verifies() {
        let bundle = read_verified_dir(Path::new(FIXTURE)).expect("verified");
        assert_eq!(bundle.model, std::fs::read(Path::new(FIXTURE).join(files::MODEL)).expect("model"));
        crate::Classifier::load(bundle.files()).expect("loads");
    }

    #[test]
    fn a_manifest_naming_a_file_outside_the_bundle_is_refused() {
        for name in ["../model.onnx", "/etc/passwd", "sub/model.onnx", "..", ".", "", "a\\b"] {
            let dir = copy_with(|m| {
                let digest = m["files"]["model.onnx"].clone();
                m["files"][name] = digest;
            });
            let err = read_verified_dir(dir.path()).expect_err(name);
            assert!(matches!(&err, BundleError::UnsafeName { file } if file == name), "{name:?}: {err}");
        }
    }

    #[test]
    fn a_truncated_file_is_refused_by_size_and_name() {
        let dir = copy_with(|_| {});
        let path = dir.path().join(files::TOKENIZER);
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
        let err = read_verified_dir(dir.path()).expect_err("truncated");
        assert!(matches!(&err, BundleError::SizeMismatch { file, .. } if file == files::TOKENIZER), "{err}");
    }

    #[test]
    fn a_tampered_file_of_the_same_size_is_refused_by_digest() {
        let dir = copy_with(|_| {});
        let path = dir.path().join(files::MODEL);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).expect("tamper");
        let err = read_verified_dir(dir.path()).expect_err("tampered");
        assert!(matches!(&err, BundleError::DigestMismatch { file, .. } if file == files::MODEL), "{err}");
    }

    #[test]
    fn a_missing_file_and_a_missing_digest_are_named() {
        let dir = copy_with(|_| {});
        std::fs::remove_file(dir.path().join(files::TOKENIZER)).expect("rm");
        let err = read_verified_dir(dir.path()).expect_err("missing file");
        assert!(matches!(&err, BundleError::Unreadable { file, .. } if file == files::TOKENIZER), "{err}");

        let dir = copy_with(|m| {
            m["files"].as_object_mut().expect("files").remove(files::MODEL);
        });
        let err = read_verified_dir(dir.path()).expect_err("no digest");
        assert!(matches!(&err, BundleError::MissingDigest { file } if file == files::MODEL), "{err}");
        assert!(err.to_string().contains("`model.onnx`"), "{err}");
    }

    #[test]
    fn a_manifest_that_is_not_json_is_refused() {
        let dir = copy_with(|_| {});
        std::fs::write(dir.path().join(files::MANIFEST), b"{not json").expect("write");
        assert!(matches!(read_verified_dir(dir.path()), Err(BundleError::ManifestInvalid(_))));
    }

    #[test]
    fn plain_file_names() {
        for ok in ["model.onnx", "a", "..a", "a..b", "confusion_matrix.svg"] {
            assert!(is_plain_file_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../a", "a/b", "/a", "a\\b", "a\0b", "./a"] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn hex_is_lower_case_and_padded() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
