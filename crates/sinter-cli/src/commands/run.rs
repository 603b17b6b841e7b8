//! `sinter run`: run a model on `.npy` or `.pb` inputs and report its outputs.
//!
//! Inputs come from `--input NAME=FILE` and, for graph inputs not named there, from `--inputs DIR`:
//! for an ONNX model `DIR/input_N.pb` for its N-th non-initializer input (the ONNX backend-test
//! layout), otherwise `DIR/<name>.npy`. Checking them against the graph's signature is the
//! interpreter's job (`sinter_ref::run`), whose errors name the input and both types; this module only
//! adds which file a tensor came from. Each output is printed as name, type and a short summary, and
//! with `--output-dir` written to `output_N.pb` (N its position) and `<name>.npy`, names made
//! file-safe.

use super::engine::Engine;
use super::{load_model_with_inputs, read_tensor_file, Model};
use crate::args::{NamedInput, RunArgs};
use crate::npy::write_npy;
use crate::pb::write_pb;
use anyhow::{bail, Context, Result};
use sinter_ir::{DType, Tensor, TensorData};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many leading elements the summary of an output shows.
const N_SUMMARY_VALUES: usize = 8;

pub fn run(args: &RunArgs, out: &mut impl Write) -> Result<()> {
    let sources = args.input_sources();
    let model = load_model_with_inputs(&args.model, &mut |name, position| {
        fixed_input_value(&sources, name, position)
    })?;
    for note in model.import_notes() {
        writeln!(out, "{note}")?;
    }
    let inputs = collect_inputs(&sources, &model)?;
    let engine = Engine::new(&model, args.engine_options())?;
    let outputs = engine.run(&inputs)?;
    for (name, tensor) in &outputs {
        write_summary(out, name, tensor)?;
    }
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        let mut used_file_names = BTreeSet::new();
        for (output_idx, (name, tensor)) in outputs.iter().enumerate() {
            let pb_path = dir.join(format!("output_{output_idx}.pb"));
            write_pb(&pb_path, name, tensor)?;
            writeln!(out, "wrote {}", pb_path.display())?;
            let npy_path = dir.join(unique_file_name(name, &mut used_file_names));
            write_npy(&npy_path, tensor)?;
            writeln!(out, "wrote {}", npy_path.display())?;
        }
    }
    Ok(())
}

/// Where input tensors come from: `--input NAME=FILE` files and an `--inputs DIR`.
pub(super) struct InputSources<'a> {
    pub named: &'a [NamedInput],
    pub dir: Option<&'a Path>,
}

impl RunArgs {
    fn input_sources(&self) -> InputSources<'_> {
        InputSources {
            named: &self.inputs,
            dir: self.input_dir.as_deref(),
        }
    }
}

/// The value of an ONNX input the importer needs at import, from `--input` or `--inputs DIR`.
pub(super) fn fixed_input_value(
    sources: &InputSources,
    name: &str,
    position: Option<usize>,
) -> Result<Option<Tensor>> {
    if let Some(named) = sources.named.iter().find(|named| named.name == name) {
        return read_tensor_file(&named.path).map(Some);
    }
    let Some(dir) = sources.dir else {
        return Ok(None);
    };
    match find_input_file(dir, name, position) {
        Ok(path) => read_tensor_file(&path).map(Some),
        Err(_) => Ok(None),
    }
}

/// A loaded input tensor and where it came from.
pub(super) struct LoadedInput {
    pub name: String,
    /// The file it was read from; `None` for generated inputs (`sinter bench` without `--inputs`).
    pub path: Option<PathBuf>,
    pub tensor: Tensor,
}

/// Loads `--input` files, then the files in `--inputs DIR` for graph inputs not given explicitly.
/// Values for inputs the model file has but the graph does not take (fixed at import, or dropped as
/// unused) are not passed on; other names the graph does not have are, so the interpreter reports
/// them with the list of known names.
pub(super) fn collect_inputs(sources: &InputSources, model: &Model) -> Result<Vec<LoadedInput>> {
    let mut inputs: Vec<LoadedInput> = Vec::new();
    for (named_idx, named) in sources.named.iter().enumerate() {
        if sources.named[..named_idx]
            .iter()
            .any(|earlier| earlier.name == named.name)
        {
            bail!("input `{}` is given twice", named.name);
        }
        if model.is_absorbed_input(&named.name) {
            continue;
        }
        let tensor =
            read_tensor_file(&named.path).with_context(|| format!("input `{}`", named.name))?;
        inputs.push(LoadedInput {
            name: named.name.clone(),
            path: Some(named.path.clone()),
            tensor,
        });
    }
    if let Some(dir) = sources.dir {
        if !dir.is_dir() {
            bail!("`--inputs {}` is not a directory", dir.display());
        }
        for (name, _) in model.graph.input_signature() {
            if sources.named.iter().any(|named| named.name == name) {
                continue;
            }
            let position = if model.is_onnx {
                model.positional_inputs.iter().position(|n| n == name)
            } else {
                None
            };
            let path = find_input_file(dir, name, position).map_err(|tried| {
                let tried: Vec<String> = tried
                    .iter()
                    .map(|path| format!("`{}`", path.display()))
                    .collect();
                anyhow::anyhow!(
                    "input `{name}` is not given with `--input` and {} does not exist",
                    tried.join(" or ")
                )
            })?;
            let tensor = read_tensor_file(&path).with_context(|| format!("input `{name}`"))?;
            inputs.push(LoadedInput {
                name: name.to_string(),
                path: Some(path),
                tensor,
            });
        }
    }
    Ok(inputs)
}

/// The file in `dir` that holds graph input `name`: `input_<position>.pb` (the ONNX backend-test
/// layout, for an ONNX model's positional input) when it exists, else `<name>.npy`. `Err` lists the
/// files tried.
fn find_input_file(
    dir: &Path,
    name: &str,
    position: Option<usize>,
) -> Result<PathBuf, Vec<PathBuf>> {
    let mut tried = Vec::new();
    if let Some(position) = position {
        let pb_path = dir.join(format!("input_{position}.pb"));
        if pb_path.is_file() {
            return Ok(pb_path);
        }
        tried.push(pb_path);
    }
    let npy_path = dir.join(format!("{}.npy", file_safe_name(name)));
    if npy_path.is_file() {
        return Ok(npy_path);
    }
    tried.push(npy_path);
    Err(tried)
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
