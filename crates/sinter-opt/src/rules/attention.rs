//! Attention: the scaled dot-product chain becomes one `attention` op.
//!
//! The chain is `matmul(softmax(matmul(q, kᵀ) * scale + mask, -1), v)`. Exporters spell it many ways;
//! small rules bring the spellings to one form, then one rule per (scale?, mask?) combination
//! recognises it:
//! - **scale.** `x / c` is already `x * (1/c)` (see `activations`); a scalar factor on `q` or on
//!   `kᵀ` moves out of the product (`matmul(q * c, kᵀ) = matmul(q, kᵀ) * c`, how SDPA decompositions
//!   scale both operands by `√scale`), and two scalar factors merge;
//! - **mask.** `softmax(where(c, fill, s))` with `fill` at most -1e30 (`-inf`, `finfo.min`: what
//!   `masked_fill` writes) is `softmax(s + where(c, fill, 0))`, an additive mask, exactly: in f32
//!   `s + fill` rounds to `fill` for any score below 1e31, and `-inf` stays `-inf`. The `where(c, s,
//!   fill)` form (keep where true) becomes `s + where(c, 0, fill)`;
//! - **causal.** An additive mask that is a constant with `0` where key `j <= i` and at most -1e30
//!   where `j > i` (the same in every batch and head) is dropped for `causal = true`, which lets the
//!   kernel skip masked blocks instead of reading a `seq x seq` mask;
//! - **heads.** An attention on `[batch, heads, seq, head_dim]` operands that were split out of
//!   `[batch, seq, heads * head_dim]` with `transpose(reshape(x), [0,2,1,3])`, whose result is merged
//!   back the same way, becomes the 3-d attention on the unsplit operands with head counts, so the
//!   head split and merge disappear. The key's `transpose(kᵀ, [0,1,3,2])` composes with the exporter's
//!   `[0,2,3,1]` head-split transpose through the `layout` rules.
//!
//! Batched 3-d chains (`[batch * heads, seq, head_dim]`, `nn.MultiheadAttention`'s layout) become a
//! 4-d attention with a leading 1, wrapped in views.

use super::layout::{permutation, reshape_to};
use super::{rule, Match};
use crate::analysis::GraphAnalysis;
use crate::lang::ENode;
use egg::{Id, Rewrite};
use sinter_ir::{DType, Dim, Op, Shape, Tensor};

/// Masked scores at or below this are `-inf` for every purpose of softmax in f32.
const MASKED: f64 = -1e30;

fn scalar_const(m: &Match, name: &str) -> Option<f64> {
    let id = m.var(name);
    let facts = m.facts(id);
    let numel_one = facts.ty()?.shape.num_elements() == Some(1);
    (facts.is_const && numel_one).then_some(facts.scalar?)
}

fn hoist_scale(m: &mut Match) -> Option<Id> {
    scalar_const(m, "?c")?;
    let (q, k, c) = (m.var("?q"), m.var("?k"), m.var("?c"));
    if !m.facts(q).ty()?.dtype.is_float() {
        return None;
    }
    let product = m.op_all(Op::MatMul {}, &[q, k]);
    Some(m.op_all(Op::Mul {}, &[product, c]))
}

fn merge_scales(m: &mut Match) -> Option<Id> {
    let c = scalar_const(m, "?c1")? * scalar_const(m, "?c2")?;
    let x = m.var("?x");
    let c = m.scalar_like("scale", x, c)?;
    Some(m.op_all(Op::Mul {}, &[x, c]))
}

/// `softmax(where(c, fill, s))` as `softmax(s + where(c, fill, 0))`; `fill_first` says which where
/// branch holds the fill.
fn where_to_additive(fill_first: bool) -> impl Fn(&mut Match) -> Option<Id> + Send + Sync {
    move |m: &mut Match| {
        let fill_value = scalar_const(m, "?fill")?;
        if fill_value > MASKED {
            return None;
        }
        let (c, fill, s) = (m.var("?c"), m.var("?fill"), m.var("?s"));
        let zero = m.scalar_like("zero", s, 0.0)?;
        let mask = if fill_first {
            m.op_all(Op::Where {}, &[c, fill, zero])
        } else {
            m.op_all(Op::Where {}, &[c, zero, fill])
        };
        let axis = m.attrs("?a")?;
        let masked = m.op_all(Op::Add {}, &[s, mask]);
        Some(m.op_all(axis, &[masked]))
    }
}

/// `[1, ..dims]`: a leading 1 added with a reshape, for a 3-d operand of a batched chain.
fn with_leading_one(m: &mut Match, x: Id) -> Option<Id> {
    let mut dims = vec![Dim::Static(1)];
    dims.extend(m.facts(x).ty()?.shape.dims().iter().cloned());
    reshape_to(m, x, &Shape(dims))
}

/// For an additive mask `where(keep, 0, -inf)`, the bool mask `keep` itself: attention's bool masks
/// mean exactly that, and reading `keep` saves the kernel that builds the float mask.
fn keep_mask(m: &Match, mask: Id) -> Option<Id> {
    let node = m.find_node(mask, "where", |_, _| true)?;
    let [keep, zero, fill] = node.op_inputs() else {
        return None;
    };
    let (keep, zero, fill) = (
        m.egraph.find(*keep),
        m.egraph.find(*zero),
        m.egraph.find(*fill),
    );
    let keep_ty = m.facts(keep).ty()?;
    let is_bool = keep_ty.dtype == DType::Bool;
    let exact =
        m.facts(zero).scalar == Some(0.0) && m.facts(fill).scalar == Some(f64::NEG_INFINITY);
    // The bool mask must broadcast to the float mask's shape, not beyond it.
    let same_shape = Some(keep_ty.shape.clone()) == m.facts(mask).ty().map(|t| t.shape.clone());
    (is_bool && exact && same_shape).then_some(keep)
}

/// Builds the attention for a matched chain; `scaled` and `masked` say which parts the pattern has.
fn attention(scaled: bool, masked: bool) -> impl Fn(&mut Match) -> Option<Id> + Send + Sync {
    move |m: &mut Match| {
        let Op::Softmax { axis } = m.attrs("?sa")? else {
            return None;
        };
        let (q, kt, v) = (m.var("?q"), m.var("?kt"), m.var("?v"));
        let q_ty = m.facts(q).ty()?.clone();
        let rank = q_ty.rank();
        if !(axis == -1 || axis == rank as i64 - 1) || !q_ty.dtype.is_float() {
            return None;
        }
        if m.facts(kt).ty()?.rank() != rank || m.facts(v).ty()?.rank() != rank {
            return None;
        }
        let scale = if scaled {
            scalar_const(m, "?c")? as f32
        } else {
            1.0
        };
        let mask = if masked {
            let mask = keep_mask(m, m.var("?m")).unwrap_or(m.var("?m"));
            let ty = m.facts(mask).ty()?;
            let dtype_ok = ty.dtype == q_ty.dtype || ty.dtype == DType::Bool;
            // A rank-0 mask is a constant shift of every score; the attention op takes masks of
            // rank 1 to 4.
            if !dtype_ok || ty.rank() == 0 || ty.rank() > rank {
                return None;
            }
            Some(mask)
        } else {
            None
        };
        let op = Op::Attention {
            scale: Some(scale),
            causal: false,
            q_num_heads: 0,
            kv_num_heads: 0,
            softcap: 0.0,
        };
        let to_k = Op::Transpose {
            perm: vec![0, 1, 3, 2],
        };
        match rank {
            4 => {
                let k = m.op_all(to_k, &[kt]);
                Some(m.op(op, &[Some(q), Some(k), Some(v), mask]))
            }
            3 => {
                let (q4, kt4, v4) = (
                    with_leading_one(m, q)?,
                    with_leading_one(m, kt)?,
                    with_leading_one(m, v)?,
                );
                let mask4 = match mask {
                    Some(mask) if m.facts(mask).ty()?.rank() == 3 => {
                        Some(with_leading_one(m, mask)?)
                    }
                    other => other,
                };
                let k4 = m.op_all(to_k, &[kt4]);
                let y4 = m.op(op, &[Some(q4), Some(k4), Some(v4), mask4]);
                let out = m.matched().ty()?.shape.clone();
                reshape_to(m, y4, &out)
            }
            _ => None,
        }
    }
}

/// Whether `mask` (a known constant) is exactly the causal mask for `sq` queries and `sk` keys:
/// 0 where `j <= i`, at most [`MASKED`] where `j > i`, in every leading slice.
fn is_causal_mask(mask: &Tensor, sq: usize, sk: usize) -> bool {
    let shape = mask.shape();
    let rank = shape.len();
    if rank < 2 || shape[rank - 2] != sq || shape[rank - 1] != sk || sq == 0 || sk == 0 {
        return false;
    }
    let data = mask.data();
    (0..mask.len()).all(|idx| {
        let j = idx % sk;
        let i = (idx / sk) % sq;
        let value = data.get_f64(idx);
        if j > i {
            value <= MASKED
        } else {
            value == 0.0
        }
    })
}

fn causal(m: &mut Match) -> Option<Id> {
    let Op::Attention {
        scale,
        causal: false,
        q_num_heads,
        kv_num_heads,
        softcap,
    } = m.attrs("?a")?
    else {
        return None;
    };
    let (q, k, v, mask) = (m.var("?q"), m.var("?k"), m.var("?v"), m.var("?m"));
    let q_ty = m.facts(q).ty()?.clone();
    let k_ty = m.facts(k).ty()?.clone();
    let seq_axis = if q_ty.rank() == 4 { 2 } else { 1 };
    let sq = q_ty.shape.dims().get(seq_axis)?.as_static()?;
    let sk = k_ty.shape.dims().get(seq_axis)?.as_static()?;
    if !m.facts(mask).is_const {
        return None;
    }
    let value = crate::analysis::const_value(m.egraph, mask)?;
    if !value.dtype().is_float() || !is_causal_mask(&value, sq, sk) {
        return None;
    }
    let op = Op::Attention {
        scale,
        causal: true,
        q_num_heads,
        kv_num_heads,
        softcap,
    };
    Some(m.op(op, &[Some(q), Some(k), Some(v), None]))
}

/// In class `split`, a head split `transpose(reshape(x, [b, s, h, d]), [0,2,1,3])` of a
/// `[b, s, h * d]` value `x`: returns `x` and `h`.
fn unsplit(m: &Match, split: Id) -> Option<(Id, usize)> {
    let head_split = [0usize, 2, 1, 3];
    let transpose = m.find_node(split, "transpose", |_, op| {
        op.and_then(|op| permutation(op, 4)).as_deref() == Some(&head_split[..])
    })?;
    let heads_first = transpose.op_inputs()[0];
    let ty4 = m.facts(heads_first).ty()?.clone();
    for reshape in &m.egraph[heads_first].nodes {
        if !matches!(
            reshape.op_name(),
            Some("reshape" | "unsqueeze" | "flatten" | "squeeze")
        ) {
            continue;
        }
        let x = m.egraph.find(reshape.op_inputs()[0]);
        let ty3 = m.facts(x).ty()?;
        let (d3, d4) = (ty3.shape.dims(), ty4.shape.dims());
        if d3.len() != 3 || d4.len() != 4 || d3[0] != d4[0] || d3[1] != d4[1] {
            continue;
        }
        let (h, d) = (d4[2].as_static()?, d4[3].as_static()?);
        if d3[2].as_static() == Some(h * d) {
            return Some((x, h));
        }
    }
    None
}

fn absorb_heads(m: &mut Match) -> Option<Id> {
    let Op::Attention {
        scale,
        causal,
        q_num_heads: 0,
        kv_num_heads: 0,
        softcap,
    } = m.attrs("?a")?
    else {
        return None;
    };
    if permutation(&m.attrs("?p")?, 4)? != [0, 2, 1, 3] {
        return None;
    }
    let (q, k, v, mask) = (m.var("?q"), m.var("?k"), m.var("?v"), m.input("?m"));
    let (q3, hq) = unsplit(m, q)?;
    let (k3, hk) = unsplit(m, k)?;
    let (v3, hv) = unsplit(m, v)?;
    if hk != hv {
        return None;
    }
    let op = Op::Attention {
        scale,
        causal,
        q_num_heads: i64::try_from(hq).ok()?,
        kv_num_heads: i64::try_from(hk).ok()?,
        softcap,
    };
    Some(m.op(op, &[Some(q3), Some(k3), Some(v3), mask]))
}

pub fn rules() -> Vec<Rewrite<ENode, GraphAnalysis>> {
    let scores = "(matmul ?q ?kt)";
    let scaled = format!("(mul {scores} ?c)");
    vec![
        rule("matmul-scaled-left", "(matmul (mul ?q ?c) ?k)", hoist_scale),
        rule(
            "matmul-scaled-right",
            "(matmul ?q (mul ?k ?c))",
            hoist_scale,
        ),
        rule("mul-mul-scalars", "(mul (mul ?x ?c1) ?c2)", merge_scales),
        rule(
            "softmax-where-fill-first",
            "(softmax (where ?c ?fill ?s) ?a)",
            where_to_additive(true),
        ),
        rule(
            "softmax-where-fill-second",
            "(softmax (where ?c ?s ?fill) ?a)",
            where_to_additive(false),
        ),
        rule(
            "attention-scaled-masked",
            &format!("(matmul (softmax (add {scaled} ?m) ?sa) ?v)"),
            attention(true, true),
        ),
        rule(
            "attention-scaled",
            &format!("(matmul (softmax {scaled} ?sa) ?v)"),
            attention(true, false),
        ),
        rule(
            "attention-masked",
            &format!("(matmul (softmax (add {scores} ?m) ?sa) ?v)"),
            attention(false, true),
        ),
        rule(
            "attention-plain",
            &format!("(matmul (softmax {scores} ?sa) ?v)"),
            attention(false, false),
        ),
        rule("attention-causal", "(attention ?q ?k ?v ?m ?a)", causal),
        rule(
            "attention-heads",
            "(reshape (transpose (attention ?q ?k ?v ?m ?a) ?p) ?r)",
            absorb_heads,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(sq: usize, sk: usize, masked: f32) -> Tensor {
        let data = (0..sq * sk)
            .map(|idx| if idx % sk > idx / sk { masked } else { 0.0 })
            .collect();
        Tensor::from_vec(vec![1, sq, sk], data).unwrap()
    }

    #[test]
    fn causal_masks_are_recognised_exactly() {
        assert!(is_causal_mask(&mask(4, 4, f32::NEG_INFINITY), 4, 4));
        assert!(is_causal_mask(&mask(4, 4, f32::MIN), 4, 4));
        // -1e4 (old BERT code) does not round every score away: not the causal mask.
        assert!(!is_causal_mask(&mask(4, 4, -1e4), 4, 4));
        // Wrong size, or the upper triangle kept.
        assert!(!is_causal_mask(&mask(4, 4, f32::NEG_INFINITY), 4, 5));
        let data: Vec<f32> = (0..16)
            .map(|idx| {
                if idx % 4 < idx / 4 {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let upper = Tensor::from_vec(vec![4, 4], data).unwrap();
        assert!(!is_causal_mask(&upper, 4, 4));
    }
}
