//! Identities: nodes that compute their input unchanged are removed.
//!
//! `identity` (ONNX Identity, and Dropout, which the importer maps to identity in inference),
//! a `cast` to the dtype its input already has, `x * 1`, `x / 1`, `x + 0`, `x - 0`, and `x ^ 1`.
//! The arithmetic ones only fire when the constant's broadcast does not change the result's type
//! (`x * ones([4])` on a `[1]`-shaped `x` is a broadcast, not an identity); [`BuildApplier`]'s type
//! check guarantees it. `x + 0` turns `-0` into `+0`; the two compare equal, so this is the one
//! bit-level difference these rules allow.
//!
//! [`BuildApplier`]: super::BuildApplier

use super::{rule, Match};
use crate::analysis::GraphAnalysis;
use crate::lang::ENode;
use egg::{Id, Rewrite};
use sinter_ir::Op;

/// `?x`, when the constant `?c` is everywhere `value`.
fn when_constant_is(value: f64) -> impl Fn(&mut Match) -> Option<Id> + Send + Sync {
    move |m: &mut Match| (m.scalar("?c")? == value).then(|| m.var("?x"))
}

pub fn rules() -> Vec<Rewrite<ENode, GraphAnalysis>> {
    vec![
        rule("identity", "(identity ?x)", |m| Some(m.var("?x"))),
        rule("cast-to-own-dtype", "(cast ?x ?a)", |m| {
            let Op::Cast { to } = m.attrs("?a")? else {
                return None;
            };
            let x = m.var("?x");
            (m.facts(x).ty()?.dtype == to).then_some(x)
        }),
        rule("mul-by-one", "(mul ?x ?c)", when_constant_is(1.0)),
        rule("div-by-one", "(div ?x ?c)", when_constant_is(1.0)),
        rule("add-zero", "(add ?x ?c)", when_constant_is(0.0)),
        rule("sub-zero", "(sub ?x ?c)", when_constant_is(0.0)),
        rule("pow-one", "(pow ?x ?c)", when_constant_is(1.0)),
    ]
}
