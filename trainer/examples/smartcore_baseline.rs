//! Measures smartcore's logistic regression on the same task, to show why the trainer does
//! not use it for the classifier (the issue asks to use smartcore where it serves, and to
//! measure where it cannot meet a figure).
//!
//! smartcore's linear models take a dense matrix. The trainer's feature space (16k tokens plus
//! 262k hashed pairs) would be 8000 × 278k f64 = 17.8 GB, so the baseline keeps the `k` most
//! frequent tokens (TF-IDF, L2-normalised, as the trainer computes them) and fits
//! `LogisticRegression` with its defaults.
//!
//! ```sh
//! cargo run --release -p trainer --features smartcore-baseline --example smartcore_baseline -- \
//!     ../shared/data/stackoverflow16k 2000
//! ```

use std::path::PathBuf;
use std::time::Instant;

use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::LogisticRegression;
use trainer::config::DEFAULT_LABELS;
use trainer::data::{self, EvalSource};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "../shared/data/stackoverflow16k".into()));
    let k: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let labels: Vec<String> = DEFAULT_LABELS.map(String::from).to_vec();
    let train = data::read_source(&dir.join("train.csv.gz"))?;
    let test = data::read_source(&dir.join("test.csv.gz"))?;
    let ds = data::prepare(&train, EvalSource::Batches(test), &labels)?;

    let start = Instant::now();
    let normalized: Vec<String> =
        ds.train.iter().map(|e| edge_classifier::normalize::Normalization::CURRENT.apply(&e.text).text).collect();
    let tokenizer = trainer::tokenizer::train(&normalized, 16_000, 2)?;
    let encoder =
        edge_classifier::TextEncoder::new(&tokenizer, edge_classifier::normalize::Normalization::CURRENT, 2048)?;
    let encode = |t: &str| encoder.encode(t).map(|e| e.ids);
    let train_ids: Vec<Vec<i64>> = ds.train.iter().map(|e| encode(&e.text)).collect::<Result<_, _>>()?;
    let test_ids: Vec<Vec<i64>> = ds.eval.iter().map(|e| encode(&e.text)).collect::<Result<_, _>>()?;

    // The k most frequent tokens by document frequency, with their idf.
    let vocab = encoder.vocab_size();
    let mut df = vec![0usize; vocab];
    for ids in &train_ids {
        let mut seen = ids.clone();
        seen.sort_unstable();
        seen.dedup();
        for id in seen {
            df[id as usize] += 1;
        }
    }
    let mut order: Vec<usize> = (0..vocab).collect();
    order.sort_by_key(|&t| std::cmp::Reverse(df[t]));
    let mut column = vec![usize::MAX; vocab];
    for (j, &t) in order.iter().take(k).enumerate() {
        column[t] = j;
    }
    let n = train_ids.len() as f64;
    let idf: Vec<f64> = df.iter().map(|&d| ((1.0 + n) / (1.0 + d as f64)).ln() + 1.0).collect();
    let dense = |docs: &[Vec<i64>]| -> Vec<Vec<f64>> {
        docs.iter()
            .map(|ids| {
                let mut row = vec![0f64; k];
                for &id in ids {
                    let j = column[id as usize];
                    if j != usize::MAX {
                        row[j] += 1.0;
                    }
                }
                for (j, &t) in order.iter().take(k).enumerate() {
                    if row[j] > 0.0 {
                        row[j] = (1.0 + row[j].ln()) * idf[t];
                    }
                }
                let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                row.iter_mut().for_each(|v| *v /= norm);
                row
            })
            .collect()
    };
    let x_train = DenseMatrix::from_2d_vec(&dense(&train_ids))?;
    let x_test = DenseMatrix::from_2d_vec(&dense(&test_ids))?;
    let y_train: Vec<i32> = ds.train.iter().map(|e| e.label as i32).collect();
    let features_seconds = start.elapsed().as_secs_f64();

    let fit_start = Instant::now();
    let model = LogisticRegression::fit(&x_train, &y_train, Default::default())?;
    let fit_seconds = fit_start.elapsed().as_secs_f64();
    let predicted = model.predict(&x_test)?;
    let correct = predicted.iter().zip(&ds.eval).filter(|(p, e)| **p == e.label as i32).count();
    println!(
        "{}",
        serde_json::json!({
            "features": k,
            "accuracy": correct as f64 / ds.eval.len() as f64,
            "fit_seconds": fit_seconds,
            "features_seconds": features_seconds,
            "dense_matrix_bytes": train_ids.len() * k * 8,
        })
    );
    Ok(())
}
