//! `service::handle`: every route and error, natively, with no host in the way.

use std::sync::LazyLock;

use edge_classifier::api::{ApiError, BatchPrediction, Health, ModelManifest, Prediction};
use edge_classifier::service::{self, Limits, Request, Response};
use edge_classifier::{BundleFiles, Classifier};

static TINY: LazyLock<Classifier> = LazyLock::new(|| {
    Classifier::load(BundleFiles {
        manifest: include_bytes!("../fixtures/tiny/manifest.json"),
        model: include_bytes!("../fixtures/tiny/model.onnx"),
        tokenizer: include_bytes!("../fixtures/tiny/tokenizer.json"),
    })
    .expect("the golden tiny bundle loads")
});

fn send(method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    service::handle(&TINY, &Request { method, path, content_type, body }, &Limits::default())
}

fn error(response: &Response) -> ApiError {
    assert_eq!(response.content_type, service::JSON);
    serde_json::from_slice(&response.body).expect("an ApiError body")
}

#[test]
fn classify_one_batch_and_plain_text_agree() {
    let text = "how do i print a list in blank";
    let one = send("POST", "/classify", Some("application/json"), br#"{"text": "how do i print a list in blank"}"#);
    assert_eq!(one.status, 200);
    let one: Prediction = serde_json::from_slice(&one.body).expect("a Prediction");
    assert_eq!(one, TINY.classify(text).expect("classify"));

    let plain = send("POST", "/classify", Some("text/plain;charset=utf-8"), text.as_bytes());
    assert_eq!(serde_json::from_slice::<Prediction>(&plain.body).expect("a Prediction"), one);

    let batch = send(
        "POST",
        "/classify?x=1",
        Some("Application/JSON"),
        br#"{"texts": ["how do i print a list in blank", "int main"]}"#,
    );
    assert_eq!(batch.status, 200);
    let batch: BatchPrediction = serde_json::from_slice(&batch.body).expect("a BatchPrediction");
    assert_eq!(batch.predictions.len(), 2);
    assert_eq!(batch.predictions[0], one);
}

#[test]
fn model_and_health() {
    let model = send("GET", "/model", None, b"");
    assert_eq!(model.status, 200);
    let manifest: ModelManifest = serde_json::from_slice(&model.body).expect("a manifest");
    assert_eq!(&manifest, TINY.manifest());
    let health = send("GET", "/health", None, b"");
    let health: Health = serde_json::from_slice(&health.body).expect("a Health");
    assert_eq!((health.status.as_str(), health.model.name.as_str()), ("ok", TINY.manifest().model_name.as_str()));
}

/// Method, path, content type, body; then the expected status and code.
type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a [u8], u16, &'a str);

#[test]
fn every_error_has_its_status_and_code() {
    let json = Some("application/json");
    let limits = Limits::default();
    let big = vec![b'a'; limits.max_body_bytes + 1];
    let cases: &[Case<'_>] = &[
        ("POST", "/classify", json, b"{", 400, "invalid_json"),
        ("POST", "/classify", json, b"{\"txt\": \"a\"}", 400, "missing_field"),
        ("POST", "/classify", json, b"\"a\"", 400, "missing_field"),
        ("POST", "/classify", json, b"{\"text\": null}", 400, "invalid_field"),
        ("POST", "/classify", json, b"{\"texts\": \"a\"}", 400, "invalid_field"),
        ("POST", "/classify", json, b"{\"text\": \"\\n\\t \"}", 400, "empty_text"),
        ("POST", "/classify", json, b"{\"texts\": []}", 400, "empty_batch"),
        ("POST", "/classify", Some("text/plain"), b"\xc3\x28", 400, "invalid_utf8"),
        ("POST", "/classify", Some("text/plain; charset=utf-8"), b"caf\xe9", 400, "invalid_utf8"),
        // A lone high surrogate: not UTF-16.
        ("POST", "/classify", Some("text/plain; charset=utf-16le"), b"\x00\xd8a\x00", 400, "invalid_encoding"),
        ("POST", "/classify", Some("text/plain; charset=klingon"), b"a", 415, "unsupported_charset"),
        ("POST", "/classify", Some("application/json; charset=utf-16"), b"{}", 415, "unsupported_charset"),
        ("POST", "/classify", Some("text/plain"), &big, 413, "body_too_large"),
        ("POST", "/classify", Some("text/html"), b"a", 415, "unsupported_media_type"),
        ("POST", "/classify", None, b"a", 415, "unsupported_media_type"),
        ("GET", "/classify", None, b"", 405, "method_not_allowed"),
        ("POST", "/health", None, b"", 405, "method_not_allowed"),
        ("GET", "/nope", None, b"", 404, "not_found"),
    ];
    for &(method, path, content_type, body, status, code) in cases {
        let response = send(method, path, content_type, body);
        assert_eq!(response.status, status, "{method} {path} {content_type:?}");
        assert_eq!(error(&response).error.code.as_str(), code, "{method} {path} {content_type:?}");
        assert_eq!(response.allow.is_some(), status == 405);
    }
}

#[test]
fn a_declared_charset_or_a_byte_order_mark_is_honoured_and_the_answer_is_the_utf8_one() {
    let question = "Comment déclarer une List<String> en Java? « café »";
    let utf8 = prediction(&send("POST", "/classify", Some("text/plain"), question.as_bytes()));
    // ISO-8859-1 is windows-1252 to the Encoding Standard (and to browsers).
    let latin1: Vec<u8> = question.chars().map(|c| u8::try_from(u32::from(c)).expect("latin-1")).collect();
    let utf16le: Vec<u8> = question.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let utf16be_bom: Vec<u8> =
        [0xFE, 0xFF].into_iter().chain(question.encode_utf16().flat_map(u16::to_be_bytes)).collect();
    let utf8_bom: Vec<u8> = [0xEF, 0xBB, 0xBF].iter().chain(question.as_bytes()).copied().collect();
    for (content_type, body) in [
        ("text/plain; charset=iso-8859-1", &latin1),
        ("text/plain; charset=\"windows-1252\"", &latin1),
        ("text/plain;charset=Latin1", &latin1),
        ("text/plain; charset=utf-16le", &utf16le),
        // The byte-order mark wins over no charset and over a wrong one, as browsers decode.
        ("text/plain", &utf16be_bom),
        ("text/plain; charset=iso-8859-1", &utf16be_bom),
        ("text/plain", &utf8_bom),
    ] {
        let response = send("POST", "/classify", Some(content_type), body);
        assert_eq!(response.status, 200, "{content_type}: {}", String::from_utf8_lossy(&response.body));
        assert_eq!(prediction(&response), utf8, "{content_type}");
    }
}

fn prediction(response: &Response) -> Prediction {
    serde_json::from_slice(&response.body).expect("a prediction")
}

#[test]
fn batch_limit_is_enforced() {
    let texts = vec!["a question"; Limits::default().max_batch + 1];
    let body = serde_json::to_vec(&serde_json::json!({ "texts": texts })).expect("json");
    let response = send("POST", "/classify", Some("application/json"), &body);
    assert_eq!((response.status, error(&response).error.code.as_str()), (400, "batch_too_large"));
}

#[test]
fn limits_come_from_configuration_strings() {
    assert_eq!(Limits::with_max_body_bytes(None), Ok(Limits::default()));
    assert_eq!(Limits::with_max_body_bytes(Some(" 1024 ")).map(|l| l.max_body_bytes), Ok(1024));
    assert!(Limits::with_max_body_bytes(Some("64k")).is_err());
}
