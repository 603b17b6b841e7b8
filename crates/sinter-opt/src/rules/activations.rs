//! Activations written out as arithmetic are recognised as the op: GELU in its erf and tanh forms,
//! and SiLU (`x * sigmoid(x)`, Llama's MLP gate).
//!
//! Exporters write `gelu(x) = 0.5 * x * (1 + erf(x / √2))` with the three factors multiplied in any
//! order, and the tanh approximation `0.5 * x * (1 + tanh(√(2/π) * (x + 0.044715 * x³)))` with the
//! cube as `x * x * x` in either association or as `pow(x, 3)`. Rather than a pattern per spelling,
//! small rules bring the pieces to one form first:
//! - `x / c` is `x * (1 / c)` for a scalar constant `c` (so `x / √2` and `x * 0.7071` meet);
//! - `x * (x * x)` and `(x * x) * x` are `pow(x, 3)`.
//!
//! The outer product is then matched in its six association and operand orders. Constants compare
//! within a relative 1e-5, because exporters print them with 8 significant digits.

use super::{close, rule, Match};
use crate::analysis::GraphAnalysis;
use crate::lang::ENode;
use egg::{Id, Rewrite};
use sinter_ir::{GeluApprox, Op};

fn div_to_mul(m: &mut Match) -> Option<Id> {
    let c = m.scalar("?c")?;
    let x = m.var("?x");
    if c == 0.0 || !m.facts(x).ty()?.dtype.is_float() || !m.facts(m.var("?c")).is_const {
        return None;
    }
    let reciprocal = m.scalar_like("reciprocal", x, 1.0 / c)?;
    Some(m.op_all(Op::Mul {}, &[x, reciprocal]))
}

fn cube(m: &mut Match) -> Option<Id> {
    let x = m.var("?x");
    if !m.facts(x).ty()?.dtype.is_float() {
        return None;
    }
    let three = m.scalar_like("three", x, 3.0)?;
    Some(m.op_all(Op::Pow {}, &[x, three]))
}

fn silu(m: &mut Match) -> Option<Id> {
    let x = m.var("?x");
    m.facts(x)
        .ty()?
        .dtype
        .is_float()
        .then(|| m.op_all(Op::Silu {}, &[x]))
}

/// The gate `1 + erf(x / √2)` or `1 + tanh(√(2/π) (x + 0.044715 x³))`, as a pattern over `?x`.
const ERF_GATE: &str = "(add (erf (mul ?x ?k)) ?one)";
const TANH_GATE: &str = "(add (tanh (mul (add ?x (mul (pow ?x ?three) ?k3)) ?k)) ?one)";

/// `0.5 * x * gate` in the orders exporters produce (constants on the right after import).
const PRODUCTS: &[(&str, &str)] = &[
    ("half-x-gate", "(mul (mul ?x GATE) ?half)"),
    ("gate-x-half", "(mul (mul GATE ?x) ?half)"),
    ("xhalf-gate", "(mul (mul ?x ?half) GATE)"),
    ("gate-xhalf", "(mul GATE (mul ?x ?half))"),
    ("x-gatehalf", "(mul ?x (mul GATE ?half))"),
    ("gatehalf-x", "(mul (mul GATE ?half) ?x)"),
];

fn gelu(approximate: GeluApprox) -> impl Fn(&mut Match) -> Option<Id> + Send + Sync {
    move |m: &mut Match| {
        let x = m.var("?x");
        if !m.facts(x).ty()?.dtype.is_float() {
            return None;
        }
        let gate_ok = match approximate {
            GeluApprox::None => close(m.scalar("?k")?, std::f64::consts::FRAC_1_SQRT_2),
            GeluApprox::Tanh => {
                close(m.scalar("?k")?, (2.0 / std::f64::consts::PI).sqrt())
                    && close(m.scalar("?k3")?, 0.044715)
                    && m.scalar("?three")? == 3.0
            }
        };
        (gate_ok && m.scalar("?one")? == 1.0 && m.scalar("?half")? == 0.5)
            .then(|| m.op_all(Op::Gelu { approximate }, &[x]))
    }
}

pub fn rules() -> Vec<Rewrite<ENode, GraphAnalysis>> {
    let mut rules = vec![
        rule("div-by-constant", "(div ?x ?c)", div_to_mul),
        rule("cube-left", "(mul ?x (mul ?x ?x))", cube),
        rule("cube-right", "(mul (mul ?x ?x) ?x)", cube),
        rule("silu-left", "(mul ?x (sigmoid ?x))", silu),
        rule("silu-right", "(mul (sigmoid ?x) ?x)", silu),
    ];
    for (form, gate, approximate) in [
        ("erf", ERF_GATE, GeluApprox::None),
        ("tanh", TANH_GATE, GeluApprox::Tanh),
    ] {
        for (order, product) in PRODUCTS {
            rules.push(rule(
                &format!("gelu-{form}-{order}"),
                &product.replace("GATE", gate),
                gelu(approximate),
            ));
        }
    }
    rules
}
