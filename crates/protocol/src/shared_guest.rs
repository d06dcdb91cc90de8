//! The wasi-nn guest shared by every model (`wafer serve --shared-guest`).
//!
//! Built with `wafer build --backend wasi-nn`, a component holds its model's description in
//! its snapshot. Unbuilt, the same guest serves whichever model its environment describes, so
//! that one compiled guest serves them all: any WASI host can set these variables (`wafer
//! serve`, Spin's `environment`, `wasmtime serve --env`), beside a `wasi:nn` backend that
//! serves the model's graph under its name.

use wafer_features::Spec;
use wafer_scoring::{DataType, Dim, ModelMetadata, ScoringError, TensorInfo};

use crate::{MetadataTensor, ModelMetadataResponse, TensorParameters};

/// The model's name, which is also the name of its graph behind `wasi:nn`.
pub const MODEL_VAR: &str = "WAFER_MODEL";
/// The model's metadata, as `GET /v2/models/{name}` answers it.
pub const METADATA_VAR: &str = "WAFER_METADATA";
/// The model's feature spec, when it has one: `features.toml` text, or the same spec as JSON
/// (an object), which [`environment`] writes because it parses several times faster.
pub const FEATURES_VAR: &str = "WAFER_FEATURES";

/// The environment that describes a model and its feature spec to the shared guest.
pub fn environment(metadata: &ModelMetadata, spec: Option<&Spec>) -> Vec<(String, String)> {
    let described = crate::codec::model_metadata(metadata);
    let json = serde_json::to_string(&described).unwrap_or_default();
    let mut env = vec![
        (MODEL_VAR.to_owned(), metadata.name.clone()),
        (METADATA_VAR.to_owned(), json),
    ];
    if let Some(spec) = spec {
        // TOML text for the rare spec that JSON cannot carry whole.
        let text = spec.to_json().or_else(|| spec.to_toml().ok());
        env.push((FEATURES_VAR.to_owned(), text.unwrap_or_default()));
    }
    env
}

/// Reads the feature spec in [`FEATURES_VAR`]: JSON when it is an object, else TOML text.
pub fn parse_features(text: &str) -> Result<Spec, ScoringError> {
    let spec = if text.trim_start().starts_with('{') {
        Spec::from_json(text)
    } else {
        Spec::parse(text)
    };
    spec.map_err(|e| ScoringError::Load(format!("{FEATURES_VAR}: {e}")))
}

/// Reads the metadata [`environment`] wrote. Dynamic dimensions come back as `N`, as they do
/// from any v2 metadata.
pub fn parse_metadata(json: &str) -> Result<ModelMetadata, ScoringError> {
    let described: ModelMetadataResponse = serde_json::from_str(json)
        .map_err(|e| ScoringError::Load(format!("model metadata: {e}")))?;
    let tensors = |tensors: Vec<MetadataTensor>| {
        tensors
            .into_iter()
            .map(|t| {
                let datatype = DataType::from_v2_name(&t.datatype).ok_or_else(|| {
                    ScoringError::Load(format!(
                        "model metadata: tensor \"{}\" has the unknown datatype \"{}\"",
                        t.name, t.datatype
                    ))
                })?;
                Ok(TensorInfo {
                    name: t.name,
                    datatype,
                    shape: t.shape.into_iter().map(Dim::from_v2).collect(),
                    class_labels: t
                        .parameters
                        .map(|TensorParameters { class_labels }| class_labels)
                        .unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, ScoringError>>()
    };
    Ok(ModelMetadata {
        name: described.name,
        platform: described.platform,
        inputs: tensors(described.inputs)?,
        outputs: tensors(described.outputs)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_reads_back_from_the_environment() {
        let info = |name: &str, datatype, shape: Vec<Dim>, labels: &[&str]| TensorInfo {
            name: name.into(),
            datatype,
            shape,
            class_labels: labels.iter().map(|&l| l.into()).collect(),
        };
        let metadata = ModelMetadata {
            name: "iris".into(),
            platform: "onnx".into(),
            inputs: vec![info(
                "X",
                DataType::F32,
                vec![Dim::Dynamic("N".into()), Dim::Fixed(4)],
                &[],
            )],
            outputs: vec![
                info("label", DataType::I64, vec![Dim::Dynamic("N".into())], &[]),
                info(
                    "probabilities",
                    DataType::F32,
                    vec![Dim::Dynamic("N".into()), Dim::Fixed(3)],
                    &["0", "1", "2"],
                ),
            ],
        };
        let spec = Spec::parse(CREDIT).expect("a spec");
        let env = environment(&metadata, Some(&spec));
        let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(var(MODEL_VAR), Some("iris"));
        let features = var(FEATURES_VAR).expect("the spec");
        assert!(features.starts_with('{'), "written as JSON: {features}");
        assert_eq!(parse_features(features).expect("JSON reads"), spec);
        assert_eq!(parse_features(CREDIT).expect("TOML reads"), spec);
        let read = parse_metadata(var(METADATA_VAR).expect("metadata")).expect("it parses");
        assert_eq!(read, metadata);
        assert!(
            environment(&metadata, None)
                .iter()
                .all(|(k, _)| k != FEATURES_VAR)
        );
    }

    /// A fitted spec: credit's.
    const CREDIT: &str = include_str!("../../../models/credit/features.toml");

    #[test]
    fn a_spec_json_cannot_carry_whole_goes_as_toml() {
        let text = CREDIT.replace("default = 26903.905", "default = nan");
        let spec = Spec::parse(&text).expect("a spec");
        assert_eq!(spec.to_json(), None);
        let env = environment(&ModelMetadata::default(), Some(&spec));
        let features = &env
            .iter()
            .find(|(k, _)| k == FEATURES_VAR)
            .expect("the spec")
            .1;
        assert!(!features.starts_with('{'), "written as TOML: {features}");
        let back = parse_features(features).expect("TOML reads");
        assert_eq!(back.to_toml().ok(), spec.to_toml().ok());
    }

    #[test]
    fn bad_metadata_is_refused_with_the_reason() {
        let e = parse_metadata("{").expect_err("not JSON");
        assert!(e.to_string().contains("model metadata"), "{e}");
        let unknown = r#"{"name":"m","versions":[],"platform":"onnx","inputs":[{"name":"x","datatype":"BF16","shape":[1]}],"outputs":[]}"#;
        let e = parse_metadata(unknown).expect_err("unknown datatype");
        assert!(e.to_string().contains("\"BF16\""), "{e}");
    }
}
