//! Neural-network layers: `MatMul`, `Gemm`, `Conv`, `ConvTranspose`, the pools, the normalizations
//! (`BatchNormalization`, `InstanceNormalization`, `LRN`, `LayerNormalization`, `RMSNormalization`,
//! `GroupNormalization`) and `Softmax`/`LogSoftmax`.
//!
//! Version differences handled here:
//! - `Softmax`/`LogSoftmax` before opset 13 normalize jointly over every axis from `axis` on (the
//!   input coerced to 2-d); unless `axis` is the last axis this becomes `flatten`, the op on the last
//!   axis, and a `reshape` back.
//! - `BatchNormalization`: `spatial` (opsets 6–7) must be 1, `training_mode` (14+) must be 0, and the
//!   training outputs must be unused; parameters of another float dtype (15+) are cast to `X`'s.
//! - `GroupNormalization` 18 has one scale and bias per group; they are gathered into per-channel
//!   vectors. Opset 21 is per channel already.
//! - Only the first outputs of `MaxPool` (not `Indices`) and `BatchNormalization` (not the
//!   training statistics) are supported; using another is reported. `LayerNormalization`'s `Mean`
//!   and `InvStdDev`, which the IR op does not produce, are computed with reductions when used.

use super::{invalid, one, unsupported, Lowered, NodeCx, NodeResult, Opd};
use sinter_ir::{AutoPad, DType, Dim, Op, Tensor};

pub(crate) fn matmul(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let a = cx.input(0)?;
    let b = cx.input(1)?;
    one(cx.emit1(Op::MatMul {}, &[a, b])?)
}

pub(crate) fn gemm(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let attrs = cx.attrs();
    let op = Op::Gemm {
        alpha: attrs.float_or("alpha", 1.0)?,
        beta: attrs.float_or("beta", 1.0)?,
        trans_a: attrs.flag_or("transA", false)?,
        trans_b: attrs.flag_or("transB", false)?,
    };
    let inputs = [Some(cx.input(0)?), Some(cx.input(1)?), cx.opt_input(2)];
    one(cx.emit_opt1(op, &inputs)?)
}

fn auto_pad(cx: &NodeCx) -> NodeResult<AutoPad> {
    let text = cx.attrs().string_or("auto_pad", "NOTSET")?;
    match AutoPad::from_name(&text.to_ascii_lowercase()) {
        Some(mode) => Ok(mode),
        None => invalid(format!(
            "attribute `auto_pad` must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, got {text:?}"
        )),
    }
}

/// Checks an explicit `kernel_shape` against the static spatial dims of the weights.
fn check_kernel_shape(cx: &NodeCx, w: Opd) -> NodeResult<()> {
    let Some(kernel) = cx.attrs().ints("kernel_shape")? else {
        return Ok(());
    };
    let dims = cx.dims(w);
    let spatial = dims.get(2..).unwrap_or(&[]);
    let agrees = kernel.len() == spatial.len()
        && kernel.iter().zip(spatial).all(|(&k, d)| match d {
            Dim::Static(n) => usize::try_from(k).is_ok_and(|k| k == *n),
            Dim::Sym(_) => true,
        });
    if !agrees {
        return invalid(format!(
            "attribute `kernel_shape` {kernel:?} disagrees with the weights' shape {}",
            cx.ty(w).shape
        ));
    }
    Ok(())
}

pub(crate) fn conv(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let w = cx.input(1)?;
    check_kernel_shape(cx, w)?;
    let attrs = cx.attrs();
    let op = Op::Conv {
        strides: attrs.ints_or_empty("strides")?,
        pads: attrs.ints_or_empty("pads")?,
        dilations: attrs.ints_or_empty("dilations")?,
        group: attrs.int_or("group", 1)?,
        auto_pad: auto_pad(cx)?,
    };
    one(cx.emit_opt1(op, &[Some(x), Some(w), cx.opt_input(2)])?)
}

pub(crate) fn conv_transpose(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let w = cx.input(1)?;
    check_kernel_shape(cx, w)?;
    let attrs = cx.attrs();
    let op = Op::ConvTranspose {
        strides: attrs.ints_or_empty("strides")?,
        pads: attrs.ints_or_empty("pads")?,
        dilations: attrs.ints_or_empty("dilations")?,
        group: attrs.int_or("group", 1)?,
        auto_pad: auto_pad(cx)?,
        output_padding: attrs.ints_or_empty("output_padding")?,
        output_shape: attrs.ints_or_empty("output_shape")?,
    };
    one(cx.emit_opt1(op, &[Some(x), Some(w), cx.opt_input(2)])?)
}

/// The attributes the two pools share.
struct PoolAttrs {
    kernel_shape: Vec<i64>,
    strides: Vec<i64>,
    pads: Vec<i64>,
    dilations: Vec<i64>,
    auto_pad: AutoPad,
    ceil_mode: bool,
}

fn pool_attrs(cx: &NodeCx) -> NodeResult<PoolAttrs> {
    let attrs = cx.attrs();
    let Some(kernel_shape) = attrs.ints("kernel_shape")? else {
        return invalid("attribute `kernel_shape` is required");
    };
    Ok(PoolAttrs {
        kernel_shape,
        strides: attrs.ints_or_empty("strides")?,
        pads: attrs.ints_or_empty("pads")?,
        dilations: attrs.ints_or_empty("dilations")?,
        auto_pad: auto_pad(cx)?,
        ceil_mode: attrs.flag_or("ceil_mode", false)?,
    })
}

pub(crate) fn max_pool(cx: &mut NodeCx) -> NodeResult<Lowered> {
    if cx.output_used(1) {
        return unsupported("the `Indices` output of MaxPool is not supported");
    }
    let x = cx.input(0)?;
    let p = pool_attrs(cx)?;
    let op = Op::MaxPool {
        kernel_shape: p.kernel_shape,
        strides: p.strides,
        pads: p.pads,
        dilations: p.dilations,
        auto_pad: p.auto_pad,
        ceil_mode: p.ceil_mode,
    };
    one(cx.emit1(op, &[x])?)
}

pub(crate) fn average_pool(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let p = pool_attrs(cx)?;
    let op = Op::AveragePool {
        kernel_shape: p.kernel_shape,
        strides: p.strides,
        pads: p.pads,
        dilations: p.dilations,
        auto_pad: p.auto_pad,
        ceil_mode: p.ceil_mode,
        count_include_pad: cx.attrs().flag_or("count_include_pad", false)?,
    };
    one(cx.emit1(op, &[x])?)
}

/// `x` cast to `dtype` unless it already has it.
pub(crate) fn cast_if_needed(cx: &mut NodeCx, x: Opd, dtype: DType) -> NodeResult<Opd> {
    if cx.ty(x).dtype == dtype {
        Ok(x)
    } else {
        cx.emit1(Op::Cast { to: dtype }, &[x])
    }
}

pub(crate) fn batch_norm(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let attrs = cx.attrs();
    if cx.opset < 9 && !attrs.flag_or("spatial", true)? {
        return unsupported("`spatial = 0` (per-activation statistics) is not supported");
    }
    if cx.opset >= 14 && attrs.flag_or("training_mode", false)? {
        return unsupported("training mode (`training_mode = 1`) is not supported");
    }
    if let Some(output_idx) = (1..cx.n_outputs()).find(|&idx| cx.output_used(idx)) {
        return unsupported(format!(
            "output {output_idx} (a training statistic) is used; only the normalized output is supported"
        ));
    }
    let epsilon = attrs.float_or("epsilon", 1e-5)?;
    let x = cx.input(0)?;
    let dtype = cx.ty(x).dtype;
    let mut inputs = vec![x];
    for idx in 1..5 {
        let param = cx.input(idx)?;
        inputs.push(cast_if_needed(cx, param, dtype)?);
    }
    one(cx.emit1(Op::BatchNorm { epsilon }, &inputs)?)
}

pub(crate) fn instance_norm(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let epsilon = cx.attrs().float_or("epsilon", 1e-5)?;
    let inputs = [cx.input(0)?, cx.input(1)?, cx.input(2)?];
    one(cx.emit1(Op::InstanceNorm { epsilon }, &inputs)?)
}

pub(crate) fn lrn(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let attrs = cx.attrs();
    let Some(size) = attrs.int("size")? else {
        return invalid("attribute `size` is required");
    };
    let op = Op::Lrn {
        size,
        alpha: attrs.float_or("alpha", 1e-4)?,
        beta: attrs.float_or("beta", 0.75)?,
        bias: attrs.float_or("bias", 1.0)?,
    };
    let x = cx.input(0)?;
    one(cx.emit1(op, &[x])?)
}

/// Which of the two softmax ops.
#[derive(Clone, Copy)]
pub(crate) enum SoftmaxKind {
    Softmax,
    LogSoftmax,
}

impl SoftmaxKind {
    fn op(self, axis: i64) -> Op {
        match self {
            SoftmaxKind::Softmax => Op::Softmax { axis },
            SoftmaxKind::LogSoftmax => Op::LogSoftmax { axis },
        }
    }
}

/// A reshape target that restores `dims` from any shape with the same element count: static dims
/// as they are, a single symbolic dim as `-1`.
pub(crate) fn restore_target(dims: &[Dim]) -> Result<Vec<i64>, String> {
    let n_symbolic = dims.iter().filter(|d| d.as_static().is_none()).count();
    if n_symbolic > 1 {
        return Err(format!(
            "restoring the shape {} needs more than one inferred dim",
            sinter_ir::Shape(dims.to_vec())
        ));
    }
    Ok(dims
        .iter()
        .map(|d| d.as_static().map_or(-1, |n| n as i64))
        .collect())
}

pub(crate) fn softmax(cx: &mut NodeCx, kind: SoftmaxKind) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    if cx.opset >= 13 {
        let axis = cx.attrs().int_or("axis", -1)?;
        return one(cx.emit1(kind.op(axis), &[x])?);
    }
    // Before opset 13 the input is coerced to 2-d at `axis` and normalized over the second dim.
    let axis = cx.attrs().int_or("axis", 1)?;
    let dims = cx.dims(x);
    let rank = dims.len() as i64;
    let axis_idx = if axis < 0 { axis + rank } else { axis };
    if !(0..=rank).contains(&axis_idx) {
        return invalid(format!(
            "attribute `axis` = {axis} is out of range for rank {rank}"
        ));
    }
    if axis_idx >= rank - 1 {
        return one(cx.emit1(kind.op(-1), &[x])?);
    }
    let target = restore_target(&dims).or_else(|reason| {
        unsupported(format!(
            "softmax over axes {axis_idx}.. of a rank-{rank} input before opset 13 flattens and \
             restores the input, and {reason}"
        ))
    })?;
    let flat = cx.emit1(Op::Flatten { axis: axis_idx }, &[x])?;
    let normalized = cx.emit1(kind.op(-1), &[flat])?;
    one(cx.emit1(
        Op::Reshape {
            shape: target,
            allowzero: false,
        },
        &[normalized],
    )?)
}

/// Rejects a `stash_type` other than 1 (f32 statistics).
fn check_stash_type(cx: &NodeCx) -> NodeResult<()> {
    let stash_type = cx.attrs().int_or("stash_type", 1)?;
    if stash_type != 1 {
        return unsupported(format!(
            "`stash_type` = {stash_type} is not supported (only 1, statistics in f32)"
        ));
    }
    Ok(())
}

pub(crate) fn layer_norm(cx: &mut NodeCx) -> NodeResult<Lowered> {
    check_stash_type(cx)?;
    let attrs = cx.attrs();
    let axis = attrs.int_or("axis", -1)?;
    let epsilon = attrs.float_or("epsilon", 1e-5)?;
    let x = cx.input(0)?;
    let inputs = [Some(x), Some(cx.input(1)?), cx.opt_input(2)];
    let y = cx.emit_opt1(Op::LayerNorm { axis, epsilon }, &inputs)?;
    if !cx.output_used(1) && !cx.output_used(2) {
        return one(y);
    }
    let (mean, inv_std_dev) = layer_norm_statistics(cx, x, axis, epsilon)?;
    Ok(vec![Some(y), Some(mean), Some(inv_std_dev)])
}

/// LayerNormalization's optional `Mean` and `InvStdDev` outputs, which the IR op does not produce:
/// the mean and `1 / sqrt(variance + epsilon)` over the normalized axes, kept as unit dims, in f32
/// (`stash_type` 1).
fn layer_norm_statistics(
    cx: &mut NodeCx,
    x: Opd,
    axis: i64,
    epsilon: f32,
) -> NodeResult<(Opd, Opd)> {
    let rank = cx.ty(x).rank() as i64;
    let axis_idx = if axis < 0 { axis + rank } else { axis };
    if !(0..rank).contains(&axis_idx) {
        return invalid(format!(
            "attribute `axis` = {axis} is out of range for rank {rank}"
        ));
    }
    let x = cast_if_needed(cx, x, DType::F32)?;
    let mean_over = |axes: Vec<i64>| Op::ReduceMean {
        axes,
        keepdims: true,
        noop_with_empty_axes: false,
    };
    let axes: Vec<i64> = (axis_idx..rank).collect();
    let mean = cx.emit1(mean_over(axes.clone()), &[x])?;
    let centered = cx.emit1(Op::Sub {}, &[x, mean])?;
    let squared = cx.emit1(Op::Mul {}, &[centered, centered])?;
    let variance = cx.emit1(mean_over(axes), &[squared])?;
    let epsilon = cx.constant(Tensor::scalar(epsilon));
    let shifted = cx.emit1(Op::Add {}, &[variance, epsilon])?;
    let std_dev = cx.emit1(Op::Sqrt {}, &[shifted])?;
    let inv_std_dev = cx.emit1(Op::Reciprocal {}, &[std_dev])?;
    Ok((mean, inv_std_dev))
}

pub(crate) fn rms_norm(cx: &mut NodeCx) -> NodeResult<Lowered> {
    check_stash_type(cx)?;
    let attrs = cx.attrs();
    let op = Op::RmsNorm {
        axis: attrs.int_or("axis", -1)?,
        epsilon: attrs.float_or("epsilon", 1e-5)?,
    };
    let inputs = [cx.input(0)?, cx.input(1)?];
    one(cx.emit1(op, &inputs)?)
}

pub(crate) fn group_norm(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let attrs = cx.attrs();
    let Some(num_groups) = attrs.int("num_groups")? else {
        return invalid("attribute `num_groups` is required");
    };
    let epsilon = attrs.float_or("epsilon", 1e-5)?;
    let x = cx.input(0)?;
    let mut scale = cx.input(1)?;
    let mut bias = cx.input(2)?;
    if cx.opset >= 21 {
        check_stash_type(cx)?;
    } else {
        // Opset 18: one scale and bias per group; channel c belongs to group c / (C / G).
        let channels = match cx.dims(x).get(1) {
            Some(Dim::Static(c)) => *c,
            Some(Dim::Sym(s)) => {
                return unsupported(format!(
                    "opset-18 group normalization repeats its per-group scale per channel, which \
                     needs a static channel count (got `{s}`)"
                ))
            }
            None => return invalid(format!("input `X` {} has no channel axis", cx.ty(x))),
        };
        let groups = usize::try_from(num_groups)
            .ok()
            .filter(|&g| g > 0 && channels % g == 0);
        let Some(groups) = groups else {
            return invalid(format!(
                "attribute `num_groups` = {num_groups} must be positive and divide the {channels} channels"
            ));
        };
        if channels > super::MAX_FOLDED_ELEMENTS {
            return unsupported(format!(
                "opset-18 group normalization over {channels} channels builds a per-channel index \
                 larger than the import limit"
            ));
        }
        let per_group = channels / groups;
        let indices: Vec<i64> = (0..channels).map(|c| (c / per_group) as i64).collect();
        let indices = Tensor::from_vec(vec![channels], indices)
            .map_err(|e| super::NodeError::Invalid(e.to_string()))?;
        let indices = cx.constant(indices);
        scale = cx.emit1(Op::Gather { axis: 0 }, &[scale, indices])?;
        bias = cx.emit1(Op::Gather { axis: 0 }, &[bias, indices])?;
    }
    one(cx.emit1(
        Op::GroupNorm {
            num_groups,
            epsilon,
        },
        &[x, scale, bias],
    )?)
}
