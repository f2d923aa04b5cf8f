//! The token ids of pieces already encoded, so that a serving instance runs BPE once per
//! distinct word instead of once per occurrence.
//!
//! `tokenizers` keeps a cache of its own, but a hit there still builds a `Token` (an owned
//! `String` and offsets) per token, and it stops filling at 10,000 words; most of a request's
//! encode time went there. This cache hands back the ids alone.

use std::collections::HashMap;
use std::sync::RwLock;

use tokenizers::{Model, Tokenizer};

use crate::Error;

/// Distinct pieces kept at most (a few MB at worst); past it, new pieces are encoded each time.
/// Entries are never evicted, so a long-running instance keeps its hottest words from the
/// start, which in practice are the common ones.
pub(crate) const MAX_ENTRIES: usize = 1 << 16;

/// Longer pieces are not kept: they are rare (long identifiers, base64, minified code), and a
/// hostile text could otherwise fill the cache with junk.
const MAX_PIECE_BYTES: usize = 64;

#[derive(Debug, Default)]
pub(crate) struct PieceCache {
    map: RwLock<HashMap<Box<str>, Box<[u32]>, foldhash::fast::RandomState>>,
}

impl PieceCache {
    /// Hands the ids of every piece, in order, to `on_id` (which returns false to stop), running
    /// the tokenizer's BPE model only on pieces not seen before.
    pub(crate) fn encode<'t>(
        &self,
        tokenizer: &Tokenizer,
        pieces: impl Iterator<Item = &'t str>,
        mut on_id: impl FnMut(u32) -> bool,
    ) -> Result<(), Error> {
        let mut fresh: Vec<(&'t str, Box<[u32]>)> = Vec::new();
        {
            // A poisoned lock only means another thread panicked mid-insert; the map is still
            // a valid map, so keep using it.
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            'pieces: for piece in pieces {
                let ids: &[u32] = match map.get(piece) {
                    Some(ids) => ids,
                    None => {
                        fresh.push((piece, tokenize(tokenizer, piece)?));
                        &fresh[fresh.len() - 1].1
                    }
                };
                for &id in ids {
                    if !on_id(id) {
                        break 'pieces;
                    }
                }
            }
        }
        self.remember(fresh);
        Ok(())
    }

    fn remember(&self, fresh: Vec<(&str, Box<[u32]>)>) {
        if fresh.is_empty() {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        for (piece, ids) in fresh {
            if map.len() >= MAX_ENTRIES {
                break;
            }
            if piece.len() <= MAX_PIECE_BYTES {
                map.insert(piece.into(), ids);
            }
        }
    }

    /// Pieces held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One piece through the tokenizer's BPE model.
pub(crate) fn tokenize(tokenizer: &Tokenizer, piece: &str) -> Result<Box<[u32]>, Error> {
    Ok(tokenizer
        .get_model()
        .tokenize(piece)
        .map_err(|e| Error::Tokenizer(e.to_string()))?
        .into_iter()
        .map(|t| t.id)
        .collect())
}
