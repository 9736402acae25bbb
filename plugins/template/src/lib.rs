//! JSON templates: a JSON value whose strings may hold minijinja expressions.
//!
//! The Weft host renders every step's `input` and the workflow's `outputs` with
//! [`Syntax::Braces`] (`{{ inputs.cn }}`); the `transform` plugin renders its own `template`
//! with [`Syntax::Dollar`] (`${ cn }`) so that its expressions survive the host's pass.
//!
//! A string that is exactly one expression keeps the expression's JSON type
//! (`"{{ inputs.count }}"` renders to `3`, not `"3"`); any other string containing an
//! expression is rendered as text. Rendering is strict: an undefined name is an error, never an
//! empty string.
//!
//! This crate has two halves. The part always compiled knows the syntax without evaluating
//! anything: it walks templates, and it answers the two cases that need no engine (a literal
//! string, and a single expression that only looks a value up, such as
//! `{{ steps.A.output.items[0] }}`), which cannot build anything larger than what exists. The
//! `engine` feature adds minijinja for everything else; only WebAssembly components enable it,
//! so every expression that can compute runs inside the host's sandbox, under its deadline and
//! memory cap.

#[cfg(feature = "engine")]
mod engine;
#[cfg(feature = "engine")]
pub use engine::Templates;

use serde_json::Value;
use std::fmt;

/// Which delimiters mark an expression inside a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// `{{ expr }}`, used by workflow definitions.
    Braces,
    /// `${ expr }`, used inside the `transform` plugin's template.
    Dollar,
}

impl Syntax {
    pub fn delimiters(self) -> (&'static str, &'static str) {
        match self {
            Syntax::Braces => ("{{", "}}"),
            Syntax::Dollar => ("${", "}"),
        }
    }

    /// Whether `text` holds an expression or a statement at all.
    pub fn has_expression(self, text: &str) -> bool {
        text.contains(self.delimiters().0) || text.contains("{%")
    }

    /// The inner expression when `text` is exactly one expression and nothing else.
    pub fn single_expression(self, text: &str) -> Option<&str> {
        let (start, end) = self.delimiters();
        let inner = text.trim().strip_prefix(start)?.strip_suffix(end)?;
        (!inner.contains(start) && !inner.contains(end)).then_some(inner.trim())
    }
}

/// A problem found at one place in a JSON template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Where, as a path below the template's root (`cn`, `sans[1]`); empty for the root.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for TemplateError {}

/// Applies `leaf` to every string in `value`, rebuilding the value around the results. Paths
/// are `key.sub[2]`, empty for the root. Iterative: a deeply nested template cannot exhaust
/// the stack.
pub fn walk<E>(
    value: &Value,
    leaf: &mut dyn FnMut(&str, &str) -> Result<Value, E>,
) -> Result<Value, E> {
    enum Frame<'a> {
        Array(std::slice::Iter<'a, Value>, Vec<Value>, String, usize),
        Object(serde_json::map::Iter<'a>, serde_json::Map<String, Value>, String, Option<String>),
    }
    fn child(parent: &str, key: &str) -> String {
        if parent.is_empty() {
            key.to_owned()
        } else {
            format!("{parent}.{key}")
        }
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut next: Option<(&Value, String)> = Some((value, String::new()));
    loop {
        // Descend into the next value, or finish a leaf.
        let mut done = match next.take() {
            Some((Value::String(text), path)) => Some(leaf(&path, text)?),
            Some((Value::Array(items), path)) => {
                stack.push(Frame::Array(items.iter(), Vec::with_capacity(items.len()), path, 0));
                None
            }
            Some((Value::Object(fields), path)) => {
                stack.push(Frame::Object(fields.iter(), serde_json::Map::new(), path, None));
                None
            }
            Some((other, _)) => Some(other.clone()),
            None => None,
        };
        // Hand a finished value to its parent, and find the parent's next child.
        loop {
            let Some(frame) = stack.last_mut() else {
                return Ok(done.unwrap_or(Value::Null));
            };
            match frame {
                Frame::Array(items, out, path, index) => {
                    if let Some(value) = done.take() {
                        out.push(value);
                        *index += 1;
                    }
                    if let Some(item) = items.next() {
                        next = Some((item, format!("{path}[{index}]")));
                        break;
                    }
                    let Some(Frame::Array(_, out, ..)) = stack.pop() else {
                        unreachable!()
                    };
                    done = Some(Value::Array(out));
                }
                Frame::Object(fields, out, path, key) => {
                    if let (Some(value), Some(k)) = (done.take(), key.take()) {
                        out.insert(k, value);
                    }
                    if let Some((k, item)) = fields.next() {
                        next = Some((item, child(path, k)));
                        *key = Some(k.clone());
                        break;
                    }
                    let Some(Frame::Object(_, out, ..)) = stack.pop() else {
                        unreachable!()
                    };
                    done = Some(Value::Object(out));
                }
            }
        }
    }
}

/// One step of a lookup path: `.name`, `["name"]` or `[3]`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment<'a> {
    Attribute(&'a str),
    Item(&'a str),
    Index(usize),
}

/// Parses an expression that only looks a value up (`inputs.cn`, `steps.A.output["x-y"][0]`).
/// Anything else (a filter, an operator, a call, a literal) is `None`.
fn lookup_path(expression: &str) -> Option<Vec<Segment<'_>>> {
    let text = expression.trim();
    let ident_end = |s: &str| {
        s.char_indices()
            .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
            .map_or(s.len(), |(i, _)| i)
    };
    let first = ident_end(text);
    if first == 0 {
        return None;
    }
    let mut segments = vec![Segment::Attribute(&text[..first])];
    let mut rest = &text[first..];
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = ident_end(after);
            if end == 0 {
                return None;
            }
            segments.push(Segment::Attribute(&after[..end]));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']')?;
            let inner = &after[..close];
            let quoted = |q: char| inner.strip_prefix(q).and_then(|s| s.strip_suffix(q));
            if let Some(key) = quoted('"').or_else(|| quoted('\'')) {
                if key.contains(['"', '\'', '\\']) {
                    return None;
                }
                segments.push(Segment::Item(key));
            } else if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) && inner.len() < 10 {
                segments.push(Segment::Index(inner.parse().ok()?));
            } else {
                return None;
            }
            rest = &after[close + 1..];
        } else {
            return None;
        }
    }
    // Words with a meaning of their own in minijinja are not lookups.
    match segments[0] {
        Segment::Attribute("true" | "false" | "none" | "True" | "False" | "None" | "not" | "loop") => None,
        _ => Some(segments),
    }
}

/// The value `expression` looks up in `context`, when the expression is a plain lookup and
/// the value exists. `None` means the template engine must decide (it gives the same value,
/// or the error for a missing one).
pub fn look_up<'c>(expression: &str, context: &'c Value) -> Option<&'c Value> {
    let mut value = context;
    for segment in lookup_path(expression)? {
        value = match (segment, value) {
            (Segment::Attribute(key) | Segment::Item(key), Value::Object(fields)) => fields.get(key)?,
            (Segment::Index(i), Value::Array(items)) => items.get(i)?,
            _ => return None,
        };
    }
    Some(value)
}

/// The dotted name a plain lookup reads (`steps.A.output` for `steps.A.output[0]`), as the
/// template engine reports it: attributes up to the first subscript. `None` when the
/// expression is not a plain lookup.
pub fn lookup_name(expression: &str) -> Option<String> {
    let names: Vec<&str> = lookup_path(expression)?
        .into_iter()
        .map_while(|segment| match segment {
            Segment::Attribute(name) => Some(name),
            _ => None,
        })
        .collect();
    Some(names.join("."))
}

/// The names each string of `template` reads, as the template engine reports them (path,
/// dotted names), when every string is a literal or a plain lookup; `None` otherwise.
pub fn names_without_engine(template: &Value, syntax: Syntax) -> Option<Vec<(String, Vec<String>)>> {
    let mut found = Vec::new();
    walk(template, &mut |path, text| {
        if let Some(expression) = syntax.single_expression(text) {
            let name = lookup_name(expression).ok_or(())?;
            found.push((path.to_owned(), vec![name]));
        } else if syntax.has_expression(text) {
            return Err(());
        }
        Ok(Value::Null)
    })
    .ok()?;
    Some(found)
}

/// Renders `template` without an engine when every string in it is a literal or a plain
/// lookup of a value that exists. `None` when any string needs the engine.
pub fn render_without_engine(template: &Value, context: &Value, syntax: Syntax) -> Option<Value> {
    walk(template, &mut |_, text| {
        if let Some(expression) = syntax.single_expression(text) {
            return look_up(expression, context).cloned().ok_or(());
        }
        if syntax.has_expression(text) {
            return Err(());
        }
        Ok(Value::String(text.to_owned()))
    })
    .ok()
}

/// The truth of `expression` without an engine, when it is a plain lookup of a value that
/// exists; minijinja's rules: false, null, 0, "", [] and {} are false.
pub fn is_true_without_engine(expression: &str, context: &Value) -> Option<bool> {
    Some(match look_up(expression, context)? {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_lookups_need_no_engine() {
        let ctx = json!({"inputs": {"n": 3, "cn": "web01"}, "steps": {"A": {"output": {"x-y": [1, 2]}}}});
        let out = render_without_engine(
            &json!({"n": "{{ inputs.n }}", "k": true, "s": "plain", "v": "{{ steps.A.output['x-y'][1] }}"}),
            &ctx,
            Syntax::Braces,
        );
        assert_eq!(out, Some(json!({"n": 3, "k": true, "s": "plain", "v": 2})));
        assert_eq!(render_without_engine(&json!("CN={{ inputs.cn }}"), &ctx, Syntax::Braces), None);
        assert_eq!(render_without_engine(&json!("{{ inputs.cn | upper }}"), &ctx, Syntax::Braces), None);
        assert_eq!(render_without_engine(&json!("{{ inputs.nope }}"), &ctx, Syntax::Braces), None);
        assert_eq!(is_true_without_engine("inputs.n", &ctx), Some(true));
        assert_eq!(is_true_without_engine("inputs.n > 2", &ctx), None);
        assert_eq!(is_true_without_engine("true", &ctx), None);
    }

    #[test]
    fn lookup_name_is_dotted() {
        assert_eq!(lookup_name("steps.A.output[0].x").as_deref(), Some("steps.A.output"));
        assert_eq!(lookup_name("inputs.cn").as_deref(), Some("inputs.cn"));
        assert_eq!(lookup_name("inputs['cn']").as_deref(), Some("inputs"));
        assert_eq!(lookup_name("inputs.cn ~ 'x'"), None);
    }

    #[test]
    fn walking_a_deep_template_does_not_recurse() {
        let mut deep = json!("leaf");
        for _ in 0..3_000 {
            deep = Value::Array(vec![deep]);
        }
        let mut leaves = 0;
        let copy = walk::<()>(&deep, &mut |path, t| {
            leaves += 1;
            assert!(path.starts_with("[0][0]"));
            Ok(Value::String(t.to_owned()))
        })
        .unwrap();
        assert_eq!(leaves, 1);
        assert!(copy.is_array());
        // Dropping (or comparing) a deep serde_json value recurses; leak both instead.
        std::mem::forget(deep);
        std::mem::forget(copy);
    }
}
