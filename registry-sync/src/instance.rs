//! The local deployer's unit: one `wasmtime serve` of a baked component on a free loopback
//! port. Blue/green is two of these, and the gateway's pointer to one of them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::children::{Children, Kind};
use crate::metrics::Metrics;
use crate::state::DeployedModel;

/// How long a new instance may take to answer `GET /health` with 200 (wasmtime compiles the
/// component at start: seconds for the ~10 MB one).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(90);
/// Attempts on fresh ports: a port found free can be taken before wasmtime binds it.
const START_ATTEMPTS: usize = 3;

/// A running edge instance.
#[derive(Debug)]
pub struct Instance {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// What it serves.
    pub model: DeployedModel,
    /// The baked component it runs.
    pub wasm: PathBuf,
    // The bundle's manifest and the files it lists: all the web demo may serve from
    // `bundle_dir`, read once at start rather than per request.
    listed: std::collections::BTreeSet<String>,
    // `kill_on_drop`: dropping the instance stops its process.
    child: tokio::sync::Mutex<Child>,
    pid: Option<u32>,
    children: Children,
}

impl Instance {
    /// Starts `wasmtime serve` on `wasm` (its log beside it, `<wasm>.log`) and waits for
    /// `GET /health` to answer 200.
    /// The process is recorded in `children` while it runs.
    pub async fn start(
        wasmtime: &Path,
        wasm: &Path,
        model: DeployedModel,
        http: &reqwest::Client,
        children: &Children,
    ) -> Result<Self, String> {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(wasmtime, wasm, &model, http, children).await {
                Ok(i) => return Ok(i),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn try_start(
        wasmtime: &Path,
        wasm: &Path,
        model: &DeployedModel,
        http: &reqwest::Client,
        children: &Children,
    ) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let log_path = PathBuf::from(format!("{}.log", wasm.display()));
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("cannot create `{}`: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new(wasmtime)
            .args(["serve", "-Scli", "--addr", &format!("127.0.0.1:{port}")])
            .arg(wasm)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e}", wasmtime.display()))?;
        let pid = child.id();
        if let Some(pid) = pid {
            children.record(pid, Kind::Process);
        }
        let forget = || {
            if let Some(pid) = pid {
                children.forget(pid);
            }
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: String = tail.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
                forget();
                return Err(format!("`wasmtime serve` on port {port} exited ({status}): {tail}"));
            }
            // The port was free when picked, not necessarily when wasmtime bound it: whoever
            // answers must be this instance, serving this version, before it gets traffic.
            if let Ok(r) = http.get(format!("{url}/health")).timeout(Duration::from_secs(2)).send().await
                && r.status().is_success()
            {
                match serves_version(http, &url, &model.version).await {
                    Ok(true) => {
                        return Ok(Self {
                            url,
                            model: model.clone(),
                            wasm: wasm.to_owned(),
                            listed: listed_files(&wasm.with_file_name(crate::state::BUNDLE_DIR)),
                            child: tokio::sync::Mutex::new(child),
                            pid,
                            children: children.clone(),
                        });
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let _ = child.kill().await;
                        forget();
                        return Err(e);
                    }
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                forget();
                return Err(format!(
                    "`{url}/health` did not answer 200 within {HEALTH_TIMEOUT:?} (log: `{}`)",
                    log_path.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The bundle baked into it: a model dir holds both (`state`), and the web demo serves
    /// this one so the page runs the model the edge serves.
    pub fn bundle_dir(&self) -> PathBuf {
        self.wasm.with_file_name(crate::state::BUNDLE_DIR)
    }

    /// Whether `file` is the bundle's manifest or a file it lists: the only names the web demo
    /// serves from [`Instance::bundle_dir`].
    pub fn lists(&self, file: &str) -> bool {
        self.listed.contains(file)
    }

    /// Stops the process.
    pub async fn stop(&self) {
        let _ = self.child.lock().await.kill().await;
        if let Some(pid) = self.pid {
            self.children.forget(pid);
        }
    }

    /// The process id of its `wasmtime serve` (tests look at it).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }
}

/// The instance the gateway sends requests to: swapped by the deployer, read per request.
///
/// A request clones the `Arc` under the read lock and holds it until its answer is read, so
/// after a swap the old instance's strong count falls to the deployer's own as requests
/// finish: that is the drain.
#[derive(Debug)]
pub struct Upstream {
    slot: RwLock<Option<Arc<Instance>>>,
    metrics: Arc<Metrics>,
}

impl Upstream {
    /// No instance yet; `stacktag_model_info` follows every swap.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { slot: RwLock::new(None), metrics }
    }

    /// The instance serving now.
    pub fn current(&self) -> Option<Arc<Instance>> {
        self.slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Points the gateway at `next` atomically; returns the instance it replaced.
    pub fn swap(&self, next: Arc<Instance>) -> Option<Arc<Instance>> {
        self.metrics.set_model(&next.model);
        self.slot.write().unwrap_or_else(|p| p.into_inner()).replace(next)
    }
}

/// The manifest of the bundle in `dir`, the files it lists and its signature if it has one
/// (empty if the manifest does not parse: then nothing is served from it).
fn listed_files(dir: &Path) -> std::collections::BTreeSet<String> {
    use edge_classifier::api::files;
    let manifest =
        std::fs::read(dir.join(files::MANIFEST)).ok().and_then(|b| edge_classifier::bundle::parse_manifest(&b).ok());
    manifest.map(|m| edge_classifier::bundle::shipped_names(&m, dir).into_iter().collect()).unwrap_or_default()
}

/// Whether the server at `url` says it serves registry version `version` (`model_version` of
/// `GET /model`). A different version, or an answer that is not a manifest, is an error:
/// something other than the instance just started holds the port.
async fn serves_version(http: &reqwest::Client, url: &str, version: &str) -> Result<bool, String> {
    let Ok(r) = http.get(format!("{url}/model")).timeout(Duration::from_secs(2)).send().await else {
        return Ok(false);
    };
    let served: Option<String> = match r.json::<serde_json::Value>().await {
        Ok(m) => m.get("model_version").and_then(|v| v.as_str()).map(str::to_owned),
        Err(_) => None,
    };
    match served.as_deref() {
        Some(v) if v == version => Ok(true),
        other => Err(format!(
            "`{url}` answers, but not as version {version} (`/model` says {}): another process holds the port",
            other.map_or_else(|| "nothing readable".to_owned(), |v| format!("version {v}"))
        )),
    }
}

#[cfg(test)]
mod tests {
    use mlflow_client::testing::{Fault, FaultServer};

    use super::serves_version;

    #[tokio::test]
    async fn a_port_answered_by_another_version_is_refused_and_the_right_one_taken() {
        let http = reqwest::Client::builder().no_proxy().build().expect("client");
        let other = FaultServer::start(None, [Fault::Reply(200, r#"{"model_version":"9"}"#.into())]).expect("server");
        let err = serves_version(&http, other.url(), "3").await.expect_err("another version holds the port");
        assert!(err.contains("not as version 3") && err.contains("version 9"), "{err}");
        let stranger = FaultServer::start(None, [Fault::Reply(200, r#"{"hello":"world"}"#.into())]).expect("server");
        let err = serves_version(&http, stranger.url(), "3").await.expect_err("not an instance at all");
        assert!(err.contains("nothing readable"), "{err}");
        let ours = FaultServer::start(None, [Fault::Reply(200, r#"{"model_version":"3"}"#.into())]).expect("server");
        assert_eq!(serves_version(&http, ours.url(), "3").await, Ok(true));
    }
}
