//! Reference implementations of the `reduce_*` ops and `arg_max`/`arg_min`.
//!
//! Axes follow ONNX: empty `axes` reduces every axis unless `noop_with_empty_axes` (then the op is the
//! identity); negative axes count from the end; repeated or out-of-range axes are errors. `keepdims`
//! keeps reduced axes as size 1.
//!
//! Each output element reduces the group of input elements that map to it, visited in row-major
//! order. Float sums, means, products and norms accumulate in f64 and round once. Empty groups give
//! onnx's reference values: sum 0, prod 1, max -inf (the dtype's minimum for integers), min +inf (the
//! maximum), l1/l2/sum_square 0, log_sum_exp -inf, mean NaN. `log_sum_exp` subtracts the largest finite
//! element first, so it neither overflows nor turns an all -inf group into NaN.
//!
//! Dtypes are ONNX's type constraints restricted to sinter's: reduce_max and reduce_min take every
//! dtype (bool as any/all), the other reductions f32, f64, i32 and i64.
//!
//! Integer reductions stay in the integer domain with wrapping (numpy with `dtype=` the input's):
//! sum, prod, sum_square, l1, max and min are exact. mean is the wrapped sum divided in f64 and
//! truncated (an empty group is an error, as 0/0 has no integer value); l2 and log_sum_exp compute in
//! f64 and truncate.
//!
//! `arg_max`/`arg_min` return i64 indices along `axis`: the first extreme, or the last with
//! `select_last_index`. NaN counts as the extreme, as in numpy. A zero-length axis is an error.

use crate::elementwise::{match_int, max_nan, min_nan, Float, Int};
use crate::index::{
    checked_numel, for_each_index, make_tensor, normalize_axes, normalize_axis, required_input,
    strides,
};
use crate::{op_err, OpError};
use sinter_ir::{DType, Elem, Op, ReduceAttrs, Reduction, Tensor, TensorData};

/// Evaluates one reduction. Errors are prefixed with the op name.
pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    eval_single(op, inputs)
        .map(|tensor| vec![tensor])
        .map_err(|e| OpError(format!("`{}`: {}", op.name(), e.0)))
}

fn eval_single(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let x = required_input(op, inputs, 0)?;
    match op {
        Op::ArgMax {
            axis,
            keepdims,
            select_last_index,
        } => return arg_extreme(x, ArgKind::Max, *axis, *keepdims, *select_last_index),
        Op::ArgMin {
            axis,
            keepdims,
            select_last_index,
        } => return arg_extreme(x, ArgKind::Min, *axis, *keepdims, *select_last_index),
        _ => {}
    }
    let Some((reduction, attrs)) = op.reduction() else {
        return op_err("is not a reduction");
    };
    reduce(x, reduction, attrs)
}

/// Which input elements feed which output element.
struct ReducePlan {
    out_shape: Vec<usize>,
    /// For each output element, the flat indices of its input elements in row-major order.
    groups: Vec<Vec<usize>>,
}

/// `None` when the op is the identity (empty axes with `noop_with_empty_axes`).
fn plan_reduction(shape: &[usize], attrs: ReduceAttrs) -> Result<Option<ReducePlan>, OpError> {
    if attrs.axes.is_empty() && attrs.noop_with_empty_axes {
        return Ok(None);
    }
    let reduced_axes = if attrs.axes.is_empty() {
        (0..shape.len()).collect()
    } else {
        normalize_axes(attrs.axes, shape.len())?
    };
    let is_reduced: Vec<bool> = (0..shape.len())
        .map(|axis| reduced_axes.contains(&axis))
        .collect();
    let kept_shape: Vec<usize> = shape
        .iter()
        .zip(&is_reduced)
        .map(|(&dim, &reduced)| if reduced { 1 } else { dim })
        .collect();
    let kept_strides = strides(&kept_shape);
    let n_outputs = checked_numel(&kept_shape)?;
    let mut groups = vec![Vec::new(); n_outputs];
    let mut in_flat = 0usize;
    for_each_index(shape, |coord| {
        let out_flat: usize = (0..coord.len())
            .filter(|&axis| !is_reduced[axis])
            .map(|axis| coord[axis] * kept_strides[axis])
            .sum();
        groups[out_flat].push(in_flat);
        in_flat += 1;
    });
    let out_shape = if attrs.keepdims {
        kept_shape
    } else {
        shape
            .iter()
            .zip(&is_reduced)
            .filter(|(_, &reduced)| !reduced)
            .map(|(&dim, _)| dim)
            .collect()
    };
    Ok(Some(ReducePlan { out_shape, groups }))
}

fn reduce(x: &Tensor, reduction: Reduction, attrs: ReduceAttrs) -> Result<Tensor, OpError> {
    let extremum = matches!(reduction, Reduction::Max | Reduction::Min);
    if !extremum && !matches!(x.dtype(), DType::F32 | DType::F64 | DType::I32 | DType::I64) {
        return op_err(format!("expects f32, f64, i32 or i64, got {}", x.dtype()));
    }
    let Some(plan) = plan_reduction(x.shape(), attrs)? else {
        return Ok(x.clone());
    };
    fn gather<T: Elem>(values: &[T], group: &[usize]) -> Vec<T> {
        group.iter().map(|&idx| values[idx]).collect()
    }
    let data = match x.data() {
        TensorData::F32(v) => TensorData::F32(
            plan.groups
                .iter()
                .map(|g| reduce_float(reduction, &gather(v, g)))
                .collect(),
        ),
        TensorData::F64(v) => TensorData::F64(
            plan.groups
                .iter()
                .map(|g| reduce_float(reduction, &gather(v, g)))
                .collect(),
        ),
        TensorData::Bool(v) => {
            let values = plan
                .groups
                .iter()
                .map(|g| match reduction {
                    Reduction::Max => Ok(g.iter().any(|&idx| v[idx])),
                    Reduction::Min => Ok(g.iter().all(|&idx| v[idx])),
                    _ => op_err("expects a numeric tensor, got bool (only reduce_max and reduce_min take bool)"),
                })
                .collect::<Result<Vec<bool>, OpError>>()?;
            TensorData::Bool(values.into())
        }
        data => match_int!(data, |v| {
            let values = plan
                .groups
                .iter()
                .map(|g| reduce_int(reduction, &gather(v, g)))
                .collect::<Result<Vec<_>, OpError>>()?;
            Elem::wrap(values)
        }, other => return op_err(format!("expects a numeric tensor, got {}", other.dtype()))),
    };
    make_tensor(plan.out_shape, data)
}

fn reduce_float<F: Float>(reduction: Reduction, group: &[F]) -> F {
    // Folds start from +0.0: Rust's float `sum()` starts from -0.0, but numpy's empty sum is +0.0.
    let sum_of = |f: fn(f64) -> f64| group.iter().fold(0.0f64, |acc, v| acc + f(v.to_f64()));
    match reduction {
        Reduction::Sum => F::from_f64(sum_of(|v| v)),
        // An empty group gives 0 / 0 = NaN, as numpy's mean does.
        Reduction::Mean => F::from_f64(sum_of(|v| v) / group.len() as f64),
        Reduction::Max => group
            .iter()
            .fold(F::NEG_INFINITY, |acc, &v| max_nan(acc, v)),
        Reduction::Min => group.iter().fold(F::INFINITY, |acc, &v| min_nan(acc, v)),
        Reduction::Prod => F::from_f64(group.iter().map(|v| v.to_f64()).product()),
        Reduction::L1 => F::from_f64(sum_of(f64::abs)),
        Reduction::L2 => F::from_f64(sum_of(|v| v * v).sqrt()),
        Reduction::SumSquare => F::from_f64(sum_of(|v| v * v)),
        Reduction::LogSumExp => F::from_f64(log_sum_exp(group.iter().map(|v| v.to_f64()))),
    }
}

/// `ln(sum(e^x))` shifted by the largest finite element `m`: `m + ln(sum(e^(x - m)))`. Infinite
/// elements give the right limit (+inf dominates, -inf contributes 0); NaN propagates; an empty or
/// all -inf group gives -inf.
fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let shift = values
        .clone()
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let shift = if shift.is_finite() { shift } else { 0.0 };
    shift + values.fold(0.0f64, |acc, v| acc + (v - shift).exp()).ln()
}

fn reduce_int<I: Int>(reduction: Reduction, group: &[I]) -> Result<I, OpError> {
    let wide = group.iter().map(|v| v.to_i64());
    let wrapping_sum = |f: fn(i64) -> i64| wide.clone().fold(0i64, |acc, v| acc.wrapping_add(f(v)));
    Ok(match reduction {
        Reduction::Sum => I::from_i64_wrapping(wrapping_sum(|v| v)),
        Reduction::Prod => I::from_i64_wrapping(wide.clone().fold(1i64, i64::wrapping_mul)),
        Reduction::SumSquare => I::from_i64_wrapping(wrapping_sum(|v| v.wrapping_mul(v))),
        Reduction::L1 => I::from_i64_wrapping(wrapping_sum(i64::wrapping_abs)),
        Reduction::Max => group.iter().copied().fold(I::MIN, Ord::max),
        Reduction::Min => group.iter().copied().fold(I::MAX, Ord::min),
        Reduction::Mean => {
            // Inference rejects this case for static shapes; a symbolic dim bound to 0 ends here.
            if group.is_empty() {
                return op_err(format!(
                    "the mean of an empty {} group has no value",
                    I::DTYPE
                ));
            }
            let sum = I::from_i64_wrapping(wrapping_sum(|v| v));
            I::from_f64(sum.to_i64() as f64 / group.len() as f64)
        }
        Reduction::L2 => I::from_f64(
            wide.fold(0.0f64, |acc, v| acc + (v as f64) * (v as f64))
                .sqrt(),
        ),
        Reduction::LogSumExp => I::from_f64(log_sum_exp(wide.map(|v| v as f64))),
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ArgKind {
    Max,
    Min,
}

fn arg_extreme(
    x: &Tensor,
    kind: ArgKind,
    axis: i64,
    keepdims: bool,
    select_last_index: bool,
) -> Result<Tensor, OpError> {
    let axis_idx = normalize_axis(axis, x.rank())?;
    let shape = x.shape();
    let axis_len = shape[axis_idx];
    if axis_len == 0 {
        return op_err(format!(
            "axis {axis} of shape {shape:?} is empty, so it has no extreme"
        ));
    }
    let n_outer: usize = shape[..axis_idx].iter().product();
    let n_inner: usize = shape[axis_idx + 1..].iter().product();
    let mut out_shape = shape.to_vec();
    if keepdims {
        out_shape[axis_idx] = 1;
    } else {
        out_shape.remove(axis_idx);
    }
    fn positions<T: Elem + PartialOrd>(
        values: &[T],
        kind: ArgKind,
        select_last_index: bool,
        (n_outer, axis_len, n_inner): (usize, usize, usize),
    ) -> Vec<i64> {
        let mut out = Vec::with_capacity(n_outer * n_inner);
        for outer in 0..n_outer {
            for inner in 0..n_inner {
                let at = |k: usize| values[(outer * axis_len + k) * n_inner + inner];
                let mut best_idx = 0;
                for k in 1..axis_len {
                    if beats(at(k), at(best_idx), kind, select_last_index) {
                        best_idx = k;
                    }
                }
                out.push(best_idx as i64);
            }
        }
        out
    }
    let dims = (n_outer, axis_len, n_inner);
    let indices = match x.data() {
        TensorData::F32(v) => positions(v, kind, select_last_index, dims),
        TensorData::F64(v) => positions(v, kind, select_last_index, dims),
        TensorData::I64(v) => positions(v, kind, select_last_index, dims),
        TensorData::I32(v) => positions(v, kind, select_last_index, dims),
        TensorData::I8(v) => positions(v, kind, select_last_index, dims),
        TensorData::U8(v) => positions(v, kind, select_last_index, dims),
        TensorData::Bool(_) => {
            return op_err(format!("expects a numeric tensor, got {}", DType::Bool))
        }
    };
    make_tensor(out_shape, TensorData::I64(indices.into()))
}

/// Whether `candidate` (later along the axis) replaces `best`. NaN is more extreme than any number;
/// ties (NaN with NaN included) go to the later element only with `select_last_index`.
fn beats<T: Elem + PartialOrd>(
    candidate: T,
    best: T,
    kind: ArgKind,
    select_last_index: bool,
) -> bool {
    let (candidate_nan, best_nan) = (candidate.to_f64().is_nan(), best.to_f64().is_nan());
    if candidate_nan || best_nan {
        return candidate_nan && (!best_nan || select_last_index);
    }
    let strictly = match kind {
        ArgKind::Max => candidate > best,
        ArgKind::Min => candidate < best,
    };
    strictly || (select_last_index && candidate == best)
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

    fn sum(axes: &[i64], keepdims: bool) -> Op {
        Op::ReduceSum {
            axes: axes.to_vec(),
            keepdims,
            noop_with_empty_axes: false,
        }
    }

    /// [[1, 2, 3], [4, 5, 6]]
    fn m23() -> Tensor {
        t(&[2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])
    }

    #[test]
    fn sum_over_axes_and_keepdims() {
        assert_eq!(
            run(sum(&[0], true), &m23()).unwrap(),
            t(&[1, 3], vec![5.0f32, 7.0, 9.0])
        );
        assert_eq!(
            run(sum(&[1], false), &m23()).unwrap(),
            t(&[2], vec![6.0f32, 15.0])
        );
        assert_eq!(
            run(sum(&[-1], true), &m23()).unwrap(),
            t(&[2, 1], vec![6.0f32, 15.0])
        );
        assert_eq!(
            run(sum(&[], true), &m23()).unwrap(),
            t(&[1, 1], vec![21.0f32])
        );
        assert_eq!(
            run(sum(&[], false), &m23()).unwrap(),
            Tensor::scalar(21.0f32)
        );
        assert_eq!(
            run(sum(&[1, 0], false), &m23()).unwrap(),
            Tensor::scalar(21.0f32)
        );
        let noop = Op::ReduceSum {
            axes: vec![],
            keepdims: true,
            noop_with_empty_axes: true,
        };
        assert_eq!(run(noop, &m23()).unwrap(), m23());
    }

    #[test]
    fn reduce_middle_axis_of_3d() {
        // x[i][j][k] = 100i + 10j + k over shape [2, 2, 2]; sum over j gives 2 * (100i + k) + 10.
        let x = t(&[2, 2, 2], vec![0i64, 1, 10, 11, 100, 101, 110, 111]);
        assert_eq!(
            run(sum(&[1], false), &x).unwrap(),
            t(&[2, 2], vec![10i64, 12, 210, 212])
        );
        assert_eq!(
            run(sum(&[0, 2], true), &x).unwrap(),
            t(&[1, 2, 1], vec![202i64, 242])
        );
    }

    #[test]
    fn every_float_reduction() {
        let x = t(&[2, 2], vec![1.0f64, -2.0, 3.0, 4.0]);
        let op =
            |make: fn(Vec<i64>, bool, bool) -> Op| run(make(vec![1], false, false), &x).unwrap();
        let mean = op(|axes, keepdims, noop_with_empty_axes| Op::ReduceMean {
            axes,
            keepdims,
            noop_with_empty_axes,
        });
        assert_eq!(mean, t(&[2], vec![-0.5f64, 3.5]));
        let max = op(|axes, keepdims, noop_with_empty_axes| Op::ReduceMax {
            axes,
            keepdims,
            noop_with_empty_axes,
        });
        assert_eq!(max, t(&[2], vec![1.0f64, 4.0]));
        let min = op(|axes, keepdims, noop_with_empty_axes| Op::ReduceMin {
            axes,
            keepdims,
            noop_with_empty_axes,
        });
        assert_eq!(min, t(&[2], vec![-2.0f64, 3.0]));
        let prod = op(|axes, keepdims, noop_with_empty_axes| Op::ReduceProd {
            axes,
            keepdims,
            noop_with_empty_axes,
        });
        assert_eq!(prod, t(&[2], vec![-2.0f64, 12.0]));
        let l1 = op(|axes, keepdims, noop_with_empty_axes| Op::ReduceL1 {
            axes,
            keepdims,
            noop_with_empty_axes,
        });
        assert_eq!(l1, t(&[2], vec![3.0f64, 7.0]));
        let l2 = op(|axes, keepdims, noop_with_empty_axes| Op::ReduceL2 {
            axes,
            keepdims,
            noop_with_empty_axes,
        });
        assert_eq!(l2, t(&[2], vec![5.0f64.sqrt(), 5.0]));
        let sum_square = op(|axes, keepdims, noop_with_empty_axes| Op::ReduceSumSquare {
            axes,
            keepdims,
            noop_with_empty_axes,
        });
        assert_eq!(sum_square, t(&[2], vec![5.0f64, 25.0]));
        let lse = op(|axes, keepdims, noop_with_empty_axes| Op::ReduceLogSumExp {
            axes,
            keepdims,
            noop_with_empty_axes,
        });
        // ln(e + e^-2) = 1 + ln(1 + e^-3); ln(e^3 + e^4) = 4 + ln(1 + e^-1)
        let expected = [
            1.0 + (1.0 + (-3.0f64).exp()).ln(),
            4.0 + (1.0 + (-1.0f64).exp()).ln(),
        ];
        let actual = lse.as_slice::<f64>().unwrap();
        assert!(
            (actual[0] - expected[0]).abs() < 1e-15 && (actual[1] - expected[1]).abs() < 1e-15,
            "{actual:?}"
        );
    }

    #[test]
    fn log_sum_exp_is_stable_and_handles_infinities() {
        let lse = |values: Vec<f32>| {
            let op = Op::ReduceLogSumExp {
                axes: vec![],
                keepdims: false,
                noop_with_empty_axes: false,
            };
            run(op, &t(&[values.len()], values))
                .unwrap()
                .as_slice::<f32>()
                .unwrap()[0]
        };
        // e^1000 overflows, but ln(2 e^1000) = 1000 + ln 2.
        assert_eq!(lse(vec![1000.0, 1000.0]), 1000.0 + std::f32::consts::LN_2);
        assert_eq!(
            lse(vec![f32::NEG_INFINITY, f32::NEG_INFINITY]),
            f32::NEG_INFINITY
        );
        assert_eq!(lse(vec![f32::INFINITY, 1.0]), f32::INFINITY);
        assert_eq!(lse(vec![f32::NEG_INFINITY, 0.0]), 0.0);
        assert!(lse(vec![f32::NAN, 0.0]).is_nan());
    }

    #[test]
    fn sums_accumulate_in_f64() {
        // In f32, 1e8 + 1 + 1 + ... - 1e8 loses the ones; the reference keeps them.
        let x = t(&[4], vec![1e8f32, 1.0, 1.0, -1e8]);
        assert_eq!(run(sum(&[0], false), &x).unwrap(), Tensor::scalar(2.0f32));
    }

    #[test]
    fn empty_reductions_match_onnx_reference() {
        let x = t(&[2, 0], Vec::<f32>::new());
        let check = |op: Op, expected: f32| {
            let y = run(op, &x).unwrap();
            assert_eq!(y.shape(), &[2]);
            let values = y.as_slice::<f32>().unwrap();
            assert!(
                values.iter().all(|v| v.to_bits() == expected.to_bits()),
                "{values:?} vs {expected}"
            );
        };
        let axes = vec![1];
        check(sum(&axes, false), 0.0);
        check(
            Op::ReduceProd {
                axes: axes.clone(),
                keepdims: false,
                noop_with_empty_axes: false,
            },
            1.0,
        );
        check(
            Op::ReduceMax {
                axes: axes.clone(),
                keepdims: false,
                noop_with_empty_axes: false,
            },
            f32::NEG_INFINITY,
        );
        check(
            Op::ReduceMin {
                axes: axes.clone(),
                keepdims: false,
                noop_with_empty_axes: false,
            },
            f32::INFINITY,
        );
        check(
            Op::ReduceL2 {
                axes: axes.clone(),
                keepdims: false,
                noop_with_empty_axes: false,
            },
            0.0,
        );
        check(
            Op::ReduceLogSumExp {
                axes: axes.clone(),
                keepdims: false,
                noop_with_empty_axes: false,
            },
            f32::NEG_INFINITY,
        );
        let mean = run(
            Op::ReduceMean {
                axes: axes.clone(),
                keepdims: false,
                noop_with_empty_axes: false,
            },
            &x,
        )
        .unwrap();
        assert!(mean.as_slice::<f32>().unwrap().iter().all(|v| v.is_nan()));
        // Reducing the non-empty axis of an empty tensor gives an empty result.
        assert_eq!(
            run(sum(&[0], true), &x).unwrap(),
            t(&[1, 0], Vec::<f32>::new())
        );
        let ints = t(&[0], Vec::<i32>::new());
        let max = Op::ReduceMax {
            axes: vec![],
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert_eq!(run(max, &ints).unwrap(), Tensor::scalar(i32::MIN));
        let min = Op::ReduceMin {
            axes: vec![],
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert_eq!(run(min, &ints).unwrap(), Tensor::scalar(i32::MAX));
        // The integer mean of an empty group has no value.
        let mean = Op::ReduceMean {
            axes: vec![],
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert!(run(mean.clone(), &ints).unwrap_err().0.contains("empty"));
        // Without groups (an empty kept axis) there is nothing to divide.
        let empty_rows = t(&[0, 0], Vec::<i32>::new());
        let mean_rows = Op::ReduceMean {
            axes: vec![1],
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert_eq!(
            run(mean_rows, &empty_rows).unwrap(),
            t(&[0], Vec::<i32>::new())
        );
    }

    #[test]
    fn dtypes_follow_onnx_type_constraints() {
        let bytes = t(&[2], vec![1u8, 2]);
        let small = t(&[2], vec![1i8, -2]);
        let all = |make: fn(Vec<i64>, bool, bool) -> Op| make(vec![], false, false);
        // reduce_max and reduce_min take 8-bit integers; the arithmetic reductions do not.
        let max = all(|axes, keepdims, noop_with_empty_axes| Op::ReduceMax {
            axes,
            keepdims,
            noop_with_empty_axes,
        });
        assert_eq!(run(max, &bytes).unwrap(), Tensor::scalar(2u8));
        let min = all(|axes, keepdims, noop_with_empty_axes| Op::ReduceMin {
            axes,
            keepdims,
            noop_with_empty_axes,
        });
        assert_eq!(run(min, &small).unwrap(), Tensor::scalar(-2i8));
        for x in [&bytes, &small] {
            let message = run(sum(&[], false), x).unwrap_err().0;
            assert!(message.contains("f32, f64, i32 or i64"), "{message}");
            let l2 = all(|axes, keepdims, noop_with_empty_axes| Op::ReduceL2 {
                axes,
                keepdims,
                noop_with_empty_axes,
            });
            assert!(run(l2, x).is_err());
        }
    }

    #[test]
    fn max_and_min_propagate_nan() {
        let x = t(&[3], vec![1.0f32, f32::NAN, 3.0]);
        let max = Op::ReduceMax {
            axes: vec![],
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert!(run(max, &x).unwrap().as_slice::<f32>().unwrap()[0].is_nan());
    }

    #[test]
    fn integer_reductions_wrap_and_truncate() {
        let x = t(&[3], vec![i32::MAX, 1, -7]);
        let all =
            |make: fn(Vec<i64>, bool, bool) -> Op| run(make(vec![], false, false), &x).unwrap();
        // (2^31 - 1) + 1 wraps to -2^31, and -2^31 - 7 wraps to 2^31 - 7 (numpy with dtype=int32).
        assert_eq!(
            all(|axes, keepdims, noop_with_empty_axes| Op::ReduceSum {
                axes,
                keepdims,
                noop_with_empty_axes
            }),
            Tensor::scalar(2_147_483_641i32)
        );
        // (2^31 - 1) * -7 wraps to -2147483641.
        assert_eq!(
            all(|axes, keepdims, noop_with_empty_axes| Op::ReduceProd {
                axes,
                keepdims,
                noop_with_empty_axes
            }),
            Tensor::scalar(-2_147_483_641i32)
        );
        // The wrapped sum divided by 3, truncated.
        assert_eq!(
            all(|axes, keepdims, noop_with_empty_axes| Op::ReduceMean {
                axes,
                keepdims,
                noop_with_empty_axes
            }),
            Tensor::scalar(715_827_880i32)
        );
        assert_eq!(
            all(|axes, keepdims, noop_with_empty_axes| Op::ReduceMax {
                axes,
                keepdims,
                noop_with_empty_axes
            }),
            Tensor::scalar(i32::MAX)
        );
        assert_eq!(
            all(|axes, keepdims, noop_with_empty_axes| Op::ReduceMin {
                axes,
                keepdims,
                noop_with_empty_axes
            }),
            Tensor::scalar(-7i32)
        );
        // 2^31 - 1 + 1 + 7 wraps to -2147483641.
        assert_eq!(
            all(|axes, keepdims, noop_with_empty_axes| Op::ReduceL1 {
                axes,
                keepdims,
                noop_with_empty_axes
            }),
            Tensor::scalar(-2_147_483_641i32)
        );
        let small = t(&[2], vec![3i64, 4]);
        let l2 = Op::ReduceL2 {
            axes: vec![],
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert_eq!(run(l2, &small).unwrap(), Tensor::scalar(5i64));
        let sum_square = Op::ReduceSumSquare {
            axes: vec![],
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert_eq!(run(sum_square, &small).unwrap(), Tensor::scalar(25i64));
        let lse = Op::ReduceLogSumExp {
            axes: vec![],
            keepdims: false,
            noop_with_empty_axes: false,
        };
        // ln(e^3 + e^4) = 4.31 truncates to 4.
        assert_eq!(run(lse, &small).unwrap(), Tensor::scalar(4i64));
        // Exact beyond 2^53.
        let big = t(&[2], vec![1i64 << 60, 1]);
        assert_eq!(
            run(sum(&[], false), &big).unwrap(),
            Tensor::scalar((1i64 << 60) + 1)
        );
    }

    #[test]
    fn bool_max_min_are_any_all() {
        let x = t(&[2, 2], vec![true, false, false, false]);
        let max = Op::ReduceMax {
            axes: vec![1],
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert_eq!(run(max, &x).unwrap(), t(&[2], vec![true, false]));
        let min = Op::ReduceMin {
            axes: vec![0],
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert_eq!(run(min, &x).unwrap(), t(&[2], vec![false, false]));
        assert!(run(sum(&[], false), &x).unwrap_err().0.contains("bool"));
    }

    #[test]
    fn reduce_axis_errors() {
        let message = run(sum(&[2], true), &m23()).unwrap_err().0;
        assert!(
            message.contains("`reduce_sum`") && message.contains("out of range"),
            "{message}"
        );
        assert!(run(sum(&[-3], true), &m23()).is_err());
        assert!(run(sum(&[1, -1], true), &m23())
            .unwrap_err()
            .0
            .contains("more than once"));
        // A scalar reduces over no axes; naming axis 0 is out of range.
        assert_eq!(
            run(sum(&[], false), &Tensor::scalar(3i32)).unwrap(),
            Tensor::scalar(3i32)
        );
        assert!(run(sum(&[0], false), &Tensor::scalar(3i32)).is_err());
    }

    fn arg(kind: ArgKind, axis: i64, keepdims: bool, select_last_index: bool) -> Op {
        match kind {
            ArgKind::Max => Op::ArgMax {
                axis,
                keepdims,
                select_last_index,
            },
            ArgKind::Min => Op::ArgMin {
                axis,
                keepdims,
                select_last_index,
            },
        }
    }

    #[test]
    fn arg_max_and_min() {
        let x = t(&[2, 3], vec![1.0f32, 5.0, 5.0, 7.0, 0.0, 7.0]);
        assert_eq!(
            run(arg(ArgKind::Max, 1, true, false), &x).unwrap(),
            t(&[2, 1], vec![1i64, 0])
        );
        assert_eq!(
            run(arg(ArgKind::Max, 1, true, true), &x).unwrap(),
            t(&[2, 1], vec![2i64, 2])
        );
        assert_eq!(
            run(arg(ArgKind::Max, 0, false, false), &x).unwrap(),
            t(&[3], vec![1i64, 0, 1])
        );
        assert_eq!(
            run(arg(ArgKind::Min, -1, false, false), &x).unwrap(),
            t(&[2], vec![0i64, 1])
        );
        assert_eq!(
            run(arg(ArgKind::Min, 0, true, false), &x).unwrap(),
            t(&[1, 3], vec![0i64, 1, 0])
        );
        let ints = t(&[4], vec![3i64, -1, 3, -1]);
        assert_eq!(
            run(arg(ArgKind::Min, 0, false, true), &ints).unwrap(),
            Tensor::scalar(3i64)
        );
        assert_eq!(
            run(arg(ArgKind::Max, 0, true, false), &ints).unwrap(),
            t(&[1], vec![0i64])
        );
    }

    #[test]
    fn arg_extremes_treat_nan_as_extreme() {
        let x = t(&[4], vec![1.0f64, f64::NAN, 9.0, f64::NAN]);
        assert_eq!(
            run(arg(ArgKind::Max, 0, false, false), &x).unwrap(),
            Tensor::scalar(1i64)
        );
        assert_eq!(
            run(arg(ArgKind::Min, 0, false, false), &x).unwrap(),
            Tensor::scalar(1i64)
        );
        assert_eq!(
            run(arg(ArgKind::Max, 0, false, true), &x).unwrap(),
            Tensor::scalar(3i64)
        );
    }

    #[test]
    fn arg_errors_and_empty_inputs() {
        let empty_axis = t(&[2, 0], Vec::<f32>::new());
        assert!(run(arg(ArgKind::Max, 1, true, false), &empty_axis)
            .unwrap_err()
            .0
            .contains("empty"));
        assert_eq!(
            run(arg(ArgKind::Max, 0, true, false), &empty_axis).unwrap(),
            t(&[1, 0], Vec::<i64>::new())
        );
        assert!(run(arg(ArgKind::Max, 2, true, false), &m23()).is_err());
        assert!(run(arg(ArgKind::Max, 0, true, false), &Tensor::scalar(1.0f32)).is_err());
        assert!(run(arg(ArgKind::Min, 0, true, false), &t(&[1], vec![true]))
            .unwrap_err()
            .0
            .contains("bool"));
    }
}
