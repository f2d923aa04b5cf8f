//! Loading a bundle and running it.

use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;
use tract_onnx::prelude::*;

use crate::api::{
    LabelProbability, MANIFEST_FORMAT_VERSION, ModelManifest, ModelRef, Prediction, files,
};
use crate::normalize::{is_blank_given, normalize, pieces};
use crate::piece_cache::{self, PieceCache};
use crate::{EXPLANATION_TOP_K, Error, explain};

/// The special token the core puts before a text's tokens.
pub const BOS_TOKEN: &str = "[BOS]";
/// The special token the core puts after a text's tokens.
pub const EOS_TOKEN: &str = "[EOS]";
/// The token for anything the vocabulary lacks.
pub const UNK_TOKEN: &str = "[UNK]";

/// The three files of a bundle, as bytes (the core does no I/O).
#[derive(Debug, Clone, Copy)]
pub struct BundleFiles<'a> {
    /// `manifest.json`
    pub manifest: &'a [u8],
    /// `model.onnx`
    pub model: &'a [u8],
    /// `tokenizer.json`
    pub tokenizer: &'a [u8],
}

/// The three files of a bundle, owned: what a native host reads from a bundle directory.
#[derive(Debug, Clone)]
pub struct OwnedBundle {
    /// `manifest.json`
    pub manifest: Vec<u8>,
    /// `model.onnx`
    pub model: Vec<u8>,
    /// `tokenizer.json`
    pub tokenizer: Vec<u8>,
}

impl OwnedBundle {
    /// Reads the three files the core needs from the bundle directory `dir`; the error names
    /// the file. Classifying never touches a file: only native hosts (the trainer, the tests,
    /// the fuzz target) call this, so that they all read a bundle one way.
    pub fn read_dir(dir: &std::path::Path) -> std::io::Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| {
                let message = format!("cannot read bundle file `{}`: {e}", path.display());
                std::io::Error::new(e.kind(), message)
            })
        };
        Ok(Self {
            manifest: read(files::MANIFEST)?,
            model: read(files::MODEL)?,
            tokenizer: read(files::TOKENIZER)?,
        })
    }

    /// The bytes as [`Classifier::load`] takes them.
    pub fn files(&self) -> BundleFiles<'_> {
        BundleFiles { manifest: &self.manifest, model: &self.model, tokenizer: &self.tokenizer }
    }
}

/// A text as the graph reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids: `[BOS] tokens… [EOS]`, at most `max_tokens` of them.
    pub ids: Vec<i64>,
    /// True when the text was cut (by characters or by tokens).
    pub truncated: bool,
}

/// The graph's raw outputs for one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// One probability per label, in manifest order.
    pub probabilities: Vec<f32>,
    /// `[n × labels]` row-major: each token's contribution to each label's logit.
    pub token_contributions: Vec<f32>,
    /// `[(n - 1) × labels]` row-major: each adjacent pair's contribution.
    pub pair_contributions: Vec<f32>,
}

type Runnable = Arc<TypedRunnableModel>;

/// A loaded, verified bundle, ready to classify. Loading parses and optimises the graph once;
/// classifying reuses it, so hold on to a `Classifier` for as long as you serve.
#[derive(Debug)]
pub struct Classifier {
    manifest: ModelManifest,
    tokenizer: Tokenizer,
    model: Runnable,
    /// A run's scratch state, kept between runs: building one allocates a slot per node.
    /// Whoever finds it taken builds their own, so concurrent callers never wait on each other.
    state: Mutex<Option<TypedSimpleState>>,
    bos: i64,
    eos: i64,
    pieces: PieceCache,
}

impl Classifier {
    /// Verifies the bundle (format version, every file's sha256, labels, the graph's output
    /// shape) and prepares it to run.
    pub fn load(files: BundleFiles<'_>) -> Result<Self, Error> {
        let manifest: ModelManifest =
            serde_json::from_slice(files.manifest).map_err(Error::ManifestInvalid)?;
        if manifest.format_version != MANIFEST_FORMAT_VERSION {
            return Err(Error::UnsupportedFormat {
                found: manifest.format_version,
                expected: MANIFEST_FORMAT_VERSION,
            });
        }
        verify_digest(&manifest, files::MODEL, files.model)?;
        verify_digest(&manifest, files::TOKENIZER, files.tokenizer)?;
        check_labels(&manifest.labels)?;
        if manifest.graph.max_tokens < 2 {
            return Err(Error::BadLabels(format!(
                "graph max_tokens {} leaves no room for [BOS] and [EOS]",
                manifest.graph.max_tokens
            )));
        }

        let tokenizer =
            Tokenizer::from_bytes(files.tokenizer).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let special = |t: &'static str| {
            tokenizer.token_to_id(t).map(i64::from).ok_or(Error::MissingSpecialToken(t))
        };
        let (bos, eos) = (special(BOS_TOKEN)?, special(EOS_TOKEN)?);

        let model = load_graph(files.model)?;
        let classifier = Self {
            manifest,
            tokenizer,
            model,
            state: Mutex::new(None),
            bos,
            eos,
            pieces: PieceCache::default(),
        };
        // One run on the shortest input proves the graph answers with one probability per
        // label before anything is served from it.
        let scores = classifier.run(&[bos, eos])?;
        if scores.probabilities.len() != classifier.manifest.labels.len() {
            return Err(Error::LabelCountMismatch {
                manifest: classifier.manifest.labels.len(),
                model: scores.probabilities.len(),
            });
        }
        Ok(classifier)
    }

    /// The bundle's manifest.
    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    /// The bundle's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The optimised tract plan this classifier runs, for tools that look inside it (the
    /// trainer's per-node profile); classifying never needs it.
    pub fn graph(&self) -> &Arc<TypedRunnableModel> {
        &self.model
    }

    /// Normalises and tokenizes `text` into the ids the graph reads (the same ids as
    /// [`encode_with`]; words seen before come from the instance's piece cache).
    pub fn encode(&self, text: &str) -> Result<Encoded, Error> {
        encode_text(self.bos, self.eos, self.manifest.graph.max_tokens, text, |pieces, on_id| {
            self.pieces.encode(&self.tokenizer, pieces, on_id)
        })
    }

    /// Runs the graph on already-encoded ids.
    pub fn run(&self, ids: &[i64]) -> Result<Scores, Error> {
        let err = |e: TractError| Error::Inference(format!("{e:#}"));
        let reused = self.state.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut state = match reused {
            Some(state) => state,
            None => self.model.spawn().map_err(err)?,
        };
        // A state whose run failed is dropped, not kept: it may hold that run's values.
        let outputs = state.run(graph_inputs(ids)).map_err(err)?;
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
        let expected = if self.manifest.graph.scales.is_some() { 3 } else { 2 };
        if outputs.len() != expected {
            return Err(Error::Inference(format!(
                "graph returned {} outputs, expected {expected}",
                outputs.len()
            )));
        }
        let read = |i: usize| -> Result<&[f32], Error> {
            let slice = outputs[i].try_as_plain_ram().and_then(|view| view.as_slice::<f32>());
            slice.map_err(|e| Error::Inference(format!("output {i}: {e:#}")))
        };
        let probabilities = read(0)?.to_vec();
        let labels = probabilities.len();
        let rows = read(1)?;
        // Rows 0..n are the tokens, the rest the n - 1 pairs.
        let mut contributions = match self.manifest.graph.scales {
            None => rows.to_vec(),
            Some(_) => scale_rows(rows, read(2)?, labels, ids.len())?,
        };
        let split = (ids.len() * labels).min(contributions.len());
        let pair_contributions = contributions.split_off(split);
        Ok(Scores { probabilities, token_contributions: contributions, pair_contributions })
    }

    /// The label probabilities for `text`, in manifest label order.
    pub fn probabilities(&self, text: &str) -> Result<Vec<f32>, Error> {
        let encoded = self.encode(text)?;
        Ok(self.run(&encoded.ids)?.probabilities)
    }

    /// Classifies `text`: the winning label, every label's probability and the tokens that
    /// pushed the winner most.
    pub fn classify(&self, text: &str) -> Result<Prediction, Error> {
        let encoded = self.encode(text)?;
        let scores = self.run(&encoded.ids)?;
        let labels = &self.manifest.labels;
        let winner = argmax(&scores.probabilities);
        let explanation = explain::top_tokens(
            &self.tokenizer,
            &encoded.ids,
            &scores,
            labels.len(),
            winner,
            EXPLANATION_TOP_K,
        );
        Ok(Prediction {
            label: labels[winner].clone(),
            probabilities: labels
                .iter()
                .zip(&scores.probabilities)
                .map(|(label, &probability)| LabelProbability { label: label.clone(), probability })
                .collect(),
            explanation,
            truncated: encoded.truncated,
            model: ModelRef {
                name: self.manifest.model_name.clone(),
                version: self.manifest.model_version.clone(),
            },
        })
    }
}

/// Encodes `text` with a tokenizer that is not (yet) part of a bundle: the trainer uses this
/// while it builds one, so training and serving tokenize through the same function.
pub fn encode_with(
    tokenizer: &Tokenizer,
    bos: i64,
    eos: i64,
    max_tokens: usize,
    text: &str,
) -> Result<Encoded, Error> {
    encode_text(bos, eos, max_tokens, text, |pieces, on_id| {
        for piece in pieces {
            for &id in piece_cache::tokenize(tokenizer, piece)?.iter() {
                if !on_id(id) {
                    return Ok(());
                }
            }
        }
        Ok(())
    })
}

/// Normalises `text`, cuts it into pieces and frames the ids `ids_of` gives for them with
/// [BOS] and [EOS], truncating at `max_tokens`.
///
/// The BPE model runs on each piece directly: `Tokenizer::encode` would rebuild the same pieces
/// through its generic pre-tokenizer with per-byte offset bookkeeping, which was two thirds of
/// a request's time. A test checks that both give the same ids.
fn encode_text(
    bos: i64,
    eos: i64,
    max_tokens: usize,
    text: &str,
    ids_of: impl FnOnce(&mut dyn Iterator<Item = &str>, &mut dyn FnMut(u32) -> bool) -> Result<(), Error>,
) -> Result<Encoded, Error> {
    let normalized = normalize(text);
    if is_blank_given(text, &normalized) {
        return Err(Error::EmptyText);
    }
    let room = max_tokens.saturating_sub(2);
    let mut ids = Vec::with_capacity(room.min(normalized.text.len() / 2) + 2);
    ids.push(bos);
    let mut truncated = normalized.truncated;
    ids_of(&mut pieces(&normalized.text), &mut |id| {
        if ids.len() > room {
            truncated = true;
            return false;
        }
        ids.push(i64::from(id));
        true
    })?;
    ids.push(eos);
    Ok(Encoded { ids, truncated })
}

/// The graph's inputs for `ids`: what [`Classifier::run`] feeds the plan of
/// [`Classifier::graph`], for tools that run that plan themselves.
pub fn graph_inputs(ids: &[i64]) -> TVec<TValue> {
    tvec!(tract_ndarray::Array1::from(ids.to_vec()).into_tensor().into())
}

/// The contributions from a graph that leaves the multiply to the core: each row of `rows`
/// starts with that feature's `labels` weights (further columns are the graph's own), and
/// `scales` holds one multiplier for all of them or one per row.
fn scale_rows(rows: &[f32], scales: &[f32], labels: usize, n: usize) -> Result<Vec<f32>, Error> {
    let features = (2 * n).saturating_sub(1);
    let width = rows.len() / features.max(1);
    let bad = || {
        Error::Inference(format!(
            "graph returned {} row values and {} scales for {features} features and {labels} labels",
            rows.len(),
            scales.len()
        ))
    };
    let per_row = scales.len() == features;
    if width < labels || width * features != rows.len() || !(per_row || scales.len() == 1) {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(features * labels);
    for (i, row) in rows.chunks_exact(width).enumerate() {
        let scale = if per_row { scales[i] } else { scales[0] };
        out.extend(row[..labels].iter().map(|v| v * scale));
    }
    Ok(out)
}

fn load_graph(bytes: &[u8]) -> Result<Runnable, Error> {
    let err = |e: TractError| Error::ModelLoad(format!("{e:#}"));
    tract_onnx::onnx()
        .model_for_read(&mut &*bytes)
        .map_err(err)?
        .into_optimized()
        .map_err(err)?
        .into_runnable()
        .map_err(err)
}

fn verify_digest(manifest: &ModelManifest, file: &'static str, bytes: &[u8]) -> Result<(), Error> {
    let expected = &manifest.files.get(file).ok_or(Error::MissingDigest { file })?.sha256;
    let actual = sha256_hex(bytes);
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(Error::DigestMismatch { file, expected: expected.clone(), actual });
    }
    Ok(())
}

fn check_labels(labels: &[String]) -> Result<(), Error> {
    if labels.len() < 2 {
        return Err(Error::BadLabels(format!("need at least 2 labels, found {}", labels.len())));
    }
    for (i, label) in labels.iter().enumerate() {
        if label.trim().is_empty() {
            return Err(Error::BadLabels(format!("label {i} is empty")));
        }
        if labels[..i].contains(label) {
            return Err(Error::BadLabels(format!("label `{label}` appears twice")));
        }
    }
    Ok(())
}

/// Lower-case hex sha256 of `bytes`: the digest form of every manifest.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of any digest (the trainer's streamed snapshot hashes use it too).
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// Index of the largest value; the first one wins a tie, so every caller breaks ties alike.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    //! The core against the golden tiny bundle in `tests/fixtures/tiny/` (see its README for
    //! how to regenerate it).

    use super::*;
    use crate::api::{ModelManifest, Prediction};

    const MANIFEST: &[u8] = include_bytes!("../tests/fixtures/tiny/manifest.json");
    const MODEL: &[u8] = include_bytes!("../tests/fixtures/tiny/model.onnx");
    const TOKENIZER: &[u8] = include_bytes!("../tests/fixtures/tiny/tokenizer.json");
    const EXPECTED_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny/expected.json");

    fn files() -> BundleFiles<'static> {
        BundleFiles { manifest: MANIFEST, model: MODEL, tokenizer: TOKENIZER }
    }

    fn tiny() -> Classifier {
        Classifier::load(files()).expect("the golden bundle loads")
    }

    fn manifest() -> ModelManifest {
        serde_json::from_slice(MANIFEST).expect("golden manifest parses")
    }

    /// Loads with `manifest` re-serialised in place of the golden one.
    fn load_with_manifest(m: &ModelManifest) -> Result<Classifier, Error> {
        let bytes = serde_json::to_vec(m).expect("serialise");
        Classifier::load(BundleFiles { manifest: &bytes, ..files() })
    }

    /// Texts whose answers are pinned in expected.json: one per language, and hostile ones.
    fn golden_texts() -> Vec<String> {
        vec![
            "how do i read a file line by line? with open('a.txt') as fh: for line in fh: print(line)".into(),
            "nullpointerexception when calling a method. public static void main(string[] args) { system.out.println(x); }".into(),
            "click handler not firing: $('#btn').click(function() { console.log('hi'); });".into(),
            "how to show a messagebox in winforms? private void button1_click(object sender, eventargs e) { messagebox.show(\"x\"); }".into(),
            "x".into(),
            "[BOS] [EOS] [UNK] <script>alert(1)</script> \u{0}\u{1b}[31m 🙂 مرحبا".into(),
        ]
    }

    /// Classifies the golden texts with `c` and checks them against `expected_path`, or
    /// rewrites it when asked to (`STACKTAG_REGENERATE_GOLDEN`, and only if `regenerable`).
    fn check_golden(c: &Classifier, expected_path: &str, regenerable: bool) {
        let got: Vec<Prediction> =
            golden_texts().iter().map(|t| c.classify(t).expect("classify")).collect();
        if regenerable && std::env::var_os("STACKTAG_REGENERATE_GOLDEN").is_some() {
            std::fs::write(expected_path, serde_json::to_vec_pretty(&got).expect("json")).expect("write");
            return;
        }
        let expected: Vec<Prediction> = serde_json::from_slice(
            &std::fs::read(expected_path).expect("expected.json exists (see the fixture README)"),
        )
        .expect("expected.json parses");
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.label, e.label);
            assert_eq!(g.truncated, e.truncated);
            assert_eq!(g.model, e.model);
            for (a, b) in g.probabilities.iter().zip(&e.probabilities) {
                assert_eq!(a.label, b.label);
                assert!((a.probability - b.probability).abs() <= 1e-6, "{} vs {}", a.probability, b.probability);
            }
            assert_eq!(
                g.explanation.iter().map(|t| (&t.token, t.count)).collect::<Vec<_>>(),
                e.explanation.iter().map(|t| (&t.token, t.count)).collect::<Vec<_>>()
            );
            for (a, b) in g.explanation.iter().zip(&e.explanation) {
                assert!((a.weight - b.weight).abs() <= 1e-5, "{} vs {}", a.weight, b.weight);
            }
        }
    }

    #[test]
    fn golden_bundle_gives_the_pinned_answers() {
        check_golden(&tiny(), EXPECTED_PATH, true);
    }

    /// A committed fixture bundle, `tests/fixtures/$dir`: its files and its `expected.json`.
    macro_rules! fixture {
        ($dir:literal) => {
            (
                BundleFiles {
                    manifest: include_bytes!(concat!("../tests/fixtures/", $dir, "/manifest.json")),
                    model: include_bytes!(concat!("../tests/fixtures/", $dir, "/model.onnx")),
                    tokenizer: include_bytes!(concat!("../tests/fixtures/", $dir, "/tokenizer.json")),
                },
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/", $dir, "/expected.json"),
            )
        };
    }

    /// The raw outputs of the graph in `files` on the ids of a short Java line.
    fn raw_outputs(files: BundleFiles<'_>) -> (usize, TVec<TValue>) {
        let c = Classifier::load(files).expect("loads");
        let ids = c.encode("public static void main").expect("encode").ids;
        (ids.len(), c.graph().run(graph_inputs(&ids)).expect("runs"))
    }

    #[test]
    fn a_legacy_bundle_without_scales_still_gives_its_pinned_answers() {
        let (files, expected) = fixture!("tiny-legacy");
        let legacy = Classifier::load(files).expect("the legacy bundle loads");
        assert!(legacy.manifest().graph.scales.is_none());
        check_golden(&legacy, expected, false);
    }

    #[test]
    fn a_bundle_with_one_scale_per_feature_still_gives_its_pinned_answers() {
        let (files, expected) = fixture!("tiny-feature-scales");
        // That graph really outputs one scale per feature (else this test proves nothing).
        let (n, outputs) = raw_outputs(files);
        assert_eq!(outputs[2].len(), 2 * n - 1);
        check_golden(&Classifier::load(files).expect("the bundle loads"), expected, false);
    }

    #[test]
    fn the_current_graph_outputs_one_scale() {
        assert_eq!(raw_outputs(files()).1[2].len(), 1);
    }

    #[test]
    fn scales_of_the_wrong_count_are_an_error() {
        // 3 features (n = 2) of width 3 for 2 labels.
        let rows = [1.0, 2.0, 9.0, 3.0, 4.0, 9.0, 5.0, 6.0, 9.0];
        assert_eq!(scale_rows(&rows, &[2.0], 2, 2).expect("one scale"), [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
        assert_eq!(
            scale_rows(&rows, &[1.0, 0.5, 2.0], 2, 2).expect("one per feature"),
            [1.0, 2.0, 1.5, 2.0, 10.0, 12.0]
        );
        let err = scale_rows(&rows, &[1.0, 2.0], 2, 2).expect_err("two scales for three features");
        assert!(err.to_string().contains("2 scales"), "{err}");
        assert!(scale_rows(&rows[..8], &[1.0], 2, 2).is_err(), "ragged rows");
        assert!(scale_rows(&rows, &[1.0], 4, 2).is_err(), "rows narrower than the labels");
    }

    #[test]
    fn the_piece_cache_gives_the_uncached_ids_and_skips_long_pieces() {
        let c = tiny();
        let max = c.manifest().graph.max_tokens;
        let long_piece = "a".repeat(200);
        let mut texts = golden_texts();
        texts.push(format!("{long_piece} print(x) {long_piece}"));
        // Cut by max_tokens, with the cut inside a cached piece's ids on the second pass.
        texts.push("public static void main ".repeat(max));
        for text in &texts {
            let uncached = encode_with(&c.tokenizer, c.bos, c.eos, max, text).expect("encode");
            for pass in 0..2 {
                assert_eq!(c.encode(text).expect("encode"), uncached, "pass {pass} of {text:?}");
            }
        }
        let held = c.pieces.len();
        assert!(held > 10, "the cache holds {held} pieces");
        let again = format!("{} zzqq", "b".repeat(200));
        c.encode(&again).expect("encode");
        assert_eq!(c.pieces.len(), held + 1, "only the short new piece is kept");
    }

    #[test]
    fn each_language_is_recognised() {
        let c = tiny();
        let labels: Vec<String> =
            golden_texts()[..4].iter().map(|t| c.classify(t).expect("classify").label).collect();
        assert_eq!(labels, ["python", "java", "javascript", "csharp"]);
    }

    #[test]
    fn probabilities_are_a_distribution_in_label_order() {
        let p = tiny().classify("public class a { }").expect("classify");
        let labels: Vec<&str> = p.probabilities.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["csharp", "java", "javascript", "python"]);
        let sum: f32 = p.probabilities.iter().map(|l| l.probability).sum();
        assert!((sum - 1.0).abs() < 1e-5, "sum {sum}");
        assert!(p.probabilities.iter().all(|l| (0.0..=1.0).contains(&l.probability)));
    }

    #[test]
    fn the_explanation_lists_tokens_of_the_text_strongest_first() {
        let c = tiny();
        let text = "with open('a.txt') as fh: for line in fh: print(line)";
        let p = c.classify(text).expect("classify");
        assert!(!p.explanation.is_empty() && p.explanation.len() <= EXPLANATION_TOP_K);
        let tokens = c.tokenizer().encode(normalize(text).text.as_str(), false).expect("encode");
        for t in &p.explanation {
            assert!(tokens.get_tokens().contains(&t.token), "`{}` is not a token of the text", t.token);
            assert!(t.weight > 0.0 && t.count >= 1);
        }
        assert!(p.explanation.windows(2).all(|w| w[0].weight >= w[1].weight));
    }

    #[test]
    fn the_graph_contributions_add_up_to_the_logit_margins() {
        // The explanation's inputs are exact: for any two labels, the summed token and pair
        // contributions plus the bias difference give the log-probability difference.
        let c = tiny();
        let l = c.manifest().labels.len();
        let margins = |ids: &[i64]| {
            let s = c.run(ids).expect("run");
            let sum = |v: &[f32], k: usize| v.chunks(l).map(|r| r[k]).sum::<f32>();
            let contrib: Vec<f32> =
                (0..l).map(|k| sum(&s.token_contributions, k) + sum(&s.pair_contributions, k)).collect();
            let logp: Vec<f32> = s.probabilities.iter().map(|p| p.ln()).collect();
            // logp_k - logp_0 = (contrib_k - contrib_0) + (bias_k - bias_0)
            (0..l).map(|k| (logp[k] - logp[0]) - (contrib[k] - contrib[0])).collect::<Vec<f32>>()
        };
        let a = margins(&c.encode("console.log(x) and $('#a').hide()").expect("encode").ids);
        let b = margins(&c.encode("system.out.println(y); public static void main").expect("encode").ids);
        // What is left is the bias difference, which cannot depend on the text.
        for k in 0..l {
            assert!((a[k] - b[k]).abs() < 1e-3, "label {k}: {} vs {}", a[k], b[k]);
        }
    }

    #[test]
    fn empty_or_blank_text_is_refused() {
        let c = tiny();
        for t in ["", "   ", "\n\t\r\n", "\u{0}\u{1}"] {
            assert!(matches!(c.classify(t), Err(Error::EmptyText)), "{t:?}");
        }
    }

    #[test]
    fn very_long_text_is_cut_and_flagged() {
        let c = tiny();
        let long = "def f(self): return [x for x in y] ".repeat(20_000);
        let p = c.classify(&long).expect("classify");
        assert!(p.truncated);
        assert!(c.encode(&long).expect("encode").ids.len() <= c.manifest().graph.max_tokens);
        assert!(!c.classify("def f(): pass").expect("classify").truncated);
    }

    #[test]
    fn hostile_text_never_fails() {
        let c = tiny();
        let texts = [
            "\u{FEFF}\u{200B}\u{202E}reversed\u{202C}".to_string(),
            "🙂".repeat(5_000),
            "İ".repeat(40_000),
            "&amp;&lt;&gt;&quot;".repeat(1_000),
            "(".repeat(10_000),
            (0u8..=127).map(char::from).collect::<String>(),
            "[BOS][EOS][UNK]".into(),
        ];
        for t in &texts {
            let p = c.classify(t).unwrap_or_else(|e| panic!("{e} for {:?}", &t[..t.len().min(40)]));
            assert!(p.probabilities.iter().all(|l| l.probability.is_finite()));
        }
    }

    #[test]
    fn specials_in_the_text_cannot_become_special_ids() {
        // Normalisation lower-cases, so `[BOS]` typed by a user is ordinary text.
        let c = tiny();
        let ids = c.encode("[BOS] [EOS]").expect("encode").ids;
        assert_eq!(ids.iter().filter(|&&i| i == c.bos).count(), 1);
        assert_eq!(ids.iter().filter(|&&i| i == c.eos).count(), 1);
    }

    #[test]
    fn a_tampered_model_is_refused_by_name() {
        let mut model = MODEL.to_vec();
        let last = model.len() - 1;
        model[last] ^= 1;
        let err = Classifier::load(BundleFiles { model: &model, ..files() }).expect_err("tampered");
        assert!(matches!(err, Error::DigestMismatch { file: "model.onnx", .. }), "{err}");
    }

    #[test]
    fn a_tampered_tokenizer_is_refused_by_name() {
        let tokenizer = [TOKENIZER, b" "].concat();
        let err = Classifier::load(BundleFiles { tokenizer: &tokenizer, ..files() }).expect_err("tampered");
        assert!(matches!(err, Error::DigestMismatch { file: "tokenizer.json", .. }), "{err}");
    }

    #[test]
    fn an_unknown_format_version_is_refused() {
        let mut m = manifest();
        m.format_version = 99;
        let err = load_with_manifest(&m).expect_err("future format");
        assert!(matches!(err, Error::UnsupportedFormat { found: 99, .. }), "{err}");
    }

    #[test]
    fn a_manifest_that_is_not_json_is_refused() {
        let err = Classifier::load(BundleFiles { manifest: b"{not json", ..files() }).expect_err("bad json");
        assert!(matches!(err, Error::ManifestInvalid(_)), "{err}");
    }

    #[test]
    fn a_manifest_without_a_digest_is_refused() {
        let mut m = manifest();
        m.files.remove("tokenizer.json");
        let err = load_with_manifest(&m).expect_err("no digest");
        assert!(matches!(err, Error::MissingDigest { file: "tokenizer.json" }), "{err}");
    }

    #[test]
    fn labels_that_do_not_fit_the_graph_are_refused() {
        let mut m = manifest();
        m.labels.pop();
        let err = load_with_manifest(&m).expect_err("3 labels, 4 outputs");
        assert!(matches!(err, Error::LabelCountMismatch { manifest: 3, model: 4 }), "{err}");
        let mut m = manifest();
        m.labels[1] = m.labels[0].clone();
        assert!(matches!(load_with_manifest(&m), Err(Error::BadLabels(_))));
    }

    #[test]
    fn garbage_files_with_matching_digests_fail_to_load_not_to_run() {
        let garbage = b"definitely not a model".to_vec();
        let mut m = manifest();
        m.files.get_mut("model.onnx").expect("digest").sha256 = sha256_hex(&garbage);
        let bytes = serde_json::to_vec(&m).expect("json");
        let err = Classifier::load(BundleFiles { manifest: &bytes, model: &garbage, tokenizer: TOKENIZER })
            .expect_err("garbage model");
        assert!(matches!(err, Error::ModelLoad(_)), "{err}");

        let mut m = manifest();
        m.files.get_mut("tokenizer.json").expect("digest").sha256 = sha256_hex(&garbage);
        let bytes = serde_json::to_vec(&m).expect("json");
        let err = Classifier::load(BundleFiles { manifest: &bytes, model: MODEL, tokenizer: &garbage })
            .expect_err("garbage tokenizer");
        assert!(matches!(err, Error::Tokenizer(_)), "{err}");
    }
}
