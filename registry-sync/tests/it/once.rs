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
