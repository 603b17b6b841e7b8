//! The command line, declared with clap's derive API.
//!
//! Flags that later issues give more values (`--backend jit`, `--format json`, `.onnx` models) are
//! already accepted where the interface in DESIGN.md promises them, so scripts written today keep
//! working; the commands answer "not available yet" for the parts that do not exist.

use clap::{Args, Parser, Subcommand, ValueEnum};
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
    /// Run a model on inputs from `.npy` files and print (and optionally save) its outputs.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The model: a `.sir` file.
    pub model: PathBuf,
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
pub enum DumpFormat {
    /// The `.sir` text format; parsing the output gives the same graph back.
    Text,
    /// Graphviz DOT, for `dot -Tsvg`.
    Dot,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The model: a `.sir` file.
    pub model: PathBuf,
    /// A graph input from a `.npy` file (C order), as `NAME=FILE`. Repeat for each input.
    #[arg(long = "input", value_name = "NAME=FILE", value_parser = parse_named_input)]
    pub inputs: Vec<NamedInput>,
    /// A directory holding `<input name>.npy` for each graph input not given with `--input` (names
    /// made file-safe as for outputs: characters other than letters, digits, `_`, `-` and `.` become `_`).
    #[arg(long = "inputs", value_name = "DIR")]
    pub input_dir: Option<PathBuf>,
    /// Write each output to `DIR/<output name>.npy` (names made file-safe as above).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Which engine runs the model.
    #[arg(long, value_enum, default_value_t = Backend::Reference)]
    pub backend: Backend,
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
}
