//! The token ids of pieces already encoded, so that a serving instance runs BPE once per
//! distinct word instead of once per occurrence: a lookup here is a few tens of nanoseconds,
//! where BPE ([`crate::bpe`]) takes a few hundred for a typical piece.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::bpe::Bpe;

/// Distinct pieces kept at most (a few MB at worst); past it, new pieces are encoded each time.
/// Entries are never evicted, so a long-running instance keeps its hottest words from the
/// start, which in practice are the common ones.
pub(crate) const MAX_ENTRIES: usize = 1 << 16;

/// Longer pieces are not kept: they are rare (long identifiers, base64, minified code), and a
/// hostile text could otherwise fill the cache with junk.
const MAX_PIECE_BYTES: usize = 64;

/// The cache's hasher: seeded per process, with no OS randomness (the browser has none).
type Hasher = foldhash::fast::RandomState;

/// Two maps: nearly every piece a question holds (99% of them in the 16k set) is at most 15
/// bytes long with at most 3 ids, and those live inline in `short`, key and ids in one 32-byte
/// entry, so a lookup reads one cache line and compares one `u128`. The rest go to `long`,
/// whose boxed keys and ids cost two more reads each. A serving instance looks up a few
/// hundred pieces per request, mostly in cold memory, so the reads are what it pays for
/// (classify p50 8-10% lower than with boxed keys and ids, in alternating runs).
#[derive(Debug, Default)]
pub(crate) struct PieceCache {
    maps: RwLock<Maps>,
}

#[derive(Debug, Default)]
struct Maps {
    short: HashMap<ShortPiece, FewIds, Hasher>,
    long: HashMap<Box<str>, Box<[u32]>, Hasher>,
}

/// A piece of at most 15 bytes: its bytes zero-padded, its length in the last byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShortPiece(u128);

impl std::hash::Hash for ShortPiece {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.0);
    }
}

impl ShortPiece {
    const MAX_BYTES: usize = 15;

    fn new(piece: &str) -> Option<Self> {
        let bytes = piece.as_bytes();
        if bytes.len() > Self::MAX_BYTES {
            return None;
        }
        let mut key = [0u8; 16];
        key[..bytes.len()].copy_from_slice(bytes);
        key[15] = bytes.len() as u8;
        Some(Self(u128::from_le_bytes(key)))
    }
}

/// At most 3 ids, inline.
#[derive(Debug, Clone, Copy)]
struct FewIds {
    len: u8,
    ids: [u32; 3],
}

impl FewIds {
    fn new(ids: &[u32]) -> Option<Self> {
        let mut inline = [0; 3];
        inline.get_mut(..ids.len())?.copy_from_slice(ids);
        Some(Self { len: ids.len() as u8, ids: inline })
    }

    fn as_slice(&self) -> &[u32] {
        &self.ids[..usize::from(self.len)]
    }
}

impl Maps {
    fn get(&self, piece: &str) -> Option<&[u32]> {
        let short = ShortPiece::new(piece).and_then(|key| self.short.get(&key));
        match short {
            Some(ids) => Some(ids.as_slice()),
            None => self.long.get(piece).map(|ids| &**ids),
        }
    }

    fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    fn insert(&mut self, piece: &str, ids: Box<[u32]>) {
        match (ShortPiece::new(piece), FewIds::new(&ids)) {
            (Some(key), Some(few)) => {
                self.short.insert(key, few);
            }
            _ => {
                self.long.insert(piece.into(), ids);
            }
        }
    }
}

impl PieceCache {
    /// Hands the ids of every piece, in order, to `on_id` (which returns false to stop), running
    /// `bpe` only on pieces not seen before.
    pub(crate) fn encode<'t>(
        &self,
        bpe: &Bpe,
        pieces: impl Iterator<Item = &'t str>,
        mut on_id: impl FnMut(u32) -> bool,
    ) {
        let mut fresh: Vec<(&'t str, Box<[u32]>)> = Vec::new();
        {
            // A poisoned lock only means another thread panicked mid-insert; the maps are
            // still valid maps, so keep using them.
            let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
            'pieces: for piece in pieces {
                let ids: &[u32] = match maps.get(piece) {
                    Some(ids) => ids,
                    None => {
                        let mut ids = Vec::new();
                        bpe.tokenize(piece, &mut ids);
                        fresh.push((piece, ids.into_boxed_slice()));
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
    }

    fn remember(&self, fresh: Vec<(&str, Box<[u32]>)>) {
        if fresh.is_empty() {
            return;
        }
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        for (piece, ids) in fresh {
            if maps.len() >= MAX_ENTRIES {
                break;
            }
            if piece.len() <= MAX_PIECE_BYTES {
                maps.insert(piece, ids);
            }
        }
    }

    /// Pieces held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.maps.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_pieces_come_back_as_stored() {
        let mut maps = Maps::default();
        let cases: [(&str, &[u32]); 8] = [
            ("a", &[1]),
            ("ab", &[2]),
            ("abc", &[3, 4, 5]),
            ("abcd", &[6, 7, 8, 9]),     // a short key with too many ids: the long map
            ("exactly15bytes_", &[10]),  // the longest inline key
            ("exactly16bytes__", &[11]), // one byte too long: the long map
            ("日本語", &[12, 13]),       // 9 bytes of UTF-8
            ("", &[]),
        ];
        for (piece, ids) in cases {
            maps.insert(piece, ids.into());
        }
        assert_eq!(maps.len(), cases.len());
        assert_eq!(maps.long.len(), 2, "the 4-id piece and the 16-byte piece");
        for (piece, ids) in cases {
            assert_eq!(maps.get(piece), Some(ids), "{piece:?}");
        }
        // Prefixes, extensions and zero bytes (which pad short keys) are other keys.
        for absent in ["abcde", "abcd\0", "a\0", "\0", "exactly15bytes", "日本"] {
            assert_eq!(maps.get(absent), None, "{absent:?}");
        }
    }
}
