//! Reference convolution and transposed convolution, N-d over the spatial axes of `[N, C, *spatial]`.
//!
//! Both are direct loops over output (conv) or input (conv_transpose) elements, accumulating in f64 and
//! rounding once to the input dtype. Padding is never materialised: a window position outside the input
//! contributes nothing, which is what zero padding means.
//!
//! Pads are `[begin_0, .., begin_n-1, end_0, .., end_n-1]`. `auto_pad = same_*` chooses pads so that
//! `out = ceil(in / stride)`, the odd element at the end (`same_upper`) or at the start (`same_lower`);
//! `valid` means no padding. A negative total (stride larger than the dilated kernel) is clamped to 0,
//! as onnxruntime does. `onnx.reference`'s conv computes same pads from the batch and channel dims
//! and gives `valid` same_upper pads; it is not followed there. The window geometry helpers are shared
//! with `pool.rs`. Size-like attributes are bounded by `MAX_ATTR_SIZE` so index arithmetic never
//! overflows.
//!
//! `conv_transpose` follows the ONNX spec and onnxruntime where `onnx.reference` is known to be wrong
//! (its grouped path slices the weights by output channels, and its col2im rejects valid output shapes).
//! With `auto_pad = same_*` the output is `in * stride` and the total padding `full - out` is split with
//! floor division as the reference does (`same_upper` puts the odd element at the end), so a negative
//! total (stride larger than the kernel) extends the output on both sides; onnxruntime instead clamps
//! it to 0 and returns a smaller output than the spec's. With an explicit `output_shape`, pads derive
//! from it as the spec says (explicit pads are ignored) and a negative total puts the extra outputs at
//! the end, as both onnxruntime and the reference do. Either way the forward convolution of the output
//! must give back the input size, so `output_padding` must be smaller than the stride and
//! `output_shape` may exceed the full size by less than a stride (both oracles reject the rest).

use crate::index::{
    check_attr_sizes, checked_len, expect_dtype, float_values, for_each_index, optional_input,
    required_input, strides, tensor_from_f64s, MAX_ELEMENTS,
};
use crate::{op_err, OpError};
use sinter_ir::geometry::{dilated_extent, same_pads};
use sinter_ir::{AutoPad, Op, Tensor};

pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    match op {
        Op::Conv {
            strides,
            pads,
            dilations,
            group,
            auto_pad,
        } => {
            let attrs = ConvAttrs {
                strides,
                pads,
                dilations,
                group: *group,
                auto_pad: *auto_pad,
            };
            conv(op, inputs, &attrs).map(|y| vec![y])
        }
        Op::ConvTranspose {
            strides,
            pads,
            dilations,
            group,
            auto_pad,
            output_padding,
            output_shape,
        } => {
            let attrs = ConvAttrs {
                strides,
                pads,
                dilations,
                group: *group,
                auto_pad: *auto_pad,
            };
            conv_transpose(op, inputs, &attrs, output_padding, output_shape).map(|y| vec![y])
        }
        _ => op_err(format!("`{}` is not a convolution op", op.name())),
    }
}

/// The attributes conv and conv_transpose share.
struct ConvAttrs<'a> {
    strides: &'a [i64],
    pads: &'a [i64],
    dilations: &'a [i64],
    group: i64,
    auto_pad: AutoPad,
}

/// A `strides`/`dilations`-like attribute: empty means all ones, otherwise one positive entry per
/// spatial axis.
pub(crate) fn per_axis_or_ones(
    op: &Op,
    attr: &str,
    values: &[i64],
    n_spatial: usize,
) -> Result<Vec<usize>, OpError> {
    check_attr_sizes(op, attr, values)?;
    if values.is_empty() {
        return Ok(vec![1; n_spatial]);
    }
    if values.len() != n_spatial {
        return op_err(format!(
            "`{}` attribute `{attr}` needs {n_spatial} entries (one per spatial axis), got {values:?}",
            op.name()
        ));
    }
    values
        .iter()
        .map(|&v| {
            if v >= 1 {
                Ok(v as usize)
            } else {
                op_err(format!(
                    "`{}` attribute `{attr}` must be positive, got {values:?}",
                    op.name()
                ))
            }
        })
        .collect()
}

/// ONNX forbids explicit `pads` together with an `auto_pad` other than `notset`.
pub(crate) fn check_pads_without_auto_pad(
    op: &Op,
    pads: &[i64],
    auto_pad: AutoPad,
) -> Result<(), OpError> {
    if auto_pad != AutoPad::NotSet && !pads.is_empty() {
        return op_err(format!(
            "`{}` attribute `pads` cannot be given together with auto_pad={}, got {pads:?}",
            op.name(),
            auto_pad.name()
        ));
    }
    Ok(())
}

/// Explicit `pads`: empty means zeros, otherwise `2 * n_spatial` non-negative entries.
/// Returns `(begins, ends)`.
pub(crate) fn explicit_pads(
    op: &Op,
    pads: &[i64],
    n_spatial: usize,
) -> Result<(Vec<usize>, Vec<usize>), OpError> {
    check_attr_sizes(op, "pads", pads)?;
    if pads.is_empty() {
        return Ok((vec![0; n_spatial], vec![0; n_spatial]));
    }
    if pads.len() != 2 * n_spatial || pads.iter().any(|&p| p < 0) {
        return op_err(format!(
            "`{}` attribute `pads` needs {} non-negative entries ([begins.., ends..]), got {pads:?}",
            op.name(),
            2 * n_spatial
        ));
    }
    let begins = pads[..n_spatial].iter().map(|&p| p as usize).collect();
    let ends = pads[n_spatial..].iter().map(|&p| p as usize).collect();
    Ok((begins, ends))
}

/// Shapes and dtype checks common to conv and conv_transpose: float `x` of rank >= 3, `w` of the same
/// rank and dtype, `group >= 1` dividing `x`'s channels. Returns `(x values, w values, group)`.
fn check_operands(
    op: &Op,
    x: &Tensor,
    w: &Tensor,
    group: i64,
) -> Result<(Vec<f64>, Vec<f64>, usize), OpError> {
    let x_values = float_values(op, "x", x)?;
    expect_dtype(op, "w", w, x.dtype())?;
    let w_values = float_values(op, "w", w)?;
    if x.rank() < 3 {
        return op_err(format!(
            "`{}` needs x of rank >= 3 ([N, C, *spatial]), got shape {:?}",
            op.name(),
            x.shape()
        ));
    }
    if w.rank() != x.rank() {
        return op_err(format!(
            "`{}` needs w of x's rank {}, got w shape {:?} for x shape {:?}",
            op.name(),
            x.rank(),
            w.shape(),
            x.shape()
        ));
    }
    if group < 1 || !x.shape()[1].is_multiple_of(group as usize) {
        return op_err(format!(
            "`{}` group {group} must be positive and divide the {} input channels",
            op.name(),
            x.shape()[1]
        ));
    }
    if w.shape()[2..].contains(&0) {
        return op_err(format!(
            "`{}` needs a non-empty kernel, got w shape {:?}",
            op.name(),
            w.shape()
        ));
    }
    Ok((x_values, w_values, group as usize))
}

/// The optional bias: rank 1 with one entry per output channel (`None` when absent, which adds 0).
fn bias_values(
    op: &Op,
    b: Option<&Tensor>,
    x: &Tensor,
    n_out_channels: usize,
) -> Result<Option<Vec<f64>>, OpError> {
    let Some(b) = b else {
        return Ok(None);
    };
    expect_dtype(op, "b", b, x.dtype())?;
    if b.shape() != [n_out_channels] {
        return op_err(format!(
            "`{}` needs bias of shape [{n_out_channels}] (one per output channel), got {:?}",
            op.name(),
            b.shape()
        ));
    }
    float_values(op, "b", b).map(Some)
}

fn conv(op: &Op, inputs: &[Option<&Tensor>], attrs: &ConvAttrs) -> Result<Tensor, OpError> {
    let x = required_input(op, inputs, 0)?;
    let w = required_input(op, inputs, 1)?;
    let (x_values, w_values, group) = check_operands(op, x, w, attrs.group)?;
    let x_shape = x.shape();
    let w_shape = w.shape();
    let n_spatial = x.rank() - 2;
    let (n_batch, n_in_channels) = (x_shape[0], x_shape[1]);
    let n_out_channels = w_shape[0];
    let in_per_group = n_in_channels / group;
    if w_shape[1] != in_per_group || !n_out_channels.is_multiple_of(group) {
        return op_err(format!(
            "`conv` with group {group} needs w of shape [M, {in_per_group}, ..] with M divisible by {group}, \
             got w {w_shape:?} for x {x_shape:?}"
        ));
    }
    let out_per_group = n_out_channels / group;
    let bias = bias_values(op, optional_input(inputs, 2), x, n_out_channels)?;

    let kernel = &w_shape[2..];
    let in_spatial = &x_shape[2..];
    let stride = per_axis_or_ones(op, "strides", attrs.strides, n_spatial)?;
    let dilation = per_axis_or_ones(op, "dilations", attrs.dilations, n_spatial)?;
    let extent: Vec<usize> = (0..n_spatial)
        .map(|a| dilated_extent(kernel[a], dilation[a]))
        .collect();
    check_pads_without_auto_pad(op, attrs.pads, attrs.auto_pad)?;
    let (pad_begin, pad_end) = match attrs.auto_pad {
        AutoPad::NotSet => explicit_pads(op, attrs.pads, n_spatial)?,
        AutoPad::Valid => (vec![0; n_spatial], vec![0; n_spatial]),
        AutoPad::SameUpper | AutoPad::SameLower => (0..n_spatial)
            .map(|a| same_pads(attrs.auto_pad, in_spatial[a], stride[a], extent[a]))
            .unzip(),
    };
    let mut out_spatial = Vec::with_capacity(n_spatial);
    for axis in 0..n_spatial {
        let padded = in_spatial[axis] + pad_begin[axis] + pad_end[axis];
        if padded < extent[axis] {
            return op_err(format!(
                "`conv` spatial axis {axis}: padded input {padded} is smaller than the dilated kernel {}",
                extent[axis]
            ));
        }
        // With same_* the output is ceil(in / stride) (so an empty axis stays empty); the pads make the
        // formula below give the same for a non-empty one.
        out_spatial.push(match attrs.auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => in_spatial[axis].div_ceil(stride[axis]),
            _ => (padded - extent[axis]) / stride[axis] + 1,
        });
    }

    let mut y_shape = vec![n_batch, n_out_channels];
    y_shape.extend_from_slice(&out_spatial);
    // An empty result is returned before anything is sized by the (possibly huge) dims of empty
    // operands.
    let n_elements = checked_len(op, &y_shape)?;
    if n_elements == 0 {
        return Ok(Tensor::zeros(x.dtype(), y_shape));
    }
    let x_strides = strides(x_shape);
    let w_strides = strides(w_shape);
    // Kernel offsets are enumerated once: each entry is the kernel multi-index and its flat offset in a
    // `[kernel..]` block of w. Without input channels no tap is read (and w is empty).
    let mut kernel_taps: Vec<(Vec<usize>, usize)> = Vec::new();
    if in_per_group > 0 {
        for_each_index(kernel, |k| {
            let offset = k.iter().zip(&w_strides[2..]).map(|(i, s)| i * s).sum();
            kernel_taps.push((k.to_vec(), offset));
        });
    }

    let mut y = Vec::with_capacity(n_elements);
    let mut in_pos = vec![0usize; n_spatial];
    for n_idx in 0..n_batch {
        for oc_idx in 0..n_out_channels {
            let group_idx = oc_idx / out_per_group;
            let oc_bias = bias.as_ref().map_or(0.0, |b| b[oc_idx]);
            for_each_index(&out_spatial, |o| {
                let mut acc = oc_bias;
                for ic_in_group in 0..in_per_group {
                    let ic_idx = group_idx * in_per_group + ic_in_group;
                    let x_base = n_idx * x_strides[0] + ic_idx * x_strides[1];
                    let w_base = oc_idx * w_strides[0] + ic_in_group * w_strides[1];
                    'taps: for (k, w_offset) in &kernel_taps {
                        for axis in 0..n_spatial {
                            let pos = (o[axis] * stride[axis] + k[axis] * dilation[axis]) as isize
                                - pad_begin[axis] as isize;
                            if pos < 0 || pos as usize >= in_spatial[axis] {
                                continue 'taps;
                            }
                            in_pos[axis] = pos as usize;
                        }
                        let x_offset: usize =
                            in_pos.iter().zip(&x_strides[2..]).map(|(i, s)| i * s).sum();
                        acc += x_values[x_base + x_offset] * w_values[w_base + w_offset];
                    }
                }
                y.push(acc);
            });
        }
    }
    tensor_from_f64s(x.dtype(), y_shape, y)
}

fn conv_transpose(
    op: &Op,
    inputs: &[Option<&Tensor>],
    attrs: &ConvAttrs,
    output_padding: &[i64],
    output_shape: &[i64],
) -> Result<Tensor, OpError> {
    let x = required_input(op, inputs, 0)?;
    let w = required_input(op, inputs, 1)?;
    let (x_values, w_values, group) = check_operands(op, x, w, attrs.group)?;
    let x_shape = x.shape();
    let w_shape = w.shape();
    let n_spatial = x.rank() - 2;
    let (n_batch, n_in_channels) = (x_shape[0], x_shape[1]);
    if w_shape[0] != n_in_channels {
        return op_err(format!(
            "`conv_transpose` needs w of shape [C, M / group, ..] with C = {n_in_channels} input channels, \
             got w {w_shape:?} for x {x_shape:?}"
        ));
    }
    let in_per_group = n_in_channels / group;
    let out_per_group = w_shape[1];
    let Some(n_out_channels) = out_per_group.checked_mul(group) else {
        return op_err(format!(
            "`conv_transpose` output channel count {out_per_group} * group {group} overflows"
        ));
    };
    let bias = bias_values(op, optional_input(inputs, 2), x, n_out_channels)?;

    let kernel = &w_shape[2..];
    let in_spatial = &x_shape[2..];
    let stride = per_axis_or_ones(op, "strides", attrs.strides, n_spatial)?;
    let dilation = per_axis_or_ones(op, "dilations", attrs.dilations, n_spatial)?;
    check_pads_without_auto_pad(op, attrs.pads, attrs.auto_pad)?;
    check_attr_sizes(op, "output_padding", output_padding)?;
    check_attr_sizes(op, "output_shape", output_shape)?;
    let extra = if output_padding.is_empty() {
        vec![0; n_spatial]
    } else if output_padding.len() == n_spatial && output_padding.iter().all(|&p| p >= 0) {
        output_padding.iter().map(|&p| p as usize).collect()
    } else {
        return op_err(format!(
            "`conv_transpose` attribute `output_padding` needs {n_spatial} non-negative entries, got {output_padding:?}"
        ));
    };
    // The size of the full (unpadded) transposed convolution along each axis.
    // Geometry is computed in i128: an empty `x` may have a huge spatial dim, and attributes are at
    // most MAX_ATTR_SIZE, so nothing here overflows.
    let full: Vec<i128> = (0..n_spatial)
        .map(|a| {
            stride[a] as i128 * (in_spatial[a] as i128 - 1).max(0)
                + extra[a] as i128
                + dilated_extent(kernel[a], dilation[a]) as i128
        })
        .collect();

    // Per axis: the begin pad, the total pad (both may be negative with same_*) and the output size.
    let geometry: Vec<(i128, i128, i128)> = if !output_shape.is_empty()
        || matches!(attrs.auto_pad, AutoPad::SameUpper | AutoPad::SameLower)
    {
        let target: Vec<i128> = if output_shape.is_empty() {
            (0..n_spatial)
                .map(|a| in_spatial[a] as i128 * stride[a] as i128)
                .collect()
        } else if output_shape.len() == n_spatial && output_shape.iter().all(|&d| d >= 1) {
            output_shape.iter().map(|&d| i128::from(d)).collect()
        } else {
            return op_err(format!(
                "`conv_transpose` attribute `output_shape` needs {n_spatial} positive spatial sizes, got {output_shape:?}"
            ));
        };
        (0..n_spatial)
            .map(|a| {
                // Negative when the target is larger than the full output.
                let total = full[a] - target[a];
                match attrs.auto_pad {
                    AutoPad::SameUpper => (total.div_euclid(2), total, target[a]),
                    AutoPad::SameLower => (total - total.div_euclid(2), total, target[a]),
                    // With explicit output_shape, extra outputs go at the end.
                    _ => ((total - total / 2).max(0), total.max(0), target[a]),
                }
            })
            .collect()
    } else {
        let (begins, ends) = match attrs.auto_pad {
            AutoPad::Valid => (vec![0; n_spatial], vec![0; n_spatial]),
            _ => explicit_pads(op, attrs.pads, n_spatial)?,
        };
        let mut geometry = Vec::with_capacity(n_spatial);
        for axis in 0..n_spatial {
            let removed = begins[axis] as i128 + ends[axis] as i128;
            if full[axis] <= removed {
                return op_err(format!(
                    "`conv_transpose` spatial axis {axis}: pads {removed} leave no output of the full size {}",
                    full[axis]
                ));
            }
            geometry.push((begins[axis] as i128, removed, full[axis] - removed));
        }
        geometry
    };
    // The forward convolution of the output must give back the input size; otherwise output_padding or
    // output_shape asks for outputs that no input position reaches (both onnxruntime and the reference
    // reject this).
    for (axis, &(_, total, out)) in geometry.iter().enumerate() {
        let extent = dilated_extent(kernel[axis], dilation[axis]) as i128;
        let covered = (out + total - extent).div_euclid(stride[axis] as i128) + 1;
        if covered != in_spatial[axis] as i128 {
            return op_err(format!(
                "`conv_transpose` spatial axis {axis}: an output of {out} corresponds to an input of {covered}, not {} \
                 (output_padding must be smaller than the stride, output_shape at most stride - 1 beyond the full size)",
                in_spatial[axis]
            ));
        }
    }
    let mut out_spatial = Vec::with_capacity(n_spatial);
    for (axis, &(_, _, out)) in geometry.iter().enumerate() {
        match usize::try_from(out) {
            Ok(out) if out <= MAX_ELEMENTS => out_spatial.push(out),
            _ => {
                return op_err(format!(
                    "`conv_transpose` spatial axis {axis}: the output size {out} is too large"
                ))
            }
        }
    }
    let pad_begin: Vec<i128> = geometry.iter().map(|g| g.0).collect();

    let mut y_shape = vec![n_batch, n_out_channels];
    y_shape.extend_from_slice(&out_spatial);
    // An empty result is returned before anything is sized by the (possibly huge) dims of empty
    // operands.
    let n_elements = checked_len(op, &y_shape)?;
    if n_elements == 0 {
        return Ok(Tensor::zeros(x.dtype(), y_shape));
    }
    let x_strides = strides(x_shape);
    let w_strides = strides(w_shape);
    let y_strides = strides(&y_shape);
    let mut y = vec![0.0; n_elements];
    if let Some(bias) = &bias {
        for (flat_idx, value) in y.iter_mut().enumerate() {
            *value = bias[(flat_idx / y_strides[1]) % n_out_channels];
        }
    }
    let mut kernel_taps: Vec<(Vec<usize>, usize)> = Vec::new();
    for_each_index(kernel, |k| {
        let offset = k.iter().zip(&w_strides[2..]).map(|(i, s)| i * s).sum();
        kernel_taps.push((k.to_vec(), offset));
    });
    let mut out_pos = vec![0usize; n_spatial];
    // Every input element scatters `x * w` to the outputs its kernel window covers.
    for n_idx in 0..n_batch {
        for ic_idx in 0..n_in_channels {
            let group_idx = ic_idx / in_per_group;
            for_each_index(in_spatial, |i| {
                let x_offset: usize = n_idx * x_strides[0]
                    + ic_idx * x_strides[1]
                    + i.iter()
                        .zip(&x_strides[2..])
                        .map(|(p, s)| p * s)
                        .sum::<usize>();
                let x_value = x_values[x_offset];
                'taps: for (k, w_offset) in &kernel_taps {
                    for axis in 0..n_spatial {
                        let pos = i[axis] as i128 * stride[axis] as i128
                            + k[axis] as i128 * dilation[axis] as i128
                            - pad_begin[axis];
                        if pos < 0 || pos >= out_spatial[axis] as i128 {
                            continue 'taps;
                        }
                        out_pos[axis] = pos as usize;
                    }
                    let y_spatial: usize = out_pos
                        .iter()
                        .zip(&y_strides[2..])
                        .map(|(p, s)| p * s)
                        .sum();
                    for oc_in_group in 0..out_per_group {
                        let oc_idx = group_idx * out_per_group + oc_in_group;
                        let w_value =
                            w_values[ic_idx * w_strides[0] + oc_in_group * w_strides[1] + w_offset];
                        y[n_idx * y_strides[0] + oc_idx * y_strides[1] + y_spatial] +=
                            x_value * w_value;
                    }
                }
            });
        }
    }
    tensor_from_f64s(x.dtype(), y_shape, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::t32;

    fn conv_op(
        strides: &[i64],
        pads: &[i64],
        dilations: &[i64],
        group: i64,
        auto_pad: AutoPad,
    ) -> Op {
        Op::Conv {
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            dilations: dilations.to_vec(),
            group,
            auto_pad,
        }
    }

    fn run(op: &Op, inputs: &[Option<&Tensor>]) -> Tensor {
        eval(op, inputs).unwrap().remove(0)
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.as_slice::<f32>().unwrap().to_vec()
    }

    fn ct_op(
        strides: &[i64],
        pads: &[i64],
        auto_pad: AutoPad,
        output_padding: &[i64],
        output_shape: &[i64],
    ) -> Op {
        Op::ConvTranspose {
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            dilations: vec![],
            group: 1,
            auto_pad,
            output_padding: output_padding.to_vec(),
            output_shape: output_shape.to_vec(),
        }
    }

    /// The ONNX `conv` node test: a 5x5 ramp convolved with a 3x3 box of ones.
    #[test]
    fn conv2d_box_filter_with_and_without_padding() {
        let x = t32(
            &[1, 1, 5, 5],
            &(0..25).map(|v| v as f32).collect::<Vec<_>>(),
        );
        let w = t32(&[1, 1, 3, 3], &[1.0; 9]);
        let padded = run(
            &conv_op(&[], &[1, 1, 1, 1], &[], 1, AutoPad::NotSet),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(padded.shape(), &[1, 1, 5, 5]);
        #[rustfmt::skip]
        let expected = [
            12.0, 21.0, 27.0, 33.0, 24.0,
            33.0, 54.0, 63.0, 72.0, 51.0,
            63.0, 99.0, 108.0, 117.0, 81.0,
            93.0, 144.0, 153.0, 162.0, 111.0,
            72.0, 111.0, 117.0, 123.0, 84.0,
        ];
        assert_eq!(values(&padded), expected);
        let valid = run(
            &conv_op(&[], &[], &[], 1, AutoPad::NotSet),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(valid.shape(), &[1, 1, 3, 3]);
        assert_eq!(
            values(&valid),
            [54.0, 63.0, 72.0, 99.0, 108.0, 117.0, 144.0, 153.0, 162.0]
        );
    }

    /// The ONNX `conv_with_strides_*` node tests on a 7x5 ramp.
    #[test]
    fn conv2d_strides_and_asymmetric_pads() {
        let x = t32(
            &[1, 1, 7, 5],
            &(0..35).map(|v| v as f32).collect::<Vec<_>>(),
        );
        let w = t32(&[1, 1, 3, 3], &[1.0; 9]);
        let y = run(
            &conv_op(&[2, 2], &[1, 1, 1, 1], &[], 1, AutoPad::NotSet),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(y.shape(), &[1, 1, 4, 3]);
        assert_eq!(
            values(&y),
            [12.0, 27.0, 24.0, 63.0, 108.0, 81.0, 123.0, 198.0, 141.0, 112.0, 177.0, 124.0]
        );
        let y = run(
            &conv_op(&[2, 2], &[1, 0, 1, 0], &[], 1, AutoPad::NotSet),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(y.shape(), &[1, 1, 4, 2]);
        assert_eq!(
            values(&y),
            [21.0, 33.0, 99.0, 117.0, 189.0, 207.0, 171.0, 183.0]
        );
    }

    #[test]
    fn conv_auto_pad_same_puts_the_odd_pad_at_the_end_or_start() {
        // 1-d, input [1, 2, 3, 4], kernel [1, 10]: out = 4, total pad 1.
        let x = t32(&[1, 1, 4], &[1.0, 2.0, 3.0, 4.0]);
        let w = t32(&[1, 1, 2], &[1.0, 10.0]);
        let upper = run(
            &conv_op(&[], &[], &[], 1, AutoPad::SameUpper),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(values(&upper), [21.0, 32.0, 43.0, 4.0]);
        let lower = run(
            &conv_op(&[], &[], &[], 1, AutoPad::SameLower),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(values(&lower), [10.0, 21.0, 32.0, 43.0]);
        let valid = run(
            &conv_op(&[], &[], &[], 1, AutoPad::Valid),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(values(&valid), [21.0, 32.0, 43.0]);
        // ONNX forbids explicit pads together with auto_pad.
        let message = eval(
            &conv_op(&[], &[7, 7], &[], 1, AutoPad::Valid),
            &[Some(&x), Some(&w)],
        )
        .unwrap_err()
        .0;
        assert!(message.contains("cannot be given together"), "{message}");
        // same_* keeps an empty axis empty: ceil(0 / stride) outputs.
        let empty = t32(&[1, 1, 0], &[]);
        let y = run(
            &conv_op(&[], &[], &[], 1, AutoPad::SameUpper),
            &[Some(&empty), Some(&w)],
        );
        assert_eq!(y.shape(), &[1, 1, 0]);
        // Stride 2 over 5 elements: ceil(5 / 2) = 3 outputs, total pad (3-1)*2 + 2 - 5 = 1.
        let x5 = t32(&[1, 1, 5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        let y = run(
            &conv_op(&[2], &[], &[], 1, AutoPad::SameUpper),
            &[Some(&x5), Some(&w)],
        );
        assert_eq!(values(&y), [21.0, 43.0, 5.0]);
    }

    #[test]
    fn conv_dilation_and_bias() {
        let x = t32(&[1, 1, 5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        let w = t32(&[1, 1, 2], &[1.0, 10.0]);
        let b = t32(&[1], &[0.5]);
        let y = run(
            &conv_op(&[], &[], &[3], 1, AutoPad::NotSet),
            &[Some(&x), Some(&w), Some(&b)],
        );
        // Taps at i and i + 3.
        assert_eq!(values(&y), [41.5, 52.5]);
    }

    #[test]
    fn grouped_and_depthwise_conv_keep_channels_apart() {
        // Two channels, depthwise: channel 0 scaled by 2, channel 1 by -1.
        let x = t32(&[1, 2, 3], &[1.0, 2.0, 3.0, 10.0, 20.0, 30.0]);
        let w = t32(&[2, 1, 1], &[2.0, -1.0]);
        let y = run(
            &conv_op(&[], &[], &[], 2, AutoPad::NotSet),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(values(&y), [2.0, 4.0, 6.0, -10.0, -20.0, -30.0]);
        // Channel multiplier 2 with group 2: out channels 0,1 read input channel 0, 2,3 read channel 1.
        let w = t32(&[4, 1, 1], &[1.0, 2.0, 3.0, 4.0]);
        let y = run(
            &conv_op(&[], &[], &[], 2, AutoPad::NotSet),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(y.shape(), &[1, 4, 3]);
        assert_eq!(
            values(&y),
            [1.0, 2.0, 3.0, 2.0, 4.0, 6.0, 30.0, 60.0, 90.0, 40.0, 80.0, 120.0]
        );
        // A full (group 1) 1x1 conv sums both channels.
        let w = t32(&[1, 2, 1], &[1.0, 1.0]);
        let y = run(
            &conv_op(&[], &[], &[], 1, AutoPad::NotSet),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(values(&y), [11.0, 22.0, 33.0]);
    }

    #[test]
    fn conv3d_of_ones_counts_the_window() {
        let x = Tensor::from_vec(vec![1, 1, 3, 3, 3], vec![1.0f64; 27]).unwrap();
        let w = Tensor::from_vec(vec![1, 1, 2, 2, 2], vec![1.0f64; 8]).unwrap();
        let y = run(
            &conv_op(&[], &[1, 1, 1, 0, 0, 0], &[], 1, AutoPad::NotSet),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(y.shape(), &[1, 1, 3, 3, 3]);
        let y = y.as_slice::<f64>().unwrap();
        // The corner window overlaps one input element; an interior one overlaps eight.
        assert_eq!(y[0], 1.0);
        assert_eq!(y[13], 8.0);
        assert_eq!(y[26], 8.0);
    }

    #[test]
    fn conv_rejects_inconsistent_operands() {
        let x = t32(&[1, 2, 4], &[0.0; 8]);
        let w_bad = t32(&[1, 3, 2], &[0.0; 6]);
        assert!(eval(
            &conv_op(&[], &[], &[], 1, AutoPad::NotSet),
            &[Some(&x), Some(&w_bad)]
        )
        .is_err());
        let w = t32(&[3, 1, 2], &[0.0; 6]);
        assert!(
            eval(
                &conv_op(&[], &[], &[], 2, AutoPad::NotSet),
                &[Some(&x), Some(&w)]
            )
            .is_err(),
            "3 output channels do not split into 2 groups"
        );
        let w = t32(&[2, 1, 2], &[0.0; 4]);
        assert!(eval(
            &conv_op(&[], &[], &[], 3, AutoPad::NotSet),
            &[Some(&x), Some(&w)]
        )
        .is_err());
        assert!(eval(
            &conv_op(&[0], &[], &[], 2, AutoPad::NotSet),
            &[Some(&x), Some(&w)]
        )
        .is_err());
        assert!(eval(
            &conv_op(&[], &[1], &[], 2, AutoPad::NotSet),
            &[Some(&x), Some(&w)]
        )
        .is_err());
        let w_big = t32(&[2, 1, 9], &[0.0; 18]);
        assert!(eval(
            &conv_op(&[], &[], &[], 2, AutoPad::NotSet),
            &[Some(&x), Some(&w_big)]
        )
        .is_err());
        let b = t32(&[3], &[0.0; 3]);
        assert!(eval(
            &conv_op(&[], &[], &[], 2, AutoPad::NotSet),
            &[Some(&x), Some(&w), Some(&b)]
        )
        .is_err());
        let xi = Tensor::from_vec(vec![1, 2, 4], vec![0i64; 8]).unwrap();
        assert!(eval(
            &conv_op(&[], &[], &[], 2, AutoPad::NotSet),
            &[Some(&xi), Some(&w)]
        )
        .is_err());
        let w64 = Tensor::from_vec(vec![2, 1, 2], vec![0.0f64; 4]).unwrap();
        assert!(eval(
            &conv_op(&[], &[], &[], 2, AutoPad::NotSet),
            &[Some(&x), Some(&w64)]
        )
        .is_err());
        assert!(eval(&conv_op(&[], &[], &[], 1, AutoPad::NotSet), &[Some(&x)]).is_err());
    }

    #[test]
    fn conv_transpose_scatters_each_input_through_the_kernel() {
        let x = t32(&[1, 1, 3], &[1.0, 2.0, 3.0]);
        let w = t32(&[1, 1, 3], &[1.0, 10.0, 100.0]);
        let y = run(
            &ct_op(&[2], &[], AutoPad::NotSet, &[], &[]),
            &[Some(&x), Some(&w)],
        );
        // Full size 2 * 2 + 3 = 7; input i lands at 2i .. 2i + 2.
        assert_eq!(values(&y), [1.0, 10.0, 102.0, 20.0, 203.0, 30.0, 300.0]);
        let y = run(
            &ct_op(&[2], &[1, 0], AutoPad::NotSet, &[], &[]),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(values(&y), [10.0, 102.0, 20.0, 203.0, 30.0, 300.0]);
        let y = run(
            &ct_op(&[2], &[], AutoPad::NotSet, &[1], &[]),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(
            values(&y),
            [1.0, 10.0, 102.0, 20.0, 203.0, 30.0, 300.0, 0.0]
        );
    }

    /// Values checked against onnxruntime 1.31, which follows the spec's pad rule for `output_shape`.
    #[test]
    fn conv_transpose_output_shape_and_same_pads() {
        let x = t32(&[1, 1, 3], &[1.0, 2.0, 3.0]);
        let w = t32(&[1, 1, 3], &[1.0, 10.0, 100.0]);
        // (auto_pad, output_shape, pads, expected)
        type Case<'a> = (AutoPad, &'a [i64], &'a [i64], &'a [f32]);
        let cases: [Case; 6] = [
            (
                AutoPad::SameUpper,
                &[6],
                &[],
                &[1.0, 10.0, 102.0, 20.0, 203.0, 30.0],
            ),
            (
                AutoPad::SameLower,
                &[6],
                &[],
                &[10.0, 102.0, 20.0, 203.0, 30.0, 300.0],
            ),
            (
                AutoPad::NotSet,
                &[6],
                &[],
                &[10.0, 102.0, 20.0, 203.0, 30.0, 300.0],
            ),
            (AutoPad::NotSet, &[4], &[], &[102.0, 20.0, 203.0, 30.0]),
            (
                AutoPad::NotSet,
                &[8],
                &[1, 1],
                &[1.0, 10.0, 102.0, 20.0, 203.0, 30.0, 300.0, 0.0],
            ),
            (
                AutoPad::SameUpper,
                &[],
                &[],
                &[1.0, 10.0, 102.0, 20.0, 203.0, 30.0],
            ),
        ];
        for (auto_pad, output_shape, pads, expected) in cases {
            let op = ct_op(&[2], pads, auto_pad, &[], output_shape);
            let y = run(&op, &[Some(&x), Some(&w)]);
            assert_eq!(
                values(&y),
                expected,
                "{auto_pad:?} output_shape {output_shape:?}"
            );
        }
    }

    /// Stride 3 over a 1-wide kernel: same_upper wants 9 outputs from a full size of 7, so the
    /// negative total padding -2 extends one output on each side, as onnx.reference computes it.
    #[test]
    fn conv_transpose_same_with_stride_beyond_the_kernel_extends_both_sides() {
        let x = t32(&[1, 1, 3], &[1.0, 2.0, 3.0]);
        let w = t32(&[1, 1, 1], &[10.0]);
        let y = run(
            &ct_op(&[3], &[], AutoPad::SameUpper, &[], &[]),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(values(&y), [0.0, 10.0, 0.0, 0.0, 20.0, 0.0, 0.0, 30.0, 0.0]);
        let y = run(
            &ct_op(&[2], &[], AutoPad::SameLower, &[], &[]),
            &[Some(&x), Some(&w)],
        );
        // Full size 5, target 6, total -1: same_lower puts the extra output at the end.
        assert_eq!(values(&y), [10.0, 0.0, 20.0, 0.0, 30.0, 0.0]);
    }

    #[test]
    fn conv_transpose_rejects_outputs_no_input_reaches() {
        let x = t32(&[1, 1, 3], &[1.0, 2.0, 3.0]);
        let w = t32(&[1, 1, 3], &[1.0, 10.0, 100.0]);
        assert!(eval(
            &ct_op(&[1], &[], AutoPad::NotSet, &[1], &[]),
            &[Some(&x), Some(&w)]
        )
        .is_err());
        // Full size 7 with stride 2: output_shape may reach 8 but not 9.
        assert!(eval(
            &ct_op(&[2], &[], AutoPad::NotSet, &[], &[8]),
            &[Some(&x), Some(&w)]
        )
        .is_ok());
        assert!(eval(
            &ct_op(&[2], &[], AutoPad::NotSet, &[], &[9]),
            &[Some(&x), Some(&w)]
        )
        .is_err());
    }

    #[test]
    fn grouped_conv_transpose_uses_each_groups_weights() {
        // Two groups of one input channel, each producing two output channels.
        let x = t32(&[1, 2, 2], &[1.0, 2.0, 10.0, 20.0]);
        let w = t32(&[2, 2, 1], &[1.0, 2.0, 3.0, 4.0]);
        let b = t32(&[4], &[0.0, 0.0, 0.0, 0.5]);
        let op = Op::ConvTranspose {
            strides: vec![],
            pads: vec![],
            dilations: vec![],
            group: 2,
            auto_pad: AutoPad::NotSet,
            output_padding: vec![],
            output_shape: vec![],
        };
        let y = run(&op, &[Some(&x), Some(&w), Some(&b)]);
        assert_eq!(y.shape(), &[1, 4, 2]);
        assert_eq!(values(&y), [1.0, 2.0, 2.0, 4.0, 30.0, 60.0, 40.5, 80.5]);
    }

    #[test]
    fn conv_transpose_2d_of_ones_overlaps_in_the_middle() {
        let x = t32(&[1, 1, 2, 2], &[1.0; 4]);
        let w = t32(&[1, 1, 2, 2], &[1.0; 4]);
        let y = run(
            &ct_op(&[], &[], AutoPad::NotSet, &[], &[]),
            &[Some(&x), Some(&w)],
        );
        assert_eq!(values(&y), [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
    }

    #[test]
    fn conv_transpose_rejects_inconsistent_operands() {
        let x = t32(&[1, 2, 3], &[0.0; 6]);
        let w = t32(&[3, 1, 2], &[0.0; 6]);
        assert!(eval(
            &ct_op(&[], &[], AutoPad::NotSet, &[], &[]),
            &[Some(&x), Some(&w)]
        )
        .is_err());
        let w = t32(&[2, 1, 2], &[0.0; 4]);
        assert!(eval(
            &ct_op(&[], &[], AutoPad::NotSet, &[], &[0]),
            &[Some(&x), Some(&w)]
        )
        .is_err());
        assert!(eval(
            &ct_op(&[], &[], AutoPad::NotSet, &[-1], &[]),
            &[Some(&x), Some(&w)]
        )
        .is_err());
        assert!(eval(
            &ct_op(&[], &[2, 2], AutoPad::NotSet, &[], &[]),
            &[Some(&x), Some(&w)]
        )
        .is_err());
        let b = t32(&[2], &[0.0; 2]);
        assert!(eval(
            &ct_op(&[], &[], AutoPad::NotSet, &[], &[]),
            &[Some(&x), Some(&w), Some(&b)]
        )
        .is_err());
    }

    #[test]
    fn absurd_attributes_and_empty_kernels_are_errors_not_panics() {
        let x = t32(&[1, 1, 4], &[0.0; 4]);
        let w = t32(&[1, 1, 2], &[0.0; 2]);
        let huge = 1i64 << 40;
        for op in [
            conv_op(&[huge], &[], &[], 1, AutoPad::NotSet),
            conv_op(&[], &[], &[huge], 1, AutoPad::NotSet),
            conv_op(&[], &[huge, 0], &[], 1, AutoPad::NotSet),
            ct_op(&[huge], &[], AutoPad::NotSet, &[], &[]),
            ct_op(&[], &[], AutoPad::NotSet, &[], &[huge]),
            ct_op(&[], &[], AutoPad::NotSet, &[i64::MIN], &[]),
        ] {
            assert!(eval(&op, &[Some(&x), Some(&w)]).is_err(), "{op:?}");
        }
        let empty_kernel = Tensor::from_vec(vec![1, 1, 0], Vec::<f32>::new()).unwrap();
        let op = conv_op(&[], &[], &[], 1, AutoPad::NotSet);
        assert!(eval(&op, &[Some(&x), Some(&empty_kernel)]).is_err());
        // A huge group over zero channels: the output channel count is checked against the output
        // size limit, and nothing is allocated for it up front.
        let no_channels = Tensor::from_vec(vec![1, 0, 4], Vec::<f32>::new()).unwrap();
        let w_none = Tensor::from_vec(vec![0, 2, 3], Vec::<f32>::new()).unwrap();
        let grouped = |group| Op::ConvTranspose {
            strides: vec![],
            pads: vec![],
            dilations: vec![],
            group,
            auto_pad: AutoPad::NotSet,
            output_padding: vec![],
            output_shape: vec![],
        };
        assert!(eval(&grouped(i64::MAX), &[Some(&no_channels), Some(&w_none)]).is_err());
        let no_batch = Tensor::from_vec(vec![0, 0, 4], Vec::<f32>::new()).unwrap();
        let y = eval(&grouped(1 << 40), &[Some(&no_batch), Some(&w_none)]).unwrap();
        assert_eq!(y[0].shape(), &[0, 2 << 40, 6]);
    }

    #[test]
    fn rules_shared_with_inference() {
        let x = t32(&[1, 1, 3], &[1.0, 2.0, 3.0]);
        let w = t32(&[1, 1, 3], &[1.0, 10.0, 100.0]);
        // output_padding must be smaller than the stride even when the dilation is larger.
        let dilated = Op::ConvTranspose {
            strides: vec![],
            pads: vec![],
            dilations: vec![3],
            group: 1,
            auto_pad: AutoPad::NotSet,
            output_padding: vec![1],
            output_shape: vec![],
        };
        assert!(eval(&dilated, &[Some(&x), Some(&w)]).is_err());
        // With output_shape the pads are ignored, as ONNX says.
        let shaped = ct_op(&[], &[-3, 9], AutoPad::NotSet, &[], &[5]);
        assert_eq!(
            eval(&shaped, &[Some(&x), Some(&w)]).unwrap()[0].shape(),
            &[1, 1, 5]
        );
        // An empty spatial input has no output size that maps back to it.
        let empty = Tensor::from_vec(vec![1, 1, 0], Vec::<f32>::new()).unwrap();
        assert!(eval(
            &ct_op(&[], &[], AutoPad::NotSet, &[], &[]),
            &[Some(&empty), Some(&w)]
        )
        .is_err());
    }
}
