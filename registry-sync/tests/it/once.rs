//! `registry-sync once`, the deploy workflow's step: the component it writes serves the
//! version it names, the bundle it writes is the stamped one, and a refused version leaves
//! nothing behind.

use mlflow_client::testing::unique_name;
use registry_sync::children::Children;
use registry_sync::instance::Instance;
use registry_sync::{OnceOutput, Selector, once};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_writes_a_component_that_serves_the_champion_and_its_stamped_bundle() {
    ensure_component();
    let (_, reg, versions) = tiny_model("once", 2, 2).await;
    let v2 = &versions[1];

    let dir = tempfile::tempdir().expect("out dir");
    let out = OnceOutput { wasm: dir.path().join("deep/edge.wasm"), bundle: Some(dir.path().join("site/bundle")) };
    // A stale file where the bundle goes is replaced, not merged into.
    std::fs::create_dir_all(dir.path().join("site/bundle")).expect("old bundle dir");
    std::fs::write(dir.path().join("site/bundle/stale.bin"), b"old").expect("stale file");

    let deployed = once(&sync_config(&reg), &Selector::Alias("champion".into()), &out).await.expect("once");
    assert_eq!(deployed.version, v2.version);
    assert_eq!(deployed.run_id, v2.run_id);

    let bundle = out.bundle.as_ref().expect("bundle dir");
    assert!(!bundle.join("stale.bin").exists(), "the old bundle dir was merged into, not replaced");
    let files = edge_classifier::bundle::read_verified_dir(bundle).expect("the written bundle verifies");
    let manifest = edge_classifier::bundle::parse_manifest(&files.manifest).expect("manifest");
    assert_eq!(manifest.model_version.as_deref(), Some(v2.version.as_str()));
    // Only the outputs are left: no temporary file or directory beside them.
    let mut left: Vec<String> = std::fs::read_dir(dir.path().join("deep"))
        .expect("list")
        .chain(std::fs::read_dir(dir.path().join("site")).expect("list"))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["bundle", "edge.wasm"]);

    // The component itself answers with the version, as the deployed one will.
    let http = http();
    let instance = Instance::start(&wasmtime(), &out.wasm, deployed.clone(), &http, &Children::none())
        .await
        .expect("wasmtime serve on the written component");
    let served: serde_json::Value =
        http.get(format!("{}/model", instance.url)).send().await.expect("model").json().await.expect("json");
    instance.stop().await;
    assert_eq!(served["model_version"].as_str(), Some(v2.version.as_str()), "{served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_with_an_unknown_version_names_it_and_writes_nothing() {
    let model = unique_name("once-missing");
    let reg = registry(&model).await;
    let _v1 = register_tiny(&reg).await;
    let dir = tempfile::tempdir().expect("out dir");
    let out = OnceOutput { wasm: dir.path().join("edge.wasm"), bundle: Some(dir.path().join("bundle")) };

    let err = once(&sync_config(&reg), &Selector::Version("7".into()), &out).await.expect_err("no version 7");
    let text = format!("{err:#}");
    assert!(text.contains('7') && text.contains(&model), "the error names neither the version nor the model: {text}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0, "something was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_refused_after_the_download_leaves_nothing_beside_its_outputs() {
    // Refused late: the version resolves, its files download into a work dir beside the
    // outputs, and only then does the bundle reader find the tokenizer cut short.
    let (_, reg, versions) = tiny_model("once-late", 1, 1).await;
    let tokenizer = std::fs::read(tiny_bundle().join("tokenizer.json")).expect("tokenizer");
    let short = tokenizer[..tokenizer.len() / 2].to_vec();
    reg.client().upload_artifact(&versions[0].source, "tokenizer.json", short).await.expect("cut short");
    let dir = tempfile::tempdir().expect("out dir");
    let out = OnceOutput { wasm: dir.path().join("edge.wasm"), bundle: Some(dir.path().join("bundle")) };
    let err = once(&sync_config(&reg), &Selector::Alias("champion".into()), &out).await.expect_err("cut short");
    let text = format!("{err:#}");
    assert!(text.contains("tokenizer.json"), "{text}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "a refused version left {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_works_against_mlflow_with_basic_auth_and_a_wrong_password_is_named_not_printed() {
    ensure_component();
    const PASSWORD: &str = "admin-pw-NEVER-PRINT-7301";
    let server = tokio::task::spawn_blocking(|| mlflow_client::testing::MlflowServer::start_with_basic_auth(PASSWORD))
        .await
        .expect("join")
        .expect("a basic-auth MLflow server starts");
    let with = |password: &str| {
        let auth =
            mlflow_client::Auth::Basic { username: "admin".into(), password: mlflow_client::Secret::new(password) };
        let client = mlflow_client::ClientConfig::new(server.url()).expect("url").with_auth(auth);
        model_registry::Registry::new(model_registry::RegistryConfig {
            client,
            experiment: unique_name("once-auth-exp"),
            model: unique_name("once-auth"),
            signing: Default::default(),
        })
        .expect("registry")
    };
    let reg = with(PASSWORD);
    let v1 = register_tiny(&reg).await;
    set_champion(&reg, &v1.version).await;

    let dir = tempfile::tempdir().expect("out dir");
    let out = OnceOutput { wasm: dir.path().join("edge.wasm"), bundle: None };
    let deployed = once(&sync_config(&reg), &Selector::Alias("champion".into()), &out).await.expect("once with auth");
    assert_eq!(deployed.version, v1.version);
    assert!(out.wasm.is_file());

    let wrong = with("not-the-password");
    let wrong_cfg = registry_sync::SyncConfig { registry: wrong.config().clone(), ..sync_config(&reg) };
    let out2 = OnceOutput { wasm: dir.path().join("other.wasm"), bundle: None };
    let err = once(&wrong_cfg, &Selector::Alias("champion".into()), &out2).await.expect_err("refused credentials");
    let text = format!("{err:#}");
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("not-the-password") && !text.contains(PASSWORD), "a password was printed: {text}");
    assert!(!out2.wasm.exists(), "a refused sync writes nothing");
}

/// Only what a trusted key signed is baked: unsigned and stranger-signed versions are refused
/// with the reason (and the `signature_refused` outcome), a signed one goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_bakes_only_what_a_trusted_key_signed() {
    use model_registry::Signing;
    use model_registry::signing::{PrivateKey, TrustedKeys};

    ensure_component();
    let (model, plain, versions) = tiny_model("once-signed", 1, 1).await;
    let unsigned = &versions[0];
    let (ours, stranger) = (std::sync::Arc::new(PrivateKey::generate()), std::sync::Arc::new(PrivateKey::generate()));
    let signed_by = |key: &std::sync::Arc<PrivateKey>| {
        let signing = Signing { key: Some(key.clone()), signer: Some("once-it".into()), ..Default::default() };
        model_registry::Registry::new(plain.config().clone().with_signing(signing)).expect("registry")
    };
    let good = register_tiny(&signed_by(&ours)).await;
    let forged = register_tiny(&signed_by(&stranger)).await;
    let ours_pem = ours.public_key().to_pem();
    let trusted = TrustedKeys::from_pems([("trusted.pem", ours_pem.as_str())]).expect("key");
    let verifying = Signing { trusted, required: true, ..Default::default() }.checked().expect("policy");
    let reg = model_registry::Registry::new(plain.config().clone().with_signing(verifying)).expect("registry");
    let cfg = sync_config(&reg);

    let dir = tempfile::tempdir().expect("out dir");
    for (version, needle) in [(&unsigned.version, "not signed"), (&forged.version, "not trusted")] {
        let out = OnceOutput { wasm: dir.path().join(format!("{version}.wasm")), bundle: None };
        let err = once(&cfg, &Selector::Version(version.clone()), &out).await.expect_err("refused");
        let outcome = err.downcast_ref::<registry_sync::SyncError>().map(registry_sync::SyncError::outcome);
        assert_eq!(outcome, Some("signature_refused"), "{err:#}");
        let text = format!("{err:#}");
        assert!(text.contains(needle) && text.contains(&format!("version {version}")), "{text}");
        assert!(!out.wasm.exists(), "a refused version was baked");
    }
    let out = OnceOutput { wasm: dir.path().join("good.wasm"), bundle: None };
    let deployed = once(&cfg, &Selector::Version(good.version.clone()), &out).await.expect("signed by a trusted key");
    assert_eq!((deployed.model.as_str(), deployed.version.as_str()), (model.as_str(), good.version.as_str()));
    assert!(out.wasm.is_file());
}
