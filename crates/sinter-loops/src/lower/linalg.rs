//! matmul, fused_matmul and gemm, all as one parametrised matrix product ([`Product`]; fused_matmul's
//! bias is the product's `c`, its activation the first epilogue step):
//! `for batch.. { for m { for n { acc = 0; for k { acc = fma(a[m,k], b[k,n], acc) } store } } }`.
//!
//! `n` sits outside `k` so the scheduler can vectorise `n` (b and the output are contiguous in it).
//! Operand layouts (transposes, 1-d promotion, broadcast batch dims) are strides, never copies.
//! Float products accumulate in the operand dtype with fused multiply-adds (sinter-ref accumulates
//! in f64; the difference is within the fixture tolerances for the sizes in use); integer products
//! wrap, exactly as sinter-ref's.

use super::fuse::{own_steps, var_coords, OwnStep};
use super::tiles::{
    emit_pack, emit_tiles, kernel_parts, pack_panels, BLayout, TileEpilogueFn, TileNest,
};
use super::{broadcast_strides, cst, Lowerer, NodeCx, Operand};
use crate::builder::{row_major_strides, KernelBuilder};
use crate::ir::*;
use sinter_ir::{DType, Op, TensorData};
use std::ops::{Add, Mul};

/// One (batched) matrix product `out[b.., m, n] = alpha * Σ_k a[b.., m, k] * b[b.., k, n] + beta * c`.
pub(crate) struct Product<'a> {
    pub batch: Vec<usize>,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a: &'a Operand,
    /// Per batch dim, then the row (m) and inner (k) strides.
    pub a_batch: Vec<i64>,
    pub a_m: i64,
    pub a_k: i64,
    pub b: &'a Operand,
    pub b_batch: Vec<i64>,
    pub b_k: i64,
    pub b_n: i64,
    pub out: &'a Operand,
    pub out_batch: Vec<i64>,
    pub out_m: i64,
    pub out_n: i64,
    pub alpha: f64,
    /// `beta` and `c` with its strides over (batch.., m, n).
    pub bias: Option<(f64, &'a Operand, Vec<i64>)>,
    /// A fused op's own epilogue steps (its activation), applied after the bias.
    pub own: &'a [OwnStep],
}

pub(crate) fn lower_product(lw: &mut Lowerer, cx: &NodeCx, p: &Product) -> Result<(), String> {
    let dtype = p.out.dtype;
    if !matches!(dtype, DType::F32 | DType::F64 | DType::I32 | DType::I64) {
        return Err(format!("matrix products of {dtype}"));
    }
    if p.a.dtype != dtype || p.b.dtype != dtype {
        return Err(format!("operands of {} and {}", p.a.dtype, p.b.dtype));
    }
    if dtype == DType::F32 && p.k > 0 && p.m * p.n >= MIN_TILED_OUTPUTS {
        return lower_product_tiled(lw, cx, p);
    }
    let float = dtype.is_float();
    if !float && (p.alpha != 1.0 || p.bias.as_ref().is_some_and(|(beta, _, _)| *beta != 1.0)) {
        return Err("integer gemm with alpha or beta other than 1".into());
    }
    let mut view = p.batch.clone();
    view.extend([p.m, p.n]);
    let epilogue = lw.fused_epilogue(cx, 0, &view, p.own, false)?;
    let mut kd = lw.kernel(&cx.stem, &[&cx.node]);
    let a = kd.input(p.a);
    let b = kd.input(p.b);
    let c = p
        .bias
        .as_ref()
        .map(|(beta, c, strides)| (*beta, kd.input(c), strides));
    let y = kd.sink(p.out, epilogue);
    let mut extents = p.batch.clone();
    extents.extend([p.m, p.n]);
    kd.kb.loops(&extents, |kb, vars| {
        let (batch_vars, mn) = vars.split_at(p.batch.len());
        let (mv, nv) = (mn[0], mn[1]);
        let acc = kb.local(dtype, cst(dtype, 0.0));
        kb.loop_(p.k, |kb, kv| {
            let a_idx = Index::strided(batch_vars, &p.a_batch, 0)
                .plus(Index::affine([(mv, p.a_m), (kv, p.a_k)], 0));
            let b_idx = Index::strided(batch_vars, &p.b_batch, 0)
                .plus(Index::affine([(kv, p.b_k), (nv, p.b_n)], 0));
            let (x, w) = (Expr::load(a, a_idx), Expr::load(b, b_idx));
            let value = if float {
                Expr::fma(x, w, Expr::Local(acc))
            } else {
                Expr::add(Expr::Local(acc), Expr::mul(x, w))
            };
            kb.assign(acc, value);
        });
        let mut result = Expr::Local(acc);
        if p.alpha != 1.0 {
            result = Expr::mul(cst(dtype, p.alpha), result);
        }
        if let Some((beta, c, strides)) = &c {
            let c_val = Expr::load(*c, Index::strided(vars, strides, 0));
            let scaled = if *beta == 1.0 {
                c_val
            } else {
                Expr::mul(cst(dtype, *beta), c_val)
            };
            result = Expr::add(result, scaled);
        }
        let out_idx = Index::strided(batch_vars, &p.out_batch, 0)
            .plus(Index::affine([(mv, p.out_m), (nv, p.out_n)], 0));
        y.store(kb, out_idx, result, &var_coords(vars));
    });
    lw.emit(kd);
    Ok(())
}

/// f32 products with at least this many outputs use register tiles; smaller ones (a few dot
/// products) use the plain nest, which compiles to less code.
const MIN_TILED_OUTPUTS: usize = 16;

/// A computed `b` with contiguous rows is read in place, without packing, when `m` is below this:
/// packing costs a pass over `b`, which only pays when many row tiles reuse each panel.
const MIN_ROWS_TO_PACK: usize = 32;

/// [`lower_product`] with [`tiles`]: `b` packed into panels (at build time for weights), then the
/// tile nest. Without batch dims the last `n % NR` columns get their own kernel, so the main
/// kernel is one loop over panels that the scheduler can run in parallel.
fn lower_product_tiled(lw: &mut Lowerer, cx: &NodeCx, p: &Product) -> Result<(), String> {
    let (m, n, k) = (p.m, p.n, p.k);
    // The matrices of `b`: consecutive k*n blocks (batch strides are multiples of k*n).
    let n_matrices = p.b.len() / (k * n).max(1);
    let weight = lw.weight_tensor(p.b).cloned();
    let (b_operand, b_layout) = match weight {
        Some(tensor) => {
            let TensorData::F32(data) = tensor.data() else {
                return Err(format!("weight {} is not f32", p.b.name));
            };
            let packed = pack_panels(data, n_matrices, k, n, p.b_k, p.b_n)?;
            let name = format!("{}.panels", p.b.name);
            (lw.weight(name, packed), BLayout::Panels)
        }
        None if p.b_n == 1 && m < MIN_ROWS_TO_PACK => (p.b.clone(), BLayout::Rows { row: p.b_k }),
        None => {
            let packed = lw.computed(format!("{}.panels", p.b.name), DType::F32, vec![p.b.len()]);
            let mut kd = lw.kernel(&format!("{}_pack_b", cx.stem), &[&cx.node]);
            let b = kd.input(p.b);
            let out = kd.output(&packed);
            emit_pack(&mut kd, b, out, (n_matrices, k, n), (p.b_k, p.b_n));
            lw.emit(kd);
            (packed, BLayout::Panels)
        }
    };
    // An elementwise chain on the product (bias, activation, residual) joins the tiles' epilogue.
    let mut view = p.batch.clone();
    view.extend([m, n]);
    let chain = lw.fused_epilogue(cx, 0, &view, p.own, true)?;
    for (stem, columns) in kernel_parts(&cx.stem, p.batch.iter().product(), n) {
        let mut kd = lw.kernel(&stem, &[&cx.node]);
        let a = kd.input(p.a);
        let b = kd.input(&b_operand);
        let bias = p
            .bias
            .as_ref()
            .map(|(beta, c, strides)| (*beta, kd.input(c), strides.clone()));
        let y = kd.sink(p.out, chain.clone());
        let alpha = p.alpha;
        if !y.is_expression() {
            return Err("the fused elementwise chain does not fit a tile epilogue".into());
        }
        let y_buf = y.buf;
        kd.kb.loops(&p.batch, |kb, batch_vars| {
            let epilogue = |_: &mut KernelBuilder, acc: Expr, mi: &Index, ni: &Index| {
                let mut coords = var_coords(batch_vars);
                coords.extend([mi.clone(), ni.clone()]);
                let mut value = acc;
                if alpha != 1.0 {
                    value = Expr::mul(Expr::f32(alpha as f32), value);
                }
                if let Some((beta, c, strides)) = &bias {
                    let c_val = Expr::load(*c, Index::at_coords(&coords, strides));
                    let scaled_c = if *beta == 1.0 {
                        c_val
                    } else {
                        Expr::mul(Expr::f32(*beta as f32), c_val)
                    };
                    value = Expr::add(value, scaled_c);
                }
                y.expression(value, &coords)
            };
            let needs_epilogue = alpha != 1.0 || bias.is_some() || chain.is_some();
            let nest = TileNest {
                m,
                n,
                k,
                a,
                a_base: Index::strided(batch_vars, &p.a_batch, 0),
                a_m: p.a_m,
                a_k: p.a_k,
                b,
                b_base: Index::strided(batch_vars, &p.b_batch, 0),
                b_layout,
                c: y_buf,
                c_base: Index::strided(batch_vars, &p.out_batch, 0),
                c_m: p.out_m,
                epilogue: needs_epilogue.then_some(&epilogue as &TileEpilogueFn),
            };
            emit_tiles(kb, &nest, columns);
        });
        lw.emit(kd);
    }
    Ok(())
}

pub(super) fn lower(lw: &mut Lowerer, cx: &NodeCx) -> Result<(), String> {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    let out = cx.output(0);
    match *cx.op {
        Op::MatMul {} | Op::FusedMatMul { .. } => {
            if a.rank() == 0 || b.rank() == 0 {
                return Err("matmul of a scalar".into());
            }
            let a_shape: Vec<usize> = if a.rank() == 1 {
                vec![1, a.shape[0]]
            } else {
                a.shape.clone()
            };
            let b_shape: Vec<usize> = if b.rank() == 1 {
                vec![b.shape[0], 1]
            } else {
                b.shape.clone()
            };
            let (a_batch, a_mat) = a_shape.split_at(a_shape.len() - 2);
            let (b_batch, b_mat) = b_shape.split_at(b_shape.len() - 2);
            let (m, k, n) = (a_mat[0], a_mat[1], b_mat[1]);
            if b_mat[0] != k {
                return Err(format!("inner dims {k} and {} differ", b_mat[0]));
            }
            let n_batch = a_batch.len().max(b_batch.len());
            let batch: Vec<usize> = out.shape[..n_batch].to_vec();
            // The output viewed as [batch.., m, n] (1-d promotions re-inserted as size-1 dims).
            let mut out_full = batch.clone();
            out_full.extend([m, n]);
            if out_full.iter().product::<usize>() != out.len() {
                return Err(format!(
                    "output shape {:?} does not match the product",
                    out.shape
                ));
            }
            let out_strides = row_major_strides(&out_full);
            let a_strides = row_major_strides(a_mat);
            let b_strides = row_major_strides(b_mat);
            let a_batch_strides = scaled(broadcast_strides(a_batch, &batch), m * k);
            let b_batch_strides = scaled(broadcast_strides(b_batch, &batch), k * n);
            // fused_matmul: the bias (read with the product's broadcast over the output's shape,
            // then over `out_full`, where 1-d promotions are size-1 dims) and the activation.
            let (own, bias) = if cx.op.is_fused() {
                let (parts, mut own) = own_steps(cx)?;
                let bias = match parts.addend_slot.and_then(|slot| cx.optional_input(slot)) {
                    Some(bias) => {
                        own.remove(0);
                        let strides = broadcast_strides(&bias.shape, &out.shape);
                        let mut full = strides[..n_batch].to_vec();
                        let mut rest = strides[n_batch..].iter().copied();
                        full.push(if a.rank() == 1 {
                            0
                        } else {
                            rest.next().unwrap_or(0)
                        });
                        full.push(if b.rank() == 1 {
                            0
                        } else {
                            rest.next().unwrap_or(0)
                        });
                        Some((1.0, bias, full))
                    }
                    None => None,
                };
                (own, bias)
            } else {
                (Vec::new(), None)
            };
            lower_product(
                lw,
                cx,
                &Product {
                    batch,
                    m,
                    k,
                    n,
                    a,
                    a_batch: a_batch_strides,
                    a_m: if m == 1 { 0 } else { a_strides[0] },
                    a_k: a_strides[1],
                    b,
                    b_batch: b_batch_strides,
                    b_k: b_strides[0],
                    b_n: if n == 1 { 0 } else { b_strides[1] },
                    out,
                    out_batch: out_strides[..n_batch].to_vec(),
                    out_m: out_strides[n_batch],
                    out_n: out_strides[n_batch + 1],
                    alpha: 1.0,
                    bias,
                    own: &own,
                },
            )
        }
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            if a.rank() != 2 || b.rank() != 2 {
                return Err("gemm needs 2-d operands".into());
            }
            let (m, k, a_m, a_k) = if trans_a {
                (a.shape[1], a.shape[0], 1, a.shape[1] as i64)
            } else {
                (a.shape[0], a.shape[1], a.shape[1] as i64, 1)
            };
            let (n, b_k, b_n) = if trans_b {
                (b.shape[0], 1, b.shape[1] as i64)
            } else {
                (b.shape[1], b.shape[1] as i64, 1)
            };
            // ONNX's reference skips `c` when beta is 0, so NaN in `c` does not leak through.
            let bias = match cx.optional_input(2) {
                Some(c) if beta != 0.0 => {
                    if c.rank() > 2 {
                        return Err("c of rank > 2".into());
                    }
                    Some((f64::from(beta), c, broadcast_strides(&c.shape, &[m, n])))
                }
                _ => None,
            };
            lower_product(
                lw,
                cx,
                &Product {
                    batch: vec![],
                    m,
                    k,
                    n,
                    a,
                    a_batch: vec![],
                    a_m,
                    a_k,
                    b,
                    b_batch: vec![],
                    b_k,
                    b_n,
                    out,
                    out_batch: vec![],
                    out_m: n as i64,
                    out_n: 1,
                    alpha: f64::from(alpha),
                    bias,
                    own: &[],
                },
            )
        }
        _ => Err("not a linear algebra op".into()),
    }
}

fn scaled(strides: Vec<i64>, factor: usize) -> Vec<i64> {
    strides.into_iter().map(|s| s * factor as i64).collect()
}
