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
//! - [`Normalization::V3`]: V2 with an HTML step that recognises a Stack Overflow body by its
//!   structure, turns block tags and `<br>` into spaces, and leaves plain text's `<` alone
//!   (generics, comparisons), where V2 made a whole text HTML for one `</p>` anywhere.
//!
//! Every version can also say where each part of its output came from ([`Normalization::trace`],
//! [`Origins`]), so an explanation points at the words a person wrote.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};

mod html;
mod markdown;
mod origins;

pub use origins::Origins;
use origins::Writer;

/// A normalisation version. A bundle records the one it was trained with (manifest field
/// `normalization`; absent means [`Normalization::V1`]) and is served with that one only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Normalization {
    /// Lower case, entities decoded, line breaks as `.`: every bundle trained before the field.
    V1,
    /// Markup stripped and language names blanked, then V1 (see the module docs).
    V2,
    /// V2 with Stack Overflow HTML recognised by its structure (see the module docs).
    V3,
}

/// A step before V1's: it returns `None` when it leaves the text as it is.
type MarkupStep = fn(&str, bool) -> Option<Writer>;

impl Normalization {
    /// What the trainer uses for new bundles.
    pub const CURRENT: Self = Self::V3;
    /// Every version this core can apply, oldest first.
    pub const ALL: [Self; 3] = [Self::V1, Self::V2, Self::V3];

    /// The version with this number, if this core knows it.
    pub fn from_version(version: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.version() == version)
    }

    /// The number written in the manifest.
    pub fn version(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }

    /// Builds now what this version would otherwise build on its first use. A classifier
    /// calls it when it loads, so that the edge component's pre-initialised snapshot holds it:
    /// there a fresh instance serves each request, and would build it every time.
    pub(crate) fn prepare(self) {
        if self != Self::V1 {
            LazyLock::force(&QUOTES_AND_NAMES);
        }
    }

    /// The steps this version runs before V1's, in order.
    fn markup_steps(self) -> &'static [MarkupStep] {
        match self {
            Self::V1 => &[],
            Self::V2 => &[html::strip_v2, markdown::strip_v2, collapse_quotes_and_blank_names],
            Self::V3 => &[html::strip_v3, markdown::strip_v3, collapse_quotes_and_blank_names],
        }
    }

    /// Normalises `text` the way this version does.
    pub fn apply(self, text: &str) -> Normalized {
        self.run(text, false).0
    }

    /// Normalises `text` as [`Normalization::apply`] does, and says where each part of the
    /// result came from in `text`.
    pub fn trace(self, text: &str) -> (Normalized, Origins) {
        self.run(text, true)
    }

    fn run(self, text: &str, traced: bool) -> (Normalized, Origins) {
        let mut origins = Origins::default();
        let mut current = std::borrow::Cow::Borrowed(text);
        for step in self.markup_steps() {
            if let Some(w) = step(&current, traced) {
                let (out, record) = w.finish();
                origins.push(record);
                current = std::borrow::Cow::Owned(out);
            }
        }
        let (normalized, record) = normalize_v1(&current, traced);
        origins.push(record);
        (normalized, origins)
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
fn collapse_quotes_and_blank_names(text: &str, traced: bool) -> Option<Writer> {
    let mut matches = QUOTES_AND_NAMES.find_iter(text).peekable();
    matches.peek()?;
    let mut out = Writer::new(text.len() + 16, traced);
    let mut copied = 0;
    // The patterns are ASCII and only match ASCII bytes, so every match starts and ends on a
    // char boundary.
    for m in matches {
        out.copy(copied, &text[copied..m.start()]);
        out.replace(m.range(), if m.pattern().as_usize() == BLANKED_NAMES.len() { "\"" } else { BLANK });
        copied = m.end();
    }
    out.copy(copied, &text[copied..]);
    Some(out)
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
fn normalize_v1(text: &str, traced: bool) -> (Normalized, Option<origins::Step>) {
    let mut out = Writer::new(text.len().min(MAX_TEXT_CHARS * 4), traced);
    let mut chars = 0usize;
    let mut truncated = false;
    let mut rest = text;
    'outer: while let Some(c) = rest.chars().next() {
        // Plain ASCII (the bulk of any question) needs only lower-casing: copy the whole run
        // at once instead of char by char. Entities and control characters take the path below.
        let plain = rest.bytes().take_while(|b| b.is_ascii() && *b != b'&' && !b.is_ascii_control()).count();
        if plain > 0 {
            let take = plain.min(MAX_TEXT_CHARS - chars);
            let start = out.out.len();
            out.copy(text.len() - rest.len(), &rest[..take]);
            out.out[start..].make_ascii_lowercase();
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
        let at = text.len() - rest.len();
        rest = &rest[consumed..];
        // At most three chars (a lower case can be longer than its capital).
        let mut lowered = [0u8; 12];
        let mut len = 0;
        let mut cut = false;
        for lower in emit.to_lowercase() {
            if chars == MAX_TEXT_CHARS {
                cut = true;
                break;
            }
            len += lower.encode_utf8(&mut lowered[len..]).len();
            chars += 1;
        }
        let written = std::str::from_utf8(&lowered[..len]).unwrap_or_else(|e| unreachable!("whole chars: {e}"));
        // Same length: byte for byte (`É` → `é`, `\n` → `.`); else it stands for the whole input
        // (`&lt;` → `<`, `\r\n` → `.`, `İ` → `i̇`).
        if len == consumed {
            out.copy(at, written);
        } else {
            out.replace(at..at + consumed, written);
        }
        if cut {
            truncated = true;
            break 'outer;
        }
    }
    let blank = text.chars().all(|c| c.is_whitespace() || c.is_control()) || out.out.trim().is_empty();
    let (text, record) = out.finish();
    (Normalized { text, truncated, blank }, record)
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

    fn v1(text: &str) -> Normalized {
        normalize_v1(text, false).0
    }

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

    fn v3(text: &str) -> String {
        Normalization::V3.apply(text).text
    }

    #[test]
    fn v3_keeps_generics_and_strings_of_plain_text() {
        // The issue's examples: V2 read both as HTML for their `<br>` and ate the generics.
        let code = r#"Map<String, List<Integer>> m; // "<br>""#;
        assert_eq!(v2(code), r#"map> m; // ""#);
        assert_eq!(v3(code), r#"map<string, list<integer>> m; // "<br>""#);
        assert_eq!(v3("a < b </p>"), "a < b </p>");
    }

    #[test]
    fn v3_turns_block_tags_between_words_into_line_breaks() {
        assert_eq!(v2("Hello<br>World"), "helloworld");
        assert_eq!(v3("Hello<br>World"), "hello.world");
        assert_eq!(v3("<ul><li>one</li><li>two</li></ul>"), "one.two");
        // Beside whitespace a block tag leaves nothing, so the HTML's own line breaks read as
        // the training data has them (its tags were removed without a trace).
        assert_eq!(v3("<p>a</p>\n\n<pre><code>x = 1\n</code></pre>\n\n<p>b</p>"), "a..x = 1...b");
        // Inline tags glue, as in the data set.
        assert_eq!(v3("<p>a <code>f()</code>, <strong>b</strong>c</p>"), "a f(), bc");
    }

    #[test]
    fn v3_reads_a_body_after_a_plain_title() {
        // raw-dev's texts are a title, a line break, then the body: the title's `<T>` is text.
        let text = "Why not inherit from List<T>?\n<p>I have <code>List&lt;T&gt;</code>.</p>";
        assert_eq!(v3(text), "why not inherit from list<t>?.i have list<t>.");
        // A stray `<` inside the body makes it plain text: every `<` stays.
        assert_eq!(v3("t\n<p>a <x b</p>"), "t.<p>a <x b</p>");
    }

    #[test]
    fn v3_needs_tags_that_nest_and_that_stack_overflow_keeps() {
        assert_eq!(v3("<p>x</b></p>"), "<p>x</b></p>");
        assert_eq!(v3("<script>x</script>"), "<script>x</script>");
        assert_eq!(v3("<p>cut short"), "cut short");
        assert_eq!(v3(r#"<p><a href="http://x?a=1&amp;b>2">link</a></p><!-- c <p> -->"#), "link");
        assert_eq!(v3("<hr/><img src='a.png' alt=\"x\"/>end"), "end");
    }

    #[test]
    fn v3_drops_the_marks_and_urls_of_markdown_links() {
        assert_eq!(v3("See [the docs](https://docs.python.org/3/) and ![a](/i.png)."), "see the docs and a.");
        // Code keeps its brackets, and emphasis marks stay (see `markdown::strip_v3`).
        for code in ["a[0](b)", "x = [1](2)", "def f(*args, **kwargs)", "it is **bold**"] {
            assert_eq!(v3(code), code.to_lowercase(), "{code:?}");
        }
        // Inside inline code and fenced blocks, a link is code.
        assert_eq!(v3("`[b](/c)` [d](/e)\n```\n[f](/g)\n```\n"), "[b](/c) d.[f](/g).");
    }

    #[test]
    fn every_version_traces_what_it_applies() {
        let texts = [
            "<p>Why does <code>List&lt;String&gt;</code> fail in Java?</p>\r\n<pre><code>x\n</code></pre>",
            "See [docs](https://x.y) **now** `c#` ```\nprint(\"\"hi\"\")\n```\nİstanbul &amp; É\u{0}",
            "Map<String, List<Integer>> m; // \"<br>\" Hello<br>World",
        ];
        // And hostile ones: each of these took a search to the text's end from every mark
        // (0.3 s for the comments, 1.7 s for the links) before the ends were found once.
        let hostile =
            ["<!--".repeat(16_000), "\n<!--".repeat(13_000), "](".repeat(32_000) + ")", "<a \"".repeat(16_000)];
        for n in Normalization::ALL {
            for text in texts.iter().copied().chain(hostile.iter().map(String::as_str)) {
                assert_eq!(n.trace(text).0, n.apply(text), "{n:?} {:?}", &text[..text.len().min(40)]);
            }
        }
        // A comment ends at its own `-->`, and `<!-->` is none.
        assert_eq!(v3("<p>a<!-- x --> b<!-- y -->c</p>"), "a bc");
        assert_eq!(v3("<p>a</p><!-->"), "<p>a</p><!-->");
    }

    /// The original text behind `part`, the first place it occurs in `text` normalised by `n`.
    fn origin_of(n: Normalization, text: &str, part: &str) -> String {
        let (normalized, origins) = n.trace(text);
        let at = normalized.text.find(part).unwrap_or_else(|| panic!("{part:?} not in {:?}", normalized.text));
        text[origins.original(at..at + part.len())].to_string()
    }

    #[test]
    fn origins_point_at_what_was_written() {
        let html = "<p>Why does <code>List&lt;String&gt;</code> fail in Java?</p>\r\n<p>Ünïcode  <b>x</b></p>";
        for n in [Normalization::V2, Normalization::V3] {
            assert_eq!(origin_of(n, html, "blank"), "Java");
            assert_eq!(origin_of(n, html, "list<string>"), "List&lt;String&gt;");
            assert_eq!(origin_of(n, html, "<"), "&lt;");
            assert_eq!(origin_of(n, html, "ünïcode"), "Ünïcode");
            assert_eq!(origin_of(n, html, "x"), "x");
        }
        assert_eq!(origin_of(Normalization::V3, html, "?."), "?</p>\r\n");
        assert_eq!(origin_of(Normalization::V1, "A\r\nB", "."), "\r\n");
        assert_eq!(origin_of(Normalization::V3, "Hello<br>World", "o.w"), "o<br>W");
        assert_eq!(origin_of(Normalization::V3, "[Python](https://python.org) 3", "blank"), "Python");
        assert_eq!(origin_of(Normalization::V3, r#"say ""C#"""#, "\"blank\""), r#"""C#"""#);
        // A lower case longer than its capital stands for the whole capital.
        assert_eq!(origin_of(Normalization::V1, "xİy", "i\u{307}"), "İ");
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
        assert_eq!(Normalization::from_version(4), None);
    }

    #[test]
    fn lowercases_and_decodes_entities() {
        let n = v1("X =&GT; Y &amp;&amp; Z &lt;T&gt; &unknown;");
        assert_eq!(n.text, "x => y && z <t> &unknown;");
        assert!(!n.truncated);
    }

    #[test]
    fn line_breaks_become_dots_like_the_training_data() {
        assert_eq!(v1("a\r\nb\nc\rd\te").text, "a.b.c.d e");
    }

    #[test]
    fn cuts_long_text_on_a_char_boundary() {
        let long = "é".repeat(MAX_TEXT_CHARS + 5);
        let n = v1(&long);
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
        let n = v1(&"a".repeat(MAX_TEXT_CHARS));
        assert!(!n.truncated);
    }

    #[test]
    fn ascii_runs_are_cut_at_the_limit_too() {
        let n = v1(&"AbC".repeat(MAX_TEXT_CHARS));
        assert!(n.truncated);
        assert_eq!(n.text, "abc".repeat(MAX_TEXT_CHARS)[..MAX_TEXT_CHARS]);
        // The cut falls right after an ASCII run, on the next (non-ASCII) char.
        let n = v1(&format!("{}ÉB", "A".repeat(MAX_TEXT_CHARS - 1)));
        assert!(n.truncated);
        assert_eq!(n.text, format!("{}é", "a".repeat(MAX_TEXT_CHARS - 1)));
        let n = v1(&format!("{}É", "A".repeat(MAX_TEXT_CHARS - 1)));
        assert!(!n.truncated);
    }

    #[test]
    fn mixed_text_reads_the_same_across_ascii_runs() {
        assert_eq!(v1("Hello&GT;Wörld\tX\u{1b}[1m &amp; ÀB\r\nc").text, "hello>wörld x [1m & àb.c");
    }

    #[test]
    fn multi_char_lowercase_counts_each_char() {
        // 'İ' lower-cases to two chars; the limit is on output chars.
        let n = v1(&"İ".repeat(MAX_TEXT_CHARS));
        assert!(n.truncated);
        assert_eq!(n.text.chars().count(), MAX_TEXT_CHARS);
    }
}
