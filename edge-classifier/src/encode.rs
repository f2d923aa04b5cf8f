//! Text to token ids: normalise, cut into pieces, run the BPE model, frame with the specials.

use crate::Error;
use crate::bpe::Bpe;
use crate::normalize::{Normalization, Normalized, Origins, pieces};
use crate::piece_cache::PieceCache;
use crate::tokenizer::TokenizerFile;

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
    spellings: Spellings,
    vocab_size: usize,
}

/// Where a text's tokens are: each one's range in the normalised text, and the way back from
/// there to the text as sent, taken only for the tokens an explanation lists (mapping every
/// token was a third of a classify).
#[derive(Debug)]
pub(crate) struct Placed {
    ranges: Vec<[u32; 2]>,
    origins: Origins,
}

impl Placed {
    /// The byte range of the text as sent that the token at `position` (of the framed ids)
    /// stands for, if it could be placed.
    pub(crate) fn original(&self, position: usize) -> Option<[u32; 2]> {
        let [start, end] = *self.ranges.get(position.checked_sub(1)?)?;
        (start < end).then(|| {
            let r = self.origins.original(start as usize..end as usize);
            [r.start as u32, r.end as u32]
        })
    }
}

/// Each token's text, concatenated, to find a text's tokens again in its normalised form (the
/// ids alone do not say where they were): token `id` is `text[ends[id - 1]..ends[id]]`.
#[derive(Debug)]
struct Spellings {
    text: String,
    ends: Vec<u32>,
    unk: Option<i64>,
}

impl Spellings {
    fn new(tokenizer: &TokenizerFile<'_>) -> Result<Self, Error> {
        let by_id = tokenizer.tokens_by_id()?;
        let mut text = String::with_capacity(by_id.iter().map(|t| t.len()).sum());
        let ends = by_id
            .iter()
            .map(|t| {
                text.push_str(t);
                text.len() as u32
            })
            .collect();
        let unk = tokenizer.id(UNK_TOKEN).map(i64::from);
        Ok(Self { text, ends, unk })
    }

    /// The text of token `id` (empty for an id the vocabulary lacks).
    fn of(&self, id: i64) -> &str {
        let Ok(id) = usize::try_from(id) else { return "" };
        match self.ends.get(id) {
            Some(&end) => &self.text[id.checked_sub(1).map_or(0, |p| self.ends[p] as usize)..end as usize],
            None => "",
        }
    }
}

impl TextEncoder {
    /// An encoder for the tokenizer `tokenizer_json` (a bundle's `tokenizer.json`, as
    /// `tokenizers` saves it), under `normalization`, keeping at most `max_tokens` ids. The
    /// tokenizer must hold `[BOS]` and `[EOS]` and a BPE model with the settings the trainer
    /// uses; one whose settings would change the ids (dropout, a subword prefix…) is refused,
    /// by the setting's name.
    pub fn new(tokenizer_json: &[u8], normalization: Normalization, max_tokens: usize) -> Result<Self, Error> {
        let tokenizer = TokenizerFile::parse(tokenizer_json)?;
        let special = |t: &'static str| tokenizer.id(t).map(i64::from).ok_or(Error::MissingSpecialToken(t));
        let (bos, eos) = (special(BOS_TOKEN)?, special(EOS_TOKEN)?);
        normalization.prepare();
        Ok(Self {
            normalization,
            bpe: Bpe::new(&tokenizer.model)?,
            bos,
            eos,
            max_tokens,
            spellings: Spellings::new(&tokenizer)?,
            vocab_size: tokenizer.vocab_size(),
        })
    }

    /// How many tokens the tokenizer's vocabulary holds: the ids `0..vocab_size` a graph's
    /// token table covers.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The text of token `id`, if the vocabulary has it (what an explanation lists).
    pub fn token(&self, id: i64) -> Option<&str> {
        Some(self.spellings.of(id)).filter(|t| !t.is_empty())
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
        self.encode_pieces(&self.normalization.apply(text), |pieces, on_id| {
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
        self.encode_pieces(&self.normalization.apply(text), |pieces, on_id| cache.encode(&self.bpe, pieces, on_id))
    }

    /// [`TextEncoder::encode_cached`], and where each token came from in `text`
    /// ([`Placed`]).
    pub(crate) fn encode_placed(&self, cache: &PieceCache, text: &str) -> Result<(Encoded, Placed), Error> {
        let (normalized, origins) = self.normalization.trace(text);
        let encoded = self.encode_pieces(&normalized, |pieces, on_id| cache.encode(&self.bpe, pieces, on_id))?;
        let ranges = self.place(&normalized.text, &encoded.ids);
        Ok((encoded, Placed { ranges, origins }))
    }

    /// Finds the tokens `ids` (framed by the specials) again in `normalized`, one after the
    /// other as [`pieces`] and BPE cut it (the tokens of a piece spell it; whitespace separates
    /// pieces): each one's byte range there, empty for one that cannot be placed.
    fn place(&self, normalized: &str, ids: &[i64]) -> Vec<[u32; 2]> {
        // Encoding always frames the ids with [BOS] and [EOS].
        let inner = &ids[1..ids.len() - 1];
        let mut at = 0;
        inner
            .iter()
            .map(|&id| {
                let rest = &normalized[at..];
                at += rest.len() - rest.trim_start().len();
                let rest = &normalized[at..];
                let spelled = self.spellings.of(id);
                let len = if Some(id) == self.spellings.unk {
                    rest.chars().next().map_or(0, char::len_utf8)
                } else if rest.starts_with(spelled) {
                    spelled.len()
                } else {
                    // A character the tokenizer dropped (one without [UNK]): the token is
                    // further on.
                    match rest.find(spelled) {
                        Some(skip) if !spelled.is_empty() => {
                            at += skip;
                            spelled.len()
                        }
                        _ => 0,
                    }
                };
                let range = [at as u32, (at + len) as u32];
                at += len;
                range
            })
            .collect()
    }

    /// Cuts a normalised text into pieces and frames the ids `ids_of` gives for them with
    /// `[BOS]` and `[EOS]`, truncating at `max_tokens`.
    ///
    /// The BPE model runs on each piece directly: `Tokenizer::encode` would rebuild the same
    /// pieces through its generic pre-tokenizer with per-byte offset bookkeeping, which was
    /// two thirds of a request's time. A test checks that both give the same ids.
    fn encode_pieces(
        &self,
        normalized: &Normalized,
        ids_of: impl FnOnce(&mut dyn Iterator<Item = &str>, &mut dyn FnMut(u32) -> bool),
    ) -> Result<Encoded, Error> {
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
