//! rnn, lstm and gru as one parametrised lowering over the cell kind, following sinter-ref's
//! equations, weight layouts (`w: [dirs, gates * H, I]`, `r: [dirs, gates * H, H]`, `b: [dirs,
//! 2 * gates * H]`), gate orders (lstm `i, o, f, c`, gru `z, r, h`), layouts and activations.
//!
//! One kernel runs every direction (unrolled at lowering time: a reverse direction walks time with a
//! negative coefficient) and every batch entry. Per time step it computes the input part `gx = W x +
//! Wb` and the recurrent part `gh = R h + Rb` of every gate row into scratch buffers, then updates the
//! per-unit state in place (the hidden and cell states are scratch buffers). gru without
//! `linear_before_reset` needs `R (r ⊙ h)`, so its candidate is computed for every unit before `h` is
//! overwritten.
//!
//! With `sequence_lens`, each step is guarded by `if s < len[b]`; a reverse direction reads time
//! `len - 1 - s` through the IR's dynamic index term (in range whenever the guard holds). `y` is
//! zero past a sequence's length, and the final states are zero for an empty sequence, as in
//! sinter-ref. Gates accumulate in the input dtype (sinter-ref uses f64).

use super::tiles::{emit_tiles, pack_panels, BLayout, Columns, TileEpilogueFn, TileNest};
use super::{cst, elementwise::softplus, Lowerer, NodeCx, Operand};
use crate::builder::KernelBuilder;
use crate::ir::*;
use sinter_ir::{
    DType, RecurrentCell, RnnActivation, RnnActivationParams, RnnDirection, TensorData,
};
use std::ops::{Add, Div, Mul, Sub};

/// Recurrent activations as loop-IR expressions (the parameters are resolved in `sinter_ir`).
trait ApplyActivation {
    fn apply(&self, dtype: DType, x: Expr) -> Expr;
}

impl ApplyActivation for RnnActivationParams {
    fn apply(&self, dtype: DType, x: Expr) -> Expr {
        let c = |v: f64| cst(dtype, v);
        let (alpha, beta) = (self.alpha, self.beta);
        match self.kind {
            RnnActivation::Relu => Expr::max(x, c(0.0)),
            RnnActivation::Tanh => Expr::unary(UnaryOp::Tanh, x),
            RnnActivation::Sigmoid => Expr::unary(UnaryOp::Sigmoid, x),
            RnnActivation::Affine => Expr::add(Expr::mul(c(alpha), x), c(beta)),
            RnnActivation::LeakyRelu => Expr::select(
                Expr::cmp(CmpOp::Ge, x.clone(), c(0.0)),
                x.clone(),
                Expr::mul(c(alpha), x),
            ),
            RnnActivation::ThresholdedRelu => {
                Expr::select(Expr::cmp(CmpOp::Gt, x.clone(), c(alpha)), x, c(0.0))
            }
            RnnActivation::ScaledTanh => {
                Expr::mul(c(alpha), Expr::unary(UnaryOp::Tanh, Expr::mul(c(beta), x)))
            }
            RnnActivation::HardSigmoid => Expr::min(
                Expr::max(Expr::add(Expr::mul(c(alpha), x), c(beta)), c(0.0)),
                c(1.0),
            ),
            RnnActivation::Elu => Expr::select(
                Expr::cmp(CmpOp::Ge, x.clone(), c(0.0)),
                x.clone(),
                Expr::mul(c(alpha), Expr::sub(Expr::unary(UnaryOp::Exp, x), c(1.0))),
            ),
            RnnActivation::Softsign => {
                Expr::div(x.clone(), Expr::add(c(1.0), Expr::unary(UnaryOp::Abs, x)))
            }
            RnnActivation::Softplus => softplus(x, dtype),
        }
    }
}

pub(super) fn lower(lw: &mut Lowerer, cx: &NodeCx) -> Result<(), String> {
    let attrs = cx.op.recurrent_attrs().ok_or("not a recurrent op")?;
    let cell = attrs.cell;
    let x = cx.input(0)?;
    let (w, r) = (cx.input(1)?, cx.input(2)?);
    let bias = cx.optional_input(3);
    let lens = cx.optional_input(4);
    let initial_h = cx.optional_input(5);
    let (initial_c, peephole) = match cell {
        RecurrentCell::Lstm { .. } => (cx.optional_input(6), cx.optional_input(7)),
        _ => (None, None),
    };
    let dtype = x.dtype;
    if !dtype.is_float() || x.rank() != 3 {
        return Err("recurrent ops need a 3-d float x".into());
    }
    let batch_first = match attrs.layout {
        0 => false,
        1 => true,
        other => return Err(format!("layout {other}")),
    };
    let n_dir = if attrs.direction == RnnDirection::Bidirectional {
        2
    } else {
        1
    };
    let (seq, batch) = if batch_first {
        (x.shape[1], x.shape[0])
    } else {
        (x.shape[0], x.shape[1])
    };
    let input = x.shape[2];
    let hidden = usize::try_from(attrs.hidden_size).map_err(|_| "negative hidden_size")?;
    let rows = cell.n_gates() * hidden;
    if w.shape != [n_dir, rows, input] || r.shape != [n_dir, rows, hidden] {
        return Err("w or r has the wrong shape".into());
    }
    let clip = attrs.clip.map(f64::from);
    let activations = attrs.activations_by_direction(n_dir)?;
    let (h_i, b_i) = (hidden as i64, batch as i64);
    let (nd, s_i, in_i) = (n_dir as i64, seq as i64, input as i64);
    // Element strides of (t, b) in x, (t, d, b) in y, (d, b) in the states.
    let (x_t, x_b) = if batch_first {
        (in_i, s_i * in_i)
    } else {
        (b_i * in_i, in_i)
    };
    let (y_t, y_d, y_b) = if batch_first {
        (nd * h_i, h_i, s_i * nd * h_i)
    } else {
        (nd * b_i * h_i, b_i * h_i, h_i)
    };
    let (st_d, st_b) = if batch_first {
        (h_i, nd * h_i)
    } else {
        (b_i * h_i, h_i)
    };

    // f32 layers with constant weights compute their gate products with register tiles: the input
    // projection of every time step at once per batch element (`seq x rows x input`), then one
    // `1 x rows x hidden` product per step. `w` and `r` are packed into panels of their transposes
    // here, once per direction.
    let packed = match (lw.weight_tensor(w), lw.weight_tensor(r)) {
        (Some(w_data), Some(r_data)) if dtype == DType::F32 && input > 0 && hidden > 0 => {
            let (TensorData::F32(w_data), TensorData::F32(r_data)) = (w_data.data(), r_data.data())
            else {
                return Err("f32 layer with non-f32 weights".into());
            };
            let w_panels = pack_panels(w_data, n_dir, input, rows, 1, in_i)?;
            let r_panels = pack_panels(r_data, n_dir, hidden, rows, 1, h_i)?;
            // GRU without linear_before_reset multiplies the candidate rows of `r` by `r ⊙ h`, a
            // product of its own: those rows get their own panels.
            let candidate = match cell {
                RecurrentCell::Gru {
                    linear_before_reset: false,
                } => {
                    let rows_of = |d: usize| {
                        let start = (d * rows + 2 * hidden) * hidden;
                        r_data[start..start + hidden * hidden].iter().copied()
                    };
                    let data: Vec<f32> = (0..n_dir).flat_map(rows_of).collect();
                    let panels = pack_panels(&data, n_dir, hidden, hidden, 1, h_i)?;
                    Some(lw.weight(format!("{}.candidate_panels", r.name), panels))
                }
                _ => None,
            };
            Some((
                lw.weight(format!("{}.panels", w.name), w_panels),
                lw.weight(format!("{}.panels", r.name), r_panels),
                candidate,
            ))
        }
        _ => None,
    };

    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let wb = k.input(w);
    let rb = k.input(r);
    let bb = bias.map(|b| k.input(b));
    let lb = lens.map(|l| k.input(l));
    let ihb = initial_h.map(|t| k.input(t));
    let icb = initial_c.map(|t| k.input(t));
    let pb = peephole.map(|t| k.input(t));
    let outs: Vec<BufferId> = cx.outputs.iter().map(|o: &Operand| k.output(o)).collect();
    let (yb, yhb) = (outs[0], outs[1]);
    let ycb = outs.get(2).copied();
    let h_s = k.scratch("h", dtype, &[batch, hidden]);
    let c_s = k.scratch("c", dtype, &[batch, hidden]);
    let panels = packed
        .as_ref()
        .map(|(wp, rp, _)| (k.input(wp), k.input(rp)));
    let candidate_panels = packed
        .as_ref()
        .and_then(|(_, _, cp)| cp.as_ref())
        .map(|cp| (k.input(cp), k.scratch("reset_h", dtype, &[hidden])));
    // With tiles, `gx` holds the input projections of every time step (row `t`), else one step's.
    let gx = k.scratch(
        "gx",
        dtype,
        &[if panels.is_some() { seq * rows } else { rows }],
    );
    let gh = k.scratch("gh", dtype, &[rows]);
    let aux = k.scratch("aux", dtype, &[3 * hidden.max(1)]);
    let zero = cst(dtype, 0.0);
    if lb.is_some() {
        let total = cx.outputs[0].len();
        k.kb.loop_(total, |kb, i| kb.store(yb, Index::var(i), zero.clone()));
    }
    let clipped = |v: Expr| match clip {
        Some(c) => Expr::min(Expr::max(v, cst(dtype, -c)), cst(dtype, c)),
        None => v,
    };
    for (d, act) in activations.iter().enumerate() {
        let reverse = attrs.direction == RnnDirection::Reverse || d == 1;
        let d_i = d as i64;
        k.kb.loop_(batch, |kb: &mut KernelBuilder, bv| {
            let len = kb.local(
                DType::I64,
                match lb {
                    Some(l) => Expr::cast(DType::I64, Expr::load(l, Index::var(bv))),
                    None => Expr::Const(Scalar::I64(s_i)),
                },
            );
            let hs = |u: LoopVar| Index::affine([(bv, h_i), (u, 1)], 0);
            let state = |u: LoopVar| Index::affine([(bv, st_b), (u, 1)], d_i * st_d);
            kb.loop_(hidden, |kb, u| {
                let init =
                    |b: Option<BufferId>| b.map_or(zero.clone(), |b| Expr::load(b, state(u)));
                kb.store(h_s, hs(u), init(ihb));
                kb.store(c_s, hs(u), init(icb));
            });
            if let Some((wp, _)) = panels {
                emit_gate_product(
                    kb,
                    GateProduct {
                        m: seq,
                        k: input,
                        rows,
                        a: xb,
                        a_base: Index::affine([(bv, x_b)], 0),
                        a_m: x_t,
                        panels: wp,
                        panels_base: d_i * (rows * input) as i64,
                        c: gx,
                        c_base: 0,
                        bias: bb.map(|b| (b, d_i * 2 * rows as i64)),
                    },
                );
            }
            kb.loop_(seq, |kb, sv| {
                // The time index with element stride `stride`.
                let time = |stride: i64| -> Index {
                    if !reverse {
                        Index::affine([(sv, stride)], 0)
                    } else if lb.is_none() {
                        Index::affine([(sv, -stride)], (s_i - 1) * stride)
                    } else {
                        Index {
                            terms: vec![],
                            offset: 0,
                            dynamic: Some(Box::new(DynamicTerm {
                                value: Expr::sub(
                                    Expr::sub(Expr::Local(len), Expr::Const(Scalar::I64(1))),
                                    Expr::Var(sv),
                                ),
                                extent: s_i,
                                stride,
                            })),
                        }
                    }
                };
                // Gate pre-activation `at` (a row of the gates) of the input projection.
                let gx_at = |at: Index| match panels {
                    Some(_) => Expr::load(gx, time(rows as i64).plus(at)),
                    None => Expr::load(gx, at),
                };
                let step = |kb: &mut KernelBuilder| {
                    // Gate pre-activations: gx = W x + Wb, gh = R h + Rb.
                    if let Some((_, rp)) = panels {
                        emit_gate_product(
                            kb,
                            GateProduct {
                                m: 1,
                                k: hidden,
                                rows,
                                a: h_s,
                                a_base: Index::affine([(bv, h_i)], 0),
                                a_m: h_i,
                                panels: rp,
                                panels_base: d_i * (rows * hidden) as i64,
                                c: gh,
                                c_base: 0,
                                bias: bb.map(|b| (b, d_i * 2 * rows as i64 + rows as i64)),
                            },
                        );
                    } else {
                        kb.loop_(rows, |kb, row| {
                            let wb_bias = bb.map_or(zero.clone(), |b| {
                                Expr::load(b, Index::affine([(row, 1)], d_i * 2 * rows as i64))
                            });
                            let acc = kb.local(dtype, wb_bias);
                            kb.loop_(input, |kb, i| {
                                let wv = Expr::load(
                                    wb,
                                    Index::affine([(row, in_i), (i, 1)], d_i * rows as i64 * in_i),
                                );
                                let xv = Expr::load(
                                    xb,
                                    time(x_t).plus(Index::affine([(bv, x_b), (i, 1)], 0)),
                                );
                                kb.assign(acc, Expr::fma(wv, xv, Expr::Local(acc)));
                            });
                            kb.store(gx, Index::var(row), Expr::Local(acc));
                            let rb_bias = bb.map_or(zero.clone(), |b| {
                                Expr::load(
                                    b,
                                    Index::affine([(row, 1)], d_i * 2 * rows as i64 + rows as i64),
                                )
                            });
                            let acc = kb.local(dtype, rb_bias);
                            kb.loop_(hidden, |kb, j| {
                                let rv = Expr::load(
                                    rb,
                                    Index::affine([(row, h_i), (j, 1)], d_i * rows as i64 * h_i),
                                );
                                let hv = Expr::load(h_s, hs(j));
                                kb.assign(acc, Expr::fma(rv, hv, Expr::Local(acc)));
                            });
                            kb.store(gh, Index::var(row), Expr::Local(acc));
                        });
                    }
                    let gate = |g: usize, u: LoopVar| {
                        let at = Index::affine([(u, 1)], (g * hidden) as i64);
                        Expr::add(gx_at(at.clone()), Expr::load(gh, at))
                    };
                    let peep = |g: i64, u: LoopVar| {
                        pb.map(|p| Expr::load(p, Index::affine([(u, 1)], d_i * 3 * h_i + g * h_i)))
                    };
                    match cell {
                        RecurrentCell::Rnn => kb.loop_(hidden, |kb, u| {
                            kb.store(h_s, hs(u), act[0].apply(dtype, clipped(gate(0, u))));
                        }),
                        RecurrentCell::Lstm { input_forget } => kb.loop_(hidden, |kb, u| {
                            let (f, g, h_act) = (act[0], act[1], act[2]);
                            let c_prev = kb.local(dtype, Expr::load(c_s, hs(u)));
                            let with_peep = |pre: Expr, g: i64, c: Expr| match peep(g, u) {
                                Some(p) => Expr::add(pre, Expr::mul(p, c)),
                                None => pre,
                            };
                            let i_gate = kb.local(
                                dtype,
                                f.apply(
                                    dtype,
                                    clipped(with_peep(gate(0, u), 0, Expr::Local(c_prev))),
                                ),
                            );
                            let f_gate = if input_forget {
                                Expr::sub(cst(dtype, 1.0), Expr::Local(i_gate))
                            } else {
                                f.apply(
                                    dtype,
                                    clipped(with_peep(gate(2, u), 2, Expr::Local(c_prev))),
                                )
                            };
                            let f_gate = kb.local(dtype, f_gate);
                            let cand = kb.local(dtype, g.apply(dtype, clipped(gate(3, u))));
                            let cs = kb.local(
                                dtype,
                                Expr::add(
                                    Expr::mul(Expr::Local(f_gate), Expr::Local(c_prev)),
                                    Expr::mul(Expr::Local(i_gate), Expr::Local(cand)),
                                ),
                            );
                            let o_gate =
                                f.apply(dtype, clipped(with_peep(gate(1, u), 1, Expr::Local(cs))));
                            kb.store(
                                h_s,
                                hs(u),
                                Expr::mul(o_gate, h_act.apply(dtype, Expr::Local(cs))),
                            );
                            kb.store(c_s, hs(u), Expr::Local(cs));
                        }),
                        RecurrentCell::Gru {
                            linear_before_reset,
                        } => {
                            let (f, g) = (act[0], act[1]);
                            // aux[0..H] = z, aux[H..2H] = r, aux[2H..3H] = candidate.
                            kb.loop_(2 * hidden, |kb, u| {
                                let pre =
                                    Expr::add(gx_at(Index::var(u)), Expr::load(gh, Index::var(u)));
                                kb.store(aux, Index::var(u), f.apply(dtype, clipped(pre)));
                            });
                            // R_c (r ⊙ h) + Rb_c into gh's candidate rows, as a tile product.
                            if let Some((cp, reset_h)) = candidate_panels {
                                kb.loop_(hidden, |kb, j| {
                                    let r_j = Expr::load(aux, Index::affine([(j, 1)], h_i));
                                    kb.store(
                                        reset_h,
                                        Index::var(j),
                                        Expr::mul(Expr::load(h_s, hs(j)), r_j),
                                    );
                                });
                                emit_gate_product(
                                    kb,
                                    GateProduct {
                                        m: 1,
                                        k: hidden,
                                        rows: hidden,
                                        a: reset_h,
                                        a_base: Index::constant(0),
                                        a_m: h_i,
                                        panels: cp,
                                        panels_base: d_i * (hidden * hidden) as i64,
                                        c: gh,
                                        c_base: 2 * h_i,
                                        bias: bb.map(|b| {
                                            (b, d_i * 2 * rows as i64 + rows as i64 + 2 * h_i)
                                        }),
                                    },
                                );
                            }
                            kb.loop_(hidden, |kb, u| {
                                let row = Index::affine([(u, 1)], 2 * h_i);
                                let r_u = Expr::load(aux, Index::affine([(u, 1)], h_i));
                                let pre = if linear_before_reset {
                                    Expr::add(
                                        gx_at(row.clone()),
                                        Expr::mul(r_u, Expr::load(gh, row)),
                                    )
                                } else if candidate_panels.is_some() {
                                    Expr::add(gx_at(row.clone()), Expr::load(gh, row))
                                } else {
                                    let rb_bias = bb.map_or(zero.clone(), |b| {
                                        Expr::load(
                                            b,
                                            Index::affine(
                                                [(u, 1)],
                                                d_i * 2 * rows as i64 + rows as i64 + 2 * h_i,
                                            ),
                                        )
                                    });
                                    let acc = kb.local(dtype, rb_bias);
                                    kb.loop_(hidden, |kb, j| {
                                        let rv = Expr::load(
                                            rb,
                                            Index::affine(
                                                [(u, h_i), (j, 1)],
                                                (d_i * rows as i64 + 2 * h_i) * h_i,
                                            ),
                                        );
                                        let reset_h = Expr::mul(
                                            Expr::load(h_s, hs(j)),
                                            Expr::load(aux, Index::affine([(j, 1)], h_i)),
                                        );
                                        kb.assign(acc, Expr::fma(rv, reset_h, Expr::Local(acc)));
                                    });
                                    Expr::add(gx_at(row), Expr::Local(acc))
                                };
                                kb.store(
                                    aux,
                                    Index::affine([(u, 1)], 2 * h_i),
                                    g.apply(dtype, clipped(pre)),
                                );
                            });
                            kb.loop_(hidden, |kb, u| {
                                let z = Expr::load(aux, Index::var(u));
                                let cand = Expr::load(aux, Index::affine([(u, 1)], 2 * h_i));
                                let next = Expr::add(
                                    Expr::mul(Expr::sub(cst(dtype, 1.0), z.clone()), cand),
                                    Expr::mul(z, Expr::load(h_s, hs(u))),
                                );
                                kb.store(h_s, hs(u), next);
                            });
                        }
                    }
                    kb.loop_(hidden, |kb, u| {
                        let at = time(y_t).plus(Index::affine([(bv, y_b), (u, 1)], d_i * y_d));
                        kb.store(yb, at, Expr::load(h_s, hs(u)));
                    });
                };
                if lb.is_some() {
                    kb.if_(
                        Expr::cmp(CmpOp::Lt, Expr::Var(sv), Expr::Local(len)),
                        step,
                        |_| {},
                    );
                } else {
                    step(kb);
                }
            });
            // Final states: zeros for an empty sequence.
            let nonempty = Expr::cmp(CmpOp::Gt, Expr::Local(len), Expr::Const(Scalar::I64(0)));
            kb.loop_(hidden, |kb, u| {
                for (dst, src) in [(Some(yhb), h_s), (ycb, c_s)] {
                    if let Some(dst) = dst {
                        let value =
                            Expr::select(nonempty.clone(), Expr::load(src, hs(u)), zero.clone());
                        kb.store(dst, state(u), value);
                    }
                }
            });
        });
    }
    lw.emit(k);
    Ok(())
}

/// One gate product of a direction: `c[t, row] = Σ_k a[t, k] · w[row, k] (+ bias[row])` for
/// `t < m`, with `w` packed as the panels of its transpose and `c` row-major (`rows` wide).
struct GateProduct {
    m: usize,
    k: usize,
    rows: usize,
    a: BufferId,
    a_base: Index,
    a_m: i64,
    panels: BufferId,
    /// Where this direction's panels start.
    panels_base: i64,
    c: BufferId,
    /// Where row 0 of the result starts in `c`.
    c_base: i64,
    /// The bias buffer and where this product's bias starts in it.
    bias: Option<(BufferId, i64)>,
}

fn emit_gate_product(kb: &mut KernelBuilder, g: GateProduct) {
    let bias = |_: &mut KernelBuilder, acc: Expr, _: &Index, n: &Index| match g.bias {
        Some((b, offset)) => Expr::add(acc, Expr::load(b, n.clone().plus(Index::constant(offset)))),
        None => acc,
    };
    let nest = TileNest {
        m: g.m,
        n: g.rows,
        k: g.k,
        a: g.a,
        a_base: g.a_base.clone(),
        a_m: g.a_m,
        a_k: 1,
        b: g.panels,
        b_base: Index::constant(g.panels_base),
        b_layout: BLayout::Panels,
        c: g.c,
        c_base: Index::constant(g.c_base),
        c_m: g.rows as i64,
        epilogue: g.bias.is_some().then_some(&bias as &TileEpilogueFn),
    };
    emit_tiles(kb, &nest, Columns::All);
}
