//! Raw records and their values, before any transform.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::spec::FieldType;
use crate::time::parse_rfc3339;

/// A raw value, as a JSON record, a CSV cell or a v2 tensor element carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Absent, `null`, an empty CSV cell, or `NaN`.
    Missing,
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(String),
}

/// A record: field name to raw value.
pub type Record = HashMap<String, Value>;

/// A raw value that borrows its text: what a cell reads as before it is kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Cell<'a> {
    Missing,
    Number(f64),
    Bool(bool),
    Text(&'a str),
}

impl Cell<'_> {
    /// How [`Value::from_csv`] reads a CSV cell.
    pub(crate) fn of_csv(cell: &str) -> Cell<'_> {
        let cell = cell.trim();
        if cell.is_empty() || cell.eq_ignore_ascii_case("nan") || cell.eq_ignore_ascii_case("null")
        {
            return Cell::Missing;
        }
        if let Ok(n) = cell.parse::<f64>() {
            return Cell::Number(n);
        }
        match cell {
            "true" | "True" | "TRUE" => Cell::Bool(true),
            "false" | "False" | "FALSE" => Cell::Bool(false),
            _ => Cell::Text(cell),
        }
    }
}

/// A value coerced to its field's type; a category borrows the raw value's text.
#[derive(Clone, Debug, PartialEq)]
pub enum Typed<'a> {
    /// Missing.
    Missing,
    /// A number (also booleans as 0/1, and timestamps as epoch seconds).
    Number(f64),
    /// A category.
    Category(Cow<'a, str>),
}

impl Value {
    /// A JSON value as a raw value; arrays and objects are text.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Missing,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => n.as_f64().map_or(Value::Missing, Value::from_number),
            serde_json::Value::String(s) => Value::Text(s.clone()),
            other => Value::Text(other.to_string()),
        }
    }

    /// A TOML value (a field's `default`) as a raw value.
    pub fn from_toml(v: &toml::Value) -> Value {
        match v {
            toml::Value::Integer(i) => Value::Number(*i as f64),
            toml::Value::Float(f) => Value::from_number(*f),
            toml::Value::Boolean(b) => Value::Bool(*b),
            toml::Value::String(s) => Value::Text(s.clone()),
            other => Value::Text(other.to_string()),
        }
    }

    /// A CSV cell: empty is missing; numbers, `true`/`false` and text as they read.
    pub fn from_csv(cell: &str) -> Value {
        match Cell::of_csv(cell) {
            Cell::Missing => Value::Missing,
            Cell::Number(n) => Value::Number(n),
            Cell::Bool(b) => Value::Bool(b),
            Cell::Text(t) => Value::Text(t.to_owned()),
        }
    }

    fn from_number(n: f64) -> Value {
        if n.is_nan() {
            Value::Missing
        } else {
            Value::Number(n)
        }
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Missing => "missing",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Text(_) => "text",
        }
    }

    /// Coerces the value to a field type; the error says what was found.
    pub fn coerce(&self, kind: FieldType) -> Result<Typed<'_>, String> {
        let wrong = || {
            Err(format!(
                "expected {}, got {} ({})",
                kind_name(kind),
                self.kind(),
                self.show()
            ))
        };
        Ok(match (self, kind) {
            (Value::Missing, _) => Typed::Missing,
            (Value::Number(n), FieldType::Float | FieldType::Timestamp) => Typed::Number(*n),
            (Value::Number(n), FieldType::Int) if n.fract() == 0.0 => Typed::Number(*n),
            (Value::Number(n), FieldType::String) => Typed::Category(format_number(*n).into()),
            (Value::Bool(b), FieldType::Bool) => Typed::Number(f64::from(u8::from(*b))),
            (Value::Number(n), FieldType::Bool) if *n == 0.0 || *n == 1.0 => Typed::Number(*n),
            (Value::Text(s), FieldType::String) => Typed::Category(Cow::Borrowed(s)),
            // Epoch seconds may come as text too (a BYTES tensor, a CSV cell).
            (Value::Text(s), FieldType::Timestamp) => {
                match parse_rfc3339(s).or_else(|| s.trim().parse().ok()) {
                    Some(t) => Typed::Number(t),
                    None => return wrong(),
                }
            }
            _ => return wrong(),
        })
    }

    fn show(&self) -> String {
        match self {
            Value::Missing => "null".into(),
            Value::Number(n) => format_number(*n),
            Value::Bool(b) => b.to_string(),
            Value::Text(s) => format!("\"{s}\""),
        }
    }
}

impl Typed<'_> {
    /// The value as a category: numbers as their shortest text.
    pub fn category(&self) -> Option<Cow<'_, str>> {
        match self {
            Typed::Missing => None,
            Typed::Number(n) => Some(Cow::Owned(format_number(*n))),
            Typed::Category(s) => Some(Cow::Borrowed(s)),
        }
    }

    /// The value as a number; missing is NaN.
    pub fn number(&self) -> f64 {
        match self {
            Typed::Number(n) => *n,
            _ => f64::NAN,
        }
    }
}

/// Whole numbers without a decimal point (`3`, not `3.0`).
fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn kind_name(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Float => "a number",
        FieldType::Int => "a whole number",
        FieldType::Bool => "a boolean",
        FieldType::String => "text",
        FieldType::Timestamp => "an RFC 3339 timestamp or epoch seconds",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coercion_names_what_it_found() {
        assert_eq!(
            Value::Number(3.0).coerce(FieldType::Int),
            Ok(Typed::Number(3.0))
        );
        assert_eq!(
            Value::Text("x".into()).coerce(FieldType::Float),
            Err("expected a number, got text (\"x\")".into())
        );
        assert_eq!(
            Value::Number(2.5).coerce(FieldType::Int),
            Err("expected a whole number, got a number (2.5)".into())
        );
        assert_eq!(
            Value::Number(7.0).coerce(FieldType::String),
            Ok(Typed::Category("7".into()))
        );
        assert_eq!(
            Value::Text("2026-03-02T10:00:00Z".into()).coerce(FieldType::Timestamp),
            Ok(Typed::Number(1_772_445_600.0))
        );
    }

    #[test]
    fn csv_cells() {
        assert_eq!(Value::from_csv(""), Value::Missing);
        assert_eq!(Value::from_csv("NaN"), Value::Missing);
        assert_eq!(Value::from_csv("4.5"), Value::Number(4.5));
        assert_eq!(Value::from_csv("FR"), Value::Text("FR".into()));
    }
}
