//! The web bundle: one file with what `wafer build` reads from a model folder (its name,
//! `model.onnx` and `features.toml`), which `wafer build --web` writes and the browser build
//! loads.
//!
//! Layout: the magic `WAFERWEB`, a little-endian `u32` format version (1), a little-endian
//! `u32` header length, the header (JSON `{"name", "features"?, "metadata"?, "lite"?,
//! "onnx_bytes"}`), then the ONNX bytes.
//!
//! `metadata` is the model's as tract describes it where the bundle is written, and `lite` says
//! that the lite graph runs the model, so the page may load the browser build without tract.

use serde::{Deserialize, Serialize};
use wafer_scoring::{DataType, Dim, ModelMetadata, TensorInfo};

use crate::ProtocolError;

const MAGIC: &[u8; 8] = b"WAFERWEB";
const VERSION: u32 = 1;

/// A model as the browser loads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    /// The model's name.
    pub name: String,
    /// The ONNX bytes.
    pub onnx: Vec<u8>,
    /// The text of its fitted `features.toml`, if it has one.
    pub features: Option<String>,
    /// The model's metadata, as the full build describes it.
    pub metadata: Option<ModelMetadata>,
    /// Whether the lite graph (the browser build without tract) runs the model.
    pub lite: bool,
}

#[derive(Serialize, Deserialize)]
struct Header {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    features: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    lite: bool,
    onnx_bytes: usize,
}

/// [`ModelMetadata`] whole, dynamic dimensions' names included (the v2 form has only `-1`).
#[derive(Serialize, Deserialize)]
struct Metadata {
    name: String,
    platform: String,
    inputs: Vec<Info>,
    outputs: Vec<Info>,
}

#[derive(Serialize, Deserialize)]
struct Info {
    name: String,
    datatype: String,
    shape: Vec<Size>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    class_labels: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Size {
    Fixed(usize),
    Dynamic(String),
}

impl Metadata {
    fn from_model(m: &ModelMetadata) -> Metadata {
        let infos = |infos: &[TensorInfo]| {
            infos
                .iter()
                .map(|i| Info {
                    name: i.name.clone(),
                    datatype: i.datatype.v2_name().to_owned(),
                    shape: i
                        .shape
                        .iter()
                        .map(|d| match d {
                            Dim::Fixed(n) => Size::Fixed(*n),
                            Dim::Dynamic(s) => Size::Dynamic(s.clone()),
                        })
                        .collect(),
                    class_labels: i.class_labels.clone(),
                })
                .collect()
        };
        Metadata {
            name: m.name.clone(),
            platform: m.platform.clone(),
            inputs: infos(&m.inputs),
            outputs: infos(&m.outputs),
        }
    }

    fn into_model(self) -> Result<ModelMetadata, String> {
        let infos = |infos: Vec<Info>| {
            infos
                .into_iter()
                .map(|i| {
                    Ok(TensorInfo {
                        datatype: DataType::from_v2_name(&i.datatype).ok_or_else(|| {
                            format!("tensor \"{}\": unknown datatype {}", i.name, i.datatype)
                        })?,
                        name: i.name,
                        shape: i
                            .shape
                            .into_iter()
                            .map(|d| match d {
                                Size::Fixed(n) => Dim::Fixed(n),
                                Size::Dynamic(s) => Dim::Dynamic(s),
                            })
                            .collect(),
                        class_labels: i.class_labels,
                    })
                })
                .collect::<Result<Vec<_>, String>>()
        };
        Ok(ModelMetadata {
            name: self.name,
            platform: self.platform,
            inputs: infos(self.inputs)?,
            outputs: infos(self.outputs)?,
        })
    }
}

impl Bundle {
    /// The bundle's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&Header {
            name: self.name.clone(),
            features: self.features.clone(),
            metadata: self.metadata.as_ref().map(Metadata::from_model),
            lite: self.lite,
            onnx_bytes: self.onnx.len(),
        })
        .unwrap_or_default();
        let mut out = Vec::with_capacity(16 + header.len() + self.onnx.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(
            &u32::try_from(header.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.onnx);
        out
    }

    /// Reads a bundle, refusing anything but a whole one of a known version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Bundle, ProtocolError> {
        let bad =
            |why: &str| ProtocolError::InvalidRequest(format!("not a wafer web bundle: {why}"));
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| bad("it does not start with WAFERWEB"))?;
        let (version, rest) = split_u32(rest).ok_or_else(|| bad("truncated"))?;
        if version != VERSION {
            return Err(bad(&format!(
                "format version {version}; this build reads {VERSION}"
            )));
        }
        let (length, rest) = split_u32(rest).ok_or_else(|| bad("truncated"))?;
        let length = length as usize;
        if rest.len() < length {
            return Err(bad("truncated header"));
        }
        let (header, onnx) = rest.split_at(length);
        let header: Header =
            serde_json::from_slice(header).map_err(|e| bad(&format!("header: {e}")))?;
        if onnx.len() != header.onnx_bytes {
            return Err(bad(&format!(
                "the header announces {} model bytes, the file holds {}",
                header.onnx_bytes,
                onnx.len()
            )));
        }
        let metadata = header
            .metadata
            .map(Metadata::into_model)
            .transpose()
            .map_err(|e| bad(&format!("metadata: {e}")))?;
        Ok(Bundle {
            name: header.name,
            onnx: onnx.to_vec(),
            features: header.features,
            metadata,
            lite: header.lite,
        })
    }
}

fn split_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_reads_back_and_a_damaged_one_is_refused() {
        let bundle = Bundle {
            name: "iris".into(),
            onnx: vec![1, 2, 3, 4, 5],
            features: Some("[[features]]\n".into()),
            metadata: Some(ModelMetadata {
                name: "iris".into(),
                platform: "onnx".into(),
                inputs: vec![TensorInfo {
                    name: "X".into(),
                    datatype: DataType::F32,
                    shape: vec![Dim::Dynamic("N".into()), Dim::Fixed(4)],
                    class_labels: vec![],
                }],
                outputs: vec![TensorInfo {
                    name: "probabilities".into(),
                    datatype: DataType::F32,
                    shape: vec![Dim::Dynamic("N".into()), Dim::Fixed(3)],
                    class_labels: vec!["setosa".into(), "versicolor".into(), "virginica".into()],
                }],
            }),
            lite: true,
        };
        let bytes = bundle.to_bytes();
        assert_eq!(Bundle::from_bytes(&bytes), Ok(bundle));
        let message = |bytes: &[u8]| Bundle::from_bytes(bytes).unwrap_err().to_string();
        assert!(message(&bytes[..bytes.len() - 1]).contains("announces 5 model bytes"));
        assert!(message(&bytes[..10]).contains("truncated"));
        assert!(message(b"PK\x03\x04").contains("WAFERWEB"));
        let mut future = bytes.clone();
        future[8] = 2;
        assert!(message(&future).contains("format version 2"));
    }
}
