//! max_pool, average_pool and their global forms, all through one windowed lowering ([`lower_pool`]).
//!
//! The input is copied into a scratch buffer padded with the pool's identity (NaN-free `-inf` or the
//! integer minimum for max, 0 for average) and large enough for every window, `ceil_mode` overhang
//! included, so window loads are affine and in bounds. The nest is
//! `for n, c, *out_spatial { acc; for *kernel { acc = combine(acc, x) } store }`.
//!
//! Max follows `f64::max` folding from NaN as sinter-ref does: NaN inputs are skipped unless the whole
//! window is NaN. Average divides by a per-output-position count computed at lowering time with
//! sinter-ref's tap geometry (positions in the input, or with `count_include_pad` inside the explicit
//! pads but never the `ceil_mode` overhang); the counts are a weight buffer of the output's spatial
//! shape. A global pool is a window covering the whole spatial extent.

use super::conv::{padded_source, per_axis_or_ones, resolve_pads, PaddedCopy};
use super::fuse::var_coords;
use super::{cst, Lowerer, NodeCx, Operand};
use crate::builder::row_major_strides;
use crate::ir::*;
use sinter_ir::geometry::dilated_extent;
use sinter_ir::{AutoPad, DType, Op, Tensor, TensorData};
use std::ops::{Add, Div};

#[derive(Clone, Copy, PartialEq)]
enum PoolKind {
    Max,
    Average { count_include_pad: bool },
}

pub(super) fn lower(lw: &mut Lowerer, cx: &NodeCx) -> Result<(), String> {
    let x = cx.input(0)?;
    if x.rank() < 3 {
        return Err("pools need x of rank >= 3".into());
    }
    let whole: Vec<i64> = x.shape[2..].iter().map(|&d| d as i64).collect();
    match cx.op {
        Op::MaxPool {
            kernel_shape,
            strides,
            pads,
            dilations,
            auto_pad,
            ceil_mode: _,
        } => lower_pool(
            lw,
            cx,
            PoolKind::Max,
            kernel_shape,
            strides,
            pads,
            dilations,
            *auto_pad,
        ),
        Op::AveragePool {
            kernel_shape,
            strides,
            pads,
            dilations,
            auto_pad,
            ceil_mode: _,
            count_include_pad,
        } => lower_pool(
            lw,
            cx,
            PoolKind::Average {
                count_include_pad: *count_include_pad,
            },
            kernel_shape,
            strides,
            pads,
            dilations,
            *auto_pad,
        ),
        Op::GlobalMaxPool {} => lower_pool(
            lw,
            cx,
            PoolKind::Max,
            &whole,
            &[],
            &[],
            &[],
            AutoPad::NotSet,
        ),
        Op::GlobalAveragePool {} => lower_pool(
            lw,
            cx,
            PoolKind::Average {
                count_include_pad: false,
            },
            &whole,
            &[],
            &[],
            &[],
            AutoPad::NotSet,
        ),
        _ => Err("not a pool".into()),
    }
}

/// The number of taps `j < kernel` of the window starting at `start` (in input coordinates) with
/// `start + j * dilation` in `[lo, limit)`.
fn taps_within(start: i64, dilation: i64, kernel: i64, lo: i64, limit: i64) -> i64 {
    let before = |bound: i64| -> i64 {
        if bound <= start {
            0
        } else {
            ((bound - start + dilation - 1) / dilation).min(kernel)
        }
    };
    (before(limit) - before(lo)).max(0)
}

/// One step of a float max pool, `f64::max` folding as sinter-ref does: a NaN accumulator is
/// replaced, a NaN input skipped (so the result is NaN only when the whole window is).
pub(crate) fn float_max_step(acc: Expr, v: Expr) -> Expr {
    Expr::select(
        Expr::binary(
            BinaryOp::Or,
            Expr::cmp(CmpOp::Ne, acc.clone(), acc.clone()),
            Expr::cmp(CmpOp::Gt, v.clone(), acc.clone()),
        ),
        v,
        acc,
    )
}

/// A pool's window over its input, resolved per spatial axis.
pub(crate) struct PoolWindow<'a> {
    pub in_sp: &'a [usize],
    pub out_sp: &'a [usize],
    pub kernel: &'a [usize],
    pub stride: &'a [usize],
    pub dilation: &'a [usize],
    pub begin: &'a [usize],
    pub end: &'a [usize],
}

/// The divisor of an average pool per output position (a weight of the output's spatial shape,
/// named after the output `name`): the product over axes of the counted taps, computed with
/// sinter-ref's tap geometry (positions in the input, or with `count_include_pad` inside the
/// explicit pads but never the `ceil_mode` overhang).
pub(crate) fn average_divisor(
    lw: &mut Lowerer,
    name: &str,
    dtype: DType,
    window: &PoolWindow,
    count_include_pad: bool,
) -> Result<Operand, String> {
    let PoolWindow {
        in_sp,
        out_sp,
        kernel,
        stride,
        dilation,
        begin,
        end,
    } = *window;
    let n_out: usize = out_sp.iter().product();
    let mut counts = Vec::with_capacity(n_out);
    let out_strides = row_major_strides(out_sp);
    for flat in 0..n_out {
        let mut count = 1.0f64;
        for a in 0..out_sp.len() {
            let o = (flat as i64 / out_strides[a]) % out_sp[a] as i64;
            let start = o * stride[a] as i64 - begin[a] as i64;
            let (lo, hi) = if count_include_pad {
                (-(begin[a] as i64), (in_sp[a] + end[a]) as i64)
            } else {
                (0, in_sp[a] as i64)
            };
            count *= taps_within(start, dilation[a] as i64, kernel[a] as i64, lo, hi) as f64;
        }
        counts.push(count);
    }
    let data = TensorData::from_f64s(dtype, counts.into_iter());
    let tensor = Tensor::new(out_sp.to_vec(), data).map_err(|e| e.to_string())?;
    Ok(lw.weight(format!("{name}.divisor"), tensor))
}

#[allow(clippy::too_many_arguments)]
fn lower_pool(
    lw: &mut Lowerer,
    cx: &NodeCx,
    kind: PoolKind,
    kernel_shape: &[i64],
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
    auto_pad: AutoPad,
) -> Result<(), String> {
    let x = cx.input(0)?;
    let out = cx.output(0);
    let dtype = x.dtype;
    match kind {
        PoolKind::Max if !matches!(dtype, DType::F32 | DType::F64 | DType::I8 | DType::U8) => {
            return Err(format!("max pool of {dtype}"))
        }
        PoolKind::Average { .. } if !dtype.is_float() => {
            return Err(format!("average pool of {dtype}"))
        }
        _ => {}
    }
    let n_sp = x.rank() - 2;
    let kernel = per_axis_or_ones("kernel_shape", kernel_shape, n_sp)?;
    if kernel_shape.is_empty() && n_sp > 0 {
        return Err("missing kernel_shape".into());
    }
    let stride = per_axis_or_ones("strides", strides, n_sp)?;
    let dilation = per_axis_or_ones("dilations", dilations, n_sp)?;
    let in_sp = &x.shape[2..];
    let out_sp = &out.shape[2..];
    let extent: Vec<usize> = (0..n_sp)
        .map(|a| dilated_extent(kernel[a], dilation[a]))
        .collect();
    let (begin, end) = resolve_pads(auto_pad, pads, in_sp, &stride, &extent)?;
    let padded: Vec<usize> = (0..n_sp)
        .map(|a| {
            let needed = if out_sp[a] == 0 {
                0
            } else {
                (out_sp[a] - 1) * stride[a] + extent[a]
            };
            (in_sp[a] + begin[a]).max(needed)
        })
        .collect();

    let divisor = match kind {
        PoolKind::Max => None,
        PoolKind::Average { count_include_pad } => {
            let window = PoolWindow {
                in_sp,
                out_sp,
                kernel: &kernel,
                stride: &stride,
                dilation: &dilation,
                begin: &begin,
                end: &end,
            };
            Some(average_divisor(
                lw,
                &out.name,
                dtype,
                &window,
                count_include_pad,
            )?)
        }
    };

    let epilogue = lw.take_epilogue(cx, 0, &out.shape);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let db = divisor.as_ref().map(|d| k.input(d));
    let y = k.sink(out, epilogue);
    let fill = match (kind, dtype) {
        (PoolKind::Average { .. }, _) => cst(dtype, 0.0),
        (PoolKind::Max, DType::I8) => Expr::Const(Scalar::I8(i8::MIN)),
        (PoolKind::Max, DType::U8) => Expr::Const(Scalar::U8(0)),
        (PoolKind::Max, _) => cst(dtype, f64::NEG_INFINITY),
    };
    let (src, src_shape) = padded_source(
        &mut k,
        PaddedCopy {
            x: xb,
            x_shape: &x.shape,
            n_lead: 2,
            begin: &begin,
            padded: &padded,
            fill: fill.clone(),
            dtype,
        },
    );
    let s_strides = row_major_strides(&src_shape);
    let y_strides = row_major_strides(&out.shape);
    let sp_out_strides = row_major_strides(out_sp);
    let float = dtype.is_float();
    let init = match kind {
        PoolKind::Max if float => cst(dtype, f64::NAN),
        PoolKind::Max => fill,
        PoolKind::Average { .. } => cst(dtype, 0.0),
    };
    k.kb.loops(&out.shape, |kb, ov| {
        let acc = kb.local(dtype, init);
        kb.loops(&kernel, |kb, kv| {
            let mut terms = vec![(ov[0], s_strides[0]), (ov[1], s_strides[1])];
            for a in 0..n_sp {
                terms.push((ov[2 + a], stride[a] as i64 * s_strides[2 + a]));
                terms.push((kv[a], dilation[a] as i64 * s_strides[2 + a]));
            }
            let v = Expr::load(src, Index::affine(terms, 0));
            let a = Expr::Local(acc);
            let next = match kind {
                PoolKind::Max if float => float_max_step(a, v),
                PoolKind::Max => Expr::max(a, v),
                PoolKind::Average { .. } => Expr::add(a, v),
            };
            kb.assign(acc, next);
        });
        let mut result = Expr::Local(acc);
        if let Some(d) = db {
            result = Expr::div(
                result,
                Expr::load(d, Index::strided(&ov[2..], &sp_out_strides, 0)),
            );
        }
        y.store(
            kb,
            Index::strided(ov, &y_strides, 0),
            result,
            &var_coords(ov),
        );
    });
    lw.emit(k);
    Ok(())
}
