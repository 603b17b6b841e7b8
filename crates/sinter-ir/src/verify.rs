//! The graph verifier: checks a whole graph and reports every problem found, not only the first.
//!
//! What a verified graph guarantees to later stages:
//! - it has at least one output, outputs name existing values, and names are non-empty and do not
//!   collide between graph inputs and outputs;
//! - it is acyclic;
//! - every op node has an accepted number of inputs, all its required inputs, reads existing output
//!   ports, and declares exactly as many outputs as its op produces;
//! - every op accepts the declared types of its inputs ([`infer_types`]), and the declared output
//!   types are exactly the inferred ones; every constant's declared type is its tensor's type.
//!
//! Type checks are local: a node is checked against the *declared* types of its inputs, so one wrong
//! declaration is reported once, at the node that declares it. To avoid cascades, a node that reads a
//! node whose op rejected its own inputs is not type-checked (its inputs' declared types are suspect),
//! and neither is a node with a structural problem. The checks run on cyclic graphs too: the cycle is
//! reported, and so are the per-node problems.

use crate::infer::{infer_types, InferError};
use crate::{Graph, NodeId, NodeKind, TensorType, Value};
use std::collections::HashSet;

/// One problem in a graph. Node-level variants name the node as [`crate::Node::describe`] does.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("graph has no outputs")]
    NoOutputs,
    #[error("a graph {what} has an empty name")]
    EmptyName {
        /// `input`, `const` or `output`.
        what: &'static str,
    },
    #[error("output `{name}` has the name of a graph input but reads another value ({reads})")]
    OutputNameCollision { name: String, reads: String },
    #[error("output `{name}` reads node {} port {}, which does not exist", .value.node.index(), .value.port)]
    DanglingOutput { name: String, value: Value },
    #[error("the graph has a cycle through {node}")]
    Cycle { node: String },
    #[error("{node}: `{op}` takes {expected} inputs, got {got}")]
    InputCount {
        node: String,
        op: &'static str,
        expected: String,
        got: usize,
    },
    #[error("{node}: required input `{name}` (slot {slot_idx}) of `{op}` is absent")]
    MissingInput {
        node: String,
        op: &'static str,
        slot_idx: usize,
        name: &'static str,
    },
    #[error("{node}: input slot {slot_idx} reads output {port} of {source_node}, which has {n_outputs} outputs")]
    DanglingInput {
        node: String,
        op: &'static str,
        slot_idx: usize,
        source_node: String,
        port: u32,
        n_outputs: usize,
    },
    #[error("{node}: produces {expected} outputs, but the node declares {got} output types")]
    OutputCount {
        node: String,
        expected: usize,
        got: usize,
    },
    #[error("{node}: the op rejects its inputs: {}", .source.kind)]
    Inference {
        node: String,
        op: &'static str,
        source: InferError,
    },
    #[error("{node}: output {port_idx} is declared {declared}, but `{op}` infers {inferred}")]
    OutputTypeMismatch {
        node: String,
        op: &'static str,
        port_idx: usize,
        declared: TensorType,
        inferred: TensorType,
    },
    #[error("{node}: is declared {declared}, but its tensor is {actual}")]
    ConstTypeMismatch {
        node: String,
        declared: TensorType,
        actual: TensorType,
    },
}

/// Checks a graph; returns every problem found, graph-level ones first, then node by node in
/// canonical order (index order if the graph has a cycle).
pub fn verify(graph: &Graph) -> Result<(), Vec<VerifyError>> {
    let mut errors = Vec::new();
    let outputs_exist = check_names_and_outputs(graph, &mut errors);
    // `canonical_order` walks from the outputs, so it needs them to exist; otherwise petgraph's
    // topological sort finds the cycles and nodes are checked in index order.
    let order = if outputs_exist {
        graph.canonical_order()
    } else {
        petgraph::algo::toposort(graph.petgraph(), None)
            .map(|_| graph.node_ids().collect())
            .map_err(|cycle| cycle.node_id())
    };
    let order = match order {
        Ok(order) => order,
        Err(id) => {
            errors.push(VerifyError::Cycle {
                node: graph.node(id).describe(),
            });
            graph.node_ids().collect()
        }
    };
    let rejecting = rejecting_nodes(graph);
    for id in order {
        check_node(graph, id, &rejecting, &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks names and outputs; returns whether every output names an existing value.
fn check_names_and_outputs(graph: &Graph, errors: &mut Vec<VerifyError>) -> bool {
    let mut outputs_exist = true;
    if graph.outputs().is_empty() {
        errors.push(VerifyError::NoOutputs);
    }
    for id in graph.node_ids() {
        let what = match &graph.node(id).kind {
            NodeKind::Input { name } if name.is_empty() => "input",
            NodeKind::Const { name, .. } if name.is_empty() => "const",
            _ => continue,
        };
        errors.push(VerifyError::EmptyName { what });
    }
    for (name, value) in graph.outputs() {
        if name.is_empty() {
            errors.push(VerifyError::EmptyName { what: "output" });
        }
        let exists = graph.contains_node(value.node)
            && (value.port as usize) < graph.node(value.node).outputs.len();
        if !exists {
            outputs_exist = false;
            errors.push(VerifyError::DanglingOutput {
                name: name.clone(),
                value: *value,
            });
            continue;
        }
        // An output that passes an input through may keep the input's name, as in ONNX.
        let collides = graph.inputs().iter().any(|&input_id| {
            matches!(&graph.node(input_id).kind, NodeKind::Input { name: input_name } if input_name == name)
                && Value::new(input_id, 0) != *value
        });
        if collides {
            errors.push(VerifyError::OutputNameCollision {
                name: name.clone(),
                reads: graph.node(value.node).describe(),
            });
        }
    }
    outputs_exist
}

/// The declared type of each input slot of `id`, `None` for absent slots and slots that read a port
/// that does not exist.
fn declared_input_types(graph: &Graph, inputs: &[Option<Value>]) -> Vec<Option<TensorType>> {
    inputs
        .iter()
        .map(|value| value.and_then(|v| graph.node(v.node).outputs.get(v.port as usize).cloned()))
        .collect()
}

/// Op nodes whose op rejects the declared types of their (existing) inputs.
fn rejecting_nodes(graph: &Graph) -> HashSet<NodeId> {
    graph
        .node_ids()
        .filter(|&id| {
            let NodeKind::Op(op) = &graph.node(id).kind else {
                return false;
            };
            let types = declared_input_types(graph, &graph.node_inputs(id));
            let refs: Vec<Option<&TensorType>> = types.iter().map(Option::as_ref).collect();
            infer_types(op, &refs).is_err()
        })
        .collect()
}

fn check_node(
    graph: &Graph,
    id: NodeId,
    rejecting: &HashSet<NodeId>,
    errors: &mut Vec<VerifyError>,
) {
    let node = graph.node(id);
    let describe = || node.describe();
    let op = match &node.kind {
        NodeKind::Input { .. } => {
            if node.outputs.len() != 1 {
                errors.push(VerifyError::OutputCount {
                    node: describe(),
                    expected: 1,
                    got: node.outputs.len(),
                });
            }
            return;
        }
        NodeKind::Const { value, .. } => {
            let actual = value.ty();
            match node.outputs.as_slice() {
                [declared] if *declared == actual => {}
                [declared] => errors.push(VerifyError::ConstTypeMismatch {
                    node: describe(),
                    declared: declared.clone(),
                    actual,
                }),
                outputs => errors.push(VerifyError::OutputCount {
                    node: describe(),
                    expected: 1,
                    got: outputs.len(),
                }),
            }
            return;
        }
        NodeKind::Op(op) => op,
    };

    // Structure: input count, required inputs, existing ports, output count.
    let mut structurally_sound = true;
    let inputs = graph.node_inputs(id);
    let (min_inputs, max_inputs) = op.input_count_range();
    let variadic = max_inputs == usize::MAX;
    if inputs.len() > max_inputs || (variadic && inputs.len() < min_inputs) {
        structurally_sound = false;
        errors.push(VerifyError::InputCount {
            node: describe(),
            op: op.name(),
            expected: match (min_inputs, max_inputs) {
                (_, usize::MAX) => format!("at least {min_inputs}"),
                _ if min_inputs == max_inputs => format!("exactly {min_inputs}"),
                _ => format!("{min_inputs} to {max_inputs}"),
            },
            got: inputs.len(),
        });
    }
    let n_required = if variadic { inputs.len() } else { min_inputs };
    for slot_idx in 0..n_required {
        if inputs.get(slot_idx).copied().flatten().is_none() {
            structurally_sound = false;
            errors.push(VerifyError::MissingInput {
                node: describe(),
                op: op.name(),
                slot_idx,
                name: op.input_name(slot_idx),
            });
        }
    }
    for (slot_idx, value) in inputs.iter().enumerate() {
        let Some(value) = value else { continue };
        let source = graph.node(value.node);
        if value.port as usize >= source.outputs.len() {
            structurally_sound = false;
            errors.push(VerifyError::DanglingInput {
                node: describe(),
                op: op.name(),
                slot_idx,
                source_node: source.describe(),
                port: value.port,
                n_outputs: source.outputs.len(),
            });
        }
    }
    let output_count_ok = node.outputs.len() == op.num_outputs();
    if !output_count_ok {
        errors.push(VerifyError::OutputCount {
            node: describe(),
            expected: op.num_outputs(),
            got: node.outputs.len(),
        });
    }

    // Types, unless the inputs' declared types are missing or suspect.
    let reads_rejecting = inputs.iter().flatten().any(|v| rejecting.contains(&v.node));
    if !structurally_sound || reads_rejecting {
        return;
    }
    let types = declared_input_types(graph, &inputs);
    let refs: Vec<Option<&TensorType>> = types.iter().map(Option::as_ref).collect();
    match infer_types(op, &refs) {
        Err(source) => errors.push(VerifyError::Inference {
            node: describe(),
            op: op.name(),
            source,
        }),
        Ok(inferred) if output_count_ok => {
            for (port_idx, (declared, inferred)) in node.outputs.iter().zip(inferred).enumerate() {
                if *declared != inferred {
                    errors.push(VerifyError::OutputTypeMismatch {
                        node: describe(),
                        op: op.name(),
                        port_idx,
                        declared: declared.clone(),
                        inferred,
                    });
                }
            }
        }
        Ok(_) => {}
    }
}
