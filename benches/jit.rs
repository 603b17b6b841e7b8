//! The JIT (`sinter_jit::compile`) measured on what users run: a dense f32 GEMM at sizes from cache
//! resident to memory bound, every shipped model end to end, and the compile time of a real model.
//!
//! Groups, each readable on its own:
//! - `gemm_f32`: one `matmul` node `[n,n] x [n,n]` for n in 64..1024 on one thread, and n = 512 on
//!   two. Throughput is `2 n^3` elements, so criterion's "elem/s" is FLOP/s.
//! - `models`: every `tests/models/*/model.onnx` on its `test_data_set_0` (imported as
//!   `sinter check` imports it, with `sinter_onnx::import_specialized`) and the shipped
//!   `examples/models/lenet5/lenet5.sir` on `digit_7.npy`, all on one thread. The reference
//!   interpreter runs LeNet in the same group, so the JIT's speed-up is read off the same run.
//! - `compile`: `resnet18_w8_ts` compiled (specialise, lower, schedule, generate code) for its data
//!   set's shapes, with and without the ONNX import before it: the latency a user sees before the
//!   first inference.
//!
//! **A figure is only reported for a correct result.** Before a case is timed its output is checked
//! (GEMM against the reference interpreter, models against the data set's expected outputs, at the
//! real-model tolerance rtol 1e-4, atol 1e-5). A case that does not import, compile or match is
//! skipped with a printed line saying why: a benchmark is not a test, and one broken model must not
//! hide the figures of the others.
//!
//! Sample counts and times are kept small (a whole `cargo bench --bench jit` takes about a minute
//! once built); pass criterion's `--quick` for a faster, rougher run. `cargo test --bench jit` runs
//! every case once, checks included, without timing.

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use sinter_ir::rng::SplitMix64;
use sinter_ir::text::{parse_file, parse_graph, ParseOptions};
use sinter_ir::{DType, Graph, Tensor};
use sinter_jit::{compile, CompileOptions, CompiledModel};
use sinter_ref::compare::{compare, Tolerance};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    CompileOptions {
        threads: Some(1),
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

/// Imports `tests/models/<name>` as `sinter check` does, with its data set: the N-th `input_N.pb`
/// binds to the N-th graph input that is not an initializer.
fn load_onnx_case(name: &str) -> Result<ModelCase, String> {
    let dir = root().join("tests/models").join(name);
    let data_dir = dir.join("test_data_set_0");
    let loaded =
        sinter_onnx::load_model(&dir.join("model.onnx")).map_err(|err| format!("decode: {err}"))?;
    let positional = sinter_onnx::positional_inputs(&loaded.model);
    let values = numbered_files(&data_dir, "input")
        .iter()
        .zip(&positional)
        .map(|(path, input)| Ok((input.clone(), read_pb(path)?)))
        .collect::<Result<BTreeMap<String, Tensor>, String>>()?;
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
    let expected = numbered_files(&data_dir, "output")
        .iter()
        .map(|path| read_pb(path))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(ModelCase {
        name: name.to_string(),
        graph,
        inputs,
        expected,
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

/// Compiles `case` on one thread and checks one run against its expected outputs.
fn compile_and_check(case: &ModelCase) -> Result<CompiledModel, String> {
    let model = compile(case.graph.clone(), &single_thread()).map_err(|err| format!("{err}"))?;
    let inputs: Vec<(&str, &Tensor)> = case
        .inputs
        .iter()
        .map(|(name, tensor)| (name.as_str(), tensor))
        .collect();
    let outputs = model.run(&inputs).map_err(|err| format!("{err}"))?;
    check_outputs(&outputs, &case.expected)?;
    Ok(model)
}

fn bench_models(c: &mut Criterion) {
    let mut cases = Vec::new();
    match onnx_model_names() {
        Ok(names) => {
            for name in names {
                match load_onnx_case(&name) {
                    Ok(case) => cases.push(case),
                    Err(reason) => skip(&name, &reason),
                }
            }
        }
        Err(reason) => skip("tests/models", &reason),
    }
    match load_lenet_sir_case() {
        Ok(case) => cases.push(case),
        Err(reason) => skip("lenet5_sir", &reason),
    }

    let mut group = c.benchmark_group("models");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for case in &cases {
        let model = match compile_and_check(case) {
            Ok(model) => model,
            Err(reason) => {
                skip(&case.name, &reason);
                continue;
            }
        };
        let inputs: Vec<(&str, &Tensor)> = case
            .inputs
            .iter()
            .map(|(name, tensor)| (name.as_str(), tensor))
            .collect();
        group.bench_function(BenchmarkId::new("jit", &case.name), |bencher| {
            bencher.iter(|| model.run(&inputs).expect("checked before"))
        });
        if case.name == "lenet5_sir" {
            // The same-process peer: the reference interpreter on the same graph and input.
            let owned_inputs: Vec<(&str, Tensor)> = case
                .inputs
                .iter()
                .map(|(name, tensor)| (name.as_str(), tensor.clone()))
                .collect();
            match sinter_ref::run(&case.graph, &owned_inputs) {
                Ok(_) => {
                    group.bench_function(BenchmarkId::new("reference", &case.name), |bencher| {
                        bencher.iter(|| {
                            sinter_ref::run(&case.graph, &owned_inputs).expect("it ran above")
                        })
                    });
                }
                Err(err) => skip("lenet5_sir on the reference interpreter", &err.to_string()),
            }
        }
    }
    group.finish();
}

/// Imports `tests/models/<name>` with its data set and compiles it for the data set's shapes.
fn import_and_compile(name: &str) -> Result<CompiledModel, String> {
    let case = load_onnx_case(name)?;
    compile_for_inputs(case.graph, &case.inputs)
}

/// Compiles `graph` for the shapes of `inputs`. A graph with a symbolic `batch` is compiled on first
/// use, so the program for the inputs' binding is built here, before any run.
fn compile_for_inputs(graph: Graph, inputs: &[(String, Tensor)]) -> Result<CompiledModel, String> {
    let described: Vec<(&str, DType, &[usize])> = inputs
        .iter()
        .map(|(name, tensor)| (name.as_str(), tensor.dtype(), tensor.shape()))
        .collect();
    let bindings = sinter_ir::bind_inputs(&graph, &described).map_err(|err| err.to_string())?;
    let model = compile(graph, &single_thread()).map_err(|err| err.to_string())?;
    model
        .program_for(&bindings)
        .map_err(|err| err.to_string())?;
    Ok(model)
}

fn bench_compile(c: &mut Criterion) {
    let case = match load_onnx_case(COMPILE_MODEL).and_then(|case| {
        compile_and_check(&case)?;
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
            |graph| compile_for_inputs(graph, &case.inputs).expect("it compiled above"),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_gemm, bench_models, bench_compile);
criterion_main!(benches);
