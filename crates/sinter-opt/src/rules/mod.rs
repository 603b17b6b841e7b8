//! The rewrite rules, one module per family, and the phases they run in.
//!
//! Families are named like their snapshot folders in `tests/opt/<family>/`:
//! - canonicalise: [`identities`] (identity, no-op cast, `x*1`, `x+0`, ...), [`layout`] (transpose
//!   and reshape chains);
//! - recognise: [`activations`] (GELU erf/tanh), [`normalization`] (softmax, layer norm, RMS norm),
//!   [`attention`] (the scaled dot-product chain, its masks and head split/merge);
//! - fuse: [`batchnorm`] (folding into conv and gemm), [`conv`] (bias, residual and activation into
//!   `fused_conv`, pools into `conv_pool`), [`matmul`] (bias and activation into `fused_matmul`).
//!
//! A phase runs its own rules together with every earlier phase's, so a rewrite that exposes a new
//! canonicalisation (a transpose composed into a recognised attention) still gets it.
//!
//! **Rule discipline** (see DESIGN.md): no commutativity or associativity rules (commuted variants
//! are written by hand, constants are on the right after import), conditions only test analysis facts
//! that survive merges, and a rule that builds a node whose inferred type differs from the matched
//! class's declines instead of merging (see [`BuildApplier`]).

pub mod activations;
pub mod attention;
pub mod batchnorm;
pub mod conv;
pub mod identities;
pub mod layout;
pub mod matmul;
pub mod normalization;

use crate::analysis::{Egraph, Facts, GraphAnalysis};
use crate::convert::add_op_node;
use crate::lang::ENode;
use egg::{Applier, Id, Pattern, PatternAst, Rewrite, Subst, Symbol, Var};
use sinter_ir::{Op, Tensor, TensorData};
use std::sync::{Arc, OnceLock};

/// The optimizer's phases, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Canonicalise,
    Recognise,
    Fuse,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Canonicalise, Phase::Recognise, Phase::Fuse];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Canonicalise => "canonicalise",
            Phase::Recognise => "recognise",
            Phase::Fuse => "fuse",
        }
    }

    /// The rules of this phase alone.
    pub fn own_rules(self) -> Vec<Rewrite<ENode, GraphAnalysis>> {
        match self {
            Phase::Canonicalise => [identities::rules(), layout::rules()]
                .into_iter()
                .flatten()
                .collect(),
            Phase::Recognise => [
                activations::rules(),
                normalization::rules(),
                attention::rules(),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Phase::Fuse => [batchnorm::rules(), conv::rules(), matmul::rules()]
                .into_iter()
                .flatten()
                .collect(),
        }
    }

    /// The rules that run in this phase: its own and every earlier phase's. Built once per process
    /// (patterns are parsed and compiled then), and shared by every optimizer run.
    pub fn rules(self) -> &'static [Rewrite<ENode, GraphAnalysis>] {
        static RULES: OnceLock<Vec<Vec<Rewrite<ENode, GraphAnalysis>>>> = OnceLock::new();
        let all = RULES.get_or_init(|| {
            Phase::ALL
                .iter()
                .map(|phase| {
                    Phase::ALL
                        .iter()
                        .take_while(|p| *p != phase)
                        .chain(std::iter::once(phase))
                        .flat_map(|p| p.own_rules())
                        .collect()
                })
                .collect()
        });
        let idx = Phase::ALL.iter().position(|p| *p == self).expect("a phase");
        &all[idx]
    }
}

/// What a rule's builder sees: the e-graph, the matched class and the pattern's substitution.
pub struct Match<'a> {
    pub egraph: &'a mut Egraph,
    pub eclass: Id,
    pub subst: &'a Subst,
}

impl Match<'_> {
    /// The class bound to pattern variable `name` (`"?x"`).
    pub fn var(&self, name: &str) -> Id {
        let var: Var = name.parse().expect("rule variables are valid");
        self.egraph.find(self.subst[var])
    }

    /// The class bound to `name`, if the pattern binds it.
    pub fn var_opt(&self, name: &str) -> Option<Id> {
        let var: Var = name.parse().expect("rule variables are valid");
        self.subst.get(var).map(|id| self.egraph.find(*id))
    }

    /// The input bound to `name`: `None` when the pattern does not bind it or it is an absent
    /// optional input (`_`).
    pub fn input(&self, name: &str) -> Option<Id> {
        let id = self.var_opt(name)?;
        (!self.egraph[id].nodes.contains(&ENode::Absent)).then_some(id)
    }

    pub fn facts(&self, id: Id) -> &Facts {
        &self.egraph[id].data
    }

    /// The op (with attributes) an attributes variable is bound to.
    pub fn attrs(&self, name: &str) -> Option<Op> {
        self.attrs_of(self.var(name))
    }

    /// The op (with attributes) of the attributes leaf class `id`.
    pub fn attrs_of(&self, id: Id) -> Option<Op> {
        let attrs = self.facts(id).attrs?;
        Some(self.egraph.analysis.ops[attrs.0 as usize].clone())
    }

    /// The scalar every element of the class bound to `name` equals, if it is a known constant.
    pub fn scalar(&self, name: &str) -> Option<f64> {
        self.facts(self.var(name)).scalar
    }

    /// The facts of the matched class.
    pub fn matched(&self) -> &Facts {
        &self.egraph[self.eclass].data
    }

    /// Adds an op node over `inputs` (absent optional inputs as `None`).
    pub fn op(&mut self, op: Op, inputs: &[Option<Id>]) -> Id {
        add_op_node(self.egraph, op, inputs)
    }

    /// Adds an op node over present inputs.
    pub fn op_all(&mut self, op: Op, inputs: &[Id]) -> Id {
        let inputs: Vec<Option<Id>> = inputs.iter().copied().map(Some).collect();
        add_op_node(self.egraph, op, &inputs)
    }

    /// Adds a new weight (named after `stem` and the matched class's origin).
    pub fn weight(&mut self, stem: &str, tensor: Tensor) -> Id {
        let name = match &self.matched().origin {
            Some(origin) => format!("{origin}:{stem}"),
            None => stem.to_string(),
        };
        let idx = self.egraph.analysis.add_weight(name, tensor);
        self.egraph.add(ENode::Weight(idx))
    }

    /// A new weight of shape `dims` with every element `value`, in the float dtype of class `like`
    /// (`None` if `like` is not f32 or f64).
    pub fn filled(&mut self, stem: &str, like: Id, dims: Vec<usize>, value: f64) -> Option<Id> {
        let dtype = self.facts(like).ty()?.dtype;
        if !dtype.is_float() {
            return None;
        }
        let n: usize = dims.iter().product();
        let data = TensorData::from_f64s(dtype, std::iter::repeat_n(value, n));
        let tensor = Tensor::new(dims, data).ok()?;
        Some(self.weight(stem, tensor))
    }

    /// A new scalar weight `value` in the float dtype of class `like`.
    pub fn scalar_like(&mut self, stem: &str, like: Id, value: f64) -> Option<Id> {
        self.filled(stem, like, vec![], value)
    }

    /// Finds an op node of class `id` called `name` for which `accept` holds.
    pub fn find_node(
        &self,
        id: Id,
        name: &str,
        accept: impl Fn(&ENode, Option<&Op>) -> bool,
    ) -> Option<ENode> {
        let egraph = &*self.egraph;
        egraph[id]
            .nodes
            .iter()
            .find(|node| {
                node.op_name() == Some(name) && {
                    let op = crate::analysis::op_of(egraph, node);
                    accept(node, op.as_ref())
                }
            })
            .cloned()
    }
}

type BuildFn = dyn Fn(&mut Match) -> Option<Id> + Send + Sync;

/// An applier that runs a builder closure and unions what it built with the matched class.
///
/// It records the rule as the origin of every node the builder adds (for `--explain`), and declines
/// when the built class's types differ from the matched class's: such a rewrite would be wrong, and
/// refusing it keeps a rule's blind spot from corrupting the e-graph.
pub struct BuildApplier {
    name: String,
    build: Arc<BuildFn>,
}

impl Applier<ENode, GraphAnalysis> for BuildApplier {
    fn apply_one(
        &self,
        egraph: &mut Egraph,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<ENode>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        egraph.analysis.current_rule = Some((self.name.clone(), eclass));
        let built = {
            let mut m = Match {
                egraph,
                eclass,
                subst,
            };
            (self.build)(&mut m)
        };
        egraph.analysis.current_rule = None;
        let Some(built) = built else {
            return vec![];
        };
        if egraph[built].data.types != egraph[eclass].data.types
            || egraph[built].data.types.is_empty()
        {
            return vec![];
        }
        if egraph.union(eclass, built) {
            vec![built]
        } else {
            vec![]
        }
    }
}

/// A rule: when `pattern` matches, `build` adds the replacement (or declines with `None`).
pub fn rule(
    name: &str,
    pattern: &str,
    build: impl Fn(&mut Match) -> Option<Id> + Send + Sync + 'static,
) -> Rewrite<ENode, GraphAnalysis> {
    let searcher: Pattern<ENode> = pattern
        .parse()
        .unwrap_or_else(|e| panic!("rule `{name}`: bad pattern `{pattern}`: {e}"));
    Rewrite::new(
        name,
        searcher,
        BuildApplier {
            name: name.to_string(),
            build: Arc::new(build),
        },
    )
    .unwrap_or_else(|e| panic!("rule `{name}`: {e}"))
}

/// Whether `a` is within a relative `1e-5` of `b` (constants written with few digits in exporters,
/// like `0.044715` or `1.4142135`).
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1e-30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_builds_and_names_are_unique() {
        let mut names = std::collections::BTreeSet::new();
        for phase in Phase::ALL {
            for rule in phase.own_rules() {
                assert!(
                    names.insert(rule.name.to_string()),
                    "duplicate rule name `{}`",
                    rule.name
                );
            }
        }
        assert!(names.len() > 20, "{names:?}");
    }
}
