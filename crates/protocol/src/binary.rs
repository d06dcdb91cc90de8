//! The v2 binary tensor data extension, which `tritonclient[http]` uses by default.
//!
//! A body whose JSON header is followed by raw tensor bytes says how long the JSON is in the
//! `Inference-Header-Content-Length` header. An input with `"parameters": {"binary_data_size": n}`
//! takes its elements from the next `n` bytes, in input order: little-endian numbers, one byte
//! per BOOL, and for BYTES a 4-byte little-endian length before each string. Outputs asked for
//! with `binary_data` (or every output, with the request's `binary_data_output`) come back the
//! same way.

use wafer_scoring::{DataType, TensorData, f16};

use crate::ProtocolError;

/// The HTTP header that holds the JSON part's length.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// Reads the `Inference-Header-Content-Length` header's value, if the request has one.
pub fn header_length(value: Option<&[u8]>) -> Result<Option<usize>, ProtocolError> {
    value
        .map(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    ProtocolError::InvalidRequest(format!(
                        "Inference-Header-Content-Length: {:?} is not a length",
                        String::from_utf8_lossy(v)
                    ))
                })
        })
        .transpose()
}

/// Decodes `count` elements of `datatype` from `bytes`.
pub fn decode(
    input: &str,
    datatype: DataType,
    bytes: &[u8],
    count: usize,
) -> Result<TensorData, ProtocolError> {
    let bad =
        |why: String| ProtocolError::InvalidInput(format!("input \"{input}\": binary data {why}"));
    let fixed = |width: usize| -> Result<std::slice::ChunksExact<'_, u8>, ProtocolError> {
        if bytes.len() != count * width {
            return Err(bad(format!(
                "holds {} bytes, but {count} {datatype} elements take {}",
                bytes.len(),
                count * width
            )));
        }
        Ok(bytes.chunks_exact(width))
    };
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(fixed(1)?.map(|b| b[0] != 0).collect()),
        DataType::U8 => TensorData::U8(fixed(1)?.map(|b| b[0]).collect()),
        DataType::U16 => TensorData::U16(fixed(2)?.map(|b| u16::from_le_bytes(le(b))).collect()),
        DataType::U32 => TensorData::U32(fixed(4)?.map(|b| u32::from_le_bytes(le(b))).collect()),
        DataType::U64 => TensorData::U64(fixed(8)?.map(|b| u64::from_le_bytes(le(b))).collect()),
        DataType::I8 => TensorData::I8(fixed(1)?.map(|b| i8::from_le_bytes(le(b))).collect()),
        DataType::I16 => TensorData::I16(fixed(2)?.map(|b| i16::from_le_bytes(le(b))).collect()),
        DataType::I32 => TensorData::I32(fixed(4)?.map(|b| i32::from_le_bytes(le(b))).collect()),
        DataType::I64 => TensorData::I64(fixed(8)?.map(|b| i64::from_le_bytes(le(b))).collect()),
        DataType::F16 => TensorData::F16(fixed(2)?.map(|b| f16::from_le_bytes(le(b))).collect()),
        DataType::F32 => TensorData::F32(fixed(4)?.map(|b| f32::from_le_bytes(le(b))).collect()),
        DataType::F64 => TensorData::F64(fixed(8)?.map(|b| f64::from_le_bytes(le(b))).collect()),
        DataType::String => {
            let mut rest = bytes;
            let mut strings = Vec::with_capacity(count);
            while !rest.is_empty() {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    return Err(bad("ends inside a string's length".into()));
                };
                let len = u32::from_le_bytes(*len) as usize;
                if tail.len() < len {
                    return Err(bad("ends inside a string".into()));
                }
                let (s, tail) = tail.split_at(len);
                let s = std::str::from_utf8(s)
                    .map_err(|_| bad(format!("element {} is not UTF-8", strings.len())))?;
                strings.push(s.to_owned());
                rest = tail;
            }
            if strings.len() != count {
                return Err(bad(format!(
                    "holds {} strings, expected {count}",
                    strings.len()
                )));
            }
            TensorData::String(strings)
        }
    })
}

fn le<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(b);
    a
}

/// Encodes elements as the extension's raw bytes.
pub fn encode(data: &TensorData) -> Vec<u8> {
    match data {
        TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
        TensorData::U8(v) => v.clone(),
        TensorData::U16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::U64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I8(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::String(v) => v
            .iter()
            .flat_map(|s| {
                let len = u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes();
                len.into_iter().chain(s.bytes())
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_datatype_round_trips() {
        let cases = [
            TensorData::Bool(vec![true, false]),
            TensorData::U8(vec![1, 255]),
            TensorData::U16(vec![1, u16::MAX]),
            TensorData::U32(vec![2, u32::MAX]),
            TensorData::U64(vec![3, u64::MAX]),
            TensorData::I8(vec![i8::MIN, -1]),
            TensorData::I16(vec![i16::MIN, 5]),
            TensorData::F16(vec![f16::from_f32(-2.5), f16::INFINITY]),
            TensorData::I32(vec![-1, 7]),
            TensorData::I64(vec![i64::MIN, 3]),
            TensorData::F32(vec![1.5, f32::NAN]),
            TensorData::F64(vec![-0.25, 1e300]),
            TensorData::String(vec!["male".into(), String::new(), "héllo".into()]),
        ];
        for data in cases {
            let bytes = encode(&data);
            let back = decode("x", data.datatype(), &bytes, data.len()).expect("decodes");
            assert_eq!(format!("{back:?}"), format!("{data:?}"));
        }
    }

    #[test]
    fn strings_are_length_prefixed_little_endian() {
        let bytes = encode(&TensorData::String(vec!["ab".into()]));
        assert_eq!(bytes, [2, 0, 0, 0, b'a', b'b']);
    }

    #[test]
    fn short_or_long_data_is_an_error_naming_the_input() {
        let err = decode("X", DataType::F32, &[0; 7], 2).expect_err("7 bytes for 2 floats");
        assert_eq!(
            err.to_string(),
            "input \"X\": binary data holds 7 bytes, but 2 FP32 elements take 8"
        );
        let err = decode("s", DataType::String, &[5, 0, 0, 0, b'a'], 1).expect_err("short");
        assert!(err.to_string().contains("ends inside a string"), "{err}");
    }
}
