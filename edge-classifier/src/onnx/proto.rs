//! The part of ONNX's protobuf schema (onnx.proto3, IR 8) the interpreter reads: field numbers as
//! in the standard, fields it does not read left out (protobuf skips unknown fields).

/// `onnx.ModelProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ModelProto {
    /// The graph.
    #[prost(message, optional, tag = "7")]
    pub(crate) graph: Option<GraphProto>,
    /// Operator sets by domain.
    #[prost(message, repeated, tag = "8")]
    pub(crate) opset_import: Vec<OperatorSetIdProto>,
    /// Functions the graph may call (refused: the trainer writes none).
    #[prost(message, repeated, tag = "25")]
    pub(crate) functions: Vec<Present>,
}

/// `onnx.OperatorSetIdProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct OperatorSetIdProto {
    /// `""` (or `ai.onnx`) for the default operator set.
    #[prost(string, tag = "1")]
    pub(crate) domain: String,
    /// Its version.
    #[prost(int64, tag = "2")]
    pub(crate) version: i64,
}

/// A message read only to see whether there is one (its fields are skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Present {}

/// `onnx.GraphProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GraphProto {
    /// Nodes, in topological order (as the standard requires).
    #[prost(message, repeated, tag = "1")]
    pub(crate) node: Vec<NodeProto>,
    /// Constant tensors.
    #[prost(message, repeated, tag = "5")]
    pub(crate) initializer: Vec<TensorProto>,
    /// Sparse constants (refused).
    #[prost(message, repeated, tag = "15")]
    pub(crate) sparse_initializer: Vec<Present>,
    /// Inputs (initialisers may also be listed here, as defaults).
    #[prost(message, repeated, tag = "11")]
    pub(crate) input: Vec<ValueInfoProto>,
    /// Outputs.
    #[prost(message, repeated, tag = "12")]
    pub(crate) output: Vec<ValueInfoProto>,
}

/// `onnx.ValueInfoProto`: only the name (shapes are checked on the values themselves).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ValueInfoProto {
    /// The value's name.
    #[prost(string, tag = "1")]
    pub(crate) name: String,
}

/// `onnx.NodeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct NodeProto {
    /// Input value names (`""`: an optional input left out).
    #[prost(string, repeated, tag = "1")]
    pub(crate) input: Vec<String>,
    /// Output value names.
    #[prost(string, repeated, tag = "2")]
    pub(crate) output: Vec<String>,
    /// The node's name, for errors.
    #[prost(string, tag = "3")]
    pub(crate) name: String,
    /// The operator.
    #[prost(string, tag = "4")]
    pub(crate) op_type: String,
    /// Attributes.
    #[prost(message, repeated, tag = "5")]
    pub(crate) attribute: Vec<AttributeProto>,
    /// The operator's domain (`""`: the default one).
    #[prost(string, tag = "7")]
    pub(crate) domain: String,
}

/// `onnx.AttributeProto`: the scalar kinds the interpreted operators take.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AttributeProto {
    /// The attribute's name.
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    /// A float value.
    #[prost(float, tag = "2")]
    pub(crate) f: f32,
    /// An integer value.
    #[prost(int64, tag = "3")]
    pub(crate) i: i64,
    /// A string value (bytes).
    #[prost(bytes = "vec", tag = "4")]
    pub(crate) s: Vec<u8>,
    /// Integer list values.
    #[prost(int64, repeated, tag = "8")]
    pub(crate) ints: Vec<i64>,
    /// `AttributeProto.AttributeType`.
    #[prost(int32, tag = "20")]
    pub(crate) r#type: i32,
}

/// `onnx.TensorProto`: dense tensors, stored raw or in the typed fields.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TensorProto {
    /// Its shape.
    #[prost(int64, repeated, tag = "1")]
    pub(crate) dims: Vec<i64>,
    /// `TensorProto.DataType`.
    #[prost(int32, tag = "2")]
    pub(crate) data_type: i32,
    /// FLOAT values.
    #[prost(float, repeated, tag = "4")]
    pub(crate) float_data: Vec<f32>,
    /// INT32, INT16, INT8, UINT16, UINT8, BOOL and FLOAT16 (as bits) values.
    #[prost(int32, repeated, tag = "5")]
    pub(crate) int32_data: Vec<i32>,
    /// INT64 values.
    #[prost(int64, repeated, tag = "7")]
    pub(crate) int64_data: Vec<i64>,
    /// The tensor's name.
    #[prost(string, tag = "8")]
    pub(crate) name: String,
    /// Values as little-endian bytes.
    #[prost(bytes = "vec", tag = "9")]
    pub(crate) raw_data: Vec<u8>,
    /// DOUBLE values.
    #[prost(double, repeated, tag = "10")]
    pub(crate) double_data: Vec<f64>,
    /// 1 when the values are in another file (refused).
    #[prost(int32, tag = "14")]
    pub(crate) data_location: i32,
}
