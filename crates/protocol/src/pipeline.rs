//! A model with its feature spec: what the guest component and the browser build both serve,
//! so raw records become the same tensors, and the same numbers, wherever the model runs.

use wafer_features::{Spec, Table, Value};
use wafer_scoring::{Dim, Model, ScoringError, Tensor, TensorData};

/// Where looked-up fields come from: `fetch(store, key)` gives the stored JSON object's bytes,
/// or `None` for an absent key. An error is the store's fault, not the request's.
pub type Fetch<'a> = dyn FnMut(&str, &str) -> Result<Option<Vec<u8>>, String> + 'a;

/// A fetch for a pipeline without lookups, or a place without stores: every key is absent.
pub fn no_store(_store: &str, _key: &str) -> Result<Option<Vec<u8>>, String> {
    Ok(None)
}

/// An ONNX model and, when it has one, the fitted `features.toml` that turns raw records into
/// its inputs.
#[derive(Debug)]
pub struct Pipeline {
    model: Model,
    spec: Option<Spec>,
}

impl Pipeline {
    /// Parses `onnx` and `features` (the text of `features.toml`), and checks that the spec is
    /// fitted and fills inputs of the model with the model's datatypes.
    #[cfg(feature = "tract")]
    pub fn load(name: &str, onnx: &[u8], features: Option<&str>) -> Result<Pipeline, ScoringError> {
        Pipeline::new(Model::load(name, onnx)?, features)
    }

    /// `model` with `features` (the text of `features.toml`), checked as [`Pipeline::load`]
    /// checks them.
    pub fn new(model: Model, features: Option<&str>) -> Result<Pipeline, ScoringError> {
        let spec = features
            .map(|text| Spec::parse(text).map_err(|e| ScoringError::Load(e.to_string())))
            .transpose()?;
        Pipeline::with_spec(model, spec)
    }

    /// `model` with a parsed feature spec, checked as [`Pipeline::new`] checks it.
    pub fn with_spec(model: Model, spec: Option<Spec>) -> Result<Pipeline, ScoringError> {
        if let Some(spec) = &spec {
            check_spec(spec, &model)?;
        }
        Ok(Pipeline { model, spec })
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The feature spec, if the model has one.
    pub fn spec(&self) -> Option<&Spec> {
        self.spec.as_ref()
    }

    /// The model's first input: what rows of numbers fill.
    fn first_input(&self) -> Result<&wafer_scoring::TensorInfo, ScoringError> {
        self.model
            .metadata()
            .inputs
            .first()
            .ok_or_else(|| ScoringError::Record("the model declares no input".into()))
    }

    /// Runs the model. With a feature spec, inputs named after the raw fields (one tensor per
    /// field, `[N]` or `[N, 1]`, as MLServer's pandas codec sends them) go through it first.
    pub fn predict(
        &self,
        inputs: Vec<Tensor>,
        outputs: &[String],
        fetch: &mut Fetch<'_>,
    ) -> Result<Vec<Tensor>, ScoringError> {
        let Some(spec) = &self.spec else {
            return self.model.predict(inputs, outputs);
        };
        let is_model_input = |n: &str| self.model.metadata().inputs.iter().any(|i| i.name == n);
        if inputs.iter().any(|t| is_model_input(t.name())) {
            return self.model.predict(inputs, outputs);
        }
        let table = table_of_columns(spec, &inputs)?;
        self.predict_on(spec, table, outputs, fetch)
    }

    /// Runs the model on a JSON array of records (through the spec) or of rows of numbers.
    pub fn predict_records(
        &self,
        json: &str,
        outputs: &[String],
        fetch: &mut Fetch<'_>,
    ) -> Result<Vec<Tensor>, ScoringError> {
        let value =
            crate::parse_json(json.as_bytes()).map_err(|e| ScoringError::Record(e.to_string()))?;
        let serde_json::Value::Array(items) = value else {
            return Err(ScoringError::Record(
                "instances: expected a JSON array".into(),
            ));
        };
        if !items.is_empty() && items.iter().all(serde_json::Value::is_object) {
            let Some(spec) = &self.spec else {
                return Err(ScoringError::Record(
                    "this model has no features.toml, so it takes rows of numbers, not records"
                        .into(),
                ));
            };
            let objects: Vec<_> = items
                .iter()
                .filter_map(serde_json::Value::as_object)
                .collect();
            return self.predict_on(spec, table_of_objects(spec, &objects), outputs, fetch);
        }
        let input = self.first_input()?;
        let tensor = crate::decode_rows(json.as_bytes(), input)
            .map_err(|e| ScoringError::Record(e.to_string()))?;
        self.model.predict(vec![tensor], outputs)
    }

    /// Runs the model on a JSON array of records (through the spec) or, for a model without
    /// one, of rows of numbers for its first input, as [`Pipeline::predict_records`] does,
    /// except that a row the spec or the input refuses is set aside with its reason instead of
    /// failing the batch. Whole-batch failures (unreadable JSON, a store that fails, a model
    /// that fails) are still errors.
    pub fn predict_batch(
        &self,
        json: &str,
        outputs: &[String],
        fetch: &mut Fetch<'_>,
    ) -> Result<Batch, ScoringError> {
        let value =
            crate::parse_json(json.as_bytes()).map_err(|e| ScoringError::Record(e.to_string()))?;
        let serde_json::Value::Array(items) = value else {
            return Err(ScoringError::Record("expected a JSON array".into()));
        };
        let Some(spec) = &self.spec else {
            return self.predict_rows(&items, outputs);
        };
        let mut rejected = Vec::new();
        let mut objects = Vec::with_capacity(items.len());
        let mut places = Vec::with_capacity(items.len());
        for (row, item) in items.iter().enumerate() {
            match item.as_object() {
                Some(o) => {
                    places.push(row);
                    objects.push(o);
                }
                None => rejected.push((row, format!("{item} is not a record (a JSON object)"))),
            }
        }
        let mut batch = self.predict_table(table_of_objects(spec, &objects), outputs, fetch)?;
        // From places among the records to places in the array.
        for kept in &mut batch.kept {
            *kept = places[*kept];
        }
        for (row, _) in &mut batch.rejected {
            *row = places[*row];
        }
        batch.rejected.extend(rejected);
        batch.rejected.sort_by_key(|r| r.0);
        Ok(batch)
    }

    /// Runs the model on a table of raw records through its feature spec, as
    /// [`Pipeline::predict_batch`] does on records: a row the spec refuses is set aside with its
    /// reason, and the rest are scored in one call.
    pub fn predict_table(
        &self,
        mut table: Table,
        outputs: &[String],
        fetch: &mut Fetch<'_>,
    ) -> Result<Batch, ScoringError> {
        let Some(spec) = &self.spec else {
            return Err(ScoringError::Record(
                "this model has no features.toml, so it takes rows of numbers, not records".into(),
            ));
        };
        if table.rows() == 0 {
            return Ok(Batch::none(Vec::new()));
        }
        // A failed lookup is the store's fault: a run error, not the request's.
        spec.fill_lookups(&mut table, fetch)
            .map_err(|e| ScoringError::Run(e.to_string()))?;
        let rows = spec
            .transform_table(&table)
            .map_err(|e| ScoringError::Record(e.to_string()))?;
        let rejected = rows
            .rejected
            .iter()
            .map(|e| {
                let row = e.row().unwrap_or_default();
                (row, without_row(&e.to_string(), row))
            })
            .collect();
        if rows.kept.is_empty() {
            return Ok(Batch::none(rejected));
        }
        Ok(Batch {
            outputs: self.model.predict(rows.tensors, outputs)?,
            kept: rows.kept,
            rejected,
        })
    }

    /// [`Pipeline::predict_batch`] for a model without a spec: rows of numbers for its first
    /// input.
    fn predict_rows(
        &self,
        items: &[serde_json::Value],
        outputs: &[String],
    ) -> Result<Batch, ScoringError> {
        let input = self.first_input()?;
        let mut rejected = Vec::new();
        let mut kept = Vec::with_capacity(items.len());
        let mut numbers = Vec::with_capacity(items.len());
        for (row, item) in items.iter().enumerate() {
            let n = match numbers_of(item) {
                Ok(n) => n,
                Err(why) => {
                    rejected.push((row, why));
                    continue;
                }
            };
            match wafer_features::assemble_rows(input, std::slice::from_ref(&n)) {
                Ok(_) => {
                    kept.push(row);
                    numbers.push(n);
                }
                Err(e) if e.row().is_some() => {
                    rejected.push((row, without_row(&e.to_string(), 0)));
                }
                Err(e) => return Err(ScoringError::Record(e.to_string())),
            }
        }
        if numbers.is_empty() {
            return Ok(Batch::none(rejected));
        }
        let tensor = wafer_features::assemble_rows(input, &numbers)
            .map_err(|e| ScoringError::Record(e.to_string()))?;
        Ok(Batch {
            outputs: self.model.predict(vec![tensor], outputs)?,
            kept,
            rejected,
        })
    }

    fn predict_on(
        &self,
        spec: &Spec,
        mut table: Table,
        outputs: &[String],
        fetch: &mut Fetch<'_>,
    ) -> Result<Vec<Tensor>, ScoringError> {
        // A failed lookup is the store's fault: a run error, not the request's.
        spec.fill_lookups(&mut table, fetch)
            .map_err(|e| ScoringError::Run(e.to_string()))?;
        let tensors = spec
            .transform_table(&table)
            .and_then(wafer_features::Rows::into_tensors)
            .map_err(|e| ScoringError::Record(e.to_string()))?;
        self.model.predict(tensors, outputs)
    }
}

/// What [`Pipeline::predict_batch`] made of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The outputs of the scored rows, in order; empty when no row was scored.
    pub outputs: Vec<Tensor>,
    /// The indices of the scored rows in the batch, ascending.
    pub kept: Vec<usize>,
    /// The rows set aside, by index in the batch, with why; ascending.
    pub rejected: Vec<(usize, String)>,
}

impl Batch {
    fn none(rejected: Vec<(usize, String)>) -> Batch {
        Batch {
            outputs: Vec::new(),
            kept: Vec::new(),
            rejected,
        }
    }
}

/// A row of numbers from a JSON array (null for missing).
fn numbers_of(item: &serde_json::Value) -> Result<Vec<f64>, String> {
    let serde_json::Value::Array(cells) = item else {
        return Err(format!("{item} is not a row (a JSON array of numbers)"));
    };
    cells
        .iter()
        .enumerate()
        .map(|(c, v)| {
            crate::codec::number(v).ok_or_else(|| format!("column {c}: {v} is not a number"))
        })
        .collect()
}

/// An error's text without the `row N: ` or `row N, ` that starts it: a batch's rejects carry
/// their row apart.
fn without_row(text: &str, row: usize) -> String {
    let prefix = format!("row {row}");
    match text.strip_prefix(&prefix) {
        Some(rest) => rest
            .strip_prefix(": ")
            .or_else(|| rest.strip_prefix(", "))
            .unwrap_or(rest)
            .to_owned(),
        None => text.to_owned(),
    }
}

/// Checks that a spec is fitted and fills model inputs of the right datatypes.
fn check_spec(spec: &Spec, model: &Model) -> Result<(), ScoringError> {
    let bad = |why: String| Err(ScoringError::Load(format!("features.toml: {why}")));
    if !spec.is_fitted() {
        return bad("statistics are missing: run `wafer features fit` first".into());
    }
    let columns = spec.columns();
    for output in &spec.outputs {
        let Some(input) = model
            .metadata()
            .inputs
            .iter()
            .find(|i| i.name == output.name)
        else {
            return bad(format!(
                "output \"{}\" is not an input of the model",
                output.name
            ));
        };
        if input.datatype.v2_name() != output.datatype {
            return bad(format!(
                "output \"{}\" is {}, the model's input is {}",
                output.name, output.datatype, input.datatype
            ));
        }
        let width = columns.get(&output.name).map_or(0, Vec::len);
        if let [_, Dim::Fixed(takes)] = input.shape.as_slice()
            && *takes != width
        {
            return bad(format!(
                "output \"{}\" fills {width} columns, the model's input takes {takes}",
                output.name
            ));
        }
    }
    Ok(())
}

/// The columns the spec reads ([`Spec::raw_fields`]) of JSON records.
fn table_of_objects(spec: &Spec, objects: &[&serde_json::Map<String, serde_json::Value>]) -> Table {
    let mut table = Table::new(objects.len());
    for name in spec.raw_fields() {
        let values = objects
            .iter()
            .map(|o| o.get(name).map_or(Value::Missing, Value::from_json))
            .collect();
        // One value per object: the length fits.
        let _ = table.insert(name, values);
    }
    table
}

/// A table from one tensor per raw field.
fn table_of_columns(spec: &Spec, inputs: &[Tensor]) -> Result<Table, ScoringError> {
    let bad = |why: String| Err(ScoringError::Record(why));
    let Some(first) = inputs.first() else {
        return bad("no inputs".into());
    };
    let rows = first.shape().first().copied().unwrap_or(0);
    let mut table = Table::new(rows);
    for t in inputs {
        if spec.field(t.name()).is_none() {
            return bad(format!(
                "input \"{}\" is neither a model input nor a field of its features.toml",
                t.name()
            ));
        }
        let column_shape = matches!(t.shape(), [n] | [n, 1] if *n == rows);
        if !column_shape {
            return bad(format!(
                "input \"{}\": a field is one value per row, shape [{rows}] or [{rows},1]",
                t.name()
            ));
        }
        let values: Vec<Value> = match t.data() {
            TensorData::F32(v) => v.iter().map(|&x| number(f64::from(x))).collect(),
            TensorData::F64(v) => v.iter().map(|&x| number(x)).collect(),
            TensorData::F16(v) => v.iter().map(|&x| number(x.to_f64())).collect(),
            TensorData::I64(v) => v.iter().map(|&x| Value::Number(x as f64)).collect(),
            TensorData::I32(v) => v.iter().map(|&x| Value::Number(f64::from(x))).collect(),
            TensorData::I16(v) => v.iter().map(|&x| Value::Number(f64::from(x))).collect(),
            TensorData::I8(v) => v.iter().map(|&x| Value::Number(f64::from(x))).collect(),
            TensorData::U64(v) => v.iter().map(|&x| Value::Number(x as f64)).collect(),
            TensorData::U32(v) => v.iter().map(|&x| Value::Number(f64::from(x))).collect(),
            TensorData::U16(v) => v.iter().map(|&x| Value::Number(f64::from(x))).collect(),
            TensorData::U8(v) => v.iter().map(|&x| Value::Number(f64::from(x))).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| Value::Bool(x)).collect(),
            TensorData::String(v) => v.iter().map(|x| Value::Text(x.clone())).collect(),
        };
        table
            .insert(t.name(), values)
            .map_err(|e| ScoringError::Record(e.to_string()))?;
    }
    Ok(table)
}

fn number(x: f64) -> Value {
    if x.is_nan() {
        Value::Missing
    } else {
        Value::Number(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONNX: &[u8] = include_bytes!("../../../models/credit/model.onnx");
    const SPEC: &str = include_str!("../../../models/credit/features.toml");

    #[test]
    fn a_spec_that_does_not_fit_the_model_is_refused_at_load() {
        let narrow = SPEC.replace("unknown = \"bucket\"", "unknown = \"error\"");
        let err = Pipeline::load("credit", ONNX, Some(&narrow)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot load model: features.toml: output \"X\" fills 29 columns, the model's input \
             takes 30"
        );
    }

    #[test]
    fn looked_up_fields_come_from_the_fetch_and_an_absent_key_takes_the_defaults() {
        let pipeline = Pipeline::load("credit", ONNX, Some(SPEC)).expect("loads");
        let record = r#"[{"user_id": "u7", "age": 41, "income": 52000, "country": "FR",
                          "merchant": "mcc22", "signup": 1747392028}]"#;
        let inline = r#"[{"user_id": "u7", "age": 41, "income": 52000, "country": "FR",
                          "merchant": "mcc22", "signup": 1747392028,
                          "avg_spend_30d": 80.5, "orders_90d": 9}]"#;
        let mut asked = Vec::new();
        let mut fetch = |store: &str, key: &str| {
            asked.push(format!("{store}/{key}"));
            Ok(Some(
                br#"{"avg_spend_30d": 80.5, "orders_90d": 9}"#.to_vec(),
            ))
        };
        let looked_up = pipeline
            .predict_records(record, &[], &mut fetch)
            .expect("runs");
        assert_eq!(asked, ["users/u7"], "one fetch per store and key");
        let given = pipeline
            .predict_records(inline, &[], &mut no_store)
            .expect("runs");
        assert_eq!(looked_up, given);
        let absent = pipeline
            .predict_records(record, &[], &mut no_store)
            .expect("runs");
        assert_ne!(absent, given, "defaults differ from the stored values");
        let mut broken = |_: &str, _: &str| Err("disk on fire".to_owned());
        let err = pipeline
            .predict_records(record, &[], &mut broken)
            .unwrap_err();
        assert!(
            matches!(err, ScoringError::Run(_)),
            "the store's fault: {err}"
        );
    }

    #[test]
    fn a_batch_sets_bad_rows_aside_and_scores_the_rest_as_single_rows() {
        let pipeline = Pipeline::load("credit", ONNX, Some(SPEC)).expect("loads");
        let good = |age: u32| {
            format!(
                r#"{{"user_id": "u{age}", "age": {age}, "income": 52000, "country": "FR",
                   "merchant": "mcc22", "signup": 1747392028}}"#
            )
        };
        let batch = format!(
            "[{}, [1, 2], {}, {{\"age\": \"old\", \"income\": 1}}, {}]",
            good(30),
            good(41),
            good(52)
        );
        let out = pipeline
            .predict_batch(&batch, &[], &mut no_store)
            .expect("runs");
        assert_eq!(out.kept, [0, 2, 4]);
        let rows: Vec<usize> = out.rejected.iter().map(|r| r.0).collect();
        assert_eq!(rows, [1, 3], "{:?}", out.rejected);
        assert!(
            out.rejected[0].1.contains("not a record"),
            "{:?}",
            out.rejected
        );
        assert!(
            out.rejected[1].1.starts_with("field \"age\""),
            "the reason leaves the row to the caller: {:?}",
            out.rejected
        );
        let alone = pipeline
            .predict_records(
                &format!("[{}, {}, {}]", good(30), good(41), good(52)),
                &[],
                &mut no_store,
            )
            .expect("runs");
        assert_eq!(out.outputs, alone);
    }

    #[test]
    fn a_batch_of_rows_checks_each_row_against_the_input() {
        let iris = include_bytes!("../../../models/iris/model.onnx");
        let pipeline = Pipeline::load("iris", iris, None).expect("loads");
        let out = pipeline
            .predict_batch(
                r#"[[5.1, 3.5, 1.4, 0.2], [1, 2], ["a", 1, 2, 3], [6.7, 3.0, 5.2, 2.3], {"a": 1}]"#,
                &[],
                &mut no_store,
            )
            .expect("runs");
        assert_eq!(out.kept, [0, 3]);
        let reasons: Vec<&str> = out.rejected.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "expected 4 values for input \"X\", got 2",
                "column 0: \"a\" is not a number",
                "{\"a\":1} is not a row (a JSON array of numbers)",
            ]
        );
        assert_eq!(out.outputs[0].shape()[0], 2);
        let none = pipeline
            .predict_batch("[[1]]", &[], &mut no_store)
            .expect("runs");
        assert!(none.outputs.is_empty() && none.kept.is_empty());
    }
}
