//! Throughput of the reference interpreter's broadcasting elementwise ops on weight-sized tensors.
//!
//! The optimizer (`sinter-opt`) folds weight-only subgraphs with [`sinter_ref::eval_op`]: batch-norm
//! folding multiplies every conv weight by a per-output-channel factor, so a ResNet-50 puts ~23.5M
//! weight elements through `mul` with a `[M, 1, 1, 1]` operand. These cases track the cost per element
//! of those shapes, plus same-shape, scalar, channel-bias, integer and `where` cases.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sinter_ir::{Op, Tensor};
use std::hint::black_box;

/// A deterministic f32 tensor with distinct, non-trivial values.
fn f32_tensor(shape: &[usize]) -> Tensor {
    let len: usize = shape.iter().product();
    let values: Vec<f32> = (0..len).map(|i| (i % 1013) as f32 * 0.37 - 91.0).collect();
    Tensor::from_vec(shape.to_vec(), values).unwrap()
}

fn i64_tensor(shape: &[usize]) -> Tensor {
    let len: usize = shape.iter().product();
    let values: Vec<i64> = (0..len).map(|i| (i % 977) as i64 + 1).collect();
    Tensor::from_vec(shape.to_vec(), values).unwrap()
}

fn bool_tensor(shape: &[usize]) -> Tensor {
    let len: usize = shape.iter().product();
    let values: Vec<bool> = (0..len).map(|i| i % 3 == 0).collect();
    Tensor::from_vec(shape.to_vec(), values).unwrap()
}

fn bench_case(c: &mut Criterion, name: &str, op: &Op, inputs: &[&Tensor]) {
    let out_len = sinter_ref::eval_op(op, &inputs.iter().map(|&t| Some(t)).collect::<Vec<_>>())
        .unwrap()[0]
        .len();
    let mut group = c.benchmark_group("broadcast");
    group.throughput(Throughput::Elements(out_len as u64));
    group.sample_size(10);
    group.bench_function(name, |b| {
        let args: Vec<Option<&Tensor>> = inputs.iter().map(|&t| Some(t)).collect();
        b.iter(|| sinter_ref::eval_op(op, black_box(&args)).unwrap())
    });
    group.finish();
}

fn bench_broadcast(c: &mut Criterion) {
    let mul = Op::Mul {};
    let add = Op::Add {};

    // Batch-norm folding of a 3x3 conv weight and a 1x1 conv weight of ResNet-50's widest layers.
    let w3 = f32_tensor(&[512, 512, 3, 3]);
    let s3 = f32_tensor(&[512, 1, 1, 1]);
    bench_case(c, "f32_mul_512x512x3x3_by_512x1x1x1", &mul, &[&w3, &s3]);
    let w1 = f32_tensor(&[2048, 1024, 1, 1]);
    let s1 = f32_tensor(&[2048, 1, 1, 1]);
    bench_case(c, "f32_mul_2048x1024x1x1_by_2048x1x1x1", &mul, &[&w1, &s1]);

    let x = f32_tensor(&[1 << 22]);
    let y = f32_tensor(&[1 << 22]);
    bench_case(c, "f32_add_same_shape_4M", &add, &[&x, &y]);
    let scalar = f32_tensor(&[]);
    bench_case(c, "f32_mul_4M_by_scalar", &mul, &[&x, &scalar]);

    let act = f32_tensor(&[1, 256, 56, 56]);
    let bias = f32_tensor(&[256, 1, 1]);
    bench_case(c, "f32_add_1x256x56x56_channel_bias", &add, &[&act, &bias]);
    let rows = f32_tensor(&[4096, 1024]);
    let row_bias = f32_tensor(&[1024]);
    bench_case(c, "f32_add_4096x1024_row_bias", &add, &[&rows, &row_bias]);

    let i = i64_tensor(&[1 << 20]);
    let j = i64_tensor(&[1 << 20]);
    bench_case(c, "i64_add_same_shape_1M", &add, &[&i, &j]);
    bench_case(c, "i64_div_same_shape_1M", &Op::Div {}, &[&i, &j]);

    let cond = bool_tensor(&[1 << 20]);
    let p = f32_tensor(&[1 << 20]);
    bench_case(
        c,
        "f32_where_1M_by_scalar",
        &Op::Where {},
        &[&cond, &p, &scalar],
    );
}

criterion_group!(benches, bench_broadcast);
criterion_main!(benches);
