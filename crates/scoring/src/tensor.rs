//! Typed, named tensors: what goes into a model and what comes out.

use std::fmt;

pub use half::f16;

use crate::ScoringError;

/// The element type of a tensor. Names follow the KServe v2 protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `BOOL`
    Bool,
    /// `UINT8`
    U8,
    /// `UINT16`
    U16,
    /// `UINT32`
    U32,
    /// `UINT64`
    U64,
    /// `INT8`
    I8,
    /// `INT16`
    I16,
    /// `INT32`
    I32,
    /// `INT64`
    I64,
    /// `FP16`
    F16,
    /// `FP32`
    F32,
    /// `FP64`
    F64,
    /// `BYTES`: UTF-8 strings (ONNX `string`).
    String,
}

impl DataType {
    /// Every datatype, in declaration order.
    pub const ALL: [DataType; 13] = [
        DataType::Bool,
        DataType::U8,
        DataType::U16,
        DataType::U32,
        DataType::U64,
        DataType::I8,
        DataType::I16,
        DataType::I32,
        DataType::I64,
        DataType::F16,
        DataType::F32,
        DataType::F64,
        DataType::String,
    ];

    /// The KServe v2 name, e.g. `FP32`.
    pub fn v2_name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::U16 => "UINT16",
            DataType::U32 => "UINT32",
            DataType::U64 => "UINT64",
            DataType::I8 => "INT8",
            DataType::I16 => "INT16",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F16 => "FP16",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
            DataType::String => "BYTES",
        }
    }

    /// Parses a KServe v2 datatype name.
    pub fn from_v2_name(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|dt| dt.v2_name() == name)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.v2_name())
    }
}

/// The elements of a tensor, flattened in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// Booleans.
    Bool(Vec<bool>),
    /// Unsigned bytes.
    U8(Vec<u8>),
    /// 16-bit unsigned integers.
    U16(Vec<u16>),
    /// 32-bit unsigned integers.
    U32(Vec<u32>),
    /// 64-bit unsigned integers.
    U64(Vec<u64>),
    /// Signed bytes.
    I8(Vec<i8>),
    /// 16-bit integers.
    I16(Vec<i16>),
    /// 32-bit integers.
    I32(Vec<i32>),
    /// 64-bit integers.
    I64(Vec<i64>),
    /// 16-bit (IEEE 754 half precision) floats.
    F16(Vec<f16>),
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
    /// Strings.
    String(Vec<String>),
}

impl TensorData {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Bool(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::U16(v) => v.len(),
            TensorData::U32(v) => v.len(),
            TensorData::U64(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::I16(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::F16(v) => v.len(),
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::String(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::U8(_) => DataType::U8,
            TensorData::U16(_) => DataType::U16,
            TensorData::U32(_) => DataType::U32,
            TensorData::U64(_) => DataType::U64,
            TensorData::I8(_) => DataType::I8,
            TensorData::I16(_) => DataType::I16,
            TensorData::I32(_) => DataType::I32,
            TensorData::I64(_) => DataType::I64,
            TensorData::F16(_) => DataType::F16,
            TensorData::F32(_) => DataType::F32,
            TensorData::F64(_) => DataType::F64,
            TensorData::String(_) => DataType::String,
        }
    }
}

/// A named tensor whose shape is known to match its data.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    name: String,
    shape: Vec<usize>,
    data: TensorData,
}

impl Tensor {
    /// Builds a tensor, checking that `shape` holds exactly as many elements as `data`.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: TensorData,
    ) -> Result<Tensor, ScoringError> {
        let name = name.into();
        let expected = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if expected != Some(data.len()) {
            return Err(ScoringError::DataLength {
                input: name,
                shape: format_shape(&shape),
                expected: expected.map_or_else(|| "too many".to_owned(), |n| n.to_string()),
                got: data.len(),
            });
        }
        Ok(Tensor { name, shape, data })
    }

    /// The tensor's name: a model input or output name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// The element type.
    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }

    /// Splits the tensor into its name, shape and data.
    pub fn into_parts(self) -> (String, Vec<usize>, TensorData) {
        (self.name, self.shape, self.data)
    }

    /// The rows of `parts`, one after the other: what dynamic batching hands a model. `None`
    /// when there are no parts, or they differ in name, element type or any dimension but
    /// the first.
    pub fn concat_rows(parts: Vec<Tensor>) -> Option<Tensor> {
        let mut parts = parts.into_iter();
        let mut whole = parts.next()?;
        whole.shape.first()?;
        for part in parts {
            if part.name != whole.name || part.shape.get(1..) != whole.shape.get(1..) {
                return None;
            }
            let rows = part.shape.first()?;
            if !whole.data.append(part.data) {
                return None;
            }
            whole.shape[0] += rows;
        }
        Some(whole)
    }

    /// The tensor cut into consecutive runs of `rows` rows, in order: a batch's output handed
    /// back to each request. `None` when the tensor has no dimension or its first one is not
    /// the sum of `rows`.
    pub fn split_rows(self, rows: &[usize]) -> Option<Vec<Tensor>> {
        let first = *self.shape.first()?;
        if rows.iter().sum::<usize>() != first {
            return None;
        }
        let row_len: usize = self.shape[1..].iter().product();
        let Tensor {
            name,
            shape,
            mut data,
        } = self;
        // Cut from the back, so that each element moves once.
        let mut end = first;
        let mut parts: Vec<Tensor> = rows
            .iter()
            .rev()
            .map(|&n| {
                end -= n;
                let mut shape = shape.clone();
                shape[0] = n;
                let data = data.split_off(end * row_len);
                Tensor {
                    name: name.clone(),
                    shape,
                    data,
                }
            })
            .collect();
        parts.reverse();
        Some(parts)
    }
}

/// Expands `$body` once per [`TensorData`] variant.
macro_rules! each_variant {
    ($mac:ident) => {
        $mac!(
            Bool, U8, U16, U32, U64, I8, I16, I32, I64, F16, F32, F64, String
        )
    };
}

impl TensorData {
    /// Moves `other`'s elements onto the end of these; false (and nothing moved) when the
    /// element types differ.
    fn append(&mut self, other: TensorData) -> bool {
        macro_rules! arms {
            ($($v:ident),*) => {
                match (self, other) {
                    $((TensorData::$v(a), TensorData::$v(mut b)) => a.append(&mut b),)*
                    _ => return false,
                }
            };
        }
        each_variant!(arms);
        true
    }

    /// The elements from `at` on, removed from these.
    fn split_off(&mut self, at: usize) -> TensorData {
        macro_rules! arms {
            ($($v:ident),*) => {
                match self {
                    $(TensorData::$v(a) => TensorData::$v(a.split_off(at)),)*
                }
            };
        }
        each_variant!(arms)
    }
}

/// Formats a concrete shape as `[2,4]`.
pub(crate) fn format_shape(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    format!("[{}]", dims.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_names_round_trip() {
        for dt in DataType::ALL {
            assert_eq!(DataType::from_v2_name(dt.v2_name()), Some(dt));
        }
        assert_eq!(DataType::from_v2_name("BF16"), None);
    }

    #[test]
    fn rows_concatenate_and_split_back() {
        let t = |rows: usize, first: f32| {
            let data = (0..rows * 2).map(|i| first + i as f32).collect();
            Tensor::new("x", vec![rows, 2], TensorData::F32(data)).unwrap()
        };
        let parts = vec![t(1, 0.0), t(3, 10.0), t(2, 20.0)];
        let whole = Tensor::concat_rows(parts.clone()).unwrap();
        assert_eq!(whole.shape(), &[6, 2]);
        assert_eq!(whole.data().len(), 12);
        assert_eq!(whole.split_rows(&[1, 3, 2]).unwrap(), parts);
        // Zero rows split off as an empty tensor of the same row shape.
        let empty = t(2, 0.0).split_rows(&[0, 2]).unwrap();
        assert_eq!(empty[0].shape(), &[0, 2]);
        assert_eq!(empty[1], t(2, 0.0));
    }

    #[test]
    fn rows_only_join_their_like() {
        let x = Tensor::new("x", vec![1, 2], TensorData::F32(vec![0.0; 2])).unwrap();
        let wide = Tensor::new("x", vec![1, 3], TensorData::F32(vec![0.0; 3])).unwrap();
        let ints = Tensor::new("x", vec![1, 2], TensorData::I64(vec![0; 2])).unwrap();
        let other = Tensor::new("y", vec![1, 2], TensorData::F32(vec![0.0; 2])).unwrap();
        let scalar = Tensor::new("x", vec![], TensorData::F32(vec![0.0])).unwrap();
        for odd in [wide, ints, other] {
            assert_eq!(Tensor::concat_rows(vec![x.clone(), odd]), None);
        }
        assert_eq!(Tensor::concat_rows(vec![]), None);
        assert_eq!(Tensor::concat_rows(vec![scalar.clone()]), None);
        assert_eq!(scalar.split_rows(&[1]), None);
        assert_eq!(x.split_rows(&[2]), None);
    }

    #[test]
    fn shape_must_match_data() {
        let ok = Tensor::new("x", vec![2, 2], TensorData::F32(vec![1.0; 4]));
        assert!(ok.is_ok());
        let err = Tensor::new("x", vec![2, 3], TensorData::F32(vec![1.0; 4]))
            .expect_err("6 elements declared, 4 given");
        assert_eq!(
            err.to_string(),
            r#"input "x": shape [2,3] holds 6 elements, got 4"#
        );
    }

    #[test]
    fn overflowing_shape_is_an_error_not_a_panic() {
        let err =
            Tensor::new("x", vec![usize::MAX, 4], TensorData::I64(vec![])).expect_err("overflow");
        assert!(err.to_string().contains("too many"), "{err}");
    }
}
