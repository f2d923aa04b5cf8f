//! What `stacktag up` returns: one JSON object, the last line the binary prints.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The loop's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The version `champion` points at when the loop ended.
    pub champion_version: Option<String>,
    /// The version the gateway served when the loop ended.
    pub served_version: Option<String>,
    /// The versions this run promoted and brought to serving, in order.
    pub versions_promoted: Vec<String>,
    /// Classifications through the gateway while the second model was swapped in.
    pub load_requests: u64,
    /// Of those, the ones that did not answer 200.
    pub failed_requests: u64,
    /// Seconds from the stack's start to the last model serving.
    pub loop_seconds: f64,
    /// The versions Prometheus scraped `stacktag_model_info` for.
    pub prometheus_model_versions: Vec<String>,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Each step and when it happened, in seconds since the stack started.
    pub steps: Vec<Step>,
    /// Real test questions classified through the gateway at the end.
    pub questions: Vec<Answered>,
    /// The last trained round's judgement of the champion on the batches it had not seen.
    #[serde(default)]
    pub judged: Option<String>,
    /// The gate's answer when it kept the champion (the new batch's model was not better).
    #[serde(default)]
    pub rejected: Option<String>,
}

/// A step of the loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Seconds since the stack started.
    pub at_seconds: f64,
    /// What happened.
    pub what: String,
}

/// A test question's answer through the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answered {
    /// Its label in the test set.
    pub truth: String,
    /// The label the gateway answered.
    pub label: String,
    /// That label's probability.
    pub probability: f32,
    /// The registry version that answered (`x-stacktag-model-version`).
    pub version: Option<String>,
    /// The question's start.
    pub excerpt: String,
}
