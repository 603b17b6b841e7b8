//! The cost model extraction minimises: the estimated time of every kernel the graph materialises.
//!
//! A kernel costs `LAUNCH_NS + max(flops / PEAK_FLOPS_PER_NS, bytes / BYTES_PER_NS)`, a roofline
//! estimate: `bytes` counts every operand read and the result written, once. Intermediates inside a
//! fused op (the conv output of `conv_pool`, the scores of `attention`) are never materialised, so
//! they cost nothing; that is what makes fused forms cheaper. Views (`reshape`, `squeeze`, ...) move no
//! data in sinter's lowering and weight-only values are folded at compile time, so both cost (almost)
//! nothing: a tiny epsilon per node keeps the extraction from choosing needlessly large expressions.
//!
//! The constants are this machine's measured orders of magnitude (about 40 GFLOP/s per core for
//! tiled f32 GEMM, a few GB/s of effective bandwidth for elementwise kernels, a fraction of a
//! microsecond per kernel call). Only ratios between alternatives matter.

use crate::analysis::{Egraph, Facts};
use crate::lang::ENode;
use sinter_ir::{Op, TensorType};

/// Sustained f32 FLOPs per nanosecond of the tiled kernels.
pub const PEAK_FLOPS_PER_NS: f64 = 40.0;
/// Effective bytes per nanosecond a kernel streams.
pub const BYTES_PER_NS: f64 = 8.0;
/// The fixed cost of running one kernel.
pub const LAUNCH_NS: f64 = 100.0;
/// The cost of a node that computes nothing at run time (views, folded weights).
pub const FREE: f64 = 1e-3;

/// Elements of `ty`, symbolic dims counted as 1 (batch is the usual symbol).
pub fn elements(ty: &TensorType) -> f64 {
    ty.shape
        .dims()
        .iter()
        .map(|d| d.as_static().unwrap_or(1) as f64)
        .product()
}

fn bytes(ty: &TensorType) -> f64 {
    elements(ty) * ty.dtype.size_bytes() as f64
}

/// The static dims of `ty`, symbolic ones as 1.
fn dims(ty: &TensorType) -> Vec<usize> {
    ty.shape
        .dims()
        .iter()
        .map(|d| d.as_static().unwrap_or(1))
        .collect()
}

/// Multiply-adds per output element of a convolution with weight `w`: the weight's elements per
/// output channel, whatever the group count.
fn conv_macs_per_output(w: &TensorType) -> f64 {
    let w = dims(w);
    w.iter().skip(1).product::<usize>() as f64
}

/// FLOPs of `op` given its operand and result types.
fn flops(op: &Op, inputs: &[Option<&TensorType>], outputs: &[TensorType]) -> f64 {
    let out = outputs.first().map(elements).unwrap_or(0.0);
    let input = |idx: usize| inputs.get(idx).copied().flatten();
    match op {
        Op::MatMul {} | Op::FusedMatMul { .. } => {
            let k = input(0).and_then(|a| dims(a).last().copied()).unwrap_or(1) as f64;
            2.0 * out * k
        }
        Op::Gemm { trans_a, .. } => {
            let a = input(0).map(dims).unwrap_or_default();
            let k = if *trans_a { a.first() } else { a.last() };
            2.0 * out * k.copied().unwrap_or(1) as f64
        }
        Op::Conv { .. } | Op::FusedConv { .. } | Op::ConvTranspose { .. } => {
            2.0 * out * input(1).map(conv_macs_per_output).unwrap_or(1.0)
        }
        Op::ConvPool {
            pool_kernel_shape,
            pool_strides,
            ..
        } => {
            // The lowering computes a band of conv rows per group of pooled rows and pools it: rows
            // shared by two bands are computed twice, so the cost grows with the window's overlap
            // along the pooled rows (the first spatial axis). Within a band nothing is recomputed.
            let kernel = pool_kernel_shape.first().copied().unwrap_or(1).max(1) as f64;
            let stride = pool_strides.first().copied().unwrap_or(1).max(1) as f64;
            let row_overlap = (kernel / stride).max(1.0);
            let window: f64 = pool_kernel_shape.iter().map(|&k| k.max(1) as f64).product();
            // Strides default to 1 per spatial axis.
            let strides: f64 = (0..pool_kernel_shape.len())
                .map(|idx| pool_strides.get(idx).copied().unwrap_or(1).max(1) as f64)
                .product();
            // Conv outputs per pooled output: the window, shrunk by the strides where windows
            // overlap (each conv output then feeds several pooled outputs).
            let conv_outputs = out * window.min(strides) * row_overlap;
            let macs = input(1).map(conv_macs_per_output).unwrap_or(1.0);
            2.0 * conv_outputs * macs + out * window
        }
        Op::Attention { .. } => {
            // Two products of Sq x Skv x D per head, plus the softmax.
            let q = input(0).map(dims).unwrap_or_default();
            let k = input(1).map(dims).unwrap_or_default();
            let sk = if k.len() == 4 {
                k[2]
            } else {
                k.get(1).copied().unwrap_or(1)
            };
            let sq_d: f64 = q.iter().map(|&d| d as f64).product();
            4.0 * sq_d * sk as f64
                + 5.0 * (out / q.last().copied().unwrap_or(1).max(1) as f64) * sk as f64
        }
        Op::Exp {}
        | Op::Log {}
        | Op::Tanh {}
        | Op::Sigmoid {}
        | Op::Erf {}
        | Op::Gelu { .. }
        | Op::Softplus {}
        | Op::Mish {}
        | Op::Elu { .. }
        | Op::Selu { .. } => 10.0 * out,
        Op::Softmax { .. } | Op::LogSoftmax { .. } => 12.0 * out,
        Op::LayerNorm { .. }
        | Op::RmsNorm { .. }
        | Op::BatchNorm { .. }
        | Op::GroupNorm { .. }
        | Op::InstanceNorm { .. } => 6.0 * out,
        _ => {
            // Reductions and everything else: one operation per element read or written.
            let read: f64 = inputs.iter().flatten().map(|t| elements(t)).sum();
            read.max(out)
        }
    }
}

/// Whether `op` binds its result to its input's storage instead of computing.
fn is_view(op: &Op) -> bool {
    matches!(
        op,
        Op::Reshape { .. }
            | Op::Flatten { .. }
            | Op::Squeeze { .. }
            | Op::Unsqueeze { .. }
            | Op::Identity {}
    )
}

/// The cost of `node` alone (its children not included) in class `class` of `egraph`.
pub fn node_cost(egraph: &Egraph, class: &Facts, node: &ENode) -> f64 {
    match node {
        ENode::Op { .. } => {}
        _ => return 0.0,
    }
    if class.is_const {
        return FREE;
    }
    let Some(op) = crate::analysis::op_of(egraph, node) else {
        return f64::INFINITY;
    };
    if is_view(&op) {
        return FREE;
    }
    let inputs: Vec<Option<&TensorType>> = node
        .op_inputs()
        .iter()
        .map(|&child| egraph[child].data.ty())
        .collect();
    let moved: f64 = inputs.iter().flatten().map(|t| bytes(t)).sum::<f64>()
        + class.types.iter().map(bytes).sum::<f64>();
    let compute = flops(&op, &inputs, &class.types);
    LAUNCH_NS + (compute / PEAK_FLOPS_PER_NS).max(moved / BYTES_PER_NS)
}
