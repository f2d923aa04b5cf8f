//! The manifest's `normalization` decides what the core does to a request's text: a bundle
//! without the field keeps version 1 (the golden answers in the unit tests pin that), and a
//! bundle that names version 2 reads HTML, Markdown and plain text of one question alike.

use edge_classifier::api::ModelManifest;
use edge_classifier::normalize::Normalization;
use edge_classifier::{BundleFiles, Classifier};

const MANIFEST: &[u8] = include_bytes!("../fixtures/tiny/manifest.json");
const MODEL: &[u8] = include_bytes!("../fixtures/tiny/model.onnx");
const TOKENIZER: &[u8] = include_bytes!("../fixtures/tiny/tokenizer.json");

/// The golden graph and tokenizer under a manifest that says format 2, `normalization`.
fn tiny_with(normalization: u32) -> Classifier {
    let mut m: ModelManifest = serde_json::from_slice(MANIFEST).expect("golden manifest");
    (m.format_version, m.normalization) = (2, Some(normalization));
    let manifest = serde_json::to_vec(&m).expect("json");
    Classifier::load(BundleFiles { manifest: &manifest, model: MODEL, tokenizer: TOKENIZER }).expect("loads")
}

/// One question in the three forms people paste: Stack Overflow's stored HTML, Markdown, and
/// plain text with its language named.
const FORMS: [(&str, &str, &str); 2] = [
    (
        "<p>How do I read a file line by line in <strong>Python</strong>?</p>\n\n<pre><code>with open('a.txt') as fh:\n    for line in fh:\n        print(line)\n</code></pre>",
        "How do I read a file line by line in **Python**?\n\n```python\nwith open('a.txt') as fh:\n    for line in fh:\n        print(line)\n```\n",
        "How do I read a file line by line in Python?\n\nwith open('a.txt') as fh:\n    for line in fh:\n        print(line)\n",
    ),
    (
        "<p>Why does <code>list.get(0)</code> throw in Java?</p>\n\n<pre><code>List&lt;String&gt; list = new ArrayList&lt;&gt;();\nSystem.out.println(list.get(0));\n</code></pre>",
        "Why does `list.get(0)` throw in Java?\n\n```java\nList<String> list = new ArrayList<>();\nSystem.out.println(list.get(0));\n```\n",
        "Why does list.get(0) throw in Java?\n\nList<String> list = new ArrayList<>();\nSystem.out.println(list.get(0));\n",
    ),
];

/// A golden bundle from `tests/fixtures`, loaded.
macro_rules! golden {
    ($dir:literal) => {
        Classifier::load(BundleFiles {
            manifest: include_bytes!(concat!("../fixtures/", $dir, "/manifest.json")),
            model: include_bytes!(concat!("../fixtures/", $dir, "/model.onnx")),
            tokenizer: include_bytes!(concat!("../fixtures/", $dir, "/tokenizer.json")),
        })
        .expect(concat!($dir, " loads"))
    };
}

#[test]
fn version_2_gives_html_markdown_and_plain_text_the_same_label() {
    // On the golden graph under a manifest that names version 2, and on the bundles trained with it.
    // `tiny-counted` is format 3, `tiny-presence` format 4, `tiny-calibrated` the current (5).
    for c in [tiny_with(2), golden!("tiny-counted"), golden!("tiny-presence"), golden!("tiny-calibrated")] {
        assert_eq!(c.normalization(), Normalization::V2);
        same_label_in_every_form(&c);
    }
}

fn same_label_in_every_form(c: &Classifier) {
    for (html, markdown, plain) in FORMS {
        let label = |t: &str| c.classify(t).expect("classify").label;
        assert_eq!(label(html), label(plain), "html vs plain: {plain:?}");
        assert_eq!(label(markdown), label(plain), "markdown vs plain: {plain:?}");
        // The HTML form is the plain text plus tags and entities: nothing of it may reach the
        // tokenizer, so the ids themselves are equal.
        assert_eq!(c.encode(html).expect("html").ids, c.encode(plain).expect("plain").ids, "{plain:?}");
    }
}

#[test]
fn a_bundle_without_the_field_still_reads_markup_as_version_1_did() {
    // The golden manifest has no `normalization`: tags reach the tokenizer, as they always did.
    let golden =
        Classifier::load(BundleFiles { manifest: MANIFEST, model: MODEL, tokenizer: TOKENIZER }).expect("loads");
    assert_eq!(golden.normalization(), Normalization::V1);
    let (html, _, plain) = FORMS[0];
    assert_ne!(golden.encode(html).expect("html").ids, golden.encode(plain).expect("plain").ids);
    assert_eq!(golden.encode(html).expect("v1").ids, tiny_with(1).encode(html).expect("v1 named").ids);
}
