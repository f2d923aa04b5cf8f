//! The Stack Exchange data dump's `Posts.xml`, streamed: one `<row .../>` in memory at a time,
//! so a dump of tens of gigabytes reads in constant memory. Plain XML or gzip (by its magic
//! bytes). Questions are the rows with `PostTypeId="1"`; answers and other post types are
//! counted and passed over. Tags come in both encodings the dumps have used: `<c#><linq>`
//! (before 2023) and `|c#|linq|`.

use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;

use quick_xml::events::Event;
use serde::Serialize;

use crate::Question;

/// Why a dump could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The file is not well-formed XML (or not the dump's shape) at this byte.
    #[error("`Posts.xml` is malformed at byte {position}: {message}")]
    Malformed {
        /// Where in the (decompressed) stream.
        position: u64,
        /// What the XML reader said.
        message: String,
    },
    /// Reading the file failed.
    #[error("cannot read the dump: {0}")]
    Io(#[from] std::io::Error),
}

/// What a pass over a dump saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DumpCounts {
    /// `<row>` elements.
    pub rows: u64,
    /// Of them, questions given to the caller.
    pub questions: u64,
    /// Rows of other post types (answers, wiki, ...).
    pub other_posts: u64,
    /// Questions missing an id, title, body, tags or date, or with one that does not parse.
    pub incomplete: u64,
}

/// Reads `input` (plain or gzip XML) and calls `each` with every complete question, in file
/// order, until `each` says [`ControlFlow::Break`]. Fails at the first malformed byte; the
/// questions given before it stay given.
pub fn read_questions<R: Read>(
    input: R,
    mut each: impl FnMut(Question) -> ControlFlow<()>,
) -> Result<DumpCounts, DumpError> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let gzip = input.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let source: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::with_capacity(1 << 16, flate2::bufread::MultiGzDecoder::new(input)))
    } else {
        Box::new(input)
    };
    let mut reader = quick_xml::Reader::from_reader(source);
    let mut counts = DumpCounts::default();
    let mut buf = Vec::with_capacity(1 << 14);
    loop {
        let malformed = |reader: &quick_xml::Reader<Box<dyn BufRead>>, message: String| DumpError::Malformed {
            position: reader.error_position(),
            message,
        };
        let event = reader.read_event_into(&mut buf).map_err(|e| malformed(&reader, e.to_string()))?;
        match event {
            Event::Empty(ref row) | Event::Start(ref row) if row.name().as_ref() == b"row" => {
                counts.rows += 1;
                let mut fields = RowFields::default();
                for attr in row.attributes() {
                    let attr = attr.map_err(|e| malformed(&reader, e.to_string()))?;
                    let slot = match attr.key.as_ref() {
                        b"Id" => &mut fields.id,
                        b"PostTypeId" => &mut fields.post_type,
                        b"CreationDate" => &mut fields.created,
                        b"Title" => &mut fields.title,
                        b"Body" => &mut fields.body,
                        b"Tags" => &mut fields.tags,
                        _ => continue,
                    };
                    let value = attr
                        .decode_and_unescape_value(reader.decoder())
                        .map_err(|e| malformed(&reader, e.to_string()))?;
                    *slot = Some(value.into_owned());
                }
                if fields.post_type.as_deref() != Some("1") {
                    counts.other_posts += 1;
                } else if let Some(question) = fields.question() {
                    counts.questions += 1;
                    if each(question).is_break() {
                        break;
                    }
                } else {
                    counts.incomplete += 1;
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(counts)
}

#[derive(Default)]
struct RowFields {
    id: Option<String>,
    post_type: Option<String>,
    created: Option<String>,
    title: Option<String>,
    body: Option<String>,
    tags: Option<String>,
}

impl RowFields {
    fn question(self) -> Option<Question> {
        Some(Question {
            id: self.id?.parse().ok()?,
            title: self.title?,
            body: self.body?,
            tags: tags(&self.tags?),
            created: dump_date(&self.created?)?,
        })
    }
}

/// Both encodings: `<c#><linq>` and `|c#|linq|`.
pub fn tags(field: &str) -> Vec<String> {
    let field = field.trim();
    let parts: Vec<&str> = if field.starts_with('<') {
        field.trim_start_matches('<').trim_end_matches('>').split("><").collect()
    } else {
        field.split('|').collect()
    };
    parts.into_iter().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

/// The dump's dates: `2008-08-01T13:57:07.033`, UTC, no zone, fraction optional.
pub fn dump_date(text: &str) -> Option<i64> {
    // The workspace's `time` has no macros: the format is parsed at run time.
    let format = time::format_description::parse_borrowed::<2>("[year]-[month]-[day]T[hour]:[minute]:[second]").ok()?;
    let whole = text.split('.').next()?;
    Some(time::PrimitiveDateTime::parse(whole, &format).ok()?.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tag_encodings_read_alike() {
        assert_eq!(tags("<c#><linq><.net>"), ["c#", "linq", ".net"]);
        assert_eq!(tags("|c#|linq|.net|"), ["c#", "linq", ".net"]);
        assert_eq!(tags("<python>"), ["python"]);
        assert!(tags("").is_empty());
    }

    #[test]
    fn dump_dates_are_utc_seconds() {
        assert_eq!(dump_date("2008-08-01T13:57:07.033"), Some(1_217_599_027));
        assert_eq!(dump_date("2008-08-01T13:57:07"), Some(1_217_599_027));
        assert_eq!(dump_date("01/08/2008"), None);
    }
}
