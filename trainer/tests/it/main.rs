//! The trainer's one integration-test binary.

mod common;
mod cv;
mod data;
mod databricks;
mod pipeline;
mod real_data;
mod registry;
