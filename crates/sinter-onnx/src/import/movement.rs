//! Data movement and shape computations: `Identity`, `Dropout`, `Constant`, `Reshape`, `Flatten`,
//! `Transpose`, `Squeeze`, `Unsqueeze`, `Concat`, `Split`, `Slice`, `Gather`, `GatherElements`,
//! `Expand`, `Tile`, `Range`, `Trilu`, `Shape`, `Size` and `ConstantOfShape`.
//!
//! Their shape-like inputs (Reshape's shape, Slice's starts, Squeeze's axes from opset 13, ...) become
//! IR attributes, so they must be constant after folding, or, for Reshape and Expand targets, a
//! symbolic shape value the importer can resolve (see `shape_value.rs`). `Shape`, `Gather`, `Slice`,
//! `Concat`, `Unsqueeze`, `Squeeze` and `Reshape` (of a shape vector, which keeps its elements)
//! propagate shape values; `Shape` and `Size` of values whose dims are all static are constants, which
//! is what lets shape subgraphs fold.

use super::shape_value::{resolve_expand, resolve_reshape, ShapeElem, ShapeValue};
use super::{invalid, one, unsupported, Deps, Lowered, NodeCx, NodeResult, Opd};
use sinter_ir::{DType, Dim, Op, Tensor};
use std::sync::Arc;

/// `Identity`: the output is the input's operand itself.
pub(crate) fn identity(cx: &mut NodeCx) -> NodeResult<Lowered> {
    one(cx.input(0)?)
}

/// `Dropout` at inference is the identity; its optional mask is all ones (`true` from opset 10).
pub(crate) fn dropout(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    if cx.opset >= 12 {
        if cx.opt_input(2).is_some_and(|t| cx.imp.konst(t).is_none()) {
            // The ratio matters only in training mode, so it is needed exactly when the mode is.
            cx.require_constants(&[(1, "ratio"), (2, "training_mode")])?;
        }
        let training = cx
            .const_scalar(2, "training_mode")?
            .is_some_and(|v| v != 0.0);
        if training {
            let ratio = cx.const_scalar(1, "ratio")?.unwrap_or(0.5);
            if ratio != 0.0 {
                return unsupported(format!(
                    "training-mode dropout (training_mode = true, ratio = {ratio}) is random; only \
                     inference dropout (or ratio 0) is supported"
                ));
            }
        }
    }
    let mut outputs = vec![Some(x)];
    if cx.output_used(1) {
        let ty = cx.ty(x).clone();
        let Some(dims) = ty.shape.as_static() else {
            return unsupported(format!(
                "the `mask` output is used and the input {ty} has symbolic dims; a constant mask \
                 needs a static shape"
            ));
        };
        let dtype = if cx.opset >= 10 {
            DType::Bool
        } else {
            ty.dtype
        };
        let shape = dims.iter().map(|&d| d as i64).collect();
        let mask = cx.emit_opt1(
            Op::ConstantOfShape {
                shape,
                value: 1.0,
                dtype,
            },
            &[],
        )?;
        outputs.push(Some(mask));
    }
    Ok(outputs)
}

/// `Constant`: every value form except strings and sparse tensors.
pub(crate) fn constant(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let attrs = cx.attrs();
    let tensor = if let Some(t) = attrs.tensor("value")? {
        cx.tensor_from_attr(t, "value")?
    } else if let Some(v) = attrs.float("value_float")? {
        Tensor::scalar(v)
    } else if let Some(v) = attrs.floats("value_floats")? {
        Tensor::from_vec(vec![v.len()], v).map_err(|e| super::NodeError::Invalid(e.to_string()))?
    } else if let Some(v) = attrs.int("value_int")? {
        Tensor::scalar(v)
    } else if let Some(v) = attrs.ints("value_ints")? {
        Tensor::from_vec(vec![v.len()], v).map_err(|e| super::NodeError::Invalid(e.to_string()))?
    } else if attrs.has("value_string") || attrs.has("value_strings") {
        return unsupported("string constants are not supported (sinter has no string dtype)");
    } else if attrs.has("sparse_value") {
        return unsupported("sparse constants are not supported");
    } else {
        return invalid("has none of the value attributes");
    };
    let name = cx.node.output.first().cloned().unwrap_or_default();
    one(cx.imp.const_operand(Arc::new(tensor), &name))
}

/// The integer contents of constant tensor input `idx`, or the error saying it must be constant.
fn required_ints(cx: &NodeCx, idx: usize, what: &str) -> NodeResult<Vec<i64>> {
    match cx.const_ints(idx, what)? {
        Some(v) => Ok(v),
        None => invalid(format!("input {idx} (`{what}`) is required")),
    }
}

/// A shape-like target (Reshape, Expand, ConstantOfShape): a constant, or a symbolic shape value
/// resolved by `resolve` against the input's dims.
fn shape_target(
    cx: &NodeCx,
    idx: usize,
    what: &str,
    resolve: impl FnOnce(&ShapeValue) -> Result<Vec<i64>, String>,
) -> NodeResult<Vec<i64>> {
    let target = cx.input(idx)?;
    if let Some(t) = cx.imp.konst(target) {
        if !t.dtype().is_int() {
            return invalid(format!(
                "input {idx} (`{what}`) must be an integer tensor, got {}",
                t.ty()
            ));
        }
        return Ok(t.to_i64_vec());
    }
    match cx.imp.shape_value(target) {
        Some(shape) => resolve(&shape).or_else(unsupported),
        None => Err(cx.not_constant(
            target,
            format!(
                "input {idx} (`{what}`) must be a constant or a shape computation the importer \
                 can follow (Shape, Gather, Slice, Concat, Unsqueeze, Squeeze, Cast, integer \
                 arithmetic)"
            ),
        )),
    }
}

pub(crate) fn reshape(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let allowzero = cx.attrs().flag_or("allowzero", false)?;
    let shape = if cx.opset < 5 {
        match cx.attrs().ints("shape")? {
            Some(shape) => shape,
            None => return invalid("attribute `shape` is required before opset 5"),
        }
    } else {
        let in_dims = cx.dims(x);
        shape_target(cx, 1, "shape", |target| {
            resolve_reshape(target, &in_dims, allowzero)
        })?
    };
    let y = cx.emit1(Op::Reshape { shape, allowzero }, &[x])?;
    let rank = cx.ty(y).rank();
    propagate(cx, x, y, |value| value.reshaped(rank));
    one(y)
}

pub(crate) fn flatten(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let axis = cx.attrs().int_or("axis", 1)?;
    let x = cx.input(0)?;
    one(cx.emit1(Op::Flatten { axis }, &[x])?)
}

pub(crate) fn transpose(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let perm = cx.attrs().ints_or_empty("perm")?;
    let x = cx.input(0)?;
    one(cx.emit1(Op::Transpose { perm }, &[x])?)
}

/// Axes from the `axes` attribute before `input_opset`, from constant input 1 from then on.
fn axes_attr_or_input(cx: &NodeCx, input_opset: i64) -> NodeResult<Option<Vec<i64>>> {
    if cx.opset < input_opset {
        cx.attrs().ints("axes")
    } else {
        cx.const_ints(1, "axes")
    }
}

pub(crate) fn squeeze(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let axes = axes_attr_or_input(cx, 13)?.unwrap_or_default();
    let y = cx.emit1(Op::Squeeze { axes: axes.clone() }, &[x])?;
    propagate(cx, x, y, |shape| shape.squeeze(&axes));
    one(y)
}

pub(crate) fn unsqueeze(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let Some(axes) = axes_attr_or_input(cx, 13)? else {
        return invalid("`axes` is required");
    };
    let y = cx.emit1(Op::Unsqueeze { axes: axes.clone() }, &[x])?;
    propagate(cx, x, y, |shape| shape.unsqueeze(&axes));
    one(y)
}

/// Sets `y`'s shape value from `x`'s when `y` is not already a constant.
fn propagate(
    cx: &mut NodeCx,
    x: Opd,
    y: Opd,
    derive: impl FnOnce(&ShapeValue) -> Option<ShapeValue>,
) {
    if cx.imp.konst(y).is_some() {
        return;
    }
    if let Some(shape) = cx.imp.shape_value(x).as_ref().and_then(derive) {
        cx.imp.set_shape_value(y, shape);
    }
}

pub(crate) fn concat(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let axis = match cx.attrs().int("axis")? {
        Some(axis) => axis,
        // Opsets before 4 default to 1.
        None if cx.opset < 4 => 1,
        None => return invalid("attribute `axis` is required"),
    };
    let inputs = cx.present_inputs();
    if inputs.is_empty() {
        return invalid("needs at least one input");
    }
    let args: Vec<Option<Opd>> = inputs.iter().copied().map(Some).collect();
    let y = cx.emit_opt1(Op::Concat { axis }, &args)?;
    if cx.imp.konst(y).is_none() && (axis == 0 || axis == -1) {
        let parts: Option<Vec<ShapeValue>> =
            inputs.iter().map(|&i| cx.imp.shape_value(i)).collect();
        if let Some(shape) = parts.as_deref().and_then(ShapeValue::concat) {
            cx.imp.set_shape_value(y, shape);
        }
    }
    one(y)
}

pub(crate) fn split(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let attrs = cx.attrs();
    let axis = attrs.int_or("axis", 0)?;
    let explicit = if cx.opset < 2 {
        match attrs.ints("split")? {
            Some(split) => Some(split),
            None => cx.const_ints(1, "split")?,
        }
    } else if cx.opset < 13 {
        attrs.ints("split")?
    } else {
        cx.const_ints(1, "split")?
    };
    let n_outputs = cx.n_outputs();
    let sizes = match explicit {
        Some(split) if !split.is_empty() => split,
        _ => {
            // ONNX requires `num_outputs` (opset 18) to match the output count.
            if let Some(n) = attrs.int("num_outputs")?.filter(|_| cx.opset >= 18) {
                if usize::try_from(n).ok() != Some(n_outputs) {
                    return invalid(format!(
                        "attribute `num_outputs` = {n} differs from the {n_outputs} outputs"
                    ));
                }
            }
            let n_pieces = n_outputs;
            let rank = cx.ty(x).rank() as i64;
            let axis_idx = if axis < 0 { axis + rank } else { axis };
            let dim = usize::try_from(axis_idx)
                .ok()
                .and_then(|a| cx.ty(x).shape.0.get(a).cloned());
            let total = match dim {
                Some(Dim::Static(n)) => n,
                Some(Dim::Sym(s)) => {
                    return unsupported(format!(
                        "splitting the symbolic axis `{s}` into equal parts needs static sizes"
                    ))
                }
                None => return invalid(format!("axis {axis} is out of range for rank {rank}")),
            };
            equal_split(total, n_pieces)?
        }
    };
    if sizes.len() != n_outputs {
        return invalid(format!(
            "splits into {} pieces ({sizes:?}) but has {n_outputs} outputs",
            sizes.len()
        ));
    }
    let outputs = cx.emit(Op::Split { split: sizes, axis }, &[Some(x)])?;
    Ok(outputs.into_iter().map(Some).collect())
}

/// ONNX's equal split: pieces of `ceil(total / n)` with the remainder in the last one.
fn equal_split(total: usize, n_pieces: usize) -> NodeResult<Vec<i64>> {
    if n_pieces == 0 {
        return invalid("needs at least one output");
    }
    let piece = total.div_ceil(n_pieces);
    let last = total as i128 - (piece as i128) * (n_pieces as i128 - 1);
    if last < 0 {
        return invalid(format!(
            "cannot split {total} elements into {n_pieces} pieces of {piece}"
        ));
    }
    let mut sizes = vec![piece as i64; n_pieces];
    if let Some(end) = sizes.last_mut() {
        *end = last as i64;
    }
    Ok(sizes)
}

pub(crate) fn slice(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let (starts, ends, axes, steps) = if cx.opset < 10 {
        let attrs = cx.attrs();
        let (Some(starts), Some(ends)) = (attrs.ints("starts")?, attrs.ints("ends")?) else {
            return invalid("attributes `starts` and `ends` are required before opset 10");
        };
        (starts, ends, attrs.ints_or_empty("axes")?, Vec::new())
    } else {
        cx.require_constants(&[(1, "starts"), (2, "ends"), (3, "axes"), (4, "steps")])?;
        (
            required_ints(cx, 1, "starts")?,
            required_ints(cx, 2, "ends")?,
            cx.const_ints(3, "axes")?.unwrap_or_default(),
            cx.const_ints(4, "steps")?.unwrap_or_default(),
        )
    };
    let op = Op::Slice {
        starts: starts.clone(),
        ends: ends.clone(),
        axes: axes.clone(),
        steps: steps.clone(),
    };
    let y = cx.emit1(op, &[x])?;
    propagate(cx, x, y, |shape| shape.slice(&starts, &ends, &axes, &steps));
    one(y)
}

pub(crate) fn gather(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let axis = cx.attrs().int_or("axis", 0)?;
    let data = cx.input(0)?;
    let indices = cx.input(1)?;
    let y = cx.emit1(Op::Gather { axis }, &[data, indices])?;
    if axis == 0 || axis == -1 {
        if let Some(indices) = cx.imp.konst(indices).cloned() {
            propagate(cx, data, y, |shape| shape.gather(&indices));
        }
    }
    one(y)
}

pub(crate) fn gather_elements(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let axis = cx.attrs().int_or("axis", 0)?;
    let data = cx.input(0)?;
    let indices = cx.input(1)?;
    one(cx.emit1(Op::GatherElements { axis }, &[data, indices])?)
}

pub(crate) fn expand(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let in_dims = cx.dims(x);
    let target = cx.input(1)?;
    // A symbol of the target that `x` does not have at that axis (`zeros` of `[2, batch, 32]`
    // expanded from a scalar) cannot be an `expand` attribute; it is broadcast in from a value that
    // has it.
    if cx.imp.konst(target).is_none() {
        if let Some(target) = cx.imp.shape_value(target) {
            if resolve_expand(&target, &in_dims).is_err() {
                if let Some(dims) = shape_dims(&target) {
                    return one(broadcast_to_dims(cx, x, &dims)?);
                }
            }
        }
    }
    let shape = shape_target(cx, 1, "shape", |target| resolve_expand(target, &in_dims))?;
    one(cx.emit1(Op::Expand { shape }, &[x])?)
}

pub(crate) fn tile(cx: &mut NodeCx) -> NodeResult<Lowered> {
    if cx.opset < 6 {
        return unsupported("Tile before opset 6 (`tiles` and `axis` inputs) is not supported");
    }
    let x = cx.input(0)?;
    let repeats = required_ints(cx, 1, "repeats")?;
    one(cx.emit1(Op::Tile { repeats }, &[x])?)
}

pub(crate) fn range(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let dtype = cx.ty(cx.input(0)?).dtype;
    cx.require_constants(&[(0, "start"), (1, "limit"), (2, "delta")])?;
    let mut bounds = [0.0; 3];
    for (idx, (what, bound)) in ["start", "limit", "delta"]
        .iter()
        .zip(&mut bounds)
        .enumerate()
    {
        *bound = match cx.const_scalar(idx, what)? {
            Some(v) => v,
            None => return invalid(format!("input {idx} (`{what}`) is required")),
        };
    }
    let [start, limit, delta] = bounds;
    one(cx.emit_opt1(
        Op::Range {
            start,
            limit,
            delta,
            dtype,
        },
        &[],
    )?)
}

pub(crate) fn trilu(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let upper = cx.attrs().flag_or("upper", true)?;
    let x = cx.input(0)?;
    let k = match cx.const_ints(1, "k")? {
        None => 0,
        Some(k) if k.len() == 1 => k[0],
        Some(k) => return invalid(format!("input 1 (`k`) must have one element, got {k:?}")),
    };
    one(cx.emit1(Op::Trilu { upper, k }, &[x])?)
}

pub(crate) fn shape(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let attrs = cx.attrs();
    let (start, end) = if cx.opset >= 15 {
        (attrs.int_or("start", 0)?, attrs.int("end")?)
    } else {
        (0, None)
    };
    let dims = cx.dims(x);
    let rank = dims.len() as i128;
    let resolve = |v: i64| {
        let v = i128::from(v);
        (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize
    };
    let (from, to) = (resolve(start), end.map_or(dims.len(), resolve));
    let picked = dims.get(from..to.max(from)).unwrap_or(&[]);
    let shape = ShapeValue::from_dims(picked);
    if let Some(tensor) = shape.to_tensor() {
        return one(cx.constant(tensor));
    }
    let y = cx.emit1(Op::Shape { start, end }, &[x])?;
    cx.imp.set_shape_value(y, shape);
    cx.imp.set_deps(y, Deps::of_dims(picked));
    one(y)
}

pub(crate) fn size(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let ty = cx.ty(x).clone();
    if let Some(count) = ty.shape.num_elements() {
        let count = i64::try_from(count)
            .map_err(|_| super::NodeError::Invalid(format!("the size of {ty} overflows i64")))?;
        return one(cx.constant(Tensor::scalar(count)));
    }
    let shape = cx.emit1(
        Op::Shape {
            start: 0,
            end: None,
        },
        &[x],
    )?;
    let count = cx.emit1(
        Op::ReduceProd {
            axes: vec![],
            keepdims: false,
            noop_with_empty_axes: false,
        },
        &[shape],
    )?;
    cx.imp
        .set_shape_value(count, ShapeValue::from_dims(ty.shape.dims()).product());
    cx.imp.set_deps(count, Deps::of_dims(ty.shape.dims()));
    cx.imp.set_deps(shape, Deps::of_dims(ty.shape.dims()));
    one(count)
}

pub(crate) fn constant_of_shape(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let (value, dtype) = match cx.attrs().tensor("value")? {
        None => (0.0, DType::F32),
        Some(t) => {
            let tensor = cx.tensor_from_attr(t, "value")?;
            if tensor.len() != 1 {
                return invalid(format!(
                    "attribute `value` must have one element, got {}",
                    tensor.ty()
                ));
            }
            let value = tensor.to_f64_vec().first().copied().unwrap_or(0.0);
            (value, tensor.dtype())
        }
    };
    let target = cx.input(0)?;
    if cx.imp.konst(target).is_none() {
        if let Some(dims) = cx.imp.shape_value(target).and_then(|s| shape_dims(&s)) {
            return fill_like(cx, &dims, value, dtype);
        }
    }
    let shape = shape_target(cx, 0, "shape", |target| {
        target.as_ints().ok_or_else(|| {
            format!(
                "the shape {target} is symbolic and no value of the graph has exactly these dims, \
                 but the IR's constant_of_shape needs a static shape"
            )
        })
    })?;
    one(cx.emit_opt1(
        Op::ConstantOfShape {
            shape,
            value,
            dtype,
        },
        &[],
    )?)
}

/// The dims a shape value names, if every element is a size or a symbol.
fn shape_dims(shape: &ShapeValue) -> Option<Vec<Dim>> {
    if shape.scalar {
        return None;
    }
    shape
        .elems
        .iter()
        .map(|elem| match elem {
            ShapeElem::Int(v) => usize::try_from(*v).ok().map(Dim::Static),
            ShapeElem::Sym(name) => Some(Dim::Sym(name.clone())),
            ShapeElem::Unknown => None,
        })
        .collect()
}

/// `ConstantOfShape` over symbolic dims: `where(equal(v, v), c, c)` for a value `v` that has exactly
/// these dims, which is `c` everywhere (a NaN in `v` only picks the other, equal branch). Without such
/// a value, the constant is broadcast to the dims (see [`broadcast_to_dims`]).
fn fill_like(cx: &mut NodeCx, dims: &[Dim], value: f64, dtype: DType) -> NodeResult<Lowered> {
    let fill = super::elementwise::scalar_of(cx, dtype, value);
    let Some(like) = cx.imp.find_value_with_dims(dims) else {
        return one(broadcast_to_dims(cx, fill, dims)?);
    };
    let everywhere = cx.emit1(Op::Equal {}, &[like, like])?;
    one(cx.emit1(Op::Where {}, &[everywhere, fill, fill])?)
}

/// `x` broadcast to `dims` (numpy rules, so `x` may have fewer axes), where `dims` may hold
/// symbols that `x` lacks. The IR's `expand` takes sizes, not symbols, so `x` is expanded to the
/// static part of `dims` (1 on the symbolic axes), and each symbol `s` that `x` lacks is broadcast in
/// by `where(m, x, x)` with a bool mask `m` of shape `[1, .., s, .., 1]`: both branches are `x`, so
/// the result is `x` broadcast whatever `m` holds. The mask is `equal(c, c)` for a column `c` of
/// size `s` sliced (by `gather` at index 0 on every other axis) out of some computed value that has
/// `s`; any other symbolic dim of that value is assumed non-empty, as it is wherever that value
/// holds data.
fn broadcast_to_dims(cx: &mut NodeCx, x: Opd, dims: &[Dim]) -> NodeResult<Opd> {
    let in_dims = cx.dims(x);
    let rank = dims.len().max(in_dims.len());
    let (target_offset, in_offset) = (rank - dims.len(), rank - in_dims.len());
    let mut static_target = Vec::with_capacity(dims.len());
    let mut missing: Vec<(usize, Arc<str>)> = Vec::new();
    for (axis, dim) in dims.iter().enumerate() {
        match dim {
            Dim::Static(n) => {
                static_target.push(i64::try_from(*n).map_err(|_| {
                    super::NodeError::Invalid(format!("target dim {n} overflows i64"))
                })?)
            }
            Dim::Sym(symbol) => {
                static_target.push(1);
                let out_axis = axis + target_offset;
                let in_dim = out_axis
                    .checked_sub(in_offset)
                    .and_then(|in_axis| in_dims.get(in_axis));
                match in_dim {
                    Some(in_dim) if in_dim == dim => {}
                    // Two different symbols cannot be proven to broadcast (the IR's rule).
                    Some(Dim::Sym(other)) => {
                        return unsupported(format!(
                            "axis {out_axis} of the target {} is `{symbol}` where the input has \
                             `{other}`, which the IR cannot prove to broadcast",
                            sinter_ir::Shape(dims.to_vec())
                        ))
                    }
                    _ => missing.push((out_axis, symbol.clone())),
                }
            }
        }
    }
    let mut y = cx.emit1(
        Op::Expand {
            shape: static_target,
        },
        &[x],
    )?;
    for (out_axis, symbol) in missing {
        let Some((source, source_axis)) = cx.imp.find_value_with_symbol(&symbol) else {
            return unsupported(format!(
                "the shape {} has the symbolic dim `{symbol}`, but no value of the graph has it, \
                 so the IR cannot broadcast to it",
                sinter_ir::Shape(dims.to_vec())
            ));
        };
        let n_source_axes = cx.dims(source).len();
        let mut column = source;
        // From the last axis down, so the axes still to remove keep their numbers.
        for axis in (0..n_source_axes).rev().filter(|&axis| axis != source_axis) {
            let first = cx.constant(Tensor::scalar(0i64));
            column = cx.emit1(Op::Gather { axis: axis as i64 }, &[column, first])?;
        }
        let other_axes: Vec<i64> = (0..rank)
            .filter(|&axis| axis != out_axis)
            .map(|axis| axis as i64)
            .collect();
        if !other_axes.is_empty() {
            column = cx.emit1(Op::Unsqueeze { axes: other_axes }, &[column])?;
        }
        let mask = cx.emit1(Op::Equal {}, &[column, column])?;
        y = cx.emit1(Op::Where {}, &[mask, y, y])?;
    }
    Ok(y)
}
