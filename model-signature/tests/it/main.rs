//! The signature format against its reference implementation, PyPI `model-signing` (in the
//! project's venv): what this crate signs, `model_signing verify key` accepts; what
//! `model_signing sign key` signs, this crate verifies; and each way a signature can be wrong
//! is refused by both.

use std::path::{Path, PathBuf};
use std::process::Command;

use model_signature::{PrivateKey, SIGNATURE_FILE, TrustedKeys, VerifyError, sign, verify};

fn venv_bin(name: &str) -> PathBuf {
    let python = launcher::tools::Tools::from_env().python;
    python.parent().expect("venv bin").join(name)
}

/// A fresh P-256 key pair from Python's `cryptography` (what `model_signing` itself loads
/// keys with), as (private PEM in `format`, public PEM). `format`: `pkcs8` or `sec1`.
fn keypair(format: &str) -> (String, String) {
    let script = r#"
import sys
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ec
k = ec.generate_private_key(ec.SECP256R1())
fmt = s.PrivateFormat.PKCS8 if sys.argv[1] == "pkcs8" else s.PrivateFormat.TraditionalOpenSSL
sys.stdout.write(k.private_bytes(s.Encoding.PEM, fmt, s.NoEncryption()).decode())
sys.stdout.write(k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode())
"#;
    let out = Command::new(venv_bin("python")).args(["-c", script, format]).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("PEM");
    let split = text.find("-----BEGIN PUBLIC KEY-----").expect("public part");
    (text[..split].to_owned(), text[split..].to_owned())
}

/// A bundle-shaped folder: a manifest and the files it would list.
fn bundle(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let files = vec![
        ("manifest.json".to_owned(), br#"{"format":3,"files":{}}"#.to_vec()),
        ("model.onnx".to_owned(), (0..5000u32).map(|i| (i * 31 % 251) as u8).collect()),
        ("tokenizer.json".to_owned(), b"{\"model\":{}}".to_vec()),
    ];
    std::fs::create_dir_all(dir).expect("dir");
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).expect("write");
    }
    files
}

fn pairs(files: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect()
}

/// `model_signing verify key`: Ok(()) or its output.
fn reference_verify(dir: &Path, public_pem: &Path) -> Result<(), String> {
    let out = Command::new(venv_bin("model_signing"))
        .args(["verify", "key", "--public_key"])
        .arg(public_pem)
        .arg("--signature")
        .arg(dir.join(SIGNATURE_FILE))
        .arg(dir)
        .output()
        .expect("model_signing");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    match out.status.success() && text.contains("Verification succeeded") {
        true => Ok(()),
        false => Err(text),
    }
}

fn reference_sign(dir: &Path, private_pem: &Path) {
    let out = Command::new(venv_bin("model_signing"))
        .args(["sign", "key", "--private_key"])
        .arg(private_pem)
        .arg("--signature")
        .arg(dir.join(SIGNATURE_FILE))
        .arg(dir)
        .output()
        .expect("model_signing");
    assert!(out.status.success(), "model_signing sign: {}", String::from_utf8_lossy(&out.stderr));
}

fn trusted(pems: &[&str]) -> TrustedKeys {
    TrustedKeys::from_pems(pems.iter().map(|p| ("test key", *p))).expect("keys")
}

#[test]
fn what_stacktag_signs_model_signing_verifies() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (private, public) = keypair("pkcs8");
    let key = PrivateKey::from_pem(&private).expect("private key");
    let pub_path = tmp.path().join("key.pub");
    std::fs::write(&pub_path, &public).expect("pub");
    let dir = tmp.path().join("bundle");
    let files = bundle(&dir);
    let sig = sign("stacktag", pairs(&files), &key).expect("sign");
    std::fs::write(dir.join(SIGNATURE_FILE), &sig).expect("sig");

    reference_verify(&dir, &pub_path).unwrap_or_else(|e| panic!("model_signing refused ours: {e}"));
    let ok = verify(&sig, pairs(&files), &trusted(&[&public])).expect("we accept our own");
    assert_eq!(ok.key_hint, key.public_key().hint());

    // A changed file: both refuse (so the reference check above could have failed).
    std::fs::write(dir.join("model.onnx"), b"another model").expect("tamper");
    assert!(reference_verify(&dir, &pub_path).is_err(), "model_signing accepted a changed file");
    let mut changed = files.clone();
    changed[1].1 = b"another model".to_vec();
    let err = verify(&sig, pairs(&changed), &trusted(&[&public])).expect_err("changed file");
    assert!(matches!(err, VerifyError::FilesDiffer { .. }) && err.to_string().contains("model.onnx"), "{err}");
}

#[test]
fn what_model_signing_signs_stacktag_verifies_and_each_forgery_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (private, public) = keypair("sec1");
    let (_, stranger) = keypair("pkcs8");
    let key_path = tmp.path().join("key.pem");
    std::fs::write(&key_path, &private).expect("key");
    let dir = tmp.path().join("bundle");
    let files = bundle(&dir);
    reference_sign(&dir, &key_path);
    let sig = std::fs::read(dir.join(SIGNATURE_FILE)).expect("model.sig");

    // Accepted, and the hint is the one model_signing wrote for this key.
    let ok = verify(&sig, pairs(&files), &trusted(&[&public])).expect("model_signing's signature");
    let written: serde_json::Value = serde_json::from_slice(&sig).expect("json");
    assert_eq!(ok.key_hint, written["verificationMaterial"]["publicKey"]["hint"].as_str().expect("hint"));
    assert_eq!(ok.model_name, "bundle", "model_signing names the model after its folder");
    // Rotation: the old and the new key both trusted.
    verify(&sig, pairs(&files), &trusted(&[&stranger, &public])).expect("either of two trusted keys");

    // A key nobody trusts; no key at all.
    let err = verify(&sig, pairs(&files), &trusted(&[&stranger])).expect_err("untrusted");
    assert_eq!(err.reason(), "untrusted_key", "{err}");
    let err = verify(&sig, pairs(&files), &TrustedKeys::default()).expect_err("nothing trusted");
    assert!(err.to_string().contains("no key is configured"), "{err}");

    // A file added, a file left out.
    let mut extra = files.clone();
    extra.push(("x.html".into(), b"<script>".to_vec()));
    let err = verify(&sig, pairs(&extra), &trusted(&[&public])).expect_err("extra file");
    assert!(err.to_string().contains("`x.html` is not signed"), "{err}");
    let err = verify(&sig, pairs(&files[..2]), &trusted(&[&public])).expect_err("missing file");
    assert!(err.to_string().contains("`tokenizer.json` was signed but is not here"), "{err}");

    // The statement edited (a digest swapped for the forger's file): the signature breaks.
    let mut forged = written.clone();
    let payload = forged["dsseEnvelope"]["payload"].as_str().expect("payload").to_owned();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = String::from_utf8(b64.decode(&payload).expect("b64")).expect("utf8");
    let real = model_signature_hex(&files[1].1);
    let fake = model_signature_hex(b"forged");
    forged["dsseEnvelope"]["payload"] = b64.encode(text.replace(&real, &fake)).into();
    let forged = serde_json::to_vec(&forged).expect("json");
    let mut swapped = files.clone();
    swapped[1].1 = b"forged".to_vec();
    let err = verify(&forged, pairs(&swapped), &trusted(&[&public])).expect_err("forged statement");
    assert_eq!(err.reason(), "bad_signature", "{err}");

    // Not a signature at all.
    let err = verify(b"<html>", pairs(&files), &trusted(&[&public])).expect_err("garbage");
    assert_eq!(err.reason(), "malformed", "{err}");
}

#[test]
fn keys_are_read_strictly_and_never_printed() {
    let (private, public) = keypair("pkcs8");
    let key = PrivateKey::from_pem(&private).expect("key");
    let shown = format!("{key:?}");
    assert!(!shown.contains(&private[40..80]) && shown.contains(key.public_key().hint()), "{shown}");
    assert_eq!(key.public_key().to_pem().trim(), public.trim(), "the PEM form (and so the hint) is canonical");
    // SEC1 (`EC PRIVATE KEY`, what `openssl ecparam -genkey` writes) as Python writes it.
    let (sec1, sec1_public) = keypair("sec1");
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"), "{}", &sec1[..30]);
    let from_sec1 = PrivateKey::from_pem(&sec1).expect("SEC1 key");
    assert_eq!(from_sec1.public_key().to_pem().trim(), sec1_public.trim());
    let err = PrivateKey::from_pem(&public).expect_err("a public key is not a private key");
    assert!(err.to_string().contains("ECDSA P-256 private key"), "{err}");
    let err = TrustedKeys::from_pems([("STACKTAG_TRUSTED_KEYS", "not a key")]).expect_err("no PEM");
    assert!(err.contains("STACKTAG_TRUSTED_KEYS") && err.contains("BEGIN PUBLIC KEY"), "{err}");
    // Two keys in one text, one of them twice: two trusted keys.
    let (_, other) = keypair("sec1");
    let both = format!("{public}\n{other}\n{public}");
    assert_eq!(TrustedKeys::from_pems([("keys.pem", both.as_str())]).expect("keys").hints().len(), 2);
}

fn model_signature_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
