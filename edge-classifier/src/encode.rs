//! Text to token ids: normalise, cut into pieces, run the BPE model, frame with the specials.

use tokenizers::Tokenizer;

use crate::Error;
use crate::normalize::{Normalization, pieces};
use crate::piece_cache;

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

/// Encodes `text` with a tokenizer that is not (yet) part of a bundle: the trainer uses this
/// while it builds one, so training and serving tokenize through the same function, with the
/// normalisation the bundle will record.
pub fn encode_with(
    normalization: Normalization,
    tokenizer: &Tokenizer,
    bos: i64,
    eos: i64,
    max_tokens: usize,
    text: &str,
) -> Result<Encoded, Error> {
    encode_text(normalization, bos, eos, max_tokens, text, |pieces, on_id| {
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

/// Normalises `text` with `normalization`, cuts it into pieces and frames the ids `ids_of` gives for them with
/// [BOS] and [EOS], truncating at `max_tokens`.
///
/// The BPE model runs on each piece directly: `Tokenizer::encode` would rebuild the same pieces
/// through its generic pre-tokenizer with per-byte offset bookkeeping, which was two thirds of
/// a request's time. A test checks that both give the same ids.
pub(crate) fn encode_text(
    normalization: Normalization,
    bos: i64,
    eos: i64,
    max_tokens: usize,
    text: &str,
    ids_of: impl FnOnce(&mut dyn Iterator<Item = &str>, &mut dyn FnMut(u32) -> bool) -> Result<(), Error>,
) -> Result<Encoded, Error> {
    let normalized = normalization.apply(text);
    if normalized.blank {
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
