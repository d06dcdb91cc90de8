//! Converting between v2 JSON bodies and [`Tensor`]s.

use serde_json::Value;
use wafer_scoring::{DataType, Dim, ModelMetadata, Tensor, TensorData, TensorInfo};

use crate::types::{
    InferRequest, InferResponse, MetadataTensor, ModelMetadataResponse, ResponseOutput,
};
use crate::{ProtocolError, parse_json, to_json};

/// A decoded inference request.
#[derive(Debug)]
pub struct DecodedRequest {
    /// The request id, echoed in the response.
    pub id: Option<String>,
    /// The input tensors.
    pub inputs: Vec<Tensor>,
    /// The output names asked for; empty means all.
    pub outputs: Vec<String>,
}

/// Decodes a v2 JSON inference request body into tensors.
pub fn decode_infer_request(body: &[u8]) -> Result<DecodedRequest, ProtocolError> {
    let value = parse_json(body)?;
    let request: InferRequest =
        serde_json::from_value(value).map_err(|e| ProtocolError::InvalidRequest(e.to_string()))?;
    if request.inputs.is_empty() {
        return Err(ProtocolError::InvalidRequest("\"inputs\" is empty".into()));
    }
    let inputs = request
        .inputs
        .into_iter()
        .map(|input| {
            let datatype = DataType::from_v2_name(&input.datatype).ok_or_else(|| {
                let known: Vec<&str> = DataType::ALL.iter().map(|d| d.v2_name()).collect();
                ProtocolError::InvalidInput(format!(
                    "input \"{}\": unsupported datatype \"{}\" (supported: {})",
                    input.name,
                    input.datatype,
                    known.join(", ")
                ))
            })?;
            let shape = input
                .shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<Vec<usize>, _>>()
                .map_err(|_| {
                    ProtocolError::InvalidInput(format!(
                        "input \"{}\": shape {:?} has a negative dimension",
                        input.name, input.shape
                    ))
                })?;
            let mut elements = Vec::new();
            flatten(&input.data, &mut elements);
            let data = decode_elements(&input.name, datatype, &elements)?;
            Ok(Tensor::new(input.name, shape, data)?)
        })
        .collect::<Result<Vec<_>, ProtocolError>>()?;
    let outputs = request
        .outputs
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.name)
        .collect();
    Ok(DecodedRequest {
        id: request.id,
        inputs,
        outputs,
    })
}

/// Decodes a plain JSON array of rows (`[[5.1, 3.5, 1.4, 0.2], ...]`, or one row `[...]`)
/// into the tensor for `input`. `null` and `NaN` are missing values.
pub fn decode_rows(body: &[u8], input: &TensorInfo) -> Result<Tensor, ProtocolError> {
    let value = parse_json(body)?;
    let Value::Array(items) = value else {
        return Err(ProtocolError::InvalidRequest(
            "expected a v2 inference request or a JSON array of rows".into(),
        ));
    };
    let parse_row = |r: usize, row: &[Value]| -> Result<Vec<f64>, ProtocolError> {
        row.iter()
            .enumerate()
            .map(|(c, v)| {
                number(v).ok_or_else(|| {
                    ProtocolError::InvalidInput(format!("row {r}, column {c}: {v} is not a number"))
                })
            })
            .collect()
    };
    let one_row = !items.is_empty() && items.iter().all(|v| !v.is_array());
    let numbers = if one_row {
        vec![parse_row(0, &items)?]
    } else {
        items
            .iter()
            .enumerate()
            .map(|(r, row)| match row {
                Value::Array(cells) => parse_row(r, cells),
                other => Err(ProtocolError::InvalidInput(format!(
                    "row {r}: {other} is not an array"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    Ok(wafer_features::assemble_rows(input, &numbers)?)
}

/// Encodes output tensors as a v2 JSON inference response.
pub fn encode_infer_response(
    model_name: &str,
    model_version: Option<&str>,
    id: Option<String>,
    outputs: Vec<Tensor>,
) -> Vec<u8> {
    let outputs = outputs
        .into_iter()
        .map(|t| {
            let datatype = t.datatype().v2_name().to_owned();
            let (name, shape, data) = t.into_parts();
            let data = match data {
                TensorData::Bool(v) => v.into_iter().map(Value::from).collect(),
                TensorData::U8(v) => v.into_iter().map(Value::from).collect(),
                TensorData::I32(v) => v.into_iter().map(Value::from).collect(),
                TensorData::I64(v) => v.into_iter().map(Value::from).collect(),
                TensorData::F32(v) => v.into_iter().map(Value::from).collect(),
                TensorData::F64(v) => v.into_iter().map(Value::from).collect(),
                TensorData::String(v) => v.into_iter().map(Value::from).collect(),
            };
            ResponseOutput {
                name,
                shape,
                datatype,
                data,
            }
        })
        .collect();
    to_json(&InferResponse {
        model_name: model_name.to_owned(),
        model_version: model_version.map(str::to_owned),
        id,
        outputs,
    })
}

/// The v2 metadata of a model.
pub fn model_metadata(meta: &ModelMetadata) -> ModelMetadataResponse {
    let tensors = |infos: &[TensorInfo]| {
        infos
            .iter()
            .map(|i| MetadataTensor {
                name: i.name.clone(),
                datatype: i.datatype.v2_name().to_owned(),
                shape: i.shape.iter().map(Dim::to_v2).collect(),
            })
            .collect()
    };
    ModelMetadataResponse {
        name: meta.name.clone(),
        versions: vec![crate::MODEL_VERSION.to_owned()],
        platform: meta.platform.clone(),
        inputs: tensors(&meta.inputs),
        outputs: tensors(&meta.outputs),
    }
}

fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        other => out.push(other),
    }
}

/// A float from a JSON number, a non-finite token, or `null` (missing, `NaN`).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Null => Some(f64::NAN),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn decode_elements(
    input: &str,
    datatype: DataType,
    elements: &[&Value],
) -> Result<TensorData, ProtocolError> {
    fn each<T>(
        input: &str,
        datatype: DataType,
        elements: &[&Value],
        convert: impl Fn(&Value) -> Option<T>,
    ) -> Result<Vec<T>, ProtocolError> {
        elements
            .iter()
            .enumerate()
            .map(|(ix, v)| {
                convert(v).ok_or_else(|| {
                    ProtocolError::InvalidInput(format!(
                        "input \"{input}\": element {ix} ({v}) is not a valid {datatype}"
                    ))
                })
            })
            .collect()
    }
    fn int<T: TryFrom<i64>>(v: &Value) -> Option<T> {
        v.as_i64().and_then(|i| T::try_from(i).ok())
    }
    let e = elements;
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(each(input, datatype, e, Value::as_bool)?),
        DataType::U8 => TensorData::U8(each(input, datatype, e, int::<u8>)?),
        DataType::I32 => TensorData::I32(each(input, datatype, e, int::<i32>)?),
        DataType::I64 => TensorData::I64(each(input, datatype, e, int::<i64>)?),
        DataType::F32 => {
            TensorData::F32(each(input, datatype, e, |v| number(v).map(|f| f as f32))?)
        }
        DataType::F64 => TensorData::F64(each(input, datatype, e, number)?),
        DataType::String => {
            TensorData::String(each(input, datatype, e, |v| v.as_str().map(str::to_owned))?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_nested_data_and_non_finite_values() {
        let body = br#"{"id":"r1","inputs":[{"name":"X","shape":[2,2],"datatype":"FP32",
            "data":[[1.0, NaN],[Infinity, -Infinity]]}],"outputs":[{"name":"label"}]}"#;
        let req = decode_infer_request(body).expect("decodes");
        assert_eq!(req.id.as_deref(), Some("r1"));
        assert_eq!(req.outputs, vec!["label".to_owned()]);
        let TensorData::F32(v) = req.inputs[0].data() else {
            panic!("FP32 expected")
        };
        assert_eq!(v[0], 1.0);
        assert!(v[1].is_nan());
        assert_eq!(v[2], f32::INFINITY);
        assert_eq!(v[3], f32::NEG_INFINITY);
    }

    #[test]
    fn request_errors_name_the_problem() {
        let cases: [(&[u8], &str); 6] = [
            (b"{\"inputs\":", "malformed JSON"),
            (b"{}", "missing field `inputs`"),
            (b"{\"inputs\":[]}", "\"inputs\" is empty"),
            (
                br#"{"inputs":[{"name":"X","shape":[1,2],"datatype":"FP32","data":[1]}]}"#,
                "shape [1,2] holds 2 elements, got 1",
            ),
            (
                br#"{"inputs":[{"name":"X","shape":[1],"datatype":"FP17","data":[1]}]}"#,
                "unsupported datatype \"FP17\"",
            ),
            (
                br#"{"inputs":[{"name":"X","shape":[1],"datatype":"INT64","data":[1.5]}]}"#,
                "element 0 (1.5) is not a valid INT64",
            ),
        ];
        for (body, expected) in cases {
            let err = decode_infer_request(body).expect_err("invalid");
            assert!(
                err.to_string().contains(expected),
                "{err} should contain {expected}"
            );
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn plain_rows_fill_the_model_input() {
        let info = TensorInfo {
            name: "X".into(),
            datatype: DataType::F32,
            shape: vec![Dim::Dynamic("N".into()), Dim::Fixed(2)],
        };
        let t = decode_rows(b"[[1, 2], [3, null]]", &info).expect("rows");
        assert_eq!(t.shape(), &[2, 2]);
        let t = decode_rows(b"[1, 2]", &info).expect("one row");
        assert_eq!(t.shape(), &[1, 2]);
        let err = decode_rows(b"[[1, \"a\"]]", &info).expect_err("not a number");
        assert_eq!(err.to_string(), "row 0, column 1: \"a\" is not a number");
    }

    #[test]
    fn responses_are_flat_v2_json() {
        let t = Tensor::new("label", vec![2], TensorData::I64(vec![0, 2])).expect("tensor");
        let body = encode_infer_response("iris", None, Some("r1".into()), vec![t]);
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"model_name":"iris","id":"r1","outputs":[
                {"name":"label","shape":[2],"datatype":"INT64","data":[0,2]}]})
        );
    }
}
