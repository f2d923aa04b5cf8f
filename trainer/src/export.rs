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
    /// float32 `[n, labels]`.
    pub const TOKEN_CONTRIBUTIONS: &str = "token_contributions";
    /// float32 `[n - 1, labels]`.
    pub const PAIR_CONTRIBUTIONS: &str = "pair_contributions";
}

// 16 is the first opset whose ScatterElements takes `reduction`; 17 is widely supported.
const OPSET: i64 = 17;

/// Serialises `model` to ONNX bytes. `labels` and `model_name` go into the metadata so that
/// the file explains itself in any ONNX tool.
pub fn to_onnx(model: &LinearModel, labels: &[String], model_name: &str) -> Vec<u8> {
    let l = model.labels as i64;
    let spec = &model.spec;
    let initializer = vec![
        f16_tensor("tok_weights_f16", &[spec.vocab as i64, l], &model.tok),
        f16_tensor("pair_weights_f16", &[spec.buckets as i64, l], &model.pair),
        f16_tensor("tok_idf_sq_f16", &[spec.vocab as i64], &model.tok_idf_sq),
        f16_tensor("pair_idf_sq_f16", &[spec.buckets as i64], &model.pair_idf_sq),
        f32_tensor("bias", &[l], &model.bias),
        f32_tensor("tok_count_zeros", &[spec.vocab as i64], &vec![0.0; spec.vocab]),
        f32_tensor("pair_count_zeros", &[spec.count_buckets as i64], &vec![0.0; spec.count_buckets]),
        f32_tensor("one_f", &[], &[1.0]),
        i64_tensor("pair_mul", &[], &[spec.pair_mul]),
        i64_tensor("buckets", &[], &[spec.buckets as i64]),
        i64_tensor("count_buckets", &[], &[spec.count_buckets as i64]),
        i64_tensor("axis0", &[1], &[0]),
        i64_tensor("axis1", &[1], &[1]),
        i64_tensor("zero", &[1], &[0]),
        i64_tensor("one", &[1], &[1]),
        i64_tensor("minus_one", &[1], &[-1]),
        i64_tensor("to_end", &[1], &[i64::MAX]),
    ];
    let sum0 = || vec![int_attr("keepdims", 0)];
    let to_f32 = || vec![int_attr("to", DataType::Float as i64)];
    let mut node = vec![
        // The big tables are stored as f16; tract folds these casts once, at load.
        op("Cast", &["tok_weights_f16"], "tok_weights", to_f32()),
        op("Cast", &["pair_weights_f16"], "pair_weights", to_f32()),
        op("Cast", &["tok_idf_sq_f16"], "tok_idf_sq", to_f32()),
        op("Cast", &["pair_idf_sq_f16"], "pair_idf_sq", to_f32()),
        // Token counts: scatter-add ones into a zero table, read each position's count back.
        op("Shape", &[names::INPUT], "n_shape", vec![]),
        op("Expand", &["one_f", "n_shape"], "tok_ones", vec![]),
        scatter_add("tok_count_zeros", names::INPUT, "tok_ones", "tok_count_table"),
        op("Gather", &["tok_count_table", names::INPUT], "tok_c", vec![int_attr("axis", 0)]),
        // Sublinear TF share of each position: (1 + ln c) / c.
        op("Log", &["tok_c"], "tok_ln_c", vec![]),
        op("Add", &["tok_ln_c", "one_f"], "tok_tf_num", vec![]),
        op("Div", &["tok_tf_num", "tok_c"], "tok_tf", vec![]),
        // Squared norm share: tf² · c · idf².
        op("Mul", &["tok_tf", "tok_tf"], "tok_tf2", vec![]),
        op("Mul", &["tok_tf2", "tok_c"], "tok_tf2c", vec![]),
        op("Gather", &["tok_idf_sq", names::INPUT], "tok_idf2", vec![int_attr("axis", 0)]),
        op("Mul", &["tok_tf2c", "tok_idf2"], "tok_sq", vec![]),
        op("ReduceSum", &["tok_sq", "axis0"], "tok_nsq", sum0()),
        // Pairs: key = left · pair_mul + right; weight bucket and count bucket.
        op("Slice", &[names::INPUT, "zero", "minus_one", "axis0"], "left", vec![]),
        op("Slice", &[names::INPUT, "one", "to_end", "axis0"], "right", vec![]),
        op("Mul", &["left", "pair_mul"], "left_scaled", vec![]),
        op("Add", &["left_scaled", "right"], "pair_key", vec![]),
        op("Mod", &["pair_key", "buckets"], "pair_bucket", vec![int_attr("fmod", 0)]),
        op("Mod", &["pair_key", "count_buckets"], "pair_count_key", vec![int_attr("fmod", 0)]),
        op("Shape", &["pair_key"], "p_shape", vec![]),
        op("Expand", &["one_f", "p_shape"], "pair_ones", vec![]),
        scatter_add("pair_count_zeros", "pair_count_key", "pair_ones", "pair_count_table"),
        op("Gather", &["pair_count_table", "pair_count_key"], "pair_c", vec![int_attr("axis", 0)]),
        op("Log", &["pair_c"], "pair_ln_c", vec![]),
        op("Add", &["pair_ln_c", "one_f"], "pair_tf_num", vec![]),
        op("Div", &["pair_tf_num", "pair_c"], "pair_tf", vec![]),
        op("Mul", &["pair_tf", "pair_tf"], "pair_tf2", vec![]),
        op("Mul", &["pair_tf2", "pair_c"], "pair_tf2c", vec![]),
        op("Gather", &["pair_idf_sq", "pair_bucket"], "pair_idf2", vec![int_attr("axis", 0)]),
        op("Mul", &["pair_tf2c", "pair_idf2"], "pair_sq", vec![]),
        op("ReduceSum", &["pair_sq", "axis0"], "pair_nsq", sum0()),
        // L2 normalisation of the whole TF-IDF vector.
        op("Add", &["tok_nsq", "pair_nsq"], "nsq", vec![]),
        op("Sqrt", &["nsq"], "norm", vec![]),
        op("Div", &["one_f", "norm"], "scale", vec![]),
        // Each position's contribution: idf-folded weight row × tf share × scale.
        op("Mul", &["tok_tf", "scale"], "tok_m", vec![]),
        op("Unsqueeze", &["tok_m", "axis1"], "tok_m_col", vec![]),
        op("Gather", &["tok_weights", names::INPUT], "tok_rows", vec![int_attr("axis", 0)]),
        op("Mul", &["tok_rows", "tok_m_col"], names::TOKEN_CONTRIBUTIONS, vec![]),
        op("Mul", &["pair_tf", "scale"], "pair_m", vec![]),
        op("Unsqueeze", &["pair_m", "axis1"], "pair_m_col", vec![]),
        op("Gather", &["pair_weights", "pair_bucket"], "pair_rows", vec![int_attr("axis", 0)]),
        op("Mul", &["pair_rows", "pair_m_col"], names::PAIR_CONTRIBUTIONS, vec![]),
        op("ReduceSum", &[names::TOKEN_CONTRIBUTIONS, "axis0"], "tok_sum", sum0()),
        op("ReduceSum", &[names::PAIR_CONTRIBUTIONS, "axis0"], "pair_sum", sum0()),
        op("Add", &["tok_sum", "pair_sum"], "summed", vec![]),
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

fn f32_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// Values must already be f16-exact (see `model::round_f16`): the conversion here then loses
/// nothing.
fn f16_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float16 as i32,
        raw_data: values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
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
