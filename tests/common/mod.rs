//! What the data-driven ONNX harnesses share (`tests/onnx_node.rs`, `tests/real_models.rs`): running a
//! model on a backend-test data set the way `sinter check` does, and comparing with its outputs.
//!
//! A data set is a directory with `input_0.pb`, `input_1.pb`, ... and `output_0.pb`, ...: the N-th
//! input binds to the N-th ONNX graph input that is not an initializer (the ONNX backend runner's
//! rule), the N-th output file is the expected value of the N-th graph output. [`check_data_set`]
//! imports the model as `sinter check` does, with `sinter_onnx::import_specialized`: shape-like
//! parameters that are graph inputs, and then symbolic dims, are fixed to the data set's values
//! when the model does not import as it is.
//!
//! It then verifies the graph, runs `sinter_ref::run` and compares every output with
//! `sinter_ref::compare`, the rule of `sinter check`.

use sinter_ir::Tensor;
use sinter_onnx::{ImportError, Specialization, SpecializeError, Specialized};
use sinter_ref::compare::compare;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use sinter_ref::compare::Tolerance;

/// Reads a serialized TensorProto; external data would be resolved next to it.
pub fn read_pb(path: &Path) -> Result<Tensor, String> {
    let describe = |err: &dyn std::fmt::Display| format!("{}: {err}", path.display());
    let bytes = std::fs::read(path).map_err(|err| describe(&err))?;
    sinter_onnx::decode_tensor(&bytes, path.parent().unwrap_or(Path::new(".")))
        .map_err(|err| describe(&err))
}

/// `<stem>_0.pb`, `<stem>_1.pb`, ... in `dir`, up to the first missing number.
pub fn numbered_files(dir: &Path, stem: &str) -> Vec<PathBuf> {
    (0..)
        .map(|idx| dir.join(format!("{stem}_{idx}.pb")))
        .take_while(|path| path.is_file())
        .collect()
}

/// An import error as one line; unsupported nodes as `unsupported: <op> (node `<name>`): <reason>`.
pub fn describe_import_error(err: &ImportError, stage: &str) -> String {
    match err {
        ImportError::Unsupported(nodes) => {
            let nodes: Vec<String> = nodes
                .nodes
                .iter()
                .map(|node| {
                    format!(
                        "{} (node `{}`): {}",
                        node.op_type, node.node_name, node.reason
                    )
                })
                .collect();
            format!("unsupported{stage}: {}", nodes.join("; "))
        }
        other => format!("import{stage}: {other}"),
    }
}

/// Imports `model_path` as `sinter check` does (see the module doc), runs it on the data set in
/// `data_dir` and compares each output within `tolerance`. The error is one line (the reason the
/// node suite's blessing records) followed by details.
pub fn check_data_set(
    model_path: &Path,
    data_dir: &Path,
    tolerance: Tolerance,
) -> Result<Specialization, String> {
    let loaded = sinter_onnx::load_model(model_path).map_err(|err| format!("decode: {err}"))?;
    let positional_inputs = sinter_onnx::positional_inputs(&loaded.model);
    let input_paths = numbered_files(data_dir, "input");
    if input_paths.len() > positional_inputs.len() {
        return Err(format!(
            "harness: {} input files for {} model inputs",
            input_paths.len(),
            positional_inputs.len()
        ));
    }
    let input_values = input_paths
        .iter()
        .zip(&positional_inputs)
        .map(|(path, name)| Ok((name.to_string(), read_pb(path)?)))
        .collect::<Result<BTreeMap<String, Tensor>, String>>()?;

    let mut value_of = |name: &str| Ok(input_values.get(name).cloned());
    let Specialized {
        graph,
        specialization,
    } = sinter_onnx::import_specialized(&loaded, &mut value_of).map_err(|err| match err {
        SpecializeError::Import {
            error,
            inputs_fixed,
        } => describe_import_error(&error, if inputs_fixed { " (inputs fixed)" } else { "" }),
        other => format!("harness: {other}"),
    })?;
    if let Err(problems) = sinter_ir::verify(&graph) {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(format!("import: invalid graph: {}", problems.join("; ")));
    }

    // Inputs the importer fixed or dropped as unused are not graph inputs any more.
    let graph_inputs: BTreeSet<&str> = graph
        .input_signature()
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let inputs: Vec<(&str, Tensor)> = input_values
        .iter()
        .filter(|(name, _)| graph_inputs.contains(name.as_str()))
        .map(|(name, tensor)| (name.as_str(), tensor.clone()))
        .collect();
    let outputs = sinter_ref::run(&graph, &inputs).map_err(|err| format!("run: {err}"))?;

    let expected_paths = numbered_files(data_dir, "output");
    if expected_paths.len() != outputs.len() {
        return Err(format!(
            "run: the graph has {} outputs, the case expects {}",
            outputs.len(),
            expected_paths.len()
        ));
    }
    let mut problems = Vec::new();
    for ((name, actual), path) in outputs.iter().zip(&expected_paths) {
        let expected = read_pb(path)?;
        let comparison = compare(actual, &expected, tolerance);
        if !comparison.matches() {
            problems.push(format!("output `{name}`: {comparison}"));
        }
    }
    if problems.is_empty() {
        Ok(specialization)
    } else {
        Err(format!("numeric mismatch: {}", problems.join("; ")))
    }
}
