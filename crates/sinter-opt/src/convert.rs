//! Conversion between the graph IR and the e-graph.
//!
//! Into the e-graph: every node in canonical order becomes one e-node (inputs and weights become
//! leaves). Two normalisations happen on the way, so rules need fewer hand-written variants:
//! - **constants on the right.** A commutative binary op (`add`, `mul`, `max`, `min`, `and`, `or`,
//!   `equal`) whose first operand is weight-only and second is not has them swapped;
//! - **absent inputs are explicit.** Optional inputs are padded with `_` leaves to the declared arity.
//!
//! Back to the graph: the extraction's choice of one e-node per reachable class is rebuilt as a
//! graph with the same inputs (names, order and types) and outputs, weights keeping their names and
//! every op node the label of the source node its class first stood for.

use crate::analysis::{Egraph, GraphAnalysis};
use crate::lang::ENode;
use crate::OptError;
use egg::{Id, Language};
use sinter_ir::{Graph, NodeId, NodeKind, Op, Tensor, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The ops whose operands may be swapped.
const COMMUTATIVE: &[&str] = &["add", "mul", "max", "min", "and", "or", "equal"];

/// A graph in an e-graph: the e-graph and the class of every graph output.
pub struct Problem {
    pub egraph: Egraph,
    pub graph_name: String,
    /// Graph outputs by name, in declaration order.
    pub roots: Vec<(String, Id)>,
}

/// Whether ops called `name` have one output named by the table (not a variadic output list).
fn single_output(op: &Op) -> bool {
    matches!(op.output_names(), [name] if !name.ends_with('*'))
}

/// Adds the op node for `op` over `inputs` (`None` for absent ones, padded to the declared arity),
/// with its attributes leaf. Returns the class of the node.
pub fn add_op_node(egraph: &mut Egraph, op: Op, inputs: &[Option<Id>]) -> Id {
    let name = op.name();
    let declared = op.input_names();
    let variadic = declared.iter().any(|n| n.ends_with('*'));
    let arity = if variadic {
        inputs.len()
    } else {
        declared.len().max(inputs.len())
    };
    let mut children = Vec::with_capacity(arity + 1);
    for slot_idx in 0..arity {
        let child = match inputs.get(slot_idx).copied().flatten() {
            Some(id) => id,
            None => egraph.add(ENode::Absent),
        };
        children.push(child);
    }
    if ENode::op_has_attrs(name) {
        let attrs = egraph.analysis.intern_op(op);
        children.push(egraph.add(ENode::Attrs(attrs)));
    }
    egraph.add(ENode::Op { name, children })
}

/// Puts `graph` into a fresh e-graph. The weights move into the e-graph's side table, uncopied.
pub fn to_egraph(mut graph: Graph) -> Result<Problem, OptError> {
    let order = graph.canonical_order().map_err(|node| OptError::Cycle {
        node: graph.node(node).describe(),
    })?;
    let mut egraph = Egraph::new(GraphAnalysis::default());
    let mut class_of: HashMap<Value, Id> = HashMap::new();
    for node_id in order {
        if let NodeKind::Const { value, .. } = &mut graph.node_mut(node_id).kind {
            let placeholder = Tensor::zeros(value.dtype(), vec![0]);
            let tensor = std::mem::replace(value, placeholder);
            let NodeKind::Const { name, .. } = &graph.node(node_id).kind else {
                unreachable!("matched above")
            };
            let idx = egraph.analysis.add_weight(name.clone(), tensor);
            let id = egraph.add(ENode::Weight(idx));
            class_of.insert(Value::new(node_id, 0), id);
            continue;
        }
        let node = graph.node(node_id);
        match &node.kind {
            NodeKind::Input { name } => {
                let idx = egraph.analysis.inputs.len() as u32;
                egraph
                    .analysis
                    .inputs
                    .push((name.clone(), node.outputs[0].clone()));
                let id = egraph.add(ENode::Input(idx));
                class_of.insert(Value::new(node_id, 0), id);
            }
            NodeKind::Const { .. } => unreachable!("handled above"),
            NodeKind::Op(op) => {
                let mut inputs: Vec<Option<Id>> = Vec::new();
                for value in graph.node_inputs(node_id) {
                    inputs.push(match value {
                        Some(value) => Some(*class_of.get(&value).ok_or_else(|| {
                            OptError::Malformed(format!(
                                "{} reads a value that is not computed before it",
                                node.describe()
                            ))
                        })?),
                        None => None,
                    });
                }
                if COMMUTATIVE.contains(&op.name()) {
                    if let [Some(a), Some(b)] = inputs[..] {
                        if egraph[a].data.is_const && !egraph[b].data.is_const {
                            inputs.swap(0, 1);
                        }
                    }
                }
                let id = add_op_node(&mut egraph, op.clone(), &inputs);
                if egraph[id].data.types != node.outputs {
                    return Err(OptError::Malformed(format!(
                        "{}: declared types {:?}, inferred {:?}",
                        node.describe(),
                        node.outputs,
                        egraph[id].data.types
                    )));
                }
                if egraph[id].data.origin.is_none() {
                    egraph[id].data.origin = node.label.as_deref().map(Arc::from);
                }
                if single_output(op) {
                    class_of.insert(Value::new(node_id, 0), id);
                } else {
                    for port in 0..node.outputs.len() as u32 {
                        let out = egraph.add(ENode::Output { port, child: [id] });
                        class_of.insert(Value::new(node_id, port), out);
                    }
                }
            }
        }
    }
    let roots = graph
        .outputs()
        .iter()
        .map(|(name, value)| (name.clone(), class_of[value]))
        .collect();
    egraph.rebuild();
    Ok(Problem {
        egraph,
        graph_name: graph.name.clone(),
        roots,
    })
}

/// Rebuilds a graph from `choice`, the e-node selected for every class reachable from the roots.
/// Consumes the problem so that the weights move out of the side table, uncopied.
pub fn to_graph(problem: Problem, choice: &HashMap<Id, ENode>) -> Result<Graph, OptError> {
    let (mut graph, consts) = build_graph(&problem, choice)?;
    // Every other holder of the tensors (the side table, the facts of the classes) goes with the
    // e-graph, so each tensor below is usually the only reference and moves without a copy.
    drop(problem);
    for (tensor, node_id) in consts {
        let tensor = Arc::try_unwrap(tensor).unwrap_or_else(|shared| (*shared).clone());
        let node = graph.node_mut(node_id);
        node.outputs = vec![tensor.ty()];
        if let NodeKind::Const { value, .. } = &mut node.kind {
            *value = tensor;
        }
    }
    Ok(graph)
}

/// A constant node built with an empty tensor, and the tensor it stands for.
type Placeholder = (Arc<Tensor>, NodeId);

/// A name for the folded value of weight-only class `class`: its first weight operand's name (found
/// through first operands) with `.folded`, so a folded batch norm's weight is `conv1.weight.folded`.
fn folded_name(egraph: &crate::analysis::Egraph, choice: &HashMap<Id, ENode>, class: Id) -> String {
    let mut id = egraph.find(class);
    for _ in 0..32 {
        match choice.get(&id) {
            Some(ENode::Weight(n)) => {
                return format!("{}.folded", egraph.analysis.weights[*n as usize].name);
            }
            Some(node @ ENode::Op { .. }) => match node.op_inputs().first() {
                Some(first) => id = egraph.find(*first),
                None => break,
            },
            _ => break,
        }
    }
    "folded".to_string()
}

/// The graph of `choice`, with every constant as an empty placeholder, and the tensor each placeholder
/// stands for. A weight-only class whose value the analysis already computed becomes a constant
/// directly, so the folding pass does not evaluate it again.
fn build_graph(
    problem: &Problem,
    choice: &HashMap<Id, ENode>,
) -> Result<(Graph, Vec<Placeholder>), OptError> {
    let egraph = &problem.egraph;
    let analysis = &egraph.analysis;
    let mut graph = Graph::new(problem.graph_name.clone());
    let mut input_values = Vec::new();
    for (name, ty) in &analysis.inputs {
        input_values.push(
            graph
                .add_input(name.clone(), ty.clone())
                .map_err(|e| OptError::Malformed(e.to_string()))?,
        );
    }
    // The graph node of each class (port 0 for single-output classes).
    let mut node_of: HashMap<Id, Value> = HashMap::new();
    let mut weight_values: HashMap<u32, Value> = HashMap::new();
    let mut consts: Vec<Placeholder> = Vec::new();
    let chosen = |id: Id| -> Result<&ENode, OptError> {
        choice
            .get(&egraph.find(id))
            .ok_or_else(|| OptError::Malformed(format!("no node chosen for class {id}")))
    };
    // Iterative post-order from the roots.
    for (_, root) in &problem.roots {
        let mut stack: Vec<(Id, bool)> = vec![(egraph.find(*root), false)];
        while let Some((class, expanded)) = stack.pop() {
            if node_of.contains_key(&class) {
                continue;
            }
            let node = chosen(class)?;
            let facts = &egraph[class].data;
            if let (ENode::Op { .. }, true, Some(tensor)) = (node, facts.is_const, &facts.value) {
                let name = graph.fresh_const_name(&folded_name(egraph, choice, class));
                let placeholder = Tensor::zeros(tensor.dtype(), vec![0]);
                let value = graph
                    .add_const(name, placeholder)
                    .map_err(|e| OptError::Malformed(e.to_string()))?;
                consts.push((Arc::clone(tensor), value.node));
                node_of.insert(class, value);
                continue;
            }
            if !expanded {
                stack.push((class, true));
                for &child in node.children() {
                    let child = egraph.find(child);
                    if !node_of.contains_key(&child) {
                        stack.push((child, false));
                    }
                }
                continue;
            }
            let value = match node {
                ENode::Input(n) => input_values[*n as usize],
                ENode::Weight(n) => match weight_values.get(n) {
                    Some(value) => *value,
                    None => {
                        let weight = &analysis.weights[*n as usize];
                        let name = graph.fresh_const_name(&weight.name);
                        let placeholder = Tensor::zeros(weight.tensor.dtype(), vec![0]);
                        let value = graph
                            .add_const(name, placeholder)
                            .map_err(|e| OptError::Malformed(e.to_string()))?;
                        weight_values.insert(*n, value);
                        consts.push((Arc::clone(&weight.tensor), value.node));
                        value
                    }
                },
                // Leaves that are not values: their parents read them directly.
                ENode::Attrs(_) | ENode::Absent => continue,
                ENode::Output { port, child } => {
                    let parent = node_of[&egraph.find(child[0])];
                    Value::new(parent.node, *port)
                }
                ENode::Op { .. } => {
                    let op = crate::analysis::op_of(egraph, node).ok_or_else(|| {
                        OptError::Malformed(format!(
                            "class {class} has an op node without attributes"
                        ))
                    })?;
                    let mut inputs: Vec<Option<Value>> = node
                        .op_inputs()
                        .iter()
                        .map(|&child| node_of.get(&egraph.find(child)).copied())
                        .collect();
                    crate::analysis::trim_trailing_absent(&mut inputs);
                    let facts = &egraph[class].data;
                    let label = facts.origin.as_deref().map(str::to_string);
                    let id: NodeId = graph
                        .add_op(op, &inputs, facts.types.clone(), label)
                        .map_err(|e| OptError::Malformed(e.to_string()))?;
                    Value::new(id, 0)
                }
            };
            node_of.insert(class, value);
        }
    }
    for (name, root) in &problem.roots {
        let value = node_of[&egraph.find(*root)];
        graph
            .add_output(name.clone(), value)
            .map_err(|e| OptError::Malformed(e.to_string()))?;
    }
    Ok((graph, consts))
}
