//! Which tags make a question one of the four languages.
//!
//! A question is labelled when its tags name exactly one of the four languages; a tag names a
//! language when it is the language's tag (`python`, `c#`, `java`, `javascript`) or one of its
//! version tags (`python-3.x`, `python-2.7`, `c#-8.0`, `java-17`, `javascript-1.8`: the tag
//! followed by `-` and a version). Stack Overflow's version tags are for questions about one
//! version of the language, and askers often use one alone: they say the language as surely as
//! the plain tag. Library and topic tags (`python-requests`, `java-stream`,
//! `javascript-objects`) do not count: many are about a library more than the language, and a
//! question whose only language signal is a library tag is the kind the model should not learn
//! the language from. `ecmascript-6`, `typescript`, `kotlin` and other languages' tags do not
//! count either. Questions with none of the four, or with two or more (a C# question that
//! calls into Java), are skipped and counted by reason.

use std::collections::BTreeMap;

use serde::Serialize;

/// The four labels, as the trainer spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// `c#`.
    Csharp,
    /// `java`.
    Java,
    /// `javascript`.
    Javascript,
    /// `python`.
    Python,
}

impl Label {
    /// Every label, with the tag that names it.
    pub const ALL: [(Label, &'static str); 4] =
        [(Label::Csharp, "c#"), (Label::Java, "java"), (Label::Javascript, "javascript"), (Label::Python, "python")];

    /// The trainer's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Csharp => "csharp",
            Label::Java => "java",
            Label::Javascript => "javascript",
            Label::Python => "python",
        }
    }

    /// The Stack Overflow tag.
    pub fn tag(self) -> &'static str {
        Self::ALL.iter().find(|(l, _)| *l == self).map_or("", |(_, t)| t)
    }

    /// The language a tag names, if any (see the module's rule).
    pub fn of_tag(tag: &str) -> Option<Label> {
        let tag = tag.trim().to_ascii_lowercase();
        Self::ALL.iter().find_map(|(label, base)| {
            let version = tag.strip_prefix(base)?;
            (version.is_empty() || version.strip_prefix('-').is_some_and(is_version)).then_some(*label)
        })
    }
}

/// `3.x`, `2.7`, `8.0`, `17`, `1.8`: digits, then `.digits` or `.x` parts.
fn is_version(text: &str) -> bool {
    let mut parts = text.split('.');
    parts.next().is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts.all(|p| p == "x" || (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
}

/// Why a question was not labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// None of the four languages' tags.
    NoLanguageTag,
    /// Two or more of them.
    SeveralLanguageTags,
    /// Already in an earlier batch (same question id), or in this one.
    SeenQuestion,
    /// The same text is in an earlier batch, this one, or the evaluation data.
    SeenText,
    /// A row the source could not give whole (a dump row without id, title, body or date).
    Incomplete,
}

/// A question's label, or why it has none.
pub type Labelled = Result<Label, Skip>;

/// The label of a question with these tags.
pub fn label<S: AsRef<str>>(tags: &[S]) -> Labelled {
    let mut found = None;
    for tag in tags {
        match (found, Label::of_tag(tag.as_ref())) {
            (_, None) => {}
            (None, Some(l)) => found = Some(l),
            (Some(a), Some(b)) if a == b => {}
            (Some(_), Some(_)) => return Err(Skip::SeveralLanguageTags),
        }
    }
    found.ok_or(Skip::NoLanguageTag)
}

/// Skipped questions by reason (serialised as `{"no_language_tag": 3, ...}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SkipCounts(pub BTreeMap<Skip, u64>);

impl SkipCounts {
    /// One more skipped for `why`.
    pub fn add(&mut self, why: Skip) {
        *self.0.entry(why).or_default() += 1;
    }

    /// How many for `why`.
    pub fn get(&self, why: Skip) -> u64 {
        self.0.get(&why).copied().unwrap_or(0)
    }

    /// All skipped.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &SkipCounts) {
        for (k, v) in &other.0 {
            *self.0.entry(*k).or_default() += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_tags_count_and_library_tags_do_not() {
        for (tag, want) in [
            ("python", Some(Label::Python)),
            ("python-3.x", Some(Label::Python)),
            ("python-2.7", Some(Label::Python)),
            ("c#", Some(Label::Csharp)),
            ("c#-8.0", Some(Label::Csharp)),
            ("java-17", Some(Label::Java)),
            ("javascript-1.8", Some(Label::Javascript)),
            ("JavaScript", Some(Label::Javascript)),
            ("python-requests", None),
            ("java-stream", None),
            ("javascript-objects", None),
            ("java-", None),
            ("python-3.", None),
            ("c++", None),
            ("ecmascript-6", None),
            ("typescript", None),
        ] {
            assert_eq!(Label::of_tag(tag), want, "{tag}");
        }
    }

    #[test]
    fn exactly_one_language_labels_a_question() {
        assert_eq!(label(&["python", "pandas"]), Ok(Label::Python));
        assert_eq!(label(&["python", "python-3.x"]), Ok(Label::Python));
        assert_eq!(label(&["c#", "java"]), Err(Skip::SeveralLanguageTags));
        assert_eq!(label(&["sql", "html"]), Err(Skip::NoLanguageTag));
        assert_eq!(label::<&str>(&[]), Err(Skip::NoLanguageTag));
    }
}
