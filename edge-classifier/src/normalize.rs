//! Text normalisation, defined once: the trainer applies it before training the tokenizer
//! and before every encode, and the edge applies it to every request.
//!
//! The training data is lower-cased Stack Overflow HTML bodies whose newlines were turned
//! into `.` and whose `<`, `>` and `&` are still entities. Live questions arrive raw, so both
//! sides are brought to one form: lower case, entities decoded, line breaks as `.`.

/// Texts longer than this many characters (after normalisation) are cut here. It bounds the
/// work one request can cause; the longest question in the 16k set has 27,528 characters.
pub const MAX_TEXT_CHARS: usize = 32_768;

/// The normalised text, and whether it was cut at [`MAX_TEXT_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The text in the form the tokenizer reads.
    pub text: String,
    /// True when the input was longer than [`MAX_TEXT_CHARS`].
    pub truncated: bool,
}

/// HTML entities that the data set keeps and that live text has as characters.
const ENTITIES: [(&str, char); 7] =
    [("&gt;", '>'), ("&lt;", '<'), ("&amp;", '&'), ("&quot;", '"'), ("&#39;", '\''), ("&apos;", '\''), ("&nbsp;", ' ')];

/// Normalises `text`: lower case, HTML entities decoded, line breaks as `.`, other control
/// characters as spaces, cut at [`MAX_TEXT_CHARS`] characters.
pub fn normalize(text: &str) -> Normalized {
    let mut out = String::with_capacity(text.len().min(MAX_TEXT_CHARS * 4));
    let mut chars = 0usize;
    let mut truncated = false;
    let mut rest = text;
    'outer: while let Some(c) = rest.chars().next() {
        // Plain ASCII (the bulk of any question) needs only lower-casing: copy the whole run
        // at once instead of char by char. Entities and control characters take the path below.
        let plain = rest.bytes().take_while(|b| b.is_ascii() && *b != b'&' && !b.is_ascii_control()).count();
        if plain > 0 {
            let take = plain.min(MAX_TEXT_CHARS - chars);
            let start = out.len();
            out.push_str(&rest[..take]);
            out[start..].make_ascii_lowercase();
            chars += take;
            rest = &rest[take..];
            if take < plain {
                truncated = true;
                break;
            }
            continue;
        }
        let (emit, consumed): (char, usize) = if c == '&' {
            match ENTITIES.iter().find(|(e, _)| starts_with_ignore_ascii_case(rest, e)) {
                Some((e, ch)) => (*ch, e.len()),
                None => ('&', 1),
            }
        } else if c == '\r' {
            // CRLF is one line break, not two.
            let len = if rest[1..].starts_with('\n') { 2 } else { 1 };
            ('.', len)
        } else if c == '\n' {
            ('.', 1)
        } else if c.is_control() {
            (' ', c.len_utf8())
        } else {
            (c, c.len_utf8())
        };
        rest = &rest[consumed..];
        for lower in emit.to_lowercase() {
            if chars == MAX_TEXT_CHARS {
                truncated = true;
                break 'outer;
            }
            out.push(lower);
            chars += 1;
        }
    }
    Normalized { text: out, truncated }
}

/// True when `text` holds nothing to classify: blank as given, or blank once normalised
/// (only control characters). The trainer skips such rows and the core refuses them, by this
/// one definition.
pub fn is_blank(text: &str) -> bool {
    is_blank_given(text, &normalize(text))
}

/// [`is_blank`] for a text already normalised (the core's encode path normalises once).
pub fn is_blank_given(text: &str, normalized: &Normalized) -> bool {
    // The raw check comes first because normalising turns line breaks into dots.
    text.chars().all(|c| c.is_whitespace() || c.is_control()) || normalized.text.trim().is_empty()
}

/// The pieces a normalised text is cut into before BPE: runs of word characters (letters,
/// digits, `_`) and runs of other non-space characters, so code such as `=>`, `();` or `::`
/// stays whole, which is much of what tells the languages apart. Whitespace separates.
///
/// The trainer feeds these pieces to the BPE trainer and the core encodes them, so both sides
/// cut alike. [`PIECE_PATTERN`] says the same for tools that read only `tokenizer.json`.
pub fn pieces(text: &str) -> impl Iterator<Item = &str> {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Space,
        Word,
        Other,
    }
    let class = |c: char| {
        if c.is_whitespace() {
            Class::Space
        } else if c.is_alphanumeric() || c == '_' {
            Class::Word
        } else {
            Class::Other
        }
    };
    let mut rest = text;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches(char::is_whitespace);
        let first = class(rest.chars().next()?);
        let end = rest.find(|c: char| class(c) != first).unwrap_or(rest.len());
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// [`pieces`] as a `tokenizers` pre-tokenizer: whitespace split, then this regex isolated.
/// `\p{Alphabetic}\p{N}` is exactly Rust's `char::is_alphanumeric`.
pub const PIECE_PATTERN: &str = r"[^\p{Alphabetic}\p{N}_\s]+";

fn starts_with_ignore_ascii_case(haystack: &str, prefix: &str) -> bool {
    haystack.len() >= prefix.len() && haystack.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_and_decodes_entities() {
        let n = normalize("X =&GT; Y &amp;&amp; Z &lt;T&gt; &unknown;");
        assert_eq!(n.text, "x => y && z <t> &unknown;");
        assert!(!n.truncated);
    }

    #[test]
    fn line_breaks_become_dots_like_the_training_data() {
        assert_eq!(normalize("a\r\nb\nc\rd\te").text, "a.b.c.d e");
    }

    #[test]
    fn cuts_long_text_on_a_char_boundary() {
        let long = "é".repeat(MAX_TEXT_CHARS + 5);
        let n = normalize(&long);
        assert!(n.truncated);
        assert_eq!(n.text.chars().count(), MAX_TEXT_CHARS);
    }

    #[test]
    fn blank_means_nothing_but_whitespace_and_control_characters() {
        for t in ["", " ", "\n\r\n", "\u{0}\u{7f}", "&nbsp; &nbsp;"] {
            assert!(is_blank(t), "{t:?}");
        }
        for t in [".", "a", "\n.\n", "&amp;"] {
            assert!(!is_blank(t), "{t:?}");
        }
    }

    #[test]
    fn pieces_keep_words_and_punctuation_runs_whole() {
        let got: Vec<&str> = pieces("  foo_bar2(x);  a=>b ::c é!").collect();
        assert_eq!(got, ["foo_bar2", "(", "x", ");", "a", "=>", "b", "::", "c", "é", "!"]);
        assert_eq!(pieces("   ").count(), 0);
    }

    #[test]
    fn exactly_the_limit_is_not_truncated() {
        let n = normalize(&"a".repeat(MAX_TEXT_CHARS));
        assert!(!n.truncated);
    }

    #[test]
    fn ascii_runs_are_cut_at_the_limit_too() {
        let n = normalize(&"AbC".repeat(MAX_TEXT_CHARS));
        assert!(n.truncated);
        assert_eq!(n.text, "abc".repeat(MAX_TEXT_CHARS)[..MAX_TEXT_CHARS]);
        // The cut falls right after an ASCII run, on the next (non-ASCII) char.
        let n = normalize(&format!("{}ÉB", "A".repeat(MAX_TEXT_CHARS - 1)));
        assert!(n.truncated);
        assert_eq!(n.text, format!("{}é", "a".repeat(MAX_TEXT_CHARS - 1)));
        let n = normalize(&format!("{}É", "A".repeat(MAX_TEXT_CHARS - 1)));
        assert!(!n.truncated);
    }

    #[test]
    fn mixed_text_reads_the_same_across_ascii_runs() {
        assert_eq!(normalize("Hello&GT;Wörld\tX\u{1b}[1m &amp; ÀB\r\nc").text, "hello>wörld x [1m & àb.c");
    }

    #[test]
    fn multi_char_lowercase_counts_each_char() {
        // 'İ' lower-cases to two chars; the limit is on output chars.
        let n = normalize(&"İ".repeat(MAX_TEXT_CHARS));
        assert!(n.truncated);
        assert_eq!(n.text.chars().count(), MAX_TEXT_CHARS);
    }
}
