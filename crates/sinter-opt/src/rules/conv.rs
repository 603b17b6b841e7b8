//! Convolution fusion: a conv's bias add, residual add and activation become one `fused_conv`, and a
//! conv (with its activation) followed by a max or average pool becomes `conv_pool`.
//!
//! - `conv(x, w) + bias` with `bias` a constant per output channel (`[M]`, `[M,1,1]`, `[1,M,1,1]`)
//!   is `conv(x, w, bias)`;
//! - `conv(...) + z` (either operand order) with `z` of the conv's type is `fused_conv(.., z)`;
//! - `act(conv(...))` and `act(fused_conv(..))` of an identity-activated fused conv, for every
//!   activation fused ops support (relu, clip/relu6, leaky relu, sigmoid, tanh, SiLU, GELU), is
//!   `fused_conv(.., activation = act)`. `act(conv + z)` therefore becomes one op with its residual;
//! - `max_pool`/`average_pool` of a conv or of a fused conv without residual is `conv_pool`. Whether
//!   it wins is the cost model's call: overlapping pool windows recompute conv outputs (see
//!   `cost.rs`), and a conv whose output has other readers is then computed twice (DAG-aware
//!   extraction weighs that).
//!
//! Fused ops are built with `FusedParts::compose` and mean exactly their decomposition
//! (`Op::fused_parts`), the one definition inference, the interpreter and the lowering read, so these
//! rewrites are exact by construction.

use super::{rule, Match};
use crate::analysis::GraphAnalysis;
use crate::lang::ENode;
use egg::{Id, Rewrite};
use sinter_ir::{FusedParts, Op};

/// The activations a fused op can apply: (op name, whether the op has attributes).
pub const ACTIVATIONS: &[(&str, bool)] = &[
    ("relu", false),
    ("leaky_relu", true),
    ("clip", true),
    ("sigmoid", false),
    ("tanh", false),
    ("silu", false),
    ("gelu", true),
];

/// The activation op matched by an activation pattern: its attributes variable `?act` if it has
/// them, else the attribute-less op of `name`.
pub fn matched_activation(m: &Match, name: &str, has_attrs: bool) -> Option<Op> {
    if has_attrs {
        m.attrs("?act")
    } else {
        Op::from_attrs(name, vec![]).ok()
    }
}

/// The activation pattern `(name INNER ?act)` or `(name INNER)`.
pub fn activation_pattern(name: &str, has_attrs: bool, inner: &str) -> String {
    if has_attrs {
        format!("({name} {inner} ?act)")
    } else {
        format!("({name} {inner})")
    }
}

/// The parts of the product bound to attributes variable `name`, if it has no activation and no
/// pool yet (so an activation, a residual or a pool can still be added).
pub fn bare_parts(m: &Match, name: &str) -> Option<FusedParts> {
    let parts = FusedParts::of(&m.attrs(name)?)?;
    (parts.activation.is_none() && parts.pool.is_none()).then_some(parts)
}

fn bias_add(m: &mut Match) -> Option<Id> {
    let conv = m.attrs("?a")?;
    let (x, w, bias) = (m.var("?x"), m.var("?w"), m.var("?bias"));
    let out = m.matched().ty()?.clone();
    let bias_ty = m.facts(bias).ty()?.clone();
    if !m.facts(bias).is_const || bias_ty.dtype != out.dtype || bias_ty.rank() > out.rank() {
        return None;
    }
    let channels = out.shape.dims().get(1)?.as_static()?;
    // Aligned to the output's trailing axes: the channel axis is at `rank - out.rank() + 1`.
    let channel_axis = (bias_ty.rank() + 1).checked_sub(out.rank())?;
    let per_channel = bias_ty.shape.dims().iter().enumerate().all(|(idx, d)| {
        if idx == channel_axis {
            d.as_static() == Some(channels)
        } else {
            d.is_one()
        }
    });
    if !per_channel {
        return None;
    }
    let b = m.op_all(
        Op::Reshape {
            shape: vec![i64::try_from(channels).ok()?],
            allowzero: false,
        },
        &[bias],
    );
    Some(m.op_all(conv, &[x, w, b]))
}

fn residual(m: &mut Match) -> Option<Id> {
    let op = bare_parts(m, "?a")?.compose()?;
    let (x, w, z) = (m.var("?x"), m.var("?w"), m.var("?z"));
    if m.facts(z).is_const || m.facts(z).ty() != m.matched().ty() {
        return None;
    }
    let b = m.input("?b");
    Some(m.op(op, &[Some(x), Some(w), b, Some(z)]))
}

fn activation(
    name: &'static str,
    has_attrs: bool,
) -> impl Fn(&mut Match) -> Option<Id> + Send + Sync {
    move |m: &mut Match| {
        let mut parts = bare_parts(m, "?a")?;
        parts.activation = Some(matched_activation(m, name, has_attrs)?);
        let op = parts.compose()?;
        let (x, w) = (m.var("?x"), m.var("?w"));
        let b = m.input("?b");
        let z = m.input("?z");
        Some(m.op(op, &[Some(x), Some(w), b, z]))
    }
}

fn conv_pool(m: &mut Match) -> Option<Id> {
    let mut parts = FusedParts::of(&m.attrs("?a")?)?;
    if parts.pool.is_some() {
        return None;
    }
    parts.pool = Some(m.attrs("?pa")?);
    let op = parts.compose()?;
    let (x, w) = (m.var("?x"), m.var("?w"));
    let b = m.input("?b");
    Some(m.op(op, &[Some(x), Some(w), b]))
}

pub fn rules() -> Vec<Rewrite<ENode, GraphAnalysis>> {
    let conv = "(conv ?x ?w ?b ?a)";
    let fused = "(fused_conv ?x ?w ?b ?z ?a)";
    let fused_no_residual = "(fused_conv ?x ?w ?b _ ?a)";
    let mut rules = vec![
        rule("conv-bias-add", "(add (conv ?x ?w _ ?a) ?bias)", bias_add),
        rule("conv-residual-left", &format!("(add {conv} ?z)"), residual),
        rule("conv-residual-right", &format!("(add ?z {conv})"), residual),
        rule(
            "fused-conv-residual-left",
            &format!("(add {fused_no_residual} ?z)"),
            residual,
        ),
        rule(
            "fused-conv-residual-right",
            &format!("(add ?z {fused_no_residual})"),
            residual,
        ),
    ];
    for &(name, has_attrs) in ACTIVATIONS {
        rules.push(rule(
            &format!("conv-{name}"),
            &activation_pattern(name, has_attrs, conv),
            activation(name, has_attrs),
        ));
        rules.push(rule(
            &format!("fused-conv-{name}"),
            &activation_pattern(name, has_attrs, fused),
            activation(name, has_attrs),
        ));
    }
    for (pool, short) in [("max_pool", "max"), ("average_pool", "average")] {
        rules.push(rule(
            &format!("conv-{short}-pool"),
            &format!("({pool} {conv} ?pa)"),
            conv_pool,
        ));
        rules.push(rule(
            &format!("fused-conv-{short}-pool"),
            &format!("({pool} {fused_no_residual} ?pa)"),
            conv_pool,
        ));
    }
    rules
}
