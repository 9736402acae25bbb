//! Form fields and the checking of answers against them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One form field. Deserializes from `{name, type, description, required, choices, default}`
/// where all but `name` are optional (`type` defaults to `string`, `required` to `true`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The key of the field's value in the answer's data.
    pub name: String,
    /// The type the answer must have.
    #[serde(rename = "type", default)]
    pub field_type: FieldType,
    /// Text shown next to the field.
    #[serde(default)]
    pub description: String,
    /// Whether an answer must carry this field.
    #[serde(default = "yes")]
    pub required: bool,
    /// If non-empty, the answer must be one of these values.
    #[serde(default)]
    pub choices: Vec<Value>,
    /// The value used when the answer leaves the field out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

fn yes() -> bool {
    true
}

/// The type of a form field, named as in the WIT (`"secure-string"`, `"date-time"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FieldType {
    #[default]
    String,
    SecureString,
    Boolean,
    Number,
    Integer,
    DateTime,
    Json,
}

impl Field {
    /// Checks one answered value against the field's type and choices, converting the text
    /// forms that form tools send (`"True"`, `"4096"`) to JSON booleans and numbers.
    /// The error names the field: `field n: expected an integer, got 1.5`.
    pub fn coerce(&self, value: &Value) -> Result<Value, String> {
        let converted = match (self.field_type, value) {
            (FieldType::String | FieldType::SecureString, Value::String(_)) => Some(value.clone()),
            (FieldType::Boolean, Value::Bool(_)) => Some(value.clone()),
            (FieldType::Boolean, Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            (FieldType::Number, Value::Number(_)) => Some(value.clone()),
            (FieldType::Number, Value::String(s)) => parse_number(s.trim()),
            (FieldType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Some(value.clone()),
            (FieldType::Integer, Value::String(s)) => s.trim().parse::<i64>().ok().map(Value::from),
            (FieldType::DateTime, Value::String(s)) => {
                OffsetDateTime::parse(s, &Rfc3339).is_ok().then(|| value.clone())
            }
            (FieldType::Json, _) => Some(value.clone()),
            _ => None,
        };
        let Some(converted) = converted else {
            // A secure string's value must never be echoed, so describe only its JSON type.
            let got = match self.field_type {
                FieldType::SecureString => json_type(value).to_owned(),
                _ => value.to_string(),
            };
            return Err(format!(
                "field {}: expected {}, got {got}",
                self.name,
                self.expected()
            ));
        };
        if !self.choices.is_empty() && !self.choices.iter().any(|c| same(c, &converted)) {
            let choices: Vec<String> = self.choices.iter().map(show).collect();
            return Err(format!(
                "field {}: must be one of {}",
                self.name,
                choices.join(", ")
            ));
        }
        Ok(converted)
    }

    fn expected(&self) -> &'static str {
        match self.field_type {
            FieldType::String | FieldType::SecureString => "a string",
            FieldType::Boolean => "a boolean (true/false)",
            FieldType::Number => "a number",
            FieldType::Integer => "an integer",
            FieldType::DateTime => "an RFC 3339 date-time such as 2026-11-22T10:00:00Z",
            FieldType::Json => "any JSON value",
        }
    }
}

/// Checks an answer's `data` against a form: every field is converted with
/// [`Field::coerce`], a missing field takes its default or, if required, is an error, and
/// fields the form does not have are errors. All problems are reported at once, joined by
/// `"; "`. Returns the converted values by field name.
pub fn read_answer(fields: &[Field], data: &Value) -> Result<Map<String, Value>, String> {
    let Value::Object(data) = data else {
        return Err(format!(
            "the answer must be a JSON object, got {}",
            json_type(data)
        ));
    };
    let mut values = Map::new();
    let mut problems = Vec::new();
    for field in fields {
        let value = match (data.get(&field.name), &field.default) {
            (Some(value), _) | (None, Some(value)) => value,
            (None, None) if field.required => {
                problems.push(format!("field {} is required", field.name));
                continue;
            }
            (None, None) => continue,
        };
        match field.coerce(value) {
            Ok(value) => {
                values.insert(field.name.clone(), value);
            }
            Err(problem) => problems.push(problem),
        }
    }
    for name in data.keys() {
        if !fields.iter().any(|f| &f.name == name) {
            let known: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
            problems.push(match known.is_empty() {
                true => format!("unknown field {name}; the form has no fields"),
                false => format!("unknown field {name}; the form has {}", known.join(", ")),
            });
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems.join("; "))
    }
}

/// Integers stay integers (`"4096"` becomes `4096`, not `4096.0`); NaN and infinities fail.
fn parse_number(text: &str) -> Option<Value> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::from(i));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

/// Equality that treats `4096` and `4096.0` as the same number.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// A choice as a person would type it: strings without quotes.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
