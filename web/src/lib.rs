//! wafer-web: a wafer model and its feature pipeline in the browser.
//!
//! It wraps [`wafer_protocol::Pipeline`] (the same model loading, feature spec, v2 codec and
//! error messages as the server) in a small wasm-bindgen API for `wasm32-unknown-unknown`:
//!
//! ```js
//! import init, { Model } from "./pkg/wafer_web.js";
//! await init();
//! const model = Model.fromBundle(new Uint8Array(await (await fetch("credit.wafer")).arrayBuffer()));
//! model.metadata();                      // the v2 model metadata
//! model.infer({ inputs: [...] });        // a v2 request in, a v2 response out
//! model.run({ X: { data: Float32Array.of(5.1, 3.5, 1.4, 0.2), shape: [1, 4] } });
//! model.predictRecords([{ age: 41 }], { stores: { customers: { c1: { income: 5e4 } } } });
//! ```
//!
//! The source builds twice: as `wafer-web`, with tract (its `full` feature: any model), and as
//! `wafer-web-lite` (web/lite/), without it, on wafer-scoring's lite graph: the bundles that
//! `wafer build --web` marks `lite`, for a tenth of the size. `model.build` says which.
//!
//! Errors are thrown as JS `Error`s whose message is what the server puts in
//! `{"error": ...}`. It does no I/O: the page fetches the model's bytes, and looked-up fields
//! come from plain JS objects or `Map`s that the page passes in.

use js_sys::{JSON, Map, Reflect};
use wafer_protocol::{BinaryOutputs, Bundle, Pipeline, ProtocolError};
use wasm_bindgen::prelude::*;

/// Runs the static constructors (tract registers its operators through `inventory`) once, when
/// the module is initialized. Calling them explicitly also stops wasm-ld from wrapping every
/// export in a call to them, which cost tens of microseconds a prediction.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(start)]
#[expect(
    unsafe_code,
    reason = "the linker-made constructor list, run once at start"
)]
fn start() {
    unsafe extern "C" {
        fn __wasm_call_ctors();
    }
    // SAFETY: wasm-bindgen calls the start function once, before any other export.
    unsafe {
        __wasm_call_ctors();
    }
}

/// Which build this is.
#[cfg(feature = "full")]
const BUILD: &str = "full";
/// Which build this is.
#[cfg(not(feature = "full"))]
const BUILD: &str = "lite";

/// A model from its ONNX bytes and spec text, through tract.
#[cfg(feature = "full")]
fn load(name: &str, onnx: &[u8], features: Option<&str>) -> Result<Pipeline, JsError> {
    Pipeline::load(name, onnx, features).map_err(error)
}

/// The lite build has no tract to describe a model: it takes the metadata from a bundle.
#[cfg(not(feature = "full"))]
fn load(_name: &str, _onnx: &[u8], _features: Option<&str>) -> Result<Pipeline, JsError> {
    Err(JsError::new(
        "the lite build loads the bundles of `wafer build --web`; load a model.onnx with the \
         full build",
    ))
}

/// A bundle's model with the spec text `features`, through tract.
#[cfg(feature = "full")]
fn load_bundle(bundle: Bundle, features: Option<&str>) -> Result<Pipeline, JsError> {
    load(&bundle.name, &bundle.onnx, features)
}

/// A bundle's model with the spec text `features`, on the lite graph, described by the
/// bundle's metadata.
#[cfg(not(feature = "full"))]
fn load_bundle(bundle: Bundle, features: Option<&str>) -> Result<Pipeline, JsError> {
    let (true, Some(metadata)) = (bundle.lite, bundle.metadata) else {
        return Err(JsError::new(&format!(
            "model \"{}\" needs the full build: the lite graph does not run every node of it",
            bundle.name
        )));
    };
    let model = wafer_scoring::Model::lite(metadata, &bundle.onnx).map_err(error)?;
    Pipeline::new(model, features).map_err(error)
}

/// A loaded model with its optional feature spec.
#[wasm_bindgen]
pub struct Model {
    name: String,
    pipeline: Pipeline,
}

#[wasm_bindgen]
impl Model {
    /// Loads a model from its `model.onnx` bytes and, if it has one, the text of its fitted
    /// `features.toml`. (The lite build loads bundles only: it takes the metadata from them.)
    #[wasm_bindgen(constructor)]
    pub fn new(name: &str, onnx: &[u8], features: Option<String>) -> Result<Model, JsError> {
        let pipeline = load(name, onnx, features.as_deref())?;
        Ok(Model {
            name: name.to_owned(),
            pipeline,
        })
    }

    /// Loads the one-file bundle that `wafer build --web` writes, with its own `features.toml`
    /// or, when `features` is given, that one instead.
    #[wasm_bindgen(js_name = fromBundle)]
    pub fn from_bundle(bytes: &[u8], features: Option<String>) -> Result<Model, JsError> {
        let bundle = Bundle::from_bytes(bytes).map_err(error)?;
        let features = features.or_else(|| bundle.features.clone());
        let name = bundle.name.clone();
        let pipeline = load_bundle(bundle, features.as_deref())?;
        Ok(Model { name, pipeline })
    }

    /// Which build this is: `"full"` (tract: any model) or `"lite"` (the lite graph: the
    /// bundles marked `lite`).
    #[wasm_bindgen(getter)]
    pub fn build(&self) -> String {
        BUILD.to_owned()
    }

    /// The model's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// The v2 model metadata: `{name, versions, platform, inputs, outputs}`.
    pub fn metadata(&self) -> Result<JsValue, JsError> {
        let mut metadata = wafer_protocol::model_metadata(self.pipeline.model().metadata());
        metadata.versions = vec![wafer_protocol::MODEL_VERSION.to_owned()];
        to_js(&wafer_protocol::to_json(&metadata))
    }

    /// A v2 inference request (an object, or its JSON text) in, the v2 response object out,
    /// through the server's codec.
    pub fn infer(&self, request: JsValue) -> Result<JsValue, JsError> {
        let body = json_text(&request)?;
        let decoded = wafer_protocol::decode_infer_request(body.as_bytes(), None).map_err(error)?;
        let outputs = self
            .pipeline
            .predict(
                decoded.inputs,
                &decoded.outputs,
                &mut wafer_protocol::no_store,
            )
            .map_err(error)?;
        let response = wafer_protocol::encode_infer_response(
            &self.name,
            Some(wafer_protocol::MODEL_VERSION),
            decoded.id,
            outputs,
            &BinaryOutputs::default(),
        );
        to_js(&response.body)
    }

    /// Typed tensors in and out, as onnxruntime-web takes them, with no JSON on the way:
    /// `{name: {data, shape}}`, where `data` is a typed array (`Float32Array`, `Float64Array`,
    /// `BigInt64Array`, `Int32Array`, `Uint8Array`, ...) or an array of strings; each output
    /// comes back as `{data, shape, datatype}`. FP16 travels as its bits, in a `Uint16Array`.
    pub fn run(&self, inputs: &js_sys::Object) -> Result<js_sys::Object, JsError> {
        let inputs = js_sys::Object::entries(inputs)
            .iter()
            .map(|entry| {
                let entry = js_sys::Array::from(&entry);
                let name = entry.get(0).as_string().unwrap_or_default();
                typed::tensor(&name, &entry.get(1))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(error)?;
        let outputs = self
            .pipeline
            .predict(inputs, &[], &mut wafer_protocol::no_store)
            .map_err(error)?;
        let result = js_sys::Object::new();
        for tensor in &outputs {
            Reflect::set(&result, &tensor.name().into(), &typed::object(tensor))
                .map_err(|_| JsError::new("internal error: cannot set an output"))?;
        }
        Ok(result)
    }

    /// Raw records (an array of objects, through the model's `features.toml`, or of rows of
    /// numbers) in, a v2 response object out. `options.stores` gives the looked-up fields:
    /// `{store: {key: {field: value}}}`, where either level may be a `Map`; an absent key
    /// leaves its fields to their defaults. `options.outputs` names the outputs to return.
    #[wasm_bindgen(js_name = predictRecords)]
    pub fn predict_records(&self, records: JsValue, options: JsValue) -> Result<JsValue, JsError> {
        let records = json_text(&records)?;
        let stores = field(&options, "stores");
        let outputs: Vec<String> = match field(&options, "outputs") {
            Some(list) => serde_json::from_str(&json_text(&list)?)
                .map_err(|e| JsError::new(&format!("options.outputs: {e}")))?,
            None => Vec::new(),
        };
        let mut fetch = |store: &str, key: &str| lookup(stores.as_ref(), store, key);
        let outputs = self
            .pipeline
            .predict_records(&records, &outputs, &mut fetch)
            .map_err(error)?;
        let response = wafer_protocol::encode_infer_response(
            &self.name,
            Some(wafer_protocol::MODEL_VERSION),
            None,
            outputs,
            &BinaryOutputs::default(),
        );
        to_js(&response.body)
    }
}

mod typed {
    //! Typed arrays to and from tensors.

    use js_sys::{Array, Reflect};
    use wafer_scoring::{Tensor, TensorData, f16};
    use wasm_bindgen::{JsCast, JsValue};

    use wafer_protocol::ProtocolError;

    /// A tensor from `{data, shape}`.
    pub fn tensor(name: &str, value: &JsValue) -> Result<Tensor, ProtocolError> {
        let bad = |why: &str| ProtocolError::InvalidRequest(format!("input \"{name}\": {why}"));
        let get = |key: &str| Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED);
        let shape = get("shape");
        if !Array::is_array(&shape) {
            return Err(bad("shape must be an array of sizes"));
        }
        let shape = Array::from(&shape)
            .iter()
            .map(|d| {
                d.as_f64()
                    .filter(|d| d.fract() == 0.0 && *d >= 0.0 && *d <= u32::MAX.into())
                    .map(|d| d as usize)
                    .ok_or_else(|| bad("shape must be an array of sizes"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let data = get("data");
        let data = if let Some(a) = data.dyn_ref::<js_sys::Float32Array>() {
            TensorData::F32(a.to_vec())
        } else if let Some(a) = data.dyn_ref::<js_sys::Float64Array>() {
            TensorData::F64(a.to_vec())
        } else if let Some(a) = data.dyn_ref::<js_sys::BigInt64Array>() {
            TensorData::I64(a.to_vec())
        } else if let Some(a) = data.dyn_ref::<js_sys::BigUint64Array>() {
            TensorData::U64(a.to_vec())
        } else if let Some(a) = data.dyn_ref::<js_sys::Int32Array>() {
            TensorData::I32(a.to_vec())
        } else if let Some(a) = data.dyn_ref::<js_sys::Uint32Array>() {
            TensorData::U32(a.to_vec())
        } else if let Some(a) = data.dyn_ref::<js_sys::Int16Array>() {
            TensorData::I16(a.to_vec())
        } else if let Some(a) = data.dyn_ref::<js_sys::Uint16Array>() {
            TensorData::U16(a.to_vec())
        } else if let Some(a) = data.dyn_ref::<js_sys::Int8Array>() {
            TensorData::I8(a.to_vec())
        } else if let Some(a) = data.dyn_ref::<js_sys::Uint8Array>() {
            TensorData::U8(a.to_vec())
        } else if Array::is_array(&data) {
            let strings: Option<Vec<String>> =
                Array::from(&data).iter().map(|v| v.as_string()).collect();
            TensorData::String(
                strings.ok_or_else(|| bad("data must be a typed array, or an array of strings"))?,
            )
        } else {
            return Err(bad("data must be a typed array, or an array of strings"));
        };
        Ok(Tensor::new(name, shape, data)?)
    }

    /// `{data, shape, datatype}` for a tensor.
    pub fn object(tensor: &Tensor) -> JsValue {
        let data: JsValue = match tensor.data() {
            TensorData::F32(v) => js_sys::Float32Array::from(v.as_slice()).into(),
            TensorData::F64(v) => js_sys::Float64Array::from(v.as_slice()).into(),
            TensorData::F16(v) => {
                let bits: Vec<u16> = v.iter().map(|x| f16::to_bits(*x)).collect();
                js_sys::Uint16Array::from(bits.as_slice()).into()
            }
            TensorData::I64(v) => js_sys::BigInt64Array::from(v.as_slice()).into(),
            TensorData::U64(v) => js_sys::BigUint64Array::from(v.as_slice()).into(),
            TensorData::I32(v) => js_sys::Int32Array::from(v.as_slice()).into(),
            TensorData::U32(v) => js_sys::Uint32Array::from(v.as_slice()).into(),
            TensorData::I16(v) => js_sys::Int16Array::from(v.as_slice()).into(),
            TensorData::U16(v) => js_sys::Uint16Array::from(v.as_slice()).into(),
            TensorData::I8(v) => js_sys::Int8Array::from(v.as_slice()).into(),
            TensorData::U8(v) => js_sys::Uint8Array::from(v.as_slice()).into(),
            TensorData::Bool(v) => v
                .iter()
                .map(|&b| JsValue::from_bool(b))
                .collect::<Array>()
                .into(),
            TensorData::String(v) => v
                .iter()
                .map(|s| JsValue::from_str(s))
                .collect::<Array>()
                .into(),
        };
        let shape: Array = tensor
            .shape()
            .iter()
            .map(|&d| JsValue::from_f64(d as f64))
            .collect();
        let object = js_sys::Object::new();
        let _ = Reflect::set(&object, &"data".into(), &data);
        let _ = Reflect::set(&object, &"shape".into(), &shape);
        let _ = Reflect::set(
            &object,
            &"datatype".into(),
            &tensor.datatype().v2_name().into(),
        );
        object.into()
    }
}

/// The JS error for a failure: the message the server answers with.
fn error(e: impl Into<ProtocolError>) -> JsError {
    JsError::new(&e.into().to_string())
}

/// A value's JSON text: a string is taken as JSON already.
fn json_text(value: &JsValue) -> Result<String, JsError> {
    if let Some(text) = value.as_string() {
        return Ok(text);
    }
    JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| JsError::new("the value cannot be written as JSON"))
}

/// Parses JSON bytes that this crate wrote into a JS value.
fn to_js(json: &[u8]) -> Result<JsValue, JsError> {
    let text = std::str::from_utf8(json).map_err(|e| JsError::new(&e.to_string()))?;
    JSON::parse(text).map_err(|_| JsError::new("internal error: unparsable response"))
}

/// `object[name]` (or `map.get(name)`), when present and not null.
fn field(object: &JsValue, name: &str) -> Option<JsValue> {
    if object.is_undefined() || object.is_null() {
        return None;
    }
    let value = match object.dyn_ref::<Map>() {
        Some(map) => map.get(&JsValue::from_str(name)),
        None => Reflect::get(object, &JsValue::from_str(name)).ok()?,
    };
    (!value.is_undefined() && !value.is_null()).then_some(value)
}

/// A looked-up object's JSON bytes, from the page's stores.
fn lookup(stores: Option<&JsValue>, store: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
    let Some(stores) = stores else {
        return Ok(None);
    };
    let Some(bucket) = field(stores, store) else {
        return Ok(None);
    };
    let Some(object) = field(&bucket, key) else {
        return Ok(None);
    };
    let object = match object.dyn_ref::<Map>() {
        Some(map) => js_sys::Object::from_entries(map)
            .map(JsValue::from)
            .map_err(|_| "a stored Map cannot be read".to_owned())?,
        None => object,
    };
    let text =
        json_text(&object).map_err(|_| "a stored value cannot be written as JSON".to_owned())?;
    Ok(Some(text.into_bytes()))
}
