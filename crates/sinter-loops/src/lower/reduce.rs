//! The `reduce_*` family as one parametrised reduction ([`Reduction`]: init, combine, finish), and
//! arg_max/arg_min.
//!
//! The nest loops over the kept input dims (so the output is written in row-major order, whatever
//! `keepdims` says: it does not change the layout), with the reduced dims inside. Float reductions
//! accumulate in the input dtype (sinter-ref uses f64; within tolerance for the sizes in use).
//! Empty groups give sinter-ref's values (sum 0, prod 1, max -inf, mean NaN, ...). `log_sum_exp`
//! first finds the largest finite element `m` in its own pass, then `m + ln(Σ e^(x - m))`, as
//! sinter-ref does. Integer reductions wrap; integer mean divides the wrapped sum in f64 and
//! truncates. arg_max/arg_min treat NaN as the extreme and break ties as sinter-ref's `beats` does.

use super::fuse::var_coords;
use super::{cst, norm_axis, Lowerer, NodeCx, Operand};
use crate::builder::{row_major_strides, KernelBuilder};
use crate::ir::*;
use sinter_ir::{DType, Op, Reduction};
use std::ops::{Add, Div, Mul, Sub};

pub(super) fn lower(lw: &mut Lowerer, cx: &NodeCx) -> Result<(), String> {
    let x = cx.input(0)?;
    match cx.op {
        Op::ArgMax {
            axis,
            select_last_index,
            ..
        } => return lower_arg(lw, cx, *axis, true, *select_last_index),
        Op::ArgMin {
            axis,
            select_last_index,
            ..
        } => return lower_arg(lw, cx, *axis, false, *select_last_index),
        _ => {}
    }
    let Some((reduction, attrs)) = cx.op.reduction() else {
        return Err("not a reduction".into());
    };
    let (axes, noop) = (attrs.axes, attrs.noop_with_empty_axes);
    let out = cx.output(0);
    if axes.is_empty() && noop {
        lw.copy(&cx.stem, &cx.node, x, out);
        return Ok(());
    }
    let mut reduced = vec![false; x.rank()];
    if axes.is_empty() {
        reduced.iter_mut().for_each(|r| *r = true);
    }
    for &axis in axes {
        let a = norm_axis(axis, x.rank())?;
        if reduced[a] && !axes.is_empty() {
            return Err(format!("axis {axis} repeats"));
        }
        reduced[a] = true;
    }
    lower_reduction(lw, cx, reduction, x, out, &reduced)
}

fn lower_reduction(
    lw: &mut Lowerer,
    cx: &NodeCx,
    reduction: Reduction,
    x: &Operand,
    out: &Operand,
    reduced: &[bool],
) -> Result<(), String> {
    let dtype = x.dtype;
    let float = dtype.is_float();
    match (reduction, dtype) {
        (Reduction::Max | Reduction::Min, _) => {}
        (_, DType::F32 | DType::F64 | DType::I32 | DType::I64) => {}
        _ => return Err(format!("{reduction:?} of {dtype}")),
    }
    if !float && matches!(reduction, Reduction::L2 | Reduction::LogSumExp) {
        return Err(format!("{reduction:?} of integers"));
    }
    let x_strides = row_major_strides(&x.shape);
    let kept: Vec<usize> = (0..x.rank()).filter(|&a| !reduced[a]).collect();
    let red: Vec<usize> = (0..x.rank()).filter(|&a| reduced[a]).collect();
    let kept_shape: Vec<usize> = kept.iter().map(|&a| x.shape[a]).collect();
    let red_shape: Vec<usize> = red.iter().map(|&a| x.shape[a]).collect();
    let kept_strides: Vec<i64> = kept.iter().map(|&a| x_strides[a]).collect();
    let red_strides: Vec<i64> = red.iter().map(|&a| x_strides[a]).collect();
    let count: usize = red_shape.iter().product();
    let y_strides = row_major_strides(&kept_shape);

    let epilogue = lw.take_epilogue(cx, 0, &kept_shape);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let y = k.sink(out, epilogue);
    let (lowest, highest) = extremes(dtype);
    k.kb.loops(&kept_shape, |kb, kv| {
        let load = |rv: &[LoopVar]| {
            Expr::load(
                xb,
                Index::strided(kv, &kept_strides, 0).plus(Index::strided(rv, &red_strides, 0)),
            )
        };
        // log_sum_exp's shift: the largest finite element, or 0 when there is none.
        let shift = if reduction == Reduction::LogSumExp {
            let m = kb.local(dtype, cst(dtype, f64::NEG_INFINITY));
            kb.loops(&red_shape, |kb, rv| {
                let v = load(rv);
                let finite = Expr::cmp(
                    CmpOp::Lt,
                    Expr::unary(UnaryOp::Abs, v.clone()),
                    cst(dtype, f64::INFINITY),
                );
                let better = Expr::binary(
                    BinaryOp::And,
                    finite,
                    Expr::cmp(CmpOp::Gt, v.clone(), Expr::Local(m)),
                );
                kb.assign(m, Expr::select(better, v, Expr::Local(m)));
            });
            let finite = Expr::cmp(
                CmpOp::Lt,
                Expr::unary(UnaryOp::Abs, Expr::Local(m)),
                cst(dtype, f64::INFINITY),
            );
            Some(kb.local(dtype, Expr::select(finite, Expr::Local(m), cst(dtype, 0.0))))
        } else {
            None
        };
        let init = match reduction {
            Reduction::Prod => cst(dtype, 1.0),
            Reduction::Max => lowest.clone(),
            Reduction::Min => highest.clone(),
            _ => cst(dtype, 0.0),
        };
        let acc = kb.local(dtype, init);
        kb.loops(&red_shape, |kb, rv| {
            let v = load(rv);
            let a = Expr::Local(acc);
            let next = match reduction {
                Reduction::Sum | Reduction::Mean => Expr::add(a, v),
                Reduction::Max => Expr::binary(
                    if dtype == DType::Bool {
                        BinaryOp::Or
                    } else {
                        BinaryOp::Max
                    },
                    a,
                    v,
                ),
                Reduction::Min => Expr::binary(
                    if dtype == DType::Bool {
                        BinaryOp::And
                    } else {
                        BinaryOp::Min
                    },
                    a,
                    v,
                ),
                Reduction::Prod => Expr::mul(a, v),
                Reduction::L1 => Expr::add(a, Expr::unary(UnaryOp::Abs, v)),
                Reduction::L2 | Reduction::SumSquare => {
                    if float {
                        Expr::fma(v.clone(), v, a)
                    } else {
                        Expr::add(a, Expr::mul(v.clone(), v))
                    }
                }
                Reduction::LogSumExp => {
                    let s = Expr::Local(shift.expect("set for log_sum_exp"));
                    Expr::add(a, Expr::unary(UnaryOp::Exp, Expr::sub(v, s)))
                }
            };
            kb.assign(acc, next);
        });
        let a = Expr::Local(acc);
        let result = match reduction {
            Reduction::Mean if float => Expr::div(a, cst(dtype, count as f64)),
            Reduction::Mean => Expr::cast(
                dtype,
                Expr::div(Expr::cast(DType::F64, a), cst(DType::F64, count as f64)),
            ),
            Reduction::L2 => Expr::unary(UnaryOp::Sqrt, a),
            Reduction::LogSumExp => Expr::add(
                Expr::unary(UnaryOp::Log, a),
                Expr::Local(shift.expect("set for log_sum_exp")),
            ),
            _ => a,
        };
        y.store(
            kb,
            Index::strided(kv, &y_strides, 0),
            result,
            &var_coords(kv),
        );
    });
    lw.emit(k);
    Ok(())
}

/// The identity elements of max and min: the lowest and highest values of `dtype`.
fn extremes(dtype: DType) -> (Expr, Expr) {
    match dtype {
        DType::F32 | DType::F64 => (cst(dtype, f64::NEG_INFINITY), cst(dtype, f64::INFINITY)),
        DType::I64 => (
            Expr::Const(Scalar::I64(i64::MIN)),
            Expr::Const(Scalar::I64(i64::MAX)),
        ),
        DType::I32 => (
            Expr::Const(Scalar::I32(i32::MIN)),
            Expr::Const(Scalar::I32(i32::MAX)),
        ),
        DType::I8 => (
            Expr::Const(Scalar::I8(i8::MIN)),
            Expr::Const(Scalar::I8(i8::MAX)),
        ),
        DType::U8 => (Expr::Const(Scalar::U8(0)), Expr::Const(Scalar::U8(u8::MAX))),
        _ => (
            Expr::Const(Scalar::Bool(false)),
            Expr::Const(Scalar::Bool(true)),
        ),
    }
}

/// arg_max / arg_min along `axis`: the first extreme (or the last with `select_last_index`), NaN
/// counting as the extreme.
fn lower_arg(
    lw: &mut Lowerer,
    cx: &NodeCx,
    axis: i64,
    is_max: bool,
    last: bool,
) -> Result<(), String> {
    let x = cx.input(0)?;
    let out = cx.output(0);
    let dtype = x.dtype;
    if !dtype.is_numeric() {
        return Err(format!("arg reduction of {dtype}"));
    }
    let axis = norm_axis(axis, x.rank())?;
    let extent = x.shape[axis];
    if extent == 0 {
        return Err("a zero-length axis".into());
    }
    let x_strides = row_major_strides(&x.shape);
    let outer: Vec<usize> = (0..x.rank()).filter(|&a| a != axis).collect();
    let outer_shape: Vec<usize> = outer.iter().map(|&a| x.shape[a]).collect();
    let outer_strides: Vec<i64> = outer.iter().map(|&a| x_strides[a]).collect();
    let y_strides = row_major_strides(&outer_shape);
    let axis_stride = x_strides[axis];
    let epilogue = lw.take_epilogue(cx, 0, &outer_shape);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let y = k.sink(out, epilogue);
    k.kb.loops(&outer_shape, |kb: &mut KernelBuilder, ov| {
        let base = Index::strided(ov, &outer_strides, 0);
        let best = kb.local(dtype, Expr::load(xb, base.clone()));
        let best_idx = kb.local(DType::I64, Expr::Const(Scalar::I64(0)));
        kb.loop_(extent - 1, |kb, j| {
            let v = Expr::load(
                xb,
                base.clone()
                    .plus(Index::affine([(j, axis_stride)], axis_stride)),
            );
            let b = Expr::Local(best);
            let strict = Expr::cmp(
                match (is_max, last) {
                    (true, false) => CmpOp::Gt,
                    (true, true) => CmpOp::Ge,
                    (false, false) => CmpOp::Lt,
                    (false, true) => CmpOp::Le,
                },
                v.clone(),
                b.clone(),
            );
            let beats = if dtype.is_float() {
                let v_nan = Expr::cmp(CmpOp::Ne, v.clone(), v.clone());
                let b_nan = Expr::cmp(CmpOp::Ne, b.clone(), b.clone());
                let either = Expr::binary(BinaryOp::Or, v_nan.clone(), b_nan.clone());
                let nan_case = if last {
                    v_nan
                } else {
                    Expr::binary(BinaryOp::And, v_nan, Expr::unary(UnaryOp::Not, b_nan))
                };
                Expr::select(either, nan_case, strict)
            } else {
                strict
            };
            let flag = kb.local(DType::Bool, beats);
            kb.assign(best, Expr::select(Expr::Local(flag), v, b));
            kb.assign(
                best_idx,
                Expr::select(
                    Expr::Local(flag),
                    Expr::add(Expr::Var(j), Expr::Const(Scalar::I64(1))),
                    Expr::Local(best_idx),
                ),
            );
        });
        y.store(
            kb,
            Index::strided(ov, &y_strides, 0),
            Expr::Local(best_idx),
            &var_coords(ov),
        );
    });
    lw.emit(k);
    Ok(())
}
