//! Reference implementations: attention (being written).
use crate::OpError;
use sinter_ir::{Op, Tensor};

pub fn eval(op: &Op, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    crate::op_err(format!("`{}` is not implemented in the reference interpreter yet", op.name()))
}
