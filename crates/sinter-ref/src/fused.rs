//! Reference fused ops (`fused_conv`, `fused_matmul`, `conv_pool`): the plain ops of
//! `Op::fused_parts` evaluated one after the other with their own reference implementations, so a
//! fused op means exactly what its decomposition means.
//!
//! Unlike the plain ops, a fused op is validated by `sinter_ir::infer_types` (which infers it part
//! by part) before anything is evaluated: a later part's invalid attributes (a pool window that
//! cannot fit) must reject the op before an earlier part allocates its intermediate, which may be
//! of any size. The plain parts themselves stay independent of inference, and
//! `tests/infer_ref_agreement.rs` holds each of them to it.

use crate::index::optional_input;
use crate::{eval_op, op_err, OpError};
use sinter_ir::{Op, Tensor, TensorType};

pub(crate) fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let parts = match op.fused_parts() {
        Some(Ok(parts)) => parts,
        Some(Err(message)) => return op_err(format!("`{}`: {message}", op.name())),
        None => return op_err(format!("`{}` is not a fused op", op.name())),
    };
    let input = |slot: usize| optional_input(inputs, slot);
    // The parts are checked together before any is evaluated: a conv_pool whose pool is invalid
    // must be rejected before its convolution allocates an intermediate of any size.
    let types: Vec<Option<TensorType>> = inputs.iter().map(|t| t.map(Tensor::ty)).collect();
    let type_refs: Vec<Option<&TensorType>> = types.iter().map(Option::as_ref).collect();
    if let Err(e) = sinter_ir::infer_types(op, &type_refs) {
        return op_err(e.to_string());
    }
    let product_inputs: Vec<Option<&Tensor>> = (0..parts.n_product_inputs()).map(input).collect();
    let restate = |e: OpError| OpError(format!("`{}`: {}", op.name(), e.0));
    let mut value = one(eval_op(&parts.product, &product_inputs).map_err(restate)?);
    // Inference checked the addend: the residual has the convolution's type, the bias
    // broadcasts into the product without enlarging it.
    if let Some(addend) = parts.addend_slot.and_then(input) {
        value = one(eval_op(&Op::Add {}, &[Some(&value), Some(addend)]).map_err(restate)?);
    }
    for part in [&parts.activation, &parts.pool].into_iter().flatten() {
        value = one(eval_op(part, &[Some(&value)]).map_err(restate)?);
    }
    Ok(vec![value])
}

/// The single output of a part (every part has one).
fn one(mut outputs: Vec<Tensor>) -> Tensor {
    outputs.swap_remove(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, f32s, t32};
    use sinter_ir::{AutoPad, FusedActivation, PoolKind};

    fn fused_conv(activation: FusedActivation, params: Vec<f32>) -> Op {
        Op::FusedConv {
            strides: vec![],
            pads: vec![],
            dilations: vec![],
            group: 1,
            auto_pad: AutoPad::NotSet,
            activation,
            activation_params: params,
        }
    }

    #[test]
    fn fused_conv_adds_bias_and_residual_then_activates() {
        // x [1,1,1,3] * w [1,1,1,1] = 2x; bias -3, residual [0, 1, 0].
        let x = t32(&[1, 1, 1, 3], &[1.0, 2.0, 3.0]);
        let w = t32(&[1, 1, 1, 1], &[2.0]);
        let b = t32(&[1], &[-3.0]);
        let z = t32(&[1, 1, 1, 3], &[0.0, 1.0, 0.0]);
        let op = fused_conv(FusedActivation::LeakyRelu, vec![0.5]);
        let y = eval(&op, &[Some(&x), Some(&w), Some(&b), Some(&z)]).unwrap();
        assert_close(&f32s(&y[0]), &[-0.5, 2.0, 3.0]);
        // Without bias and residual, clip to [0, 3].
        let op = fused_conv(FusedActivation::Clip, vec![0.0, 3.0]);
        let y = eval(&op, &[Some(&x), Some(&w), None, None]).unwrap();
        assert_close(&f32s(&y[0]), &[2.0, 3.0, 3.0]);
    }

    #[test]
    fn fused_conv_rejects_a_residual_of_another_shape_and_bad_params() {
        let x = t32(&[1, 1, 1, 3], &[1.0, 2.0, 3.0]);
        let w = t32(&[1, 1, 1, 1], &[2.0]);
        let z = t32(&[3], &[0.0, 1.0, 0.0]);
        let op = fused_conv(FusedActivation::Relu, vec![]);
        let err = eval(&op, &[Some(&x), Some(&w), None, Some(&z)]).unwrap_err();
        assert!(err.0.contains("residual `z` must have"), "{err}");
        let op = fused_conv(FusedActivation::Relu, vec![1.0]);
        let err = eval(&op, &[Some(&x), Some(&w), None, None]).unwrap_err();
        assert!(err.0.contains("takes 0 activation_params"), "{err}");
    }

    #[test]
    fn fused_matmul_broadcasts_its_bias_but_never_enlarges() {
        let a = t32(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let b = t32(&[2, 2], &[1.0, 0.0, 0.0, 1.0]);
        let bias = t32(&[2], &[-2.0, 0.0]);
        let op = Op::FusedMatMul {
            activation: FusedActivation::Relu,
            activation_params: vec![],
        };
        let y = eval(&op, &[Some(&a), Some(&b), Some(&bias)]).unwrap();
        assert_close(&f32s(&y[0]), &[0.0, 2.0, 1.0, 4.0]);
        let big = t32(&[3, 1, 1], &[0.0; 3]);
        let err = eval(&op, &[Some(&a), Some(&b), Some(&big)]).unwrap_err();
        assert!(err.0.contains("without enlarging it"), "{err}");
    }

    #[test]
    fn conv_pool_pools_the_activated_convolution() {
        // Identity conv of a 1x1x4x4 ramp minus 8, relu, then 2x2 max and average pools.
        let x = t32(
            &[1, 1, 4, 4],
            &(0..16).map(|v| v as f32).collect::<Vec<_>>(),
        );
        let w = t32(&[1, 1, 1, 1], &[1.0]);
        let b = t32(&[1], &[-8.0]);
        let op = |pool| Op::ConvPool {
            strides: vec![],
            pads: vec![],
            dilations: vec![],
            group: 1,
            auto_pad: AutoPad::NotSet,
            activation: FusedActivation::Relu,
            activation_params: vec![],
            pool,
            pool_kernel_shape: vec![2, 2],
            pool_strides: vec![2, 2],
            pool_pads: vec![],
            pool_ceil_mode: false,
            count_include_pad: false,
        };
        let y = eval(&op(PoolKind::Max), &[Some(&x), Some(&w), Some(&b)]).unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 2, 2]);
        assert_close(&f32s(&y[0]), &[0.0, 0.0, 5.0, 7.0]);
        let y = eval(&op(PoolKind::Average), &[Some(&x), Some(&w), Some(&b)]).unwrap();
        // Windows of relu(v - 8): {0,0,0,0}, {0,0,0,0}, {0,1,4,5}, {2,3,6,7}.
        assert_close(&f32s(&y[0]), &[0.0, 0.0, 2.5, 4.5]);
        // A pool kernel larger than the convolution's output is the pool's error, restated.
        let mut bad = op(PoolKind::Max);
        if let Op::ConvPool {
            pool_kernel_shape, ..
        } = &mut bad
        {
            *pool_kernel_shape = vec![5, 5];
        }
        let err = eval(&bad, &[Some(&x), Some(&w), Some(&b)]).unwrap_err();
        assert!(err.0.starts_with("`conv_pool`: "), "{err}");
    }
}
