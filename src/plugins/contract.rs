//! A plugin's contract (`describe` of `weft:plugin@0.2.0`): its summary and the JSON Schemas
//! of its input, output and (targets) config, and the checking of inputs against them.
//!
//! Schemas are checked with the `jsonschema` crate (draft 2020-12, as the SDKs emit), built
//! once per plugin: only local `$ref`s resolve (nothing is ever fetched), `pattern` uses the
//! linear-time `regex` engine with a size cap, and a schema is at most
//! `limits.plugin_schema_kb` and `limits.nesting_depth` deep, so checking an input costs time
//! linear in the input and the schema. Every mismatch is reported with its path and in words
//! a workflow author can act on (`expect_status: expected an array of integers, got 201`).
//!
//! A step's input in a definition may hold templates (`"{{ inputs.codes }}"`), whose values
//! are known only once rendered: [`Contract::check_literal`] leaves out what depends on them,
//! and the host checks the rendered input again before every call.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{PatternOptions, Validator};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_template::Syntax;

/// Compiled size cap of one `pattern` regular expression, bytes.
const PATTERN_SIZE: usize = 1 << 20;
/// Bytes of an input value quoted in a mismatch.
const QUOTED: usize = 120;

/// What a plugin says about itself, as stored in its metadata and shown by the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Description {
    /// One line: what the plugin does.
    pub summary: String,
    /// JSON Schema of a step's input (a target's payload).
    #[schema(value_type = Object)]
    pub input_schema: Value,
    /// JSON Schema of a step's output (the payload a target returns).
    #[schema(value_type = Object)]
    pub output_schema: Value,
    /// Targets: JSON Schema of the target's `config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config_schema: Option<Value>,
}

/// One place where a value does not fit its schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Below the checked value: empty, or `.name`, `[0]`, `.items[2].x`.
    pub path: String,
    pub message: String,
}

/// Mismatches as one line: `expect_status: expected ...; url: required`.
pub fn describe_mismatches(mismatches: &[Mismatch], root: &str) -> String {
    mismatches
        .iter()
        .map(|m| format!("{root}{}: {}", m.path, m.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A description with its schemas compiled.
pub struct Contract {
    pub description: Description,
    input: Validator,
    config: Option<Validator>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Contract {
    /// Parses what `describe` returned (JSON texts) within the limits, and compiles it.
    pub fn from_texts(
        summary: String,
        input: &str,
        output: &str,
        config: Option<&str>,
        limits: &crate::limits::Limits,
    ) -> Result<Contract, String> {
        let parse = |what: &str, text: &str| -> Result<Value, String> {
            let max = limits.plugin_schema_kb << 10;
            if text.len() > max {
                return Err(format!(
                    "its {what} schema is {} KiB; at most {} KiB are accepted (limits.plugin_schema_kb)",
                    text.len() >> 10,
                    limits.plugin_schema_kb
                ));
            }
            crate::nesting::check(text, limits.nesting_depth)
                .map_err(|e| format!("its {what} schema: {e}"))?;
            serde_json::from_str(text).map_err(|e| format!("its {what} schema is not JSON: {e}"))
        };
        let description = Description {
            summary: crate::limits::clip(&summary),
            input_schema: parse("input", input)?,
            output_schema: parse("output", output)?,
            config_schema: config.map(|c| parse("config", c)).transpose()?,
        };
        Contract::new(description)
    }

    /// Compiles a description's schemas; an invalid schema is refused with the reason.
    pub fn new(description: Description) -> Result<Contract, String> {
        let input = compile("input", &description.input_schema)?;
        compile("output", &description.output_schema)?;
        let config = description
            .config_schema
            .as_ref()
            .map(|schema| compile("config", schema))
            .transpose()?;
        Ok(Contract {
            description,
            input,
            config,
        })
    }

    /// Every mismatch of a definition's step input, leaving out what templates decide.
    pub fn check_literal(&self, input: &Value) -> Vec<Mismatch> {
        mismatches(&self.input, &self.description.input_schema, input, true)
    }

    /// Every mismatch of a rendered step input.
    pub fn check(&self, input: &Value) -> Vec<Mismatch> {
        mismatches(&self.input, &self.description.input_schema, input, false)
    }

    /// Every mismatch of a target's config, if the plugin describes one.
    pub fn check_config(&self, config: &Value) -> Vec<Mismatch> {
        match (&self.config, &self.description.config_schema) {
            (Some(validator), Some(schema)) => mismatches(validator, schema, config, false),
            _ => Vec::new(),
        }
    }
}

fn compile(what: &str, schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_pattern_options(PatternOptions::regex().size_limit(PATTERN_SIZE))
        .build(schema)
        .map_err(|e| crate::limits::clip(&format!("its {what} schema is not a valid JSON Schema: {e}")))
}

/// The mismatches of `value`; with `literal`, those a template in `value` could still fix are
/// left out.
fn mismatches(validator: &Validator, schema: &Value, value: &Value, literal: bool) -> Vec<Mismatch> {
    let mut found = Vec::new();
    for error in validator.iter_errors(value) {
        if found.len() >= crate::workflow::MAX_PROBLEMS {
            break;
        }
        let pointer = error.instance_path().as_str().to_owned();
        let at = value.pointer(&pointer).unwrap_or(&Value::Null);
        let kind = error.kind();
        if literal && decided_by_template(at, kind) {
            continue;
        }
        let path = path_of(&pointer);
        let subschema = schema_at(schema, error.schema_path().as_str());
        match kind {
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                found.push(Mismatch {
                    path: format!("{path}{}", segment(name)),
                    message: "required, but missing".into(),
                });
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let known: Vec<String> = subschema
                    .and_then(|s| s.get("properties"))
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                for name in unexpected {
                    found.push(Mismatch {
                        path: format!("{path}{}", segment(name)),
                        message: if known.is_empty() {
                            "unknown field".into()
                        } else {
                            format!("unknown field; known fields: {}", known.join(", "))
                        },
                    });
                }
            }
            ValidationErrorKind::Type { .. } => found.push(Mismatch {
                path,
                message: format!(
                    "expected {}, got {}",
                    subschema.map_or_else(|| "another type".into(), |s| expected(s, schema, 0)),
                    quote(at)
                ),
            }),
            ValidationErrorKind::Enum { options } => found.push(Mismatch {
                path,
                message: format!("expected one of {}, got {}", list(options), quote(at)),
            }),
            ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
                found.push(Mismatch {
                    path,
                    message: format!(
                        "expected {}, got {}",
                        subschema.map_or_else(|| "another value".into(), |s| expected(s, schema, 0)),
                        quote(at)
                    ),
                })
            }
            _ => found.push(Mismatch {
                path,
                message: crate::limits::clip(&error.to_string()),
            }),
        }
    }
    found
}

/// Whether a template in `value` decides this error: the value is a template whose result is
/// not known yet, or a container holding one, checked by a keyword that looks at its contents.
fn decided_by_template(value: &Value, kind: &ValidationErrorKind) -> bool {
    match value {
        Value::String(text) if Syntax::Braces.has_expression(text) => {
            // A string with text around its expressions renders as a string: only its type is
            // known, and a type error is real.
            let renders_as_text = Syntax::Braces.single_expression(text).is_none();
            !(renders_as_text && matches!(kind, ValidationErrorKind::Type { .. }))
        }
        Value::Array(_) | Value::Object(_) => {
            let looks_inside = !matches!(
                kind,
                ValidationErrorKind::Type { .. }
                    | ValidationErrorKind::Required { .. }
                    | ValidationErrorKind::AdditionalProperties { .. }
                    | ValidationErrorKind::MinItems { .. }
                    | ValidationErrorKind::MaxItems { .. }
                    | ValidationErrorKind::MinProperties { .. }
                    | ValidationErrorKind::MaxProperties { .. }
            );
            looks_inside && holds_template(value)
        }
        _ => false,
    }
}

fn holds_template(value: &Value) -> bool {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(text) if Syntax::Braces.has_expression(text) => return true,
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    false
}

/// A JSON pointer (`/expect_status/0`) as a path (`.expect_status[0]`).
fn path_of(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|raw| raw.replace("~1", "/").replace("~0", "~"))
        .map(|part| match part.parse::<usize>() {
            Ok(index) => format!("[{index}]"),
            Err(_) => segment(&part),
        })
        .collect()
}

fn segment(name: &str) -> String {
    format!(".{name}")
}

/// The schema object holding the keyword at `keyword_path` (`/properties/a/type`).
fn schema_at<'s>(root: &'s Value, keyword_path: &str) -> Option<&'s Value> {
    let parent = keyword_path.rsplit_once('/').map_or("", |(parent, _)| parent);
    root.pointer(parent)
}

/// What a schema accepts, in words: `an array of integers`, `a string or null`.
fn expected(schema: &Value, root: &Value, depth: usize) -> String {
    let schema = resolve(schema, root);
    if depth > 3 {
        return "a value".into();
    }
    if let Some(options) = schema.get("enum") {
        return format!("one of {}", list(options));
    }
    if let Some(value) = schema.get("const") {
        return quote(value);
    }
    for combinator in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alternatives)) = schema.get(combinator) {
            let words: Vec<String> = alternatives
                .iter()
                .map(|a| expected(a, root, depth + 1))
                .collect();
            return words.join(" or ");
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return "a value of another shape".into(),
    };
    let words: Vec<String> = types
        .iter()
        .map(|t| match *t {
            "array" => match schema.get("items") {
                Some(items) if items.is_object() => {
                    format!("an array of {}", plural(&expected(items, root, depth + 1)))
                }
                _ => "an array".into(),
            },
            "string" => "a string".into(),
            "integer" => "an integer".into(),
            "number" => "a number".into(),
            "boolean" => "a boolean".into(),
            "object" => "an object".into(),
            "null" => "null".into(),
            other => other.to_owned(),
        })
        .collect();
    words.join(" or ")
}

/// Follows a local `$ref` (`#/$defs/Name`), once.
fn resolve<'s>(schema: &'s Value, root: &'s Value) -> &'s Value {
    match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        Some(pointer) => root.pointer(pointer).unwrap_or(schema),
        None => schema,
    }
}

/// `an integer` → `integers`, `a string or null` → `strings or nulls`.
fn plural(words: &str) -> String {
    words
        .split(" or ")
        .map(|w| {
            let w = w
                .strip_prefix("an ")
                .or_else(|| w.strip_prefix("a "))
                .unwrap_or(w);
            match w {
                "null" => "nulls".to_owned(),
                w if w.starts_with("array") => format!("arrays{}", &w[5..]),
                w => format!("{w}s"),
            }
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

fn list(options: &Value) -> String {
    match options {
        Value::Array(items) => items.iter().map(quote).collect::<Vec<_>>().join(", "),
        other => quote(other),
    }
}

fn quote(value: &Value) -> String {
    crate::limits::clip_to(&value.to_string(), QUOTED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contract(input: Value) -> Contract {
        Contract::new(Description {
            summary: "t".into(),
            input_schema: input,
            output_schema: json!({}),
            config_schema: None,
        })
        .unwrap()
    }

    fn http() -> Contract {
        contract(json!({
            "type": "object",
            "properties": {
                "url": {"type": "string"},
                "method": {"type": "string", "enum": ["GET", "POST"]},
                "expect_status": {"type": "array", "items": {"type": "integer", "format": "uint16"}},
                "retries": {"$ref": "#/$defs/Retries"},
                "when": {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}
            },
            "required": ["url"],
            "additionalProperties": false,
            "$defs": {"Retries": {"type": "integer", "minimum": 0}}
        }))
    }

    fn shown(found: Vec<Mismatch>) -> Vec<String> {
        found
            .iter()
            .map(|m| format!("{}: {}", m.path, m.message))
            .collect()
    }

    #[test]
    fn every_mismatch_is_named_with_its_path() {
        let found = http().check(&json!({"expect_status": 201, "method": "PUT", "extra": 1, "retries": "x"}));
        let found = shown(found);
        assert!(
            found.contains(&".expect_status: expected an array of integers, got 201".to_owned()),
            "{found:?}"
        );
        assert!(
            found.contains(&".url: required, but missing".to_owned()),
            "{found:?}"
        );
        assert!(
            found.contains(&".method: expected one of \"GET\", \"POST\", got \"PUT\"".to_owned()),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.starts_with(".extra: unknown field; known fields: ")),
            "{found:?}"
        );
        assert!(
            found.contains(&".retries: expected an integer, got \"x\"".to_owned()),
            "{found:?}"
        );
        assert_eq!(found.len(), 5, "{found:?}");
    }

    #[test]
    fn templates_are_left_to_the_rendered_check() {
        let c = http();
        let input = json!({"url": "{{ inputs.url }}", "expect_status": "{{ inputs.codes }}", "when": true});
        let found = shown(c.check_literal(&input));
        assert_eq!(
            found,
            vec![".when: expected an integer or a string or null, got true"]
        );
        // Text around an expression renders as a string, whose type is known.
        let found = shown(c.check_literal(&json!({"url": "x", "expect_status": "code {{ x }}"})));
        assert_eq!(
            found,
            vec![".expect_status: expected an array of integers, got \"code {{ x }}\""]
        );
        // Inside an array, an item that is a template is skipped; a literal item is not.
        let found = shown(c.check_literal(&json!({"url": "x", "expect_status": ["{{ a }}", "b"]})));
        assert_eq!(found, vec![".expect_status[1]: expected an integer, got \"b\""]);
    }

    #[test]
    fn schemas_are_bounded_and_checked() {
        let limits = crate::limits::Limits {
            plugin_schema_kb: 1,
            ..Default::default()
        };
        let big = format!("{{\"description\": \"{}\"}}", "x".repeat(2000));
        let err = Contract::from_texts("s".into(), &big, "{}", None, &limits).unwrap_err();
        assert!(err.contains("limits.plugin_schema_kb"), "{err}");
        let err =
            Contract::from_texts("s".into(), "{\"type\": 5}", "{}", None, &Default::default()).unwrap_err();
        assert!(err.contains("not a valid JSON Schema"), "{err}");
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let err = Contract::from_texts("s".into(), &deep, "{}", None, &Default::default()).unwrap_err();
        assert!(err.contains("input schema"), "{err}");
    }
}
