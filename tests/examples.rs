//! The DSL examples in `examples/` run as tests, with assertions on properties every correct run
//! has: probabilities that sum to one, normalized rows after layer norm, padding that does not leak
//! into real positions, and identical results from identical seeds.

#[path = "../examples/lenet.rs"]
#[allow(dead_code)]
mod lenet;

#[path = "../examples/attention_block.rs"]
#[allow(dead_code)]
mod attention_block;

use attention_block::{AttentionForm, BlockConfig, BATCH, D_MODEL, LENGTHS, SEQ};

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn lenet_probabilities_are_a_distribution() {
    let summary = lenet::run_example().expect("lenet runs");
    assert_eq!(summary.probabilities.len(), 2);
    for (row, &class) in summary.probabilities.iter().zip(&summary.predicted) {
        assert_eq!(row.len(), lenet::N_CLASSES);
        assert!(
            row.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p)),
            "{row:?}"
        );
        let total: f32 = row.iter().sum();
        assert!((total - 1.0).abs() < 1e-5, "row sums to {total}");
        let argmax = row
            .iter()
            .enumerate()
            .fold(0, |best, (idx, p)| if *p > row[best] { idx } else { best });
        assert_eq!(
            class, argmax as i64,
            "the class output is the argmax of {row:?}"
        );
    }
    // Different images must give different outputs, or the network ignores its input.
    assert_ne!(summary.probabilities[0], summary.probabilities[1]);
    // 6*1*5*5+6 + 16*6*5*5+16 + 256*120+120 + 120*84+84 + 84*10+10 weights and biases.
    assert_eq!(summary.n_parameters, 44_426);
}

#[test]
fn lenet_is_deterministic_and_batch_independent() {
    let first = lenet::run_example().expect("lenet runs");
    let second = lenet::run_example().expect("lenet runs");
    assert_eq!(first, second);

    // The batch is symbolic: one image alone gives the same row as inside a batch of two.
    let graph = lenet::build_lenet(lenet::SEED).expect("lenet builds");
    let alone = lenet::classify(&graph, &[3]).expect("runs with batch 1");
    let widen = |row: &[f32]| row.iter().map(|&p| f64::from(p)).collect::<Vec<_>>();
    let diff = max_abs_diff(
        &widen(&alone.probabilities[0]),
        &widen(&first.probabilities[1]),
    );
    assert!(diff < 1e-6, "batch-1 and batch-2 results differ by {diff}");

    // Another seed gives other weights, so other probabilities.
    let other = lenet::classify(
        &lenet::build_lenet(lenet::SEED + 1).expect("builds"),
        &[7, 3],
    )
    .expect("runs");
    assert_ne!(other.probabilities, first.probabilities);
}

#[test]
fn attention_block_output_rows_are_layer_normalized() {
    let summary = attention_block::run_example().expect("the block runs");
    assert_eq!(summary.output.shape(), [BATCH, SEQ, D_MODEL]);
    assert!(summary.output.to_f64_vec().iter().all(|v| v.is_finite()));
    assert_eq!(summary.row_means.len(), BATCH * SEQ);
    // The last layer norm has scale 1 and bias 0 from `Init`, so every row of the output has mean 0
    // and variance var / (var + epsilon), a hair below 1.
    for (row_idx, (mean, var)) in summary.row_means.iter().zip(&summary.row_vars).enumerate() {
        assert!(mean.abs() < 1e-5, "row {row_idx} has mean {mean}");
        assert!((var - 1.0).abs() < 1e-3, "row {row_idx} has variance {var}");
    }
    let again = attention_block::run_example().expect("the block runs");
    assert_eq!(
        summary.output, again.output,
        "identical seeds give identical outputs"
    );
}

#[test]
fn attention_block_ignores_padded_positions() {
    let config = BlockConfig::default();
    let graph = attention_block::build_encoder_block(&config).expect("builds");
    let mask = attention_block::padding_mask(&LENGTHS);
    let x = attention_block::example_input(1, D_MODEL);
    let y = attention_block::run_block(&graph, x.clone(), mask.clone()).expect("runs");

    // Overwrite the padded positions of the second sequence with other values.
    let mut perturbed = x.to_f64_vec();
    for pos in LENGTHS[1]..SEQ {
        let start = (SEQ + pos) * D_MODEL;
        for v in &mut perturbed[start..start + D_MODEL] {
            *v = 3.0 - *v;
        }
    }
    let perturbed: Vec<f32> = perturbed.into_iter().map(|v| v as f32).collect();
    let x2 = sinter::ir::Tensor::from_vec(vec![BATCH, SEQ, D_MODEL], perturbed).expect("sized");
    let y2 = attention_block::run_block(&graph, x2, mask).expect("runs");

    let (y, y2) = (y.to_f64_vec(), y2.to_f64_vec());
    let rows = |values: &[f64], seq_idx: usize, positions: std::ops::Range<usize>| {
        let start = (seq_idx * SEQ + positions.start) * D_MODEL;
        let end = (seq_idx * SEQ + positions.end) * D_MODEL;
        values[start..end].to_vec()
    };
    let real = 0..LENGTHS[1];
    let diff = max_abs_diff(&rows(&y, 1, real.clone()), &rows(&y2, 1, real));
    assert!(
        diff < 1e-6,
        "real tokens changed by {diff} when only padding changed"
    );
    assert_eq!(
        rows(&y, 0, 0..SEQ),
        rows(&y2, 0, 0..SEQ),
        "the other sequence is untouched"
    );
    let padded = LENGTHS[1]..SEQ;
    let diff = max_abs_diff(&rows(&y, 1, padded.clone()), &rows(&y2, 1, padded));
    assert!(
        diff > 1e-3,
        "the perturbation must reach the padded positions themselves"
    );
}

#[test]
fn attention_block_decomposed_and_fused_agree() {
    let decomposed = attention_block::build_encoder_block(&BlockConfig::default()).expect("builds");
    let fused_config = BlockConfig {
        attention: AttentionForm::Fused,
        ..BlockConfig::default()
    };
    let fused = attention_block::build_encoder_block(&fused_config).expect("builds");
    let count_op = |graph: &sinter::ir::Graph, name: &str| {
        graph
            .node_ids()
            .filter(|&id| graph.node(id).op().is_some_and(|op| op.name() == name))
            .count()
    };
    assert_eq!(
        (
            count_op(&decomposed, "attention"),
            count_op(&fused, "attention")
        ),
        (0, 1)
    );
    let run = |graph| {
        let x = attention_block::example_input(1, D_MODEL);
        let y = attention_block::run_block(graph, x, attention_block::padding_mask(&LENGTHS));
        y.expect("runs").to_f64_vec()
    };
    let diff = max_abs_diff(&run(&decomposed), &run(&fused));
    assert!(
        diff < 1e-4,
        "decomposed and fused attention differ by {diff}"
    );
}
