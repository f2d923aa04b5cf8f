//! The CI check that the real stack_overflow_16k run still meets the accuracy bar.

use trainer::config::ModelParams;
use trainer::pipeline;

use crate::common::{shared_data, train_config};

/// The required accuracy on test.csv.gz after training on train.csv.gz.
const REQUIRED_ACCURACY: f64 = 0.905;

#[test]
fn the_16k_train_test_run_meets_the_accuracy_bar() {
    // The shipped defaults, which the command line's defaults are taken from.
    let data = shared_data();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = train_config(
        vec![data.join("train.csv.gz")],
        vec![data.join("test.csv.gz")],
        dir.path().join("bundle"),
        &ModelParams::default(),
    );
    let outcome = pipeline::train(&cfg).expect("trains on the real data");
    let m = &outcome.manifest.metrics;
    eprintln!("16k run: accuracy {:.4}, macro-F1 {:.4}, timings {:?}", m.accuracy, m.macro_f1, outcome.timings);
    assert_eq!(m.examples, 8000);
    assert_eq!(outcome.train_report.used, 8000, "the real set has no bad rows: {:?}", outcome.train_report);
    assert!(m.accuracy >= REQUIRED_ACCURACY, "accuracy {:.4} < {REQUIRED_ACCURACY}", m.accuracy);
}
