//! The ONNX graph, loaded and optimised by tract (or, in builds without tract, by the
//! interpreter of [`crate::onnx`]), and one run of it.

#[cfg(feature = "tract")]
use std::sync::{Arc, Mutex};

#[cfg(feature = "tract")]
use tract_onnx::prelude::*;

use crate::api::FeatureSpec;
use crate::features::{self, Counted};
use crate::onnx::{self, Program};
use crate::{Error, Runtime};

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
    /// Distinct feature rows (formats 3 and 4, [`crate::api::CountedInput`]), and with
    /// `counts` their counts (format 3).
    Counted {
        /// How token ids become feature rows.
        spec: FeatureSpec,
        /// The graph also reads each feature's count.
        counts: bool,
    },
}

impl GraphInput {
    /// How many scales a graph of this input outputs.
    fn scale_count(self) -> ScaleCount {
        match self {
            Self::Ids { .. } => ScaleCount::OneOrPerFeature,
            Self::Counted { counts: true, .. } => ScaleCount::PerFeature,
            Self::Counted { counts: false, .. } => ScaleCount::One,
        }
    }
}

/// A loaded graph and a run's scratch state.
#[derive(Debug)]
pub(crate) struct Graph {
    engine: Engine,
    input: GraphInput,
}

/// What runs the graph.
#[derive(Debug)]
enum Engine {
    /// tract's optimised plan.
    #[cfg(feature = "tract")]
    Tract {
        plan: Arc<TypedRunnableModel>,
        /// Kept between runs: building one allocates a slot per node. Whoever finds it taken
        /// builds their own, so concurrent callers never wait on each other.
        state: Mutex<Option<TypedSimpleState>>,
    },
    /// The interpreter.
    Interpreted(Program),
}

impl Graph {
    /// Parses `bytes` and prepares it for `runtime` (tract: optimises it).
    pub(crate) fn load(bytes: &[u8], input: GraphInput, runtime: Runtime) -> Result<Self, Error> {
        let engine = match runtime {
            #[cfg(feature = "tract")]
            Runtime::Tract => {
                let err = |e: TractError| Error::ModelLoad(e.into());
                let plan = tract_onnx::onnx()
                    .model_for_read(&mut &*bytes)
                    .map_err(err)?
                    .into_optimized()
                    .map_err(err)?
                    .into_runnable()
                    .map_err(err)?;
                Engine::Tract { plan, state: Mutex::new(None) }
            }
            Runtime::Interpreter => Engine::Interpreted(Program::load(bytes)?),
        };
        Ok(Self { engine, input })
    }

    /// What the graph reads.
    pub(crate) fn input(&self) -> GraphInput {
        self.input
    }

    /// The optimised plan, when tract runs the graph.
    #[cfg(feature = "tract")]
    pub(crate) fn plan(&self) -> Option<&Arc<TypedRunnableModel>> {
        match &self.engine {
            Engine::Tract { plan, .. } => Some(plan),
            Engine::Interpreted(_) => None,
        }
    }

    /// The counted features of `ids`, for a counted graph.
    fn counted(&self, ids: &[i64]) -> Option<Counted> {
        match self.input {
            GraphInput::Counted { spec, .. } => Some(features::count(&spec, ids)),
            GraphInput::Ids { .. } => None,
        }
    }

    /// The graph's inputs for `ids` as tract takes them (and, for a counted graph, the
    /// counted features).
    #[cfg(feature = "tract")]
    pub(crate) fn inputs(&self, ids: &[i64]) -> (Option<Counted>, TVec<TValue>) {
        let counted = self.counted(ids);
        let inputs = match (&counted, self.input) {
            (Some(c), GraphInput::Counted { counts: true, .. }) => tvec!(vector(&c.rows), vector(&c.counts)),
            (Some(c), _) => tvec!(vector(&c.rows)),
            (None, _) => tvec!(vector(ids)),
        };
        (counted, inputs)
    }

    /// The same inputs as the interpreter takes them.
    fn interpreter_inputs(&self, ids: &[i64]) -> (Option<Counted>, Vec<onnx::Tensor>) {
        let counted = self.counted(ids);
        let vector = |v: &[i64]| onnx::Tensor::i64(vec![v.len()], v.to_vec());
        let inputs = match (&counted, self.input) {
            (Some(c), GraphInput::Counted { counts: true, .. }) => {
                vec![vector(&c.rows), onnx::Tensor::f32(vec![c.counts.len()], c.counts.clone())]
            }
            (Some(c), _) => vec![vector(&c.rows)],
            (None, _) => vec![vector(ids)],
        };
        (counted, inputs)
    }

    /// Runs the graph on `ids`: its outputs as computed, one row per feature it read.
    pub(crate) fn run(&self, ids: &[i64]) -> Result<Outputs, Error> {
        let (counted, raw) = match &self.engine {
            #[cfg(feature = "tract")]
            Engine::Tract { plan, state } => {
                let err = |e: TractError| Error::Inference { what: "running the graph".into(), source: Some(e.into()) };
                let reused = state.lock().unwrap_or_else(|e| e.into_inner()).take();
                let mut run_state = match reused {
                    Some(s) => s,
                    None => plan.spawn().map_err(err)?,
                };
                let (counted, inputs) = self.inputs(ids);
                // A state whose run failed is dropped, not kept: it may hold that run's values.
                let outputs = run_state.run(inputs).map_err(err)?;
                *state.lock().unwrap_or_else(|e| e.into_inner()) = Some(run_state);
                (counted, Raw::Tract(outputs))
            }
            Engine::Interpreted(program) => {
                let (counted, inputs) = self.interpreter_inputs(ids);
                (counted, Raw::Interpreted(program.run(inputs)?))
            }
        };
        let expected = if self.input == (GraphInput::Ids { has_scales: false }) { 2 } else { 3 };
        if raw.len() != expected {
            return Err(Error::Inference {
                what: format!("graph returned {} outputs, expected {expected}", raw.len()),
                source: None,
            });
        }
        let scales = if expected == 3 { Some(raw.read(2)?) } else { None };
        let positions = (2 * ids.len()).saturating_sub(1);
        Outputs::new(raw.read(0)?.to_vec(), raw.read(1)?, scales, self.input.scale_count(), counted, positions)
    }
}

/// A run's outputs, as the engine left them.
enum Raw {
    #[cfg(feature = "tract")]
    Tract(TVec<TValue>),
    Interpreted(Vec<onnx::Tensor>),
}

impl Raw {
    fn len(&self) -> usize {
        match self {
            #[cfg(feature = "tract")]
            Self::Tract(o) => o.len(),
            Self::Interpreted(o) => o.len(),
        }
    }

    /// Output `i` as f32 values.
    fn read(&self, i: usize) -> Result<&[f32], Error> {
        match self {
            #[cfg(feature = "tract")]
            Self::Tract(o) => o[i]
                .try_as_plain_ram()
                .and_then(|view| view.as_slice::<f32>())
                .map_err(|e| Error::Inference { what: format!("reading output {i}"), source: Some(e.into()) }),
            Self::Interpreted(o) => {
                o[i].floats().map_err(|e| Error::Inference { what: format!("reading output {i}: {e}"), source: None })
            }
        }
    }
}

/// How many scales a graph outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ScaleCount {
    /// One for every feature (format 4: each feature weighs 1 over the text's norm).
    One,
    /// One per feature (format 3: each its term frequency weight over the norm).
    PerFeature,
    /// Either (token-id graphs: format 1 had both shapes).
    OneOrPerFeature,
}

/// A graph's outputs for one text, per feature: the features are the text's distinct
/// features for a counted graph, its positions (the `n` tokens, then the `n - 1` pairs) for a
/// token-id graph.
#[derive(Debug)]
pub(crate) struct Outputs {
    /// One probability per label, in manifest order.
    pub(crate) probabilities: Vec<f32>,
    /// `[features × labels]`: each feature's contribution to each label's logit at one of its
    /// positions.
    contributions: Vec<f32>,
    /// For every position, the index of its feature (counted graphs; else the position's own).
    of_position: Option<Vec<u32>>,
}

impl Outputs {
    /// Checks the graph's raw outputs fit each other (rows no narrower than the labels, none
    /// ragged, as many scales as `scales_expected` says) and multiplies each feature's weights
    /// (the first `labels` columns of its row) by its share: its scale (its own, or the one for
    /// all), split evenly between its occurrences for a counted graph; 1 where the graph has no
    /// scales.
    fn new(
        probabilities: Vec<f32>,
        rows: &[f32],
        scales: Option<&[f32]>,
        scales_expected: ScaleCount,
        counted: Option<Counted>,
        positions: usize,
    ) -> Result<Self, Error> {
        let labels = probabilities.len();
        let features = counted.as_ref().map_or(positions, |c| c.rows.len());
        let scales = scales.unwrap_or(&[1.0]);
        let width = rows.len() / features.max(1);
        let scales_fit = match scales_expected {
            ScaleCount::One => scales.len() == 1,
            ScaleCount::PerFeature => scales.len() == features,
            ScaleCount::OneOrPerFeature => scales.len() == 1 || scales.len() == features,
        };
        if width < labels || width * features != rows.len() || !scales_fit {
            return Err(Error::Inference {
                what: format!(
                    "graph returned {} row values and {} scales for {features} features and {labels} labels",
                    rows.len(),
                    scales.len()
                ),
                source: None,
            });
        }
        // One scale for all, or each feature's own (with one feature, both are scales[0]).
        let scale = |f: usize| if scales.len() == 1 { scales[0] } else { scales[f] };
        let share = |f: usize| match &counted {
            Some(c) => scale(f) / c.counts[f],
            None => scale(f),
        };
        let mut contributions = Vec::with_capacity(features * labels);
        for (f, row) in rows.chunks_exact(width).enumerate() {
            let share = share(f);
            contributions.extend(row[..labels].iter().map(|v| v * share));
        }
        Ok(Self { probabilities, contributions, of_position: counted.map(|c| c.of_position) })
    }

    /// The feature at each position.
    pub(crate) fn feature_of(&self, position: usize) -> usize {
        match &self.of_position {
            Some(features) => features[position] as usize,
            None => position,
        }
    }

    /// The number of distinct features, when they are (counted graphs); `None` when the
    /// features are the positions.
    pub(crate) fn distinct_features(&self) -> Option<usize> {
        self.of_position.as_ref().map(|_| self.contributions.len() / self.probabilities.len())
    }

    /// How many of the text's distinct features the model learnt weights for
    /// ([`features::known`]): those whose row is not all zeros, since training never moves the
    /// row of a feature no training text has, and the trainer's scalings keep a zero a zero.
    /// `None` for a token-id graph, whose rows are positions.
    pub(crate) fn known_features(&self) -> Option<u32> {
        let of_position = self.of_position.as_ref()?;
        let labels = self.probabilities.len();
        let row = |f: usize| &self.contributions[f * labels..][..labels];
        Some(features::known(of_position, self.contributions.len() / labels, |f| row(f).iter().any(|v| *v != 0.0)))
    }

    /// Each feature's contribution to each label's logit at one of its positions, in feature
    /// order.
    pub(crate) fn contributions(&self) -> std::slice::ChunksExact<'_, f32> {
        self.contributions.chunks_exact(self.probabilities.len())
    }

    /// The contributions handed back to positions, so a feature read once with its count
    /// shows at each of its positions with an even share.
    pub(crate) fn into_scores(self, tokens: usize) -> Scores {
        let labels = self.probabilities.len();
        let positions = (2 * tokens).saturating_sub(1);
        let mut contributions = Vec::with_capacity(positions * labels);
        for i in 0..positions {
            contributions.extend_from_slice(&self.contributions[self.feature_of(i) * labels..][..labels]);
        }
        let split = (tokens * labels).min(contributions.len());
        let pair_contributions = contributions.split_off(split);
        Scores { probabilities: self.probabilities, token_contributions: contributions, pair_contributions }
    }
}

/// `values` as a rank-1 tensor, copied once (an ndarray detour copies twice).
#[cfg(feature = "tract")]
fn vector<T: Datum + Copy>(values: &[T]) -> TValue {
    Tensor::from_shape(&[values.len()], values).expect("a slice fills a shape of its own length").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Outputs::new` on hand-made outputs for two labels, rows of width 3: a token-id graph's
    /// scales without `counted`, a format 3 graph's with it.
    fn outputs(
        rows: &[f32],
        scales: Option<&[f32]>,
        counted: Option<Counted>,
        positions: usize,
    ) -> Result<Outputs, Error> {
        let expected = if counted.is_some() { ScaleCount::PerFeature } else { ScaleCount::OneOrPerFeature };
        Outputs::new(vec![0.5, 0.5], rows, scales, expected, counted, positions)
    }

    #[test]
    fn scales_of_the_wrong_count_are_an_error() {
        // 3 positions (n = 2 tokens) of width 3 for 2 labels.
        let rows = [1.0, 2.0, 9.0, 3.0, 4.0, 9.0, 5.0, 6.0, 9.0];
        let scores = |scales| outputs(&rows, scales, None, 3).map(|o| o.into_scores(2));
        let s = scores(Some(&[2.0])).expect("one scale");
        assert_eq!((s.token_contributions, s.pair_contributions), (vec![2.0, 4.0, 6.0, 8.0], vec![10.0, 12.0]));
        let s = scores(Some(&[1.0, 0.5, 2.0])).expect("one per feature");
        assert_eq!((s.token_contributions, s.pair_contributions), (vec![1.0, 2.0, 1.5, 2.0], vec![10.0, 12.0]));
        let s = scores(None).expect("no scales: the rows as they are");
        assert_eq!((s.token_contributions, s.pair_contributions), (vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0]));
        let err = scores(Some(&[1.0, 2.0])).expect_err("two scales for three features");
        assert!(err.to_string().contains("2 scales"), "{err}");
        assert!(outputs(&rows[..8], Some(&[1.0]), None, 3).is_err(), "ragged rows");
        assert!(
            Outputs::new(vec![0.25; 4], &rows, Some(&[1.0]), ScaleCount::OneOrPerFeature, None, 3).is_err(),
            "rows narrower than the labels"
        );
    }

    #[test]
    fn a_feature_is_shared_evenly_between_its_positions() {
        // Features 0 (twice), 1 (once) over three positions, two labels, rows of width 3.
        let c = Counted { rows: vec![7, 9], counts: vec![2.0, 1.0], of_position: vec![0, 1, 0] };
        let rows = [4.0, -2.0, 9.0, 1.0, 3.0, 9.0];
        let got = outputs(&rows, Some(&[0.5, 2.0]), Some(c.clone()), 3).expect("fits").into_scores(2);
        assert_eq!(got.token_contributions, [1.0, -0.5, 2.0, 6.0]);
        assert_eq!(got.pair_contributions, [1.0, -0.5]);
        assert!(outputs(&rows[..5], Some(&[0.5, 2.0]), Some(c.clone()), 3).is_err(), "ragged rows");
        assert!(outputs(&rows, Some(&[0.5]), Some(c.clone()), 3).is_err(), "one scale for two features");
    }

    #[test]
    fn a_presence_graphs_one_scale_is_shared_evenly_between_each_features_positions() {
        // Format 4: the same features, one scale for all; per-feature scales are refused.
        let c = Counted { rows: vec![7, 9], counts: vec![2.0, 1.0], of_position: vec![0, 1, 0] };
        let rows = [4.0, -2.0, 9.0, 1.0, 3.0, 9.0];
        let one =
            |scales: &[f32]| Outputs::new(vec![0.5, 0.5], &rows, Some(scales), ScaleCount::One, Some(c.clone()), 3);
        let got = one(&[0.5]).expect("fits").into_scores(2);
        assert_eq!(got.token_contributions, [1.0, -0.5, 0.5, 1.5]);
        assert_eq!(got.pair_contributions, [1.0, -0.5]);
        assert!(one(&[0.5, 2.0]).is_err(), "a scale per feature");
    }
}
