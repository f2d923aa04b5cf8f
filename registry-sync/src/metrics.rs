//! The gateway's metrics, in a registry the app owns (never the process-global default).
//!
//! `prometheus-client` (the official prometheus/client_rust) rather than `prometheus`:
//! OpenMetrics-native exposition, maintained by the Prometheus project, and label sets are
//! typed structs, so every label set is bounded by construction.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::DeployedModel;

/// `stacktag_model_info` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelInfo {
    /// Registry version.
    pub version: String,
    /// MLflow run id.
    pub run_id: String,
    /// Training data snapshot hash.
    pub data_snapshot: String,
}

/// A sync's outcome: `success` or one of [`crate::SyncError::outcome`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// The outcome.
    pub outcome: &'static str,
}

/// A webhook delivery's fate.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryResult {
    /// `accepted`, `duplicate`, `ignored`, `bad_signature`, `missing_headers`, `stale`,
    /// `too_large`, `bad_payload` or `disabled`.
    pub result: &'static str,
}

/// A gateway route and the answer's status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    /// One of the gateway's fixed routes, or `other`.
    pub route: &'static str,
    /// The HTTP status code.
    pub status: u16,
}

/// A gateway route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    /// One of the gateway's fixed routes, or `other`.
    pub route: &'static str,
}

/// A predicted label (one of the serving model's labels, or `other`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PredictedLabel {
    /// The label.
    pub label: String,
}

/// Builds the request-duration histograms: 0.25 ms to about 4 s.
#[derive(Clone, Copy, Debug)]
pub struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.00025, 2.0, 15))
    }
}

/// Every metric registry-sync exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `stacktag_model_info`: 1 for the serving model.
    pub model_info: Family<ModelInfo, Gauge>,
    /// `stacktag_sync_total{outcome}`.
    pub sync: Family<Outcome, Counter>,
    /// `stacktag_sync_duration_seconds`.
    pub sync_duration: Histogram,
    /// `stacktag_last_sync_success_timestamp_seconds` (also set when a restart serves
    /// `current` again).
    pub last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// `stacktag_champion_version`: the version the alias named at the last read (0 before
    /// the registry has one; kept through an MLflow outage).
    pub champion_version: Gauge,
    /// `stacktag_deployed_version`: the version every deployer took (0 before any). Differs
    /// from the champion's while a promotion is on its way, or stuck.
    pub deployed_version: Gauge,
    /// `stacktag_webhook_deliveries_total{result}`.
    pub webhook: Family<DeliveryResult, Counter>,
    /// `stacktag_webhook_registration_failures_total`: failed attempts to register (or
    /// update) the MLflow webhook; each is retried, and polling covers promotions meanwhile.
    pub webhook_registration_failures: Counter,
    /// `stacktag_webhook_registered`: 1 once this process registered the webhook (and set its
    /// secret); 0 before, and without `--register-webhook`.
    pub webhook_registered: Gauge,
    /// `stacktag_gateway_requests_total{route,status}`.
    pub requests: Family<RouteStatus, Counter>,
    /// `stacktag_gateway_request_duration_seconds{route}`.
    pub request_duration: Family<Route, Histogram, LatencyBuckets>,
    /// `stacktag_predictions_total{label}`: the drift signal.
    pub predictions: Family<PredictedLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            registry: Registry::default(),
            model_info: Family::default(),
            sync: Family::default(),
            // A sync is seconds (bake) to a minute (slow download): 0.5 s to about 2 min.
            sync_duration: Histogram::new(exponential_buckets(0.5, 2.0, 9)),
            last_success: Gauge::default(),
            champion_version: Gauge::default(),
            deployed_version: Gauge::default(),
            webhook: Family::default(),
            webhook_registration_failures: Counter::default(),
            webhook_registered: Gauge::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(LatencyBuckets),
            predictions: Family::default(),
        };
        // Counters get `_total` from the encoder; the other names are written in full.
        registry.register("stacktag_model_info", "The model the gateway serves (value 1)", m.model_info.clone());
        registry.register("stacktag_sync", "Syncs by outcome", m.sync.clone());
        registry.register("stacktag_sync_duration_seconds", "Duration of syncs that did work", m.sync_duration.clone());
        registry.register(
            "stacktag_last_sync_success_timestamp_seconds",
            "Unix time of the last successful sync",
            m.last_success.clone(),
        );
        registry.register(
            "stacktag_champion_version",
            "The registry version the watched alias names (0: none yet)",
            m.champion_version.clone(),
        );
        registry.register(
            "stacktag_deployed_version",
            "The registry version every deployer has taken (0: none yet)",
            m.deployed_version.clone(),
        );
        registry.register("stacktag_webhook_deliveries", "MLflow webhook deliveries by result", m.webhook.clone());
        registry.register(
            "stacktag_webhook_registration_failures",
            "Failed attempts to register the MLflow webhook (retried; polling covers promotions)",
            m.webhook_registration_failures.clone(),
        );
        registry.register(
            "stacktag_webhook_registered",
            "Whether this process has registered the MLflow webhook with its current secret (0 or 1)",
            m.webhook_registered.clone(),
        );
        registry.register("stacktag_gateway_requests", "Gateway answers by route and status", m.requests.clone());
        registry.register(
            "stacktag_gateway_request_duration_seconds",
            "Gateway request duration by route",
            m.request_duration.clone(),
        );
        registry.register(
            "stacktag_predictions",
            "Predicted labels answered through the gateway",
            m.predictions.clone(),
        );
        // Every known label at 0 from the start (Prometheus' instrumentation guide): after a
        // restart a rate is 0, not missing, and `absent()` means the scrape is gone.
        for &outcome in crate::error::OUTCOMES {
            let _ = m.sync.get_or_create(&Outcome { outcome });
        }
        for result in crate::webhook::Verdict::labels() {
            let _ = m.webhook.get_or_create(&DeliveryResult { result });
        }
        Self { registry, ..m }
    }

    /// A registry version as a gauge value (versions are decimal integers; -1 if one ever
    /// does not fit).
    pub fn version_value(version: &str) -> i64 {
        version.parse().unwrap_or(-1)
    }

    /// The serving model was confirmed without a sync (a restart served `current`).
    pub fn restored(&self) {
        self.last_success.set(unix_now().floor());
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// `stacktag_model_info` names `model` alone.
    pub fn set_model(&self, model: &DeployedModel) {
        self.model_info.clear();
        self.model_info
            .get_or_create(&ModelInfo {
                version: model.version.clone(),
                run_id: model.run_id.clone(),
                data_snapshot: model.data_snapshot.clone(),
            })
            .set(1);
    }

    /// A sync that took `seconds` put a new version in service.
    pub fn sync_succeeded(&self, seconds: f64) {
        self.sync.get_or_create(&Outcome { outcome: "success" }).inc();
        self.sync_duration.observe(seconds);
        self.last_success.set(unix_now().floor());
    }

    /// A sync found nothing to serve yet (no registered model, or no champion): counted as
    /// its own outcome, never a failure, and the champion gauge says 0.
    pub fn nothing_yet(&self) {
        self.sync.get_or_create(&Outcome { outcome: "nothing_yet" }).inc();
        self.champion_version.set(0);
    }

    /// A sync that took `seconds` failed with `outcome` ([`crate::SyncError::outcome`]).
    pub fn sync_failed(&self, outcome: &'static str, seconds: f64) {
        self.sync.get_or_create(&Outcome { outcome }).inc();
        self.sync_duration.observe(seconds);
    }

    /// Counts one webhook delivery.
    pub fn delivery(&self, result: &'static str) {
        self.webhook.get_or_create(&DeliveryResult { result }).inc();
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
