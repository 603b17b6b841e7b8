//! Reference `resize`: nearest and (multi)linear interpolation over every axis.
//!
//! This mirrors `onnx.reference`'s `_resize` step by step, because fixtures come from it and nearest
//! mode is sensitive to the last bit of a coordinate:
//! - With `scales`, the output size is `trunc(scale * in)` computed in f64, and coordinates use the f32
//!   scale itself; the float "output width" that align_corners, pytorch_half_pixel and
//!   half_pixel_symmetric look at is `scale * in` rounded to f32, as numpy computes it. With `sizes`,
//!   the scale is `out / in` in f64.
//! - An output coordinate maps to an input coordinate `x_ori` by the coordinate transformation mode.
//!   `ratio` is `x_ori - floor(x_ori)`, or 1 when `x_ori` is an integer, and the two input positions are
//!   the two integers nearest to `x_ori` (ties to the smaller), clamped into the input (edge padding).
//!   Linear weights are `[1 - ratio, ratio]`; nearest picks one of the two by `nearest_mode`.
//! - Axes are independent, so each axis's taps are computed once; an output element is the nested
//!   weighted sum over its axes' taps, inner axes first as the reference nests them. Taps of weight
//!   zero are skipped.
//!
//! The result is saturated into the input dtype as numpy's `saturate_cast` does (floats clip to the
//! finite range, integers round half to even and clip), so u8 and other integer images work too.
//! Nearest mode also takes bool (a weight-1 tap copies 0 or 1 exactly); linear mode does not.
//! Output sizes are computed exactly as inference computes them; a size may be 0, but an empty axis
//! can only be resized to 0.
//!
//! onnxruntime 1.31 differs from the reference (and so from this) when `scale * in` is not an integer
//! under align_corners and half_pixel_symmetric, and by one unit on some u8 rounding ties.

use crate::index::{
    check_attr_sizes, checked_len, for_each_index, required_input, strides, tensor_from_f64s,
};
use crate::{op_err, OpError};
use sinter_ir::geometry::{resize_axes, resize_taps};
use sinter_ir::{DType, Op, ResizeMode, Tensor};

pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let Op::Resize {
        mode,
        coordinate_transformation_mode,
        nearest_mode,
        scales,
        sizes,
    } = op
    else {
        return op_err(format!("`{}` is not resize", op.name()));
    };
    let x = required_input(op, inputs, 0)?;
    // Nearest copies elements, so any dtype works (ONNX allows all); linear needs numbers.
    if x.dtype() == DType::Bool && *mode == ResizeMode::Linear {
        return op_err("`resize` in linear mode does not support bool tensors");
    }
    let rank = x.rank();
    check_attr_sizes(op, "sizes", sizes)?;
    let axis_scales = resize_axes(x.shape(), scales, sizes).map_err(OpError)?;
    let out_shape: Vec<usize> = axis_scales.iter().map(|s| s.out_size).collect();
    for (axis, scale) in axis_scales.iter().enumerate() {
        if x.shape()[axis] == 0 && scale.out_size > 0 {
            return op_err(format!(
                "`resize` cannot interpolate the empty axis {axis} to {}",
                scale.out_size
            ));
        }
    }
    // The size is checked before any per-axis taps are built: an empty output may still have one
    // huge axis.
    let n_elements = checked_len(op, &out_shape)?;
    if n_elements == 0 {
        return Ok(vec![Tensor::zeros(x.dtype(), out_shape)]);
    }
    let taps: Vec<Vec<Vec<(usize, f64)>>> = (0..rank)
        .map(|axis| {
            let scale = &axis_scales[axis];
            (0..scale.out_size)
                .map(|out_idx| {
                    let taps = resize_taps(
                        out_idx,
                        x.shape()[axis],
                        scale,
                        *mode,
                        *coordinate_transformation_mode,
                        *nearest_mode,
                    );
                    // Zero-weight taps are skipped (see `interpolate`).
                    taps.into_iter().filter(|&(_, w)| w != 0.0).collect()
                })
                .collect()
        })
        .collect();

    let values = x.to_f64_vec();
    let in_strides = strides(x.shape());
    let mut y = Vec::with_capacity(n_elements);
    for_each_index(&out_shape, |o| {
        let axis_taps: Vec<&[(usize, f64)]> = (0..rank)
            .map(|axis| taps[axis][o[axis]].as_slice())
            .collect();
        let value = interpolate(&values, &in_strides, &axis_taps, 0, 0);
        y.push(saturate(x.dtype(), value));
    });
    tensor_from_f64s(x.dtype(), out_shape, y).map(|t| vec![t])
}

/// The weighted sum over the taps of axes `axis..`, rounded exactly as `onnx.reference` computes it,
/// so that integer images round the same way at `.5` ties: the inner axes are interpolated first, and
/// each 1-d step is numpy's `dot(coeffs, points)`, which for two taps is `fma(c1, p1, c0 * p0)`
/// (measured on this machine's numpy/OpenBLAS). A skipped zero-weight tap changes nothing there.
fn interpolate(
    values: &[f64],
    in_strides: &[usize],
    axis_taps: &[&[(usize, f64)]],
    axis: usize,
    offset: usize,
) -> f64 {
    let Some(taps) = axis_taps.get(axis) else {
        return values[offset];
    };
    let mut acc = None;
    for &(in_idx, weight) in *taps {
        let point = interpolate(
            values,
            in_strides,
            axis_taps,
            axis + 1,
            offset + in_idx * in_strides[axis],
        );
        acc = Some(match acc {
            None => weight * point,
            Some(partial) => weight.mul_add(point, partial),
        });
    }
    acc.unwrap_or(0.0)
}

/// numpy `saturate_cast`: floats clip to the finite range, integers round half to even and clip.
fn saturate(dtype: DType, v: f64) -> f64 {
    match dtype {
        DType::F32 => v.clamp(-f64::from(f32::MAX), f64::from(f32::MAX)),
        DType::F64 => v.clamp(-f64::MAX, f64::MAX),
        // `Elem::from_f64` saturates integers, so rounding is all that is left.
        _ => v.round_ties_even(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::f32s;
    use sinter_ir::{CoordTransform, NearestMode};

    fn resize(
        x: &Tensor,
        mode: ResizeMode,
        transform: CoordTransform,
        nearest: NearestMode,
        scales: &[f32],
        sizes: &[i64],
    ) -> Result<Tensor, OpError> {
        let op = Op::Resize {
            mode,
            coordinate_transformation_mode: transform,
            nearest_mode: nearest,
            scales: scales.to_vec(),
            sizes: sizes.to_vec(),
        };
        eval(&op, &[Some(x)]).map(|mut v| v.remove(0))
    }

    fn assert_close(actual: &[f32], expected: &[f32]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert!(
                (a - e).abs() <= 1e-5 + 1e-5 * e.abs(),
                "{actual:?} vs {expected:?}"
            );
        }
    }

    fn grid() -> Tensor {
        Tensor::from_vec(vec![1, 1, 2, 2], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap()
    }

    /// The ONNX `resize_upsample_scales_nearest` case.
    #[test]
    fn nearest_upsample_repeats_pixels() {
        let y = resize(
            &grid(),
            ResizeMode::Nearest,
            CoordTransform::HalfPixel,
            NearestMode::RoundPreferFloor,
            &[1.0, 1.0, 2.0, 3.0],
            &[],
        )
        .unwrap();
        assert_eq!(y.shape(), &[1, 1, 4, 6]);
        #[rustfmt::skip]
        let expected = [
            1.0, 1.0, 1.0, 2.0, 2.0, 2.0,
            1.0, 1.0, 1.0, 2.0, 2.0, 2.0,
            3.0, 3.0, 3.0, 4.0, 4.0, 4.0,
            3.0, 3.0, 3.0, 4.0, 4.0, 4.0,
        ];
        assert_eq!(f32s(&y), expected);
    }

    /// The ONNX `resize_upsample_scales_linear` and `..._align_corners` cases.
    #[test]
    fn bilinear_upsample_half_pixel_and_align_corners() {
        let y = resize(
            &grid(),
            ResizeMode::Linear,
            CoordTransform::HalfPixel,
            NearestMode::RoundPreferFloor,
            &[1.0, 1.0, 2.0, 2.0],
            &[],
        )
        .unwrap();
        #[rustfmt::skip]
        let expected = [
            1.0, 1.25, 1.75, 2.0,
            1.5, 1.75, 2.25, 2.5,
            2.5, 2.75, 3.25, 3.5,
            3.0, 3.25, 3.75, 4.0,
        ];
        assert_close(&f32s(&y), &expected);
        let y = resize(
            &grid(),
            ResizeMode::Linear,
            CoordTransform::AlignCorners,
            NearestMode::RoundPreferFloor,
            &[1.0, 1.0, 2.0, 2.0],
            &[],
        )
        .unwrap();
        let third = 1.0 / 3.0;
        #[rustfmt::skip]
        let expected = [
            1.0, 1.0 + third, 1.0 + 2.0 * third, 2.0,
            1.0 + 2.0 * third, 2.0, 2.0 + third, 2.0 + 2.0 * third,
            2.0 + third, 2.0 + 2.0 * third, 3.0, 3.0 + third,
            3.0, 3.0 + third, 3.0 + 2.0 * third, 4.0,
        ];
        assert_close(&f32s(&y), &expected);
    }

    /// The ONNX `resize_downsample_scales_linear` case: 2x4 to 1x2.
    #[test]
    fn linear_downsample() {
        let x = Tensor::from_vec(vec![1, 1, 2, 4], (1..=8).map(|v| v as f32).collect()).unwrap();
        let y = resize(
            &x,
            ResizeMode::Linear,
            CoordTransform::HalfPixel,
            NearestMode::RoundPreferFloor,
            &[1.0, 1.0, 0.6, 0.6],
            &[],
        )
        .unwrap();
        assert_eq!(y.shape(), &[1, 1, 1, 2]);
        assert_close(&f32s(&y), &[2.666_666_8, 4.333_333_5]);
    }

    #[test]
    fn nearest_modes_round_differently_at_half() {
        // Asymmetric with scale 2: output 1 maps to 0.5 exactly.
        let x = Tensor::from_vec(vec![2], vec![10.0f32, 20.0]).unwrap();
        let cases = [
            (NearestMode::RoundPreferFloor, [10.0, 10.0, 20.0, 20.0]),
            (NearestMode::RoundPreferCeil, [10.0, 20.0, 20.0, 20.0]),
            (NearestMode::Floor, [10.0, 10.0, 20.0, 20.0]),
            (NearestMode::Ceil, [10.0, 20.0, 20.0, 20.0]),
        ];
        for (nearest, expected) in cases {
            let y = resize(
                &x,
                ResizeMode::Nearest,
                CoordTransform::Asymmetric,
                nearest,
                &[2.0],
                &[],
            )
            .unwrap();
            assert_eq!(f32s(&y), expected, "{nearest:?}");
        }
    }

    #[test]
    fn sizes_set_the_scale_and_coordinates_clamp_at_the_edges() {
        let x = Tensor::from_vec(vec![3], vec![0.0f64, 3.0, 6.0]).unwrap();
        // 3 -> 2 with half_pixel: scale 2/3, coordinates 0.25 and 1.75.
        let y = resize(
            &x,
            ResizeMode::Linear,
            CoordTransform::HalfPixel,
            NearestMode::RoundPreferFloor,
            &[],
            &[2],
        )
        .unwrap();
        let y = y.as_slice::<f64>().unwrap();
        assert!(
            (y[0] - 0.75).abs() < 1e-12 && (y[1] - 5.25).abs() < 1e-12,
            "{y:?}"
        );
        // 3 -> 6 with half_pixel: the first coordinate is -0.25, clamped to the first element.
        let y = resize(
            &x,
            ResizeMode::Linear,
            CoordTransform::HalfPixel,
            NearestMode::RoundPreferFloor,
            &[],
            &[6],
        )
        .unwrap();
        let y = y.as_slice::<f64>().unwrap();
        assert_eq!(y[0], 0.0);
        assert_eq!(y[5], 6.0);
        // pytorch_half_pixel with a single output reads coordinate -0.5: half of x[-1] (= x[0]) and x[0].
        let y = resize(
            &x,
            ResizeMode::Linear,
            CoordTransform::PytorchHalfPixel,
            NearestMode::RoundPreferFloor,
            &[],
            &[1],
        )
        .unwrap();
        assert_eq!(y.as_slice::<f64>().unwrap(), [0.0]);
        let y = resize(
            &x,
            ResizeMode::Linear,
            CoordTransform::HalfPixel,
            NearestMode::RoundPreferFloor,
            &[],
            &[1],
        )
        .unwrap();
        assert_eq!(
            y.as_slice::<f64>().unwrap(),
            [3.0],
            "half_pixel centers a single output"
        );
    }

    #[test]
    fn half_pixel_symmetric_recenters_a_truncated_output() {
        // scale 1.7 on 4 elements: float width 6.8, 6 outputs, adjustment 6 / 6.8.
        let x = Tensor::from_vec(vec![4], vec![0.0f64, 1.0, 2.0, 3.0]).unwrap();
        let y = resize(
            &x,
            ResizeMode::Linear,
            CoordTransform::HalfPixelSymmetric,
            NearestMode::RoundPreferFloor,
            &[1.7],
            &[],
        )
        .unwrap();
        let y = y.as_slice::<f64>().unwrap();
        let scale = f64::from(1.7f32);
        let width = f64::from(1.7f32 * 4.0);
        let offset = 2.0 * (1.0 - 6.0 / width);
        for (idx, v) in y.iter().enumerate() {
            let coord = (offset + (idx as f64 + 0.5) / scale - 0.5).clamp(0.0, 3.0);
            assert!((v - coord).abs() < 1e-12, "{y:?}");
        }
    }

    #[test]
    fn integer_images_round_and_saturate() {
        let x = Tensor::from_vec(vec![2], vec![0u8, 255]).unwrap();
        let y = resize(
            &x,
            ResizeMode::Linear,
            CoordTransform::AlignCorners,
            NearestMode::RoundPreferFloor,
            &[],
            &[3],
        )
        .unwrap();
        // 127.5 rounds half to even.
        assert_eq!(y.as_slice::<u8>().unwrap(), [0, 128, 255]);
        // Nearest copies bools; linear cannot interpolate them.
        let b = Tensor::from_vec(vec![2], vec![true, false]).unwrap();
        let y = resize(
            &b,
            ResizeMode::Nearest,
            CoordTransform::Asymmetric,
            NearestMode::Floor,
            &[2.0],
            &[],
        )
        .unwrap();
        assert_eq!(y.as_slice::<bool>().unwrap(), [true, true, false, false]);
        assert!(resize(
            &b,
            ResizeMode::Linear,
            CoordTransform::HalfPixel,
            NearestMode::RoundPreferFloor,
            &[],
            &[3]
        )
        .is_err());
    }

    #[test]
    fn rejects_bad_scales_and_sizes() {
        let x = grid();
        let mode = (
            ResizeMode::Nearest,
            CoordTransform::HalfPixel,
            NearestMode::RoundPreferFloor,
        );
        assert!(resize(&x, mode.0, mode.1, mode.2, &[], &[]).is_err());
        assert!(resize(&x, mode.0, mode.1, mode.2, &[1.0; 4], &[1, 1, 2, 2]).is_err());
        assert!(resize(&x, mode.0, mode.1, mode.2, &[1.0, 1.0, 2.0], &[]).is_err());
        assert!(resize(&x, mode.0, mode.1, mode.2, &[1.0, 1.0, 0.0, 2.0], &[]).is_err());
        assert!(resize(&x, mode.0, mode.1, mode.2, &[], &[1, 1, -1, 2]).is_err());
        let empty = Tensor::from_vec(vec![0], Vec::<f32>::new()).unwrap();
        assert!(resize(&empty, mode.0, mode.1, mode.2, &[], &[2]).is_err());
    }

    #[test]
    fn absurd_sizes_and_scales_are_errors_not_panics() {
        let x = Tensor::from_vec(vec![2, 2], vec![1.0f32; 4]).unwrap();
        let m = (
            ResizeMode::Nearest,
            CoordTransform::Asymmetric,
            NearestMode::Floor,
        );
        assert!(resize(&x, m.0, m.1, m.2, &[], &[1 << 40, 1]).is_err());
        assert!(resize(&x, m.0, m.1, m.2, &[], &[1 << 30, 1 << 30]).is_err());
        assert!(resize(&x, m.0, m.1, m.2, &[1e30, 1.0], &[]).is_err());
        assert!(resize(&x, m.0, m.1, m.2, &[f32::INFINITY, 1.0], &[]).is_err());
        // An empty result is returned without building taps for its (possibly huge) other axes.
        let empty = Tensor::from_vec(vec![0, 2], Vec::<f32>::new()).unwrap();
        let y = resize(&empty, m.0, m.1, m.2, &[], &[0, 1 << 31]).unwrap();
        assert_eq!(y.shape(), &[0, 1 << 31]);
    }

    #[test]
    fn output_sizes_agree_with_inference() {
        let m = (
            ResizeMode::Nearest,
            CoordTransform::Asymmetric,
            NearestMode::Floor,
        );
        // floor(f64(f32(0.7)) * 10) = floor(6.99999988) = 6; an f32 product would round to 7.
        let x = Tensor::from_vec(vec![10], vec![1.0f32; 10]).unwrap();
        assert_eq!(
            resize(&x, m.0, m.1, m.2, &[0.7], &[]).unwrap().shape(),
            &[6]
        );
        // Size 0 is allowed.
        let y = resize(&x, m.0, m.1, m.2, &[0.05], &[]).unwrap();
        assert_eq!(y.shape(), &[0]);
        // An empty axis can only be resized to 0.
        let empty = Tensor::from_vec(vec![0], Vec::<f32>::new()).unwrap();
        assert_eq!(
            resize(&empty, m.0, m.1, m.2, &[2.0], &[]).unwrap().shape(),
            &[0]
        );
        let message = resize(&empty, m.0, m.1, m.2, &[], &[3]).unwrap_err().0;
        assert!(message.contains("empty axis 0"), "{message}");
    }
}
