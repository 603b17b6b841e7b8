//! Graphviz DOT export, for looking at a graph.
//!
//! The output is deterministic: nodes are named `n0, n1, ...` by their position in
//! [`Graph::canonical_order`] (node-index order for a graph with a cycle), so it does not depend on
//! insertion order or removed node ids. Inputs are ellipses, constants grey boxes (name and type,
//! never data), op nodes boxes labelled with the op name, the node's label and its non-default
//! attributes, and outputs `house` sink nodes. Edges carry the type of the value they carry.

use crate::{Graph, NodeId, NodeKind, Value};
use petgraph::visit::NodeIndexable;
use std::fmt::Write;

/// The graph as a Graphviz `digraph`.
pub fn to_dot(graph: &Graph) -> String {
    let order: Vec<NodeId> = graph.canonical_order().unwrap_or_else(|_| {
        let mut order = graph.inputs().to_vec();
        order.extend(graph.node_ids().filter(|id| !graph.inputs().contains(id)));
        order
    });
    let mut dot_idx = vec![usize::MAX; graph.petgraph().node_bound()];
    for (idx, id) in order.iter().enumerate() {
        dot_idx[id.index()] = idx;
    }

    let mut out = String::from("digraph ");
    out.push_str(&quote(&graph.name));
    out.push_str(
        " {\n  rankdir=TB;\n  node [fontname=\"monospace\"];\n  edge [fontname=\"monospace\"];\n",
    );
    for (idx, &id) in order.iter().enumerate() {
        let node = graph.node(id);
        let first_type = || {
            node.outputs
                .first()
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        let (shape, label) = match &node.kind {
            NodeKind::Input { name } => ("ellipse", format!("input {name}\n{}", first_type())),
            NodeKind::Const { name, .. } => (
                "box, style=filled, fillcolor=lightgrey",
                format!("@{name}\n{}", first_type()),
            ),
            NodeKind::Op(op) => {
                let mut label = op.name().to_string();
                if let Some(node_label) = &node.label {
                    let _ = write!(label, " \"{node_label}\"");
                }
                for (attr, value) in op.attrs() {
                    let _ = write!(label, "\n{attr}={value}");
                }
                ("box", label)
            }
        };
        let _ = writeln!(out, "  n{idx} [shape={shape}, label={}];", quote(&label));
    }
    for &id in &order {
        for input in graph.node_inputs(id).into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {} -> {} [label={}];",
                node_name(&dot_idx, input.node),
                node_name(&dot_idx, id),
                quote(&edge_label(graph, input))
            );
        }
    }
    for (out_idx, (name, value)) in graph.outputs().iter().enumerate() {
        let _ = writeln!(
            out,
            "  out{out_idx} [shape=house, label={}];",
            quote(&format!("output {name}"))
        );
        let _ = writeln!(
            out,
            "  {} -> out{out_idx} [label={}];",
            node_name(&dot_idx, value.node),
            quote(&edge_label(graph, *value))
        );
    }
    out.push_str("}\n");
    out
}

/// `n<position>`, or `missing` for a node that is not in the graph.
fn node_name(dot_idx: &[usize], id: NodeId) -> String {
    match dot_idx.get(id.index()) {
        Some(&idx) if idx != usize::MAX => format!("n{idx}"),
        _ => "missing".to_string(),
    }
}

/// The value's type, prefixed by the output's name when its node has several outputs (`y_h: f32[..]`).
fn edge_label(graph: &Graph, value: Value) -> String {
    if !graph.contains_node(value.node) {
        return "?".to_string();
    }
    let node = graph.node(value.node);
    let ty = node
        .outputs
        .get(value.port as usize)
        .map(ToString::to_string)
        .unwrap_or_default();
    match node.op() {
        Some(op) if node.outputs.len() > 1 => {
            let port = value.port as usize;
            let output_name = match op.output_names() {
                [single] if single.ends_with('*') => {
                    format!("{}[{port}]", single.trim_end_matches('*'))
                }
                names => names
                    .get(port)
                    .map_or_else(|| format!("#{port}"), |n| n.to_string()),
            };
            format!("{output_name}: {ty}")
        }
        _ => ty,
    }
}

/// A DOT string: `"` and `\` escaped, newlines as `\n` (a centred line break).
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
