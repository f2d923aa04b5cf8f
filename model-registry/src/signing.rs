//! Who made a version: the trainer signs the bundle it registers, every reader verifies the
//! signature against the keys it trusts before anything else looks at the files. The format
//! (OpenSSF Model Signing) is [`model_signature`]'s; this is the policy.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
pub use model_signature::{PrivateKey, PublicKey, SIGNATURE_FILE, TrustedKeys, VerifyError};

/// The variables [`Signing::from_lookup`] reads, for the trainer and registry-sync alike.
pub mod env_vars {
    /// The signing key itself, PEM (a CI secret). Takes precedence over the file.
    pub const SIGNING_KEY: &str = "STACKTAG_SIGNING_KEY";
    /// A file holding the signing key, PEM.
    pub const SIGNING_KEY_FILE: &str = "STACKTAG_SIGNING_KEY_FILE";
    /// Who signs, as people should read it in MLflow (e.g. `github-actions retrain.yml`).
    pub const SIGNER: &str = "STACKTAG_SIGNER";
    /// Files of trusted public keys (PEM, one or more each), separated by `,`.
    pub const TRUSTED_KEYS: &str = "STACKTAG_TRUSTED_KEYS";
    /// `true`/`false`: refuse unsigned versions. Default: `true` once a key is trusted.
    pub const REQUIRE_SIGNATURE: &str = "STACKTAG_REQUIRE_SIGNATURE";
}

/// Signing and verification settings of one [`crate::Registry`].
#[derive(Debug, Clone, Default)]
pub struct Signing {
    /// Signs what [`crate::register()`] uploads.
    pub key: Option<Arc<PrivateKey>>,
    /// Who signs (the version's `stacktag.signature.signer` tag).
    pub signer: Option<String>,
    /// Keys a downloaded version's signature must verify with.
    pub trusted: TrustedKeys,
    /// Refuse a version without a signature.
    pub required: bool,
}

impl Signing {
    /// From the variables of [`env_vars`] through `lookup` (the environment, or a test's).
    /// A key that does not load, a trusted-key file that does not read, or a required
    /// signature with no trusted key is an error naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |k: &str| lookup(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let key = match (get(env_vars::SIGNING_KEY), get(env_vars::SIGNING_KEY_FILE)) {
            (Some(pem), _) => Some(PrivateKey::from_pem(&pem).with_context(|| format!("`{}`", env_vars::SIGNING_KEY))?),
            (None, Some(path)) => {
                let pem = std::fs::read_to_string(&path)
                    .with_context(|| format!("`{}`: cannot read `{path}`", env_vars::SIGNING_KEY_FILE))?;
                Some(
                    PrivateKey::from_pem(&pem)
                        .with_context(|| format!("`{}` (`{path}`)", env_vars::SIGNING_KEY_FILE))?,
                )
            }
            (None, None) => None,
        };
        let files: Vec<String> = get(env_vars::TRUSTED_KEYS)
            .map(|v| v.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let trusted = trusted_keys(&files).with_context(|| format!("`{}`", env_vars::TRUSTED_KEYS))?;
        let required = match get(env_vars::REQUIRE_SIGNATURE).as_deref() {
            None => !trusted.is_empty(),
            Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => anyhow::bail!("`{}` is `{other}`: say `true` or `false`", env_vars::REQUIRE_SIGNATURE),
        };
        Self { key: key.map(Arc::new), signer: get(env_vars::SIGNER), trusted, required }.checked()
    }

    /// Refuses a policy that can never pass: a signature required, no key to check it with.
    pub fn checked(self) -> anyhow::Result<Self> {
        if self.required && self.trusted.is_empty() {
            anyhow::bail!(
                "a signature is required but no trusted public key is configured (`{}` or `--trusted-key`)",
                env_vars::TRUSTED_KEYS
            );
        }
        Ok(self)
    }

    /// Checks the signature of the bundle in `dir` whose files are `names` (the manifest and
    /// what it lists; `model.sig` beside them if the version had one). `Ok(None)`: unsigned
    /// and allowed; `Ok(Some(hint))`: signed by that trusted key.
    pub fn verify_dir(&self, dir: &Path, names: &[String]) -> Result<Option<String>, VerifyError> {
        let sig_path = dir.join(SIGNATURE_FILE);
        let signature = match std::fs::read(&sig_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return if self.required { Err(VerifyError::Missing) } else { Ok(None) };
            }
            Err(e) => return Err(VerifyError::Malformed { reason: format!("cannot read it: {e}") }),
        };
        if self.trusted.is_empty() {
            // Nothing to check it against, and nothing asked for: the files' own digests are
            // all this reader can vouch for.
            return Ok(None);
        }
        let mut files = Vec::with_capacity(names.len());
        for name in names.iter().filter(|n| n.as_str() != SIGNATURE_FILE) {
            let bytes = std::fs::read(dir.join(name))
                .map_err(|e| VerifyError::FilesDiffer { reason: format!("cannot read `{name}`: {e}") })?;
            files.push((name.as_str(), bytes));
        }
        let verified =
            model_signature::verify(&signature, files.iter().map(|(n, b)| (*n, b.as_slice())), &self.trusted)?;
        Ok(Some(verified.key_hint))
    }

    /// Signs the bundle files `names` in `dir` (writing `dir/model.sig`); with no key, does
    /// nothing. Returns the signing key's hint.
    pub fn sign_dir(&self, dir: &Path, model_name: &str, names: &[String]) -> anyhow::Result<Option<String>> {
        let sig_path = dir.join(SIGNATURE_FILE);
        let Some(key) = &self.key else { return Ok(None) };
        let mut files = Vec::with_capacity(names.len());
        for name in names {
            files.push((
                name.as_str(),
                std::fs::read(dir.join(name)).with_context(|| format!("cannot read `{name}` to sign it"))?,
            ));
        }
        let signature = model_signature::sign(model_name, files.iter().map(|(n, b)| (*n, b.as_slice())), key)?;
        std::fs::write(&sig_path, signature).with_context(|| format!("cannot write `{}`", sig_path.display()))?;
        Ok(Some(key.public_key().hint().to_owned()))
    }
}

/// The keys in `files` (each PEM, one or more keys).
pub fn trusted_keys(files: &[String]) -> anyhow::Result<TrustedKeys> {
    let mut texts = Vec::with_capacity(files.len());
    for path in files {
        texts.push((path.as_str(), std::fs::read_to_string(path).with_context(|| format!("cannot read `{path}`"))?));
    }
    TrustedKeys::from_pems(texts.iter().map(|(p, t)| (*p, t.as_str()))).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundle_and_the_format_name_the_signature_alike() {
        assert_eq!(edge_classifier::api::files::SIGNATURE, super::SIGNATURE_FILE);
    }
}
