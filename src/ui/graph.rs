//! A run's step graph as inline SVG, drawn on the server: steps top to bottom by how deep
//! they are in the `needs` graph, side by side when they may run at once, each box coloured
//! by its state and labelled with it (so the state never rests on colour alone).

use crate::limits::GRAPH_STEPS;
use crate::run::RunRecord;
use crate::workflow::Workflow;
use std::fmt::Write as _;

const BOX_W: usize = 200;
const BOX_H: usize = 52;
const GAP_X: usize = 28;
const GAP_Y: usize = 44;
const MARGIN: usize = 8;

/// Escapes text for SVG (XML).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How deep each step is: 0 without `needs`, else one more than the deepest it needs.
/// `needs` is acyclic (validation refuses cycles); steps are visited in dependency order.
fn depths(needs: &[Vec<usize>]) -> Vec<usize> {
    let n = needs.len();
    let mut depth = vec![0; n];
    let mut left: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); n];
    for (i, deps) in needs.iter().enumerate() {
        for &d in deps {
            dependents[d].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| left[i] == 0).collect();
    while let Some(i) = ready.pop() {
        for &j in &dependents[i] {
            depth[j] = depth[j].max(depth[i] + 1);
            left[j] -= 1;
            if left[j] == 0 {
                ready.push(j);
            }
        }
    }
    depth
}

/// The graph of `run` (a run of `workflow`), or an empty string for a workflow of more than
/// [`GRAPH_STEPS`] steps.
pub(super) fn svg(workflow: &Workflow, run: &RunRecord) -> String {
    let steps = &workflow.steps;
    if steps.is_empty() || steps.len() > GRAPH_STEPS {
        return String::new();
    }
    let needs: Vec<Vec<usize>> = steps.iter().map(|s| s.needs.clone()).collect();
    let depth = depths(&needs);
    let rows = depth.iter().max().map_or(1, |d| d + 1);
    let mut row_members = vec![Vec::new(); rows];
    for (i, d) in depth.iter().enumerate() {
        row_members[*d].push(i);
    }
    let widest = row_members.iter().map(Vec::len).max().unwrap_or(1);
    let width = 2 * MARGIN + widest * BOX_W + (widest - 1) * GAP_X;
    let height = 2 * MARGIN + rows * BOX_H + (rows - 1) * GAP_Y;
    let mut at = vec![(0usize, 0usize); steps.len()];
    for (r, members) in row_members.iter().enumerate() {
        let row_width = members.len() * BOX_W + (members.len() - 1) * GAP_X;
        let left = (width - row_width) / 2;
        for (k, &i) in members.iter().enumerate() {
            at[i] = (left + k * (BOX_W + GAP_X), MARGIN + r * (BOX_H + GAP_Y));
        }
    }
    let state_of = |i: usize| {
        run.steps
            .iter()
            .find(|s| s.name == steps[i].name)
            .and_then(|s| {
                serde_json::to_value(s.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
            })
            .unwrap_or_else(|| "pending".to_owned())
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="graph-title"><title id="graph-title">Step graph of {} v{}: {} steps</title>"#,
        escape(&run.workflow.id),
        run.workflow.version,
        steps.len()
    );
    out.push_str(r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrow"/></marker></defs>"#);
    for (i, deps) in needs.iter().enumerate() {
        for &d in deps {
            let (x1, y1) = (at[d].0 + BOX_W / 2, at[d].1 + BOX_H);
            let (x2, y2) = (at[i].0 + BOX_W / 2, at[i].1);
            let bend = GAP_Y / 2;
            let _ = write!(
                out,
                r#"<path class="edge" d="M {x1} {y1} C {x1} {} {x2} {} {x2} {}" marker-end="url(#arrow)"/>"#,
                y1 + bend,
                y2.saturating_sub(bend),
                y2.saturating_sub(2)
            );
        }
    }
    for (i, step) in steps.iter().enumerate() {
        let (x, y) = at[i];
        let state = state_of(i);
        let name = step.name.as_str();
        let label = if name.chars().count() > 24 {
            format!("{}…", name.chars().take(22).collect::<String>())
        } else {
            name.to_owned()
        };
        let _ = write!(
            out,
            r##"<a href="#step-{id}"><g class="node st-{state}"><title>{full}: {state}</title><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8"/><text x="{tx}" y="{ty1}" class="name">{label}</text><text x="{tx}" y="{ty2}" class="state">{state}</text></g></a>"##,
            id = escape(name),
            full = escape(name),
            label = escape(&label),
            tx = x + BOX_W / 2,
            ty1 = y + 22,
            ty2 = y + 40,
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_the_longest_chain_of_needs() {
        // 0 -> 1 -> 3, 0 -> 2 -> 3, 4 alone.
        let needs = vec![vec![], vec![0], vec![0], vec![1, 2], vec![]];
        assert_eq!(depths(&needs), vec![0, 1, 1, 2, 0]);
        // Needs may point forward in the list.
        assert_eq!(depths(&[vec![1], vec![]]), vec![1, 0]);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
