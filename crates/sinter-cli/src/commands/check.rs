//! `sinter check`: run a model on an ONNX backend-test data set and compare with the expected outputs.
//!
//! The data set is a directory with `input_0.pb`, `input_1.pb`, ... and `output_0.pb`, ...: the N-th
//! input file binds to the model's N-th positional input (`Model::positional_inputs`), the N-th output
//! file is the expected value of the N-th graph output. The numbering must have no gaps, and the
//! number of output files must equal the number of graph outputs, so a data set that does not fit the
//! model is an error rather than a partial check.
//!
//! An ONNX model whose shape-like parameters (a Reshape target, reduction axes) are graph inputs is
//! imported with those inputs fixed to the data set's values, since the IR keeps such parameters as
//! attributes; a model that still does not import is imported with the symbolic dims of its inputs
//! fixed to the data set's sizes, since the IR has no dim expressions (`batch * heads`). A note names
//! what was fixed (see `super::load_model_with_inputs`). Each output gets one line with its verdict and worst errors (see
//! `sinter_ref::compare`). The command returns [`Outcome::Mismatch`] when some output differs; every
//! other problem is an error, which `main` turns into exit code 2 ("could not compare") for this
//! command.

use super::engine::Engine;
use super::run::LoadedInput;
use super::{load_model_with_inputs, Outcome};
use crate::args::CheckArgs;
use crate::pb::read_pb;
use anyhow::{bail, Context, Result};
use sinter_ref::compare::{compare, Tolerance};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub fn check(args: &CheckArgs, out: &mut impl Write) -> Result<Outcome> {
    let dir = &args.dataset_dir;
    if !dir.is_dir() {
        bail!("data set `{}` is not a directory", dir.display());
    }
    let input_paths = numbered_files(dir, "input")?;
    let output_paths = numbered_files(dir, "output")?;
    // Shape-like inputs that the IR needs as constants are fixed to the data set's values.
    let model = load_model_with_inputs(&args.model, &mut |_, position| match position
        .and_then(|input_idx| input_paths.get(input_idx))
    {
        Some(path) => read_pb(path).map(Some),
        None => Ok(None),
    })?;
    let mut lines: Vec<String> = model.import_notes();

    if input_paths.len() > model.positional_inputs.len() {
        bail!(
            "`{}` holds {} input files, but the model takes {} input{}",
            dir.display(),
            input_paths.len(),
            model.positional_inputs.len(),
            if model.positional_inputs.len() == 1 {
                ""
            } else {
                "s"
            }
        );
    }
    let missing = model
        .positional_inputs
        .iter()
        .enumerate()
        .skip(input_paths.len())
        .find(|(_, name)| model.has_input(name));
    if let Some((input_idx, name)) = missing {
        bail!(
            "`{}` has no `input_{input_idx}.pb` for model input `{name}`",
            dir.display()
        );
    }
    let mut inputs = Vec::new();
    for (path, name) in input_paths.into_iter().zip(&model.positional_inputs) {
        // An ONNX input that nothing uses may have been dropped by the importer; its file is then
        // read (so a broken file is still reported) but not passed on.
        let tensor = read_pb(&path).with_context(|| format!("input `{name}`"))?;
        if model.has_input(name) {
            inputs.push(LoadedInput {
                name: name.clone(),
                path: Some(path),
                tensor,
            });
        }
    }
    let n_outputs = model.graph.outputs().len();
    if output_paths.len() != n_outputs {
        bail!(
            "`{}` holds {} expected output files, but the model has {n_outputs} output{}",
            dir.display(),
            output_paths.len(),
            if n_outputs == 1 { "" } else { "s" }
        );
    }
    let expected = output_paths
        .iter()
        .map(|path| read_pb(path))
        .collect::<Result<Vec<_>>>()?;

    let engine = Engine::new(&model, args.engine_options())?;
    let outputs = engine.run(&inputs)?;
    let tolerance = Tolerance {
        rtol: args.rtol,
        atol: args.atol,
    };
    let mut n_matching = 0;
    for (output_idx, ((name, actual), expected)) in outputs.iter().zip(&expected).enumerate() {
        let comparison = compare(actual, expected, tolerance);
        let verdict = if comparison.matches() {
            n_matching += 1;
            "ok  "
        } else {
            "FAIL"
        };
        lines.push(format!(
            "{verdict} output {output_idx} `{name}` {}: {comparison}",
            actual.ty()
        ));
    }
    lines.push(format!(
        "{n_matching} of {n_outputs} outputs match (rtol {}, atol {})",
        args.rtol, args.atol
    ));
    let outcome = if n_matching == n_outputs {
        Outcome::Success
    } else {
        Outcome::Mismatch
    };
    // The verdict is known; a reader that closed the pipe early does not change it.
    match write_lines(out, &lines) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(outcome),
    }
}

fn write_lines(out: &mut impl Write, lines: &[String]) -> io::Result<()> {
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// The files `<stem>_0.pb`, `<stem>_1.pb`, ... in `dir`, in order. A gap in the numbering is an
/// error: it means a file is missing, and binding the rest by position would shift them.
fn numbered_files(dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    let prefix = format!("{stem}_");
    let mut by_idx = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read `{}`", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read `{}`", dir.display()))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let idx = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".pb"))
            // Canonical decimal only, so `input_01.pb` cannot stand in for `input_1.pb`.
            .filter(|digits| {
                !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && (*digits == "0" || !digits.starts_with('0'))
            })
            .and_then(|digits| digits.parse::<usize>().ok());
        if let Some(idx) = idx {
            by_idx.insert(idx, entry.path());
        }
    }
    for (position, &idx) in by_idx.keys().enumerate() {
        if position != idx {
            bail!(
                "`{}` has no `{stem}_{position}.pb`, but has `{stem}_{idx}.pb`",
                dir.display()
            );
        }
    }
    Ok(by_idx.into_values().collect())
}
