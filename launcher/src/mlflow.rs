//! A real `mlflow server`: sqlite backend, artifacts proxied from a local directory, webhooks
//! on (a fixed Fernet key per state directory), loopback only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;

use crate::service::{LaunchError, Service, Spec};

/// How long MLflow may take to answer `/health` (12–16 s here; a cold, busy machine more).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// How to start it.
#[derive(Debug, Clone)]
pub struct MlflowOptions {
    /// The `mlflow` executable ([`crate::tools::Tools::mlflow`]).
    pub bin: PathBuf,
    /// Where `mlflow.db`, `artifacts/`, `fernet.key` and `server.log` live (created).
    pub dir: PathBuf,
    /// The loopback port.
    pub port: u16,
    /// Runs MLflow's basic-auth app with this admin password (user `admin`).
    pub basic_auth_admin_password: Option<String>,
}

/// Starts the server and waits until `/health` answers. Webhook secrets are stored encrypted
/// with a Fernet key kept in `dir/fernet.key` (made on first start): without a fixed key a
/// restart would break every registered webhook.
pub fn start(opts: &MlflowOptions) -> Result<Service, LaunchError> {
    if !opts.bin.exists() {
        return Err(LaunchError::Missing {
            program: opts.bin.clone(),
            hint: "run scripts/setup.sh (it makes the venv)",
        });
    }
    let spawn_err = |source| LaunchError::Spawn { name: "MLflow".into(), source };
    std::fs::create_dir_all(&opts.dir).map_err(spawn_err)?;
    let key = fernet_key(&opts.dir.join("fernet.key")).map_err(spawn_err)?;
    let port = opts.port.to_string();
    let mut args: Vec<std::ffi::OsString> = vec!["server".into(), "--backend-store-uri".into()];
    args.push(format!("sqlite:///{}", opts.dir.join("mlflow.db").display()).into());
    args.push("--artifacts-destination".into());
    args.push(opts.dir.join("artifacts").into());
    for a in ["--host", "127.0.0.1", "--port", &port, "--workers", "1"] {
        args.push(a.into());
    }
    if opts.basic_auth_admin_password.is_some() {
        args.extend(["--app-name".into(), "basic-auth".into()]);
    }
    let env = vec![
        // Read by the basic-auth app only: the admin's password (there is no default) and the
        // key its forms' CSRF protection needs.
        ("MLFLOW_AUTH_ADMIN_PASSWORD", opts.basic_auth_admin_password.clone().unwrap_or_default()),
        ("MLFLOW_FLASK_SERVER_SECRET_KEY", "stacktag-local-csrf-key".to_owned()),
        ("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", key),
        // Deliveries to a loopback receiver, and a short cache so that a new webhook hears
        // the next event instead of up to 60 s later.
        ("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https".to_owned()),
        ("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true".to_owned()),
        ("MLFLOW_WEBHOOK_CACHE_TTL", "1".to_owned()),
        // MLflow's job runner (huey consumers: seven more processes, over 10 s to stop, a
        // temporary directory left in /dev/shm by each start) runs GenAI jobs nothing here uses.
        ("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false".to_owned()),
        ("MLFLOW_DISABLE_TELEMETRY", "true".to_owned()),
        ("DO_NOT_TRACK", "true".to_owned()),
    ];
    Service::start(Spec {
        name: "MLflow",
        program: &opts.bin,
        args,
        env,
        // A tracking URI in our environment must not send the server's own client elsewhere.
        env_remove: &["MLFLOW_TRACKING_URI"],
        dir: &opts.dir,
        log: opts.dir.join("server.log"),
        url: format!("http://127.0.0.1:{}", opts.port),
        health_path: "/health",
        timeout: STARTUP_TIMEOUT,
    })
}

/// The Fernet key in `path`, made from 32 bytes of `/dev/urandom` on first use (Fernet's
/// format: the bytes in URL-safe base64 with padding), written whole or not at all.
fn fernet_key(path: &Path) -> std::io::Result<String> {
    crate::durable::kept_secret(path, |bytes| base64::engine::general_purpose::URL_SAFE.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fernet_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("fernet.key");
        let key = fernet_key(&path).expect("key");
        let raw = base64::engine::general_purpose::URL_SAFE.decode(&key).expect("url-safe base64");
        assert_eq!(raw.len(), 32);
        assert_eq!(fernet_key(&path).expect("again"), key, "a second start reuses the key");
    }
}
