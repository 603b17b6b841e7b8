//! Normalizations written out as arithmetic are recognised as ops: softmax, layer norm, RMS norm.
//!
//! - **softmax** from `exp(x) / reduce_sum(exp(x))` and from its max-subtracted stable form, over one
//!   axis with `keepdims`;
//! - **layer norm** from `(x - mean(x)) / sqrt(mean((x - mean(x))²) + eps)` (the square as `pow(d, 2)`
//!   or `d * d`), over the trailing axes; it becomes `layer_norm(x, ones)`, and two small rules then
//!   absorb a following `* gamma` and `+ beta` whose broadcast stays within the normalized axes;
//! - **RMS norm** from `x / sqrt(mean(x²) + eps)` and `x * reciprocal(sqrt(...))` (HF's
//!   `x * rsqrt(...)`), becoming `rms_norm(x, ones)`, which absorbs a following `* weight`.
//!
//! Recognising the un-scaled core first and absorbing the affine parts after keeps the number of
//! spelled-out patterns small, and the `ones` scale (interned, shared by every match of a width) is
//! never extracted once a real scale has been absorbed.

use super::{rule, Match};
use crate::analysis::GraphAnalysis;
use crate::lang::ENode;
use egg::{Id, Rewrite};
use sinter_ir::{Op, TensorType};

/// The axis a reduction over `axes` with `keepdims` normalizes, if `axes` are exactly the trailing
/// axes from that one on (as a negative axis, so it survives rank changes of nothing).
fn trailing_axis(op: &Op, rank: usize) -> Option<i64> {
    let (_, attrs) = op.reduction()?;
    if !attrs.keepdims || attrs.axes.is_empty() {
        return None;
    }
    let mut axes: Vec<usize> = attrs
        .axes
        .iter()
        .map(|&a| {
            let a = if a < 0 { a + rank as i64 } else { a };
            usize::try_from(a).ok().filter(|&a| a < rank)
        })
        .collect::<Option<_>>()?;
    axes.sort_unstable();
    axes.dedup();
    let first = *axes.first()?;
    (axes.len() == rank - first && axes.iter().enumerate().all(|(i, &a)| a == first + i))
        .then(|| first as i64 - rank as i64)
}

/// The normalized dims of `x` from `axis` (negative) on.
fn normalized_dims(ty: &TensorType, axis: i64) -> Option<Vec<usize>> {
    let rank = ty.rank() as i64;
    ty.shape.dims()[(rank + axis) as usize..]
        .iter()
        .map(|d| d.as_static())
        .collect()
}

/// A weight of ones over the normalized dims of `x`.
fn ones(m: &mut Match, x: Id, axis: i64) -> Option<Id> {
    let dims = normalized_dims(m.facts(x).ty()?, axis)?;
    m.filled("ones", x, dims, 1.0)
}

/// Whether parameter `p` broadcasts within the trailing `normalized` axes only (rank at most theirs).
fn fits_normalized(m: &Match, p: Id, axis: i64) -> bool {
    m.facts(p).ty().is_some_and(|t| {
        t.rank() as i64 <= -axis && t.shape.dims().iter().all(|d| d.as_static().is_some())
    })
}

fn softmax_axis(m: &mut Match, reductions: &[&str]) -> Option<i64> {
    let x = m.var("?x");
    let ty = m.facts(x).ty()?.clone();
    if !ty.dtype.is_float() {
        return None;
    }
    let mut axis = None;
    for name in reductions {
        let a = trailing_axis(&m.attrs(name)?, ty.rank())?;
        if a != -1 || axis.is_some_and(|b| b != a) {
            return None;
        }
        axis = Some(a);
    }
    axis
}

fn softmax(reductions: &'static [&'static str]) -> impl Fn(&mut Match) -> Option<Id> + Send + Sync {
    move |m: &mut Match| {
        let axis = softmax_axis(m, reductions)?;
        let x = m.var("?x");
        Some(m.op_all(Op::Softmax { axis }, &[x]))
    }
}

fn layer_norm_core(m: &mut Match) -> Option<Id> {
    let x = m.var("?x");
    let ty = m.facts(x).ty()?.clone();
    if !ty.dtype.is_float() {
        return None;
    }
    let axis = trailing_axis(&m.attrs("?m1")?, ty.rank())?;
    if trailing_axis(&m.attrs("?m2")?, ty.rank())? != axis {
        return None;
    }
    if let Some(two) = m.var_opt("?two") {
        if m.facts(two).scalar? != 2.0 {
            return None;
        }
    }
    let epsilon = m.scalar("?eps")? as f32;
    if !m.facts(m.var("?eps")).is_const || epsilon < 0.0 {
        return None;
    }
    let scale = ones(m, x, axis)?;
    Some(m.op(
        Op::LayerNorm { axis, epsilon },
        &[Some(x), Some(scale), None],
    ))
}

fn rms_norm_core(m: &mut Match) -> Option<Id> {
    let x = m.var("?x");
    let ty = m.facts(x).ty()?.clone();
    if !ty.dtype.is_float() || m.scalar("?two")? != 2.0 {
        return None;
    }
    if let Some(one) = m.var_opt("?one") {
        if m.facts(one).scalar? != 1.0 {
            return None;
        }
    }
    let axis = trailing_axis(&m.attrs("?m")?, ty.rank())?;
    let epsilon = m.scalar("?eps")? as f32;
    if !m.facts(m.var("?eps")).is_const || epsilon < 0.0 {
        return None;
    }
    let scale = ones(m, x, axis)?;
    Some(m.op_all(Op::RmsNorm { axis, epsilon }, &[x, scale]))
}

/// Whether the class bound to `name` is a weight of ones.
fn is_ones(m: &Match, name: &str) -> bool {
    m.scalar(name) == Some(1.0)
}

fn absorb_scale(m: &mut Match) -> Option<Id> {
    let op = m.attrs("?a")?;
    let axis = match op {
        Op::LayerNorm { axis, .. } | Op::RmsNorm { axis, .. } => axis,
        _ => return None,
    };
    let (x, g) = (m.var("?x"), m.var("?g"));
    if !is_ones(m, "?s") || !fits_normalized(m, g, axis) {
        return None;
    }
    match op {
        Op::LayerNorm { .. } => Some(m.op(op, &[Some(x), Some(g), None])),
        _ => Some(m.op_all(op, &[x, g])),
    }
}

fn absorb_bias(m: &mut Match) -> Option<Id> {
    let op = m.attrs("?a")?;
    let Op::LayerNorm { axis, .. } = op else {
        return None;
    };
    let (x, g, b) = (m.var("?x"), m.var("?g"), m.var("?b"));
    if !fits_normalized(m, b, axis) || !m.facts(b).is_const {
        return None;
    }
    Some(m.op_all(op, &[x, g, b]))
}

/// `x - mean(x)` over the reduction bound to `?m1`.
const CENTRED: &str = "(sub ?x (reduce_mean ?x ?m1))";

pub fn rules() -> Vec<Rewrite<ENode, GraphAnalysis>> {
    let variance_pow = format!("(reduce_mean (pow {CENTRED} ?two) ?m2)");
    let variance_mul = format!("(reduce_mean (mul {CENTRED} {CENTRED}) ?m2)");
    let rms = "(sqrt (add (reduce_mean (pow ?x ?two) ?m) ?eps))";
    vec![
        rule(
            "softmax-exp-sum",
            "(div (exp ?x) (reduce_sum (exp ?x) ?s))",
            softmax(&["?s"]),
        ),
        rule(
            "softmax-stable",
            "(div (exp (sub ?x (reduce_max ?x ?mx))) (reduce_sum (exp (sub ?x (reduce_max ?x ?mx))) ?s))",
            softmax(&["?mx", "?s"]),
        ),
        rule(
            "layer-norm-pow",
            &format!("(div {CENTRED} (sqrt (add {variance_pow} ?eps)))"),
            layer_norm_core,
        ),
        rule(
            "layer-norm-mul",
            &format!("(div {CENTRED} (sqrt (add {variance_mul} ?eps)))"),
            layer_norm_core,
        ),
        rule("rms-norm-div", &format!("(div ?x {rms})"), rms_norm_core),
        rule(
            "rms-norm-reciprocal",
            &format!("(mul ?x (reciprocal {rms}))"),
            rms_norm_core,
        ),
        rule(
            "rms-norm-one-over",
            &format!("(mul ?x (div ?one {rms}))"),
            rms_norm_core,
        ),
        rule(
            "layer-norm-scale",
            "(mul (layer_norm ?x ?s _ ?a) ?g)",
            absorb_scale,
        ),
        rule("rms-norm-scale", "(mul (rms_norm ?x ?s ?a) ?g)", absorb_scale),
        rule(
            "layer-norm-bias",
            "(add (layer_norm ?x ?g _ ?a) ?b)",
            absorb_bias,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reduce_mean(axes: Vec<i64>, keepdims: bool) -> Op {
        Op::ReduceMean {
            axes,
            keepdims,
            noop_with_empty_axes: false,
        }
    }

    #[test]
    fn trailing_axis_accepts_exactly_the_trailing_axes() {
        assert_eq!(trailing_axis(&reduce_mean(vec![-1], true), 3), Some(-1));
        assert_eq!(trailing_axis(&reduce_mean(vec![2], true), 3), Some(-1));
        assert_eq!(trailing_axis(&reduce_mean(vec![-1, 1], true), 3), Some(-2));
        // Not trailing, a gap, no keepdims, empty axes (= all axes, but not written as such).
        assert_eq!(trailing_axis(&reduce_mean(vec![1], true), 3), None);
        assert_eq!(trailing_axis(&reduce_mean(vec![0, 2], true), 3), None);
        assert_eq!(trailing_axis(&reduce_mean(vec![-1], false), 3), None);
        assert_eq!(trailing_axis(&reduce_mean(vec![], true), 3), None);
        // Out of range.
        assert_eq!(trailing_axis(&reduce_mean(vec![3], true), 3), None);
        assert_eq!(trailing_axis(&Op::Relu {}, 3), None);
    }
}
