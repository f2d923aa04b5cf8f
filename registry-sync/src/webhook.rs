//! `POST /webhooks/mlflow`: signature, freshness and replay checks on an MLflow delivery.
//! A delivery only ever wakes the sync worker, which re-reads the alias (deliveries can
//! arrive out of order), so the payload is trusted for nothing but "look now".

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use axum::http::HeaderMap;
use edge_classifier::api::ErrorCode;
use mlflow_client::Secret;
use mlflow_client::webhooks::{headers, signature_matches};

/// Largest body accepted; an alias event is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A delivery signed longer ago (or further ahead) than this is refused as stale.
pub const MAX_AGE_SECS: i64 = 5 * 60;

/// The shortest webhook secret `serve` accepts: 32 bytes, HMAC-SHA256's own output size, so
/// the secret is not the weak part of the signature.
pub const MIN_SECRET_BYTES: usize = 32;

/// Refuses a webhook secret shorter than [`MIN_SECRET_BYTES`], saying how to make one.
pub fn check_secret(secret: &mlflow_client::Secret) -> anyhow::Result<()> {
    let len = secret.expose().len();
    match len >= MIN_SECRET_BYTES {
        true => Ok(()),
        false => anyhow::bail!(
            "the webhook secret is {len} bytes; at least {MIN_SECRET_BYTES} are needed (for example `openssl rand -base64 32`)"
        ),
    }
}
/// Delivery ids remembered for replay detection (the oldest are forgotten first). MLflow
/// retries within seconds, and a replay after the timestamp window is refused as stale anyway.
const REMEMBERED_IDS: usize = 4096;

/// What the receiver does with one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Signed, fresh, first seen, about our alias: wake the sync worker (202).
    Accepted,
    /// As [`Verdict::Accepted`], but signed with the previous secret: MLflow still signs with
    /// the one it cached (for `MLFLOW_WEBHOOK_CACHE_TTL`, 60 s by default) after a rotation.
    /// Counted apart, so an operator sees when the previous secret can go.
    AcceptedPreviousSecret,
    /// Seen before: 200, no second sync.
    Duplicate,
    /// Signed and fresh but about another model, alias or event: 200, nothing to do.
    Ignored,
    /// A header is missing (401).
    MissingHeaders,
    /// The signature matches neither the secret nor the previous one (401).
    BadSignature,
    /// The timestamp is outside the window (401).
    Stale,
    /// Signed, but not the JSON MLflow sends (400).
    BadPayload,
    /// No secret configured: webhooks are off (404).
    Disabled,
}

impl Verdict {
    /// Every verdict, for the metric's label set.
    pub const ALL: &[Verdict] = &[
        Self::Accepted,
        Self::AcceptedPreviousSecret,
        Self::Duplicate,
        Self::Ignored,
        Self::MissingHeaders,
        Self::BadSignature,
        Self::Stale,
        Self::BadPayload,
        Self::Disabled,
    ];

    /// The `result` labels of `stacktag_webhook_deliveries_total`: every verdict's, and
    /// `too_large` (refused before a verdict).
    pub fn labels() -> impl Iterator<Item = &'static str> {
        Self::ALL.iter().map(|v| v.label()).chain(["too_large"])
    }

    /// The error a refused delivery gets (its code sets the status: 401 for a missing header,
    /// a bad signature or a stale timestamp, 400 for a bad payload, 404 with webhooks off);
    /// `None` for one that is answered 202 (accepted) or 200 (duplicate, ignored).
    pub fn refusal(self) -> Option<(ErrorCode, &'static str)> {
        match self {
            Self::Accepted | Self::AcceptedPreviousSecret | Self::Duplicate | Self::Ignored => None,
            Self::MissingHeaders => Some((
                ErrorCode::MissingHeaders,
                "missing `X-MLflow-Delivery-Id`, `X-MLflow-Timestamp` or `X-MLflow-Signature`",
            )),
            Self::BadSignature => Some((ErrorCode::BadSignature, "the signature does not match")),
            Self::Stale => Some((ErrorCode::Stale, "the timestamp is more than 5 minutes away")),
            Self::BadPayload => Some((ErrorCode::BadPayload, "the body is not an MLflow webhook payload")),
            Self::Disabled => Some((ErrorCode::WebhooksDisabled, "webhooks are off: set `STACKTAG_WEBHOOK_SECRET`")),
        }
    }

    /// The bounded `result` label of `stacktag_webhook_deliveries_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::AcceptedPreviousSecret => "accepted_previous_secret",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::MissingHeaders => "missing_headers",
            Self::BadSignature => "bad_signature",
            Self::Stale => "stale",
            Self::BadPayload => "bad_payload",
            Self::Disabled => "disabled",
        }
    }
}

/// Unix seconds now: what a delivery's `X-MLflow-Timestamp` is judged against.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The receiver's configuration and its memory of delivery ids.
#[derive(Debug)]
pub struct Receiver {
    secret: Option<Secret>,
    previous: Option<Secret>,
    model: String,
    alias: String,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl Receiver {
    /// A receiver for `alias` of `model`; `None` turns webhooks off.
    pub fn new(secret: Option<Secret>, model: &str, alias: &str) -> Self {
        Self { secret, previous: None, model: model.to_owned(), alias: alias.to_owned(), seen: Mutex::default() }
    }

    /// Also accepts deliveries signed with `previous`, the secret before a rotation, until the
    /// operator removes it (MLflow signs with its cached copy of the webhook for up to
    /// `MLFLOW_WEBHOOK_CACHE_TTL` after the secret changed).
    pub fn with_previous_secret(mut self, previous: Option<Secret>) -> Self {
        self.previous = previous;
        self
    }

    /// Whether this delivery wakes the sync worker.
    pub fn wakes(verdict: Verdict) -> bool {
        matches!(verdict, Verdict::Accepted | Verdict::AcceptedPreviousSecret)
    }

    /// Judges one delivery at unix time `now`. Nothing is remembered unless the signature
    /// and timestamp check out, so an unsigned flood cannot evict real ids.
    pub fn judge(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Verdict {
        let Some(secret) = &self.secret else { return Verdict::Disabled };
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
        let (Some(id), Some(ts), Some(sig)) =
            (get(headers::DELIVERY_ID), get(headers::TIMESTAMP), get(headers::SIGNATURE))
        else {
            return Verdict::MissingHeaders;
        };
        let accepted = if signature_matches(secret.expose().as_bytes(), id, ts, body, sig) {
            Verdict::Accepted
        } else if let Some(previous) = &self.previous
            && signature_matches(previous.expose().as_bytes(), id, ts, body, sig)
        {
            Verdict::AcceptedPreviousSecret
        } else {
            return Verdict::BadSignature;
        };
        match ts.parse::<i64>() {
            Ok(t) if (now - t).abs() <= MAX_AGE_SECS => {}
            _ => return Verdict::Stale,
        }
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let (set, order) = &mut *seen;
            if !set.insert(id.to_owned()) {
                return Verdict::Duplicate;
            }
            order.push_back(id.to_owned());
            if order.len() > REMEMBERED_IDS
                && let Some(old) = order.pop_front()
            {
                set.remove(&old);
            }
        }
        let Ok(payload) = serde_json::from_slice::<serde_json::Value>(body) else { return Verdict::BadPayload };
        let entity = payload.get("entity").and_then(|v| v.as_str()).unwrap_or_default();
        let data = payload.get("data");
        let field = |k: &str| data.and_then(|d| d.get(k)).and_then(|v| v.as_str());
        // MLflow's `test` delivery and other events carry no alias: acknowledged, no sync.
        if !entity.eq_ignore_ascii_case("model_version_alias")
            || field("name") != Some(self.model.as_str())
            || field("alias") != Some(self.alias.as_str())
        {
            return Verdict::Ignored;
        }
        accepted
    }
}
