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
/// error. The manifest's digests cover the other files only, so the bundle stays valid; it is
/// read back through the core's bundle reader to be sure.
pub fn stamp_version(bundle: &Path, version: &str) -> Result<Stamped, String> {
    let path = bundle.join(files::MANIFEST);
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    // Edited as JSON, not through `ModelManifest`, so fields this build does not know survive.
    let mut manifest: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let obj = manifest.as_object_mut().ok_or_else(|| "the manifest is not a JSON object".to_owned())?;
    match obj.get("model_version") {
        Some(serde_json::Value::String(v)) if v == version => return Ok(Stamped::Already),
        Some(serde_json::Value::Null) | None => {}
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
