//! Loading a bundle and running it.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;
use tract_onnx::prelude::*;

use crate::api::{
    LabelProbability, MANIFEST_FORMAT_VERSION, ModelManifest, ModelRef, Prediction, files,
};
use crate::normalize::normalize;
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
    bos: i64,
    eos: i64,
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
        let classifier = Self { manifest, tokenizer, model, bos, eos };
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

    /// Normalises and tokenizes `text` into the ids the graph reads.
    pub fn encode(&self, text: &str) -> Result<Encoded, Error> {
        encode_with(&self.tokenizer, self.bos, self.eos, self.manifest.graph.max_tokens, text)
    }

    /// Runs the graph on already-encoded ids.
    pub fn run(&self, ids: &[i64]) -> Result<Scores, Error> {
        let input: Tensor = tract_ndarray::Array1::from(ids.to_vec()).into_tensor();
        let outputs =
            self.model.run(tvec!(input.into())).map_err(|e| Error::Inference(format!("{e:#}")))?;
        let read = |i: usize| -> Result<Vec<f32>, Error> {
            let out = outputs.get(i).ok_or_else(|| {
                Error::Inference(format!("graph returned {} outputs, expected 3", outputs.len()))
            })?;
            let view = out.to_plain_array_view::<f32>().map_err(|e| Error::Inference(format!("{e:#}")))?;
            Ok(view.iter().copied().collect())
        };
        Ok(Scores {
            probabilities: read(0)?,
            token_contributions: read(1)?,
            pair_contributions: read(2)?,
        })
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
    let normalized = normalize(text);
    if normalized.text.trim().is_empty() {
        return Err(Error::EmptyText);
    }
    let encoding = tokenizer
        .encode(normalized.text.as_str(), false)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    let tokens = encoding.get_ids();
    let room = max_tokens.saturating_sub(2);
    let kept = tokens.len().min(room);
    let mut ids = Vec::with_capacity(kept + 2);
    ids.push(bos);
    ids.extend(tokens[..kept].iter().map(|&id| i64::from(id)));
    ids.push(eos);
    Ok(Encoded { ids, truncated: normalized.truncated || kept < tokens.len() })
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
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    hex
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
