//! Scaled dot-product attention with sinter-ref's (ONNX opset 23/24) semantics, as a streaming
//! ("flash") softmax over blocks of keys.
//!
//! For every batch, query head and block of up to [`BLOCK`] query rows, the kernel walks the keys in
//! blocks of [`BLOCK`] and keeps, per query row, the running maximum `m` of the scores seen so far,
//! the running sum `l` of `exp(s - m)` and the output row itself as the accumulator:
//!
//! ```text
//! qt[d][r]   = scale * q[i0 + r][d]                      (the query block, transposed, once)
//! m = -inf, l = 0, y[i0 + r][..] = 0
//! for each key block j0 (causal: blocks above the diagonal are skipped):
//!     st[c][r] = Σ_d k[j0 + c][d] qt[d][r]              (register tiles; epilogue: softcap, mask
//!                                                        bias, causal triangle on the diagonal)
//!     m' = max(m, max_c st[c][r]);  ms = (m' == -inf) ? 0 : m'
//!     st[c][r] = exp(st[c][r] - ms);  alpha = exp(m - ms);  l = l * alpha + Σ_c st[c][r];  m = m'
//!     y[i0 + r][e] *= alpha;  y[i0 + r][e] += Σ_c st[c][r] v[j0 + c][e]   (accumulating tiles)
//! y[i0 + r][e] /= l
//! ```
//!
//! The scores are kept *transposed* (keys by queries) so that the per-row statistics (max, exp,
//! sum) are loops over the query rows that vectorize four rows at a time, with the key loop inside;
//! both products are [`MatTile`] nests (`a` is read with any strides: `k` in place for `q·kᵀ`, the
//! transposed probabilities for `p·v`; `b` is the transposed query block or the rows of `v`).
//! `ms` replaces a maximum of `-inf` by 0, so that a block in which a row is fully masked adds
//! nothing (instead of `-inf - -inf = NaN`); a row masked in *every* block ends with `l = 0` and
//! `y = 0 / 0 = NaN`, as the reference gives. Causal masking is top-left (`j > i` hidden, whatever
//! `Sq` and `Skv` are): query and key blocks have the same size and start at multiples of it, so key
//! blocks after the query block are skipped by an `if` (never computed), earlier ones are fully
//! visible, and the diagonal block adds a constant triangular table of `0`/`-inf`.
//!
//! **Memory.** Per parallel slot (one iteration of the kernel's outer loop; the outer loop is the
//! first of (query block, batch, kv head, head in group) with more than one iteration) the scratch
//! is the transposed query block (`D * BLOCK`), one block of scores (`Bk * BLOCK` with
//! `Bk = min(BLOCK, Skv)`) and three values per row (`m`, `l`, `alpha`): `(D + Bk + 3) * BLOCK`
//! elements. With the query blocks as the parallel loop that is `(D + Bk + 3) * Sq` elements in
//! all (reused by every batch and head): one head of `q` plus an `Sq x Bk` strip, O(seq·d), never
//! `seq x seq` and no score row per query (at `Sq = Skv = 4096`, `D = 64`, one head: 3 MiB of arena
//! with the output, against 4 MiB of q, k, v and y). The output buffer is the accumulator. A mask
//! is first turned into an additive bias in a program buffer with the mask's own (broadcast) dims,
//! its key axis padded with `-inf` to `Skv` and placed before the query axis (so the tiles'
//! epilogue reads it with query stride 0 or 1); a causal diagonal uses a constant table of
//! `min(BLOCK, max(Sq, Skv))^2` elements.
//!
//! The query rows past the last full block are a second kernel (`<stem>_tail`) with the same
//! structure, so that the main kernel is one loop whose iterations write disjoint rows of `y`
//! (the verifier's parallel proof). 3-d and 4-d layouts are strides over (batch, head, seq, dim);
//! grouped-query attention splits the query-head loop into (kv head, head in group), query head
//! `kvh * group + g` reading kv head `kvh`. f64 attention runs the same algorithm with scalar loops
//! in place of the f32-only tiles.
//!
//! Numerics: the online softmax sums in a different order than the reference and rescales by
//! `alpha`; `alpha` multiplies both `y` and `l`, so its rounding cancels in `y / l`. The scale is
//! folded into the transposed query block (`(scale * q) · k` rather than `scale * (q · k)`, one
//! extra rounding per product term).

use super::tiles::{emit_tiles_into, BLayout, Columns, TileEpilogueFn, TileNest};
use super::{broadcast_strides, cst, Lowerer, NodeCx, Operand};
use crate::builder::{row_major_strides, KernelBuilder};
use crate::ir::*;
use sinter_ir::{DType, Op, Tensor, TensorData};
use std::ops::{Add, Div, Mul, Sub};

/// Query rows per block and keys per block (equal, so that the causal diagonal falls on blocks).
pub(crate) const BLOCK: usize = 64;

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

/// Shapes, strides and attributes of one attention node.
struct Geometry {
    dtype: DType,
    n_batch: usize,
    n_kv_heads: usize,
    group: usize,
    q_seq: usize,
    kv_seq: usize,
    head_dim: usize,
    v_dim: usize,
    /// Element strides over (batch, head, seq, dim) of q, k, v and the output.
    qst: [i64; 4],
    kst: [i64; 4],
    vst: [i64; 4],
    ost: [i64; 4],
    scale: f64,
    softcap: f64,
    causal: bool,
}

/// The mask as an additive bias: `[B', H', Skv, Sq']` (primed dims 1 when the mask broadcasts
/// them), read with these strides over (batch, q head, key, query).
struct Bias {
    operand: Operand,
    strides: [i64; 4],
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
    let (_, ost) = head_view(out, *q_num_heads)?;
    let g = Geometry {
        dtype,
        n_batch,
        n_kv_heads,
        group: n_q_heads / n_kv_heads,
        q_seq,
        kv_seq,
        head_dim,
        v_dim,
        qst,
        kst,
        vst,
        ost,
        scale: scale.map_or(1.0 / (head_dim as f64).sqrt(), f64::from),
        softcap: f64::from(*softcap),
        causal: *causal,
    };
    let mask_shape = match mask {
        Some(m) => Some(check_mask(m, &g, n_q_heads)?),
        None => None,
    };
    if out.len() == 0 || kv_seq == 0 {
        // No keys: every output is an empty sum, 0 (as in the reference).
        let mut kd = lw.kernel(&cx.stem, &[&cx.node]);
        let y = kd.output(out);
        kd.kb.loop_(out.len(), |kb, i| {
            kb.store(y, Index::var(i), cst(dtype, 0.0))
        });
        lw.emit(kd);
        return Ok(());
    }
    let bias = match (mask, mask_shape) {
        (Some(m), Some(shape)) => Some(lower_mask_bias(lw, cx, m, &shape, &g)?),
        _ => None,
    };
    let tri = g.causal.then(|| causal_table(lw, &cx.stem, dtype, &g));
    let n_full = q_seq / BLOCK;
    let q_rem = q_seq % BLOCK;
    let full = (n_full > 0).then_some(QueryBlocks::Full(n_full));
    let tail = (q_rem > 0).then_some(QueryBlocks::Tail(q_rem));
    for blocks in full.into_iter().chain(tail) {
        emit_kernel(lw, cx, &g, bias.as_ref(), tri.as_ref(), blocks)?;
    }
    Ok(())
}

/// The mask's shape as 4-d `[B', H', Sq', last]` after checking it broadcasts as the reference
/// requires (its last dim at most `Skv`, padded with `-inf`).
fn check_mask(m: &Operand, g: &Geometry, n_q_heads: usize) -> Result<[usize; 4], String> {
    if m.rank() > 4 || m.rank() == 0 || (m.dtype != DType::Bool && m.dtype != g.dtype) {
        return Err("the mask must be bool or q's dtype, rank 1 to 4".into());
    }
    let mut shape = [1usize; 4];
    shape[4 - m.rank()..].copy_from_slice(&m.shape);
    let target = [g.n_batch, n_q_heads, g.q_seq, g.kv_seq];
    let padded_last = shape[3].max(g.kv_seq);
    for (a, &dim) in shape[..3].iter().chain([&padded_last]).enumerate() {
        if dim != 1 && dim != target[a] {
            return Err(format!(
                "mask {:?} does not broadcast to {target:?}",
                m.shape
            ));
        }
    }
    Ok(shape)
}

/// Emits the kernel that turns the mask into the additive [`Bias`] (bool: 0 or `-inf`).
fn lower_mask_bias(
    lw: &mut Lowerer,
    cx: &NodeCx,
    m: &Operand,
    shape: &[usize; 4],
    g: &Geometry,
) -> Result<Bias, String> {
    let dtype = g.dtype;
    let [d0, d1, d2, last] = *shape;
    let kv = g.kv_seq;
    let bias_shape = vec![d0, d1, kv, d2];
    let operand = lw.computed(format!("{}.mask_bias", cx.stem), dtype, bias_shape.clone());
    let mut kd = lw.kernel(&format!("{}_mask", cx.stem), &[&cx.node]);
    let mb = kd.input(m);
    let sb = kd.output(&operand);
    if last < kv {
        kd.kb.loop_(operand.len(), |kb, i| {
            kb.store(sb, Index::var(i), cst(dtype, f64::NEG_INFINITY))
        });
    }
    let src = row_major_strides(shape);
    let dst = row_major_strides(&bias_shape);
    kd.kb.loops(shape, |kb, v| {
        let value = Expr::load(mb, Index::strided(v, &src, 0));
        let value = if m.dtype == DType::Bool {
            Expr::select(value, cst(dtype, 0.0), cst(dtype, f64::NEG_INFINITY))
        } else {
            value
        };
        // The key axis goes before the query axis.
        let at = Index::strided(v, &[dst[0], dst[1], dst[3], dst[2]], 0);
        kb.store(sb, at, value);
    });
    lw.emit(kd);
    let bs = broadcast_strides(&bias_shape, &bias_shape);
    Ok(Bias {
        operand,
        strides: [bs[0], bs[1], bs[2], bs[3]],
    })
}

/// The causal triangle of a diagonal block, transposed like the scores: element `[c][r]` (key `c`,
/// query `r` of the block) is `-inf` when `c > r`, else 0. It is `side x side` with `side` the
/// largest block either sequence has ([`table_side`]).
fn causal_table(lw: &mut Lowerer, stem: &str, dtype: DType, g: &Geometry) -> Operand {
    let side = table_side(g);
    let values = (0..side * side).map(|at| {
        if at / side > at % side {
            f64::NEG_INFINITY
        } else {
            0.0
        }
    });
    let data = match dtype {
        DType::F64 => TensorData::F64(values.collect::<Vec<f64>>().into()),
        _ => TensorData::F32(values.map(|x| x as f32).collect::<Vec<f32>>().into()),
    };
    let tensor = Tensor::new(vec![side, side], data).expect("side * side elements");
    lw.weight(format!("{stem}.causal"), tensor)
}

/// The side of the causal table and the most keys a score block holds: [`BLOCK`], or less when
/// both sequences are shorter.
fn table_side(g: &Geometry) -> usize {
    BLOCK.min(g.q_seq.max(g.kv_seq))
}

/// Which query rows a kernel covers.
#[derive(Clone, Copy)]
enum QueryBlocks {
    /// Blocks `0..n` of [`BLOCK`] rows: one loop, the kernel's parallel candidate.
    Full(usize),
    /// The last `rows < BLOCK` rows, after the full blocks.
    Tail(usize),
}

/// A block position: a loop variable (times [`BLOCK`]) or a constant block number.
#[derive(Clone, Copy)]
enum BlockPos {
    Var(LoopVar),
    Const(usize),
}

impl BlockPos {
    fn expr(self) -> Expr {
        match self {
            BlockPos::Var(v) => Expr::Var(v),
            BlockPos::Const(n) => Expr::Const(Scalar::I64(n as i64)),
        }
    }

    /// The first row (or key) of the block.
    fn start(self) -> Index {
        match self {
            BlockPos::Var(v) => Index::var(v).scaled(BLOCK as i64),
            BlockPos::Const(n) => Index::constant((n * BLOCK) as i64),
        }
    }
}

/// The buffers of an attention kernel.
struct Buffers {
    q: BufferId,
    k: BufferId,
    v: BufferId,
    y: BufferId,
    bias: Option<(BufferId, [i64; 4])>,
    tri: Option<BufferId>,
    /// Scratch: the transposed, scaled query block; the transposed score block; per-row max,
    /// sum and rescale factor.
    qt: BufferId,
    scores: BufferId,
    max: BufferId,
    sum: BufferId,
    alpha: BufferId,
}

/// Where one query block's state lives: the loop variables that select the block and the base
/// indices of its scratch slot.
struct Block {
    batch: LoopVar,
    kv_head: LoopVar,
    in_group: LoopVar,
    pos: BlockPos,
    rows: usize,
    /// Slot bases (elements) in `qt`, `scores` and the per-row buffers.
    qt_at: Index,
    scores_at: Index,
    row_at: Index,
}

fn emit_kernel(
    lw: &mut Lowerer,
    cx: &NodeCx,
    g: &Geometry,
    bias: Option<&Bias>,
    tri: Option<&Operand>,
    blocks: QueryBlocks,
) -> Result<(), String> {
    let (stem, rows, n_blocks) = match blocks {
        QueryBlocks::Full(n) => (cx.stem.clone(), BLOCK, n),
        QueryBlocks::Tail(rows) => (format!("{}_tail", cx.stem), rows, 1),
    };
    // The loops, outermost first; the first one with more than one iteration is the one the
    // scheduler can run in parallel (unit loops are removed), so the scratch has a slot per
    // iteration of it.
    let extents = [n_blocks, g.n_batch, g.n_kv_heads, g.group];
    let slot_loop = extents.iter().position(|&e| e > 1);
    let n_slots = slot_loop.map_or(1, |at| extents[at]);
    let slot = |len: usize| n_slots * len;
    let (d, dtype) = (g.head_dim, g.dtype);
    let key_block = BLOCK.min(g.kv_seq);

    let mut kd = lw.kernel(&stem, &[&cx.node]);
    let q = kd.input(cx.input(0)?);
    let k = kd.input(cx.input(1)?);
    let v = kd.input(cx.input(2)?);
    let bias = bias.map(|b| (kd.input(&b.operand), b.strides));
    let tri = tri.map(|t| kd.input(t));
    let y = kd.output(cx.output(0));
    let bufs = Buffers {
        q,
        k,
        v,
        y,
        bias,
        tri,
        qt: kd.scratch("qt", dtype, &[slot(d * rows).max(1)]),
        scores: kd.scratch("scores", dtype, &[slot(key_block * rows)]),
        max: kd.scratch("max", dtype, &[slot(rows)]),
        sum: kd.scratch("sum", dtype, &[slot(rows)]),
        alpha: kd.scratch("alpha", dtype, &[slot(rows)]),
    };
    let block_loop = matches!(blocks, QueryBlocks::Full(_));
    let outer: Vec<usize> = if block_loop {
        extents.to_vec()
    } else {
        extents[1..].to_vec()
    };
    kd.kb.loops(&outer, |kb, vars| {
        let (pos, rest) = if block_loop {
            (BlockPos::Var(vars[0]), &vars[1..])
        } else {
            (BlockPos::Const(g.q_seq / BLOCK), vars)
        };
        let slot_var = slot_loop.map(|at| if block_loop { vars[at] } else { vars[at - 1] });
        let slot_at =
            |len: usize| slot_var.map_or(Index::constant(0), |s| Index::var(s).scaled(len as i64));
        let block = Block {
            batch: rest[0],
            kv_head: rest[1],
            in_group: rest[2],
            pos,
            rows,
            qt_at: slot_at(d * rows),
            scores_at: slot_at(key_block * rows),
            row_at: slot_at(rows),
        };
        emit_query_block(kb, g, &bufs, &block);
    });
    lw.emit(kd);
    Ok(())
}

impl Block {
    /// The query head, `kv_head * group + in_group`, times `stride`.
    fn head(&self, g: &Geometry, stride: i64) -> Index {
        Index::affine(
            [
                (self.kv_head, g.group as i64 * stride),
                (self.in_group, stride),
            ],
            0,
        )
    }

    /// Element `(batch, q head, i0 + row, 0)` of q-shaped `strides`, plus `row * strides[2]`.
    fn query_row(&self, g: &Geometry, st: [i64; 4], row: Index) -> Index {
        Index::var(self.batch)
            .scaled(st[0])
            .plus(self.head(g, st[1]))
            .plus(self.pos.start().plus(row).scaled(st[2]))
    }

    /// Element `(batch, q head, i0 + row, e)` of the output.
    fn out_at(&self, g: &Geometry, row: LoopVar, e: LoopVar) -> Index {
        self.query_row(g, g.ost, Index::var(row))
            .plus(Index::var(e).scaled(g.ost[3]))
    }

    /// Element `(batch, kv head, j0 + key, 0)` of k- or v-shaped `strides`.
    fn key_row(&self, st: [i64; 4], j0: &Index, key: Index) -> Index {
        Index::affine([(self.batch, st[0]), (self.kv_head, st[1])], 0)
            .plus(j0.clone().plus(key).scaled(st[2]))
    }
}

/// How a key block meets the causal mask.
#[derive(Clone, Copy, PartialEq)]
enum KeyBlock {
    Visible,
    Diagonal,
}

fn emit_query_block(kb: &mut KernelBuilder, g: &Geometry, bufs: &Buffers, blk: &Block) {
    let (d, rows, dtype) = (g.head_dim, blk.rows, g.dtype);
    // The transposed, scaled query block.
    kb.loops(&[d, rows], |kb, v| {
        let (dd, r) = (v[0], v[1]);
        let src = blk
            .query_row(g, g.qst, Index::var(r))
            .plus(Index::var(dd).scaled(g.qst[3]));
        let dst = blk
            .qt_at
            .clone()
            .plus(Index::affine([(dd, rows as i64), (r, 1)], 0));
        kb.store(
            bufs.qt,
            dst,
            Expr::mul(Expr::load(bufs.q, src), cst(dtype, g.scale)),
        );
    });
    kb.loop_(rows, |kb, r| {
        let at = blk.row_at.clone().plus(Index::var(r));
        kb.store(bufs.max, at.clone(), cst(dtype, f64::NEG_INFINITY));
        kb.store(bufs.sum, at, cst(dtype, 0.0));
    });
    kb.loops(&[rows, g.v_dim], |kb, v| {
        let at = blk.out_at(g, v[0], v[1]);
        kb.store(bufs.y, at, cst(dtype, 0.0));
    });

    let n_full_keys = g.kv_seq / BLOCK;
    let key_rem = g.kv_seq % BLOCK;
    if n_full_keys > 0 {
        kb.loop_(n_full_keys, |kb, kv| {
            causal_dispatch(kb, g, blk, BlockPos::Var(kv), |kb, kind| {
                emit_key_block(kb, g, bufs, blk, &BlockPos::Var(kv).start(), BLOCK, kind)
            });
        });
    }
    if key_rem > 0 {
        let pos = BlockPos::Const(n_full_keys);
        causal_dispatch(kb, g, blk, pos, |kb, kind| {
            emit_key_block(kb, g, bufs, blk, &pos.start(), key_rem, kind)
        });
    }

    kb.loops(&[rows, g.v_dim], |kb, v| {
        let at = blk.out_at(g, v[0], v[1]);
        let l = Expr::load(bufs.sum, blk.row_at.clone().plus(Index::var(v[0])));
        kb.store(bufs.y, at.clone(), Expr::div(Expr::load(bufs.y, at), l));
    });
}

/// Emits the key block at `key` for the query block: always when not causal; when causal, skipped
/// after the query block, visible before it and masked by the triangle on it.
fn causal_dispatch(
    kb: &mut KernelBuilder,
    g: &Geometry,
    blk: &Block,
    key: BlockPos,
    emit: impl Fn(&mut KernelBuilder, KeyBlock),
) {
    if !g.causal {
        emit(kb, KeyBlock::Visible);
        return;
    }
    if let (BlockPos::Const(kn), BlockPos::Const(qn)) = (key, blk.pos) {
        match kn.cmp(&qn) {
            std::cmp::Ordering::Less => emit(kb, KeyBlock::Visible),
            std::cmp::Ordering::Equal => emit(kb, KeyBlock::Diagonal),
            std::cmp::Ordering::Greater => {}
        }
        return;
    }
    let before = Expr::cmp(CmpOp::Lt, key.expr(), blk.pos.expr());
    let on = Expr::cmp(CmpOp::Eq, key.expr(), blk.pos.expr());
    kb.if_(
        before,
        |kb| emit(kb, KeyBlock::Visible),
        |kb| kb.if_(on, |kb| emit(kb, KeyBlock::Diagonal), |_| {}),
    );
}

/// One key block of `cols` keys starting at `j0`: scores, the online-softmax update, `p · v`.
fn emit_key_block(
    kb: &mut KernelBuilder,
    g: &Geometry,
    bufs: &Buffers,
    blk: &Block,
    j0: &Index,
    cols: usize,
    kind: KeyBlock,
) {
    let (rows, dtype) = (blk.rows, g.dtype);
    let softcap = g.softcap;
    // Scores, transposed: st[c][r] = Σ_d k[j0 + c][d] qt[d][r], then softcap, mask and triangle.
    let bias = bufs.bias;
    let tri = (kind == KeyBlock::Diagonal).then_some(bufs.tri).flatten();
    let score_epilogue = |_: &mut KernelBuilder, acc: Expr, key: &Index, query: &Index| {
        let mut s = acc;
        if g.head_dim == 0 {
            // No products to carry the folded scale: `0 * scale` (NaN for the default 1/sqrt(0)),
            // as the reference computes it.
            s = Expr::mul(s, cst(dtype, g.scale));
        }
        if softcap > 0.0 {
            s = Expr::mul(
                cst(dtype, softcap),
                Expr::unary(UnaryOp::Tanh, Expr::div(s, cst(dtype, softcap))),
            );
        }
        if let Some((buf, st)) = bias {
            let at = Index::var(blk.batch)
                .scaled(st[0])
                .plus(blk.head(g, st[1]))
                .plus(j0.clone().plus(key.clone()).scaled(st[2]))
                .plus(blk.pos.start().plus(query.clone()).scaled(st[3]));
            s = Expr::add(s, Expr::load(buf, at));
        }
        if let Some(tri) = tri {
            let at = key.scaled(table_side(g) as i64).plus(query.clone());
            s = Expr::add(s, Expr::load(tri, at));
        }
        s
    };
    let has_epilogue = g.head_dim == 0 || softcap > 0.0 || bias.is_some() || tri.is_some();
    emit_product(
        kb,
        dtype,
        &TileNest {
            m: cols,
            n: rows,
            k: g.head_dim,
            a: bufs.k,
            a_base: blk.key_row(g.kst, j0, Index::constant(0)),
            a_m: g.kst[2],
            a_k: g.kst[3],
            b: bufs.qt,
            b_base: blk.qt_at.clone(),
            b_layout: BLayout::Rows { row: rows as i64 },
            c: bufs.scores,
            c_base: blk.scores_at.clone(),
            c_m: rows as i64,
            epilogue: has_epilogue.then_some(&score_epilogue as &TileEpilogueFn),
        },
        false,
    );

    // The online-softmax update, four query rows at a time.
    let score = |r: LoopVar, c: LoopVar| {
        blk.scores_at
            .clone()
            .plus(Index::affine([(c, rows as i64), (r, 1)], 0))
    };
    kb.loop_(rows, |kb, r| {
        let row = blk.row_at.clone().plus(Index::var(r));
        let m_old = kb.local(dtype, Expr::load(bufs.max, row.clone()));
        let m_new = kb.local(dtype, Expr::Local(m_old));
        kb.loop_(cols, |kb, c| {
            let s = Expr::load(bufs.scores, score(r, c));
            kb.assign(m_new, Expr::max(Expr::Local(m_new), s));
        });
        let shift = kb.local(
            dtype,
            Expr::select(
                Expr::cmp(CmpOp::Eq, Expr::Local(m_new), cst(dtype, f64::NEG_INFINITY)),
                cst(dtype, 0.0),
                Expr::Local(m_new),
            ),
        );
        let total = kb.local(dtype, cst(dtype, 0.0));
        kb.loop_(cols, |kb, c| {
            let p = kb.local(
                dtype,
                Expr::unary(
                    UnaryOp::Exp,
                    Expr::sub(Expr::load(bufs.scores, score(r, c)), Expr::Local(shift)),
                ),
            );
            kb.store(bufs.scores, score(r, c), Expr::Local(p));
            kb.assign(total, Expr::add(Expr::Local(total), Expr::Local(p)));
        });
        let alpha = kb.local(
            dtype,
            Expr::unary(
                UnaryOp::Exp,
                Expr::sub(Expr::Local(m_old), Expr::Local(shift)),
            ),
        );
        kb.store(bufs.alpha, row.clone(), Expr::Local(alpha));
        let l = Expr::load(bufs.sum, row.clone());
        kb.store(
            bufs.sum,
            row.clone(),
            Expr::fma(l, Expr::Local(alpha), Expr::Local(total)),
        );
        kb.store(bufs.max, row, Expr::Local(m_new));
    });

    // y = y * alpha + p · v: the rescale, then tiles that accumulate into y.
    let y_base = blk.query_row(g, g.ost, Index::constant(0));
    kb.loops(&[rows, g.v_dim], |kb, v| {
        let at = blk.out_at(g, v[0], v[1]);
        let alpha = Expr::load(bufs.alpha, blk.row_at.clone().plus(Index::var(v[0])));
        kb.store(bufs.y, at.clone(), Expr::mul(Expr::load(bufs.y, at), alpha));
    });
    let pv = TileNest {
        m: rows,
        n: g.v_dim,
        k: cols,
        a: bufs.scores,
        a_base: blk.scores_at.clone(),
        a_m: 1,
        a_k: rows as i64,
        b: bufs.v,
        b_base: blk.key_row(g.vst, j0, Index::constant(0)),
        b_layout: BLayout::Rows { row: g.vst[2] },
        c: bufs.y,
        c_base: y_base,
        c_m: g.ost[2],
        epilogue: None,
    };
    emit_product(kb, dtype, &pv, true);
}

/// `c = epilogue(a · b)` (or `c += a · b` when `accumulate`) for `nest`: register tiles for f32, a
/// scalar loop nest with the same meaning otherwise (f64, or an empty reduction, which tiles do not
/// allow).
fn emit_product(kb: &mut KernelBuilder, dtype: DType, nest: &TileNest, accumulate: bool) {
    if nest.m == 0 || nest.n == 0 {
        return;
    }
    if dtype == DType::F32 && nest.k > 0 {
        emit_tiles_into(kb, nest, Columns::All, accumulate);
        return;
    }
    let b_row = match nest.b_layout {
        BLayout::Rows { row } => row,
        BLayout::Panels => unreachable!("attention reads b by rows"),
    };
    kb.loops(&[nest.m, nest.n], |kb, v| {
        let (mi, ni) = (Index::var(v[0]), Index::var(v[1]));
        let c = nest
            .c_base
            .clone()
            .plus(Index::affine([(v[0], nest.c_m), (v[1], 1)], 0));
        let init = if accumulate {
            Expr::load(nest.c, c.clone())
        } else {
            cst(dtype, 0.0)
        };
        let acc = kb.local(dtype, init);
        kb.loop_(nest.k, |kb, kk| {
            let a = nest
                .a_base
                .clone()
                .plus(Index::affine([(v[0], nest.a_m), (kk, nest.a_k)], 0));
            let b = nest
                .b_base
                .clone()
                .plus(Index::affine([(kk, b_row), (v[1], 1)], 0));
            kb.assign(
                acc,
                Expr::fma(
                    Expr::load(nest.a, a),
                    Expr::load(nest.b, b),
                    Expr::Local(acc),
                ),
            );
        });
        let value = match nest.epilogue {
            Some(f) => f(kb, Expr::Local(acc), &mi, &ni),
            None => Expr::Local(acc),
        };
        kb.store(nest.c, c, value);
    });
}
