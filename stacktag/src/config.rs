//! What `stacktag up` runs with, resolved once by the binary (flags, environment, defaults).

use std::path::{Path, PathBuf};
use std::time::Duration;

use launcher::tools::Tools;

/// The registered model the loop trains and serves.
pub const MODEL: &str = "stacktag";
/// Questions per label in the first batch; the rest of the training set lands as the second.
pub const FIRST_BATCH_PER_LABEL: usize = 500;

/// The loop's configuration.
#[derive(Debug, Clone)]
pub struct UpConfig {
    /// The repository (its `prometheus/` configuration is what the loop's Prometheus loads).
    pub repo: PathBuf,
    /// The folder holding `stackoverflow16k/{train,test}.csv.gz`.
    pub data: PathBuf,
    /// Where everything the loop keeps lives (MLflow's database, batches, the inbox,
    /// registry-sync's model dirs, Prometheus's data); a second run reuses it.
    pub state_dir: PathBuf,
    /// The gateway's port on 127.0.0.1.
    pub gateway_port: u16,
    /// Prometheus's port on 127.0.0.1.
    pub prometheus_port: u16,
    /// MLflow's port on 127.0.0.1, when the loop starts it.
    pub mlflow_port: u16,
    /// An MLflow to use instead of starting one (`MLFLOW_TRACKING_URI` and its credentials).
    pub mlflow: Option<mlflow_client::ClientConfig>,
    /// Seconds between the scheduler's rounds.
    pub retrain_every: Duration,
    /// Seconds between registry-sync's polls of the alias (webhooks wake it sooner).
    pub poll_every: Duration,
    /// How long a version may take from landing to serving before the loop gives up.
    pub serve_timeout: Duration,
    /// The set-up script's tools (wasmtime, mlflow, prometheus).
    pub tools: Tools,
    /// The generic edge component (`scripts/build-edge.sh build`).
    pub generic_component: PathBuf,
    /// The web demo's built site, served at `/demo/` (`scripts/build-web.sh`), if built.
    pub web_demo: Option<PathBuf>,
    /// Stop once the second model serves, instead of serving until Ctrl-C.
    pub once: bool,
    /// A Stack Exchange data dump's `Posts.xml` (plain or gzip): the second batch is its
    /// questions, landed by the harvest's rules, instead of the rest of the 16k training set.
    pub dump: Option<PathBuf>,
}

impl UpConfig {
    /// The training set.
    pub fn train_csv(&self) -> PathBuf {
        self.data.join("stackoverflow16k/train.csv.gz")
    }

    /// The test set: the trainer's evaluation data, the gate's, and registry-sync's sample.
    pub fn test_csv(&self) -> PathBuf {
        self.data.join("stackoverflow16k/test.csv.gz")
    }

    /// A directory under the state dir.
    pub fn state(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    /// Checks what the loop cannot start without, naming each missing piece.
    pub fn check(&self) -> anyhow::Result<()> {
        let need = |path: &Path, what: &str| -> anyhow::Result<()> {
            anyhow::ensure!(path.exists(), "{what} is missing at `{}`", path.display());
            Ok(())
        };
        need(
            &self.train_csv(),
            "the training data (set STACKTAG_SHARED_DATA to the folder holding stackoverflow16k/)",
        )?;
        need(&self.test_csv(), "the test data")?;
        need(&self.generic_component, "the generic edge component (run `scripts/build-edge.sh build`)")?;
        need(&self.tools.wasmtime, "wasmtime-cli (run `scripts/setup.sh`, or set STACKTAG_WASMTIME)")?;
        need(&self.repo.join("prometheus/prometheus.yml"), "the Prometheus configuration")?;
        if let Some(dump) = &self.dump {
            need(dump, "the data dump")?;
        }
        if let Some(site) = &self.web_demo {
            need(&site.join("index.html"), "the web demo's site (run `scripts/build-web.sh --out DIR`)")?;
        }
        Ok(())
    }
}
