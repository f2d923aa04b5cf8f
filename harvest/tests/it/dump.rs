use std::io::Write;

use harvest::dump::{self, DumpError};
use harvest::{Label, Skip};

use crate::{expected, fixtures};

fn posts() -> Vec<u8> {
    std::fs::read(fixtures().join("Posts.xml")).expect("Posts.xml")
}

#[test]
fn the_dump_gives_every_question_in_both_tag_encodings() {
    let mut got = Vec::new();
    let counts = dump::read_questions(posts().as_slice(), |q| {
        got.push(q);
        std::ops::ControlFlow::Continue(())
    })
    .expect("reads");
    let want = expected();
    assert_eq!(counts.questions, want.len() as u64, "{counts:?}");
    assert_eq!(counts.incomplete, 0);
    // Both encodings are in the file (the first half `<a><b>`, the rest `|a|b|`).
    let text = String::from_utf8(posts()).expect("utf-8");
    assert!(text.contains("Tags=\"&lt;") && text.contains("Tags=\"|"), "the fixture lost one encoding");
    for w in &want {
        let q = got.iter().find(|q| q.id == w.id).unwrap_or_else(|| panic!("question {} missing", w.id));
        assert_eq!(q.tags, w.tags, "{}", w.id);
        assert_eq!(q.title, w.title_plain, "{}", w.id);
        assert_eq!(q.created, w.creation_unix, "{}", w.id);
        let label = harvest::label::label(&q.tags);
        let kind = match label {
            Ok(l) => l.as_str(),
            Err(Skip::SeveralLanguageTags) => "several",
            Err(Skip::NoLanguageTag) => "none",
            Err(other) => panic!("{other:?}"),
        };
        assert_eq!(kind, w.kind, "question {} ({:?})", w.id, q.tags);
        assert!(q.text().starts_with(&format!("{}\n", w.title_plain)));
    }
    assert!(got.iter().any(|q| harvest::label::label(&q.tags) == Ok(Label::Csharp)));
}

#[test]
fn a_gzipped_dump_reads_the_same() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&posts()).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let (mut plain, mut zipped) = (Vec::new(), Vec::new());
    dump::read_questions(posts().as_slice(), |q| {
        plain.push(q);
        std::ops::ControlFlow::Continue(())
    })
    .expect("plain");
    dump::read_questions(gz.as_slice(), |q| {
        zipped.push(q);
        std::ops::ControlFlow::Continue(())
    })
    .expect("gzip");
    assert_eq!(plain, zipped);
}

#[test]
fn a_truncated_dump_fails_naming_where_and_keeps_what_came_before() {
    let whole = posts();
    // Cut inside the 10th `<row`: nine questions came before it.
    let cut = whole.windows(5).enumerate().filter(|(_, w)| w == b"<row ").nth(9).map(|(i, _)| i + 30).expect("10 rows");
    let mut got = Vec::new();
    let err = dump::read_questions(&whole[..cut], |q| {
        got.push(q);
        std::ops::ControlFlow::Continue(())
    })
    .expect_err("truncated");
    assert!(matches!(err, DumpError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("malformed at byte"), "{err}");
    assert_eq!(got.len(), 9);
}

#[test]
fn answers_and_incomplete_rows_are_counted_not_given() {
    let xml = br#"<?xml version="1.0" encoding="utf-8"?>
<posts>
  <row Id="1" PostTypeId="2" ParentId="5" Body="&lt;p&gt;an answer&lt;/p&gt;" CreationDate="2008-08-01T13:57:07.033" />
  <row Id="2" PostTypeId="1" Body="&lt;p&gt;no title&lt;/p&gt;" Tags="|python|" CreationDate="2008-08-01T13:57:07.033" />
  <row Id="3" PostTypeId="1" Title="bad date" Body="b" Tags="&lt;python&gt;" CreationDate="yesterday" />
  <row Id="4" PostTypeId="1" Title="R&amp;D in C#" Body="&lt;p&gt;x&amp;amp;y&lt;/p&gt;" Tags="&lt;c#&gt;" CreationDate="2008-08-01T13:57:07" />
</posts>"#;
    let mut got = Vec::new();
    let counts = dump::read_questions(&xml[..], |q| {
        got.push(q);
        std::ops::ControlFlow::Continue(())
    })
    .expect("reads");
    assert_eq!((counts.rows, counts.other_posts, counts.incomplete, counts.questions), (4, 1, 2, 1));
    assert_eq!(got[0].title, "R&D in C#");
    // The body is the HTML as stored: one level of XML escaping undone, HTML entities kept.
    assert_eq!(got[0].body, "<p>x&amp;y</p>");
}
