//! The HTML steps: version 2's (any Stack Overflow tag makes the whole text HTML, every tag goes)
//! and version 3's (a Stack Overflow body is recognised by its structure, block tags become
//! whitespace, and a text that is not one keeps every `<`).

use super::origins::Writer;

/// Tags that only Stack Overflow's HTML form has: under version 2, a text with one of them is
/// read as HTML and loses every tag.
const HTML_MARKERS: [&str; 6] = ["</p>", "</pre>", "</code>", "<br>", "<br/>", "<br />"];

/// Version 2's first step: a text holding any of [`HTML_MARKERS`] loses every tag (`<` then a
/// letter, `/` or `!`, up to the next `>`; a `<` that starts none stays) and keeps the text
/// between them. Kept as it was: bundles trained with version 2 are served with it. Its faults
/// (a `</p>` in a string makes a text HTML, and then `Map<String, List<Integer>>` loses its
/// generics; `Hello<br>World` becomes `HelloWorld`) are what version 3 fixes.
pub(super) fn strip_v2(text: &str, traced: bool) -> Option<Writer> {
    let is_html = text.match_indices('<').any(|(i, _)| {
        let rest = &text.as_bytes()[i..];
        HTML_MARKERS.iter().any(|m| rest.len() >= m.len() && rest[..m.len()].eq_ignore_ascii_case(m.as_bytes()))
    });
    if !is_html {
        return None;
    }
    let mut w = Writer::new(text.len(), traced);
    let mut at = 0;
    while let Some(i) = text[at..].find('<').map(|i| at + i) {
        w.copy(at, &text[at..i]);
        let after = &text[i + 1..];
        let opens_tag = after.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'/' || b == b'!');
        match after.find('>') {
            Some(end) if opens_tag => at = i + 1 + end + 1,
            _ => {
                w.copy(i, "<");
                at = i + 1;
            }
        }
    }
    w.copy(at, &text[at..]);
    Some(w)
}

/// The tags Stack Overflow keeps in a question body (its sanitiser's list), in lower case.
/// `div` and `span` come with Stack Snippets.
const SO_TAGS: &[&str] = &[
    "a",
    "b",
    "blockquote",
    "br",
    "code",
    "dd",
    "del",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "kbd",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "span",
    "strike",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
];

/// Tags with no closing tag.
const VOID_TAGS: [&str; 3] = ["br", "hr", "img"];

/// Tags that separate what is before them from what is after them: between two words they
/// become a line break, as a browser shows them, so that `Hello<br>World` or `</li><li>` do
/// not glue two words into one. Beside whitespace they go as other tags do: Stack Overflow's
/// HTML has its own line breaks around blocks, and the training data, whose tags were removed
/// without a trace, has those as `.` runs (`</code></pre>\n\n<p>` is `...` there, and a space
/// in it would make it `.` and `..`).
const BLOCK_TAGS: [&str; 22] = [
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "table",
    "td",
    "th",
    "tr",
    "ul",
];

/// A tag found in the text: where it is, its name (lower case), and how it reads.
struct Tag {
    start: usize,
    end: usize,
    name: String,
    closing: bool,
}

/// Where each `-->` of a text ends, in order: found once, so that finding each comment's end is
/// a binary search (a search from every `<!--` made 16,000 of them take 0.3 s).
struct CommentEnds(Vec<usize>);

impl CommentEnds {
    fn of(text: &str) -> Self {
        Self(memchr::memmem::find_iter(text.as_bytes(), b"-->").map(|i| i + 3).collect())
    }

    /// The end of the first `-->` that starts at or after `from`.
    fn after(&self, from: usize) -> Option<usize> {
        self.0.get(self.0.partition_point(|&end| end < from + 3)).copied()
    }
}

/// The tag of [`SO_TAGS`], or the comment, that starts at `text[at]` (a `<`), if one does.
fn tag_at(text: &str, at: usize, comments: &CommentEnds) -> Option<Tag> {
    let rest = &text[at + 1..];
    if rest.starts_with("!--") {
        let end = comments.after(at + 4)?;
        return Some(Tag { start: at, end, name: "!--".into(), closing: false });
    }
    let (closing, rest) = match rest.strip_prefix('/') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let name_len = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
    let name = rest[..name_len].to_ascii_lowercase();
    if !SO_TAGS.contains(&name.as_str()) {
        return None;
    }
    // Attributes up to the `>` that is not inside a quoted value; a closing tag has none.
    let mut quote = None;
    for (i, b) in rest.bytes().enumerate().skip(name_len) {
        match (quote, b) {
            // The name ends at a space, a `/` or the `>`.
            (None, b) if i == name_len && !(b.is_ascii_whitespace() || b == b'/' || b == b'>') => return None,
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') if !closing => quote = Some(b),
            (None, b'>') => {
                let end = at + 1 + usize::from(closing) + i + 1;
                return Some(Tag { start: at, end, name, closing });
            }
            (None, b'<') => return None,
            (None, b) if closing && !b.is_ascii_whitespace() => return None,
            _ => {}
        }
    }
    None
}

/// Version 3's HTML step. A text is read as a Stack Overflow body when, from the start of the
/// text or of a line that opens with a block tag (the title before it, such as `Why not inherit
/// from List<T>?`, stays plain text), every `<` opens or closes a tag Stack Overflow keeps, or
/// a comment, and every closing tag closes the innermost open one. Any other `<` (a generic, a
/// comparison, HTML written as code in a plain or Markdown question) means plain text, whose
/// `<` all stay. In a body, tags go, block tags and `<br>` leaving a line break between two
/// words ([`BLOCK_TAGS`]); the code's `<` and `>` are entities there, decoded later.
pub(super) fn strip_v3(text: &str, traced: bool) -> Option<Writer> {
    let lts: Vec<usize> = memchr::memchr_iter(b'<', text.as_bytes()).collect();
    let comments = CommentEnds::of(text);
    // The last `<` that is no tag: a body can only start after it.
    let tags: Vec<Option<Tag>> = lts.iter().map(|&at| tag_at(text, at, &comments)).collect();
    let after_last_stray = lts.iter().zip(&tags).rev().find(|(_, t)| t.is_none()).map(|(&at, _)| at + 1);
    let body = match after_last_stray {
        None => 0,
        Some(from) => first_block_line(text, from, &comments)?,
    };
    let tags: Vec<Tag> = lts.iter().zip(tags).filter(|(at, _)| **at >= body).filter_map(|(_, t)| t).collect();
    if tags.is_empty() || !nested(&tags) {
        return None;
    }
    let mut w = Writer::new(text.len(), traced);
    let mut at = 0;
    // The last block tag since text was last written: it separates that text from the next.
    let mut pending: Option<&Tag> = None;
    let write = |w: &mut Writer, at: usize, chunk: &str, pending: &mut Option<&Tag>| {
        if chunk.is_empty() {
            return;
        }
        if let Some(tag) = pending.take() {
            let before = w.out.chars().next_back().is_some_and(|c| !c.is_whitespace());
            let after = chunk.chars().next().is_some_and(|c| !c.is_whitespace());
            if before && after {
                w.replace(tag.start..tag.end, "\n");
            }
        }
        w.copy(at, chunk);
    };
    for tag in &tags {
        // A comment can hold what looks like tags: skip what it covers.
        if tag.start < at {
            continue;
        }
        write(&mut w, at, &text[at..tag.start], &mut pending);
        if BLOCK_TAGS.contains(&tag.name.as_str()) {
            pending = Some(tag);
        }
        at = tag.end;
    }
    write(&mut w, at, &text[at..], &mut pending);
    Some(w)
}

/// The start of the first line at or after `from` that opens (after spaces or tabs) with a
/// block tag.
fn first_block_line(text: &str, from: usize, comments: &CommentEnds) -> Option<usize> {
    memchr::memchr_iter(b'\n', &text.as_bytes()[from..]).map(|i| from + i + 1).find(|&line| {
        let start = line + text[line..].bytes().take_while(|b| *b == b' ' || *b == b'\t').count();
        text[start..].starts_with('<')
            && tag_at(text, start, comments).is_some_and(|t| !t.closing && BLOCK_TAGS.contains(&t.name.as_str()))
    })
}

/// True when every closing tag closes the innermost open one. Tags left open at the end are
/// allowed (a body cut short), a closing tag with nothing open to close is not.
fn nested(tags: &[Tag]) -> bool {
    let mut open: Vec<&str> = Vec::new();
    let mut covered = 0;
    for tag in tags {
        if tag.start < covered || tag.name == "!--" {
            covered = covered.max(tag.end);
            continue;
        }
        if tag.closing {
            if open.pop() != Some(tag.name.as_str()) {
                return false;
            }
        } else if !VOID_TAGS.contains(&tag.name.as_str()) {
            open.push(&tag.name);
        }
    }
    true
}
