//! Request bodies from the systems Weft imitates, turned into plain JSON: vRO's
//! ExecutionContext `parameters[]` (plain values or vRO's typed wrappers), a plain
//! `{"input": {...}}`, and SecMaster's `playbook_context`.

use super::error::ApiError;
use serde_json::{Map, Value};

/// The inputs of a start request, in any of the accepted shapes. `{}` means no inputs.
pub fn start_inputs(body: &Value) -> Result<Map<String, Value>, ApiError> {
    let Some(body) = body.as_object() else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object: {\"input\": {...}}, vRO's {\"parameters\": [...]} or SecMaster's {\"playbook_context\": ...}",
        ));
    };
    if let Some(parameters) = body.get("parameters") {
        return execution_context(parameters);
    }
    if let Some(input) = body.get("input") {
        return input
            .as_object()
            .cloned()
            .ok_or_else(|| ApiError::bad_request("`input` must be a JSON object of input names to values"));
    }
    if let Some(context) = body.get("playbook_context") {
        return playbook_context(context);
    }
    if body.keys().all(|k| IGNORED_KEYS.contains(&k.as_str())) {
        return Ok(Map::new());
    }
    Err(ApiError::bad_request(format!(
        "unrecognized body with keys {}: send {{\"input\": {{...}}}}, vRO's {{\"parameters\": [...]}} or SecMaster's {{\"playbook_context\": ...}}",
        body.keys().cloned().collect::<Vec<_>>().join(", ")
    )))
}

/// Keys of vRO and SecMaster bodies that carry no inputs.
const IGNORED_KEYS: &[&str] = &[
    "executionId",
    "profilerOptions",
    "command_type",
    "action_type",
    "action_id",
    "action_instance_id",
];

/// vRO's `parameters: [{name, type, value}]` as a map of names to plain values. A parameter
/// without a value is left out.
pub fn execution_context(parameters: &Value) -> Result<Map<String, Value>, ApiError> {
    let list = parameters
        .as_array()
        .ok_or_else(|| ApiError::bad_request("`parameters` must be an array of {name, type, value}"))?;
    let mut values = Map::new();
    for (i, parameter) in list.iter().enumerate() {
        let name = parameter
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "parameters[{i}].name: missing; every parameter needs a name"
                ))
            })?;
        if let Some(value) = parameter.get("value") {
            let plain = unwrap_vro(value)
                .map_err(|m| ApiError::bad_request(format!("parameters[{i}].value: {m}")))?;
            values.insert(name.to_owned(), plain);
        }
    }
    Ok(values)
}

/// vRO's typed wrapper (`{"string":{"value":"x"}}`, `{"array":{"elements":[...]}}`, ...) as
/// a plain value; anything else is taken as already plain.
fn unwrap_vro(value: &Value) -> Result<Value, String> {
    let Some((kind, inner)) = value
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
    else {
        return Ok(value.clone());
    };
    match kind.as_str() {
        "string" | "secure-string" | "number" | "boolean" | "date" | "sdk-object" | "encrypted-string" => {
            inner
                .get("value")
                .cloned()
                .ok_or_else(|| format!("a {kind} wrapper needs a `value`"))
        }
        "array" => inner
            .get("elements")
            .and_then(Value::as_array)
            .ok_or_else(|| "an array wrapper needs `elements`".to_owned())?
            .iter()
            .map(unwrap_vro)
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        "properties" => properties(inner),
        _ => Ok(value.clone()),
    }
}

/// vRO properties: either `{"property": [{"key", "value"}]}` or a plain object.
fn properties(inner: &Value) -> Result<Value, String> {
    match inner.get("property").and_then(Value::as_array) {
        Some(list) => {
            let mut map = Map::new();
            for entry in list {
                let key = entry
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| "a property needs a `key`".to_owned())?;
                let value = entry
                    .get("value")
                    .map(unwrap_vro)
                    .transpose()?
                    .unwrap_or(Value::Null);
                map.insert(key.to_owned(), value);
            }
            Ok(Value::Object(map))
        }
        None => Ok(inner.clone()),
    }
}

/// SecMaster's `playbook_context.data_object`: its `content` fields become inputs, and its
/// `dataclass` is passed as the `dataclass` input.
fn playbook_context(context: &Value) -> Result<Map<String, Value>, ApiError> {
    let data = context.get("data_object").unwrap_or(context);
    let mut inputs = match data.get("content") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(content)) => content.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "playbook_context.data_object.content must be an object",
            ))
        }
    };
    if let Some(dataclass) = data.get("dataclass") {
        inputs.insert("dataclass".to_owned(), dataclass.clone());
    }
    Ok(inputs)
}

/// The body of a start: JSON in any of the accepted shapes ([`start_inputs`]), with the
/// inputs read from it. No body, or `{}`, starts without inputs.
pub struct StartBody {
    /// The body as sent.
    pub body: serde_json::Value,
    pub inputs: serde_json::Map<String, serde_json::Value>,
}

impl StartBody {
    pub fn parse(bytes: &[u8]) -> Result<StartBody, ApiError> {
        let body = super::json_or_empty(bytes)?;
        let inputs = start_inputs(&body)?;
        Ok(StartBody { body, inputs })
    }
}

/// The shapes [`StartBody`] accepts, as one object whose properties are all optional: the
/// first of `parameters`, `input` and `playbook_context` present is read.
impl utoipa::PartialSchema for StartBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let any_object = || ObjectBuilder::new().schema_type(Type::Object);
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "{\"input\": {...}}, vRO's ExecutionContext {\"parameters\": [...]}, or SecMaster's \
                 {\"command_type\": ..., \"playbook_context\": {\"data_object\": {\"content\": {...}}}}",
            ))
            .property("input", any_object().description(Some("Input names to values")))
            .property(
                "parameters",
                parameters().description(Some("vRO's ExecutionContext parameters")),
            )
            .property(
                "playbook_context",
                any_object().description(Some(
                    "SecMaster: data_object.content becomes the inputs, data_object.dataclass the `dataclass` input",
                )),
            )
            .property("executionId", ObjectBuilder::new().description(Some("vRO; ignored")))
            .property("profilerOptions", ObjectBuilder::new().description(Some("vRO; ignored")))
            .property("command_type", ObjectBuilder::new().description(Some("SecMaster; ignored")))
            .property("action_type", ObjectBuilder::new().description(Some("SecMaster; ignored")))
            .property("action_id", ObjectBuilder::new().description(Some("SecMaster; ignored")))
            .property(
                "action_instance_id",
                ObjectBuilder::new().description(Some("SecMaster; ignored")),
            )
            .into()
    }
}

impl utoipa::ToSchema for StartBody {}

/// vRO's `parameters: [{name, type, value}]`.
fn parameters() -> utoipa::openapi::schema::ArrayBuilder {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let parameter = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "name",
            ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)),
        )
        .required("name")
        .property("type", ObjectBuilder::new().schema_type(Type::String))
        .property(
            "value",
            ObjectBuilder::new().description(Some(
                "A plain value, or vRO's typed wrapper such as {\"string\": {\"value\": \"x\"}}",
            )),
        );
    ArrayBuilder::new().items(parameter)
}

/// The answer to an interaction: vRO's ExecutionContext (`{"parameters": [...]}`); `{}` or
/// no body answers with no values, so defaults apply.
pub struct AnswerBody {
    pub data: Map<String, Value>,
}

impl AnswerBody {
    pub fn parse(bytes: &[u8]) -> Result<AnswerBody, ApiError> {
        let body = super::json_or_empty(bytes)?;
        let data = match body.get("parameters") {
            Some(parameters) => execution_context(parameters)?,
            None => Map::new(),
        };
        Ok(AnswerBody { data })
    }
}

impl utoipa::PartialSchema for AnswerBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "parameters",
                parameters().description(Some("The answer's fields")),
            )
            .into()
    }
}

impl utoipa::ToSchema for AnswerBody {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vro_wrappers_become_plain_values() {
        let body = json!({"parameters": [
            {"name": "cn", "type": "string", "value": {"string": {"value": "web01"}}},
            {"name": "n", "type": "number", "value": {"number": {"value": 3}}},
            {"name": "ok", "type": "boolean", "value": {"boolean": {"value": true}}},
            {"name": "list", "type": "Array/string", "value": {"array": {"elements": [{"string": {"value": "a"}}]}}},
            {"name": "pw", "type": "SecureString", "value": {"secure-string": {"value": "s3cret"}}},
            {"name": "plain", "type": "string", "value": "x"},
            {"name": "unset", "type": "string"}
        ]});
        let inputs = start_inputs(&body).unwrap();
        assert_eq!(
            Value::Object(inputs),
            json!({"cn": "web01", "n": 3, "ok": true, "list": ["a"], "pw": "s3cret", "plain": "x"})
        );
    }

    #[test]
    fn secmaster_content_and_dataclass_become_inputs() {
        let body = json!({"command_type": "ActionInstanceRunCommand", "action_type": "workflow",
            "playbook_context": {"data_object": {"dataclass": {"name": "Alert"}, "content": {"name": {}, "key": {}}}}});
        let inputs = start_inputs(&body).unwrap();
        assert_eq!(
            Value::Object(inputs),
            json!({"name": {}, "key": {}, "dataclass": {"name": "Alert"}})
        );
    }
}
