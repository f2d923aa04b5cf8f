//! Why the model decided: per-token contributions read from the graph's own outputs.
//!
//! The graph is linear before its softmax, so each token's (and each adjacent pair's) share
//! of every logit is exact, not an approximation. The graph returns those shares, and this
//! module only ranks them, so the explanation cannot drift from what was computed.

use std::collections::HashMap;

use tokenizers::Tokenizer;

use crate::Scores;
use crate::api::TokenContribution;

/// The `k` tokens that pushed label `winner` most above the mean of the other labels. A pair's
/// share is split evenly between its two tokens; specials ([BOS], [EOS]) are not listed, and
/// their half of a pair goes to the real token beside them.
pub(crate) fn top_tokens(
    tokenizer: &Tokenizer,
    ids: &[i64],
    scores: &Scores,
    labels: usize,
    winner: usize,
    k: usize,
) -> Vec<TokenContribution> {
    let n = ids.len();
    let margin = |row: &[f32]| {
        let others: f32 = row.iter().enumerate().filter(|(j, _)| *j != winner).map(|(_, v)| v).sum();
        row[winner] - others / (labels - 1) as f32
    };
    // Positions 0 and n-1 are [BOS] and [EOS] (the core's encode puts them there).
    let is_special = |i: usize| i == 0 || i + 1 == n;
    let mut per_position = vec![0f32; n];
    for i in 0..n {
        per_position[i] += margin(&scores.token_contributions[i * labels..(i + 1) * labels]);
    }
    for i in 0..n.saturating_sub(1) {
        let m = margin(&scores.pair_contributions[i * labels..(i + 1) * labels]);
        match (is_special(i), is_special(i + 1)) {
            (false, false) => {
                per_position[i] += m / 2.0;
                per_position[i + 1] += m / 2.0;
            }
            (true, false) => per_position[i + 1] += m,
            (false, true) => per_position[i] += m,
            (true, true) => {}
        }
    }
    let mut by_id: HashMap<i64, (f32, u32)> = HashMap::new();
    for i in 1..n.saturating_sub(1) {
        let entry = by_id.entry(ids[i]).or_default();
        entry.0 += per_position[i];
        entry.1 += 1;
    }
    let mut ranked: Vec<(i64, f32, u32)> =
        by_id.into_iter().filter(|(_, (w, _))| *w > 0.0).map(|(id, (w, c))| (id, w, c)).collect();
    // Ties broken by id so that the order never depends on hashing.
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
        .into_iter()
        .take(k)
        .map(|(id, weight, count)| TokenContribution {
            token: u32::try_from(id)
                .ok()
                .and_then(|id| tokenizer.id_to_token(id))
                .unwrap_or_else(|| format!("#{id}")),
            weight,
            count,
        })
        .collect()
}
