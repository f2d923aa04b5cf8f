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

/// Why an answer was unsure (`edge_classifier::api::Unsure`, by its wire name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnsureReason {
    /// `little_evidence` or `low_confidence`.
    pub reason: &'static str,
}

/// The champion version a judgement is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JudgedVersion {
    /// Registry version.
    pub version: String,
}

/// A label's share, for the judged version.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JudgedShare {
    /// Registry version.
    pub version: String,
    /// One of the model's labels.
    pub label: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

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
    /// `stacktag_unsure_predictions_total{reason}`: answers flagged unsure, of those counted in
    /// `stacktag_predictions_total`. Both reasons exist from the start, at 0, so the share is
    /// 0 rather than absent while no answer is unsure.
    pub unsure: Family<UnsureReason, Counter>,
    /// `stacktag_arrivals_*{version}`: the champion's last judgement on the data that arrived
    /// after its training data (its version tag `stacktag.arrivals`), read with every alias
    /// read; absent while the champion has none.
    pub arrivals: ArrivalsGauges,
}

/// The gauges of a champion's judgement ([`model_registry::arrivals::Summary`]).
#[derive(Debug, Default)]
pub struct ArrivalsGauges {
    /// `stacktag_arrivals_accuracy`.
    pub accuracy: Family<JudgedVersion, FloatGauge>,
    /// `stacktag_arrivals_questions`.
    pub questions: Family<JudgedVersion, Gauge>,
    /// `stacktag_arrivals_unseen_feature_share`.
    pub unseen_feature_share: Family<JudgedVersion, FloatGauge>,
    /// `stacktag_arrivals_label_share{label}`.
    pub label_share: Family<JudgedShare, FloatGauge>,
    /// `stacktag_training_label_share{label}`.
    pub training_label_share: Family<JudgedShare, FloatGauge>,
    /// `stacktag_arrivals_judged_timestamp_seconds`.
    pub judged_at: Family<JudgedVersion, Gauge>,
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
            unsure: Family::default(),
            arrivals: ArrivalsGauges::default(),
        };
        for reason in edge_classifier::api::Unsure::ALL {
            // Created at 0; the guard it hands back is not needed.
            drop(m.unsure.get_or_create(&UnsureReason { reason: reason.as_str() }));
        }
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
        registry.register(
            "stacktag_unsure_predictions",
            "Answers through the gateway flagged unsure, by reason",
            m.unsure.clone(),
        );
        let a = &m.arrivals;
        registry.register(
            "stacktag_arrivals_accuracy",
            "The champion's accuracy on the questions that arrived after its training data",
            a.accuracy.clone(),
        );
        registry.register(
            "stacktag_arrivals_questions",
            "How many arrived questions the champion was judged on",
            a.questions.clone(),
        );
        registry.register(
            "stacktag_arrivals_unseen_feature_share",
            "Share of the arrived questions' features that no training question had",
            a.unseen_feature_share.clone(),
        );
        registry.register(
            "stacktag_arrivals_label_share",
            "Each label's share of the arrived questions",
            a.label_share.clone(),
        );
        registry.register(
            "stacktag_training_label_share",
            "Each label's share of the questions the champion trained on",
            a.training_label_share.clone(),
        );
        registry.register(
            "stacktag_arrivals_judged_timestamp_seconds",
            "Unix time of the champion's last judgement on arrived questions",
            a.judged_at.clone(),
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

    /// The judgement `version` (the champion just read) carries, or none: the gauges name
    /// that version alone.
    pub fn set_arrivals(&self, version: &str, summary: Option<&model_registry::arrivals::Summary>) {
        let a = &self.arrivals;
        a.accuracy.clear();
        a.questions.clear();
        a.unseen_feature_share.clear();
        a.label_share.clear();
        a.training_label_share.clear();
        a.judged_at.clear();
        let Some(s) = summary else { return };
        let v = JudgedVersion { version: version.to_owned() };
        a.accuracy.get_or_create(&v).set(s.accuracy);
        a.questions.get_or_create(&v).set(i64::try_from(s.questions).unwrap_or(i64::MAX));
        a.unseen_feature_share.get_or_create(&v).set(s.unseen_feature_share);
        a.judged_at.get_or_create(&v).set(s.judged_at);
        for (label, share) in &s.label_mix {
            a.label_share.get_or_create(&JudgedShare { version: version.to_owned(), label: label.clone() }).set(*share);
        }
        for (label, share) in &s.training_label_mix {
            a.training_label_share
                .get_or_create(&JudgedShare { version: version.to_owned(), label: label.clone() })
                .set(*share);
        }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use model_registry::arrivals::Summary;

    use super::*;

    #[test]
    fn a_judgement_is_exported_for_its_version_alone_and_goes_with_it() {
        let m = Metrics::new();
        let mix = |p: f64| -> BTreeMap<String, f64> { [("java".to_owned(), p), ("python".to_owned(), 1.0 - p)].into() };
        let s = Summary {
            accuracy: 0.75,
            questions: 400,
            unseen_feature_share: 0.04,
            label_mix: mix(0.25),
            training_label_mix: mix(0.5),
            last_batch: "batch-2.parquet".into(),
            judged_at: 1_796_000_000,
            run_id: "r".into(),
        };
        m.set_arrivals("3", Some(&s));
        let text = m.encode();
        for line in [
            r#"stacktag_arrivals_accuracy{version="3"} 0.75"#,
            r#"stacktag_arrivals_questions{version="3"} 400"#,
            r#"stacktag_arrivals_unseen_feature_share{version="3"} 0.04"#,
            r#"stacktag_arrivals_label_share{version="3",label="java"} 0.25"#,
            r#"stacktag_training_label_share{version="3",label="python"} 0.5"#,
            r#"stacktag_arrivals_judged_timestamp_seconds{version="3"} 1796000000"#,
        ] {
            assert!(text.lines().any(|l| l == line), "`{line}` missing from:\n{text}");
        }
        // A new champion without a judgement: nothing stale is left to alert on.
        m.set_arrivals("4", None);
        assert!(!m.encode().contains(r#"version="3""#), "{}", m.encode());
    }
}
