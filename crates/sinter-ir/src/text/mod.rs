//! The `.sir` text format: a printer and a parser that round-trip exactly.
//!
//! The grammar, the lexical rules and the numbering rules are specified in `ir-spec/text-format.md`;
//! this module implements them. The invariants the two halves keep between them:
//!
//! - **Round trip.** For every graph `g` the API can build, `parse(print(g))` is structurally equal to
//!   `g` ([`graphs_equal`]) and prints to the same text. Floats are bit-exact (NaN payloads and `-0.0`
//!   included): tensor elements go through [`write_f32`](crate::write_f32)/[`write_f64`](crate::write_f64)
//!   and are parsed in their own precision.
//! - **Canonical numbering.** Op results are numbered `%0, %1, ...` in [`Graph::canonical_order`], so
//!   the text depends on the graph's structure, not on the order nodes were inserted or on removed
//!   node ids. Inputs and constants keep their names.
//! - **The parser builds, it does not check types.** Declared result types go into the graph as
//!   written; [`verify`](crate::verify()) checks them. The parser does check everything the graph
//!   cannot hold: names are defined before use and once, attributes fit their op, constant literals
//!   fit their dtype and shape, external weights lie inside their file.
//!
//! The parser is a single pass over a streaming lexer, linear in the size of the text.

mod lexer;
mod parser;
mod printer;

use crate::{Graph, NodeId, NodeKind, Op, Value};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use parser::{parse_file, parse_graph};
pub use printer::{print_graph, print_graph_with_weights};

/// How to print a graph.
#[derive(Clone, Debug)]
pub struct PrintOptions {
    /// Constants with more elements than this are written to the weights file instead of inline
    /// (only by [`print_graph_with_weights`], and only when `weights_file` is set).
    pub inline_limit: usize,
    /// The file name written in `external("...")` references, relative to the `.sir` file's folder.
    pub weights_file: Option<String>,
}

impl Default for PrintOptions {
    /// Every constant inline.
    fn default() -> PrintOptions {
        PrintOptions {
            inline_limit: usize::MAX,
            weights_file: None,
        }
    }
}

/// The text of a graph and the bytes of its external weights file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Printed {
    pub text: String,
    /// The contents of `PrintOptions::weights_file`: each external constant's little-endian bytes at
    /// a 64-byte aligned offset, zero padding between them. Empty when nothing was written externally.
    pub weights: Vec<u8>,
}

/// How to parse a graph.
#[derive(Clone, Debug, Default)]
pub struct ParseOptions {
    /// The folder `external("...")` file names are relative to. Without it, external references are
    /// an error. [`parse_file`] sets it to the file's folder.
    pub base_dir: Option<PathBuf>,
}

/// A problem in a `.sir` text, with its 1-based line and column (in characters).
///
/// `line` and `col` are 0 when the problem has no position (the file could not be read).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.col, self.message
            )
        }
    }
}

impl ParseError {
    /// An error at byte offset `pos` of `src`.
    pub(crate) fn at(src: &str, pos: usize, message: String) -> ParseError {
        let pos = pos.min(src.len());
        let before = src.get(..pos).unwrap_or(src);
        let line_start = before.rfind('\n').map_or(0, |idx| idx + 1);
        let line = before.matches('\n').count() + 1;
        let col = before[line_start..].chars().count() + 1;
        ParseError { line, col, message }
    }

    /// The message with the offending line of `src` and a caret under the column:
    ///
    /// ```text
    /// error: expected `]` to close the shape, found `)`
    ///  --> line 3, column 13
    ///   |
    /// 3 |   %0: f32[2,3) = relu(%x)
    ///   |             ^
    /// ```
    pub fn render(&self, src: &str) -> String {
        let mut out = format!("error: {}\n", self.message);
        let Some(line_text) = self
            .line
            .checked_sub(1)
            .and_then(|idx| src.lines().nth(idx))
        else {
            return out;
        };
        let number = self.line.to_string();
        let gutter = " ".repeat(number.len());
        // Keep tabs in the caret line so the caret lines up under the same character.
        let pad: String = line_text
            .chars()
            .take(self.col.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!(
            "{gutter}--> line {}, column {}\n",
            self.line, self.col
        ));
        out.push_str(&format!(
            "{gutter} |\n{number} | {line_text}\n{gutter} | {pad}^\n"
        ));
        out
    }
}

/// Whether `name` is an IDENT of the grammar (`[A-Za-z_][A-Za-z0-9_.]*`) and can be written unquoted.
pub(crate) fn is_ident(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(|&b| lexer::is_ident_start(b))
        && bytes[1..].iter().all(|&b| lexer::is_ident_continue(b))
}

/// Writes `name` bare if it is an IDENT, quoted otherwise.
pub(crate) fn write_name(out: &mut impl fmt::Write, name: &str) -> fmt::Result {
    if is_ident(name) {
        out.write_str(name)
    } else {
        write_quoted(out, name)
    }
}

/// Writes a STRING: `"` and `\` escaped, control characters as `\n`, `\t`, `\r` or `\u{..}`.
pub(crate) fn write_quoted(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    for ch in text.chars() {
        match ch {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\t' => out.write_str("\\t")?,
            '\r' => out.write_str("\\r")?,
            c if c.is_control() => write!(out, "\\u{{{:x}}}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// Structural equality of two graphs: the same name, inputs (names and types, in order), constants
/// (names, types and bitwise-equal data), op nodes (op, attributes with floats compared bitwise,
/// label, declared output types, and inputs by slot), and outputs (names, in order, and values).
///
/// Op nodes are matched by their position among the op nodes of [`Graph::canonical_order`], which
/// depends only on structure, so the node ids and insertion order of the two graphs do not matter.
/// Inputs are matched by position and constants by name (both unique). Graphs with a cycle are
/// never equal.
pub fn graphs_equal(a: &Graph, b: &Graph) -> bool {
    if a.name != b.name
        || a.node_count() != b.node_count()
        || a.input_signature() != b.input_signature()
    {
        return false;
    }
    let (Some(map_a), Some(map_b)) = (node_keys(a), node_keys(b)) else {
        return false;
    };
    let key = |map: &HashMap<NodeId, NodeKey>, value: Value| {
        map.get(&value.node).map(|k| (k.clone(), value.port))
    };
    let b_by_key: HashMap<&NodeKey, NodeId> = map_b.iter().map(|(&id, k)| (k, id)).collect();
    if b_by_key.len() != map_b.len() {
        return false;
    }
    for (&id_a, key_a) in &map_a {
        let Some(&id_b) = b_by_key.get(key_a) else {
            return false;
        };
        let (node_a, node_b) = (a.node(id_a), b.node(id_b));
        if node_a.outputs != node_b.outputs || node_a.label != node_b.label {
            return false;
        }
        let same_kind = match (&node_a.kind, &node_b.kind) {
            (NodeKind::Input { name: x }, NodeKind::Input { name: y }) => x == y,
            (NodeKind::Const { name: x, value: vx }, NodeKind::Const { name: y, value: vy }) => {
                x == y && vx == vy
            }
            (NodeKind::Op(x), NodeKind::Op(y)) => ops_equal(x, y),
            _ => false,
        };
        if !same_kind {
            return false;
        }
        let inputs_a: Vec<_> = a
            .node_inputs(id_a)
            .into_iter()
            .map(|v| v.map(|v| key(&map_a, v)))
            .collect();
        let inputs_b: Vec<_> = b
            .node_inputs(id_b)
            .into_iter()
            .map(|v| v.map(|v| key(&map_b, v)))
            .collect();
        if inputs_a != inputs_b {
            return false;
        }
    }
    let outputs = |g: &Graph, map: &HashMap<NodeId, NodeKey>| -> Vec<_> {
        g.outputs()
            .iter()
            .map(|(name, v)| (name.clone(), key(map, *v)))
            .collect()
    };
    outputs(a, &map_a) == outputs(b, &map_b)
}

/// How [`graphs_equal`] pairs nodes of two graphs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum NodeKey {
    Input(usize),
    Const(String),
    Op(usize),
}

fn node_keys(graph: &Graph) -> Option<HashMap<NodeId, NodeKey>> {
    let order = graph.canonical_order().ok()?;
    let mut keys = HashMap::with_capacity(order.len());
    let (mut n_inputs, mut n_ops) = (0, 0);
    for id in order {
        let key = match &graph.node(id).kind {
            NodeKind::Input { .. } => {
                n_inputs += 1;
                NodeKey::Input(n_inputs - 1)
            }
            NodeKind::Const { name, .. } => NodeKey::Const(name.clone()),
            NodeKind::Op(_) => {
                n_ops += 1;
                NodeKey::Op(n_ops - 1)
            }
        };
        keys.insert(id, key);
    }
    Some(keys)
}

/// Ops are equal when they have the same name and the same non-default attributes, floats compared
/// bitwise. (`Op`'s derived `PartialEq` compares floats with `==`, so an op with a NaN attribute
/// would not equal itself.)
fn ops_equal(a: &Op, b: &Op) -> bool {
    a.name() == b.name() && printer::attrs_text(a) == printer::attrs_text(b)
}

/// Checks that an `external("...")` file name stays inside the base folder: relative, no `..`.
pub(crate) fn confined_relative_path(name: &str) -> Option<&Path> {
    use std::path::Component;
    let path = Path::new(name);
    let all_normal = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    let has_file = path.components().any(|c| matches!(c, Component::Normal(_)));
    (all_normal && has_file && !name.contains('\\')).then_some(path)
}
