//! What `--weights int8` costs the default model in accuracy (issue 27 §6): the same fit scored
//! with its f32 weights and with its 8-bit table (`LinearModel::int8_table`, as the graph
//! computes it), on the same questions.
//!
//!   cargo run -p trainer --example int8_estimate -- ../shared/data/stackoverflow16k
//!
//! Held out: every 5th question of each label of `train.csv.gz`, the model fitted on the rest
//! (tokenizer included); then the test set, with the model fitted on all of `train.csv.gz`.
//! Prints one JSON object, with the table's bytes raw and gzipped as f16 and as the 8-bit table.

use std::io::Write;
use std::path::Path;

use trainer::config::ModelParams;
use trainer::data::Example;
use trainer::model::{Int8Table, LinearModel};
use trainer::{cv, evaluate};

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
    let (held_f32, held_int8, _) = score(&p, &fit_on, &held)?;
    let (test_f32, test_int8, sizes) = score(&p, &train, &test)?;
    let out = serde_json::json!({
        "held_out": {"questions": held.len(), "accuracy_f32": held_f32, "accuracy_int8": held_int8},
        "test": {"questions": test.len(), "accuracy_f32": test_f32, "accuracy_int8": test_int8},
        "table": sizes,
    });
    writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&out)?)?;
    Ok(())
}

/// Accuracy on `on` of the model fitted on `fit` (its tokenizer learnt from `fit` alone, as a
/// cross-validation fold's), with f32 weights and with its 8-bit table, and the table's sizes.
fn score(p: &ModelParams, fit: &[Example], on: &[Example]) -> anyhow::Result<(f64, f64, serde_json::Value)> {
    let (ids, vocab) = cv::encode_apart(p, fit, fit.iter().chain(on))?;
    let (docs, held) = ids.split_at(fit.len());
    let targets: Vec<usize> = fit.iter().map(|e| e.label).collect();
    let f32_model = cv::fit(p, vocab, docs, &targets);
    let table = f32_model.int8_table();
    let int8_model = f32_model.with_table(&table);
    let accuracy = |m: &LinearModel| cv::accuracy(m, held.iter().zip(on).map(|(ids, e)| (ids.as_slice(), e.label)));
    Ok((accuracy(&f32_model), accuracy(&int8_model), sizes(&f32_model, &table)))
}

/// The table's bytes, raw and gzipped (level 9): as f16 `[weights…, idf²]` rows, and as the
/// 8-bit table's steps, scales (f16) and idf² steps.
fn sizes(m: &LinearModel, t: &Int8Table) -> serde_json::Value {
    let l = m.labels;
    let mut f16 = Vec::new();
    for (r, row) in m.weights.chunks(l).enumerate() {
        for w in row.iter().chain([&m.idf_sq[r]]) {
            f16.extend(half::f16::from_f32(*w).to_le_bytes());
        }
    }
    let mut int8: Vec<u8> = t.weights.iter().map(|q| *q as u8).collect();
    int8.extend(t.scales.iter().flat_map(|s| half::f16::from_f32(*s).to_le_bytes()));
    int8.extend(&t.idf);
    let gz = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(b).map(|_| e.finish().map(|v| v.len()).unwrap_or(0)).unwrap_or(0)
    };
    serde_json::json!({
        "rows": m.weights.len() / l,
        "f16_bytes": f16.len(), "f16_gz": gz(&f16),
        "int8_bytes": int8.len(), "int8_gz": gz(&int8),
    })
}
