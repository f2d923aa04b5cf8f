//! Where each byte of a normalised text came from in the text a person sent, so that an
//! explanation can point at what they wrote (`Java`) rather than at what the model read
//! (`blank`).
//!
//! Every normalisation step writes its output through a [`Writer`], which records, when asked,
//! which part of the step's input each part of its output stands for: a copy (byte for byte:
//! text kept, or lower-cased to the same length) or a replacement (`&lt;` → `<`, `Java` →
//! `blank`, a block tag → ` `). Removed text (inline tags, fences) leaves no output and needs no
//! record. [`Origins`] keeps one record per step that changed the text and maps a range of the
//! final text back through them, last step first.

use std::ops::Range;

/// One stretch of a step's output and the input it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    /// Where it starts in the output.
    out: u32,
    /// Where what it stands for starts in the input.
    input: u32,
    /// Its length in the output.
    out_len: u32,
    /// The length of what it stands for in the input.
    in_len: u32,
    /// Byte for byte (output byte `k` is input byte `k`); otherwise the stretch as a whole
    /// stands for the input stretch as a whole.
    copy: bool,
}

/// A step's output under construction, and, when traced, its segments. The segments tile the
/// output: every byte written goes through [`Writer::copy`] or [`Writer::replace`].
#[derive(Debug)]
pub(super) struct Writer {
    pub(super) out: String,
    segments: Option<Vec<Segment>>,
}

impl Writer {
    pub(super) fn new(capacity: usize, traced: bool) -> Self {
        Self { out: String::with_capacity(capacity), segments: traced.then(Vec::new) }
    }

    /// Appends `text`, which is the input's bytes from `at` on, unchanged or changed byte for
    /// byte (ASCII lower-casing). Adjacent copies merge, so a text with few edits has few segments.
    pub(super) fn copy(&mut self, at: usize, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(segments) = &mut self.segments {
            let (out, input, len) = (offset(self.out.len()), offset(at), offset(text.len()));
            match segments.last_mut() {
                Some(last) if last.copy && last.out + last.out_len == out && last.input + last.in_len == input => {
                    last.out_len += len;
                    last.in_len += len;
                }
                _ => segments.push(Segment { out, input, out_len: len, in_len: len, copy: true }),
            }
        }
        self.out.push_str(text);
    }

    /// Appends `text` in place of the input's bytes `from`.
    pub(super) fn replace(&mut self, from: Range<usize>, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(segments) = &mut self.segments {
            segments.push(Segment {
                out: offset(self.out.len()),
                input: offset(from.start),
                out_len: offset(text.len()),
                in_len: offset(from.len()),
                copy: false,
            });
        }
        self.out.push_str(text);
    }

    /// The output, and its segments when traced.
    pub(super) fn finish(self) -> (String, Option<Step>) {
        (self.out, self.segments.map(|segments| Step { segments }))
    }
}

/// Offsets fit in `u32`: a request body is bounded far below 4 GiB (the gateway and the edge
/// refuse more than a few MB), and the trainer's rows are questions.
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or_else(|_| panic!("a text of {n} bytes is beyond what the core normalises"))
}

/// One step's segments, in output order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Step {
    segments: Vec<Segment>,
}

impl Step {
    /// The segment holding output byte `at`.
    fn segment(&self, at: u32) -> &Segment {
        let i = self.segments.partition_point(|s| s.out <= at);
        &self.segments[i.saturating_sub(1)]
    }

    /// The input range that output range `range` (non-empty) stands for.
    fn back(&self, range: Range<u32>) -> Range<u32> {
        let first = self.segment(range.start);
        let start = if first.copy { first.input + (range.start - first.out) } else { first.input };
        let last = self.segment(range.end - 1);
        let end = if last.copy { last.input + (range.end - last.out) } else { last.input + last.in_len };
        start..end
    }
}

/// Where a normalised text came from: the record of each step that changed it, in the order
/// they ran. Built by [`super::Normalization::trace`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origins {
    steps: Vec<Step>,
}

impl Origins {
    pub(super) fn push(&mut self, step: Option<Step>) {
        self.steps.extend(step);
    }

    /// The byte range of the original text that the normalised text's byte range `range`
    /// (non-empty, on char boundaries) stands for. It starts and ends on char boundaries of
    /// the original: segments start and end on them in every step.
    pub fn original(&self, range: Range<usize>) -> Range<usize> {
        debug_assert!(!range.is_empty(), "an empty range has no origin");
        let mut r = offset(range.start)..offset(range.end);
        for step in self.steps.iter().rev() {
            r = step.back(r);
        }
        r.start as usize..r.end as usize
    }
}
