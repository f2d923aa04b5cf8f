//! The registry version written into a bundle's `manifest.json` (`model_version`), so the edge
//! names it in every answer. The trainer stamps (and then signs) a version's files once MLflow
//! has given it a number; a reader stamps only a bundle that came without one (registered
//! before stamping, or by hand), and refuses one stamped with another version: a signed bundle
//! copied under another version number says so.

use std::path::Path;

use edge_classifier::api::files;

/// What [`stamp_version`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamped {
    /// The manifest already named this version (left byte for byte as it was).
    Already,
    /// The manifest named none; it now names this one.
    Written,
}

/// Makes `bundle/manifest.json` name `version`. A manifest naming another version is an
/// error, unless `registering` (the trainer numbering a new version, whose files may be a
/// bundle once served as another). The manifest's digests cover the other files only, so the
/// bundle stays valid; it is read back through the core's bundle reader to be sure.
pub fn stamp_version(bundle: &Path, version: &str, registering: bool) -> Result<Stamped, String> {
    let path = bundle.join(files::MANIFEST);
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    // Edited as JSON, not through `ModelManifest`, so fields this build does not know survive.
    let mut manifest: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let obj = manifest.as_object_mut().ok_or_else(|| "the manifest is not a JSON object".to_owned())?;
    match obj.get("model_version") {
        Some(serde_json::Value::String(v)) if v == version => return Ok(Stamped::Already),
        Some(serde_json::Value::Null) | None => {}
        Some(_) if registering => {}
        Some(other) => {
            return Err(format!(
                "the manifest names version {other} but this is version {version}: the bundle was made for another version"
            ));
        }
    }
    obj.insert("model_version".into(), serde_json::Value::String(version.to_owned()));
    let out = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    let tmp = bundle.join(".manifest.json.tmp");
    std::fs::write(&tmp, out).and_then(|()| std::fs::rename(&tmp, &path)).map_err(|e| e.to_string())?;
    let files = edge_classifier::bundle::read_verified_dir(bundle).map_err(|e| e.to_string())?;
    let read_back = edge_classifier::bundle::parse_manifest(&files.manifest).map_err(|e| e.to_string())?;
    match read_back.model_version.as_deref() {
        Some(v) if v == version => Ok(Stamped::Written),
        other => Err(format!("read back `model_version` {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_copy() -> tempfile::TempDir {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../edge-classifier/tests/fixtures/tiny");
        let dir = tempfile::tempdir().expect("tmp");
        for entry in std::fs::read_dir(&src).expect("fixture") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
        dir
    }

    #[test]
    fn a_reader_stamps_once_keeps_a_match_and_refuses_another_version() {
        let dir = tiny_copy();
        let manifest = dir.path().join(files::MANIFEST);
        assert_eq!(stamp_version(dir.path(), "7", false), Ok(Stamped::Written));
        let stamped = std::fs::read(&manifest).expect("manifest");
        assert_eq!(stamp_version(dir.path(), "7", false), Ok(Stamped::Already));
        assert_eq!(std::fs::read(&manifest).expect("manifest"), stamped, "a match is left byte for byte");
        let err = stamp_version(dir.path(), "8", false).expect_err("made for version 7");
        assert!(err.contains("\"7\"") && err.contains("version 8"), "{err}");
        assert_eq!(std::fs::read(&manifest).expect("manifest"), stamped, "a refusal changes nothing");
        // Registering numbers the files anew.
        assert_eq!(stamp_version(dir.path(), "8", true), Ok(Stamped::Written));
        let back = edge_classifier::bundle::read_verified_dir(dir.path()).expect("still a bundle");
        let m = edge_classifier::bundle::parse_manifest(&back.manifest).expect("manifest");
        assert_eq!(m.model_version.as_deref(), Some("8"));
    }
}
