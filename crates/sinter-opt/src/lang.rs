//! The e-graph language: one e-node kind per graph-IR op, plus leaves for inputs, weights, attributes
//! and absent optional inputs.
//!
//! egg's `define_language!` cannot mix data and children, and an op's attributes (strides, axis, perm,
//! ...) are data. So an op node is its text name plus its children, and **an op that declares
//! attributes has one extra, last child: an [`ENode::Attrs`] leaf** that indexes the interned `Op`
//! value (attributes included) in the analysis' side table. Two nodes of the same op with equal
//! attributes share the leaf, so hash-consing still sees them as equal, and a rule reads attributes
//! by looking at the leaf's class. Patterns name the leaf with a variable: `(softmax ?x ?attrs)`.
//!
//! **Invariant: an op node has one child per declared input, absent optional inputs included** (an
//! [`ENode::Absent`] leaf, written `_`), so patterns over ops with optional inputs have a fixed arity.
//! Variadic ops (`concat`) have one child per actual input. Multi-output ops (`split`, `lstm`, ...)
//! are read through [`ENode::Output`] projections.
//!
//! Weights are leaves indexing a side table of tensors, never data in nodes, so hashing a node never
//! touches tensor data. The op name is a `&'static str` from `Op::NAMES`: its ordering is by content,
//! so e-node order (and with egg's `deterministic` feature, everything downstream) is reproducible.

use egg::{FromOp, Id, Language};
use sinter_ir::Op;
use std::fmt;

/// An index into the analysis' table of interned `Op` values (attributes included).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrsId(pub u32);

/// An e-node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ENode {
    /// An op: its text name and its children (inputs, then the attributes leaf if it has attributes).
    Op {
        name: &'static str,
        children: Vec<Id>,
    },
    /// The attributes of an op node: an index into the interned-op table.
    Attrs(AttrsId),
    /// Graph input number `n`.
    Input(u32),
    /// Weight number `n` of the side table.
    Weight(u32),
    /// An absent optional input.
    Absent,
    /// Output `port` of a multi-output op.
    Output { port: u32, child: [Id; 1] },
}

impl ENode {
    /// The op name of an op node.
    pub fn op_name(&self) -> Option<&'static str> {
        match self {
            ENode::Op { name, .. } => Some(name),
            _ => None,
        }
    }

    /// Whether ops called `name` carry an attributes child.
    pub fn op_has_attrs(name: &str) -> bool {
        Op::attribute_names_of(name).is_some_and(|names| !names.is_empty())
    }

    /// The input children of an op node (without the attributes leaf).
    pub fn op_inputs(&self) -> &[Id] {
        match self {
            ENode::Op { name, children } if Self::op_has_attrs(name) => {
                &children[..children.len() - 1]
            }
            ENode::Op { children, .. } => children,
            _ => &[],
        }
    }

    /// The attributes leaf child of an op node that has one.
    pub fn attrs_child(&self) -> Option<Id> {
        match self {
            ENode::Op { name, children } if Self::op_has_attrs(name) => children.last().copied(),
            _ => None,
        }
    }
}

impl Language for ENode {
    type Discriminant = (u8, Option<&'static str>, u32);

    fn discriminant(&self) -> Self::Discriminant {
        match self {
            ENode::Op { name, .. } => (0, Some(name), 0),
            ENode::Attrs(id) => (1, None, id.0),
            ENode::Input(n) => (2, None, *n),
            ENode::Weight(n) => (3, None, *n),
            ENode::Absent => (4, None, 0),
            ENode::Output { port, .. } => (5, None, *port),
        }
    }

    fn matches(&self, other: &Self) -> bool {
        self.discriminant() == other.discriminant() && self.len() == other.len()
    }

    fn children(&self) -> &[Id] {
        match self {
            ENode::Op { children, .. } => children,
            ENode::Output { child, .. } => child,
            _ => &[],
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            ENode::Op { children, .. } => children,
            ENode::Output { child, .. } => child,
            _ => &mut [],
        }
    }
}

impl fmt::Display for ENode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ENode::Op { name, .. } => f.write_str(name),
            ENode::Attrs(id) => write!(f, "#{}", id.0),
            ENode::Input(n) => write!(f, "in{n}"),
            ENode::Weight(n) => write!(f, "w{n}"),
            ENode::Absent => f.write_str("_"),
            ENode::Output { port, .. } => write!(f, "out{port}"),
        }
    }
}

/// Why a pattern's operator could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an op name, `_`, `#N`, `inN`, `wN` or `outN` with the right child count")]
pub struct BadOperator(pub String);

impl FromOp for ENode {
    type Error = BadOperator;

    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, Self::Error> {
        let bad = || BadOperator(op.to_string());
        let number = |prefix: &str| op.strip_prefix(prefix).and_then(|n| n.parse::<u32>().ok());
        if let Some(name) = Op::NAMES.iter().find(|n| **n == op) {
            return Ok(ENode::Op { name, children });
        }
        let leaf = |node: ENode| {
            if children.is_empty() {
                Ok(node)
            } else {
                Err(bad())
            }
        };
        if op == "_" {
            return leaf(ENode::Absent);
        }
        if let Some(n) = number("#") {
            return leaf(ENode::Attrs(AttrsId(n)));
        }
        if let Some(n) = number("in") {
            return leaf(ENode::Input(n));
        }
        if let Some(n) = number("w") {
            return leaf(ENode::Weight(n));
        }
        match (number("out"), children.as_slice()) {
            (Some(port), [child]) => Ok(ENode::Output {
                port,
                child: [*child],
            }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_ops_and_leaves() {
        let expr: egg::RecExpr<ENode> = "(softmax (add in0 w1) #2)".parse().unwrap();
        assert_eq!(expr.to_string(), "(softmax (add in0 w1) #2)");
        let expr: egg::RecExpr<ENode> = "(conv in0 w0 _ #0)".parse().unwrap();
        assert_eq!(expr.to_string(), "(conv in0 w0 _ #0)");
        assert!("(no_such_op in0)".parse::<egg::RecExpr<ENode>>().is_err());
    }

    #[test]
    fn attrs_child_is_last_only_for_ops_with_attributes() {
        let expr: egg::RecExpr<ENode> = "(softmax in0 #0)".parse().unwrap();
        let node = &expr[Id::from(2)];
        assert_eq!(node.op_inputs(), &[Id::from(0)]);
        assert_eq!(node.attrs_child(), Some(Id::from(1)));
        let expr: egg::RecExpr<ENode> = "(relu in0)".parse().unwrap();
        let node = &expr[Id::from(1)];
        assert_eq!(node.op_inputs(), &[Id::from(0)]);
        assert_eq!(node.attrs_child(), None);
    }
}
