//! The command line, declared with clap's derive API.
//!
//! Flags that later issues give more values (`--backend jit`, `--stage optimized`) are already
//! accepted where the interface in DESIGN.md promises them, so scripts written today keep working; the
//! commands answer "not available yet" for the parts that do not exist.

use clap::{Args, Parser, Subcommand, ValueEnum};
use sinter_ref::compare::Tolerance;
use std::path::PathBuf;

/// sinter: a model compiler for neural networks on the CPU.
#[derive(Debug, Parser)]
#[command(name = "sinter", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and verify a model, then print it as canonical `.sir` text or Graphviz DOT.
    Dump(DumpArgs),
    /// Run a model on inputs from `.npy` or `.pb` files and print (and optionally save) its outputs.
    Run(RunArgs),
    /// Run a model on an ONNX backend-test data set (`input_N.pb`) and compare its outputs with the
    /// expected ones (`output_N.pb`). Exit code 0: all outputs match; 1: some output differs; 2: the
    /// model could not be run or compared (import failure, bad files, ...).
    Check(CheckArgs),
    /// Compile a model and time it: compile time, then the median and minimum latency over `--runs`
    /// runs after `--warmup` runs, and the JIT's arena size. With `--json` the last line printed is
    /// one JSON object with `compile_ms`, `median_ms`, `min_ms`, `mean_ms`, `runs`, `threads` and
    /// `peak_bytes`.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The model: a `.sir` or `.onnx` file.
    pub model: PathBuf,
    /// A directory with the inputs, as for `sinter run --inputs`. Without it every input is random
    /// (seeded, so runs are comparable), with symbolic dims sized by `--dim` (1 when not given).
    #[arg(long = "inputs", value_name = "DIR")]
    pub input_dir: Option<PathBuf>,
    /// The size of a symbolic dim for random inputs, as `NAME=SIZE`. Repeat for each dim.
    #[arg(long = "dim", value_name = "NAME=SIZE", value_parser = parse_dim)]
    pub dims: Vec<(String, usize)>,
    /// Timed runs.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Untimed runs before the timed ones.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub warmup: u32,
    /// Print a JSON object as the last line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// One `--dim NAME=SIZE` argument.
fn parse_dim(arg: &str) -> Result<(String, usize), String> {
    match arg.split_once('=') {
        Some((name, size)) if !name.is_empty() => match size.parse::<usize>() {
            Ok(size) => Ok((name.to_string(), size)),
            Err(_) => Err(format!("`{size}` is not a size in `{arg}`")),
        },
        _ => Err(format!(
            "expected NAME=SIZE (for example `batch=8`), got `{arg}`"
        )),
    }
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The model: a `.sir` or `.onnx` file.
    pub model: PathBuf,
    /// Which stage of the pipeline to print: `import` is the graph as read (a `.sir` file parsed, an
    /// `.onnx` file imported); `loops` the scheduled loop IR the JIT compiles, `clif` the Cranelift IR
    /// of every kernel after Cranelift's optimisations, `asm` its machine code. The last three are for
    /// concrete shapes: symbolic dims take their `--dim` size, 1 when not given.
    #[arg(long, value_enum, default_value_t = Stage::Import)]
    pub stage: Stage,
    /// The size of a symbolic dim for `--stage loops|clif|asm`, as `NAME=SIZE`. Repeat for each dim.
    #[arg(long = "dim", value_name = "NAME=SIZE", value_parser = parse_dim)]
    pub dims: Vec<(String, usize)>,
    /// Threads the JIT plans for in `--stage loops|clif|asm` (parallel loops appear only with 2 or
    /// more; default: every core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DumpFormat::Text)]
    pub format: DumpFormat,
    /// Skip the graph optimizer for `--stage loops|clif|asm` (it always runs for `optimized`).
    #[arg(long)]
    pub no_opt: bool,
    /// With `--stage optimized`: print (as `;` comments) the op counts before and after, how often
    /// each rewrite rule fired, each saturation phase and the optimizer's time.
    #[arg(long)]
    pub stats: bool,
    /// With `--stage optimized`: print (as `;` comments) why each rewritten node is there: the rule
    /// that built it and the source node it replaces.
    #[arg(long)]
    pub explain: bool,
    /// Write constants with more than `--inline-limit` elements to this raw weights file (little-endian,
    /// 64-byte aligned) and reference it from the text by file name, so save the text in PATH's folder.
    /// Without it every constant is inline.
    #[arg(long, value_name = "PATH")]
    pub weights_out: Option<PathBuf>,
    /// With `--weights-out`: the largest element count a constant may have and still be printed inline.
    #[arg(long, value_name = "N", requires = "weights_out", default_value_t = 16)]
    pub inline_limit: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    /// The graph as imported, before any optimization.
    Import,
    /// After the graph optimizer (`sinter-opt`): fused, recognised and folded.
    Optimized,
    /// The loop IR of every kernel, scheduled as the JIT compiles it.
    Loops,
    /// Cranelift IR of every kernel, after Cranelift's optimisations.
    Clif,
    /// Machine code of every kernel (Cranelift's disassembly).
    Asm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DumpFormat {
    /// The `.sir` text format; parsing the output gives the same graph back.
    Text,
    /// Graphviz DOT, for `dot -Tsvg`.
    Dot,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The model: a `.sir` or `.onnx` file.
    pub model: PathBuf,
    /// A graph input as `NAME=FILE`: an ONNX TensorProto if FILE ends in `.pb`, otherwise a `.npy`
    /// file (C order). Repeat for each input.
    #[arg(long = "input", value_name = "NAME=FILE", value_parser = parse_named_input)]
    pub inputs: Vec<NamedInput>,
    /// A directory with the graph inputs not given with `--input`. For an `.onnx` model, the N-th
    /// graph input that is not an initializer is read from `input_N.pb` (the ONNX backend-test layout)
    /// when that file exists; otherwise every input is read from `<input name>.npy` (names made
    /// file-safe as for outputs: characters other than letters, digits, `_`, `-` and `.` become `_`).
    #[arg(long = "inputs", value_name = "DIR")]
    pub input_dir: Option<PathBuf>,
    /// Write the N-th output to `DIR/output_N.pb` (an ONNX TensorProto) and to `DIR/<output name>.npy`
    /// (names made file-safe as above).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The model: an `.onnx` or `.sir` file.
    pub model: PathBuf,
    /// A data set in the ONNX backend-test layout: `input_N.pb` for the N-th graph input (for `.onnx`
    /// models, counting only inputs that are not initializers) and `output_N.pb` with the expected
    /// value of the N-th graph output.
    pub dataset_dir: PathBuf,
    /// Relative tolerance for float outputs: an element matches when
    /// `|actual - expected| <= atol + rtol * |expected|`. Integer and bool outputs must be equal.
    #[arg(long, value_name = "R", default_value_t = Tolerance::ONNX_DEFAULT.rtol, value_parser = parse_tolerance)]
    pub rtol: f64,
    /// Absolute tolerance for float outputs (see `--rtol`).
    #[arg(long, value_name = "A", default_value_t = Tolerance::ONNX_DEFAULT.atol, value_parser = parse_tolerance)]
    pub atol: f64,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// A tolerance: a finite, non-negative number.
fn parse_tolerance(arg: &str) -> Result<f64, String> {
    match arg.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!(
            "expected a finite non-negative number (for example `1e-5`), got `{arg}`"
        )),
    }
}

/// One `--input NAME=FILE` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedInput {
    pub name: String,
    pub path: PathBuf,
}

/// Splits `NAME=FILE` at the first `=`: input names may not contain `=`, file paths may.
fn parse_named_input(arg: &str) -> Result<NamedInput, String> {
    match arg.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok(NamedInput {
            name: name.to_string(),
            path: PathBuf::from(path),
        }),
        _ => Err(format!(
            "expected NAME=FILE (for example `image=digit.npy`), got `{arg}`"
        )),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The Cranelift JIT (`sinter-jit`): native SIMD code, compiled per input shape.
    Jit,
    /// The reference interpreter (`sinter-ref`): slow, obviously correct.
    Reference,
}

/// The flags that choose and configure the engine, shared by `run`, `check` and `bench`.
#[derive(Clone, Copy, Debug, Args)]
pub struct EngineArgs {
    /// Which engine runs the model.
    #[arg(long, value_enum, default_value_t = Backend::Jit)]
    pub backend: Backend,
    /// Threads for the JIT's parallel loops (default: every core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Run the graph as imported, without the graph optimizer (on either backend).
    #[arg(long)]
    pub no_opt: bool,
}

impl EngineArgs {
    pub fn engine_options(&self) -> crate::commands::EngineOptions {
        crate::commands::EngineOptions {
            backend: self.backend,
            threads: self.threads.map(usize::from),
            dumps: false,
            optimize: !self.no_opt,
        }
    }
}

impl RunArgs {
    pub fn engine_options(&self) -> crate::commands::EngineOptions {
        self.engine.engine_options()
    }
}

impl CheckArgs {
    pub fn engine_options(&self) -> crate::commands::EngineOptions {
        self.engine.engine_options()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn named_input_splits_at_first_equals() {
        assert_eq!(
            parse_named_input("x=a=b.npy"),
            Ok(NamedInput {
                name: "x".to_string(),
                path: PathBuf::from("a=b.npy")
            })
        );
        assert!(parse_named_input("x.npy").is_err());
        assert!(parse_named_input("=x.npy").is_err());
        assert!(parse_named_input("x=").is_err());
    }

    #[test]
    fn tolerances_are_finite_and_non_negative() {
        assert_eq!(parse_tolerance("1e-5"), Ok(1e-5));
        assert_eq!(parse_tolerance("0"), Ok(0.0));
        for bad in ["-1e-3", "nan", "inf", "x", ""] {
            assert!(parse_tolerance(bad).is_err(), "{bad}");
        }
    }
}
