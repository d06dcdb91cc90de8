//! ZipMap: skl2onnx wraps every classifier's probabilities in one unless told `zipmap=False`.
//!
//! A ZipMap whose output is a model output is replaced by an Identity, so that output serves the
//! probabilities tensor, and its class labels go into the model metadata. A ZipMap anywhere else
//! is refused, naming the node.

use std::collections::HashMap;

use tract_onnx::pb::{ModelProto, TypeProto, type_proto};
use tract_onnx::prelude::*;

/// ONNX's element type code for `float`.
const FLOAT: i32 = 1;

/// Replaces each trailing ZipMap and returns the class labels by output name.
pub(crate) fn strip(model: &mut ModelProto) -> TractResult<HashMap<String, Vec<String>>> {
    let mut labels = HashMap::new();
    let Some(graph) = model.graph.as_mut() else {
        return Ok(labels);
    };
    let consumed: Vec<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .collect();
    for node in graph.node.iter_mut().filter(|n| n.op_type == "ZipMap") {
        let (Some(input), Some(output)) = (node.input.first(), node.output.first()) else {
            return node.bail("expected one input and one output");
        };
        let output = output.clone();
        let is_output = graph.output.iter().any(|o| o.name == output);
        if !is_output || consumed.contains(&output) {
            return node.bail(
                "ZipMap is supported only at a model output (its probabilities are served as a \
                 tensor); export with zipmap=False",
            );
        }
        let ints: Option<Vec<i64>> = node.get_attr_opt_vec("classlabels_int64s")?;
        let strings: Option<Vec<String>> = node.get_attr_opt_vec("classlabels_strings")?;
        let classes = match (ints, strings) {
            (Some(i), None) => i.iter().map(ToString::to_string).collect(),
            (None, Some(s)) => s,
            _ => {
                return node.bail_attr(
                    "classlabels_int64s",
                    "expected exactly one of classlabels_int64s and classlabels_strings",
                );
            }
        };
        let input = input.clone();
        *node = tract_onnx::pb::NodeProto {
            name: node.name.clone(),
            op_type: "Identity".into(),
            input: vec![input],
            output: vec![output.clone()],
            ..Default::default()
        };
        for o in graph.output.iter_mut().filter(|o| o.name == output) {
            o.r#type = Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: FLOAT,
                    shape: None,
                })),
                ..Default::default()
            });
        }
        labels.insert(output, classes);
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use crate::Model;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ops");

    #[test]
    fn a_trailing_zipmap_serves_its_probabilities_with_the_labels_in_the_metadata() {
        let onnx = std::fs::read(format!("{DIR}/zipmap_last.onnx")).expect("fixture");
        let model = Model::load("zipmap_last", &onnx).expect("loads");
        let z = &model.metadata().outputs[0];
        assert_eq!(z.name, "Z");
        assert_eq!(z.class_labels, ["0", "1"]);
    }

    #[test]
    fn a_zipmap_before_another_node_is_refused_by_name() {
        let onnx = std::fs::read(format!("{DIR}/zipmap_not_last.onnx")).expect("fixture");
        let err = Model::load("zipmap_not_last", &onnx).expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("Node zipmap (ZipMap)"), "{msg}");
        assert!(msg.contains("only at a model output"), "{msg}");
    }
}
