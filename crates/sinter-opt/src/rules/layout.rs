//! Layout: chains of transposes and of reshapes are composed, and ones that do nothing are removed.
//!
//! - `transpose(transpose(x, p1), p2)` is `transpose(x, p1 ∘ p2)`, or `x` when that is the identity;
//! - a transpose with the identity permutation is `x`;
//! - a view of a view (`reshape`, `flatten`, `squeeze`, `unsqueeze` in any combination) is one
//!   `reshape` of the innermost input, and a view whose result has its input's type is the input.
//!
//! Attention recognition relies on the first rule: it writes the key operand as
//! `transpose(kᵀ, [0,1,3,2])`, which composes with the exporter's own head-split transpose.

use super::{rule, Match};
use crate::analysis::GraphAnalysis;
use crate::lang::ENode;
use egg::{Id, Rewrite};
use sinter_ir::{Dim, Op, Shape};

/// The explicit permutation of a transpose of a rank-`rank` value (empty means reversed).
pub fn permutation(op: &Op, rank: usize) -> Option<Vec<usize>> {
    let Op::Transpose { perm } = op else {
        return None;
    };
    if perm.is_empty() {
        return Some((0..rank).rev().collect());
    }
    perm.iter().map(|&p| usize::try_from(p).ok()).collect()
}

fn is_identity(perm: &[usize]) -> bool {
    perm.iter().enumerate().all(|(idx, &p)| idx == p)
}

fn compose_transposes(m: &mut Match) -> Option<Id> {
    let x = m.var("?x");
    let rank = m.facts(x).ty()?.rank();
    let inner = permutation(&m.attrs("?p1")?, rank)?;
    let outer = permutation(&m.attrs("?p2")?, rank)?;
    // y[i] = t[outer[i]] = x[inner[outer[i]]]
    let composed: Vec<usize> = outer
        .iter()
        .map(|&o| inner.get(o).copied())
        .collect::<Option<_>>()?;
    if is_identity(&composed) {
        return Some(x);
    }
    let perm = composed.iter().map(|&p| p as i64).collect();
    Some(m.op_all(Op::Transpose { perm }, &[x]))
}

fn identity_transpose(m: &mut Match) -> Option<Id> {
    let x = m.var("?x");
    let rank = m.facts(x).ty()?.rank();
    is_identity(&permutation(&m.attrs("?p")?, rank)?).then_some(x)
}

/// `reshape(x)` to `target`, written with static dims where they are known, `0` (copy) where a
/// symbolic dim sits at the same position in `x`, and one `-1` otherwise; `x` itself when it already
/// has that shape. `None` when two symbolic dims would need inferring.
pub fn reshape_to(m: &mut Match, x: Id, target: &Shape) -> Option<Id> {
    let source = m.facts(x).ty()?.shape.clone();
    if source == *target {
        return Some(x);
    }
    let mut shape = Vec::with_capacity(target.rank());
    let mut inferred = false;
    for (idx, dim) in target.dims().iter().enumerate() {
        match dim {
            Dim::Static(n) => shape.push(i64::try_from(*n).ok()?),
            symbolic => {
                if source.dims().get(idx) == Some(symbolic) {
                    shape.push(0);
                } else if !inferred {
                    inferred = true;
                    shape.push(-1);
                } else {
                    return None;
                }
            }
        }
    }
    // A `0` entry would copy a zero-sized dim's neighbour; static zeros are written as 0 only with
    // allowzero, so keep to shapes without them.
    if target.dims().iter().any(|d| d.as_static() == Some(0)) {
        return None;
    }
    Some(m.op_all(
        Op::Reshape {
            shape,
            allowzero: false,
        },
        &[x],
    ))
}

/// `reshape(x)` to the matched class's type.
fn reshape_to_matched(m: &mut Match, x: Id) -> Option<Id> {
    let target = m.matched().ty()?.clone();
    if m.facts(x).ty()?.dtype != target.dtype {
        return None;
    }
    reshape_to(m, x, &target.shape)
}

/// The view ops: no data moves, only the shape changes.
const VIEWS: &[&str] = &["reshape", "flatten", "squeeze", "unsqueeze"];

pub fn rules() -> Vec<Rewrite<ENode, GraphAnalysis>> {
    let mut rules = vec![
        rule(
            "transpose-transpose",
            "(transpose (transpose ?x ?p1) ?p2)",
            compose_transposes,
        ),
        rule(
            "transpose-identity",
            "(transpose ?x ?p)",
            identity_transpose,
        ),
    ];
    for outer in VIEWS {
        rules.push(rule(
            &format!("{outer}-identity"),
            &format!("({outer} ?x ?a)"),
            |m| {
                let x = m.var("?x");
                (m.facts(x).ty()? == m.matched().ty()?).then_some(x)
            },
        ));
        for inner in VIEWS {
            rules.push(rule(
                &format!("{outer}-{inner}"),
                &format!("({outer} ({inner} ?x ?a1) ?a2)"),
                |m| {
                    let x = m.var("?x");
                    reshape_to_matched(m, x)
                },
            ));
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_explicit_and_reversal_by_default() {
        let perm = |p: Vec<i64>| Op::Transpose { perm: p };
        assert_eq!(permutation(&perm(vec![]), 3), Some(vec![2, 1, 0]));
        assert_eq!(permutation(&perm(vec![0, 2, 1]), 3), Some(vec![0, 2, 1]));
        assert_eq!(permutation(&perm(vec![-1, 0]), 2), None);
        assert_eq!(permutation(&Op::Relu {}, 2), None);
        assert!(is_identity(&[0, 1, 2]));
        assert!(!is_identity(&[1, 0]));
    }
}
