//! Why the model decided: per-token contributions read from the graph's own outputs.
//!
//! The graph is linear before its softmax, so each token's (and each adjacent pair's) share
//! of every logit is exact, not an approximation. The graph returns those shares, and this
//! module only ranks them, so the explanation cannot drift from what was computed.

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
    // Per token id: sorting the few hundred (id, weight) positions and merging runs is several
    // times cheaper than a hash map here. The sort is stable, so each id's weights add up in
    // position order and the sums do not depend on the sort.
    let mut entries: Vec<(i64, f32)> =
        (1..n.saturating_sub(1)).map(|i| (ids[i], per_position[i])).collect();
    entries.sort_by_key(|e| e.0);
    let mut ranked: Vec<(i64, f32, u32)> = Vec::with_capacity(entries.len());
    for (id, weight) in entries {
        match ranked.last_mut() {
            Some(last) if last.0 == id => {
                last.1 += weight;
                last.2 += 1;
            }
            _ => ranked.push((id, weight, 1)),
        }
    }
    ranked.retain(|r| r.1 > 0.0);
    // Ties broken by id so that the order is total.
    let order = |a: &(i64, f32, u32), b: &(i64, f32, u32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if ranked.len() > k {
        ranked.select_nth_unstable_by(k, order);
        ranked.truncate(k);
    }
    ranked.sort_by(order);
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
