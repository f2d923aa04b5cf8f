//! A real Alertmanager (Debian's `prometheus-alertmanager`), single node, with a given
//! configuration: where Prometheus' alerts go in the monitoring test.

use std::path::PathBuf;
use std::time::Duration;

use crate::service::{LaunchError, Service, Spec};

/// How to start it.
#[derive(Debug, Clone)]
pub struct AlertmanagerOptions {
    /// The `prometheus-alertmanager` executable.
    pub bin: PathBuf,
    /// The configuration's text (the shipped `prometheus/alertmanager.yml`, adapted).
    pub config: String,
    /// Where its configuration, data and `server.log` go (created).
    pub dir: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
}

/// Writes the configuration into `opts.dir`, starts Alertmanager without clustering and waits
/// until it is ready.
pub fn start(opts: &AlertmanagerOptions) -> Result<Service, LaunchError> {
    let spawn_err = |source| LaunchError::Spawn { name: "Alertmanager".into(), source };
    std::fs::create_dir_all(&opts.dir).map_err(spawn_err)?;
    let config = opts.dir.join("alertmanager.yml");
    std::fs::write(&config, &opts.config).map_err(spawn_err)?;
    Service::start(Spec {
        name: "Alertmanager",
        program: &opts.bin,
        args: vec![
            format!("--config.file={}", config.display()).into(),
            format!("--storage.path={}", opts.dir.join("data").display()).into(),
            format!("--web.listen-address=127.0.0.1:{}", opts.port).into(),
            // One node: no gossip port to bind or collide on.
            "--cluster.listen-address=".into(),
        ],
        env: Vec::new(),
        env_remove: &[],
        dir: &opts.dir,
        log: opts.dir.join("server.log"),
        url: format!("http://127.0.0.1:{}", opts.port),
        health_path: "/-/ready",
        timeout: Duration::from_secs(60),
    })
}
