//! registry-sync: when MLflow's `champion` alias moves, the new version reaches the edge by
//! itself, checked on the way, and observable.
//!
//! A sync ([`sync`]) resolves the alias, downloads the version
//! ([`model_registry::download_verified`]: every file's size and sha256), loads it in the
//! serving core and scores it on a small labelled sample ([`evaluation`]), stamps the registry
//! version into its manifest and bakes it into the generic edge component ([`prepare`], with
//! `edge_classifier_bake`). In `serve` ([`serve()`]) it then swaps the `wasmtime serve` behind
//! the [`gateway`] blue/green ([`instance`]) and/or sends GitHub a `model-promoted` dispatch
//! ([`github`]); `once` ([`once()`]) writes the baked component to a file instead. A sync runs
//! when the [`worker`] wakes: a poll tick or a verified MLflow [`webhook`] delivery. Any failure
//! leaves the serving model in place and shows in an event ([`events`]) and in [`metrics`].
//! State lives in one directory ([`state`]): versioned model dirs, a `current` symlink swapped
//! atomically, and the pids of the processes it started ([`children`]), so a restart after a
//! `kill -9` stops what the killed run left.
//!
//! Nothing here reads flags or the environment: the binary resolves them once into a
//! [`config::SyncConfig`] / [`config::ServeConfig`].

pub mod children;
pub mod config;
pub mod error;
pub mod evaluation;
pub mod events;
pub mod gateway;
pub mod github;
pub mod instance;
pub mod metrics;
pub mod once;
pub mod prepare;
pub mod serve;
pub mod state;
pub mod sync;
pub mod webhook;
pub mod worker;

pub use config::{Deployers, Listen, Selector, ServeConfig, SyncConfig, WebhookRegistration};
pub use error::SyncError;
pub use gateway::{AppState, app};
pub use once::{OnceOutput, once};
pub use serve::{Running, serve};
pub use state::DeployedModel;
pub use sync::{SyncOutcome, Syncer};
pub use worker::Trigger;
