//! Reference normalizations: batch_norm (inference), instance_norm, lrn, softmax, log_softmax,
//! layer_norm, rms_norm and group_norm.
//!
//! Every statistic (mean, biased variance, mean square, exponential sum) is computed in f64 from the
//! input widened to f64, and each result is rounded once to the input dtype. softmax and log_softmax
//! subtract the maximum along the axis first, so large inputs do not overflow; log_softmax is computed
//! as `x - max - ln(sum(exp(x - max)))` rather than as the log of a rounded softmax. A slice whose
//! maximum is infinite gives NaN, as numpy's reference does.
//!
//! Epsilons and the lrn constants are f32 attributes; they are widened exactly to f64.
//!
//! Shapes: batch_norm, instance_norm and group_norm take per-channel parameters of shape `[C]` (group_norm
//! as in opset 21); layer_norm and rms_norm take `scale`/`bias` that broadcast to the normalized dims
//! `x.shape[axis..]` (not to the leading dims). lrn sums squares over channels `c - floor((size-1)/2) ..=
//! c + ceil((size-1)/2)` for inputs of rank >= 2; `onnx.reference`'s lrn loops over the batch dim
//! instead of the channels and is only right when `N >= C`.

use crate::index::{
    broadcast_indices, broadcast_shapes, expect_dtype, float_values, normalize_axis,
    required_input, tensor_from_f64s,
};
use crate::{op_err, OpError};
use sinter_ir::{Op, Tensor};

pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let x = required_input(op, inputs, 0)?;
    let values = float_values(op, "x", x)?;
    let y = match op {
        Op::BatchNorm { epsilon } => batch_norm(op, inputs, x, &values, f64::from(*epsilon))?,
        Op::InstanceNorm { epsilon } => instance_norm(op, inputs, x, &values, f64::from(*epsilon))?,
        Op::Lrn {
            size,
            alpha,
            beta,
            bias,
        } => {
            let params = LrnParams {
                size: *size,
                alpha: f64::from(*alpha),
                beta: f64::from(*beta),
                bias: f64::from(*bias),
            };
            lrn(op, x, &values, &params)?
        }
        Op::Softmax { axis } => softmax(op, x, &values, *axis, SoftmaxKind::Softmax)?,
        Op::LogSoftmax { axis } => softmax(op, x, &values, *axis, SoftmaxKind::LogSoftmax)?,
        Op::LayerNorm { axis, epsilon } => {
            let center = Centering::SubtractMean;
            trailing_norm(op, inputs, x, &values, *axis, f64::from(*epsilon), center)?
        }
        Op::RmsNorm { axis, epsilon } => {
            let center = Centering::RootMeanSquare;
            trailing_norm(op, inputs, x, &values, *axis, f64::from(*epsilon), center)?
        }
        Op::GroupNorm {
            num_groups,
            epsilon,
        } => group_norm(op, inputs, x, &values, *num_groups, f64::from(*epsilon))?,
        _ => return op_err(format!("`{}` is not a normalization op", op.name())),
    };
    tensor_from_f64s(x.dtype(), x.shape().to_vec(), y).map(|t| vec![t])
}

/// A per-channel parameter (`scale`, `bias`, `mean`, `var`): rank 1 with `n_channels` entries and the
/// dtype of `x`.
fn channel_param(
    op: &Op,
    inputs: &[Option<&Tensor>],
    slot_idx: usize,
    x: &Tensor,
    n_channels: usize,
) -> Result<Vec<f64>, OpError> {
    let param = required_input(op, inputs, slot_idx)?;
    let name = op.input_name(slot_idx);
    expect_dtype(op, name, param, x.dtype())?;
    if param.shape() != [n_channels] {
        return op_err(format!(
            "`{}` input `{name}` must have shape [{n_channels}] (one per channel of x {:?}), got {:?}",
            op.name(),
            x.shape(),
            param.shape()
        ));
    }
    float_values(op, name, param)
}

/// Checks `x` has at least `min_rank` dims and returns `(n_batch, n_channels, elements per channel)`.
fn channel_layout(op: &Op, x: &Tensor, min_rank: usize) -> Result<(usize, usize, usize), OpError> {
    if x.rank() < min_rank {
        return op_err(format!(
            "`{}` needs x of rank >= {min_rank} ([N, C, ..]), got shape {:?}",
            op.name(),
            x.shape()
        ));
    }
    let spatial = x.shape()[2..].iter().product();
    Ok((x.shape()[0], x.shape()[1], spatial))
}

fn batch_norm(
    op: &Op,
    inputs: &[Option<&Tensor>],
    x: &Tensor,
    values: &[f64],
    epsilon: f64,
) -> Result<Vec<f64>, OpError> {
    let (_, n_channels, spatial) = channel_layout(op, x, 2)?;
    let scale = channel_param(op, inputs, 1, x, n_channels)?;
    let bias = channel_param(op, inputs, 2, x, n_channels)?;
    let mean = channel_param(op, inputs, 3, x, n_channels)?;
    let var = channel_param(op, inputs, 4, x, n_channels)?;
    Ok(values
        .iter()
        .enumerate()
        .map(|(flat_idx, &v)| {
            let c = (flat_idx / spatial) % n_channels;
            (v - mean[c]) / (var[c] + epsilon).sqrt() * scale[c] + bias[c]
        })
        .collect())
}

/// Mean and biased variance of a slice.
fn mean_and_variance(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count() as f64;
    let mean = values.clone().sum::<f64>() / n;
    let variance = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, variance)
}

fn instance_norm(
    op: &Op,
    inputs: &[Option<&Tensor>],
    x: &Tensor,
    values: &[f64],
    epsilon: f64,
) -> Result<Vec<f64>, OpError> {
    let (_, n_channels, spatial) = channel_layout(op, x, 3)?;
    let scale = channel_param(op, inputs, 1, x, n_channels)?;
    let bias = channel_param(op, inputs, 2, x, n_channels)?;
    let mut y = Vec::with_capacity(values.len());
    if spatial == 0 {
        return Ok(y);
    }
    for (plane_idx, plane) in values.chunks(spatial).enumerate() {
        let c = plane_idx % n_channels;
        let (mean, variance) = mean_and_variance(plane.iter().copied());
        let inv_std = 1.0 / (variance + epsilon).sqrt();
        y.extend(
            plane
                .iter()
                .map(|&v| (v - mean) * inv_std * scale[c] + bias[c]),
        );
    }
    Ok(y)
}

struct LrnParams {
    size: i64,
    alpha: f64,
    beta: f64,
    bias: f64,
}

fn lrn(op: &Op, x: &Tensor, values: &[f64], params: &LrnParams) -> Result<Vec<f64>, OpError> {
    let (_, n_channels, spatial) = channel_layout(op, x, 2)?;
    if params.size < 1 {
        return op_err(format!("`lrn` size must be positive, got {}", params.size));
    }
    let size = params.size as usize;
    // The window of channel c is [c - floor((size-1)/2), c + ceil((size-1)/2)], clipped to the channels.
    let before = (size - 1) / 2;
    let after = (size - 1).div_ceil(2);
    let channel_stride = spatial;
    let batch_stride = n_channels * spatial;
    Ok(values
        .iter()
        .enumerate()
        .map(|(flat_idx, &v)| {
            let n_idx = flat_idx / batch_stride.max(1);
            let c = (flat_idx / channel_stride.max(1)) % n_channels;
            let s_idx = flat_idx % channel_stride.max(1);
            let first = c.saturating_sub(before);
            let last = (c + after).min(n_channels - 1);
            let square_sum: f64 = (first..=last)
                .map(|c2| {
                    let u = values[n_idx * batch_stride + c2 * channel_stride + s_idx];
                    u * u
                })
                .sum();
            v / (params.bias + params.alpha / size as f64 * square_sum).powf(params.beta)
        })
        .collect())
}

/// `normalize_axis` with the op named in the error.
fn op_axis(op: &Op, axis: i64, rank: usize) -> Result<usize, OpError> {
    normalize_axis(axis, rank).map_err(|e| OpError(format!("`{}`: {}", op.name(), e.0)))
}

#[derive(Clone, Copy, PartialEq)]
enum SoftmaxKind {
    Softmax,
    LogSoftmax,
}

fn softmax(
    op: &Op,
    x: &Tensor,
    values: &[f64],
    axis: i64,
    kind: SoftmaxKind,
) -> Result<Vec<f64>, OpError> {
    let axis = op_axis(op, axis, x.rank())?;
    let n_axis = x.shape()[axis];
    let inner: usize = x.shape()[axis + 1..].iter().product();
    let outer: usize = x.shape()[..axis].iter().product();
    let mut y = vec![0.0; values.len()];
    for outer_idx in 0..outer {
        for inner_idx in 0..inner {
            let at = |j: usize| outer_idx * n_axis * inner + j * inner + inner_idx;
            let max = (0..n_axis)
                .map(|j| values[at(j)])
                .fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..n_axis).map(|j| (values[at(j)] - max).exp()).sum();
            for j in 0..n_axis {
                let shifted = values[at(j)] - max;
                y[at(j)] = match kind {
                    SoftmaxKind::Softmax => shifted.exp() / sum,
                    SoftmaxKind::LogSoftmax => shifted - sum.ln(),
                };
            }
        }
    }
    Ok(y)
}

#[derive(Clone, Copy, PartialEq)]
enum Centering {
    /// layer_norm: `(x - mean) / sqrt(var + eps)`.
    SubtractMean,
    /// rms_norm: `x / sqrt(mean(x^2) + eps)`.
    RootMeanSquare,
}

/// A `scale`/`bias` of layer_norm or rms_norm, broadcast over the normalized dims. Returns, for each
/// element of one normalized block, its value.
fn block_param(
    op: &Op,
    param: &Tensor,
    x: &Tensor,
    name: &str,
    block_shape: &[usize],
) -> Result<Vec<f64>, OpError> {
    expect_dtype(op, name, param, x.dtype())?;
    let fits = param.rank() <= block_shape.len()
        && broadcast_shapes(param.shape(), block_shape).is_ok_and(|s| s == block_shape);
    if !fits {
        return op_err(format!(
            "`{}` input `{name}` of shape {:?} does not broadcast to the normalized dims {block_shape:?}",
            op.name(),
            param.shape()
        ));
    }
    let param_values = float_values(op, name, param)?;
    Ok(broadcast_indices(param.shape(), block_shape)
        .into_iter()
        .map(|idx| param_values[idx])
        .collect())
}

fn trailing_norm(
    op: &Op,
    inputs: &[Option<&Tensor>],
    x: &Tensor,
    values: &[f64],
    axis: i64,
    epsilon: f64,
    centering: Centering,
) -> Result<Vec<f64>, OpError> {
    let axis = op_axis(op, axis, x.rank())?;
    let block_shape = &x.shape()[axis..];
    let block: usize = block_shape.iter().product();
    let scale = block_param(op, required_input(op, inputs, 1)?, x, "scale", block_shape)?;
    let bias = match (centering, inputs.get(2).copied().flatten()) {
        (Centering::SubtractMean, Some(b)) => Some(block_param(op, b, x, "bias", block_shape)?),
        _ => None,
    };
    let mut y = Vec::with_capacity(values.len());
    if block == 0 {
        return Ok(y);
    }
    for row in values.chunks(block) {
        let (center, variance) = match centering {
            Centering::SubtractMean => mean_and_variance(row.iter().copied()),
            Centering::RootMeanSquare => {
                (0.0, row.iter().map(|v| v * v).sum::<f64>() / block as f64)
            }
        };
        let inv_std = 1.0 / (variance + epsilon).sqrt();
        for (idx, &v) in row.iter().enumerate() {
            let shift = bias.as_ref().map_or(0.0, |b| b[idx]);
            y.push((v - center) * inv_std * scale[idx] + shift);
        }
    }
    Ok(y)
}

fn group_norm(
    op: &Op,
    inputs: &[Option<&Tensor>],
    x: &Tensor,
    values: &[f64],
    num_groups: i64,
    epsilon: f64,
) -> Result<Vec<f64>, OpError> {
    let (_, n_channels, spatial) = channel_layout(op, x, 2)?;
    if num_groups < 1 || !n_channels.is_multiple_of(num_groups as usize) {
        return op_err(format!(
            "`group_norm` num_groups {num_groups} must be positive and divide the {n_channels} channels"
        ));
    }
    let scale = channel_param(op, inputs, 1, x, n_channels)?;
    let bias = channel_param(op, inputs, 2, x, n_channels)?;
    let group_len = n_channels / num_groups as usize * spatial;
    let mut y = Vec::with_capacity(values.len());
    if group_len == 0 {
        return Ok(y);
    }
    for (group_idx, group) in values.chunks(group_len).enumerate() {
        let (mean, variance) = mean_and_variance(group.iter().copied());
        let inv_std = 1.0 / (variance + epsilon).sqrt();
        let first_channel = (group_idx % num_groups as usize) * (n_channels / num_groups as usize);
        for (idx, &v) in group.iter().enumerate() {
            let c = first_channel + idx / spatial;
            y.push((v - mean) * inv_std * scale[c] + bias[c]);
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, t32};

    fn run(op: &Op, inputs: &[Option<&Tensor>]) -> Vec<f32> {
        eval(op, inputs)
            .unwrap()
            .remove(0)
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn batch_norm_uses_running_statistics_per_channel() {
        let x = t32(&[1, 2, 2], &[1.0, 3.0, 10.0, 20.0]);
        let scale = t32(&[2], &[2.0, 1.0]);
        let bias = t32(&[2], &[0.5, -1.0]);
        let mean = t32(&[2], &[1.0, 10.0]);
        let var = t32(&[2], &[4.0, 25.0]);
        let op = Op::BatchNorm { epsilon: 0.0 };
        let y = run(
            &op,
            &[Some(&x), Some(&scale), Some(&bias), Some(&mean), Some(&var)],
        );
        // (1-1)/2*2+0.5, (3-1)/2*2+0.5, (10-10)/5-1, (20-10)/5-1
        assert_eq!(y, [0.5, 2.5, -1.0, 1.0]);
        let short = t32(&[1], &[1.0]);
        assert!(eval(
            &op,
            &[Some(&x), Some(&short), Some(&bias), Some(&mean), Some(&var)]
        )
        .is_err());
        assert!(eval(&op, &[Some(&x), Some(&scale), Some(&bias), Some(&mean)]).is_err());
        // Every parameter has x's dtype (ONNX 15 allows others; the importer casts).
        let mean_f64 = Tensor::from_vec(vec![2], vec![1.0f64, 10.0]).unwrap();
        let message = eval(
            &op,
            &[
                Some(&x),
                Some(&scale),
                Some(&bias),
                Some(&mean_f64),
                Some(&var),
            ],
        )
        .unwrap_err()
        .0;
        assert!(
            message.contains("input `mean` must have dtype f32"),
            "{message}"
        );
    }

    #[test]
    fn instance_norm_normalizes_each_plane() {
        let x = t32(&[1, 2, 2], &[1.0, 3.0, 5.0, 5.0]);
        let scale = t32(&[2], &[1.0, 3.0]);
        let bias = t32(&[2], &[0.0, 7.0]);
        let y = run(
            &Op::InstanceNorm { epsilon: 0.0 },
            &[Some(&x), Some(&scale), Some(&bias)],
        );
        assert_eq!(y[..2], [-1.0, 1.0]);
        assert!(
            y[2..].iter().all(|v| v.is_nan()),
            "0/0 for a constant plane with epsilon 0"
        );
        let y = run(
            &Op::InstanceNorm { epsilon: 1.0 },
            &[Some(&x), Some(&scale), Some(&bias)],
        );
        assert_close(&y, &[-1.0 / 2f64.sqrt(), 1.0 / 2f64.sqrt(), 7.0, 7.0]);
        let flat = t32(&[2, 2], &[0.0; 4]);
        assert!(eval(
            &Op::InstanceNorm { epsilon: 1.0 },
            &[Some(&flat), Some(&scale), Some(&bias)]
        )
        .is_err());
    }

    #[test]
    fn lrn_sums_squares_over_neighbouring_channels() {
        // Channels 1, 2, 3 with size 3: windows {0,1}, {0,1,2}, {1,2}.
        let x = t32(&[1, 3, 1, 1], &[1.0, 2.0, 3.0]);
        let op = Op::Lrn {
            size: 3,
            alpha: 3.0,
            beta: 1.0,
            bias: 1.0,
        };
        // y = x / (1 + 3/3 * sum)
        assert_close(&run(&op, &[Some(&x)]), &[1.0 / 6.0, 2.0 / 15.0, 3.0 / 14.0]);
        // Even size 2 looks one channel ahead: windows {0,1}, {1,2}, {2}.
        let op = Op::Lrn {
            size: 2,
            alpha: 2.0,
            beta: 0.5,
            bias: 0.0,
        };
        assert_close(
            &run(&op, &[Some(&x)]),
            &[1.0 / 5f64.sqrt(), 2.0 / 13f64.sqrt(), 1.0],
        );
        let bad = Op::Lrn {
            size: 0,
            alpha: 1.0,
            beta: 1.0,
            bias: 1.0,
        };
        assert!(eval(&bad, &[Some(&x)]).is_err());
    }

    #[test]
    fn softmax_and_log_softmax_along_an_axis() {
        // The second row would overflow exp() without the max subtraction.
        let x = t32(&[2, 2], &[0.0, 0.0, 1000.0, 1001.0]);
        let e = 1f64.exp();
        let y = run(&Op::Softmax { axis: -1 }, &[Some(&x)]);
        assert_close(&y, &[0.5, 0.5, 1.0 / (1.0 + e), e / (1.0 + e)]);
        let y = run(&Op::LogSoftmax { axis: 1 }, &[Some(&x)]);
        let ln_sum = (1.0 + e).ln();
        assert_close(&y, &[-(2f64.ln()), -(2f64.ln()), -ln_sum, 1.0 - ln_sum]);
        // Along axis 0 each column is its own distribution.
        let x = t32(&[2, 2], &[0.0, 5.0, 0.0, 5.0]);
        assert_close(
            &run(&Op::Softmax { axis: 0 }, &[Some(&x)]),
            &[0.5, 0.5, 0.5, 0.5],
        );
        let x = t32(&[3], &[f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY]);
        assert_eq!(run(&Op::Softmax { axis: 0 }, &[Some(&x)]), [0.0, 1.0, 0.0]);
        assert!(eval(&Op::Softmax { axis: 2 }, &[Some(&x)]).is_err());
        let xi = Tensor::from_vec(vec![2], vec![1i64, 2]).unwrap();
        assert!(eval(&Op::Softmax { axis: 0 }, &[Some(&xi)]).is_err());
    }

    #[test]
    fn layer_norm_over_trailing_dims_with_broadcast_scale() {
        let x = t32(&[2, 2], &[1.0, 3.0, -2.0, 2.0]);
        let scale = t32(&[2], &[1.0, 2.0]);
        let bias = t32(&[1], &[10.0]);
        let op = Op::LayerNorm {
            axis: -1,
            epsilon: 0.0,
        };
        assert_eq!(
            run(&op, &[Some(&x), Some(&scale), Some(&bias)]),
            [9.0, 12.0, 9.0, 12.0]
        );
        assert_eq!(run(&op, &[Some(&x), Some(&scale)]), [-1.0, 2.0, -1.0, 2.0]);
        // axis 0 normalizes all four elements together: mean 1, variance 3.5.
        let op = Op::LayerNorm {
            axis: 0,
            epsilon: 0.0,
        };
        let one = t32(&[1], &[1.0]);
        let s = 3.5f64.sqrt();
        assert_close(
            &run(&op, &[Some(&x), Some(&one)]),
            &[0.0, 2.0 / s, -3.0 / s, 1.0 / s],
        );
        let wrong = t32(&[3], &[1.0; 3]);
        assert!(eval(&op, &[Some(&x), Some(&wrong)]).is_err());
        let too_big = t32(&[1, 2, 2], &[1.0; 4]);
        let last = Op::LayerNorm {
            axis: -1,
            epsilon: 0.0,
        };
        assert!(eval(&last, &[Some(&x), Some(&too_big)]).is_err());
        // Broadcasting to the whole of x is not enough: [2, 1] broadcasts to x's [2, 2] but not to
        // the normalized dims [2] of axis -1.
        let per_row = t32(&[2, 1], &[1.0, 2.0]);
        let message = eval(&last, &[Some(&x), Some(&per_row)]).unwrap_err().0;
        assert!(message.contains("normalized dims [2]"), "{message}");
        assert!(eval(&last, &[Some(&x), Some(&scale), Some(&per_row)]).is_err());
    }

    #[test]
    fn rms_norm_divides_by_root_mean_square() {
        let x = t32(&[1, 2], &[3.0, 4.0]);
        let scale = t32(&[2], &[1.0, 2.0]);
        let op = Op::RmsNorm {
            axis: -1,
            epsilon: 0.0,
        };
        let rms = 12.5f64.sqrt();
        assert_close(
            &run(&op, &[Some(&x), Some(&scale)]),
            &[3.0 / rms, 8.0 / rms],
        );
        // The scale has x's dtype and broadcasts to the normalized dims only.
        let scale_f64 = Tensor::from_vec(vec![2], vec![1.0f64, 2.0]).unwrap();
        assert!(eval(&op, &[Some(&x), Some(&scale_f64)]).is_err());
        let leading = t32(&[1, 1, 2], &[1.0, 2.0]);
        assert!(eval(&op, &[Some(&x), Some(&leading)]).is_err());
    }

    #[test]
    fn group_norm_shares_statistics_within_a_group() {
        // Two groups of two channels, one element each.
        let x = t32(&[1, 4, 1], &[1.0, 3.0, 10.0, 10.0]);
        let scale = t32(&[4], &[1.0, 1.0, 1.0, 2.0]);
        let bias = t32(&[4], &[0.0, 0.0, 5.0, 5.0]);
        let op = Op::GroupNorm {
            num_groups: 2,
            epsilon: 0.0,
        };
        let y = run(&op, &[Some(&x), Some(&scale), Some(&bias)]);
        assert_eq!(y[..2], [-1.0, 1.0]);
        assert!(
            y[2..].iter().all(|v| v.is_nan()),
            "0/0 for a constant group with epsilon 0"
        );
        let op = Op::GroupNorm {
            num_groups: 1,
            epsilon: 0.0,
        };
        let y = run(&op, &[Some(&x), Some(&scale), Some(&bias)]);
        // Mean 6, variance (25 + 9 + 16 + 16) / 4 = 16.5.
        let s = 16.5f64.sqrt();
        assert_close(&y, &[-5.0 / s, -3.0 / s, 4.0 / s + 5.0, 8.0 / s + 5.0]);
        let bad = Op::GroupNorm {
            num_groups: 3,
            epsilon: 0.0,
        };
        assert!(eval(&bad, &[Some(&x), Some(&scale), Some(&bias)]).is_err());
    }
}
