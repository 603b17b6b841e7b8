//! The optimizer on whole models: a ResNet-50 and a 12-layer BERT encoder with every node of the real
//! ones, narrowed (fewer channels, a small hidden size) so the reference interpreter checks them in
//! seconds.
//!
//! The snapshot suite (`tests/opt.rs`) proves each rule on a minimal graph; this file proves the rules
//! still all fire when hundreds of matches share one e-graph and the phases' limits apply: no phase
//! stops at the node limit, every `batch_norm` is folded, each BERT layer's attention becomes one
//! 3-d `attention` op with head counts, every decomposed LayerNorm and erf GELU is recognised, and
//! the optimized graph computes what the original does (rtol 1e-4 / atol 1e-5, seeded inputs).
//! The full-size graphs are timed by `benches/opt.rs` with the same builders.

mod common;
#[path = "../benches/support/models.rs"]
mod models;

use sinter::ir::{Graph, NodeKind, Op};
use sinter::opt::{optimize, OptimizeOptions, Optimized};
use sinter::reference::compare::{compare, Tolerance};
use std::collections::{BTreeMap, HashMap};

const TOLERANCE: Tolerance = Tolerance {
    rtol: 1e-4,
    atol: 1e-5,
};

fn count(counts: &BTreeMap<String, usize>, op: &str) -> usize {
    counts.get(op).copied().unwrap_or(0)
}

/// Optimizes with the default options and checks what holds for every run: a valid graph, no type
/// conflicts, no phase at the node limit.
fn optimized(graph: &Graph) -> Optimized {
    let result = optimize(graph.clone(), &OptimizeOptions::default()).expect("the optimizer runs");
    let report = &result.report;
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    assert!(!report.hit_node_limit(), "{:?}", report.phases);
    sinter::ir::verify(&result.graph)
        .unwrap_or_else(|problems| panic!("the optimized graph is invalid: {problems:?}"));
    result
}

/// Runs both graphs on the reference interpreter with seeded random inputs (`batch` = 2) and asserts
/// every output agrees.
fn assert_same_outputs(original: &Graph, optimized: &Graph, seed: u64) {
    let sizes = HashMap::from([("batch".to_string(), 2)]);
    let inputs = sinter::reference::random::random_inputs(original, seed, &sizes);
    let named: Vec<(&str, sinter::ir::Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let expected = sinter::reference::run(original, &named).expect("the original graph runs");
    let actual = sinter::reference::run(optimized, &named).expect("the optimized graph runs");
    assert_eq!(expected.len(), actual.len());
    for ((name, e), (_, a)) in expected.iter().zip(&actual) {
        let comparison = compare(a, e, TOLERANCE);
        assert!(
            comparison.matches(),
            "output `{name}` differs after optimization: {comparison:?}"
        );
    }
}

#[test]
fn resnet50_folds_every_batch_norm() {
    // Channels / 16 (4..128 instead of 64..2048), 32x32 images: the topology of the real model.
    let graph = models::resnet50(16, 32);
    let before = common::op_counts(&graph);
    assert_eq!(count(&before, "conv"), 53, "{before:?}");
    assert_eq!(count(&before, "batch_norm"), 53, "{before:?}");
    assert_eq!(count(&before, "add"), 16, "{before:?}");
    // The stem's and three per block.
    assert_eq!(count(&before, "relu"), 49, "{before:?}");

    let result = optimized(&graph);
    let after = common::op_counts(&result.graph);
    assert_eq!(count(&after, "batch_norm"), 0, "{after:?}");
    // Every relu is still computed, fused or not.
    assert_eq!(count(&after, "act:relu"), 49, "{after:?}");
    // Every conv is still there (fused or not), and folding gave each its bias, computed once from
    // the weights.
    let mut n_convs = 0;
    for id in result.graph.node_ids() {
        let node = result.graph.node(id);
        if !matches!(
            node.op(),
            Some(Op::Conv { .. } | Op::FusedConv { .. } | Op::ConvPool { .. })
        ) {
            continue;
        }
        n_convs += 1;
        let bias = result.graph.node_inputs(id).get(2).copied().flatten();
        let bias = bias.unwrap_or_else(|| panic!("{} has no bias", node.describe()));
        assert!(
            matches!(result.graph.node(bias.node).kind, NodeKind::Const { .. }),
            "the folded bias of {} is not a constant",
            node.describe()
        );
    }
    assert_eq!(n_convs, 53, "{after:?}");
    assert!(result.report.cost_after < result.report.cost_before);
    assert_same_outputs(&graph, &result.graph, 1);
}

#[test]
fn bert_recognises_every_attention_layer_norm_and_gelu() {
    // 12 layers of hidden 32 (4 heads of 8), MLP 64, sequence 8.
    let (layers, hidden, heads) = (12, 32, 4);
    let graph = models::bert(layers, hidden, heads, 64, 8);
    let before = common::op_counts(&graph);
    assert_eq!(count(&before, "softmax"), layers, "{before:?}");
    assert_eq!(count(&before, "erf"), layers, "{before:?}");
    assert_eq!(count(&before, "sqrt"), 2 * layers + 1, "{before:?}");

    let result = optimized(&graph);
    let after = common::op_counts(&result.graph);
    assert_eq!(count(&after, "attention"), layers, "{after:?}");
    assert_eq!(count(&after, "layer_norm"), 2 * layers + 1, "{after:?}");
    assert_eq!(count(&after, "act:gelu"), layers, "{after:?}");
    for gone in ["softmax", "erf", "sqrt", "pow", "reduce_mean", "transpose"] {
        assert_eq!(count(&after, gone), 0, "`{gone}` is left: {after:?}");
    }
    // Each attention is the 3-d form on the unsplit projections, with the head counts.
    for id in result.graph.node_ids() {
        let node = result.graph.node(id);
        if let Some(Op::Attention {
            q_num_heads,
            kv_num_heads,
            ..
        }) = node.op()
        {
            assert_eq!((*q_num_heads, *kv_num_heads), (heads as i64, heads as i64));
            assert_eq!(node.outputs[0].rank(), 3, "{}", node.describe());
        }
    }
    assert_same_outputs(&graph, &result.graph, 2);
}
