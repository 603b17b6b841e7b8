//! The optimizer (`sinter_opt::optimize`) on full-size models, against the targets:
//! saturation plus extraction within **50 ms on ResNet-50** and **200 ms on a 12-layer BERT**.
//!
//! The graphs come from `support/models.rs` (the builders `tests/opt_scale.rs` checks on narrow
//! versions): ResNet-50 at base width 64 and 224x224 (53 conv + BN pairs, BN not folded) and BERT-base
//! (12 layers, hidden 768, 12 heads, MLP 3072, sequence 128; 85 M weights) in HF's TorchScript
//! spelling. Weights are generated once, outside the timed code.
//!
//! Criterion ids, per model:
//! - `<model>/saturate_extract`: the report's `saturation_time + extraction_time` (the saturation
//!   phases, extraction and the rebuild of the graph), timed by the optimizer itself through
//!   `iter_custom`; this is the figure the targets are about;
//! - `<model>/optimize`: the whole `optimize` call: conversion to the e-graph and folding of the
//!   weight-only subgraphs included, the copy of the input graph (`optimize` takes it by value) not.
//!
//! A table follows with each model's medians per stage (conversion, saturation, extraction, folding,
//! total) and the target, then for each saturation phase its iterations, e-graph size and search,
//! apply and rebuild times. Without `--bench` (`cargo test
//! --bench opt`) each case runs once on the narrow models of `tests/opt_scale.rs`, so the test is quick
//! in debug builds.

#[path = "support/models.rs"]
mod models;

use criterion::{black_box, Criterion};
use sinter::ir::Graph;
use sinter::opt::{optimize, OptimizeOptions, OptimizeReport};
use std::time::{Duration, Instant};

/// One model to optimize and its target for saturation plus extraction.
struct Case {
    name: &'static str,
    graph: Graph,
    target: Duration,
}

/// Whether criterion measures: `--bench` (which `cargo bench` passes) without `--test` or `--list`.
fn timed() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}

fn cases(full_size: bool) -> Vec<Case> {
    let (resnet, bert) = if full_size {
        (
            models::resnet50(1, 224),
            models::bert(12, 768, 12, 3072, 128),
        )
    } else {
        (models::resnet50(16, 32), models::bert(12, 32, 4, 64, 8))
    };
    vec![
        Case {
            name: "resnet50",
            graph: resnet,
            target: Duration::from_millis(50),
        },
        Case {
            name: "bert_base",
            graph: bert,
            target: Duration::from_millis(200),
        },
    ]
}

/// One optimizer run on a copy of `graph` (copied outside the timing: `optimize` takes the graph by
/// value) and the duration of the `optimize` call, or a panic saying why it failed (a benchmark of a
/// failing run would time an error path).
fn run(graph: &Graph) -> (OptimizeReport, Duration) {
    let graph = graph.clone();
    let started = Instant::now();
    let optimized = optimize(graph, &OptimizeOptions::default())
        .unwrap_or_else(|err| panic!("the optimizer fails: {err}"));
    let elapsed = started.elapsed();
    let report = optimized.report;
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    assert!(!report.hit_node_limit(), "{:?}", report.phases);
    drop(black_box(optimized.graph));
    (report, elapsed)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// Medians of `rounds` runs per phase, with the e-graph's sizes and the per-phase search, apply and
/// rebuild times of the last run.
fn print_table(cases: &[Case], rounds: usize, timed: bool) {
    println!(
        "\noptimizer medians over {rounds} run(s), ms: graph to e-graph, saturation, extraction \
         (incl. e-graph to graph), folding, saturation + extraction (the target), whole call"
    );
    println!(
        "{:<10} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>13}",
        "model", "convert", "saturate", "extract", "fold", "sat+ext", "total", "target"
    );
    for case in cases {
        let mut columns: [Vec<Duration>; 6] = Default::default();
        let mut last = None;
        for _ in 0..rounds {
            let (report, total) = run(&case.graph);
            let values = [
                report.conversion_time,
                report.saturation_time,
                report.extraction_time,
                report.fold_time,
                report.saturation_time + report.extraction_time,
                total,
            ];
            for (column, value) in columns.iter_mut().zip(values) {
                column.push(value);
            }
            last = Some(report);
        }
        let report = last.expect("at least one round");
        let [convert, saturate, extract, fold, sat_ext, total] = columns.map(median);
        // A test run times narrow graphs, usually unoptimized: no verdict.
        let verdict = match (timed, sat_ext <= case.target) {
            (false, _) => "-",
            (true, true) => "met",
            (true, false) => "MISSED",
        };
        println!(
            "{:<10} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6} {verdict}",
            case.name,
            ms(convert),
            ms(saturate),
            ms(extract),
            ms(fold),
            ms(sat_ext),
            ms(total),
            ms(case.target),
        );
        println!(
            "{:<10} {} graph nodes, {} folded, cost {:.0} -> {:.0}",
            "",
            case.graph.node_count(),
            report.n_folded,
            report.cost_before,
            report.cost_after
        );
        for p in &report.phases {
            println!(
                "{:<10} {:<12} {:>2} iterations, {:>6} nodes / {:>6} classes, search {} ms, apply {} \
                 ms, rebuild {} ms, {}",
                "",
                p.phase,
                p.iterations,
                p.egraph_nodes,
                p.egraph_classes,
                ms(p.search_time),
                ms(p.apply_time),
                ms(p.rebuild_time),
                p.stop_reason
            );
        }
    }
}

fn main() {
    let timed = timed();
    let cases = cases(timed);
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    for case in &cases {
        let mut group = criterion.benchmark_group(case.name);
        group.bench_function("saturate_extract", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (report, _) = run(&case.graph);
                        report.saturation_time + report.extraction_time
                    })
                    .sum()
            })
        });
        group.bench_function("optimize", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run(&case.graph).1).sum())
        });
        group.finish();
    }
    criterion.final_summary();
    print_table(&cases, if timed { 10 } else { 1 }, timed);
}
