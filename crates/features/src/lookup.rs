//! Online lookups: fields filled from a key-value store by an entity key the record carries.
//!
//! The store itself is the caller's (the guest reads `wasi:keyvalue`, the host SQLite); this
//! module only decides what to fetch and how a stored value fills a record. A stored value is a
//! JSON object of field name to value.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::FeatureError;
use crate::record::{Record, Value};
use crate::spec::Spec;
use crate::table::Table;

/// The fields one store fills, by the value of one key field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupGroup {
    /// The store's name.
    pub store: String,
    /// The field holding the entity key.
    pub key: String,
    /// The fields the stored object fills, in spec order.
    pub fields: Vec<String>,
}

impl Spec {
    /// Whether any field is looked up in a key-value store.
    pub fn has_lookups(&self) -> bool {
        self.fields.iter().any(|f| f.lookup.is_some())
    }

    /// The spec's lookups, one group per store and key field, in the order they first appear.
    pub fn lookups(&self) -> Vec<LookupGroup> {
        let mut groups: Vec<LookupGroup> = Vec::new();
        for f in &self.fields {
            let Some(l) = &f.lookup else { continue };
            match groups
                .iter_mut()
                .find(|g| g.store == l.store && g.key == l.key)
            {
                Some(g) => g.fields.push(f.name.clone()),
                None => groups.push(LookupGroup {
                    store: l.store.clone(),
                    key: l.key.clone(),
                    fields: vec![f.name.clone()],
                }),
            }
        }
        groups
    }

    /// Fills the looked-up fields a row lacks from `fetch(store, key)`, which returns the
    /// stored JSON object's bytes or `None` when the key is absent. A field the row carries
    /// is kept; a row without a key, an absent key and a field the object lacks all leave the
    /// field missing, so its `default` applies. Each store and key is fetched once per call. A
    /// stored value of the wrong type is the store's fault, not the row's: every error is a
    /// [`FeatureError::Lookup`].
    pub fn fill_lookups<F>(&self, table: &mut Table, mut fetch: F) -> Result<(), FeatureError>
    where
        F: FnMut(&str, &str) -> Result<Option<Vec<u8>>, String>,
    {
        for group in self.lookups() {
            // The rows that lack a field, each with its key's place in `keys` (each key once,
            // in the order the rows name them).
            let mut keys: Vec<String> = Vec::new();
            let mut wanted: Vec<(usize, usize)> = Vec::new();
            {
                let Some(key_column) = table.column(&group.key) else {
                    continue;
                };
                let fields: Vec<Option<&[Value]>> =
                    group.fields.iter().map(|f| table.column(f)).collect();
                let mut places: HashMap<Cow<'_, str>, usize> = HashMap::new();
                for (row, key) in key_column.iter().enumerate() {
                    let lacks = fields
                        .iter()
                        .any(|c| c.is_none_or(|c| c[row] == Value::Missing));
                    let Some(key) = key_text(key).filter(|_| lacks) else {
                        continue;
                    };
                    let next = places.len();
                    let place = *places.entry(key).or_insert_with_key(|key| {
                        keys.push(key.clone().into_owned());
                        next
                    });
                    wanted.push((row, place));
                }
            }
            // Each key's values for the group's fields, fetched and checked once.
            let mut found: Vec<Vec<Option<Value>>> = Vec::with_capacity(keys.len());
            for key in &keys {
                let lookup = |why: String| FeatureError::Lookup {
                    store: group.store.clone(),
                    key: key.clone(),
                    why,
                };
                let object = fetch(&group.store, key)
                    .and_then(|bytes| bytes.map(|b| json_object(&b)).transpose())
                    .map_err(lookup)?;
                let mut values = Vec::with_capacity(group.fields.len());
                for field in &group.fields {
                    let value = object
                        .as_ref()
                        .and_then(|o| o.get(field))
                        .map(Value::from_json);
                    if let (Some(value), Some(f)) = (&value, self.field(field))
                        && let Err(why) = value.coerce(f.kind)
                    {
                        return Err(lookup(format!("field \"{field}\": {why}")));
                    }
                    values.push(value);
                }
                found.push(values);
            }
            for (i, field) in group.fields.iter().enumerate() {
                let column = table.column_mut(field);
                for &(row, place) in &wanted {
                    if column[row] == Value::Missing
                        && let Some(value) = &found[place][i]
                    {
                        column[row] = value.clone();
                    }
                }
            }
        }
        Ok(())
    }

    /// [`Spec::fill_lookups`] on records: each record gains the looked-up fields it lacked.
    pub fn fill_record_lookups<F>(
        &self,
        records: &mut [Record],
        fetch: F,
    ) -> Result<(), FeatureError>
    where
        F: FnMut(&str, &str) -> Result<Option<Vec<u8>>, String>,
    {
        let mut table = self.table(records);
        self.fill_lookups(&mut table, fetch)?;
        for field in self.lookups().iter().flat_map(|g| &g.fields) {
            let Some(column) = table.column(field) else {
                continue;
            };
            for (record, value) in records.iter_mut().zip(column) {
                if *value != Value::Missing
                    && record.get(field).is_none_or(|v| *v == Value::Missing)
                {
                    record.insert(field.clone(), value.clone());
                }
            }
        }
        Ok(())
    }
}

/// The store key of a key field's value: text as is, whole numbers without a fraction.
fn key_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Missing => None,
        Value::Text(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => {
            Some(Cow::Owned(format!("{}", *n as i64)))
        }
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
    }
}

fn json_object(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_slice(bytes) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        Ok(_) => Err("the stored value is not a JSON object".into()),
        Err(e) => Err(format!("the stored value is not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
[[field]]
name = "user_id"
type = "string"

[[field]]
name = "amount"
type = "float"
required = true

[[field]]
name = "avg_spend_30d"
type = "float"
default = 0.0
lookup = { store = "users", key = "user_id" }

[[field]]
name = "orders_90d"
type = "int"
default = 0
lookup = { store = "users", key = "user_id" }

[[feature]]
name = "amount"
field = "amount"
transform = "identity"

[[feature]]
name = "avg_spend_30d"
field = "avg_spend_30d"
transform = "identity"

[[feature]]
name = "orders_90d"
field = "orders_90d"
transform = "identity"

[[output]]
name = "X"
datatype = "FP64"
"#;

    fn record(pairs: &[(&str, Value)]) -> Record {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn rows(spec: &Spec, records: &[Record]) -> Vec<Vec<f64>> {
        let t = spec.transform(records).expect("transform");
        let wafer_scoring::TensorData::F64(v) = t[0].data() else {
            panic!("FP64")
        };
        v.chunks(3).map(<[f64]>::to_vec).collect()
    }

    #[test]
    fn store_values_fill_what_records_lack_and_absent_keys_get_defaults() {
        let spec = Spec::parse(SPEC).expect("spec");
        assert_eq!(
            spec.lookups(),
            vec![LookupGroup {
                store: "users".into(),
                key: "user_id".into(),
                fields: vec!["avg_spend_30d".into(), "orders_90d".into()],
            }]
        );
        let text = |s: &str| Value::Text(s.into());
        let mut records = vec![
            record(&[("user_id", text("u1")), ("amount", Value::Number(1.0))]),
            // Carries its own value: kept; the other field is looked up.
            record(&[
                ("user_id", text("u1")),
                ("amount", Value::Number(2.0)),
                ("avg_spend_30d", Value::Number(99.0)),
            ]),
            record(&[("user_id", text("nobody")), ("amount", Value::Number(3.0))]),
            record(&[("amount", Value::Number(4.0))]),
            // A numeric key reads as its integer text.
            record(&[
                ("user_id", Value::Number(7.0)),
                ("amount", Value::Number(5.0)),
            ]),
        ];
        let mut calls = Vec::new();
        spec.fill_record_lookups(&mut records, |store, key| {
            calls.push(format!("{store}/{key}"));
            Ok(match key {
                "u1" => Some(br#"{"avg_spend_30d": 12.5, "orders_90d": 3}"#.to_vec()),
                "7" => Some(br#"{"orders_90d": 8}"#.to_vec()),
                _ => None,
            })
        })
        .expect("fills");
        assert_eq!(
            calls,
            ["users/u1", "users/nobody", "users/7"],
            "one fetch per key"
        );
        assert_eq!(
            rows(&spec, &records),
            vec![
                vec![1.0, 12.5, 3.0],
                vec![2.0, 99.0, 3.0],
                vec![3.0, 0.0, 0.0],
                vec![4.0, 0.0, 0.0],
                vec![5.0, 0.0, 8.0],
            ]
        );
    }

    #[test]
    fn store_failures_and_bad_values_name_store_and_key() {
        let spec = Spec::parse(SPEC).expect("spec");
        let mut records = vec![record(&[("user_id", Value::Text("u1".into()))])];
        let err = spec
            .fill_record_lookups(&mut records, |_, _| Ok(Some(b"[1, 2]".to_vec())))
            .expect_err("not an object");
        assert_eq!(
            err.to_string(),
            "lookup in store \"users\", key \"u1\": the stored value is not a JSON object"
        );
        let err = spec
            .fill_record_lookups(&mut records, |_, _| {
                Ok(Some(br#"{"orders_90d": "many"}"#.to_vec()))
            })
            .expect_err("a stored value of the wrong type");
        assert_eq!(
            err.to_string(),
            "lookup in store \"users\", key \"u1\": field \"orders_90d\": expected a whole number, got text (\"many\")"
        );
        let err = spec
            .fill_record_lookups(&mut records, |_, _| Err("access denied".into()))
            .expect_err("store error");
        assert_eq!(
            err.to_string(),
            "lookup in store \"users\", key \"u1\": access denied"
        );
    }
}
