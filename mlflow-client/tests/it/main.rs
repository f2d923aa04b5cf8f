//! The MLflow client's one integration-test binary: configuration and redaction, calls
//! against a real `mlflow server` (one per binary, started on first use), and faults played
//! by a scripted server.

mod config;
mod databricks;
mod faults;
mod server;
mod unity_catalog;
mod webhooks;
