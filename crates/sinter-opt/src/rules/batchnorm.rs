//! Batch-norm folding: an inference `batch_norm` right after a `conv` or a `gemm` is folded into the
//! product's weight and bias.
//!
//! With `f = scale / sqrt(var + eps)` per channel, `bn(conv(x, w, b))` is
//! `conv(x, w * f, (b - mean) * f + bias)` (f broadcast over each output channel's weights), and for
//! `y = alpha * a @ op(b) + beta * c` with channels on axis 1, `bn(y)` is
//! `alpha * a @ (op(b) * f) + ((beta * c - mean) * f + bias)`.
//! The new weights are written as graph ops over the old ones: they depend on weights only, so the
//! cost model counts them as free and the folding pass after extraction evaluates them once, with the
//! reference interpreter's arithmetic.
//!
//! The rule needs every batch-norm parameter and the product's weight to be constants. When the
//! product's output has other readers, the e-graph keeps both forms, and DAG-aware extraction decides
//! whether computing the product twice is worth it.

use super::{rule, Match};
use crate::analysis::GraphAnalysis;
use crate::lang::ENode;
use egg::{Id, Rewrite};
use sinter_ir::Op;

/// `scale / sqrt(var + eps)`, as weight-only ops, if every parameter is a constant.
fn bn_factor(m: &mut Match) -> Option<(Id, usize)> {
    let Op::BatchNorm { epsilon } = m.attrs("?ba")? else {
        return None;
    };
    let (scale, var) = (m.var("?s"), m.var("?var"));
    for name in ["?s", "?bb", "?mean", "?var"] {
        if !m.facts(m.var(name)).is_const {
            return None;
        }
    }
    let ty = m.facts(var).ty()?.clone();
    if ty.rank() != 1 || !ty.dtype.is_float() {
        return None;
    }
    let channels = ty.shape.dims()[0].as_static()?;
    let eps = m.scalar_like("epsilon", var, f64::from(epsilon))?;
    let shifted = m.op_all(Op::Add {}, &[var, eps]);
    let std = m.op_all(Op::Sqrt {}, &[shifted]);
    Some((m.op_all(Op::Div {}, &[scale, std]), channels))
}

/// `(b - mean) * f + bias`, or `bias - mean * f` without `b`.
fn folded_bias(m: &mut Match, b: Option<Id>, factor: Id) -> Id {
    let (mean, bias) = (m.var("?mean"), m.var("?bb"));
    let centred = match b {
        Some(b) => m.op_all(Op::Sub {}, &[b, mean]),
        None => m.op_all(Op::Neg {}, &[mean]),
    };
    let scaled = m.op_all(Op::Mul {}, &[centred, factor]);
    m.op_all(Op::Add {}, &[scaled, bias])
}

/// `factor` reshaped to `[channels, 1, ..]` of rank `rank`.
fn per_row(m: &mut Match, factor: Id, channels: usize, rank: usize) -> Option<Id> {
    let mut shape = vec![i64::try_from(channels).ok()?];
    shape.resize(rank, 1);
    Some(m.op_all(
        Op::Reshape {
            shape,
            allowzero: false,
        },
        &[factor],
    ))
}

fn fold_into_conv(m: &mut Match) -> Option<Id> {
    let conv = m.attrs("?ca")?;
    let (x, w) = (m.var("?x"), m.var("?w"));
    let b = m.input("?b");
    if !m.facts(w).is_const || b.is_some_and(|b| !m.facts(b).is_const) {
        return None;
    }
    let w_rank = m.facts(w).ty()?.rank();
    let (factor, channels) = bn_factor(m)?;
    let f = per_row(m, factor, channels, w_rank)?;
    let w = m.op_all(Op::Mul {}, &[w, f]);
    let b = folded_bias(m, b, factor);
    Some(m.op_all(conv, &[x, w, b]))
}

fn fold_into_gemm(m: &mut Match) -> Option<Id> {
    let Op::Gemm {
        alpha,
        beta,
        trans_a,
        trans_b,
    } = m.attrs("?ga")?
    else {
        return None;
    };
    let (a, b) = (m.var("?a"), m.var("?b"));
    let c = m.input("?c");
    if !m.facts(b).is_const || c.is_some_and(|c| !m.facts(c).is_const) {
        return None;
    }
    let (factor, channels) = bn_factor(m)?;
    let b = if trans_b {
        let f = per_row(m, factor, channels, 2)?;
        m.op_all(Op::Mul {}, &[b, f])
    } else {
        m.op_all(Op::Mul {}, &[b, factor])
    };
    let c = match c {
        Some(c) if beta != 1.0 => {
            let beta = m.scalar_like("beta", c, f64::from(beta))?;
            Some(m.op_all(Op::Mul {}, &[c, beta]))
        }
        other => other,
    };
    let c = folded_bias(m, c, factor);
    let gemm = Op::Gemm {
        alpha,
        beta: 1.0,
        trans_a,
        trans_b,
    };
    Some(m.op_all(gemm, &[a, b, c]))
}

pub fn rules() -> Vec<Rewrite<ENode, GraphAnalysis>> {
    vec![
        rule(
            "batch-norm-into-conv",
            "(batch_norm (conv ?x ?w ?b ?ca) ?s ?bb ?mean ?var ?ba)",
            fold_into_conv,
        ),
        rule(
            "batch-norm-into-gemm",
            "(batch_norm (gemm ?a ?b ?c ?ga) ?s ?bb ?mean ?var ?ba)",
            fold_into_gemm,
        ),
    ]
}
