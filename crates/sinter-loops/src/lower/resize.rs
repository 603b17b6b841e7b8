//! resize (nearest and multilinear), with the interpolation geometry precomputed into weight tables.
//!
//! The per-axis taps (two input indices and weights per output coordinate) are computed at lowering
//! time by `sinter_ir::geometry::{resize_axes, resize_taps}`, the functions sinter-ref evaluates
//! with, which mirror `onnx.reference` bit for bit (nearest mode is sensitive to the last bit of a
//! coordinate). Axes whose map is the identity are read with an affine index. The other
//! ("resized") axes are combined: for each corner of the interpolation cell (one per subset of the
//! resized axes' second taps) a table holds the flat input offset of every resized-output position,
//! read through the IR's dynamic index term (its values are in range by construction). Weights are
//! per-axis f64 tables.
//!
//! Linear interpolation computes in f64 with sinter-ref's nesting (inner axes first, each step
//! `fma(w1, p1, w0 * p0)`) and saturates like numpy's `saturate_cast` (floats clip to the finite
//! range, integers round half to even then clip), so integer images round as the reference does.

use super::{Lowerer, NodeCx};
use crate::builder::row_major_strides;
use crate::ir::*;
use sinter_ir::geometry::{resize_axes, resize_taps, ResizeAxis};
use sinter_ir::{CoordTransform, DType, NearestMode, Op, ResizeMode, Tensor, TensorData};
use std::ops::Mul;

/// Two (input index, weight) taps; a missing tap has weight 0 and repeats the other index.
fn axis_taps(
    out_idx: usize,
    in_size: usize,
    axis: &ResizeAxis,
    mode: ResizeMode,
    transform: CoordTransform,
    nearest_mode: NearestMode,
) -> [(usize, f64); 2] {
    let [(i0, c0), (i1, c1)] = resize_taps(out_idx, in_size, axis, mode, transform, nearest_mode);
    match (c0 != 0.0, c1 != 0.0) {
        (true, true) => [(i0, c0), (i1, c1)],
        (true, false) => [(i0, c0), (i0, 0.0)],
        (false, true) => [(i1, 0.0), (i1, c1)],
        (false, false) => [(i0, 0.0), (i0, 0.0)],
    }
}

pub(super) fn lower(lw: &mut Lowerer, cx: &NodeCx) -> Result<(), String> {
    let Op::Resize {
        mode,
        coordinate_transformation_mode: transform,
        nearest_mode,
        scales,
        sizes,
    } = cx.op
    else {
        return Err("not resize".into());
    };
    let x = cx.input(0)?;
    let out = cx.output(0);
    let dtype = x.dtype;
    if *mode == ResizeMode::Linear && dtype == DType::Bool {
        return Err("linear resize of bool".into());
    }
    let rank = x.rank();
    let axis_scales = resize_axes(&x.shape, scales, sizes)?;
    if axis_scales.iter().map(|s| s.out_size).collect::<Vec<_>>() != out.shape {
        return Err("the declared output shape differs from the scales".into());
    }
    if out.len() == 0 {
        // Nothing to compute; the kernel still declares the output, which it "writes" (all of its
        // zero elements) so the program gives the output a buffer.
        let mut k = lw.kernel(&cx.stem, &[&cx.node]);
        k.output(out);
        lw.emit(k);
        return Ok(());
    }
    if x.len() == 0 {
        return Err("resize of an empty input to a non-empty output".into());
    }
    let taps: Vec<Vec<[(usize, f64); 2]>> = (0..rank)
        .map(|a| {
            (0..out.shape[a])
                .map(|o| {
                    axis_taps(
                        o,
                        x.shape[a],
                        &axis_scales[a],
                        *mode,
                        *transform,
                        *nearest_mode,
                    )
                })
                .collect()
        })
        .collect();
    let is_identity = |a: usize| {
        out.shape[a] == x.shape[a]
            && taps[a]
                .iter()
                .enumerate()
                .all(|(o, t)| t.iter().all(|&(i, w)| w == 0.0 || (i == o && w == 1.0)))
    };
    let resized: Vec<usize> = (0..rank).filter(|&a| !is_identity(a)).collect();
    let kept: Vec<usize> = (0..rank).filter(|&a| is_identity(a)).collect();
    let x_strides = row_major_strides(&x.shape);
    let y_strides = row_major_strides(&out.shape);
    let linear = *mode == ResizeMode::Linear;
    let n_corners = if linear { 1usize << resized.len() } else { 1 };
    if n_corners > 16 {
        return Err(format!("linear resize over {} axes", resized.len()));
    }
    let resized_shape: Vec<usize> = resized.iter().map(|&a| out.shape[a]).collect();
    let resized_strides = row_major_strides(&resized_shape);
    let n_positions: usize = resized_shape.iter().product();
    // Corner `c` takes tap `(c >> level) & 1` on resized axis `level`; nearest mode takes the tap
    // with the non-zero weight.
    let mut tables = Vec::with_capacity(n_corners);
    for corner in 0..n_corners {
        let mut offsets = Vec::with_capacity(n_positions);
        for flat in 0..n_positions {
            let mut offset = 0i64;
            for (level, &a) in resized.iter().enumerate() {
                let o = (flat as i64 / resized_strides[level]) as usize % out.shape[a];
                let pair = taps[a][o];
                let tap = if linear {
                    pair[(corner >> level) & 1]
                } else if pair[1].1 != 0.0 {
                    pair[1]
                } else {
                    pair[0]
                };
                offset += tap.0 as i64 * x_strides[a];
            }
            offsets.push(offset);
        }
        let tensor = Tensor::from_vec(resized_shape.clone(), offsets).map_err(|e| e.to_string())?;
        tables.push(lw.weight(format!("{}.offsets{corner}", out.name), tensor));
    }
    let weights: Vec<[super::Operand; 2]> = if linear {
        resized
            .iter()
            .map(|&a| {
                let make = |which: usize, lw: &mut Lowerer| {
                    let values: Vec<f64> = taps[a].iter().map(|t| t[which].1).collect();
                    let tensor = Tensor::new(vec![values.len()], TensorData::F64(values.into()))
                        .expect("one weight per output coordinate");
                    lw.weight(format!("{}.w{which}_axis{a}", out.name), tensor)
                };
                [make(0, lw), make(1, lw)]
            })
            .collect()
    } else {
        Vec::new()
    };
    let extent: i64 = resized
        .iter()
        .map(|&a| (x.shape[a] as i64 - 1) * x_strides[a])
        .sum::<i64>()
        + 1;

    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let table_bufs: Vec<BufferId> = tables.iter().map(|t| k.input(t)).collect();
    let weight_bufs: Vec<[BufferId; 2]> = weights
        .iter()
        .map(|[a, b]| [k.input(a), k.input(b)])
        .collect();
    let yb = k.output(out);
    k.kb.loops(&out.shape, |kb, v| {
        let resized_vars: Vec<LoopVar> = resized.iter().map(|&a| v[a]).collect();
        let table_idx = Index::strided(&resized_vars, &resized_strides, 0);
        let kept_idx = Index::affine(kept.iter().map(|&a| (v[a], x_strides[a])), 0);
        let load_corner = |corner: usize| {
            let mut index = kept_idx.clone();
            index.dynamic = Some(Box::new(DynamicTerm {
                value: Expr::load(table_bufs[corner], table_idx.clone()),
                extent,
                stride: 1,
            }));
            Expr::load(xb, index)
        };
        let value = if !linear {
            load_corner(0)
        } else {
            // Nested from the outermost resized axis: level `l` combines the two corners that
            // differ in bit `l`, the inner levels already interpolated.
            fn level_value(
                level: usize,
                corner: usize,
                n_levels: usize,
                load: &dyn Fn(usize) -> Expr,
                weight: &dyn Fn(usize, usize) -> Expr,
            ) -> Expr {
                if level == n_levels {
                    return load(corner);
                }
                let p0 = level_value(level + 1, corner, n_levels, load, weight);
                let p1 = level_value(level + 1, corner | (1 << level), n_levels, load, weight);
                Expr::fma(weight(level, 1), p1, Expr::mul(weight(level, 0), p0))
            }
            let load = |corner: usize| Expr::cast(DType::F64, load_corner(corner));
            let weight = |level: usize, which: usize| {
                Expr::load(weight_bufs[level][which], Index::var(resized_vars[level]))
            };
            let sum = level_value(0, 0, resized.len(), &load, &weight);
            match dtype {
                DType::F32 => Expr::cast(
                    DType::F32,
                    Expr::min(
                        Expr::max(sum, Expr::Const(Scalar::F64(-f64::from(f32::MAX)))),
                        Expr::Const(Scalar::F64(f64::from(f32::MAX))),
                    ),
                ),
                DType::F64 => sum,
                _ => Expr::cast(dtype, Expr::unary(UnaryOp::Round, sum)),
            }
        };
        kb.store(yb, Index::strided(v, &y_strides, 0), value);
    });
    lw.emit(k);
    Ok(())
}
