//! The subcommands, one module each, and what they share: loading a model file (`.sir` text or an
//! `.onnx` file through the importer) and verifying it, and reading tensor files by their extension.
//!
//! Commands write their results to a `Write` handed in by `execute` (stdout in the binary), so
//! broken pipes surface as errors instead of panics in `println!`.

mod bench;
mod check;
mod dump;
mod engine;
mod run;

pub use engine::EngineOptions;

use crate::args::Command;
use crate::npy::read_npy;
use crate::pb::read_pb;
use anyhow::{bail, Context, Result};
use sinter_ir::text::{parse_graph, ParseOptions};
use sinter_ir::{Dim, Graph, Tensor};
use sinter_onnx::{import_specialized, ImportError, Specialization, SpecializeError, Specialized};
use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Write};
use std::path::Path;

/// How a command that ran to completion ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// `sinter check`: some output differs from its expected value.
    Mismatch,
}

/// A feature that a later issue will add (the JIT backend, later pipeline stages, ONNX ops the importer
/// does not support). `main` exits with code 2 for it, so a script can tell "not yet" from a failure.
#[derive(Debug)]
pub struct NotAvailable(pub String);

impl fmt::Display for NotAvailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotAvailable {}

/// Runs one subcommand, writing its results to stdout.
pub fn execute(command: Command) -> Result<Outcome> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let is_check = matches!(command, Command::Check(_));
    let outcome = match command {
        Command::Dump(args) => dump::dump(&args, &mut out).map(|()| Outcome::Success)?,
        Command::Run(args) => run::run(&args, &mut out).map(|()| Outcome::Success)?,
        Command::Check(args) => check::check(&args, &mut out)?,
        Command::Bench(args) => bench::bench(&args, &mut out).map(|()| Outcome::Success)?,
    };
    match out.flush() {
        // `check` has its verdict; a reader that closed the pipe early does not change it.
        Err(err) if is_check && err.kind() == io::ErrorKind::BrokenPipe => Ok(outcome),
        flushed => flushed.map(|()| outcome).map_err(Into::into),
    }
}

/// Whether `err` is, or was caused by, a [`NotAvailable`].
pub fn is_not_available(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<NotAvailable>())
}

/// Whether `err` was caused by writing to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io_err| io_err.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// A verified graph and how positional inputs (`input_N.pb`) bind to its inputs.
pub struct Model {
    pub graph: Graph,
    /// The input names that `input_0.pb`, `input_1.pb`, ... bind to. For an ONNX model these are the
    /// ONNX graph inputs that are not initializers, in the model's order, which is how the ONNX backend
    /// test feeds inputs; the importer may drop an input that nothing uses or fix one at import (see
    /// `fixed_inputs`), so a name here need not be an input of `graph`. For a `.sir` model they are the
    /// graph's inputs in order.
    pub positional_inputs: Vec<String>,
    /// ONNX graph inputs and symbolic dims fixed at import to the given values
    /// (`sinter_onnx::import_specialized`). Empty when the model imported as it is.
    pub specialization: Specialization,
    pub is_onnx: bool,
}

impl Model {
    /// Whether `graph` has an input called `name`.
    pub fn has_input(&self, name: &str) -> bool {
        self.graph
            .input_signature()
            .iter()
            .any(|(input_name, _)| *input_name == name)
    }

    /// Whether `name` is an input of the model file that `graph` does not take (dropped as unused or
    /// fixed at import), so a value given for it is not passed on.
    pub fn is_absorbed_input(&self, name: &str) -> bool {
        !self.has_input(name) && self.positional_inputs.iter().any(|n| n == name)
    }

    /// The notes on what was fixed at import: symbolic dims, then inputs.
    pub fn import_notes(&self) -> Vec<String> {
        self.fixed_dims_note()
            .into_iter()
            .chain(self.fixed_inputs_note())
            .collect()
    }

    /// A note naming the symbolic dims fixed at import, if any.
    fn fixed_dims_note(&self) -> Option<String> {
        let fixed_dims = &self.specialization.fixed_dims;
        if fixed_dims.is_empty() {
            return None;
        }
        let sizes: Vec<String> = fixed_dims
            .iter()
            .map(|(param, size)| format!("`{param}` = {size}"))
            .collect();
        Some(format!(
            "note: symbolic dims fixed at import to the sizes of the given inputs ({}): the model \
             does not import with them symbolic",
            sizes.join(", ")
        ))
    }

    /// A note naming the inputs fixed at import, if any.
    fn fixed_inputs_note(&self) -> Option<String> {
        let fixed_inputs = &self.specialization.fixed_inputs;
        if fixed_inputs.is_empty() {
            return None;
        }
        let names: Vec<String> = fixed_inputs.iter().map(|n| format!("`{n}`")).collect();
        let plural = fixed_inputs.len() > 1;
        Some(if plural {
            format!(
                "note: inputs {} fixed at import to the given values: the IR needs them as constants",
                names.join(", ")
            )
        } else {
            format!(
                "note: input {} fixed at import to the given value: the IR needs it as a constant",
                names.join(", ")
            )
        })
    }
}

/// Where [`load_model_with_inputs`] gets the value of an ONNX graph input that the importer needs at
/// import: called with the input's name and its position among `Model::positional_inputs`; `None`
/// when the caller has no value for it.
pub type InputValueSource<'a> = dyn FnMut(&str, Option<usize>) -> Result<Option<Tensor>> + 'a;

/// Whether `path` names a file of extension `ext` (ASCII case-insensitive).
fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|found| found.to_str())
        .is_some_and(|found| found.eq_ignore_ascii_case(ext))
}

/// Loads a model file into a verified graph: `.onnx` files through the ONNX importer, every other
/// path as `.sir` text, with external weights resolved next to the file.
pub fn load_model(path: &Path) -> Result<Model> {
    load_model_with_inputs(path, &mut |_, _| Ok(None))
}

/// Like [`load_model`], and an ONNX model that does not import as it is gets specialised on the
/// values `input_value` gives (`sinter_onnx::import_specialized`: shape-like parameters that are
/// graph inputs fixed to their values, then symbolic dims fixed to their sizes); what was fixed is in
/// `Model::specialization`.
pub fn load_model_with_inputs(
    path: &Path,
    input_value: &mut InputValueSource<'_>,
) -> Result<Model> {
    if has_extension(path, "onnx") {
        return load_onnx(path, input_value);
    }
    let graph = parse_sir(path)?;
    verify_graph(&graph, path)?;
    let positional_inputs = graph
        .input_signature()
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    Ok(Model {
        graph,
        positional_inputs,
        specialization: Specialization::default(),
        is_onnx: false,
    })
}

/// Decodes and imports an ONNX model. The importer's error lists every node it cannot import; a
/// model that is valid but uses ops or features sinter does not support yet is [`NotAvailable`], so
/// `main` exits with 2 for it rather than 1.
fn load_onnx(path: &Path, input_value: &mut InputValueSource<'_>) -> Result<Model> {
    let loaded = sinter_onnx::load_model(path)?;
    let positional_inputs = sinter_onnx::positional_inputs(&loaded.model);
    let mut value_of = |name: &str| {
        let position = positional_inputs.iter().position(|n| n == name);
        input_value(name, position).map_err(|err| format!("{err:#}"))
    };
    let Specialized {
        graph,
        specialization,
    } = match import_specialized(&loaded, &mut value_of) {
        Ok(specialized) => specialized,
        Err(SpecializeError::Import { error, .. }) => {
            return Err(import_error(path, error));
        }
        Err(other) => return Err(other.into()),
    };
    // The importer builds graphs that verify; checking here turns an importer bug into an error that
    // names the problem instead of a wrong result later.
    verify_graph(&graph, path).context("the ONNX importer produced an invalid graph")?;
    Ok(Model {
        graph,
        positional_inputs,
        specialization,
        is_onnx: true,
    })
}

/// The error for a model that does not import. A model that is valid but uses ops or features
/// sinter does not support yet is [`NotAvailable`], so `main` exits with 2 for it rather than 1.
fn import_error(path: &Path, err: ImportError) -> anyhow::Error {
    let message = format!("cannot import `{}`", path.display());
    match err {
        ImportError::Unsupported(nodes) => {
            let mut text = format!("{message}: {nodes}");
            let needed = nodes.needs_input_values();
            if !needed.is_empty() {
                let names: Vec<String> = needed.iter().map(|n| format!("`{n}`")).collect();
                text.push_str(&format!(
                    "\n(`sinter run` and `sinter check` fix {} at import when given {})",
                    names.join(", "),
                    if needed.len() == 1 {
                        "its value"
                    } else {
                        "their values"
                    }
                ));
            }
            NotAvailable(text).into()
        }
        other => anyhow::Error::new(other).context(message),
    }
}

/// A graph input at a concrete shape: name, dtype, dims.
pub struct SizedInput {
    pub name: String,
    pub dtype: sinter_ir::DType,
    pub shape: Vec<usize>,
}

/// Every graph input at a concrete shape, symbolic dims sized by `dims` (`--dim NAME=SIZE`) and 1 when
/// not given; also the symbols that took that default.
pub fn sized_inputs(
    graph: &Graph,
    dims: &[(String, usize)],
) -> (Vec<SizedInput>, BTreeSet<String>) {
    let mut defaulted = BTreeSet::new();
    let inputs = graph
        .input_signature()
        .into_iter()
        .map(|(name, ty)| {
            let shape = ty
                .shape
                .dims()
                .iter()
                .map(|dim| match dim {
                    Dim::Static(size) => *size,
                    Dim::Sym(symbol) => match dims.iter().find(|(given, _)| given == &**symbol) {
                        Some(&(_, size)) => size,
                        None => {
                            defaulted.insert(symbol.to_string());
                            1
                        }
                    },
                })
                .collect();
            SizedInput {
                name: name.to_string(),
                dtype: ty.dtype,
                shape,
            }
        })
        .collect();
    (inputs, defaulted)
}

/// Reads a tensor file: an ONNX TensorProto if it ends in `.pb`, otherwise a `.npy` file.
pub fn read_tensor_file(path: &Path) -> Result<Tensor> {
    if has_extension(path, "pb") {
        read_pb(path)
    } else {
        read_npy(path)
    }
}

/// Parses a `.sir` file; a syntax error is rendered with the offending line and a caret under the column.
fn parse_sir(path: &Path) -> Result<Graph> {
    let source = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    // `parse_graph` rather than `text::parse_file`: rendering the caret needs the source text.
    let options = ParseOptions {
        base_dir: Some(path.parent().map(Path::to_path_buf).unwrap_or_default()),
    };
    parse_graph(&source, &options).map_err(|err| {
        let rendered = err.render(&source);
        // `render` starts with its own `error: `; `main` already prints one.
        let rendered = rendered.strip_prefix("error: ").unwrap_or(&rendered);
        anyhow::anyhow!("cannot parse `{}`: {}", path.display(), rendered.trim_end())
    })
}

/// Runs the verifier and reports every problem it finds, not only the first.
fn verify_graph(graph: &Graph, path: &Path) -> Result<()> {
    let Err(problems) = sinter_ir::verify(graph) else {
        return Ok(());
    };
    let mut message = format!(
        "`{}` is not a valid graph ({} problem{}):",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in &problems {
        message.push_str(&format!("\n  - {problem}"));
    }
    bail!(message)
}
