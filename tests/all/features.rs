//! `wafer features fit` and `wafer features transform` on CSV files (and Parquet output), against
//! what scikit-learn gives on the same data (`crates/features/fixtures/sklearn.json`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{post, repo_root, start_wafer_on, target_dir, wafer};

const SPEC: &str = r#"
[[field]]
name = "age"
type = "float"
required = true

[[field]]
name = "income"
type = "float"
impute = "median"

[[field]]
name = "country"
type = "string"

[[feature]]
name = "age_z"
field = "age"
transform = "standardize"

[[feature]]
name = "income"
field = "income"
transform = "identity"

[[feature]]
name = "country"
field = "country"
transform = "one_hot"
unknown = "ignore"

[[output]]
name = "X"
datatype = "FP64"
"#;

/// An empty folder of its own for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = target_dir().join("wafer-test-features").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn fixture() -> Value {
    let path = repo_root().join("crates/features/fixtures/sklearn.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

/// Writes the fixture's `part` columns as a CSV file (missing values as empty cells).
fn write_csv(fx: &Value, part: &str, path: &Path) {
    let cols = ["age", "income", "country"];
    let n = fx[part]["age"].as_array().expect("age").len();
    let mut text = cols.join(",") + "\n";
    for i in 0..n {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match &fx[part][c][i] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        text += &(cells.join(",") + "\n");
    }
    std::fs::write(path, text).expect("write csv");
}

#[test]
fn fit_then_transform_gives_scikit_learns_columns() {
    let dir = scratch("fit_transform");
    let fx = fixture();
    let spec = dir.join("features.toml");
    std::fs::write(&spec, SPEC).expect("spec");
    write_csv(&fx, "train", &dir.join("train.csv"));
    write_csv(&fx, "test", &dir.join("test.csv"));

    let status = wafer()
        .args(["features", "fit"])
        .arg(&spec)
        .arg("--data")
        .arg(dir.join("train.csv"))
        .status()
        .expect("runs");
    assert!(status.success(), "fit failed");
    let fitted = std::fs::read_to_string(&spec).expect("fitted spec");
    assert!(fitted.contains("mean = "), "{fitted}");
    assert!(fitted.contains("vocabulary = "), "{fitted}");

    let out = dir.join("out.csv");
    transform(&spec, &dir.join("test.csv"), &out);
    let text = std::fs::read_to_string(&out).expect("output");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let vocabulary = fx["one_hot"]["vocabulary"].as_array().expect("vocabulary");
    assert_eq!(header.len(), 2 + vocabulary.len(), "{header:?}");
    assert_eq!(&header[..3], ["age_z", "income", "country[0]"]);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    for (i, line) in lines.enumerate() {
        let cells: Vec<f64> = line
            .split(',')
            .map(|c| c.parse().expect("number"))
            .collect();
        let z = fx["standard"]["out"][i].as_f64().expect("z");
        let income = fx["impute_median"]["out"][i].as_f64().expect("income");
        assert!(
            close(cells[0], z),
            "row {i}: standardized age {} vs {z}",
            cells[0]
        );
        assert!(
            close(cells[1], income),
            "row {i}: imputed income {} vs {income}",
            cells[1]
        );
        let onehot: Vec<f64> = fx["one_hot"]["out"][i]
            .as_array()
            .expect("row")
            .iter()
            .map(|v| v.as_f64().expect("f64"))
            .collect();
        assert_eq!(cells[2..], onehot[..], "row {i}: one-hot country");
    }

    // The same columns as Parquet: names, DOUBLE values and rows equal to the CSV's.
    let parquet = dir.join("out.parquet");
    transform(&spec, &dir.join("test.csv"), &parquet);
    assert_eq!(parquet_rows(&parquet), csv_rows(&text));
}

/// Runs `wafer features transform SPEC --data DATA --output OUT`, which must succeed.
fn transform(spec: &Path, data: &Path, out: &Path) {
    let status = wafer()
        .args(["features", "transform"])
        .arg(spec)
        .arg("--data")
        .arg(data)
        .arg("--output")
        .arg(out)
        .status()
        .expect("runs");
    assert!(status.success(), "transform to {} failed", out.display());
}

/// A CSV file's header and rows of numbers.
fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut lines = text.lines();
    let header = lines
        .next()
        .expect("header")
        .split(',')
        .map(str::to_owned)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|c| c.parse().expect("number")).collect())
        .collect();
    (header, rows)
}

/// A Parquet file's column names and rows, read back with the parquet crate's row reader.
fn parquet_rows(path: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    use parquet::file::reader::{FileReader as _, SerializedFileReader};
    use parquet::record::Field;

    let reader = SerializedFileReader::new(std::fs::File::open(path).expect("parquet file"))
        .expect("a parquet file");
    let header = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let rows = reader
        .get_row_iter(None)
        .expect("rows")
        .map(|row| {
            row.expect("row")
                .get_column_iter()
                .map(|(name, field)| match field {
                    Field::Double(v) => *v,
                    other => panic!("column {name}: expected DOUBLE, got {other:?}"),
                })
                .collect()
        })
        .collect();
    (header, rows)
}

#[test]
fn bad_data_fails_with_a_clear_message_and_touches_nothing() {
    let dir = scratch("bad_data");
    let spec = dir.join("features.toml");
    let strict = SPEC
        .replace(
            "unknown = \"ignore\"",
            "unknown = \"error\"\nvocabulary = [\"FR\", \"DE\"]",
        )
        .replace(
            "transform = \"standardize\"",
            "transform = \"standardize\"\nmean = 40.0\nstd = 10.0",
        )
        .replace("impute = \"median\"", "default = 0.0");
    std::fs::write(&spec, &strict).expect("spec");
    let data = dir.join("in.csv");
    let input = "age,income,country\n41,100,FR\n52,,JP\n";
    std::fs::write(&data, input).expect("csv");
    let out = dir.join("out.csv");
    let result = wafer()
        .args(["features", "transform"])
        .arg(&spec)
        .arg("--data")
        .arg(&data)
        .arg("--output")
        .arg(&out)
        .output()
        .expect("runs");
    assert_eq!(result.status.code(), Some(2), "bad input exits 2");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("row 1: field \"country\": unknown category \"JP\""),
        "{stderr}"
    );
    assert!(!out.exists(), "no output on error");
    assert_eq!(
        std::fs::read_to_string(&data).expect("input"),
        input,
        "input untouched"
    );
    assert_eq!(
        std::fs::read_to_string(&spec).expect("spec"),
        strict,
        "spec untouched"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .collect();
    assert_eq!(leftovers.len(), 2, "no temporary files left: {leftovers:?}");
}

#[test]
fn the_readme_example_is_a_valid_spec_that_fits_and_transforms() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README");
    let section = readme
        .split("## Feature pipelines")
        .nth(1)
        .expect("the section");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a toml block");
    let mut spec = wafer_features::Spec::parse(example).expect("the README example parses");
    let rec =
        |age: f64, income: Option<f64>, country: &str, hour: &str| -> wafer_features::Record {
            use wafer_features::Value;
            [
                ("age", Value::Number(age)),
                ("income", income.map_or(Value::Missing, Value::Number)),
                ("country", Value::Text(country.into())),
                ("signup", Value::Text(format!("2026-03-02T{hour}:00:00Z"))),
                ("merchant", Value::Text(format!("m{age}"))),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
        };
    let train: Vec<_> = (0..20)
        .map(|i| {
            rec(
                20.0 + f64::from(i) * 3.0,
                (i % 4 != 0).then_some(1000.0 * f64::from(i)),
                ["FR", "DE"][i as usize % 2],
                "10",
            )
        })
        .collect();
    spec.fit(&train).expect("fits");
    assert!(spec.is_fitted());
    let out = spec
        .transform(&[rec(41.0, None, "JP", "23")])
        .expect("transforms");
    // age_z, income_log, income_missing, income_per_year, 4 age bands, 2 countries + bucket,
    // 32 hashed merchant columns, hour sin and cos, the looked-up spend (its default here).
    assert_eq!(out[0].shape(), &[1, 1 + 1 + 1 + 1 + 4 + 3 + 32 + 2 + 1]);
    assert_eq!(
        spec.lookups().len(),
        1,
        "the example shows an online lookup"
    );
}

#[test]
fn wafer_build_refuses_an_invalid_spec_naming_the_feature_and_field() {
    let dir = scratch("build");
    let bad = SPEC.replace(
        "field = \"age\"\ntransform = \"standardize\"",
        "field = \"agee\"\ntransform = \"standardize\"",
    );
    let model = iris_with_spec(&dir.join("iris_with_features"), &bad);
    let result = wafer()
        .arg("build")
        .arg(&model)
        .arg("-o")
        .arg(dir.join("out.wasm"))
        .output()
        .expect("runs");
    assert!(!result.status.success(), "the build must fail");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("feature \"age_z\" (standardize): field \"agee\" is not declared"),
        "{stderr}"
    );
    assert!(!dir.join("out.wasm").exists(), "nothing built");
}

/// iris's model behind a spec whose fourth column is an ordinal category with the `error`
/// policy for unknown categories.
pub const FLOWERS: &str = r#"
[[field]]
name = "sepal_length"
type = "float"
required = true

[[field]]
name = "sepal_width"
type = "float"
required = true

[[field]]
name = "petal_length"
type = "float"
required = true

[[field]]
name = "petal_size"
type = "string"
required = true

[[feature]]
name = "sepal_length"
field = "sepal_length"
transform = "identity"

[[feature]]
name = "sepal_width"
field = "sepal_width"
transform = "identity"

[[feature]]
name = "petal_length"
field = "petal_length"
transform = "identity"

[[feature]]
name = "petal_width"
field = "petal_size"
transform = "ordinal"
vocabulary = ["none", "small", "large"]
unknown = "error"

[[output]]
name = "X"
datatype = "FP32"
"#;

/// A model folder `model` holding iris's model.onnx behind the features.toml `spec`.
fn iris_with_spec(model: &Path, spec: &str) -> PathBuf {
    std::fs::create_dir_all(model).expect("model dir");
    std::fs::copy(
        repo_root().join("models/iris/model.onnx"),
        model.join("model.onnx"),
    )
    .expect("copy");
    std::fs::write(model.join("features.toml"), spec).expect("spec");
    model.to_owned()
}

/// A scratch model repository holding `flowers`: iris's model behind [`FLOWERS`]. Returns the
/// scratch folder; the repository is its `repo/`.
pub fn flowers(test: &str) -> PathBuf {
    let dir = scratch(test);
    iris_with_spec(&dir.join("repo/flowers"), FLOWERS);
    dir
}

/// A record for [`FLOWERS`] whose petal size is `size`.
pub fn flower(size: &str) -> Value {
    json!({"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_size": size})
}

#[test]
fn unknown_categories_and_bad_fields_get_a_400_and_the_server_keeps_serving() {
    let dir = flowers("unknown_category");
    let repo = dir.join("repo");
    let server = start_wafer_on(
        repo.to_str().expect("utf-8"),
        &dir.join("build"),
        &["--db", dir.join("features.db").to_str().expect("utf-8")],
    );
    let v1 = format!("{}/v1/models/flowers:predict", server.base);
    let v2 = format!("{}/v2/models/flowers/infer", server.base);
    let field = |name: &str, shape: Value, data: Value| {
        let datatype = if data[0].is_string() { "BYTES" } else { "FP32" };
        json!({"name": name, "shape": shape, "datatype": datatype, "data": data})
    };
    let cases = [
        (
            &v1,
            json!({"instances": [flower("large"), flower("huge")]}),
            "row 1: field \"petal_size\": unknown category \"huge\" for feature \"petal_width\"",
        ),
        (
            &v2,
            json!({"inputs": [
                field("sepal_length", json!([1]), json!([6.7])),
                field("sepal_width", json!([1]), json!([3.0])),
                field("petal_length", json!([1]), json!([5.2])),
                field("petal_size", json!([1]), json!(["medium"])),
            ]}),
            "row 0: field \"petal_size\": unknown category \"medium\"",
        ),
        (
            &v2,
            json!({"inputs": [field("petal_colour", json!([1]), json!(["red"]))]}),
            "input \"petal_colour\" is neither a model input nor a field of its features.toml",
        ),
        (
            &v2,
            json!({"inputs": [
                field("sepal_length", json!([2]), json!([6.7, 5.0])),
                field("petal_size", json!([1, 2]), json!(["large", "none"])),
            ]}),
            "input \"petal_size\": a field is one value per row, shape [2] or [2,1]",
        ),
    ];
    for (url, body, expected) in cases {
        let answer = post(url, body.to_string().as_bytes());
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
        let error = answer.json["error"].as_str().expect("an error message");
        assert!(
            error.contains(expected),
            "{error} should contain {expected}"
        );
    }
    let answer = post(
        &v1,
        json!({"instances": [flower("large"), flower("none")]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(answer.status, 200, "still serving: {}", answer.text);
    let labels: Vec<i64> = answer.json["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| p["label"].as_i64().expect("label"))
        .collect();
    // [6.7, 3.0, 5.2, 2.0]: the spec turned "large" into petal width 2, a virginica.
    assert_eq!(labels[0], 2, "{}", answer.text);
}
