//! The part of ONNX's protobuf schema that wafer's own operators read: a model's nodes, their
//! attributes, its initializers and opsets (prost decodes what it does not name as unknown
//! fields and skips them).
//!
//! The ai.onnx.ml kernels parse their attributes from these types whichever engine runs them,
//! tract or the lite graph; tract's loader hands them its own `NodeProto`, re-encoded.

use std::fmt::Display;

use tract_data::internal::*;

/// `ModelProto`: the graph and the operator sets it imports.
#[cfg(feature = "lite")]
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ModelProto {
    /// The graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// The operator sets, by domain.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
}

/// `OperatorSetIdProto`: a domain (empty for `ai.onnx`) and its version.
#[cfg(feature = "lite")]
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct OperatorSetIdProto {
    /// The domain.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// The version.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// `GraphProto`: nodes in topological order, and the constant tensors they read.
#[cfg(feature = "lite")]
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GraphProto {
    /// The nodes, in topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// The initializers.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// The graph's outputs (only their names are read).
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// `ValueInfoProto`, its name only.
#[cfg(feature = "lite")]
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ValueInfoProto {
    /// The value's name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `NodeProto`: one operator, its inputs, outputs and attributes.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct NodeProto {
    /// Input value names; an empty name is an omitted optional input.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Output value names.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// The node's name.
    #[prost(string, tag = "3")]
    pub name: String,
    /// The operator.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// The attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// The operator's domain (empty for `ai.onnx`).
    #[prost(string, tag = "7")]
    pub domain: String,
}

/// `AttributeProto`: one named attribute; `type` says which field holds it.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AttributeProto {
    /// The attribute's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// FLOAT.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// INT.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// STRING.
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    /// TENSOR.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// FLOATS.
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    /// INTS.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// STRINGS.
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    /// Which field holds the value (`AttributeType`).
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// `TensorProto`: a constant tensor, in its typed field or as little-endian `raw_data`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TensorProto {
    /// The shape.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// The element type (`TensorProto.DataType`).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// FLOAT.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// INT32, INT16, INT8, UINT16, UINT8, BOOL and FLOAT16 (as bits).
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    /// STRING.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub string_data: Vec<Vec<u8>>,
    /// INT64.
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// The tensor's name.
    #[prost(string, tag = "8")]
    pub name: String,
    /// Every element, little-endian, for any type but STRING.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    /// DOUBLE.
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    /// UINT32 and UINT64.
    #[prost(uint64, repeated, tag = "11")]
    pub uint64_data: Vec<u64>,
    /// 1 when the data lives in another file.
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// `AttributeProto.AttributeType`: which field of an attribute holds its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AttributeType {
    Float = 1,
    Int = 2,
    String = 3,
    Tensor = 4,
    Floats = 6,
    Ints = 7,
    Strings = 8,
}

/// An attribute value type that [`NodeProto::get_attr_opt`] reads.
pub(crate) trait Scalar: Sized {
    /// Reads attribute `name` of `node`, if present, refusing one of another type.
    fn read(node: &NodeProto, name: &str) -> TractResult<Option<Self>>;
}

/// A list attribute's element type, which [`NodeProto::get_attr_opt_vec`] reads.
pub(crate) trait Element: Sized {
    /// Reads list attribute `name` of `node`, if present, refusing one of another type.
    fn read_list(node: &NodeProto, name: &str) -> TractResult<Option<Vec<Self>>>;
}

impl Scalar for i64 {
    fn read(node: &NodeProto, name: &str) -> TractResult<Option<i64>> {
        Ok(node.typed(name, AttributeType::Int)?.map(|a| a.i))
    }
}

impl Scalar for f32 {
    fn read(node: &NodeProto, name: &str) -> TractResult<Option<f32>> {
        Ok(node.typed(name, AttributeType::Float)?.map(|a| a.f))
    }
}

impl Scalar for String {
    fn read(node: &NodeProto, name: &str) -> TractResult<Option<String>> {
        node.typed(name, AttributeType::String)?
            .map(|a| utf8(node, name, &a.s))
            .transpose()
    }
}

impl Element for i64 {
    fn read_list(node: &NodeProto, name: &str) -> TractResult<Option<Vec<i64>>> {
        Ok(node
            .typed(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }
}

impl Element for f32 {
    fn read_list(node: &NodeProto, name: &str) -> TractResult<Option<Vec<f32>>> {
        Ok(node
            .typed(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }
}

impl Element for String {
    fn read_list(node: &NodeProto, name: &str) -> TractResult<Option<Vec<String>>> {
        node.typed(name, AttributeType::Strings)?
            .map(|a| a.strings.iter().map(|s| utf8(node, name, s)).collect())
            .transpose()
    }
}

fn utf8(node: &NodeProto, name: &str, bytes: &[u8]) -> TractResult<String> {
    String::from_utf8(bytes.to_vec()).or_else(|_| node.bail_attr(name, "not UTF-8"))
}

impl NodeProto {
    /// Fails naming the node.
    pub(crate) fn bail<T>(&self, msg: &str) -> TractResult<T> {
        bail!("Node {} ({}): {}", self.name, self.op_type, msg)
    }

    /// Fails naming the node and the attribute.
    pub(crate) fn bail_attr<T>(&self, attr: &str, msg: &str) -> TractResult<T> {
        bail!(
            "Node {} ({}), attribute '{}': {}",
            self.name,
            self.op_type,
            attr,
            msg
        )
    }

    /// The attribute `name`, if present.
    pub(crate) fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.attribute.iter().find(|a| a.name == name)
    }

    fn typed(&self, name: &str, ty: AttributeType) -> TractResult<Option<&AttributeProto>> {
        match self.attr(name) {
            Some(a) if a.r#type == ty as i32 => Ok(Some(a)),
            Some(a) => self.bail_attr(name, &format!("expected {ty:?}, got type {}", a.r#type)),
            None => Ok(None),
        }
    }

    /// A scalar attribute, if present.
    pub(crate) fn get_attr_opt<T: Scalar>(&self, name: &str) -> TractResult<Option<T>> {
        T::read(self, name)
    }

    /// A list attribute, if present.
    pub(crate) fn get_attr_opt_vec<T: Element>(&self, name: &str) -> TractResult<Option<Vec<T>>> {
        T::read_list(self, name)
    }

    /// A required list attribute.
    pub(crate) fn get_attr_vec<T: Element>(&self, name: &str) -> TractResult<Vec<T>> {
        match T::read_list(self, name)? {
            Some(v) => Ok(v),
            None => self.bail(&format!("expected attribute '{name}'")),
        }
    }

    /// A tensor attribute, if present.
    pub(crate) fn get_attr_tensor(&self, name: &str) -> TractResult<Option<Tensor>> {
        match self.typed(name, AttributeType::Tensor)? {
            None => Ok(None),
            Some(a) => match &a.t {
                Some(t) => t
                    .to_tensor()
                    .map(Some)
                    .or_else(|e| self.bail_attr(name, &format!("{e:#}"))),
                None => self.bail_attr(name, "type is TENSOR but its tensor (t) field is absent"),
            },
        }
    }
}

impl TensorProto {
    /// The tensor, from its typed field or its `raw_data`.
    pub(crate) fn to_tensor(&self) -> TractResult<Tensor> {
        if self.data_location == 1 {
            bail!(
                "tensor {:?}: external data is not supported here",
                self.name
            );
        }
        let shape = self
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| format_err!("negative dimension {d}")))
            .collect::<TractResult<Vec<usize>>>()?;
        let len: usize = shape.iter().product();
        let raw = !self.raw_data.is_empty();
        macro_rules! typed {
            ($t:ty, $field:expr, $convert:expr) => {{
                let values: Vec<$t> = if raw {
                    le::<$t>(&self.raw_data)?
                } else {
                    $field.iter().map($convert).collect::<TractResult<_>>()?
                };
                Tensor::from_shape(&shape, &values)
            }};
        }
        let tensor = match self.data_type {
            1 => typed!(f32, self.float_data, |&v| Ok(v)),
            2 => typed!(u8, self.int32_data, |&v| Ok(u8::try_from(v)?)),
            3 => typed!(i8, self.int32_data, |&v| Ok(i8::try_from(v)?)),
            4 => typed!(u16, self.int32_data, |&v| Ok(u16::try_from(v)?)),
            5 => typed!(i16, self.int32_data, |&v| Ok(i16::try_from(v)?)),
            6 => typed!(i32, self.int32_data, |&v| Ok(v)),
            7 => typed!(i64, self.int64_data, |&v| Ok(v)),
            8 => {
                let values = self
                    .string_data
                    .iter()
                    .map(|s| String::from_utf8(s.clone()).map_err(|_| format_err!("not UTF-8")))
                    .collect::<TractResult<Vec<String>>>()?;
                crate::ml::tensor_of(&shape, values)
            }
            9 => {
                let bytes: Vec<u8> = if raw {
                    self.raw_data.clone()
                } else {
                    self.int32_data.iter().map(|&v| u8::from(v != 0)).collect()
                };
                let values: Vec<bool> = bytes.iter().map(|&b| b != 0).collect();
                Tensor::from_shape(&shape, &values)
            }
            11 => typed!(f64, self.double_data, |&v| Ok(v)),
            12 => typed!(u32, self.uint64_data, |&v| Ok(u32::try_from(v)?)),
            13 => typed!(u64, self.uint64_data, |&v| Ok(v)),
            other => bail!(
                "tensor {:?}: element type {other} is not supported",
                self.name
            ),
        }?;
        if tensor.len() != len {
            bail!(
                "tensor {:?}: {} values for shape {shape:?}",
                self.name,
                tensor.len()
            );
        }
        Ok(tensor)
    }
}

/// Little-endian elements of a fixed size.
fn le<T: FromLe>(bytes: &[u8]) -> TractResult<Vec<T>> {
    if !bytes.len().is_multiple_of(T::SIZE) {
        bail!(
            "{} bytes of raw data is not a whole number of {}-byte elements",
            bytes.len(),
            T::SIZE
        );
    }
    Ok(bytes.chunks_exact(T::SIZE).map(T::from_le).collect())
}

trait FromLe {
    const SIZE: usize;
    fn from_le(bytes: &[u8]) -> Self;
}

macro_rules! from_le {
    ($($t:ty),*) => {$(
        impl FromLe for $t {
            const SIZE: usize = size_of::<$t>();
            fn from_le(bytes: &[u8]) -> $t {
                let mut array = [0; size_of::<$t>()];
                array.copy_from_slice(bytes);
                <$t>::from_le_bytes(array)
            }
        }
    )*};
}

from_le!(f32, f64, u8, i8, u16, i16, i32, i64, u32, u64);

/// Decodes a protobuf message, naming what it is on failure.
pub(crate) fn decode<M: prost::Message + Default>(
    what: impl Display,
    bytes: &[u8],
) -> TractResult<M> {
    M::decode(bytes).map_err(|e| format_err!("{what}: {e}"))
}
