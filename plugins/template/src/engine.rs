//! The minijinja engine behind [`Templates`]: rendering, evaluation and the names an
//! expression reads. Compiled only into WebAssembly components (feature `engine`).

use crate::{walk, Syntax, TemplateError};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// Instructions one render or evaluation may spend before it is stopped.
const FUEL: u64 = 200_000;

/// Renders JSON templates and evaluates expressions with one syntax.
pub struct Templates {
    env: Environment<'static>,
    syntax: Syntax,
}

impl Templates {
    pub fn new(syntax: Syntax) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        if syntax != Syntax::Braces {
            let (start, end) = syntax.delimiters();
            let config = SyntaxConfig::builder()
                .variable_delimiters(start, end)
                .build()
                .expect("static delimiters are valid");
            env.set_syntax(config);
        }
        Templates { env, syntax }
    }

    /// Renders every string in `template` against `context`.
    pub fn render(&self, template: &Value, context: &Value) -> Result<Value, TemplateError> {
        walk(template, &mut |path, text| {
            self.render_str(text, context).map_err(|message| TemplateError {
                path: path.to_owned(),
                message,
            })
        })
    }

    /// Evaluates a bare expression (`steps.Check.output.ok and inputs.force`) to JSON.
    pub fn eval(&self, expression: &str, context: &Value) -> Result<Value, String> {
        let compiled = self
            .env
            .compile_expression(expression)
            .map_err(|e| describe(&e))?;
        let value = compiled.eval(context).map_err(|e| describe(&e))?;
        to_json(&value)
    }

    /// Evaluates a bare expression for its truth (`when` conditions).
    pub fn is_true(&self, expression: &str, context: &Value) -> Result<bool, String> {
        let compiled = self
            .env
            .compile_expression(expression)
            .map_err(|e| describe(&e))?;
        Ok(compiled.eval(context).map_err(|e| describe(&e))?.is_true())
    }

    /// Checks the syntax of every string in `template` and returns, per string, the dotted
    /// names it reads (`inputs.cn`, `steps.Csr.output.pem`), so a caller can check them.
    pub fn references(&self, template: &Value) -> Result<Vec<(String, Vec<String>)>, Vec<TemplateError>> {
        let mut found = Vec::new();
        let mut errors = Vec::new();
        let _ = walk::<()>(template, &mut |path, text| {
            match self.names_in(text) {
                Ok(names) if !names.is_empty() => found.push((path.to_owned(), names)),
                Ok(_) => {}
                Err(message) => errors.push(TemplateError {
                    path: path.to_owned(),
                    message,
                }),
            }
            Ok(Value::Null)
        });
        if errors.is_empty() {
            Ok(found)
        } else {
            Err(errors)
        }
    }

    /// The dotted names a bare expression reads, or its syntax error.
    pub fn expression_references(&self, expression: &str) -> Result<Vec<String>, String> {
        let compiled = self
            .env
            .compile_expression(expression)
            .map_err(|e| describe(&e))?;
        Ok(sorted(compiled.undeclared_variables(true)))
    }

    fn names_in(&self, text: &str) -> Result<Vec<String>, String> {
        if let Some(expression) = self.single_expression(text) {
            return self.expression_references(expression);
        }
        if !self.has_expression(text) {
            return Ok(Vec::new());
        }
        let template = self.env.template_from_str(text).map_err(|e| describe(&e))?;
        Ok(sorted(template.undeclared_variables(true)))
    }

    fn render_str(&self, text: &str, context: &Value) -> Result<Value, String> {
        if let Some(expression) = self.single_expression(text) {
            return self.eval(expression, context);
        }
        if !self.has_expression(text) {
            return Ok(Value::String(text.to_owned()));
        }
        self.env
            .render_str(text, context)
            .map(Value::String)
            .map_err(|e| describe(&e))
    }

    fn has_expression(&self, text: &str) -> bool {
        self.syntax.has_expression(text)
    }

    fn single_expression<'t>(&self, text: &'t str) -> Option<&'t str> {
        self.syntax.single_expression(text)
    }
}

fn to_json(value: &minijinja::Value) -> Result<Value, String> {
    if value.is_undefined() {
        return Err("undefined value: the expression names something that does not exist".into());
    }
    serde_json::to_value(value).map_err(|e| format!("the result is not JSON: {e}"))
}

fn sorted(names: std::collections::HashSet<String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names
}

/// minijinja's message plus its detail, without the template-name noise.
fn describe(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.to_string(),
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_expression_keeps_its_type() {
        let t = Templates::new(Syntax::Braces);
        let ctx = json!({"inputs": {"n": 3, "cn": "web01"}});
        let out = t
            .render(
                &json!({"n": "{{ inputs.n }}", "s": "CN={{ inputs.cn }}", "k": true}),
                &ctx,
            )
            .unwrap();
        assert_eq!(out, json!({"n": 3, "s": "CN=web01", "k": true}));
    }

    #[test]
    fn undefined_names_fail_with_their_path() {
        let t = Templates::new(Syntax::Braces);
        let err = t.render(&json!({"a": ["{{ nope.x }}"]}), &json!({})).unwrap_err();
        assert_eq!(err.path, "a[0]");
    }

    #[test]
    fn dollar_syntax_leaves_braces_alone() {
        let t = Templates::new(Syntax::Dollar);
        let out = t.render(&json!("${ cn | upper }"), &json!({"cn": "x"})).unwrap();
        assert_eq!(out, json!("X"));
    }

    #[test]
    fn references_are_dotted_paths() {
        let t = Templates::new(Syntax::Braces);
        let refs = t
            .references(&json!({"a": "{{ steps.A.output.x }}-{{ inputs.cn }}"}))
            .unwrap();
        assert_eq!(refs[0].0, "a");
        assert!(refs[0].1.contains(&"inputs.cn".to_string()), "{refs:?}");
    }
}
