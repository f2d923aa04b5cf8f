//! Writing the model as a self-contained ONNX graph (opset 13), with tract's own protobuf
//! types: token ids in, one probability per label out, plus the per-token and per-pair
//! contributions the explanation ranks.
//!
//! ```text
//! input_ids[n] ─ Gather(tok) ─────────────────── × scale ─ token_contributions[n,L] ─ ReduceSum ─┐
//!      ├─ Slice[:-1] × pair_mul + Slice[1:] ─ Mod(buckets) ─ Gather(pair) × scale ─ pair_contributions ─ ReduceSum ─ + ─ + bias ─ Softmax ─ probabilities[L]
//!      └─ Shape ─ Cast(f32) ─ [Sqrt] ─ Reciprocal = scale
//! ```
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

use crate::model::{LinearModel, Pooling};

/// Tensor names of the graph's interface; the manifest's `graph` section repeats them.
pub mod names {
    /// int64 `[n]` token ids.
    pub const INPUT: &str = "input_ids";
    /// float32 `[labels]`.
    pub const PROBABILITIES: &str = "probabilities";
    /// float32 `[n, labels]`.
    pub const TOKEN_CONTRIBUTIONS: &str = "token_contributions";
    /// float32 `[n - 1, labels]`.
    pub const PAIR_CONTRIBUTIONS: &str = "pair_contributions";
}

const OPSET: i64 = 13;

/// Serialises `model` to ONNX bytes. `labels` and `model_name` go into the metadata so that
/// the file explains itself in any ONNX tool.
pub fn to_onnx(model: &LinearModel, labels: &[String], model_name: &str) -> Vec<u8> {
    let l = model.labels as i64;
    let initializer = vec![
        f32_tensor("tok_weights", &[model.spec.vocab as i64, l], &model.tok),
        f32_tensor("pair_weights", &[model.spec.buckets as i64, l], &model.pair),
        f32_tensor("bias", &[l], &model.bias),
        i64_tensor("pair_mul", &[], &[model.spec.pair_mul]),
        i64_tensor("buckets", &[], &[model.spec.buckets as i64]),
        i64_tensor("axis0", &[1], &[0]),
        i64_tensor("zero", &[1], &[0]),
        i64_tensor("one", &[1], &[1]),
        i64_tensor("minus_one", &[1], &[-1]),
        i64_tensor("to_end", &[1], &[i64::MAX]),
    ];
    let mut node = vec![
        op("Gather", &["tok_weights", names::INPUT], "tok_rows", vec![int_attr("axis", 0)]),
        op("Shape", &[names::INPUT], "n_shape", vec![]),
        op("Cast", &["n_shape"], "n_float", vec![int_attr("to", DataType::Float as i64)]),
    ];
    match model.spec.pooling {
        Pooling::Mean => node.push(op("Reciprocal", &["n_float"], "scale", vec![])),
        Pooling::Sqrt => {
            node.push(op("Sqrt", &["n_float"], "n_root", vec![]));
            node.push(op("Reciprocal", &["n_root"], "scale", vec![]));
        }
    }
    node.extend([
        op("Mul", &["tok_rows", "scale"], names::TOKEN_CONTRIBUTIONS, vec![]),
        op("Slice", &[names::INPUT, "zero", "minus_one", "axis0"], "left", vec![]),
        op("Slice", &[names::INPUT, "one", "to_end", "axis0"], "right", vec![]),
        op("Mul", &["left", "pair_mul"], "left_scaled", vec![]),
        op("Add", &["left_scaled", "right"], "pair_key", vec![]),
        op("Mod", &["pair_key", "buckets"], "pair_bucket", vec![int_attr("fmod", 0)]),
        op("Gather", &["pair_weights", "pair_bucket"], "pair_rows", vec![int_attr("axis", 0)]),
        op("Mul", &["pair_rows", "scale"], names::PAIR_CONTRIBUTIONS, vec![]),
        op("ReduceSum", &[names::TOKEN_CONTRIBUTIONS, "axis0"], "tok_sum", vec![int_attr("keepdims", 0)]),
        op("ReduceSum", &[names::PAIR_CONTRIBUTIONS, "axis0"], "pair_sum", vec![int_attr("keepdims", 0)]),
        op("Add", &["tok_sum", "pair_sum"], "summed", vec![]),
        op("Add", &["summed", "bias"], "logits", vec![]),
        op("Softmax", &["logits"], names::PROBABILITIES, vec![int_attr("axis", -1)]),
    ]);
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
            value_info(names::TOKEN_CONTRIBUTIONS, DataType::Float, &[Dim::Param("n"), Dim::Value(l)]),
            value_info(names::PAIR_CONTRIBUTIONS, DataType::Float, &[Dim::Param("n_pairs"), Dim::Value(l)]),
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

fn f32_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn i64_tensor(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int64 as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}
