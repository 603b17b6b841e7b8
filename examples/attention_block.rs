//! A transformer encoder block built with the sinter DSL and run by the reference interpreter.
//!
//! `h = layer_norm(x + mha(x, mask))`, `y = layer_norm(h + linear(gelu(linear(h))))` (post-norm, as in
//! BERT), with a key padding mask so padded positions are never attended to. Batch and sequence
//! length are symbolic; the example runs it on seeded random input of shape `[2, 8, 32]` where the
//! second sequence has 3 padded positions.
//!
//! Run with `cargo run --example attention_block`.

use sinter::dsl::nn::{self, MultiHeadOpts};
use sinter::dsl::{shape, BuildErrors, DType, GraphBuilder};
use sinter::ir::{Graph, Tensor};
use std::error::Error;

/// The example's sizes.
pub const BATCH: usize = 2;
pub const SEQ: usize = 8;
pub const D_MODEL: usize = 32;
/// The valid (unpadded) length of each sequence of the example batch.
pub const LENGTHS: [usize; BATCH] = [8, 5];
pub const LAYER_NORM_EPSILON: f32 = 1e-5;

/// Which attention core the block uses; both have the same parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttentionForm {
    /// matmul, scale, mask, softmax, matmul: what a model exporter produces.
    Decomposed,
    /// The fused `attention` op.
    Fused,
}

/// The block's hyperparameters.
#[derive(Clone, Copy, Debug)]
pub struct BlockConfig {
    pub d_model: usize,
    pub n_heads: usize,
    /// Width of the MLP's hidden layer.
    pub d_ff: usize,
    pub seed: u64,
    pub attention: AttentionForm,
}

impl Default for BlockConfig {
    fn default() -> Self {
        BlockConfig {
            d_model: D_MODEL,
            n_heads: 4,
            d_ff: 4 * D_MODEL,
            seed: 11,
            attention: AttentionForm::Decomposed,
        }
    }
}

/// What one run of the example produced.
#[derive(Clone, Debug)]
pub struct BlockSummary {
    pub output: Tensor,
    /// Mean and variance of each output row (one per batch element and position).
    pub row_means: Vec<f64>,
    pub row_vars: Vec<f64>,
    pub n_nodes: usize,
}

/// Builds the encoder block: inputs `x: f32[batch, seq, d_model]` and `mask: bool[batch, 1, 1, seq]`
/// (true = a real token), output `y` of the shape of `x`.
pub fn build_encoder_block(config: &BlockConfig) -> Result<Graph, BuildErrors> {
    let d = config.d_model;
    let b = GraphBuilder::new("encoder_block");
    let mut init = nn::Init::new(config.seed);
    let x = b.input("x", DType::F32, shape![batch, seq, (d)]);
    let mask = b.input("mask", DType::Bool, shape![batch, 1, 1, seq]);
    let opts = MultiHeadOpts {
        mask: Some(&mask),
        ..MultiHeadOpts::new(config.n_heads)
    };
    let attended = match config.attention {
        AttentionForm::Decomposed => nn::multi_head_attention(&x, d, opts, &mut init),
        AttentionForm::Fused => nn::attention_op(&x, d, opts, &mut init),
    };
    let h = nn::layer_norm(&(&x + &attended), d, LAYER_NORM_EPSILON, &mut init);
    let mlp = nn::linear(&h, d, config.d_ff, &mut init).gelu();
    let mlp = nn::linear(&mlp, config.d_ff, d, &mut init);
    let y = nn::layer_norm(&(&h + &mlp), d, LAYER_NORM_EPSILON, &mut init);
    b.output("y", &y);
    b.build()
}

/// Seeded random `x: [BATCH, SEQ, d_model]` uniform in [-1, 1).
pub fn example_input(seed: u64, d_model: usize) -> Tensor {
    nn::Init::new(seed).uniform(&[BATCH, SEQ, d_model], -1.0, 1.0)
}

/// The key padding mask `[BATCH, 1, 1, SEQ]` for sequences of the given valid lengths.
pub fn padding_mask(lengths: &[usize; BATCH]) -> Tensor {
    let data: Vec<bool> = lengths
        .iter()
        .flat_map(|&len| (0..SEQ).map(move |pos| pos < len))
        .collect();
    Tensor::from_vec(vec![BATCH, 1, 1, SEQ], data).expect("BATCH * SEQ mask entries")
}

/// Runs the block and returns its output.
pub fn run_block(graph: &Graph, x: Tensor, mask: Tensor) -> Result<Tensor, Box<dyn Error>> {
    let mut outputs = sinter::reference::run(graph, &[("x", x), ("mask", mask)])?;
    match outputs.pop() {
        Some((_, y)) if outputs.is_empty() => Ok(y),
        _ => Err("the block has exactly one output".into()),
    }
}

/// Mean and (population) variance of each row of the last axis.
pub fn row_stats(t: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let width = t.shape().last().copied().unwrap_or(1).max(1);
    let values = t.to_f64_vec();
    values
        .chunks(width)
        .map(|row| {
            let mean = row.iter().sum::<f64>() / row.len() as f64;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / row.len() as f64;
            (mean, var)
        })
        .unzip()
}

/// Builds the default block and runs it on the example's seeded input and padding mask.
pub fn run_example() -> Result<BlockSummary, Box<dyn Error>> {
    let config = BlockConfig::default();
    let graph = build_encoder_block(&config)?;
    let output = run_block(
        &graph,
        example_input(1, config.d_model),
        padding_mask(&LENGTHS),
    )?;
    let (row_means, row_vars) = row_stats(&output);
    Ok(BlockSummary {
        output,
        row_means,
        row_vars,
        n_nodes: graph.node_count(),
    })
}

fn main() {
    match run_example() {
        Ok(summary) => {
            let values = summary.output.to_f64_vec();
            let max_abs_mean = summary.row_means.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let (min_var, max_var) = summary
                .row_vars
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            println!("encoder block: {} nodes", summary.n_nodes);
            println!(
                "output shape {:?} (valid lengths {LENGTHS:?})",
                summary.output.shape()
            );
            println!(
                "rows: max |mean| {max_abs_mean:.2e}, variance in [{min_var:.6}, {max_var:.6}]"
            );
            let first: Vec<String> = values.iter().take(6).map(|v| format!("{v:.4}")).collect();
            println!("y[0, 0, ..6] = [{}]", first.join(", "));
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    }
}
