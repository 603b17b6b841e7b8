//! The optimizer's targets on the real-model fixtures (`tests/models`): every fusion the issue asks
//! for fires on every fixture that has the pattern, in both exporters' spellings.
//!
//! Each fixture is imported as `sinter check` imports it, optimized with the default options, and
//! the optimized graph's ops are counted: no batch norm is left, every attention block is one
//! `attention` op (causal where the model is, with the head split absorbed where the exporter writes
//! it with reshape and transpose), every layer norm, RMS norm and GELU is recognised. The run must not
//! stop at the node limit or find a type conflict. That the optimized graphs compute the right
//! values is `real_models.rs`'s job: the JIT optimizes before compiling.

mod common;

use sinter::opt::{optimize, OptimizeOptions};
use std::path::Path;

/// What the optimized graph must contain, per fixture (both exports of a model share a row).
/// `attention+causal` counts causal attention ops, `attention+heads` those on unsplit operands;
/// `act:NAME` counts activation NAME wherever it is computed: as its own op or inside a fused op
/// (`act:gelu` includes the tanh form).
const TARGETS: &[(&str, &[(&str, usize)])] = &[
    (
        "gpt_decoder",
        &[
            ("attention", 2),
            ("attention+causal", 2),
            ("attention+heads", 2),
            ("softmax", 0),
            ("layer_norm", 5),
            ("act:gelu", 2),
            ("gelu", 0),
            ("transpose", 0),
        ],
    ),
    (
        "bert_tiny_hf",
        &[
            ("attention", 2),
            ("attention+heads", 2),
            ("softmax", 0),
            ("layer_norm", 5),
            ("act:gelu", 2),
            ("gelu", 0),
            ("transpose", 0),
        ],
    ),
    (
        "llama_tiny_hf",
        &[
            ("attention", 2),
            ("attention+causal", 2),
            ("softmax", 0),
            ("rms_norm", 5),
            ("cast", 0),
            ("act:silu", 2),
            ("sigmoid", 0),
        ],
    ),
    (
        "transformer_encoder",
        &[
            ("attention", 2),
            ("softmax", 0),
            ("layer_norm", 4),
            ("act:gelu", 2),
        ],
    ),
    // Every conv + relu fused (the three projection shortcuts have no activation), every residual
    // add absorbed.
    (
        "resnet18_w8_bn",
        &[("batch_norm", 0), ("relu", 0), ("add", 0), ("act:relu", 17)],
    ),
    (
        "resnet18_w8",
        &[
            ("relu", 0),
            ("add", 0),
            ("act:relu", 17),
            ("fused_conv", 17),
        ],
    ),
    (
        "mobilenetv2_small",
        &[("clip", 0), ("add", 0), ("act:clip", 15)],
    ),
    // Both conv + relu + 2x2 max pool blocks become conv_pool.
    (
        "lenet5",
        &[
            ("conv_pool", 2),
            ("max_pool", 0),
            ("relu", 0),
            ("act:relu", 4),
        ],
    ),
    ("mlp_bn", &[("batch_norm", 0), ("relu", 0), ("act:relu", 2)]),
];

#[test]
fn every_fusion_fires_on_the_real_model_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models");
    let mut problems = Vec::new();
    let mut n_checked = 0;
    for (model, targets) in TARGETS {
        for exporter in ["ts", "dynamo"] {
            let name = format!("{model}_{exporter}");
            let dir = root.join(&name);
            let imported =
                common::import_data_set(&dir.join("model.onnx"), &dir.join("test_data_set_0"))
                    .unwrap_or_else(|err| panic!("{name}: {err}"));
            let optimized = optimize(imported.graph, &OptimizeOptions::default())
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            let report = &optimized.report;
            assert!(
                report.conflicts.is_empty(),
                "{name}: {:?}",
                report.conflicts
            );
            assert!(!report.hit_node_limit(), "{name}: {:?}", report.phases);
            let counts = common::op_counts(&optimized.graph);
            for (op, expected) in *targets {
                let actual = counts.get(*op).copied().unwrap_or(0);
                if actual != *expected {
                    problems.push(format!("{name}: {actual} `{op}`, expected {expected}"));
                }
            }
            n_checked += 1;
        }
    }
    assert_eq!(n_checked, 2 * TARGETS.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
