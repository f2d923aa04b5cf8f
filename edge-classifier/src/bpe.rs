//! The BPE model of a bundle's tokenizer, applied to one piece: the same ids as
//! `tokenizers`' own `BPE::tokenize`, at a fraction of its cost.
//!
//! A question brings about a dozen pieces no serving instance has seen before (identifiers,
//! paths, numbers), and `tokenizers` took 2 to 3.4 µs for each (`BPE::tokenize`: a
//! thread-local cache probe, a `Word` with a binary heap, an owned `String` per token, and a
//! cache insert), which was most of a classify. This is the same merge loop over the same
//! tables, with integer keys and no strings: the trainer still trains the tokenizer with
//! `tokenizers`, and `tokenizer.json` stays the one record of it. The merge order below is
//! `tokenizers`' own (`models/bpe/word.rs`, `Word::merge_all`), queue entries that a merge has
//! outdated included, so the ids are the same for every piece; a test compares both on every
//! piece of the 16k set and on hostile text.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::Error;
use crate::tokenizer::{BpeModel, Hasher, invalid};

/// Pieces up to this many bytes take [`Bpe::tokenize_short`].
const SHORT: usize = 32;

/// An ASCII character without an id of its own.
const NO_ID: u32 = u32::MAX;

/// A tokenizer's BPE model, as integer tables.
#[derive(Debug)]
pub(crate) struct Bpe {
    /// The id of each single-character ASCII token ([`NO_ID`] when the vocabulary lacks it).
    ascii: [u32; 128],
    /// The id of every other single-character token.
    chars: HashMap<char, u32, Hasher>,
    /// [`pair_key`] → `(rank, merged id)`: the merge list, in `tokenizers`' form.
    merges: HashMap<u64, (u32, u32), Hasher>,
    /// What a character the vocabulary lacks becomes (none: it is dropped).
    unk: Option<u32>,
}

/// The key of the pair `(left, right)` in [`Bpe`]'s merge table.
fn pair_key(left: u32, right: u32) -> u64 {
    u64::from(left) << 32 | u64::from(right)
}

/// One symbol of a piece being merged (`tokenizers`' `Symbol`, with `alive` for `len != 0`).
#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    prev: i32,
    next: i32,
    alive: bool,
}

impl Bpe {
    /// The tables of a tokenizer's BPE model. Settings the trainer never uses (dropout, subword
    /// prefixes or suffixes, byte fallback, fused unknowns, ignored merges) are refused by
    /// name: each changes what `tokenize` returns, and serving a tokenizer differently from
    /// its training would be a silent skew.
    pub(crate) fn new(model: &BpeModel<'_>) -> Result<Self, Error> {
        let bad = |what: String| invalid(format_args!("BPE model: {what}"));
        if model.kind != "BPE" {
            return Err(bad(format!("type `{}` is not BPE", model.kind)));
        }
        let unsupported = [
            ("dropout", model.dropout.is_some_and(|d| d != 0.0)),
            ("continuing_subword_prefix", model.continuing_subword_prefix.is_some()),
            ("end_of_word_suffix", model.end_of_word_suffix.is_some()),
            ("fuse_unk", model.fuse_unk),
            ("byte_fallback", model.byte_fallback),
            ("ignore_merges", model.ignore_merges),
        ];
        if let Some((name, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(bad(format!("setting `{name}` is not supported by the serving core")));
        }
        let id = |token: &str| {
            model.vocab.get(token).copied().ok_or_else(|| bad(format!("`{token}` is not in the vocabulary")))
        };
        let mut ascii = [NO_ID; 128];
        let mut chars = HashMap::with_hasher(Hasher::default());
        for (token, &id) in &model.vocab {
            let mut it = token.chars();
            if let (Some(c), None) = (it.next(), it.next()) {
                match ascii.get_mut(c as usize) {
                    Some(slot) => *slot = id,
                    None => {
                        chars.insert(c, id);
                    }
                }
            }
        }
        let mut merges = HashMap::with_capacity_and_hasher(model.merges.len(), Hasher::default());
        let mut merged = String::new();
        for (rank, merge) in model.merges.iter().enumerate() {
            let (a, b) = merge.pair().ok_or_else(|| bad(format!("merge {rank} is not two tokens")))?;
            merged.clear();
            merged.push_str(a);
            merged.push_str(b);
            // As `BpeBuilder::build`: a later duplicate of a pair overwrites the earlier one.
            merges.insert(pair_key(id(a)?, id(b)?), (rank as u32, id(&merged)?));
        }
        let unk = model.unk_token.as_deref().map(id).transpose()?;
        Ok(Self { ascii, chars, merges, unk })
    }

    fn merge(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        self.merges.get(&pair_key(left, right)).copied()
    }

    /// The id a character starts as: its own, else the unknown token's, else none (dropped).
    fn char_id(&self, c: char) -> Option<u32> {
        let id = match self.ascii.get(c as usize) {
            Some(&id) => Some(id).filter(|&id| id != NO_ID),
            None => self.chars.get(&c).copied(),
        };
        id.or(self.unk)
    }

    /// The ids of `piece`, appended to `out`.
    pub(crate) fn tokenize(&self, piece: &str, out: &mut Vec<u32>) {
        if piece.len() <= SHORT {
            self.tokenize_short(piece, out);
        } else {
            self.tokenize_long(piece, out);
        }
    }

    /// Pieces of at most [`SHORT`] bytes (99% of the fresh pieces of the 16k test set): the
    /// same merges as [`Bpe::tokenize_long`], found by scanning the pairs for the lowest rank
    /// (leftmost on a tie) instead of keeping a queue, on the stack. Both orders agree: the
    /// queue always yields the live pair of lowest rank, leftmost first, and an outdated entry
    /// is never applied, since a merge only lengthens the text a position's pair spans and a
    /// longer text is another token.
    fn tokenize_short(&self, piece: &str, out: &mut Vec<u32>) {
        let mut ids = [0u32; SHORT];
        let mut n = 0;
        for c in piece.chars() {
            if let Some(id) = self.char_id(c) {
                ids[n] = id;
                n += 1;
            }
        }
        // ranks[i]: the merge of ids[i] and ids[i + 1], if any.
        let mut ranks = [None; SHORT];
        for i in 0..n.saturating_sub(1) {
            ranks[i] = self.merge(ids[i], ids[i + 1]);
        }
        loop {
            let mut best: Option<(usize, (u32, u32))> = None;
            for (i, r) in ranks[..n.saturating_sub(1)].iter().enumerate() {
                if let Some(r) = *r
                    && best.is_none_or(|(_, b)| r.0 < b.0)
                {
                    best = Some((i, r));
                }
            }
            let Some((i, (_, merged))) = best else { break };
            ids[i] = merged;
            ids.copy_within(i + 2..n, i + 1);
            ranks.copy_within(i + 2..n, i + 1);
            n -= 1;
            if i > 0 {
                ranks[i - 1] = self.merge(ids[i - 1], merged);
            }
            ranks[i] = if i + 1 < n { self.merge(merged, ids[i + 1]) } else { None };
        }
        out.extend_from_slice(&ids[..n]);
    }

    /// Longer pieces, with `tokenizers`' own queue: a scan per merge would be quadratic in a
    /// hostile text's longest piece.
    fn tokenize_long(&self, piece: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<Symbol> = Vec::with_capacity(piece.len());
        for c in piece.chars() {
            if let Some(id) = self.char_id(c) {
                let prev = symbols.len() as i32 - 1;
                if let Some(last) = symbols.last_mut() {
                    last.next = prev + 1;
                }
                symbols.push(Symbol { id, prev, next: -1, alive: true });
            }
        }
        // Lowest rank first, then leftmost: `tokenizers`' `Merge` order. An entry stays queued
        // after a merge has changed its pair; it is applied if the pair now there merges into
        // the same id, as `Word::merge_all` does.
        let mut queue = BinaryHeap::with_capacity(symbols.len());
        for (pos, w) in symbols.windows(2).enumerate() {
            if let Some((rank, id)) = self.merge(w[0].id, w[1].id) {
                queue.push(Reverse((rank, pos as u32, id)));
            }
        }
        while let Some(Reverse((_, pos, merged))) = queue.pop() {
            let pos = pos as usize;
            let left = symbols[pos];
            if !left.alive || left.next < 0 {
                continue;
            }
            let right = symbols[left.next as usize];
            if self.merge(left.id, right.id).is_none_or(|(_, id)| id != merged) {
                continue;
            }
            symbols[pos].id = merged;
            symbols[pos].next = right.next;
            symbols[left.next as usize].alive = false;
            if right.next >= 0 {
                symbols[right.next as usize].prev = pos as i32;
            }
            if left.prev >= 0
                && let Some((rank, id)) = self.merge(symbols[left.prev as usize].id, merged)
            {
                queue.push(Reverse((rank, left.prev as u32, id)));
            }
            if right.next >= 0
                && let Some((rank, id)) = self.merge(merged, symbols[right.next as usize].id)
            {
                queue.push(Reverse((rank, pos as u32, id)));
            }
        }
        out.extend(symbols.iter().filter(|s| s.alive).map(|s| s.id));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use tokenizers::{Model, Tokenizer};

    use super::*;
    use crate::tokenizer::TokenizerFile;

    /// A `tokenizer.json` with `model` as its BPE model.
    fn tokenizer_json(model: Value) -> Vec<u8> {
        let json = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
            "model": model,
        });
        json.to_string().into_bytes()
    }

    /// `tokenizers`' reading of `json`: the oracle.
    fn tokenizer(json: &[u8]) -> Tokenizer {
        Tokenizer::from_bytes(json).expect("a valid tokenizer.json")
    }

    /// The core's reading of `json`.
    fn bpe(json: &[u8]) -> Result<Bpe, Error> {
        Bpe::new(&TokenizerFile::parse(json)?.model)
    }

    /// A BPE model over `a b c é 日` whose merges compete: overlapping runs (`a a`), a pair
    /// outranked by its neighbours, and two pairs that merge into the same token (`ab c` and
    /// `a bc`), which is where a queue's outdated entries could matter.
    fn contested(unk: Option<&str>) -> Value {
        let merges = [
            ("a", "a"),
            ("b", "c"),
            ("a", "b"),
            ("aa", "a"),
            ("ab", "c"),
            ("a", "bc"),
            ("c", "a"),
            ("é", "日"),
            ("aa", "aa"),
            ("bc", "a"),
            ("c", "c"),
            ("cc", "c"),
            ("b", "a"),
            ("ba", "b"),
            ("abc", "abc"),
        ];
        let mut vocab: Vec<String> = ["[UNK]", "a", "b", "c", "é", "日"].map(String::from).to_vec();
        for (a, b) in merges {
            let merged = format!("{a}{b}");
            if !vocab.contains(&merged) {
                vocab.push(merged);
            }
        }
        let vocab: serde_json::Map<String, Value> =
            vocab.into_iter().enumerate().map(|(i, t)| (t, Value::from(i as u32))).collect();
        json!({
            "type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        })
    }

    fn reference(t: &Tokenizer, piece: &str) -> Vec<u32> {
        t.get_model().tokenize(piece).expect("tokenizers tokenizes").iter().map(|t| t.id).collect()
    }

    fn ours(bpe: &Bpe, piece: &str, f: fn(&Bpe, &str, &mut Vec<u32>)) -> Vec<u32> {
        let mut out = vec![];
        f(bpe, piece, &mut out);
        out
    }

    /// Deterministic pseudo-random strings over `alphabet`, of 0 to `max_chars` characters.
    fn strings(alphabet: &[char], count: usize, max_chars: usize) -> Vec<String> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|_| {
                let len = next() as usize % (max_chars + 1);
                (0..len).map(|_| alphabet[next() as usize % alphabet.len()]).collect()
            })
            .collect()
    }

    #[test]
    fn the_same_ids_as_tokenizers_on_contested_merges_short_and_long() {
        // `x` and `ü` are not in the vocabulary: [UNK] with an unknown token, dropped without.
        let alphabet = ['a', 'a', 'a', 'b', 'c', 'c', 'é', '日', 'x', 'ü'];
        for unk in [Some("[UNK]"), None] {
            let json = tokenizer_json(contested(unk));
            let (t, bpe) = (tokenizer(&json), bpe(&json).expect("supported"));
            let (mut short, mut long) = (0, 0);
            for s in strings(&alphabet, 20_000, 40) {
                let expected = reference(&t, &s);
                assert_eq!(ours(&bpe, &s, Bpe::tokenize), expected, "{s:?} (unk {unk:?})");
                // Both paths on every piece either may take, so each checks the other.
                assert_eq!(ours(&bpe, &s, Bpe::tokenize_long), expected, "{s:?} queued");
                if s.len() <= SHORT {
                    assert_eq!(ours(&bpe, &s, Bpe::tokenize_short), expected, "{s:?} scanned");
                    short += 1;
                } else {
                    long += 1;
                }
            }
            assert!(short > 5_000 && long > 5_000, "both paths ran: {short} short, {long} long");
        }
    }

    #[test]
    fn the_same_ids_as_tokenizers_with_a_trained_vocabulary_and_hostile_text() {
        let json = include_bytes!("../tests/fixtures/tiny/tokenizer.json");
        let (t, bpe) = (tokenizer(json), bpe(json).expect("supported"));
        let golden: Vec<String> =
            serde_json::from_str(include_str!("../tests/fixtures/golden-texts.json")).expect("json");
        let hostile = [
            "a".repeat(5_000),
            "ab".repeat(3_000),
            "\u{0}\u{7f}\u{feff}\u{200b}".into(),
            "🦀🦀🦀public".into(),
            "e\u{301}e\u{301}".into(),
            String::new(),
        ];
        let alphabet: Vec<char> = "publicstaticvoidmainprintdefconsole._()[]{}=>;:éß日🦀".chars().collect();
        let texts = golden.iter().cloned().chain(hostile).chain(strings(&alphabet, 3_000, 60));
        let mut compared = 0;
        for text in texts {
            for piece in crate::normalize::pieces(&text) {
                assert_eq!(ours(&bpe, piece, Bpe::tokenize), reference(&t, piece), "{piece:?}");
                compared += 1;
            }
        }
        assert!(compared > 5_000, "{compared}");
    }

    #[test]
    fn settings_that_change_the_ids_are_refused_by_name() {
        for (field, value) in [
            ("dropout", json!(0.1)),
            ("continuing_subword_prefix", json!("##")),
            ("end_of_word_suffix", json!("</w>")),
            ("fuse_unk", json!(true)),
            ("byte_fallback", json!(true)),
            ("ignore_merges", json!(true)),
        ] {
            let mut model = contested(Some("[UNK]"));
            // No merges: `tokenizers` checks merges against a subword prefix when it loads.
            model["merges"] = json!([]);
            model[field] = value;
            let json = tokenizer_json(model);
            // `tokenizers` reads it: the setting is valid, only not what the core serves.
            tokenizer(&json);
            let err = bpe(&json).expect_err(field).to_string();
            assert!(err.contains(&format!("`{field}`")), "{err}");
        }
        let word_level =
            tokenizer_json(json!({"type": "WordLevel", "vocab": {"[UNK]": 0, "a": 1}, "unk_token": "[UNK]"}));
        tokenizer(&word_level);
        let err = bpe(&word_level).expect_err("not BPE").to_string();
        assert!(err.contains("type `WordLevel` is not BPE"), "{err}");
    }
}
