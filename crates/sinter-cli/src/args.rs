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
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The model: a `.sir` or `.onnx` file.
    pub model: PathBuf,
    /// Which stage of the pipeline to print: `import` is the graph as read (a `.sir` file parsed, an
    /// `.onnx` file imported); the later stages are not available yet.
    #[arg(long, value_enum, default_value_t = Stage::Import)]
    pub stage: Stage,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DumpFormat::Text)]
    pub format: DumpFormat,
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
    /// After the graph optimizer (not available yet).
    Optimized,
    /// The loop IR (not available yet).
    Loops,
    /// Cranelift IR (not available yet).
    Clif,
    /// Machine code (not available yet).
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
    /// Which engine runs the model.
    #[arg(long, value_enum, default_value_t = Backend::Reference)]
    pub backend: Backend,
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
    /// Which engine runs the model.
    #[arg(long, value_enum, default_value_t = Backend::Reference)]
    pub backend: Backend,
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
    /// The reference interpreter (`sinter-ref`): slow, obviously correct.
    Reference,
    /// The Cranelift JIT (not available yet).
    Jit,
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
