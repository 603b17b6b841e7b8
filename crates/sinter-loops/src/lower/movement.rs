//! Data movement: transpose, concat, split, slice, gather, gather_elements, expand, tile, pad, trilu,
//! range, shape and constant_of_shape.
//!
//! slice, pad (every mode), tile and expand share one lowering, a *piecewise-affine copy*: each output
//! axis has a map from output to input coordinate (or "fill"), which [`segments`] cuts into runs
//! where the map is affine (`in = start + step * o`). The cartesian product of the runs is a set of
//! loop nests whose loads are all affine and in bounds; a run that maps to "fill" stores the constant.
//! Maps are computed at lowering time with sinter-ref's rules (ONNX slice clamping, reflect/edge/wrap
//! pads), so no index arithmetic happens at run time. gather and gather_elements use the IR's
//! range-checked dynamic index term: an out-of-range index makes the kernel return status 1.

use super::{broadcast_strides, cst, norm_axis, Lowerer, NodeCx, Operand};
use crate::builder::row_major_strides;
use crate::ir::*;
use sinter_ir::geometry::{pad_source, slice_range};
use sinter_ir::{DType, Op, PadMode};
use std::ops::{Add, Mul, Sub};

pub(super) fn lower(lw: &mut Lowerer, cx: &NodeCx) -> Result<(), String> {
    match cx.op {
        Op::Transpose { perm } => lower_transpose(lw, cx, perm),
        Op::Concat { axis } => lower_concat(lw, cx, *axis),
        Op::Split { axis, .. } => lower_split(lw, cx, *axis),
        Op::Slice {
            starts,
            ends,
            axes,
            steps,
        } => lower_slice(lw, cx, starts, ends, axes, steps),
        Op::Gather { axis } => lower_gather(lw, cx, *axis),
        Op::GatherElements { axis } => lower_gather_elements(lw, cx, *axis),
        Op::Expand { .. } => {
            let x = cx.input(0)?;
            let out = cx.output(0);
            if x.rank() > out.rank() {
                return Err("expand to a lower rank".into());
            }
            let lead = out.rank() - x.rank();
            let maps: Vec<Vec<Option<i64>>> = (0..out.rank())
                .map(|a| {
                    let broadcast = a < lead || x.shape[a - lead] == 1;
                    (0..out.shape[a] as i64)
                        .map(|o| Some(if broadcast { 0 } else { o }))
                        .collect()
                })
                .collect();
            let strides = broadcast_strides(&x.shape, &out.shape);
            lower_piecewise(lw, cx, x, out, &maps, &strides, cst(x.dtype, 0.0))
        }
        Op::Tile { .. } => {
            let x = cx.input(0)?;
            let out = cx.output(0);
            if x.rank() != out.rank() {
                return Err("tile changes the rank".into());
            }
            let maps: Vec<Vec<Option<i64>>> = (0..out.rank())
                .map(|a| {
                    let d = x.shape[a].max(1) as i64;
                    (0..out.shape[a] as i64).map(|o| Some(o % d)).collect()
                })
                .collect();
            let strides = row_major_strides(&x.shape);
            lower_piecewise(lw, cx, x, out, &maps, &strides, cst(x.dtype, 0.0))
        }
        Op::Pad { pads, mode, value } => lower_pad(lw, cx, pads, *mode, *value),
        Op::Trilu { upper, k } => lower_trilu(lw, cx, *upper, *k),
        Op::Range {
            start,
            limit: _,
            delta,
            dtype,
        } => lower_range(lw, cx, *start, *delta, *dtype),
        Op::Shape { .. } => {
            let x = cx.input(0)?;
            let out = cx.output(0);
            let Op::Shape { start, end } = cx.op else {
                unreachable!("matched above")
            };
            let rank = x.rank() as i64;
            let clamp = |v: i64| {
                if v < 0 {
                    (v + rank).max(0)
                } else {
                    v.min(rank)
                }
            };
            let (s, e) = (clamp(*start), clamp(end.unwrap_or(rank)));
            let dims: Vec<i64> = (s..e.max(s)).map(|a| x.shape[a as usize] as i64).collect();
            if dims.len() != out.len() || out.dtype != DType::I64 {
                return Err(format!(
                    "shape output {:?} does not hold {dims:?}",
                    out.shape
                ));
            }
            let values: Vec<Expr> = dims.iter().map(|&d| Expr::Const(Scalar::I64(d))).collect();
            lower_constants(lw, cx, out, &values);
            Ok(())
        }
        Op::ConstantOfShape { value, dtype, .. } => {
            super::check_dtype(*dtype)?;
            let out = cx.output(0);
            let mut k = lw.kernel(&cx.stem, &[&cx.node]);
            let y = k.output(out);
            let v = cst(*dtype, *value);
            k.kb.loop_(out.len(), |kb, i| kb.store(y, Index::var(i), v));
            lw.emit(k);
            Ok(())
        }
        _ => Err("not a movement op".into()),
    }
}

/// Stores one constant per output element.
fn lower_constants(lw: &mut Lowerer, cx: &NodeCx, out: &Operand, values: &[Expr]) {
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let y = k.output(out);
    for (i, v) in values.iter().enumerate() {
        k.kb.store(y, Index::constant(i as i64), v.clone());
    }
    lw.emit(k);
}

fn lower_transpose(lw: &mut Lowerer, cx: &NodeCx, perm: &[i64]) -> Result<(), String> {
    let x = cx.input(0)?;
    let out = cx.output(0);
    let rank = x.rank();
    let perm: Vec<usize> = if perm.is_empty() {
        (0..rank).rev().collect()
    } else {
        perm.iter()
            .map(|&p| norm_axis(p, rank))
            .collect::<Result<_, _>>()?
    };
    let x_strides = row_major_strides(&x.shape);
    let src: Vec<i64> = perm.iter().map(|&p| x_strides[p]).collect();
    let dst = row_major_strides(&out.shape);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let yb = k.output(out);
    k.kb.loops(&out.shape, |kb, v| {
        kb.store(
            yb,
            Index::strided(v, &dst, 0),
            Expr::load(xb, Index::strided(v, &src, 0)),
        );
    });
    lw.emit(k);
    Ok(())
}

fn lower_concat(lw: &mut Lowerer, cx: &NodeCx, axis: i64) -> Result<(), String> {
    let out = cx.output(0);
    let axis = norm_axis(axis, out.rank())?;
    let dst = row_major_strides(&out.shape);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let inputs: Vec<Operand> = (0..cx.inputs.len())
        .map(|slot| cx.input(slot).cloned())
        .collect::<Result<_, _>>()?;
    let bufs: Vec<BufferId> = inputs.iter().map(|x| k.input(x)).collect();
    let yb = k.output(out);
    let mut offset = 0i64;
    for (x, xb) in inputs.iter().zip(bufs) {
        let src = row_major_strides(&x.shape);
        let base = offset * dst[axis];
        k.kb.loops(&x.shape, |kb, v| {
            kb.store(
                yb,
                Index::strided(v, &dst, base),
                Expr::load(xb, Index::strided(v, &src, 0)),
            );
        });
        offset += x.shape[axis] as i64;
    }
    lw.emit(k);
    Ok(())
}

fn lower_split(lw: &mut Lowerer, cx: &NodeCx, axis: i64) -> Result<(), String> {
    let x = cx.input(0)?;
    let axis = norm_axis(axis, x.rank())?;
    let src = row_major_strides(&x.shape);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let mut offset = 0i64;
    for out in &cx.outputs {
        let yb = k.output(out);
        let dst = row_major_strides(&out.shape);
        let base = offset * src[axis];
        k.kb.loops(&out.shape, |kb, v| {
            kb.store(
                yb,
                Index::strided(v, &dst, 0),
                Expr::load(xb, Index::strided(v, &src, base)),
            );
        });
        offset += out.shape[axis] as i64;
    }
    if offset as usize != x.shape[axis] {
        return Err("split sizes do not cover the axis".into());
    }
    lw.emit(k);
    Ok(())
}

fn lower_slice(
    lw: &mut Lowerer,
    cx: &NodeCx,
    starts: &[i64],
    ends: &[i64],
    axes: &[i64],
    steps: &[i64],
) -> Result<(), String> {
    let x = cx.input(0)?;
    let out = cx.output(0);
    let rank = x.rank();
    let mut first = vec![0i64; rank];
    let mut step_of = vec![1i64; rank];
    for (i, &slice_start) in starts.iter().enumerate() {
        let axis = match axes.get(i) {
            Some(&a) => norm_axis(a, rank)?,
            None => i,
        };
        let step = steps.get(i).copied().unwrap_or(1);
        if step == 0 {
            return Err("a zero step".into());
        }
        let end = *ends.get(i).ok_or("fewer ends than starts")?;
        let (start, len) = slice_range(slice_start, end, step, x.shape[axis]);
        if len != out.shape[axis] {
            return Err(format!(
                "axis {axis}: {len} elements, declared {}",
                out.shape[axis]
            ));
        }
        first[axis] = start;
        step_of[axis] = step;
    }
    let maps: Vec<Vec<Option<i64>>> = (0..rank)
        .map(|a| {
            (0..out.shape[a] as i64)
                .map(|o| Some(first[a] + step_of[a] * o))
                .collect()
        })
        .collect();
    let strides = row_major_strides(&x.shape);
    lower_piecewise(lw, cx, x, out, &maps, &strides, cst(x.dtype, 0.0))
}

fn lower_pad(
    lw: &mut Lowerer,
    cx: &NodeCx,
    pads: &[i64],
    mode: PadMode,
    value: f64,
) -> Result<(), String> {
    let x = cx.input(0)?;
    let out = cx.output(0);
    let rank = x.rank();
    if pads.len() != 2 * rank {
        return Err(format!("pads {pads:?} need {} entries", 2 * rank));
    }
    let mut maps = Vec::with_capacity(rank);
    for a in 0..rank {
        let (begin, end) = (pads[a], pads[a + rank]);
        let crop_begin = (-begin).max(0);
        let kept = x.shape[a] as i64 - crop_begin - (-end).max(0);
        if kept < 0 {
            return Err(format!("axis {a}: pads crop more than the axis"));
        }
        let grow_begin = begin.max(0);
        let n = kept;
        if n == 0 && mode != PadMode::Constant && out.shape[a] as i64 != kept {
            return Err(format!("{} padding of an empty axis", mode.name()));
        }
        let map: Vec<Option<i64>> = (0..out.shape[a] as i64)
            .map(|o| pad_source(mode, o - grow_begin, n).map(|s| s + crop_begin))
            .collect();
        maps.push(map);
    }
    let strides = row_major_strides(&x.shape);
    lower_piecewise(lw, cx, x, out, &maps, &strides, cst(x.dtype, value))
}

/// A run of output positions `out_start..out_start + len` along one axis whose input coordinate is
/// `in_start + step * (o - out_start)`, or the fill value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Segment {
    pub out_start: usize,
    pub len: usize,
    /// `(in_start, step)`, or `None` for the fill value.
    pub source: Option<(i64, i64)>,
}

/// Cuts a per-position map into maximal affine runs.
pub(crate) fn segments(map: &[Option<i64>]) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for (o, &src) in map.iter().enumerate() {
        if let Some(last) = out.last_mut() {
            let extends = match (last.source, src) {
                (None, None) => true,
                (Some((start, step)), Some(s)) if last.len == 1 => {
                    let _ = step;
                    last.source = Some((start, s - start));
                    true
                }
                (Some((start, step)), Some(s)) => s == start + step * last.len as i64,
                _ => false,
            };
            if extends {
                last.len += 1;
                continue;
            }
        }
        out.push(Segment {
            out_start: o,
            len: 1,
            source: src.map(|s| (s, 0)),
        });
    }
    out
}

/// `out[o..] = x[map(o)..]` per axis, fill where any axis maps to `None`. `x_strides[a]` is the
/// element stride of output axis `a`'s input coordinate (0 for broadcast axes).
fn lower_piecewise(
    lw: &mut Lowerer,
    cx: &NodeCx,
    x: &Operand,
    out: &Operand,
    maps: &[Vec<Option<i64>>],
    x_strides: &[i64],
    fill: Expr,
) -> Result<(), String> {
    let rank = out.rank();
    let per_axis: Vec<Vec<Segment>> = maps.iter().map(|m| segments(m)).collect();
    let n_regions: usize = per_axis.iter().map(Vec::len).product();
    if n_regions > 4096 {
        return Err(format!("{n_regions} affine regions"));
    }
    let dst = row_major_strides(&out.shape);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let yb = k.output(out);
    let mut choice = vec![0usize; rank];
    for _ in 0..n_regions {
        let segs: Vec<&Segment> = (0..rank).map(|a| &per_axis[a][choice[a]]).collect();
        let extents: Vec<usize> = segs.iter().map(|s| s.len).collect();
        let out_offset: i64 = (0..rank).map(|a| segs[a].out_start as i64 * dst[a]).sum();
        let is_fill = segs.iter().any(|s| s.source.is_none());
        k.kb.loops(&extents, |kb, v| {
            let value = if is_fill {
                fill.clone()
            } else {
                let mut offset = 0i64;
                let mut terms = Vec::with_capacity(rank);
                for a in 0..rank {
                    let (start, step) = segs[a].source.expect("not a fill region");
                    offset += start * x_strides[a];
                    terms.push((v[a], step * x_strides[a]));
                }
                Expr::load(xb, Index::affine(terms, offset))
            };
            kb.store(yb, Index::strided(v, &dst, out_offset), value);
        });
        // Advance the mixed-radix region counter.
        for a in (0..rank).rev() {
            choice[a] += 1;
            if choice[a] < per_axis[a].len() {
                break;
            }
            choice[a] = 0;
        }
    }
    lw.emit(k);
    Ok(())
}

fn lower_gather(lw: &mut Lowerer, cx: &NodeCx, axis: i64) -> Result<(), String> {
    let (data, indices) = (cx.input(0)?, cx.input(1)?);
    let out = cx.output(0);
    if !indices.dtype.is_int() {
        return Err(format!("indices of {}", indices.dtype));
    }
    let axis = norm_axis(axis, data.rank())?;
    let d_strides = row_major_strides(&data.shape);
    let i_strides = row_major_strides(&indices.shape);
    let n_idx = indices.rank();
    let dst = row_major_strides(&out.shape);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let db = k.input(data);
    let ib = k.input(indices);
    let yb = k.output(out);
    k.kb.loops(&out.shape, |kb, v| {
        let (before, rest) = v.split_at(axis);
        let (idx_vars, after) = rest.split_at(n_idx);
        let mut index = Index::strided(before, &d_strides[..axis], 0).plus(Index::strided(
            after,
            &d_strides[axis + 1..],
            0,
        ));
        index.dynamic = Some(Box::new(DynamicTerm {
            value: Expr::load(ib, Index::strided(idx_vars, &i_strides, 0)),
            extent: data.shape[axis] as i64,
            stride: d_strides[axis],
        }));
        kb.store(yb, Index::strided(v, &dst, 0), Expr::load(db, index));
    });
    lw.emit(k);
    Ok(())
}

fn lower_gather_elements(lw: &mut Lowerer, cx: &NodeCx, axis: i64) -> Result<(), String> {
    let (data, indices) = (cx.input(0)?, cx.input(1)?);
    let out = cx.output(0);
    if !indices.dtype.is_int() || data.rank() != indices.rank() {
        return Err("gather_elements needs integer indices of data's rank".into());
    }
    let axis = norm_axis(axis, data.rank())?;
    let d_strides = row_major_strides(&data.shape);
    let mut other = d_strides.clone();
    other[axis] = 0;
    let i_strides = row_major_strides(&indices.shape);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let db = k.input(data);
    let ib = k.input(indices);
    let yb = k.output(out);
    k.kb.loops(&out.shape, |kb, v| {
        let mut index = Index::strided(v, &other, 0);
        index.dynamic = Some(Box::new(DynamicTerm {
            value: Expr::load(ib, Index::strided(v, &i_strides, 0)),
            extent: data.shape[axis] as i64,
            stride: d_strides[axis],
        }));
        kb.store(yb, Index::strided(v, &i_strides, 0), Expr::load(db, index));
    });
    lw.emit(k);
    Ok(())
}

fn lower_trilu(lw: &mut Lowerer, cx: &NodeCx, upper: bool, diag: i64) -> Result<(), String> {
    let x = cx.input(0)?;
    let out = cx.output(0);
    if x.rank() < 2 {
        return Err("trilu needs rank >= 2".into());
    }
    let r = x.rank();
    let strides = row_major_strides(&x.shape);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let yb = k.output(out);
    k.kb.loops(&x.shape, |kb, v| {
        let (row, col) = (v[r - 2], v[r - 1]);
        // Keep where col - row >= k (upper) or col - row <= k (lower).
        let offset = Expr::sub(Expr::Var(col), Expr::Var(row));
        let keep = Expr::cmp(
            if upper { CmpOp::Ge } else { CmpOp::Le },
            offset,
            Expr::Const(Scalar::I64(diag)),
        );
        let at = Index::strided(v, &strides, 0);
        kb.store(
            yb,
            at.clone(),
            Expr::select(keep, Expr::load(xb, at), cst(x.dtype, 0.0)),
        );
    });
    lw.emit(k);
    Ok(())
}

fn lower_range(
    lw: &mut Lowerer,
    cx: &NodeCx,
    start: f64,
    delta: f64,
    dtype: DType,
) -> Result<(), String> {
    let out = cx.output(0);
    if out.dtype != dtype || out.rank() != 1 {
        return Err("range output type".into());
    }
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let y = k.output(out);
    let i64c = |v: i64| Expr::Const(Scalar::I64(v));
    k.kb.loop_(out.len(), |kb, i| {
        let value = match dtype {
            DType::F32 | DType::F64 => {
                // sinter-ref rounds start and delta to the dtype, then computes in f64.
                let round = |v: f64| {
                    if dtype == DType::F32 {
                        f64::from(v as f32)
                    } else {
                        v
                    }
                };
                Expr::cast(
                    dtype,
                    Expr::add(
                        cst(DType::F64, round(start)),
                        Expr::mul(
                            Expr::cast(DType::F64, Expr::Var(i)),
                            cst(DType::F64, round(delta)),
                        ),
                    ),
                )
            }
            _ => Expr::cast(
                dtype,
                Expr::add(
                    i64c(start as i64),
                    Expr::mul(Expr::Var(i), i64c(delta as i64)),
                ),
            ),
        };
        kb.store(y, Index::var(i), value);
    });
    lw.emit(k);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_split_maps_into_affine_runs() {
        // Reflect pad of [a, b, c] by 2 on each side: c b | a b c | b a.
        let map = [
            Some(2),
            Some(1),
            Some(0),
            Some(1),
            Some(2),
            Some(1),
            Some(0),
        ];
        let segs = segments(&map);
        assert_eq!(
            segs,
            vec![
                Segment {
                    out_start: 0,
                    len: 3,
                    source: Some((2, -1))
                },
                Segment {
                    out_start: 3,
                    len: 2,
                    source: Some((1, 1))
                },
                Segment {
                    out_start: 5,
                    len: 2,
                    source: Some((1, -1))
                },
            ]
        );
        let fills = segments(&[None, None, Some(0), Some(1), None]);
        assert_eq!(fills.len(), 3);
        assert_eq!(
            fills[1],
            Segment {
                out_start: 2,
                len: 2,
                source: Some((0, 1))
            }
        );
    }
}
