//! The optimizer's snapshot suite: one `.sir` file per rule or pattern variant in
//! `tests/opt/<family>/`, named like the rule family in `crates/sinter-opt/src/rules/<family>.rs`.
//!
//! Each file starts with a `; run: optimize` header and a `;;` line stating the intent (negative cases
//! say which rule must not fire and why), then the minimal input graph. The harness:
//! 1. optimizes the graph with deterministic limits (no time limit) and asserts the run had no type
//!    conflicts and never stopped at the node limit;
//! 2. snapshots the optimized graph's text followed by the rules that fired (`cargo insta review`
//!    accepts changes; CI runs with `INSTA_UPDATE=no`);
//! 3. runs the original and the optimized graph on the reference interpreter with seeded random
//!    inputs (symbolic dims bound to 3) and asserts they agree within rtol 1e-4 / atol 1e-5.

use sinter::ir::{parse_graph, print_graph, ParseOptions, PrintOptions};
use sinter::opt::{optimize, OptimizeOptions};
use sinter::reference::compare::{compare, Tolerance};
use std::collections::HashMap;
use std::fmt::Write;

const TOLERANCE: Tolerance = Tolerance {
    rtol: 1e-4,
    atol: 1e-5,
};

fn check_case(path: &std::path::Path, source: &str) -> String {
    let name = path.display();
    let mut lines = source.lines();
    assert_eq!(
        lines.next().map(str::trim),
        Some("; run: optimize"),
        "{name}: the first line must be `; run: optimize`"
    );
    let intent = lines.next().unwrap_or_default();
    assert!(
        intent.starts_with(";;"),
        "{name}: the second line must state the intent with `;;`"
    );
    let graph =
        parse_graph(source, &ParseOptions::default()).unwrap_or_else(|err| panic!("{name}: {err}"));
    let options = OptimizeOptions {
        time_limit: None,
        ..OptimizeOptions::default()
    };
    let optimized = optimize(graph.clone(), &options).unwrap_or_else(|err| panic!("{name}: {err}"));
    let report = &optimized.report;
    assert!(
        report.conflicts.is_empty(),
        "{name}: {:?}",
        report.conflicts
    );
    assert!(!report.hit_node_limit(), "{name}: {:?}", report.phases);
    sinter::ir::verify(&optimized.graph)
        .unwrap_or_else(|problems| panic!("{name}: the optimized graph is invalid: {problems:?}"));

    let sizes: HashMap<String, usize> = HashMap::new();
    let mut sym_sizes = sizes;
    for (_, ty) in graph.input_signature() {
        for dim in ty.shape.dims() {
            if let sinter::ir::Dim::Sym(sym) = dim {
                sym_sizes.insert(sym.to_string(), 3);
            }
        }
    }
    for seed in 0..2 {
        let inputs = sinter::reference::random::random_inputs(&graph, seed, &sym_sizes);
        let named: Vec<(&str, sinter::ir::Tensor)> = inputs
            .iter()
            .map(|(n, t)| (n.as_str(), t.clone()))
            .collect();
        let expected = sinter::reference::run(&graph, &named)
            .unwrap_or_else(|err| panic!("{name}: the original graph fails: {err}"));
        let actual = sinter::reference::run(&optimized.graph, &named)
            .unwrap_or_else(|err| panic!("{name}: the optimized graph fails: {err}"));
        for ((out, e), (_, a)) in expected.iter().zip(&actual) {
            let comparison = compare(a, e, TOLERANCE);
            assert!(
                comparison.matches(),
                "{name}: output `{out}` differs after optimization (seed {seed}): {comparison:?}"
            );
        }
    }

    let mut text = print_graph(&optimized.graph, &PrintOptions::default());
    writeln!(text, "; rules fired:").unwrap();
    for (rule, count) in &report.rule_counts {
        writeln!(text, ";   {rule}: {count}").unwrap();
    }
    text
}

#[test]
fn optimizer_snapshots() {
    insta::glob!("opt/**/*.sir", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let text = check_case(path, &source);
        insta::assert_snapshot!(text);
    });
}
