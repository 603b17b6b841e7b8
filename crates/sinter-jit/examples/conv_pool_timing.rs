//! Times lenet's conv blocks (`conv 5x5 + relu + max_pool 2x2`) as one `conv_pool` against the three
//! plain ops (`conv`, `relu` fused into the conv's tiles, `max_pool`), through the JIT, single
//! threaded. A measurement, not a test: run with
//! `cargo run --release -p sinter-jit --example conv_pool_timing`.

use sinter_ir::rng::SplitMix64;
use sinter_ir::{
    AutoPad, DType, FusedActivation, Graph, Op, PoolKind, Tensor, TensorData, TensorType,
};
use sinter_jit::{compile, CompileOptions};
use std::time::Instant;

fn random(rng: &mut SplitMix64, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let data = TensorData::from_f64s(DType::F32, (0..n).map(|_| rng.uniform(-1.0, 1.0)));
    Tensor::new(shape.to_vec(), data).expect("the data fits the shape")
}

/// `x: [batch, c, size, size]` through a 5x5 conv to `m` channels, relu and a 2x2 max pool.
fn block(fused: bool, batch: usize, c: usize, m: usize, size: usize) -> Graph {
    let mut rng = SplitMix64::new(1);
    let mut g = Graph::new("block");
    let x = g
        .add_input("x", TensorType::fixed(DType::F32, &[batch, c, size, size]))
        .unwrap();
    let w = g.add_const("w", random(&mut rng, &[m, c, 5, 5])).unwrap();
    let b = g.add_const("b", random(&mut rng, &[m])).unwrap();
    let conv = Op::Conv {
        strides: vec![],
        pads: vec![],
        dilations: vec![],
        group: 1,
        auto_pad: AutoPad::NotSet,
    };
    let y = if fused {
        let op = Op::ConvPool {
            strides: vec![],
            pads: vec![],
            dilations: vec![],
            group: 1,
            auto_pad: AutoPad::NotSet,
            activation: FusedActivation::Relu,
            activation_params: vec![],
            pool: PoolKind::Max,
            pool_kernel_shape: vec![2, 2],
            pool_strides: vec![2, 2],
            pool_pads: vec![],
            pool_ceil_mode: false,
            count_include_pad: false,
        };
        g.add_op_inferred(op, &[Some(x), Some(w), Some(b)], None)
            .unwrap()[0]
    } else {
        let y = g
            .add_op_inferred(conv, &[Some(x), Some(w), Some(b)], None)
            .unwrap()[0];
        let y = g.add_op_inferred(Op::Relu {}, &[Some(y)], None).unwrap()[0];
        let pool = Op::MaxPool {
            kernel_shape: vec![2, 2],
            strides: vec![2, 2],
            pads: vec![],
            dilations: vec![],
            auto_pad: AutoPad::NotSet,
            ceil_mode: false,
        };
        g.add_op_inferred(pool, &[Some(y)], None).unwrap()[0]
    };
    g.add_output("y", y).unwrap();
    g
}

/// The median of `runs` timed runs (after warm-up), in microseconds, and the output.
fn time(graph: Graph, x: &Tensor, runs: usize) -> (f64, Tensor) {
    let options = CompileOptions {
        threads: Some(1),
        ..CompileOptions::default()
    };
    let model = compile(graph, &options).unwrap();
    let inputs = [("x", x)];
    let mut out = model.run(&inputs).unwrap();
    for _ in 0..runs / 10 {
        model.run(&inputs).unwrap();
    }
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            out = model.run(&inputs).unwrap();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[runs / 2], out.remove(0).1)
}

fn main() {
    let mut rng = SplitMix64::new(2);
    println!("median of 2000 runs, one thread");
    for (label, batch, c, m, size) in [
        ("lenet conv1 1x28x28 -> 6", 1, 1, 6, 28),
        ("lenet conv2 6x12x12 -> 16", 1, 6, 16, 12),
        ("lenet conv1, batch 8", 8, 1, 6, 28),
        ("conv 16x32x32 -> 32", 1, 16, 32, 32),
    ] {
        let x = random(&mut rng, &[batch, c, size, size]);
        let (plain, expected) = time(block(false, batch, c, m, size), &x, 2000);
        let (fused, actual) = time(block(true, batch, c, m, size), &x, 2000);
        let same = expected.to_f64_vec() == actual.to_f64_vec();
        println!(
            "{label:28} conv+relu+max_pool {plain:8.1} us   conv_pool {fused:8.1} us   ({:.2}x, same bits: {same})",
            plain / fused
        );
    }
}
