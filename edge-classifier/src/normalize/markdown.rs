//! The Markdown steps: version 2's (code fences and inline-code backticks) and version 3's
//! (those, and the marks of links and emphasis in prose).

use super::origins::Writer;

/// Version 2's Markdown step: a code fence line (```` ``` ```` or `~~~`, with its info string
/// such as `java`) goes whole with its line break, and inline code loses its backticks (a run
/// of backticks paired with the next run of the same length on the line), so
/// `` `foo()` `` reads like `<code>foo()</code>` once stripped. Other backticks stay.
pub(super) fn strip_v2(text: &str, traced: bool) -> Option<Writer> {
    // Bytes, not chars: both marks are ASCII, and a char-set `contains` decodes every char.
    memchr::memchr2(b'`', b'~', text.as_bytes())?;
    let mut out = Writer::new(text.len(), traced);
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let at = line_start;
        line_start += line.len();
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            continue;
        }
        if !line.contains('`') {
            out.copy(at, line);
            continue;
        }
        let runs = backtick_runs(line);
        let mut from = 0;
        for &(start, len, paired) in &runs {
            if paired {
                out.copy(at + from, &line[from..start]);
                from = start + len;
            }
        }
        out.copy(at + from, &line[from..]);
    }
    Some(out)
}

/// The runs of backticks on `line`: (start, length, paired), a run paired with the next unpaired
/// run of the same length, as inline code is delimited.
fn backtick_runs(line: &str) -> Vec<(usize, usize, bool)> {
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
    runs
}

/// Version 3's Markdown step: version 2's, and in prose (outside fenced blocks and inline code)
/// a link's marks and URL go, as its HTML form's tag does: `[text](https://…)` and `![alt](/…)`
/// keep their text. A link needs a URL (a scheme, or a path from `/` or `#`), so code such as
/// `a[0](b)` stays.
///
/// Emphasis marks (`**bold**`) stay: the training data is one line per question (its line
/// breaks are `.`), so any rule for pairing `*` runs pairs them across code (`*args`,
/// `**kwargs`, `*p`), and one that did cost 0.0014 of test accuracy (0.9168 against 0.9181).
pub(super) fn strip_v3(text: &str, traced: bool) -> Option<Writer> {
    let bytes = text.as_bytes();
    // Most code has `[` (arrays, indexing), few texts a link: look for `](` itself.
    if memchr::memchr2(b'`', b'~', bytes).is_none() && memchr::memmem::find(bytes, b"](").is_none() {
        return None;
    }
    let mut out = Writer::new(text.len(), traced);
    let mut line_start = 0;
    let mut in_fence = false;
    for line in text.split_inclusive('\n') {
        let at = line_start;
        line_start += line.len();
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            out.copy(at, line);
            continue;
        }
        let mut from = 0;
        // The open inline code: where its text starts, and its run's length.
        let mut code: Option<(usize, usize)> = None;
        for (start, len, paired) in backtick_runs(line) {
            match code {
                _ if !paired => {}
                // Prose up to an opening run, then the run goes.
                None => {
                    prose(&mut out, at + from, &line[from..start]);
                    code = Some((start + len, len));
                    from = start + len;
                }
                // Code as it is, then its closing run goes. Runs of other lengths are its text.
                Some((text_start, open_len)) if open_len == len => {
                    out.copy(at + text_start, &line[text_start..start]);
                    code = None;
                    from = start + len;
                }
                Some(_) => {}
            }
        }
        prose(&mut out, at + from, &line[from..]);
    }
    Some(out)
}

/// Writes a stretch of prose, `text`, which starts at `at` in the input, without its links'
/// marks.
fn prose(out: &mut Writer, at: usize, text: &str) {
    let mut from = 0;
    for (start, end) in link_marks(text) {
        out.copy(at + from, &text[from..start]);
        from = end;
    }
    out.copy(at + from, &text[from..]);
}

/// Where a link's URL may start: a scheme, or a path on the same site.
const URL_STARTS: [&str; 5] = ["https://", "http://", "mailto:", "/", "#"];

/// The marks of each `[text](url)` and `![alt](url)` in `text`: the `[` (with the `!`), and
/// `](url)`, as (start, end) ranges. Linear in `text`, however many `](` it holds: a URL is the
/// run of characters up to the next `)` or whitespace, found once for every `](` inside it.
fn link_marks(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut drops: Vec<(usize, usize)> = Vec::new();
    // Where the run of URL characters that the last `](` started in ends.
    let mut run_end = 0;
    for j in memchr::memmem::find_iter(bytes, b"](") {
        let url = j + 2;
        if drops.last().is_some_and(|&(_, end)| j < end) {
            continue;
        }
        if url > run_end {
            run_end = url + text[url..].find(|c: char| c == ')' || c.is_whitespace()).unwrap_or(text.len() - url);
        }
        if run_end == url || bytes.get(run_end) != Some(&b')') || !URL_STARTS.iter().any(|s| text[url..].starts_with(s))
        {
            continue;
        }
        // The nearest `[` before, with no bracket between it and the `]`.
        let Some(open) = text[..j].rfind(['[', ']']).filter(|&k| bytes[k] == b'[') else { continue };
        let open = if open > 0 && bytes[open - 1] == b'!' { open - 1 } else { open };
        if drops.last().is_some_and(|&(_, end)| open < end) {
            continue;
        }
        drops.push((open, if bytes[open] == b'!' { open + 2 } else { open + 1 }));
        drops.push((j, run_end + 1));
    }
    drops
}
