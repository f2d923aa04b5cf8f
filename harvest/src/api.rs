//! The Stack Exchange API v2.3: `/questions` on a site, by tag and creation date, oldest first,
//! with bodies (`filter=withbody`), a page at a time.
//!
//! What the API asks of a client, and what this one does:
//! - `backoff` on a response: wait that many seconds before the next request (it is sent when
//!   a method is hit too often; ignoring it gets the IP throttled);
//! - `quota_remaining`: requests left today (300 without a key, 10,000 with one). At 0 the
//!   fetch stops and returns what it has; the next run resumes from the inbox's newest
//!   question, so nothing is lost;
//! - an error object (`error_id`, `error_name`, `error_message`: a throttle violation, a bad
//!   key) or a page that is not the API's JSON stops the fetch the same way, with the reason;
//! - responses are gzip-compressed whatever the client asks: decoded here.
//!
//! The key (`STACKEXCHANGE_KEY`, optional) raises the quota; it is a query parameter, so it is
//! never put in an error or a log (the URLs shown are without it).

use std::time::Duration;

use serde::Deserialize;

use crate::Question;

/// The public API.
pub const DEFAULT_BASE_URL: &str = "https://api.stackexchange.com/2.3";
/// The largest page the API serves.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Where and how to fetch.
#[derive(Clone)]
pub struct ApiConfig {
    /// `https://api.stackexchange.com/2.3`, or a test server.
    pub base_url: String,
    /// `stackoverflow`.
    pub site: String,
    /// An app key for the higher quota; never shown.
    pub key: Option<String>,
    /// Questions per page (at most 100).
    pub page_size: u32,
    /// Pages per tag at most, a bound on one run (`None`: until the window is done).
    pub max_pages: Option<u32>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("base_url", &self.base_url)
            .field("site", &self.site)
            .field("key", &self.key.as_ref().map(|_| "<set>"))
            .field("page_size", &self.page_size)
            .field("max_pages", &self.max_pages)
            .finish()
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.into(),
            site: "stackoverflow".into(),
            key: None,
            page_size: MAX_PAGE_SIZE,
            max_pages: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Creation dates to fetch, Unix seconds, both ends included (the API's `fromdate`/`todate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The oldest creation date wanted.
    pub from: i64,
    /// The newest.
    pub to: i64,
}

/// Why a fetch ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "stopped", content = "reason", rename_all = "snake_case")]
pub enum Stop {
    /// The window is done (`has_more` false).
    Done,
    /// `--max-pages` reached; the rest waits for the next run.
    PageLimit,
    /// `quota_remaining` reached 0; the rest waits for tomorrow's quota.
    QuotaExhausted,
    /// The API answered with an error, or something that is not its JSON; the rest waits for
    /// the next run.
    Failed(String),
}

/// What one tag's fetch brought.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The questions, oldest first, as the pages gave them.
    pub questions: Vec<Question>,
    /// Pages read.
    pub pages: u32,
    /// The quota left after the last page, when a page said.
    pub quota_remaining: Option<u64>,
    /// Seconds waited on `backoff`.
    pub backoff_waited: u64,
    /// Why it ended.
    pub stopped: Stop,
}

/// The API's response wrapper, as much as is read.
#[derive(Debug, Deserialize)]
struct Wrapper {
    #[serde(default)]
    items: Option<Vec<Item>>,
    #[serde(default)]
    has_more: bool,
    quota_remaining: Option<u64>,
    backoff: Option<u64>,
    error_id: Option<u64>,
    error_name: Option<String>,
    error_message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Item {
    question_id: u64,
    title: String,
    body: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    creation_date: i64,
}

/// A client for one site.
#[derive(Debug, Clone)]
pub struct Api {
    config: ApiConfig,
    http: reqwest::Client,
}

impl Api {
    /// A client; fails only if the TLS set-up does.
    pub fn new(config: ApiConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (1..=MAX_PAGE_SIZE).contains(&config.page_size),
            "the page size must be 1 to {MAX_PAGE_SIZE}, not {}",
            config.page_size
        );
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("stacktag-harvest/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { config, http })
    }

    /// Every question tagged `tag` created in `window`, page after page, until the window is
    /// done, the page limit or the quota is reached, or the API fails; what was fetched before
    /// a stop is returned with it.
    pub async fn questions(&self, tag: &str, window: Window) -> Fetched {
        let mut out =
            Fetched { questions: Vec::new(), pages: 0, quota_remaining: None, backoff_waited: 0, stopped: Stop::Done };
        let mut page = 1u32;
        loop {
            if self.config.max_pages.is_some_and(|max| out.pages >= max) {
                out.stopped = Stop::PageLimit;
                return out;
            }
            let wrapper = match self.page(tag, window, page).await {
                Ok(w) => w,
                Err(why) => {
                    out.stopped = Stop::Failed(why);
                    return out;
                }
            };
            out.pages += 1;
            if wrapper.quota_remaining.is_some() {
                out.quota_remaining = wrapper.quota_remaining;
            }
            if let Some(id) = wrapper.error_id {
                out.stopped = Stop::Failed(format!(
                    "the API refused page {page} of `{tag}`: {} {id}: {}",
                    wrapper.error_name.as_deref().unwrap_or("error"),
                    wrapper.error_message.as_deref().unwrap_or("(no message)")
                ));
                return out;
            }
            let Some(items) = wrapper.items else {
                out.stopped = Stop::Failed(format!("page {page} of `{tag}` has no `items`"));
                return out;
            };
            for item in items {
                out.questions.push(Question {
                    id: item.question_id,
                    title: unescape_title(&item.title),
                    body: item.body.unwrap_or_default(),
                    tags: item.tags,
                    created: item.creation_date,
                });
            }
            if !wrapper.has_more {
                return out;
            }
            if wrapper.quota_remaining == Some(0) {
                out.stopped = Stop::QuotaExhausted;
                return out;
            }
            if let Some(seconds) = wrapper.backoff {
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                out.backoff_waited += seconds;
            }
            page += 1;
        }
    }

    /// One page, parsed; the error says which page and why, never the key.
    async fn page(&self, tag: &str, window: Window, page: u32) -> Result<Wrapper, String> {
        let shown = format!("{}/questions?tagged={tag}&page={page}", self.config.base_url.trim_end_matches('/'));
        let mut query: Vec<(&str, String)> = vec![
            ("site", self.config.site.clone()),
            ("tagged", tag.to_owned()),
            ("fromdate", window.from.to_string()),
            ("todate", window.to.to_string()),
            ("sort", "creation".into()),
            ("order", "asc".into()),
            ("filter", "withbody".into()),
            ("pagesize", self.config.page_size.to_string()),
            ("page", page.to_string()),
        ];
        if let Some(key) = &self.config.key {
            query.push(("key", key.clone()));
        }
        let url = format!("{}/questions", self.config.base_url.trim_end_matches('/'));
        let response = self
            .http
            .get(url)
            .query(&query)
            .header(reqwest::header::ACCEPT_ENCODING, "gzip")
            .send()
            .await
            // reqwest's error names the URL, key included: say it without.
            .map_err(|e| format!("cannot fetch {shown}: {}", e.without_url()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| format!("cannot read {shown}: {}", e.without_url()))?;
        let body = gunzip(&body).map_err(|e| format!("{shown}: bad gzip: {e}"))?;
        // Errors come as the same wrapper with a 400 status; anything else is not the API.
        serde_json::from_slice::<Wrapper>(&body).map_err(|e| {
            let start = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
            format!("{shown} (HTTP {status}) is not the API's JSON ({e}): {start:?}")
        })
    }
}

fn gunzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    if !body.starts_with(&[0x1f, 0x8b]) {
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(body), &mut out)?;
    Ok(out)
}

/// The API HTML-escapes titles (`&quot;`, `&#39;`, `&lt;`): the text is the title as asked.
/// A malformed entity is left as written rather than losing the question.
pub fn unescape_title(title: &str) -> String {
    quick_xml::escape::unescape_with(title, quick_xml::escape::resolve_html5_entity)
        .map_or_else(|_| title.to_owned(), |t| t.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_lose_the_apis_escaping() {
        assert_eq!(
            unescape_title("Select N random elements from a List&lt;T&gt; in C#"),
            "Select N random elements from a List<T> in C#"
        );
        assert_eq!(unescape_title("What&#39;s &quot;this&quot; &amp; that&hellip;"), "What's \"this\" & that…");
        assert_eq!(unescape_title("R&D &bogus; stays"), "R&D &bogus; stays");
    }

    #[test]
    fn the_key_is_not_in_the_debug_output() {
        let config = ApiConfig { key: Some("s3cr3t-key".into()), ..ApiConfig::default() };
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }
}
