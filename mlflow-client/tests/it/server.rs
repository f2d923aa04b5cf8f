//! Round trips against a real `mlflow server` (sqlite backend, proxied artifacts).

use mlflow_client::testing::{MlflowServer, unique_name};
use mlflow_client::types::{Metric, Param, RunStatus, Tag};
use mlflow_client::{Client, Error};

fn client() -> Client {
    Client::new(MlflowServer::shared().config()).expect("client")
}

#[tokio::test]
async fn experiment_run_logging_and_artifact_round_trip() {
    let c = client();
    let name = unique_name("exp");
    assert!(c.get_experiment_by_name(&name).await.expect("lookup").is_none());
    let id = c.get_or_create_experiment(&name).await.expect("create");
    assert_eq!(c.get_or_create_experiment(&name).await.expect("again"), id, "idempotent");

    let run = c.create_run(&id, Some("round-trip"), &[Tag::new("origin", "test")]).await.expect("run");
    assert!(run.artifact_uri.starts_with("mlflow-artifacts:/"), "{}", run.artifact_uri);
    // More params than one log-batch takes: the client splits them.
    let params: Vec<Param> = (0..150).map(|i| Param::new(format!("p{i}"), i.to_string())).collect();
    let metrics = vec![Metric::new("accuracy", 0.75, 1), Metric::new("f1_python", 0.5, 1)];
    c.log_batch(&run.run_id, &metrics, &params, &[Tag::new("stacktag.k", "v")]).await.expect("log");
    c.update_run(&run.run_id, RunStatus::Finished).await.expect("finish");

    let got = c.get_run(&run.run_id).await.expect("get run");
    assert_eq!(got.info.status, Some(RunStatus::Finished));
    assert_eq!(got.data.params.len(), 150);
    assert_eq!(got.param("p149"), Some("149"));
    assert_eq!(got.metric("accuracy"), Some(0.75));
    assert_eq!(got.tag("stacktag.k"), Some("v"));
    assert_eq!(got.tag("origin"), Some("test"));

    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("src/sub")).expect("mkdir");
    std::fs::write(dir.path().join("src/a.bin"), [0u8, 1, 2, 255]).expect("write");
    std::fs::write(dir.path().join("src/sub/b name.txt"), "spaces survive").expect("write");
    let written = c.upload_dir(&run.artifact_uri, "bundle", &dir.path().join("src")).await.expect("upload");
    assert_eq!(written, ["bundle/a.bin", "bundle/sub/b name.txt"]);

    let listed = c.list_artifacts(&format!("{}/bundle", run.artifact_uri)).await.expect("list");
    let mut names: Vec<_> = listed.iter().map(|f| (f.path.as_str(), f.is_dir)).collect();
    names.sort();
    assert_eq!(names, [("a.bin", false), ("sub", true)]);
    let out = dir.path().join("out");
    let got = c.download_dir(&format!("{}/bundle", run.artifact_uri), &out).await.expect("download");
    assert_eq!(got, ["a.bin", "sub/b name.txt"]);
    assert_eq!(std::fs::read(out.join("a.bin")).expect("read"), [0u8, 1, 2, 255]);
    assert_eq!(std::fs::read_to_string(out.join("sub/b name.txt")).expect("read"), "spaces survive");

    let missing = c.download_artifact(&format!("{}/nope.txt", run.artifact_uri)).await.expect_err("missing");
    assert!(missing.is_not_found(), "{missing}");
    let empty = c.download_dir(&format!("{}/nothing", run.artifact_uri), &out).await.expect_err("empty");
    assert!(matches!(empty, Error::Artifact { .. }), "{empty}");
}

#[tokio::test]
async fn registry_versions_aliases_tags_and_search() {
    let c = client();
    let exp = c.get_or_create_experiment(&unique_name("exp")).await.expect("exp");
    let run = c.create_run(&exp, None, &[]).await.expect("run");
    c.upload_artifact(&run.artifact_uri, "bundle/x.txt", b"x".to_vec()).await.expect("upload");
    let model = unique_name("model");
    let m = c.get_or_create_registered_model(&model).await.expect("model");
    assert_eq!(m.name, model);
    assert!(m.aliases.is_empty());
    c.get_or_create_registered_model(&model).await.expect("idempotent");

    let source = format!("{}/bundle", run.artifact_uri);
    let v1 = c.create_model_version(&model, &source, Some(&run.run_id), &[Tag::new("k", "1")]).await.expect("v1");
    let v2 = c.create_model_version(&model, &source, Some(&run.run_id), &[]).await.expect("v2");
    assert_eq!((v1.version.as_str(), v2.version.as_str()), ("1", "2"));
    assert_eq!(v1.tag("k"), Some("1"));

    c.set_alias(&model, "champion", "1").await.expect("alias");
    c.set_alias(&model, "challenger", "2").await.expect("alias");
    let m = c.get_registered_model(&model).await.expect("get");
    assert_eq!(m.alias("champion"), Some("1"));
    assert_eq!(m.alias("challenger"), Some("2"));
    let by_alias = c.get_model_version_by_alias(&model, "champion").await.expect("by alias");
    assert_eq!(by_alias.version, "1");
    c.set_alias(&model, "champion", "2").await.expect("move");
    assert_eq!(c.get_registered_model(&model).await.expect("get").alias("champion"), Some("2"));
    c.delete_alias(&model, "challenger").await.expect("delete alias");
    assert_eq!(c.get_registered_model(&model).await.expect("get").alias("challenger"), None);

    c.set_model_version_tag(&model, "2", "stacktag.gate.decision", "promoted").await.expect("tag");
    c.set_registered_model_tag(&model, "owner", "stacktag").await.expect("model tag");
    let versions = c.model_versions(&model).await.expect("search");
    assert_eq!(versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(versions[1].tag("stacktag.gate.decision"), Some("promoted"));
    assert_eq!(c.get_registered_model(&model).await.expect("get").tag("owner"), Some("stacktag"));
}

#[tokio::test]
async fn a_refused_call_carries_mlflow_error_code_message_and_call_name() {
    let c = client();
    let err = c.get_registered_model(&unique_name("absent")).await.expect_err("absent");
    assert!(err.is_not_found());
    match &err {
        Error::Api { call, status, error_code, message } => {
            assert_eq!(call, "registered-models/get");
            assert_eq!(*status, 404);
            assert_eq!(error_code, "RESOURCE_DOES_NOT_EXIST");
            assert!(message.contains("not found"), "{message}");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    let model = unique_name("model");
    c.create_registered_model(&model).await.expect("model");
    let err = c.get_model_version_by_alias(&model, "champion").await.expect_err("no alias");
    assert_eq!(err.error_code(), Some("INVALID_PARAMETER_VALUE"));
    let text = err.to_string();
    assert!(text.contains("registered-models/alias") && text.contains("INVALID_PARAMETER_VALUE"), "{text}");
    // 4xx is not retried: one call, one answer, at once.
    let err = c.create_registered_model(&model).await.expect_err("duplicate");
    assert!(err.is_already_exists(), "{err}");
}
