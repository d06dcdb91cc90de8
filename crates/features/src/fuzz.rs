//! Property-based fuzzing of the record parser and the transform: whatever values a record
//! holds, each record is either kept or rejected with its row named, and nothing panics. CI
//! runs the default number of cases; `tools/fuzz.sh` runs many more (`PROPTEST_CASES`).

use proptest::prelude::*;

use crate::spec::FieldType;
use crate::time::parse_rfc3339;
use crate::{Record, Spec, Value};

/// The credit model's fitted spec: every kind of field and feature, with lookups.
fn credit() -> Spec {
    Spec::parse(include_str!("../../../models/credit/features.toml")).expect("credit's spec")
}

/// Text that looks like what records carry: numbers, timestamps, booleans and noise.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,16}",
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        (
            0i64..10_000,
            0u32..14,
            0u32..33,
            0u32..25,
            0u32..61,
            0u32..61
        )
            .prop_map(|(y, mo, d, h, mi, s)| format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"
            )),
        Just("true".to_owned()),
        Just("NaN".to_owned()),
        Just(String::new()),
    ]
}

/// Any raw value.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Missing),
        any::<f64>().prop_map(Value::Number),
        any::<bool>().prop_map(Value::Bool),
        text().prop_map(Value::Text),
    ]
}

/// A record over credit's fields (some left out) and a few unknown ones.
fn record() -> impl Strategy<Value = Record> {
    let fields = [
        "age",
        "income",
        "debt",
        "country",
        "merchant",
        "signup",
        "user_id",
        "avg_spend_30d",
        "orders_90d",
        "unknown",
    ];
    prop::collection::vec(
        (prop::sample::select(fields.to_vec()), value()),
        0..fields.len() + 2,
    )
    .prop_map(|pairs| pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

proptest! {
    #[test]
    fn every_record_is_kept_or_rejected_with_its_row(
        records in prop::collection::vec(record(), 0..12)
    ) {
        let spec = credit();
        match spec.transform_each(&records) {
            Ok(rows) => {
                prop_assert_eq!(rows.kept.len() + rows.rejected.len(), records.len());
                for e in &rows.rejected {
                    let row = e.row();
                    prop_assert!(row.is_some_and(|r| r < records.len()), "{e}");
                    prop_assert!(!rows.kept.contains(&row.unwrap_or(usize::MAX)));
                }
                for t in &rows.tensors {
                    prop_assert_eq!(t.shape().first().copied(), Some(rows.kept.len()));
                }
            }
            // An empty batch has nothing to transform.
            Err(e) => prop_assert!(records.is_empty(), "{e}"),
        }
    }

    #[test]
    fn csv_cells_coerce_to_any_type_or_say_why(cell in text()) {
        let value = Value::from_csv(&cell);
        for kind in [
            FieldType::Float,
            FieldType::Int,
            FieldType::Bool,
            FieldType::String,
            FieldType::Timestamp,
        ] {
            if let Err(why) = value.coerce(kind) {
                prop_assert!(!why.is_empty());
            }
        }
    }

    #[test]
    fn timestamps_parse_or_not_without_panicking(s in text()) {
        if let Some(t) = parse_rfc3339(&s) {
            prop_assert!(t.is_finite(), "{s} → {t}");
        }
    }
}
