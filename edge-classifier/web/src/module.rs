//! The wasm side: the `WebClassifier` class JavaScript sees.

use edge_classifier::api::{ApiError, ErrorCode, files};
use edge_classifier::service::{self, Limits};
use edge_classifier::{BundleFiles, Classifier, Hashes, Runtime};
use wasm_bindgen::prelude::*;

/// A loaded, verified bundle, ready to classify (`new` is not exported: use `load`).
#[wasm_bindgen]
pub struct WebClassifier {
    classifier: Classifier,
    manifest_json: String,
}

#[wasm_bindgen]
impl WebClassifier {
    /// Verifies and loads a bundle from the bytes of its `manifest.json`, `model.onnx` and
    /// `tokenizer.json`. Throws an `Error` with `code` `invalid_bundle` and a message naming
    /// the file that does not match its manifest.
    ///
    /// `model_sha256` and `tokenizer_sha256`, when given, are the hex sha256 the caller
    /// computed of exactly these bytes (the worker, with WebCrypto): the core compares them
    /// with the manifest instead of hashing again. Without them the core hashes.
    pub fn load(
        manifest: &[u8],
        model: &[u8],
        tokenizer: &[u8],
        model_sha256: Option<String>,
        tokenizer_sha256: Option<String>,
    ) -> Result<WebClassifier, JsValue> {
        let hashes = match (&model_sha256, &tokenizer_sha256) {
            (Some(model), Some(tokenizer)) => Hashes::Given { model, tokenizer },
            (None, None) => Hashes::Computed,
            _ => return Err(js_error(ErrorCode::Internal, "give both digests (model, tokenizer) or neither")),
        };
        let classifier = Classifier::load_with(BundleFiles { manifest, model, tokenizer }, Runtime::DEFAULT, hashes)
            .map_err(|e| js_error(e.code(), &edge_classifier::chain(&e)))?;
        // The page shows the manifest (version, accuracy, date): as the core parsed it, so it
        // cannot disagree with the model that answers.
        let manifest_json = serde_json::to_string(classifier.manifest())
            .map_err(|e| js_error(ErrorCode::Internal, &format!("failed to encode `{}`: {e}", files::MANIFEST)))?;
        Ok(WebClassifier { classifier, manifest_json })
    }

    /// Classifies `text`: the JSON of the `Prediction` that `POST /classify` answers with
    /// (label, every probability, the explanation tokens, model name and version). Throws an
    /// `Error` with the edge API's `code` (e.g. `empty_text`, `body_too_large`).
    pub fn classify(&self, text: &str) -> Result<String, JsValue> {
        let request = service::Request {
            method: "POST",
            path: "/classify",
            content_type: Some("text/plain"),
            body: text.as_bytes(),
        };
        let answer = service::handle(&self.classifier, &request, &Limits::default());
        let body = String::from_utf8(answer.body)
            .map_err(|e| js_error(ErrorCode::Internal, &format!("the answer is not UTF-8: {e}")))?;
        if answer.status == 200 {
            return Ok(body);
        }
        Err(match serde_json::from_str::<ApiError>(&body) {
            Ok(api) => js_error(api.error.code, &api.error.message),
            Err(_) => js_error(ErrorCode::Internal, &body),
        })
    }

    /// The bundle's `manifest.json`, as JSON.
    pub fn manifest(&self) -> String {
        self.manifest_json.clone()
    }
}

/// A JavaScript `Error` carrying the edge API's `code` and the status the edge would answer
/// with it (the code sets the status, on every transport).
fn js_error(code: ErrorCode, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    // Setting a property on a fresh plain object cannot fail.
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.as_str().into());
    let _ = js_sys::Reflect::set(&error, &"status".into(), &code.status().into());
    error.into()
}
