//! The `github` deployer: a `repository_dispatch` event `model-promoted` that starts
//! `.github/workflows/deploy.yml`, carrying what was promoted and the sha256 of the component
//! registry-sync baked from it.

use std::time::Duration;

use mlflow_client::Secret;
use serde::Serialize;

use crate::state::DeployedModel;

/// GitHub's API when `GITHUB_API_URL` is not set.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// The event type `deploy.yml` listens for.
pub const EVENT_TYPE: &str = "model-promoted";
/// The REST API version the request is written against.
pub const API_VERSION: &str = "2022-11-28";
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the dispatch goes; `Debug` redacts the token (it is a [`Secret`]).
#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// `GITHUB_API_URL`, e.g. `https://api.github.com` (no trailing slash needed).
    pub api_url: String,
    /// `owner/name`.
    pub repository: String,
    /// `GITHUB_TOKEN`: a token allowed to create dispatch events (contents: write).
    pub token: Secret,
}

/// The event's `client_payload`, as `deploy.yml` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    /// Registered model name.
    pub model: String,
    /// Registry version.
    pub version: String,
    /// The MLflow run that logged it.
    pub run_id: String,
    /// sha256 (hex) of the baked component (`edge.wasm`) registry-sync verified and served.
    pub sha256: String,
}

#[derive(Serialize)]
struct Dispatch<'a> {
    event_type: &'a str,
    client_payload: &'a Payload,
}

/// Why a dispatch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// Not sent, or no answer.
    #[error("cannot reach GitHub at `{url}`: {reason}")]
    Transport {
        /// The dispatches URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// GitHub answered with an error (401 bad token, 404 no such repository or no access, 422).
    #[error("GitHub refused the `{EVENT_TYPE}` dispatch to `{url}` with {status}: {message}")]
    Refused {
        /// The dispatches URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// GitHub's `message`, or the start of the body.
        message: String,
    },
}

impl GithubConfig {
    /// `{api_url}/repos/{owner}/{name}/dispatches`.
    pub fn dispatches_url(&self) -> String {
        format!("{}/repos/{}/dispatches", self.api_url.trim_end_matches('/'), self.repository)
    }
}

/// The client for GitHub: a User-Agent (GitHub refuses requests without one), a timeout, and
/// no proxy for a loopback stand-in.
pub fn client(cfg: &GithubConfig) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("stacktag-registry-sync/", env!("CARGO_PKG_VERSION")))
        .timeout(TIMEOUT);
    let host = reqwest::Url::parse(&cfg.api_url).ok().and_then(|u| u.host_str().map(str::to_owned));
    if matches!(host.as_deref(), Some("127.0.0.1" | "localhost" | "[::1]")) {
        b = b.no_proxy();
    }
    Ok(b.build()?)
}

/// Sends the `model-promoted` event for `model` (GitHub answers 204).
pub async fn dispatch(
    http: &reqwest::Client,
    cfg: &GithubConfig,
    model: &DeployedModel,
    sha256: &str,
) -> Result<Payload, DispatchError> {
    let url = cfg.dispatches_url();
    let payload = Payload {
        model: model.model.clone(),
        version: model.version.clone(),
        run_id: model.run_id.clone(),
        sha256: sha256.to_owned(),
    };
    let answer = http
        .post(&url)
        .bearer_auth(cfg.token.expose())
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", API_VERSION)
        .json(&Dispatch { event_type: EVENT_TYPE, client_payload: &payload })
        .send()
        .await
        // Without the URL: reqwest's error names it, and the URL carries no secret anyway.
        .map_err(|e| DispatchError::Transport { url: url.clone(), reason: e.without_url().to_string() })?;
    let status = answer.status();
    if status.is_success() {
        return Ok(payload);
    }
    let body = answer.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect());
    Err(DispatchError::Refused { url, status: status.as_u16(), message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_prints() {
        let cfg = GithubConfig {
            api_url: DEFAULT_API_URL.into(),
            repository: "o/r".into(),
            token: Secret::new("ghp_sekrit"),
        };
        assert!(!format!("{cfg:?}").contains("sekrit"));
        assert_eq!(cfg.dispatches_url(), "https://api.github.com/repos/o/r/dispatches");
    }
}
