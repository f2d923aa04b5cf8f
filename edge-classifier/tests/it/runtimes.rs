//! The interpreter (the browser module's runtime, `Runtime::Interpreter`) against tract on every
//! golden bundle, each format and graph shape the core still reads: the same labels, unsure
//! flags, explained tokens and spans, probabilities and weights within 1e-6.

use edge_classifier::api::Prediction;
use edge_classifier::{BundleFiles, Classifier, Hashes, Runtime};

/// Both runtimes' classifiers of a golden bundle from `tests/fixtures`.
macro_rules! both {
    ($dir:literal) => {{
        let files = BundleFiles {
            manifest: include_bytes!(concat!("../fixtures/", $dir, "/manifest.json")),
            model: include_bytes!(concat!("../fixtures/", $dir, "/model.onnx")),
            tokenizer: include_bytes!(concat!("../fixtures/", $dir, "/tokenizer.json")),
        };
        (
            $dir,
            Classifier::load_with(files, Runtime::Tract, Hashes::Computed).expect(concat!($dir, " loads in tract")),
            Classifier::load_with(files, Runtime::Interpreter, Hashes::Computed)
                .expect(concat!($dir, " loads in the interpreter")),
        )
    }};
}

fn texts() -> Vec<String> {
    let mut texts: Vec<String> =
        serde_json::from_slice(include_bytes!("../fixtures/golden-texts.json")).expect("golden texts parse");
    texts.extend([
        "x".repeat(60_000),
        "System.out.println(x); Console.WriteLine(x); print(x); console.log(x);".repeat(40),
        "<p>Map&lt;String, List&lt;Integer&gt;&gt; m;</p>\n\n<pre><code>m.get(\"a\");\n</code></pre>".into(),
    ]);
    texts
}

fn same(dir: &str, text: &str, a: &Prediction, b: &Prediction) {
    let at = format!("{dir}, {:?}", text.chars().take(40).collect::<String>());
    assert_eq!(a.label, b.label, "{at}");
    assert_eq!(a.unsure, b.unsure, "{at}");
    assert_eq!(a.truncated, b.truncated, "{at}");
    for (x, y) in a.probabilities.iter().zip(&b.probabilities) {
        assert_eq!(x.label, y.label, "{at}");
        assert!((x.probability - y.probability).abs() <= 1e-6, "{at}: {} vs {}", x.probability, y.probability);
    }
    assert_eq!(a.explanation.len(), b.explanation.len(), "{at}");
    for (x, y) in a.explanation.iter().zip(&b.explanation) {
        assert_eq!((&x.token, x.count, &x.spans), (&y.token, y.count, &y.spans), "{at}");
        assert!((x.weight - y.weight).abs() <= 1e-6, "{at}: {} weighs {} vs {}", x.token, x.weight, y.weight);
    }
}

#[test]
fn the_interpreter_answers_as_tract_on_every_golden_bundle() {
    let bundles = [
        both!("tiny"),
        both!("tiny-legacy"),
        both!("tiny-feature-scales"),
        both!("tiny-counted"),
        both!("tiny-presence"),
        both!("tiny-calibrated"),
    ];
    let texts = texts();
    for (dir, tract, interpreted) in &bundles {
        for t in &texts {
            let (a, b) = (tract.classify(t).expect("tract"), interpreted.classify(t).expect("interpreter"));
            same(dir, t, &a, &b);
        }
        // The raw graph outputs too, per token and pair.
        let ids = tract.encode(&texts[0]).expect("encode").ids;
        let (a, b) = (tract.run(&ids).expect("tract"), interpreted.run(&ids).expect("interpreter"));
        let close = |x: &[f32], y: &[f32]| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| (p - q).abs() <= 1e-6);
        assert!(close(&a.probabilities, &b.probabilities), "{dir}");
        assert!(close(&a.token_contributions, &b.token_contributions), "{dir}");
        assert!(close(&a.pair_contributions, &b.pair_contributions), "{dir}");
    }
}

#[test]
fn a_model_the_interpreter_cannot_run_is_refused_by_name() {
    let manifest = include_bytes!("../fixtures/tiny-presence/manifest.json");
    let tokenizer = include_bytes!("../fixtures/tiny-presence/tokenizer.json");
    let model = include_bytes!("../fixtures/tiny-presence/model.onnx");
    // The first `Gather` spelt as another operator, same length (so the protobuf stays valid)
    // and the manifest's digest and size updated to match.
    let pos = model.windows(6).position(|w| w == b"Gather").expect("a Gather node");
    let mut other = model.to_vec();
    other[pos..pos + 6].copy_from_slice(b"Gelu_x");
    let mut m: serde_json::Value = serde_json::from_slice(manifest).expect("manifest");
    m["files"]["model.onnx"]["sha256"] = edge_classifier::sha256_hex(&other).into();
    let manifest = serde_json::to_vec(&m).expect("json");
    let err = Classifier::load_with(
        BundleFiles { manifest: &manifest, model: &other, tokenizer },
        Runtime::Interpreter,
        Hashes::Computed,
    )
    .expect_err("an operator it does not run");
    let message = edge_classifier::chain(&err);
    assert!(message.contains("`Gelu_x` is not one the interpreter runs"), "{message}");
    assert!(message.contains("node `"), "names the node: {message}");

    let truncated = &model[..model.len() / 2];
    let mut m: serde_json::Value =
        serde_json::from_slice(include_bytes!("../fixtures/tiny-presence/manifest.json")).expect("manifest");
    m["files"]["model.onnx"]["sha256"] = edge_classifier::sha256_hex(truncated).into();
    m["files"]["model.onnx"]["bytes"] = truncated.len().into();
    let manifest = serde_json::to_vec(&m).expect("json");
    let err = Classifier::load_with(
        BundleFiles { manifest: &manifest, model: truncated, tokenizer },
        Runtime::Interpreter,
        Hashes::Computed,
    )
    .expect_err("half a model");
    assert!(edge_classifier::chain(&err).contains("not an ONNX model"), "{}", edge_classifier::chain(&err));
}
