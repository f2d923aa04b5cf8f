//! The native core's answers and times for a list of texts, as one JSON object: what the
//! browser tests and `scripts/bench-web.sh` compare the web module against.
//!
//!   cargo run --release -p edge-classifier --example classify_json -- BUNDLE_DIR < texts.json
//!
//! stdin is a JSON array of strings. stdout is `{"predictions": [...], "classify_ms": [...]}`:
//! each text's `POST /classify` answer (a `Prediction`, or the edge API's error body for a text
//! the core refuses) and the time of that one classify in milliseconds. The texts are
//! classified in order, once each, after the same warm-up the page gets (one classify of the
//! first text), so the times are first-sight times as in the browser.

use std::io::Read;
use std::process::ExitCode;
use std::time::Instant;

use edge_classifier::Classifier;
use edge_classifier::service::{self, Limits};

fn main() -> ExitCode {
    match run() {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, String> {
    let dir = std::env::args_os().nth(1).ok_or("usage: classify_json BUNDLE_DIR < texts.json")?;
    let bundle = edge_classifier::bundle::read_verified_dir(dir.as_ref()).map_err(|e| e.to_string())?;
    let classifier = Classifier::load(bundle.files()).map_err(|e| e.to_string())?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| format!("cannot read stdin: {e}"))?;
    let texts: Vec<String> =
        serde_json::from_str(&input).map_err(|e| format!("stdin is not a JSON array of strings: {e}"))?;
    // The same path the web module answers through (`service::handle`, `text/plain`), so an
    // error body is compared too, not only predictions.
    let answer = |text: &str| {
        let request = service::Request {
            method: "POST",
            path: "/classify",
            content_type: Some("text/plain"),
            body: text.as_bytes(),
        };
        service::handle(&classifier, &request, &Limits::default())
    };
    if let Some(first) = texts.first() {
        answer(first);
    }
    let mut predictions = Vec::with_capacity(texts.len());
    let mut times = Vec::with_capacity(texts.len());
    for text in &texts {
        let start = Instant::now();
        let response = answer(text);
        times.push(start.elapsed().as_secs_f64() * 1e3);
        let body: serde_json::Value =
            serde_json::from_slice(&response.body).map_err(|e| format!("answer is not JSON: {e}"))?;
        predictions.push(body);
    }
    serde_json::to_string(&serde_json::json!({ "predictions": predictions, "classify_ms": times }))
        .map_err(|e| e.to_string())
}
