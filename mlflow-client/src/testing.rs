//! Test support for the workspace's tests: a real `mlflow server` from the project's venv,
//! and a scripted fault server for what a real server will not do on demand (503 bursts,
//! bodies cut short, dropped connections). Loopback only. Always compiled rather than behind
//! a feature: a dev-only feature would give the crate (and every crate above it) a second
//! build for the tests.
//!
//! One server per test binary is enough: [`MlflowServer::shared`] starts it once (12–16 s)
//! and tests isolate themselves by unique experiment and model names ([`unique_name`]).

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{ClientConfig, RetryPolicy};

/// A retry policy for tests: 3 quick retries.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy { max_retries: 3, initial_backoff: Duration::from_millis(20), max_backoff: Duration::from_millis(200) }
}

/// A name no other test (or earlier run) uses: `prefix-<pid>-<time>-<counter>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{prefix}-{}-{t}-{n}", std::process::id())
}

/// The tools set-up installed, from the environment (`STACKTAG_CACHE`, `STACKTAG_MLFLOW`, ...).
pub fn tools() -> launcher::tools::Tools {
    launcher::tools::Tools::from_env()
}

pub use launcher::free_port;

/// A running `mlflow server` (started by [`launcher::mlflow`], as the loop starts it) with a
/// sqlite backend and a proxied artifact store in a temporary directory. Dropping it stops the
/// server's whole process group; if the test process dies instead, the server stops itself.
#[derive(Debug)]
pub struct MlflowServer {
    // Declared first: dropped (stopped) before its directory is removed.
    service: launcher::Service,
    dir: tempfile::TempDir,
}

impl MlflowServer {
    /// Starts a server on a free loopback port and waits for `/health`.
    pub fn start() -> Result<Self, launcher::LaunchError> {
        Self::launch(None)
    }

    /// Starts a server with MLflow's basic-auth app (`--app-name basic-auth`), whose admin
    /// user is `admin` with `admin_password`; every API call then needs credentials.
    pub fn start_with_basic_auth(admin_password: &str) -> Result<Self, launcher::LaunchError> {
        Self::launch(Some(admin_password))
    }

    fn launch(admin_password: Option<&str>) -> Result<Self, launcher::LaunchError> {
        let spawn_err = |source| launcher::LaunchError::Spawn { name: "MLflow".into(), source };
        let dir = tempfile::Builder::new().prefix("mlflow-test-").tempdir().map_err(spawn_err)?;
        let opts = launcher::mlflow::MlflowOptions {
            bin: tools().mlflow,
            dir: dir.path().to_owned(),
            port: free_port().map_err(spawn_err)?,
            basic_auth_admin_password: admin_password.map(str::to_owned),
        };
        Ok(Self { service: launcher::mlflow::start(&opts)?, dir })
    }

    /// The one server of this test binary, started on first use. Panics (failing the test
    /// that asked) if it cannot start.
    pub fn shared() -> &'static MlflowServer {
        static SERVER: OnceLock<MlflowServer> = OnceLock::new();
        SERVER.get_or_init(|| match MlflowServer::start() {
            Ok(s) => s,
            Err(e) => panic!("cannot start the test MLflow server: {e}"),
        })
    }

    /// Its base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        self.service.url()
    }

    /// A client configuration for it, with [`fast_retry`].
    pub fn config(&self) -> ClientConfig {
        match ClientConfig::new(self.url()) {
            Ok(c) => c.with_retry(fast_retry()),
            Err(e) => panic!("test server URL `{}` is invalid: {e}", self.url()),
        }
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.service.log_tail(30)
    }

    /// Its state directory (database, artifacts, log).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// What the fault server does with one request (it doubles as a webhook receiver:
/// [`Fault::Status`]`(200)` accepts a delivery and [`FaultServer::seen`] shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and an MLflow-style JSON error body.
    Status(u16),
    /// Answer with this status and this JSON body (to stand in for an API).
    Reply(u16, String),
    /// Answer 200 with a `Content-Length` larger than the body, then close: a download cut
    /// short.
    Truncate,
    /// Close the connection without answering.
    Drop,
    /// Pass the request to the upstream server (or answer 404 without one).
    Forward,
}

/// One request the fault server saw.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// e.g. `GET /api/2.0/mlflow/registered-models/get?name=x HTTP/1.1`
    pub request_line: String,
    /// Header lines, as received.
    pub headers: Vec<String>,
    /// The body, as received.
    pub body: Vec<u8>,
}

impl SeenRequest {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A loopback HTTP server that plays a script of [`Fault`]s, one per request, then forwards
/// everything to an upstream (a real MLflow server) or answers 404.
pub struct FaultServer {
    url: String,
    script: Arc<Mutex<VecDeque<Fault>>>,
    targeted: Arc<Mutex<Vec<Targeted>>>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    stop: Arc<AtomicBool>,
    port: u16,
    handle: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FaultServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultServer").field("url", &self.url).finish()
    }
}

impl FaultServer {
    /// Starts the server; `upstream` is a base URL such as `http://127.0.0.1:5000`.
    pub fn start(upstream: Option<&str>, script: impl IntoIterator<Item = Fault>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let upstream = upstream.map(|u| u.trim_start_matches("http://").trim_end_matches('/').to_owned());
        let script = Arc::new(Mutex::new(script.into_iter().collect::<VecDeque<_>>()));
        let targeted = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (script, targeted, seen, stop) = (script.clone(), targeted.clone(), seen.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let (script, targeted, seen, upstream) =
                        (script.clone(), targeted.clone(), seen.clone(), upstream.clone());
                    thread::spawn(move || {
                        let plan = Plan { script: &script, targeted: &targeted };
                        let _ = serve(conn, plan, &seen, upstream.as_deref());
                    });
                }
            })
        };
        Ok(Self { url: format!("http://127.0.0.1:{port}"), script, targeted, seen, stop, port, handle: Some(handle) })
    }

    /// The next `times` requests whose request line or body contains `pattern` (for example
    /// `POST /api/2.0/mlflow/registered-models/alias`, or a tag's key) get `fault`, wherever
    /// they fall in the sequence; they take precedence over the script and do not consume it.
    /// How a test fails one call between others that must succeed.
    pub fn fail_matching(&self, pattern: &str, fault: Fault, times: usize) {
        if let Ok(mut t) = self.targeted.lock() {
            t.push(Targeted { pattern: pattern.to_owned(), fault, left: times });
        }
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Appends faults to the script.
    pub fn push(&self, faults: impl IntoIterator<Item = Fault>) {
        if let Ok(mut s) = self.script.lock() {
            s.extend(faults);
        }
    }

    /// Drops every fault still scripted or targeted: from now on everything is forwarded.
    pub fn heal(&self) {
        if let Ok(mut s) = self.script.lock() {
            s.clear();
        }
        if let Ok(mut t) = self.targeted.lock() {
            t.clear();
        }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A fault for requests that match a pattern ([`FaultServer::fail_matching`]).
struct Targeted {
    pattern: String,
    fault: Fault,
    left: usize,
}

/// Where a request's fault comes from: a matching targeted fault first, else the script.
#[derive(Clone, Copy)]
struct Plan<'a> {
    script: &'a Mutex<VecDeque<Fault>>,
    targeted: &'a Mutex<Vec<Targeted>>,
}

impl Plan<'_> {
    fn fault_for(&self, request_line: &str, body: &[u8]) -> Fault {
        let body = String::from_utf8_lossy(body);
        let matches = |t: &Targeted| t.left > 0 && (request_line.contains(&t.pattern) || body.contains(&t.pattern));
        if let Ok(mut targeted) = self.targeted.lock()
            && let Some(t) = targeted.iter_mut().find(|t| matches(t))
        {
            t.left -= 1;
            return t.fault.clone();
        }
        self.script.lock().ok().and_then(|mut s| s.pop_front()).unwrap_or(Fault::Forward)
    }
}

/// Serves requests on one connection until it closes (every answer closes it).
fn serve(conn: TcpStream, plan: Plan<'_>, seen: &Mutex<Vec<SeenRequest>>, upstream: Option<&str>) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(());
    }
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
        headers.push(line);
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    if let Ok(mut s) = seen.lock() {
        s.push(SeenRequest {
            request_line: request_line.trim_end().to_owned(),
            headers: headers.clone(),
            body: body.clone(),
        });
    }
    let fault = plan.fault_for(&request_line, &body);
    let mut out = conn;
    match fault {
        Fault::Status(code) => {
            let body = format!(r#"{{"error_code":"FAULT_{code}","message":"scripted fault {code}"}}"#);
            write!(
                out,
                "HTTP/1.1 {code} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
        }
        Fault::Reply(code, body) => {
            write!(
                out,
                "HTTP/1.1 {code} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
        }
        Fault::Truncate => {
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 4096\r\nConnection: close\r\n\r\nonly a little")?;
        }
        Fault::Drop => {}
        Fault::Forward => match upstream {
            Some(up) => {
                let mut upstream_conn = TcpStream::connect(up)?;
                upstream_conn.set_read_timeout(Some(Duration::from_secs(60)))?;
                let mut head = request_line.clone();
                for h in &headers {
                    let name = h.split(':').next().unwrap_or("").trim();
                    if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("host") {
                        continue;
                    }
                    head.push_str(h);
                    head.push_str("\r\n");
                }
                head.push_str(&format!("Host: {up}\r\nConnection: close\r\n\r\n"));
                upstream_conn.write_all(head.as_bytes())?;
                upstream_conn.write_all(&body)?;
                let mut answer = Vec::new();
                upstream_conn.read_to_end(&mut answer)?;
                out.write_all(&answer)?;
            }
            None => {
                let body = r#"{"error_code":"ENDPOINT_NOT_FOUND","message":"no upstream"}"#;
                write!(
                    out,
                    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )?;
            }
        },
    }
    out.flush()?;
    out.shutdown(Shutdown::Both)
}

/// A loopback Databricks workspace ([`launcher::databricks`]): Unity Catalog registry,
/// MLflow-managed run artifacts on a real S3 (moto), OAuth, a real `mlflow server` behind, and
/// MLflow's own Python client as the oracle of what was written ([`DatabricksStandin::oracle`]).
#[derive(Debug)]
pub struct DatabricksStandin {
    // Declared first: stopped before its directory is removed.
    standin: launcher::databricks::Standin,
    dir: tempfile::TempDir,
}

/// The repository this crate is built from (the stand-in's scripts are in it).
fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl DatabricksStandin {
    /// Starts one (15–30 s: MLflow's start) with its run artifacts on `run_artifacts`.
    pub fn start(run_artifacts: launcher::databricks::RunArtifacts) -> Result<Self, launcher::LaunchError> {
        let spawn_err = |source| launcher::LaunchError::Spawn { name: "Databricks stand-in".into(), source };
        let dir = tempfile::Builder::new().prefix("databricks-standin-").tempdir().map_err(spawn_err)?;
        let standin = launcher::databricks::start(&tools().python, &repo(), dir.path(), run_artifacts)?;
        Ok(Self { standin, dir })
    }

    /// The one stand-in of this test binary (run artifacts on S3), started on first use.
    /// Panics (failing the test that asked) if it cannot start.
    pub fn shared() -> &'static DatabricksStandin {
        static STANDIN: OnceLock<DatabricksStandin> = OnceLock::new();
        STANDIN.get_or_init(|| match DatabricksStandin::start(launcher::databricks::RunArtifacts::S3) {
            Ok(s) => s,
            Err(e) => panic!("cannot start the Databricks stand-in: {e}"),
        })
    }

    /// What it said when ready: host, tokens, S3 endpoint.
    pub fn workspace(&self) -> &launcher::databricks::Workspace {
        &self.standin.workspace
    }

    /// The variables a client reads to reach it, as MLflow's and Stacktag's clients name
    /// them (with its personal access token).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let w = self.workspace();
        vec![
            (crate::env_vars::TRACKING_URI, "databricks".into()),
            (crate::env_vars::REGISTRY_URI, "databricks-uc".into()),
            (crate::env_vars::DATABRICKS_HOST, w.host.clone()),
            (crate::env_vars::DATABRICKS_TOKEN, w.token.clone()),
            (crate::env_vars::S3_ENDPOINT_URL, w.s3_endpoint.clone()),
            (crate::env_vars::AWS_DEFAULT_REGION, "us-east-1".into()),
        ]
    }

    /// A client configuration with its personal access token and [`fast_retry`], resolved
    /// from [`Self::env`] the way binaries resolve theirs.
    pub fn config(&self) -> ClientConfig {
        let env = self.env();
        match ClientConfig::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())) {
            Ok(c) => c.with_retry(fast_retry()),
            Err(e) => panic!("the stand-in's settings do not resolve: {e}"),
        }
    }

    /// The same with its service principal's OAuth client id and `secret`.
    pub fn oauth_config(&self, secret: &str) -> ClientConfig {
        let w = self.workspace();
        self.config().with_auth(crate::Auth::OAuthM2m {
            client_id: w.client_id.clone(),
            client_secret: crate::Secret::new(secret),
        })
    }

    /// Runs `oracle.py <args>` (MLflow's own Python client against the stand-in) and returns
    /// the JSON line it printed, or its failure (stderr included).
    pub fn oracle(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let out = std::process::Command::new(tools().python)
            .arg(launcher::databricks::scripts(&repo()).join("oracle.py"))
            .arg("--standin")
            .arg(&self.standin.ready_line)
            .args(args)
            .env_remove("MLFLOW_TRACKING_URI")
            .output()
            .map_err(|e| format!("cannot run oracle.py: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "oracle.py {args:?} failed ({}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
        serde_json::from_str(line).map_err(|e| format!("oracle.py {args:?} printed no JSON ({e}):\n{stdout}"))
    }

    /// Sets faults (merged into the current ones), e.g. `{"alias_forbidden": true}`.
    pub async fn faults(&self, faults: serde_json::Value) {
        let url = format!("{}/__standin/faults", self.workspace().host);
        let ok = reqwest::Client::new().post(&url).json(&faults).send().await.is_ok_and(|r| r.status().is_success());
        assert!(ok, "the stand-in refused faults {faults}");
    }

    /// The requests it recorded (both fronts), oldest first.
    pub async fn requests(&self) -> Vec<serde_json::Value> {
        let url = format!("{}/__standin/requests", self.workspace().host);
        let reply: serde_json::Value = match reqwest::Client::new().get(&url).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(e) => panic!("cannot read the stand-in's requests: {e}"),
        };
        match reply {
            serde_json::Value::Array(a) => a,
            serde_json::Value::Object(mut o) => match o.remove("requests") {
                Some(serde_json::Value::Array(a)) => a,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// Its log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.standin.service().log_tail(40)
    }

    /// Its state directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
