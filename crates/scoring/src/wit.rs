//! Conversions to and from the `wafer:inference/types` WIT bindings.
//!
//! The guest (wit-bindgen) and the host (wasmtime's `bindgen!`) each generate their own Rust
//! types from `wit/world.wit`, with the same names and shapes. [`wit_conversions!`] writes the
//! conversions between those types and this crate's once, for whichever bindings it is given.

/// Implements `From`/`TryFrom` between this crate's tensors, datatypes and metadata and the
/// `wafer:inference/types` bindings at `$types` (a module path of the calling crate).
#[macro_export]
macro_rules! wit_conversions {
    ($types:path) => {
        const _: () = {
            use $crate as scoring;
            use $types as wit;

            impl From<scoring::DataType> for wit::Datatype {
                fn from(d: scoring::DataType) -> Self {
                    match d {
                        scoring::DataType::Bool => wit::Datatype::Bool,
                        scoring::DataType::U8 => wit::Datatype::Uint8,
                        scoring::DataType::U16 => wit::Datatype::Uint16,
                        scoring::DataType::U32 => wit::Datatype::Uint32,
                        scoring::DataType::U64 => wit::Datatype::Uint64,
                        scoring::DataType::I8 => wit::Datatype::Int8,
                        scoring::DataType::I16 => wit::Datatype::Int16,
                        scoring::DataType::I32 => wit::Datatype::Int32,
                        scoring::DataType::I64 => wit::Datatype::Int64,
                        scoring::DataType::F16 => wit::Datatype::Fp16,
                        scoring::DataType::F32 => wit::Datatype::Fp32,
                        scoring::DataType::F64 => wit::Datatype::Fp64,
                        scoring::DataType::String => wit::Datatype::Bytes,
                    }
                }
            }

            impl From<wit::Datatype> for scoring::DataType {
                fn from(d: wit::Datatype) -> Self {
                    match d {
                        wit::Datatype::Bool => scoring::DataType::Bool,
                        wit::Datatype::Uint8 => scoring::DataType::U8,
                        wit::Datatype::Uint16 => scoring::DataType::U16,
                        wit::Datatype::Uint32 => scoring::DataType::U32,
                        wit::Datatype::Uint64 => scoring::DataType::U64,
                        wit::Datatype::Int8 => scoring::DataType::I8,
                        wit::Datatype::Int16 => scoring::DataType::I16,
                        wit::Datatype::Int32 => scoring::DataType::I32,
                        wit::Datatype::Int64 => scoring::DataType::I64,
                        wit::Datatype::Fp16 => scoring::DataType::F16,
                        wit::Datatype::Fp32 => scoring::DataType::F32,
                        wit::Datatype::Fp64 => scoring::DataType::F64,
                        wit::Datatype::Bytes => scoring::DataType::String,
                    }
                }
            }

            impl From<scoring::Tensor> for wit::Tensor {
                fn from(t: scoring::Tensor) -> Self {
                    let (name, shape, data) = t.into_parts();
                    let data = match data {
                        scoring::TensorData::Bool(v) => wit::TensorData::Bool(v),
                        scoring::TensorData::U8(v) => wit::TensorData::Uint8(v),
                        scoring::TensorData::U16(v) => wit::TensorData::Uint16(v),
                        scoring::TensorData::U32(v) => wit::TensorData::Uint32(v),
                        scoring::TensorData::U64(v) => wit::TensorData::Uint64(v),
                        scoring::TensorData::I8(v) => wit::TensorData::Int8(v),
                        scoring::TensorData::I16(v) => wit::TensorData::Int16(v),
                        scoring::TensorData::I32(v) => wit::TensorData::Int32(v),
                        scoring::TensorData::I64(v) => wit::TensorData::Int64(v),
                        scoring::TensorData::F16(v) => wit::TensorData::Fp16(
                            v.into_iter().map(scoring::f16::to_bits).collect(),
                        ),
                        scoring::TensorData::F32(v) => wit::TensorData::Fp32(v),
                        scoring::TensorData::F64(v) => wit::TensorData::Fp64(v),
                        scoring::TensorData::String(v) => wit::TensorData::Bytes(v),
                    };
                    wit::Tensor {
                        name,
                        shape: shape.into_iter().map(|d| d as u64).collect(),
                        data,
                    }
                }
            }

            impl TryFrom<wit::Tensor> for scoring::Tensor {
                type Error = scoring::ScoringError;

                /// Checks that the shape holds as many elements as the data.
                fn try_from(t: wit::Tensor) -> Result<Self, Self::Error> {
                    let data = match t.data {
                        wit::TensorData::Bool(v) => scoring::TensorData::Bool(v),
                        wit::TensorData::Uint8(v) => scoring::TensorData::U8(v),
                        wit::TensorData::Uint16(v) => scoring::TensorData::U16(v),
                        wit::TensorData::Uint32(v) => scoring::TensorData::U32(v),
                        wit::TensorData::Uint64(v) => scoring::TensorData::U64(v),
                        wit::TensorData::Int8(v) => scoring::TensorData::I8(v),
                        wit::TensorData::Int16(v) => scoring::TensorData::I16(v),
                        wit::TensorData::Fp16(v) => scoring::TensorData::F16(
                            v.into_iter().map(scoring::f16::from_bits).collect(),
                        ),
                        wit::TensorData::Int32(v) => scoring::TensorData::I32(v),
                        wit::TensorData::Int64(v) => scoring::TensorData::I64(v),
                        wit::TensorData::Fp32(v) => scoring::TensorData::F32(v),
                        wit::TensorData::Fp64(v) => scoring::TensorData::F64(v),
                        wit::TensorData::Bytes(v) => scoring::TensorData::String(v),
                    };
                    let shape = t
                        .shape
                        .iter()
                        .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
                        .collect();
                    scoring::Tensor::new(t.name, shape, data)
                }
            }

            impl From<&scoring::ModelMetadata> for wit::ModelMetadata {
                fn from(m: &scoring::ModelMetadata) -> Self {
                    let infos = |infos: &[scoring::TensorInfo]| {
                        infos
                            .iter()
                            .map(|i| wit::TensorInfo {
                                name: i.name.clone(),
                                datatype: i.datatype.into(),
                                shape: i.shape.iter().map(scoring::Dim::to_v2).collect(),
                                class_labels: i.class_labels.clone(),
                            })
                            .collect()
                    };
                    wit::ModelMetadata {
                        name: m.name.clone(),
                        versions: Vec::new(),
                        platform: m.platform.clone(),
                        inputs: infos(&m.inputs),
                        outputs: infos(&m.outputs),
                    }
                }
            }

            impl From<wit::ModelMetadata> for scoring::ModelMetadata {
                fn from(m: wit::ModelMetadata) -> Self {
                    let infos = |infos: Vec<wit::TensorInfo>| {
                        infos
                            .into_iter()
                            .map(|i| scoring::TensorInfo {
                                name: i.name,
                                datatype: i.datatype.into(),
                                shape: i.shape.into_iter().map(scoring::Dim::from_v2).collect(),
                                class_labels: i.class_labels,
                            })
                            .collect()
                    };
                    scoring::ModelMetadata {
                        name: m.name,
                        platform: m.platform,
                        inputs: infos(m.inputs),
                        outputs: infos(m.outputs),
                    }
                }
            }
        };
    };
}
