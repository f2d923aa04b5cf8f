//! Writing the model as a self-contained ONNX graph (opset 17), with tract's own protobuf
//! types: token ids in, one probability per label out, plus the per-token and per-pair
//! contributions the explanation ranks. The graph computes the TF-IDF features itself (see
//! `model` for the maths), so nothing but the tokenizer runs outside it.
//! Every value is written in a fixed order with no timestamps, so the same model gives the
//! same bytes.

use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto::{self, Tensor as TypeTensor};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

use crate::model::LinearModel;

/// Tensor names of the graph's interface; the manifest's `graph` section repeats them.
pub mod names {
    /// int64 `[n]` token ids.
    pub const INPUT: &str = "input_ids";
    /// float32 `[labels]`.
    pub const PROBABILITIES: &str = "probabilities";
    /// float32 `[2n - 1, labels]`: the tokens' rows, then the pairs'.
    pub const CONTRIBUTIONS: &str = "contributions";
}

// 16 is the first opset whose ScatterElements takes `reduction`; 17 is widely supported.
const OPSET: i64 = 17;

/// Serialises `model` to ONNX bytes. `labels` and `model_name` go into the metadata so that
/// the file explains itself in any ONNX tool.
///
/// Tokens and pairs run as one stream of features (pair rows are offset by the vocabulary
/// size in one table), which halves the node count: per-node overhead dominates a graph this
/// small.
pub fn to_onnx(model: &LinearModel, labels: &[String], model_name: &str) -> Vec<u8> {
    let l = model.labels as i64;
    let spec = &model.spec;
    let rows = (spec.vocab + spec.buckets) as i64;
    let count_rows = spec.vocab + spec.count_buckets;
    let initializer = vec![
        f16_tensor("weights_f16", &[rows, l], &model.weights),
        f16_tensor("idf_sq_f16", &[rows], &model.idf_sq),
        f32_tensor("bias", &[l], &model.bias),
        f32_tensor("count_zeros", &[count_rows as i64], &vec![0.0; count_rows]),
        f32_tensor("one_f", &[], &[1.0]),
        i64_tensor("pair_mul", &[], &[spec.pair_mul]),
        i64_tensor("buckets", &[], &[spec.buckets as i64]),
        i64_tensor("count_buckets", &[], &[spec.count_buckets as i64]),
        i64_tensor("vocab", &[], &[spec.vocab as i64]),
        i64_tensor("axis0", &[1], &[0]),
        i64_tensor("axis1", &[1], &[1]),
        i64_tensor("zero", &[1], &[0]),
        i64_tensor("one", &[1], &[1]),
        i64_tensor("minus_one", &[1], &[-1]),
        i64_tensor("to_end", &[1], &[i64::MAX]),
    ];
    let to_f32 = || vec![int_attr("to", DataType::Float as i64)];
    let axis0 = || vec![int_attr("axis", 0)];
    let mut node = vec![
        // Pairs: key = left · pair_mul + right, read at vocab + key mod buckets and counted at
        // vocab + key mod count_buckets.
        op("Slice", &[names::INPUT, "zero", "minus_one", "axis0"], "left", vec![]),
        op("Slice", &[names::INPUT, "one", "to_end", "axis0"], "right", vec![]),
        op("Mul", &["left", "pair_mul"], "left_scaled", vec![]),
        op("Add", &["left_scaled", "right"], "pair_key", vec![]),
        op("Mod", &["pair_key", "buckets"], "pair_bucket", vec![int_attr("fmod", 0)]),
        op("Add", &["pair_bucket", "vocab"], "pair_row", vec![]),
        op("Mod", &["pair_key", "count_buckets"], "pair_count_bucket", vec![int_attr("fmod", 0)]),
        op("Add", &["pair_count_bucket", "vocab"], "pair_count_key", vec![]),
        op("Concat", &[names::INPUT, "pair_row"], "rows", axis0()),
        op("Concat", &[names::INPUT, "pair_count_key"], "count_keys", axis0()),
        // Counts: scatter-add ones into a zero table, read each position's count back.
        op("Shape", &["rows"], "rows_shape", vec![]),
        op("Expand", &["one_f", "rows_shape"], "ones", vec![]),
        scatter_add("count_zeros", "count_keys", "ones", "count_table"),
        op("Gather", &["count_table", "count_keys"], "c", axis0()),
        // Sublinear TF share of each position: (1 + ln c) / c.
        op("Log", &["c"], "ln_c", vec![]),
        op("Add", &["ln_c", "one_f"], "tf_num", vec![]),
        op("Div", &["tf_num", "c"], "tf", vec![]),
        // L2 norm of the TF-IDF vector: Σ tf² · c · idf² over positions.
        op("Mul", &["tf", "tf"], "tf2", vec![]),
        op("Mul", &["tf2", "c"], "tf2c", vec![]),
        // The tables are stored as f16 and only the gathered rows are cast: casting the whole
        // table is not folded by tract and would cost 2 ms a request.
        op("Gather", &["idf_sq_f16", "rows"], "row_idf_sq_f16", axis0()),
        op("Cast", &["row_idf_sq_f16"], "row_idf_sq", to_f32()),
        op("Mul", &["tf2c", "row_idf_sq"], "sq", vec![]),
        op("ReduceSum", &["sq", "axis0"], "nsq", vec![int_attr("keepdims", 0)]),
        op("Sqrt", &["nsq"], "norm", vec![]),
        op("Div", &["one_f", "norm"], "scale", vec![]),
        // Each position's contribution: its (NB- and idf-folded) weight row × tf × scale.
        op("Mul", &["tf", "scale"], "m", vec![]),
        op("Unsqueeze", &["m", "axis1"], "m_col", vec![]),
        op("Gather", &["weights_f16", "rows"], "row_weights_f16", axis0()),
        op("Cast", &["row_weights_f16"], "row_weights", to_f32()),
        op("Mul", &["row_weights", "m_col"], names::CONTRIBUTIONS, vec![]),
        op("ReduceSum", &[names::CONTRIBUTIONS, "axis0"], "summed", vec![int_attr("keepdims", 0)]),
        op("Add", &["summed", "bias"], "logits", vec![]),
        op("Softmax", &["logits"], names::PROBABILITIES, vec![int_attr("axis", -1)]),
    ];
    for (i, n) in node.iter_mut().enumerate() {
        n.name = format!("{}_{i}", n.op_type.to_lowercase());
    }

    let graph = GraphProto {
        name: "stacktag".into(),
        node,
        initializer,
        input: vec![value_info(names::INPUT, DataType::Int64, &[Dim::Param("n")])],
        output: vec![
            value_info(names::PROBABILITIES, DataType::Float, &[Dim::Value(l)]),
            value_info(names::CONTRIBUTIONS, DataType::Float, &[Dim::Param("n_features"), Dim::Value(l)]),
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

fn scatter_add(data: &str, indices: &str, updates: &str, output: &str) -> NodeProto {
    let reduction = AttributeProto {
        name: "reduction".into(),
        r#type: AttributeType::String as i32,
        s: b"add".to_vec(),
        ..Default::default()
    };
    op("ScatterElements", &[data, indices, updates], output, vec![int_attr("axis", 0), reduction])
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn meta(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto { key: key.into(), value: value.into() }
}

/// An initialiser in raw little-endian form (the compact, deterministic encoding).
fn tensor(name: &str, dims: &[i64], data_type: DataType, raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type as i32,
        raw_data,
        ..Default::default()
    }
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
