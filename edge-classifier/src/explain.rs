//! Why the model decided: per-token contributions read from the graph's own outputs.
//!
//! The graph is linear before its softmax, so each token's (and each adjacent pair's) share
//! of every logit is exact, not an approximation. The graph returns those shares, and this
//! module only ranks them, so the explanation cannot drift from what was computed.

use crate::api::TokenContribution;
use crate::encode::{Placed, TextEncoder};
use crate::graph::Outputs;

/// The `k` tokens that pushed label `winner` most above the mean of the other labels. A pair's
/// share is split evenly between its two tokens; specials ([BOS], [EOS]) are not listed, and
/// their half of a pair goes to the real token beside them. Each token comes with where its
/// occurrences are in the text as sent.
pub(crate) fn top_tokens(
    encoder: &TextEncoder,
    ids: &[i64],
    placed: &Placed,
    outputs: &Outputs,
    winner: usize,
    k: usize,
) -> Vec<TokenContribution> {
    let n = ids.len();
    let margin = |row: &[f32]| {
        let others: f32 = row.iter().enumerate().filter(|(j, _)| *j != winner).map(|(_, v)| v).sum();
        row[winner] - others / (row.len() - 1) as f32
    };
    // Each feature's margin once (a counted graph's features occur several times each), read
    // back at each of its positions.
    let per_feature: Vec<f32> = outputs.contributions().map(margin).collect();
    // Positions 0 and n-1 are [BOS] and [EOS] (the core's encode puts them there); a pair
    // beside one gives its whole margin to the other token, else half to each.
    let pair = |i: usize| per_feature[outputs.feature_of(n + i)];
    let half = |i: usize| if i == 0 || i + 2 == n { pair(i) } else { pair(i) / 2.0 };
    // Token i's own margin, then the halves of the pair on its left and on its right.
    let weight = |i: usize| per_feature[outputs.feature_of(i)] + half(i - 1) + half(i);
    // Per token id: (id, summed weight, positions), visited in position order, so each id's
    // weights add up in position order and the sums are the same on every platform.
    let inner = 1..n.saturating_sub(1);
    // A free slot takes the id; a taken one adds to it.
    let add = |entry: &mut (i64, f32, u32), i: usize| {
        if entry.0 == -1 {
            *entry = (ids[i], weight(i), 1);
        } else {
            entry.1 += weight(i);
            entry.2 += 1;
        }
    };
    let slots = match outputs.distinct_features() {
        // A counted graph's features are distinct, and a token's feature is its id: index by
        // feature, no hashing.
        Some(features) => {
            let mut slots: Vec<(i64, f32, u32)> = vec![(-1, 0.0, 0); features];
            for i in inner {
                add(&mut slots[outputs.feature_of(i)], i);
            }
            slots
        }
        // Positions: a small open-addressing table keyed by id (ids are never negative, so -1
        // marks a free slot), linear in the positions where sorting them took most of this
        // function's time.
        None => {
            let mask = (inner.len() * 2).next_power_of_two().max(16) - 1;
            let mut slots: Vec<(i64, f32, u32)> = vec![(-1, 0.0, 0); mask + 1];
            for i in inner {
                let id = ids[i];
                // Fibonacci hashing: the top bits of id × 2^64/φ spread consecutive ids apart.
                let mut slot = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(32) as usize & mask;
                while slots[slot].0 != id && slots[slot].0 != -1 {
                    slot = (slot + 1) & mask;
                }
                add(&mut slots[slot], i);
            }
            slots
        }
    };
    // The ranking below is a total order, so the slots' order does not matter.
    let mut ranked: Vec<(i64, f32, u32)> = slots.into_iter().filter(|r| r.0 != -1 && r.1 > 0.0).collect();
    // Ties broken by id so that the order is total.
    let order = |a: &(i64, f32, u32), b: &(i64, f32, u32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if ranked.len() > k {
        ranked.select_nth_unstable_by(k, order);
        ranked.truncate(k);
    }
    ranked.sort_by(order);
    // Each listed token's places, in text order: one pass over the positions.
    let mut spans: Vec<Vec<[u32; 2]>> = vec![Vec::new(); ranked.len()];
    for (i, id) in ids.iter().enumerate().take(n.saturating_sub(1)).skip(1) {
        if let Some(j) = ranked.iter().position(|r| r.0 == *id) {
            spans[j].extend(placed.original(i));
        }
    }
    ranked
        .into_iter()
        .zip(spans)
        .map(|((id, weight, count), spans)| TokenContribution {
            token: encoder.token(id).map_or_else(|| format!("#{id}"), str::to_owned),
            weight,
            count,
            spans,
        })
        .collect()
}
