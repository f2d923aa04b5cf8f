//! Credentials on the wire: the bearer token of a request, and Databricks OAuth
//! machine-to-machine, whose short-lived tokens are fetched and cached here.
//!
//! The token request is databricks-sdk's `oauth-m2m` one (its `oauth.py`,
//! `ClientCredentials` with `use_header=True`): a form POST of
//! `grant_type=client_credentials&scope=all-apis` to the workspace's `/oidc/v1/token`, the
//! client id and secret in HTTP basic auth. The SDK first reads the token endpoint from
//! `/oidc/.well-known/oauth-authorization-server`; on a workspace that is always
//! `<host>/oidc/v1/token`, so this client goes there directly.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::client::Client;
use crate::config::{Auth, Secret};
use crate::error::Error;

/// The workspace's token endpoint, relative to its URL.
const TOKEN_PATH: &str = "oidc/v1/token";
/// The scope databricks-sdk asks for: every workspace API.
const SCOPE: &str = "all-apis";
/// A token is replaced this long before it expires (or at half its life, if that is
/// sooner), so that no request leaves with a token about to die.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The cached OAuth token (empty until first needed).
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    current: Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    token: Secret,
    refresh_at: Instant,
}

impl TokenCache {
    /// Drops `stale` if it is still the cached token (a concurrent caller may have replaced
    /// it already).
    pub(crate) async fn forget(&self, stale: &Secret) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|c| &c.token == stale) {
            *current = None;
        }
    }
}

impl Client {
    /// The bearer token for the next request: the configured one, or a cached OAuth token
    /// (fetched when missing or about to expire). `None` without token credentials.
    pub(crate) async fn bearer(&self) -> Result<Option<Secret>, Error> {
        match &self.cfg.auth {
            Auth::Bearer(token) => Ok(Some(token.clone())),
            Auth::OAuthM2m { client_id, client_secret } => {
                // Held across the fetch: concurrent callers wait for one token request.
                let mut current = self.tokens.current.lock().await;
                if let Some(c) = current.as_ref()
                    && Instant::now() < c.refresh_at
                {
                    return Ok(Some(c.token.clone()));
                }
                let fresh = self.fetch_token(client_id, client_secret).await?;
                let token = fresh.token.clone();
                *current = Some(fresh);
                Ok(Some(token))
            }
            Auth::None | Auth::Basic { .. } => Ok(None),
        }
    }

    async fn fetch_token(&self, client_id: &str, secret: &Secret) -> Result<Cached, Error> {
        #[derive(Deserialize)]
        struct Reply {
            access_token: String,
            #[serde(default)]
            token_type: Option<String>,
            expires_in: u64,
        }
        let url = self.url(TOKEN_PATH);
        let call = "oauth token";
        let form = [("grant_type", "client_credentials"), ("scope", SCOPE)];
        let answer = self
            .send(call, |http| {
                http.post(url.clone())
                    .basic_auth(client_id, Some(secret.expose()))
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form_body(&form))
            })
            .await?;
        if !answer.status.is_success() {
            return Err(Error::Auth {
                client_id: client_id.to_owned(),
                url: url.to_string(),
                status: answer.status.as_u16(),
                reason: oauth_error(&answer.body, answer.status),
            });
        }
        let reply: Reply = serde_json::from_slice(&answer.body)
            .map_err(|e| Error::Decode { call: call.into(), reason: e.to_string() })?;
        if reply.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
            return Err(Error::Decode {
                call: call.into(),
                reason: format!("token type `{}` is not `Bearer`", reply.token_type.unwrap_or_default()),
            });
        }
        let life = Duration::from_secs(reply.expires_in);
        let margin = REFRESH_MARGIN.min(life / 2);
        Ok(Cached { token: Secret::new(reply.access_token), refresh_at: Instant::now() + life - margin })
    }
}

/// `a=b&c=d`, the way `requests` encodes a form (both values here are plain ASCII words).
fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The OAuth error of a refused token request (`error`, `error_description`, as RFC 6749 and
/// databricks-sdk read them), without anything the request carried.
fn oauth_error(body: &[u8], status: StatusCode) -> String {
    #[derive(Deserialize)]
    struct Body {
        error: Option<String>,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body { error: Some(e), error_description }) => match error_description {
            Some(d) => format!("{e}: {d}"),
            None => e,
        },
        _ => status.canonical_reason().unwrap_or("refused").to_owned(),
    }
}
