//! Property-based fuzzing of the request decoders: whatever bytes arrive, decoding returns a
//! request or an error a client is at fault for (4xx), and never panics. CI runs the default
//! number of cases; `tools/fuzz.sh` runs many more (`PROPTEST_CASES`).

use proptest::prelude::*;
use serde_json::{Value, json};

use wafer_scoring::{DataType, Dim, TensorInfo};

use crate::{ProtocolError, binary, decode_infer_request, ndjson};

/// Any JSON value, up to a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("FP32"),
            Just("INT64"),
            Just("BYTES"),
            Just("BOOL"),
            Just("FP16"),
            Just("X")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("inputs".to_owned()),
                    Just("outputs".to_owned()),
                    Just("name".to_owned()),
                    Just("shape".to_owned()),
                    Just("datatype".to_owned()),
                    Just("data".to_owned()),
                    Just("parameters".to_owned()),
                    Just("binary_data_size".to_owned()),
                    Just("instances".to_owned()),
                    ".{0,6}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request-shaped value: one input whose every field may be of any kind.
fn request_like() -> impl Strategy<Value = Value> {
    (
        json_value(),
        prop::collection::vec(any::<i64>(), 0..4),
        json_value(),
        json_value(),
        json_value(),
    )
        .prop_map(|(name, shape, datatype, data, parameters)| {
            json!({"inputs": [{"name": name, "shape": shape, "datatype": datatype,
                               "data": data, "parameters": parameters}]})
        })
}

/// Errors a decoder may give: the client's fault, never the server's.
fn client_error(e: &ProtocolError) -> bool {
    (400..500).contains(&e.status())
}

proptest! {
    #[test]
    fn arbitrary_bytes_decode_or_answer_4xx(body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = decode_infer_request(&body, None) {
            prop_assert!(client_error(&e), "{e}");
        }
    }

    #[test]
    fn arbitrary_json_decodes_or_answers_4xx(value in json_value()) {
        let body = serde_json::to_vec(&value).expect("serializes");
        if let Err(e) = decode_infer_request(&body, None) {
            prop_assert!(client_error(&e), "{e}");
        }
        if let Err(e) = crate::v1_instances(&body) {
            prop_assert!(client_error(&e), "{e}");
        }
    }

    #[test]
    fn request_shaped_json_decodes_or_answers_4xx(value in request_like()) {
        let body = serde_json::to_vec(&value).expect("serializes");
        match decode_infer_request(&body, None) {
            // A decoded tensor holds exactly what its shape says.
            Ok(request) => {
                for t in &request.inputs {
                    prop_assert_eq!(t.shape().iter().product::<usize>(), t.data().len());
                }
            }
            Err(e) => prop_assert!(client_error(&e), "{e}"),
        }
    }

    #[test]
    fn binary_bodies_with_any_header_length_decode_or_answer_4xx(
        header in request_like(),
        binary_data in prop::collection::vec(any::<u8>(), 0..256),
        offset in -8i64..8,
    ) {
        let mut body = serde_json::to_vec(&header).expect("serializes");
        let length = (body.len() as i64 + offset).max(0) as usize;
        body.extend_from_slice(&binary_data);
        if let Err(e) = decode_infer_request(&body, Some(length)) {
            prop_assert!(client_error(&e), "{e}");
        }
    }

    #[test]
    fn binary_tensor_data_of_any_length_decodes_or_answers_4xx(
        size in 0usize..80,
        data in prop::collection::vec(any::<u8>(), 0..80),
        datatype in prop::sample::select(DataType::ALL.to_vec()),
        shape in prop::collection::vec(0i64..6, 1..3),
    ) {
        let header = json!({"inputs": [{"name": "X", "shape": shape,
            "datatype": datatype.v2_name(), "parameters": {"binary_data_size": size}}]});
        let mut body = serde_json::to_vec(&header).expect("serializes");
        let length = body.len();
        body.extend_from_slice(&data);
        if let Err(e) = decode_infer_request(&body, Some(length)) {
            prop_assert!(client_error(&e), "{e}");
        }
    }

    #[test]
    fn header_length_values_parse_or_answer_4xx(value in prop::collection::vec(any::<u8>(), 0..24)) {
        if let Err(e) = binary::header_length(Some(&value)) {
            prop_assert!(client_error(&e), "{e}");
        }
    }

    #[test]
    fn stream_lines_parse_or_answer_4xx(line in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Some(Err(e)) = ndjson::parse_line(&line) {
            prop_assert!(client_error(&e), "{e}");
        }
    }

    #[test]
    fn rows_of_anything_assemble_or_answer_4xx(value in json_value()) {
        let info = TensorInfo {
            name: "X".into(),
            datatype: DataType::F32,
            shape: vec![Dim::Dynamic("N".into()), Dim::Fixed(4)],
            class_labels: vec![],
        };
        let body = serde_json::to_vec(&value).expect("serializes");
        if let Err(e) = crate::decode_rows(&body, &info) {
            prop_assert!(client_error(&e), "{e}");
        }
    }
}
