//! Registry webhooks (MLflow 3.x): create, list, test and delete them, and check the
//! signature of a delivery. `registry-sync` uses these to hear about alias moves.
//!
//! A delivery carries `X-MLflow-Delivery-Id`, `X-MLflow-Timestamp` (unix seconds) and
//! `X-MLflow-Signature: v1,<base64(HMAC-SHA256(secret, "{id}.{timestamp}.{raw body}"))>`.
//! Verify over the raw bytes, before parsing. Deliveries may come out of order and are
//! retried on 5xx, so a receiver re-reads the alias rather than trusting the payload.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::client::Client;
use crate::config::{Secret, Target};
use crate::error::Error;

/// Header names of a webhook delivery.
pub mod headers {
    /// A unique id per delivery (the same on its retries).
    pub const DELIVERY_ID: &str = "X-MLflow-Delivery-Id";
    /// Unix seconds when the delivery was signed.
    pub const TIMESTAMP: &str = "X-MLflow-Timestamp";
    /// `v1,<base64 HMAC-SHA256>`.
    pub const SIGNATURE: &str = "X-MLflow-Signature";
}

/// An event a webhook subscribes to. MLflow wants both parts upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// e.g. `MODEL_VERSION_ALIAS`.
    pub entity: String,
    /// e.g. `CREATED` (moving an alias fires `CREATED` too).
    pub action: String,
}

impl WebhookEvent {
    /// An alias was set or moved.
    pub fn alias_created() -> Self {
        Self { entity: "MODEL_VERSION_ALIAS".into(), action: "CREATED".into() }
    }
}

/// A webhook as MLflow describes it (the secret is never returned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Its id.
    pub webhook_id: String,
    /// Its name.
    pub name: String,
    /// Where deliveries go.
    pub url: String,
    /// What it listens to.
    #[serde(default)]
    pub events: Vec<WebhookEvent>,
    /// `ACTIVE` or `DISABLED`.
    #[serde(default)]
    pub status: Option<String>,
}

/// The answer of `webhooks/{id}/test`: what the receiver said to a test delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTestResult {
    /// The receiver answered 2xx.
    pub success: bool,
    /// Its HTTP status.
    #[serde(default)]
    pub response_status: Option<u16>,
    /// Its body.
    #[serde(default)]
    pub response_body: Option<String>,
    /// Why the delivery failed, if it did not reach the receiver.
    #[serde(default)]
    pub error_message: Option<String>,
}

impl Client {
    /// Fails on Databricks, which delivers no MLflow OSS webhooks: Unity Catalog models have
    /// none, and the workspace registry's preview webhooks have other events (none for
    /// aliases), another endpoint and another signature header, and cannot reach private
    /// endpoints.
    pub fn require_webhooks(&self) -> Result<(), Error> {
        match self.cfg.target {
            Target::Server => Ok(()),
            Target::Databricks => Err(Error::Unsupported {
                call: "registering an MLflow webhook".into(),
                reason: "Databricks does not deliver MLflow webhooks (Unity Catalog models have none; the workspace registry's preview webhooks have no alias event and cannot reach private endpoints); poll the registry instead".into(),
            }),
        }
    }

    /// Creates an active webhook that posts `events` to `url`, signed with `secret`.
    pub async fn create_webhook(
        &self,
        name: &str,
        url: &str,
        events: &[WebhookEvent],
        secret: &Secret,
    ) -> Result<Webhook, Error> {
        #[derive(Deserialize)]
        struct Reply {
            webhook: Webhook,
        }
        self.require_webhooks()?;
        let body = json!({ "name": name, "url": url, "events": events, "secret": secret.expose(), "status": "ACTIVE" });
        let r: Reply = self.mlflow_post("webhooks", body).await?;
        Ok(r.webhook)
    }

    /// Sets webhook `id`'s secret and makes it active. MLflow never hands a secret back, so a
    /// rotated one cannot be detected by reading: the caller sets it on every registration.
    pub async fn update_webhook_secret(&self, id: &str, secret: &Secret) -> Result<Webhook, Error> {
        #[derive(Deserialize)]
        struct Reply {
            webhook: Webhook,
        }
        self.require_webhooks()?;
        let body = json!({ "secret": secret.expose(), "status": "ACTIVE" });
        let r: Reply = self.call(reqwest::Method::PATCH, &format!("webhooks/{id}"), &[], Some(&body)).await?;
        Ok(r.webhook)
    }

    /// Every webhook (all pages).
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>, Error> {
        #[derive(Deserialize)]
        struct Reply {
            #[serde(default)]
            webhooks: Vec<Webhook>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        self.require_webhooks()?;
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let query: Vec<(&str, &str)> = token.as_deref().map(|t| vec![("page_token", t)]).unwrap_or_default();
            let r: Reply = self.mlflow_get("webhooks", &query).await?;
            all.extend(r.webhooks);
            match r.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(all),
            }
        }
    }

    /// Sends a test delivery through webhook `id` and reports the receiver's answer.
    pub async fn test_webhook(&self, id: &str) -> Result<WebhookTestResult, Error> {
        #[derive(Deserialize)]
        struct Reply {
            result: WebhookTestResult,
        }
        let r: Reply = self.mlflow_post(&format!("webhooks/{id}/test"), json!({})).await?;
        Ok(r.result)
    }

    /// Deletes webhook `id`.
    pub async fn delete_webhook(&self, id: &str) -> Result<(), Error> {
        let _: Value = self.mlflow_delete(&format!("webhooks/{id}")).await?;
        Ok(())
    }
}

/// The `X-MLflow-Signature` value MLflow sends for a delivery: `v1,` and the base64 of
/// HMAC-SHA256 over `id.timestamp.body`.
pub fn sign(secret: &[u8], delivery_id: &str, timestamp: &str, body: &[u8]) -> String {
    use base64::Engine;
    use hmac::Mac;
    // HMAC takes a key of any length (RFC 2104), so `new_from_slice` cannot fail.
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    for part in [delivery_id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
        mac.update(part);
    }
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// True when `signature` (the header's value) is MLflow's signature of this delivery. The
/// comparison takes the same time wherever the first difference is (`subtle`).
pub fn signature_matches(secret: &[u8], delivery_id: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = sign(secret, delivery_id, timestamp, body);
    expected.as_bytes().ct_eq(signature.trim().as_bytes()).into()
}
