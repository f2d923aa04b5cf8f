//! Stacktag wire types: the one shape that the Spin component, the browser module, the
//! sync gateway and the trainer all speak and write.
//!
//! Nothing here computes anything. A type changes only together with
//! [`MANIFEST_FORMAT_VERSION`] (for the manifest) or with every transport at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the bundle layout and of [`ModelManifest`] that the trainer writes. A reader
/// refuses any format it does not know.
///
/// Format 2 adds [`ModelManifest::normalization`] and requires it: the text normalisation the
/// model was trained with, which the core must apply to every request. A format 1 bundle has no
/// such field and is served with normalisation 1, as it always was. The format moved to 2 so
/// that a core that predates the field refuses a new bundle (`unsupported format`) instead of
/// serving it with the old normalisation, a silent train/serve skew; serde ignores unknown
/// fields, so a new field alone would not have stopped it.
///
/// Format 1 covers three graph shapes, told apart by [`GraphSpec::scales`] and the length of
/// that output: the first graphs (no `scales`), then one scale per feature, now one scale for
/// all. The two older shapes stay readable only because registries still hold champions and
/// rollback targets trained with them (versions registered before commit 6c1cffa). Their
/// support goes with format 1, once no registry still serves or can roll back to such a
/// version; from then on the gate and registry-sync refuse them as invalid bundles.
///
/// Format 3 adds [`GraphSpec::counted`] and requires it: the graph reads counted features, not
/// token ids. A core that predates it would feed such a graph token ids, so the format moved.
///
/// Format 4 keeps [`GraphSpec::counted`] without [`CountedInput::counts`]: the graph reads each
/// distinct feature once, by presence, and nothing else. A format 3 core would feed such a
/// graph an input it lacks, so the format moved again.
///
/// Format 5 is format 4's graph with calibrated probabilities and [`ModelManifest::calibration`],
/// which it requires: the graph's weights already carry the calibration, and the manifest says
/// when an answer is [`Unsure`]. A format 4 core would serve such a bundle without ever saying
/// so, so the format moved.
pub const MANIFEST_FORMAT_VERSION: u32 = 5;

/// The format of bundles whose graph reads distinct features by presence, uncalibrated and
/// without an unsure rule: still read, answered exactly as before format 5.
pub const PRESENCE_MANIFEST_FORMAT_VERSION: u32 = 4;

/// The format of bundles whose graph reads distinct features and their counts: still read,
/// and still written by `trainer train --weighting sublinear`.
pub const COUNTED_MANIFEST_FORMAT_VERSION: u32 = 3;

/// The format of bundles with [`ModelManifest::normalization`] whose graph reads token ids:
/// still read, and still written by `trainer train --weighting occurrences`.
pub const IDS_MANIFEST_FORMAT_VERSION: u32 = 2;

/// The format of bundles trained before [`ModelManifest::normalization`] existed (and of the
/// ones the trainer still writes with normalisation 1): still read.
pub const LEGACY_MANIFEST_FORMAT_VERSION: u32 = 1;

/// File names inside a bundle directory.
pub mod files {
    /// The ONNX graph: counted features (or, before format 3, token ids) in, one probability
    /// per label out.
    pub const MODEL: &str = "model.onnx";
    /// The `tokenizers` tokenizer, saved with `Tokenizer::save`.
    pub const TOKENIZER: &str = "tokenizer.json";
    /// The [`ModelManifest`](crate::ModelManifest).
    pub const MANIFEST: &str = "manifest.json";
    /// The evaluation figures, [`Evaluation`](crate::Evaluation), for people and tools.
    pub const METRICS: &str = "metrics.json";
    /// The confusion matrix drawn for people.
    pub const CONFUSION_SVG: &str = "confusion_matrix.svg";
    /// Who made the bundle: an OpenSSF Model Signing signature over the manifest and the files
    /// it lists (crate `model-signature`; docs/signing.md). Not listed in the manifest, which
    /// it signs.
    pub const SIGNATURE: &str = "model.sig";
}

/// A request to `POST /classify`: one text, or a batch of texts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PredictRequest {
    /// `{"text": "..."}`
    One {
        /// The question to classify.
        text: String,
    },
    /// `{"texts": ["...", ...]}`
    Batch {
        /// The questions to classify, answered in the same order.
        texts: Vec<String>,
    },
}

/// The answer for one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The most probable label.
    pub label: String,
    /// The probability of every label, in the model's label order.
    pub probabilities: Vec<LabelProbability>,
    /// The tokens that pushed the winning label most, strongest first.
    pub explanation: Vec<TokenContribution>,
    /// True when the text was longer than the model reads and its tail was ignored.
    pub truncated: bool,
    /// Why the label is not to be trusted, when it is not: the label is still the model's best
    /// guess, flagged. `null` when the answer is sure, and always for bundles before format 5,
    /// which have no rule for it.
    #[serde(default)]
    pub unsure: Option<Unsure>,
    /// Which model answered.
    pub model: ModelRef,
}

/// Why an answer is unsure ([`Prediction::unsure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unsure {
    /// The text has fewer features the model learnt anything about than
    /// [`UnsureRule::min_known_features`], and its label's probability is under
    /// [`UnsureRule::little_evidence_below`]: on so little, a probability that size is not to
    /// be trusted.
    LittleEvidence,
    /// The calibrated probability of the label is under [`UnsureRule::below_confidence`].
    LowConfidence,
}

impl Unsure {
    /// Every reason.
    pub const ALL: [Unsure; 2] = [Unsure::LittleEvidence, Unsure::LowConfidence];

    /// The wire name, e.g. `low_confidence` (for metric labels; serde writes the same).
    pub fn as_str(self) -> &'static str {
        match self {
            Unsure::LittleEvidence => "little_evidence",
            Unsure::LowConfidence => "low_confidence",
        }
    }
}

/// The answer for a batch: one [`Prediction`] per text, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchPrediction {
    /// One prediction per input text.
    pub predictions: Vec<Prediction>,
}

/// One label's probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelProbability {
    /// The label.
    pub label: String,
    /// Its probability, in `[0, 1]`; all of them sum to 1.
    pub probability: f32,
}

/// How much one token pushed the winning label above the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenContribution {
    /// The token as the tokenizer wrote it.
    pub token: String,
    /// Its contribution to the winning label's logit minus the other labels' mean, summed over
    /// its occurrences. Positive pushes towards the winner.
    pub weight: f32,
    /// How often the token occurs in the text.
    pub count: u32,
    /// Where it occurs in the text as sent: one `[start, end)` pair of byte offsets into the
    /// text's UTF-8 per occurrence, in text order. They point at what the person wrote, not at
    /// what the model read: the token `blank` at `Java`, `<` at `&lt;`. Empty from an edge older
    /// than the field.
    #[serde(default)]
    pub spans: Vec<[u32; 2]>,
}

/// The model that answered a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Registered model name, e.g. `stacktag`.
    pub name: String,
    /// Registry version, when the bundle was stamped with one.
    pub version: Option<String>,
}

/// `GET /health`: the service is up and which model it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when the service answers.
    pub status: String,
    /// The model being served.
    pub model: ModelRef,
}

/// Every HTTP error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The error itself.
    pub error: ErrorBody,
}

/// The code (stable, machine-readable) and message (for people) of an [`ApiError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The code; it sets the HTTP status ([`ErrorCode::status`]).
    pub code: ErrorCode,
    /// What went wrong, naming the field, file or limit.
    pub message: String,
}

impl ApiError {
    /// Builds an error body from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { error: ErrorBody { code, message: message.into() } }
    }

    /// The HTTP status this body goes with.
    pub fn status(&self) -> u16 {
        self.error.code.status()
    }
}

/// Declares [`ErrorCode`] from one table: variant, wire name, HTTP status, meaning.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $status:literal;)*) => {
        /// Every error code an answer can carry, in every transport (the edge component, the
        /// browser module, the gateway), and the HTTP status each one sets.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
            /// A code this build does not know (a newer server's), read as such.
            #[serde(other)]
            Unknown,
        }

        impl ErrorCode {
            /// Every known code.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The wire name, e.g. `empty_text`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                    ErrorCode::Unknown => "unknown",
                }
            }

            /// The HTTP status it sets.
            pub fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                    ErrorCode::Unknown => 500,
                }
            }
        }
    };
}

error_codes! {
    /// The body is not valid JSON.
    InvalidJson = "invalid_json", 400;
    /// A `text/plain` body is not valid UTF-8 (declared so, or declaring nothing).
    InvalidUtf8 = "invalid_utf8", 400;
    /// A `text/plain` body is not valid in the charset it declared (or its byte-order mark says).
    InvalidEncoding = "invalid_encoding", 400;
    /// Neither `text` nor `texts` is there.
    MissingField = "missing_field", 400;
    /// `text` or `texts` has the wrong type, or both are there.
    InvalidField = "invalid_field", 400;
    /// The text is empty once normalised.
    EmptyText = "empty_text", 400;
    /// `texts` is empty.
    EmptyBatch = "empty_batch", 400;
    /// `texts` has more texts than the limit.
    BatchTooLarge = "batch_too_large", 400;
    /// A path that is not a valid URI (the gateway's web demo).
    BadPath = "bad_path", 400;
    /// A signed webhook delivery that is not MLflow's JSON.
    BadPayload = "bad_payload", 400;
    /// A webhook delivery without MLflow's delivery id, timestamp or signature headers.
    MissingHeaders = "missing_headers", 401;
    /// A webhook delivery whose signature does not match.
    BadSignature = "bad_signature", 401;
    /// A webhook delivery signed more than 5 minutes away from now.
    Stale = "stale", 401;
    /// No such route (or bundle file).
    NotFound = "not_found", 404;
    /// Webhooks are off (no secret configured).
    WebhooksDisabled = "disabled", 404;
    /// The route exists, the method does not (with `Allow`).
    MethodNotAllowed = "method_not_allowed", 405;
    /// The request's body did not arrive in time (the gateway's limit).
    RequestTimeout = "request_timeout", 408;
    /// The body is over the limit.
    BodyTooLarge = "body_too_large", 413;
    /// A content type other than `application/json` or `text/plain`, or none.
    UnsupportedMediaType = "unsupported_media_type", 415;
    /// A charset no Encoding Standard label names, or JSON declared as other than UTF-8.
    UnsupportedCharset = "unsupported_charset", 415;
    /// A bug: an answer could not be encoded.
    Internal = "internal", 500;
    /// Running the model failed.
    InferenceFailed = "inference_failed", 500;
    /// The gateway's edge instance failed or cut its answer.
    UpstreamFailed = "upstream_failed", 502;
    /// No model serves (the generic component, a configuration that does not load, a gateway
    /// before its first sync).
    Unavailable = "unavailable", 503;
    /// The bundle does not verify or load.
    InvalidBundle = "invalid_bundle", 503;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer of `POST /classify`, whichever request it was: what a client of the edge (the
/// gateway counting predictions, a test) reads back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassifyAnswer {
    /// `{"texts": [...]}` was asked.
    Batch(BatchPrediction),
    /// `{"text": "..."}` or a `text/plain` body was asked.
    One(Prediction),
}

impl ClassifyAnswer {
    /// Every prediction in it, in order.
    pub fn predictions(&self) -> &[Prediction] {
        match self {
            Self::Batch(b) => &b.predictions,
            Self::One(p) => std::slice::from_ref(p),
        }
    }
}

/// `manifest.json`: what a bundle is, where it came from and how well it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelManifest {
    /// [`MANIFEST_FORMAT_VERSION`]; [`COUNTED_MANIFEST_FORMAT_VERSION`] for bundles whose graph
    /// also reads counts; [`IDS_MANIFEST_FORMAT_VERSION`] for bundles whose graph
    /// reads token ids; [`LEGACY_MANIFEST_FORMAT_VERSION`] for those without
    /// [`ModelManifest::normalization`].
    pub format_version: u32,
    /// The text normalisation version the model was trained with and must be served with
    /// (`edge_classifier::normalize::Normalization`). Required from format 2 on; absent in
    /// format 1, which means version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization: Option<u32>,
    /// Registered model name.
    pub model_name: String,
    /// Registry version, stamped when the bundle is built for serving; absent at train time.
    #[serde(default)]
    pub model_version: Option<String>,
    /// Labels in the order of the model's probability output.
    pub labels: Vec<String>,
    /// RFC 3339 UTC time the bundle was written.
    pub created_at: String,
    /// sha256 over the whole training data snapshot (every batch, in order).
    pub data_snapshot: String,
    /// The graph's contract: tensor names and the limits the core applies.
    pub graph: GraphSpec,
    /// Training parameters, for people and for reproducing the run.
    pub training: BTreeMap<String, serde_json::Value>,
    /// Figures on the evaluation set the trainer used.
    pub metrics: Evaluation,
    /// How the probabilities were calibrated and when an answer is unsure. Required from format
    /// 5 on, absent before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// sha256 and size of every other file in the bundle, by file name.
    pub files: BTreeMap<String, FileDigest>,
}

/// [`ModelManifest::calibration`]: what was fitted to make the probabilities mean what they
/// say, and the rule that flags an answer [`Unsure`].
///
/// The calibration maps each label's logit `z` to `scale · z + shift`; the trainer has already
/// folded it into the graph's weights and bias, so the graph's probabilities are the calibrated
/// ones and no reader applies it again. It is recorded for people and for tools that compare
/// the model before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// `temperature` (one scale for every label, no shift) or `vector_scaling` (a scale and a
    /// shift per label).
    pub method: String,
    /// Per label, in label order: the logit multiplier.
    pub scale: Vec<f32>,
    /// Per label, in label order: the logit offset.
    pub shift: Vec<f32>,
    /// When an answer is flagged [`Unsure`]; the core applies it.
    pub unsure: UnsureRule,
    /// How it was fitted and chosen (folds, examples, each method's held-out figures), for
    /// people.
    #[serde(default)]
    pub fitted: BTreeMap<String, serde_json::Value>,
}

/// When an answer is [`Unsure`]: the first rule that holds names the reason.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UnsureRule {
    /// [`Unsure::LittleEvidence`] when the text has fewer distinct features (tokens and token
    /// pairs, the two specials aside) that the model learnt weights for…
    pub min_known_features: u32,
    /// …and its label's probability is under this: with little evidence, only a probability
    /// this high was right as often as it said.
    pub little_evidence_below: f32,
    /// [`Unsure::LowConfidence`] when the label's calibrated probability is under this.
    pub below_confidence: f32,
}

/// The ONNX graph's interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphSpec {
    /// Input: int64 token ids, shape `[n]`, as the tokenizer produced them; with
    /// [`GraphSpec::counted`], the distinct feature rows, shape `[m]`.
    pub input: String,
    /// Output: float32 probabilities, shape `[labels]`.
    pub probabilities: String,
    /// Output: float32, one row per token, then one per adjacent token pair. With
    /// [`GraphSpec::scales`], shape `[2n - 1, labels + k]`: a row starts with that feature's
    /// weights, and its logit contributions are those times its scale (any further columns are
    /// the graph's own, e.g. the squared idf). Without, shape `[2n - 1, labels]`: the rows are
    /// the contributions.
    pub contributions: String,
    /// Output: float32, shape `[1]` (every feature's multiplier: 1 / the text's norm) or
    /// `[2n - 1]` (one per feature: the first graphs with scales, still loadable). Absent in bundles
    /// whose graph multiplies the rows itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scales: Option<String>,
    /// At most this many token ids (specials included) go into the graph.
    pub max_tokens: usize,
    /// Formats 3 and 4: the graph reads distinct features, not token ids (see
    /// [`CountedInput`]). Absent before format 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted: Option<CountedInput>,
}

/// The input of a graph that reads distinct features (formats 3 and 4). The core turns the
/// token ids into features (each id, and each adjacent pair hashed to `vocab + (a · pair_mul +
/// b) mod buckets`), counts them, and feeds [`GraphSpec::input`] the distinct feature rows
/// (int64 `[m]`, in order of first occurrence), and, in format 3, [`CountedInput::counts`]
/// their counts (float32 `[m]`). The graph's `contributions` then has one row per distinct
/// feature. `scales` has one multiplier per distinct feature in format 3 (its term frequency
/// weight over the text's norm) and one for all in format 4 (every feature weighs 1: 1 / the
/// text's norm); either way a feature's share at one of its positions is its multiplier over
/// its count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Tokenizer vocabulary size: token rows are `0..vocab`, pair rows follow.
    pub vocab: usize,
    /// Pair buckets.
    pub buckets: usize,
    /// The pair hash multiplier.
    pub pair_mul: i64,
}

/// [`GraphSpec::counted`]: the counts input and how features are formed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountedInput {
    /// Input: float32 `[m]`, how often each distinct feature of [`GraphSpec::input`] occurs.
    /// Required in format 3, absent in format 4 (the graph weighs features by presence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<String>,
    /// How token ids become feature rows.
    pub features: FeatureSpec,
}

/// Size and sha256 of one bundle file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Lower-case hex sha256 of the file's bytes.
    pub sha256: String,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// Classification figures on one labelled set (`metrics.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// How many examples were scored.
    pub examples: usize,
    /// Share of examples whose top label is right.
    pub accuracy: f64,
    /// Unweighted mean of per-class F1.
    pub macro_f1: f64,
    /// Per-class figures, in label order.
    pub per_class: Vec<ClassMetrics>,
    /// Labels, in the order of the matrix rows and columns.
    pub labels: Vec<String>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class.
    pub label: String,
    /// Of the examples predicted as this class, the share that are.
    pub precision: f64,
    /// Of the examples of this class, the share predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// How many examples of this class were scored.
    pub support: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_by_its_wire_name() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_string(&ApiError::new(code, "m")).expect("encode");
            assert!(json.contains(&format!(r#""code":"{}""#, code.as_str())), "{json}");
            let back: ApiError = serde_json::from_str(&json).expect("decode");
            assert_eq!(back.error.code, code);
            assert!((400..600).contains(&code.status()), "{code}");
        }
    }

    #[test]
    fn unsure_reasons_are_written_by_their_wire_names() {
        for reason in Unsure::ALL {
            assert_eq!(serde_json::to_string(&reason).expect("encode"), format!("\"{}\"", reason.as_str()));
        }
    }

    #[test]
    fn an_answer_without_unsure_reads_as_sure() {
        // What an edge that predates format 5 answers.
        let old = r#"{"label":"java","probabilities":[],"explanation":[],"truncated":false,"model":{"name":"m","version":null}}"#;
        let p: Prediction = serde_json::from_str(old).expect("decode");
        assert_eq!(p.unsure, None);
        let json = serde_json::to_string(&Prediction { unsure: Some(Unsure::LittleEvidence), ..p }).expect("encode");
        assert!(json.contains(r#""unsure":"little_evidence""#), "{json}");
    }

    #[test]
    fn a_code_this_build_does_not_know_is_read_as_unknown() {
        let body: ApiError =
            serde_json::from_str(r#"{"error":{"code":"from_the_future","message":"m"}}"#).expect("decode");
        assert_eq!(body.error.code, ErrorCode::Unknown);
    }

    #[test]
    fn a_classify_answer_reads_as_one_or_a_batch() {
        let one = r#"{"label":"java","probabilities":[],"explanation":[],"truncated":false,"model":{"name":"m","version":null}}"#;
        let answer: ClassifyAnswer = serde_json::from_str(one).expect("one");
        assert!(matches!(answer, ClassifyAnswer::One(_)));
        let batch: ClassifyAnswer =
            serde_json::from_str(&format!(r#"{{"predictions":[{one},{one}]}}"#)).expect("batch");
        assert_eq!(batch.predictions().len(), 2);
        assert_eq!(batch.predictions()[1].label, "java");
    }
}
