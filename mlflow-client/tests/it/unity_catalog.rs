//! The client against a loopback Databricks workspace (`testing::DatabricksStandin`: Unity
//! Catalog, MLflow-managed run artifacts on a real S3, OAuth; MLflow's own Python client
//! round-trips through it). One test walks every scenario in turn, because faults are set on
//! the one stand-in this binary shares and would reach tests running beside them.

use std::path::Path;
use std::time::Duration;

use launcher::databricks::RunArtifacts;
use mlflow_client::testing::{DatabricksStandin, Fault, FaultServer, unique_name};
use mlflow_client::types::{READY, Tag};
use mlflow_client::{Client, ClientConfig, Error, RegistryApi};
use serde_json::{Value, json};

fn client(cfg: ClientConfig) -> Client {
    Client::new(cfg).expect("client")
}

fn write_tree(dir: &Path, files: &[(&str, &[u8])]) {
    for (rel, bytes) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }
}

fn read_tree(dir: &Path, rels: &[String]) -> Vec<(String, Vec<u8>)> {
    rels.iter().map(|r| (r.clone(), std::fs::read(dir.join(r)).expect("downloaded file"))).collect()
}

/// Token requests the stand-in recorded, newest last.
fn token_requests(requests: &[Value]) -> Vec<Value> {
    requests.iter().filter(|r| r["path"] == "/oidc/v1/token").cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_databricks_workspace() {
    let db = DatabricksStandin::shared();
    let result = async {
        // First, that the stand-in is one MLflow's own client works with: a run with
        // artifacts, `log_model` to a Unity Catalog name, the alias set and read, the model
        // loaded back through `models:/…@champion`.
        let model = format!("main.stacktag.{}", unique_name("oracle").replace('-', "_"));
        let seen = db.oracle(&["roundtrip", "--model", &model]).unwrap_or_else(|e| panic!("{e}"));
        assert!(seen.is_object(), "{seen}");
        oauth_matches_databricks_sdk_and_refreshes(db).await;
        names_and_webhooks_are_refused_before_any_call(db).await;
        run_artifacts_go_through_signed_urls(db).await;
        versions_upload_finalize_and_survive_faults(db).await;
    };
    // A failure names the stand-in's log, where its refusals are.
    let outcome = tokio::time::timeout(Duration::from_secs(600), result).await;
    assert!(outcome.is_ok(), "timed out; stand-in log:\n{}", db.log_tail());
}

/// Azure Databricks: run artifacts behind Azure SAS URLs, on azurite (Microsoft's emulator,
/// which checks the SAS itself). What MLflow's client writes there, Stacktag reads; what
/// Stacktag writes, MLflow's client reads; an expired SAS is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_artifacts_on_azure_databricks() {
    let started = tokio::task::spawn_blocking(|| DatabricksStandin::start(RunArtifacts::Azure)).await;
    let db = started.expect("stand-in thread").unwrap_or_else(|e| panic!("cannot start the Azure stand-in: {e}"));
    assert_eq!(db.workspace().run_artifacts, "azure");
    let result = async {
        // MLflow's client writes (Put Block + Put Block List) and reads its own run.
        let model = format!("main.stacktag.{}", unique_name("azure").replace('-', "_"));
        let theirs = db.oracle(&["roundtrip", "--model", &model]).unwrap_or_else(|e| panic!("{e}"));
        let c = client(db.config());
        let dir = tempfile::tempdir().expect("dir");
        let uri = theirs["artifact_uri"].as_str().expect("artifact_uri");
        c.download_dir(&format!("{uri}/reports"), &dir.path().join("theirs")).await.expect("read MLflow's upload");
        let bytes = std::fs::read(dir.path().join("theirs/eval.bin")).expect("eval.bin");
        assert_eq!(bytes.len() as u64, theirs["run_artifact"]["size"].as_u64().expect("size"));
        assert_eq!(sha256_hex(&bytes), theirs["run_artifact"]["sha256"], "what MLflow's client wrote");

        // Stacktag writes (Put Blob), over more files than one listing page; both clients read.
        let experiment = c.get_or_create_experiment(&format!("/Shared/{}", unique_name("az"))).await.expect("exp");
        let run = c.create_run(&experiment, Some("azure"), &[]).await.expect("run");
        let files: Vec<(String, Vec<u8>)> =
            (0..6).map(|i| (format!("bundle/part-{i}.bin"), vec![i as u8 ^ 0x5a; 3000 + i])).collect();
        let mut tree: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
        tree.push(("bundle/sub/deep.txt", b"deep"));
        write_tree(&dir.path().join("ours"), &tree);
        let written = c.upload_dir(&run.artifact_uri, "", &dir.path().join("ours")).await.expect("Put Blob via SAS");
        assert_eq!(written.len(), 7);
        let got = c.download_dir(&format!("{}/bundle", run.artifact_uri), &dir.path().join("back")).await;
        assert_eq!(got.expect("download").len(), 7);
        assert_eq!(std::fs::read(dir.path().join("back/sub/deep.txt")).expect("deep"), b"deep");
        let seen = db.oracle(&["artifacts", "--run-id", &run.run_id]).unwrap_or_else(|e| panic!("{e}"));
        let mut expected: Vec<(String, Vec<u8>)> = files.clone();
        expected.push(("bundle/sub/deep.txt".into(), b"deep".to_vec()));
        assert_eq!(seen["files"].as_object().map(|o| o.len()), Some(expected.len()), "{seen}");
        for (path, bytes) in &expected {
            assert_eq!(seen["files"][path], sha256_hex(bytes), "MLflow's client read {path} back: {seen}");
        }

        // An expired SAS: new credentials, one more try, then azurite's own refusal, named.
        db.faults(json!({ "always_expired": true })).await;
        let err = c.upload_artifact(&run.artifact_uri, "late.txt", b"x".to_vec()).await.expect_err("expired SAS");
        assert!(matches!(err, Error::Api { status: 403, .. }), "{err:?}");
        assert!(err.to_string().contains("AuthorizationFailure"), "azurite's own code: {err}");
        assert!(!err.to_string().contains("sig="), "the SAS is a credential and is not repeated: {err}");
        db.faults(json!({ "always_expired": false })).await;
        c.upload_artifact(&run.artifact_uri, "late.txt", b"x".to_vec()).await.expect("fresh SAS works");
        let seen = db.oracle(&["artifacts", "--run-id", &run.run_id, "--path", "late.txt"]).expect("read");
        assert_eq!(seen["files"]["late.txt"], sha256_hex(b"x"), "{seen}");
    };
    let outcome = tokio::time::timeout(Duration::from_secs(600), result).await;
    assert!(outcome.is_ok(), "timed out; stand-in log:\n{}", db.log_tail());
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

async fn oauth_matches_databricks_sdk_and_refreshes(db: &DatabricksStandin) {
    let w = db.workspace();
    let c = client(db.oauth_config(&w.client_secret));
    assert_eq!(c.get_experiment_by_name("/Shared/nothing-here").await.expect("an OAuth call"), None);
    let ours = token_requests(&db.requests().await).pop().expect("our token request");

    // databricks-sdk's own token request for the same principal, recorded the same way.
    let sdk = db.oracle(&["oauth-token"]).expect("databricks-sdk authenticates");
    let theirs = token_requests(&db.requests().await).pop().expect("the SDK's token request");
    for r in [&ours, &theirs] {
        assert_eq!(r["status"], 200, "{r}");
    }
    assert_eq!(ours["method"], theirs["method"]);
    assert_eq!(ours["path"], theirs["path"]);
    assert_eq!(ours["body"], theirs["body"], "the form: grant type and scope");
    for header in ["authorization", "content-type"] {
        assert_eq!(ours["headers"][header], theirs["headers"][header], "{header}; sdk said {sdk}");
    }

    // A short-lived token is replaced before it expires.
    db.faults(json!({ "token_ttl": 2 })).await;
    let c = client(db.oauth_config(&w.client_secret));
    let before = token_requests(&db.requests().await).len();
    c.get_experiment_by_name("/Shared/nothing-here").await.expect("first");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.get_experiment_by_name("/Shared/nothing-here").await.expect("after the refresh point");
    assert_eq!(token_requests(&db.requests().await).len() - before, 2, "one token, then its replacement");
    db.faults(json!({ "token_ttl": 3600 })).await;

    // A token refused mid-life (revoked): one new token, the call once more.
    let fake = FaultServer::start(Some(&w.host), [Fault::Forward, Fault::Status(401), Fault::Forward, Fault::Forward])
        .expect("fault server");
    let through = db.oauth_config(&w.client_secret);
    let through = ClientConfig::databricks(fake.url(), through.auth.clone()).expect("host").with_retry(through.retry);
    let c = client(through);
    c.get_experiment_by_name("/Shared/nothing-here").await.expect("recovers with a new token");
    let lines: Vec<String> = fake.seen().iter().map(|r| r.request_line.clone()).collect();
    assert_eq!(lines.iter().filter(|l| l.starts_with("POST /oidc/v1/token")).count(), 2, "{lines:?}");

    // A wrong secret: the principal is named, the secret is not.
    let secret = "wrong-SECRET-never-printed-4242";
    let err = client(db.oauth_config(secret)).get_experiment_by_name("/Shared/x").await.expect_err("refused");
    assert!(matches!(err, Error::Auth { status: 401, .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(text.contains(&w.client_id) && text.contains("invalid_client"), "{text}");
    assert!(!text.contains(secret) && !format!("{:?}", db.oauth_config(secret)).contains(secret));
}

async fn names_and_webhooks_are_refused_before_any_call(db: &DatabricksStandin) {
    let c = client(db.config());
    assert_eq!(c.config().registry, RegistryApi::UnityCatalog, "MLflow's default with a databricks tracking URI");
    for name in ["stacktag", "main.stacktag", "a..b", "a.b.c.d"] {
        let err = c.get_registered_model(name).await.expect_err("not three levels");
        assert!(matches!(err, Error::InvalidName { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains("catalog.schema.model"), "{err}");
    }
    let err = c.create_experiment("stacktag").await.expect_err("relative");
    assert!(matches!(err, Error::InvalidName { .. }) && err.to_string().contains("/Shared/"), "{err}");
    let err = c.list_webhooks().await.expect_err("no webhooks on Databricks");
    assert!(matches!(err, Error::Unsupported { .. }) && err.to_string().contains("poll"), "{err}");

    let workspace = client(db.config().with_registry(RegistryApi::DatabricksWorkspace));
    let err = workspace.set_alias("stacktag", "champion", "1").await.expect_err("no aliases there");
    assert!(matches!(err, Error::Unsupported { .. }) && err.to_string().contains("databricks-uc"), "{err}");
}

async fn run_artifacts_go_through_signed_urls(db: &DatabricksStandin) {
    let c = client(db.config());
    let experiment = c.get_or_create_experiment(&format!("/Shared/{}", unique_name("it"))).await.expect("experiment");
    let run = c.create_run(&experiment, Some("artifacts"), &[]).await.expect("run");
    assert!(run.artifact_uri.starts_with("dbfs:/databricks/mlflow-tracking/"), "{}", run.artifact_uri);
    let dir = tempfile::tempdir().expect("dir");
    let src = dir.path().join("src");
    // More files than the stand-in puts on one page of a listing.
    let files: Vec<(String, Vec<u8>)> =
        (0..6).map(|i| (format!("bundle/part-{i}.bin"), vec![i as u8; 1000 + i])).collect();
    let mut tree: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    tree.push(("bundle/sub/deep.txt", b"deep"));
    write_tree(&src, &tree);
    let written = c.upload_dir(&run.artifact_uri, "", &src).await.expect("upload through signed URLs");
    assert_eq!(written.len(), 7);

    let back = dir.path().join("back");
    let got = c.download_dir(&format!("{}/bundle", run.artifact_uri), &back).await.expect("download");
    assert_eq!(got.len(), 7, "{got:?}");
    assert_eq!(std::fs::read(back.join("sub/deep.txt")).expect("deep"), b"deep");
    for (rel, bytes) in &files {
        assert_eq!(&std::fs::read(back.join(rel.trim_start_matches("bundle/"))).expect("part"), bytes);
    }

    // Every PUT to storage carried the header its signed URL came with, and no workspace token.
    let puts: Vec<Value> = db
        .requests()
        .await
        .into_iter()
        .filter(|r| {
            r["server"] == "s3" && r["method"] == "PUT" && r["path"].as_str().is_some_and(|p| p.contains(&run.run_id))
        })
        .collect();
    assert_eq!(puts.len(), 7, "{puts:?}");
    for p in &puts {
        assert_eq!(p["status"], 200, "{p}");
        assert_eq!(p["headers"]["x-amz-server-side-encryption"], "AES256", "{p}");
        assert!(!p["headers"]["authorization"].as_str().unwrap_or_default().contains("Bearer"), "{p}");
    }

    // A signed URL that dies on first use: new credentials, one more try.
    db.faults(json!({ "expire_credentials_after": 0 })).await;
    let err = c.upload_artifact(&run.artifact_uri, "late.txt", b"x".to_vec()).await.expect_err("every URL expired");
    assert!(err.to_string().contains("ExpiredToken"), "{err}");
    db.faults(json!({ "expire_credentials_after": null })).await;
    c.upload_artifact(&run.artifact_uri, "late.txt", b"x".to_vec()).await.expect("fresh credentials work");
}

async fn versions_upload_finalize_and_survive_faults(db: &DatabricksStandin) {
    let c = client(db.config().with_timeout(Duration::from_secs(30)));
    let name = format!("main.stacktag.{}", unique_name("it").replace('-', "_"));
    c.get_or_create_registered_model(&name).await.expect("model");
    let dir = tempfile::tempdir().expect("dir");
    let model = dir.path().join("model");
    write_tree(&model, &[("MLmodel", b"flavors: {}\n"), ("weights/w.bin", &[7u8; 5000]), ("manifest.json", b"{}")]);
    let source = "dbfs:/databricks/mlflow-tracking/0/none/artifacts/bundle";

    let v1 = c
        .create_model_version_with_files(&name, source, None, &[Tag::new("k", "v")], &model, None)
        .await
        .expect("create, upload, finalize");
    assert_eq!(v1.status.as_deref(), Some(READY));
    assert!(v1.storage_location.as_deref().is_some_and(|l| l.starts_with("s3://")), "{v1:?}");
    let back = dir.path().join("v1");
    let rels = c.download_model_version(&v1, &back).await.expect("download");
    assert_eq!(rels, ["MLmodel", "manifest.json", "weights/w.bin"]);
    assert_eq!(read_tree(&back, &rels), read_tree(&model, &rels));
    c.set_alias(&name, "champion", &v1.version).await.expect("owner sets the alias");
    assert_eq!(c.get_model_version_by_alias(&name, "champion").await.expect("by alias").version, v1.version);
    assert_eq!(c.get_registered_model(&name).await.expect("model").alias("champion"), Some(v1.version.as_str()));

    // Credentials that expire after one request: the second file gets new ones.
    db.faults(json!({ "expire_credentials_after": 1 })).await;
    let expired_before = expired(db).await;
    let v2 =
        c.create_model_version_with_files(&name, source, None, &[], &model, None).await.expect("refreshes mid-upload");
    assert_eq!(v2.status.as_deref(), Some(READY));
    assert!(expired(db).await > expired_before, "the credentials did expire mid-upload");
    db.faults(json!({ "expire_credentials_after": null })).await;

    // Always expired: a clear error, and the pending version is gone.
    db.faults(json!({ "always_expired": true })).await;
    let err = c.create_model_version_with_files(&name, source, None, &[], &model, None).await.expect_err("expired");
    db.faults(json!({ "always_expired": false })).await;
    assert!(matches!(err, Error::Storage { .. }) && err.to_string().contains("ExpiredToken"), "{err}");
    assert_no_pending(&c, &name).await;

    // Stuck in PENDING_REGISTRATION: named, bounded, cleaned up.
    db.faults(json!({ "stuck_pending": true })).await;
    let mut impatient = db.config();
    impatient.pending_timeout = Duration::from_secs(1);
    let err = client(impatient).create_model_version_with_files(&name, source, None, &[], &model, None).await;
    db.faults(json!({ "stuck_pending": false })).await;
    let err = err.expect_err("stuck");
    assert!(matches!(err, Error::Pending { .. }) && err.to_string().contains("PENDING_REGISTRATION"), "{err}");
    assert_no_pending(&c, &name).await;

    // Only the owner may move an alias: refused, and it stays.
    db.faults(json!({ "alias_forbidden": true })).await;
    let err = c.set_alias(&name, "champion", &v2.version).await.expect_err("not the owner");
    db.faults(json!({ "alias_forbidden": false })).await;
    assert!(err.is_permission_denied(), "{err:?}");
    assert_eq!(c.get_registered_model(&name).await.expect("model").alias("champion"), Some(v1.version.as_str()));
}

/// How many storage requests the stand-in refused as expired so far.
async fn expired(db: &DatabricksStandin) -> usize {
    db.requests().await.iter().filter(|r| r["error_code"] == "ExpiredToken").count()
}

async fn assert_no_pending(c: &Client, name: &str) {
    let versions = c.model_versions(name).await.expect("versions");
    for v in &versions {
        let full = c.get_model_version(name, &v.version).await.expect("version");
        assert_eq!(full.status.as_deref(), Some(READY), "a half-registered version was left: {full:?}");
    }
}
