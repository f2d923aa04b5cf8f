//! The client: one retrying request path, and the tracking and registry calls on top of it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::{Auth, ClientConfig};
use crate::error::Error;
use crate::types::{Experiment, Metric, Param, Run, RunInfo, RunStatus, Tag};

/// MLflow's REST prefix, relative to the server's base URL.
const API: &str = "api/2.0/mlflow/";

/// `runs/log-batch` limits (MLflow rejects larger batches).
const BATCH_MAX_METRICS: usize = 1000;
const BATCH_MAX_PARAMS: usize = 100;
const BATCH_MAX_TAGS: usize = 100;

/// An MLflow REST client. Cheap to clone (the connection pool and the OAuth token cache are
/// shared).
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) cfg: ClientConfig,
    /// The OAuth token, when [`Auth::OAuthM2m`] is configured.
    pub(crate) tokens: std::sync::Arc<crate::auth::TokenCache>,
}

/// A raw answer that is not a retryable failure.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

/// Streams `response`'s body into `file`: the memory held is one chunk, whatever the file's
/// size. The outer error is the limit or the disk; the inner one a transport failure mid-body
/// (retried, and the next attempt creates the file again).
async fn stream_to_file(
    response: &mut reqwest::Response,
    mut file: crate::artifacts::CappedFile,
    too_large: impl Fn() -> Error,
) -> Result<Result<Vec<u8>, reqwest::Error>, Error> {
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => file.write(&chunk, &too_large)?,
            Ok(None) => {
                file.finish()?;
                return Ok(Ok(Vec::new()));
            }
            Err(e) => return Ok(Err(e)),
        }
    }
}

/// Milliseconds since the epoch, as MLflow stamps times.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Client {
    /// A client for the server `cfg` describes.
    pub fn new(cfg: ClientConfig) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("stacktag-mlflow-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Transport {
                call: "client setup".into(),
                url: cfg.base_url.to_string(),
                retries: 0,
                reason: error_chain(&e),
            })?;
        Ok(Self { http, cfg, tokens: Default::default() })
    }

    /// The configuration this client runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    pub(crate) fn url(&self, relative: &str) -> Url {
        // The base URL always ends in `/` and `relative` never starts with one, so `join`
        // keeps any path prefix the server sits under.
        self.cfg.base_url.join(relative).unwrap_or_else(|_| self.cfg.base_url.clone())
    }

    /// Sends the request `build` makes with the configured credentials, retrying connection
    /// errors, 429 and 5xx with bounded exponential backoff. Any other answer (success or not)
    /// is returned as is. With OAuth, a 401 drops the cached token and tries once more with a
    /// new one (a token can be revoked or expire early).
    pub(crate) async fn execute(
        &self,
        call: &str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Answer, Error> {
        self.execute_into(call, build, None).await
    }

    /// [`Self::execute`], with a successful answer's body streamed into the file `into`
    /// (created, or truncated at each attempt) instead of memory; its [`Answer::body`] is then
    /// empty. Other answers' bodies (error messages) are read as usual.
    pub(crate) async fn execute_into(
        &self,
        call: &str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
        into: Option<&std::path::Path>,
    ) -> Result<Answer, Error> {
        let mut refreshed = false;
        loop {
            let bearer = self.bearer().await?;
            let answer = self
                .send_into(
                    call,
                    |http| match (&self.cfg.auth, &bearer) {
                        (_, Some(token)) => build(http).bearer_auth(token.expose()),
                        (Auth::Basic { username, password }, None) => {
                            build(http).basic_auth(username, Some(password.expose()))
                        }
                        _ => build(http),
                    },
                    into,
                )
                .await?;
            if answer.status == StatusCode::UNAUTHORIZED
                && !refreshed
                && let (Auth::OAuthM2m { .. }, Some(token)) = (&self.cfg.auth, &bearer)
            {
                self.tokens.forget(token).await;
                refreshed = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// The body of `response`, read chunk by chunk up to [`ClientConfig::max_response_bytes`]:
    /// the outer error is a body over the limit (not retried), the inner one a transport
    /// failure while reading (retried like any).
    async fn read_capped(
        &self,
        call: &str,
        mut response: reqwest::Response,
        into: Option<&std::path::Path>,
    ) -> Result<Result<Vec<u8>, reqwest::Error>, Error> {
        let limit = self.cfg.max_response_bytes;
        let too_large = || Error::TooLarge { call: call.to_owned(), limit };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        if let Some(path) = into.filter(|_| response.status().is_success()) {
            let file = crate::artifacts::CappedFile::create(path, limit)?;
            return stream_to_file(&mut response, file, too_large).await;
        }
        let mut body = Vec::with_capacity(response.content_length().map_or(0, |n| n as usize));
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if (body.len() + chunk.len()) as u64 > limit {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(Ok(body)),
                Err(e) => return Ok(Err(e)),
            }
        }
    }

    /// Sends the request `build` makes exactly as built (no credentials added: signed URLs
    /// carry their own, and the token endpoint takes the client's), with the retries of
    /// [`Self::execute`].
    pub(crate) async fn send(
        &self,
        call: &str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Answer, Error> {
        self.send_into(call, build, None).await
    }

    /// [`Self::send`], streaming a successful body into `into` as [`Self::execute_into`] says.
    pub(crate) async fn send_into(
        &self,
        call: &str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
        into: Option<&std::path::Path>,
    ) -> Result<Answer, Error> {
        let policy = self.cfg.retry;
        let mut retry = 0u32;
        loop {
            let outcome = match build(&self.http).send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    // Reading the body is part of the attempt: a connection cut mid-body is
                    // as retryable as one refused.
                    match self.read_capped(call, response, into).await? {
                        Ok(body) => Ok((status, body, retry_after)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok((status, body, retry_after)) => {
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !retryable {
                        return Ok(Answer { status, body });
                    }
                    if retry >= policy.max_retries {
                        return Err(Error::Unavailable {
                            call: call.to_owned(),
                            url: self.cfg.base_url.to_string(),
                            status: status.as_u16(),
                            retries: retry,
                            message: message_of(&body),
                        });
                    }
                    let delay = retry_after.unwrap_or_else(|| policy.delay(retry)).min(policy.max_backoff);
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    if e.is_builder() || retry >= policy.max_retries {
                        return Err(Error::Transport {
                            call: call.to_owned(),
                            url: self.cfg.base_url.to_string(),
                            retries: retry,
                            reason: error_chain(&e),
                        });
                    }
                    tokio::time::sleep(policy.delay(retry)).await;
                }
            }
            retry += 1;
        }
    }

    /// A JSON call to `api/2.0/mlflow/<endpoint>`: the body (if any) as JSON, the answer
    /// decoded as `T`, any non-success answer turned into [`Error::Api`].
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, Error> {
        let url = self.url(&format!("{API}{endpoint}"));
        let answer = self
            .execute(endpoint, |http| {
                let mut rb = http.request(method.clone(), url.clone()).query(query);
                if let Some(body) = body {
                    rb = rb.header(CONTENT_TYPE, "application/json").body(body.to_string());
                }
                rb
            })
            .await?;
        decode(endpoint, answer)
    }

    async fn get<T: DeserializeOwned>(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<T, Error> {
        self.call(Method::GET, endpoint, query, None).await
    }

    async fn post<T: DeserializeOwned>(&self, endpoint: &str, body: Value) -> Result<T, Error> {
        self.call(Method::POST, endpoint, &[], Some(&body)).await
    }

    pub(crate) async fn mlflow_get<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
    ) -> Result<T, Error> {
        self.get(endpoint, query).await
    }

    pub(crate) async fn mlflow_post<T: DeserializeOwned>(&self, endpoint: &str, body: Value) -> Result<T, Error> {
        self.post(endpoint, body).await
    }

    pub(crate) async fn mlflow_delete<T: DeserializeOwned>(&self, endpoint: &str) -> Result<T, Error> {
        self.call(Method::DELETE, endpoint, &[], None).await
    }

    // ---- experiments -------------------------------------------------------------------

    /// The experiment called `name`, or `None` if there is none.
    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>, Error> {
        #[derive(Deserialize)]
        struct Reply {
            experiment: Experiment,
        }
        match self.get::<Reply>("experiments/get-by-name", &[("experiment_name", name)]).await {
            Ok(r) => Ok(Some(r.experiment)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates the experiment `name` and returns its id. On Databricks `name` must be a
    /// workspace path ([`crate::check_experiment_name`]): refused before the call.
    pub async fn create_experiment(&self, name: &str) -> Result<String, Error> {
        crate::check_experiment_name(self.cfg.target, name)?;
        #[derive(Deserialize)]
        struct Reply {
            experiment_id: String,
        }
        let r: Reply = self.post("experiments/create", json!({ "name": name })).await?;
        Ok(r.experiment_id)
    }

    /// The id of the experiment `name`, created if it does not exist yet (a concurrent
    /// creator is fine).
    pub async fn get_or_create_experiment(&self, name: &str) -> Result<String, Error> {
        if let Some(e) = self.get_experiment_by_name(name).await? {
            return Ok(e.experiment_id);
        }
        match self.create_experiment(name).await {
            Ok(id) => Ok(id),
            Err(e) if e.is_already_exists() => match self.get_experiment_by_name(name).await? {
                Some(e) => Ok(e.experiment_id),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    // ---- runs --------------------------------------------------------------------------

    /// Starts a run in `experiment_id`.
    pub async fn create_run(
        &self,
        experiment_id: &str,
        run_name: Option<&str>,
        tags: &[Tag],
    ) -> Result<RunInfo, Error> {
        #[derive(Deserialize)]
        struct Reply {
            run: Run,
        }
        let mut body = json!({ "experiment_id": experiment_id, "start_time": now_ms(), "tags": tags });
        if let Some(name) = run_name {
            body["run_name"] = json!(name);
        }
        let r: Reply = self.post("runs/create", body).await?;
        Ok(r.run.info)
    }

    /// The run `run_id`, with its latest metrics, params and tags.
    pub async fn get_run(&self, run_id: &str) -> Result<Run, Error> {
        #[derive(Deserialize)]
        struct Reply {
            run: Run,
        }
        let r: Reply = self.get("runs/get", &[("run_id", run_id)]).await?;
        Ok(r.run)
    }

    /// Logs metrics, params and tags, split into as many `runs/log-batch` calls as MLflow's
    /// limits need (1000 metrics, 100 params, 100 tags each).
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[Param],
        tags: &[Tag],
    ) -> Result<(), Error> {
        let (mut m, mut p, mut t) = (metrics, params, tags);
        while !(m.is_empty() && p.is_empty() && t.is_empty()) {
            let (pm, rest_m) = m.split_at(m.len().min(BATCH_MAX_METRICS));
            let (pp, rest_p) = p.split_at(p.len().min(BATCH_MAX_PARAMS));
            let (pt, rest_t) = t.split_at(t.len().min(BATCH_MAX_TAGS.min(BATCH_MAX_METRICS - pm.len())));
            let _: Value = self
                .post("runs/log-batch", json!({ "run_id": run_id, "metrics": pm, "params": pp, "tags": pt }))
                .await?;
            (m, p, t) = (rest_m, rest_p, rest_t);
        }
        Ok(())
    }

    /// Ends (or otherwise changes the state of) a run; `FINISHED`, `FAILED` and `KILLED` stamp
    /// the end time.
    pub async fn update_run(&self, run_id: &str, status: RunStatus) -> Result<(), Error> {
        let mut body = json!({ "run_id": run_id, "status": status });
        if matches!(status, RunStatus::Finished | RunStatus::Failed | RunStatus::Killed) {
            body["end_time"] = json!(now_ms());
        }
        let _: Value = self.post("runs/update", body).await?;
        Ok(())
    }
}

/// Turns a non-retryable answer into `T` or [`Error::Api`].
pub(crate) fn decode<T: DeserializeOwned>(call: &str, answer: Answer) -> Result<T, Error> {
    if !answer.status.is_success() {
        return Err(api_error(call, &answer));
    }
    let body: &[u8] = if answer.body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &answer.body };
    serde_json::from_slice(body).map_err(|e| Error::Decode { call: call.to_owned(), reason: e.to_string() })
}

/// MLflow's `{error_code, message}` body, or the status and the start of whatever came.
pub(crate) fn api_error(call: &str, answer: &Answer) -> Error {
    #[derive(Deserialize)]
    struct Body {
        error_code: Option<String>,
        message: Option<String>,
    }
    let parsed: Option<Body> = serde_json::from_slice(&answer.body).ok();
    let (error_code, message) = match parsed {
        Some(Body { error_code: Some(code), message }) => (code, message.unwrap_or_default()),
        _ => (
            answer.status.canonical_reason().unwrap_or("HTTP_ERROR").to_uppercase().replace(' ', "_"),
            message_of(&answer.body),
        ),
    };
    let message = match answer.status.as_u16() {
        // The server's own text only says "not authenticated"; say which settings to check.
        401 => format!(
            "{message} (check the credentials: `MLFLOW_TRACKING_TOKEN`, or `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`; on Databricks `DATABRICKS_TOKEN`, or `DATABRICKS_CLIENT_ID` and `DATABRICKS_CLIENT_SECRET`)"
        ),
        _ => message,
    };
    Error::Api { call: call.to_owned(), status: answer.status.as_u16(), error_code, message }
}

/// A short, printable message from an error body.
fn message_of(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Body {
        message: Option<String>,
    }
    if let Ok(Body { message: Some(m) }) = serde_json::from_slice(body) {
        return m;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "empty body".into();
    }
    text.chars().take(200).collect()
}

/// A `Retry-After` header in seconds (the HTTP-date form is ignored: the backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The error and its causes on one line, without the URL (which reqwest would repeat).
pub(crate) fn error_chain(e: &reqwest::Error) -> String {
    let mut out = String::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer's body broke off"
    } else {
        "request failed"
    };
    out.push_str(kind);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
