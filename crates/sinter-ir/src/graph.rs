//! The graph: inputs, constants (weights) and op nodes in a petgraph `StableDiGraph`.
//!
//! **Invariant: edges are the only record of connectivity.** An edge from node `a` to node `b` with
//! weight `Edge { src_port, dst_slot }` says that input slot `dst_slot` of `b` reads output `src_port` of
//! `a`. A slot with no edge is an absent optional input; trailing absent slots are not represented at
//! all. `StableDiGraph` keeps `NodeId`s valid across removals, which rewriting passes rely on.
//!
//! **Invariant: every `Value` handed out by the graph names an existing node and port.** `add_op`
//! checks its inputs, so a graph built through this API has no dangling references; the verifier then
//! only checks arity, types and acyclicity.

use crate::{Op, Tensor, TensorType};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, NodeIndexable};
use petgraph::Direction;
use std::fmt;

/// A node handle.
pub type NodeId = NodeIndex<u32>;

/// A value: output `port` of `node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value {
    pub node: NodeId,
    pub port: u32,
}

impl Value {
    pub fn new(node: NodeId, port: u32) -> Value {
        Value { node, port }
    }
}

/// What a node is.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A graph input, bound when the graph runs.
    Input { name: String },
    /// A constant tensor (a weight), referenced as `@name` in the text format.
    Const { name: String, value: Tensor },
    /// An operation.
    Op(Op),
}

/// A node and the types of its outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    /// The source's name for an op node (the ONNX node name, a DSL label), used in error messages and
    /// kept through the text format as `loc("...")`.
    pub label: Option<String>,
    /// One type per output port.
    pub outputs: Vec<TensorType>,
}

impl Node {
    pub fn op(&self) -> Option<&Op> {
        match &self.kind {
            NodeKind::Op(op) => Some(op),
            _ => None,
        }
    }

    /// A short description for diagnostics: `conv "conv1"`, `input "x"`, `const "w1"`.
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Input { name } => format!("input `{name}`"),
            NodeKind::Const { name, .. } => format!("const `@{name}`"),
            NodeKind::Op(op) => match &self.label {
                Some(label) => format!("{} node `{label}`", op.name()),
                None => format!("{} node", op.name()),
            },
        }
    }
}

/// Which input slot of a node an edge feeds, and which output port of its source it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub src_port: u32,
    pub dst_slot: u32,
}

/// Misuse of the graph-building API.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("value {value:?} does not exist: node {} has no output port {}", value.node.index(), value.port)]
    DanglingValue { value: Value },
    #[error("the name `{0}` is already used by another input or constant")]
    DuplicateName(String),
    #[error("output `{0}` is declared twice")]
    DuplicateOutput(String),
}

/// A graph of tensor operations.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    nodes: StableDiGraph<Node, Edge, u32>,
    inputs: Vec<NodeId>,
    outputs: Vec<(String, Value)>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    /// The underlying petgraph, for graph algorithms and views.
    pub fn petgraph(&self) -> &StableDiGraph<Node, Edge, u32> {
        &self.nodes
    }

    fn name_taken(&self, name: &str) -> bool {
        self.nodes.node_weights().any(|n| match &n.kind {
            NodeKind::Input { name: other } | NodeKind::Const { name: other, .. } => other == name,
            NodeKind::Op(_) => false,
        })
    }

    /// Adds a graph input. Inputs are ordered by the order of these calls.
    pub fn add_input(
        &mut self,
        name: impl Into<String>,
        ty: TensorType,
    ) -> Result<Value, GraphError> {
        let name = name.into();
        if self.name_taken(&name) {
            return Err(GraphError::DuplicateName(name));
        }
        let id = self.nodes.add_node(Node {
            kind: NodeKind::Input { name },
            label: None,
            outputs: vec![ty],
        });
        self.inputs.push(id);
        Ok(Value::new(id, 0))
    }

    /// Adds a named constant.
    pub fn add_const(
        &mut self,
        name: impl Into<String>,
        value: Tensor,
    ) -> Result<Value, GraphError> {
        let name = name.into();
        if self.name_taken(&name) {
            return Err(GraphError::DuplicateName(name));
        }
        let ty = value.ty();
        let id = self.nodes.add_node(Node {
            kind: NodeKind::Const { name, value },
            label: None,
            outputs: vec![ty],
        });
        Ok(Value::new(id, 0))
    }

    /// A constant name not yet used, built from `stem` (`stem`, `stem_1`, `stem_2`, ...).
    pub fn fresh_const_name(&self, stem: &str) -> String {
        if !self.name_taken(stem) {
            return stem.to_string();
        }
        (1..)
            .map(|idx| format!("{stem}_{idx}"))
            .find(|n| !self.name_taken(n))
            .expect("an unused name exists")
    }

    /// Adds an op node with declared output types. `inputs[slot]` is `None` for an absent optional
    /// input. Types are not checked here; `infer::add_op_inferred` computes them and the verifier checks
    /// them.
    pub fn add_op(
        &mut self,
        op: Op,
        inputs: &[Option<Value>],
        outputs: Vec<TensorType>,
        label: Option<String>,
    ) -> Result<NodeId, GraphError> {
        for value in inputs.iter().flatten() {
            self.check_value(*value)?;
        }
        let id = self.nodes.add_node(Node {
            kind: NodeKind::Op(op),
            label,
            outputs,
        });
        for (slot_idx, value) in inputs.iter().enumerate() {
            if let Some(value) = value {
                self.nodes.add_edge(
                    value.node,
                    id,
                    Edge {
                        src_port: value.port,
                        dst_slot: slot_idx as u32,
                    },
                );
            }
        }
        Ok(id)
    }

    fn check_value(&self, value: Value) -> Result<(), GraphError> {
        match self.nodes.node_weight(value.node) {
            Some(node) if (value.port as usize) < node.outputs.len() => Ok(()),
            _ => Err(GraphError::DanglingValue { value }),
        }
    }

    /// Declares a graph output.
    pub fn add_output(&mut self, name: impl Into<String>, value: Value) -> Result<(), GraphError> {
        let name = name.into();
        self.check_value(value)?;
        if self.outputs.iter().any(|(n, _)| *n == name) {
            return Err(GraphError::DuplicateOutput(name));
        }
        self.outputs.push((name, value));
        Ok(())
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id]
    }

    pub fn contains_node(&self, id: NodeId) -> bool {
        self.nodes.contains_node(id)
    }

    /// Every node id, in index order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.node_indices()
    }

    pub fn node_count(&self) -> usize {
        self.nodes.node_count()
    }

    /// Graph input nodes, in declaration order.
    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    /// The name and type of each graph input, in order.
    pub fn input_signature(&self) -> Vec<(&str, &TensorType)> {
        self.inputs
            .iter()
            .map(|&id| {
                let node = &self.nodes[id];
                let NodeKind::Input { name } = &node.kind else {
                    unreachable!("inputs only holds input nodes")
                };
                (name.as_str(), &node.outputs[0])
            })
            .collect()
    }

    /// Graph outputs: name and value, in declaration order.
    pub fn outputs(&self) -> &[(String, Value)] {
        &self.outputs
    }

    pub fn value_type(&self, value: Value) -> &TensorType {
        &self.nodes[value.node].outputs[value.port as usize]
    }

    /// The inputs of `id` by slot, `None` for absent optional inputs. Trailing absent slots are omitted.
    pub fn node_inputs(&self, id: NodeId) -> Vec<Option<Value>> {
        let mut slots: Vec<Option<Value>> = Vec::new();
        for edge in self.nodes.edges_directed(id, Direction::Incoming) {
            let slot_idx = edge.weight().dst_slot as usize;
            if slots.len() <= slot_idx {
                slots.resize(slot_idx + 1, None);
            }
            slots[slot_idx] = Some(Value::new(edge.source(), edge.weight().src_port));
        }
        slots
    }

    /// The (node, slot) pairs that read `value`, sorted by node then slot.
    pub fn users(&self, value: Value) -> Vec<(NodeId, u32)> {
        let mut users: Vec<(NodeId, u32)> = self
            .nodes
            .edges_directed(value.node, Direction::Outgoing)
            .filter(|e| e.weight().src_port == value.port)
            .map(|e| (e.target(), e.weight().dst_slot))
            .collect();
        users.sort();
        users
    }

    /// Makes every reader of `old` (op inputs and graph outputs) read `new` instead.
    pub fn replace_uses(&mut self, old: Value, new: Value) -> Result<(), GraphError> {
        self.check_value(new)?;
        let edges: Vec<_> = self
            .nodes
            .edges_directed(old.node, Direction::Outgoing)
            .filter(|e| e.weight().src_port == old.port)
            .map(|e| (e.id(), e.target(), e.weight().dst_slot))
            .collect();
        for (edge_id, target, dst_slot) in edges {
            self.nodes.remove_edge(edge_id);
            self.nodes.add_edge(
                new.node,
                target,
                Edge {
                    src_port: new.port,
                    dst_slot,
                },
            );
        }
        for (_, value) in &mut self.outputs {
            if *value == old {
                *value = new;
            }
        }
        Ok(())
    }

    /// Removes a node and its edges. Graph outputs that read it must be redirected first; one that is
    /// not is left dangling, which the verifier reports and `canonical_order` skips.
    pub fn remove_node(&mut self, id: NodeId) -> Option<Node> {
        self.inputs.retain(|&i| i != id);
        self.nodes.remove_node(id)
    }

    /// The canonical order of nodes: a post-order walk from the outputs (in declaration order, each
    /// node's inputs in slot order), preceded by all graph inputs in order, followed by unreachable
    /// nodes in index order. It depends only on the graph's structure, not on insertion order, so the
    /// printer can number values canonically. Errors with a node on a cycle if there is one.
    pub fn canonical_order(&self) -> Result<Vec<NodeId>, NodeId> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Unvisited,
            OnStack,
            Done,
        }
        let bound = self.nodes.node_bound();
        let mut mark = vec![Mark::Unvisited; bound];
        let mut order = Vec::with_capacity(self.nodes.node_count());
        for &id in &self.inputs {
            mark[id.index()] = Mark::Done;
            order.push(id);
        }
        let roots: Vec<NodeId> = self
            .outputs
            .iter()
            .map(|(_, v)| v.node)
            .chain(self.nodes.node_indices())
            .collect();
        for root in roots {
            // A graph output may name a removed node; the verifier reports it as dangling.
            if !self.nodes.contains_node(root) || mark[root.index()] != Mark::Unvisited {
                continue;
            }
            // Iterative DFS: (node, next input slot to visit).
            let mut stack: Vec<(NodeId, usize, Vec<Option<Value>>)> = Vec::new();
            mark[root.index()] = Mark::OnStack;
            stack.push((root, 0, self.node_inputs(root)));
            while let Some((id, next, inputs)) = stack.last_mut() {
                if let Some(input) = inputs.get(*next).copied() {
                    *next += 1;
                    let Some(value) = input else { continue };
                    match mark[value.node.index()] {
                        Mark::Done => {}
                        Mark::OnStack => return Err(value.node),
                        Mark::Unvisited => {
                            mark[value.node.index()] = Mark::OnStack;
                            let inputs = self.node_inputs(value.node);
                            stack.push((value.node, 0, inputs));
                        }
                    }
                } else {
                    let id = *id;
                    mark[id.index()] = Mark::Done;
                    order.push(id);
                    stack.pop();
                }
            }
        }
        Ok(order)
    }
}

impl fmt::Display for Graph {
    /// The text format, with every constant inline. See `text::print_graph` for options.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::text::print_graph(
            self,
            &crate::text::PrintOptions::default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn canonical_order_skips_an_output_of_a_removed_node() {
        let mut g = Graph::new("g");
        let x = g
            .add_input("x", TensorType::fixed(DType::F32, &[2]))
            .unwrap();
        let ty = TensorType::fixed(DType::F32, &[2]);
        let relu = g.add_op(Op::Relu {}, &[Some(x)], vec![ty], None).unwrap();
        g.add_output("y", Value::new(relu, 0)).unwrap();
        g.remove_node(relu);
        assert_eq!(g.canonical_order(), Ok(vec![x.node]));
    }

    #[test]
    fn canonical_order_ignores_insertion_order() {
        let ty = TensorType::fixed(DType::F32, &[2]);
        let mut g = Graph::new("g");
        let x = g.add_input("x", ty.clone()).unwrap();
        // Insert the consumer's producer after an unrelated dead node.
        let dead = g
            .add_op(Op::Neg {}, &[Some(x)], vec![ty.clone()], None)
            .unwrap();
        let a = g
            .add_op(Op::Relu {}, &[Some(x)], vec![ty.clone()], None)
            .unwrap();
        let b = g
            .add_op(Op::Exp {}, &[Some(x)], vec![ty.clone()], None)
            .unwrap();
        let sum = g
            .add_op(
                Op::Add {},
                &[Some(Value::new(b, 0)), Some(Value::new(a, 0))],
                vec![ty],
                None,
            )
            .unwrap();
        g.add_output("y", Value::new(sum, 0)).unwrap();
        // Post-order from the output visits slot 0 (exp) before slot 1 (relu); dead code comes last.
        assert_eq!(g.canonical_order(), Ok(vec![x.node, b, a, sum, dead]));
    }
}
