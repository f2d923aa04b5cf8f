//! Text normalisation, defined once and versioned: the trainer applies a bundle's version
//! before training its tokenizer and before every encode, and the core applies the same
//! version, read from the bundle's manifest, to every request.
//!
//! The training data (`stack_overflow_16k`) is Stack Overflow question bodies with their HTML
//! tags stripped, lower-cased, newlines turned into `.`, `<`, `>` and `&` still entities, every
//! `"` doubled (the files were CSV-quoted once) and, in each question, the name of its own
//! language replaced by `blank`. Live questions arrive raw: HTML or Markdown, capitals, real
//! line breaks, language names. Each version brings both sides to one form:
//!
//! - [`Normalization::V1`]: lower case, entities decoded, line breaks as `.`. Every bundle
//!   whose manifest has no `normalization` field was trained with it and keeps it.
//! - [`Normalization::V2`]: first markup and names, then V1: Stack Overflow HTML loses its tags
//!   (code text kept), Markdown loses its code fences and inline-code backticks, `""` becomes
//!   `"`, and the language names become `blank` ([`BLANKED_NAMES`]).

use std::borrow::Cow;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};

/// A normalisation version. A bundle records the one it was trained with (manifest field
/// `normalization`; absent means [`Normalization::V1`]) and is served with that one only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Normalization {
    /// Lower case, entities decoded, line breaks as `.`: every bundle trained before the field.
    V1,
    /// Markup stripped and language names blanked, then V1 (see the module docs).
    V2,
}

impl Normalization {
    /// What the trainer uses for new bundles.
    pub const CURRENT: Self = Self::V2;
    /// Every version this core can apply, oldest first.
    pub const ALL: [Self; 2] = [Self::V1, Self::V2];

    /// The version with this number, if this core knows it.
    pub fn from_version(version: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.version() == version)
    }

    /// The number written in the manifest.
    pub fn version(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }

    /// Builds now what this version would otherwise build on its first use. A classifier
    /// calls it when it loads, so that the edge component's pre-initialised snapshot holds it:
    /// there a fresh instance serves each request, and would build it every time.
    pub(crate) fn prepare(self) {
        if self == Self::V2 {
            LazyLock::force(&QUOTES_AND_NAMES);
        }
    }

    /// Normalises `text` the way this version does.
    pub fn apply(self, text: &str) -> Normalized {
        match self {
            Self::V1 => normalize_v1(text),
            Self::V2 => normalize_v1(&collapse_quotes_and_blank_names(&strip_markdown_code(&strip_html(text)))),
        }
    }
}

/// The names version 2 turns into `blank`, matched case-insensitively anywhere in a word, longest
/// first so that `javascript` is not read as `java` + `script`.
///
/// Why these, and why inside words: in `stack_overflow_16k` each question had the name of its
/// own language replaced, as a substring (`javax.swing` → `blankx.swing`, `java.util` →
/// `blank.util`, `ObjectInputStream.java:1988` → `objectinputstream.blank:1988`, `python3` →
/// `blank3`, `ipython` → `iblank`, `pythonic` → `blankic`, `c#.net` → `blank.net`), while the
/// other languages' names were left alone (train: `java` in 48 javascript, 18 python and 8
/// csharp questions, never in a java one). So the data teaches that `java` means "not java".
/// Blanking all four names everywhere, in training and serving alike, removes that and maps a
/// real question's `import java.util.List` to the form the model learned. `c#` is what the
/// csharp questions had replaced (no csharp question in train still holds `c#`); `csharp` is
/// the spelling people type for it. `js`, `py`, `node.js`, `jquery` and `.net` were never
/// blanked (`js` is in 327 of 2,000 javascript training questions), so they stay: they carry
/// the same signal in training and serving. `blankscript` is the data set's own spelling of
/// `javascript` in java questions (their `java` was replaced, 11 train questions): it becomes
/// `blank` too, as `javascript` does, so the data and a live question agree.
pub const BLANKED_NAMES: [&str; 6] = ["blankscript", "javascript", "csharp", "python", "java", "c#"];

/// What a blanked name becomes, as in the data set.
const BLANK: &str = "blank";

/// Tags that only Stack Overflow's HTML form has: a text with one of them is read as HTML and
/// loses every tag. Plain text and Markdown keep their `<…>` (generics such as `List<String>`,
/// HTML written as code), which is how the data set has them (entities, decoded by V1).
const HTML_MARKERS: [&str; 6] = ["</p>", "</pre>", "</code>", "<br>", "<br/>", "<br />"];

/// Version 2's first step: a Stack Overflow HTML body loses its tags, and keeps the text
/// between them (code included; the code's `<` and `>` are entities there, decoded later).
/// A tag is `<` then a letter, `/` or `!`, up to the next `>`; a `<` that starts none stays.
fn strip_html(text: &str) -> Cow<'_, str> {
    let is_html = text.match_indices('<').any(|(i, _)| {
        let rest = &text.as_bytes()[i..];
        HTML_MARKERS.iter().any(|m| rest.len() >= m.len() && rest[..m.len()].eq_ignore_ascii_case(m.as_bytes()))
    });
    if !is_html {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let opens_tag = after.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'/' || b == b'!');
        match after.find('>') {
            Some(end) if opens_tag => rest = &after[end + 1..],
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Version 2's Markdown step: a code fence line (```` ``` ```` or `~~~`, with its info string
/// such as `java`) goes whole with its line break, and inline code loses its backticks (a run
/// of backticks paired with the next run of the same length on the line), so
/// `` `foo()` `` reads like `<code>foo()</code>` once stripped. Other backticks stay.
fn strip_markdown_code(text: &str) -> Cow<'_, str> {
    // Bytes, not chars: both marks are ASCII, and a char-set `contains` decodes every char.
    if memchr::memchr2(b'`', b'~', text.as_bytes()).is_none() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            continue;
        }
        if !line.contains('`') {
            out.push_str(line);
            continue;
        }
        // Runs of backticks on this line: (start, length), then the paired ones removed.
        let bytes = line.as_bytes();
        let mut runs = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'`' {
                let start = i;
                while i < bytes.len() && bytes[i] == b'`' {
                    i += 1;
                }
                runs.push((start, i - start, false));
            } else {
                i += 1;
            }
        }
        for a in 0..runs.len() {
            if runs[a].2 {
                continue;
            }
            if let Some(b) = (a + 1..runs.len()).find(|&b| !runs[b].2 && runs[b].1 == runs[a].1) {
                runs[a].2 = true;
                runs[b].2 = true;
            }
        }
        let mut from = 0;
        for &(start, len, paired) in &runs {
            if paired {
                out.push_str(&line[from..start]);
                from = start + len;
            }
        }
        out.push_str(&line[from..]);
    }
    Cow::Owned(out)
}

/// The doubled quote [`collapse_quotes_and_blank_names`] collapses.
const DOUBLED_QUOTE: &str = "\"\"";

/// The automaton of [`collapse_quotes_and_blank_names`]: the names, then [`DOUBLED_QUOTE`].
static QUOTES_AND_NAMES: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(BLANKED_NAMES.iter().chain([&DOUBLED_QUOTE]))
        .unwrap_or_else(|e| unreachable!("seven short ASCII patterns always build an automaton: {e}"))
});

/// Version 2's last markup step, in one pass: `""` becomes `"`, and every [`BLANKED_NAMES`]
/// occurrence, in any case, becomes `blank`.
///
/// - `""`: each data-set file was CSV-quoted once more than its CSV needs, so every `"` of a
///   question reads `""` in training (`(""e:`, `=""text/blank""`), while a live question has
///   one. Collapsing both sides gives code the same tokens.
/// - Names: at each position from the left, the longest name that starts there, then on after
///   it.
///
/// That is an Aho-Corasick automaton's leftmost-longest search over the names and `""`, whose
/// prefilter skips the text between candidates (a byte-by-byte scan was half of this
/// normalisation's time). One pass gives what collapsing first and blanking second gave: no
/// name holds a `"`, so neither step can make or break a match of the other.
fn collapse_quotes_and_blank_names(text: &str) -> Cow<'_, str> {
    let mut matches = QUOTES_AND_NAMES.find_iter(text).peekable();
    if matches.peek().is_none() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut copied = 0;
    // The patterns are ASCII and only match ASCII bytes, so every match starts and ends on a
    // char boundary.
    for m in matches {
        out.push_str(&text[copied..m.start()]);
        out.push_str(if m.pattern().as_usize() == BLANKED_NAMES.len() { "\"" } else { BLANK });
        copied = m.end();
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

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
    /// True when nothing is left to classify: the input (after markup removal) holds only
    /// whitespace and control characters, or the normalised text does. The raw check matters
    /// because line breaks become dots.
    pub blank: bool,
}

/// HTML entities that the data set keeps and that live text has as characters.
const ENTITIES: [(&str, char); 7] =
    [("&gt;", '>'), ("&lt;", '<'), ("&amp;", '&'), ("&quot;", '"'), ("&#39;", '\''), ("&apos;", '\''), ("&nbsp;", ' ')];

/// Version 1: lower case, HTML entities decoded, line breaks as `.`, other control characters
/// as spaces, cut at [`MAX_TEXT_CHARS`] characters. Its output must never change: bundles
/// trained with it answer bit-identically only while it stays as it is.
fn normalize_v1(text: &str) -> Normalized {
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
    let blank = text.chars().all(|c| c.is_whitespace() || c.is_control()) || out.trim().is_empty();
    Normalized { text: out, truncated, blank }
}

/// True when `text` holds nothing to classify under any normalisation (the trainer skips such
/// rows whatever version it trains; the core refuses them through [`Normalized::blank`]).
/// Version 2 only removes text (markup) or replaces it with words, so this is its answer.
pub fn is_blank(text: &str) -> bool {
    Normalization::ALL.iter().any(|n| n.apply(text).blank)
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

    fn v2(text: &str) -> String {
        Normalization::V2.apply(text).text
    }

    #[test]
    fn v2_strips_stack_overflow_html_and_keeps_the_code() {
        let html =
            "<p>How do I <strong>sort</strong> a list?</p>\n\n<pre><code>List&lt;String&gt; xs;\n</code></pre>\n";
        assert_eq!(v2(html), "how do i sort a list?..list<string> xs;..");
        // A `<` that opens no tag stays, and an unclosed tag at the end stays as text.
        assert_eq!(v2("<p>a < b and 1<2</p> <x"), "a < b and 1<2 <x");
    }

    #[test]
    fn v2_keeps_angle_brackets_of_plain_text() {
        // No Stack Overflow tag, so `<String>` is code (a generic), not markup.
        assert_eq!(v2("List<String> <b>x</b>"), "list<string> <b>x</b>");
    }

    #[test]
    fn v2_drops_code_fences_and_inline_backticks() {
        assert_eq!(v2("Use `foo()` here:\n```java\nint x;\n```\nDone ``a`b``"), "use foo() here:.int x;.done a`b");
        // An unpaired backtick is text.
        assert_eq!(v2("it's a ` tick"), "it's a ` tick");
    }

    #[test]
    fn v2_blanks_the_four_names_anywhere_in_any_case() {
        assert_eq!(
            v2("JavaScript, Java, javax.swing, Python3, iPython, C#.NET, CSharp, blankscript and js"),
            "blank, blank, blankx.swing, blank3, iblank, blank.net, blank, blank and js"
        );
        // Back to back, overlapping, cut short, and beside multi-byte characters: the longest
        // name at the leftmost place wins, and the search goes on after it.
        assert_eq!(v2("javaJAVASCRIPTpythonc#C#"), "blankblankblankblankblank");
        assert_eq!(v2("JJAVA cc# javascrip blankscriptjava"), "jblank cblank blankscrip blankblank");
        assert_eq!(v2("éjava€ 日本python"), "éblank€ 日本blank");
    }

    #[test]
    fn v2_collapses_the_data_sets_doubled_quotes() {
        assert_eq!(v2(r#"print(""hi"") and print("hi")"#), r#"print("hi") and print("hi")"#);
        // Pairs from the left, as `str::replace` takes them, beside a name.
        assert_eq!(v2(r#"x = """java""" + """""#), r#"x = ""blank"" + """#);
    }

    #[test]
    fn v2_gives_html_markdown_and_plain_text_of_one_question_the_same_words() {
        let html = "<p>Why does <code>x.sort()</code> fail in Python?</p>";
        let markdown = "Why does `x.sort()` fail in Python?";
        let plain = "why does x.sort() fail in python?";
        assert_eq!(v2(html), v2(plain));
        assert_eq!(v2(markdown), v2(plain));
    }

    #[test]
    fn v1_is_unchanged_by_v2() {
        // V1 is what every bundle without a `normalization` field was trained with.
        assert_eq!(Normalization::V1.apply("<p>Java `x`</p>").text, "<p>java `x`</p>");
    }

    #[test]
    fn v2_markup_only_text_is_blank() {
        assert!(Normalization::V2.apply("<p></p>\n<br>").blank);
        assert!(!Normalization::V1.apply("<p></p>").blank);
        assert!(is_blank("<p>\n</p>"));
    }

    #[test]
    fn versions_round_trip_through_their_numbers() {
        for n in Normalization::ALL {
            assert_eq!(Normalization::from_version(n.version()), Some(n));
        }
        assert_eq!(Normalization::from_version(0), None);
        assert_eq!(Normalization::from_version(3), None);
    }

    #[test]
    fn lowercases_and_decodes_entities() {
        let n = normalize_v1("X =&GT; Y &amp;&amp; Z &lt;T&gt; &unknown;");
        assert_eq!(n.text, "x => y && z <t> &unknown;");
        assert!(!n.truncated);
    }

    #[test]
    fn line_breaks_become_dots_like_the_training_data() {
        assert_eq!(normalize_v1("a\r\nb\nc\rd\te").text, "a.b.c.d e");
    }

    #[test]
    fn cuts_long_text_on_a_char_boundary() {
        let long = "é".repeat(MAX_TEXT_CHARS + 5);
        let n = normalize_v1(&long);
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
        let n = normalize_v1(&"a".repeat(MAX_TEXT_CHARS));
        assert!(!n.truncated);
    }

    #[test]
    fn ascii_runs_are_cut_at_the_limit_too() {
        let n = normalize_v1(&"AbC".repeat(MAX_TEXT_CHARS));
        assert!(n.truncated);
        assert_eq!(n.text, "abc".repeat(MAX_TEXT_CHARS)[..MAX_TEXT_CHARS]);
        // The cut falls right after an ASCII run, on the next (non-ASCII) char.
        let n = normalize_v1(&format!("{}ÉB", "A".repeat(MAX_TEXT_CHARS - 1)));
        assert!(n.truncated);
        assert_eq!(n.text, format!("{}é", "a".repeat(MAX_TEXT_CHARS - 1)));
        let n = normalize_v1(&format!("{}É", "A".repeat(MAX_TEXT_CHARS - 1)));
        assert!(!n.truncated);
    }

    #[test]
    fn mixed_text_reads_the_same_across_ascii_runs() {
        assert_eq!(normalize_v1("Hello&GT;Wörld\tX\u{1b}[1m &amp; ÀB\r\nc").text, "hello>wörld x [1m & àb.c");
    }

    #[test]
    fn multi_char_lowercase_counts_each_char() {
        // 'İ' lower-cases to two chars; the limit is on output chars.
        let n = normalize_v1(&"İ".repeat(MAX_TEXT_CHARS));
        assert!(n.truncated);
        assert_eq!(n.text.chars().count(), MAX_TEXT_CHARS);
    }
}
