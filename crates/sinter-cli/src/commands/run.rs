//! `sinter run`: run a model on `.npy` inputs and report its outputs.
//!
//! Inputs come from `--input NAME=FILE` and, for graph inputs not named there, from `--inputs DIR` as
//! `DIR/<name>.npy`. Checking them against the graph's signature is the interpreter's job
//! (`sinter_ref::run`), whose errors name the input and both types; this module only adds which file a
//! tensor came from. Each output is printed as name, type and a short summary, and with `--output-dir`
//! written to `<name>.npy`, names made file-safe.

use super::{load_model, NotAvailable};
use crate::args::{Backend, RunArgs};
use crate::npy::{read_npy, write_npy};
use anyhow::{bail, Context, Result};
use sinter_ir::{DType, Tensor, TensorData};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many leading elements the summary of an output shows.
const N_SUMMARY_VALUES: usize = 8;

pub fn run(args: &RunArgs, out: &mut impl Write) -> Result<()> {
    if args.backend == Backend::Jit {
        return Err(NotAvailable(
            "the JIT backend is not available yet; use `--backend reference`".to_string(),
        )
        .into());
    }
    let graph = load_model(&args.model)?;
    let inputs = collect_inputs(args, &graph)?;
    let input_refs: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|input| (input.name.as_str(), input.tensor.clone()))
        .collect();
    let outputs = sinter_ref::run(&graph, &input_refs).map_err(|err| {
        let mut message = err.to_string();
        if let Some(source) = input_source_of(&err, &inputs) {
            message.push_str(&format!(" (from `{}`)", source.display()));
        }
        if let sinter_ref::RunError::MissingInput { name, .. } = &err {
            message.push_str(&format!(
                "; give it with `--input {name}=FILE.npy` or `--inputs DIR`"
            ));
        }
        anyhow::anyhow!(message)
    })?;
    for (name, tensor) in &outputs {
        write_summary(out, name, tensor)?;
    }
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        let mut used_file_names = BTreeSet::new();
        for (name, tensor) in &outputs {
            let path = dir.join(unique_file_name(name, &mut used_file_names));
            write_npy(&path, tensor)?;
            writeln!(out, "wrote {}", path.display())?;
        }
    }
    Ok(())
}

/// A loaded input tensor and the file it came from.
struct LoadedInput {
    name: String,
    path: PathBuf,
    tensor: Tensor,
}

/// Loads `--input` files, then `--inputs DIR/<name>.npy` for graph inputs not given explicitly.
/// Names the graph does not have are passed through so the interpreter reports them with the list of
/// known names.
fn collect_inputs(args: &RunArgs, graph: &sinter_ir::Graph) -> Result<Vec<LoadedInput>> {
    let mut inputs: Vec<LoadedInput> = Vec::new();
    for named in &args.inputs {
        if inputs.iter().any(|input| input.name == named.name) {
            bail!("input `{}` is given twice", named.name);
        }
        let tensor = read_npy(&named.path).with_context(|| format!("input `{}`", named.name))?;
        inputs.push(LoadedInput {
            name: named.name.clone(),
            path: named.path.clone(),
            tensor,
        });
    }
    if let Some(dir) = &args.input_dir {
        if !dir.is_dir() {
            bail!("`--inputs {}` is not a directory", dir.display());
        }
        for (name, _) in graph.input_signature() {
            if inputs.iter().any(|input| input.name == name) {
                continue;
            }
            let path = dir.join(format!("{}.npy", file_safe_name(name)));
            if !path.exists() {
                bail!(
                    "input `{name}` is not given with `--input` and `{}` does not exist",
                    path.display()
                );
            }
            let tensor = read_npy(&path).with_context(|| format!("input `{name}`"))?;
            inputs.push(LoadedInput {
                name: name.to_string(),
                path,
                tensor,
            });
        }
    }
    Ok(inputs)
}

/// The file an input named in a run error was loaded from.
fn input_source_of<'a>(err: &sinter_ref::RunError, inputs: &'a [LoadedInput]) -> Option<&'a Path> {
    let name = match err {
        sinter_ref::RunError::InputMismatch { name, .. }
        | sinter_ref::RunError::UnknownInput { name, .. } => name,
        _ => return None,
    };
    inputs
        .iter()
        .find(|input| &input.name == name)
        .map(|input| input.path.as_path())
}

/// `name` with every character other than ASCII letters, digits, `_`, `-` and `.` replaced by `_`, and
/// a leading `.` (hidden files, `..`) or an empty name prefixed with `_`.
pub fn file_safe_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() || safe.starts_with('.') {
        format!("_{safe}")
    } else {
        safe
    }
}

/// `<file-safe name>.npy`, with `_2`, `_3`, ... appended when two output names map to the same file.
fn unique_file_name(name: &str, used: &mut BTreeSet<String>) -> String {
    let stem = file_safe_name(name);
    let mut candidate = format!("{stem}.npy");
    let mut suffix = 2;
    while used.contains(&candidate) {
        candidate = format!("{stem}_{suffix}.npy");
        suffix += 1;
    }
    used.insert(candidate.clone());
    candidate
}

/// Prints `name: type`, the first few values, and for a vector or a `[1, N]` matrix the argmax.
fn write_summary(out: &mut impl Write, name: &str, tensor: &Tensor) -> Result<()> {
    writeln!(out, "{name}: {}", tensor.ty())?;
    let n_shown = tensor.len().min(N_SUMMARY_VALUES);
    let shown: Vec<String> = (0..n_shown)
        .map(|idx| format_element(tensor.data(), idx))
        .collect();
    let rest = if tensor.len() > n_shown {
        format!(", ... ({} values)", tensor.len())
    } else {
        String::new()
    };
    writeln!(out, "  values: [{}{rest}]", shown.join(", "))?;
    let is_vector = tensor.rank() == 1 || (tensor.rank() == 2 && tensor.shape()[0] == 1);
    if is_vector && tensor.dtype().is_numeric() {
        if let Some(max_idx) = argmax(tensor) {
            writeln!(
                out,
                "  argmax: {max_idx} ({})",
                format_element(tensor.data(), max_idx)
            )?;
        }
    }
    Ok(())
}

/// The index of the first largest element, ignoring NaNs; `None` when there is no non-NaN element.
fn argmax(tensor: &Tensor) -> Option<usize> {
    let values = tensor.to_f64_vec();
    let mut best: Option<(usize, f64)> = None;
    for (idx, &value) in values.iter().enumerate() {
        if value.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, best_value)| value > best_value) {
            best = Some((idx, value));
        }
    }
    best.map(|(idx, _)| idx)
}

/// One element for humans: floats with 4 decimals, or in scientific notation when tiny or huge.
fn format_element(data: &TensorData, idx: usize) -> String {
    match data {
        TensorData::F32(v) => format_float(f64::from(v[idx])),
        TensorData::F64(v) => format_float(v[idx]),
        TensorData::Bool(v) => v[idx].to_string(),
        _ if data.dtype() == DType::I64 => data.get_i64(idx).to_string(),
        _ => format!("{}", data.get_f64(idx)),
    }
}

fn format_float(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || !value.is_finite() || (1e-3..1e6).contains(&magnitude) {
        format!("{value:.4}")
    } else {
        format!("{value:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_safe_names() {
        assert_eq!(file_safe_name("probs"), "probs");
        assert_eq!(file_safe_name("prob:0"), "prob_0");
        assert_eq!(file_safe_name("a/b\\c d"), "a_b_c_d");
        assert_eq!(file_safe_name(".."), "_..");
        assert_eq!(file_safe_name(""), "_");
        assert_eq!(file_safe_name("x.y-z"), "x.y-z");
    }

    #[test]
    fn colliding_output_names_get_distinct_files() {
        let mut used = BTreeSet::new();
        assert_eq!(unique_file_name("a:0", &mut used), "a_0.npy");
        assert_eq!(unique_file_name("a/0", &mut used), "a_0_2.npy");
        assert_eq!(unique_file_name("a_0", &mut used), "a_0_3.npy");
    }

    #[test]
    fn argmax_takes_first_maximum_and_skips_nan() {
        let t = Tensor::from_vec(vec![1, 5], vec![0.1f32, f32::NAN, 0.7, 0.7, 0.2]).unwrap();
        assert_eq!(argmax(&t), Some(2));
        let t = Tensor::from_vec(vec![2], vec![f32::NAN, f32::NAN]).unwrap();
        assert_eq!(argmax(&t), None);
    }

    #[test]
    fn summary_shows_values_and_argmax() {
        let t = Tensor::from_vec(
            vec![1, 10],
            (0..10).map(|i| (i as f32 - 3.0).abs() * 1e-4).collect(),
        )
        .unwrap();
        let mut out = Vec::new();
        write_summary(&mut out, "probs", &t).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "probs: f32[1,10]\n  values: [3.000e-4, 2.000e-4, 1.000e-4, 0.0000, 1.000e-4, 2.000e-4, \
             3.000e-4, 4.000e-4, ... (10 values)]\n  argmax: 9 (6.000e-4)\n"
        );
        let t = Tensor::from_vec(vec![2, 2], vec![1i64, -5, 7, 2]).unwrap();
        let mut out = Vec::new();
        write_summary(&mut out, "idx", &t).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "idx: i64[2,2]\n  values: [1, -5, 7, 2]\n"
        );
    }
}
