//! Matrix-product epilogues: a constant bias add and an activation after `matmul` or `gemm` become
//! one `fused_matmul`, which the lowering runs in the GEMM tile's epilogue.
//!
//! - `matmul(a, b) + bias` with a constant `bias` whose broadcast does not enlarge the product is
//!   `fused_matmul(a, b, bias)` (the transformer's `x @ W + b`);
//! - `act(matmul(a, b))` and `act(fused_matmul(..))` of an identity-activated one is
//!   `fused_matmul(.., activation = act)`;
//! - `act(gemm(a, b, c))` with `alpha = beta = 1` and no transposed `a` is
//!   `fused_matmul(a, b', c, act)`, where `b'` is `b` or, for `trans_b`, `transpose(b)`: a weight-only
//!   node when `b` is a constant, so it is folded once after extraction.

use super::conv::{activation_pattern, bare_parts, matched_activation, ACTIVATIONS};
use super::{rule, Match};
use crate::analysis::GraphAnalysis;
use crate::lang::ENode;
use egg::{Id, Rewrite};
use sinter_ir::{FusedActivation, FusedParts, Op};

fn bias(m: &mut Match) -> Option<Id> {
    let (a, b, bias) = (m.var("?a"), m.var("?b"), m.var("?bias"));
    if !m.facts(bias).is_const {
        return None;
    }
    let op = Op::FusedMatMul {
        activation: FusedActivation::Identity,
        activation_params: vec![],
    };
    Some(m.op_all(op, &[a, b, bias]))
}

fn matmul_activation(
    name: &'static str,
    has_attrs: bool,
) -> impl Fn(&mut Match) -> Option<Id> + Send + Sync {
    move |m: &mut Match| {
        let mut parts = match m.var_opt("?fa") {
            Some(_) => bare_parts(m, "?fa")?,
            None => FusedParts::of(&Op::MatMul {})?,
        };
        parts.activation = Some(matched_activation(m, name, has_attrs)?);
        let op = parts.compose()?;
        let (a, b) = (m.var("?a"), m.var("?b"));
        let bias = m.input("?bias");
        Some(m.op(op, &[Some(a), Some(b), bias]))
    }
}

fn gemm_activation(
    name: &'static str,
    has_attrs: bool,
) -> impl Fn(&mut Match) -> Option<Id> + Send + Sync {
    move |m: &mut Match| {
        let Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b,
        } = m.attrs("?ga")?
        else {
            return None;
        };
        let mut parts = FusedParts::of(&Op::MatMul {})?;
        parts.activation = Some(matched_activation(m, name, has_attrs)?);
        let op = parts.compose()?;
        let (a, b) = (m.var("?a"), m.var("?b"));
        if !m.facts(b).is_const {
            return None;
        }
        let b = if trans_b {
            m.op_all(Op::Transpose { perm: vec![1, 0] }, &[b])
        } else {
            b
        };
        let c = m.input("?c");
        Some(m.op(op, &[Some(a), Some(b), c]))
    }
}

pub fn rules() -> Vec<Rewrite<ENode, GraphAnalysis>> {
    let mut rules = vec![rule("matmul-bias", "(add (matmul ?a ?b) ?bias)", bias)];
    for &(name, has_attrs) in ACTIVATIONS {
        rules.push(rule(
            &format!("matmul-{name}"),
            &activation_pattern(name, has_attrs, "(matmul ?a ?b)"),
            matmul_activation(name, has_attrs),
        ));
        rules.push(rule(
            &format!("fused-matmul-{name}"),
            &activation_pattern(name, has_attrs, "(fused_matmul ?a ?b ?bias ?fa)"),
            matmul_activation(name, has_attrs),
        ));
        rules.push(rule(
            &format!("gemm-{name}"),
            &activation_pattern(name, has_attrs, "(gemm ?a ?b ?c ?ga)"),
            gemm_activation(name, has_attrs),
        ));
    }
    rules
}
