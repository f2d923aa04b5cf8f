//! The ONNX graph, loaded and optimised by tract, and one run of it.

use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use crate::Error;
use crate::api::FeatureSpec;
use crate::features::{self, Counted};

/// The graph's raw outputs for one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// One probability per label, in manifest order.
    pub probabilities: Vec<f32>,
    /// `[n × labels]` row-major: each token's contribution to each label's logit.
    pub token_contributions: Vec<f32>,
    /// `[(n - 1) × labels]` row-major: each adjacent pair's contribution.
    pub pair_contributions: Vec<f32>,
}

/// What a graph reads, from its manifest's [`crate::api::GraphSpec`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum GraphInput {
    /// Token ids (formats 1 and 2); `has_scales` when it has a `scales` output (see
    /// [`crate::api::GraphSpec::scales`]).
    Ids {
        /// The graph has a `scales` output.
        has_scales: bool,
    },
    /// Distinct feature rows and their counts (format 3, [`crate::api::CountedInput`]).
    Counted(FeatureSpec),
}

/// A loaded graph and a run's scratch state.
#[derive(Debug)]
pub(crate) struct Graph {
    plan: Arc<TypedRunnableModel>,
    /// Kept between runs: building one allocates a slot per node. Whoever finds it taken
    /// builds their own, so concurrent callers never wait on each other.
    state: Mutex<Option<TypedSimpleState>>,
    input: GraphInput,
}

impl Graph {
    /// Parses and optimises `bytes`.
    pub(crate) fn load(bytes: &[u8], input: GraphInput) -> Result<Self, Error> {
        let err = |e: TractError| Error::ModelLoad(format!("{e:#}"));
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &*bytes)
            .map_err(err)?
            .into_optimized()
            .map_err(err)?
            .into_runnable()
            .map_err(err)?;
        Ok(Self { plan, state: Mutex::new(None), input })
    }

    /// The optimised plan.
    pub(crate) fn plan(&self) -> &Arc<TypedRunnableModel> {
        &self.plan
    }

    /// The graph's inputs for `ids` (and, for a counted graph, the counted features).
    pub(crate) fn inputs(&self, ids: &[i64]) -> (Option<Counted>, TVec<TValue>) {
        match self.input {
            GraphInput::Counted(spec) => {
                let c = features::count(&spec, ids);
                let inputs = counted_inputs(&c);
                (Some(c), inputs)
            }
            GraphInput::Ids { .. } => (None, graph_inputs(ids)),
        }
    }

    /// Runs the graph on `ids` and reads its outputs for `labels`-wide rows.
    pub(crate) fn run(&self, ids: &[i64]) -> Result<Scores, Error> {
        let err = |e: TractError| Error::Inference(format!("{e:#}"));
        let reused = self.state.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut state = match reused {
            Some(state) => state,
            None => self.plan.spawn().map_err(err)?,
        };
        let (counted, inputs) = self.inputs(ids);
        // A state whose run failed is dropped, not kept: it may hold that run's values.
        let outputs = state.run(inputs).map_err(err)?;
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
        let expected = if self.input == (GraphInput::Ids { has_scales: false }) { 2 } else { 3 };
        if outputs.len() != expected {
            return Err(Error::Inference(format!("graph returned {} outputs, expected {expected}", outputs.len())));
        }
        let read = |i: usize| -> Result<&[f32], Error> {
            let slice = outputs[i].try_as_plain_ram().and_then(|view| view.as_slice::<f32>());
            slice.map_err(|e| Error::Inference(format!("output {i}: {e:#}")))
        };
        let probabilities = read(0)?.to_vec();
        let labels = probabilities.len();
        let rows = read(1)?;
        // Rows 0..n are the tokens, the rest the n - 1 pairs.
        let mut contributions = match (&counted, self.input) {
            (Some(c), _) => per_position(rows, read(2)?, c, labels)?,
            (None, GraphInput::Ids { has_scales: false }) => rows.to_vec(),
            (None, _) => scale_rows(rows, read(2)?, labels, (2 * ids.len()).saturating_sub(1))?,
        };
        let split = (ids.len() * labels).min(contributions.len());
        let pair_contributions = contributions.split_off(split);
        Ok(Scores { probabilities, token_contributions: contributions, pair_contributions })
    }
}

/// A token-id graph's inputs for `ids`.
fn graph_inputs(ids: &[i64]) -> TVec<TValue> {
    tvec!(tract_ndarray::Array1::from(ids.to_vec()).into_tensor().into())
}

/// A counted graph's inputs: the distinct rows, then their counts.
fn counted_inputs(c: &Counted) -> TVec<TValue> {
    tvec!(
        tract_ndarray::Array1::from(c.rows.clone()).into_tensor().into(),
        tract_ndarray::Array1::from(c.counts.clone()).into_tensor().into()
    )
}

/// The contributions of a counted graph, handed back to positions: each distinct feature's
/// weights (the first `labels` columns of its row in `rows`) times its scale, shared evenly
/// between its occurrences, so the explanation ranks tokens the same way whatever the graph's
/// input.
fn per_position(rows: &[f32], scales: &[f32], c: &Counted, labels: usize) -> Result<Vec<f32>, Error> {
    let width = row_width(rows, scales, labels, c.rows.len(), false)?;
    let share: Vec<f32> = scales.iter().zip(&c.counts).map(|(s, n)| s / n).collect();
    let mut out = Vec::with_capacity(c.of_position.len() * labels);
    for &f in &c.of_position {
        let f = f as usize;
        out.extend(rows[f * width..][..labels].iter().map(|v| v * share[f]));
    }
    Ok(out)
}

/// The contributions from a graph that leaves the multiply to the core: each of the
/// `features` rows of `rows` starts with that feature's `labels` weights (further columns are
/// the graph's own), and `scales` holds one multiplier for all of them or one per row.
fn scale_rows(rows: &[f32], scales: &[f32], labels: usize, features: usize) -> Result<Vec<f32>, Error> {
    let width = row_width(rows, scales, labels, features, true)?;
    let per_row = scales.len() == features;
    let mut out = Vec::with_capacity(features * labels);
    for (i, row) in rows.chunks_exact(width).enumerate() {
        let scale = if per_row { scales[i] } else { scales[0] };
        out.extend(row[..labels].iter().map(|v| v * scale));
    }
    Ok(out)
}

/// The width of each of the `features` rows in `rows`, once the outputs are checked to fit:
/// rows no narrower than the labels, none ragged, and one scale per feature (or, with
/// `one_scale_ok`, a single scale for all).
fn row_width(rows: &[f32], scales: &[f32], labels: usize, features: usize, one_scale_ok: bool) -> Result<usize, Error> {
    let width = rows.len() / features.max(1);
    let scales_fit = scales.len() == features || (one_scale_ok && scales.len() == 1);
    if width < labels || width * features != rows.len() || !scales_fit {
        return Err(Error::Inference(format!(
            "graph returned {} row values and {} scales for {features} features and {labels} labels",
            rows.len(),
            scales.len()
        )));
    }
    Ok(width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_of_the_wrong_count_are_an_error() {
        // 3 features (n = 2) of width 3 for 2 labels.
        let rows = [1.0, 2.0, 9.0, 3.0, 4.0, 9.0, 5.0, 6.0, 9.0];
        assert_eq!(scale_rows(&rows, &[2.0], 2, 3).expect("one scale"), [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
        assert_eq!(
            scale_rows(&rows, &[1.0, 0.5, 2.0], 2, 3).expect("one per feature"),
            [1.0, 2.0, 1.5, 2.0, 10.0, 12.0]
        );
        let err = scale_rows(&rows, &[1.0, 2.0], 2, 3).expect_err("two scales for three features");
        assert!(err.to_string().contains("2 scales"), "{err}");
        assert!(scale_rows(&rows[..8], &[1.0], 2, 3).is_err(), "ragged rows");
        assert!(scale_rows(&rows, &[1.0], 4, 3).is_err(), "rows narrower than the labels");
    }

    #[test]
    fn a_feature_is_shared_evenly_between_its_positions() {
        // Features 0 (twice), 1 (once) over three positions, two labels, rows of width 3.
        let c = Counted { rows: vec![7, 9], counts: vec![2.0, 1.0], of_position: vec![0, 1, 0] };
        let rows = [4.0, -2.0, 9.0, 1.0, 3.0, 9.0];
        let got = per_position(&rows, &[0.5, 2.0], &c, 2).expect("fits");
        assert_eq!(got, [1.0, -0.5, 2.0, 6.0, 1.0, -0.5]);
        assert!(per_position(&rows[..5], &[0.5, 2.0], &c, 2).is_err(), "ragged rows");
        assert!(per_position(&rows, &[0.5], &c, 2).is_err(), "one scale for two features");
    }
}
