//! A model: what it takes and returns, the checks every input passes, and what runs it
//! (tract, or a [`Runner`] elsewhere).

use std::fmt;
use std::sync::Arc;

use crate::ScoringError;
use crate::tensor::{DataType, Tensor, format_shape};

/// One dimension of a declared model input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A size chosen by each request, usually the batch (`N`).
    Dynamic(String),
}

impl Dim {
    /// The KServe v2 form: the size, or `-1` for a dynamic dimension.
    pub fn to_v2(&self) -> i64 {
        match self {
            Dim::Fixed(n) => i64::try_from(*n).unwrap_or(-1),
            Dim::Dynamic(_) => -1,
        }
    }

    /// Reads the KServe v2 form; a negative size is dynamic.
    pub fn from_v2(d: i64) -> Dim {
        usize::try_from(d).map_or_else(|_| Dim::Dynamic("N".into()), Dim::Fixed)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Dynamic(s) => f.write_str(s),
        }
    }
}

/// A model input or output as the model declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The ONNX name.
    pub name: String,
    /// The element type.
    pub datatype: DataType,
    /// The dimensions.
    pub shape: Vec<Dim>,
    /// For a probabilities output that a ZipMap wrapped, the class of each column.
    pub class_labels: Vec<String>,
}

impl TensorInfo {
    /// The shape as `[N,4]`.
    pub fn shape_string(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(ToString::to_string).collect();
        format!("[{}]", dims.join(","))
    }

    /// Whether `tensor` fits this input: its element type, its rank, its fixed dimensions,
    /// and no empty dimension.
    pub fn check(&self, tensor: &Tensor) -> Result<(), ScoringError> {
        if tensor.datatype() != self.datatype {
            return Err(ScoringError::DataType {
                input: self.name.clone(),
                expected: self.datatype.to_string(),
                got: tensor.datatype().to_string(),
            });
        }
        let fits = tensor.shape().len() == self.shape.len()
            && tensor
                .shape()
                .iter()
                .zip(&self.shape)
                .all(|(&got, want)| match want {
                    Dim::Fixed(n) => got == *n,
                    Dim::Dynamic(_) => true,
                });
        if !fits {
            return Err(ScoringError::Shape {
                input: self.name.clone(),
                expected: self.shape_string(),
                got: format_shape(tensor.shape()),
            });
        }
        if tensor.shape().contains(&0) {
            return Err(ScoringError::EmptyBatch {
                input: self.name.clone(),
                shape: format_shape(tensor.shape()),
            });
        }
        Ok(())
    }
}

/// What a model takes and returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelMetadata {
    /// The model's name (its folder in the model repository).
    pub name: String,
    /// The model format, `onnx`.
    pub platform: String,
    /// Inputs, in the order the model declares them.
    pub inputs: Vec<TensorInfo>,
    /// Outputs, in the order the model declares them.
    pub outputs: Vec<TensorInfo>,
}

/// A runnable model: its metadata, and what runs it.
#[derive(Debug, Clone)]
pub struct Model {
    metadata: ModelMetadata,
    engine: Engine,
}

/// What computes a model's outputs.
#[derive(Debug, Clone)]
enum Engine {
    /// tract, in this process.
    #[cfg(feature = "tract")]
    Tract(crate::onnx::Plan),
    /// Something else: the host's backend behind `wasi:nn`, for the guest that has no tract.
    Runner(Arc<dyn Runner>),
}

/// Runs a model whose graph lives elsewhere (a `wasi:nn` backend). [`Model::predict`] checks
/// the inputs against the metadata first, so a runner sees only inputs that fit.
pub trait Runner: fmt::Debug + Send + Sync {
    /// Computes every output, in the order the metadata declares them, from every input, in
    /// the order the metadata declares them.
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ScoringError>;
}

impl Model {
    /// Parses ONNX bytes, fixes dynamic dimensions to symbols, and optimizes the graph once.
    ///
    /// The ai.onnx.ml operators scikit-learn exports run on wafer's own kernels. A ZipMap at a
    /// model output is dropped: that output serves the probabilities tensor ZipMap wraps, and
    /// its metadata carries the class labels.
    #[cfg(feature = "tract")]
    pub fn load(name: &str, onnx: &[u8]) -> Result<Model, ScoringError> {
        let (metadata, plan) = crate::onnx::load(name, onnx)?;
        Ok(Model {
            metadata,
            engine: Engine::Tract(plan),
        })
    }

    /// Reads `onnx` into the lite graph (no tract), for a model whose every node it knows.
    /// `metadata` is the model's as [`Model::load`] describes it, where tract is at hand (the
    /// lite graph does no shape analysis).
    #[cfg(feature = "lite")]
    pub fn lite(metadata: ModelMetadata, onnx: &[u8]) -> Result<Model, ScoringError> {
        let graph = crate::lite::Graph::load(&metadata, onnx)?;
        Ok(Model::with_runner(metadata, Arc::new(graph)))
    }

    /// A model that `runner` computes, described by `metadata`.
    pub fn with_runner(metadata: ModelMetadata, runner: Arc<dyn Runner>) -> Model {
        Model {
            metadata,
            engine: Engine::Runner(runner),
        }
    }

    /// The model's name, inputs and outputs.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// Runs the model on named inputs and returns the outputs named in `outputs`, or all of
    /// them when `outputs` is empty.
    pub fn predict(
        &self,
        inputs: Vec<Tensor>,
        outputs: &[String],
    ) -> Result<Vec<Tensor>, ScoringError> {
        let meta = &self.metadata;
        let selected: Vec<usize> = if outputs.is_empty() {
            (0..meta.outputs.len()).collect()
        } else {
            outputs
                .iter()
                .map(|wanted| {
                    meta.outputs
                        .iter()
                        .position(|o| &o.name == wanted)
                        .ok_or_else(|| ScoringError::UnknownOutput {
                            output: wanted.clone(),
                            expected: names(&meta.outputs),
                        })
                })
                .collect::<Result<_, _>>()?
        };

        let mut ordered: Vec<Option<Tensor>> = vec![None; meta.inputs.len()];
        for tensor in inputs {
            let ix = meta
                .inputs
                .iter()
                .position(|i| i.name == tensor.name())
                .ok_or_else(|| ScoringError::UnknownInput {
                    input: tensor.name().to_owned(),
                    expected: names(&meta.inputs),
                })?;
            meta.inputs[ix].check(&tensor)?;
            if ordered[ix].is_some() {
                return Err(ScoringError::DuplicateInput {
                    input: tensor.name().to_owned(),
                });
            }
            ordered[ix] = Some(tensor);
        }
        let inputs: Vec<Tensor> = ordered
            .into_iter()
            .zip(&meta.inputs)
            .map(|(t, info)| {
                t.ok_or_else(|| ScoringError::MissingInput {
                    input: info.name.clone(),
                })
            })
            .collect::<Result<_, _>>()?;

        match &self.engine {
            #[cfg(feature = "tract")]
            Engine::Tract(plan) => crate::onnx::run(plan, inputs, &meta.outputs, &selected),
            Engine::Runner(runner) => {
                let all = runner.run(inputs)?;
                if all.len() != meta.outputs.len() {
                    return Err(ScoringError::Run(format!(
                        "the backend returned {} outputs, the model declares {}",
                        all.len(),
                        meta.outputs.len()
                    )));
                }
                if selected.iter().copied().eq(0..all.len()) {
                    return Ok(all);
                }
                Ok(selected.iter().map(|&ix| all[ix].clone()).collect())
            }
        }
    }
}

fn names(infos: &[TensorInfo]) -> String {
    let quoted: Vec<String> = infos.iter().map(|i| format!("\"{}\"", i.name)).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(all(test, feature = "tract"))]
mod tests {
    use super::*;
    use crate::TensorData;

    const IRIS: &[u8] = include_bytes!("../../../models/iris/model.onnx");
    const DIGITS: &[u8] = include_bytes!("../../../models/digits/model.onnx");
    const DIGITS_WIDE: &[u8] = include_bytes!("../../../models/digits_wide/model.onnx");

    fn fixture(model: &str, file: &str) -> serde_json::Value {
        let path = format!("{}/../../models/{model}/{file}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
    }

    /// A JSON matrix of numbers, flattened row by row.
    fn flat(rows: &serde_json::Value) -> Vec<f64> {
        let rows = rows.as_array().expect("rows");
        let row = |r: &serde_json::Value| r.as_array().expect("row").clone();
        rows.iter()
            .flat_map(row)
            .map(|v| v.as_f64().expect("f64"))
            .collect()
    }

    /// Runs the whole test set natively in one batch and compares with onnxruntime.
    fn matches_onnxruntime(model: &str, onnx: &[u8]) {
        let m = Model::load(model, onnx).expect("loads");
        let inputs = fixture(model, "test_inputs.json");
        let expected = fixture(model, "expected.json");
        let data: Vec<f32> = flat(&inputs["data"])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let n = inputs["shape"][0].as_u64().expect("n") as usize;
        let x = Tensor::new("X", vec![n, data.len() / n], TensorData::F32(data)).expect("tensor");
        let out = m.predict(vec![x], &[]).expect("runs");
        let TensorData::I64(labels) = out[0].data() else {
            panic!("labels are INT64")
        };
        let want: Vec<i64> = expected["onnxruntime"]["label"]
            .as_array()
            .expect("labels")
            .iter()
            .map(|v| v.as_i64().expect("i64"))
            .collect();
        assert_eq!(labels, &want, "{model}: labels");
        let TensorData::F32(probs) = out[1].data() else {
            panic!("probabilities are FP32")
        };
        let want = flat(&expected["onnxruntime"]["probabilities"]);
        assert_eq!(probs.len(), want.len());
        for (i, (a, b)) in probs.iter().zip(&want).enumerate() {
            assert!(
                (f64::from(*a) - b).abs() <= 1e-5,
                "{model} element {i}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn iris_matches_onnxruntime() {
        matches_onnxruntime("iris", IRIS);
    }

    #[test]
    fn digits_matches_onnxruntime() {
        matches_onnxruntime("digits", DIGITS);
    }

    #[test]
    fn digits_wide_matches_onnxruntime() {
        matches_onnxruntime("digits_wide", DIGITS_WIDE);
    }

    #[test]
    fn metadata_names_the_onnx_inputs_and_outputs() {
        let m = Model::load("iris", IRIS).expect("loads");
        let meta = m.metadata();
        assert_eq!(meta.inputs.len(), 1);
        assert_eq!(meta.inputs[0].name, "X");
        assert_eq!(meta.inputs[0].datatype, DataType::F32);
        assert_eq!(meta.inputs[0].shape_string(), "[N,4]");
        let outputs: Vec<(&str, DataType)> = meta
            .outputs
            .iter()
            .map(|o| (o.name.as_str(), o.datatype))
            .collect();
        assert_eq!(
            outputs,
            [("label", DataType::I64), ("probabilities", DataType::F32)]
        );
    }

    #[test]
    fn inputs_are_checked_before_running() {
        let m = Model::load("iris", IRIS).expect("loads");
        let run = |t: Tensor| m.predict(vec![t], &[]).expect_err("rejected").to_string();
        let f32s = |shape: Vec<usize>| {
            let n = shape.iter().product();
            Tensor::new("X", shape, TensorData::F32(vec![0.5; n])).expect("tensor")
        };
        assert_eq!(
            run(f32s(vec![2, 5])),
            r#"input "X": expected shape [N,4], got [2,5]"#
        );
        assert_eq!(
            run(f32s(vec![4])),
            r#"input "X": expected shape [N,4], got [4]"#
        );
        assert_eq!(
            run(f32s(vec![0, 4])),
            r#"input "X": empty batch (shape [0,4])"#
        );
        let f64s = Tensor::new("X", vec![1, 4], TensorData::F64(vec![0.5; 4])).expect("tensor");
        assert_eq!(run(f64s), r#"input "X": expected datatype FP32, got FP64"#);
        let other = Tensor::new("Y", vec![1, 4], TensorData::F32(vec![0.5; 4])).expect("tensor");
        assert_eq!(
            run(other),
            r#"unknown input "Y"; the model's inputs are ["X"]"#
        );
        let missing = m.predict(vec![], &[]).expect_err("missing").to_string();
        assert_eq!(missing, r#"missing input "X""#);
        let unknown = m
            .predict(vec![f32s(vec![1, 4])], &["nope".into()])
            .expect_err("output");
        assert!(
            unknown.to_string().starts_with(r#"unknown output "nope""#),
            "{unknown}"
        );
    }

    #[test]
    fn selected_outputs_come_in_the_order_asked() {
        let m = Model::load("iris", IRIS).expect("loads");
        let x = Tensor::new("X", vec![1, 4], TensorData::F32(vec![5.1, 3.5, 1.4, 0.2])).expect("x");
        let out = m
            .predict(vec![x], &["probabilities".into(), "label".into()])
            .expect("runs");
        let names: Vec<&str> = out.iter().map(Tensor::name).collect();
        assert_eq!(names, ["probabilities", "label"]);
    }

    #[test]
    fn garbage_is_a_load_error_not_a_panic() {
        let err = Model::load("junk", b"not an onnx model").expect_err("junk");
        assert!(matches!(err, ScoringError::Load(_)), "{err:?}");
    }
}
