//! The e-class analysis: what is known about every class, and the side tables leaves index.
//!
//! Every class carries [`Facts`]: the output types (inferred with `sinter_ir::infer_types`, so the
//! optimizer and the verifier agree on every shape), whether the value depends only on weights, the
//! value itself when it is a weight or a small weight-only expression (evaluated with the reference
//! interpreter), and the scalar it splats when every element is equal. Rule conditions read these.
//!
//! **Invariant: a rule condition only tests facts that stay true when classes merge.** Types of merged
//! classes are equal (a rewrite that changed a type would be a bug, and is counted in
//! [`GraphAnalysis::conflicts`], which tests assert empty); const-ness, values and scalars only ever go
//! from unknown to known.

use crate::lang::{AttrsId, ENode};
use egg::{Analysis, DidMerge, EGraph, Id};
use sinter_ir::{DType, Op, Tensor, TensorType};
use std::collections::HashMap;
use std::sync::Arc;

/// The e-graph type of the optimizer.
pub type Egraph = EGraph<ENode, GraphAnalysis>;

/// Weight-only values up to this many elements are evaluated during saturation, so rules can inspect
/// them (a causal mask of a 1024-token model is 1M elements). Larger ones are folded after extraction.
pub const MAX_EVALUATED_ELEMENTS: usize = 1 << 20;

/// Weight-only values are evaluated while their classes are made only when every input has at most
/// this many elements.
pub const MAX_EAGER_INPUT_ELEMENTS: usize = 4096;

/// Weights of at most this many elements are interned by content.
const MAX_INTERNED_WEIGHT: usize = 4096;

/// What is known about one e-class.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// One type per output; empty for attribute and absent leaves.
    pub types: Vec<TensorType>,
    /// The value depends on weights only (attribute and absent leaves count as constant).
    pub is_const: bool,
    /// The value, for weights and weight-only values of at most [`MAX_EVALUATED_ELEMENTS`]. Shared
    /// with the side table, so facts never copy tensor data.
    pub value: Option<Arc<Tensor>>,
    /// The value every element has, when the value is known and all elements are equal.
    pub scalar: Option<f64>,
    /// For an attributes leaf, its interned op.
    pub attrs: Option<AttrsId>,
    /// The label of the source node this class first stood for, for messages and `--explain`.
    pub origin: Option<Arc<str>>,
}

impl Facts {
    /// The type of a single-output class.
    pub fn ty(&self) -> Option<&TensorType> {
        match self.types.as_slice() {
            [ty] => Some(ty),
            _ => None,
        }
    }
}

/// A named weight of the side table.
#[derive(Clone, Debug)]
pub struct Weight {
    pub name: String,
    pub tensor: Arc<Tensor>,
}

/// Which rule added an e-node, for `--explain`.
#[derive(Clone, Debug)]
pub struct Provenance {
    /// The node the rule added (its children as they were then; canonicalise before comparing).
    pub node: ENode,
    pub rule: String,
    /// The class the rule matched at.
    pub matched: Id,
}

/// The analysis state: side tables for leaves, and a record of anything that went wrong.
#[derive(Debug, Default)]
pub struct GraphAnalysis {
    /// Interned ops (attributes included); [`ENode::Attrs`] indexes it.
    pub ops: Vec<Op>,
    op_index: HashMap<String, AttrsId>,
    /// The weights; [`ENode::Weight`] indexes it.
    pub weights: Vec<Weight>,
    weight_index: HashMap<(DType, Vec<usize>, Vec<u8>), u32>,
    /// Graph inputs; [`ENode::Input`] indexes it.
    pub inputs: Vec<(String, TensorType)>,
    /// Merges of classes whose types disagreed, and nodes whose types could not be inferred. Either
    /// is a bug in a rule; tests assert this stays empty.
    pub conflicts: Vec<String>,
    /// The nodes rules added, in order.
    pub provenance: Vec<Provenance>,
    /// The rule whose applier is running, so the nodes it adds are attributed to it.
    pub current_rule: Option<(String, Id)>,
}

impl GraphAnalysis {
    /// The interned id of `op` (compared by name and printed attributes, which are bit-exact).
    pub fn intern_op(&mut self, op: Op) -> AttrsId {
        let key = format!("{} {:?}", op.name(), op.attrs());
        if let Some(id) = self.op_index.get(&key) {
            return *id;
        }
        let id = AttrsId(self.ops.len() as u32);
        self.ops.push(op);
        self.op_index.insert(key, id);
        id
    }

    /// Adds a weight to the side table and returns its index. Small weights are interned by content,
    /// so a rule that fires again on the same match adds no new leaf and saturation can finish.
    pub fn add_weight(&mut self, name: String, tensor: Tensor) -> u32 {
        let key = (tensor.len() <= MAX_INTERNED_WEIGHT).then(|| {
            (
                tensor.dtype(),
                tensor.shape().to_vec(),
                tensor.data().to_le_bytes(),
            )
        });
        if let Some(idx) = key.as_ref().and_then(|k| self.weight_index.get(k)) {
            return *idx;
        }
        self.weights.push(Weight {
            name,
            tensor: Arc::new(tensor),
        });
        let idx = (self.weights.len() - 1) as u32;
        if let Some(key) = key {
            self.weight_index.insert(key, idx);
        }
        idx
    }
}

/// The op an op node of `egraph` stands for: its interned op, or the attribute-less op of its name.
pub fn op_of(egraph: &Egraph, node: &ENode) -> Option<Op> {
    let name = node.op_name()?;
    match node.attrs_child() {
        Some(attrs) => {
            let id = egraph[attrs].data.attrs?;
            Some(egraph.analysis.ops[id.0 as usize].clone())
        }
        None => Op::from_attrs(name, vec![]).ok(),
    }
}

/// Drops trailing absent inputs (keeping at least one slot): they are not inputs at all for
/// inference, evaluation or the graph.
pub fn trim_trailing_absent<T>(slots: &mut Vec<Option<T>>) {
    while slots.len() > 1 && slots.last().is_some_and(Option::is_none) {
        slots.pop();
    }
}

/// `op` evaluated by the reference interpreter on `args` (`None` for absent inputs), or `None` if
/// it fails or has more than one output.
fn evaluate(op: &Op, mut args: Vec<Option<Arc<Tensor>>>) -> Option<Arc<Tensor>> {
    trim_trailing_absent(&mut args);
    let refs: Vec<Option<&Tensor>> = args.iter().map(|a| a.as_deref()).collect();
    let mut outputs = sinter_ref::eval_op(op, &refs).ok()?;
    (outputs.len() == 1).then(|| Arc::new(outputs.pop().expect("one output")))
}

/// The single value every element of `tensor` has, if there is one.
fn splat_value(tensor: &Tensor) -> Option<f64> {
    if tensor.is_empty() {
        return None;
    }
    let data = tensor.data();
    let first = data.get_f64(0);
    if first.is_nan() {
        return None;
    }
    (1..tensor.len())
        .all(|idx| data.get_f64(idx) == first)
        .then_some(first)
}

fn op_facts(egraph: &mut Egraph, enode: &ENode) -> Facts {
    let name = enode.op_name().expect("an op node");
    let Some(op) = op_of(egraph, enode) else {
        egraph
            .analysis
            .conflicts
            .push(format!("`{name}` node without attributes"));
        return Facts::default();
    };
    let inputs = enode.op_inputs();
    let mut input_types: Vec<Option<TensorType>> = Vec::with_capacity(inputs.len());
    let mut is_const = true;
    for &child in inputs {
        let facts = &egraph[child].data;
        is_const &= facts.is_const;
        input_types.push(facts.ty().cloned());
    }
    trim_trailing_absent(&mut input_types);
    let refs: Vec<Option<&TensorType>> = input_types.iter().map(Option::as_ref).collect();
    let types = match sinter_ir::infer_types(&op, &refs) {
        Ok(types) => types,
        Err(err) => {
            egraph
                .analysis
                .conflicts
                .push(format!("`{name}` node: {err}"));
            return Facts::default();
        }
    };
    let small = types.len() == 1
        && types[0]
            .shape
            .num_elements()
            .is_some_and(|n| n <= MAX_EVALUATED_ELEMENTS);
    // Evaluated eagerly only from small inputs (scalars, per-channel vectors, shape-sized values): a
    // causal mask built from scalars is, a folded conv weight is not (no rule reads its data; the
    // folding pass evaluates it once, after extraction). Rules that need the data of a large
    // weight-only value ask `const_value`.
    let small_inputs = inputs.iter().all(|&child| {
        egraph[child].data.ty().is_none_or(|t| {
            t.shape
                .num_elements()
                .is_some_and(|n| n <= MAX_EAGER_INPUT_ELEMENTS)
        })
    });
    let value = if is_const && small && small_inputs {
        let args: Option<Vec<Option<Arc<Tensor>>>> = inputs
            .iter()
            .map(|&child| {
                let facts = &egraph[child].data;
                match facts.ty() {
                    None => Some(None),
                    Some(_) => facts.value.clone().map(Some),
                }
            })
            .collect();
        args.and_then(|args| evaluate(&op, args))
    } else {
        None
    };
    let scalar = value.as_deref().and_then(splat_value);
    Facts {
        types,
        is_const,
        value,
        scalar,
        attrs: None,
        origin: None,
    }
}

impl Analysis<ENode> for GraphAnalysis {
    type Data = Facts;

    fn make(egraph: &mut Egraph, enode: &ENode, _id: Id) -> Facts {
        if let Some((rule, matched)) = egraph.analysis.current_rule.clone() {
            egraph.analysis.provenance.push(Provenance {
                node: enode.clone(),
                rule,
                matched,
            });
        }
        match enode {
            ENode::Op { .. } => op_facts(egraph, enode),
            ENode::Attrs(id) => Facts {
                is_const: true,
                attrs: Some(*id),
                ..Facts::default()
            },
            ENode::Input(n) => Facts {
                types: vec![egraph.analysis.inputs[*n as usize].1.clone()],
                ..Facts::default()
            },
            ENode::Weight(n) => {
                let tensor = Arc::clone(&egraph.analysis.weights[*n as usize].tensor);
                Facts {
                    types: vec![tensor.ty()],
                    is_const: true,
                    scalar: splat_value(&tensor),
                    value: Some(tensor),
                    ..Facts::default()
                }
            }
            ENode::Absent => Facts {
                is_const: true,
                ..Facts::default()
            },
            ENode::Output { port, child } => {
                let facts = &egraph[child[0]].data;
                match facts.types.get(*port as usize) {
                    Some(ty) => Facts {
                        types: vec![ty.clone()],
                        is_const: facts.is_const,
                        ..Facts::default()
                    },
                    None => {
                        egraph
                            .analysis
                            .conflicts
                            .push(format!("output {port} of a node without it"));
                        Facts::default()
                    }
                }
            }
        }
    }

    fn merge(&mut self, a: &mut Facts, b: Facts) -> DidMerge {
        if a.types != b.types {
            self.conflicts.push(format!(
                "merged classes of different types: {:?} and {:?}",
                a.types, b.types
            ));
        }
        let mut changed_a = false;
        if !a.is_const && b.is_const {
            a.is_const = true;
            changed_a = true;
        }
        if a.value.is_none() && b.value.is_some() {
            a.value = b.value.clone();
            changed_a = true;
        }
        if a.scalar.is_none() && b.scalar.is_some() {
            a.scalar = b.scalar;
            changed_a = true;
        }
        if a.origin.is_none() && b.origin.is_some() {
            a.origin = b.origin.clone();
        }
        let changed_b = (a.is_const && !b.is_const)
            || (a.value.is_some() && b.value.is_none())
            || (a.scalar.is_some() && b.scalar.is_none());
        DidMerge(changed_a, changed_b)
    }
}

/// The value of weight-only class `id`, evaluating it (and, recursively, its weight-only operands) on
/// demand when saturation did not, and remembering it in the class's facts. `None` when the class is
/// not weight-only, is larger than [`MAX_EVALUATED_ELEMENTS`], or cannot be evaluated.
pub fn const_value(egraph: &mut Egraph, id: Id) -> Option<Arc<Tensor>> {
    const MAX_DEPTH: usize = 64;
    fn go(egraph: &mut Egraph, id: Id, depth: usize) -> Option<Arc<Tensor>> {
        let id = egraph.find(id);
        let facts = &egraph[id].data;
        if let Some(value) = &facts.value {
            return Some(Arc::clone(value));
        }
        let small = facts
            .ty()
            .and_then(|t| t.shape.num_elements())
            .is_some_and(|n| n <= MAX_EVALUATED_ELEMENTS);
        if !facts.is_const || !small || depth == 0 {
            return None;
        }
        let nodes: Vec<ENode> = egraph[id]
            .nodes
            .iter()
            .filter(|n| matches!(n, ENode::Op { .. }))
            .cloned()
            .collect();
        for node in nodes {
            let Some(op) = op_of(egraph, &node) else {
                continue;
            };
            let mut args: Vec<Option<Arc<Tensor>>> = Vec::new();
            let mut ok = true;
            for &child in node.op_inputs() {
                if egraph[child].data.ty().is_none() {
                    args.push(None);
                    continue;
                }
                match go(egraph, child, depth - 1) {
                    Some(v) => args.push(Some(v)),
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if !ok {
                continue;
            }
            if let Some(value) = evaluate(&op, args) {
                let facts = &mut egraph[id].data;
                facts.scalar = splat_value(&value);
                facts.value = Some(Arc::clone(&value));
                return Some(value);
            }
        }
        None
    }
    go(egraph, id, MAX_DEPTH)
}
