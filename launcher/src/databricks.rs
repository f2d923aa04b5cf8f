//! The Databricks stand-in (`tools/databricks-standin/standin.py`): a loopback Databricks
//! workspace for the tests, since no real one is reachable. It fronts a real `mlflow server`
//! (tracking), a real S3 (moto) and a model of Unity Catalog's registry, MLflow-managed run
//! artifacts and OAuth, and MLflow's own Python client round-trips through it
//! (docs/databricks-standin.md says what is real, what is modelled, and how).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::service::{LaunchError, Service, Spec};

/// MLflow's start dominates (12–30 s here); a cold, busy machine takes longer.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

/// What the stand-in says once everything in it answers: where it is and who may call it.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct Workspace {
    /// The workspace URL (`DATABRICKS_HOST`), `http://127.0.0.1:PORT`.
    pub host: String,
    /// Its S3 endpoint (`MLFLOW_S3_ENDPOINT_URL`).
    pub s3_endpoint: String,
    /// A personal access token it accepts (`DATABRICKS_TOKEN`).
    pub token: String,
    /// A service principal it accepts (`DATABRICKS_CLIENT_ID`).
    pub client_id: String,
    /// That principal's secret (`DATABRICKS_CLIENT_SECRET`).
    pub client_secret: String,
    /// The bucket behind every location.
    pub bucket: String,
    /// Where its run artifacts live (`s3` or `azure`; see [`RunArtifacts`]).
    #[serde(default)]
    pub run_artifacts: String,
}

/// Where the stand-in keeps run and logged-model artifacts, that is which signed URLs its
/// `credentials-for-write`/`-read` answer. Unity Catalog versions stay on its S3 either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunArtifacts {
    /// Its S3 front (moto): AWS presigned URLs, as on an AWS workspace.
    S3,
    /// azurite, Microsoft's storage emulator: Azure SAS URLs, as on Azure Databricks.
    Azure,
}

impl RunArtifacts {
    fn arg(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Azure => "azure",
        }
    }
}

/// A running stand-in: the service (stopped when dropped) and what it said.
#[derive(Debug)]
pub struct Standin {
    /// What it said when ready (the line `oracle.py --standin` reads too).
    pub workspace: Workspace,
    /// The ready line itself.
    pub ready_line: String,
    service: Service,
}

impl Standin {
    /// The service (its log, its pid).
    pub fn service(&self) -> &Service {
        &self.service
    }
}

/// Starts the stand-in with the venv's `python` from the repository at `repo`, its state in
/// `dir` (created), its run artifacts on `run_artifacts`, and waits for its ready line.
pub fn start(python: &Path, repo: &Path, dir: &Path, run_artifacts: RunArtifacts) -> Result<Standin, LaunchError> {
    let script = scripts(repo).join("standin.py");
    for (program, hint) in [(python, "run scripts/setup.sh (it makes the venv)"), (&*script, "not in this checkout")] {
        if !program.exists() {
            return Err(LaunchError::Missing { program: program.to_owned(), hint });
        }
    }
    let spawn_err = |source| LaunchError::Spawn { name: "Databricks stand-in".into(), source };
    std::fs::create_dir_all(dir).map_err(spawn_err)?;
    let port = crate::free_port().map_err(spawn_err)?;
    let args = vec![
        script.into_os_string(),
        "--state-dir".into(),
        dir.as_os_str().to_owned(),
        "--port".into(),
        port.to_string().into(),
        "--run-artifacts".into(),
        run_artifacts.arg().into(),
        // Its lifetime is the wrapper's (see `service`), whose stdin is ours.
        "--ignore-stdin".into(),
    ];
    let log = dir.join("standin.log");
    let service = Service::start(Spec {
        name: "Databricks stand-in",
        program: python,
        args,
        env: vec![("MLFLOW_DISABLE_TELEMETRY", "true".to_owned()), ("DO_NOT_TRACK", "true".to_owned())],
        env_remove: &["MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DATABRICKS_HOST", "DATABRICKS_TOKEN"],
        dir,
        log: log.clone(),
        url: format!("http://127.0.0.1:{port}"),
        // Answers without credentials as soon as the front listens.
        health_path: "/oidc/.well-known/oauth-authorization-server",
        timeout: STARTUP_TIMEOUT,
    })?;
    // The front listens before MLflow answers; the ready line comes once both do.
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with("{\"host\"")) {
            let workspace = serde_json::from_str(line).map_err(|e| spawn_err(std::io::Error::other(e)))?;
            return Ok(Standin { workspace, ready_line: line.to_owned(), service });
        }
        if Instant::now() > deadline {
            return Err(LaunchError::Unhealthy {
                name: "Databricks stand-in".into(),
                url: service.url().to_owned(),
                timeout: STARTUP_TIMEOUT,
                log,
                tail: service.log_tail(20),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The stand-in's script folder in the repository at `repo`.
pub fn scripts(repo: &Path) -> PathBuf {
    repo.join("tools/databricks-standin")
}
