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

/// A row-major walk over the numpy broadcast of `N` operands to an output shape, in contiguous runs
/// instead of one index per element.
///
/// The output's axes are simplified first: size-1 axes are dropped, and two neighbouring axes merge
/// when every operand steps through them as through one axis (its stride on the outer axis is its
/// stride on the inner one times the inner axis's size; two broadcast axes, both stride 0, qualify).
/// The innermost remaining axis is the run. Along it an operand's stride is 1 when it has the axis and
/// 0 when it is broadcast along it: its stride there is the product of its dims inside that axis, and
/// those are all 1 since the output's are. An odometer over the other axes gives every operand's flat
/// offset at the start of each run.
///
/// Equal shapes become one run with steps 1, a scalar operand has step 0 everywhere, and a weight
/// `[M, K, 3, 3]` scaled by `[M, 1, 1, 1]` becomes `M` runs of `9K` with steps 1 and 0. Element `e` of
/// the run starting at offsets `o` reads operand `k` at `o[k] + e * steps[k]`; element order is the
/// output's row-major order, exactly as [`broadcast_indices`] lists it.
#[derive(Clone, Debug)]
pub struct BroadcastRuns<const N: usize> {
    /// The sizes of the merged axes outside the run, outermost first.
    outer_dims: Vec<usize>,
    /// For each outer axis, every operand's stride along it (0 where the operand is broadcast).
    outer_strides: Vec<[usize; N]>,
    /// 0 for an empty output, which has no runs.
    run_len: usize,
    steps: [usize; N],
}

impl<const N: usize> BroadcastRuns<N> {
    /// The walk of `in_shapes` broadcast to `out_shape`; each of `in_shapes` must broadcast to
    /// `out_shape` (as [`broadcast_shapes`] computes it) and `out_shape` must have a valid element
    /// count ([`checked_numel`]).
    pub fn new(in_shapes: [&[usize]; N], out_shape: &[usize]) -> Self {
        if out_shape.contains(&0) {
            // No runs; skip the strides, which need not be meaningful for an empty shape.
            return BroadcastRuns {
                outer_dims: Vec::new(),
                outer_strides: Vec::new(),
                run_len: 0,
                steps: [0; N],
            };
        }
        let rank = out_shape.len();
        let in_strides = in_shapes.map(strides);
        // (size, per-operand stride) of each merged axis, outermost first.
        let mut axes: Vec<(usize, [usize; N])> = Vec::new();
        for (axis, &dim) in out_shape.iter().enumerate() {
            if dim == 1 {
                continue;
            }
            let axis_strides: [usize; N] = std::array::from_fn(|k| {
                let shape = in_shapes[k];
                let offset = rank - shape.len();
                if axis < offset || shape[axis - offset] == 1 {
                    0
                } else {
                    in_strides[k][axis - offset]
                }
            });
            match axes.last_mut() {
                Some((outer_dim, outer_strides))
                    if (0..N)
                        .all(|k| axis_strides[k].checked_mul(dim) == Some(outer_strides[k])) =>
                {
                    *outer_dim *= dim;
                    *outer_strides = axis_strides;
                }
                _ => axes.push((dim, axis_strides)),
            }
        }
        // No axis left: every dim is 1, one run of one element at offset 0.
        let (run_len, steps) = axes.pop().unwrap_or((1, [0; N]));
        let (outer_dims, outer_strides) = axes.into_iter().unzip();
        BroadcastRuns {
            outer_dims,
            outer_strides,
            run_len,
            steps,
        }
    }

    /// The number of elements in each run.
    pub fn run_len(&self) -> usize {
        self.run_len
    }

    /// Each operand's stride within a run: 1 or 0 (broadcast).
    pub fn steps(&self) -> [usize; N] {
        self.steps
    }

    /// The output's element count (the sum of all runs' lengths).
    pub fn len(&self) -> usize {
        self.run_len * self.outer_dims.iter().product::<usize>()
    }

    /// Whether the output has no elements (and so no runs).
    pub fn is_empty(&self) -> bool {
        self.run_len == 0
    }

    /// Calls `f` with every operand's flat offset at the start of each run, runs in row-major order.
    pub fn for_each_run(&self, mut f: impl FnMut([usize; N])) {
        if self.is_empty() {
            return;
        }
        let mut coord = vec![0usize; self.outer_dims.len()];
        let mut offsets = [0usize; N];
        loop {
            f(offsets);
            let mut axis = coord.len();
            loop {
                if axis == 0 {
                    return;
                }
                axis -= 1;
                let strides = &self.outer_strides[axis];
                if coord[axis] + 1 < self.outer_dims[axis] {
                    coord[axis] += 1;
                    for (offset, stride) in offsets.iter_mut().zip(strides) {
                        *offset += stride;
                    }
                    break;
                }
                // Wrap this axis to 0 and carry into the next outer one.
                for (offset, stride) in offsets.iter_mut().zip(strides) {
                    *offset -= stride * coord[axis];
                }
                coord[axis] = 0;
            }
        }
    }
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

    /// The flat index lists the runs expand to, one per operand.
    fn expand<const N: usize>(runs: &BroadcastRuns<N>) -> [Vec<usize>; N] {
        let mut lists: [Vec<usize>; N] = std::array::from_fn(|_| Vec::new());
        let (n, steps) = (runs.run_len(), runs.steps());
        runs.for_each_run(|offsets| {
            for (list, (offset, step)) in lists.iter_mut().zip(offsets.iter().zip(steps)) {
                list.extend((0..n).map(|e| offset + e * step));
            }
        });
        lists
    }

    #[test]
    fn broadcast_runs_merge_axes_into_long_runs() {
        // A conv weight scaled per output channel: one run per channel, the factor repeated.
        let runs = BroadcastRuns::new([&[8, 4, 3, 3][..], &[8, 1, 1, 1]], &[8, 4, 3, 3]);
        assert_eq!(
            (runs.run_len(), runs.steps(), runs.len()),
            (36, [1, 0], 288)
        );
        let mut starts = Vec::new();
        runs.for_each_run(|offsets| starts.push(offsets));
        assert_eq!(starts, (0..8).map(|m| [36 * m, m]).collect::<Vec<_>>());
        // Equal shapes and scalars are a single run.
        let runs = BroadcastRuns::new([&[2, 3, 4][..], &[2, 3, 4], &[]], &[2, 3, 4]);
        assert_eq!((runs.run_len(), runs.steps()), (24, [1, 1, 0]));
        // Size-1 axes are skipped; a broadcast inner axis gives step 0.
        let runs = BroadcastRuns::new([&[2, 1, 1][..], &[1, 1, 3]], &[2, 1, 3]);
        assert_eq!((runs.run_len(), runs.steps()), (3, [0, 1]));
        assert_eq!(
            expand(&runs),
            [vec![0, 0, 0, 1, 1, 1], vec![0, 1, 2, 0, 1, 2]]
        );
        // All dims 1: one element.
        let runs = BroadcastRuns::new([&[1, 1][..], &[]], &[1, 1]);
        assert_eq!(expand(&runs), [vec![0], vec![0]]);
        // Empty: no runs at all.
        let runs = BroadcastRuns::new([&[3, 0][..], &[1]], &[3, 0]);
        assert!(runs.is_empty());
        assert_eq!(expand(&runs), [vec![], vec![]]);
    }

    /// Exhaustively over small shapes: every out shape of rank 0 to 4 with dims in 0..=3, every
    /// operand obtained by dropping leading axes and setting axes to 1, against `broadcast_indices`.
    #[test]
    fn broadcast_runs_visit_what_broadcast_indices_lists() {
        let mut out_shapes = vec![vec![]];
        for _ in 0..4 {
            let longer: Vec<Vec<usize>> = out_shapes
                .iter()
                .filter(|s| s.len() == out_shapes.last().unwrap().len())
                .flat_map(|s| (0..4).map(move |d| [s.clone(), vec![d]].concat()))
                .collect();
            out_shapes.extend(longer);
        }
        let mut checked = 0;
        for out in &out_shapes {
            let rank = out.len();
            // Every operand shape: a suffix of `out` with any subset of its axes set to 1.
            let mut operands = Vec::new();
            for operand_rank in 0..=rank {
                for mask in 0..1usize << operand_rank {
                    let shape: Vec<usize> = (0..operand_rank)
                        .map(|k| {
                            if mask >> k & 1 == 1 {
                                1
                            } else {
                                out[rank - operand_rank + k]
                            }
                        })
                        .collect();
                    operands.push(shape);
                }
            }
            for a in &operands {
                for b in &operands {
                    let Ok(shape) = broadcast_shapes(a, b) else {
                        continue;
                    };
                    let runs = BroadcastRuns::new([a, b], &shape);
                    assert!(runs.steps().iter().all(|&s| s <= 1), "{a:?} {b:?}");
                    let [a_list, b_list] = expand(&runs);
                    assert_eq!(a_list, broadcast_indices(a, &shape), "{a:?} {b:?}");
                    assert_eq!(b_list, broadcast_indices(b, &shape), "{a:?} {b:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 50_000, "{checked}");
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
