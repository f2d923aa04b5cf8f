//! What 8-bit weights would cost the default model (issue 27 §6, before any format is built):
//! its weights rounded to int8 per row (one scale per row: its largest magnitude / 127), scored
//! against the same model's f32 weights on the same questions.
//!
//!   cargo run -p trainer --example int8_estimate -- ../shared/data/stackoverflow16k
//!
//! Held out: every 5th question of each label of `train.csv.gz`, the model fitted on the rest
//! (tokenizer included); then the test set, with the model fitted on all of `train.csv.gz`.
//! Prints one JSON object. The sizes are the table's (`[weights…, idf²]` per row) as the graph
//! would store it: f16 today; int8 weights with an f16 scale and an f16 idf² per row; and int8
//! weights with an f16 scale per row and idf² in 8 bits too (one step for the table), whose
//! accuracy is `accuracy_int8_idf`.

use std::io::Write;
use std::path::Path;

use edge_classifier::TextEncoder;
use edge_classifier::normalize::Normalization;
use trainer::config::{ModelParams, PAIR_MUL};
use trainer::data::Example;
use trainer::evaluate;
use trainer::model::{self, FeatureSpec, LinearModel};

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: int8_estimate DATA_DIR"))?;
    let p = ModelParams::default();
    let (train, _) = evaluate::read_examples(&[Path::new(&dir).join("train.csv.gz")], &p.labels)?;
    let (test, _) = evaluate::read_examples(&[Path::new(&dir).join("test.csv.gz")], &p.labels)?;
    let mut seen = vec![0usize; p.labels.len()];
    let (mut fit_on, mut held) = (Vec::new(), Vec::new());
    for e in &train {
        seen[e.label] += 1;
        if seen[e.label] % 5 == 0 { held.push(e.clone()) } else { fit_on.push(e.clone()) }
    }
    let (held_f32, held_int8, held_idf, _) = score(&p, &fit_on, &held)?;
    let (test_f32, test_int8, test_idf, sizes) = score(&p, &train, &test)?;
    let out = serde_json::json!({
        "held_out": {"questions": held.len(), "accuracy_f32": held_f32, "accuracy_int8": held_int8, "accuracy_int8_idf": held_idf},
        "test": {"questions": test.len(), "accuracy_f32": test_f32, "accuracy_int8": test_int8, "accuracy_int8_idf": test_idf},
        "table": sizes,
    });
    writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&out)?)?;
    Ok(())
}

/// Accuracy on `on` of the model fitted on `fit`: with f32 weights, int8 weights, and int8 weights
/// and 8-bit idf²; and the table's sizes.
fn score(p: &ModelParams, fit: &[Example], on: &[Example]) -> anyhow::Result<(f64, f64, f64, serde_json::Value)> {
    let normalization = Normalization::CURRENT;
    let texts: Vec<String> = fit.iter().map(|e| normalization.apply(&e.text).text).collect();
    let tokenizer = trainer::tokenizer::train(&texts, p.vocab_size, p.min_frequency)?;
    let encoder = TextEncoder::new(&tokenizer, normalization, p.max_tokens)?;
    let encode = |es: &[Example]| -> anyhow::Result<Vec<Vec<i64>>> {
        es.iter().map(|e| Ok(encoder.encode(&e.text)?.ids)).collect()
    };
    let (docs, held) = (encode(fit)?, encode(on)?);
    let spec = FeatureSpec { vocab: tokenizer.get_vocab_size(true), buckets: p.buckets, pair_mul: PAIR_MUL };
    let params = p.fit_params();
    let targets: Vec<usize> = fit.iter().map(|e| e.label).collect();
    let f32_model = model::fit(&docs, &targets, spec, p.labels.len(), params, |_| {});
    let int8_model = int8(&f32_model);
    let accuracy = |m: &LinearModel| {
        let right = held.iter().zip(on).filter(|(ids, e)| edge_classifier::argmax(&m.logits(ids)) == e.label).count();
        right as f64 / on.len() as f64
    };
    let idf_model = LinearModel { idf_sq: idf_8bit(&int8_model.idf_sq), ..int8_model.clone() };
    Ok((accuracy(&f32_model), accuracy(&int8_model), accuracy(&idf_model), sizes(&f32_model)))
}

/// The idf² column in 8 bits: one step for the whole table (its largest value / 255).
fn idf_8bit(idf_sq: &[f32]) -> Vec<f32> {
    let step = idf_sq.iter().fold(0f32, |a, v| a.max(*v)) / 255.0;
    idf_sq.iter().map(|v| if step > 0.0 { (v / step).round() * step } else { *v }).collect()
}

/// `m` with each row's weights rounded to int8 steps of the row's largest magnitude / 127.
fn int8(m: &LinearModel) -> LinearModel {
    let l = m.labels;
    let mut q = m.clone();
    for row in q.weights.chunks_mut(l) {
        let max = row.iter().fold(0f32, |a, w| a.max(w.abs()));
        if max > 0.0 {
            let scale = max / 127.0;
            for w in row {
                *w = (*w / scale).round() * scale;
            }
        }
    }
    q
}

/// The table's bytes, raw and gzipped (level 9), as f16 (today) and as int8 weights with an f16
/// scale and an f16 idf² per row.
fn sizes(m: &LinearModel) -> serde_json::Value {
    let l = m.labels;
    let rows = m.weights.len() / l;
    let mut f16 = Vec::with_capacity(rows * (l + 1) * 2);
    let (mut int8, mut scales) = (Vec::with_capacity(rows * l), Vec::with_capacity(rows * 4));
    for (r, row) in m.weights.chunks(l).enumerate() {
        for w in row.iter().chain([&m.idf_sq[r]]) {
            f16.extend(half::f16::from_f32(*w).to_le_bytes());
        }
        let max = row.iter().fold(0f32, |a, w| a.max(w.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        int8.extend(row.iter().map(|w| (w / scale).round() as i8 as u8));
        scales.extend(half::f16::from_f32(scale).to_le_bytes());
        scales.extend(half::f16::from_f32(m.idf_sq[r]).to_le_bytes());
    }
    let mut all8 = int8.clone();
    int8.extend(scales);
    // Row scales in f16, then the idf² column in 8 bits.
    let step = m.idf_sq.iter().fold(0f32, |a, v| a.max(*v)) / 255.0;
    for row in m.weights.chunks(l) {
        let max = row.iter().fold(0f32, |a, w| a.max(w.abs()));
        all8.extend(half::f16::from_f32(if max > 0.0 { max / 127.0 } else { 1.0 }).to_le_bytes());
    }
    all8.extend(m.idf_sq.iter().map(|v| if step > 0.0 { (v / step).round() as u8 } else { 0 }));
    let gz = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(b).map(|_| e.finish().map(|v| v.len()).unwrap_or(0)).unwrap_or(0)
    };
    serde_json::json!({
        "rows": rows,
        "f16_bytes": f16.len(), "f16_gz": gz(&f16),
        "int8_bytes": int8.len(), "int8_gz": gz(&int8),
        "int8_idf_bytes": all8.len(), "int8_idf_gz": gz(&all8),
    })
}
