//! The main job end to end: `stacktag up` on a fresh state dir and free loopback ports, with
//! the real MLflow, registry-sync, `wasmtime serve` and Prometheus. The first batch is trained,
//! gated and served, the second lands under load and is swapped in, and then SIGTERM stops
//! everything the loop started. A second run on the same state takes its next batch from a
//! data dump (the recorded real questions of `harvest/tests/fixtures/`).
//!
//! Inputs: the shared data (`STACKTAG_SHARED_DATA`, default `../shared/data`), the generic
//! edge component under cargo's target dir (`scripts/build-edge.sh build`), the tools
//! `scripts/setup.sh` installs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stacktag::Report;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn port() -> u16 {
    launcher::free_port().expect("a free port")
}

/// Whether anything still runs with this pid (and is not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

#[test]
fn the_loop_trains_gates_syncs_and_serves_two_models_and_sigterm_stops_everything() {
    let state = tempfile::Builder::new().prefix("stacktag-up-").tempdir().expect("state dir");
    let (gateway, prometheus, mlflow) = (port(), port(), port());
    let mut child = up(state.path(), (gateway, prometheus, mlflow), &[]);
    let (story, reader) = story_until_serving(&mut child);
    assert!(story.contains("version 1 serves") && story.contains("version 2 serves"), "{story}");
    // Before training on the second batch, the retrain judged champion 1 on it (8,000 − 2,000).
    assert!(story.contains("champion version 1 on 6000 new questions (1 batch(es))"), "{story}");
    assert!(story.contains("stacktag::sync"), "registry-sync's events are part of the story:\n{story}");
    assert!(story.contains("stacktag::scheduler"), "the scheduler's decisions are part of the story:\n{story}");

    // What it started, before it is stopped.
    let instances: Vec<u32> = std::fs::read_dir(state.path().join("sync/pids"))
        .expect("registry-sync's pid records")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    assert!(!instances.is_empty(), "a wasmtime instance serves");
    assert!(launcher::http_ok(&format!("http://127.0.0.1:{mlflow}/health")));
    assert!(launcher::http_ok(&format!("http://127.0.0.1:{prometheus}/-/ready")));

    // The loop signed what it trained (its own key, kept in the state dir), and the bundle that
    // serves carries that signature over exactly its files.
    let pem = std::fs::read_to_string(state.path().join("signing-key.pem")).expect("the loop's signing key");
    let key = model_registry::signing::PrivateKey::from_pem(&pem).expect("a P-256 key");
    let public = key.public_key().to_pem();
    let trusted = model_registry::signing::TrustedKeys::from_pems([("the loop's key", public.as_str())]).expect("key");
    let signing = model_registry::Signing { trusted, required: true, ..Default::default() };
    let serving = state.path().join("sync/current/bundle");
    let manifest = std::fs::read(serving.join("manifest.json")).expect("the serving manifest");
    let names =
        edge_classifier::bundle::file_names(&edge_classifier::bundle::parse_manifest(&manifest).expect("parse"));
    let signer = signing.verify_dir(&serving, &names).unwrap_or_else(|e| panic!("the serving bundle: {e}"));
    assert_eq!(signer.as_deref(), Some(key.public_key().hint()));

    let report = stop(child, reader);
    assert_eq!(report.versions_promoted, ["1", "2"], "{report:?}");
    assert_eq!(report.champion_version.as_deref(), Some("2"));
    assert_eq!(report.served_version.as_deref(), Some("2"));
    assert!(report.load_requests > 0, "a client classified during the swap: {report:?}");
    assert_eq!(report.failed_requests, 0, "no request failed during the swap: {report:?}");
    assert!(report.prometheus_model_versions.iter().any(|v| v == "1"), "{report:?}");
    assert!(report.prometheus_model_versions.iter().any(|v| v == "2"), "{report:?}");
    assert_eq!(report.questions.len(), 4, "one test question per label: {report:?}");
    assert!(report.questions.iter().all(|q| q.version.as_deref() == Some("2")), "{report:?}");
    eprintln!(
        "loop: {} s, {} requests during the swap, {} failed; steps: {:?}",
        report.loop_seconds, report.load_requests, report.failed_requests, report.steps
    );

    // Everything it started has stopped: MLflow, Prometheus, the edge instances.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left: Vec<String> = [
            (launcher::http_ok(&format!("http://127.0.0.1:{mlflow}/health")), "MLflow".to_owned()),
            (launcher::http_ok(&format!("http://127.0.0.1:{prometheus}/-/ready")), "Prometheus".to_owned()),
            (launcher::http_ok(&format!("http://127.0.0.1:{gateway}/gateway/health")), "the gateway".to_owned()),
        ]
        .into_iter()
        .filter_map(|(up, what)| up.then_some(what))
        .chain(instances.iter().filter(|&&pid| alive(pid)).map(|pid| format!("wasmtime serve (pid {pid})")))
        .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM: {left:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Then real questions from a data dump land on the same state: champion 2 answers them
    // before the retrain trains on them, and the judgement is in the registry and, while 2 is
    // the champion, in registry-sync's metrics.
    let posts = root().join("harvest/tests/fixtures/Posts.xml");
    let mut child = up(state.path(), (gateway, prometheus, mlflow), &["--dump".as_ref(), posts.as_os_str()]);
    let (story, reader) = story_until_serving(&mut child);
    // The recorded questions: 11 with exactly one language tag (harvest/tests/fixtures/README.md).
    assert!(story.contains("landed 11 questions of the dump"), "{story}");
    assert!(story.contains("champion version 2 on 11 new questions (1 batch(es))"), "{story}");
    let tags = version_tags(mlflow, "2");
    let summary: serde_json::Value =
        serde_json::from_str(tags.get("stacktag.arrivals").expect("version 2 carries its judgement")).expect("json");
    assert_eq!(summary["questions"], 11, "{summary}");
    assert!(summary["last_batch"].as_str().is_some_and(|b| b.contains("-dump")), "{summary}");
    let promoted = story.contains("version 3 serves");
    assert!(promoted || story.contains("version 3 was not promoted"), "{story}");
    let metrics = format!("http://127.0.0.1:{gateway}/metrics");
    if promoted {
        // The new champion has no judgement yet: nothing stale about version 2 is exported.
        assert!(!get(&metrics).contains(r#"stacktag_arrivals_questions{version="2"}"#));
    } else {
        // Read with the alias at the next poll (every 10 s).
        let deadline = Instant::now() + Duration::from_secs(60);
        while !get(&metrics).contains(r#"stacktag_arrivals_questions{version="2"} 11"#) {
            assert!(Instant::now() < deadline, "registry-sync never exported the judgement:\n{}", get(&metrics));
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let report = stop(child, reader);
    assert!(
        report.judged.as_deref().is_some_and(|j| j.starts_with("champion version 2 on 11 new questions")),
        "{report:?}"
    );
    assert_eq!(report.rejected.is_none(), promoted, "{report:?}");
}

/// Starts `stacktag up` on `state` and the ports (gateway, Prometheus, MLflow), with `extra`.
fn up(state: &Path, (gateway, prometheus, mlflow): (u16, u16, u16), extra: &[&std::ffi::OsStr]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_stacktag"))
        .arg("up")
        .arg("--repo")
        .arg(root())
        .arg("--state-dir")
        .arg(state)
        .args(["--gateway-port", &gateway.to_string()])
        .args(["--prometheus-port", &prometheus.to_string()])
        .args(["--mlflow-port", &mlflow.to_string()])
        .args(extra)
        .env_remove("MLFLOW_TRACKING_URI")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stacktag up")
}

/// The loop's story, line by line (echoed), until it says it serves until stopped.
fn story_until_serving(child: &mut std::process::Child) -> (String, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut story = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                let serving = line.contains("serving until Ctrl-C");
                story.push(line);
                if serving {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("stacktag up ended before serving: {:?}\n{}", child.wait(), story.join("\n"))
            }
        }
        assert!(Instant::now() < deadline, "the loop did not finish within 15 min:\n{}", story.join("\n"));
    }
    (story.join("\n"), reader)
}

/// SIGTERM, a clean exit, and the report: the one line on stdout.
fn stop(mut child: std::process::Child, reader: std::thread::JoinHandle<()>) -> Report {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut stdout).expect("stdout");
    let exit = child.wait().expect("wait");
    let _ = reader.join();
    assert!(exit.success(), "SIGTERM after the loop is a clean stop: {exit:?}");
    let last = stdout.lines().last().expect("a report line");
    assert_eq!(stdout.lines().count(), 1, "stdout holds the report alone: {stdout}");
    serde_json::from_str(last).expect("the report is JSON")
}

/// A GET's body (the runtime is the test's own: the crate's HTTP client is async).
fn get(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async { reqwest::get(url).await.expect("GET").text().await.expect("body") })
}

/// A model version's tags, read from MLflow's REST API.
fn version_tags(mlflow: u16, version: &str) -> std::collections::HashMap<String, String> {
    let body =
        get(&format!("http://127.0.0.1:{mlflow}/api/2.0/mlflow/model-versions/get?name=stacktag&version={version}"));
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["model_version"]["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["key"].as_str()?.to_owned(), t["value"].as_str()?.to_owned())))
        .collect()
}
