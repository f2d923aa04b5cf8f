//! A bundle's `tokenizer.json`, read by the core itself.
//!
//! The trainer trains and saves the tokenizer with `tokenizers`, and `tokenizer.json` stays the
//! one record of it. Serving needs only its BPE model (vocabulary, merges, unknown token): the
//! core normalises, cuts pieces and merges with its own code ([`crate::bpe`]). `tokenizers`' own
//! reader builds its whole pipeline on load (normaliser, the pre-tokenizer's regex, the
//! added-token matcher, the BPE model's maps and caches), none of which the core runs: in the
//! browser that was 92 ms of the first answer and, with its regex crates, most of the module
//! besides the graph's runtime (docs/benchmarks.md#web-own-tokenizer). Tests hold this reading
//! to `tokenizers`' own on every golden bundle and on the 16k tokenizer: the same vocabulary,
//! specials and ids for every piece.

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};

use crate::Error;
use crate::api::files;

/// The tables' hasher (see the piece cache's).
pub(crate) type Hasher = foldhash::fast::RandomState;

/// The parts of `tokenizer.json` the core reads, borrowed from the JSON where they can be (a
/// token with an escape is copied). Everything else in the file (normaliser, pre-tokenizer,
/// post-processor, decoder, padding, truncation) is `tokenizers`' pipeline, which the core
/// replaces with its own and does not read.
#[derive(Deserialize)]
pub(crate) struct TokenizerFile<'a> {
    #[serde(borrow, default)]
    added_tokens: Vec<AddedToken<'a>>,
    #[serde(borrow)]
    pub(crate) model: BpeModel<'a>,
}

#[derive(Deserialize)]
struct AddedToken<'a> {
    id: u32,
    #[serde(borrow)]
    content: Token<'a>,
}

/// A token's text, borrowed from the JSON unless it has an escape. (serde borrows a `Cow`
/// only as a struct's field, not as a map key or a tuple's element, and an owned `String` per
/// token was a sixth of the load.)
#[derive(Deserialize, PartialEq, Eq, Hash)]
pub(crate) struct Token<'a>(#[serde(borrow)] Cow<'a, str>);

impl Borrow<str> for Token<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Token<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// The fields of `tokenizers`' serialised BPE model that decide what `tokenize` returns. The
/// settings default as `tokenizers`' own reader defaults them.
#[derive(Deserialize)]
pub(crate) struct BpeModel<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) dropout: Option<f32>,
    #[serde(default)]
    pub(crate) unk_token: Option<String>,
    #[serde(default)]
    pub(crate) continuing_subword_prefix: Option<String>,
    #[serde(default)]
    pub(crate) end_of_word_suffix: Option<String>,
    #[serde(default)]
    pub(crate) fuse_unk: bool,
    #[serde(default)]
    pub(crate) byte_fallback: bool,
    #[serde(default)]
    pub(crate) ignore_merges: bool,
    #[serde(borrow, default)]
    pub(crate) vocab: HashMap<Token<'a>, u32, Hasher>,
    #[serde(borrow, default)]
    pub(crate) merges: Vec<Merge<'a>>,
}

/// One merge: `["a", "b"]`, or `"a b"` as `tokenizers` wrote merges before 0.20.
pub(crate) enum Merge<'a> {
    Pair(Token<'a>, Token<'a>),
    Legacy(Token<'a>),
}

/// By hand rather than `#[serde(untagged)]`, which buffers every merge before trying each
/// form (a quarter of the load).
impl<'de: 'a, 'a> Deserialize<'de> for Merge<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Form;
        impl<'de> Visitor<'de> for Form {
            type Value = Merge<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a merge: [\"left\", \"right\"] or \"left right\"")
            }
            fn visit_borrowed_str<E: de::Error>(self, line: &'de str) -> Result<Self::Value, E> {
                Ok(Merge::Legacy(Token(Cow::Borrowed(line))))
            }
            fn visit_str<E: de::Error>(self, line: &str) -> Result<Self::Value, E> {
                Ok(Merge::Legacy(Token(Cow::Owned(line.to_owned()))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let left = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let right = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(Merge::Pair(left, right))
            }
        }
        deserializer.deserialize_any(Form)
    }
}

impl Merge<'_> {
    /// The two tokens merged, or `None` for a legacy line without exactly one space (which
    /// `tokenizers` refuses too).
    pub(crate) fn pair(&self) -> Option<(&str, &str)> {
        match self {
            Merge::Pair(a, b) => Some((a, b)),
            Merge::Legacy(Token(line)) => {
                let (a, b) = line.split_once(' ')?;
                (!b.contains(' ')).then_some((a, b))
            }
        }
    }
}

/// A failure of `tokenizer.json`, named.
pub(crate) fn invalid(what: impl std::fmt::Display) -> Error {
    Error::Tokenizer { what: format!("`{}`: {what}", files::TOKENIZER), source: None }
}

impl<'a> TokenizerFile<'a> {
    /// Reads `tokenizer.json`. Its added tokens must be tokens of the BPE vocabulary with the
    /// same ids, as the trainer writes them: `tokenizers` would give any other one a new id
    /// past the vocabulary, which no graph the trainer exports reads.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let file: Self = serde_json::from_slice(bytes).map_err(|e| Error::Tokenizer {
            what: format!("`{}` does not load", files::TOKENIZER),
            source: Some(Box::new(e)),
        })?;
        for added in &file.added_tokens {
            if file.model.vocab.get(&added.content) != Some(&added.id) {
                return Err(invalid(format_args!(
                    "added token `{}` (id {}) is not that token of the BPE vocabulary",
                    &*added.content, added.id
                )));
            }
        }
        Ok(file)
    }

    /// The id of `token` (the added tokens are the vocabulary's own, so one lookup serves).
    pub(crate) fn id(&self, token: &str) -> Option<u32> {
        self.model.vocab.get(token).copied()
    }

    /// Every token's text by id (`""` for an id no token has). Two tokens with one id are
    /// refused: `tokenizers` would keep one of them at random.
    pub(crate) fn tokens_by_id(&self) -> Result<Vec<&str>, Error> {
        let size = self.model.vocab.values().max().map_or(0, |&m| m as usize + 1);
        let mut by_id = vec![None; size];
        for (token, &id) in &self.model.vocab {
            let token: &str = token;
            if let Some(other) = by_id[id as usize].replace(token) {
                let (a, b) = if other < token { (other, token) } else { (token, other) };
                return Err(invalid(format_args!("tokens `{a}` and `{b}` have the same id {id}")));
            }
        }
        Ok(by_id.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// How many tokens the vocabulary holds (`tokenizers`' `get_vocab_size(true)`).
    pub(crate) fn vocab_size(&self) -> usize {
        self.model.vocab.len()
    }
}

#[cfg(test)]
mod tests {
    use tokenizers::Tokenizer;

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/{name}/tokenizer.json", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
    }

    /// `tokenizers`' reading of the same file, the oracle.
    fn reference(bytes: &[u8]) -> Tokenizer {
        Tokenizer::from_bytes(bytes).expect("tokenizers loads it")
    }

    #[test]
    fn the_same_vocabulary_and_specials_as_tokenizers_in_every_golden_bundle() {
        for name in ["tiny", "tiny-legacy", "tiny-feature-scales", "tiny-counted", "tiny-presence", "tiny-calibrated"] {
            let bytes = fixture(name);
            let ours = TokenizerFile::parse(&bytes).expect("reads");
            let theirs = reference(&bytes);
            assert_eq!(ours.vocab_size(), theirs.get_vocab_size(true), "{name}");
            let by_id = ours.tokens_by_id().expect("ids");
            assert_eq!(by_id.len(), theirs.get_vocab_size(true), "{name}: no gaps");
            for (id, token) in by_id.iter().enumerate() {
                assert_eq!(theirs.id_to_token(id as u32).as_deref(), Some(*token), "{name} id {id}");
                assert_eq!(ours.id(token), theirs.token_to_id(token), "{name} `{token}`");
            }
            for special in ["[UNK]", "[BOS]", "[EOS]", "[PAD]", "nope"] {
                assert_eq!(ours.id(special), theirs.token_to_id(special), "{name} {special}");
            }
        }
    }

    #[test]
    fn legacy_merge_lines_read_as_the_pairs_they_name() {
        // Escaped tokens are read too (copied, where the others are borrowed).
        let json = br#"{"added_tokens": [], "model": {"type": "BPE",
            "vocab": {"a": 0, "b": 1, "ab": 2, "\"": 3, "a\"": 4, "\u00e9": 5},
            "merges": ["a b", ["ab", "a"], ["a", "\""], "\u00e9 a"]}}"#;
        let file = TokenizerFile::parse(json).expect("reads");
        let pairs: Vec<_> = file.model.merges.iter().map(|m| m.pair()).collect();
        assert_eq!(pairs, [Some(("a", "b")), Some(("ab", "a")), Some(("a", "\"")), Some(("é", "a"))]);
        assert_eq!((file.id("\""), file.id("a\""), file.id("é")), (Some(3), Some(4), Some(5)));
        let short = TokenizerFile::parse(br#"{"model": {"type": "BPE", "merges": [["a"]]}}"#).err().expect("refused");
        assert!(crate::chain(&short).contains("invalid length 1"), "{}", crate::chain(&short));
        let odd = br#"{"model": {"type": "BPE", "vocab": {}, "merges": ["a b c", "ab"]}}"#;
        let file = TokenizerFile::parse(odd).expect("reads");
        assert!(file.model.merges.iter().all(|m| m.pair().is_none()));
    }

    #[test]
    fn what_the_core_cannot_read_is_refused_by_name() {
        let not_json = TokenizerFile::parse(b"{\"model\": ").err().expect("refused");
        assert!(crate::chain(&not_json).contains("`tokenizer.json` does not load"), "{}", crate::chain(&not_json));
        let no_model = TokenizerFile::parse(b"{\"added_tokens\": []}").err().expect("refused");
        assert!(crate::chain(&no_model).contains("missing field `model`"), "{}", crate::chain(&no_model));
        let stray = br#"{"added_tokens": [{"id": 7, "content": "[BOS]"}],
            "model": {"type": "BPE", "vocab": {"[BOS]": 0}, "merges": []}}"#;
        let err = TokenizerFile::parse(stray).err().expect("refused").to_string();
        assert!(err.contains("added token `[BOS]` (id 7)"), "{err}");
        let twice = br#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}}"#;
        let err = TokenizerFile::parse(twice).expect("reads").tokens_by_id().expect_err("refused").to_string();
        assert!(err.contains("tokens `a` and `b` have the same id 0"), "{err}");
    }
}
