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
//!   `cost.rs`), so a 3x3/2 pool after a large conv usually stays separate.
//!
//! Each fused op means exactly its decomposition (`Op::fused_parts`), so these rewrites are exact.

use super::{rule, Match};
use crate::analysis::GraphAnalysis;
use crate::lang::ENode;
use egg::{Id, Rewrite};
use sinter_ir::{AutoPad, FusedActivation, Op, PoolKind};

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
pub fn matched_activation(
    m: &Match,
    name: &str,
    has_attrs: bool,
) -> Option<(FusedActivation, Vec<f32>)> {
    let op = if has_attrs {
        m.attrs("?act")?
    } else {
        Op::from_attrs(name, vec![]).ok()?
    };
    FusedActivation::from_op(&op)
}

/// The activation pattern `(name INNER ?act)` or `(name INNER)`.
pub fn activation_pattern(name: &str, has_attrs: bool, inner: &str) -> String {
    if has_attrs {
        format!("({name} {inner} ?act)")
    } else {
        format!("({name} {inner})")
    }
}

/// `fused_conv` with `conv`'s window attributes and the given activation.
fn fused_conv_op(
    conv: &Op,
    activation: FusedActivation,
    activation_params: Vec<f32>,
) -> Option<Op> {
    match conv {
        Op::Conv {
            strides,
            pads,
            dilations,
            group,
            auto_pad,
        }
        | Op::FusedConv {
            strides,
            pads,
            dilations,
            group,
            auto_pad,
            ..
        } => Some(Op::FusedConv {
            strides: strides.clone(),
            pads: pads.clone(),
            dilations: dilations.clone(),
            group: *group,
            auto_pad: *auto_pad,
            activation,
            activation_params,
        }),
        _ => None,
    }
}

/// The activation of a `fused_conv`/`fused_matmul` op.
pub fn fused_activation(op: &Op) -> Option<(FusedActivation, &[f32])> {
    match op {
        Op::FusedConv {
            activation,
            activation_params,
            ..
        }
        | Op::FusedMatMul {
            activation,
            activation_params,
        }
        | Op::ConvPool {
            activation,
            activation_params,
            ..
        } => Some((*activation, activation_params)),
        _ => None,
    }
}

pub fn present(m: &Match, id: Id) -> Option<Id> {
    m.egraph[id]
        .nodes
        .iter()
        .all(|n| *n != ENode::Absent)
        .then_some(id)
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
    let channel_axis = (bias_ty.rank() + 1).checked_sub(out.rank());
    let per_channel = bias_ty.shape.dims().iter().enumerate().all(|(idx, d)| {
        if Some(idx) == channel_axis {
            d.as_static() == Some(channels)
        } else {
            d.is_one()
        }
    });
    if !per_channel || channel_axis.is_none() {
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
    let conv = m.attrs("?a")?;
    let (activation, params) = match &conv {
        Op::Conv { .. } => (FusedActivation::Identity, vec![]),
        other => {
            let (activation, params) = fused_activation(other)?;
            (activation, params.to_vec())
        }
    };
    if activation != FusedActivation::Identity {
        return None;
    }
    let (x, w, b, z) = (m.var("?x"), m.var("?w"), m.var("?b"), m.var("?z"));
    if m.facts(z).is_const || m.facts(z).ty() != m.matched().ty() {
        return None;
    }
    let op = fused_conv_op(&conv, activation, params)?;
    let b = present(m, b);
    Some(m.op(op, &[Some(x), Some(w), b, Some(z)]))
}

fn activation(
    name: &'static str,
    has_attrs: bool,
) -> impl Fn(&mut Match) -> Option<Id> + Send + Sync {
    move |m: &mut Match| {
        let (activation, params) = matched_activation(m, name, has_attrs)?;
        let conv = m.attrs("?a")?;
        if let Some((current, _)) = fused_activation(&conv) {
            if current != FusedActivation::Identity {
                return None;
            }
        }
        let (x, w, b) = (m.var("?x"), m.var("?w"), m.var("?b"));
        let z = m.var_opt("?z").and_then(|z| present(m, z));
        let b = present(m, b);
        let op = fused_conv_op(&conv, activation, params)?;
        Some(m.op(op, &[Some(x), Some(w), b, z]))
    }
}

fn conv_pool(kind: PoolKind) -> impl Fn(&mut Match) -> Option<Id> + Send + Sync {
    move |m: &mut Match| {
        let conv = m.attrs("?a")?;
        let (activation, activation_params) = match &conv {
            Op::Conv { .. } => (FusedActivation::Identity, vec![]),
            other => fused_activation(other).map(|(a, p)| (a, p.to_vec()))?,
        };
        let Some(Op::FusedConv {
            strides,
            pads,
            dilations,
            group,
            auto_pad,
            ..
        }) = fused_conv_op(&conv, activation, activation_params.clone())
        else {
            return None;
        };
        let (
            kernel_shape,
            pool_strides,
            pool_pads,
            pool_dilations,
            pool_auto_pad,
            ceil_mode,
            count_include_pad,
        ) = match m.attrs("?pa")? {
            Op::MaxPool {
                kernel_shape,
                strides,
                pads,
                dilations,
                auto_pad,
                ceil_mode,
            } if kind == PoolKind::Max => (
                kernel_shape,
                strides,
                pads,
                dilations,
                auto_pad,
                ceil_mode,
                false,
            ),
            Op::AveragePool {
                kernel_shape,
                strides,
                pads,
                dilations,
                auto_pad,
                ceil_mode,
                count_include_pad,
            } if kind == PoolKind::Average => (
                kernel_shape,
                strides,
                pads,
                dilations,
                auto_pad,
                ceil_mode,
                count_include_pad,
            ),
            _ => return None,
        };
        if pool_auto_pad != AutoPad::NotSet || pool_dilations.iter().any(|&d| d != 1) {
            return None;
        }
        let op = Op::ConvPool {
            strides,
            pads,
            dilations,
            group,
            auto_pad,
            activation,
            activation_params,
            pool: kind,
            pool_kernel_shape: kernel_shape,
            pool_strides,
            pool_pads,
            pool_ceil_mode: ceil_mode,
            count_include_pad,
        };
        let (x, w, b) = (m.var("?x"), m.var("?w"), m.var("?b"));
        let b = present(m, b);
        Some(m.op(op, &[Some(x), Some(w), b]))
    }
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
    for (pool, kind) in [
        ("max_pool", PoolKind::Max),
        ("average_pool", PoolKind::Average),
    ] {
        let short = if kind == PoolKind::Max {
            "max"
        } else {
            "average"
        };
        rules.push(rule(
            &format!("conv-{short}-pool"),
            &format!("({pool} {conv} ?pa)"),
            conv_pool(kind),
        ));
        rules.push(rule(
            &format!("fused-conv-{short}-pool"),
            &format!("({pool} {fused_no_residual} ?pa)"),
            conv_pool(kind),
        ));
    }
    rules
}
