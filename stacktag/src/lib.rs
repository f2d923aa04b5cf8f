//! The main job as a program: `stacktag up` runs the local loop — new data lands, and
//! minutes later the edge and the browser serve a better model — on embedded defaults, and
//! supervises everything it starts.
//!
//! [`up()`] starts MLflow and Prometheus as child processes ([`launcher`]), runs registry-sync
//! (its gateway, webhook receiver and sync worker) and the scheduler (`trainer retrain` each
//! round) through their libraries in this process, lands the data in batches, keeps a client
//! classifying through the gateway while a new model is swapped in, and returns a typed
//! [`Report`]. Its story is told as `tracing` events ([`events`]); the binary prints them on
//! stderr and the report, as one JSON line, last on stdout.

pub mod config;
pub mod events;
mod load;
pub mod report;
mod scheduler;
pub mod up;

pub use config::UpConfig;
pub use report::Report;
pub use up::{Interrupted, Stop, up};
