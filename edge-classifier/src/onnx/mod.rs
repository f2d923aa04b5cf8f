//! Running a bundle's ONNX graph without tract: an interpreter for the operators the trainer's
//! graphs use (every format, old ones included), for the browser module.
//!
//! Why it exists: in the page, tract is 68% of the module's code (with its `rustfft` and
//! `ndarray`) and its parsing and optimising is most of the time to the first answer, for
//! graphs that are a gather, a sum and a softmax; issue 27 §6 asks for a page of at most 3 MB
//! and a first answer within 500 ms, which tract's module alone makes impossible
//! (docs/benchmarks.md#web-parts). Everywhere else (native, the Spin component, the trainer's
//! export check) tract runs the graph; the interpreter is held to it on every golden bundle and
//! on graphs of every weighting (`tests/it`), and the browser to native within 1e-6.
//!
//! What it does at load, it does once: every node whose inputs are all constants (an 8-bit
//! table's dequantisation) is computed then, as tract folds them; a request runs the rest.
//! Anything it does not read (another operator, opset, domain, external or sparse data) is
//! refused at load with the name of what it is.

mod proto;
mod tensor;

use std::collections::HashMap;

use prost::Message;

use self::proto::{AttributeProto, NodeProto};
pub(crate) use self::tensor::Tensor;
use self::tensor::{Binary, DType, OpResult, Reduction, Unary};
use crate::Error;

/// The default operator set's versions whose semantics the interpreter follows (13 moved
/// `ReduceSum`'s and `Unsqueeze`'s axes to inputs and changed `Softmax`; the trainer writes 17).
const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;

/// A loaded graph: its constants (folded), and the steps a request runs.
#[derive(Debug)]
pub(crate) struct Program {
    /// Every value's constant, where it is one (initialisers, and what was computed from them).
    consts: Vec<Option<Tensor>>,
    /// The graph's inputs, in order.
    inputs: Vec<usize>,
    /// The graph's outputs, in order.
    outputs: Vec<usize>,
    /// The nodes that read an input, in order.
    steps: Vec<Step>,
}

/// One node to run per request.
#[derive(Debug)]
struct Step {
    name: String,
    op: Op,
    inputs: Vec<Option<usize>>,
    output: usize,
}

/// The operators, with their attributes.
#[derive(Debug, Clone, Copy)]
enum Op {
    Binary(Binary),
    Unary(Unary),
    Cast(DType),
    Concat(i64),
    Gather(i64),
    ReduceSum { keepdims: bool, noop_empty: bool },
    Slice,
    Softmax(i64),
    MatMul,
    Reshape { allowzero: bool },
    Shape { start: i64, end: Option<i64> },
    Expand,
    Unsqueeze,
    ScatterElements { axis: i64, reduction: Reduction },
}

fn load_error(what: String) -> Error {
    Error::ModelLoad(what.into())
}

impl Op {
    /// The operator of `node`, its attributes read (with ONNX's defaults).
    fn of(node: &NodeProto) -> OpResult<Self> {
        let attr = |name: &str| -> Option<&AttributeProto> { node.attribute.iter().find(|a| a.name == name) };
        let int = |name: &str, default: i64| attr(name).map_or(default, |a| a.i);
        Ok(match node.op_type.as_str() {
            "Add" => Self::Binary(Binary::Add),
            "Mul" => Self::Binary(Binary::Mul),
            "Div" => Self::Binary(Binary::Div),
            "Mod" => Self::Binary(Binary::Mod { fmod: int("fmod", 0) == 1 }),
            "Sqrt" => Self::Unary(Unary::Sqrt),
            "Log" => Self::Unary(Unary::Log),
            "Cast" => Self::Cast(DType::from_code(attr("to").ok_or("Cast without `to`")?.i)?),
            "Concat" => Self::Concat(attr("axis").ok_or("Concat without `axis`")?.i),
            "Gather" => Self::Gather(int("axis", 0)),
            "ReduceSum" => {
                Self::ReduceSum { keepdims: int("keepdims", 1) != 0, noop_empty: int("noop_with_empty_axes", 0) != 0 }
            }
            "Slice" => Self::Slice,
            "Softmax" => Self::Softmax(int("axis", -1)),
            "MatMul" => Self::MatMul,
            "Reshape" => Self::Reshape { allowzero: int("allowzero", 0) != 0 },
            "Shape" => Self::Shape { start: int("start", 0), end: attr("end").map(|a| a.i) },
            "Expand" => Self::Expand,
            "Unsqueeze" => Self::Unsqueeze,
            "ScatterElements" => Self::ScatterElements {
                axis: int("axis", 0),
                reduction: match attr("reduction").map_or(&b"none"[..], |a| &a.s[..]) {
                    b"none" => Reduction::None,
                    b"add" => Reduction::Add,
                    b"mul" => Reduction::Mul,
                    b"max" => Reduction::Max,
                    b"min" => Reduction::Min,
                    other => return Err(format!("reduction `{}`", String::from_utf8_lossy(other))),
                },
            },
            other => return Err(format!("operator `{other}` is not one the interpreter runs")),
        })
    }

    /// How many inputs the operator takes, at least and at most.
    fn arity(self) -> (usize, usize) {
        match self {
            Self::Binary(_)
            | Self::Gather(_)
            | Self::MatMul
            | Self::Reshape { .. }
            | Self::Expand
            | Self::Unsqueeze => (2, 2),
            Self::Unary(_) | Self::Cast(_) | Self::Softmax(_) | Self::Shape { .. } => (1, 1),
            Self::Concat(_) => (1, usize::MAX),
            Self::ReduceSum { .. } => (1, 2),
            Self::Slice => (3, 5),
            Self::ScatterElements { .. } => (3, 3),
        }
    }

    /// Runs the operator on its inputs (`None`: an optional input left out).
    fn eval(self, inputs: &[Option<&Tensor>]) -> OpResult<Tensor> {
        let at =
            |i: usize| -> OpResult<&Tensor> { inputs.get(i).copied().flatten().ok_or(format!("input {i} missing")) };
        let opt = |i: usize| inputs.get(i).copied().flatten();
        match self {
            Self::Binary(b) => tensor::binary(b, at(0)?, at(1)?),
            Self::Unary(u) => tensor::unary(u, at(0)?),
            Self::Cast(to) => Ok(tensor::cast(at(0)?, to)),
            Self::Concat(axis) => {
                tensor::concat(&inputs.iter().map(|t| t.ok_or("input missing")).collect::<Result<Vec<_>, _>>()?, axis)
            }
            Self::Gather(axis) => tensor::gather(at(0)?, at(1)?, axis),
            Self::ReduceSum { keepdims, noop_empty } => tensor::reduce_sum(at(0)?, opt(1), keepdims, noop_empty),
            Self::Slice => tensor::slice(at(0)?, at(1)?, at(2)?, opt(3), opt(4)),
            Self::Softmax(axis) => tensor::softmax(at(0)?, axis),
            Self::MatMul => tensor::matmul(at(0)?, at(1)?),
            Self::Reshape { allowzero } => tensor::reshape(at(0)?, at(1)?, allowzero),
            Self::Shape { start, end } => Ok(tensor::shape_of(at(0)?, start, end)),
            Self::Expand => tensor::expand(at(0)?, at(1)?),
            Self::Unsqueeze => tensor::unsqueeze(at(0)?, at(1)?),
            Self::ScatterElements { axis, reduction } => {
                tensor::scatter_elements(at(0)?, at(1)?, at(2)?, axis, reduction)
            }
        }
    }
}

impl Program {
    /// Reads `bytes` as an ONNX model, checks the interpreter can run all of it, and computes
    /// everything that does not depend on the inputs.
    pub(crate) fn load(bytes: &[u8]) -> Result<Self, Error> {
        let model = proto::ModelProto::decode(bytes).map_err(|e| load_error(format!("not an ONNX model: {e}")))?;
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
            .ok_or_else(|| load_error("the model imports no default operator set".into()))?;
        if !OPSETS.contains(&opset) {
            return Err(load_error(format!(
                "operator set {opset}: the interpreter follows {} to {}",
                OPSETS.start(),
                OPSETS.end()
            )));
        }
        if !model.functions.is_empty() {
            return Err(load_error("the model defines functions, which the interpreter does not run".into()));
        }
        let graph = model.graph.ok_or_else(|| load_error("the model has no graph".into()))?;
        if !graph.sparse_initializer.is_empty() {
            return Err(load_error("the graph has sparse initialisers, which the interpreter does not read".into()));
        }

        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut consts: Vec<Option<Tensor>> = Vec::new();
        for t in &graph.initializer {
            let tensor = Tensor::from_proto(t).map_err(|e| load_error(format!("initialiser `{}`: {e}", t.name)))?;
            ids.insert(t.name.clone(), consts.len());
            consts.push(Some(tensor));
        }
        // Inputs with an initialiser of the same name are constants with a default (IR 4+).
        let mut inputs = Vec::new();
        for i in &graph.input {
            if ids.contains_key(&i.name) {
                continue;
            }
            ids.insert(i.name.clone(), consts.len());
            inputs.push(consts.len());
            consts.push(None);
        }

        let mut steps = Vec::new();
        for node in &graph.node {
            let name =
                if node.name.is_empty() { node.output.first().cloned().unwrap_or_default() } else { node.name.clone() };
            let fail = |e: String| load_error(format!("node `{name}` ({}): {e}", node.op_type));
            if !(node.domain.is_empty() || node.domain == "ai.onnx") {
                return Err(fail(format!("domain `{}` is not one the interpreter runs", node.domain)));
            }
            let op = Op::of(node).map_err(fail)?;
            let (least, most) = op.arity();
            let present = node.input.iter().rposition(|i| !i.is_empty()).map_or(0, |p| p + 1);
            if present < least || node.input.len() > most || node.output.len() != 1 {
                return Err(fail(format!(
                    "{} inputs and {} outputs (the interpreter runs {least} to {most} inputs, one output)",
                    node.input.len(),
                    node.output.len()
                )));
            }
            let node_inputs = node
                .input
                .iter()
                .map(|i| {
                    if i.is_empty() {
                        return Ok(None);
                    }
                    ids.get(i)
                        .copied()
                        .map(Some)
                        .ok_or_else(|| fail(format!("reads `{i}`, which nothing before it writes")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = &node.output[0];
            if ids.contains_key(out) {
                return Err(fail(format!("writes `{out}`, which is already written")));
            }
            let id = consts.len();
            ids.insert(out.clone(), id);
            // A node of constants alone is computed now, once.
            let all_const = node_inputs.iter().flatten().all(|i| consts[*i].is_some());
            if all_const {
                let args: Vec<Option<&Tensor>> =
                    node_inputs.iter().map(|i| i.and_then(|i| consts[i].as_ref())).collect();
                let value = op.eval(&args).map_err(fail)?;
                consts.push(Some(value));
            } else {
                consts.push(None);
                steps.push(Step { name, op, inputs: node_inputs, output: id });
            }
        }
        let outputs = graph
            .output
            .iter()
            .map(|o| {
                ids.get(&o.name).copied().ok_or_else(|| load_error(format!("output `{}` is never written", o.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Constants only a fold read are dropped (an 8-bit table's steps once it is dequantised).
        let mut used = vec![false; consts.len()];
        for i in steps.iter().flat_map(|s| s.inputs.iter().flatten()).chain(&outputs) {
            used[*i] = true;
        }
        for (c, u) in consts.iter_mut().zip(used) {
            if !u {
                *c = None;
            }
        }
        Ok(Self { consts, inputs, outputs, steps })
    }

    /// Runs the graph on `inputs` (in the graph's input order): its outputs, in order.
    pub(crate) fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let fail = |what: String| Error::Inference { what, source: None };
        if inputs.len() != self.inputs.len() {
            return Err(fail(format!("the graph reads {} inputs, {} given", self.inputs.len(), inputs.len())));
        }
        let mut values: Vec<Option<Tensor>> = (0..self.consts.len()).map(|_| None).collect();
        for (id, t) in self.inputs.iter().zip(inputs) {
            values[*id] = Some(t);
        }
        for step in &self.steps {
            let value = {
                let args = step
                    .inputs
                    .iter()
                    .map(|i| match i {
                        None => Ok(None),
                        Some(i) => self.consts[*i].as_ref().or(values[*i].as_ref()).map(Some).ok_or(*i),
                    })
                    .collect::<Result<Vec<_>, usize>>()
                    .map_err(|i| fail(format!("node `{}` reads value {i} before it is computed", step.name)))?;
                step.op.eval(&args).map_err(|e| fail(format!("node `{}`: {e}", step.name)))?
            };
            values[step.output] = Some(value);
        }
        self.outputs
            .iter()
            .map(|o| {
                values[*o]
                    .take()
                    .or_else(|| self.consts[*o].clone())
                    .ok_or_else(|| fail(format!("output value {o} was not computed")))
            })
            .collect()
    }
}
