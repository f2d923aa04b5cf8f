//! The evaluation set grows with the data: a fixed slice of every batch that arrives is held
//! out for evaluation, decided by the question's id alone.
//!
//! Because the rule reads nothing but the id, a question is held out in every run that ever
//! sees it, whichever batch it came in and whenever the run was: no model trained by any
//! retrain has trained on a held-out question, so every version can be scored on all of them,
//! and the gate scores both contenders on the same set (the pinned evaluation file plus the
//! held-out slices of the inbox as it is now). The trainer's cleaning already drops from
//! training any row whose text is in the evaluation data ([`crate::SkipReason::InEvalData`]),
//! so adding the slices to the evaluation data is all it takes. Rows without an id (the 16k
//! set cut into batches, files without a `question_id` column) are never held out: those
//! sets come with their own evaluation file.

use sha2::{Digest, Sha256};

use crate::read::Batch;

/// Percent of the questions with an id that are held out.
pub const HELD_OUT_PERCENT: u64 = 10;

/// The rule, as recorded with a run. Changing it changes which questions every model may
/// have trained on, so it is versioned: a new rule needs a new name.
pub const RULE: &str =
    "stacktag-holdout-1: sha256(\"stacktag-holdout-1:\" + question_id)[0..8] big-endian mod 100 < 10";

/// Whether the question `question_id` is held out for evaluation.
pub fn is_held_out(question_id: u64) -> bool {
    let digest = Sha256::digest(format!("stacktag-holdout-1:{question_id}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % 100 < HELD_OUT_PERCENT
}

/// The held-out slice of each batch that has one, as evaluation batches named `<path>#held-out`
/// (their digest covers the batch's digest and the rule, so a new batch or a new rule changes
/// the evaluation snapshot the gate records).
pub fn held_out(batches: &[Batch]) -> Vec<Batch> {
    batches
        .iter()
        .filter_map(|b| {
            let rows: Vec<_> = b.rows.iter().filter(|r| r.question_id.is_some_and(is_held_out)).cloned().collect();
            if rows.is_empty() {
                return None;
            }
            let mut path = b.path.clone().into_os_string();
            path.push("#held-out");
            let digest = edge_classifier::sha256_hex(format!("{}\n{RULE}", b.digest).as_bytes());
            Some(Batch { path: path.into(), digest, rows })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{RawRow, RawText};

    fn row(id: Option<u64>) -> RawRow {
        RawRow { label: Some("java".into()), text: RawText::Text(format!("q {id:?}")), question_id: id }
    }

    #[test]
    fn about_a_tenth_of_real_ids_are_held_out_and_the_rule_is_stable() {
        // Ids as Stack Overflow numbers them: consecutive, so a rule on the low digits would
        // hold out a fixed pattern; the hash spreads them.
        let held = (79_000_000u64..79_010_000).filter(|&id| is_held_out(id)).count();
        assert!((900..1100).contains(&held), "{held} of 10,000 held out");
        // The first ids the rule holds out, fixed: a change to the rule must be a new rule.
        let first: Vec<u64> = (1u64..).filter(|&id| is_held_out(id)).take(5).collect();
        // Computed by Python's hashlib, so the expectation does not mirror this code:
        // `[i for i in range(1, 200) if int.from_bytes(hashlib.sha256(
        //   f"stacktag-holdout-1:{i}".encode()).digest()[:8], "big") % 100 < 10][:5]`
        assert_eq!(first, [7, 8, 10, 11, 13]);
    }

    #[test]
    fn only_rows_with_held_out_ids_go_and_batches_without_any_give_none() {
        let ids: Vec<u64> = (1u64..).filter(|&id| is_held_out(id)).take(2).collect();
        let kept = (1u64..).find(|&id| !is_held_out(id)).expect("an id that is kept");
        let batch = Batch {
            path: "inbox/batch-1.parquet".into(),
            digest: "d".into(),
            rows: vec![row(Some(ids[0])), row(Some(kept)), row(None), row(Some(ids[1]))],
        };
        let no_ids = Batch { path: "inbox/batch-0.parquet".into(), digest: "e".into(), rows: vec![row(None)] };
        let out = held_out(&[no_ids, batch]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].path, std::path::PathBuf::from("inbox/batch-1.parquet#held-out"));
        assert_eq!(out[0].rows.iter().map(|r| r.question_id).collect::<Vec<_>>(), vec![Some(ids[0]), Some(ids[1])]);
        assert_ne!(out[0].digest, "d");
    }
}
