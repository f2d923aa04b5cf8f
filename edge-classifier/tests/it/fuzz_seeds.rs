//! The fuzz target's seeds, and its corpus when one exists here, replayed natively through the
//! target's own decoding and checks (`edge-classifier/fuzz/src/case.rs`) on the golden tiny
//! bundle: what the fuzzer found once stays fixed, without libFuzzer or nightly.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use edge_classifier::Classifier;
use edge_classifier::bundle::read_verified_dir;

#[path = "../../fuzz/src/case.rs"]
mod case;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny");

static TINY: LazyLock<Classifier> = LazyLock::new(|| {
    let bundle = read_verified_dir(Path::new(FIXTURE)).unwrap_or_else(|e| panic!("{e}"));
    Classifier::load(bundle.files()).expect("the golden tiny bundle loads")
});

/// The files of `dir`, in name order; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> =
        entries.map(|e| e.expect("a directory entry").path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Replays every input of `dir` and returns the failures, each naming its file.
fn replay(dir: &Path) -> (usize, Vec<String>) {
    let files = inputs(dir);
    let failures = files
        .iter()
        .filter_map(|path| {
            let data = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()));
            case::check(&TINY, &data).err().map(|e| format!("`{}`: {e}", path.display()))
        })
        .collect();
    (files.len(), failures)
}

#[test]
fn every_fuzz_seed_gets_a_well_formed_answer() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let (count, failures) = replay(&seeds);
    assert!(count >= 8, "only {count} seeds in `{}`", seeds.display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_shipped_fuzz_corpus_gets_well_formed_answers() {
    // A minimised corpus from a libFuzzer run (scripts/fuzz-edge.sh, then `-merge=1` into
    // fuzz/corpus/service; docs/edge.md says how), kept in git so every clone replays it.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/service");
    let (count, failures) = replay(&corpus);
    assert!(count >= 100, "only {count} inputs in `{}`: the shipped corpus is missing", corpus.display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_local_fuzz_corpus_gets_well_formed_answers() {
    // Grown by scripts/fuzz-edge.sh and kept out of git; absent on a fresh clone (the shipped
    // corpus above is what every clone replays).
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/target/corpus/service");
    let (count, failures) = replay(&corpus);
    eprintln!("replayed {count} corpus inputs from `{}`", corpus.display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
