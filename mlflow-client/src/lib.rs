//! A small async MLflow REST client, written once for Stacktag's trainer and its
//! `registry-sync` gateway.
//!
//! It covers what those two need and nothing more: experiments, runs, params, metrics, tags
//! and `log-batch`; artifact upload, listing and download through the tracking server's
//! artifact proxy (`mlflow-artifacts:/…`) or, on Databricks, through signed URLs to
//! MLflow-managed storage (`dbfs:/databricks/mlflow-tracking/…`) and the DBFS API (other
//! `dbfs:/…`); registered models, model versions, their tags, aliases and search, on the OSS
//! server, Databricks' workspace registry or Unity Catalog ([`RegistryApi`]), where a
//! version's files are uploaded to its own storage with temporary credentials; registry
//! webhooks and the check of a delivery's signature ([`webhooks`]). On Databricks it
//! authenticates with a personal access token or OAuth machine-to-machine.
//!
//! Configuration follows MLflow's own environment variables ([`env_vars`]), resolved once into
//! a [`ClientConfig`]. Secrets print as `****` ([`Secret`]). Connection errors, 429 and 5xx
//! answers are retried with bounded exponential backoff ([`RetryPolicy`]); any other 4xx
//! becomes [`Error::Api`], which carries MLflow's `error_code`, its message and the call's
//! name.

mod artifacts;
mod auth;
mod client;
pub mod config;
pub mod env_vars;
mod error;
mod managed;
mod registry;
mod storage;
pub mod testing;
pub mod types;
mod unity_catalog;
pub mod webhooks;

pub use artifacts::ArtifactLocation;
pub use client::{Client, now_ms};
pub use config::{Auth, ClientConfig, RegistryApi, RetryPolicy, Secret, StorageConfig, Target};
pub use error::{ConfigError, Error};
pub use registry::{check_experiment_name, check_model_name, require_aliases};
pub use unity_catalog::Prepare;
