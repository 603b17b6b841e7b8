//! Reference implementations of the data movement ops: reshaping, transposing, slicing, gathering,
//! broadcasting and the shape/constant generators.
//!
//! Every op that rearranges elements computes, for each output element in row-major order, the flat
//! index of the input element it copies, then gathers with [`take`]. Those indices come only from
//! shapes and index values that were validated first, so the gather cannot go out of range. The ops
//! work on every dtype.
//!
//! Semantics are ONNX's with the shape-like inputs as attributes (see `op.rs`). Where onnx's reference
//! implementation and the ONNX spec disagree, the spec wins: `slice` with a negative step clamps a
//! start below `-dim` to 0 (the spec's `[0, dim - 1]`), where numpy slicing (and so onnx's reference)
//! would clamp it to -1 and select nothing. `gather_elements` accepts `indices` smaller than `data` on
//! the non-gathered axes, as the spec does.

use crate::index::{
    broadcast_indices, broadcast_shapes, checked_numel, for_each_index, make_tensor,
    normalize_axes, normalize_axis, required_input, strides, take, value_fits,
};
use crate::{op_err, OpError};
use sinter_ir::geometry::slice_range;
use sinter_ir::{with_data, DType, Elem, Op, Tensor, TensorData};

/// Evaluates one movement op. Errors are prefixed with the op name.
pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    eval_outputs(op, inputs).map_err(|e| OpError(format!("`{}`: {}", op.name(), e.0)))
}

fn eval_outputs(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let single = |tensor: Result<Tensor, OpError>| tensor.map(|t| vec![t]);
    match op {
        Op::Split { split, axis } => split_op(required_input(op, inputs, 0)?, split, *axis),
        Op::Concat { axis } => single(concat(inputs, *axis)),
        Op::Range {
            start,
            limit,
            delta,
            dtype,
        } => single(range(*start, *limit, *delta, *dtype)),
        Op::ConstantOfShape {
            shape,
            value,
            dtype,
        } => single(constant_of_shape(shape, *value, *dtype)),
        Op::Gather { axis } => single(gather(
            required_input(op, inputs, 0)?,
            required_input(op, inputs, 1)?,
            *axis,
        )),
        Op::GatherElements { axis } => single(gather_elements(
            required_input(op, inputs, 0)?,
            required_input(op, inputs, 1)?,
            *axis,
        )),
        _ => {
            let x = required_input(op, inputs, 0)?;
            single(match op {
                Op::Reshape { shape, allowzero } => reshape(x, shape, *allowzero),
                Op::Flatten { axis } => flatten(x, *axis),
                Op::Transpose { perm } => transpose(x, perm),
                Op::Squeeze { axes } => squeeze(x, axes),
                Op::Unsqueeze { axes } => unsqueeze(x, axes),
                Op::Slice {
                    starts,
                    ends,
                    axes,
                    steps,
                } => slice(x, starts, ends, axes, steps),
                Op::Expand { shape } => expand(x, shape),
                Op::Tile { repeats } => tile(x, repeats),
                Op::Trilu { upper, k } => trilu(x, *upper, *k),
                Op::Shape { start, end } => shape_op(x, *start, *end),
                _ => op_err("is not a data movement op"),
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Helpers

/// Converts attribute dims to sizes, rejecting negative entries.
fn dims_from_attr(values: &[i64], what: &str) -> Result<Vec<usize>, OpError> {
    values
        .iter()
        .map(|&v| {
            usize::try_from(v)
                .map_err(|_| OpError(format!("{what} {values:?} has a negative entry {v}")))
        })
        .collect()
}

/// Flat input indices of a strided view: output element `coord` (row-major over `out_shape`) reads
/// input element `base + sum(coord[axis] * steps[axis])`. Callers derive `base` and `steps` from
/// clamped ranges, so every index is inside the input.
fn strided_indices(out_shape: &[usize], base: i64, steps: &[i64]) -> Result<Vec<usize>, OpError> {
    let mut indices = Vec::with_capacity(checked_numel(out_shape)?);
    for_each_index(out_shape, |coord| {
        let offset: i64 = coord
            .iter()
            .zip(steps)
            .map(|(&c, &step)| c as i64 * step)
            .sum();
        indices.push((base + offset) as usize);
    });
    Ok(indices)
}

/// Row-major strides as i64, for strided views.
fn strides_i64(shape: &[usize]) -> Vec<i64> {
    strides(shape).into_iter().map(|s| s as i64).collect()
}

/// The same data with a new shape (the element count must already match).
fn with_shape(x: &Tensor, shape: Vec<usize>) -> Result<Tensor, OpError> {
    make_tensor(shape, x.data().clone())
}

// ---------------------------------------------------------------------------------------------------
// Shape-only ops: the data is unchanged, only the shape is.

fn reshape(x: &Tensor, shape: &[i64], allowzero: bool) -> Result<Tensor, OpError> {
    if allowzero && shape.contains(&0) && shape.contains(&-1) {
        return op_err(format!(
            "shape {shape:?} has both 0 and -1, which is invalid with allowzero"
        ));
    }
    let mut out_shape = Vec::with_capacity(shape.len());
    let mut inferred_axis = None;
    for (axis, &dim) in shape.iter().enumerate() {
        match dim {
            -1 => {
                if inferred_axis.is_some() {
                    return op_err(format!("shape {shape:?} has more than one -1"));
                }
                inferred_axis = Some(axis);
                out_shape.push(1);
            }
            0 if !allowzero => match x.shape().get(axis) {
                Some(&copied) => out_shape.push(copied),
                None => {
                    return op_err(format!(
                        "shape {shape:?} copies dim {axis} with 0, but the input {:?} has rank {}",
                        x.shape(),
                        x.rank()
                    ))
                }
            },
            d if d < 0 => return op_err(format!("shape {shape:?} has an invalid entry {d}")),
            d => out_shape
                .push(usize::try_from(d).map_err(|_| OpError(format!("dim {d} is too large")))?),
        }
    }
    let known = checked_numel(&out_shape)?;
    if let Some(axis) = inferred_axis {
        if known == 0 || !x.len().is_multiple_of(known) {
            return op_err(format!(
                "cannot infer the -1 in {shape:?} for an input of shape {:?} ({} elements)",
                x.shape(),
                x.len()
            ));
        }
        out_shape[axis] = x.len() / known;
    } else if known != x.len() {
        return op_err(format!(
            "cannot reshape {:?} ({} elements) to {out_shape:?} ({known} elements)",
            x.shape(),
            x.len()
        ));
    }
    with_shape(x, out_shape)
}

fn flatten(x: &Tensor, axis: i64) -> Result<Tensor, OpError> {
    let rank = x.rank() as i64;
    // `axis` may equal the rank (all dims in the rows), so it is normalized over [-rank, rank].
    let split_at = if axis < 0 { axis + rank } else { axis };
    if !(0..=rank).contains(&split_at) {
        return op_err(format!("axis {axis} is out of range for rank {rank}"));
    }
    let (rows, cols) = x.shape().split_at(split_at as usize);
    with_shape(x, vec![rows.iter().product(), cols.iter().product()])
}

fn squeeze(x: &Tensor, axes: &[i64]) -> Result<Tensor, OpError> {
    let shape = x.shape();
    let removed: Vec<usize> = if axes.is_empty() {
        (0..shape.len()).filter(|&axis| shape[axis] == 1).collect()
    } else {
        let removed = normalize_axes(axes, shape.len())?;
        if let Some(&axis) = removed.iter().find(|&&axis| shape[axis] != 1) {
            return op_err(format!(
                "axis {axis} of shape {shape:?} has size {}, not 1",
                shape[axis]
            ));
        }
        removed
    };
    let out_shape = (0..shape.len())
        .filter(|axis| !removed.contains(axis))
        .map(|axis| shape[axis])
        .collect();
    with_shape(x, out_shape)
}

fn unsqueeze(x: &Tensor, axes: &[i64]) -> Result<Tensor, OpError> {
    let out_rank = x.rank() + axes.len();
    let inserted = normalize_axes(axes, out_rank)?;
    let mut input_dims = x.shape().iter();
    let out_shape = (0..out_rank)
        .map(|axis| {
            if inserted.contains(&axis) {
                1
            } else {
                // Exactly rank(x) output axes are not inserted ones, so this never runs out.
                input_dims.next().copied().unwrap_or(1)
            }
        })
        .collect();
    with_shape(x, out_shape)
}

fn shape_op(x: &Tensor, start: i64, end: Option<i64>) -> Result<Tensor, OpError> {
    let rank = x.rank() as i64;
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let first = clamp(start);
    let last = clamp(end.unwrap_or(rank)).max(first);
    let dims: Vec<i64> = x.shape()[first..last].iter().map(|&d| d as i64).collect();
    make_tensor(vec![dims.len()], TensorData::I64(dims.into()))
}

// ---------------------------------------------------------------------------------------------------
// Strided views: transpose, slice, split, expand.

fn transpose(x: &Tensor, perm: &[i64]) -> Result<Tensor, OpError> {
    let rank = x.rank();
    let perm: Vec<usize> = if perm.is_empty() {
        (0..rank).rev().collect()
    } else {
        if perm.len() != rank {
            return op_err(format!(
                "perm {perm:?} has {} entries, the input has rank {rank}",
                perm.len()
            ));
        }
        if perm.iter().any(|&p| p < 0) {
            return op_err(format!(
                "perm {perm:?} must be a permutation of 0..{rank} (no negative entries)"
            ));
        }
        normalize_axes(perm, rank)?
    };
    let in_strides = strides_i64(x.shape());
    let out_shape: Vec<usize> = perm.iter().map(|&axis| x.shape()[axis]).collect();
    let steps: Vec<i64> = perm.iter().map(|&axis| in_strides[axis]).collect();
    let indices = strided_indices(&out_shape, 0, &steps)?;
    make_tensor(out_shape, take(x.data(), &indices))
}

fn slice(
    x: &Tensor,
    starts: &[i64],
    ends: &[i64],
    axes: &[i64],
    steps: &[i64],
) -> Result<Tensor, OpError> {
    let rank = x.rank();
    let n_sliced = starts.len();
    if ends.len() != n_sliced {
        return op_err(format!(
            "starts {starts:?} and ends {ends:?} differ in length"
        ));
    }
    if !axes.is_empty() && axes.len() != n_sliced {
        return op_err(format!(
            "axes {axes:?} must have one entry per start ({n_sliced})"
        ));
    }
    if !steps.is_empty() && steps.len() != n_sliced {
        return op_err(format!(
            "steps {steps:?} must have one entry per start ({n_sliced})"
        ));
    }
    let axes = if axes.is_empty() {
        if n_sliced > rank {
            return op_err(format!("{n_sliced} starts for an input of rank {rank}"));
        }
        (0..n_sliced).collect()
    } else {
        normalize_axes(axes, rank)?
    };
    let in_strides = strides_i64(x.shape());
    let mut out_shape = x.shape().to_vec();
    let mut steps_in_elements = in_strides.clone();
    let mut base = 0i64;
    for (slice_idx, &axis) in axes.iter().enumerate() {
        let step = steps.get(slice_idx).copied().unwrap_or(1);
        if step == 0 {
            return op_err(format!("step for axis {axis} is 0"));
        }
        let (first, len) = slice_range(starts[slice_idx], ends[slice_idx], step, x.shape()[axis]);
        out_shape[axis] = len;
        if len > 0 {
            base += first * in_strides[axis];
        }
        // Only the first `len` multiples of the step are used, so the product cannot overflow when
        // `len > 1`; with `len <= 1` the step is never multiplied by more than 0.
        steps_in_elements[axis] = if len > 1 { step * in_strides[axis] } else { 0 };
    }
    let indices = strided_indices(&out_shape, base, &steps_in_elements)?;
    make_tensor(out_shape, take(x.data(), &indices))
}

fn split_op(x: &Tensor, split: &[i64], axis: i64) -> Result<Vec<Tensor>, OpError> {
    let axis_idx = normalize_axis(axis, x.rank())?;
    let sizes = dims_from_attr(split, "split")?;
    if sizes.is_empty() {
        return op_err("split needs at least one part");
    }
    let dim = x.shape()[axis_idx];
    if sizes.iter().try_fold(0usize, |acc, &s| acc.checked_add(s)) != Some(dim) {
        return op_err(format!(
            "split {split:?} does not add up to axis {axis} of shape {:?}",
            x.shape()
        ));
    }
    let in_strides = strides_i64(x.shape());
    let mut offset = 0usize;
    let mut outputs = Vec::with_capacity(sizes.len());
    for &size in &sizes {
        let mut out_shape = x.shape().to_vec();
        out_shape[axis_idx] = size;
        let indices = strided_indices(
            &out_shape,
            offset as i64 * in_strides[axis_idx],
            &in_strides,
        )?;
        outputs.push(make_tensor(out_shape, take(x.data(), &indices))?);
        offset += size;
    }
    Ok(outputs)
}

fn expand(x: &Tensor, shape: &[i64]) -> Result<Tensor, OpError> {
    let target = dims_from_attr(shape, "shape")?;
    let out_shape = broadcast_shapes(x.shape(), &target)?;
    checked_numel(&out_shape)?;
    let indices = broadcast_indices(x.shape(), &out_shape);
    make_tensor(out_shape, take(x.data(), &indices))
}

// ---------------------------------------------------------------------------------------------------
// Other rearrangements

fn tile(x: &Tensor, repeats: &[i64]) -> Result<Tensor, OpError> {
    if repeats.len() != x.rank() {
        return op_err(format!(
            "repeats {repeats:?} must have one entry per axis of {:?}",
            x.shape()
        ));
    }
    let repeats = dims_from_attr(repeats, "repeats")?;
    let out_shape = x
        .shape()
        .iter()
        .zip(&repeats)
        .map(|(&dim, &rep)| dim.checked_mul(rep))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| OpError(format!("tiling {:?} by {repeats:?} overflows", x.shape())))?;
    let in_strides = strides(x.shape());
    let mut indices = Vec::with_capacity(checked_numel(&out_shape)?);
    // A non-empty output has no zero dim in the input, so the remainders are defined.
    for_each_index(&out_shape, |coord| {
        let flat = coord
            .iter()
            .zip(x.shape())
            .zip(&in_strides)
            .map(|((&c, &dim), &stride)| (c % dim) * stride)
            .sum();
        indices.push(flat);
    });
    make_tensor(out_shape, take(x.data(), &indices))
}

fn concat(inputs: &[Option<&Tensor>], axis: i64) -> Result<Tensor, OpError> {
    let parts = inputs
        .iter()
        .enumerate()
        .map(|(slot_idx, t)| t.ok_or_else(|| OpError(format!("input {slot_idx} is absent"))))
        .collect::<Result<Vec<&Tensor>, OpError>>()?;
    let Some(first) = parts.first() else {
        return op_err("needs at least one input");
    };
    let axis_idx = normalize_axis(axis, first.rank())?;
    let mut axis_total = 0usize;
    for (part_idx, part) in parts.iter().enumerate() {
        if part.dtype() != first.dtype() {
            return op_err(format!(
                "input {part_idx} has dtype {}, input 0 has {}",
                part.dtype(),
                first.dtype()
            ));
        }
        let same_other_dims = part.rank() == first.rank()
            && (0..first.rank()).all(|a| a == axis_idx || part.shape()[a] == first.shape()[a]);
        if !same_other_dims {
            return op_err(format!(
                "input {part_idx} of shape {:?} does not match input 0 of shape {:?} outside axis {axis}",
                part.shape(),
                first.shape()
            ));
        }
        axis_total = axis_total
            .checked_add(part.shape()[axis_idx])
            .ok_or_else(|| OpError("the concatenated axis overflows".to_string()))?;
    }
    let mut out_shape = first.shape().to_vec();
    out_shape[axis_idx] = axis_total;
    checked_numel(&out_shape)?;
    let n_outer: usize = first.shape()[..axis_idx].iter().product();
    let n_inner: usize = first.shape()[axis_idx + 1..].iter().product();
    // Each outer index takes one contiguous chunk of `dim * n_inner` elements from every input in turn.
    fn assemble<T: Elem>(
        _witness: &[T],
        parts: &[&Tensor],
        axis_idx: usize,
        n_outer: usize,
        n_inner: usize,
    ) -> TensorData {
        let slices: Vec<&[T]> = parts
            .iter()
            .map(|p| T::unwrap(p.data()).unwrap_or(&[]))
            .collect();
        let mut out = Vec::new();
        for outer in 0..n_outer {
            for (part, values) in parts.iter().zip(&slices) {
                let chunk = part.shape()[axis_idx] * n_inner;
                out.extend_from_slice(&values[outer * chunk..(outer + 1) * chunk]);
            }
        }
        T::wrap(out)
    }
    let data =
        with_data!(first.data(), witness => assemble(witness, &parts, axis_idx, n_outer, n_inner));
    make_tensor(out_shape, data)
}

/// Reads an integer index tensor as i64 values.
fn index_values(indices: &Tensor) -> Result<Vec<i64>, OpError> {
    if !matches!(indices.dtype(), DType::I32 | DType::I64) {
        return op_err(format!(
            "indices must be i32 or i64, got {}",
            indices.dtype()
        ));
    }
    Ok(indices.to_i64_vec())
}

/// Resolves a possibly negative index along an axis of size `dim`.
fn resolve_index(index: i64, dim: usize, axis: usize) -> Result<usize, OpError> {
    let dim_i64 = dim as i64;
    let resolved = if index < 0 { index + dim_i64 } else { index };
    if !(0..dim_i64).contains(&resolved) {
        return op_err(format!(
            "index {index} is out of range for axis {axis} of size {dim}"
        ));
    }
    Ok(resolved as usize)
}

fn gather(data: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor, OpError> {
    let axis_idx = normalize_axis(axis, data.rank())?;
    let dim = data.shape()[axis_idx];
    let resolved = index_values(indices)?
        .into_iter()
        .map(|index| resolve_index(index, dim, axis_idx))
        .collect::<Result<Vec<usize>, OpError>>()?;
    let (before, rest) = data.shape().split_at(axis_idx);
    let after = &rest[1..];
    let out_shape: Vec<usize> = before
        .iter()
        .chain(indices.shape())
        .chain(after)
        .copied()
        .collect();
    let n_outer: usize = before.iter().product();
    let n_inner: usize = after.iter().product();
    let mut flat = Vec::with_capacity(checked_numel(&out_shape)?);
    for outer in 0..n_outer {
        for &index in &resolved {
            for inner in 0..n_inner {
                flat.push((outer * dim + index) * n_inner + inner);
            }
        }
    }
    make_tensor(out_shape, take(data.data(), &flat))
}

fn gather_elements(data: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor, OpError> {
    let axis_idx = normalize_axis(axis, data.rank())?;
    if indices.rank() != data.rank() {
        return op_err(format!(
            "indices of shape {:?} must have the rank of data {:?}",
            indices.shape(),
            data.shape()
        ));
    }
    let too_big = (0..data.rank()).find(|&a| a != axis_idx && indices.shape()[a] > data.shape()[a]);
    if let Some(a) = too_big {
        return op_err(format!(
            "indices of shape {:?} exceed data {:?} on axis {a}",
            indices.shape(),
            data.shape()
        ));
    }
    let values = index_values(indices)?;
    let data_strides = strides(data.shape());
    let dim = data.shape()[axis_idx];
    let mut flat = Vec::with_capacity(values.len());
    let mut error = None;
    let mut index_pos = 0usize;
    for_each_index(indices.shape(), |coord| {
        let index = values[index_pos];
        index_pos += 1;
        match resolve_index(index, dim, axis_idx) {
            Ok(resolved) => flat.push(
                coord
                    .iter()
                    .enumerate()
                    .map(|(a, &c)| if a == axis_idx { resolved } else { c } * data_strides[a])
                    .sum(),
            ),
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    });
    if let Some(e) = error {
        return Err(e);
    }
    make_tensor(indices.shape().to_vec(), take(data.data(), &flat))
}

/// Keeps element `[.., row, col]` when `col - row >= k` (upper) or `col - row <= k` (lower); the rest
/// become zero.
fn trilu(x: &Tensor, upper: bool, k: i64) -> Result<Tensor, OpError> {
    let rank = x.rank();
    if rank < 2 {
        return op_err(format!("expects rank >= 2, got shape {:?}", x.shape()));
    }
    let (n_rows, n_cols) = (x.shape()[rank - 2], x.shape()[rank - 1]);
    let keep = |flat: usize| {
        let (row, col) = ((flat / n_cols.max(1)) % n_rows.max(1), flat % n_cols.max(1));
        let offset = col as i64 - row as i64;
        if upper {
            offset >= k
        } else {
            offset <= k
        }
    };
    fn mask<T: Elem>(values: &[T], keep: impl Fn(usize) -> bool) -> TensorData {
        T::wrap(
            values
                .iter()
                .enumerate()
                .map(|(flat, &v)| if keep(flat) { v } else { T::default() })
                .collect(),
        )
    }
    let data = with_data!(x.data(), values => mask(values, keep));
    make_tensor(x.shape().to_vec(), data)
}

// ---------------------------------------------------------------------------------------------------
// Generators

/// More elements than this cannot be counted exactly in f64, so `range` rejects them (as inference does).
const MAX_RANGE_ELEMENTS: f64 = (1u64 << 53) as f64;

/// `[start, start + delta, ..]` while before `limit`, for dtype f32, f64, i32 or i64 (ONNX's `Range`
/// types). The element count is `max(ceil((limit - start) / delta), 0)` computed in f64 from the
/// attributes as given, exactly as inference computes it. Float values are `start + i * delta` with
/// the bounds first rounded to `dtype` (ONNX passes them as tensors of that type), computed in f64 and
/// rounded once; integer bounds must be whole numbers inside the dtype's range and the values are
/// exact.
fn range(start: f64, limit: f64, delta: f64, dtype: DType) -> Result<Tensor, OpError> {
    if !matches!(dtype, DType::F32 | DType::F64 | DType::I32 | DType::I64) {
        return op_err(format!("dtype must be f32, f64, i32 or i64, got {dtype}"));
    }
    if !(start.is_finite() && limit.is_finite() && delta.is_finite()) {
        return op_err(format!(
            "start {start}, limit {limit} and delta {delta} must be finite"
        ));
    }
    if delta == 0.0 {
        return op_err("delta must not be 0");
    }
    if dtype.is_int() {
        for v in [start, limit, delta] {
            if !value_fits(v, dtype) {
                return op_err(format!(
                    "{v} is not a whole number that fits in {dtype}, as an integer range needs"
                ));
            }
        }
    }
    let count = ((limit - start) / delta).ceil().max(0.0);
    if count > MAX_RANGE_ELEMENTS {
        return op_err(format!("range of {count} elements is too large"));
    }
    let count = count as usize;
    checked_numel(&[count])?;
    let data = if dtype.is_float() {
        let round = |v: f64| {
            if dtype == DType::F32 {
                f64::from(v as f32)
            } else {
                v
            }
        };
        let (start, delta) = (round(start), round(delta));
        TensorData::from_f64s(dtype, (0..count).map(|i| start + i as f64 * delta))
    } else {
        // Whole numbers inside the dtype's range, so exact in i128.
        let (start, delta) = (start as i128, delta as i128);
        let values: Vec<i64> = (0..count as i128)
            .map(|i| (start + i * delta) as i64)
            .collect();
        Tensor::from_vec(vec![values.len()], values)
            .map_err(|e| OpError(e.to_string()))?
            .cast(dtype)
            .into_data()
    };
    make_tensor(vec![data.len()], data)
}

fn constant_of_shape(shape: &[i64], value: f64, dtype: DType) -> Result<Tensor, OpError> {
    if !value_fits(value, dtype) {
        return op_err(format!("value {value} is not a value of dtype {dtype}"));
    }
    let shape = dims_from_attr(shape, "shape")?;
    let n_elements = checked_numel(&shape)?;
    make_tensor(
        shape,
        TensorData::from_f64s(dtype, std::iter::repeat_n(value, n_elements)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t<T: Elem>(shape: &[usize], values: Vec<T>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), values).unwrap()
    }

    fn run(op: Op, x: &Tensor) -> Result<Tensor, OpError> {
        eval(&op, &[Some(x)]).map(|mut v| v.remove(0))
    }

    fn iota(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        t(shape, (0..n as i64).collect())
    }

    fn err(result: Result<Tensor, OpError>) -> String {
        result.unwrap_err().0
    }

    fn run_two(op: Op, a: &Tensor, b: &Tensor) -> Result<Tensor, OpError> {
        eval(&op, &[Some(a), Some(b)]).map(|mut v| v.remove(0))
    }

    #[test]
    fn reshape_rules() {
        let x = iota(&[2, 3, 4]);
        let reshape = |shape: &[i64], allowzero| Op::Reshape {
            shape: shape.to_vec(),
            allowzero,
        };
        assert_eq!(run(reshape(&[4, -1], false), &x).unwrap().shape(), &[4, 6]);
        assert_eq!(run(reshape(&[0, -1], false), &x).unwrap().shape(), &[2, 12]);
        assert_eq!(
            run(reshape(&[0, 0, 2, 2], false), &x).unwrap().shape(),
            &[2, 3, 2, 2]
        );
        assert_eq!(run(reshape(&[24], false), &x).unwrap(), iota(&[24]));
        assert!(err(run(reshape(&[-1, -1], false), &x)).contains("more than one -1"));
        assert!(err(run(reshape(&[5, -1], false), &x)).contains("cannot infer"));
        assert!(err(run(reshape(&[5, 5], false), &x)).contains("cannot reshape"));
        assert!(err(run(reshape(&[2, -2, 6], false), &x)).contains("invalid entry"));
        assert!(err(run(reshape(&[0, 0, 0, 0, 0], false), &x)).contains("rank"));
        // allowzero: 0 means an empty dim.
        let empty = t(&[0, 3], Vec::<f32>::new());
        assert_eq!(
            run(reshape(&[3, 0], true), &empty).unwrap().shape(),
            &[3, 0]
        );
        assert_eq!(
            run(reshape(&[0, 3], false), &empty).unwrap().shape(),
            &[0, 3]
        );
        assert!(err(run(reshape(&[0, -1], true), &empty)).contains("both 0 and -1"));
        assert!(err(run(reshape(&[0, -1], false), &empty)).contains("cannot infer"));
        assert_eq!(
            run(reshape(&[], false), &t(&[1, 1], vec![7i32])).unwrap(),
            Tensor::scalar(7i32)
        );
    }

    #[test]
    fn flatten_axes() {
        let x = iota(&[2, 3, 4]);
        let flatten = |axis| run(Op::Flatten { axis }, &x).unwrap();
        assert_eq!(flatten(0).shape(), &[1, 24]);
        assert_eq!(flatten(1).shape(), &[2, 12]);
        assert_eq!(flatten(-1).shape(), &[6, 4]);
        assert_eq!(flatten(3).shape(), &[24, 1]);
        assert_eq!(flatten(2), iota(&[6, 4]));
        assert!(run(Op::Flatten { axis: 4 }, &x).is_err());
        assert!(run(Op::Flatten { axis: -4 }, &x).is_err());
    }

    #[test]
    fn transpose_permutes() {
        // [[0 1 2], [3 4 5]]^T = [[0 3], [1 4], [2 5]]
        let x = iota(&[2, 3]);
        assert_eq!(
            run(Op::Transpose { perm: vec![] }, &x).unwrap(),
            t(&[3, 2], vec![0i64, 3, 1, 4, 2, 5])
        );
        // x[i][j][k] = 4i + 2j + k, perm [2, 0, 1]: y[k][i][j].
        let x = iota(&[2, 2, 2]);
        assert_eq!(
            run(
                Op::Transpose {
                    perm: vec![2, 0, 1]
                },
                &x
            )
            .unwrap(),
            t(&[2, 2, 2], vec![0i64, 2, 4, 6, 1, 3, 5, 7])
        );
        // perm entries are axes in 0..rank; negative ones are not accepted (as in ONNX).
        assert!(err(run(
            Op::Transpose {
                perm: vec![-1, 0, 1]
            },
            &x
        ))
        .contains("permutation"));
        assert!(err(run(
            Op::Transpose {
                perm: vec![0, 0, 1]
            },
            &x
        ))
        .contains("more than once"));
        assert!(err(run(Op::Transpose { perm: vec![0, 1] }, &x)).contains("rank"));
        let empty = t(&[0, 2], Vec::<u8>::new());
        assert_eq!(
            run(Op::Transpose { perm: vec![] }, &empty).unwrap(),
            t(&[2, 0], Vec::<u8>::new())
        );
    }

    #[test]
    fn squeeze_and_unsqueeze() {
        let x = iota(&[1, 3, 1]);
        assert_eq!(run(Op::Squeeze { axes: vec![] }, &x).unwrap(), iota(&[3]));
        assert_eq!(
            run(Op::Squeeze { axes: vec![-1] }, &x).unwrap().shape(),
            &[1, 3]
        );
        assert!(err(run(Op::Squeeze { axes: vec![1] }, &x)).contains("not 1"));
        assert!(run(Op::Squeeze { axes: vec![3] }, &x).is_err());
        let v = iota(&[3]);
        assert_eq!(
            run(Op::Unsqueeze { axes: vec![0, -1] }, &v)
                .unwrap()
                .shape(),
            &[1, 3, 1]
        );
        assert_eq!(
            run(Op::Unsqueeze { axes: vec![1] }, &v).unwrap().shape(),
            &[3, 1]
        );
        assert_eq!(
            run(Op::Unsqueeze { axes: vec![2, 0] }, &v).unwrap().shape(),
            &[1, 3, 1]
        );
        assert_eq!(
            run(Op::Unsqueeze { axes: vec![0] }, &Tensor::scalar(1.0f32))
                .unwrap()
                .shape(),
            &[1]
        );
        assert!(run(Op::Unsqueeze { axes: vec![3] }, &v).is_err());
        assert!(run(Op::Unsqueeze { axes: vec![0, 0] }, &v).is_err());
    }

    #[test]
    fn concat_along_axes() {
        let a = iota(&[2, 2]);
        let b = t(&[2, 1], vec![10i64, 11]);
        let y = eval(&Op::Concat { axis: 1 }, &[Some(&a), Some(&b)]).unwrap();
        assert_eq!(y, vec![t(&[2, 3], vec![0i64, 1, 10, 2, 3, 11])]);
        let y = eval(&Op::Concat { axis: -2 }, &[Some(&a), Some(&a)]).unwrap();
        assert_eq!(y, vec![t(&[4, 2], vec![0i64, 1, 2, 3, 0, 1, 2, 3])]);
        let empty = t(&[0, 2], Vec::<i64>::new());
        let y = eval(&Op::Concat { axis: 0 }, &[Some(&empty), Some(&a)]).unwrap();
        assert_eq!(y, vec![a.clone()]);
        let single = eval(&Op::Concat { axis: 0 }, &[Some(&b)]).unwrap();
        assert_eq!(single, vec![b.clone()]);
        let wrong = eval(&Op::Concat { axis: 0 }, &[Some(&a), Some(&b)])
            .unwrap_err()
            .0;
        assert!(wrong.contains("does not match"), "{wrong}");
        let f = t(&[2, 1], vec![1.0f32, 2.0]);
        assert!(eval(&Op::Concat { axis: 1 }, &[Some(&a), Some(&f)])
            .unwrap_err()
            .0
            .contains("dtype"));
        assert!(eval(&Op::Concat { axis: 0 }, &[Some(&a), None])
            .unwrap_err()
            .0
            .contains("absent"));
        assert!(eval(&Op::Concat { axis: 0 }, &[Some(&Tensor::scalar(1i64))]).is_err());
        assert!(eval(&Op::Concat { axis: 0 }, &[]).is_err());
    }

    #[test]
    fn split_into_parts() {
        let x = iota(&[2, 5]);
        let parts = eval(
            &Op::Split {
                split: vec![2, 0, 3],
                axis: -1,
            },
            &[Some(&x)],
        )
        .unwrap();
        assert_eq!(
            parts,
            vec![
                t(&[2, 2], vec![0i64, 1, 5, 6]),
                t(&[2, 0], Vec::<i64>::new()),
                t(&[2, 3], vec![2i64, 3, 4, 7, 8, 9]),
            ]
        );
        let rows = eval(
            &Op::Split {
                split: vec![1, 1],
                axis: 0,
            },
            &[Some(&x)],
        )
        .unwrap();
        assert_eq!(rows[1], t(&[1, 5], vec![5i64, 6, 7, 8, 9]));
        assert!(eval(
            &Op::Split {
                split: vec![2, 2],
                axis: 1
            },
            &[Some(&x)]
        )
        .unwrap_err()
        .0
        .contains("add up"));
        assert!(eval(
            &Op::Split {
                split: vec![6, -1],
                axis: 1
            },
            &[Some(&x)]
        )
        .is_err());
        assert!(eval(
            &Op::Split {
                split: vec![],
                axis: 1
            },
            &[Some(&x)]
        )
        .is_err());
        assert!(eval(
            &Op::Split {
                split: vec![2],
                axis: 2
            },
            &[Some(&x)]
        )
        .is_err());
    }

    fn slice_op(starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]) -> Op {
        Op::Slice {
            starts: starts.to_vec(),
            ends: ends.to_vec(),
            axes: axes.to_vec(),
            steps: steps.to_vec(),
        }
    }

    #[test]
    fn slice_clamps_like_onnx() {
        let v = iota(&[5]);
        let s = |starts: &[i64], ends: &[i64], steps: &[i64]| {
            run(slice_op(starts, ends, &[], steps), &v).unwrap()
        };
        assert_eq!(s(&[1], &[3], &[]), t(&[2], vec![1i64, 2]));
        assert_eq!(s(&[-2], &[i64::MAX], &[]), t(&[2], vec![3i64, 4]));
        assert_eq!(s(&[-100], &[100], &[2]), t(&[3], vec![0i64, 2, 4]));
        assert_eq!(s(&[3], &[1], &[]), t(&[0], Vec::<i64>::new()));
        assert_eq!(
            s(&[i64::MAX], &[i64::MIN], &[-1]),
            t(&[5], vec![4i64, 3, 2, 1, 0])
        );
        assert_eq!(s(&[-1], &[i64::MIN], &[-2]), t(&[3], vec![4i64, 2, 0]));
        assert_eq!(s(&[4], &[1], &[-2]), t(&[2], vec![4i64, 2]));
        assert_eq!(s(&[-1], &[-6], &[-1]), t(&[5], vec![4i64, 3, 2, 1, 0]));
        assert_eq!(
            s(&[0], &[-1], &[-1]),
            t(&[0], Vec::<i64>::new()),
            "end -1 means index 4, before 0"
        );
        // The ONNX spec clamps a negative-step start below -dim to 0 (numpy would select nothing).
        assert_eq!(s(&[-100], &[i64::MIN], &[-1]), t(&[1], vec![0i64]));
        assert_eq!(s(&[0], &[5], &[i64::MAX]), t(&[1], vec![0i64]));
        assert_eq!(s(&[4], &[i64::MIN], &[i64::MIN]), t(&[1], vec![4i64]));
    }

    #[test]
    fn slice_multiple_axes() {
        // x = [[0 1 2 3], [4 5 6 7], [8 9 10 11]]
        let x = iota(&[3, 4]);
        assert_eq!(
            run(slice_op(&[0, 1], &[2, 3], &[], &[]), &x).unwrap(),
            t(&[2, 2], vec![1i64, 2, 5, 6])
        );
        assert_eq!(
            run(slice_op(&[-1, 0], &[i64::MIN, 4], &[1, -2], &[-2, 2]), &x).unwrap(),
            t(&[2, 2], vec![3i64, 1, 11, 9])
        );
        assert_eq!(
            run(slice_op(&[1], &[2], &[0], &[]), &x).unwrap(),
            t(&[1, 4], vec![4i64, 5, 6, 7])
        );
        assert!(err(run(slice_op(&[0], &[1], &[0], &[0]), &x)).contains("step"));
        assert!(run(slice_op(&[0, 0], &[1], &[], &[]), &x).is_err());
        assert!(run(slice_op(&[0], &[1], &[0, 1], &[]), &x).is_err());
        assert!(run(slice_op(&[0, 0], &[1, 1], &[1, -1], &[]), &x).is_err());
        assert!(run(slice_op(&[0, 0, 0], &[1, 1, 1], &[], &[]), &x).is_err());
        let empty = t(&[0, 2], Vec::<f32>::new());
        assert_eq!(
            run(slice_op(&[0], &[i64::MIN], &[0], &[-1]), &empty).unwrap(),
            t(&[0, 2], Vec::<f32>::new())
        );
    }

    #[test]
    fn gather_along_axes() {
        // x = [[0 1 2], [3 4 5]]
        let x = iota(&[2, 3]);
        let idx = t(&[2], vec![2i64, -3]);
        let y = eval(&Op::Gather { axis: 1 }, &[Some(&x), Some(&idx)]).unwrap();
        assert_eq!(y, vec![t(&[2, 2], vec![2i64, 0, 5, 3])]);
        let rows = t(&[2, 2], vec![1i32, 0, 0, 1]);
        let y = eval(&Op::Gather { axis: 0 }, &[Some(&x), Some(&rows)]).unwrap();
        assert_eq!(y[0].shape(), &[2, 2, 3]);
        assert_eq!(y[0].as_slice::<i64>().unwrap()[..6], [3, 4, 5, 0, 1, 2]);
        let scalar_idx = Tensor::scalar(1i64);
        let y = eval(&Op::Gather { axis: -1 }, &[Some(&x), Some(&scalar_idx)]).unwrap();
        assert_eq!(y, vec![t(&[2], vec![1i64, 4])]);
        let bad = t(&[1], vec![3i64]);
        let message = eval(&Op::Gather { axis: 1 }, &[Some(&x), Some(&bad)])
            .unwrap_err()
            .0;
        assert!(
            message.contains("`gather`") && message.contains("out of range"),
            "{message}"
        );
        let too_negative = t(&[1], vec![-4i64]);
        assert!(eval(&Op::Gather { axis: 1 }, &[Some(&x), Some(&too_negative)]).is_err());
        let float_idx = t(&[1], vec![0.0f32]);
        assert!(eval(&Op::Gather { axis: 0 }, &[Some(&x), Some(&float_idx)]).is_err());
        assert!(eval(&Op::Gather { axis: 2 }, &[Some(&x), Some(&idx)]).is_err());
        let empty_idx = t(&[0], Vec::<i64>::new());
        let y = eval(&Op::Gather { axis: 0 }, &[Some(&x), Some(&empty_idx)]).unwrap();
        assert_eq!(y, vec![t(&[0, 3], Vec::<i64>::new())]);
    }

    #[test]
    fn gather_elements_picks_per_position() {
        // ONNX example: data [[1 2], [3 4]], indices [[0 0], [1 0]], axis 1 -> [[1 1], [4 3]].
        let data = t(&[2, 2], vec![1.0f32, 2.0, 3.0, 4.0]);
        let idx = t(&[2, 2], vec![0i64, 0, 1, 0]);
        let y = eval(&Op::GatherElements { axis: 1 }, &[Some(&data), Some(&idx)]).unwrap();
        assert_eq!(y, vec![t(&[2, 2], vec![1.0f32, 1.0, 4.0, 3.0])]);
        // axis 0 with negative indices and fewer columns than data: [[-1], [0]] -> [[3], [1]].
        let idx = t(&[2, 1], vec![-1i32, 0]);
        let y = eval(&Op::GatherElements { axis: 0 }, &[Some(&data), Some(&idx)]).unwrap();
        assert_eq!(y, vec![t(&[2, 1], vec![3.0f32, 1.0])]);
        let out_of_range = t(&[1, 1], vec![2i64]);
        assert!(eval(
            &Op::GatherElements { axis: 0 },
            &[Some(&data), Some(&out_of_range)]
        )
        .is_err());
        let wide = t(&[1, 3], vec![0i64, 0, 0]);
        assert!(
            eval(&Op::GatherElements { axis: 0 }, &[Some(&data), Some(&wide)])
                .unwrap_err()
                .0
                .contains("exceed")
        );
        let wrong_rank = t(&[2], vec![0i64, 0]);
        assert!(eval(
            &Op::GatherElements { axis: 0 },
            &[Some(&data), Some(&wrong_rank)]
        )
        .is_err());
    }

    #[test]
    fn expand_broadcasts() {
        let x = t(&[3, 1], vec![1i32, 2, 3]);
        let y = run(
            Op::Expand {
                shape: vec![2, 1, 2],
            },
            &x,
        )
        .unwrap();
        assert_eq!(
            y,
            t(&[2, 3, 2], vec![1i32, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3])
        );
        // numpy rules: the result can be larger than `shape` where `shape` has 1s.
        assert_eq!(run(Op::Expand { shape: vec![1] }, &x).unwrap(), x);
        assert_eq!(
            run(
                Op::Expand {
                    shape: vec![0, 1, 1]
                },
                &x
            )
            .unwrap()
            .shape(),
            &[0, 3, 1]
        );
        assert!(run(Op::Expand { shape: vec![2, 2] }, &x).is_err());
        assert!(run(Op::Expand { shape: vec![-1] }, &x).is_err());
    }

    #[test]
    fn tile_repeats() {
        let x = t(&[2, 2], vec![1u8, 2, 3, 4]);
        let y = run(
            Op::Tile {
                repeats: vec![1, 2],
            },
            &x,
        )
        .unwrap();
        assert_eq!(y, t(&[2, 4], vec![1u8, 2, 1, 2, 3, 4, 3, 4]));
        let y = run(
            Op::Tile {
                repeats: vec![2, 1],
            },
            &x,
        )
        .unwrap();
        assert_eq!(y, t(&[4, 2], vec![1u8, 2, 3, 4, 1, 2, 3, 4]));
        assert_eq!(
            run(
                Op::Tile {
                    repeats: vec![0, 3]
                },
                &x
            )
            .unwrap()
            .shape(),
            &[0, 6]
        );
        assert!(run(Op::Tile { repeats: vec![2] }, &x).is_err());
        assert!(run(
            Op::Tile {
                repeats: vec![1, -1]
            },
            &x
        )
        .is_err());
        let empty = t(&[0, 2], Vec::<u8>::new());
        assert_eq!(
            run(
                Op::Tile {
                    repeats: vec![3, 2]
                },
                &empty
            )
            .unwrap()
            .shape(),
            &[0, 4]
        );
    }

    #[test]
    fn trilu_masks_batched_matrices() {
        // x = [[1 2 3], [4 5 6], [7 8 9]]
        let x = t(&[3, 3], (1..=9).collect::<Vec<i32>>());
        let y = run(Op::Trilu { upper: true, k: 0 }, &x).unwrap();
        assert_eq!(y, t(&[3, 3], vec![1i32, 2, 3, 0, 5, 6, 0, 0, 9]));
        let y = run(Op::Trilu { upper: false, k: 0 }, &x).unwrap();
        assert_eq!(y, t(&[3, 3], vec![1i32, 0, 0, 4, 5, 0, 7, 8, 9]));
        let y = run(Op::Trilu { upper: true, k: 1 }, &x).unwrap();
        assert_eq!(y, t(&[3, 3], vec![0i32, 2, 3, 0, 0, 6, 0, 0, 0]));
        let y = run(
            Op::Trilu {
                upper: false,
                k: -1,
            },
            &x,
        )
        .unwrap();
        assert_eq!(y, t(&[3, 3], vec![0i32, 0, 0, 4, 0, 0, 7, 8, 0]));
        let y = run(Op::Trilu { upper: true, k: -5 }, &x).unwrap();
        assert_eq!(y, x);
        // Batched and non-square: two [2, 3] matrices.
        let b = t(&[2, 2, 3], vec![1.0f32; 12]);
        let y = run(Op::Trilu { upper: false, k: 0 }, &b).unwrap();
        let one_matrix = [1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0];
        assert_eq!(
            y.as_slice::<f32>().unwrap(),
            [one_matrix, one_matrix].concat()
        );
        assert!(run(Op::Trilu { upper: true, k: 0 }, &t(&[3], vec![1i32, 2, 3])).is_err());
        let empty = t(&[0, 3], Vec::<i32>::new());
        assert_eq!(run(Op::Trilu { upper: true, k: 0 }, &empty).unwrap(), empty);
    }

    #[test]
    fn shape_with_start_and_end() {
        let x = t(&[2, 3, 4], vec![0u8; 24]);
        let shape = |start, end| run(Op::Shape { start, end }, &x).unwrap();
        assert_eq!(shape(0, None), t(&[3], vec![2i64, 3, 4]));
        assert_eq!(shape(1, None), t(&[2], vec![3i64, 4]));
        assert_eq!(shape(-1, None), t(&[1], vec![4i64]));
        assert_eq!(shape(0, Some(-1)), t(&[2], vec![2i64, 3]));
        assert_eq!(shape(-10, Some(10)), t(&[3], vec![2i64, 3, 4]));
        assert_eq!(shape(2, Some(1)), t(&[0], Vec::<i64>::new()));
        assert_eq!(
            run(
                Op::Shape {
                    start: 0,
                    end: None
                },
                &Tensor::scalar(1.0f32)
            )
            .unwrap(),
            t(&[0], Vec::<i64>::new())
        );
    }

    #[test]
    fn range_floats_and_integers() {
        let range = |start, limit, delta, dtype| {
            eval(
                &Op::Range {
                    start,
                    limit,
                    delta,
                    dtype,
                },
                &[],
            )
            .map(|mut v| v.remove(0))
        };
        assert_eq!(
            range(1.0, 2.0, 0.25, DType::F32).unwrap(),
            t(&[4], vec![1.0f32, 1.25, 1.5, 1.75])
        );
        assert_eq!(
            range(3.0, 0.0, -1.0, DType::F64).unwrap(),
            t(&[3], vec![3.0f64, 2.0, 1.0])
        );
        assert_eq!(
            range(0.0, 1.0, 0.3, DType::F64).unwrap(),
            t(&[4], vec![0.0f64, 0.3, 0.6, 0.3 * 3.0])
        );
        assert_eq!(
            range(0.0, 0.0, 1.0, DType::F32).unwrap(),
            t(&[0], Vec::<f32>::new())
        );
        assert_eq!(
            range(5.0, 0.0, 1.0, DType::I64).unwrap(),
            t(&[0], Vec::<i64>::new())
        );
        assert_eq!(
            range(10.0, 0.0, -3.0, DType::I32).unwrap(),
            t(&[4], vec![10i32, 7, 4, 1])
        );
        assert_eq!(
            range(-2.0, 3.0, 2.0, DType::I32).unwrap(),
            t(&[3], vec![-2i32, 0, 2])
        );
        // The count comes from the f64 attributes, even where rounding them to f32 first would
        // give another (1e-46 is 0 in f32).
        assert_eq!(
            range(0.0, 1e-46, 1.0, DType::F32).unwrap(),
            t(&[1], vec![0.0f32])
        );
        assert!(err(range(0.0, 1.0, 0.0, DType::F32)).contains("delta"));
        assert!(err(range(0.0, 1.0, 0.5, DType::I64)).contains("whole"));
        assert!(err(range(0.0, 3e9, 1.0, DType::I32)).contains("fit"));
        assert!(err(range(0.0, 2f64.powi(63), 1e18, DType::I64)).contains("fit"));
        // ONNX's Range has no 8-bit types.
        assert!(err(range(0.0, 3.0, 1.0, DType::I8)).contains("dtype"));
        assert!(range(0.0, 1.0, 1.0, DType::Bool).is_err());
        // More than 2^53 elements cannot be counted exactly in f64.
        assert!(err(range(0.0, 1e17, 1.0, DType::I64)).contains("too large"));
        assert!(range(0.0, f64::INFINITY, 1.0, DType::F32).is_err());
        assert!(err(range(0.0, 1e300, 1e-300, DType::F64)).contains("too large"));
    }

    #[test]
    fn constant_of_shape_fills() {
        let make = |shape: &[i64], value, dtype| {
            eval(
                &Op::ConstantOfShape {
                    shape: shape.to_vec(),
                    value,
                    dtype,
                },
                &[],
            )
            .map(|mut v| v.remove(0))
        };
        assert_eq!(
            make(&[2, 2], 1.5, DType::F32).unwrap(),
            t(&[2, 2], vec![1.5f32; 4])
        );
        assert_eq!(make(&[3], 7.0, DType::I64).unwrap(), t(&[3], vec![7i64; 3]));
        assert_eq!(make(&[1], 1.0, DType::Bool).unwrap(), t(&[1], vec![true]));
        assert_eq!(make(&[], 0.0, DType::F32).unwrap(), Tensor::scalar(0.0f32));
        assert_eq!(
            make(&[0, 5], 0.0, DType::I32).unwrap(),
            t(&[0, 5], Vec::<i32>::new())
        );
        assert!(make(&[-1], 0.0, DType::F32).is_err());
        assert!(make(&[i64::MAX, i64::MAX], 0.0, DType::F32)
            .unwrap_err()
            .0
            .contains("too many"));
        // The value must be a value of the dtype (ONNX passes it as a tensor of it).
        assert!(err(make(&[2], 300.0, DType::U8)).contains("not a value of dtype u8"));
        assert!(make(&[2], 0.5, DType::I64).is_err());
        assert!(make(&[2], 2.0, DType::Bool).is_err());
        // An empty result may have a large dim, within the element-count invariant.
        assert_eq!(
            make(&[1 << 40, 0], 1.0, DType::F32).unwrap().shape(),
            &[1 << 40, 0]
        );
    }

    #[test]
    fn indices_are_i32_or_i64() {
        let data = iota(&[3]);
        for indices in [t(&[1], vec![1u8]), t(&[1], vec![1i8])] {
            let message = err(run_two(Op::Gather { axis: 0 }, &data, &indices));
            assert!(message.contains("indices must be i32 or i64"), "{message}");
            let message = err(run_two(Op::GatherElements { axis: 0 }, &data, &indices));
            assert!(message.contains("indices must be i32 or i64"), "{message}");
        }
    }

    #[test]
    fn data_movement_keeps_every_dtype() {
        let x = t(&[2, 2], vec![true, false, false, true]);
        let y = run(Op::Transpose { perm: vec![] }, &x).unwrap();
        assert_eq!(y, t(&[2, 2], vec![true, false, false, true]));
        let y = run(Op::Trilu { upper: true, k: 0 }, &x).unwrap();
        assert_eq!(y, t(&[2, 2], vec![true, false, false, true]));
        let f = t(&[2], vec![f64::NAN, -0.0]);
        let y = run(Op::Tile { repeats: vec![2] }, &f).unwrap();
        assert_eq!(
            y,
            t(&[4], vec![f64::NAN, -0.0, f64::NAN, -0.0]),
            "bitwise copies"
        );
    }
}
