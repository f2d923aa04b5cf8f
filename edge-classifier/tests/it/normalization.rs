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

#[test]
fn version_3_reads_the_forms_alike_and_keeps_plain_texts_generics() {
    let c = tiny_with(3);
    assert_eq!(c.normalization(), Normalization::V3);
    same_label_in_every_form(&c);
    // Version 2 made this whole text HTML for its `<br>` and lost the generics; 3 keeps them.
    let code = r#"Map<String, List<Integer>> m; // "<br>""#;
    let v2 = tiny_with(2).encode(code).expect("v2").ids;
    let v3 = c.encode(code).expect("v3").ids;
    assert!(v3.len() > v2.len() + 4, "v3 {} ids, v2 {}", v3.len(), v2.len());
}

#[test]
fn explanations_point_at_the_words_people_wrote() {
    // Each token of the explanation comes with where it occurs in the text as sent: the
    // spans' text, normalised alone, is that token (a name as `blank`, an entity decoded).
    let texts = [
        "<p>Why does <code>list.get(0)</code> throw in Java?</p>\n\n<pre><code>List&lt;String&gt; list = new ArrayList&lt;&gt;();\r\nSystem.out.println(list.get(0));\n</code></pre>",
        "How do I read a file line by line in **Python**?\n\n```python\nwith open('a.txt') as fh:\n    print(line)\n```\n",
        "Ünïcode façade: console.log(`${x}`) — and in C#, Console.WriteLine(x); İ",
    ];
    for c in [tiny_with(3), golden!("tiny-calibrated"), tiny_with(1)] {
        for text in texts {
            let p = c.classify(text).expect("classify");
            assert!(!p.explanation.is_empty());
            for t in &p.explanation {
                assert_eq!(t.spans.len(), t.count as usize, "{:?} in {text:?}", t.token);
                for &[start, end] in &t.spans {
                    let written = text.get(start as usize..end as usize).expect("a span on char boundaries");
                    let read = c.normalization().apply(written).text;
                    assert!(read.contains(&t.token), "{:?} at {written:?} reads {read:?}", t.token);
                }
                // In order, and never overlapping one another.
                assert!(t.spans.windows(2).all(|w| w[0][1] <= w[1][0]), "{:?}", t.spans);
            }
        }
    }
    // The name the model reads as `blank` is highlighted where the person wrote it.
    let p = tiny_with(3).classify("Why does Java throw here? Java, java and JAVA").expect("classify");
    let blank = p.explanation.iter().find(|t| t.token == "blank").expect("`blank` decides this text");
    let text = "Why does Java throw here? Java, java and JAVA";
    let written: Vec<&str> = blank.spans.iter().map(|&[s, e]| &text[s as usize..e as usize]).collect();
    assert_eq!(written, ["Java", "Java", "java", "JAVA"]);
}
