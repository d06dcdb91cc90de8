//! Request and response bodies of the v2 REST API.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v2/models/{m}/infer` request body.
#[derive(Debug, Deserialize)]
pub struct InferRequest {
    /// Echoed back in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// Free-form request parameters.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// The input tensors.
    pub inputs: Vec<RequestInput>,
    /// The outputs wanted; all when absent.
    #[serde(default)]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// One input tensor of a request.
#[derive(Debug, Deserialize)]
pub struct RequestInput {
    /// The model input's name.
    pub name: String,
    /// The dimensions.
    pub shape: Vec<i64>,
    /// The v2 datatype name, e.g. `FP32`.
    pub datatype: String,
    /// Free-form tensor parameters (`binary_data_size` for binary tensor data).
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// The elements, flat or nested, in row-major order; absent for binary tensor data.
    #[serde(default)]
    pub data: Value,
}

/// One requested output.
#[derive(Debug, Deserialize)]
pub struct RequestOutput {
    /// The model output's name.
    pub name: String,
    /// Free-form output parameters.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

/// `POST /v2/models/{m}/infer` response body.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct InferResponse {
    /// The model that answered.
    pub model_name: String,
    /// Its version.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model_version: Option<String>,
    /// The request's id, if it had one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// The output tensors.
    pub outputs: Vec<ResponseOutput>,
}

/// One output tensor of a response.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ResponseOutput {
    /// The model output's name.
    pub name: String,
    /// The dimensions.
    pub shape: Vec<usize>,
    /// The v2 datatype name.
    pub datatype: String,
    /// `binary_data_size` when the elements follow the JSON as binary tensor data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// The elements, flat, in row-major order; absent for binary tensor data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<Value>>,
}

/// A tensor in model metadata; `-1` marks a dynamic dimension.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct MetadataTensor {
    /// The tensor's name.
    pub name: String,
    /// The v2 datatype name.
    pub datatype: String,
    /// The dimensions.
    pub shape: Vec<i64>,
    /// For a probabilities output a ZipMap wrapped: the class of each column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<TensorParameters>,
}

/// Extra facts about a tensor in model metadata.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct TensorParameters {
    /// The class of each column of a probabilities output.
    pub class_labels: Vec<String>,
}

/// `GET /v2/models/{m}` response body.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelMetadataResponse {
    /// The model's name.
    pub name: String,
    /// The versions served.
    pub versions: Vec<String>,
    /// The model format, `onnx`.
    pub platform: String,
    /// The inputs.
    pub inputs: Vec<MetadataTensor>,
    /// The outputs.
    pub outputs: Vec<MetadataTensor>,
}

/// `GET /v2` response body.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ServerMetadata {
    /// The server's name.
    pub name: String,
    /// The server's version.
    pub version: String,
    /// Protocol extensions supported.
    pub extensions: Vec<String>,
}
