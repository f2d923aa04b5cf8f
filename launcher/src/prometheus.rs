//! A real Prometheus (Debian's `prometheus`) scraping the registry-sync gateway with the
//! shipped configuration (`prometheus/prometheus.yml` and its rules), pointed at a given
//! address and interval.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::service::{LaunchError, Service, Spec};

/// How long Prometheus may take to answer `/-/ready` (about 1 s here).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// The gateway address the shipped configuration scrapes.
pub const SHIPPED_TARGET: &str = "127.0.0.1:8780";

/// How to start it.
#[derive(Debug, Clone)]
pub struct PrometheusOptions {
    /// The `prometheus` executable.
    pub bin: PathBuf,
    /// The repository's `prometheus/` folder (`prometheus.yml` and the rule files it names).
    pub shipped: PathBuf,
    /// Where its configuration, data and `server.log` go (created).
    pub dir: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
    /// The gateway to scrape, `HOST:PORT`.
    pub target: String,
    /// Scrape and rule evaluation interval, in whole seconds (the shipped 15 s is slow for a
    /// local loop or a test).
    pub interval_s: u32,
}

/// Why the shipped configuration cannot be adapted.
#[derive(Debug, thiserror::Error)]
#[error("`{path}` no longer has {what}: update launcher::prometheus")]
pub struct ConfigError {
    /// The shipped file.
    pub path: PathBuf,
    /// What was looked for.
    pub what: String,
}

/// The shipped `prometheus.yml` with the gateway target and both intervals replaced.
pub fn config(shipped: &str, path: &Path, target: &str, interval_s: u32) -> Result<String, ConfigError> {
    let missing = |what: &str| ConfigError { path: path.to_owned(), what: what.to_owned() };
    for needle in [SHIPPED_TARGET, "scrape_interval: 15s", "evaluation_interval: 15s"] {
        if !shipped.contains(needle) {
            return Err(missing(&format!("`{needle}`")));
        }
    }
    Ok(shipped
        .replace(SHIPPED_TARGET, target)
        .replace("scrape_interval: 15s", &format!("scrape_interval: {interval_s}s"))
        .replace("evaluation_interval: 15s", &format!("evaluation_interval: {interval_s}s")))
}

/// The rule files a Prometheus configuration names (`rule_files:`, one `- name` per line, as
/// the shipped files write them), relative to it.
pub fn rule_files(config: &str) -> Vec<String> {
    config
        .lines()
        .skip_while(|l| l.trim_end() != "rule_files:")
        .skip(1)
        .map_while(|l| l.strip_prefix("  - "))
        .map(|name| name.trim().to_owned())
        .collect()
}

/// Writes the adapted configuration and the rules into `opts.dir`, starts Prometheus and waits
/// until it is ready.
pub fn start(opts: &PrometheusOptions) -> Result<Service, LaunchError> {
    let spawn_err = |source| LaunchError::Spawn { name: "Prometheus".into(), source };
    std::fs::create_dir_all(&opts.dir).map_err(spawn_err)?;
    let shipped_yml = opts.shipped.join("prometheus.yml");
    let text = std::fs::read_to_string(&shipped_yml).map_err(spawn_err)?;
    let adapted = config(&text, &shipped_yml, &opts.target, opts.interval_s)
        .map_err(|e| spawn_err(std::io::Error::other(e.to_string())))?;
    std::fs::write(opts.dir.join("prometheus.yml"), adapted).map_err(spawn_err)?;
    for rules in rule_files(&text) {
        std::fs::copy(opts.shipped.join(&rules), opts.dir.join(&rules)).map_err(spawn_err)?;
    }
    let args = vec![
        format!("--config.file={}", opts.dir.join("prometheus.yml").display()).into(),
        format!("--storage.tsdb.path={}", opts.dir.join("data").display()).into(),
        format!("--web.listen-address=127.0.0.1:{}", opts.port).into(),
    ];
    Service::start(Spec {
        name: "Prometheus",
        program: &opts.bin,
        args,
        env: Vec::new(),
        env_remove: &[],
        dir: &opts.dir,
        log: opts.dir.join("server.log"),
        url: format!("http://127.0.0.1:{}", opts.port),
        health_path: "/-/ready",
        timeout: STARTUP_TIMEOUT,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_is_pointed_at_the_gateway() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../prometheus/prometheus.yml");
        let shipped = std::fs::read_to_string(&root).expect("prometheus.yml");
        let adapted = config(&shipped, &root, "127.0.0.1:4242", 2).expect("adapted");
        assert!(adapted.contains("127.0.0.1:4242") && !adapted.contains(SHIPPED_TARGET), "{adapted}");
        assert!(adapted.contains("scrape_interval: 2s") && adapted.contains("evaluation_interval: 2s"));
        assert_eq!(rule_files(&shipped), ["alerts.yml", "gateway-alerts.yml"]);
        let err = config("global: {}", &root, "x:1", 1).expect_err("nothing to replace");
        assert!(err.to_string().contains("127.0.0.1:8780"), "{err}");
    }
}
