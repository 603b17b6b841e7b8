//! The JIT (`sinter_jit::compile`) measured on what users run, next to tract (tract-onnx, run in the
//! same process on the same models) so that every figure is also a ratio to a peer: a dense f32 GEMM
//! at sizes from cache resident to memory bound, every shipped model end to end, the conv layers of
//! ResNet-18, a full-size ResNet-18, and the compile time of a real model.
//!
//! Groups, each readable on its own:
//! - `gemm_f32`: one `matmul` node `[n,n] x [n,n]` for n in 64..1024 on one thread, and n = 512 on
//!   two. Throughput is `2 n^3` elements, so criterion's "elem/s" is FLOP/s.
//! - `models`: every `tests/models/*/model.onnx` on its `test_data_set_0` (imported as
//!   `sinter check` imports it, with `sinter_onnx::import_specialized`) and the shipped
//!   `examples/models/lenet5/lenet5.sir` on `digit_7.npy`. Ids `sinter/<model>` (one thread),
//!   `tract/<model>` (one thread, same ONNX file and inputs), `sinter_2t/<model>` (two threads, the
//!   CNN fixtures only: `resnet*`, `mobilenet*`, `lenet*`) and `reference/lenet5_sir` (the
//!   reference interpreter). A table of medians follows: sinter / tract and the 1-to-2-thread
//!   speed-up.
//! - `resnet18_convs`: the distinct conv layers of a full-width ResNet-18 at batch 1 and 224x224,
//!   each a generated one-`Conv` ONNX model (with bias), `sinter/<layer>` and `tract/<layer>` on
//!   one thread. Throughput is the layer's FLOP count; a table gives GFLOP/s.
//! - `resnet18_full`: a torchvision-shaped ResNet-18 (11.7 M weights, 45 MB) generated into a
//!   temporary file: import plus compile time (against the 0.5 s target), tract's load and optimise
//!   time, and one inference on each (`sinter/resnet18`, `sinter_2t/resnet18`, `tract/resnet18`).
//! - `attention`: one `attention` node, batch 1, one head, seq 4096, head size 64, causal and not:
//!   `sinter/<case>`, `sinter_2t/<case>` and `tract/<case>` (tract runs the equivalent opset-17
//!   `MatMul`/`Softmax` subgraph, which materialises the scores). A table gives medians and
//!   sinter's arena size against the bytes of q, k, v and the output.
//! - `compile`: `resnet18_w8_ts` compiled (specialise, lower, schedule, generate code) for its data
//!   set's shapes, with and without the ONNX import before it: the latency a user sees before the
//!   first inference.
//!
//! **A figure is only reported for a correct result.** Before a case is timed its output is checked
//! (GEMM against the reference interpreter, models against the data set's expected outputs, conv
//! layers and the generated ResNet-18 sinter against tract, and the smallest conv layers also against
//! the reference interpreter), at the real-model tolerance rtol 1e-4, atol 1e-5. A case that does
//! not import, compile or match is skipped with a printed line saying why, for sinter and tract
//! alike: a benchmark is not a test, and one broken model must not hide the figures of the others.
//!
//! **The tables' medians are timed by this file, not by criterion** (see `support/timing.rs`):
//! contenders run interleaved, round by round, so load from other processes hits both sides of a
//! ratio alike. They follow criterion's filter argument (as a substring) and its test mode.
//!
//! Sample counts and times are kept small; pass criterion's `--quick` for a faster, rougher run.
//! `cargo test --bench jit` runs every case once, checks included, without timing.

mod support;

use criterion::{black_box, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};
use prost::Message;
use sinter_ir::rng::SplitMix64;
use sinter_ir::text::{parse_file, parse_graph, ParseOptions};
use sinter_ir::{DType, Graph, Tensor};
use sinter_jit::{compile, CompileOptions, CompiledModel};
use sinter_ref::compare::{compare, Tolerance};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::onnx_build::{self, ConvSpec, RESNET18_CONVS};
use support::timing::{self, interleaved_medians, millis, BenchArgs, RoundBudget};
use support::tract_peer::{Source, TractModel};

/// The GEMM sizes of the single-threaded sweep.
const GEMM_SIZES: [usize; 5] = [64, 128, 256, 512, 1024];

/// The GEMM size also measured on two threads.
const GEMM_PARALLEL_SIZE: usize = 512;

/// The largest GEMM checked against the reference interpreter, which accumulates in f64 and is far
/// slower than the JIT; larger sizes run the same generated loop nest with other bounds.
const GEMM_MAX_CHECKED: usize = 256;

/// The shortest measurement time of a GEMM size; a size whose run is longer gets more.
const MIN_GEMM_MEASUREMENT: Duration = Duration::from_secs(2);

/// The tolerance of every correctness check: the real-model tolerance of `tests/real_models.rs`.
/// A checked GEMM sums at most [`GEMM_MAX_CHECKED`] products of values in [-1, 1], whose f32
/// rounding error stays far below it.
const TOLERANCE: Tolerance = Tolerance {
    rtol: 1e-4,
    atol: 1e-5,
};

/// The model whose compile time is measured, a directory of `tests/models`.
const COMPILE_MODEL: &str = "resnet18_w8_ts";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn single_thread() -> CompileOptions {
    threads(1)
}

fn threads(n_threads: usize) -> CompileOptions {
    CompileOptions {
        threads: Some(n_threads),
        ..CompileOptions::default()
    }
}

/// Prints why a case is not measured.
fn skip(case: &str, reason: &str) {
    println!("jit bench: skipping {case}: {reason}");
}

/// A graph of one `matmul` of two `[n,n]` f32 inputs.
fn gemm_graph(n: usize) -> Result<Graph, String> {
    let text = format!(
        "graph gemm_{n} {{\n  input %a: f32[{n},{n}]\n  input %b: f32[{n},{n}]\n  \
         %0: f32[{n},{n}] = matmul(%a, %b)\n  output y = %0\n}}\n"
    );
    parse_graph(&text, &ParseOptions::default()).map_err(|err| err.to_string())
}

/// Compares every output of a run with the expected tensors, in order.
fn check_outputs(actual: &[(String, Tensor)], expected: &[Tensor]) -> Result<(), String> {
    if actual.len() != expected.len() {
        return Err(format!(
            "{} outputs, {} expected",
            actual.len(),
            expected.len()
        ));
    }
    let problems: Vec<String> = actual
        .iter()
        .zip(expected)
        .filter_map(|((name, actual), expected)| {
            let verdict = compare(actual, expected, TOLERANCE);
            (!verdict.matches()).then(|| format!("output `{name}`: {verdict}"))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("wrong result: {}", problems.join("; ")))
    }
}

/// A compiled GEMM, its inputs, and how long one run took.
struct PreparedGemm {
    model: CompiledModel,
    a: Tensor,
    b: Tensor,
    one_run: Duration,
}

/// Compiles the `n` GEMM with `options` and its random inputs, checked against the reference when
/// `n` is at most [`GEMM_MAX_CHECKED`]. One more run, timed here, sizes criterion's measurement time.
fn prepare_gemm(n: usize, options: &CompileOptions) -> Result<PreparedGemm, String> {
    let graph = gemm_graph(n)?;
    let mut rng = SplitMix64::new(n as u64);
    let a = sinter_ref::random::random_tensor(&mut rng, DType::F32, &[n, n]);
    let b = sinter_ref::random::random_tensor(&mut rng, DType::F32, &[n, n]);
    let model = compile(graph.clone(), options).map_err(|err| format!("compile: {err}"))?;
    if n <= GEMM_MAX_CHECKED {
        let expected = sinter_ref::run(&graph, &[("a", a.clone()), ("b", b.clone())])
            .map_err(|err| format!("reference: {err}"))?;
        let actual = model
            .run(&[("a", &a), ("b", &b)])
            .map_err(|err| format!("run: {err}"))?;
        let expected: Vec<Tensor> = expected.into_iter().map(|(_, tensor)| tensor).collect();
        check_outputs(&actual, &expected)?;
    }
    let start = Instant::now();
    model
        .run(&[("a", &a), ("b", &b)])
        .map_err(|err| format!("run: {err}"))?;
    let one_run = start.elapsed();
    Ok(PreparedGemm {
        model,
        a,
        b,
        one_run,
    })
}

fn bench_gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm_f32");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .sampling_mode(SamplingMode::Flat);
    let cases = GEMM_SIZES
        .iter()
        .map(|&n| (n, 1))
        .chain(std::iter::once((GEMM_PARALLEL_SIZE, 2)));
    for (n, n_threads) in cases {
        let case = format!("gemm {n}x{n} on {n_threads} thread(s)");
        let options = CompileOptions {
            threads: Some(n_threads),
            ..CompileOptions::default()
        };
        let PreparedGemm {
            model,
            a,
            b,
            one_run,
        } = match prepare_gemm(n, &options) {
            Ok(prepared) => prepared,
            Err(reason) => {
                skip(&case, &reason);
                continue;
            }
        };
        // Ten flat samples of at least one run each, with a margin, so that the largest size does
        // not overrun its budget (and criterion does not warn about it).
        group.measurement_time(MIN_GEMM_MEASUREMENT.max(one_run * 12));
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        let id = BenchmarkId::new(format!("threads_{n_threads}"), n);
        group.bench_with_input(id, &(a, b), |bencher, (a, b)| {
            bencher.iter(|| model.run(&[("a", a), ("b", b)]).expect("checked before"))
        });
    }
    group.finish();
}

/// A model ready to time: its graph, inputs and expected outputs.
struct ModelCase {
    name: String,
    graph: Graph,
    inputs: Vec<(String, Tensor)>,
    expected: Vec<Tensor>,
}

/// Reads a serialized ONNX TensorProto.
fn read_pb(path: &Path) -> Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()))?;
    sinter_onnx::decode_tensor(&bytes, path.parent().unwrap_or(root()))
        .map_err(|err| format!("{}: {err}", path.display()))
}

/// `<stem>_0.pb`, `<stem>_1.pb`, ... in `dir`, up to the first missing number.
fn numbered_files(dir: &Path, stem: &str) -> Vec<PathBuf> {
    (0..)
        .map(|idx| dir.join(format!("{stem}_{idx}.pb")))
        .take_while(|path| path.is_file())
        .collect()
}

/// The directories of `tests/models` that hold a `model.onnx`, by name.
fn onnx_model_names() -> Result<Vec<String>, String> {
    let dir = root().join("tests/models");
    let entries = std::fs::read_dir(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("model.onnx").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// The data set `tests/models/<name>/test_data_set_0`: the `input_N.pb` and `output_N.pb` tensors.
struct DataSet {
    inputs: Vec<Tensor>,
    expected: Vec<Tensor>,
}

fn model_dir(name: &str) -> PathBuf {
    root().join("tests/models").join(name)
}

fn load_data_set(name: &str) -> Result<DataSet, String> {
    let data_dir = model_dir(name).join("test_data_set_0");
    let read_all = |stem: &str| {
        numbered_files(&data_dir, stem)
            .iter()
            .map(|path| read_pb(path))
            .collect::<Result<Vec<_>, String>>()
    };
    Ok(DataSet {
        inputs: read_all("input")?,
        expected: read_all("output")?,
    })
}

/// Imports `tests/models/<name>` as `sinter check` does, with its data set: the N-th `input_N.pb`
/// binds to the N-th graph input that is not an initializer.
fn load_onnx_case(name: &str) -> Result<ModelCase, String> {
    let data_set = load_data_set(name)?;
    let loaded = sinter_onnx::load_model(&model_dir(name).join("model.onnx"))
        .map_err(|err| format!("decode: {err}"))?;
    let positional = sinter_onnx::positional_inputs(&loaded.model);
    let values: BTreeMap<String, Tensor> = positional.into_iter().zip(data_set.inputs).collect();
    let mut value_of = |input: &str| Ok(values.get(input).cloned());
    let graph = sinter_onnx::import_specialized(&loaded, &mut value_of)
        .map_err(|err| format!("import: {err}"))?
        .graph;
    // Inputs the importer fixed to their values, or dropped as unused, are not graph inputs any more.
    let inputs = graph
        .input_signature()
        .iter()
        .map(|(input, _)| {
            values
                .get(*input)
                .map(|value| (input.to_string(), value.clone()))
                .ok_or_else(|| format!("the data set has no value for input `{input}`"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(ModelCase {
        name: name.to_string(),
        graph,
        inputs,
        expected: data_set.expected,
    })
}

/// Reads a little-endian f32 `.npy` file in C order.
fn read_npy_f32(path: &Path) -> Result<Tensor, String> {
    let describe = |err: &dyn std::fmt::Display| format!("{}: {err}", path.display());
    let bytes = std::fs::read(path).map_err(|err| describe(&err))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|err| describe(&err))?;
    if npy.order() != npyz::Order::C {
        return Err(describe(&"not in C order"));
    }
    let shape = npy
        .shape()
        .iter()
        .map(|&dim| usize::try_from(dim).map_err(|err| describe(&err)))
        .collect::<Result<Vec<usize>, String>>()?;
    let values: Vec<f32> = npy.into_vec().map_err(|err| describe(&err))?;
    Tensor::from_vec(shape, values).map_err(|err| describe(&err))
}

/// The shipped LeNet-5 (`examples/models/lenet5`) on its sample digit 7.
fn load_lenet_sir_case() -> Result<ModelCase, String> {
    let dir = root().join("examples/models/lenet5");
    let graph = parse_file(&dir.join("lenet5.sir")).map_err(|err| format!("parse: {err}"))?;
    let image = read_npy_f32(&dir.join("digit_7.npy"))?;
    let expected = read_npy_f32(&dir.join("digit_7.expected.npy"))?;
    Ok(ModelCase {
        name: "lenet5_sir".to_string(),
        graph,
        inputs: vec![("image".to_string(), image)],
        expected: vec![expected],
    })
}

/// Compiles `case` with `options` and checks one run against its expected outputs.
fn compile_and_check(case: &ModelCase, options: &CompileOptions) -> Result<CompiledModel, String> {
    let model = compile(case.graph.clone(), options).map_err(|err| format!("{err}"))?;
    let inputs: Vec<(&str, &Tensor)> = case
        .inputs
        .iter()
        .map(|(name, tensor)| (name.as_str(), tensor))
        .collect();
    let outputs = model.run(&inputs).map_err(|err| format!("{err}"))?;
    check_outputs(&outputs, &case.expected)?;
    Ok(model)
}

/// Outputs of a peer, named by position for [`check_outputs`].
fn positional_outputs(outputs: Vec<Tensor>) -> Vec<(String, Tensor)> {
    outputs
        .into_iter()
        .enumerate()
        .map(|(idx, tensor)| (format!("#{idx}"), tensor))
        .collect()
}

/// Loads `tests/models/<name>/model.onnx` on tract with its data set and checks one run.
fn tract_model_case(name: &str) -> Result<TractModel, String> {
    let data_set = load_data_set(name)?;
    let model = TractModel::load(
        Source::Path(&model_dir(name).join("model.onnx")),
        &data_set.inputs,
    )?;
    check_outputs(&positional_outputs(model.run()?), &data_set.expected)?;
    Ok(model)
}

/// The fixtures whose 2-thread speed-up is measured: the convolutional ones.
fn is_cnn(name: &str) -> bool {
    ["resnet", "mobilenet", "lenet"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// Interleaved rounds of a model's table row.
const MODEL_ROUNDS: RoundBudget = RoundBudget {
    min_time: Duration::from_millis(800),
    min_rounds: 7,
    max_rounds: 2000,
};

/// One line of the `models` table; `None` is a contender that was skipped (or filtered out).
struct ModelRow {
    name: String,
    sinter: Option<Duration>,
    tract: Option<Duration>,
    sinter_2t: Option<Duration>,
}

fn bench_models(c: &mut Criterion, args: &BenchArgs) {
    let mut names = match onnx_model_names() {
        Ok(names) => names,
        Err(reason) => {
            skip("tests/models", &reason);
            Vec::new()
        }
    };
    names.push("lenet5_sir".to_string());

    let mut group = c.benchmark_group("models");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let mut rows = Vec::new();
    for name in &names {
        let candidate_ids = ["sinter", "tract", "sinter_2t", "reference"]
            .map(|peer| format!("models/{peer}/{name}"));
        if !args.selects_any(&candidate_ids) {
            continue;
        }
        let sir = name == "lenet5_sir";
        let case = if sir {
            load_lenet_sir_case()
        } else {
            load_onnx_case(name)
        };
        let case = case
            .map_err(|reason| skip(&format!("sinter/{name}"), &reason))
            .ok();
        let sinter = case.as_ref().and_then(|case| {
            compile_and_check(case, &single_thread())
                .map_err(|reason| skip(&format!("sinter/{name}"), &reason))
                .ok()
        });
        let sinter_2t = case.as_ref().filter(|_| is_cnn(name)).and_then(|case| {
            compile_and_check(case, &threads(2))
                .map_err(|reason| skip(&format!("sinter_2t/{name}"), &reason))
                .ok()
        });
        // The shipped LeNet in the text format has no ONNX file; its ONNX exports are fixtures.
        let tract = (!sir)
            .then(|| {
                tract_model_case(name)
                    .map_err(|reason| skip(&format!("tract/{name}"), &reason))
                    .ok()
            })
            .flatten();
        let inputs: Vec<(&str, &Tensor)> = case
            .iter()
            .flat_map(|case| &case.inputs)
            .map(|(name, tensor)| (name.as_str(), tensor))
            .collect();

        let mut ids = Vec::new();
        if let Some(model) = &sinter {
            ids.push(format!("models/sinter/{name}"));
            group.bench_function(BenchmarkId::new("sinter", name), |bencher| {
                bencher.iter(|| model.run(&inputs).expect("checked before"))
            });
        }
        if let Some(model) = &tract {
            ids.push(format!("models/tract/{name}"));
            group.bench_function(BenchmarkId::new("tract", name), |bencher| {
                bencher.iter(|| model.run_raw().expect("checked before"))
            });
        }
        if let Some(model) = &sinter_2t {
            ids.push(format!("models/sinter_2t/{name}"));
            group.bench_function(BenchmarkId::new("sinter_2t", name), |bencher| {
                bencher.iter(|| model.run(&inputs).expect("checked before"))
            });
        }
        if let (true, Some(case)) = (sir, &case) {
            bench_reference_lenet(&mut group, case);
        }

        if ids.is_empty() || !args.selects_any(&ids) {
            continue;
        }
        let mut run_sinter = || {
            if let Some(model) = &sinter {
                black_box(model.run(&inputs).expect("checked before"));
            }
        };
        let mut run_tract = || {
            if let Some(model) = &tract {
                black_box(model.run_raw().expect("checked before"));
            }
        };
        let mut run_sinter_2t = || {
            if let Some(model) = &sinter_2t {
                black_box(model.run(&inputs).expect("checked before"));
            }
        };
        let medians = interleaved_medians(
            &mut [&mut run_sinter, &mut run_tract, &mut run_sinter_2t],
            MODEL_ROUNDS,
            args.timed,
        );
        rows.push(ModelRow {
            name: name.clone(),
            sinter: sinter.as_ref().map(|_| medians[0]),
            tract: tract.as_ref().map(|_| medians[1]),
            sinter_2t: sinter_2t.as_ref().map(|_| medians[2]),
        });
    }
    group.finish();
    print_model_table(&rows, args.timed);
}

/// The reference interpreter on the shipped LeNet: the JIT's speed-up over it, read off one run.
fn bench_reference_lenet(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    case: &ModelCase,
) {
    let owned_inputs: Vec<(&str, Tensor)> = case
        .inputs
        .iter()
        .map(|(name, tensor)| (name.as_str(), tensor.clone()))
        .collect();
    match sinter_ref::run(&case.graph, &owned_inputs) {
        Ok(_) => {
            group.bench_function(BenchmarkId::new("reference", &case.name), |bencher| {
                bencher.iter(|| sinter_ref::run(&case.graph, &owned_inputs).expect("it ran above"))
            });
        }
        Err(err) => skip("reference/lenet5_sir", &err.to_string()),
    }
}

/// `a / b` with two decimals, or `-` when either is missing.
fn ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => format!("{:.2}", a.as_secs_f64() / b.as_secs_f64()),
        _ => "-".to_string(),
    }
}

fn cell(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "-".to_string(), millis)
}

fn print_model_table(rows: &[ModelRow], timed: bool) {
    if rows.is_empty() {
        return;
    }
    println!();
    println!(
        "models: median latency in ms, one thread unless noted{}",
        if timed {
            ""
        } else {
            " (one untimed-mode run each: not a measurement)"
        }
    );
    println!(
        "{:<28} {:>10} {:>10} {:>13} {:>11} {:>12}",
        "model", "sinter", "tract", "sinter/tract", "sinter 2t", "1t/2t"
    );
    for row in rows {
        println!(
            "{:<28} {:>10} {:>10} {:>13} {:>11} {:>12}",
            row.name,
            cell(row.sinter),
            cell(row.tract),
            ratio(row.sinter, row.tract),
            cell(row.sinter_2t),
            ratio(row.sinter, row.sinter_2t),
        );
    }
    println!();
}

/// Conv layers of at most this many FLOP are also checked against the reference interpreter, which
/// accumulates in f64 and is far slower than the JIT; sinter and tract check each other on all.
const CONV_MAX_REF_CHECKED: u64 = 16_000_000;

/// Interleaved rounds of a conv layer's table row.
const CONV_ROUNDS: RoundBudget = RoundBudget {
    min_time: Duration::from_millis(600),
    min_rounds: 5,
    max_rounds: 1000,
};

/// A conv layer compiled by sinter and loaded by tract from the same generated ONNX model, with
/// the outputs of both checked.
struct PreparedConv {
    sinter: Option<CompiledModel>,
    tract: Option<TractModel>,
    input: Tensor,
}

fn prepare_conv(spec: &ConvSpec, seed: u64) -> PreparedConv {
    let model = onnx_build::conv_model(spec, seed);
    let bytes = model.encode_to_vec();
    let input = onnx_build::random_input(&spec.input_shape(), seed ^ 0x5eed);
    let sinter_graph = sinter_onnx::import_model_proto(
        &model,
        &sinter_onnx::ExternalData::unavailable(),
        &sinter_onnx::ImportOptions::default(),
    )
    .map_err(|err| format!("import: {err}"));
    let sinter_case = sinter_graph.and_then(|graph| {
        let compiled = compile(graph.clone(), &single_thread()).map_err(|err| format!("{err}"))?;
        let output = compiled
            .run(&[("x", &input)])
            .map_err(|err| format!("run: {err}"))?;
        Ok((graph, compiled, output))
    });
    let tract_case = TractModel::load(Source::Bytes(&bytes), std::slice::from_ref(&input))
        .and_then(|model| Ok((model.run()?, model)));
    let case = format!("resnet18_convs/{}", spec.name);
    let (sinter, tract) = match (sinter_case, tract_case) {
        (Ok((graph, compiled, sinter_out)), Ok((tract_out, tract))) => {
            let agree = check_outputs(&sinter_out, &tract_out);
            let reference = (spec.flops() <= CONV_MAX_REF_CHECKED).then(|| {
                sinter_ref::run(&graph, &[("x", input.clone())])
                    .map_err(|err| format!("reference: {err}"))
                    .map(|out| {
                        out.into_iter()
                            .map(|(_, tensor)| tensor)
                            .collect::<Vec<_>>()
                    })
            });
            match (agree, reference) {
                (_, Some(Ok(expected))) => {
                    let sinter_ok = check_outputs(&sinter_out, &expected)
                        .map_err(|reason| skip(&format!("{case} on sinter"), &reason))
                        .is_ok();
                    let tract_ok = check_outputs(&positional_outputs(tract_out), &expected)
                        .map_err(|reason| skip(&format!("{case} on tract"), &reason))
                        .is_ok();
                    (sinter_ok.then_some(compiled), tract_ok.then_some(tract))
                }
                (Ok(()), reference) => {
                    if let Some(Err(reason)) = reference {
                        println!("jit bench: {case}: no reference check ({reason}); sinter and tract agree");
                    }
                    (Some(compiled), Some(tract))
                }
                (Err(reason), _) => {
                    skip(
                        &case,
                        &format!("sinter and tract disagree, no oracle: {reason}"),
                    );
                    (None, None)
                }
            }
        }
        (sinter_case, tract_case) => {
            // Without both results there is nothing to check a result against: neither is timed.
            for (peer, result) in [("sinter", sinter_case.err()), ("tract", tract_case.err())] {
                if let Some(reason) = result {
                    skip(&format!("{case} on {peer}"), &reason);
                }
            }
            (None, None)
        }
    };
    PreparedConv {
        sinter,
        tract,
        input,
    }
}

/// One line of the `resnet18_convs` table; `None` is a contender that was skipped.
struct ConvRow {
    spec: ConvSpec,
    sinter: Option<Duration>,
    tract: Option<Duration>,
}

/// `flops` done in `time`, in GFLOP/s with one decimal, or `-`.
fn gflop_rate(flops: u64, time: Option<Duration>) -> String {
    time.filter(|time| !time.is_zero()).map_or_else(
        || "-".to_string(),
        |time| format!("{:.1}", flops as f64 / time.as_secs_f64() / 1e9),
    )
}

fn bench_resnet18_convs(c: &mut Criterion, args: &BenchArgs) {
    let mut group = c.benchmark_group("resnet18_convs");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sampling_mode(SamplingMode::Flat);
    let mut rows = Vec::new();
    for (idx, spec) in RESNET18_CONVS.iter().enumerate() {
        let ids = [
            format!("resnet18_convs/sinter/{}", spec.name),
            format!("resnet18_convs/tract/{}", spec.name),
        ];
        if !args.selects_any(&ids) {
            continue;
        }
        let PreparedConv {
            sinter,
            tract,
            input,
        } = prepare_conv(spec, 1000 + idx as u64);
        group.throughput(Throughput::Elements(spec.flops()));
        if let Some(model) = &sinter {
            group.bench_with_input(BenchmarkId::new("sinter", spec.name), &input, |b, x| {
                b.iter(|| model.run(&[("x", x)]).expect("checked before"))
            });
        }
        if let Some(model) = &tract {
            group.bench_function(BenchmarkId::new("tract", spec.name), |b| {
                b.iter(|| model.run_raw().expect("checked before"))
            });
        }
        let mut run_sinter = || {
            if let Some(model) = &sinter {
                black_box(model.run(&[("x", &input)]).expect("checked before"));
            }
        };
        let mut run_tract = || {
            if let Some(model) = &tract {
                black_box(model.run_raw().expect("checked before"));
            }
        };
        let medians = interleaved_medians(
            &mut [&mut run_sinter, &mut run_tract],
            CONV_ROUNDS,
            args.timed,
        );
        rows.push(ConvRow {
            spec: *spec,
            sinter: sinter.as_ref().map(|_| medians[0]),
            tract: tract.as_ref().map(|_| medians[1]),
        });
    }
    group.finish();
    if rows.is_empty() {
        return;
    }
    println!();
    println!(
        "resnet18_convs: batch 1, one thread, median latency in ms and GFLOP/s{}",
        if args.timed {
            ""
        } else {
            " (one untimed-mode run each: not a measurement)"
        }
    );
    println!(
        "{:<24} {:>7} {:>10} {:>8} {:>10} {:>8} {:>13}",
        "layer", "MFLOP", "sinter ms", "GFLOP/s", "tract ms", "GFLOP/s", "sinter/tract"
    );
    for row in &rows {
        let flops = row.spec.flops();
        println!(
            "{:<24} {:>7.1} {:>10} {:>8} {:>10} {:>8} {:>13}",
            row.spec.name,
            flops as f64 / 1e6,
            cell(row.sinter),
            gflop_rate(flops, row.sinter),
            cell(row.tract),
            gflop_rate(flops, row.tract),
            ratio(row.sinter, row.tract),
        );
    }
    let flops: u64 = rows.iter().map(|row| row.spec.flops()).sum();
    let sinter: Option<Duration> = rows.iter().map(|row| row.sinter).sum();
    let tract: Option<Duration> = rows.iter().map(|row| row.tract).sum();
    println!(
        "{:<24} {:>7.1} {:>10} {:>8} {:>10} {:>8} {:>13}",
        "all layers",
        flops as f64 / 1e6,
        cell(sinter),
        gflop_rate(flops, sinter),
        cell(tract),
        gflop_rate(flops, tract),
        ratio(sinter, tract),
    );
    println!();
}

/// The seed of the generated ResNet-18's weights and input.
const RESNET18_SEED: u64 = 18;

/// Weights of the generated ResNet-18: torchvision's 11,689,512 parameters plus the running mean
/// and variance of its 4,800 batch-norm channels, which torchvision counts as buffers.
const RESNET18_N_WEIGHTS: usize = 11_689_512 + 2 * 4_800;

/// The target for import plus compile of a ResNet-18-sized model.
const RESNET18_COMPILE_TARGET: Duration = Duration::from_millis(500);

/// A file in the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn write(stem: &str, bytes: &[u8]) -> Result<TempFile, String> {
        let path =
            std::env::temp_dir().join(format!("sinter-bench-{stem}-{}.onnx", std::process::id()));
        std::fs::write(&path, bytes).map_err(|err| format!("{}: {err}", path.display()))?;
        Ok(TempFile(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Nothing to do about a failure: the file is in the temporary directory.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Durations of import, compile and tract's load of the generated ResNet-18, per repetition.
#[derive(Default)]
struct ResnetStartup {
    import: Vec<Duration>,
    compile: Vec<Duration>,
    tract_load: Vec<Duration>,
}

fn bench_resnet18_full(c: &mut Criterion, args: &BenchArgs) {
    let ids = ["sinter", "sinter_2t", "tract"].map(|peer| format!("resnet18_full/{peer}/resnet18"));
    if !args.selects_any(&ids) {
        return;
    }
    let generated = onnx_build::resnet18_model(RESNET18_SEED);
    if generated.n_params != RESNET18_N_WEIGHTS {
        skip(
            "resnet18_full",
            &format!(
                "generated {} weights, not ResNet-18's {RESNET18_N_WEIGHTS}",
                generated.n_params
            ),
        );
        return;
    }
    let bytes = generated.model.encode_to_vec();
    drop(generated);
    let file = match TempFile::write("resnet18", &bytes) {
        Ok(file) => file,
        Err(reason) => {
            skip("resnet18_full", &reason);
            return;
        }
    };
    drop(bytes);
    let input = onnx_build::random_input(&[1, 3, 224, 224], RESNET18_SEED);
    let named_input = [("input".to_string(), input.clone())];

    // Import plus compile is what a user waits for before the first inference: time it afresh a
    // few times (it is too slow for criterion's minimum of ten samples to be worth it).
    let n_repeats = if args.timed { 3 } else { 1 };
    let mut startup = ResnetStartup::default();
    let mut sinter = None;
    let mut tract = None;
    for _ in 0..n_repeats {
        let start = Instant::now();
        let graph = sinter_onnx::import_file(&file.0, &sinter_onnx::ImportOptions::default());
        let imported = start.elapsed();
        let compiled = graph
            .map_err(|err| format!("import: {err}"))
            .and_then(|graph| compile_for_inputs(graph, &named_input, &single_thread()));
        let compiled_at = start.elapsed();
        match compiled {
            Ok(model) => {
                startup.import.push(imported);
                startup.compile.push(compiled_at - imported);
                sinter = Some(model);
            }
            Err(reason) => {
                skip("resnet18_full/sinter", &reason);
                break;
            }
        }
    }
    for _ in 0..n_repeats {
        let start = Instant::now();
        match TractModel::load(Source::Path(&file.0), std::slice::from_ref(&input)) {
            Ok(model) => {
                startup.tract_load.push(start.elapsed());
                tract = Some(model);
            }
            Err(reason) => {
                skip("resnet18_full/tract", &reason);
                break;
            }
        }
    }
    let sinter_2t = sinter.as_ref().and_then(|_| {
        sinter_onnx::import_file(&file.0, &sinter_onnx::ImportOptions::default())
            .map_err(|err| format!("import: {err}"))
            .and_then(|graph| compile_for_inputs(graph, &named_input, &threads(2)))
            .map_err(|reason| skip("resnet18_full/sinter_2t", &reason))
            .ok()
    });

    // No oracle runs a 3.6 GFLOP model in reasonable time, so sinter and tract check each other.
    let run_sinter = |model: &CompiledModel| {
        model
            .run(&[("input", &input)])
            .map_err(|err| format!("run: {err}"))
    };
    let checked = match (&sinter, &tract) {
        (Some(model), Some(peer)) => run_sinter(model).and_then(|sinter_out| {
            check_outputs(&sinter_out, &peer.run()?)?;
            match &sinter_2t {
                Some(model_2t) => check_outputs(&run_sinter(model_2t)?, &peer.run()?),
                None => Ok(()),
            }
        }),
        _ => Err("sinter and tract do not both run it: no result to check against".to_string()),
    };
    let (sinter, sinter_2t, tract) = match checked {
        Ok(()) => (sinter, sinter_2t, tract),
        Err(reason) => {
            skip("resnet18_full inference", &reason);
            (None, None, None)
        }
    };

    let mut group = c.benchmark_group("resnet18_full");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);
    for (peer, model) in [("sinter", &sinter), ("sinter_2t", &sinter_2t)] {
        if let Some(model) = model {
            group.bench_function(BenchmarkId::new(peer, "resnet18"), |b| {
                b.iter(|| run_sinter(model).expect("checked before"))
            });
        }
    }
    if let Some(model) = &tract {
        group.bench_function(BenchmarkId::new("tract", "resnet18"), |b| {
            b.iter(|| model.run_raw().expect("checked before"))
        });
    }
    group.finish();

    let mut contenders: [Box<dyn FnMut()>; 3] = [
        Box::new(|| {
            if let Some(model) = &sinter {
                black_box(run_sinter(model).expect("checked before"));
            }
        }),
        Box::new(|| {
            if let Some(model) = &tract {
                black_box(model.run_raw().expect("checked before"));
            }
        }),
        Box::new(|| {
            if let Some(model) = &sinter_2t {
                black_box(run_sinter(model).expect("checked before"));
            }
        }),
    ];
    let [a, b, c] = &mut contenders;
    let medians = interleaved_medians(
        &mut [a.as_mut(), b.as_mut(), c.as_mut()],
        RoundBudget {
            min_time: Duration::from_secs(2),
            min_rounds: 5,
            max_rounds: 100,
        },
        args.timed,
    );
    drop(contenders);
    let median_of =
        |samples: &Vec<Duration>| (!samples.is_empty()).then(|| timing::median(samples.clone()));
    let import = median_of(&startup.import);
    let compile = median_of(&startup.compile);
    let total = import
        .zip(compile)
        .map(|(import, compile)| import + compile);
    println!();
    println!(
        "resnet18_full: generated torchvision ResNet-18, {RESNET18_N_WEIGHTS} weights, batch 1, \
         224x224; medians in ms{}",
        if args.timed {
            ""
        } else {
            " (one untimed-mode run each: not a measurement)"
        }
    );
    println!(
        "  sinter import {} + compile {} = {} (target {}: {})",
        cell(import),
        cell(compile),
        cell(total),
        millis(RESNET18_COMPILE_TARGET),
        match total {
            Some(total) if total <= RESNET18_COMPILE_TARGET => "met",
            Some(_) => "NOT met",
            None => "-",
        }
    );
    println!(
        "  tract load + optimise {}",
        cell(median_of(&startup.tract_load))
    );
    let (sinter_t, tract_t, sinter_2t_t) = (
        sinter.as_ref().map(|_| medians[0]),
        tract.as_ref().map(|_| medians[1]),
        sinter_2t.as_ref().map(|_| medians[2]),
    );
    println!(
        "  inference: sinter {} tract {} (sinter/tract {}), sinter 2 threads {} (1t/2t {})",
        cell(sinter_t),
        cell(tract_t),
        ratio(sinter_t, tract_t),
        cell(sinter_2t_t),
        ratio(sinter_t, sinter_2t_t),
    );
    println!();
}

/// Imports `tests/models/<name>` with its data set and compiles it for the data set's shapes.
fn import_and_compile(name: &str) -> Result<CompiledModel, String> {
    let case = load_onnx_case(name)?;
    compile_for_inputs(case.graph, &case.inputs, &single_thread())
}

/// Compiles `graph` for the shapes of `inputs`. A graph with a symbolic `batch` is compiled on first
/// use, so the program for the inputs' binding is built here, before any run.
fn compile_for_inputs(
    graph: Graph,
    inputs: &[(String, Tensor)],
    options: &CompileOptions,
) -> Result<CompiledModel, String> {
    let described: Vec<(&str, DType, &[usize])> = inputs
        .iter()
        .map(|(name, tensor)| (name.as_str(), tensor.dtype(), tensor.shape()))
        .collect();
    let bindings = sinter_ir::bind_inputs(&graph, &described).map_err(|err| err.to_string())?;
    let model = compile(graph, options).map_err(|err| err.to_string())?;
    model
        .program_for(&bindings)
        .map_err(|err| err.to_string())?;
    Ok(model)
}

fn bench_compile(c: &mut Criterion) {
    let case = match load_onnx_case(COMPILE_MODEL).and_then(|case| {
        compile_and_check(&case, &single_thread())?;
        Ok(case)
    }) {
        Ok(case) => case,
        Err(reason) => {
            skip(&format!("compile of {COMPILE_MODEL}"), &reason);
            return;
        }
    };
    let mut group = c.benchmark_group("compile");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);
    group.bench_function(
        BenchmarkId::new("import_and_compile", COMPILE_MODEL),
        |bencher| bencher.iter(|| import_and_compile(COMPILE_MODEL).expect("it compiled above")),
    );
    group.bench_function(BenchmarkId::new("compile_only", COMPILE_MODEL), |bencher| {
        bencher.iter_batched(
            || case.graph.clone(),
            |graph| {
                compile_for_inputs(graph, &case.inputs, &single_thread())
                    .expect("it compiled above")
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// The attention bench's sequence length, head size and query heads (batch 1): one long head, where
/// a kernel that materialises the `seq x seq` scores needs 64 MiB and a streaming one needs O(seq·d).
const ATTENTION_SEQ: usize = 4096;
const ATTENTION_HEAD_DIM: usize = 64;

/// The sequence length at which the attention kernel is also checked against the reference
/// interpreter (which needs seconds at [`ATTENTION_SEQ`]).
const ATTENTION_CHECKED_SEQ: usize = 256;

const ATTENTION_ROUNDS: RoundBudget = RoundBudget {
    min_time: Duration::from_secs(2),
    min_rounds: 5,
    max_rounds: 200,
};

/// One `attention` node over `q, k, v: f32[1,1,seq,d]`.
fn attention_graph(seq: usize, d: usize, causal: bool) -> Result<Graph, String> {
    let attrs = if causal { " {causal=true}" } else { "" };
    let text = format!(
        "graph attention_{seq} {{\n  input %q: f32[1,1,{seq},{d}]\n  input %k: f32[1,1,{seq},{d}]\n  \
         input %v: f32[1,1,{seq},{d}]\n  %0: f32[1,1,{seq},{d}] = attention(%q, %k, %v){attrs}\n  \
         output y = %0\n}}\n"
    );
    parse_graph(&text, &ParseOptions::default()).map_err(|err| err.to_string())
}

/// The same attention as the opset-17 subgraph tract runs (tract has no `Attention` op):
/// `Softmax(MatMul(q, Transpose(k)) * scale [+ causal bias]) @ v`, materialising the scores.
fn attention_onnx(seq: usize, d: usize, causal: bool) -> Vec<u8> {
    use sinter_onnx::proto::{
        attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, AttributeProto,
        GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto,
    };
    let info = |name: &str| {
        ValueInfoProto::tensor(
            name,
            DataType::Float,
            [1, 1, seq, d]
                .iter()
                .map(|&n| tensor_shape_proto::dimension::Value::DimValue(n as i64)),
        )
    };
    let node =
        |op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>| NodeProto {
            op_type: op.to_string(),
            name: output.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            attribute,
            ..NodeProto::default()
        };
    let scalar = |name: &str, dims: Vec<i64>, values: Vec<f32>| TensorProto {
        name: name.to_string(),
        dims,
        data_type: DataType::Float as i32,
        float_data: values,
        ..TensorProto::default()
    };
    let mut nodes = vec![
        node(
            "Transpose",
            &["k"],
            "kt",
            vec![AttributeProto {
                name: "perm".to_string(),
                r#type: AttributeType::Ints as i32,
                ints: vec![0, 1, 3, 2],
                ..AttributeProto::default()
            }],
        ),
        node("MatMul", &["q", "kt"], "qk", Vec::new()),
        node("Mul", &["qk", "scale"], "scores", Vec::new()),
    ];
    let mut initializer = vec![scalar("scale", Vec::new(), vec![1.0 / (d as f32).sqrt()])];
    let mut softmax_input = "scores";
    if causal {
        let bias = (0..seq * seq)
            .map(|at| {
                if at % seq > at / seq {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        initializer.push(scalar("causal", vec![seq as i64, seq as i64], bias));
        nodes.push(node("Add", &["scores", "causal"], "masked", Vec::new()));
        softmax_input = "masked";
    }
    nodes.push(node(
        "Softmax",
        &[softmax_input],
        "p",
        vec![AttributeProto {
            name: "axis".to_string(),
            r#type: AttributeType::Int as i32,
            i: -1,
            ..AttributeProto::default()
        }],
    ));
    nodes.push(node("MatMul", &["p", "v"], "y", Vec::new()));
    ModelProto {
        ir_version: 9,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(GraphProto {
            name: "attention".to_string(),
            node: nodes,
            initializer,
            input: vec![info("q"), info("k"), info("v")],
            output: vec![info("y")],
            ..GraphProto::default()
        }),
        ..ModelProto::default()
    }
    .encode_to_vec()
}

/// Random `q, k, v` of `[1,1,seq,d]`.
fn attention_inputs(seq: usize, d: usize) -> Vec<(String, Tensor)> {
    ["q", "k", "v"]
        .iter()
        .enumerate()
        .map(|(idx, name)| {
            let tensor = onnx_build::random_input(&[1, 1, seq, d], 4000 + idx as u64);
            (name.to_string(), tensor)
        })
        .collect()
}

/// Compiles the attention, checks it against the reference interpreter at
/// [`ATTENTION_CHECKED_SEQ`] first, and returns the model at `seq` with its arena size.
fn prepare_attention(
    seq: usize,
    causal: bool,
    options: &CompileOptions,
) -> Result<(CompiledModel, usize), String> {
    let d = ATTENTION_HEAD_DIM;
    let small = attention_graph(ATTENTION_CHECKED_SEQ, d, causal)?;
    let inputs = attention_inputs(ATTENTION_CHECKED_SEQ, d);
    let expected = sinter_ref::run(
        &small,
        &inputs
            .iter()
            .map(|(n, t)| (n.as_str(), t.clone()))
            .collect::<Vec<_>>(),
    )
    .map_err(|err| format!("reference: {err}"))?;
    let model = compile(small, options).map_err(|err| format!("compile: {err}"))?;
    let actual = model
        .run(
            &inputs
                .iter()
                .map(|(n, t)| (n.as_str(), t))
                .collect::<Vec<_>>(),
        )
        .map_err(|err| format!("run: {err}"))?;
    check_outputs(
        &actual,
        &expected.into_iter().map(|(_, t)| t).collect::<Vec<_>>(),
    )?;
    let model = compile(attention_graph(seq, d, causal)?, options)
        .map_err(|err| format!("compile: {err}"))?;
    let inputs = attention_inputs(seq, d);
    let described: Vec<(&str, DType, &[usize])> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.dtype(), t.shape()))
        .collect();
    let bindings =
        sinter_ir::bind_inputs(model.graph(), &described).map_err(|err| err.to_string())?;
    let program = model
        .program_for(&bindings)
        .map_err(|err| err.to_string())?;
    Ok((model, program.memory_plan().peak_bytes))
}

/// `attention`: one head of 4096 queries and keys of size 64 (causal and not), sinter on one and
/// two threads next to tract running the equivalent opset-17 subgraph, with sinter's arena size
/// against the bytes of q, k, v and the output. sinter is checked against the reference at
/// [`ATTENTION_CHECKED_SEQ`] and against tract at full size.
fn bench_attention(c: &mut Criterion, args: &BenchArgs) {
    let (seq, d) = (ATTENTION_SEQ, ATTENTION_HEAD_DIM);
    let mut group = c.benchmark_group("attention");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sampling_mode(SamplingMode::Flat);
    let mut rows = Vec::new();
    for causal in [false, true] {
        let name = format!("seq{seq}_d{d}{}", if causal { "_causal" } else { "" });
        let ids = [
            format!("attention/sinter/{name}"),
            format!("attention/sinter_2t/{name}"),
            format!("attention/tract/{name}"),
        ];
        if !args.selects_any(&ids) {
            continue;
        }
        let inputs = attention_inputs(seq, d);
        let borrowed: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let tensors: Vec<Tensor> = inputs.iter().map(|(_, t)| t.clone()).collect();
        let tract = TractModel::load(Source::Bytes(&attention_onnx(seq, d, causal)), &tensors)
            .map_err(|reason| skip(&format!("tract/{name}"), &reason))
            .ok();
        let expected = tract.as_ref().and_then(|model| {
            model
                .run()
                .map_err(|reason| skip(&format!("tract/{name}"), &reason))
                .ok()
        });
        let mut sinter = Vec::new();
        for options in [single_thread(), threads(2)] {
            let prepared = prepare_attention(seq, causal, &options).and_then(|(model, peak)| {
                if let Some(expected) = &expected {
                    let actual = model.run(&borrowed).map_err(|err| format!("run: {err}"))?;
                    check_outputs(&actual, expected)?;
                }
                Ok((model, peak))
            });
            match prepared {
                Ok(prepared) => sinter.push(Some(prepared)),
                Err(reason) => {
                    skip(&format!("sinter/{name}"), &reason);
                    sinter.push(None);
                }
            }
        }
        for (id, prepared) in ["sinter", "sinter_2t"].iter().zip(&sinter) {
            if let Some((model, _)) = prepared {
                group.bench_function(BenchmarkId::new(*id, &name), |b| {
                    b.iter(|| model.run(&borrowed).expect("checked before"))
                });
            }
        }
        if let Some(model) = &tract {
            group.bench_function(BenchmarkId::new("tract", &name), |b| {
                b.iter(|| model.run_raw().expect("checked before"))
            });
        }
        let run = |prepared: &Option<(CompiledModel, usize)>| {
            if let Some((model, _)) = prepared {
                black_box(model.run(&borrowed).expect("checked before"));
            }
        };
        let mut run_1t = || run(&sinter[0]);
        let mut run_2t = || run(&sinter[1]);
        let mut run_tract = || {
            if let Some(model) = &tract {
                black_box(model.run_raw().expect("checked before"));
            }
        };
        let medians = interleaved_medians(
            &mut [&mut run_1t, &mut run_2t, &mut run_tract],
            ATTENTION_ROUNDS,
            args.timed,
        );
        let peak = sinter[0].as_ref().map(|(_, peak)| *peak);
        rows.push((
            name,
            [0, 1].map(|t| sinter[t].as_ref().map(|_| medians[t])),
            tract.as_ref().map(|_| medians[2]),
            peak,
        ));
    }
    group.finish();
    if rows.is_empty() {
        return;
    }
    let io_bytes = 4 * seq * d * 4;
    println!();
    println!(
        "attention: batch 1, 1 head, seq {seq}, head dim {d}; median ms; arena vs q+k+v+y = {io_bytes} bytes{}",
        if args.timed { "" } else { " (one untimed-mode run each: not a measurement)" }
    );
    println!(
        "{:<22} {:>10} {:>12} {:>10} {:>13} {:>12} {:>8}",
        "case", "sinter ms", "sinter 2t ms", "tract ms", "sinter/tract", "arena bytes", "/ io"
    );
    for (name, [one, two], tract, peak) in rows {
        println!(
            "{:<22} {:>10} {:>12} {:>10} {:>13} {:>12} {:>8}",
            name,
            cell(one),
            cell(two),
            cell(tract),
            ratio(one, tract),
            peak.map_or("-".to_string(), |p| p.to_string()),
            peak.map_or("-".to_string(), |p| format!(
                "{:.2}",
                p as f64 / io_bytes as f64
            )),
        );
    }
    println!();
}

/// What `criterion_main!` would generate, with the groups that follow criterion's command line
/// given its parsed arguments, and the support modules' own checks first.
fn main() {
    if let Err(problem) = timing::self_check().and_then(|()| onnx_build::self_check()) {
        panic!("jit bench support is wrong: {problem}");
    }
    let args = BenchArgs::from_env();
    let mut criterion = Criterion::default().configure_from_args();
    bench_gemm(&mut criterion);
    bench_models(&mut criterion, &args);
    bench_resnet18_convs(&mut criterion, &args);
    bench_resnet18_full(&mut criterion, &args);
    bench_attention(&mut criterion, &args);
    bench_compile(&mut criterion);
    criterion.final_summary();
}
