//! A loaded bundle, and classifying a text with it.

#[cfg(feature = "tract")]
use std::sync::Arc;

#[cfg(feature = "tract")]
use tract_onnx::prelude::{TValue, TVec, TypedRunnableModel};

use crate::api::{
    COUNTED_MANIFEST_FORMAT_VERSION, Calibration, IDS_MANIFEST_FORMAT_VERSION, LEGACY_MANIFEST_FORMAT_VERSION,
    LabelProbability, MANIFEST_FORMAT_VERSION, ModelManifest, ModelRef, PRESENCE_MANIFEST_FORMAT_VERSION, Prediction,
    Unsure, UnsureRule, files,
};
use crate::bundle::{self, BundleFiles, Hashes};
use crate::encode::{Encoded, TextEncoder};
use crate::graph::{Graph, GraphInput, Outputs, Scores};
use crate::normalize::Normalization;
use crate::piece_cache::PieceCache;
use crate::{EXPLANATION_TOP_K, Error, Runtime, explain};

/// A loaded, verified bundle, ready to classify. Loading parses and optimises the graph once;
/// classifying reuses it, so hold on to a `Classifier` for as long as you serve.
#[derive(Debug)]
pub struct Classifier {
    manifest: ModelManifest,
    graph: Graph,
    encoder: TextEncoder,
    pieces: PieceCache,
}

impl Classifier {
    /// Verifies the bundle (format version, the size and sha256 of the files it uses, labels,
    /// the graph's output shape) and prepares it to run with [`Runtime::DEFAULT`].
    pub fn load(files: BundleFiles<'_>) -> Result<Self, Error> {
        Self::load_with(files, Runtime::DEFAULT, Hashes::Computed)
    }

    /// [`Classifier::load`], with the graph run by `runtime` and the files' digests computed
    /// as `hashes` says.
    pub fn load_with(files: BundleFiles<'_>, runtime: Runtime, hashes: Hashes<'_>) -> Result<Self, Error> {
        let manifest = bundle::parse_manifest(files.manifest)?;
        // Format 1 also covers two older graph shapes (no `scales`, and one scale per
        // feature), told apart by `graph.scales` and the output's length; see
        // `GraphSpec::scales` for when that support can go.
        let normalization = normalization_of(&manifest)?;
        let (model_sha256, tokenizer_sha256) = match hashes {
            Hashes::Computed => (None, None),
            Hashes::Given { model, tokenizer } => (Some(model), Some(tokenizer)),
        };
        bundle::verify_hashed(&manifest, files::MODEL, files.model, model_sha256)?;
        bundle::verify_hashed(&manifest, files::TOKENIZER, files.tokenizer, tokenizer_sha256)?;
        check_labels(&manifest.labels)?;
        check_calibration(&manifest)?;
        if manifest.graph.max_tokens < 2 {
            return Err(Error::InvalidGraphSpec(format!(
                "graph max_tokens {} leaves no room for [BOS] and [EOS]",
                manifest.graph.max_tokens
            )));
        }

        let encoder = TextEncoder::new(files.tokenizer, normalization, manifest.graph.max_tokens)?;

        let input = graph_input(&manifest, encoder.vocab_size())?;
        let graph = Graph::load(files.model, input, runtime)?;
        let (bos, eos) = encoder.specials();
        let classifier = Self { manifest, graph, encoder, pieces: PieceCache::default() };
        // One run on the shortest input proves the graph answers with one probability per
        // label before anything is served from it.
        let outputs = classifier.graph.run(&[bos, eos])?;
        if outputs.probabilities.len() != classifier.manifest.labels.len() {
            return Err(Error::LabelCountMismatch {
                manifest: classifier.manifest.labels.len(),
                model: outputs.probabilities.len(),
            });
        }
        Ok(classifier)
    }

    /// The bundle's manifest.
    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    /// The text normalisation this bundle was trained with, which [`Classifier::encode`] applies.
    pub fn normalization(&self) -> Normalization {
        self.encoder.normalization()
    }

    /// How the bundle turns text into ids (its tokenizer, normalisation and `max_tokens`).
    pub fn encoder(&self) -> &TextEncoder {
        &self.encoder
    }

    /// The optimised tract plan this classifier runs (`None` when the interpreter runs it),
    /// for tools that look inside it (the trainer's per-node profile); classifying never needs it.
    #[cfg(feature = "tract")]
    pub fn graph(&self) -> Option<&Arc<TypedRunnableModel>> {
        self.graph.plan()
    }

    /// Normalises and tokenizes `text` into the ids the graph reads (the same ids as
    /// [`TextEncoder::encode`]; words seen before come from the instance's piece cache).
    pub fn encode(&self, text: &str) -> Result<Encoded, Error> {
        self.encoder.encode_cached(&self.pieces, text)
    }

    /// The distinct features of `text` the model weighs, in order of first occurrence: its
    /// feature rows (token ids and hashed pairs, [`crate::features`]) for graphs that read
    /// them (formats 3 and 4), its token ids for the older graphs, which hash pairs inside.
    /// For telling how much of new data a model has never seen.
    pub fn features(&self, text: &str) -> Result<Vec<i64>, Error> {
        Ok(self.features_of(&self.encode(text)?.ids))
    }

    /// [`Classifier::features`] of already-encoded ids, for a caller that also runs them.
    pub fn features_of(&self, ids: &[i64]) -> Vec<i64> {
        match self.graph.input() {
            GraphInput::Counted { spec, .. } => crate::features::count(&spec, ids).rows,
            GraphInput::Ids { .. } => {
                let mut seen = std::collections::HashSet::new();
                ids.iter().copied().filter(|id| seen.insert(*id)).collect()
            }
        }
    }

    /// The inputs [`Classifier::run`] feeds the plan of [`Classifier::graph`] for `ids`, for
    /// tools that run that plan themselves.
    #[cfg(feature = "tract")]
    pub fn graph_inputs(&self, ids: &[i64]) -> TVec<TValue> {
        self.graph.inputs(ids).1
    }

    /// Runs the graph on already-encoded ids.
    pub fn run(&self, ids: &[i64]) -> Result<Scores, Error> {
        Ok(self.graph.run(ids)?.into_scores(ids.len()))
    }

    /// The label probabilities for already-encoded ids, and whether that answer is
    /// [`Unsure`] (always `None` for bundles without [`ModelManifest::calibration`]): what
    /// [`Classifier::classify`] says, without the explanation.
    pub fn judge(&self, ids: &[i64]) -> Result<(Vec<f32>, Option<Unsure>), Error> {
        let outputs = self.graph.run(ids)?;
        let unsure = self.unsure_of(&outputs, argmax(&outputs.probabilities));
        Ok((outputs.probabilities, unsure))
    }

    /// The bundle's [`unsure`] rule on one run's outputs, `winner` being the label answered.
    fn unsure_of(&self, outputs: &Outputs, winner: usize) -> Option<Unsure> {
        let rule = &self.manifest.calibration.as_ref()?.unsure;
        // Format 5 graphs read distinct features (checked at load), so the count is there.
        unsure(rule, outputs.probabilities[winner], outputs.known_features().unwrap_or(u32::MAX))
    }

    /// The label probabilities for `text`, in manifest label order.
    pub fn probabilities(&self, text: &str) -> Result<Vec<f32>, Error> {
        let encoded = self.encode(text)?;
        Ok(self.graph.run(&encoded.ids)?.probabilities)
    }

    /// Classifies `text`: the winning label, every label's probability and the tokens that
    /// pushed the winner most.
    pub fn classify(&self, text: &str) -> Result<Prediction, Error> {
        let (encoded, placed) = self.encoder.encode_placed(&self.pieces, text)?;
        // The graph's outputs per feature: the explanation reads them there, without handing
        // them back to positions first.
        let outputs = self.graph.run(&encoded.ids)?;
        let labels = &self.manifest.labels;
        let winner = argmax(&outputs.probabilities);
        let explanation =
            explain::top_tokens(&self.encoder, &encoded.ids, &placed, &outputs, winner, EXPLANATION_TOP_K);
        let unsure = self.unsure_of(&outputs, winner);
        Ok(Prediction {
            label: labels[winner].clone(),
            probabilities: labels
                .iter()
                .zip(&outputs.probabilities)
                .map(|(label, &probability)| LabelProbability { label: label.clone(), probability })
                .collect(),
            explanation,
            truncated: encoded.truncated,
            unsure,
            model: ModelRef { name: self.manifest.model_name.clone(), version: self.manifest.model_version.clone() },
        })
    }
}

/// Whether an answer whose label has probability `confidence`, from a text with `known`
/// features the model learnt weights for, is unsure under `rule`, and why. Evidence first: with
/// too little of it, a middling confidence is not to be trusted (one strong word, `println`,
/// is evidence enough). The trainer derives the rule through this same function.
pub fn unsure(rule: &UnsureRule, confidence: f32, known: u32) -> Option<Unsure> {
    if known < rule.min_known_features && confidence < rule.little_evidence_below {
        Some(Unsure::LittleEvidence)
    } else if confidence < rule.below_confidence {
        Some(Unsure::LowConfidence)
    } else {
        None
    }
}

/// A manifest's calibration fits its format and its labels: required in format 5 (whose
/// graph reads distinct features, so the core can count the known ones), refused before; one
/// finite scale and shift per label, scales positive; a threshold in `[0, 1]`.
fn check_calibration(manifest: &ModelManifest) -> Result<(), Error> {
    let bad = |m: String| Err(Error::BadCalibration(m));
    let format = manifest.format_version;
    let c: &Calibration = match (&manifest.calibration, format) {
        (None, MANIFEST_FORMAT_VERSION) => return bad(format!("format {format} requires `calibration`")),
        (None, _) => return Ok(()),
        (Some(c), MANIFEST_FORMAT_VERSION) => c,
        (Some(_), _) => return bad(format!("format {format} has no `calibration` (it came with format 5)")),
    };
    let labels = manifest.labels.len();
    if c.scale.len() != labels || c.shift.len() != labels {
        return bad(format!(
            "{} scales and {} shifts for {labels} labels: one of each per label",
            c.scale.len(),
            c.shift.len()
        ));
    }
    if !c.scale.iter().all(|s| s.is_finite() && *s > 0.0) || !c.shift.iter().all(|s| s.is_finite()) {
        return bad(format!("scales must be finite and positive, shifts finite: {:?}, {:?}", c.scale, c.shift));
    }
    for (name, v) in
        [("below_confidence", c.unsure.below_confidence), ("little_evidence_below", c.unsure.little_evidence_below)]
    {
        if !(0.0..=1.0).contains(&v) {
            return bad(format!("`unsure.{name}` must be in [0, 1], got {v}"));
        }
    }
    Ok(())
}

/// The normalisation a manifest asks for. Format 1 predates the field, so it must be absent
/// there (version 1); format 2 requires it. Anything else is refused, never guessed: serving a
/// model with another normalisation than its training is a silent skew.
fn normalization_of(manifest: &ModelManifest) -> Result<Normalization, Error> {
    let version = match (manifest.format_version, manifest.normalization) {
        (LEGACY_MANIFEST_FORMAT_VERSION, None) => 1,
        (LEGACY_MANIFEST_FORMAT_VERSION, Some(v)) => {
            return Err(Error::BadNormalization(format!(
                "format {LEGACY_MANIFEST_FORMAT_VERSION} has no `normalization` field, found {v}"
            )));
        }
        (
            IDS_MANIFEST_FORMAT_VERSION
            | COUNTED_MANIFEST_FORMAT_VERSION
            | PRESENCE_MANIFEST_FORMAT_VERSION
            | MANIFEST_FORMAT_VERSION,
            Some(v),
        ) => v,
        (
            format @ (IDS_MANIFEST_FORMAT_VERSION
            | COUNTED_MANIFEST_FORMAT_VERSION
            | PRESENCE_MANIFEST_FORMAT_VERSION
            | MANIFEST_FORMAT_VERSION),
            None,
        ) => {
            return Err(Error::BadNormalization(format!("format {format} requires a `normalization` field")));
        }
        (found, _) => {
            return Err(Error::UnsupportedFormat {
                found,
                expected: MANIFEST_FORMAT_VERSION,
                legacy: LEGACY_MANIFEST_FORMAT_VERSION,
            });
        }
    };
    Normalization::from_version(version).ok_or_else(|| {
        let known: Vec<String> = Normalization::ALL.iter().map(|n| n.version().to_string()).collect();
        Error::BadNormalization(format!("version {version} is unknown (this core knows {})", known.join(", ")))
    })
}

/// What the graph reads. Formats 3 to 5 require [`crate::api::GraphSpec::counted`] (format 3
/// with its counts input, formats 4 and 5 without) and formats 1 and 2 must not have it: feeding a
/// graph the other input would fail at best. The feature spec must fit the tokenizer (every id
/// a row of the table) and keep the pair key within i64, so counting can never overflow or
/// index outside the table.
fn graph_input(manifest: &ModelManifest, vocab: usize) -> Result<GraphInput, Error> {
    let bad = |m: String| Err(Error::InvalidGraphSpec(m));
    let format = manifest.format_version;
    match (format, &manifest.graph.counted) {
        (
            COUNTED_MANIFEST_FORMAT_VERSION | PRESENCE_MANIFEST_FORMAT_VERSION | MANIFEST_FORMAT_VERSION,
            Some(counted),
        ) => {
            let f = counted.features;
            if f.vocab != vocab {
                return bad(format!("counted features expect {} token ids, the tokenizer has {vocab}", f.vocab));
            }
            // The largest pair key is below vocab · pair_mul + vocab.
            let key_fits = i64::try_from(f.vocab)
                .ok()
                .and_then(|v| v.checked_mul(f.pair_mul).and_then(|k| k.checked_add(v)))
                .is_some();
            if f.buckets == 0 || f.pair_mul <= 0 || !key_fits {
                return bad(format!(
                    "counted features need buckets > 0 and a pair multiplier that keeps pair keys in i64, got buckets {} and pair_mul {}",
                    f.buckets, f.pair_mul
                ));
            }
            // The core's count packs a row into 32 bits.
            if f.vocab.checked_add(f.buckets).is_none_or(|rows| rows > u32::MAX as usize) {
                return bad(format!("counted features need at most 2^32 rows, got {} + {}", f.vocab, f.buckets));
            }
            match (format, &counted.counts) {
                (COUNTED_MANIFEST_FORMAT_VERSION, Some(_)) => Ok(GraphInput::Counted { spec: f, counts: true }),
                (PRESENCE_MANIFEST_FORMAT_VERSION | MANIFEST_FORMAT_VERSION, None) => {
                    Ok(GraphInput::Counted { spec: f, counts: false })
                }
                (COUNTED_MANIFEST_FORMAT_VERSION, None) => {
                    bad(format!("format {COUNTED_MANIFEST_FORMAT_VERSION} requires `graph.counted.counts`"))
                }
                _ => {
                    bad(format!("format {format} has no `graph.counted.counts` (its graph reads features by presence)"))
                }
            }
        }
        (COUNTED_MANIFEST_FORMAT_VERSION | PRESENCE_MANIFEST_FORMAT_VERSION | MANIFEST_FORMAT_VERSION, None) => {
            bad(format!("format {format} requires `graph.counted`"))
        }
        (format, Some(_)) => bad(format!("format {format} has no `graph.counted` (it came with format 3)")),
        (_, None) => Ok(GraphInput::Ids { has_scales: manifest.graph.scales.is_some() }),
    }
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
    use crate::bundle::{BundleError, sha256_hex};
    use crate::normalize::Normalization;
    use tract_onnx::prelude::{TValue, TVec};

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

    /// Texts whose answers are pinned in each fixture's expected.json: one per language, and
    /// hostile ones. `examples/golden.rs` writes those answers from the same file.
    fn golden_texts() -> Vec<String> {
        serde_json::from_slice(include_bytes!("../tests/fixtures/golden-texts.json")).expect("golden texts parse")
    }

    /// Classifies the golden texts with `c` and checks them against `expected_path`.
    fn check_golden(c: &Classifier, expected_path: &str) {
        let got: Vec<Prediction> = golden_texts().iter().map(|t| c.classify(t).expect("classify")).collect();
        let expected: Vec<Prediction> = serde_json::from_slice(
            &std::fs::read(expected_path).expect("expected.json exists (see the fixture README)"),
        )
        .expect("expected.json parses");
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.label, e.label);
            assert_eq!(g.truncated, e.truncated);
            assert_eq!(g.model, e.model);
            assert_eq!(g.probabilities.len(), e.probabilities.len());
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
                // Where each token is in the text: pinned too, so a change to a normalisation's
                // records shows here for the bundles that use it.
                assert_eq!(a.spans, b.spans, "spans of `{}`", a.token);
            }
            assert_eq!(g.unsure, e.unsure, "unsure");
        }
    }

    #[test]
    fn golden_bundle_gives_the_pinned_answers() {
        check_golden(&tiny(), EXPECTED_PATH);
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
        (ids.len(), c.graph().expect("tract runs it").run(c.graph_inputs(&ids)).expect("runs"))
    }

    #[test]
    fn a_legacy_bundle_without_scales_still_gives_its_pinned_answers() {
        let (files, expected) = fixture!("tiny-legacy");
        let legacy = Classifier::load(files).expect("the legacy bundle loads");
        assert!(legacy.manifest().graph.scales.is_none());
        check_golden(&legacy, expected);
    }

    #[test]
    fn a_bundle_with_one_scale_per_feature_still_gives_its_pinned_answers() {
        let (files, expected) = fixture!("tiny-feature-scales");
        // That graph really outputs one scale per feature (else this test proves nothing).
        let (n, outputs) = raw_outputs(files);
        assert_eq!(outputs[2].len(), 2 * n - 1);
        check_golden(&Classifier::load(files).expect("the bundle loads"), expected);
    }

    #[test]
    fn the_token_id_graph_outputs_one_scale() {
        assert_eq!(raw_outputs(files()).1[2].len(), 1);
    }

    /// Format 3's golden bundle: normalisation 2, counted features.
    fn counted() -> Classifier {
        Classifier::load(fixture!("tiny-counted").0).expect("the counted bundle loads")
    }

    /// Format 4's golden bundle: normalisation 2, distinct features by presence.
    fn presence() -> Classifier {
        Classifier::load(fixture!("tiny-presence").0).expect("the presence bundle loads")
    }

    /// `tiny-presence` as format 5, with an identity calibration and `rule`: the same graph, so
    /// the same probabilities, and the core's unsure rule on top.
    fn presence_with_rule(rule: UnsureRule) -> Result<Classifier, Error> {
        let (files, _) = fixture!("tiny-presence");
        let mut m = bundle::parse_manifest(files.manifest).expect("parses");
        m.format_version = MANIFEST_FORMAT_VERSION;
        m.calibration = Some(Calibration {
            method: "temperature".into(),
            scale: vec![1.0; m.labels.len()],
            shift: vec![0.0; m.labels.len()],
            unsure: rule,
            fitted: Default::default(),
        });
        let bytes = serde_json::to_vec(&m).expect("serialise");
        Classifier::load(BundleFiles { manifest: &bytes, ..files })
    }

    #[test]
    fn the_unsure_rule_flags_little_evidence_first_then_low_confidence() {
        let rule = UnsureRule { min_known_features: 3, little_evidence_below: 0.9, below_confidence: 0.5 };
        assert_eq!(unsure(&rule, 0.89, 2), Some(Unsure::LittleEvidence), "evidence before confidence");
        assert_eq!(unsure(&rule, 0.3, 2), Some(Unsure::LittleEvidence));
        assert_eq!(unsure(&rule, 0.9, 2), None, "little evidence, but strong");
        assert_eq!(unsure(&rule, 0.89, 3), None, "enough evidence");
        assert_eq!(unsure(&rule, 0.49, 3), Some(Unsure::LowConfidence));
        assert_eq!(unsure(&rule, 0.5, 3), None, "at the line is sure");
    }

    #[test]
    fn format_5_answers_as_its_graph_does_and_flags_what_its_rule_says() {
        let sure =
            presence_with_rule(UnsureRule { min_known_features: 5, little_evidence_below: 1.0, below_confidence: 0.0 })
                .expect("loads");
        let old = presence();
        for text in &golden_texts() {
            let (a, b) = (sure.classify(text).expect("classify"), old.classify(text).expect("classify"));
            assert_eq!((&a.label, &a.probabilities, &a.explanation), (&b.label, &b.probabilities, &b.explanation));
            assert_eq!(b.unsure, None, "format 4 never says unsure");
        }
        // A Java line has evidence. A letter outside the tiny vocabulary, repeated, is [UNK]
        // throughout: at most four features ([UNK] and its pairs with itself, [BOS] and [EOS]),
        // the [BOS] and [EOS] tokens aside, so under five known.
        let java = "public static void main(String[] args) { System.out.println(x); }";
        assert_eq!(sure.classify(java).expect("classify").unsure, None);
        let nothing = sure.classify(&"\u{10348}".repeat(2_000)).expect("classify");
        assert_eq!(nothing.unsure, Some(Unsure::LittleEvidence), "{nothing:?}");
        // The confidence rule alone: at 1.0 nothing is sure, and the reason is the confidence.
        let strict =
            presence_with_rule(UnsureRule { min_known_features: 0, little_evidence_below: 1.0, below_confidence: 1.0 })
                .expect("loads");
        assert_eq!(strict.classify(java).expect("classify").unsure, Some(Unsure::LowConfidence));
        // `judge` says what `classify` says.
        let ids = strict.encode(java).expect("encode").ids;
        assert_eq!(strict.judge(&ids).expect("judge").1, Some(Unsure::LowConfidence));
    }

    #[test]
    fn a_calibration_that_does_not_fit_the_format_or_the_labels_is_refused() {
        let rule = UnsureRule { min_known_features: 1, little_evidence_below: 0.9, below_confidence: 0.5 };
        let (files, _) = fixture!("tiny-presence");
        let base = || bundle::parse_manifest(files.manifest).expect("parses");
        let load = |m: &ModelManifest| {
            let bytes = serde_json::to_vec(m).expect("serialise");
            Classifier::load(BundleFiles { manifest: &bytes, ..files })
        };
        let says = |m: &ModelManifest, what: &str| {
            let err = load(m).expect_err(what);
            assert!(matches!(&err, Error::BadCalibration(msg) if msg.contains(what)), "{what}: {err}");
        };
        let calibration = |scale: Vec<f32>, below: f32| Calibration {
            method: "temperature".into(),
            shift: vec![0.0; 4],
            scale,
            unsure: UnsureRule { below_confidence: below, ..rule },
            fitted: Default::default(),
        };
        let mut m = base();
        m.format_version = MANIFEST_FORMAT_VERSION;
        says(&m, "format 5 requires `calibration`");
        let mut m = base();
        m.calibration = Some(calibration(vec![1.0; 4], 0.5));
        says(&m, "format 4 has no `calibration`");
        m.format_version = MANIFEST_FORMAT_VERSION;
        load(&m).expect("format 5 with a calibration loads");
        m.calibration = Some(calibration(vec![1.0; 3], 0.5));
        says(&m, "for 4 labels");
        m.calibration = Some(calibration(vec![1.0, 1.0, 0.0, 1.0], 0.5));
        says(&m, "positive");
        m.calibration = Some(calibration(vec![1.0; 4], 1.5));
        says(&m, "below_confidence");
    }

    #[test]
    fn a_counted_bundle_gives_its_pinned_answers() {
        let (files, expected) = fixture!("tiny-counted");
        let c = Classifier::load(files).expect("loads");
        assert_eq!(c.manifest().format_version, COUNTED_MANIFEST_FORMAT_VERSION);
        assert!(c.manifest().graph.counted.as_ref().is_some_and(|c| c.counts.is_some()));
        check_golden(&c, expected);
    }

    #[test]
    fn a_presence_bundle_gives_its_pinned_answers() {
        let (files, expected) = fixture!("tiny-presence");
        let c = Classifier::load(files).expect("loads");
        assert_eq!(c.manifest().format_version, PRESENCE_MANIFEST_FORMAT_VERSION);
        assert!(c.manifest().graph.counted.as_ref().is_some_and(|c| c.counts.is_none()));
        check_golden(&c, expected);
    }

    #[test]
    fn a_calibrated_bundle_gives_its_pinned_answers_and_unsure_flags() {
        let (files, expected) = fixture!("tiny-calibrated");
        let c = Classifier::load(files).expect("loads");
        assert_eq!(c.manifest().format_version, MANIFEST_FORMAT_VERSION);
        assert!(c.manifest().calibration.is_some());
        check_golden(&c, expected);
        // The golden texts include hostile ones with nothing the tiny model knows in them: at
        // least one answer is flagged, and the four plain questions are not.
        let answers: Vec<Prediction> = golden_texts().iter().map(|t| c.classify(t).expect("classify")).collect();
        assert!(answers[..4].iter().all(|p| p.unsure.is_none()), "{answers:?}");
        assert!(answers.iter().any(|p| p.unsure.is_some()), "no golden text is unsure");
    }

    #[test]
    fn a_presence_graph_reads_each_distinct_feature_once_with_one_scale() {
        let c = presence();
        let text = "print x print x print x";
        let ids = c.encode(text).expect("encode").ids;
        let inputs = c.graph_inputs(&ids);
        assert_eq!(inputs.len(), 1, "rows only, no counts");
        let rows = inputs[0].len();
        assert!(rows < 2 * ids.len() - 1, "{rows} rows for {} tokens", ids.len());
        let outputs = c.graph().expect("tract runs it").run(inputs).expect("runs");
        assert_eq!(outputs[1].len(), rows * (c.manifest().labels.len() + 1));
        assert_eq!(outputs[2].len(), 1, "one scale for all");
        // Every occurrence still counts in the explanation: each token listed thrice.
        let p = c.classify(text).expect("classify");
        assert!(!p.explanation.is_empty());
        assert!(p.explanation.iter().all(|t| t.count == 3), "{:?}", p.explanation);
    }

    #[test]
    fn a_counted_graph_reads_each_distinct_feature_once() {
        let c = counted();
        // Three tokens and two pairs repeat: the graph sees fewer rows than positions, one
        // scale per row, and the explanation still counts every occurrence.
        let ids = c.encode("print x print x print x").expect("encode").ids;
        let outputs = c.graph().expect("tract runs it").run(c.graph_inputs(&ids)).expect("runs");
        let rows = outputs[2].len();
        assert!(rows < 2 * ids.len() - 1, "{rows} rows for {} tokens", ids.len());
        assert_eq!(outputs[1].len(), rows * (c.manifest().labels.len() + 1));
        let p = c.classify("print x print x print x").expect("classify");
        assert!(!p.explanation.is_empty());
        let oracle = tokenizers::Tokenizer::from_bytes(fixture!("tiny-counted").0.tokenizer).expect("loads");
        for t in &p.explanation {
            let id = i64::from(oracle.token_to_id(&t.token).expect("a vocabulary token"));
            let occurrences = ids.iter().filter(|&&i| i == id).count() as u32;
            assert_eq!(t.count, occurrences, "`{}`", t.token);
            assert!(t.count >= 3, "`{}` occurs three times", t.token);
        }
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
            let uncached = c.encoder.encode(text).expect("encode");
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
        let labels: Vec<String> = golden_texts()[..4].iter().map(|t| c.classify(t).expect("classify").label).collect();
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
        let oracle = tokenizers::Tokenizer::from_bytes(TOKENIZER).expect("loads");
        let tokens = oracle.encode(Normalization::V1.apply(text).text.as_str(), false).expect("encode");
        for t in &p.explanation {
            assert!(tokens.get_tokens().contains(&t.token), "`{}` is not a token of the text", t.token);
            assert!(t.weight > 0.0 && t.count >= 1);
        }
        assert!(p.explanation.windows(2).all(|w| w[0].weight >= w[1].weight));
    }

    #[test]
    fn the_graph_contributions_add_up_to_the_logit_margins() {
        // The explanation's inputs are exact: for any two labels, the summed token and pair
        // contributions plus the bias difference give the log-probability difference, whether
        // the graph reads token ids or counted features (whose contributions the core hands
        // back to their positions).
        for c in [tiny(), counted()] {
            margins_leave_only_the_bias(&c);
        }
    }

    fn margins_leave_only_the_bias(c: &Classifier) {
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
        for c in [tiny(), counted()] {
            let long = "def f(self): return [x for x in y] ".repeat(20_000);
            let p = c.classify(&long).expect("classify");
            assert!(p.truncated);
            assert!(c.encode(&long).expect("encode").ids.len() <= c.manifest().graph.max_tokens);
            assert!(!c.classify("def f(): pass").expect("classify").truncated);
        }
    }

    #[test]
    fn hostile_text_never_fails() {
        // Every graph input: token ids (format 1), counted features (format 3) and distinct
        // features alone (format 4).
        let classifiers = [tiny(), counted(), presence()];
        let texts = [
            "\u{FEFF}\u{200B}\u{202E}reversed\u{202C}".to_string(),
            "🙂".repeat(5_000),
            "İ".repeat(40_000),
            "&amp;&lt;&gt;&quot;".repeat(1_000),
            "(".repeat(10_000),
            (0u8..=127).map(char::from).collect::<String>(),
            "[BOS][EOS][UNK]".into(),
        ];
        for c in &classifiers {
            for t in &texts {
                let p = c.classify(t).unwrap_or_else(|e| panic!("{e} for {:?}", &t[..t.len().min(40)]));
                assert!(p.probabilities.iter().all(|l| l.probability.is_finite()));
            }
        }
    }

    #[test]
    fn specials_in_the_text_cannot_become_special_ids() {
        // Normalisation lower-cases, so `[BOS]` typed by a user is ordinary text.
        let c = tiny();
        let ids = c.encode("[BOS] [EOS]").expect("encode").ids;
        let (bos, eos) = c.encoder.specials();
        assert_eq!(ids.iter().filter(|&&i| i == bos).count(), 1);
        assert_eq!(ids.iter().filter(|&&i| i == eos).count(), 1);
    }

    #[test]
    fn a_tampered_model_is_refused_by_name() {
        let mut model = MODEL.to_vec();
        let last = model.len() - 1;
        model[last] ^= 1;
        let err = Classifier::load(BundleFiles { model: &model, ..files() }).expect_err("tampered");
        assert!(
            matches!(&err, Error::Bundle(BundleError::DigestMismatch { file, .. }) if file == "model.onnx"),
            "{err}"
        );
    }

    #[test]
    fn a_tampered_tokenizer_is_refused_by_name() {
        let mut tokenizer = TOKENIZER.to_vec();
        tokenizer[0] ^= 1;
        let err = Classifier::load(BundleFiles { tokenizer: &tokenizer, ..files() }).expect_err("tampered");
        assert!(
            matches!(&err, Error::Bundle(BundleError::DigestMismatch { file, .. }) if file == "tokenizer.json"),
            "{err}"
        );
        let longer = [TOKENIZER, b" "].concat();
        let err = Classifier::load(BundleFiles { tokenizer: &longer, ..files() }).expect_err("longer");
        assert!(
            matches!(&err, Error::Bundle(BundleError::SizeMismatch { file, .. }) if file == "tokenizer.json"),
            "{err}"
        );
    }

    #[test]
    fn digests_the_host_computed_are_still_held_to_the_manifest() {
        let load = |files: BundleFiles<'_>, model: &str, tokenizer: &str| {
            Classifier::load_with(files, Runtime::DEFAULT, Hashes::Given { model, tokenizer })
        };
        let (model, tokenizer) = (sha256_hex(MODEL), sha256_hex(TOKENIZER));
        // Upper-case hex is a digest too (WebCrypto's callers format their own).
        load(files(), &model.to_uppercase(), &tokenizer).expect("the right digests load");
        // The host hashed a tampered file: its digest is not the manifest's.
        let mut tampered = MODEL.to_vec();
        tampered[100] ^= 1;
        let err = load(BundleFiles { model: &tampered, ..files() }, &sha256_hex(&tampered), &tokenizer)
            .expect_err("tampered");
        assert!(
            matches!(&err, Error::Bundle(BundleError::DigestMismatch { file, actual, .. })
                if file == "model.onnx" && *actual == sha256_hex(&tampered)),
            "{err}"
        );
        let err = load(files(), &model, "00").expect_err("wrong digest");
        assert!(matches!(&err, Error::Bundle(BundleError::DigestMismatch { file, .. }) if file == "tokenizer.json"));
        // Sizes are the core's own check, whoever hashed.
        let longer = [TOKENIZER, b" "].concat();
        let err = load(BundleFiles { tokenizer: &longer, ..files() }, &model, &tokenizer).expect_err("longer");
        assert!(matches!(&err, Error::Bundle(BundleError::SizeMismatch { file, .. }) if file == "tokenizer.json"));
    }

    #[test]
    fn an_unknown_format_version_is_refused() {
        let mut m = manifest();
        m.format_version = 99;
        let err = load_with_manifest(&m).expect_err("future format");
        assert!(matches!(err, Error::UnsupportedFormat { found: 99, .. }), "{err}");
    }

    #[test]
    fn a_bundle_without_a_normalization_field_is_served_with_version_1() {
        // Every bundle trained before the field (the golden ones, registered champions) must
        // keep answering as it did; check_golden pins the answers themselves.
        assert_eq!(manifest().format_version, 1);
        assert_eq!(manifest().normalization, None);
        assert_eq!(tiny().normalization(), Normalization::V1);
    }

    #[test]
    fn format_2_serves_the_normalization_its_manifest_names() {
        let mut m = manifest();
        m.format_version = 2;
        m.normalization = Some(1);
        let c = load_with_manifest(&m).expect("format 2, normalization 1");
        assert_eq!(c.normalization(), Normalization::V1);
        check_golden(&c, EXPECTED_PATH);
        m.normalization = Some(2);
        let c = load_with_manifest(&m).expect("format 2, normalization 2");
        assert_eq!(c.normalization(), Normalization::V2);
        // Same graph, another normalisation: `<p>` and `Java` no longer reach the tokenizer.
        let text = "<p>Java</p>";
        assert_ne!(c.encode(text).expect("v2").ids, tiny().encode(text).expect("v1").ids);
    }

    #[test]
    fn a_normalization_that_does_not_fit_the_format_is_refused() {
        let cases = [(1, Some(2), "format 1 has no"), (2, None, "requires"), (2, Some(99), "version 99 is unknown")];
        for (format, normalization, says) in cases {
            let mut m = manifest();
            (m.format_version, m.normalization) = (format, normalization);
            let err = load_with_manifest(&m).expect_err("refused");
            assert!(
                matches!(&err, Error::BadNormalization(msg) if msg.contains(says)),
                "{format} {normalization:?}: {err}"
            );
        }
    }

    #[test]
    fn a_graph_input_that_does_not_fit_the_format_is_refused() {
        let counted_manifest = || bundle::parse_manifest(fixture!("tiny-counted").0.manifest).expect("parses");
        let load = |m: &ModelManifest| {
            let bytes = serde_json::to_vec(m).expect("serialise");
            Classifier::load(BundleFiles { manifest: &bytes, ..fixture!("tiny-counted").0 })
        };
        let says = |m: &ModelManifest, what: &str| {
            let err = load(m).expect_err(what);
            assert!(matches!(&err, Error::InvalidGraphSpec(msg) if msg.contains(what)), "{what}: {err}");
        };
        let mut m = counted_manifest();
        m.graph.counted = None;
        says(&m, "requires `graph.counted`");
        let mut m = counted_manifest();
        m.format_version = 2;
        says(&m, "format 2 has no `graph.counted`");
        let mut m = counted_manifest();
        if let Some(c) = m.graph.counted.as_mut() {
            c.features.vocab += 1;
        }
        says(&m, "the tokenizer has");
        for pair_mul in [0, -3, i64::MAX / 2] {
            let mut m = counted_manifest();
            if let Some(c) = m.graph.counted.as_mut() {
                c.features.pair_mul = pair_mul;
            }
            says(&m, "pair multiplier");
        }
        let mut m = counted_manifest();
        if let Some(c) = m.graph.counted.as_mut() {
            c.features.buckets = 1 << 33;
        }
        says(&m, "at most 2^32 rows");
        // Counts belong to format 3 only.
        let mut m = counted_manifest();
        m.format_version = PRESENCE_MANIFEST_FORMAT_VERSION;
        says(&m, "format 4 has no `graph.counted.counts`");
        let mut m = counted_manifest();
        if let Some(c) = m.graph.counted.as_mut() {
            c.counts = None;
        }
        says(&m, "format 3 requires `graph.counted.counts`");
        // And the reverse: a token-id graph under format 3 is refused before it runs.
        let mut m = manifest();
        (m.format_version, m.normalization) = (3, Some(1));
        let err = load_with_manifest(&m).expect_err("format 3 without counted");
        assert!(matches!(&err, Error::InvalidGraphSpec(msg) if msg.contains("requires")), "{err}");
    }

    #[test]
    fn a_manifest_that_is_not_json_is_refused() {
        let err = Classifier::load(BundleFiles { manifest: b"{not json", ..files() }).expect_err("bad json");
        assert!(matches!(err, Error::Bundle(BundleError::ManifestInvalid(_))), "{err}");
    }

    #[test]
    fn a_manifest_without_a_digest_is_refused() {
        let mut m = manifest();
        m.files.remove("tokenizer.json");
        let err = load_with_manifest(&m).expect_err("no digest");
        assert!(
            matches!(&err, Error::Bundle(BundleError::MissingDigest { file }) if file == "tokenizer.json"),
            "{err}"
        );
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
    fn a_max_tokens_without_room_for_the_specials_is_a_graph_error_not_a_label_error() {
        let mut m = manifest();
        m.graph.max_tokens = 1;
        let err = load_with_manifest(&m).expect_err("max_tokens 1");
        assert!(matches!(&err, Error::InvalidGraphSpec(msg) if msg.contains("max_tokens 1")), "{err}");
    }

    #[test]
    fn garbage_files_with_matching_digests_fail_to_load_not_to_run() {
        let garbage = b"definitely not a model".to_vec();
        let mut m = manifest();
        let digest = m.files.get_mut("model.onnx").expect("digest");
        (digest.sha256, digest.bytes) = (sha256_hex(&garbage), garbage.len() as u64);
        let bytes = serde_json::to_vec(&m).expect("json");
        let err = Classifier::load(BundleFiles { manifest: &bytes, model: &garbage, tokenizer: TOKENIZER })
            .expect_err("garbage model");
        assert!(matches!(err, Error::ModelLoad(_)), "{err}");
        assert!(std::error::Error::source(&err).is_some(), "tract's error is kept as the source");

        let mut m = manifest();
        let digest = m.files.get_mut("tokenizer.json").expect("digest");
        (digest.sha256, digest.bytes) = (sha256_hex(&garbage), garbage.len() as u64);
        let bytes = serde_json::to_vec(&m).expect("json");
        let err = Classifier::load(BundleFiles { manifest: &bytes, model: MODEL, tokenizer: &garbage })
            .expect_err("garbage tokenizer");
        assert!(matches!(err, Error::Tokenizer { source: Some(_), .. }), "{err}");
    }
}
