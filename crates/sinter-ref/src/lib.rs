//! `sinter-ref`: the reference interpreter, the oracle for everything downstream.
//!
//! Every IR op has a plain implementation here, written to be obviously correct rather than fast:
//! index arithmetic over row-major data, accumulation in f64 where a reduction could lose precision,
//! no fusion, no clever layouts. The importer, the optimizer and the JIT are all tested by comparing
//! their results with this crate's.
//!
//! [`run`] checks the inputs against the graph's signature (dtype, rank, static dims, and consistent
//! binding of symbolic dims), evaluates nodes in the graph's canonical order, and checks every computed
//! value against the type the graph declares for it. A declared type that disagrees with the computed
//! tensor is an error, so a shape-inference bug surfaces here instead of as a wrong answer later.
//!
//! Op implementations live in one module per family; each exposes `eval(op, inputs)`.

mod attention;
pub mod compare;
mod conv;
mod elementwise;
mod fused;
pub mod index;
mod linalg;
mod movement;
mod normalize;
mod pad;
mod pool;
pub mod random;
mod recurrent;
mod reduce;
mod resize;
#[cfg(test)]
mod test_util;

use sinter_ir::{bind_inputs, Graph, InputError, NodeKind, Op, Tensor, TensorType, Value};
use std::collections::HashMap;

pub use elementwise::erf_f64;

/// An op could not be evaluated on the given inputs.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct OpError(pub String);

/// Shorthand for building an `OpError` result.
pub(crate) fn op_err<T>(message: impl Into<String>) -> Result<T, OpError> {
    Err(OpError(message.into()))
}

/// Why a graph could not be run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RunError {
    /// The inputs do not fit the graph's signature (`sinter_ir::bind_inputs`, the rule both backends
    /// use).
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{node}: {message}")]
    Op { node: String, message: String },
    #[error("{node}: output {port_idx} was declared {declared} but evaluated to {actual_dtype}{actual_shape:?}")]
    OutputTypeMismatch {
        node: String,
        port_idx: usize,
        declared: TensorType,
        actual_dtype: sinter_ir::DType,
        actual_shape: Vec<usize>,
    },
    #[error("the graph has a cycle through {node}")]
    Cycle { node: String },
}

/// Evaluates one op on concrete inputs (`None` for absent optional inputs).
pub fn eval_op(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let (min_inputs, max_inputs) = op.input_count_range();
    if inputs.len() > max_inputs {
        return op_err(format!(
            "`{}` takes at most {max_inputs} inputs, got {}",
            op.name(),
            inputs.len()
        ));
    }
    // Required inputs always precede optional ones, so the first `min_inputs` slots must be present.
    for slot_idx in 0..min_inputs {
        if inputs.get(slot_idx).copied().flatten().is_none() {
            return op_err(format!(
                "`{}` needs input `{}` (slot {slot_idx})",
                op.name(),
                op.input_name(slot_idx)
            ));
        }
    }
    // The IR's element-count invariant (see `sinter_ir::MAX_ELEMENTS`), which keeps every product of
    // dims in range; inference checks the same.
    for (slot_idx, tensor) in inputs.iter().enumerate() {
        if let Some(tensor) = tensor {
            if !sinter_ir::dims_within_max_elements(tensor.shape()) {
                return op_err(format!(
                    "`{}` input `{}` of shape {:?} has more than {} elements",
                    op.name(),
                    op.input_name(slot_idx),
                    tensor.shape(),
                    sinter_ir::MAX_ELEMENTS
                ));
            }
        }
    }
    use Op::*;
    match op {
        MatMul { .. } | Gemm { .. } => linalg::eval(op, inputs),
        Conv { .. } | ConvTranspose { .. } => conv::eval(op, inputs),
        MaxPool { .. } | AveragePool { .. } | GlobalAveragePool { .. } | GlobalMaxPool { .. } => {
            pool::eval(op, inputs)
        }
        BatchNorm { .. }
        | InstanceNorm { .. }
        | Lrn { .. }
        | Softmax { .. }
        | LogSoftmax { .. }
        | LayerNorm { .. }
        | RmsNorm { .. }
        | GroupNorm { .. } => normalize::eval(op, inputs),
        Pad { .. } => pad::eval(op, inputs),
        Resize { .. } => resize::eval(op, inputs),
        Attention { .. } => attention::eval(op, inputs),
        Rnn { .. } | Lstm { .. } | Gru { .. } => recurrent::eval(op, inputs),
        FusedConv { .. } | FusedMatMul { .. } | ConvPool { .. } => fused::eval(op, inputs),
        ReduceSum { .. }
        | ReduceMean { .. }
        | ReduceMax { .. }
        | ReduceMin { .. }
        | ReduceProd { .. }
        | ReduceL1 { .. }
        | ReduceL2 { .. }
        | ReduceSumSquare { .. }
        | ReduceLogSumExp { .. }
        | ArgMax { .. }
        | ArgMin { .. } => reduce::eval(op, inputs),
        Reshape { .. }
        | Flatten { .. }
        | Transpose { .. }
        | Squeeze { .. }
        | Unsqueeze { .. }
        | Concat { .. }
        | Split { .. }
        | Slice { .. }
        | Gather { .. }
        | GatherElements { .. }
        | Expand { .. }
        | Tile { .. }
        | Range { .. }
        | Trilu { .. }
        | Shape { .. }
        | ConstantOfShape { .. } => movement::eval(op, inputs),
        _ => elementwise::eval(op, inputs),
    }
}

/// Runs `graph` on named inputs and returns its outputs in declaration order.
pub fn run(graph: &Graph, inputs: &[(&str, Tensor)]) -> Result<Vec<(String, Tensor)>, RunError> {
    let described: Vec<(&str, sinter_ir::DType, &[usize])> = inputs
        .iter()
        .map(|(name, tensor)| (*name, tensor.dtype(), tensor.shape()))
        .collect();
    let mut bindings = bind_inputs(graph, &described)?;
    let mut values: HashMap<Value, Tensor> = HashMap::new();
    for (&id, (name, _)) in graph.inputs().iter().zip(graph.input_signature()) {
        let (_, tensor) = inputs
            .iter()
            .find(|(n, _)| *n == name)
            .expect("bind_inputs checked every input is given");
        values.insert(Value::new(id, 0), tensor.clone());
    }

    let order = graph.canonical_order().map_err(|id| RunError::Cycle {
        node: graph.node(id).describe(),
    })?;
    for id in order {
        let node = graph.node(id);
        let results = match &node.kind {
            NodeKind::Input { .. } => continue,
            NodeKind::Const { value, .. } => vec![value.clone()],
            NodeKind::Op(op) => {
                let input_values = graph.node_inputs(id);
                let args: Vec<Option<&Tensor>> = input_values
                    .iter()
                    .map(|v| v.map(|v| &values[&v]))
                    .collect();
                eval_op(op, &args).map_err(|e| RunError::Op {
                    node: node.describe(),
                    message: e.0,
                })?
            }
        };
        for (port_idx, tensor) in results.into_iter().enumerate() {
            let declared = node.outputs.get(port_idx);
            let ok = declared.is_some_and(|ty| {
                ty.dtype == tensor.dtype() && bindings.check(ty, tensor.shape()).is_ok()
            });
            if !ok {
                return Err(RunError::OutputTypeMismatch {
                    node: node.describe(),
                    port_idx,
                    declared: declared
                        .cloned()
                        .unwrap_or_else(|| TensorType::fixed(tensor.dtype(), &[])),
                    actual_dtype: tensor.dtype(),
                    actual_shape: tensor.shape().to_vec(),
                });
            }
            values.insert(Value::new(id, port_idx as u32), tensor);
        }
    }
    Ok(graph
        .outputs()
        .iter()
        .map(|(name, value)| (name.clone(), values[value].clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_beyond_the_element_count_invariant_are_rejected() {
        // An empty tensor may have large dims, but its non-zero dims must multiply to at most
        // MAX_ELEMENTS, as inference requires of every type.
        let fine = Tensor::zeros(sinter_ir::DType::F32, vec![1 << 40, 0]);
        assert_eq!(
            eval_op(&Op::Relu {}, &[Some(&fine)]).unwrap()[0].shape(),
            &[1 << 40, 0]
        );
        let huge = Tensor::zeros(sinter_ir::DType::F32, vec![usize::MAX, 2, 0]);
        let message = eval_op(&Op::Relu {}, &[Some(&huge)]).unwrap_err().0;
        assert!(message.contains("more than"), "{message}");
    }
}
