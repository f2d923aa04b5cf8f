//! A text's features, counted: the input of format 3 and 4 graphs.
//!
//! A model reads each token id and each adjacent pair of ids (hashed into buckets) as a
//! feature. Format 4 graphs weigh each distinct feature once and format 3 graphs by `1 +
//! ln(count)`, both under the exact L2 norm, which needs the distinct features. Counting in
//! the graph takes a `ScatterElements`, which tract runs element by element (two thirds of a
//! request's graph time when measured), so the core counts here and the graph takes each
//! distinct feature's row once (with its count, in format 3). The explanation splits a
//! feature's share over its occurrences with these counts. The trainer counts through this
//! same function, so training and serving see the same features in the same order.

use crate::api::FeatureSpec;

/// The row of the pair `(a, b)` in the model's table: `vocab + (a · pair_mul + b) mod buckets`.
/// Ids are never negative and `pair_mul` is checked at load, so the key cannot overflow for
/// any id below `vocab`.
pub fn pair_row(spec: &FeatureSpec, a: i64, b: i64) -> i64 {
    spec.vocab as i64 + (a * spec.pair_mul + b).rem_euclid(spec.buckets as i64)
}

/// The feature row of every position of `ids`: its `n` tokens, then its `n - 1` adjacent pairs.
pub fn position_rows<'a>(spec: &'a FeatureSpec, ids: &'a [i64]) -> impl Iterator<Item = i64> + 'a {
    ids.iter().copied().chain(ids.windows(2).map(|w| pair_row(spec, w[0], w[1])))
}

/// One text's distinct features, in order of first occurrence (its tokens, then its pairs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counted {
    /// Each distinct feature's row in the model's table.
    pub rows: Vec<i64>,
    /// How often each occurs (as the graph's float input).
    pub counts: Vec<f32>,
    /// For every position (the `n` tokens, then the `n - 1` pairs): the index of its feature in
    /// `rows`, so per-feature results can be handed back to positions (the explanation).
    pub of_position: Vec<u32>,
}

/// Counts the features of `ids` (every id below `spec.vocab`, and every row below 2³², which
/// the core checks when it loads the feature spec).
pub fn count(spec: &FeatureSpec, ids: &[i64]) -> Counted {
    let positions = (2 * ids.len()).saturating_sub(1);
    let mut out = Counted {
        rows: Vec::with_capacity(positions),
        counts: Vec::with_capacity(positions),
        of_position: Vec::with_capacity(positions),
    };
    // Open addressing, one u64 per slot (the row in the high half, its index in `rows` in the
    // low half; all ones is free): linear in the positions, and small enough to stay in L1
    // for a typical question, where sorting the positions cost more than the graph's gather.
    const FREE: u64 = u64::MAX;
    let mask = (positions * 2).next_power_of_two().max(16) - 1;
    let mut slots = vec![FREE; mask + 1];
    for row in position_rows(spec, ids) {
        let row = row as u64;
        // Fibonacci hashing: the top bits of row × 2^64/φ spread consecutive rows apart.
        let mut slot = row.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(32) as usize & mask;
        let index = loop {
            let entry = slots[slot];
            if entry == FREE {
                let index = out.rows.len() as u32;
                slots[slot] = row << 32 | u64::from(index);
                out.rows.push(row as i64);
                out.counts.push(1.0);
                break index;
            }
            if entry >> 32 == row {
                let index = entry as u32;
                out.counts[index as usize] += 1.0;
                break index;
            }
            slot = (slot + 1) & mask;
        };
        out.of_position.push(index);
    }
    out
}

/// How many of a text's distinct features are known, `is_known` telling by feature index
/// (into [`Counted::rows`]); `of_position` is [`Counted::of_position`]. The features of the first
/// and last tokens ([BOS] and [EOS], which the core's encode puts there) are never counted:
/// every text has them, so they carry no evidence about this one. The core counts a served
/// answer's evidence with it and the trainer the evidence its unsure rule is derived from, so
/// both count alike.
pub fn known(of_position: &[u32], features: usize, is_known: impl Fn(usize) -> bool) -> u32 {
    let tokens = of_position.len().div_ceil(2);
    let specials = [of_position.first(), tokens.checked_sub(1).and_then(|last| of_position.get(last))];
    (0..features).filter(|&f| !specials.contains(&Some(&(f as u32))) && is_known(f)).count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: FeatureSpec = FeatureSpec { vocab: 100, buckets: 7, pair_mul: 1_000_003 };

    #[test]
    fn distinct_features_come_in_first_occurrence_order_with_their_counts() {
        let ids = [1, 5, 1, 5, 9];
        let c = count(&SPEC, &ids);
        let p = |a, b| pair_row(&SPEC, a, b);
        // Pairs (1,5) twice, (5,1) and (5,9) once; with 7 buckets two of them may share one.
        let mut expected: Vec<(i64, f32)> = vec![(1, 2.0), (5, 2.0), (9, 1.0)];
        for row in [p(1, 5), p(5, 1), p(1, 5), p(5, 9)] {
            match expected.iter_mut().find(|e| e.0 == row) {
                Some(e) => e.1 += 1.0,
                None => expected.push((row, 1.0)),
            }
        }
        assert_eq!(c.rows, expected.iter().map(|e| e.0).collect::<Vec<_>>());
        assert_eq!(c.counts, expected.iter().map(|e| e.1).collect::<Vec<_>>());
        assert_eq!(c.of_position.len(), 2 * ids.len() - 1);
        let positions: Vec<i64> = ids.iter().copied().chain(ids.windows(2).map(|w| p(w[0], w[1]))).collect();
        for (i, &f) in c.of_position.iter().enumerate() {
            assert_eq!(c.rows[f as usize], positions[i], "position {i}");
        }
        assert_eq!(c.counts.iter().sum::<f32>(), positions.len() as f32);
    }

    #[test]
    fn known_features_leave_out_the_first_and_last_tokens() {
        // Tokens [BOS]=0, 5, 6, 5, [EOS]=1: features 0, 5, 6, 1 and the four pairs.
        let c = count(&SPEC, &[0, 5, 6, 5, 1]);
        let all = known(&c.of_position, c.rows.len(), |_| true);
        assert_eq!(all as usize, c.rows.len() - 2, "every feature but [BOS] and [EOS]");
        let tokens_only = known(&c.of_position, c.rows.len(), |f| c.rows[f] < 100);
        assert_eq!(tokens_only, 2, "5 and 6, each once");
        let none = known(&c.of_position, c.rows.len(), |f| c.rows[f] == 0 || c.rows[f] == 1);
        assert_eq!(none, 0, "the specials alone are no evidence");
        assert_eq!(known(&[], 0, |_| true), 0);
    }

    #[test]
    fn pair_rows_sit_after_the_vocabulary_in_their_bucket() {
        assert_eq!(pair_row(&SPEC, 2, 3), 100 + (2 * 1_000_003 + 3) % 7);
        for (a, b) in [(0, 0), (99, 99), (42, 7)] {
            let row = pair_row(&SPEC, a, b);
            assert!((100..107).contains(&row), "{row}");
        }
        assert!(count(&SPEC, &[]).rows.is_empty());
        assert_eq!(count(&SPEC, &[3]).of_position, [0]);
    }
}
