//! What the data-driven conformance harnesses share (`tests/op_fixtures.rs`, `tests/onnx_node.rs`,
//! `tests/real_models.rs`): the two backends every case runs on, the expected-failure manifests, and
//! running a model on a backend-test data set the way `sinter check` does.
//!
//! **Two backends.** Every case is two libtest trials: `<case>` on the reference interpreter
//! (`sinter_ref::run`) and `jit::<case>` on the JIT (`sinter_jit::compile`, then `run`), compared with
//! the same expected data, the same tolerance and the same rule (`sinter_ref::compare`). The JIT is
//! compiled with the default [`sinter_jit::CompileOptions`] (every core, parallel loops); set
//! `SINTER_JIT_THREADS=1` to compile single-threaded kernels instead (both must pass).
//!
//! **Expected failures.** Each suite has manifests of known failures, `case_name<TAB>reason` lines
//! with `#` comments: one for the reference (the node suite's `expected_failures.tsv`) and one for the
//! JIT (`jit_expected_failures.tsv` or similar, beside the suite's data). [`verdict`] applies the
//! stale-entry rule: a listed case that passes fails ("newly passing"), an unlisted failure fails. A
//! case the reference manifest lists is expected to fail on the JIT as well (the JIT cannot pass what
//! does not import), so the JIT manifest lists only cases that pass on the reference and not on the
//! JIT, and [`check_manifest_names`] refuses a JIT entry that the reference manifest also lists.
//! `SINTER_BLESS_FAILURES=1` rewrites the manifests from the failures of the run ([`bless`]).
//!
//! **Data sets.** A data set is a directory with `input_0.pb`, `input_1.pb`, ... and `output_0.pb`,
//! ...: the N-th input binds to the N-th ONNX graph input that is not an initializer (the ONNX
//! backend runner's rule), the N-th output file is the expected value of the N-th graph output.
//! [`check_data_set`] imports the model as `sinter check` does, with
//! `sinter_onnx::import_specialized`: shape-like parameters that are graph inputs, and then symbolic
//! dims, are fixed to the data set's values when the model does not import as it is. It then
//! verifies the graph, runs it on the chosen [`Backend`] and compares every output with
//! `sinter_ref::compare`, the rule of `sinter check`.

// Each harness is its own crate and uses a different part of this module (the op fixtures read no
// `.pb` data sets).
#![allow(dead_code)]

use libtest_mimic::Failed;
use sinter_ir::{Graph, Tensor};
use sinter_onnx::{ImportError, Specialization, SpecializeError, Specialized};
use sinter_ref::compare::compare;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use sinter_ref::compare::Tolerance;

/// The environment variable that turns on rewriting the expected-failure manifests.
pub const BLESS_VAR: &str = "SINTER_BLESS_FAILURES";

/// The environment variable that sets the JIT's thread count (`CompileOptions::threads`).
pub const JIT_THREADS_VAR: &str = "SINTER_JIT_THREADS";

/// The longest reason written by blessing; longer error messages are cut.
const MAX_REASON_CHARS: usize = 300;

/// Whether this run rewrites the manifests (see [`bless`]).
pub fn is_blessing() -> bool {
    std::env::var_os(BLESS_VAR).is_some_and(|value| value != "0")
}

/// Where a case runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Backend {
    /// The reference interpreter, `sinter_ref::run`.
    Reference,
    /// `sinter_jit::compile` and `CompiledModel::run`.
    Jit,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Reference, Backend::Jit];

    /// The libtest name of `case`'s trial on this backend: the case name for the reference,
    /// `jit::<case>` for the JIT, so `cargo test --test X jit::` selects the JIT trials.
    pub fn trial_name(self, case: &str) -> String {
        match self {
            Backend::Reference => case.to_string(),
            Backend::Jit => format!("jit::{case}"),
        }
    }

    /// A name for summaries.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Reference => "reference",
            Backend::Jit => "JIT",
        }
    }

    /// Runs `graph` on `inputs`; the error says which stage failed.
    pub fn run(
        self,
        graph: &Graph,
        inputs: &[(&str, Tensor)],
    ) -> Result<Vec<(String, Tensor)>, String> {
        match self {
            Backend::Reference => {
                sinter_ref::run(graph, inputs).map_err(|err| format!("sinter_ref::run: {err}"))
            }
            Backend::Jit => {
                let options = jit_options()?;
                // A graph with symbolic input dims compiles in `run`, for the inputs' shapes.
                let model = sinter_jit::compile(graph.clone(), &options)
                    .map_err(|err| format!("jit compile: {err}"))?;
                let inputs: Vec<(&str, &Tensor)> = inputs
                    .iter()
                    .map(|(name, tensor)| (*name, tensor))
                    .collect();
                model.run(&inputs).map_err(|err| format!("jit run: {err}"))
            }
        }
    }
}

/// The JIT's options: the defaults, with the thread count of [`JIT_THREADS_VAR`] when it is set.
fn jit_options() -> Result<sinter_jit::CompileOptions, String> {
    let mut options = sinter_jit::CompileOptions::default();
    if let Some(text) = std::env::var_os(JIT_THREADS_VAR) {
        let text = text.to_string_lossy();
        let threads = text
            .parse::<usize>()
            .ok()
            .filter(|&threads| threads > 0)
            .ok_or_else(|| format!("{JIT_THREADS_VAR}={text} is not a positive thread count"))?;
        options.threads = Some(threads);
    }
    Ok(options)
}

/// Parses an expected-failure manifest: `case_name<TAB>reason` lines; `#` starts a comment line.
/// `file_name` names the file in errors.
pub fn parse_expected_failures(
    text: &str,
    file_name: &str,
) -> Result<BTreeMap<String, String>, String> {
    let mut failures = BTreeMap::new();
    for (line_idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, reason)) = line.split_once('\t') else {
            return Err(format!(
                "{file_name} line {}: expected `case_name<TAB>reason`, got `{line}`",
                line_idx + 1
            ));
        };
        if reason.trim().is_empty() {
            return Err(format!(
                "{file_name} line {}: `{name}` has no reason",
                line_idx + 1
            ));
        }
        if failures
            .insert(name.to_string(), reason.to_string())
            .is_some()
        {
            return Err(format!(
                "{file_name} line {}: `{name}` is listed twice",
                line_idx + 1
            ));
        }
    }
    Ok(failures)
}

/// Reads and parses the manifest at `path`; a missing file is an empty manifest only when blessing
/// (which writes it).
pub fn load_expected_failures(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let file_name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    match std::fs::read_to_string(path) {
        Ok(text) => parse_expected_failures(&text, &file_name),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && is_blessing() => {
            Ok(BTreeMap::new())
        }
        Err(err) => Err(format!("cannot read {}: {err}", path.display())),
    }
}

/// A trial's result from a case's outcome and `listed_in`, the manifest that lists the case as an
/// expected failure (its file name, for the message), if any: a listed failure and an unlisted pass
/// succeed, a listed pass fails as newly passing, an unlisted failure fails with its message. When
/// blessing every trial succeeds.
pub fn verdict(outcome: Result<(), String>, listed_in: Option<&str>) -> Result<(), Failed> {
    if is_blessing() {
        return Ok(());
    }
    match (outcome, listed_in) {
        (Ok(()), None) | (Err(_), Some(_)) => Ok(()),
        (Err(message), None) => Err(Failed::from(message)),
        (Ok(()), Some(manifest)) => Err(Failed::from(format!(
            "newly passing: remove it from {manifest}"
        ))),
    }
}

/// The problems of the manifests' names: entries that are not cases, and JIT entries the reference
/// manifest also lists (those are expected to fail on the JIT without an entry).
pub fn check_manifest_names(
    case_names: &BTreeSet<String>,
    reference: Option<(&str, &BTreeMap<String, String>)>,
    jit: (&str, &BTreeMap<String, String>),
) -> Result<(), Failed> {
    if is_blessing() {
        return Ok(());
    }
    let mut problems = Vec::new();
    for (file_name, manifest) in reference.iter().copied().chain([jit]) {
        let unknown: Vec<&String> = manifest
            .keys()
            .filter(|name| !case_names.contains(*name))
            .collect();
        if !unknown.is_empty() {
            problems.push(format!(
                "{file_name} lists names that are not cases: {unknown:?}"
            ));
        }
    }
    if let Some((reference_file, reference)) = reference {
        let doubled: Vec<&String> = jit
            .1
            .keys()
            .filter(|name| reference.contains_key(*name))
            .collect();
        if !doubled.is_empty() {
            problems.push(format!(
                "{} lists cases that {reference_file} lists already (they are expected to fail on \
                 the JIT without an entry): {doubled:?}",
                jit.0
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

/// The single-line reason blessing writes for an error message: whitespace runs (tabs and newlines
/// included) collapse to one space, and long messages are cut.
pub fn reason_of(message: &str) -> String {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > MAX_REASON_CHARS {
        let cut: String = one_line.chars().take(MAX_REASON_CHARS).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}

/// Rewrites the manifest at `path` (with `header` on top) from the cases that ran: `outcomes` maps a
/// case that ran to its error message, or `None` when it passed. A case that still fails keeps its
/// reason (reasons may have been written by hand); a new failure gets its error message; entries of
/// cases that did not run (a name filter skipped them) are kept. Returns the number of entries.
pub fn bless(
    path: &Path,
    header: &str,
    previous: &BTreeMap<String, String>,
    case_names: &BTreeSet<String>,
    outcomes: &BTreeMap<String, Option<String>>,
) -> std::io::Result<usize> {
    let mut failures: BTreeMap<&str, String> = previous
        .iter()
        .filter(|(name, _)| case_names.contains(*name) && !outcomes.contains_key(*name))
        .map(|(name, reason)| (name.as_str(), reason.clone()))
        .collect();
    for (name, outcome) in outcomes {
        if let Some(message) = outcome {
            let reason = previous
                .get(name)
                .cloned()
                .unwrap_or_else(|| reason_of(message));
            failures.insert(name.as_str(), reason);
        }
    }
    let mut text = String::from(header);
    for (name, reason) in &failures {
        text.push_str(&format!("{name}\t{reason}\n"));
    }
    std::fs::write(path, text)?;
    Ok(failures.len())
}

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

/// A fixture imported as `sinter check` does, with the data set's inputs for it.
pub struct ImportedDataSet {
    pub graph: Graph,
    /// The data set's values of the graph's inputs (inputs the importer fixed or dropped excluded).
    pub inputs: Vec<(String, Tensor)>,
    pub specialization: Specialization,
}

/// Imports `model_path` as `sinter check` does (see the module doc), with the data set in `data_dir`
/// fixing what the IR needs fixed. The error is one line (the reason the node suite's blessing
/// records) followed by details.
pub fn import_data_set(model_path: &Path, data_dir: &Path) -> Result<ImportedDataSet, String> {
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
    let inputs = input_values
        .into_iter()
        .filter(|(name, _)| graph_inputs.contains(name.as_str()))
        .collect();
    Ok(ImportedDataSet {
        graph,
        inputs,
        specialization,
    })
}

/// Imports `model_path` as `sinter check` does (see the module doc), runs it on `backend` with the
/// data set in `data_dir` and compares each output within `tolerance`. The error is one line (the reason the
/// node suite's blessing records) followed by details.
pub fn check_data_set(
    model_path: &Path,
    data_dir: &Path,
    tolerance: Tolerance,
    backend: Backend,
) -> Result<Specialization, String> {
    let ImportedDataSet {
        graph,
        inputs,
        specialization,
    } = import_data_set(model_path, data_dir)?;
    let inputs: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(name, tensor)| (name.as_str(), tensor.clone()))
        .collect();
    let outputs = backend.run(&graph, &inputs)?;

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

/// How many nodes of each op `graph` has, plus derived counts for the optimizer's targets:
/// `attention+causal` (causal attention ops), `attention+heads` (attention on unsplit operands, with
/// head counts) and `act:NAME`, how often activation NAME is computed, as its own op or inside a
/// fused op (`act:gelu` includes the tanh form).
pub fn op_counts(graph: &sinter_ir::Graph) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for id in graph.node_ids() {
        let Some(op) = graph.node(id).op() else {
            continue;
        };
        *counts.entry(op.name().to_string()).or_default() += 1;
        let activation = match op {
            sinter_ir::Op::FusedConv { activation, .. }
            | sinter_ir::Op::FusedMatMul { activation, .. }
            | sinter_ir::Op::ConvPool { activation, .. } => Some(activation.name()),
            sinter_ir::Op::Gelu { .. } => Some("gelu"),
            other => sinter_ir::FusedActivation::from_op(other).map(|(a, _)| a.name()),
        };
        if let Some(name) = activation {
            let name = if name == "gelu_tanh" { "gelu" } else { name };
            *counts.entry(format!("act:{name}")).or_default() += 1;
        }
        if let sinter_ir::Op::Attention {
            causal,
            q_num_heads,
            ..
        } = op
        {
            if *causal {
                *counts.entry("attention+causal".into()).or_default() += 1;
            }
            if *q_num_heads > 0 {
                *counts.entry("attention+heads".into()).or_default() += 1;
            }
        }
    }
    counts
}
