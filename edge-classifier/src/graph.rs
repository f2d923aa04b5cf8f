//! The ONNX graph, loaded and optimised by tract, and one run of it.

use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use crate::Error;

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

/// A loaded graph and a run's scratch state.
#[derive(Debug)]
pub(crate) struct Graph {
    plan: Arc<TypedRunnableModel>,
    /// Kept between runs: building one allocates a slot per node. Whoever finds it taken
    /// builds their own, so concurrent callers never wait on each other.
    state: Mutex<Option<TypedSimpleState>>,
    /// The graph has a `scales` output (see [`crate::api::GraphSpec::scales`]).
    has_scales: bool,
}

impl Graph {
    /// Parses and optimises `bytes`.
    pub(crate) fn load(bytes: &[u8], has_scales: bool) -> Result<Self, Error> {
        let err = |e: TractError| Error::ModelLoad(format!("{e:#}"));
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &*bytes)
            .map_err(err)?
            .into_optimized()
            .map_err(err)?
            .into_runnable()
            .map_err(err)?;
        Ok(Self { plan, state: Mutex::new(None), has_scales })
    }

    /// The optimised plan.
    pub(crate) fn plan(&self) -> &Arc<TypedRunnableModel> {
        &self.plan
    }

    /// Runs the graph on `ids` and reads its outputs for `labels`-wide rows.
    pub(crate) fn run(&self, ids: &[i64]) -> Result<Scores, Error> {
        let err = |e: TractError| Error::Inference(format!("{e:#}"));
        let reused = self.state.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut state = match reused {
            Some(state) => state,
            None => self.plan.spawn().map_err(err)?,
        };
        // A state whose run failed is dropped, not kept: it may hold that run's values.
        let outputs = state.run(graph_inputs(ids)).map_err(err)?;
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
        let expected = if self.has_scales { 3 } else { 2 };
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
        let mut contributions = match self.has_scales {
            false => rows.to_vec(),
            true => scale_rows(rows, read(2)?, labels, ids.len())?,
        };
        let split = (ids.len() * labels).min(contributions.len());
        let pair_contributions = contributions.split_off(split);
        Ok(Scores { probabilities, token_contributions: contributions, pair_contributions })
    }
}

/// The graph's inputs for `ids`: what [`crate::Classifier::run`] feeds the plan of
/// [`crate::Classifier::graph`], for tools that run that plan themselves.
pub fn graph_inputs(ids: &[i64]) -> TVec<TValue> {
    tvec!(tract_ndarray::Array1::from(ids.to_vec()).into_tensor().into())
}

/// The contributions from a graph that leaves the multiply to the core: each row of `rows`
/// starts with that feature's `labels` weights (further columns are the graph's own), and
/// `scales` holds one multiplier for all of them or one per row.
fn scale_rows(rows: &[f32], scales: &[f32], labels: usize, n: usize) -> Result<Vec<f32>, Error> {
    let features = (2 * n).saturating_sub(1);
    let width = rows.len() / features.max(1);
    let bad = || {
        Error::Inference(format!(
            "graph returned {} row values and {} scales for {features} features and {labels} labels",
            rows.len(),
            scales.len()
        ))
    };
    let per_row = scales.len() == features;
    if width < labels || width * features != rows.len() || !(per_row || scales.len() == 1) {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(features * labels);
    for (i, row) in rows.chunks_exact(width).enumerate() {
        let scale = if per_row { scales[i] } else { scales[0] };
        out.extend(row[..labels].iter().map(|v| v * scale));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_of_the_wrong_count_are_an_error() {
        // 3 features (n = 2) of width 3 for 2 labels.
        let rows = [1.0, 2.0, 9.0, 3.0, 4.0, 9.0, 5.0, 6.0, 9.0];
        assert_eq!(scale_rows(&rows, &[2.0], 2, 2).expect("one scale"), [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
        assert_eq!(
            scale_rows(&rows, &[1.0, 0.5, 2.0], 2, 2).expect("one per feature"),
            [1.0, 2.0, 1.5, 2.0, 10.0, 12.0]
        );
        let err = scale_rows(&rows, &[1.0, 2.0], 2, 2).expect_err("two scales for three features");
        assert!(err.to_string().contains("2 scales"), "{err}");
        assert!(scale_rows(&rows[..8], &[1.0], 2, 2).is_err(), "ragged rows");
        assert!(scale_rows(&rows, &[1.0], 4, 2).is_err(), "rows narrower than the labels");
    }
}
