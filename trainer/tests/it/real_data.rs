//! The CI check that the real stack_overflow_16k run still meets the accuracy bar.

use std::path::Path;

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

    // Issue 27: the HTML, Markdown and plain forms of raw-dev's real questions, and where the
    // explanation points in each.
    forms_agree_and_explanations_point_at_the_text(&classifier, &data.join("../raw-dev/questions.csv.gz"));

    // The core runs its own BPE on its own pieces; `tokenizers` runs the saved tokenizer.json
    // (pre-tokenizer and model). With the real vocabulary, on every question of every set
    // above, whole, both give the same ids.
    let json = std::fs::read(dir.path().join("bundle").join(edge_classifier::api::files::TOKENIZER)).expect("read");
    let tokenizer = &tokenizers::Tokenizer::from_bytes(&json).expect("tokenizers loads it");
    let whole = TextEncoder::new(&json, classifier.normalization(), usize::MAX).expect("encoder");
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

/// Each raw-dev question as Stack Overflow stores it (HTML), as its author would have typed it
/// (Markdown) and as read off the page (plain), written by `tools/html_forms.py` with Python's
/// own HTML parser, not by the normaliser under test.
fn forms_agree_and_explanations_point_at_the_text(classifier: &edge_classifier::Classifier, raw_dev: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/html_forms.py");
    let out = std::process::Command::new("python3").arg(&script).arg(raw_dev).output().expect("python3 runs");
    assert!(out.status.success(), "html_forms.py: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("json"))
        .collect();
    assert_eq!(rows.len(), 293);
    let (mut differ, mut spans) = (Vec::new(), 0);
    for (i, row) in rows.iter().enumerate() {
        let answers: Vec<_> = ["html", "markdown", "plain"]
            .iter()
            .map(|form| {
                let text = row[form].as_str().expect("a text");
                let p = classifier.classify(text).expect("classify");
                // Every span of every explanation token is on char boundaries of the text as
                // sent, and reads (normalised alone) as the token.
                for t in &p.explanation {
                    assert_eq!(t.spans.len(), t.count as usize, "#{i} {form}: {:?}", t.token);
                    for &[start, end] in &t.spans {
                        let written = text.get(start as usize..end as usize).expect("a span on char boundaries");
                        // Alone, a span can hold half of some markup: a closing tag without its
                        // opening one (`};\n</code></pre>`), which makes it plain text, or the
                        // closing backtick of inline code (`>`. `): read it also without those.
                        let reads = [
                            written.to_string(),
                            without_tags(written, ""),
                            without_tags(written, "\n"),
                            written.replace('`', ""),
                        ]
                        .map(|w| classifier.normalization().apply(&w).text);
                        assert!(
                            reads.iter().any(|r| r.contains(&t.token)),
                            "#{i} {form}: {:?} at {written:?} reads {reads:?}",
                            t.token
                        );
                        spans += 1;
                    }
                }
                p
            })
            .collect();
        if answers.iter().any(|p| p.label != answers[0].label) {
            differ.push(i);
            // The forms differ in layout (line breaks around code blocks, list marks): on a near
            // tie that can move the answer, but only where the answer says it is unsure.
            assert!(
                answers[0].unsure.is_some(),
                "#{i}: html {} (sure), markdown {}, plain {}",
                answers[0].label,
                answers[1].label,
                answers[2].label
            );
        }
    }
    eprintln!(
        "16k run: raw-dev forms: {} of 293 differ in label (all unsure in HTML): {differ:?}; {spans} spans checked",
        differ.len()
    );
}

/// `text` with every `<…>` replaced by `with`.
fn without_tags(text: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else { break };
        out.push_str(&rest[..open]);
        out.push_str(with);
        rest = &rest[open + close + 1..];
    }
    out + rest
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
        (Normalization::V3, "472dfbf04e4795963d8b67aefb0039f69645d6b3639403a42bc9f285c4c167b2"),
    ] {
        let mut hasher = Sha256::new();
        for e in &examples {
            for text in [e.text.clone(), evaluate::unblank(&e.text, &labels[e.label])] {
                let n = normalization.apply(&text);
                // What the core serves from (with the origins of each part) is what the trainer reads.
                assert_eq!(normalization.trace(&text).0, n);
                hasher.update((n.text.len() as u64).to_le_bytes());
                hasher.update(n.text.as_bytes());
                hasher.update([u8::from(n.truncated), u8::from(n.blank)]);
            }
        }
        let digest = edge_classifier::hex(&hasher.finalize());
        assert_eq!(digest, pinned, "normalisation {} changed its output", normalization.version());
    }
}
