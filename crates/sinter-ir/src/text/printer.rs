//! The printer: a graph to `.sir` text.
//!
//! Items are written in the order inputs, constants, op nodes, outputs; constants and op nodes in
//! [`Graph::canonical_order`], op results numbered `%0, %1, ...` in that order. A graph with a cycle
//! has no canonical order; it is printed in node-index order under a comment saying so, and that
//! text does not parse back (values would be used before their definition).
//!
//! Output goes to a `String`, whose `fmt::Write` cannot fail; the `let _ =` on writes says so.

use super::{write_name, write_quoted, PrintOptions, Printed};
use crate::{
    write_f32, write_f64, AttrValue, Dim, Graph, NodeId, NodeKind, Op, TensorData, TensorType,
    Value,
};
use petgraph::visit::NodeIndexable;
use std::fmt::Write;

/// Alignment of each constant in an external weights file, so that a loader can map the file and
/// view every tensor in place with any element type and SIMD width.
const WEIGHTS_ALIGN: usize = 64;

/// Prints `graph` with every constant inline. `options.weights_file` is ignored.
pub fn print_graph(graph: &Graph, options: &PrintOptions) -> String {
    let inline = PrintOptions {
        inline_limit: usize::MAX,
        weights_file: None,
    };
    let _ = options;
    print_graph_with_weights(graph, &inline).text
}

/// Prints `graph`, writing constants with more than `options.inline_limit` elements to the weights
/// file named by `options.weights_file` (inline when it is `None`).
pub fn print_graph_with_weights(graph: &Graph, options: &PrintOptions) -> Printed {
    let mut printer = Printer {
        graph,
        options,
        out: String::new(),
        weights: Vec::new(),
        refs: vec![None; graph.petgraph().node_bound()],
    };
    printer.print();
    Printed {
        text: printer.out,
        weights: printer.weights,
    }
}

/// How the text refers to a node's outputs.
#[derive(Clone, Debug)]
enum NodeRef {
    /// `%name`
    Input(String),
    /// `@name`
    Const(String),
    /// `%n` for port 0, `%n+port` for the others.
    Op(usize),
}

struct Printer<'g> {
    graph: &'g Graph,
    options: &'g PrintOptions,
    out: String,
    weights: Vec<u8>,
    /// Indexed by node index.
    refs: Vec<Option<NodeRef>>,
}

impl Printer<'_> {
    fn print(&mut self) {
        let graph = self.graph;
        let order = match graph.canonical_order() {
            Ok(order) => order,
            Err(on_cycle) => {
                let _ = writeln!(
                    self.out,
                    "; this graph has a cycle through node {}; the text below does not parse",
                    on_cycle.index()
                );
                let mut order: Vec<NodeId> = graph.inputs().to_vec();
                order.extend(graph.node_ids().filter(|id| !graph.inputs().contains(id)));
                order
            }
        };
        let mut n_results = 0;
        for &id in &order {
            self.refs[id.index()] = Some(match &graph.node(id).kind {
                NodeKind::Input { name } => NodeRef::Input(name.clone()),
                NodeKind::Const { name, .. } => NodeRef::Const(name.clone()),
                NodeKind::Op(_) => {
                    n_results += graph.node(id).outputs.len();
                    NodeRef::Op(n_results - graph.node(id).outputs.len())
                }
            });
        }

        self.out.push_str("graph ");
        let _ = write_name(&mut self.out, &graph.name);
        self.out.push_str(" {\n");
        for &id in graph.inputs() {
            self.print_input(id);
        }
        for &id in &order {
            if let NodeKind::Const { .. } = graph.node(id).kind {
                self.print_const(id);
            }
        }
        for &id in &order {
            if let NodeKind::Op(op) = &graph.node(id).kind {
                self.print_op(id, op);
            }
        }
        for (name, value) in graph.outputs() {
            self.out.push_str("  output ");
            let _ = write_name(&mut self.out, name);
            self.out.push_str(" = ");
            self.print_value(*value);
            self.out.push('\n');
        }
        self.out.push_str("}\n");
    }

    fn print_value(&mut self, value: Value) {
        match self.refs.get(value.node.index()).and_then(Option::as_ref) {
            Some(NodeRef::Input(name)) => {
                self.out.push('%');
                let _ = write_name(&mut self.out, name);
            }
            Some(NodeRef::Const(name)) => {
                self.out.push('@');
                let _ = write_name(&mut self.out, name);
            }
            Some(NodeRef::Op(first)) => {
                let _ = write!(self.out, "%{}", first + value.port as usize);
            }
            // A value of a removed node; the graph API does not hand these out.
            None => {
                let _ = write!(self.out, "%\"missing node {}\"", value.node.index());
            }
        }
    }

    fn print_input(&mut self, id: NodeId) {
        let node = self.graph.node(id);
        let NodeKind::Input { name } = &node.kind else {
            return;
        };
        self.out.push_str("  input %");
        let _ = write_name(&mut self.out, name);
        self.out.push_str(": ");
        match node.outputs.first() {
            Some(ty) => write_type(&mut self.out, ty),
            None => self.out.push_str("<no type>"),
        }
        self.out.push('\n');
    }

    fn print_const(&mut self, id: NodeId) {
        let NodeKind::Const { name, value } = &self.graph.node(id).kind else {
            return;
        };
        self.out.push_str("  const @");
        let _ = write_name(&mut self.out, name);
        self.out.push_str(": ");
        write_type(&mut self.out, &value.ty());
        self.out.push_str(" = ");
        match &self.options.weights_file {
            Some(file) if value.len() > self.options.inline_limit => {
                let padded_len = self.weights.len().next_multiple_of(WEIGHTS_ALIGN);
                self.weights.resize(padded_len, 0);
                let offset = self.weights.len();
                self.weights.extend_from_slice(&value.data().to_le_bytes());
                self.out.push_str("external(");
                let _ = write_quoted(&mut self.out, file);
                let _ = write!(self.out, ", offset={offset})");
            }
            _ => write_elements(&mut self.out, value.data()),
        }
        self.out.push('\n');
    }

    fn print_op(&mut self, id: NodeId, op: &Op) {
        let node = self.graph.node(id);
        let Some(NodeRef::Op(first)) = self.refs[id.index()] else {
            return;
        };
        self.out.push_str("  ");
        for (port, ty) in node.outputs.iter().enumerate() {
            if port > 0 {
                self.out.push_str(", ");
            }
            let _ = write!(self.out, "%{}: ", first + port);
            write_type(&mut self.out, ty);
        }
        // An op without results (only in graphs the verifier rejects) is written as a bare call.
        if !node.outputs.is_empty() {
            self.out.push_str(" = ");
        }
        self.out.push_str(op.name());
        self.out.push('(');
        for (slot_idx, input) in self.graph.node_inputs(id).into_iter().enumerate() {
            if slot_idx > 0 {
                self.out.push_str(", ");
            }
            match input {
                Some(value) => self.print_value(value),
                None => self.out.push('_'),
            }
        }
        self.out.push(')');
        let attrs = attrs_text(op);
        if !attrs.is_empty() {
            let _ = write!(self.out, " {{{attrs}}}");
        }
        if let Some(label) = &node.label {
            self.out.push_str(" loc(");
            let _ = write_quoted(&mut self.out, label);
            self.out.push(')');
        }
        self.out.push('\n');
    }
}

/// `f32[batch,3]`: like `TensorType`'s `Display`, but a symbolic dim that is not an IDENT is quoted.
fn write_type(out: &mut String, ty: &TensorType) {
    out.push_str(ty.dtype.name());
    out.push('[');
    for (idx, dim) in ty.shape.dims().iter().enumerate() {
        if idx > 0 {
            out.push(',');
        }
        let _ = match dim {
            Dim::Static(n) => write!(out, "{n}"),
            Dim::Sym(name) => write_name(out, name),
        };
    }
    out.push(']');
}

/// The non-default attributes of `op` as `name=value, ...`, without braces; empty when all are
/// defaults. Lists are written without spaces, like shapes.
pub(super) fn attrs_text(op: &Op) -> String {
    let mut out = String::new();
    for (idx, (name, value)) in op.attrs().iter().enumerate() {
        if idx > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{name}=");
        write_attr_value(&mut out, value);
    }
    out
}

fn write_attr_value(out: &mut String, value: &AttrValue) {
    fn list<T>(out: &mut String, items: &[T], mut one: impl FnMut(&mut String, &T)) {
        out.push('[');
        for (idx, item) in items.iter().enumerate() {
            if idx > 0 {
                out.push(',');
            }
            one(out, item);
        }
        out.push(']');
    }
    match value {
        AttrValue::Int(v) => {
            let _ = write!(out, "{v}");
        }
        AttrValue::Float(v) => {
            let _ = write_f64(out, *v);
        }
        AttrValue::Float32(v) => {
            let _ = write_f32(out, *v);
        }
        AttrValue::Bool(v) => {
            let _ = write!(out, "{v}");
        }
        AttrValue::Ints(v) => list(out, v, |out, x| {
            let _ = write!(out, "{x}");
        }),
        AttrValue::Floats(v) => list(out, v, |out, x| {
            let _ = write_f64(out, *x);
        }),
        AttrValue::Floats32(v) => list(out, v, |out, x| {
            let _ = write_f32(out, *x);
        }),
        AttrValue::Ident(v) => out.push_str(v),
        AttrValue::Idents(v) => list(out, v, |out, x| out.push_str(x)),
    }
}

/// `[e0, e1, ...]`, floats in their own precision so that they parse back bit-exactly.
fn write_elements(out: &mut String, data: &TensorData) {
    fn list<T: Copy>(out: &mut String, items: &[T], mut one: impl FnMut(&mut String, T)) {
        out.push('[');
        for (idx, &item) in items.iter().enumerate() {
            if idx > 0 {
                out.push_str(", ");
            }
            one(out, item);
        }
        out.push(']');
    }
    fn int(out: &mut String, x: impl std::fmt::Display) {
        let _ = write!(out, "{x}");
    }
    match data {
        TensorData::F32(v) => list(out, v, |out, x| {
            let _ = write_f32(out, x);
        }),
        TensorData::F64(v) => list(out, v, |out, x| {
            let _ = write_f64(out, x);
        }),
        TensorData::I64(v) => list(out, v, int),
        TensorData::I32(v) => list(out, v, int),
        TensorData::I8(v) => list(out, v, int),
        TensorData::U8(v) => list(out, v, int),
        TensorData::Bool(v) => list(out, v, int),
    }
}
