//! Who made a model: bundle signatures in the OpenSSF Model Signing format.
//!
//! A signature is `model.sig` beside the bundle's files: a Sigstore bundle
//! (`application/vnd.dev.sigstore.bundle.v0.3+json`) whose DSSE envelope carries an in-toto
//! statement (predicate `https://model_signing/signature/v1.0`) that lists every file of the
//! bundle with its sha256, signed with an ECDSA P-256 key over the envelope's PAE. That is
//! what PyPI `model-signing` (the format's reference implementation) writes with
//! `model_signing sign key` and checks with `model_signing verify key`; the tests run both
//! against this crate, in both directions.
//!
//! The digests in `manifest.json` say the files belong together; the signature says who put
//! them together. Verification here is strict where the reference is lenient: the signed files
//! must be exactly the files given (none missing, none extra), each with its digest, and the
//! key must be one the caller trusts.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The signature's file name in a bundle directory (`model_signing`'s default).
pub const SIGNATURE_FILE: &str = "model.sig";
/// The Sigstore bundle media type `model_signing` 1.x writes.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The model-signing predicate (v1.0: one digest per file).
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";

/// A signature that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The private key is not a PEM ECDSA P-256 key (PKCS#8 or SEC1).
    #[error(
        "the signing key is not a PEM-encoded ECDSA P-256 private key (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`): {reason}"
    )]
    BadKey {
        /// What the PEM decoder said.
        reason: String,
    },
    /// A file name that is not a relative path inside the bundle.
    #[error("cannot sign `{file}`: {reason}")]
    BadFile {
        /// The name given.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a signature was refused. [`VerifyError::reason`] is the short label metrics use.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No `model.sig` where one is required.
    #[error("the model is not signed (no `{SIGNATURE_FILE}`), and a signature is required")]
    Missing,
    /// Not a model-signing Sigstore bundle, or a payload it cannot be.
    #[error("`{SIGNATURE_FILE}` is not a model-signing signature: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// Signed with a key nobody configured.
    #[error("`{SIGNATURE_FILE}` was signed with a key that is not trusted (key hint `{hint}`; trusted: {trusted})")]
    UntrustedKey {
        /// The hint the signature names.
        hint: String,
        /// The trusted keys' hints.
        trusted: String,
    },
    /// The signature does not verify with the key it names.
    #[error(
        "`{SIGNATURE_FILE}` does not verify with trusted key `{hint}`: the signature or the signed statement was altered"
    )]
    BadSignature {
        /// The key tried.
        hint: String,
    },
    /// Signed, but not these files.
    #[error("`{SIGNATURE_FILE}` is valid but does not cover these files: {reason}")]
    FilesDiffer {
        /// Which file, and how.
        reason: String,
    },
}

impl VerifyError {
    /// A short, bounded label for metrics: `missing`, `malformed`, `untrusted_key`,
    /// `bad_signature` or `files_differ`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed { .. } => "malformed",
            Self::UntrustedKey { .. } => "untrusted_key",
            Self::BadSignature { .. } => "bad_signature",
            Self::FilesDiffer { .. } => "files_differ",
        }
    }
}

fn malformed(reason: impl Into<String>) -> VerifyError {
    VerifyError::Malformed { reason: reason.into() }
}

/// A public key and its hint: the sha256 of its PEM `PUBLIC KEY` form, which is how
/// `model_signing` names the key in a bundle (`verificationMaterial.publicKey.hint`).
#[derive(Clone)]
pub struct PublicKey {
    key: VerifyingKey,
    hint: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.hint)
    }
}

impl PublicKey {
    /// From a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `openssl ec -pubout` writes it.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let key = VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|e| format!("not a PEM ECDSA P-256 public key (`-----BEGIN PUBLIC KEY-----`): {e}"))?;
        Ok(Self::from_key(key))
    }

    fn from_key(key: VerifyingKey) -> Self {
        // The hint is over the canonical PEM (64-column base64, LF), as Python's
        // `cryptography` writes it; a key read from a file with other line breaks gets the
        // same hint.
        let pem = key.to_public_key_pem(LineEnding::LF).expect("a P-256 key encodes");
        Self { key, hint: hex(&Sha256::digest(pem.as_bytes())) }
    }

    /// The key's hint (hex sha256 of its PEM form).
    pub fn hint(&self) -> &str {
        &self.hint
    }

    /// The PEM `PUBLIC KEY` form.
    pub fn to_pem(&self) -> String {
        self.key.to_public_key_pem(LineEnding::LF).expect("a P-256 key encodes")
    }
}

/// A signer's private key (the trainer's, from its environment: a CI secret).
pub struct PrivateKey {
    key: SigningKey,
    public: PublicKey,
}

impl fmt::Debug for PrivateKey {
    // Never the key itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(public {})", self.public.hint)
    }
}

impl PrivateKey {
    /// From PEM: PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`, what `openssl ecparam
    /// -genkey` writes). Encrypted keys are not supported.
    pub fn from_pem(pem: &str) -> Result<Self, SignError> {
        let pem = pem.trim();
        let key = if pem.contains("BEGIN EC PRIVATE KEY") {
            p256::SecretKey::from_sec1_pem(pem).map(SigningKey::from).map_err(|e| e.to_string())
        } else {
            SigningKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())
        }
        .map_err(|reason| SignError::BadKey { reason })?;
        let public = PublicKey::from_key(*key.verifying_key());
        Ok(Self { key, public })
    }

    /// A new random key (the local loop makes one per state dir, as it makes its other
    /// secrets).
    pub fn generate() -> Self {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let public = PublicKey::from_key(*key.verifying_key());
        Self { key, public }
    }

    /// PKCS#8 PEM (`PRIVATE KEY`), what [`PrivateKey::from_pem`] and `model_signing` read.
    pub fn to_pem(&self) -> String {
        use p256::pkcs8::EncodePrivateKey as _;
        self.key.to_pkcs8_pem(LineEnding::LF).expect("a P-256 key encodes").to_string()
    }

    /// Its public key (what verifiers configure).
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

/// The public keys a verifier accepts (several, so a key can be rotated: trust the new one,
/// sign with it, then drop the old one).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
}

impl TrustedKeys {
    /// From PEM texts, each one or more `PUBLIC KEY` blocks; `source` names each for errors.
    pub fn from_pems<'a>(pems: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, String> {
        let mut keys: Vec<PublicKey> = Vec::new();
        for (source, text) in pems {
            let blocks = pem_blocks(text);
            if blocks.is_empty() {
                return Err(format!("{source}: no `-----BEGIN PUBLIC KEY-----` block"));
            }
            for block in blocks {
                keys.push(PublicKey::from_pem(&block).map_err(|e| format!("{source}: {e}"))?);
            }
        }
        Ok(Self::from_keys(keys))
    }

    /// Exactly these keys (duplicates dropped).
    pub fn from_keys(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        let mut out: Vec<PublicKey> = Vec::new();
        for key in keys {
            if !out.iter().any(|k| k.hint == key.hint) {
                out.push(key);
            }
        }
        Self { keys: out }
    }

    /// No key configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every trusted key in PEM, one after another (what a page that checks signatures is
    /// given).
    pub fn to_pem(&self) -> String {
        self.keys.iter().map(PublicKey::to_pem).collect()
    }

    /// The hints of the trusted keys.
    pub fn hints(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.hint.as_str()).collect()
    }

    fn by_hint(&self, hint: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.hint == hint)
    }
}

/// Every `-----BEGIN PUBLIC KEY-----` … `-----END PUBLIC KEY-----` block of `text`.
fn pem_blocks(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(end) = rest[start..].find(END) else { break };
        out.push(rest[start..start + end + END.len()].to_owned());
        rest = &rest[start + end + END.len()..];
    }
    out
}

/// What a valid signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The hint of the key that signed (one of the trusted ones).
    pub key_hint: String,
    /// The statement's model name (informative only: `model_signing` takes the folder's name).
    pub model_name: String,
}

/// DSSE's pre-authentication encoding of an in-toto payload (what is signed).
fn pae(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {PAYLOAD_TYPE} {} ", PAYLOAD_TYPE.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

fn check_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\\')
        || name.split('/').any(|part| part.is_empty() || part == "." || part == "..");
    match bad {
        true => Err("not a relative path inside the bundle".into()),
        false if name == SIGNATURE_FILE => Err("the signature cannot sign itself".into()),
        false => Ok(()),
    }
}

/// The in-toto statement over `files` (name → sha256), in `model_signing`'s shape: resources
/// sorted by name, the subject's digest the sha256 over their digests in that order.
fn statement(model_name: &str, files: &BTreeMap<String, [u8; 32]>) -> Value {
    let mut root = Sha256::new();
    let resources: Vec<Value> = files
        .iter()
        .map(|(name, digest)| {
            root.update(digest);
            json!({ "name": name, "algorithm": "sha256", "digest": hex(digest) })
        })
        .collect();
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{ "name": model_name, "digest": { "sha256": hex(&root.finalize()) } }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "resources": resources,
            // What `model_signing verify` needs to hash a folder the same way: each file on
            // its own, sha256, no symlinks, nothing ignored.
            "serialization": { "method": "files", "hash_type": "sha256", "allow_symlinks": false, "ignore_paths": [] },
        },
    })
}

/// Signs `files` (name relative to the bundle folder, bytes) as the model `model_name`;
/// returns the bytes of `model.sig`.
pub fn sign<'a>(
    model_name: &str,
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    key: &PrivateKey,
) -> Result<Vec<u8>, SignError> {
    let mut digests = BTreeMap::new();
    for (name, bytes) in files {
        check_name(name).map_err(|reason| SignError::BadFile { file: name.to_owned(), reason })?;
        if digests.insert(name.to_owned(), Sha256::digest(bytes).into()).is_some() {
            return Err(SignError::BadFile { file: name.to_owned(), reason: "given twice".into() });
        }
    }
    let payload = serde_json::to_vec_pretty(&statement(model_name, &digests)).expect("JSON");
    let sig: Signature = key.key.sign(&pae(&payload));
    let der: DerSignature = sig.to_der();
    let bundle = json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": { "publicKey": { "hint": key.public.hint }, "tlogEntries": [] },
        "dsseEnvelope": {
            "payload": B64.encode(&payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{ "sig": B64.encode(der.as_bytes()), "keyid": "" }],
        },
    });
    Ok(serde_json::to_vec_pretty(&bundle).expect("JSON"))
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Result<&'v str, VerifyError> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).ok_or_else(|| malformed(format!("no `{}`", path.join("."))))?;
    }
    cur.as_str().ok_or_else(|| malformed(format!("`{}` is not a string", path.join("."))))
}

/// Checks `signature` (the bytes of `model.sig`) against `trusted` and `files` (name, bytes):
/// a trusted key signed a statement that lists exactly these files with these digests.
pub fn verify<'a>(
    signature: &[u8],
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    trusted: &TrustedKeys,
) -> Result<Verified, VerifyError> {
    let bundle: Value = serde_json::from_slice(signature).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let media = str_at(&bundle, &["mediaType"])?;
    if media != BUNDLE_MEDIA_TYPE {
        return Err(malformed(format!("media type `{media}`, expected `{BUNDLE_MEDIA_TYPE}`")));
    }
    let envelope = bundle
        .get("dsseEnvelope")
        .ok_or_else(|| malformed("no `dsseEnvelope` (a certificate or message signature?)"))?;
    let payload_type = str_at(envelope, &["payloadType"])?;
    if payload_type != PAYLOAD_TYPE {
        return Err(malformed(format!("payload type `{payload_type}`, expected `{PAYLOAD_TYPE}`")));
    }
    let payload = B64.decode(str_at(envelope, &["payload"])?).map_err(|e| malformed(format!("payload: {e}")))?;
    let signatures = envelope["signatures"].as_array().filter(|a| a.len() == 1);
    let sig_b64 = signatures
        .and_then(|a| a[0]["sig"].as_str())
        .ok_or_else(|| malformed("`dsseEnvelope.signatures` is not exactly one signature"))?;
    let sig_der = B64.decode(sig_b64).map_err(|e| malformed(format!("signature: {e}")))?;

    // The key: the one the hint names, which must be trusted. A bundle without a hint (the
    // pre-1.0 format) is tried against every trusted key.
    let hint = bundle["verificationMaterial"]["publicKey"]["hint"].as_str().unwrap_or_default();
    let candidates: Vec<&PublicKey> = match hint {
        "" => trusted.keys.iter().collect(),
        h => trusted.by_hint(h).into_iter().collect(),
    };
    if candidates.is_empty() {
        return Err(VerifyError::UntrustedKey {
            hint: if hint.is_empty() { "(none)".into() } else { hint.to_owned() },
            trusted: match trusted.hints() {
                h if h.is_empty() => "no key is configured".into(),
                h => h.join(", "),
            },
        });
    }
    let sig = Signature::from_der(&sig_der).map_err(|e| malformed(format!("signature is not DER ECDSA: {e}")))?;
    let message = pae(&payload);
    let key = candidates.into_iter().find(|k| k.key.verify(&message, &sig).is_ok()).ok_or_else(|| {
        VerifyError::BadSignature { hint: if hint.is_empty() { "(none)".into() } else { hint.to_owned() } }
    })?;

    // Only now is the payload trusted enough to read.
    let statement: Value =
        serde_json::from_slice(&payload).map_err(|e| malformed(format!("payload is not JSON: {e}")))?;
    let kind = str_at(&statement, &["_type"])?;
    if kind != STATEMENT_TYPE {
        return Err(malformed(format!("statement type `{kind}`, expected `{STATEMENT_TYPE}`")));
    }
    let predicate_type = str_at(&statement, &["predicateType"])?;
    if predicate_type != PREDICATE_TYPE {
        return Err(malformed(format!("predicate `{predicate_type}`, expected `{PREDICATE_TYPE}`")));
    }
    let method = str_at(&statement, &["predicate", "serialization", "method"])?;
    let hash_type = str_at(&statement, &["predicate", "serialization", "hash_type"])?;
    if method != "files" || hash_type != "sha256" {
        return Err(malformed(format!(
            "serialization `{method}` with `{hash_type}`; Stacktag verifies `files` with `sha256` (sign with `model_signing sign key` defaults)"
        )));
    }
    let subjects =
        statement["subject"].as_array().filter(|s| s.len() == 1).ok_or_else(|| malformed("not exactly one subject"))?;
    let model_name = str_at(&subjects[0], &["name"])?.to_owned();
    let root_expected = str_at(&subjects[0], &["digest", "sha256"])?;
    let resources = statement["predicate"]["resources"].as_array().ok_or_else(|| malformed("no resources"))?;
    let mut signed: BTreeMap<&str, &str> = BTreeMap::new();
    let mut root = Sha256::new();
    for r in resources {
        let (name, algorithm, digest) = (str_at(r, &["name"])?, str_at(r, &["algorithm"])?, str_at(r, &["digest"])?);
        if algorithm != "sha256" {
            return Err(malformed(format!("`{name}` is hashed with `{algorithm}`, not sha256")));
        }
        let raw =
            unhex(digest).ok_or_else(|| malformed(format!("`{name}`: digest `{digest}` is not 32 bytes of hex")))?;
        root.update(raw);
        if signed.insert(name, digest).is_some() {
            return Err(malformed(format!("`{name}` is listed twice")));
        }
    }
    if !hex(&root.finalize()).eq_ignore_ascii_case(root_expected) {
        return Err(malformed("the subject's digest does not match the resources"));
    }

    let mut given: BTreeMap<&str, String> = BTreeMap::new();
    for (name, bytes) in files {
        given.insert(name, hex(&Sha256::digest(bytes)));
    }
    for (name, digest) in &given {
        match signed.get(name) {
            None => return Err(VerifyError::FilesDiffer { reason: format!("`{name}` is not signed") }),
            Some(d) if !d.eq_ignore_ascii_case(digest) => {
                return Err(VerifyError::FilesDiffer { reason: format!("`{name}` differs from what was signed") });
            }
            Some(_) => {}
        }
    }
    if let Some(missing) = signed.keys().find(|n| !given.contains_key(*n)) {
        return Err(VerifyError::FilesDiffer { reason: format!("`{missing}` was signed but is not here") });
    }
    Ok(Verified { key_hint: key.hint.clone(), model_name })
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
