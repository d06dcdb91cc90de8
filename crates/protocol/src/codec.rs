//! Converting between v2 JSON bodies and [`Tensor`]s.

use serde_json::{Map, Value};
use wafer_scoring::{DataType, Dim, ModelMetadata, Tensor, TensorData, TensorInfo};

use crate::types::{
    InferRequest, InferResponse, MetadataTensor, ModelMetadataResponse, ResponseOutput,
    TensorParameters,
};
use crate::{ProtocolError, parse_json, to_json};

/// A decoded inference request.
#[derive(Debug, Default)]
pub struct DecodedRequest {
    /// The request id, echoed in the response.
    pub id: Option<String>,
    /// The input tensors.
    pub inputs: Vec<Tensor>,
    /// The output names asked for; empty means all.
    pub outputs: Vec<String>,
    /// Which outputs to answer as binary tensor data.
    pub binary: BinaryOutputs,
}

/// The outputs a request wants as binary tensor data.
#[derive(Debug, Default, Clone)]
pub struct BinaryOutputs {
    /// Every output (the request's `binary_data_output` parameter).
    pub all: bool,
    /// These outputs (their `binary_data` parameter).
    pub names: Vec<String>,
}

impl BinaryOutputs {
    fn wants(&self, name: &str) -> bool {
        self.all || self.names.iter().any(|n| n == name)
    }
}

/// An encoded inference response.
#[derive(Debug)]
pub struct EncodedResponse {
    /// The body: JSON, then any binary tensor data.
    pub body: Vec<u8>,
    /// With binary data, the JSON part's length, for the `Inference-Header-Content-Length`
    /// header.
    pub header_length: Option<usize>,
}

fn flag(parameters: Option<&Map<String, Value>>, name: &str) -> bool {
    parameters
        .and_then(|p| p.get(name))
        .and_then(Value::as_bool)
        == Some(true)
}

/// Decodes a v2 inference request body into tensors. `header_length` is the
/// `Inference-Header-Content-Length` header of a body that carries binary tensor data after its
/// JSON.
pub fn decode_infer_request(
    body: &[u8],
    header_length: Option<usize>,
) -> Result<DecodedRequest, ProtocolError> {
    let (json, mut binary) = match header_length {
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(ProtocolError::InvalidRequest(format!(
                "Inference-Header-Content-Length is {n}, but the body has {} bytes",
                body.len()
            )));
        }
        None => (body, &[][..]),
    };
    let request: InferRequest = crate::json::parse_json_as(json)?;
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
            let binary_size = input
                .parameters
                .as_ref()
                .and_then(|p| p.get("binary_data_size"))
                .map(|v| {
                    v.as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| {
                            ProtocolError::InvalidInput(format!(
                                "input \"{}\": binary_data_size {v} is not a size",
                                input.name
                            ))
                        })
                })
                .transpose()?;
            let data = match binary_size {
                Some(_) if !input.data.is_null() => {
                    return Err(ProtocolError::InvalidInput(format!(
                        "input \"{}\" has both binary_data_size and JSON data: send one",
                        input.name
                    )));
                }
                Some(size) => {
                    if size > binary.len() {
                        return Err(ProtocolError::InvalidInput(format!(
                            "input \"{}\": binary_data_size {size} runs past the body's {} \
                             binary bytes",
                            input.name,
                            binary.len()
                        )));
                    }
                    let (mine, rest) = binary.split_at(size);
                    binary = rest;
                    let count = shape.iter().product();
                    crate::binary::decode(&input.name, datatype, mine, count)?
                }
                None => {
                    let mut elements = Vec::new();
                    flatten(&input.data, &mut elements);
                    decode_elements(&input.name, datatype, &elements)?
                }
            };
            Ok(Tensor::new(input.name, shape, data)?)
        })
        .collect::<Result<Vec<_>, ProtocolError>>()?;
    if !binary.is_empty() {
        return Err(ProtocolError::InvalidRequest(format!(
            "{} bytes of binary data belong to no input",
            binary.len()
        )));
    }
    let requested = request.outputs.unwrap_or_default();
    let binary = BinaryOutputs {
        all: flag(request.parameters.as_ref(), "binary_data_output"),
        names: requested
            .iter()
            .filter(|o| flag(o.parameters.as_ref(), "binary_data"))
            .map(|o| o.name.clone())
            .collect(),
    };
    Ok(DecodedRequest {
        id: request.id,
        inputs,
        outputs: requested.into_iter().map(|o| o.name).collect(),
        binary,
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

/// Encodes output tensors as a v2 inference response: JSON, followed by the raw bytes of the
/// outputs `binary` asks for.
pub fn encode_infer_response(
    model_name: &str,
    model_version: Option<&str>,
    id: Option<String>,
    outputs: Vec<Tensor>,
    binary: &BinaryOutputs,
) -> EncodedResponse {
    let mut raw = Vec::new();
    let outputs = outputs
        .into_iter()
        .map(|t| {
            let datatype = t.datatype().v2_name().to_owned();
            let (name, shape, data) = t.into_parts();
            if binary.wants(&name) {
                let bytes = crate::binary::encode(&data);
                let mut parameters = Map::new();
                parameters.insert("binary_data_size".into(), Value::from(bytes.len()));
                raw.extend(bytes);
                return ResponseOutput {
                    name,
                    shape,
                    datatype,
                    parameters: Some(parameters),
                    data: None,
                };
            }
            let data = json_data(data);
            ResponseOutput {
                name,
                shape,
                datatype,
                parameters: None,
                data: Some(data),
            }
        })
        .collect();
    let mut body = to_json(&InferResponse {
        model_name: model_name.to_owned(),
        model_version: model_version.map(str::to_owned),
        id,
        outputs,
    });
    let header_length = (!raw.is_empty()).then_some(body.len());
    body.extend(raw);
    EncodedResponse {
        body,
        header_length,
    }
}

/// Tensors as the JSON a v2 response gives its `outputs`: `[{"name", "shape", "datatype",
/// "data"}]`, every element as JSON. What the prediction log keeps of binary tensor data, and
/// how the evaluation commands read tensors as columns.
pub fn tensors_to_json(tensors: Vec<Tensor>) -> Value {
    Value::Array(
        tensors
            .into_iter()
            .map(|t| {
                let datatype = t.datatype().v2_name();
                let (name, shape, data) = t.into_parts();
                serde_json::json!({
                    "name": name,
                    "shape": shape,
                    "datatype": datatype,
                    "data": json_data(data),
                })
            })
            .collect(),
    )
}

/// A tensor's elements as JSON values, flat.
fn json_data(data: TensorData) -> Vec<Value> {
    match data {
        TensorData::Bool(v) => v.into_iter().map(Value::from).collect(),
        TensorData::U8(v) => v.into_iter().map(Value::from).collect(),
        TensorData::U16(v) => v.into_iter().map(Value::from).collect(),
        TensorData::U32(v) => v.into_iter().map(Value::from).collect(),
        TensorData::U64(v) => v.into_iter().map(Value::from).collect(),
        TensorData::I8(v) => v.into_iter().map(Value::from).collect(),
        TensorData::I16(v) => v.into_iter().map(Value::from).collect(),
        TensorData::I32(v) => v.into_iter().map(Value::from).collect(),
        TensorData::I64(v) => v.into_iter().map(Value::from).collect(),
        TensorData::F16(v) => v.into_iter().map(|x| Value::from(x.to_f32())).collect(),
        TensorData::F32(v) => v.into_iter().map(Value::from).collect(),
        TensorData::F64(v) => v.into_iter().map(Value::from).collect(),
        TensorData::String(v) => v.into_iter().map(Value::from).collect(),
    }
}

/// The `instances` of a KServe v1 predict body, as JSON text for the guest.
pub fn v1_instances(body: &[u8]) -> Result<String, ProtocolError> {
    let value = parse_json(body)?;
    match value.get("instances") {
        Some(Value::Array(items)) if !items.is_empty() => {
            Ok(Value::Array(items.clone()).to_string())
        }
        Some(Value::Array(_)) => Err(ProtocolError::InvalidRequest(
            "\"instances\" is empty".into(),
        )),
        _ => Err(ProtocolError::InvalidRequest(
            "expected {\"instances\": [...]}, a KServe v1 predict body".into(),
        )),
    }
}

/// A KServe v1 predict response: `{"predictions": [...]}`, one entry per row. With one output,
/// an entry is that output's row (a value when it has one column); with several, an object by
/// output name.
pub fn encode_v1_response(outputs: &[Tensor]) -> Vec<u8> {
    let row = |t: &Tensor, i: usize| -> Value {
        let width: usize = t.shape().iter().skip(1).product();
        let values: Vec<Value> = (i * width..(i + 1) * width)
            .map(|j| element(t.data(), j))
            .collect();
        if width == 1 {
            values.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(values)
        }
    };
    let rows = outputs
        .first()
        .and_then(|t| t.shape().first().copied())
        .unwrap_or(0);
    let predictions: Vec<Value> = (0..rows)
        .map(|i| match outputs {
            [one] => row(one, i),
            many => Value::Object(
                many.iter()
                    .map(|t| (t.name().to_owned(), row(t, i)))
                    .collect(),
            ),
        })
        .collect();
    to_json(&serde_json::json!({ "predictions": predictions }))
}

/// One element as JSON; NaN and infinities as null.
fn element(data: &TensorData, j: usize) -> Value {
    match data {
        TensorData::Bool(v) => Value::from(v[j]),
        TensorData::U8(v) => Value::from(v[j]),
        TensorData::U16(v) => Value::from(v[j]),
        TensorData::U32(v) => Value::from(v[j]),
        TensorData::U64(v) => Value::from(v[j]),
        TensorData::I8(v) => Value::from(v[j]),
        TensorData::I16(v) => Value::from(v[j]),
        TensorData::I32(v) => Value::from(v[j]),
        TensorData::I64(v) => Value::from(v[j]),
        TensorData::F16(v) => Value::from(v[j].to_f32()),
        TensorData::F32(v) => Value::from(v[j]),
        TensorData::F64(v) => Value::from(v[j]),
        TensorData::String(v) => Value::from(v[j].clone()),
    }
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
                parameters: (!i.class_labels.is_empty()).then(|| TensorParameters {
                    class_labels: i.class_labels.clone(),
                }),
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
pub(crate) fn number(v: &Value) -> Option<f64> {
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
    fn uint<T: TryFrom<u64>>(v: &Value) -> Option<T> {
        v.as_u64().and_then(|i| T::try_from(i).ok())
    }
    let e = elements;
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(each(input, datatype, e, Value::as_bool)?),
        DataType::U8 => TensorData::U8(each(input, datatype, e, uint::<u8>)?),
        DataType::U16 => TensorData::U16(each(input, datatype, e, uint::<u16>)?),
        DataType::U32 => TensorData::U32(each(input, datatype, e, uint::<u32>)?),
        DataType::U64 => TensorData::U64(each(input, datatype, e, uint::<u64>)?),
        DataType::I8 => TensorData::I8(each(input, datatype, e, int::<i8>)?),
        DataType::I16 => TensorData::I16(each(input, datatype, e, int::<i16>)?),
        DataType::I32 => TensorData::I32(each(input, datatype, e, int::<i32>)?),
        DataType::I64 => TensorData::I64(each(input, datatype, e, int::<i64>)?),
        DataType::F16 => TensorData::F16(each(input, datatype, e, |v| {
            number(v).map(wafer_scoring::f16::from_f64)
        })?),
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
        let req = decode_infer_request(body, None).expect("decodes");
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
            let err = decode_infer_request(body, None).expect_err("invalid");
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
            class_labels: vec![],
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
        let body = encode_infer_response(
            "iris",
            None,
            Some("r1".into()),
            vec![t],
            &BinaryOutputs::default(),
        )
        .body;
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"model_name":"iris","id":"r1","outputs":[
                {"name":"label","shape":[2],"datatype":"INT64","data":[0,2]}]})
        );
    }

    #[test]
    fn binary_tensor_data_in_and_out_as_tritonclient_sends_it() {
        let json = br#"{"inputs":[
            {"name":"x","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":16}},
            {"name":"sex","shape":[2,1],"datatype":"BYTES","parameters":{"binary_data_size":18}}],
            "parameters":{"binary_data_output":true}}"#;
        let mut body = json.to_vec();
        for v in [1.0f32, f32::NAN, 3.0, 4.0] {
            body.extend(v.to_le_bytes());
        }
        body.extend(crate::binary::encode(&TensorData::String(vec![
            "male".into(),
            "female".into(),
        ])));
        let req = decode_infer_request(&body, Some(json.len())).expect("decodes");
        assert_eq!(req.inputs[0].shape(), &[2, 2]);
        let TensorData::F32(x) = req.inputs[0].data() else {
            panic!("FP32")
        };
        assert!(x[1].is_nan() && x[3] == 4.0);
        assert_eq!(
            req.inputs[1].data(),
            &TensorData::String(vec!["male".into(), "female".into()])
        );
        assert!(req.binary.all);

        let out = Tensor::new("label", vec![2], TensorData::I64(vec![1, 0])).expect("tensor");
        let resp = encode_infer_response("m", None, None, vec![out], &req.binary);
        let n = resp.header_length.expect("binary answer");
        let head: Value = serde_json::from_slice(&resp.body[..n]).expect("json");
        assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 16);
        assert!(head["outputs"][0].get("data").is_none());
        assert_eq!(
            &resp.body[n..],
            crate::binary::encode(&TensorData::I64(vec![1, 0]))
        );

        let short = decode_infer_request(&body[..body.len() - 1], Some(json.len()));
        assert!(short.expect_err("short").to_string().contains("runs past"));
        let long = decode_infer_request(&body, Some(body.len() + 1));
        assert_eq!(long.expect_err("long").status(), 400);
    }
}
