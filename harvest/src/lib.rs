//! Stack Overflow into labelled batches for the trainer's inbox.
//!
//! Two sources of real questions, one labelling and one inbox:
//! - [`api`]: the Stack Exchange API v2.3 (`/questions` by tag and creation date, paged, its
//!   `backoff` and quota honoured);
//! - [`dump`]: the data dump's `Posts.xml`, streamed in constant memory (plain or gzip);
//! - [`label`]: which tags make a question `python`, `csharp`, `java` or `javascript`, and why
//!   the others are skipped (counted by reason);
//! - [`inbox`]: a batch written whole or not at all into a folder or an object-store prefix,
//!   without a question an earlier batch or the evaluation data already has.

pub mod api;
pub mod dump;
pub mod fetch;
pub mod inbox;
pub mod label;

pub use label::{Label, Labelled, Skip, SkipCounts};

/// A question as both sources give it, before labelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Its id on Stack Overflow.
    pub id: u64,
    /// The title, plain text (the API's HTML escaping undone).
    pub title: String,
    /// The body as Stack Overflow stores it (HTML); the trainer's normalisation reads it.
    pub body: String,
    /// Its tags, as written.
    pub tags: Vec<String>,
    /// When it was asked, Unix seconds (UTC).
    pub created: i64,
}

impl Question {
    /// The trainer's text: title and body, as Stack Overflow stores them (the same shape as the
    /// raw questions the normalisation is checked on).
    pub fn text(&self) -> String {
        format!("{}\n{}", self.title, self.body)
    }

    /// The page that credits its authors (CC BY-SA attribution).
    pub fn link(&self) -> String {
        format!("https://stackoverflow.com/q/{}", self.id)
    }

    /// The batch row, with its attribution.
    pub fn row(&self, label: Label) -> dataset::BatchRow {
        dataset::BatchRow {
            label: Some(label.as_str().to_owned()),
            text: Some(self.text()),
            attribution: Some(dataset::Attribution { question_id: self.id, link: self.link(), created: self.created }),
        }
    }
}
