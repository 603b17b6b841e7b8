//! Index geometry of ops: which input positions an output position reads, computed from attributes
//! and concrete sizes. The reference interpreter evaluates with it and the lowering precomputes
//! tables with it, so both read exactly the same positions: the pads of a sliding window under
//! `auto_pad`, the taps of `resize`, the clamped range of `slice` (inference sizes outputs with it)
//! and the source of a padded position under each `pad` mode.
//!
//! `resize` mirrors `onnx.reference`'s `_resize` step by step, because nearest mode is sensitive to
//! the last bit of a coordinate (see `sinter-ref`'s resize module for the whole rule).

use crate::{AutoPad, CoordTransform, NearestMode, PadMode, ResizeMode};

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

/// The first index and element count of one sliced axis of size `dim`, with ONNX's clamping:
/// negative starts and ends count from the end; then for a positive step both clamp to `[0, dim]`,
/// for a negative step the start clamps to `[0, dim - 1]` and the end to `[-1, dim - 1]`. `step` is
/// non-zero; any other values are valid.
pub fn slice_range(start: i64, end: i64, step: i64, dim: usize) -> (i64, usize) {
    let dim = dim as i64;
    // i64::MIN + dim cannot overflow because dim >= 0.
    let from_end = |v: i64| if v < 0 { v + dim } else { v };
    let (start, end) = (from_end(start), from_end(end));
    if step > 0 {
        let (start, end) = (start.clamp(0, dim), end.clamp(0, dim));
        let len = if end > start {
            (end - start - 1) / step + 1
        } else {
            0
        };
        (start, len as usize)
    } else {
        if dim == 0 {
            return (0, 0);
        }
        let (start, end) = (start.clamp(0, dim - 1), end.clamp(-1, dim - 1));
        // `unsigned_abs` keeps a step of i64::MIN from overflowing.
        let len = if start > end {
            ((start - end - 1) as u64 / step.unsigned_abs()) + 1
        } else {
            0
        };
        (start, len as usize)
    }
}

/// Where a padded position reads from along one axis: `rel` is its offset from the first kept input
/// element and `n_kept` the number of kept elements. Inside `0..n_kept` it is itself; outside,
/// `None` for constant padding (the fill value), or the source `mode` reflects, clamps or wraps to.
/// `n_kept` must be positive unless the mode is constant or `rel` is inside.
pub fn pad_source(mode: PadMode, rel: i64, n_kept: i64) -> Option<i64> {
    let n = n_kept;
    if (0..n).contains(&rel) {
        return Some(rel);
    }
    match mode {
        PadMode::Constant => None,
        PadMode::Edge => Some(rel.clamp(0, n - 1)),
        PadMode::Wrap => Some(rel.rem_euclid(n)),
        PadMode::Reflect if n == 1 => Some(0),
        PadMode::Reflect => {
            // Reflection without repeating the edge is periodic with period 2 (n - 1).
            let period = 2 * (n - 1);
            let r = rel.rem_euclid(period);
            Some(if r < n { r } else { period - r })
        }
    }
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

    #[test]
    fn slice_ranges_clamp_like_onnx() {
        assert_eq!(slice_range(1, 100, 2, 5), (1, 2));
        assert_eq!(slice_range(-1, i64::MIN, -1, 4), (3, 4));
        assert_eq!(slice_range(0, 3, i64::MIN, 4), (0, 0));
        assert_eq!(slice_range(3, 0, i64::MIN, 4), (3, 1));
        assert_eq!(slice_range(2, 2, 1, 0), (0, 0));
    }

    #[test]
    fn padded_positions_read_by_mode() {
        let sources = |mode| {
            (-3..6)
                .map(|rel| pad_source(mode, rel, 3))
                .collect::<Vec<_>>()
        };
        let some = |v: &[i64]| v.iter().map(|&x| Some(x)).collect::<Vec<_>>();
        assert_eq!(
            sources(PadMode::Reflect),
            some(&[1, 2, 1, 0, 1, 2, 1, 0, 1])
        );
        assert_eq!(sources(PadMode::Edge), some(&[0, 0, 0, 0, 1, 2, 2, 2, 2]));
        assert_eq!(sources(PadMode::Wrap), some(&[0, 1, 2, 0, 1, 2, 0, 1, 2]));
        assert_eq!(sources(PadMode::Constant)[..4], [None, None, None, Some(0)]);
    }
}
