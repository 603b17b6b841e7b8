//! Real-model fixtures (`tests/models/`): small networks of well-known architectures (LeNet-5, a
//! resnet18, a MobileNetV2, an LSTM language model, a bidirectional GRU tagger, a transformer encoder,
//! a GPT-style decoder), each exported by both PyTorch exporters, with onnxruntime's outputs. See
//! `tests/models/README.md`; `tests/models/export_models.py` writes them.
//!
//! Two libtest tests per directory holding a `model.onnx`: `<name>` on the reference interpreter and
//! `jit::<name>` on the JIT (`common::Backend`). Each runs exactly what `sinter check MODEL DATASET
//! --rtol 1e-4 --atol 1e-5` does (`common::check_data_set`): import, run, comparison of every output
//! at [`TOLERANCE`], tighter than the node suite because these are whole models whose errors would
//! compound. The JIT compiles the imported graph with its symbolic `batch` kept, so these trials also
//! exercise specialisation on first run.
//!
//! **JIT expected failures.** `tests/models/jit_expected_failures.tsv` lists models that pass on the
//! reference and fail on the JIT, as `name<TAB>reason` (`common::verdict`: a listed model that
//! passes fails as newly passing, an unlisted failure fails, and the extra test
//! `fixture_set_is_consistent` refuses names that are not fixtures). `SINTER_BLESS_FAILURES=1 cargo
//! test --test real_models` rewrites it (`common::bless`).
//!
//! **Symbolic batch.** Every fixture declares a symbolic `batch` dim. A model must import with it
//! symbolic, unless it is listed in [`DIMS_FIXED`]: those import only with their symbolic dims fixed
//! to the data set's sizes (as `sinter check` then does, with a note), and each entry says why. A
//! listed model that imports with symbolic dims fails ("remove it from DIMS_FIXED"), so the list
//! cannot go stale.
//!
//! Extra tests check the fixture set itself: every directory has a row in `README.md` and every row
//! a directory, [`DIMS_FIXED`] names only fixtures, and every `model.onnx` is at most
//! [`MAX_MODEL_BYTES`].

mod common;

use common::{Backend, Tolerance};
use libtest_mimic::{Arguments, Failed, Trial};
use sinter_onnx::Specialization;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The comparison tolerance of every real model.
const TOLERANCE: Tolerance = Tolerance {
    rtol: 1e-4,
    atol: 1e-5,
};

/// The largest `model.onnx` a fixture may have.
const MAX_MODEL_BYTES: u64 = 2 * 1024 * 1024;

/// Fixtures that import only with their symbolic dims fixed, and why.
const DIMS_FIXED: &[(&str, &str)] = &[
    (
        "transformer_encoder_ts",
        "nn.MultiheadAttention reshapes q, k, v to [seq, batch * heads, head_dim]; the IR has no dim \
         expressions",
    ),
    (
        "transformer_encoder_dynamo",
        "nn.MultiheadAttention reshapes q, k, v to [seq, batch * heads, head_dim]; the IR has no dim \
         expressions",
    ),
];

/// The JIT's manifest of expected failures, in `tests/models`.
const JIT_EXPECTED_FAILURES: &str = "jit_expected_failures.tsv";

/// The header written at the top of `jit_expected_failures.tsv` by blessing.
const JIT_EXPECTED_FAILURES_HEADER: &str = "\
# Real models that pass on the reference interpreter and fail on the JIT, as `name<TAB>reason`.
# Checked by tests/real_models.rs (trials `jit::<name>`): a listed model that passes fails the test.
# `SINTER_BLESS_FAILURES=1 cargo test --test real_models` adds new failures and drops passing ones.
";

/// Per model that ran: its error message, or `None` when it passed.
type Outcomes = Arc<Mutex<BTreeMap<String, Option<String>>>>;

fn models_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models")
}

/// The fixture directories (those holding a `model.onnx`), by name.
fn model_dirs() -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(models_root())? {
        let entry = entry?;
        if entry.path().join("model.onnx").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Checks one fixture against its data set on `backend`, and against [`DIMS_FIXED`].
fn check_model(name: &str, backend: Backend) -> Result<(), String> {
    let dir = models_root().join(name);
    let Specialization {
        fixed_inputs,
        fixed_dims,
    } = common::check_data_set(
        &dir.join("model.onnx"),
        &dir.join("test_data_set_0"),
        TOLERANCE,
        backend,
    )?;
    if !fixed_inputs.is_empty() {
        return Err(format!(
            "imports only with graph inputs {fixed_inputs:?} fixed; no fixture has shape-like inputs"
        ));
    }
    let listed = DIMS_FIXED.iter().any(|(listed, _)| *listed == name);
    match (fixed_dims.is_empty(), listed) {
        (true, false) | (false, true) => Ok(()),
        (true, true) => {
            Err("imports with its symbolic dims now: remove it from DIMS_FIXED".to_string())
        }
        (false, false) => Err(format!(
            "imports only with its symbolic dims fixed ({fixed_dims:?}); `sinter dump` of the \
             model shows why it does not import with them symbolic"
        )),
    }
}

/// The fixture names of `README.md`'s table: the first cell of each row, in backticks.
fn readme_rows(readme: &str) -> BTreeSet<String> {
    readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Every fixture has a README row and every row a fixture; [`DIMS_FIXED`] names only fixtures; no
/// model file exceeds [`MAX_MODEL_BYTES`]; the JIT manifest names only fixtures.
fn check_fixture_set(
    names: &[String],
    jit_expected_failures: &BTreeMap<String, String>,
) -> Result<(), Failed> {
    let readme = std::fs::read_to_string(models_root().join("README.md"))
        .map_err(|err| format!("cannot read tests/models/README.md: {err}"))?;
    let rows = readme_rows(&readme);
    let dirs: BTreeSet<String> = names.iter().cloned().collect();
    let mut problems = Vec::new();
    for missing in dirs.difference(&rows) {
        problems.push(format!("`{missing}` has no row in README.md"));
    }
    for stale in rows.difference(&dirs) {
        problems.push(format!("README.md lists `{stale}`, which is not a fixture"));
    }
    for (listed, _) in DIMS_FIXED {
        if !dirs.contains(*listed) {
            problems.push(format!(
                "DIMS_FIXED lists `{listed}`, which is not a fixture"
            ));
        }
    }
    for name in names {
        let path = models_root().join(name).join("model.onnx");
        let n_bytes = std::fs::metadata(&path)
            .map_err(|err| format!("{}: {err}", path.display()))?
            .len();
        if n_bytes > MAX_MODEL_BYTES {
            problems.push(format!(
                "`{name}/model.onnx` has {n_bytes} bytes, more than {MAX_MODEL_BYTES}"
            ));
        }
    }
    if let Err(failed) =
        common::check_manifest_names(&dirs, None, (JIT_EXPECTED_FAILURES, jit_expected_failures))
    {
        problems.push(failed.message().unwrap_or_default().to_string());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

fn main() {
    let args = Arguments::from_args();
    let names = match model_dirs() {
        Ok(names) if !names.is_empty() => names,
        Ok(_) => {
            eprintln!("tests/models holds no fixture (no */model.onnx)");
            std::process::exit(1);
        }
        Err(err) => {
            eprintln!("cannot list tests/models: {err}");
            std::process::exit(1);
        }
    };
    let jit_manifest_path = models_root().join(JIT_EXPECTED_FAILURES);
    let jit_expected_failures = match common::load_expected_failures(&jit_manifest_path) {
        Ok(failures) => Arc::new(failures),
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    };
    let is_blessing = common::is_blessing();
    let outcomes: BTreeMap<Backend, Outcomes> = Backend::ALL
        .iter()
        .map(|&backend| (backend, Arc::default()))
        .collect();
    let mut trials = Vec::new();
    for backend in Backend::ALL {
        for name in &names {
            let name = name.clone();
            let outcomes = Arc::clone(&outcomes[&backend]);
            let jit_expected_failures = Arc::clone(&jit_expected_failures);
            trials.push(Trial::test(backend.trial_name(&name), move || {
                let outcome = check_model(&name, backend);
                if let Ok(mut outcomes) = outcomes.lock() {
                    outcomes.insert(name.clone(), outcome.clone().err());
                }
                match backend {
                    // The reference has no expected failures here, so blessing does not excuse one.
                    Backend::Reference => outcome.map_err(Failed::from),
                    Backend::Jit => common::verdict(
                        outcome,
                        jit_expected_failures
                            .contains_key(&name)
                            .then_some(JIT_EXPECTED_FAILURES),
                    ),
                }
            }));
        }
    }
    {
        let names = names.clone();
        let jit_expected_failures = Arc::clone(&jit_expected_failures);
        trials.push(Trial::test("fixture_set_is_consistent", move || {
            check_fixture_set(&names, &jit_expected_failures)
        }));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    if !args.list {
        for (backend, outcomes) in &outcomes {
            if let Ok(outcomes) = outcomes.lock() {
                let n_passed = outcomes
                    .values()
                    .filter(|outcome| outcome.is_none())
                    .count();
                println!(
                    "real models on the {}: {n_passed} of {} pass",
                    backend.label(),
                    outcomes.len()
                );
            }
        }
        if is_blessing {
            let jit_outcomes = outcomes[&Backend::Jit]
                .lock()
                .map(|outcomes| outcomes.clone())
                .unwrap_or_default();
            let name_set: BTreeSet<String> = names.iter().cloned().collect();
            match common::bless(
                &jit_manifest_path,
                JIT_EXPECTED_FAILURES_HEADER,
                &jit_expected_failures,
                &name_set,
                &jit_outcomes,
            ) {
                Ok(n_failures) => println!(
                    "{}: wrote {n_failures} expected failures to {}",
                    common::BLESS_VAR,
                    jit_manifest_path.display()
                ),
                Err(err) => {
                    eprintln!("cannot write {}: {err}", jit_manifest_path.display());
                    std::process::exit(1);
                }
            }
        }
    }
    conclusion.exit();
}
