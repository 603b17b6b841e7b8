//! `sinter bench`: compile a model and time it.
//!
//! Compilation is timed apart from running: for the JIT, `compile_ms` covers specialising the graph to
//! the inputs' shapes, lowering, scheduling and code generation (the model file's import is not
//! included; it is the same for every engine). Then `--warmup` untimed runs, then `--runs` timed ones,
//! each on the same inputs. Inputs come from `--inputs DIR` (as for `sinter run`) or are random and
//! seeded, with symbolic dims sized by `--dim NAME=SIZE` (1 when not given; a note says so).
//!
//! With `--json` the last line is one JSON object, for scripts that compare engines and peers.

use super::engine::Engine;
use super::run::{collect_inputs, fixed_input_value, InputSources, LoadedInput};
use super::{load_model_with_inputs, sized_inputs, SizedInput};
use crate::args::BenchArgs;
use anyhow::Result;
use sinter_ref::random::{random_tensor, SplitMix64};
use std::io::Write;
use std::time::Instant;

/// The seed of random inputs, fixed so that repeated benchmarks run on the same data.
const RANDOM_INPUT_SEED: u64 = 0x5EED;

pub fn bench(args: &BenchArgs, out: &mut impl Write) -> Result<()> {
    // `sinter run`'s input handling, with no `--input` files.
    let sources = InputSources {
        named: &[],
        dir: args.input_dir.as_deref(),
    };
    let model = load_model_with_inputs(&args.model, &mut |name, position| {
        fixed_input_value(&sources, name, position)
    })?;
    for note in model.import_notes() {
        writeln!(out, "{note}")?;
    }
    let inputs = if args.input_dir.is_some() {
        collect_inputs(&sources, &model)?
    } else {
        random_inputs(args, &model.graph, out)?
    };

    let started = Instant::now();
    let engine = Engine::new(&model, args.engine.engine_options())?;
    let peak_bytes = engine.prepare(&model, &inputs)?;
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;

    for _ in 0..args.warmup {
        engine.run(&inputs)?;
    }
    let mut times_ms = Vec::with_capacity(args.runs as usize);
    for _ in 0..args.runs {
        let started = Instant::now();
        engine.run(&inputs)?;
        times_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times_ms.sort_by(f64::total_cmp);
    let n = times_ms.len();
    let median_ms = if n % 2 == 1 {
        times_ms[n / 2]
    } else {
        (times_ms[n / 2 - 1] + times_ms[n / 2]) / 2.0
    };
    let min_ms = times_ms[0];
    let mean_ms = times_ms.iter().sum::<f64>() / n as f64;
    let threads = args
        .engine
        .threads
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let backend = match args.engine.backend {
        crate::args::Backend::Jit => "jit",
        crate::args::Backend::Reference => "reference",
    };

    writeln!(
        out,
        "model: {} ({backend}, {threads} threads)",
        args.model.display()
    )?;
    writeln!(out, "compile: {compile_ms:.2} ms")?;
    writeln!(
        out,
        "latency: median {median_ms:.3} ms, min {min_ms:.3} ms, mean {mean_ms:.3} ms over {n} runs"
    )?;
    match peak_bytes {
        Some(bytes) => writeln!(out, "arena: {bytes} bytes")?,
        None => writeln!(out, "arena: not planned by the reference interpreter")?,
    }
    if args.json {
        let model_path = args.model.display().to_string();
        writeln!(
            out,
            "{{\"model\":{},\"backend\":\"{backend}\",\"threads\":{threads},\"compile_ms\":{compile_ms},\
             \"median_ms\":{median_ms},\"min_ms\":{min_ms},\"mean_ms\":{mean_ms},\"runs\":{n},\
             \"peak_bytes\":{}}}",
            json_string(&model_path),
            peak_bytes.map_or("null".to_string(), |bytes| bytes.to_string())
        )?;
    }
    Ok(())
}

/// Seeded random inputs; symbolic dims from `--dim`, 1 otherwise (with a note naming them).
fn random_inputs(
    args: &BenchArgs,
    graph: &sinter_ir::Graph,
    out: &mut impl Write,
) -> Result<Vec<LoadedInput>> {
    let mut rng = SplitMix64::new(RANDOM_INPUT_SEED);
    let (sized, defaulted) = sized_inputs(graph, &args.dims);
    let mut inputs = Vec::new();
    for SizedInput { name, dtype, shape } in sized {
        if !sinter_ir::dims_within_max_elements(&shape) {
            anyhow::bail!("input `{name}` of shape {shape:?} is too large for random data");
        }
        let tensor = random_tensor(&mut rng, dtype, &shape);
        inputs.push(LoadedInput {
            name,
            path: None,
            tensor,
        });
    }
    if !defaulted.is_empty() {
        let names: Vec<String> = defaulted.iter().map(|s| format!("`{s}`")).collect();
        writeln!(
            out,
            "note: random inputs with symbolic dims {} = 1 (size them with `--dim NAME=SIZE`)",
            names.join(", ")
        )?;
    }
    Ok(inputs)
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if (c as u32) < 0x20 => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}
