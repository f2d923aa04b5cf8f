//! Writes a fixture bundle's `expected.json`: the answers of the core to the golden texts
//! (`tests/fixtures/golden-texts.json`), which the core's tests then hold it to.
//!
//!   cargo run -p edge-classifier --example golden -- edge-classifier/tests/fixtures/tiny
//!
//! `scripts/regenerate-golden.sh` runs it after retraining the tiny bundle; review the diff of
//! `expected.json` before committing it. The tests never write it.

use std::path::PathBuf;
use std::process::ExitCode;

use edge_classifier::Classifier;
use edge_classifier::api::Prediction;

fn main() -> ExitCode {
    match run() {
        Ok(path) => {
            eprintln!("wrote `{}`", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<PathBuf, String> {
    let dir = std::env::args_os().nth(1).map(PathBuf::from).ok_or("usage: golden BUNDLE_DIR")?;
    let bundle = edge_classifier::bundle::read_verified_dir(&dir).map_err(|e| e.to_string())?;
    let classifier = Classifier::load(bundle.files()).map_err(|e| e.to_string())?;
    let texts_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden-texts.json");
    let texts: Vec<String> =
        serde_json::from_slice(&std::fs::read(texts_path).map_err(|e| format!("`{texts_path}`: {e}"))?)
            .map_err(|e| format!("`{texts_path}`: {e}"))?;
    let answers = texts
        .iter()
        .map(|t| classifier.classify(t))
        .collect::<Result<Vec<Prediction>, _>>()
        .map_err(|e| e.to_string())?;
    let out = dir.join("expected.json");
    let json = serde_json::to_vec_pretty(&answers).map_err(|e| e.to_string())?;
    std::fs::write(&out, json).map_err(|e| format!("cannot write `{}`: {e}", out.display()))?;
    Ok(out)
}
