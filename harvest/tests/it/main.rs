//! harvest against recorded real questions (tests/fixtures/README.md says which and from
//! where): the dump streamed in both tag encodings, the API paged through a loopback server
//! replaying its JSON (backoff, quota, errors, malformed pages), and the inbox on a folder and
//! on a real S3 server (moto). Nothing reaches the network.

mod api;
mod dump;
mod inbox;

use std::path::PathBuf;

use serde::Deserialize;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// What the fixtures' README says each question is.
#[derive(Debug, Deserialize)]
struct Expected {
    id: u64,
    tags: Vec<String>,
    title_plain: String,
    creation_unix: i64,
    kind: String,
}

fn expected() -> Vec<Expected> {
    serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).expect("expected.json"))
        .expect("expected.json parses")
}
