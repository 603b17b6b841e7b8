//! Index arithmetic shared by the op implementations: strides, axis normalization, broadcasting, and
//! the input checks every family repeats (present, float, same dtype).

use crate::{op_err, OpError};
use sinter_ir::{DType, Op, Tensor, TensorData};

/// Row-major strides of `shape`, in elements.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

/// Resolves a possibly negative `axis` against `rank`; `rank` itself is out of range.
pub fn normalize_axis(axis: i64, rank: usize) -> Result<usize, OpError> {
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    if resolved < 0 || resolved >= rank as i64 {
        return op_err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(resolved as usize)
}

/// The numpy broadcast of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Vec<usize>, OpError> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for axis in 0..rank {
        let da = if axis + a.len() >= rank {
            a[axis + a.len() - rank]
        } else {
            1
        };
        let db = if axis + b.len() >= rank {
            b[axis + b.len() - rank]
        } else {
            1
        };
        out[axis] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return op_err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

/// For each element of `out_shape` in row-major order, the flat index of the element of a tensor of
/// `in_shape` that broadcasts to it. `in_shape` must broadcast to `out_shape`.
pub fn broadcast_indices(in_shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let rank = out_shape.len();
    let offset = rank - in_shape.len();
    let in_strides = strides(in_shape);
    // Stride 0 along broadcast axes makes the element repeat.
    let eff: Vec<usize> = (0..rank)
        .map(|axis| {
            if axis < offset || in_shape[axis - offset] == 1 {
                0
            } else {
                in_strides[axis - offset]
            }
        })
        .collect();
    let total: usize = out_shape.iter().product();
    let mut result = Vec::with_capacity(total);
    let mut coord = vec![0usize; rank];
    let mut flat = 0usize;
    for _ in 0..total {
        result.push(flat);
        for axis in (0..rank).rev() {
            coord[axis] += 1;
            flat += eff[axis];
            if coord[axis] < out_shape[axis] {
                break;
            }
            flat -= eff[axis] * coord[axis];
            coord[axis] = 0;
        }
    }
    result
}

/// Calls `f` with every multi-index of `shape` in row-major order.
pub fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    if shape.contains(&0) {
        return;
    }
    let mut coord = vec![0usize; shape.len()];
    loop {
        f(&coord);
        let mut axis = shape.len();
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            coord[axis] += 1;
            if coord[axis] < shape[axis] {
                break;
            }
            coord[axis] = 0;
        }
    }
}

/// Input `slot_idx` of `op`. `eval_op` already rejects missing required inputs; this check keeps the
/// family modules panic-free when they are called directly.
pub fn required_input<'a>(
    op: &Op,
    inputs: &[Option<&'a Tensor>],
    slot_idx: usize,
) -> Result<&'a Tensor, OpError> {
    match inputs.get(slot_idx).copied().flatten() {
        Some(tensor) => Ok(tensor),
        None => op_err(format!(
            "`{}` needs input `{}` (slot {slot_idx})",
            op.name(),
            op.input_name(slot_idx)
        )),
    }
}

/// Input `slot_idx` if it is present.
pub fn optional_input<'a>(inputs: &[Option<&'a Tensor>], slot_idx: usize) -> Option<&'a Tensor> {
    inputs.get(slot_idx).copied().flatten()
}

/// The elements of a float (f32 or f64) input widened to f64; any other dtype is an error naming the
/// op and the input.
pub fn float_values(op: &Op, input_name: &str, tensor: &Tensor) -> Result<Vec<f64>, OpError> {
    match tensor.dtype() {
        DType::F32 | DType::F64 => Ok(tensor.to_f64_vec()),
        other => op_err(format!(
            "`{}` input `{input_name}` must be f32 or f64, got {other}",
            op.name()
        )),
    }
}

/// Checks that input `input_name` has the dtype of the op's main input.
pub fn expect_dtype(
    op: &Op,
    input_name: &str,
    tensor: &Tensor,
    dtype: DType,
) -> Result<(), OpError> {
    if tensor.dtype() != dtype {
        return op_err(format!(
            "`{}` input `{input_name}` must have dtype {dtype} like the first input, got {}",
            op.name(),
            tensor.dtype()
        ));
    }
    Ok(())
}

/// A tensor of `dtype` built from f64 results, each rounded to the dtype (`Elem::from_f64`).
pub fn tensor_from_f64s(
    dtype: DType,
    shape: Vec<usize>,
    values: Vec<f64>,
) -> Result<Tensor, OpError> {
    Tensor::new(shape, TensorData::from_f64s(dtype, values.into_iter()))
        .map_err(|e| OpError(format!("internal error building a result: {e}")))
}

/// The largest magnitude accepted for a size-like attribute (strides, dilations, pads, sizes, hidden
/// sizes). Real models stay far below it, and with it index arithmetic in `usize`/`i64` cannot overflow.
/// It is the IR's limit, which inference enforces too.
pub use sinter_ir::MAX_ATTR_SIZE;

/// Whether a scalar attribute (a clip bound, a fill value, a range bound) is a value of `dtype`, as it
/// must be: ONNX passes these as tensors of that dtype. Every value fits a float dtype (rounding to
/// f32 is part of the conversion); integers must be whole and in range, bools 0 or 1.
pub fn value_fits(value: f64, dtype: DType) -> bool {
    // 2^63 is exactly representable in f64 but one past i64::MAX, so upper bounds are exclusive.
    let whole_in = |min: f64, max_exclusive: f64| {
        value.fract() == 0.0 && value >= min && value < max_exclusive
    };
    match dtype {
        DType::F32 | DType::F64 => true,
        DType::Bool => value == 0.0 || value == 1.0,
        DType::I64 => whole_in(-(2f64.powi(63)), 2f64.powi(63)),
        DType::I32 => whole_in(f64::from(i32::MIN), f64::from(i32::MAX) + 1.0),
        DType::I8 => whole_in(f64::from(i8::MIN), f64::from(i8::MAX) + 1.0),
        DType::U8 => whole_in(0.0, f64::from(u8::MAX) + 1.0),
        _ => false,
    }
}

/// Checks that every entry of a size-like attribute is within `±MAX_ATTR_SIZE`.
pub fn check_attr_sizes(op: &Op, attr: &str, values: &[i64]) -> Result<(), OpError> {
    if values
        .iter()
        .any(|v| v.unsigned_abs() > MAX_ATTR_SIZE as u64)
    {
        return op_err(format!(
            "`{}` attribute `{attr}` has an entry beyond {MAX_ATTR_SIZE}: {values:?}",
            op.name()
        ));
    }
    Ok(())
}

/// The element count of an output shape, or an error when it overflows or could never be allocated,
/// so that a bad attribute cannot make `Vec::with_capacity` panic.
pub fn checked_len(op: &Op, shape: &[usize]) -> Result<usize, OpError> {
    let limit = isize::MAX as usize / 16;
    if !sinter_ir::dims_within_max_elements(shape) {
        return op_err(format!(
            "`{}` output shape {shape:?} has too many elements",
            op.name()
        ));
    }
    if shape.contains(&0) {
        return Ok(0);
    }
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d).filter(|&n| n <= limit))
        .map_or_else(
            || {
                op_err(format!(
                    "`{}` output shape {shape:?} is too large",
                    op.name()
                ))
            },
            Ok,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_indices_repeat_along_size_one_axes() {
        assert_eq!(broadcast_indices(&[2, 1], &[2, 3]), vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(broadcast_indices(&[3], &[2, 3]), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(
            broadcast_shapes(&[4, 1, 3], &[2, 1]).unwrap(),
            vec![4, 2, 3]
        );
        assert!(broadcast_shapes(&[2], &[3]).is_err());
    }

    #[test]
    fn for_each_index_visits_row_major() {
        let mut seen = Vec::new();
        for_each_index(&[2, 2], |c| seen.push(c.to_vec()));
        assert_eq!(seen, vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]);
        let mut count = 0;
        for_each_index(&[], |_| count += 1);
        assert_eq!(count, 1, "a scalar has one element");
    }
}

// ---- helpers added for the elementwise, linalg, reduce and movement families ----

/// Pairs a shape with data, turning a size mismatch (an implementation bug) into an `OpError` instead
/// of a panic.
pub fn make_tensor(shape: Vec<usize>, data: TensorData) -> Result<Tensor, OpError> {
    Tensor::new(shape, data).map_err(|e| OpError(format!("internal error building a result: {e}")))
}

/// The largest element count an op may produce (the IR's limit): an i64 (8-byte) buffer of this many
/// elements still fits in `isize::MAX` bytes, so allocation never hits Rust's capacity-overflow panic.
pub use sinter_ir::MAX_ELEMENTS;

/// The element count of `shape`, or an error when its non-zero dims multiply to more than
/// [`MAX_ELEMENTS`] (the IR's invariant, which inference checks too). A shape with a 0 dim has no
/// elements.
pub fn checked_numel(shape: &[usize]) -> Result<usize, OpError> {
    if !sinter_ir::dims_within_max_elements(shape) {
        return op_err(format!("shape {shape:?} has too many elements"));
    }
    Ok(shape.iter().product())
}

/// Resolves possibly negative `axes` against `rank`, rejecting out-of-range and repeated axes. The
/// result keeps the given order.
pub fn normalize_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, OpError> {
    let mut resolved = Vec::with_capacity(axes.len());
    for &axis in axes {
        let axis_idx = normalize_axis(axis, rank)?;
        if resolved.contains(&axis_idx) {
            return op_err(format!("axis {axis} appears more than once in {axes:?}"));
        }
        resolved.push(axis_idx);
    }
    Ok(resolved)
}

/// The elements of `data` at `flat_indices`, in that order. The indices are computed by the caller
/// from shapes it has validated, so they are in range by construction.
pub fn take(data: &TensorData, flat_indices: &[usize]) -> TensorData {
    fn take_typed<T: sinter_ir::Elem>(values: &[T], flat_indices: &[usize]) -> TensorData {
        T::wrap(flat_indices.iter().map(|&idx| values[idx]).collect())
    }
    sinter_ir::with_data!(data, values => take_typed(values, flat_indices))
}

#[cfg(test)]
mod family_helper_tests {
    use super::*;

    #[test]
    fn normalize_axes_rejects_repeats_and_out_of_range() {
        assert_eq!(normalize_axes(&[-1, 0], 3).unwrap(), vec![2, 0]);
        assert!(normalize_axes(&[1, -2], 3).is_err(), "-2 is axis 1 again");
        assert!(normalize_axes(&[3], 3).is_err());
        assert!(normalize_axes(&[-4], 3).is_err());
    }

    #[test]
    fn checked_numel_rejects_overflow() {
        assert_eq!(checked_numel(&[2, 3, 4]).unwrap(), 24);
        assert_eq!(checked_numel(&[]).unwrap(), 1);
        assert_eq!(checked_numel(&[5, 0, 3]).unwrap(), 0);
        // An empty shape may have large dims, but its non-zero dims must still multiply to at most
        // MAX_ELEMENTS (the IR's invariant), in any order.
        assert_eq!(checked_numel(&[1 << 40, 0, 1 << 19]).unwrap(), 0);
        assert!(checked_numel(&[5, 0, usize::MAX]).is_err());
        assert!(checked_numel(&[usize::MAX, 2, 0]).is_err());
        assert!(checked_numel(&[usize::MAX, 2]).is_err());
        assert!(checked_numel(&[1 << 40, 1 << 30]).is_err());
    }

    #[test]
    fn take_gathers_in_order() {
        let data = TensorData::I32(vec![10, 20, 30].into());
        assert_eq!(
            take(&data, &[2, 0, 2]),
            TensorData::I32(vec![30, 10, 30].into())
        );
        assert_eq!(take(&data, &[]), TensorData::I32(vec![].into()));
    }
}
