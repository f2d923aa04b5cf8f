//! Text to token ids: normalise, cut into pieces, run the BPE model, frame with the specials.

use tokenizers::Tokenizer;

use crate::Error;
use crate::bpe::Bpe;
use crate::normalize::{Normalization, pieces};
use crate::piece_cache::PieceCache;

/// The special token the core puts before a text's tokens.
pub const BOS_TOKEN: &str = "[BOS]";
/// The special token the core puts after a text's tokens.
pub const EOS_TOKEN: &str = "[EOS]";
/// The token for anything the vocabulary lacks.
pub const UNK_TOKEN: &str = "[UNK]";

/// A text as the graph reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids: `[BOS] tokens… [EOS]`, at most `max_tokens` of them.
    pub ids: Vec<i64>,
    /// True when the text was cut (by characters or by tokens).
    pub truncated: bool,
}

/// How a bundle turns text into the ids its graph reads: its normalisation, its tokenizer's
/// BPE model, its `[BOS]` and `[EOS]` and its `max_tokens`. The trainer encodes its data with one
/// (built from the tokenizer it has just trained), and every [`crate::Classifier`] holds one,
/// so training and serving tokenize through the same code.
#[derive(Debug)]
pub struct TextEncoder {
    normalization: Normalization,
    bpe: Bpe,
    bos: i64,
    eos: i64,
    max_tokens: usize,
}

impl TextEncoder {
    /// An encoder for `tokenizer`, under `normalization`, keeping at most `max_tokens` ids.
    /// The tokenizer must hold `[BOS]` and `[EOS]` and a BPE model with the settings the trainer
    /// uses; one whose settings would change the ids (dropout, a subword prefix…) is refused,
    /// by the setting's name.
    pub fn new(tokenizer: &Tokenizer, normalization: Normalization, max_tokens: usize) -> Result<Self, Error> {
        let special = |t: &'static str| tokenizer.token_to_id(t).map(i64::from).ok_or(Error::MissingSpecialToken(t));
        let (bos, eos) = (special(BOS_TOKEN)?, special(EOS_TOKEN)?);
        normalization.prepare();
        Ok(Self { normalization, bpe: Bpe::new(tokenizer)?, bos, eos, max_tokens })
    }

    /// The normalisation it applies.
    pub fn normalization(&self) -> Normalization {
        self.normalization
    }

    /// The ids of `[BOS]` and `[EOS]`.
    pub fn specials(&self) -> (i64, i64) {
        (self.bos, self.eos)
    }

    /// Encodes `text`, running BPE on every piece (the trainer's path; a classifier goes
    /// through its piece cache, which gives the same ids).
    pub fn encode(&self, text: &str) -> Result<Encoded, Error> {
        let mut ids = Vec::new();
        self.encode_pieces(text, |pieces, on_id| {
            for piece in pieces {
                ids.clear();
                self.bpe.tokenize(piece, &mut ids);
                for &id in &ids {
                    if !on_id(id) {
                        return;
                    }
                }
            }
        })
    }

    /// Encodes `text`, taking the ids of pieces seen before from `cache`.
    pub(crate) fn encode_cached(&self, cache: &PieceCache, text: &str) -> Result<Encoded, Error> {
        self.encode_pieces(text, |pieces, on_id| cache.encode(&self.bpe, pieces, on_id))
    }

    /// Normalises `text`, cuts it into pieces and frames the ids `ids_of` gives for them with
    /// `[BOS]` and `[EOS]`, truncating at `max_tokens`.
    ///
    /// The BPE model runs on each piece directly: `Tokenizer::encode` would rebuild the same
    /// pieces through its generic pre-tokenizer with per-byte offset bookkeeping, which was
    /// two thirds of a request's time. A test checks that both give the same ids.
    fn encode_pieces(
        &self,
        text: &str,
        ids_of: impl FnOnce(&mut dyn Iterator<Item = &str>, &mut dyn FnMut(u32) -> bool),
    ) -> Result<Encoded, Error> {
        let normalized = self.normalization.apply(text);
        if normalized.blank {
            return Err(Error::EmptyText);
        }
        let room = self.max_tokens.saturating_sub(2);
        let mut ids = Vec::with_capacity(room.min(normalized.text.len() / 2) + 2);
        ids.push(self.bos);
        let mut truncated = normalized.truncated;
        ids_of(&mut pieces(&normalized.text), &mut |id| {
            if ids.len() > room {
                truncated = true;
                return false;
            }
            ids.push(i64::from(id));
            true
        });
        ids.push(self.eos);
        Ok(Encoded { ids, truncated })
    }
}
