//! The main job end to end: `stacktag up` on a fresh state dir and free loopback ports, with
//! the real MLflow, registry-sync, `wasmtime serve` and Prometheus. The first batch is trained,
//! gated and served, the second lands under load and is swapped in, and then SIGTERM stops
//! everything the loop started.
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_stacktag"))
        .arg("up")
        .arg("--repo")
        .arg(root())
        .arg("--state-dir")
        .arg(state.path())
        .args(["--gateway-port", &gateway.to_string()])
        .args(["--prometheus-port", &prometheus.to_string()])
        .args(["--mlflow-port", &mlflow.to_string()])
        .env_remove("MLFLOW_TRACKING_URI")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stacktag up");

    // The story, line by line, until the loop says it serves until stopped.
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
    let story = story.join("\n");
    assert!(story.contains("version 1 serves") && story.contains("version 2 serves"), "{story}");
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

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut stdout).expect("stdout");
    let exit = child.wait().expect("wait");
    let _ = reader.join();
    assert!(exit.success(), "SIGTERM after the loop is a clean stop: {exit:?}");

    // The report is the last line, and the only one on stdout.
    let last = stdout.lines().last().expect("a report line");
    assert_eq!(stdout.lines().count(), 1, "stdout holds the report alone: {stdout}");
    let report: Report = serde_json::from_str(last).expect("the report is JSON");
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
}
