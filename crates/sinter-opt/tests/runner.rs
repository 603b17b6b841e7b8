//! The optimizer's limits and determinism: a run that stops at the node or iteration limit still
//! returns a valid graph that computes the same values and says which limit stopped it, and the
//! same input always optimizes to the same text.

use sinter_ir::{parse_graph, print_graph, ParseOptions, PrintOptions};
use sinter_opt::{optimize, OptimizeOptions};
use std::collections::HashMap;

/// A GELU (tanh form) feeding a stable softmax: several rules must fire in sequence.
const GRAPH: &str = "graph g {
  input %x: f32[batch,8]
  const @k3: f32[] = [0.044715]
  const @k: f32[] = [0.7978846]
  const @one: f32[] = [1.0]
  const @half: f32[] = [0.5]
  %0: f32[batch,8] = mul(%x, %x)
  %1: f32[batch,8] = mul(%x, %0)
  %2: f32[batch,8] = mul(%1, @k3)
  %3: f32[batch,8] = add(%x, %2)
  %4: f32[batch,8] = mul(%3, @k)
  %5: f32[batch,8] = tanh(%4)
  %6: f32[batch,8] = add(%5, @one)
  %7: f32[batch,8] = mul(%x, %6)
  %8: f32[batch,8] = mul(%7, @half)
  %9: f32[batch,1] = reduce_max(%8) {axes=[-1]}
  %10: f32[batch,8] = sub(%8, %9)
  %11: f32[batch,8] = exp(%10)
  %12: f32[batch,1] = reduce_sum(%11) {axes=[-1]}
  %13: f32[batch,8] = div(%11, %12)
  output y = %13
}";

fn graph() -> sinter_ir::Graph {
    parse_graph(GRAPH, &ParseOptions::default()).unwrap()
}

fn same_values(a: &sinter_ir::Graph, b: &sinter_ir::Graph) {
    let sizes = HashMap::from([("batch".to_string(), 3)]);
    let inputs = sinter_ref::random::random_inputs(a, 7, &sizes);
    let named: Vec<(&str, sinter_ir::Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let (ya, yb) = (
        sinter_ref::run(a, &named).unwrap(),
        sinter_ref::run(b, &named).unwrap(),
    );
    let tolerance = sinter_ref::compare::Tolerance {
        rtol: 1e-4,
        atol: 1e-5,
    };
    assert!(sinter_ref::compare::compare(&yb[0].1, &ya[0].1, tolerance).matches());
}

fn count(graph: &sinter_ir::Graph, op: &str) -> usize {
    graph
        .node_ids()
        .filter(|&id| graph.node(id).op().is_some_and(|o| o.name() == op))
        .count()
}

#[test]
fn unlimited_runs_saturate_and_recognise_everything() {
    let optimized = optimize(graph(), &OptimizeOptions::default()).unwrap();
    let report = &optimized.report;
    assert!(
        report.phases.iter().all(|p| p.stop_reason == "saturated"),
        "{:?}",
        report.phases
    );
    assert_eq!(count(&optimized.graph, "gelu"), 1);
    assert_eq!(count(&optimized.graph, "softmax"), 1);
    assert_eq!(optimized.graph.node_count(), 3, "{}", optimized.graph);
    same_values(&graph(), &optimized.graph);
}

#[test]
fn a_run_stopped_by_the_node_limit_says_so_and_stays_correct() {
    let options = OptimizeOptions {
        node_limit: 22,
        ..OptimizeOptions::default()
    };
    let optimized = optimize(graph(), &options).unwrap();
    assert!(
        optimized.report.hit_node_limit(),
        "{:?}",
        optimized.report.phases
    );
    assert!(optimized
        .report
        .phases
        .iter()
        .any(|p| p.stop_reason.starts_with("node limit")));
    sinter_ir::verify(&optimized.graph).unwrap();
    same_values(&graph(), &optimized.graph);
}

#[test]
fn a_run_stopped_by_the_iteration_limit_says_so_and_stays_correct() {
    let options = OptimizeOptions {
        iter_limit: 1,
        ..OptimizeOptions::default()
    };
    let optimized = optimize(graph(), &options).unwrap();
    let report = &optimized.report;
    assert!(
        report
            .phases
            .iter()
            .any(|p| p.stop_reason == "iteration limit (1)"),
        "{:?}",
        report.phases
    );
    assert!(!report.hit_node_limit());
    sinter_ir::verify(&optimized.graph).unwrap();
    same_values(&graph(), &optimized.graph);
}

#[test]
fn the_same_graph_always_optimizes_to_the_same_text() {
    let print = |g: &sinter_ir::Graph| print_graph(g, &PrintOptions::default());
    let options = OptimizeOptions {
        time_limit: None,
        ..OptimizeOptions::default()
    };
    let first = print(&optimize(graph(), &options).unwrap().graph);
    for _ in 0..3 {
        assert_eq!(print(&optimize(graph(), &options).unwrap().graph), first);
    }
}

#[test]
fn explanations_name_the_rule_and_the_source_node() {
    let source = GRAPH.replace(
        "%13: f32[batch,8] = div(%11, %12)",
        "%13: f32[batch,8] = div(%11, %12) loc(\"probs\")",
    );
    let graph = parse_graph(&source, &ParseOptions::default()).unwrap();
    let optimized = optimize(graph, &OptimizeOptions::default()).unwrap();
    let softmax = optimized
        .report
        .explanations
        .iter()
        .find(|e| e.op == "softmax")
        .expect("the softmax is explained");
    assert_eq!(softmax.label, "probs");
    assert!(softmax.rule.starts_with("softmax-"), "{softmax:?}");
}
