//! Where `scripts/setup.sh` put Stacktag's tools ([`tools`]), and the local services the
//! main job (`stacktag up`), the benches and the tests start: a real `mlflow server`
//! ([`mlflow`]), a real Prometheus ([`prometheus`]) and Alertmanager ([`alertmanager`]), each a
//! [`Service`].
//!
//! One launcher for all of them, so that the loop, `scripts/bench-sync.sh` (through `stacktag
//! mlflow`) and the test harness (`mlflow_client::testing`) start MLflow the same way: same
//! flags, same environment, same health check, same clean-up. A service's lifetime follows
//! the process that started it, even through a `kill -9` of that process.

pub mod alertmanager;
pub mod databricks;
pub mod durable;
pub mod mlflow;
pub mod prometheus;
mod service;
pub mod tools;

pub use service::{LaunchError, Service, free_port, http_ok};
