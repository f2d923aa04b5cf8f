//! Classification figures: accuracy, macro-F1, per-class precision and recall, and the
//! confusion matrix. [`score`] is the one evaluation of the workspace: it runs a classifier on
//! labelled texts through the serving path and [`evaluate`]s the pairs, for the trainer's
//! evaluation, the promotion gate and registry-sync's smoke check alike.

use crate::api::{ClassMetrics, Evaluation};
use crate::{Classifier, Error, argmax};

/// Scores `classifier` on `examples`, each a (true label index into the classifier's labels,
/// text) pair, with the serving code path.
///
/// # Panics
/// If a label index is out of range of the classifier's labels: that is a caller's bug.
pub fn score<'a>(
    classifier: &Classifier,
    examples: impl IntoIterator<Item = (usize, &'a str)>,
) -> Result<Evaluation, Error> {
    let mut pairs = Vec::new();
    for (truth, text) in examples {
        let p = classifier.probabilities(text)?;
        pairs.push((truth, argmax(&p)));
    }
    Ok(evaluate(&classifier.manifest().labels, pairs))
}

/// Scores `pairs` of (true label index, predicted label index) over `labels`.
///
/// # Panics
/// If an index is out of range of `labels`: that is a caller's bug, not bad data.
pub fn evaluate(labels: &[String], pairs: impl IntoIterator<Item = (usize, usize)>) -> Evaluation {
    let k = labels.len();
    let mut confusion = vec![vec![0u64; k]; k];
    let mut examples = 0usize;
    for (truth, predicted) in pairs {
        confusion[truth][predicted] += 1;
        examples += 1;
    }
    let ratio = |num: u64, den: u64| if den == 0 { 0.0 } else { num as f64 / den as f64 };
    let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let predicted: u64 = (0..k).map(|t| confusion[t][c]).sum();
            let support: u64 = confusion[c].iter().sum();
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, support);
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            ClassMetrics { label: labels[c].clone(), precision, recall, f1, support }
        })
        .collect();
    let macro_f1 = if k == 0 { 0.0 } else { per_class.iter().map(|c| c.f1).sum::<f64>() / k as f64 };
    Evaluation {
        examples,
        accuracy: ratio(correct, examples as u64),
        macro_f1,
        per_class,
        labels: labels.to_vec(),
        confusion,
    }
}

/// Bins of [`calibration_error`] in every figure the workspace reports (Guo et al. 2017, "On
/// Calibration of Modern Neural Networks", use 15).
pub const CALIBRATION_BINS: usize = 15;

/// The expected calibration error of `answers`, each (the probability given to the label
/// answered, whether that label was right): the answers fall into `bins` equal-width bins of
/// probability, and each bin's |accuracy − mean probability| is weighed by its share of the
/// answers. 0 for a model whose probabilities are exactly as often right as they say; 0 for no
/// answers.
pub fn calibration_error(answers: impl IntoIterator<Item = (f32, bool)>, bins: usize) -> f64 {
    let bins = bins.max(1);
    let (mut n, mut confidence, mut right) = (vec![0usize; bins], vec![0f64; bins], vec![0usize; bins]);
    for (p, correct) in answers {
        let b = ((f64::from(p) * bins as f64) as usize).min(bins - 1);
        n[b] += 1;
        confidence[b] += f64::from(p);
        right[b] += usize::from(correct);
    }
    let total: usize = n.iter().sum();
    if total == 0 {
        return 0.0;
    }
    (0..bins).filter(|&b| n[b] > 0).map(|b| (right[b] as f64 - confidence[b]).abs() / total as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_error_matches_a_hand_worked_example() {
        // Bin [0.9, 1): four answers at 0.95, three right: |0.75 - 0.95| = 0.2, weight 4/6.
        // Bin [0.6, 0.7): two at 0.6, one right: |0.5 - 0.6| = 0.1, weight 2/6.
        let answers = [(0.95, true), (0.95, true), (0.95, true), (0.95, false), (0.6, true), (0.6, false)];
        let e = calibration_error(answers, 10);
        assert!((e - (0.2 * 4.0 / 6.0 + 0.1 * 2.0 / 6.0)).abs() < 1e-6, "{e}");
        assert!(calibration_error([(1.0, true)], 15).abs() < 1e-12, "1.0 falls in the last bin");
        assert_eq!(calibration_error(std::iter::empty(), 15), 0.0);
    }

    #[test]
    fn figures_match_a_hand_worked_example() {
        let labels = vec!["a".to_string(), "b".to_string()];
        // truth a: 3 right, 1 called b; truth b: 2 right, 2 called a.
        let pairs = [(0, 0), (0, 0), (0, 0), (0, 1), (1, 1), (1, 1), (1, 0), (1, 0)];
        let e = evaluate(&labels, pairs);
        assert_eq!(e.confusion, vec![vec![3, 1], vec![2, 2]]);
        assert!((e.accuracy - 5.0 / 8.0).abs() < 1e-12);
        // a: precision 3/5, recall 3/4; b: precision 2/3, recall 2/4.
        assert!((e.per_class[0].precision - 0.6).abs() < 1e-12);
        assert!((e.per_class[0].recall - 0.75).abs() < 1e-12);
        assert!((e.per_class[1].precision - 2.0 / 3.0).abs() < 1e-12);
        let f1a = 2.0 * 0.6 * 0.75 / 1.35;
        let f1b = 2.0 * (2.0 / 3.0) * 0.5 / (2.0 / 3.0 + 0.5);
        assert!((e.macro_f1 - (f1a + f1b) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn a_class_never_predicted_has_zero_precision_not_nan() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let e = evaluate(&labels, [(0, 0), (1, 0)]);
        assert_eq!(e.per_class[1].precision, 0.0);
        assert_eq!(e.per_class[1].f1, 0.0);
        assert!(e.macro_f1.is_finite());
    }
}
