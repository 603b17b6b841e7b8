//! Folding of weight-only subgraphs after extraction.
//!
//! Rules express derived weights as graph ops over weights: batch-norm folding multiplies a conv's
//! weight by `scale / sqrt(var + eps)`, a GEMM epilogue transposes its weight. Extraction costs such
//! nodes as free, because this pass evaluates every op node whose inputs are all constants with the
//! reference interpreter and replaces it by a constant. The interpreter is the oracle the whole
//! compiler is tested against, so folding cannot change what a graph computes.

use crate::OptError;
use sinter_ir::{Graph, NodeKind, Tensor, Value};

/// Folds every op node whose inputs are all constants; returns how many nodes were folded.
pub fn fold_weight_only(graph: &mut Graph) -> Result<usize, OptError> {
    let order = graph.canonical_order().map_err(|node| OptError::Cycle {
        node: graph.node(node).describe(),
    })?;
    let mut n_folded = 0;
    for node_id in order {
        let node = graph.node(node_id);
        let NodeKind::Op(op) = &node.kind else {
            continue;
        };
        let inputs = graph.node_inputs(node_id);
        let mut values: Vec<Option<&Tensor>> = Vec::with_capacity(inputs.len());
        let mut all_const = true;
        for input in &inputs {
            match input {
                None => values.push(None),
                Some(value) => match &graph.node(value.node).kind {
                    NodeKind::Const { value: tensor, .. } => values.push(Some(tensor)),
                    _ => {
                        all_const = false;
                        break;
                    }
                },
            }
        }
        // Nullary ops (range, constant_of_shape) are weight-only too.
        if !all_const {
            continue;
        }
        let outputs = sinter_ref::eval_op(op, &values).map_err(|err| OptError::Fold {
            node: node.describe(),
            message: err.to_string(),
        })?;
        // Named after the first constant operand (`fc1.weight.folded` for its transpose).
        let stem = inputs
            .iter()
            .flatten()
            .find_map(|value| match &graph.node(value.node).kind {
                NodeKind::Const { name, .. } => Some(format!("{name}.folded")),
                _ => None,
            })
            .unwrap_or_else(|| format!("{}.folded", op.name()));
        let mut replacements = Vec::new();
        for (port, tensor) in outputs.into_iter().enumerate() {
            let name = graph.fresh_const_name(&stem);
            let new = graph
                .add_const(name, tensor)
                .map_err(|e| OptError::Malformed(e.to_string()))?;
            replacements.push((Value::new(node_id, port as u32), new));
        }
        for (old, new) in replacements {
            graph
                .replace_uses(old, new)
                .map_err(|e| OptError::Malformed(e.to_string()))?;
        }
        graph.remove_node(node_id);
        n_folded += 1;
    }
    // Constants that only fed folded nodes are dead now.
    remove_dead_constants(graph);
    Ok(n_folded)
}

/// Removes constants nothing reads.
pub fn remove_dead_constants(graph: &mut Graph) {
    let dead: Vec<_> = graph
        .node_ids()
        .filter(|&id| matches!(graph.node(id).kind, NodeKind::Const { .. }))
        .filter(|&id| {
            graph.users(Value::new(id, 0)).is_empty()
                && !graph.outputs().iter().any(|(_, v)| v.node == id)
        })
        .collect();
    for id in dead {
        graph.remove_node(id);
    }
}
