//! Shape and dtype inference for every op.
use crate::{Op, TensorType};

/// Why an op's output types cannot be inferred from its inputs.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InferError(pub String);

/// The output types of `op` applied to inputs of the given types (`None` for absent optional inputs).
pub fn infer_types(op: &Op, inputs: &[Option<&TensorType>]) -> Result<Vec<TensorType>, InferError> {
    let _ = inputs;
    Err(InferError(format!("inference for `{}` is not written yet", op.name())))
}
