//! The front half of the pipeline on the shipped LeNet-5 (`examples/models/lenet5`): parsing the
//! `.sir` text with its external weights, verifying (which runs shape inference on every node),
//! printing, and one batch-1 inference on the reference interpreter.
//!
//! Parsing and verifying are on the path of every later compile, so their cost is tracked here. The
//! reference interpreter is the oracle, not a product; its figure is a baseline for the JIT to beat.

use criterion::{criterion_group, criterion_main, Criterion};
use sinter::ir::text::{parse_file, print_graph, PrintOptions};
use sinter::ir::{verify, Tensor};
use std::path::Path;

fn lenet_path() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/models/lenet5/lenet5.sir"
    ))
}

fn bench_ir_pipeline(c: &mut Criterion) {
    let graph = parse_file(lenet_path()).expect("the shipped model parses");
    let image = Tensor::zeros(sinter::ir::DType::F32, vec![1, 1, 28, 28]);

    c.bench_function("lenet5/parse", |b| {
        b.iter(|| parse_file(lenet_path()).unwrap())
    });
    c.bench_function("lenet5/verify", |b| b.iter(|| verify(&graph).unwrap()));
    c.bench_function("lenet5/print", |b| {
        b.iter(|| print_graph(&graph, &PrintOptions::default()))
    });
    c.bench_function("lenet5/reference_run_batch1", |b| {
        b.iter(|| sinter::reference::run(&graph, &[("image", image.clone())]).unwrap())
    });
}

criterion_group!(benches, bench_ir_pipeline);
criterion_main!(benches);
