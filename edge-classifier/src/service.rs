//! The HTTP service, without a transport: routing, body limits, content types, wire types and
//! every error body.
//!
//! [`handle`] is a pure function from a [`Request`] (method, path, content type, body bytes) to
//! a [`Response`] (status, headers, body bytes). The Spin component only converts its host's
//! request into a [`Request`] and writes the [`Response`] back, so the routes behave the same on
//! every host, are tested natively, and are what the fuzz target drives. No input panics: every
//! failure becomes an [`ApiError`] body whose code sets the status.

use crate::api::{ApiError, BatchPrediction, ErrorCode, Health, ModelRef, PredictRequest};
use crate::{Classifier, Error};

/// Default `max_body_bytes`: 64 KiB, the Spin variable's default.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Default `max_batch`: texts per `{"texts": [...]}` request.
pub const DEFAULT_MAX_BATCH: usize = 64;
/// The JSON media type every response body has.
pub const JSON: &str = "application/json";

/// The routes, for `Allow` headers and 404 messages.
const ROUTES: &str = "`POST /classify`, `GET /model`, `GET /health`";

/// What the service accepts; resolved once by the adapter (e.g. from a Spin variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body in bytes; a larger one gets 413.
    pub max_body_bytes: usize,
    /// Most texts in one batch request; more gets 400 `batch_too_large`.
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_body_bytes: DEFAULT_MAX_BODY_BYTES, max_batch: DEFAULT_MAX_BATCH }
    }
}

impl Limits {
    /// Limits with `max_body_bytes` read from a configuration string (a Spin variable or an
    /// environment variable). `None` keeps the default.
    pub fn with_max_body_bytes(raw: Option<&str>) -> Result<Self, String> {
        let mut limits = Self::default();
        if let Some(raw) = raw {
            limits.max_body_bytes = raw
                .trim()
                .parse::<usize>()
                .map_err(|e| format!("`max_body_bytes` must be a number of bytes, got `{raw}`: {e}"))?;
        }
        Ok(limits)
    }
}

/// An HTTP request as the service sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The method, e.g. `GET` (matched case-sensitively, as HTTP defines).
    pub method: &'a str,
    /// The path, possibly with a `?query` (ignored).
    pub path: &'a str,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The body. An adapter may stop reading after `max_body_bytes + 1` bytes: anything longer
    /// than the limit is answered with 413 either way.
    pub body: &'a [u8],
}

/// An HTTP response: always a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` of `body`.
    pub content_type: &'static str,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// `value` as JSON, with `status`.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self { status, content_type: JSON, allow: None, body },
            // The wire types hold only strings, numbers and lists, so this is unreachable in
            // practice; still an answer, never a panic.
            Err(e) => Self::error(ErrorCode::Internal, format!("failed to encode the response: {e}")),
        }
    }

    /// An error body; the code sets the status.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        let body = serde_json::to_vec(&ApiError::new(code, message))
            .unwrap_or_else(|_| br#"{"error":{"code":"internal","message":""}}"#.to_vec());
        Self { status: code.status(), content_type: JSON, allow: None, body }
    }

    fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> Self {
        let mut response = Self::error(
            ErrorCode::MethodNotAllowed,
            format!("`{method} {path}` is not supported; use `{allow} {path}`"),
        );
        response.allow = Some(allow);
        response
    }
}

/// Answers one request. Never panics, whatever the bytes.
pub fn handle(classifier: &Classifier, request: &Request<'_>, limits: &Limits) -> Response {
    let path = request.path.split_once('?').map_or(request.path, |(path, _)| path);
    match (path, request.method) {
        ("/classify", "POST") => classify(classifier, request, limits),
        ("/classify", method) => Response::method_not_allowed(method, path, "POST"),
        ("/model", "GET") => Response::json(200, classifier.manifest()),
        ("/health", "GET") => Response::json(200, &Health { status: "ok".to_owned(), model: model_ref(classifier) }),
        ("/model" | "/health", method) => Response::method_not_allowed(method, path, "GET"),
        _ => Response::error(ErrorCode::NotFound, format!("no route `{path}`; routes are {ROUTES}")),
    }
}

/// The answer to every request when the bundle or the configuration did not load: 503, so a
/// broken deployment says why instead of trapping.
pub fn unavailable(message: &str) -> Response {
    Response::error(ErrorCode::Unavailable, message)
}

/// The body's media type, as the service understands it.
enum Body {
    Json,
    Text,
}

fn classify(classifier: &Classifier, request: &Request<'_>, limits: &Limits) -> Response {
    if request.body.len() > limits.max_body_bytes {
        return Response::error(
            ErrorCode::BodyTooLarge,
            format!("request body is over the limit of {} bytes", limits.max_body_bytes),
        );
    }
    let media_type =
        request.content_type.map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    let kind = match media_type.as_deref() {
        Some("application/json") => Body::Json,
        Some("text/plain") => Body::Text,
        Some(other) => {
            return Response::error(
                ErrorCode::UnsupportedMediaType,
                format!("content type `{other}` is not supported; send `application/json` or `text/plain`"),
            );
        }
        None => {
            return Response::error(
                ErrorCode::UnsupportedMediaType,
                "missing `Content-Type`; send `application/json` or `text/plain`",
            );
        }
    };
    let charset = request.content_type.and_then(charset_of);
    match kind {
        Body::Text => match decode_text(request.body, charset.as_deref()) {
            Ok(text) => one(classifier, &text),
            Err(response) => response,
        },
        Body::Json
            if charset
                .as_deref()
                .is_some_and(|c| !c.eq_ignore_ascii_case("utf-8") && !c.eq_ignore_ascii_case("utf8")) =>
        {
            Response::error(
                ErrorCode::UnsupportedCharset,
                format!(
                    "JSON is UTF-8 (RFC 8259), not `{}`; send the body as UTF-8 or as `text/plain; charset=...`",
                    charset.unwrap_or_default()
                ),
            )
        }
        Body::Json => match parse_json(request.body) {
            Ok(PredictRequest::One { text }) => one(classifier, &text),
            Ok(PredictRequest::Batch { texts }) => batch(classifier, &texts, limits),
            Err(response) => response,
        },
    }
}

/// The `charset` parameter of a `Content-Type`, unquoted (`text/plain; charset="utf-8"`).
fn charset_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim().eq_ignore_ascii_case("charset").then(|| value.trim().trim_matches('"').to_owned())
    })
}

#[cfg(feature = "charsets")]
/// A `text/plain` body as text: a byte-order mark decides (UTF-8, UTF-16LE or BE, as the WHATWG
/// Encoding Standard has it), then the declared charset (any label the Encoding Standard knows:
/// `iso-8859-1` and `windows-1252` are one, `latin1` too), then UTF-8. Bytes that are not valid
/// in that encoding are refused, never replaced: a question is classified as it was written or
/// not at all.
fn decode_text<'b>(body: &'b [u8], charset: Option<&str>) -> Result<std::borrow::Cow<'b, str>, Response> {
    let declared = match charset {
        None => encoding_rs::UTF_8,
        Some(label) => encoding_rs::Encoding::for_label(label.as_bytes()).ok_or_else(|| {
            Response::error(
                ErrorCode::UnsupportedCharset,
                format!("charset `{label}` is not one this service knows (the WHATWG Encoding Standard's labels)"),
            )
        })?,
    };
    let (encoding, bom) = encoding_rs::Encoding::for_bom(body).unwrap_or((declared, 0));
    encoding.decode_without_bom_handling_and_without_replacement(&body[bom..]).ok_or_else(|| {
        let (code, name) = match encoding == encoding_rs::UTF_8 {
            true => (ErrorCode::InvalidUtf8, "UTF-8".to_owned()),
            false => (ErrorCode::InvalidEncoding, encoding.name().to_owned()),
        };
        let message = match charset {
            Some(label) if bom == 0 => format!("body is not valid {name} (declared `charset={label}`)"),
            _ if bom > 0 => format!("body is not valid {name} (its byte-order mark says {name})"),
            _ => format!("body is not valid {name}; declare its encoding with `text/plain; charset=...`"),
        };
        Response::error(code, message)
    })
}

/// A `text/plain` body as text, in a build without the `charsets` feature (the browser module,
/// whose text comes from a JS string and is always UTF-8; `encoding_rs`'s tables were 151 KB of
/// its 792 KB gzipped): UTF-8 only, after an optional UTF-8 byte-order mark; any other declared
/// charset is refused, as an unknown one is in the full build.
#[cfg(not(feature = "charsets"))]
fn decode_text<'b>(body: &'b [u8], charset: Option<&str>) -> Result<std::borrow::Cow<'b, str>, Response> {
    if let Some(label) = charset
        && !["utf-8", "utf8", "unicode-1-1-utf-8"].iter().any(|u| label.trim().eq_ignore_ascii_case(u))
    {
        return Err(Response::error(
            ErrorCode::UnsupportedCharset,
            format!("charset `{label}` is not UTF-8, the one charset this build reads (the browser module)"),
        ));
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    std::str::from_utf8(body)
        .map(std::borrow::Cow::Borrowed)
        .map_err(|_| Response::error(ErrorCode::InvalidUtf8, "body is not valid UTF-8"))
}

/// Parses a `POST /classify` JSON body, telling bad JSON from a missing or mistyped field.
fn parse_json(body: &[u8]) -> Result<PredictRequest, Response> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Response::error(ErrorCode::InvalidJson, format!("body is not valid JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(missing_field());
    };
    // Exactly one of the two fields: `{"text": .., "texts": ..}` is ambiguous.
    match (object.get("text"), object.get("texts")) {
        (Some(_), Some(_)) => Err(Response::error(ErrorCode::InvalidField, "send either `text` or `texts`, not both")),
        (None, None) => Err(missing_field()),
        (Some(text), None) => match text.as_str() {
            Some(text) => Ok(PredictRequest::One { text: text.to_owned() }),
            None => Err(Response::error(ErrorCode::InvalidField, "`text` must be a string")),
        },
        (None, Some(texts)) => {
            let texts = texts
                .as_array()
                .and_then(|items| items.iter().map(|t| t.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>())
                .ok_or_else(|| Response::error(ErrorCode::InvalidField, "`texts` must be a list of strings"))?;
            Ok(PredictRequest::Batch { texts })
        }
    }
}

fn missing_field() -> Response {
    Response::error(
        ErrorCode::MissingField,
        r#"body must be a JSON object with `text` (`{"text": "..."}`) or `texts` (`{"texts": ["..."]}`)"#,
    )
}

fn one(classifier: &Classifier, text: &str) -> Response {
    match classifier.classify(text) {
        Ok(prediction) => Response::json(200, &prediction),
        Err(e) => core_error(&e, None),
    }
}

fn batch(classifier: &Classifier, texts: &[String], limits: &Limits) -> Response {
    if texts.is_empty() {
        return Response::error(ErrorCode::EmptyBatch, "`texts` is empty; send at least one text");
    }
    if texts.len() > limits.max_batch {
        return Response::error(
            ErrorCode::BatchTooLarge,
            format!("`texts` has {} texts; the limit is {}", texts.len(), limits.max_batch),
        );
    }
    let mut predictions = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        match classifier.classify(text) {
            Ok(prediction) => predictions.push(prediction),
            Err(e) => return core_error(&e, Some(i)),
        }
    }
    Response::json(200, &BatchPrediction { predictions })
}

/// A core error as an answer: its code (and so its status) is the core's.
fn core_error(error: &Error, index: Option<usize>) -> Response {
    let message = match index {
        Some(i) => format!("`texts[{i}]`: {}", crate::error::chain(error)),
        None => crate::error::chain(error),
    };
    Response::error(error.code(), message)
}

fn model_ref(classifier: &Classifier) -> ModelRef {
    let manifest = classifier.manifest();
    ModelRef { name: manifest.model_name.clone(), version: manifest.model_version.clone() }
}
