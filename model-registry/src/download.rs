//! Fetching a version's bundle and verifying it with the serving core.

use std::path::{Path, PathBuf};

use anyhow::Context;
use edge_classifier::Classifier;
use edge_classifier::api::files;
use edge_classifier::bundle::{self, BundleError};
use mlflow_client::types::ModelVersion;

use crate::registry::Registry;

/// Why a downloaded bundle cannot be used. Never promoted, never served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidBundle {
    /// A file is missing, cut short, altered, or named outside the bundle.
    #[error(transparent)]
    Files(#[from] BundleError),
    /// No trusted signature says who made it (missing where required, untrusted, forged, or
    /// over other files).
    #[error("bundle signature refused")]
    Signature(#[source] model_signature::VerifyError),
    /// The files are intact, but the core does not load them (format, labels, graph).
    #[error("bundle does not load in the edge core")]
    Load(#[source] edge_classifier::Error),
    /// The registry holds no files for the version.
    #[error("no bundle files at `{source_uri}`: {reason}")]
    Empty {
        /// The version's source.
        source_uri: String,
        /// What the registry said.
        reason: String,
    },
}

/// Reads the bundle in `dir` through the core's one bundle reader (every listed file's size
/// and sha256, plain names only), then loads it in the serving core, which checks the format,
/// the labels and the graph. The classifier it returns is the one to evaluate or serve.
pub fn verify_bundle(dir: &Path) -> Result<Classifier, InvalidBundle> {
    let files = bundle::read_verified_dir(dir)?;
    Classifier::load(files.files()).map_err(InvalidBundle::Load)
}

/// A downloaded version: either a verified classifier or why it is unusable.
#[derive(Debug)]
pub struct Downloaded {
    /// Where the files are.
    pub dir: PathBuf,
    /// The verified classifier, or why not.
    pub classifier: Result<Classifier, InvalidBundle>,
    /// The hint of the trusted key that signed it (`None`: unsigned, and allowed).
    pub signed_by: Option<String>,
}

/// True when a failed download is the bundle's fault (nothing there, a listing MLflow should
/// never give), so the version is invalid. Anything else (unreachable, refused credentials, a
/// full disk) says nothing about the version, and must not get it rejected.
pub fn is_bundle_fault(e: &mlflow_client::Error) -> bool {
    e.is_not_found() || matches!(e, mlflow_client::Error::Artifact { .. })
}

/// The most files a bundle's manifest may list (a bundle has five); a manifest listing more is
/// refused before anything else is fetched.
pub const MAX_BUNDLE_FILES: usize = 64;

/// Downloads `version`'s bundle into `dest` and verifies it: its signature (`model.sig`, by
/// the registry's [`crate::Signing`]), then every file. Only the manifest, the files it lists
/// and the signature are fetched: whatever else the version's artifacts hold (say an `x.html` someone
/// added) is never downloaded, so never copied, served or published. Transport failures are
/// errors; a bundle that is missing, incomplete or corrupt comes back as [`InvalidBundle`].
pub async fn download_verified(reg: &Registry, version: &ModelVersion, dest: &Path) -> anyhow::Result<Downloaded> {
    // A manifest that does not parse lists nothing: it alone is written, and the bundle reader
    // below says what is wrong with it.
    let listed =
        |manifest: &[u8]| Ok(bundle::parse_manifest(manifest).map(|m| bundle::file_names(&m)).unwrap_or_default());
    let signature = [model_signature::SIGNATURE_FILE];
    let fetched =
        reg.client().download_model_version_files(version, dest, files::MANIFEST, MAX_BUNDLE_FILES, listed, &signature);
    let mut signed_by = None;
    let classifier = match fetched.await {
        // Who made it first: nothing reads a file a trusted key did not sign.
        Ok(written) => match reg.config().signing.verify_dir(dest, &written) {
            Ok(hint) => {
                signed_by = hint;
                verify_bundle(dest)
            }
            Err(e) => Err(InvalidBundle::Signature(e)),
        },
        Err(e) if is_bundle_fault(&e) => {
            Err(InvalidBundle::Empty { source_uri: version.source.clone(), reason: e.to_string() })
        }
        Err(e) => {
            return Err(anyhow::Error::from(e))
                .with_context(|| format!("cannot download version {} of `{}`", version.version, version.name));
        }
    };
    Ok(Downloaded { dir: dest.to_path_buf(), classifier, signed_by })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transport_failure_is_not_the_bundles_fault() {
        let transport = mlflow_client::Error::Transport {
            call: "artifacts list".into(),
            url: "http://127.0.0.1:9/".into(),
            retries: 3,
            reason: "connection refused".into(),
        };
        assert!(!is_bundle_fault(&transport), "an unreachable server must not reject a version");
        let unavailable = mlflow_client::Error::Unavailable {
            call: "artifacts GET".into(),
            url: "http://127.0.0.1:9/".into(),
            status: 503,
            retries: 3,
            message: "busy".into(),
        };
        assert!(!is_bundle_fault(&unavailable));
        let refused = mlflow_client::Error::Api {
            call: "artifacts list".into(),
            status: 401,
            error_code: "UNAUTHENTICATED".into(),
            message: "bad credentials".into(),
        };
        assert!(!is_bundle_fault(&refused), "refused credentials say nothing about the version");
        let missing = mlflow_client::Error::Api {
            call: "artifacts GET".into(),
            status: 404,
            error_code: "RESOURCE_DOES_NOT_EXIST".into(),
            message: "no such file".into(),
        };
        assert!(is_bundle_fault(&missing));
        let empty = mlflow_client::Error::Artifact {
            uri: "mlflow-artifacts:/1/r/artifacts/bundle".into(),
            reason: "no files there".into(),
        };
        assert!(is_bundle_fault(&empty));
    }
}
