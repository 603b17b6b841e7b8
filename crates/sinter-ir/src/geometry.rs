//! Index geometry of ops: which input positions an output position reads, computed from attributes
//! and concrete sizes. The reference interpreter evaluates with it and the lowering precomputes
//! tables with it, so both read exactly the same positions: the pads of a sliding window under
//! `auto_pad`, and the taps of `resize`.
//!
//! `resize` mirrors `onnx.reference`'s `_resize` step by step, because nearest mode is sensitive to
//! the last bit of a coordinate (see `sinter-ref`'s resize module for the whole rule).

use crate::{AutoPad, CoordTransform, NearestMode, ResizeMode};

/// The `(begin, end)` pads of one axis under `auto_pad = same_*`: the output has `ceil(in / stride)`
/// elements and the total padding is whatever the last window needs (never negative); `same_lower`
/// puts the odd element at the beginning.
pub fn same_pads(
    auto_pad: AutoPad,
    in_size: usize,
    stride: usize,
    extent: usize,
) -> (usize, usize) {
    let out_size = in_size.div_ceil(stride);
    let needed = (out_size.saturating_sub(1) * stride + extent).saturating_sub(in_size);
    let begin = if auto_pad == AutoPad::SameLower {
        needed - needed / 2
    } else {
        needed / 2
    };
    (begin, needed - begin)
}

/// The span of a dilated kernel: `(kernel - 1) * dilation + 1`, saturating (no input is that large,
/// so a saturated extent fails the size checks that follow).
pub fn dilated_extent(kernel: usize, dilation: usize) -> usize {
    kernel
        .saturating_sub(1)
        .saturating_mul(dilation)
        .saturating_add(1)
}

/// The scale of one axis as `onnx.reference` sees it.
pub struct ResizeAxis {
    pub out_size: usize,
    /// The factor coordinates are divided by.
    pub factor: f64,
    /// `factor * in` with numpy's precision (f32 when the factor came from `scales`).
    pub float_out_size: f64,
}

/// The scale of every axis of a `resize` from `in_shape`, given exactly one of `scales` (positive,
/// finite) and `sizes` (non-negative), one entry per axis.
pub fn resize_axes(
    in_shape: &[usize],
    scales: &[f32],
    sizes: &[i64],
) -> Result<Vec<ResizeAxis>, String> {
    let rank = in_shape.len();
    match (scales.is_empty(), sizes.is_empty()) {
        (false, true) => {
            if scales.len() != rank || scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                return Err(format!(
                    "`resize` needs {rank} positive finite scales (one per axis), got {scales:?}"
                ));
            }
            Ok(in_shape
                .iter()
                .zip(scales)
                .map(|(&in_size, &scale)| ResizeAxis {
                    out_size: (f64::from(scale) * in_size as f64) as usize,
                    factor: f64::from(scale),
                    float_out_size: f64::from(scale * in_size as f32),
                })
                .collect())
        }
        (true, false) => {
            if sizes.len() != rank || sizes.iter().any(|&s| s < 0) {
                return Err(format!(
                    "`resize` needs {rank} non-negative sizes (one per axis), got {sizes:?}"
                ));
            }
            Ok(in_shape
                .iter()
                .zip(sizes)
                .map(|(&in_size, &size)| {
                    let factor = size as f64 / in_size as f64;
                    ResizeAxis {
                        out_size: size as usize,
                        factor,
                        float_out_size: factor * in_size as f64,
                    }
                })
                .collect())
        }
        _ => Err(format!(
            "`resize` needs exactly one of `scales` and `sizes`, got scales {scales:?} and sizes {sizes:?}"
        )),
    }
}

/// The input coordinate that output coordinate `out_idx` maps to.
fn source_coordinate(
    out_idx: usize,
    in_size: usize,
    scale: &ResizeAxis,
    transform: CoordTransform,
) -> f64 {
    let x = out_idx as f64;
    let out_width = scale.float_out_size;
    match transform {
        CoordTransform::AlignCorners if out_width == 1.0 => 0.0,
        CoordTransform::AlignCorners => {
            (out_idx * in_size.saturating_sub(1)) as f64 / (out_width - 1.0)
        }
        CoordTransform::Asymmetric => x / scale.factor,
        CoordTransform::PytorchHalfPixel if out_width == 1.0 => -0.5,
        CoordTransform::PytorchHalfPixel | CoordTransform::HalfPixel => {
            (x + 0.5) / scale.factor - 0.5
        }
        CoordTransform::HalfPixelSymmetric => {
            // Centers the (possibly truncated) output on the input.
            let adjustment = scale.out_size as f64 / out_width;
            let center = in_size as f64 / 2.0;
            let offset = center * (1.0 - adjustment);
            offset + (x + 0.5) / scale.factor - 0.5
        }
    }
}

/// The two (input index, weight) taps that output coordinate `out_idx` reads along one axis: the two
/// input indices nearest to its source coordinate, ascending, with linear weights `[1 - r, r]` or a
/// nearest-mode pick `[1, 0]` / `[0, 1]`. A tap may have weight 0.
pub fn resize_taps(
    out_idx: usize,
    in_size: usize,
    axis: &ResizeAxis,
    mode: ResizeMode,
    transform: CoordTransform,
    nearest_mode: NearestMode,
) -> [(usize, f64); 2] {
    let x_ori = source_coordinate(out_idx, in_size, axis, transform);
    let floor = x_ori.floor();
    let ratio = if x_ori == floor { 1.0 } else { x_ori - floor };
    let coeffs = match mode {
        ResizeMode::Linear => [1.0 - ratio, ratio],
        ResizeMode::Nearest => {
            let pick_second = ratio == 1.0
                || match nearest_mode {
                    NearestMode::RoundPreferFloor => ratio > 0.5,
                    NearestMode::RoundPreferCeil => ratio >= 0.5,
                    NearestMode::Floor => false,
                    NearestMode::Ceil => true,
                };
            if pick_second {
                [0.0, 1.0]
            } else {
                [1.0, 0.0]
            }
        }
    };
    let [first, second] = nearest_two(x_ori, in_size);
    [(first, coeffs[0]), (second, coeffs[1])]
}

/// The two input indices nearest to `x` (ties to the smaller), ascending, found as `onnx.reference`
/// does: among the positions of the input padded by one edge element on each side, then clamped back.
fn nearest_two(x: f64, in_size: usize) -> [usize; 2] {
    let padded_len = in_size as i64 + 2;
    let x_padded = x + 1.0;
    // The two nearest positions lie next to floor(x) or at an end of the padded range.
    let base = if x_padded.is_finite() {
        x_padded.floor().clamp(-2.0, padded_len as f64 + 2.0) as i64
    } else {
        0
    };
    let mut candidates: Vec<i64> = (base - 2..=base + 3)
        .chain([0, 1, padded_len - 2, padded_len - 1])
        .filter(|&idx| (0..padded_len).contains(&idx))
        .collect();
    candidates.sort_by(|&a, &b| {
        let da = (x_padded - a as f64).abs();
        let db = (x_padded - b as f64).abs();
        da.total_cmp(&db).then(a.cmp(&b))
    });
    candidates.dedup();
    let mut pair = [candidates[0], candidates[1]];
    pair.sort_unstable();
    pair.map(|idx| (idx - 1).clamp(0, in_size as i64 - 1) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_pads_put_the_odd_element_where_the_mode_says() {
        // in 5, stride 2, extent 3: 3 outputs need 2*2 + 3 = 7 positions, so 2 pads.
        assert_eq!(same_pads(AutoPad::SameUpper, 5, 2, 3), (1, 1));
        // in 4, stride 1, extent 4: 4 outputs need 7 positions, so 3 pads.
        assert_eq!(same_pads(AutoPad::SameUpper, 4, 1, 4), (1, 2));
        assert_eq!(same_pads(AutoPad::SameLower, 4, 1, 4), (2, 1));
        assert_eq!(dilated_extent(3, 2), 5);
        assert_eq!(dilated_extent(0, 7), 1);
    }

    #[test]
    fn resize_taps_interpolate_between_the_two_nearest_inputs() {
        // Upsampling 2 -> 4 with half_pixel: output 1 maps to input 0.25.
        let axes = resize_axes(&[2], &[2.0], &[]).unwrap();
        assert_eq!(axes[0].out_size, 4);
        let taps =
            |mode, nearest| resize_taps(1, 2, &axes[0], mode, CoordTransform::HalfPixel, nearest);
        assert_eq!(
            taps(ResizeMode::Linear, NearestMode::RoundPreferFloor),
            [(0, 0.75), (1, 0.25)]
        );
        assert_eq!(
            taps(ResizeMode::Nearest, NearestMode::Ceil),
            [(0, 0.0), (1, 1.0)]
        );
        // Output 0 maps to -0.25: both taps clamp onto input 0.
        let edge = resize_taps(
            0,
            2,
            &axes[0],
            ResizeMode::Linear,
            CoordTransform::HalfPixel,
            NearestMode::Floor,
        );
        assert_eq!([edge[0].0, edge[1].0], [0, 0]);
        assert!(resize_axes(&[2], &[2.0], &[4]).is_err());
        assert!(resize_axes(&[2], &[-1.0], &[]).is_err());
    }
}
