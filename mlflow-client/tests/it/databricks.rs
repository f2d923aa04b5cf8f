//! Databricks' DBFS API 2.0, without a workspace: the client's requests for a plain `dbfs:/…`
//! location (not a run's MLflow-managed artifacts, which go through signed URLs: see
//! `unity_catalog.rs`) against a scripted stand-in, checked against the documented shapes
//! (`dbfs/put`, `create` + `add-block` + `close`, `read`, `list`). This proves the request
//! shapes only; a real workspace is not tested.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mlflow_client::testing::{Fault, FaultServer, SeenRequest, fast_retry};
use mlflow_client::{Auth, Client, ClientConfig, Error, Secret};
use serde_json::{Value, json};

const TOKEN: &str = "dapi-NEVER-PRINT-77";
const ROOT: &str = "dbfs:/FileStore/stacktag/run1";

fn client(fake: &FaultServer) -> Client {
    let cfg =
        ClientConfig::databricks(fake.url(), Auth::Bearer(Secret::new(TOKEN))).expect("host").with_retry(fast_retry());
    Client::new(cfg).expect("client")
}

fn body(r: &SeenRequest) -> Value {
    serde_json::from_slice(&r.body).expect("json body")
}

#[tokio::test]
async fn small_files_go_up_in_one_put_and_large_ones_in_blocks() {
    let fake = FaultServer::start(
        None,
        [
            Fault::Reply(200, "{}".into()),
            Fault::Reply(200, r#"{"handle": 7}"#.into()),
            Fault::Reply(200, "{}".into()),
            Fault::Reply(200, "{}".into()),
            Fault::Reply(200, "{}".into()),
        ],
    )
    .expect("fake");
    let c = client(&fake);
    let small: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    c.upload_artifact(ROOT, "bundle/small.bin", small.clone()).await.expect("put");
    let large: Vec<u8> = (0..600_000u32).map(|i| (i % 253) as u8).collect();
    c.upload_artifact(ROOT, "bundle/model.onnx", large.clone()).await.expect("stream");

    let seen = fake.seen();
    let lines: Vec<&str> = seen.iter().map(|r| r.request_line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "POST /api/2.0/dbfs/put HTTP/1.1",
            "POST /api/2.0/dbfs/create HTTP/1.1",
            "POST /api/2.0/dbfs/add-block HTTP/1.1",
            "POST /api/2.0/dbfs/add-block HTTP/1.1",
            "POST /api/2.0/dbfs/close HTTP/1.1",
        ]
    );
    assert!(seen.iter().all(|r| r.header("authorization") == Some(&format!("Bearer {TOKEN}"))));
    let put = body(&seen[0]);
    assert_eq!(put["path"], "/FileStore/stacktag/run1/bundle/small.bin");
    assert_eq!(put["overwrite"], true);
    assert_eq!(BASE64.decode(put["contents"].as_str().expect("contents")).expect("b64"), small);
    assert_eq!(body(&seen[1]), json!({ "path": "/FileStore/stacktag/run1/bundle/model.onnx", "overwrite": true }));
    let mut joined = Vec::new();
    for block in &seen[2..4] {
        let b = body(block);
        assert_eq!(b["handle"], 7);
        let data = b["data"].as_str().expect("data");
        assert!(data.len() <= 1024 * 1024, "a block's base64 stays within 1 MB");
        joined.extend(BASE64.decode(data).expect("b64"));
    }
    assert_eq!(joined, large);
    assert_eq!(body(&seen[4]), json!({ "handle": 7 }));
}

#[tokio::test]
async fn downloads_read_in_windows_and_listings_become_relative() {
    let first = vec![1u8; 1024 * 1024];
    let fake = FaultServer::start(
        None,
        [
            Fault::Reply(200, json!({ "bytes_read": first.len(), "data": BASE64.encode(&first) }).to_string()),
            Fault::Reply(200, json!({ "bytes_read": 3, "data": BASE64.encode([7u8, 8, 9]) }).to_string()),
            Fault::Reply(
                200,
                json!({ "files": [
                    { "path": "/FileStore/stacktag/run1/bundle/model.onnx", "is_dir": false, "file_size": 3 },
                    { "path": "/FileStore/stacktag/run1/bundle/sub", "is_dir": true, "file_size": 0 }
                ]})
                .to_string(),
            ),
        ],
    )
    .expect("fake");
    let c = client(&fake);
    let got = c.download_artifact(&format!("{ROOT}/bundle/model.onnx")).await.expect("read");
    assert_eq!(got.len(), first.len() + 3);
    assert_eq!(&got[first.len()..], [7, 8, 9]);
    let listed = c.list_artifacts(&format!("{ROOT}/bundle")).await.expect("list");
    let names: Vec<(&str, bool)> = listed.iter().map(|f| (f.path.as_str(), f.is_dir)).collect();
    assert_eq!(names, [("model.onnx", false), ("sub", true)]);

    let seen = fake.seen();
    assert!(
        seen[0].request_line.starts_with(
            "GET /api/2.0/dbfs/read?path=%2FFileStore%2Fstacktag%2Frun1%2Fbundle%2Fmodel.onnx&offset=0&length=1048576 "
        ),
        "{}",
        seen[0].request_line
    );
    assert!(seen[1].request_line.contains("&offset=1048576&"), "{}", seen[1].request_line);
    assert!(seen[2].request_line.starts_with("GET /api/2.0/dbfs/list?path="), "{}", seen[2].request_line);

    // A proxy location is not reachable through a Databricks target.
    let err = c.download_artifact("mlflow-artifacts:/1/run1/artifacts/x").await.expect_err("wrong target");
    assert!(matches!(err, Error::Artifact { .. }), "{err}");
    assert!(!format!("{err} {err:?} {:?}", c.config()).contains(TOKEN));
}
