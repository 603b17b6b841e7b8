//! Reference pooling: max_pool and average_pool (N-d, strided, dilated, padded), and their global forms.
//!
//! A window of output `o` along an axis covers the input positions `o * stride - pad_begin + j *
//! dilation` for `j < kernel`. Positions outside the input are padding and never contribute a value.
//! Output sizes follow the ONNX spec: `floor` (or `ceil` under `ceil_mode`) of `(in + pads - extent) /
//! stride + 1`, where `extent = (kernel - 1) * dilation + 1`, and with `ceil_mode` a last window that
//! would start in the end padding is dropped. `same_*` gives `ceil(in / stride)` outputs with the total
//! pad `(out - 1) * stride + extent - in` (clamped at 0) split as in conv; `valid` gives
//! `floor((in - extent) / stride) + 1`. `auto_pad` ignores `ceil_mode`, as the spec's formulas do.
//! Explicit pads must be smaller than the kernel (onnxruntime's rule).
//!
//! average_pool divides by the number of input elements in the window, or with `count_include_pad` by
//! the number of positions inside the explicitly padded input: positions past the end pad, which only
//! `ceil_mode` can reach, never count. A window without any counted position (only possible with an
//! extreme dilation) yields NaN.
//!
//! max_pool accepts i8 and u8 besides floats (ONNX allows them); NaN inputs are skipped unless the
//! whole window is NaN.
//!
//! Cross-checked against onnxruntime 1.31, which agrees everywhere except that it ignores dilation in
//! `same_*` output sizes and rejects `same_*` with a stride larger than the kernel. `onnx.reference`
//! (1.19) has several bugs not copied here: under `ceil_mode` it shifts average windows by `extra // 2`
//! when two or more extra positions are needed; its stride-1 max_pool reads 2-d pads as `[top, bottom,
//! left, right]` and ignores pads in 1-d and 3-d; `same_lower` max_pool uses `floor(in / stride)`
//! outputs; `same_*` and `valid` average_pool ignore dilation; and a negative `same_*` total pad
//! shifts windows instead of being clamped. Its global_max_pool reduces the wrong axes for ranks other
//! than 4.

use crate::conv::{check_pads_without_auto_pad, per_axis_or_ones};
use crate::index::{
    check_attr_sizes, checked_len, float_values, for_each_index, required_input, strides,
    tensor_from_f64s,
};
use crate::{op_err, OpError};
use sinter_ir::geometry::{dilated_extent, same_pads};
use sinter_ir::{AutoPad, DType, Op, Tensor};

pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let x = required_input(op, inputs, 0)?;
    let y = match op {
        Op::MaxPool {
            kernel_shape,
            strides,
            pads,
            dilations,
            auto_pad,
            ceil_mode,
        } => {
            let attrs = PoolAttrs {
                kernel_shape,
                strides,
                pads,
                dilations,
                auto_pad: *auto_pad,
                ceil_mode: *ceil_mode,
            };
            pool(op, x, &attrs, PoolKind::Max)?
        }
        Op::AveragePool {
            kernel_shape,
            strides,
            pads,
            dilations,
            auto_pad,
            ceil_mode,
            count_include_pad,
        } => {
            let attrs = PoolAttrs {
                kernel_shape,
                strides,
                pads,
                dilations,
                auto_pad: *auto_pad,
                ceil_mode: *ceil_mode,
            };
            let kind = PoolKind::Average {
                count_include_pad: *count_include_pad,
            };
            pool(op, x, &attrs, kind)?
        }
        Op::GlobalAveragePool {} => global_pool(op, x, GlobalKind::Average)?,
        Op::GlobalMaxPool {} => global_pool(op, x, GlobalKind::Max)?,
        _ => return op_err(format!("`{}` is not a pooling op", op.name())),
    };
    Ok(vec![y])
}

struct PoolAttrs<'a> {
    kernel_shape: &'a [i64],
    strides: &'a [i64],
    pads: &'a [i64],
    dilations: &'a [i64],
    auto_pad: AutoPad,
    ceil_mode: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum PoolKind {
    Max,
    Average { count_include_pad: bool },
}

/// The geometry of one spatial axis: where windows start and which positions count.
struct AxisWindows {
    in_size: usize,
    out_size: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
}

fn pool(op: &Op, x: &Tensor, attrs: &PoolAttrs, kind: PoolKind) -> Result<Tensor, OpError> {
    let dtype = x.dtype();
    let allowed = match kind {
        PoolKind::Max => matches!(dtype, DType::F32 | DType::F64 | DType::I8 | DType::U8),
        PoolKind::Average { .. } => matches!(dtype, DType::F32 | DType::F64),
    };
    if !allowed {
        return op_err(format!("`{}` does not support dtype {dtype}", op.name()));
    }
    if x.rank() < 3 {
        return op_err(format!(
            "`{}` needs x of rank >= 3 ([N, C, *spatial]), got shape {:?}",
            op.name(),
            x.shape()
        ));
    }
    let n_spatial = x.rank() - 2;
    let kernel = per_axis_or_ones(op, "kernel_shape", attrs.kernel_shape, n_spatial)?;
    if attrs.kernel_shape.is_empty() {
        return op_err(format!(
            "`{}` needs `kernel_shape` with {n_spatial} entries",
            op.name()
        ));
    }
    let stride = per_axis_or_ones(op, "strides", attrs.strides, n_spatial)?;
    let dilation = per_axis_or_ones(op, "dilations", attrs.dilations, n_spatial)?;
    let axes = window_axes(op, x.shape(), &kernel, &stride, &dilation, attrs)?;

    let values = x.to_f64_vec();
    let x_strides = strides(x.shape());
    let (n_batch, n_channels) = (x.shape()[0], x.shape()[1]);
    let out_spatial: Vec<usize> = axes.iter().map(|a| a.out_size).collect();
    let mut y_shape = vec![n_batch, n_channels];
    y_shape.extend_from_slice(&out_spatial);
    let mut y = Vec::with_capacity(checked_len(op, &y_shape)?);
    // Per output position, each axis contributes the kernel taps that land inside the input, a
    // contiguous range; only those are visited (in row-major order, as a full kernel loop would visit
    // them), so a huge kernel costs nothing beyond the input it covers.
    let include_pad = kind
        == PoolKind::Average {
            count_include_pad: true,
        };
    let mut first_tap = vec![0usize; n_spatial];
    let mut n_taps = vec![0usize; n_spatial];
    for plane_idx in 0..n_batch * n_channels {
        let plane_base = plane_idx * x_strides[1];
        for_each_index(&out_spatial, |o| {
            // A product of up to three 2^32-sized counts, so kept in f64 (it is only a divisor).
            let mut n_counted = 1.0f64;
            for (axis, geometry) in axes.iter().enumerate() {
                let taps = geometry.taps(o[axis], kernel[axis]);
                first_tap[axis] = taps.first;
                n_taps[axis] = taps.n_inside;
                n_counted *= if include_pad {
                    taps.n_within_pads as f64
                } else {
                    taps.n_inside as f64
                };
            }
            let mut max = f64::NAN;
            let mut sum = 0.0;
            for_each_index(&n_taps, |t| {
                let offset: usize = axes
                    .iter()
                    .enumerate()
                    .map(|(axis, g)| {
                        let k = first_tap[axis] + t[axis];
                        (o[axis] * g.stride + k * g.dilation - g.pad_begin) * x_strides[2 + axis]
                    })
                    .sum();
                let v = values[plane_base + offset];
                // `f64::max` returns the non-NaN operand, so NaN inputs are skipped.
                max = max.max(v);
                sum += v;
            });
            y.push(match kind {
                PoolKind::Max => max,
                PoolKind::Average { .. } => sum / n_counted,
            });
        });
    }
    tensor_from_f64s(dtype, y_shape, y)
}

/// The kernel taps of one window along one axis.
struct AxisTaps {
    /// The first tap whose position is inside the input.
    first: usize,
    /// How many consecutive taps from `first` are inside the input.
    n_inside: usize,
    /// How many taps lie before the end of the explicit end pad (inside the input or in the
    /// padding); positions that only `ceil_mode` reaches do not count.
    n_within_pads: usize,
}

impl AxisWindows {
    /// Tap `k` of window `out_idx` reads position `out_idx * stride + k * dilation - pad_begin`.
    fn taps(&self, out_idx: usize, kernel: usize) -> AxisTaps {
        // Positions are `start + k * dilation`; every term is bounded by MAX_ATTR_SIZE-sized
        // attributes and the input size, so i128 cannot overflow.
        let start = (out_idx * self.stride) as i128 - self.pad_begin as i128;
        let dilation = self.dilation as i128;
        let kernel = kernel as i128;
        // The number of taps k in [0, kernel) with start + k * dilation < limit.
        let taps_before = |limit: i128| -> i128 {
            if limit <= start {
                0
            } else {
                ((limit - start + dilation - 1) / dilation).min(kernel)
            }
        };
        let first = if start >= 0 {
            0
        } else {
            ((-start + dilation - 1) / dilation).min(kernel)
        };
        let end = taps_before(self.in_size as i128);
        AxisTaps {
            first: first as usize,
            n_inside: (end - first).max(0) as usize,
            n_within_pads: taps_before((self.in_size + self.pad_end) as i128) as usize,
        }
    }
}

/// Resolves pads and output sizes for every spatial axis.
fn window_axes(
    op: &Op,
    x_shape: &[usize],
    kernel: &[usize],
    stride: &[usize],
    dilation: &[usize],
    attrs: &PoolAttrs,
) -> Result<Vec<AxisWindows>, OpError> {
    let n_spatial = kernel.len();
    let in_spatial = &x_shape[2..];
    check_pads_without_auto_pad(op, attrs.pads, attrs.auto_pad)?;
    let explicit = match attrs.auto_pad {
        AutoPad::NotSet if !attrs.pads.is_empty() => {
            check_attr_sizes(op, "pads", attrs.pads)?;
            if attrs.pads.len() != 2 * n_spatial || attrs.pads.iter().any(|&p| p < 0) {
                return op_err(format!(
                    "`{}` attribute `pads` needs {} non-negative entries ([begins.., ends..]), got {:?}",
                    op.name(),
                    2 * n_spatial,
                    attrs.pads
                ));
            }
            let pads: Vec<usize> = attrs.pads.iter().map(|&p| p as usize).collect();
            if (0..n_spatial).any(|a| pads[a] >= kernel[a] || pads[a + n_spatial] >= kernel[a]) {
                return op_err(format!(
                    "`{}` pads {:?} must be smaller than the kernel {kernel:?}",
                    op.name(),
                    attrs.pads
                ));
            }
            Some(pads)
        }
        _ => None,
    };
    let mut axes = Vec::with_capacity(n_spatial);
    for axis in 0..n_spatial {
        let in_size = in_spatial[axis];
        let extent = dilated_extent(kernel[axis], dilation[axis]);
        let (pad_begin, pad_end) = match (&explicit, attrs.auto_pad) {
            (Some(pads), _) => (pads[axis], pads[axis + n_spatial]),
            (None, AutoPad::SameUpper | AutoPad::SameLower) => {
                same_pads(attrs.auto_pad, in_size, stride[axis], extent)
            }
            (None, _) => (0, 0),
        };
        let padded = in_size + pad_begin + pad_end;
        if padded < extent || in_size == 0 {
            return op_err(format!(
                "`{}` spatial axis {axis}: padded input {padded} is smaller than the window {extent}",
                op.name()
            ));
        }
        let out_size = match attrs.auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => in_size.div_ceil(stride[axis]),
            AutoPad::Valid => (in_size - extent) / stride[axis] + 1,
            AutoPad::NotSet if attrs.ceil_mode => {
                let out = (padded - extent).div_ceil(stride[axis]) + 1;
                // A last window that would start inside the end padding is dropped.
                if (out - 1) * stride[axis] >= in_size + pad_begin {
                    out - 1
                } else {
                    out
                }
            }
            AutoPad::NotSet => (padded - extent) / stride[axis] + 1,
        };
        axes.push(AxisWindows {
            in_size,
            out_size,
            stride: stride[axis],
            dilation: dilation[axis],
            pad_begin,
            pad_end,
        });
    }
    Ok(axes)
}

#[derive(Clone, Copy, PartialEq)]
enum GlobalKind {
    Average,
    Max,
}

fn global_pool(op: &Op, x: &Tensor, kind: GlobalKind) -> Result<Tensor, OpError> {
    let values = float_values(op, "x", x)?;
    if x.rank() < 3 {
        return op_err(format!(
            "`{}` needs x of rank >= 3 ([N, C, *spatial]), got shape {:?}",
            op.name(),
            x.shape()
        ));
    }
    let plane: usize = x.shape()[2..].iter().product();
    if plane == 0 {
        return op_err(format!(
            "`{}` needs non-empty spatial dims, got shape {:?}",
            op.name(),
            x.shape()
        ));
    }
    let y: Vec<f64> = values
        .chunks(plane)
        .map(|window| match kind {
            GlobalKind::Average => window.iter().sum::<f64>() / plane as f64,
            GlobalKind::Max => window.iter().copied().fold(f64::NAN, f64::max),
        })
        .collect();
    let mut y_shape = x.shape()[..2].to_vec();
    y_shape.resize(x.rank(), 1);
    tensor_from_f64s(x.dtype(), y_shape, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::t32;

    fn ramp(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        t32(shape, &(1..=n).map(|v| v as f32).collect::<Vec<_>>())
    }

    fn max_pool(
        kernel: &[i64],
        strides: &[i64],
        pads: &[i64],
        auto_pad: AutoPad,
        ceil_mode: bool,
    ) -> Op {
        Op::MaxPool {
            kernel_shape: kernel.to_vec(),
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            dilations: vec![],
            auto_pad,
            ceil_mode,
        }
    }

    fn avg_pool(
        kernel: &[i64],
        strides: &[i64],
        pads: &[i64],
        ceil_mode: bool,
        count_include_pad: bool,
    ) -> Op {
        Op::AveragePool {
            kernel_shape: kernel.to_vec(),
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            dilations: vec![],
            auto_pad: AutoPad::NotSet,
            ceil_mode,
            count_include_pad,
        }
    }

    fn run(op: &Op, x: &Tensor) -> Tensor {
        eval(op, &[Some(x)]).unwrap().remove(0)
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.as_slice::<f32>().unwrap().to_vec()
    }

    #[test]
    fn max_pool_2d_picks_window_maxima() {
        let x = ramp(&[1, 1, 4, 4]);
        let y = run(&max_pool(&[2, 2], &[2, 2], &[], AutoPad::NotSet, false), &x);
        assert_eq!(y.shape(), &[1, 1, 2, 2]);
        assert_eq!(values(&y), [6.0, 8.0, 14.0, 16.0]);
        // The ONNX `maxpool_2d_precomputed_pads` case: 5x5 ramp, kernel 5, pads 2.
        let x = ramp(&[1, 1, 5, 5]);
        let y = run(
            &max_pool(&[5, 5], &[], &[2, 2, 2, 2], AutoPad::NotSet, false),
            &x,
        );
        #[rustfmt::skip]
        let expected = [
            13.0, 14.0, 15.0, 15.0, 15.0,
            18.0, 19.0, 20.0, 20.0, 20.0,
            23.0, 24.0, 25.0, 25.0, 25.0,
            23.0, 24.0, 25.0, 25.0, 25.0,
            23.0, 24.0, 25.0, 25.0, 25.0,
        ];
        assert_eq!(values(&y), expected);
    }

    #[test]
    fn max_pool_ceil_mode_adds_a_partial_window() {
        // The ONNX `maxpool_2d_ceil` case: 4x4 ramp, kernel 3, stride 2.
        let x = ramp(&[1, 1, 4, 4]);
        let y = run(&max_pool(&[3, 3], &[2, 2], &[], AutoPad::NotSet, true), &x);
        assert_eq!(values(&y), [11.0, 12.0, 15.0, 16.0]);
        let y = run(&max_pool(&[3, 3], &[2, 2], &[], AutoPad::NotSet, false), &x);
        assert_eq!(values(&y), [11.0]);
        // in 4, kernel 2, stride 2, end pad 1: ceil((5 - 2) / 2) + 1 = 3 windows, but the third would
        // start at 4, inside the end padding, so it is dropped.
        let x = ramp(&[1, 1, 4]);
        let y = run(&max_pool(&[2], &[2], &[0, 1], AutoPad::NotSet, true), &x);
        assert_eq!(values(&y), [2.0, 4.0]);
    }

    #[test]
    fn max_pool_same_and_valid_auto_pad() {
        let x = ramp(&[1, 1, 5]);
        // same_upper: 3 outputs, total pad (3-1)*2 + 3 - 5 = 2 split 1/1.
        let y = run(&max_pool(&[3], &[2], &[], AutoPad::SameUpper, false), &x);
        assert_eq!(values(&y), [2.0, 4.0, 5.0]);
        // kernel 2, stride 1: total pad 1, at the end for same_upper and the start for same_lower.
        let y = run(&max_pool(&[2], &[], &[], AutoPad::SameUpper, false), &x);
        assert_eq!(values(&y), [2.0, 3.0, 4.0, 5.0, 5.0]);
        let y = run(&max_pool(&[2], &[], &[], AutoPad::SameLower, false), &x);
        assert_eq!(values(&y), [1.0, 2.0, 3.0, 4.0, 5.0]);
        let y = run(&max_pool(&[2], &[2], &[], AutoPad::Valid, true), &x);
        assert_eq!(values(&y), [2.0, 4.0], "auto_pad ignores ceil_mode");
    }

    #[test]
    fn max_pool_dilation_and_integer_dtypes() {
        let x = Tensor::from_vec(vec![1, 1, 6], vec![5u8, 1, 9, 2, 3, 7]).unwrap();
        let op = Op::MaxPool {
            kernel_shape: vec![2],
            strides: vec![],
            pads: vec![],
            dilations: vec![3],
            auto_pad: AutoPad::NotSet,
            ceil_mode: false,
        };
        let y = run(&op, &x);
        // Pairs (0,3), (1,4), (2,5).
        assert_eq!(y.as_slice::<u8>().unwrap(), [5, 3, 9]);
        let x = Tensor::from_vec(vec![1, 1, 3], vec![-5i8, -1, -9]).unwrap();
        let y = run(&max_pool(&[2], &[], &[1, 1], AutoPad::NotSet, false), &x);
        assert_eq!(
            y.as_slice::<i8>().unwrap(),
            [-5, -1, -1, -9],
            "padding is not a zero"
        );
    }

    #[test]
    fn max_pool_skips_nan_and_handles_3d() {
        let x = t32(&[1, 1, 3], &[f32::NAN, 2.0, 1.0]);
        let y = run(&max_pool(&[2], &[], &[], AutoPad::NotSet, false), &x);
        assert_eq!(values(&y), [2.0, 2.0]);
        let x = ramp(&[1, 2, 2, 2, 2]);
        let y = run(&max_pool(&[2, 2, 2], &[], &[], AutoPad::NotSet, false), &x);
        assert_eq!(y.shape(), &[1, 2, 1, 1, 1]);
        assert_eq!(values(&y), [8.0, 16.0]);
    }

    #[test]
    fn average_pool_excludes_or_includes_padding() {
        let x = ramp(&[1, 1, 3]);
        let y = run(&avg_pool(&[2], &[], &[1, 1], false, false), &x);
        assert_eq!(values(&y), [1.0, 1.5, 2.5, 3.0]);
        let y = run(&avg_pool(&[2], &[], &[1, 1], false, true), &x);
        assert_eq!(values(&y), [0.5, 1.5, 2.5, 1.5]);
        // The ONNX `averagepool_2d_pads_count_include_pad` corner: 5x5 ramp, kernel 3, pads 2.
        let x = ramp(&[1, 1, 5, 5]);
        let y = run(&avg_pool(&[3, 3], &[], &[2, 2, 2, 2], false, true), &x);
        assert_eq!(y.shape(), &[1, 1, 7, 7]);
        assert!((values(&y)[0] - 1.0 / 9.0).abs() < 1e-6);
        let y = run(&avg_pool(&[3, 3], &[], &[2, 2, 2, 2], false, false), &x);
        assert_eq!(values(&y)[0], 1.0);
        assert_eq!(values(&y)[8], 4.0, "input rows 0..1, cols 0..1");
        assert_eq!(values(&y)[16], 7.0, "input rows 0..2, cols 0..2");
    }

    /// Checked against onnxruntime 1.31: positions that only ceil_mode reaches never count.
    #[test]
    fn average_pool_ceil_mode_does_not_count_positions_past_the_end_pad() {
        let x = ramp(&[1, 1, 4]);
        for count_include_pad in [false, true] {
            let y = run(&avg_pool(&[3], &[3], &[], true, count_include_pad), &x);
            assert_eq!(values(&y), [2.0, 4.0]);
        }
        let x = ramp(&[1, 1, 5]);
        let y = run(&avg_pool(&[3], &[2], &[1, 1], true, true), &x);
        assert_eq!(values(&y), [1.0, 3.0, 3.0]);
    }

    #[test]
    fn global_pools_reduce_all_spatial_axes() {
        let x = ramp(&[1, 2, 2, 2]);
        let y = eval(&Op::GlobalAveragePool {}, &[Some(&x)])
            .unwrap()
            .remove(0);
        assert_eq!(y.shape(), &[1, 2, 1, 1]);
        assert_eq!(values(&y), [2.5, 6.5]);
        let y = eval(&Op::GlobalMaxPool {}, &[Some(&x)]).unwrap().remove(0);
        assert_eq!(values(&y), [4.0, 8.0]);
    }

    #[test]
    fn rules_shared_with_inference() {
        let x = ramp(&[1, 1, 5]);
        // ONNX forbids explicit pads together with auto_pad.
        let message = eval(
            &max_pool(&[2], &[], &[0, 0], AutoPad::Valid, false),
            &[Some(&x)],
        )
        .unwrap_err()
        .0;
        assert!(message.contains("cannot be given together"), "{message}");
        // `valid` rounds down whatever ceil_mode says: (5 - 2) / 2 + 1 = 2 windows.
        let y = run(&max_pool(&[2], &[2], &[], AutoPad::Valid, true), &x);
        assert_eq!(values(&y), [2.0, 4.0]);
        // Pads must be smaller than the kernel size, not the dilated extent.
        let dilated = Op::MaxPool {
            kernel_shape: vec![2],
            strides: vec![],
            pads: vec![2, 0],
            dilations: vec![3],
            auto_pad: AutoPad::NotSet,
            ceil_mode: false,
        };
        assert!(eval(&dilated, &[Some(&x)]).is_err());
        // An empty spatial axis has nothing to pool, whatever the padding.
        let empty = t32(&[1, 1, 0], &[]);
        assert!(eval(
            &max_pool(&[1], &[], &[], AutoPad::SameUpper, false),
            &[Some(&empty)]
        )
        .is_err());
        assert!(eval(&Op::GlobalMaxPool {}, &[Some(&t32(&[1, 1, 0, 2], &[]))]).is_err());
        assert!(eval(&Op::GlobalMaxPool {}, &[Some(&t32(&[2, 2], &[0.0; 4]))]).is_err());
    }

    #[test]
    fn huge_kernels_visit_only_the_taps_inside_the_input() {
        // A 2^31 kernel over 4 elements with same_upper: every window covers the whole input, and the
        // loop visits only the 4 taps inside it.
        let x = ramp(&[1, 1, 4]);
        let pool = |count_include_pad| Op::AveragePool {
            kernel_shape: vec![1 << 31],
            strides: vec![],
            pads: vec![],
            dilations: vec![],
            auto_pad: AutoPad::SameUpper,
            ceil_mode: false,
            count_include_pad,
        };
        assert_eq!(values(&run(&pool(false), &x)), [2.5; 4]);
        // Counting the padding divides by the whole kernel: the total pad is 2^31 - 1.
        let y = values(&run(&pool(true), &x));
        assert_eq!(y, [(10.0 / 2f64.powi(31)) as f32; 4]);
    }

    #[test]
    fn pools_reject_bad_attributes_and_inputs() {
        let x = ramp(&[1, 1, 4, 4]);
        assert!(eval(
            &max_pool(&[2], &[], &[], AutoPad::NotSet, false),
            &[Some(&x)]
        )
        .is_err());
        assert!(eval(
            &max_pool(&[], &[], &[], AutoPad::NotSet, false),
            &[Some(&x)]
        )
        .is_err());
        assert!(eval(
            &max_pool(&[2, 0], &[], &[], AutoPad::NotSet, false),
            &[Some(&x)]
        )
        .is_err());
        assert!(eval(
            &max_pool(&[2, 2], &[1], &[], AutoPad::NotSet, false),
            &[Some(&x)]
        )
        .is_err());
        assert!(eval(
            &max_pool(&[2, 2], &[], &[2, 0, 0, 0], AutoPad::NotSet, false),
            &[Some(&x)]
        )
        .is_err());
        assert!(eval(
            &max_pool(&[2, 2], &[], &[1, 1], AutoPad::NotSet, false),
            &[Some(&x)]
        )
        .is_err());
        assert!(eval(
            &max_pool(&[5, 5], &[], &[], AutoPad::NotSet, false),
            &[Some(&x)]
        )
        .is_err());
        let x_int = Tensor::from_vec(vec![1, 1, 4], vec![1u8, 2, 3, 4]).unwrap();
        assert!(eval(&avg_pool(&[2], &[], &[], false, false), &[Some(&x_int)]).is_err());
        let x_i64 = Tensor::from_vec(vec![1, 1, 4], vec![1i64, 2, 3, 4]).unwrap();
        assert!(eval(
            &max_pool(&[2], &[], &[], AutoPad::NotSet, false),
            &[Some(&x_i64)]
        )
        .is_err());
        let x_rank2 = t32(&[2, 2], &[0.0; 4]);
        assert!(eval(&Op::GlobalAveragePool {}, &[Some(&x_rank2)]).is_err());
        assert!(eval(
            &max_pool(&[2], &[], &[], AutoPad::NotSet, false),
            &[Some(&x_rank2)]
        )
        .is_err());
        assert!(eval(&Op::GlobalMaxPool {}, &[None]).is_err());
    }

    #[test]
    fn absurd_attributes_are_errors_not_panics() {
        let x = ramp(&[1, 1, 4]);
        let huge = 1i64 << 40;
        for op in [
            max_pool(&[huge], &[], &[], AutoPad::NotSet, false),
            max_pool(&[2], &[huge], &[], AutoPad::SameUpper, false),
            max_pool(&[2], &[], &[i64::MIN, 0], AutoPad::NotSet, false),
            avg_pool(&[2], &[], &[huge, huge], true, true),
        ] {
            assert!(eval(&op, &[Some(&x)]).is_err(), "{op:?}");
        }
    }
}
