//! The host's template engine as a component: `weft:templates/engine` over
//! [`weft_template::Templates`] with the `{{ }}` syntax. The host calls it in a fresh sandbox
//! for every evaluation, so a template's work is bounded by the sandbox's deadline and memory
//! cap, not by what minijinja's fuel counts.

wit_bindgen::generate!({
    world: "template-engine",
    path: "wit",
});

use exports::weft::templates::engine::{Guest, Names, Problem, Source};
use serde_json::Value;
use weft_template::{Syntax, TemplateError, Templates};

struct Engine;

fn parse(what: &str, json: &str) -> Result<Value, Problem> {
    serde_json::from_str(json).map_err(|e| Problem {
        path: String::new(),
        message: format!("the {what} is not JSON: {e}"),
    })
}

fn problem(e: TemplateError) -> Problem {
    Problem {
        path: e.path,
        message: e.message,
    }
}

impl Guest for Engine {
    fn references(sources: Vec<Source>) -> Vec<Result<Vec<Names>, Vec<Problem>>> {
        let templates = Templates::new(Syntax::Braces);
        sources
            .into_iter()
            .enumerate()
            .map(|(i, source)| {
                weft::templates::progress::reading(i as u32);
                source
            })
            .map(|source| match source {
                Source::Template(json) => {
                    let template = parse("template", &json).map_err(|p| vec![p])?;
                    let found = templates
                        .references(&template)
                        .map_err(|errors| errors.into_iter().map(problem).collect::<Vec<_>>())?;
                    Ok(found
                        .into_iter()
                        .map(|(path, names)| Names { path, names })
                        .collect())
                }
                Source::Expression(expression) => match templates.expression_references(&expression) {
                    Ok(names) => Ok(vec![Names {
                        path: String::new(),
                        names,
                    }]),
                    Err(message) => Err(vec![Problem {
                        path: String::new(),
                        message,
                    }]),
                },
            })
            .collect()
    }

    fn render(template: String, context: String) -> Result<String, Problem> {
        let template = parse("template", &template)?;
        let context = parse("context", &context)?;
        let rendered = Templates::new(Syntax::Braces)
            .render(&template, &context)
            .map_err(problem)?;
        Ok(rendered.to_string())
    }

    fn is_true(expression: String, context: String) -> Result<bool, String> {
        let context = parse("context", &context).map_err(|p| p.message)?;
        Templates::new(Syntax::Braces).is_true(&expression, &context)
    }
}

export!(Engine);
