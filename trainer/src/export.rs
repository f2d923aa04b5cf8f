//! Writing the model as a self-contained ONNX graph (opset 17), with tract's own protobuf
//! types: counted features (or, for older formats, token ids) in, one probability per label
//! out, plus the per-feature contributions the explanation ranks. The graph computes the
//! TF-IDF weighting itself (see `model` for the maths), so nothing but the tokenizer and the
//! core's count runs outside it.
//! Every value is written in a fixed order with no timestamps, so the same model gives the
//! same bytes.

use edge_classifier::api::{CountedInput, GraphSpec};
use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto::{self, Tensor as TypeTensor};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

use crate::model::{Int8Table, LinearModel, Weighting};

/// How [`to_onnx`] stores the table: f16, or the model's [`Int8Table`] (whose
/// [`LinearModel::with_table`] is the model passed).
#[derive(Debug, Clone, Copy)]
pub enum Table<'a> {
    /// Every value as f16 (the model's values must be f16-exact).
    F16,
    /// 8-bit steps and their scales.
    Int8(&'a Int8Table),
}

/// Tensor names of the graph's interface; the manifest's `graph` section repeats them.
pub mod names {
    /// int64 `[n]` token ids ([`Weighting::Occurrences`](crate::model::Weighting)).
    pub const INPUT: &str = "input_ids";
    /// int64 `[m]` distinct feature rows ([`Weighting::Presence`](crate::model::Weighting) and
    /// [`Weighting::Sublinear`](crate::model::Weighting)).
    pub const FEATURE_ROWS: &str = "feature_rows";
    /// float32 `[m]` their counts ([`Weighting::Sublinear`](crate::model::Weighting)).
    pub const FEATURE_COUNTS: &str = "feature_counts";
    /// float32 `[labels]`.
    pub const PROBABILITIES: &str = "probabilities";
    /// float32 `[m, labels + 1]` (counted graphs: one row per distinct feature) or
    /// `[2n - 1, labels + 1]` (token-id graphs: the tokens, then the pairs): each row is the
    /// feature's weights, then its squared idf.
    pub const CONTRIBUTIONS: &str = "contributions";
    /// float32 `[1]`: every feature's multiplier (1 / norm); a feature's weights × multiplier
    /// are its contributions. Sublinear graphs: `[m]`, each feature's `(1 + ln c) / norm`.
    pub const SCALES: &str = "scales";
}

/// The bias of the table's extra (idf²) column in the softmax: exp(-1e30 - max) is 0 in f32.
const NO_LABEL_LOGIT: f32 = -1e30;

// Every op here is older than 17, and onnxruntime and tract both run 17.
const OPSET: i64 = 17;

/// Serialises `model` to ONNX bytes. `labels` and `model_name` go into the metadata so that
/// the file explains itself in any ONNX tool.
///
/// The graph follows the model's [`Weighting`]: distinct features in (format 4), with their
/// counts (format 3), or token ids in (formats 1 and 2). It is shaped for tract, whose cost
/// here is per node (about a microsecond each, whatever it computes) plus its
/// element-by-element path for broadcasts over a symbolic length:
/// - tokens and pairs run as one stream of features, pair rows offset by the vocabulary size
///   in one table whose last column is the squared idf, so one gather and one sum (or one
///   small product, when counted) serve both the logits and the norm;
/// - the token-id graph's pair modulo is on non-negative keys, so `fmod = 1` (one remainder
///   op; the integer form expands to four nodes);
/// - the per-feature contributions are left as the gathered weight rows plus the scales, for
///   the core to multiply: a `[n, labels] × [n, 1]` product in the graph took as long as the
///   rest of it.
pub fn to_onnx(model: &LinearModel, table: Table<'_>, labels: &[String], model_name: &str) -> Vec<u8> {
    let Parts { input, mut node, initializer, features, scales } = match model.weighting {
        Weighting::Occurrences => occurrence_nodes(model, table),
        Weighting::Sublinear => counted_nodes(model, table),
        Weighting::Presence => presence_nodes(model, table),
    };
    let l = model.labels as i64;
    for (i, n) in node.iter_mut().enumerate() {
        n.name = format!("{}_{i}", n.op_type.to_lowercase());
    }
    let graph = GraphProto {
        name: "stacktag".into(),
        node,
        initializer,
        input,
        output: vec![
            value_info(names::PROBABILITIES, DataType::Float, &[Dim::Value(l)]),
            value_info(names::CONTRIBUTIONS, DataType::Float, &[Dim::Param(features), Dim::Value(l + 1)]),
            value_info(names::SCALES, DataType::Float, &[scales]),
        ],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "stacktag-trainer".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: vec![
            meta("model_name", model_name),
            meta("labels", &serde_json::to_string(labels).unwrap_or_default()),
        ],
        ..Default::default()
    };
    model.encode_to_vec()
}

/// The manifest's description of the graph [`to_onnx`] writes for `model`: its tensor names
/// and, when counted, how the core forms its input.
pub fn graph_spec(model: &LinearModel, max_tokens: usize) -> GraphSpec {
    let (input, counted) = match model.weighting {
        Weighting::Occurrences => (names::INPUT, None),
        Weighting::Sublinear => (
            names::FEATURE_ROWS,
            Some(CountedInput { counts: Some(names::FEATURE_COUNTS.into()), features: model.spec }),
        ),
        Weighting::Presence => (names::FEATURE_ROWS, Some(CountedInput { counts: None, features: model.spec })),
    };
    GraphSpec {
        input: input.into(),
        probabilities: names::PROBABILITIES.into(),
        contributions: names::CONTRIBUTIONS.into(),
        scales: Some(names::SCALES.into()),
        max_tokens,
        counted,
    }
}

/// What differs between the two graphs.
struct Parts {
    input: Vec<ValueInfoProto>,
    node: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
    /// The name of the feature dimension of `contributions`.
    features: &'static str,
    /// The shape of `scales`: one for all features, or one per feature.
    scales: Dim,
}

/// The initialisers every graph starts with: the table (the combined `[weights…, idf²]` rows
/// in f16, or their 8-bit steps and scales), the bias (with the idf² column's), the norm
/// column's mask and 1.
fn table_initializers(model: &LinearModel, table: Table<'_>) -> Vec<TensorProto> {
    let l = model.labels as i64;
    let rows = model.spec.vocab + model.spec.buckets;
    let mut initializer = match table {
        Table::F16 => {
            let mut values = Vec::with_capacity(rows * (model.labels + 1));
            for r in 0..rows {
                values.extend_from_slice(&model.weights[r * model.labels..][..model.labels]);
                values.push(model.idf_sq[r]);
            }
            vec![f16_tensor("table_f16", &[rows as i64, l + 1], &values)]
        }
        Table::Int8(t) => vec![
            tensor("table_i8", &[rows as i64, l], DataType::Int8, t.weights.iter().map(|q| *q as u8).collect()),
            f16_tensor("row_scales_f16", &[rows as i64, 1], &t.scales),
            tensor("idf_u8", &[rows as i64, 1], DataType::Uint8, t.idf.clone()),
            f16_tensor("idf_step_f16", &[], &[t.idf_step]),
        ],
    };
    let bias_ext: Vec<f32> = model.bias.iter().copied().chain([NO_LABEL_LOGIT]).collect();
    let norm_mask: Vec<f32> = (0..=model.labels).map(|j| if j == model.labels { 1.0 } else { 0.0 }).collect();
    initializer.extend([
        f32_tensor("bias_ext", &[l + 1], &bias_ext),
        f32_tensor("norm_mask", &[l + 1], &norm_mask),
        f32_tensor("one_f", &[], &[1.0]),
    ]);
    initializer
}

/// The tail both graphs share: from `sums` (`[labels + 1]`: the weighted logit sums, then the
/// squared norm) to the scale and the probabilities. No `Slice` reads that sum: tract pushes
/// a slice up through the sum and the cast, splitting both in two and concatenating the
/// contributions back (about 10 µs a request). So the norm is taken through a mask, the whole
/// row is scaled, and the extra column's logit is pushed to -1e30 by its bias, which gives it
/// probability 0 in the softmax; only the probabilities, which nothing follows, are sliced.
fn softmax_tail(inv_norm: &str) -> Vec<NodeProto> {
    vec![
        op("Mul", &["sums", "norm_mask"], "norm_terms", vec![]),
        op("ReduceSum", &["norm_terms", "axis0"], "nsq", vec![int_attr("keepdims", 1)]),
        op("Sqrt", &["nsq"], "norm", vec![]),
        op("Div", &["one_f", "norm"], inv_norm, vec![]),
        op("Mul", &["sums", inv_norm], "scaled_sums", vec![]),
        op("Add", &["scaled_sums", "bias_ext"], "logits_ext", vec![]),
        op("Softmax", &["logits_ext"], "probabilities_ext", vec![int_attr("axis", -1)]),
        op("Slice", &["probabilities_ext", "zero", "labels", "axis0"], names::PROBABILITIES, vec![]),
    ]
}

/// The rows `[weights…, idf²]` of `rows`: only the gathered rows are cast to f32 (tract does
/// not fold a cast of the whole table to f32, which would cost 2 ms a request).
///
/// An 8-bit table is first dequantised to the same f16 table by nodes that read only
/// initialisers: tract folds them into one constant when it loads the graph, so each request
/// runs exactly the f16 graph's two nodes. (Dequantising the gathered rows instead, in f32,
/// took seven more nodes broadcasting over the feature count: each classify 1.3× slower.) Every
/// product is one f16 rounding of a product exact in f32 (`steps ≤ 127` × an f16 scale), as
/// onnxruntime computes it too, and [`LinearModel::with_table`] rounds the same way. The fold
/// stays within tract's constant-folding budget (an f16 output no larger than 4 MB, or than its
/// inputs): a table of 278,139 rows × 5 is 2.8 MB. The fold's large parts also land in the
/// edge component's pre-init heap, which the bake checks is still mapped copy-on-write
/// (docs/benchmarks.md#int8-snapshot).
fn gather_rows(rows: &str, table: Table<'_>) -> Vec<NodeProto> {
    let to = |t: DataType| vec![int_attr("to", t as i64)];
    let mut nodes = match table {
        Table::F16 => vec![],
        Table::Int8(_) => vec![
            op("Cast", &["table_i8"], "table_steps_f16", to(DataType::Float16)),
            op("Mul", &["table_steps_f16", "row_scales_f16"], "table_weights_f16", vec![]),
            op("Cast", &["idf_u8"], "idf_steps_f16", to(DataType::Float16)),
            op("Mul", &["idf_steps_f16", "idf_step_f16"], "idf_f16", vec![]),
            op("Concat", &["table_weights_f16", "idf_f16"], "table_f16", vec![int_attr("axis", 1)]),
        ],
    };
    nodes.extend([
        op("Gather", &["table_f16", rows], "row_table_f16", vec![int_attr("axis", 0)]),
        op("Cast", &["row_table_f16"], names::CONTRIBUTIONS, to(DataType::Float)),
    ]);
    nodes
}

/// [`Weighting::Sublinear`]: the core counts (see `edge_classifier::features`), the graph
/// reads each distinct feature's row once with its count `c` and weighs it by
/// `tf = 1 + ln c`. One `[2, m] × [m, labels + 1]` product gives both `Σ tf · W` (the weight
/// columns of its first row) and `Σ tf² · idf²` (the last column of its second), picked out
/// by a 0/1 mask and a sum.
fn counted_nodes(model: &LinearModel, table: Table<'_>) -> Parts {
    let l = model.labels;
    let select: Vec<f32> = (0..2 * (l + 1))
        .map(|i| {
            let (row, col) = (i / (l + 1), i % (l + 1));
            if (row == 0) == (col < l) { 1.0 } else { 0.0 }
        })
        .collect();
    let mut initializer = table_initializers(model, table);
    initializer.extend([
        i64_tensor("axis0", &[1], &[0]),
        i64_tensor("zero", &[1], &[0]),
        i64_tensor("labels", &[1], &[l as i64]),
        f32_tensor("select", &[2, l as i64 + 1], &select),
        i64_tensor("two_rows", &[2], &[2, -1]),
    ]);
    let mut node = gather_rows(names::FEATURE_ROWS, table);
    node.extend([
        op("Log", &[names::FEATURE_COUNTS], "log_counts", vec![]),
        op("Add", &["log_counts", "one_f"], "tf", vec![]),
        op("Mul", &["tf", "tf"], "tf_sq", vec![]),
        op("Concat", &["tf", "tf_sq"], "tf_both_flat", vec![int_attr("axis", 0)]),
        op("Reshape", &["tf_both_flat", "two_rows"], "tf_both", vec![]),
        op("MatMul", &["tf_both", names::CONTRIBUTIONS], "weighted", vec![]),
        op("Mul", &["weighted", "select"], "selected", vec![]),
        op("ReduceSum", &["selected", "axis0"], "sums", vec![int_attr("keepdims", 0)]),
    ]);
    node.extend(softmax_tail("inv_norm"));
    node.push(op("Mul", &["tf", "inv_norm"], names::SCALES, vec![]));
    let input = vec![
        value_info(names::FEATURE_ROWS, DataType::Int64, &[Dim::Param("m")]),
        value_info(names::FEATURE_COUNTS, DataType::Float, &[Dim::Param("m")]),
    ];
    Parts { input, node, initializer, features: "m", scales: Dim::Param("m") }
}

/// [`Weighting::Presence`]: the core finds the distinct features (see
/// `edge_classifier::features`) and the graph sums their rows once each: as the token-id
/// graph's sum, without its pair arithmetic and over fewer rows, and none of the counted
/// graph's weighting (a `[2, m] × [m, labels + 1]` product whose packing alone cost more than
/// this whole sum).
fn presence_nodes(model: &LinearModel, table: Table<'_>) -> Parts {
    let mut initializer = table_initializers(model, table);
    initializer.extend([
        i64_tensor("axis0", &[1], &[0]),
        i64_tensor("zero", &[1], &[0]),
        i64_tensor("labels", &[1], &[model.labels as i64]),
    ]);
    let mut node = gather_rows(names::FEATURE_ROWS, table);
    node.push(op("ReduceSum", &[names::CONTRIBUTIONS, "axis0"], "sums", vec![int_attr("keepdims", 0)]));
    node.extend(softmax_tail(names::SCALES));
    let input = vec![value_info(names::FEATURE_ROWS, DataType::Int64, &[Dim::Param("m")])];
    Parts { input, node, initializer, features: "m", scales: Dim::Value(1) }
}

/// [`Weighting::Occurrences`]: token ids in; every position adds its row once.
fn occurrence_nodes(model: &LinearModel, table: Table<'_>) -> Parts {
    let spec = &model.spec;
    // In the order these graphs always had, so old bundles rebuild byte for byte.
    let mut initializer = table_initializers(model, table);
    initializer.extend([
        i64_tensor("pair_mul", &[], &[spec.pair_mul]),
        i64_tensor("buckets", &[], &[spec.buckets as i64]),
        i64_tensor("vocab", &[], &[spec.vocab as i64]),
        i64_tensor("axis0", &[1], &[0]),
        i64_tensor("zero", &[1], &[0]),
        i64_tensor("one", &[1], &[1]),
        i64_tensor("minus_one", &[1], &[-1]),
        i64_tensor("to_end", &[1], &[i64::MAX]),
        i64_tensor("labels", &[1], &[model.labels as i64]),
    ]);
    let fmod = || vec![int_attr("fmod", 1)];
    let mut node = vec![
        // Pairs: key = left · pair_mul + right (never negative: ids are), read at
        // vocab + key mod buckets.
        op("Slice", &[names::INPUT, "zero", "minus_one", "axis0"], "left", vec![]),
        op("Slice", &[names::INPUT, "one", "to_end", "axis0"], "right", vec![]),
        op("Mul", &["left", "pair_mul"], "left_scaled", vec![]),
        op("Add", &["left_scaled", "right"], "pair_key", vec![]),
        op("Mod", &["pair_key", "buckets"], "pair_bucket", fmod()),
        op("Add", &["pair_bucket", "vocab"], "pair_row", vec![]),
        op("Concat", &[names::INPUT, "pair_row"], "rows", vec![int_attr("axis", 0)]),
    ];
    node.extend(gather_rows("rows", table));
    // One sum over the positions gives both the unnormalised logits (the weight columns) and
    // the squared norm (the idf² column).
    node.push(op("ReduceSum", &[names::CONTRIBUTIONS, "axis0"], "sums", vec![int_attr("keepdims", 0)]));
    node.extend(softmax_tail(names::SCALES));
    let input = vec![value_info(names::INPUT, DataType::Int64, &[Dim::Param("n")])];
    Parts { input, node, initializer, features: "n_features", scales: Dim::Value(1) }
}

enum Dim {
    Value(i64),
    Param(&'static str),
}

fn value_info(name: &str, elem: DataType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Value(v) => dimension::Value::DimValue(*v),
                Dim::Param(p) => dimension::Value::DimParam((*p).into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(TypeTensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn op(op_type: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op_type.into(),
        input: inputs.iter().map(|s| (*s).into()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i: value, ..Default::default() }
}

fn meta(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto { key: key.into(), value: value.into() }
}

/// An initialiser in raw little-endian form (the compact, deterministic encoding).
fn tensor(name: &str, dims: &[i64], data_type: DataType, raw_data: Vec<u8>) -> TensorProto {
    TensorProto { name: name.into(), dims: dims.to_vec(), data_type: data_type as i32, raw_data, ..Default::default() }
}

fn f32_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    tensor(name, dims, DataType::Float, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// Values must already be f16-exact (see `model::round_f16`): the conversion here then loses
/// nothing.
fn f16_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    let raw = values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
    tensor(name, dims, DataType::Float16, raw)
}

fn i64_tensor(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    tensor(name, dims, DataType::Int64, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}
