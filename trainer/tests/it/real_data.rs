//! The CI check that the real stack_overflow_16k run still meets the accuracy bar.

use edge_classifier::TextEncoder;
use edge_classifier::normalize::Normalization;
use sha2::{Digest, Sha256};
use trainer::config::ModelParams;
use trainer::data::Example;
use trainer::{evaluate, pipeline};

use crate::common::{shared_data, tokenizer_json_ids, train_config};

/// Issue 12's required accuracy on test.csv.gz after training on train.csv.gz (issue 2 asked
/// for 0.905). Training is seeded and single-threaded, so the figure is the same on every run.
const REQUIRED_ACCURACY: f64 = 0.92;

/// Issue 12's bar on the raw-dev questions (HTML bodies, capitals, language names).
const REQUIRED_RAW_DEV_ACCURACY: f64 = 0.78;

#[test]
fn the_16k_train_test_run_meets_the_accuracy_bar() {
    // The shipped defaults, which the command line's defaults are taken from.
    let data = shared_data();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = train_config(
        vec![data.join("train.csv.gz")],
        vec![data.join("test.csv.gz")],
        dir.path().join("bundle"),
        &ModelParams::default(),
    );
    let outcome = pipeline::train(&cfg).expect("trains on the real data");
    let m = &outcome.manifest.metrics;
    eprintln!("16k run: accuracy {:.4}, macro-F1 {:.4}, timings {:?}", m.accuracy, m.macro_f1, outcome.timings);
    assert_eq!(m.examples, 8000);
    assert_eq!(outcome.train_report.used, 8000, "the real set has no bad rows: {:?}", outcome.train_report);
    assert!(m.accuracy >= REQUIRED_ACCURACY, "accuracy {:.4} < {REQUIRED_ACCURACY}", m.accuracy);

    // Issue 12: people name their language. With the names put back where the data set wrote
    // `blank`, the shipped normalisation must do at least as well as on the blanked set (the
    // first normalisation lost 0.05 here: it had learnt `java` as "not java").
    let classifier = pipeline::load_bundle(&dir.path().join("bundle")).expect("the bundle loads");
    let labels = classifier.manifest().labels.clone();
    let (test, _) = evaluate::read_examples(&[data.join("test.csv.gz")], &labels).expect("test set");
    let unblanked_set: Vec<Example> =
        test.iter().map(|e| Example { text: evaluate::unblank(&e.text, &labels[e.label]), label: e.label }).collect();
    assert!(unblanked_set.iter().filter(|e| e.text.contains("java")).count() > 1000, "names were put back");
    let unblanked =
        edge_classifier::metrics::score(&classifier, unblanked_set.iter().map(Example::pair)).expect("scores").accuracy;
    eprintln!("16k run: accuracy with the names put back {unblanked:.4}");
    assert!(unblanked >= m.accuracy, "unblanked accuracy {unblanked:.4} < blanked {:.4}", m.accuracy);

    // And real questions as Stack Overflow stores them (development set, never trained on).
    let raw_dev = data.join("../raw-dev/questions.csv.gz");
    assert!(raw_dev.is_file(), "the raw-dev set is missing at `{}`", raw_dev.display());
    let raw = evaluate::evaluate_paths(&classifier, std::slice::from_ref(&raw_dev)).expect("raw-dev scores");
    eprintln!("16k run: raw-dev accuracy {:.4} on {}", raw.metrics.accuracy, raw.metrics.examples);
    assert_eq!(raw.metrics.examples, 293);
    assert!(
        raw.metrics.accuracy >= REQUIRED_RAW_DEV_ACCURACY,
        "raw-dev accuracy {:.4} < {REQUIRED_RAW_DEV_ACCURACY}",
        raw.metrics.accuracy
    );

    // The core runs its own BPE on its own pieces; `tokenizers` runs the saved tokenizer.json
    // (pre-tokenizer and model). With the real vocabulary, on every question of every set
    // above, whole, both give the same ids.
    let tokenizer = classifier.tokenizer();
    let whole = TextEncoder::new(tokenizer, classifier.normalization(), usize::MAX).expect("encoder");
    let (raw_dev, _) = evaluate::read_examples(&[raw_dev], &labels).expect("raw-dev set");
    let mut compared = 0;
    for e in test.iter().chain(&unblanked_set).chain(&raw_dev) {
        let ids = whole.encode(&e.text).expect("encode").ids;
        let reference = tokenizer_json_ids(tokenizer, classifier.normalization(), &e.text);
        let what: String = e.text.chars().take(60).collect();
        assert_eq!(&ids[1..ids.len() - 1], &reference[..], "ids differ for {what:?}");
        compared += 1;
    }
    assert_eq!(compared, 8000 + 8000 + 293);
}

#[test]
fn unblank_puts_each_questions_own_name_back_also_inside_words() {
    assert_eq!(evaluate::unblank("import blankx.swing.*; in blank", "java"), "import javax.swing.*; in java");
    assert_eq!(evaluate::unblank("blank.net and blank", "csharp"), "c#.net and c#");
}

#[test]
fn every_normalization_gives_the_pinned_output_on_the_real_sets() {
    // A bundle answers bit-identically only while the normalisation it was trained with does
    // not change by a byte. Speeding one up must keep this digest (over every question of the
    // 16k train and test sets and raw-dev, in both forms the unblanked check also feeds), and a
    // deliberate change is a new version, never an edit.
    let data = shared_data();
    let labels: Vec<String> = ModelParams::default().labels;
    let paths = [data.join("train.csv.gz"), data.join("test.csv.gz"), data.join("../raw-dev/questions.csv.gz")];
    let (examples, _) = evaluate::read_examples(&paths, &labels).expect("the real sets");
    assert_eq!(examples.len(), 16_293);
    for (normalization, pinned) in [
        (Normalization::V1, "6ec0e913795be2959a86b0c29a465239535db61e53c848c7c1ced3a5e9eb0c6c"),
        (Normalization::V2, "b3aef550f39f6efa30cf59feb3709604f8adb9660c26a89de99c32531341cdb5"),
    ] {
        let mut hasher = Sha256::new();
        for e in &examples {
            for text in [e.text.clone(), evaluate::unblank(&e.text, &labels[e.label])] {
                let n = normalization.apply(&text);
                hasher.update((n.text.len() as u64).to_le_bytes());
                hasher.update(n.text.as_bytes());
                hasher.update([u8::from(n.truncated), u8::from(n.blank)]);
            }
        }
        let digest = edge_classifier::hex(&hasher.finalize());
        assert_eq!(digest, pinned, "normalisation {} changed its output", normalization.version());
    }
}
