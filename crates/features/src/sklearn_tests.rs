//! Each transform against what scikit-learn gives on the same data
//! (`fixtures/sklearn.json`, written by `tools/features.py` with the pinned versions).

use serde_json::Value as Json;
use wafer_scoring::TensorData;

use crate::{FeatureError, Record, Spec, Value};

fn fixture() -> Json {
    let text = include_str!("../fixtures/sklearn.json");
    serde_json::from_str(text).expect("fixture")
}

/// The records of the fixture's `train` or `test` columns.
fn records(fx: &Json, part: &str) -> Vec<Record> {
    let cols = fx[part].as_object().expect("columns");
    let n = cols["age"].as_array().expect("age").len();
    (0..n)
        .map(|i| {
            cols.iter()
                .map(|(k, v)| (k.clone(), Value::from_json(&v[i])))
                .collect()
        })
        .collect()
}

const FIELDS: &str = r#"
[[field]]
name = "age"
type = "float"

[[field]]
name = "country"
type = "string"

[[field]]
name = "merchant"
type = "string"

[[output]]
name = "X"
datatype = "FP64"
"#;

/// Fits `features` (TOML) on the training rows and transforms the test rows.
fn fit_transform(features: &str) -> (Spec, Vec<Vec<f64>>) {
    let fx = fixture();
    let mut spec = Spec::parse(&format!(
        "{FIELDS}\n[[field]]\nname = \"income\"\ntype = \"float\"\n{features}"
    ))
    .expect("spec parses");
    spec.fit(&records(&fx, "train")).expect("fits");
    let out = spec.transform(&records(&fx, "test")).expect("transforms");
    let t = &out[0];
    let TensorData::F64(v) = t.data() else {
        panic!("FP64")
    };
    let width = t.shape()[1];
    (spec, v.chunks(width).map(<[f64]>::to_vec).collect())
}

fn numbers(v: &Json) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn rows(v: &Json) -> Vec<Vec<f64>> {
    v.as_array().expect("rows").iter().map(numbers).collect()
}

fn assert_close(what: &str, got: &[Vec<f64>], want: &[Vec<f64>]) {
    assert_eq!(got.len(), want.len(), "{what}: rows");
    for (r, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what} row {r}: width");
        for (a, b) in g.iter().zip(w) {
            let same = (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * b.abs().max(1.0);
            assert!(same, "{what} row {r}: {g:?} vs scikit-learn {w:?}");
        }
    }
}

fn column(v: &Json) -> Vec<Vec<f64>> {
    numbers(v).into_iter().map(|x| vec![x]).collect()
}

#[test]
fn standardize_is_standard_scaler() {
    let fx = fixture();
    let (spec, out) = fit_transform(
        "[[feature]]\nname = \"age_z\"\nfield = \"age\"\ntransform = \"standardize\"\n",
    );
    let crate::Transform::Standardize {
        mean: Some(m),
        std: Some(s),
    } = spec.features[0].transform
    else {
        panic!("fitted")
    };
    assert!((m - fx["standard"]["mean"].as_f64().expect("mean")).abs() < 1e-9);
    assert!((s - fx["standard"]["std"].as_f64().expect("std")).abs() < 1e-9);
    assert_close("standardize", &out, &column(&fx["standard"]["out"]));
}

#[test]
fn min_max_is_min_max_scaler() {
    let fx = fixture();
    let (_, out) =
        fit_transform("[[feature]]\nname = \"age_01\"\nfield = \"age\"\ntransform = \"min_max\"\n");
    assert_close("min_max", &out, &column(&fx["min_max"]["out"]));
}

#[test]
fn bucketize_with_given_edges_is_kbins_discretizer() {
    let fx = fixture();
    let edges = "boundaries = [30.0, 45.0, 60.0]";
    let (_, out) = fit_transform(&format!(
        "[[feature]]\nname = \"age_b\"\nfield = \"age\"\ntransform = \"bucketize\"\n{edges}\n"
    ));
    assert_close(
        "bucketize ordinal",
        &out,
        &rows(&fx["kbins_ordinal"]["out"]),
    );
    let (_, out) = fit_transform(&format!(
        "[[feature]]\nname = \"age_b\"\nfield = \"age\"\ntransform = \"bucketize\"\n{edges}\nencode = \"one_hot\"\n"
    ));
    assert_close("bucketize one-hot", &out, &rows(&fx["kbins_onehot"]["out"]));
}

#[test]
fn one_hot_ignoring_unknowns_is_one_hot_encoder() {
    let fx = fixture();
    let (spec, out) = fit_transform(
        "[[feature]]\nname = \"country\"\nfield = \"country\"\ntransform = \"one_hot\"\nunknown = \"ignore\"\n",
    );
    let crate::Transform::OneHot {
        vocabulary: Some(v),
        ..
    } = &spec.features[0].transform
    else {
        panic!()
    };
    assert_eq!(serde_json::json!(v), fx["one_hot"]["vocabulary"]);
    assert_close("one_hot", &out, &rows(&fx["one_hot"]["out"]));
}

#[test]
fn ordinal_with_unknowns_as_minus_one_is_ordinal_encoder() {
    let fx = fixture();
    let (_, out) = fit_transform(
        "[[feature]]\nname = \"country\"\nfield = \"country\"\ntransform = \"ordinal\"\nunknown = \"ignore\"\n",
    );
    assert_close("ordinal", &out, &column(&fx["ordinal"]["out"]));
}

#[test]
fn min_frequency_keeps_frequent_categories() {
    let fx = fixture();
    let (spec, _) = fit_transform(
        "[[feature]]\nname = \"country\"\nfield = \"country\"\ntransform = \"one_hot\"\nunknown = \"bucket\"\nmin_frequency = 3\n",
    );
    let crate::Transform::OneHot {
        vocabulary: Some(v),
        ..
    } = &spec.features[0].transform
    else {
        panic!()
    };
    assert_eq!(serde_json::json!(v), fx["min_frequency_3"]);
}

#[test]
fn imputation_is_simple_imputer() {
    let fx = fixture();
    for strategy in ["mean", "median", "most_frequent"] {
        let fx_case = &fx[format!("impute_{strategy}")];
        let spec = format!(
            "{FIELDS}\n[[field]]\nname = \"income\"\ntype = \"float\"\nimpute = \"{strategy}\"\n\
             [[feature]]\nname = \"income\"\nfield = \"income\"\ntransform = \"identity\"\n"
        );
        let mut spec = Spec::parse(&spec).expect("spec");
        spec.fit(&records(&fx, "train")).expect("fits");
        let learned = spec
            .field("income")
            .and_then(|f| f.default.as_ref())
            .and_then(toml::Value::as_float);
        let want = fx_case["value"].as_f64().expect("value");
        assert!(
            (learned.expect("learned") - want).abs() < 1e-9 * want.abs(),
            "{strategy}"
        );
        let out = spec.transform(&records(&fx, "test")).expect("transforms");
        let TensorData::F64(v) = out[0].data() else {
            panic!("FP64")
        };
        let got: Vec<Vec<f64>> = v.iter().map(|&x| vec![x]).collect();
        assert_close(strategy, &got, &column(&fx_case["out"]));
    }
    let spec = "[[field]]\nname = \"country\"\ntype = \"string\"\nimpute = \"most_frequent\"\n\
         [[feature]]\nname = \"c\"\nfield = \"country\"\ntransform = \"ordinal\"\n[[output]]\nname = \"X\"\ndatatype = \"FP32\"\n";
    let mut spec = Spec::parse(spec).expect("spec");
    spec.fit(&records(&fx, "train")).expect("fits");
    let learned = spec.field("country").and_then(|f| f.default.clone());
    assert_eq!(
        learned,
        Some(toml::Value::String(
            fx["impute_most_frequent_string"]["value"]
                .as_str()
                .expect("s")
                .into()
        ))
    );
}

#[test]
fn hashing_is_feature_hasher_bit_for_bit() {
    let fx = fixture();
    for (sign, key) in [(true, "hash_signed"), (false, "hash_unsigned")] {
        let (_, out) = fit_transform(&format!(
            "[[feature]]\nname = \"m\"\nfield = \"merchant\"\ntransform = \"hash\"\nn_features = 16\nalternate_sign = {sign}\n"
        ));
        let want = rows(&fx[key]["out"]);
        assert_eq!(out, want, "{key}: indices and signs");
    }
}

#[test]
fn bad_records_name_the_row_and_field() {
    let spec = Spec::parse(
        "[[field]]\nname = \"age\"\ntype = \"float\"\nrequired = true\n\
         [[field]]\nname = \"country\"\ntype = \"string\"\n\
         [[feature]]\nname = \"age\"\nfield = \"age\"\ntransform = \"identity\"\n\
         [[feature]]\nname = \"c\"\nfield = \"country\"\ntransform = \"one_hot\"\nvocabulary = [\"FR\"]\n\
         [[output]]\nname = \"X\"\ndatatype = \"FP32\"\n",
    )
    .expect("spec");
    let rec = |pairs: &[(&str, Value)]| -> Record {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    };
    let ok = rec(&[
        ("age", Value::Number(41.0)),
        ("country", Value::Text("FR".into())),
    ]);
    assert!(spec.transform(std::slice::from_ref(&ok)).is_ok());
    let missing = rec(&[("country", Value::Text("FR".into()))]);
    assert_eq!(
        spec.transform(&[ok.clone(), missing])
            .expect_err("missing")
            .to_string(),
        "row 1: field \"age\" is required"
    );
    let wrong = rec(&[
        ("age", Value::Text("old".into())),
        ("country", Value::Text("FR".into())),
    ]);
    assert_eq!(
        spec.transform(&[wrong]).expect_err("type").to_string(),
        "row 0: field \"age\": expected a number, got text (\"old\")"
    );
    let unknown = rec(&[
        ("age", Value::Number(3.0)),
        ("country", Value::Text("JP".into())),
    ]);
    assert!(matches!(
        spec.transform(&[unknown]).expect_err("unknown"),
        FeatureError::UnknownCategory { row: 0, .. }
    ));
}

#[test]
fn spec_errors_name_the_field_and_transform() {
    let err = |text: &str| Spec::parse(text).expect_err("invalid").to_string();
    let out = "[[output]]\nname = \"X\"\ndatatype = \"FP32\"\n";
    assert_eq!(
        err(&format!(
            "[[field]]\nname = \"age\"\ntype = \"float\"\n[[feature]]\nname = \"a\"\nfield = \"agee\"\ntransform = \"log1p\"\n{out}"
        )),
        "features.toml: feature \"a\" (log1p): field \"agee\" is not declared"
    );
    assert_eq!(
        err(&format!(
            "[[field]]\nname = \"c\"\ntype = \"string\"\n[[feature]]\nname = \"z\"\nfield = \"c\"\ntransform = \"standardize\"\n{out}"
        )),
        "features.toml: feature \"z\" (standardize): field \"c\" is a String"
    );
    assert_eq!(
        err(&format!(
            "[[field]]\nname = \"x\"\ntype = \"float\"\n[[feature]]\nname = \"b\"\nfield = \"x\"\ntransform = \"bucketize\"\nboundaries = [3.0, 1.0]\n{out}"
        )),
        "features.toml: feature \"b\" (bucketize): boundaries [3.0, 1.0] are not increasing"
    );
    assert!(
        err("[[field]]\nname = \"x\"\ntype = \"complex\"\n").contains("unknown variant `complex`")
    );
}
