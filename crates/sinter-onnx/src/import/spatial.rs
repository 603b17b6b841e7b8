//! `Pad`, `Resize` and `Upsample`: ops whose ONNX forms moved parameters from attributes to inputs
//! over the opsets.
//!
//! - `Pad`: opset 1 has a `paddings` attribute, 2 `pads` and `value`; from 11 `pads` and
//!   `constant_value` are constant inputs, and 18 adds an `axes` input (the pads are expanded to every
//!   axis).
//! - `Resize` 10 has Upsample's semantics (asymmetric coordinates; nearest rounds down when
//!   upsampling and up when downsampling). 11 and 13 take `roi`, `scales`, `sizes` inputs (constant;
//!   an empty `scales` means absent); 18 adds `axes`, `keep_aspect_ratio_policy` (folded into `sizes`)
//!   and `antialias` (accepted only when nothing is downscaled, where it changes nothing); 19 adds
//!   `half_pixel_symmetric`. Cubic mode and the `tf_*` coordinate modes are unsupported;
//!   `exclude_outside` and `extrapolation_value` only matter for those and are ignored.
//! - `Upsample` 7 (attribute `scales`) and 9 (input) become `resize` with asymmetric coordinates and
//!   floor rounding.

use super::{invalid, one, unsupported, Lowered, NodeCx, NodeResult};
use sinter_ir::{CoordTransform, Dim, NearestMode, Op, PadMode, ResizeMode};

pub(crate) fn pad(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).rank();
    let attrs = cx.attrs();
    let mode_text = attrs.string_or("mode", "constant")?;
    let Some(mode) = PadMode::from_name(&mode_text.to_ascii_lowercase()) else {
        return invalid(format!(
            "attribute `mode` must be constant, reflect, edge or wrap, got {mode_text:?}"
        ));
    };
    let (pads, value) = if cx.opset < 11 {
        let name = if cx.opset < 2 { "paddings" } else { "pads" };
        let Some(pads) = attrs.ints(name)? else {
            return invalid(format!("attribute `{name}` is required before opset 11"));
        };
        (pads, f64::from(attrs.float_or("value", 0.0)?))
    } else {
        cx.require_constants(&[(1, "pads"), (2, "constant_value"), (3, "axes")])?;
        let Some(pads) = cx.const_ints(1, "pads")? else {
            return invalid("input 1 (`pads`) is required");
        };
        let value = cx.const_scalar(2, "constant_value")?.unwrap_or(0.0);
        let pads = match cx.const_ints(3, "axes")? {
            None => pads,
            Some(axes) => expand_pads(&pads, &axes, rank)?,
        };
        (pads, value)
    };
    one(cx.emit1(Op::Pad { pads, mode, value }, &[x])?)
}

/// Opset 18's pads over a subset of axes, as `begin`/`end` pads for every axis.
fn expand_pads(pads: &[i64], axes: &[i64], rank: usize) -> NodeResult<Vec<i64>> {
    if pads.len() != 2 * axes.len() {
        return invalid(format!(
            "input `pads` must have two entries per axis of `axes` {axes:?}, got {pads:?}"
        ));
    }
    let mut full = vec![0; 2 * rank];
    for (idx, &axis) in axes.iter().enumerate() {
        let resolved = if axis < 0 { axis + rank as i64 } else { axis };
        let Some(axis_idx) = usize::try_from(resolved).ok().filter(|&a| a < rank) else {
            return invalid(format!(
                "axis {axis} of `axes` is out of range for rank {rank}"
            ));
        };
        full[axis_idx] = pads[idx];
        full[axis_idx + rank] = pads[idx + axes.len()];
    }
    Ok(full)
}

fn resize_mode(text: &str) -> NodeResult<ResizeMode> {
    match text {
        "nearest" => Ok(ResizeMode::Nearest),
        "linear" | "bilinear" => Ok(ResizeMode::Linear),
        "cubic" => unsupported("cubic interpolation (`mode = cubic`) is not supported"),
        other => invalid(format!("attribute `mode` has the unknown value {other:?}")),
    }
}

/// Resize 10 and Upsample's nearest rounding: down when upsampling, up when downsampling.
fn legacy_nearest_mode(scales: &[f32]) -> NodeResult<NearestMode> {
    if scales.iter().all(|&s| s >= 1.0) {
        Ok(NearestMode::Floor)
    } else if scales.iter().all(|&s| s <= 1.0) {
        Ok(NearestMode::Ceil)
    } else {
        unsupported(format!(
            "opset-10 nearest resizing that upsamples some axes and downsamples others ({scales:?}) \
             has no single rounding mode"
        ))
    }
}

pub(crate) fn resize(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let attrs = cx.attrs();
    let mode = resize_mode(&attrs.string_or("mode", "nearest")?)?;
    if cx.opset < 11 {
        let Some(scales) = cx.const_input(1, "scales")? else {
            return invalid("input 1 (`scales`) is required");
        };
        let scales: Vec<f32> = scales.to_f64_vec().into_iter().map(|s| s as f32).collect();
        let nearest_mode = if mode == ResizeMode::Nearest {
            legacy_nearest_mode(&scales)?
        } else {
            NearestMode::RoundPreferFloor
        };
        let op = Op::Resize {
            mode,
            coordinate_transformation_mode: CoordTransform::Asymmetric,
            nearest_mode,
            scales,
            sizes: vec![],
        };
        return one(cx.emit1(op, &[x])?);
    }
    let transform_text = attrs.string_or("coordinate_transformation_mode", "half_pixel")?;
    let coordinate_transformation_mode = match transform_text.as_str() {
        "tf_crop_and_resize" | "tf_half_pixel_for_nn" => {
            return unsupported(format!(
                "`coordinate_transformation_mode = {transform_text}` is not supported"
            ))
        }
        text => match CoordTransform::from_name(text) {
            Some(mode) => mode,
            None => {
                return invalid(format!(
                    "attribute `coordinate_transformation_mode` has the unknown value {text:?}"
                ))
            }
        },
    };
    let nearest_text = attrs.string_or("nearest_mode", "round_prefer_floor")?;
    let Some(nearest_mode) = NearestMode::from_name(&nearest_text) else {
        return invalid(format!(
            "attribute `nearest_mode` has the unknown value {nearest_text:?}"
        ));
    };
    let dims = cx.dims(x);
    let rank = dims.len();
    let axes: Vec<usize> = match attrs.ints("axes")? {
        None => (0..rank).collect(),
        Some(axes) => axes
            .iter()
            .map(|&axis| {
                let resolved = if axis < 0 { axis + rank as i64 } else { axis };
                usize::try_from(resolved)
                    .ok()
                    .filter(|&a| a < rank)
                    .ok_or_else(|| {
                        super::NodeError::Invalid(format!(
                            "axis {axis} of `axes` is out of range for rank {rank}"
                        ))
                    })
            })
            .collect::<NodeResult<_>>()?,
    };
    cx.require_constants(&[(2, "scales"), (3, "sizes")])?;
    let scales_input = cx
        .const_input(2, "scales")?
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.to_f64_vec()
                .into_iter()
                .map(|s| s as f32)
                .collect::<Vec<f32>>()
        });
    let sizes_input = cx.const_ints(3, "sizes")?.filter(|s| !s.is_empty());
    let (mut scales, mut sizes) = (Vec::new(), Vec::new());
    match (scales_input, sizes_input) {
        (Some(_), Some(_)) => return invalid("inputs `scales` and `sizes` are both given"),
        (None, None) => return invalid("one of the inputs `scales` and `sizes` is required"),
        (Some(given), None) => {
            if given.len() != axes.len() {
                return invalid(format!(
                    "input `scales` must have {} entries, got {given:?}",
                    axes.len()
                ));
            }
            scales = vec![1.0; rank];
            for (&axis, &scale) in axes.iter().zip(&given) {
                scales[axis] = scale;
            }
        }
        (None, Some(given)) => {
            if given.len() != axes.len() {
                return invalid(format!(
                    "input `sizes` must have {} entries, got {given:?}",
                    axes.len()
                ));
            }
            sizes = full_sizes(&dims, &axes, &given)?;
            let policy = attrs.string_or("keep_aspect_ratio_policy", "stretch")?;
            if policy != "stretch" {
                sizes = keep_aspect_ratio(&policy, &dims, &axes, &sizes)?;
            }
        }
    }
    if attrs.flag_or("antialias", false)? {
        let downscales = if scales.is_empty() {
            sizes.iter().zip(&dims).any(|(&s, d)| match d {
                Dim::Static(n) => s < *n as i64,
                Dim::Sym(_) => true,
            })
        } else {
            scales.iter().any(|&s| s < 1.0)
        };
        if downscales {
            return unsupported("antialiased downscaling (`antialias = 1`) is not supported");
        }
    }
    let op = Op::Resize {
        mode,
        coordinate_transformation_mode,
        nearest_mode,
        scales,
        sizes,
    };
    one(cx.emit1(op, &[x])?)
}

/// Sizes for every axis: the given ones on `axes`, the (static) input dims elsewhere.
fn full_sizes(dims: &[Dim], axes: &[usize], given: &[i64]) -> NodeResult<Vec<i64>> {
    let mut sizes = Vec::with_capacity(dims.len());
    for (axis, dim) in dims.iter().enumerate() {
        let size = match axes.iter().position(|&a| a == axis) {
            Some(idx) => given[idx],
            None => match dim {
                Dim::Static(n) => *n as i64,
                Dim::Sym(s) => {
                    return unsupported(format!(
                        "resizing with `sizes` on some axes keeps axis {axis}, whose size `{s}` is symbolic"
                    ))
                }
            },
        };
        sizes.push(size);
    }
    Ok(sizes)
}

/// Resize 18's `keep_aspect_ratio_policy`: one scale for all of `axes` (the smallest ratio for
/// `not_larger`, the largest for `not_smaller`), sizes rounded half up, as onnx's reference does.
fn keep_aspect_ratio(
    policy: &str,
    dims: &[Dim],
    axes: &[usize],
    sizes: &[i64],
) -> NodeResult<Vec<i64>> {
    let mut ratios = Vec::with_capacity(axes.len());
    for &axis in axes {
        match dims[axis] {
            Dim::Static(n) if n > 0 => ratios.push(sizes[axis] as f64 / n as f64),
            Dim::Static(_) => return invalid(format!("cannot keep the aspect ratio of the empty axis {axis}")),
            Dim::Sym(_) => {
                return unsupported(format!(
                    "`keep_aspect_ratio_policy = {policy}` needs static input sizes on the resized axes"
                ))
            }
        }
    }
    let scale = match policy {
        "not_larger" => ratios.iter().copied().fold(f64::INFINITY, f64::min),
        "not_smaller" => ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        other => {
            return invalid(format!(
                "attribute `keep_aspect_ratio_policy` has the unknown value {other:?}"
            ))
        }
    };
    let mut out = sizes.to_vec();
    for &axis in axes {
        if let Dim::Static(n) = dims[axis] {
            out[axis] = (scale * n as f64 + 0.5).floor() as i64;
        }
    }
    Ok(out)
}

pub(crate) fn upsample(cx: &mut NodeCx) -> NodeResult<Lowered> {
    if cx.opset < 7 {
        return unsupported(
            "Upsample before opset 7 (`height_scale`/`width_scale`) is not supported",
        );
    }
    let x = cx.input(0)?;
    let attrs = cx.attrs();
    let mode = resize_mode(&attrs.string_or("mode", "nearest")?)?;
    let scales: Vec<f32> = if cx.opset < 9 {
        match attrs.floats("scales")? {
            Some(scales) => scales,
            None => return invalid("attribute `scales` is required before opset 9"),
        }
    } else {
        match cx.const_input(1, "scales")? {
            Some(t) => t.to_f64_vec().into_iter().map(|s| s as f32).collect(),
            None => return invalid("input 1 (`scales`) is required"),
        }
    };
    let op = Op::Resize {
        mode,
        coordinate_transformation_mode: CoordTransform::Asymmetric,
        nearest_mode: NearestMode::Floor,
        scales,
        sizes: vec![],
    };
    one(cx.emit1(op, &[x])?)
}
