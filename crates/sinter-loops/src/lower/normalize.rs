//! Normalizations: batch_norm (inference), the row normalizations (layer_norm, rms_norm,
//! instance_norm, group_norm: one parametrised lowering, [`RowNorm`]), softmax/log_softmax and lrn.
//!
//! A row normalization views `x` as `[outer.., block..]` with the block contiguous. Per row it makes
//! **one read pass** for the statistics, then the (vectorized) write pass
//! `((x - x0) - (mean - x0)) * inv_std * scale + bias`, the parameters indexed by strides over the
//! outer and block loop variables. The read pass accumulates, in f64, `Σ d` and `Σ d²` of the
//! *shifted* values `d = x - x0`, where `x0` is the row's first element (rms_norm: `Σ x²`, no shift);
//! then `mean - x0 = Σd / n` and `var = Σd² / n - (Σd / n)²` (clamped at 0). Shifting by a value of
//! the row avoids the cancellation of `E[x²] - E[x]²` when the mean is large against the spread,
//! and f64 sums of f32 data make `d` exact and the sums good to about `n * 2^-53`. The write pass
//! subtracts `x0` first (exact, by Sterbenz's lemma, for elements within a factor 2 of `x0`) and
//! then the small `mean - x0`, so the mean's magnitude never enters the rounding: the error
//! against sinter-ref (f64 throughout) is about `3 * 2^-24 * (|x - x0| + |mean - x0|) / std *
//! |scale|` per element, a few f32 ulps of the normalized value when `x0` lies within a few
//! standard deviations of the mean, whatever the mean is (rows of `1000 + N(0, 1)` are tested).
//!
//! softmax subtracts the row maximum first and log_softmax is `x - max - ln(Σ e^(x - max))`, as
//! sinter-ref computes them. lrn sums squares over a channel window of a zero-padded scratch copy,
//! so the window loads are affine and in bounds.

use super::conv::{pad_spatial_into_scratch, PaddedCopy};
use super::fuse::var_coords;
use super::{broadcast_strides, cst, norm_axis, Lowerer, NodeCx, Operand};
use crate::builder::row_major_strides;
use crate::ir::*;
use sinter_ir::{DType, Op};
use std::ops::{Add, Div, Mul, Sub};

pub(super) fn lower(lw: &mut Lowerer, cx: &NodeCx) -> Result<(), String> {
    let x = cx.input(0)?;
    if !x.dtype.is_float() {
        return Err(format!("normalization of {}", x.dtype));
    }
    match cx.op {
        Op::BatchNorm { epsilon } => lower_batch_norm(lw, cx, f64::from(*epsilon)),
        Op::Softmax { axis } => lower_softmax(lw, cx, *axis, false),
        Op::LogSoftmax { axis } => lower_softmax(lw, cx, *axis, true),
        Op::Lrn {
            size,
            alpha,
            beta,
            bias,
        } => lower_lrn(
            lw,
            cx,
            *size,
            f64::from(*alpha),
            f64::from(*beta),
            f64::from(*bias),
        ),
        Op::LayerNorm { axis, epsilon } | Op::RmsNorm { axis, epsilon } => {
            let axis = norm_axis(*axis, x.rank())?;
            let block = &x.shape[axis..];
            let scale = cx.input(1)?;
            let bias = match cx.op {
                Op::LayerNorm { .. } => cx.optional_input(2),
                _ => None,
            };
            for p in [Some(scale), bias].into_iter().flatten() {
                if p.rank() > block.len() {
                    return Err(format!(
                        "parameter {:?} does not fit the block {block:?}",
                        p.shape
                    ));
                }
            }
            let outer = x.shape[..axis].to_vec();
            let zeros = vec![0; outer.len()];
            lower_row_norm(
                lw,
                cx,
                &RowNorm {
                    outer: outer.clone(),
                    block: block.to_vec(),
                    channel_group: None,
                    center: matches!(cx.op, Op::LayerNorm { .. }),
                    epsilon: f64::from(*epsilon),
                    scale: (scale, zeros.clone(), broadcast_strides(&scale.shape, block)),
                    bias: bias.map(|b| (b, zeros, broadcast_strides(&b.shape, block))),
                },
            )
        }
        Op::InstanceNorm { epsilon } => {
            if x.rank() < 3 {
                return Err("instance_norm needs rank >= 3".into());
            }
            let spatial: usize = x.shape[2..].iter().product();
            let channel = |slot| -> Result<(&Operand, Vec<i64>, Vec<i64>), String> {
                Ok((cx.input(slot)?, vec![0, 1], vec![0]))
            };
            lower_row_norm(
                lw,
                cx,
                &RowNorm {
                    outer: vec![x.shape[0], x.shape[1]],
                    block: vec![spatial],
                    channel_group: None,
                    center: true,
                    epsilon: f64::from(*epsilon),
                    scale: channel(1)?,
                    bias: Some(channel(2)?),
                },
            )
        }
        Op::GroupNorm {
            num_groups,
            epsilon,
        } => {
            if x.rank() < 2 {
                return Err("group_norm needs rank >= 2".into());
            }
            let n_channels = x.shape[1];
            let groups = usize::try_from(*num_groups)
                .ok()
                .filter(|&g| g >= 1 && n_channels % g == 0)
                .ok_or("num_groups must divide the channels")?;
            let cg = n_channels / groups;
            let spatial: usize = x.shape[2..].iter().product();
            let channel = |slot| -> Result<(&Operand, Vec<i64>, Vec<i64>), String> {
                Ok((cx.input(slot)?, vec![0, cg as i64], vec![1, 0]))
            };
            lower_row_norm(
                lw,
                cx,
                &RowNorm {
                    outer: vec![x.shape[0], groups],
                    block: vec![cg, spatial],
                    channel_group: Some(cg),
                    center: true,
                    epsilon: f64::from(*epsilon),
                    scale: channel(1)?,
                    bias: Some(channel(2)?),
                },
            )
        }
        _ => Err("not a normalization".into()),
    }
}

fn lower_batch_norm(lw: &mut Lowerer, cx: &NodeCx, epsilon: f64) -> Result<(), String> {
    let x = cx.input(0)?;
    let out = cx.output(0);
    if x.rank() < 2 {
        return Err("batch_norm needs rank >= 2".into());
    }
    let dtype = x.dtype;
    let spatial: usize = x.shape[2..].iter().product();
    let shape = [x.shape[0], x.shape[1], spatial];
    let epilogue = lw.take_epilogue(cx, 0, &shape);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let params: Vec<BufferId> = (1..5)
        .map(|slot| cx.input(slot).map(|p| k.input(p)))
        .collect::<Result<_, _>>()?;
    let y = k.sink(out, epilogue);
    let (scale, bias, mean, var) = (params[0], params[1], params[2], params[3]);
    let strides = row_major_strides(&shape);
    k.kb.loops(&shape, |kb, v| {
        let c = |b| Expr::load(b, Index::var(v[1]));
        let xi = Index::strided(v, &strides, 0);
        let inv = Expr::unary(UnaryOp::Sqrt, Expr::add(c(var), cst(dtype, epsilon)));
        let value = Expr::add(
            Expr::mul(
                Expr::div(Expr::sub(Expr::load(xb, xi.clone()), c(mean)), inv),
                c(scale),
            ),
            c(bias),
        );
        y.store(kb, xi, value, &var_coords(v));
    });
    lw.emit(k);
    Ok(())
}

/// A normalization over contiguous rows: `x` is `[outer.., block..]`; each parameter comes with its
/// strides over the outer and the block loop variables.
struct RowNorm<'a> {
    outer: Vec<usize>,
    block: Vec<usize>,
    /// For group_norm, the channels per group: `outer` is `[N, groups]` and `block` `[cg, S]`, and
    /// the output is viewed as `[N, C, S]` with channel `group * cg + c`.
    channel_group: Option<usize>,
    /// Subtract the mean (layer, instance and group norm) or not (rms norm).
    center: bool,
    epsilon: f64,
    scale: (&'a Operand, Vec<i64>, Vec<i64>),
    bias: Option<(&'a Operand, Vec<i64>, Vec<i64>)>,
}

/// The dtype the row statistics accumulate in, whatever the input's float dtype.
const STATS: DType = DType::F64;

fn lower_row_norm(lw: &mut Lowerer, cx: &NodeCx, n: &RowNorm) -> Result<(), String> {
    let x = cx.input(0)?;
    let out = cx.output(0);
    let dtype = x.dtype;
    let mut full = n.outer.clone();
    full.extend_from_slice(&n.block);
    if full.iter().product::<usize>() != x.len() {
        return Err("the row layout does not cover x".into());
    }
    let strides = row_major_strides(&full);
    let (outer_strides, block_strides) = strides.split_at(n.outer.len());
    let count: usize = n.block.iter().product();
    // The view the epilogue indexes: the row layout, or [N, C, S] for group_norm.
    let view = match n.channel_group {
        Some(cg) => vec![n.outer[0], n.outer[1] * cg, n.block[1]],
        None => full.clone(),
    };
    let coords = |ov: &[LoopVar], bv: &[LoopVar]| -> Vec<Index> {
        match n.channel_group {
            Some(cg) => vec![
                Index::var(ov[0]),
                Index::affine([(ov[1], cg as i64), (bv[0], 1)], 0),
                Index::var(bv[1]),
            ],
            None => var_coords(&[ov, bv].concat()),
        }
    };
    let epilogue = lw.take_epilogue(cx, 0, &view);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let sb = k.input(n.scale.0);
    let bb = n.bias.as_ref().map(|b| k.input(b.0));
    let y = k.sink(out, epilogue);
    k.kb.loops(&n.outer, |kb, ov| {
        let row = Index::strided(ov, outer_strides, 0);
        let at = |bv: &[LoopVar]| row.clone().plus(Index::strided(bv, block_strides, 0));
        // The row's first element is the shift (see the module doc); an empty row has none.
        let shift = (n.center && count > 0).then(|| kb.local(dtype, Expr::load(xb, row.clone())));
        // Conversions between the input dtype and STATS (none when they are the same).
        let convert = |to: DType, e: Expr| if dtype == STATS { e } else { Expr::cast(to, e) };
        let wide = |e: Expr| convert(STATS, e);
        let wide_shift = shift.map(|x0| kb.local(STATS, wide(Expr::Local(x0))));
        let shifted = |bv: &[LoopVar]| match shift {
            Some(x0) => Expr::sub(Expr::load(xb, at(bv)), Expr::Local(x0)),
            None => Expr::load(xb, at(bv)),
        };
        // One read pass: Σ d and Σ d² of d = x - x0, in f64 (exact differences for f32 inputs).
        let sum = kb.local(STATS, cst(STATS, 0.0));
        let sum_sq = kb.local(STATS, cst(STATS, 0.0));
        kb.loops(&n.block, |kb, bv| {
            let d = match wide_shift {
                Some(x0) => Expr::sub(wide(Expr::load(xb, at(bv))), Expr::Local(x0)),
                None => wide(Expr::load(xb, at(bv))),
            };
            let d = kb.local(STATS, d);
            if n.center {
                kb.assign(sum, Expr::add(Expr::Local(sum), Expr::Local(d)));
            }
            kb.assign(
                sum_sq,
                Expr::fma(Expr::Local(d), Expr::Local(d), Expr::Local(sum_sq)),
            );
        });
        let inv_count = cst(STATS, 1.0 / count.max(1) as f64);
        // mean - x0, and the variance as E[d²] - E[d]², clamped at 0 against rounding.
        let mean_shift = kb.local(STATS, Expr::mul(Expr::Local(sum), inv_count.clone()));
        let var = Expr::max(
            Expr::sub(
                Expr::mul(Expr::Local(sum_sq), inv_count),
                Expr::mul(Expr::Local(mean_shift), Expr::Local(mean_shift)),
            ),
            cst(STATS, 0.0),
        );
        let narrow = |e: Expr| convert(dtype, e);
        let inv_std = kb.local(
            dtype,
            narrow(Expr::div(
                cst(STATS, 1.0),
                Expr::unary(UnaryOp::Sqrt, Expr::add(var, cst(STATS, n.epsilon))),
            )),
        );
        let mean_shift = kb.local(dtype, narrow(Expr::Local(mean_shift)));
        let centered = |bv: &[LoopVar]| {
            if n.center {
                Expr::sub(shifted(bv), Expr::Local(mean_shift))
            } else {
                shifted(bv)
            }
        };
        kb.loops(&n.block, |kb, bv| {
            let param = |(buf, so, sb): (BufferId, &Vec<i64>, &Vec<i64>)| {
                Expr::load(
                    buf,
                    Index::strided(ov, so, 0).plus(Index::strided(bv, sb, 0)),
                )
            };
            let mut value = Expr::mul(
                Expr::mul(centered(bv), Expr::Local(inv_std)),
                param((sb, &n.scale.1, &n.scale.2)),
            );
            if let (Some(b), Some((_, so, sbs))) = (bb, &n.bias) {
                value = Expr::add(value, param((b, so, sbs)));
            }
            y.store(kb, at(bv), value, &coords(ov, bv));
        });
    });
    lw.emit(k);
    Ok(())
}

fn lower_softmax(lw: &mut Lowerer, cx: &NodeCx, axis: i64, log: bool) -> Result<(), String> {
    let x = cx.input(0)?;
    let out = cx.output(0);
    let dtype = x.dtype;
    let axis = norm_axis(axis, x.rank())?;
    let n_axis = x.shape[axis];
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let strides = [(n_axis * inner) as i64, 1, inner as i64];
    let epilogue = lw.take_epilogue(cx, 0, &[outer, n_axis, inner]);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let y = k.sink(out, epilogue);
    k.kb.loops(&[outer, inner], |kb, v| {
        let at = |j: LoopVar| Index::strided(&[v[0], v[1], j], &strides, 0);
        let max = kb.local(dtype, cst(dtype, f64::NEG_INFINITY));
        kb.loop_(n_axis, |kb, j| {
            kb.assign(max, Expr::max(Expr::Local(max), Expr::load(xb, at(j))));
        });
        let sum = kb.local(dtype, cst(dtype, 0.0));
        kb.loop_(n_axis, |kb, j| {
            let e = Expr::unary(
                UnaryOp::Exp,
                Expr::sub(Expr::load(xb, at(j)), Expr::Local(max)),
            );
            kb.assign(sum, Expr::add(Expr::Local(sum), e));
        });
        let post = if log {
            kb.local(dtype, Expr::unary(UnaryOp::Log, Expr::Local(sum)))
        } else {
            kb.local(dtype, Expr::div(cst(dtype, 1.0), Expr::Local(sum)))
        };
        kb.loop_(n_axis, |kb, j| {
            let shifted = Expr::sub(Expr::load(xb, at(j)), Expr::Local(max));
            let value = if log {
                Expr::sub(shifted, Expr::Local(post))
            } else {
                Expr::mul(Expr::unary(UnaryOp::Exp, shifted), Expr::Local(post))
            };
            y.store(kb, at(j), value, &var_coords(&[v[0], j, v[1]]));
        });
    });
    lw.emit(k);
    Ok(())
}

fn lower_lrn(
    lw: &mut Lowerer,
    cx: &NodeCx,
    size: i64,
    alpha: f64,
    beta: f64,
    bias: f64,
) -> Result<(), String> {
    let x = cx.input(0)?;
    let out = cx.output(0);
    let dtype = x.dtype;
    if x.rank() < 2 || size < 1 {
        return Err("lrn needs rank >= 2 and a positive size".into());
    }
    let size = size as usize;
    let before = (size - 1) / 2;
    let spatial: usize = x.shape[2..].iter().product();
    let (n, c) = (x.shape[0], x.shape[1]);
    let view = [n, c, spatial];
    let epilogue = lw.take_epilogue(cx, 0, &view);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let y = k.sink(out, epilogue);
    // Pad the channel axis (treated as the "spatial" axis of a [N, C, S] view moved to the middle):
    // the scratch is [N, C + size - 1, S] with x at channel offset `before`.
    let padded_c = c + size - 1;
    let (xp, xp_shape) = pad_channels(&mut k, xb, &view, before, padded_c, dtype);
    let p_strides = row_major_strides(&xp_shape);
    let strides = row_major_strides(&view);
    let scale = cst(dtype, alpha / size as f64);
    k.kb.loops(&view, |kb, v| {
        let sum = kb.local(dtype, cst(dtype, 0.0));
        kb.loop_(size, |kb, j| {
            let u = Expr::load(
                xp,
                Index::affine(
                    [
                        (v[0], p_strides[0]),
                        (v[1], p_strides[1]),
                        (j, p_strides[1]),
                        (v[2], 1),
                    ],
                    0,
                ),
            );
            kb.assign(sum, Expr::fma(u.clone(), u, Expr::Local(sum)));
        });
        let xi = Index::strided(v, &strides, 0);
        let denom = Expr::binary(
            BinaryOp::Pow,
            Expr::add(cst(dtype, bias), Expr::mul(scale.clone(), Expr::Local(sum))),
            cst(dtype, beta),
        );
        let value = Expr::div(Expr::load(xb, xi.clone()), denom);
        y.store(kb, xi, value, &var_coords(v));
    });
    lw.emit(k);
    Ok(())
}

/// Copies a `[N, C, S]` view of `x` into a zero-filled `[N, padded_c, S]` scratch at channel
/// offset `before`.
fn pad_channels(
    k: &mut super::KernelDraft,
    xb: BufferId,
    view: &[usize; 3],
    before: usize,
    padded_c: usize,
    dtype: DType,
) -> (BufferId, Vec<usize>) {
    // The channel axis is the one padded; as a [N, C, S] tensor with one "lead" dim, C and S are
    // the padded axes, S with no padding.
    pad_spatial_into_scratch(
        k,
        "pad",
        PaddedCopy {
            x: xb,
            x_shape: view,
            n_lead: 1,
            begin: &[before, 0],
            padded: &[padded_c, view[2]],
            fill: cst(dtype, 0.0),
            dtype,
        },
    )
}
