//! Faults a real server will not produce on demand, played by a scripted loopback server:
//! 503 bursts, 429, dropped connections, bodies cut short, nobody listening. And the token
//! goes on the wire but never into a message.

use std::time::Duration;

use mlflow_client::testing::{Fault, FaultServer, MlflowServer, fast_retry, free_port, unique_name};
use mlflow_client::{Auth, Client, ClientConfig, Error, RetryPolicy, Secret};

const TOKEN: &str = "tok-NEVER-PRINT-4242";

fn client_for(url: &str, retry: RetryPolicy) -> Client {
    let cfg = ClientConfig::new(url).expect("url").with_retry(retry).with_auth(Auth::Bearer(Secret::new(TOKEN)));
    Client::new(cfg).expect("client")
}

#[tokio::test]
async fn a_503_burst_shorter_than_the_retries_is_survived() {
    let real = MlflowServer::shared();
    let faults = FaultServer::start(Some(real.url()), [Fault::Status(503), Fault::Status(502), Fault::Status(503)])
        .expect("fault server");
    let c = client_for(faults.url(), fast_retry());
    let name = unique_name("burst");
    let id = c.create_experiment(&name).await.expect("survives three 5xx with three retries");
    let seen = faults.seen();
    assert_eq!(seen.len(), 4, "three failures and one success");
    let got = c.get_experiment_by_name(&name).await.expect("lookup").expect("exists");
    assert_eq!(got.experiment_id, id);
    assert!(
        seen[0].headers.iter().any(|h| h.eq_ignore_ascii_case(&format!("authorization: Bearer {TOKEN}"))),
        "the token is sent: {:?}",
        seen[0].headers
    );
}

#[tokio::test]
async fn a_longer_5xx_burst_gives_up_after_the_bounded_retries_without_printing_the_token() {
    let faults = FaultServer::start(None, vec![Fault::Status(503); 10]).expect("fault server");
    let c = client_for(faults.url(), fast_retry());
    let err = c.get_registered_model("stacktag").await.expect_err("gives up");
    match &err {
        Error::Unavailable { call, status, retries, .. } => {
            assert_eq!((call.as_str(), *status, *retries), ("registered-models/get", 503, 3));
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(faults.seen().len(), 4, "1 attempt + 3 retries");
    let shown = format!("{err} {err:?} {:?}", c.config());
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("HTTP 503") && shown.contains("3 retries"), "{shown}");
}

#[tokio::test]
async fn rate_limits_dropped_connections_and_cut_bodies_are_retried() {
    let real = MlflowServer::shared();
    let c = Client::new(real.config()).expect("client");
    let exp = c.get_or_create_experiment(&unique_name("cut")).await.expect("exp");
    let run = c.create_run(&exp, None, &[]).await.expect("run");
    let payload: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    c.upload_artifact(&run.artifact_uri, "blob.bin", payload.clone()).await.expect("upload");

    let faults =
        FaultServer::start(Some(real.url()), [Fault::Status(429), Fault::Drop, Fault::Truncate]).expect("faults");
    let via_faults = client_for(faults.url(), fast_retry());
    let got =
        via_faults.download_artifact(&format!("{}/blob.bin", run.artifact_uri)).await.expect("download after faults");
    assert_eq!(got, payload, "the retried download is whole");
    assert_eq!(faults.seen().len(), 4);
}

#[tokio::test]
async fn a_4xx_is_not_retried() {
    let faults = FaultServer::start(None, [Fault::Status(403), Fault::Status(403)]).expect("faults");
    let c = client_for(faults.url(), fast_retry());
    let err = c.get_registered_model("m").await.expect_err("403");
    assert_eq!(err.error_code(), Some("FAULT_403"));
    assert_eq!(faults.seen().len(), 1);
}

#[tokio::test]
async fn unreachable_mlflow_fails_clearly_after_bounded_retries() {
    let port = free_port().expect("port");
    let url = format!("http://127.0.0.1:{port}");
    let retry = RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    };
    let c = client_for(&url, retry);
    let err = c.get_or_create_experiment("stacktag").await.expect_err("nobody listens");
    let text = err.to_string();
    assert!(matches!(err, Error::Transport { retries: 2, .. }), "{err:?}");
    assert!(text.contains(&format!("failed to reach MLflow at `{url}/`")), "{text}");
    assert!(text.contains("experiments/get-by-name") && text.contains("(2 retries)"), "{text}");
    assert!(!format!("{text} {err:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_listing_that_names_a_path_outside_the_download_is_refused() {
    // A real server never lists `../x`; a hostile or broken one could, and the download must
    // not write outside its destination.
    let dir = tempfile::tempdir().expect("tmp");
    let dest = dir.path().join("dest");
    for bad in ["../x", "..", "a/../../x", "/etc/x", "a\\b"] {
        let listing = serde_json::json!({ "files": [{ "path": bad, "is_dir": false, "file_size": 1 }] }).to_string();
        let faults = FaultServer::start(None, [Fault::Reply(200, listing)]).expect("faults");
        let c = client_for(faults.url(), fast_retry());
        let err = c.download_dir("mlflow-artifacts:/1/run/artifacts/bundle", &dest).await.expect_err(bad);
        assert!(matches!(&err, Error::Artifact { reason, .. } if reason.contains(bad)), "{bad}: {err}");
        assert_eq!(faults.seen().len(), 1, "{bad}: nothing was downloaded");
    }
    assert!(!dir.path().join("x").exists() && !dest.exists(), "nothing was written");
}

#[tokio::test]
async fn an_answer_over_the_size_limit_is_refused_once_without_reading_it_all() {
    let big = format!(r#"{{"registered_model": {{"name": "m", "description": "{}"}}}}"#, "x".repeat(4096));
    let faults = FaultServer::start(None, [Fault::Reply(200, big.clone()), Fault::Reply(200, big)]).expect("server");
    let cfg = ClientConfig::new(faults.url()).expect("url").with_retry(fast_retry()).with_max_response_bytes(1024);
    let c = Client::new(cfg).expect("client");
    let err = c.get_registered_model("m").await.expect_err("4 KB over a 1 KB limit");
    assert!(matches!(err, Error::TooLarge { limit: 1024, .. }), "{err}");
    assert!(err.to_string().contains("more than 1024 bytes"), "{err}");
    assert_eq!(faults.seen().len(), 1, "a body over the limit is not retried");
    // The same answer under a limit it fits reads normally.
    let cfg = ClientConfig::new(faults.url()).expect("url").with_max_response_bytes(64 * 1024);
    let m = Client::new(cfg).expect("client").get_registered_model("m").await.expect("fits");
    assert_eq!(m.name, "m");
}

#[tokio::test]
async fn a_downloaded_file_is_streamed_to_disk_whole_after_a_cut_and_refused_over_the_limit() {
    // A file of a few megabytes: the first answer is cut short mid-body (a retry must start
    // the file again, not append to the half written), the second is whole.
    let content: String = (0..3 * 1024 * 1024).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let listing =
        serde_json::json!({ "files": [{ "path": "model.bin", "is_dir": false, "file_size": content.len() }] })
            .to_string();
    let faults = FaultServer::start(
        None,
        [Fault::Reply(200, listing.clone()), Fault::Truncate, Fault::Reply(200, content.clone())],
    )
    .expect("faults");
    let dir = tempfile::tempdir().expect("tmp");
    let cfg =
        ClientConfig::new(faults.url()).expect("url").with_retry(fast_retry()).with_max_response_bytes(4 * 1024 * 1024);
    let c = Client::new(cfg).expect("client");
    let written = c.download_dir("mlflow-artifacts:/1/run/artifacts/bundle", dir.path()).await.expect("download");
    assert_eq!(written, ["model.bin"]);
    let on_disk = std::fs::read(dir.path().join("model.bin")).expect("written");
    assert!(on_disk == content.as_bytes(), "the file on disk is not the answer ({} bytes)", on_disk.len());
    assert_eq!(faults.seen().len(), 3, "listing, the cut attempt, the whole one");

    // The same file over a 1 MiB limit: refused, not retried.
    let faults = FaultServer::start(None, [Fault::Reply(200, listing), Fault::Reply(200, content)]).expect("faults");
    let dest = tempfile::tempdir().expect("tmp");
    let cfg =
        ClientConfig::new(faults.url()).expect("url").with_retry(fast_retry()).with_max_response_bytes(1024 * 1024);
    let err = Client::new(cfg)
        .expect("client")
        .download_dir("mlflow-artifacts:/1/run/artifacts/bundle", dest.path())
        .await
        .expect_err("3 MiB over a 1 MiB limit");
    assert!(matches!(err, Error::TooLarge { limit: 1048576, .. }), "{err}");
    assert_eq!(faults.seen().len(), 2, "a body over the limit is not retried");
}
