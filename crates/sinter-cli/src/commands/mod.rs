//! The subcommands, one module each, and what they share: loading a model file and verifying it.
//!
//! Commands write their results to a `Write` handed in by `execute` (stdout in the binary), so
//! broken pipes surface as errors instead of panics in `println!`.

mod dump;
mod run;

use crate::args::Command;
use anyhow::{bail, Context, Result};
use sinter_ir::text::{parse_graph, ParseOptions};
use sinter_ir::Graph;
use std::fmt;
use std::io::{self, Write};
use std::path::Path;

/// A feature that a later issue will add (ONNX import, the JIT backend). `main` exits with code 2 for
/// it, so a script can tell "not yet" from a failure.
#[derive(Debug)]
pub struct NotAvailable(pub String);

impl fmt::Display for NotAvailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotAvailable {}

/// Runs one subcommand, writing its results to stdout.
pub fn execute(command: Command) -> Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match command {
        Command::Dump(args) => dump::dump(&args, &mut out)?,
        Command::Run(args) => run::run(&args, &mut out)?,
    }
    out.flush()?;
    Ok(())
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

/// Loads a model file into a verified graph. `.onnx` files are refused with [`NotAvailable`]; every
/// other path is read as `.sir` text, with external weights resolved next to the file.
pub fn load_model(path: &Path) -> Result<Graph> {
    let is_onnx = path
        .extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| ext.eq_ignore_ascii_case("onnx"));
    if is_onnx {
        return Err(NotAvailable(format!(
            "ONNX import is not available yet (`{}`); sinter reads `.sir` models for now",
            path.display()
        ))
        .into());
    }
    let graph = parse_sir(path)?;
    verify_graph(&graph, path)?;
    Ok(graph)
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
