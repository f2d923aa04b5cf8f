//! registry-sync's one integration-test binary: the webhook receiver at the router level
//! (`tower::ServiceExt::oneshot`), and whole syncs against a real `mlflow server` and real
//! `wasmtime serve` instances on loopback.

mod common;
mod crash;
mod databricks;
mod delivery;
mod faults;
mod github;
mod monitoring;
mod once;
mod sync;
mod webhook;
