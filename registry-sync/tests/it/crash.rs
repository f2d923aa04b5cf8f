//! `kill -9` in the middle of a sync, then a restart on the same state dir: the real binary
//! as a child process, since a SIGKILL cannot be sent to a `serve` running in-process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mlflow_client::testing::{free_port, unique_name};
use registry_sync::children::{Children, start_time};

use crate::common::*;

/// A `registry-sync serve` child: SIGKILLed when dropped, and then what it started (recorded
/// in the state dir) is stopped the way a restart would.
struct Serve {
    child: Child,
    log: PathBuf,
    state_dir: PathBuf,
}

impl Serve {
    fn start(model: &str, state_dir: &Path, port: u16) -> Self {
        let log = state_dir.with_extension(format!("{}.log", unique_name("serve")));
        let out = std::fs::File::create(&log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_registry-sync"))
            .arg("serve")
            .args(["--tracking-uri", mlflow_url()])
            .args(["--registered-model", model])
            .arg("--eval")
            .arg(root().join("trainer/tests/fixtures/tiny.csv"))
            .arg("--generic-component")
            .arg(generic_component())
            .arg("--wasmtime")
            .arg(wasmtime())
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--poll-interval", "0.5"])
            .env_remove("STACKTAG_WEBHOOK_SECRET")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("run registry-sync");
        Self { child, log, state_dir: state_dir.to_owned() }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`, reaped.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill9();
        Children::in_state_dir(&self.state_dir).map(|c| c.reap_orphans()).ok();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn mlflow_url() -> &'static str {
    mlflow_client::testing::MlflowServer::shared().url()
}

fn alive(pid: u32) -> bool {
    start_time(pid).is_some()
}

/// Waits (bounded) until a bake of `version` runs: its `wasmtime wizer` group is recorded
/// beside the `known` instances, and alive. Returns its pid.
async fn wait_for_bake(serve: &Serve, children: &Children, known: &[u32], version: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(pid) = children.recorded().into_iter().find(|p| !known.contains(p) && alive(*p)) {
            return pid;
        }
        assert!(Instant::now() < deadline, "never started baking version {version}:\n{}", serve.log());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A `serve` of `model` on `state_dir` (free port) once it serves `version`: the child, its
/// base URL, the pid records, and the one `wasmtime serve` recorded.
async fn serving(model: &str, state_dir: &Path, version: &str) -> (Serve, String, Children, Vec<u32>) {
    let port = free_port().expect("port");
    let base = format!("http://127.0.0.1:{port}");
    let serve = Serve::start(model, state_dir, port);
    wait_for_version(&http(), &base, version).await;
    let children = Children::in_state_dir(state_dir).expect("children");
    let instances = children.recorded();
    assert_eq!(instances.len(), 1, "one `wasmtime serve` recorded: {instances:?}");
    (serve, base, children, instances)
}

fn tmp_leftovers(state_dir: &Path) -> Vec<String> {
    std::fs::read_dir(state_dir.join("models"))
        .expect("models")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_baking_then_a_restart_serves_the_last_good_model_and_stops_the_orphans() {
    ensure_component();
    mlflow().await;
    let (model, reg, versions) = tiny_model("sync-kill", 2, 1).await;
    let [v1, v2] = &versions[..] else { unreachable!() };
    let dir = tempfile::tempdir().expect("dir");
    let state_dir = dir.path().join("state");
    let http = http();

    let (mut first, _, children, v1_instances) = serving(&model, &state_dir, &v1.version).await;

    // Move the alias and kill the process while it bakes v2.
    set_champion(&reg, &v2.version).await;
    // The `evaluate` step's event: the bake starts right after it.
    let bake = wait_for_bake(&first, &children, &v1_instances, &v2.version).await;
    first.kill9();
    let orphans = children.recorded();
    assert!(orphans.contains(&bake), "the bake's record is gone: {orphans:?}");
    assert!(alive(bake), "the bake was not running when registry-sync was killed");
    assert!(orphans.contains(&v1_instances[0]), "{orphans:?}");
    assert!(alive(v1_instances[0]), "a SIGKILLed registry-sync cannot stop its `wasmtime serve`");
    // What a kill leaves: `current` on v1, complete; v2 never got a model dir.
    assert_eq!(std::fs::read_link(state_dir.join("current")).expect("current"), Path::new("models").join(&v1.version));
    assert!(state_dir.join("models").join(&v1.version).join("edge.wasm").is_file());
    assert!(!state_dir.join("models").join(&v2.version).exists(), "a half-built version must not have its name");

    // A rollback while it was down, then a restart on the same state dir.
    set_champion(&reg, &v1.version).await;
    let port = free_port().expect("port");
    let base = format!("http://127.0.0.1:{port}");
    let second = Serve::start(&model, &state_dir, port);
    wait_for_version(&http, &base, &v1.version).await;
    for pid in &orphans {
        assert!(!alive(*pid), "orphan {pid} of the killed run still runs:\n{}", second.log());
    }
    assert!(tmp_leftovers(&state_dir).is_empty(), "{:?}", tmp_leftovers(&state_dir));
    let now = children.recorded();
    assert_eq!(now.len(), 1, "only the new instance is recorded: {now:?}");
    assert!(!orphans.contains(&now[0]));
    let r = http
        .post(format!("{base}/classify"))
        .header("content-type", "text/plain")
        .body("java public static void main")
        .send()
        .await;
    assert!(r.is_ok_and(|r| r.status().is_success()));

    // And it syncs again: v2 serves.
    set_champion(&reg, &v2.version).await;
    wait_for_version(&http, &base, &v2.version).await;
    assert_eq!(std::fs::read_link(state_dir.join("current")).expect("current"), Path::new("models").join(&v2.version));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_baking_stops_the_bake_and_the_instance_and_exits_cleanly() {
    ensure_component();
    mlflow().await;
    let (model, reg, versions) = tiny_model("sync-term", 2, 1).await;
    let [v1, v2] = &versions[..] else { unreachable!() };
    let dir = tempfile::tempdir().expect("dir");
    let state_dir = dir.path().join("state");
    let (mut serve, _, children, instances) = serving(&model, &state_dir, &v1.version).await;

    set_champion(&reg, &v2.version).await;
    let bake = wait_for_bake(&serve, &children, &instances, &v2.version).await;
    assert!(alive(bake));
    let status = Command::new("kill").args(["-TERM", &serve.child.id().to_string()]).status().expect("kill -TERM");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(120);
    let exit = loop {
        if let Some(exit) = serve.child.try_wait().expect("try_wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "registry-sync did not exit after SIGTERM:\n{}", serve.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit {exit:?} after SIGTERM:\n{}", serve.log());
    assert!(!alive(bake), "the bake {bake} outlived registry-sync:\n{}", serve.log());
    assert!(!alive(instances[0]), "the instance {} outlived registry-sync", instances[0]);
    assert!(children.recorded().is_empty(), "records left: {:?}", children.recorded());
    assert!(serve.log().contains("shutting down"), "{}", serve.log());
    // `current` still names the last good model; the abandoned bake never got v2's name.
    assert_eq!(std::fs::read_link(state_dir.join("current")).expect("current"), Path::new("models").join(&v1.version));
    assert!(!state_dir.join("models").join(&v2.version).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_each_step_of_a_sync_then_a_restart_converges_on_the_champion() {
    ensure_component();
    mlflow().await;
    let (model, reg, versions) = tiny_model("sync-steps", 2, 1).await;
    let [v1, v2] = &versions[..] else { unreachable!() };
    let http = http();
    // Each step's event (prepare.rs, sync.rs): the kill lands right after it, before the next.
    for step in ["download", "evaluate", "bake", "instance"] {
        set_champion(&reg, &v1.version).await;
        let dir = tempfile::tempdir().expect("dir");
        let state_dir = dir.path().join("state");
        let (mut first, ..) = serving(&model, &state_dir, &v1.version).await;

        set_champion(&reg, &v2.version).await;
        let event = format!("step=\"{step}\"");
        let of_v2 = [format!("version={} ", v2.version), format!("version=\"{}\"", v2.version)];
        let seen =
            |log: String| log.lines().any(|l| l.contains(&event) && of_v2.iter().any(|v| l.contains(v.as_str())));
        let deadline = Instant::now() + Duration::from_secs(120);
        while !seen(first.log()) {
            assert!(
                Instant::now() < deadline,
                "step {step} of version {} never happened:\n{}",
                v2.version,
                first.log()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        first.kill9();
        let children = Children::in_state_dir(&state_dir).expect("children");
        let orphans = children.recorded();

        let port = free_port().expect("port");
        let base = format!("http://127.0.0.1:{port}");
        let second = Serve::start(&model, &state_dir, port);
        wait_for_version(&http, &base, &v2.version).await;
        for pid in &orphans {
            assert!(!alive(*pid), "after a kill at `{step}`, orphan {pid} still runs:\n{}", second.log());
        }
        assert!(tmp_leftovers(&state_dir).is_empty(), "after a kill at `{step}`: {:?}", tmp_leftovers(&state_dir));
        assert_eq!(
            std::fs::read_link(state_dir.join("current")).expect("current"),
            Path::new("models").join(&v2.version),
            "after a kill at `{step}`"
        );
        drop(second);
    }
}
