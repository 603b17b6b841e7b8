//! LeNet-5 built with the sinter DSL and run by the reference interpreter.
//!
//! conv 6@5x5 -> relu -> max-pool 2 -> conv 16@5x5 -> relu -> max-pool 2 -> flatten -> linear 120 ->
//! relu -> linear 84 -> relu -> linear 10 -> softmax, on 28x28 images with a symbolic batch. The
//! weights are seeded random, not trained, so the predicted classes mean nothing: the example shows
//! the API, and `tests/examples.rs` checks the properties any run must have.
//!
//! Run with `cargo run --example lenet`.

use sinter::dsl::{nn, shape, BuildErrors, DType, GraphBuilder};
use sinter::ir::{Graph, NodeKind, Tensor};
use std::error::Error;

/// The seed of the example's weights.
pub const SEED: u64 = 2024;
/// Image side length.
pub const SIDE: usize = 28;
/// Number of classes.
pub const N_CLASSES: usize = 10;

/// What one run of the example produced.
#[derive(Clone, Debug, PartialEq)]
pub struct LenetSummary {
    /// The digits drawn into the input batch, in batch order.
    pub digits: Vec<usize>,
    /// One row of class probabilities per image.
    pub probabilities: Vec<Vec<f32>>,
    /// The graph's `class` output: the argmax of each row.
    pub predicted: Vec<i64>,
    pub n_nodes: usize,
    pub n_parameters: usize,
}

/// Builds LeNet-5 with weights drawn from `seed`.
pub fn build_lenet(seed: u64) -> Result<Graph, BuildErrors> {
    let b = GraphBuilder::new("lenet");
    let mut init = nn::Init::new(seed);
    let image = b.input("image", DType::F32, shape![batch, 1, 28, 28]);
    let conv_pool = |channels| nn::ConvBlockOpts {
        pool: Some(2),
        ..nn::ConvBlockOpts::new(channels, 5)
    };
    // [batch, 1, 28, 28] -> [batch, 6, 12, 12] -> [batch, 16, 4, 4] -> [batch, 256]
    let features = nn::conv_block(&image, conv_pool(6), &mut init);
    let features = nn::conv_block(&features, conv_pool(16), &mut init).flatten(1);
    let hidden = nn::linear(&features, 16 * 4 * 4, 120, &mut init).relu();
    let hidden = nn::linear(&hidden, 120, 84, &mut init).relu();
    let logits = nn::linear(&hidden, 84, N_CLASSES, &mut init).named("logits");
    let probs = logits.softmax(-1).named("probs");
    b.output("probs", &probs);
    b.output("class", &probs.argmax(1, false));
    b.build()
}

/// Seven-segment strokes of each digit: top, upper left, upper right, middle, lower left, lower
/// right, bottom.
const SEGMENTS: [[bool; 7]; 10] = [
    [true, true, true, false, true, true, true],
    [false, false, true, false, false, true, false],
    [true, false, true, true, true, false, true],
    [true, false, true, true, false, true, true],
    [false, true, true, true, false, true, false],
    [true, true, false, true, false, true, true],
    [true, true, false, true, true, true, true],
    [true, false, true, false, false, true, false],
    [true, true, true, true, true, true, true],
    [true, true, true, true, false, true, true],
];

/// A 28x28 image of `digit` (taken mod 10) drawn as thick seven-segment strokes, ink 1.0 on 0.0.
pub fn draw_digit(digit: usize) -> Vec<f32> {
    // Each stroke is a rectangle (row range, column range) inside a 20x12 box at rows 4..24,
    // columns 8..20, three pixels thick.
    let strokes: [(std::ops::Range<usize>, std::ops::Range<usize>); 7] = [
        (4..7, 8..20),
        (4..14, 8..11),
        (4..14, 17..20),
        (13..16, 8..20),
        (14..24, 8..11),
        (14..24, 17..20),
        (21..24, 8..20),
    ];
    let mut image = vec![0.0f32; SIDE * SIDE];
    for (stroke, on) in strokes.iter().zip(SEGMENTS[digit % 10]) {
        if !on {
            continue;
        }
        for row in stroke.0.clone() {
            for col in stroke.1.clone() {
                image[row * SIDE + col] = 1.0;
            }
        }
    }
    image
}

/// A `[digits.len(), 1, 28, 28]` batch of drawn digits.
pub fn digit_batch(digits: &[usize]) -> Tensor {
    let data: Vec<f32> = digits.iter().flat_map(|&d| draw_digit(d)).collect();
    Tensor::from_vec(vec![digits.len(), 1, SIDE, SIDE], data).expect("one 28x28 image per digit")
}

/// Runs `graph` on drawn `digits` and collects the probabilities and predicted classes.
pub fn classify(graph: &Graph, digits: &[usize]) -> Result<LenetSummary, Box<dyn Error>> {
    let outputs = sinter::reference::run(graph, &[("image", digit_batch(digits))])?;
    let output = |name: &str| {
        outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| format!("the graph has no output `{name}`"))
    };
    let probs = output("probs")?;
    if probs.shape() != [digits.len(), N_CLASSES] {
        return Err(format!("probs has shape {:?}", probs.shape()).into());
    }
    let probs = probs.as_slice::<f32>().ok_or("probs is not f32")?;
    let predicted = output("class")?
        .as_slice::<i64>()
        .ok_or("class is not i64")?
        .to_vec();
    let n_parameters = graph
        .node_ids()
        .map(|id| match &graph.node(id).kind {
            NodeKind::Const { value, .. } => value.len(),
            _ => 0,
        })
        .sum();
    Ok(LenetSummary {
        digits: digits.to_vec(),
        probabilities: probs.chunks(N_CLASSES).map(<[f32]>::to_vec).collect(),
        predicted,
        n_nodes: graph.node_count(),
        n_parameters,
    })
}

/// Builds LeNet-5 with the example's seed and classifies a drawn 7 and a drawn 3.
pub fn run_example() -> Result<LenetSummary, Box<dyn Error>> {
    let graph = build_lenet(SEED)?;
    classify(&graph, &[7, 3])
}

fn main() {
    match run_example() {
        Ok(summary) => {
            println!(
                "LeNet-5: {} nodes, {} parameters (seed {SEED}, untrained)",
                summary.n_nodes, summary.n_parameters
            );
            for ((digit, probs), class) in summary
                .digits
                .iter()
                .zip(&summary.probabilities)
                .zip(&summary.predicted)
            {
                let rendered: Vec<String> = probs.iter().map(|p| format!("{p:.4}")).collect();
                println!(
                    "drawn {digit}: p = [{}] -> argmax {class}",
                    rendered.join(", ")
                );
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    }
}
