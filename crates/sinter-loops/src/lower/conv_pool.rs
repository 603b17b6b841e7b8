//! conv_pool: `pool(activation(conv(x, w, b)))` without materialising the convolution's output.
//!
//! The pool reads the convolution's output in a space padded for the pool (`space`: the pool's
//! begin pad, the convolution's output, the end pad and any `ceil_mode` overhang). One kernel walks
//! `for n, group, band` (rows = the first spatial axis), a band being `R` consecutive pooled rows,
//! and per band:
//! 1. computes the **band** of convolution rows those pooled rows need (`(R - 1) * pool_stride[0] +
//!    pool_kernel[0]` rows of `space`, all of its other axes) for the group's output channels into a
//!    scratch buffer of `M/group * band_rows * Π space[1..]` elements, activation applied: for f32
//!    convolutions that suit tiles with the tile machinery of `conv.rs` (an im2col of the band,
//!    `depth x band` elements of scratch, then one tile nest whose epilogue adds the bias and
//!    applies the activation); otherwise with a direct nest;
//! 2. pools the band into its `R` output rows (through the graph's elementwise chain, if fused).
//!
//! `R` is the largest divisor of the pooled rows whose scratch stays cache-sized (the band's im2col
//! at most 128 KiB, the band 64 KiB: [`pooled_rows_per_band`]), so the scratch is bounded whatever
//! the image size; a small convolution fits in one band. Overlapping windows (pool stride < pool
//! kernel) recompute the rows two bands share, at most a factor of `pool_kernel[0] /
//! pool_stride[0]` on the convolution's work (with `R = 1`). `x` is copied once (when it needs
//! padding) into a zero-filled scratch padded so that every band position, pool padding included,
//! is computable with affine, in-bounds loads; positions in the pool's padding are then masked by a
//! weight of `space`'s shape (1 inside the convolution's output, 0 outside) to the pool's identity
//! (`-inf` for max, 0 for average), exactly as `pool.rs` pads. The average divisor is `pool.rs`'s. The activation is the
//! scalar function of the activation op of `Op::fused_parts`.

use super::conv::{conv_geometry, padded_source, per_axis_or_ones, resolve_pads};
use super::conv::{weight_index, ConvGeometry, PaddedCopy};
use super::elementwise::{scalar_fn, ScalarFn};
use super::fuse::own_steps;
use super::pool::{average_divisor, float_max_step, PoolWindow};
use super::tiles::{emit_tiles, BLayout, Columns, TileEpilogueFn, TileNest};
use super::{cst, Lowerer, NodeCx, Operand};
use crate::builder::{row_major_strides, KernelBuilder};
use crate::ir::*;
use sinter_ir::geometry::dilated_extent;
use sinter_ir::{infer_types, AutoPad, DType, Op, Tensor, TensorData, TensorType};
use std::ops::{Add, Div};

/// The pool of a conv_pool, resolved.
struct Pool {
    max: bool,
    kernel: Vec<usize>,
    stride: Vec<usize>,
    begin: Vec<usize>,
    end: Vec<usize>,
    count_include_pad: bool,
}

pub(super) fn lower(lw: &mut Lowerer, cx: &NodeCx) -> Result<(), String> {
    let (parts, own) = own_steps(cx)?;
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let bias = cx.optional_input(2);
    let out = cx.output(0);
    let dtype = x.dtype;
    // The convolution's output shape, from its part, as inference gives it.
    let ty = |o: &Operand| TensorType::fixed(o.dtype, &o.shape);
    let (xt, wt, bt) = (ty(x), ty(w), bias.map(ty));
    let conv_ty = infer_types(&parts.product, &[Some(&xt), Some(&wt), bt.as_ref()])
        .map_err(|e| e.to_string())?;
    let conv_shape = conv_ty[0]
        .shape
        .as_static()
        .ok_or("the convolution's output is symbolic")?;
    let g = conv_geometry(&parts.product, x, w, &conv_shape[2..])?;
    let n_sp = g.kernel.len();
    let conv_sp = &conv_shape[2..];
    let (max, kernel_shape, strides, pads, count_include_pad) = match &parts.pool {
        Some(Op::MaxPool {
            kernel_shape,
            strides,
            pads,
            ..
        }) => (true, kernel_shape, strides, pads, false),
        Some(Op::AveragePool {
            kernel_shape,
            strides,
            pads,
            count_include_pad,
            ..
        }) => (false, kernel_shape, strides, pads, *count_include_pad),
        _ => return Err("conv_pool without a pool".into()),
    };
    if kernel_shape.len() != n_sp {
        return Err(format!(
            "`pool_kernel_shape` {kernel_shape:?} needs {n_sp} entries"
        ));
    }
    let kernel = per_axis_or_ones("pool_kernel_shape", kernel_shape, n_sp)?;
    let stride = per_axis_or_ones("pool_strides", strides, n_sp)?;
    let (begin, end) = resolve_pads(AutoPad::NotSet, pads, conv_sp, &stride, &kernel)?;
    let pool = Pool {
        max,
        kernel,
        stride,
        begin,
        end,
        count_include_pad,
    };
    if out.rank() != n_sp + 2 {
        return Err("the output's rank differs from the input's".into());
    }
    if out.len() == 0 {
        // Nothing to compute; the empty output needs no kernel.
        return Ok(());
    }
    // conv_pool has no addend: its only own step is the activation.
    let activation = own
        .first()
        .map(|step| scalar_fn(&step.op, &[dtype]))
        .transpose()?;
    lower_banded(lw, cx, &g, conv_sp, &pool, activation)
}

fn lower_banded(
    lw: &mut Lowerer,
    cx: &NodeCx,
    g: &ConvGeometry,
    conv_sp: &[usize],
    pool: &Pool,
    activation: Option<ScalarFn>,
) -> Result<(), String> {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let bias = cx.optional_input(2);
    let out = cx.output(0);
    let dtype = x.dtype;
    let n_sp = g.kernel.len();
    let pooled = &out.shape[2..];
    let (pk, ps) = (&pool.kernel, &pool.stride);
    // The pool-padded convolution output: position p is convolution output p - pool.begin.
    let space: Vec<usize> = (0..n_sp)
        .map(|a| {
            let needed = (pooled[a] - 1) * ps[a] + pk[a];
            (conv_sp[a] + pool.begin[a] + pool.end[a]).max(needed)
        })
        .collect();
    // Convolution output p - pool.begin reads x at p * s + k * d - (begin + pool.begin * s).
    let extent: Vec<usize> = (0..n_sp)
        .map(|a| dilated_extent(g.kernel[a], g.dilation[a]))
        .collect();
    let x_begin: Vec<usize> = (0..n_sp)
        .map(|a| g.begin[a] + pool.begin[a] * g.stride[a])
        .collect();
    let in_sp = &x.shape[2..];
    let x_padded: Vec<usize> = (0..n_sp)
        .map(|a| (in_sp[a] + x_begin[a]).max((space[a] - 1) * g.stride[a] + extent[a]))
        .collect();
    let needs_mask = (0..n_sp).any(|a| pool.begin[a] > 0 || space[a] > conv_sp[a]);

    let mask = if needs_mask {
        let space_strides = row_major_strides(&space);
        let n: usize = space.iter().product();
        let valid = (0..n).map(|flat| {
            let inside = (0..n_sp).all(|a| {
                let p = (flat / space_strides[a] as usize) % space[a];
                p >= pool.begin[a] && p < pool.begin[a] + conv_sp[a]
            });
            if inside {
                1.0
            } else {
                0.0
            }
        });
        let tensor = Tensor::new(space.clone(), TensorData::from_f64s(dtype, valid))
            .map_err(|e| e.to_string())?;
        Some(lw.weight(format!("{}.pool_mask", out.name), tensor))
    } else {
        None
    };
    let divisor = if pool.max {
        None
    } else {
        let ones = vec![1; n_sp];
        let window = PoolWindow {
            in_sp: conv_sp,
            out_sp: pooled,
            kernel: pk,
            stride: ps,
            dilation: &ones,
            begin: &pool.begin,
            end: &pool.end,
        };
        Some(average_divisor(
            lw,
            &out.name,
            dtype,
            &window,
            pool.count_include_pad,
        )?)
    };
    let use_tiles = dtype == DType::F32 && g.suits_tiles();
    let (cg, mg, depth) = (g.cg, g.mg, g.depth());
    let row_len: usize = space[1..].iter().product();
    let per_band = pooled_rows_per_band(pooled[0], pk[0], ps[0], row_len, depth, mg);
    let band_rows = (per_band - 1) * ps[0] + pk[0];
    let mut band_dims = vec![mg, band_rows];
    band_dims.extend_from_slice(&space[1..]);
    let band_len = band_rows * row_len;

    let chain = lw.take_epilogue(cx, 0, &out.shape);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let wb = k.input(w);
    let bb = bias.map(|b| k.input(b));
    let mb = mask.as_ref().map(|m| k.input(m));
    let db = divisor.as_ref().map(|d| k.input(d));
    let y = k.sink(out, chain);
    let (src, src_shape) = padded_source(
        &mut k,
        PaddedCopy {
            x: xb,
            x_shape: &x.shape,
            n_lead: 2,
            begin: &x_begin,
            padded: &x_padded,
            fill: cst(dtype, 0.0),
            dtype,
        },
    );
    let col = use_tiles.then(|| k.scratch("band_col", dtype, &[depth * band_len]));
    let band = k.scratch("band", dtype, &[mg * band_len]);
    if use_tiles && !y.is_expression() {
        return Err("the fused elementwise chain does not fit a tile epilogue".into());
    }
    let src_strides = row_major_strides(&src_shape);
    let w_strides = row_major_strides(&w.shape);
    let y_strides = row_major_strides(&out.shape);
    let band_strides = row_major_strides(&band_dims);
    let space_strides = row_major_strides(&space);
    let pooled_strides = row_major_strides(pooled);
    let (cs, cd) = (&g.stride, &g.dilation);
    // The value of a masked (padding) position, and the accumulator's start.
    let (fill, init) = if pool.max {
        (cst(dtype, f64::NEG_INFINITY), cst(dtype, f64::NAN))
    } else {
        (cst(dtype, 0.0), cst(dtype, 0.0))
    };
    let band_step = (per_band * ps[0]) as i64;
    k.kb.loops(&[g.n_batch, g.group, pooled[0] / per_band], |kb, v| {
        let (nv, gv, hv) = (v[0], v[1], v[2]);
        // The padded x read for input channel `cv` of the group, kernel taps `kv` and band
        // position `bv` (band row, then the positions of the other axes of `space`).
        let x_index = |cv: LoopVar, kv: &[LoopVar], bv: &[LoopVar]| -> Index {
            let mut terms = vec![
                (nv, src_strides[0]),
                (gv, cg as i64 * src_strides[1]),
                (cv, src_strides[1]),
                (hv, band_step * cs[0] as i64 * src_strides[2]),
            ];
            for a in 0..n_sp {
                terms.push((bv[a], cs[a] as i64 * src_strides[2 + a]));
                terms.push((kv[a], cd[a] as i64 * src_strides[2 + a]));
            }
            Index::affine(terms, 0)
        };
        let activate = |kb: &mut KernelBuilder, value: Expr| match &activation {
            Some(f) => f(kb, &[value]),
            None => value,
        };
        let mut band_extents = band_dims[1..].to_vec();
        if let Some(col) = col {
            // The band's im2col: row (channel, kernel taps), column (band position).
            let mut row_dims = vec![cg];
            row_dims.extend_from_slice(&g.kernel);
            let row_strides = row_major_strides(&row_dims);
            let mut extents = row_dims.clone();
            extents.append(&mut band_extents);
            kb.loops(&extents, |kb, iv| {
                let (cv, kv, bv) = (iv[0], &iv[1..1 + n_sp], &iv[1 + n_sp..]);
                let mut dst = vec![(cv, row_strides[0] * band_len as i64)];
                for a in 0..n_sp {
                    dst.push((kv[a], row_strides[1 + a] * band_len as i64));
                    dst.push((bv[a], band_strides[1 + a]));
                }
                kb.store(
                    col,
                    Index::affine(dst, 0),
                    Expr::load(src, x_index(cv, kv, bv)),
                );
            });
            let epilogue = |kb: &mut KernelBuilder, acc: Expr, mi: &Index, _: &Index| {
                let value = match bb {
                    Some(b) => Expr::add(
                        acc,
                        Expr::load(b, Index::affine([(gv, mg as i64)], 0).plus(mi.clone())),
                    ),
                    None => acc,
                };
                activate(kb, value)
            };
            let nest = TileNest {
                m: mg,
                n: band_len,
                k: depth,
                a: wb,
                a_base: Index::affine([(gv, (mg * depth) as i64)], 0),
                a_m: depth as i64,
                a_k: 1,
                b: col,
                b_base: Index::constant(0),
                b_layout: BLayout::Rows {
                    row: band_len as i64,
                },
                c: band,
                c_base: Index::constant(0),
                c_m: band_len as i64,
                epilogue: (bb.is_some() || activation.is_some())
                    .then_some(&epilogue as &TileEpilogueFn),
            };
            emit_tiles(kb, &nest, Columns::All);
        } else {
            let mut extents = vec![mg];
            extents.append(&mut band_extents);
            kb.loops(&extents, |kb, ov| {
                let (mv, bv) = (ov[0], &ov[1..]);
                let init = match bb {
                    Some(b) => Expr::load(b, Index::affine([(gv, mg as i64), (mv, 1)], 0)),
                    None => cst(dtype, 0.0),
                };
                let acc = kb.local(dtype, init);
                let mut inner = vec![cg];
                inner.extend_from_slice(&g.kernel);
                kb.loops(&inner, |kb, iv| {
                    let (cv, kv) = (iv[0], &iv[1..]);
                    let product = Expr::fma(
                        Expr::load(src, x_index(cv, kv, bv)),
                        Expr::load(wb, weight_index(&w_strides, mg, [gv, mv, cv], kv)),
                        Expr::Local(acc),
                    );
                    kb.assign(acc, product);
                });
                let value = activate(kb, Expr::Local(acc));
                kb.store(band, Index::strided(ov, &band_strides, 0), value);
            });
        }
        // Pool the band into its pooled rows: row `tv` of band `hv` is pooled row
        // `hv * per_band + tv`.
        let mut extents = vec![mg, per_band];
        extents.extend_from_slice(&pooled[1..]);
        kb.loops(&extents, |kb, ov| {
            let (mv, tv, pw) = (ov[0], ov[1], &ov[2..]);
            let acc = kb.local(dtype, init.clone());
            kb.loops(pk, |kb, jv| {
                let mut terms = vec![
                    (mv, band_strides[0]),
                    (tv, ps[0] as i64 * band_strides[1]),
                    (jv[0], band_strides[1]),
                ];
                let mut mask_terms = vec![
                    (hv, band_step * space_strides[0]),
                    (tv, ps[0] as i64 * space_strides[0]),
                    (jv[0], space_strides[0]),
                ];
                for a in 1..n_sp {
                    terms.push((pw[a - 1], ps[a] as i64 * band_strides[1 + a]));
                    terms.push((jv[a], band_strides[1 + a]));
                    mask_terms.push((pw[a - 1], ps[a] as i64 * space_strides[a]));
                    mask_terms.push((jv[a], space_strides[a]));
                }
                let mut value = Expr::load(band, Index::affine(terms, 0));
                if let Some(m) = mb {
                    let valid = Expr::cmp(
                        CmpOp::Ne,
                        Expr::load(m, Index::affine(mask_terms, 0)),
                        cst(dtype, 0.0),
                    );
                    value = Expr::Local(kb.local(dtype, Expr::select(valid, value, fill.clone())));
                }
                let a = Expr::Local(acc);
                let next = if pool.max {
                    float_max_step(a, value)
                } else {
                    Expr::add(a, value)
                };
                kb.assign(acc, next);
            });
            let mut result = Expr::Local(acc);
            if let Some(d) = db {
                let mut d_terms = vec![
                    (hv, per_band as i64 * pooled_strides[0]),
                    (tv, pooled_strides[0]),
                ];
                for a in 1..n_sp {
                    d_terms.push((pw[a - 1], pooled_strides[a]));
                }
                result = Expr::div(result, Expr::load(d, Index::affine(d_terms, 0)));
            }
            let mut y_terms = vec![
                (nv, y_strides[0]),
                (gv, mg as i64 * y_strides[1]),
                (mv, y_strides[1]),
                (hv, per_band as i64 * y_strides[2]),
                (tv, y_strides[2]),
            ];
            let mut coords = vec![
                Index::var(nv),
                Index::affine([(gv, mg as i64), (mv, 1)], 0),
                Index::affine([(hv, per_band as i64), (tv, 1)], 0),
            ];
            for a in 1..n_sp {
                y_terms.push((pw[a - 1], y_strides[2 + a]));
                coords.push(Index::var(pw[a - 1]));
            }
            y.store(kb, Index::affine(y_terms, 0), result, &coords);
        });
    });
    lw.emit(k);
    Ok(())
}

/// The most elements of the band's im2col scratch (128 KiB of f32: L2-resident) and of the band
/// itself (64 KiB) when choosing how many pooled rows one band covers.
const MAX_BAND_COL: usize = 32 << 10;
const MAX_BAND: usize = 16 << 10;

/// How many pooled rows one band computes: the largest divisor of `n_pooled` whose band
/// (`(rows - 1) * stride + kernel` convolution rows of `row_len` positions) keeps the im2col
/// (`depth` rows) and the band (`mg` channels) within [`MAX_BAND_COL`] and [`MAX_BAND`]; at least 1.
/// More rows per band amortise the tile nests' setup and recompute fewer overlapping rows.
fn pooled_rows_per_band(
    n_pooled: usize,
    kernel: usize,
    stride: usize,
    row_len: usize,
    depth: usize,
    mg: usize,
) -> usize {
    (1..=n_pooled)
        .rev()
        .filter(|rows| n_pooled.is_multiple_of(*rows))
        .find(|&rows| {
            let band_len = ((rows - 1) * stride + kernel) * row_len;
            band_len * depth <= MAX_BAND_COL && band_len * mg <= MAX_BAND
        })
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_are_the_largest_divisor_within_the_budget() {
        // lenet's conv1 (24 rows of 24, depth 25, 6 channels): the whole image in one band.
        assert_eq!(pooled_rows_per_band(12, 2, 2, 24, 25, 6), 12);
        // Depth 72: 12 pooled rows would need 41472 im2col elements; 6 rows need 20736.
        assert_eq!(pooled_rows_per_band(12, 2, 2, 24, 72, 16), 6);
        // Overlapping windows: 4 rows of stride 2 and kernel 3 are 9 convolution rows.
        assert_eq!(pooled_rows_per_band(8, 3, 2, 100, 32, 8), 4);
        // A prime count, or a single row over budget, gives one pooled row per band.
        assert_eq!(pooled_rows_per_band(19, 2, 2, 38, 72, 16), 1);
        assert_eq!(pooled_rows_per_band(4, 2, 2, 1 << 20, 72, 16), 1);
    }
}
