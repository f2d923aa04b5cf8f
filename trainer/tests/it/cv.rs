//! `trainer cv`: settings chosen by cross-validation on the training data, the test set scored
//! once with them.

use std::process::Command;

use serde_json::Value;

use crate::common::{TINY_FLAGS, tiny_csv};

fn cv(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trainer")).arg("cv").args(args).output().expect("trainer runs")
}

#[test]
fn cv_chooses_on_the_training_folds_and_scores_the_test_set_once() {
    // The fixture cut in two: every 4th row is the test set.
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(tiny_csv()).expect("fixture");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let (mut train, mut test) = (vec![header], vec![header]);
    for (i, line) in lines.enumerate() {
        if i % 4 == 3 { test.push(line) } else { train.push(line) }
    }
    let (train_csv, test_csv) = (dir.path().join("train.csv"), dir.path().join("test.csv"));
    std::fs::write(&train_csv, train.join("\n")).expect("write");
    std::fs::write(&test_csv, test.join("\n")).expect("write");
    let (train, test) = (train_csv.to_str().expect("utf-8"), test_csv.to_str().expect("utf-8"));
    // The fixture's flags (as `train` takes them) are where the search starts.
    let mut args = vec!["--data", train, "--test", test, "--folds", "3"];
    args.extend(TINY_FLAGS);
    args.extend(["--try", "nb-alpha=0.5,1,2", "--try", "weighting=presence,sublinear"]);
    let out = cv(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let cv_report = &report["cv"];
    assert_eq!(cv_report["folds"], 3);
    // Every candidate but the held value is scored on every fold, and the means are theirs.
    let tried = cv_report["tried"].as_array().expect("tried");
    assert!(tried.len() >= 3, "{tried:?}");
    for t in tried {
        let folds: Vec<f64> =
            t["fold_accuracy"].as_array().expect("folds").iter().map(|v| v.as_f64().expect("a number")).collect();
        assert_eq!(folds.len(), 3);
        let mean = folds.iter().sum::<f64>() / 3.0;
        assert!((mean - t["mean"].as_f64().expect("a mean")).abs() < 1e-12);
        assert!(folds.iter().all(|a| (0.0..=1.0).contains(a)));
    }
    let chosen: Vec<(String, String)> = serde_json::from_value(cv_report["chosen"].clone()).expect("pairs");
    assert_eq!(chosen.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(), ["--nb-alpha", "--weighting"]);
    // The test set is scored once, by a model of the chosen settings trained on all the data.
    assert!(report["test"]["accuracy"].as_f64().is_some(), "{report}");
    assert_eq!(report["test"]["examples"], 40);
    // Seeded: the same choice and the same scores again.
    let again: Value = serde_json::from_slice(&cv(&args).stdout).expect("json");
    assert_eq!(again["cv"]["tried"], cv_report["tried"]);
    assert_eq!(again["cv"]["chosen"], cv_report["chosen"]);
}

#[test]
fn cv_refuses_what_it_cannot_search_by_name() {
    let tiny = tiny_csv();
    let tiny = tiny.to_str().expect("utf-8 path");
    for (args, says) in [
        (vec!["--data", tiny, "--try", "momentum=0.9"], "`momentum` is not a setting cross-validation can choose"),
        (vec!["--data", tiny, "--folds", "1"], "`--folds` must be at least 2"),
        (vec!["--data", tiny, "--folds", "500"], "fewer than 500 folds"),
        // `--labels` in the form `trainer train` reads it: `Java` and `java ` are one label.
        (vec!["--data", tiny, "--labels", "Java,java "], "`--labels` must name at least 2 distinct labels, got 1"),
    ] {
        let out = cv(&args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
