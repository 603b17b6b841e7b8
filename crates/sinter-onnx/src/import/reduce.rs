//! Reductions (`ReduceSum`, `ReduceMean`, ..., `ReduceLogSumExp`) and `ArgMax`/`ArgMin`.
//!
//! The reduced axes are an attribute until the op's "axes as input" opset (13 for `ReduceSum`, 18
//! for the others) and an optional constant input from then on, when `noop_with_empty_axes` also
//! appears. `keepdims` and `select_last_index` are ints in ONNX and bools here.

use super::{one, Lowered, NodeCx, NodeResult};
use sinter_ir::{Op, Reduction};

/// The opset from which a reduction's `axes` is an input rather than an attribute.
fn axes_input_opset(kind: Reduction) -> i64 {
    match kind {
        Reduction::Sum => 13,
        _ => 18,
    }
}

pub(crate) fn reduce(cx: &mut NodeCx, kind: Reduction) -> NodeResult<Lowered> {
    let attrs = cx.attrs();
    let keepdims = attrs.flag_or("keepdims", true)?;
    let (axes, noop_with_empty_axes) = if cx.opset < axes_input_opset(kind) {
        (attrs.ints_or_empty("axes")?, false)
    } else {
        (
            cx.const_ints(1, "axes")?.unwrap_or_default(),
            attrs.flag_or("noop_with_empty_axes", false)?,
        )
    };
    let x = cx.input(0)?;
    one(cx.emit1(kind.op(axes, keepdims, noop_with_empty_axes), &[x])?)
}

pub(crate) fn arg_reduce(cx: &mut NodeCx, is_max: bool) -> NodeResult<Lowered> {
    let attrs = cx.attrs();
    let axis = attrs.int_or("axis", 0)?;
    let keepdims = attrs.flag_or("keepdims", true)?;
    let select_last_index = attrs.flag_or("select_last_index", false)?;
    let op = if is_max {
        Op::ArgMax {
            axis,
            keepdims,
            select_last_index,
        }
    } else {
        Op::ArgMin {
            axis,
            keepdims,
            select_last_index,
        }
    };
    let x = cx.input(0)?;
    one(cx.emit1(op, &[x])?)
}
