//! Scaled dot-product attention with sinter-ref's (ONNX opset 23/24) semantics.
//!
//! Per batch, query head and query position the kernel computes the scores into a scratch row
//! (`scale * q . k_j`, the softcap, the mask bias, the causal mask), then softmax weights in place,
//! then `y = Σ_j p_j v_j`. The query-head loop is split into (kv head, head in group) so that
//! grouped-query attention reads kv head `h / group` with affine indices. 3-d and 4-d layouts are
//! strides over (batch, head, seq, dim). A mask is first turned into an additive bias in scratch
//! memory padded with `-inf` up to the key length (a bool mask adds 0 or `-inf`), then broadcast
//! by strides, so every load is in bounds.

use super::{broadcast_strides, cst, Lowerer, NodeCx, Operand};
use crate::builder::row_major_strides;
use crate::ir::*;
use sinter_ir::{DType, Op};
use std::ops::{Add, Div, Mul, Sub};

/// (batch, heads, seq, head_dim) of an operand and its element strides in that order.
fn head_view(t: &Operand, n_heads_attr: i64) -> Result<([usize; 4], [i64; 4]), String> {
    match *t.shape.as_slice() {
        [b, h, s, d] => {
            if n_heads_attr != 0 && n_heads_attr as usize != h {
                return Err("head count attribute disagrees with the shape".into());
            }
            let st = row_major_strides(&t.shape);
            Ok(([b, h, s, d], [st[0], st[1], st[2], st[3]]))
        }
        [b, s, hd] => {
            let h = usize::try_from(n_heads_attr)
                .ok()
                .filter(|&h| h >= 1 && hd % h == 0)
                .ok_or("3-d attention needs head counts that divide the hidden size")?;
            let d = hd / h;
            Ok(([b, h, s, d], [(s * hd) as i64, d as i64, hd as i64, 1]))
        }
        _ => Err("attention operands must be 3-d or 4-d".into()),
    }
}

pub(super) fn lower(lw: &mut Lowerer, cx: &NodeCx) -> Result<(), String> {
    let Op::Attention {
        scale,
        causal,
        q_num_heads,
        kv_num_heads,
        softcap,
    } = cx.op
    else {
        return Err("not attention".into());
    };
    let (q, k, v) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let mask = cx.optional_input(3);
    let out = cx.output(0);
    let dtype = q.dtype;
    if !dtype.is_float() || k.dtype != dtype || v.dtype != dtype {
        return Err("attention needs float operands of one dtype".into());
    }
    let (qs, qst) = head_view(q, *q_num_heads)?;
    let (ks, kst) = head_view(k, *kv_num_heads)?;
    let (vs, vst) = head_view(v, *kv_num_heads)?;
    let (n_batch, n_q_heads, q_seq, head_dim) = (qs[0], qs[1], qs[2], qs[3]);
    let (n_kv_heads, kv_seq, v_dim) = (ks[1], ks[2], vs[3]);
    if ks[0] != n_batch
        || vs[0] != n_batch
        || vs[1] != n_kv_heads
        || vs[2] != kv_seq
        || ks[3] != head_dim
        || n_kv_heads == 0
        || n_q_heads % n_kv_heads != 0
    {
        return Err("inconsistent q, k, v shapes".into());
    }
    let group = n_q_heads / n_kv_heads;
    let (_, ost) = head_view(out, *q_num_heads)?;
    let scale = scale.map_or(1.0 / (head_dim as f64).sqrt(), f64::from);
    let softcap = f64::from(*softcap);

    let mut kd = lw.kernel(&cx.stem, &[&cx.node]);
    let qb = kd.input(q);
    let kb_ = kd.input(k);
    let vb = kd.input(v);
    let mb = mask.map(|m| kd.input(m));
    let yb = kd.output(out);
    let scores = kd.scratch("scores", dtype, &[kv_seq.max(1)]);
    // The mask as an additive bias padded with -inf to the key length, and its broadcast strides
    // over (batch, q head, q position, key).
    let bias = match (mask, mb) {
        (Some(m), Some(mb)) => {
            if m.rank() > 4 || m.rank() == 0 || (m.dtype != DType::Bool && m.dtype != dtype) {
                return Err("the mask must be bool or q's dtype, rank 1 to 4".into());
            }
            let last = *m.shape.last().expect("rank >= 1");
            let mut padded = m.shape.clone();
            let n = padded.len();
            padded[n - 1] = last.max(kv_seq);
            let target = [n_batch, n_q_heads, q_seq, kv_seq];
            for (a, &dim) in padded.iter().enumerate() {
                let t = target[4 - n + a];
                if dim != 1 && dim != t {
                    return Err(format!(
                        "mask {:?} does not broadcast to {target:?}",
                        m.shape
                    ));
                }
            }
            let sb = kd.scratch("bias", dtype, &padded);
            let total: usize = padded.iter().product();
            kd.kb.loop_(total, |kb, i| {
                kb.store(sb, Index::var(i), cst(dtype, f64::NEG_INFINITY))
            });
            let src = row_major_strides(&m.shape);
            let dst = row_major_strides(&padded);
            kd.kb.loops(&m.shape, |kb, vars| {
                let value = Expr::load(mb, Index::strided(vars, &src, 0));
                let value = if m.dtype == DType::Bool {
                    Expr::select(value, cst(dtype, 0.0), cst(dtype, f64::NEG_INFINITY))
                } else {
                    value
                };
                kb.store(sb, Index::strided(vars, &dst, 0), value);
            });
            Some((sb, broadcast_strides(&padded, &target)))
        }
        _ => None,
    };
    kd.kb.loops(&[n_batch, n_kv_heads, group, q_seq], |kb, ov| {
        let (bv, kvh, gv, iv) = (ov[0], ov[1], ov[2], ov[3]);
        // Query head h = kvh * group + g.
        let q_at = |dv: LoopVar| {
            Index::affine(
                [
                    (bv, qst[0]),
                    (kvh, group as i64 * qst[1]),
                    (gv, qst[1]),
                    (iv, qst[2]),
                    (dv, qst[3]),
                ],
                0,
            )
        };
        kb.loop_(kv_seq, |kb, jv| {
            let acc = kb.local(dtype, cst(dtype, 0.0));
            kb.loop_(head_dim, |kb, dv| {
                let kv = Expr::load(
                    kb_,
                    Index::affine([(bv, kst[0]), (kvh, kst[1]), (jv, kst[2]), (dv, kst[3])], 0),
                );
                kb.assign(
                    acc,
                    Expr::fma(Expr::load(qb, q_at(dv)), kv, Expr::Local(acc)),
                );
            });
            let mut s = Expr::mul(Expr::Local(acc), cst(dtype, scale));
            if softcap > 0.0 {
                s = Expr::mul(
                    cst(dtype, softcap),
                    Expr::unary(UnaryOp::Tanh, Expr::div(s, cst(dtype, softcap))),
                );
            }
            if let Some((sb, st)) = &bias {
                let at = Index::affine(
                    [
                        (bv, st[0]),
                        (kvh, group as i64 * st[1]),
                        (gv, st[1]),
                        (iv, st[2]),
                        (jv, st[3]),
                    ],
                    0,
                );
                s = Expr::add(s, Expr::load(*sb, at));
            }
            if *causal {
                s = Expr::add(
                    s,
                    Expr::select(
                        Expr::cmp(CmpOp::Gt, Expr::Var(jv), Expr::Var(iv)),
                        cst(dtype, f64::NEG_INFINITY),
                        cst(dtype, 0.0),
                    ),
                );
            }
            kb.store(scores, Index::var(jv), s);
        });
        let max = kb.local(dtype, cst(dtype, f64::NEG_INFINITY));
        kb.loop_(kv_seq, |kb, jv| {
            kb.assign(
                max,
                Expr::max(Expr::Local(max), Expr::load(scores, Index::var(jv))),
            );
        });
        let sum = kb.local(dtype, cst(dtype, 0.0));
        kb.loop_(kv_seq, |kb, jv| {
            let e = Expr::unary(
                UnaryOp::Exp,
                Expr::sub(Expr::load(scores, Index::var(jv)), Expr::Local(max)),
            );
            kb.store(scores, Index::var(jv), e.clone());
            kb.assign(
                sum,
                Expr::add(Expr::Local(sum), Expr::load(scores, Index::var(jv))),
            );
        });
        kb.loop_(kv_seq, |kb, jv| {
            let p = Expr::div(Expr::load(scores, Index::var(jv)), Expr::Local(sum));
            kb.store(scores, Index::var(jv), p);
        });
        kb.loop_(v_dim, |kb, dv| {
            let acc = kb.local(dtype, cst(dtype, 0.0));
            kb.loop_(kv_seq, |kb, jv| {
                let vv = Expr::load(
                    vb,
                    Index::affine([(bv, vst[0]), (kvh, vst[1]), (jv, vst[2]), (dv, vst[3])], 0),
                );
                kb.assign(
                    acc,
                    Expr::fma(Expr::load(scores, Index::var(jv)), vv, Expr::Local(acc)),
                );
            });
            let at = Index::affine(
                [
                    (bv, ost[0]),
                    (kvh, group as i64 * ost[1]),
                    (gv, ost[1]),
                    (iv, ost[2]),
                    (dv, ost[3]),
                ],
                0,
            );
            kb.store(yb, at, Expr::Local(acc));
        });
    });
    lw.emit(kd);
    Ok(())
}
