//! The ONNX backend node tests (`tests/onnx-node/`), imported with `sinter_onnx` and run on the
//! reference interpreter and on the JIT.
//!
//! Two libtest tests per line of `tests/onnx-node/cases.tsv`: `<name>` runs on the reference
//! interpreter, `jit::<name>` on the JIT (`common::Backend`). Each runs `cases/<name>/model.onnx` on
//! `test_data_set_0` as `sinter check` does, with the case's tolerances (`common::check_data_set`:
//! import, with shape-like inputs or symbolic dims fixed to the data set's values when the model
//! needs that, run, comparison of every output).
//!
//! **Expected failures.** `tests/onnx-node/expected_failures.tsv` lists the reference's known
//! failures and `tests/onnx-node/jit_expected_failures.tsv` the cases that pass on the reference but
//! not on the JIT, as `case_name<TAB>reason`. A case of the reference list is expected to fail on
//! both backends. A listed case that fails passes its test; a listed case that passes fails with
//! "newly passing", and a listed name that is not a case (or a JIT entry the reference list has
//! already) fails the extra test `expected_failures_name_only_cases`, so the lists never go stale.
//! `SINTER_BLESS_FAILURES=1 cargo test --test onnx_node` rewrites both lists from the current
//! failures (`common::bless`: a new failure gets its error message as the reason, a listed one keeps
//! its reason); entries of cases that a name filter skipped are kept.
//!
//! After the run, the number of passing cases per op type (from `cases.tsv`) and the totals are
//! printed for each backend.

mod common;

use common::{Backend, Tolerance};
use libtest_mimic::{Arguments, Trial};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The reference's manifest of expected failures, in `tests/onnx-node`.
const EXPECTED_FAILURES: &str = "expected_failures.tsv";

/// The JIT's manifest: cases that pass on the reference and fail on the JIT.
const JIT_EXPECTED_FAILURES: &str = "jit_expected_failures.tsv";

/// One line of `cases.tsv`.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    op_types: Vec<String>,
    rtol: f64,
    atol: f64,
}

fn suite_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx-node")
}

/// Parses `cases.tsv`: a header line, then `name, op_types (comma-separated), opset, rtol, atol`.
fn parse_cases(text: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    for (line_idx, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, op_types, _opset, rtol, atol] = fields[..] else {
            return Err(format!(
                "cases.tsv line {}: expected 5 tab-separated fields, got {}",
                line_idx + 1,
                fields.len()
            ));
        };
        let number = |text: &str| {
            text.parse::<f64>()
                .map_err(|err| format!("cases.tsv line {}: `{text}`: {err}", line_idx + 1))
        };
        cases.push(Case {
            name: name.to_string(),
            op_types: op_types.split(',').map(str::to_string).collect(),
            rtol: number(rtol)?,
            atol: number(atol)?,
        });
    }
    Ok(cases)
}

/// Runs one case; `Ok` says whether graph inputs were fixed at import.
fn run_case(case: &Case, backend: Backend) -> Result<ImportMode, String> {
    let dir = suite_root().join("cases").join(&case.name);
    let tolerance = Tolerance {
        rtol: case.rtol,
        atol: case.atol,
    };
    let specialization = common::check_data_set(
        &dir.join("model.onnx"),
        &dir.join("test_data_set_0"),
        tolerance,
        backend,
    )?;
    Ok(if specialization.fixed_inputs.is_empty() {
        ImportMode::Plain
    } else {
        ImportMode::InputsFixed
    })
}

/// How a case that ran to completion was imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ImportMode {
    /// Without graph inputs fixed (symbolic dims may have been fixed).
    Plain,
    /// With graph inputs that the IR needs as constants fixed to the data set's values.
    InputsFixed,
}

/// Pass and total counts per op type, filled in by the trials as they finish.
#[derive(Default)]
struct OpTally(BTreeMap<String, (usize, usize)>);

impl OpTally {
    fn record(&mut self, case: &Case, passed: bool) {
        for op_type in &case.op_types {
            let entry = self.0.entry(op_type.clone()).or_default();
            entry.0 += usize::from(passed);
            entry.1 += 1;
        }
    }

    fn print(&self, backend: Backend, n_passed: usize, n_passed_inputs_fixed: usize, n_run: usize) {
        let label = backend.label();
        println!(
            "\nONNX node tests on the {label} by op type (a case counts for every op it uses):"
        );
        for (op_type, (passed, total)) in &self.0 {
            let mark = if passed == total { "" } else { "  <-- failing" };
            println!("  {op_type:<28} {passed:>4}/{total:<4}{mark}");
        }
        println!(
            "ONNX node tests on the {label}: {n_passed} of {n_run} cases pass \
             ({n_passed_inputs_fixed} of them with shape-like inputs fixed at import)"
        );
    }
}

/// What the trials of one backend share: the per-op tally, the pass count and, when blessing, every case's result.
#[derive(Default)]
struct Results {
    tally: OpTally,
    n_passed: usize,
    /// Passing cases that needed inputs fixed at import.
    n_passed_inputs_fixed: usize,
    n_run: usize,
    /// Case name to its error message, or `None` when it passed.
    outcomes: BTreeMap<String, Option<String>>,
}

/// The header written at the top of `expected_failures.tsv` by blessing.
const EXPECTED_FAILURES_HEADER: &str = "\
# ONNX node-test cases that are known to fail, as `case_name<TAB>reason`. Checked by tests/onnx_node.rs:
# a listed case that passes fails the test. Regenerate with
# `SINTER_BLESS_FAILURES=1 cargo test --test onnx_node`.
";

/// The header written at the top of `jit_expected_failures.tsv` by blessing.
const JIT_EXPECTED_FAILURES_HEADER: &str = "\
# ONNX node-test cases that pass on the reference interpreter and fail on the JIT, as
# `case_name<TAB>reason`. Checked by tests/onnx_node.rs (trials `jit::<case>`): a listed case that
# passes fails the test; cases of expected_failures.tsv are expected to fail on the JIT too and are
# not listed here. `SINTER_BLESS_FAILURES=1 cargo test --test onnx_node` adds new failures with
# their error message and drops cases that pass; reasons of cases still failing are kept.
";

fn main() {
    let args = Arguments::from_args();
    let is_blessing = common::is_blessing();
    let cases = std::fs::read_to_string(suite_root().join("cases.tsv"))
        .map_err(|err| format!("cannot read cases.tsv: {err}"))
        .and_then(|text| parse_cases(&text));
    let cases = match cases {
        Ok(cases) => cases,
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    };
    let manifests = common::load_expected_failures(&suite_root().join(EXPECTED_FAILURES)).and_then(
        |reference| {
            let jit = common::load_expected_failures(&suite_root().join(JIT_EXPECTED_FAILURES))?;
            Ok((reference, jit))
        },
    );
    let (expected_failures, jit_expected_failures) = match manifests {
        Ok((reference, jit)) => (Arc::new(reference), Arc::new(jit)),
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    };
    let case_names: BTreeSet<String> = cases.iter().map(|case| case.name.clone()).collect();

    let results: BTreeMap<Backend, Arc<Mutex<Results>>> = Backend::ALL
        .iter()
        .map(|&backend| (backend, Arc::default()))
        .collect();
    let mut trials = Vec::new();
    for backend in Backend::ALL {
        for case in &cases {
            let case = case.clone();
            let results = Arc::clone(&results[&backend]);
            let expected_failures = Arc::clone(&expected_failures);
            let jit_expected_failures = Arc::clone(&jit_expected_failures);
            trials.push(Trial::test(backend.trial_name(&case.name), move || {
                let outcome = run_case(&case, backend);
                if let Ok(mut results) = results.lock() {
                    results.tally.record(&case, outcome.is_ok());
                    results.n_passed += usize::from(outcome.is_ok());
                    results.n_passed_inputs_fixed +=
                        usize::from(outcome == Ok(ImportMode::InputsFixed));
                    results.n_run += 1;
                    if is_blessing {
                        results
                            .outcomes
                            .insert(case.name.clone(), outcome.clone().err());
                    }
                }
                // A reference failure is expected on the JIT too; see the module doc.
                let listed_in = if expected_failures.contains_key(&case.name) {
                    Some(EXPECTED_FAILURES)
                } else if backend == Backend::Jit && jit_expected_failures.contains_key(&case.name)
                {
                    Some(JIT_EXPECTED_FAILURES)
                } else {
                    None
                };
                common::verdict(outcome.map(|_| ()), listed_in)
            }));
        }
    }
    {
        let expected_failures = Arc::clone(&expected_failures);
        let jit_expected_failures = Arc::clone(&jit_expected_failures);
        let case_names = case_names.clone();
        trials.push(Trial::test(
            "expected_failures_name_only_cases",
            move || {
                common::check_manifest_names(
                    &case_names,
                    Some((EXPECTED_FAILURES, &expected_failures)),
                    (JIT_EXPECTED_FAILURES, &jit_expected_failures),
                )
            },
        ));
    }

    let conclusion = libtest_mimic::run(&args, trials);
    if !args.list {
        for (&backend, results) in &results {
            if let Ok(results) = results.lock() {
                results.tally.print(
                    backend,
                    results.n_passed,
                    results.n_passed_inputs_fixed,
                    results.n_run,
                );
            }
        }
        if is_blessing {
            if let Err(err) = bless_manifests(
                &case_names,
                &expected_failures,
                &jit_expected_failures,
                &results,
            ) {
                eprintln!("{err}");
                std::process::exit(1);
            }
        }
    }
    conclusion.exit();
}

/// Rewrites both manifests from the run's outcomes (see the module doc). The JIT manifest leaves
/// out the cases the new reference manifest lists.
fn bless_manifests(
    case_names: &BTreeSet<String>,
    expected_failures: &BTreeMap<String, String>,
    jit_expected_failures: &BTreeMap<String, String>,
    results: &BTreeMap<Backend, Arc<Mutex<Results>>>,
) -> Result<(), String> {
    let outcomes_of = |backend: Backend| {
        results[&backend]
            .lock()
            .map(|results| results.outcomes.clone())
            .map_err(|_| "a trial panicked while holding the results".to_string())
    };
    let reference_outcomes = outcomes_of(Backend::Reference)?;
    let reference_path = suite_root().join(EXPECTED_FAILURES);
    let n_reference = common::bless(
        &reference_path,
        EXPECTED_FAILURES_HEADER,
        expected_failures,
        case_names,
        &reference_outcomes,
    )
    .map_err(|err| format!("cannot write {}: {err}", reference_path.display()))?;
    let new_reference = common::load_expected_failures(&reference_path)?;
    let jit_outcomes: BTreeMap<String, Option<String>> = outcomes_of(Backend::Jit)?
        .into_iter()
        .filter(|(name, _)| !new_reference.contains_key(name))
        .collect();
    let jit_previous: BTreeMap<String, String> = jit_expected_failures
        .iter()
        .filter(|(name, _)| !new_reference.contains_key(*name))
        .map(|(name, reason)| (name.clone(), reason.clone()))
        .collect();
    let jit_path = suite_root().join(JIT_EXPECTED_FAILURES);
    let n_jit = common::bless(
        &jit_path,
        JIT_EXPECTED_FAILURES_HEADER,
        &jit_previous,
        case_names,
        &jit_outcomes,
    )
    .map_err(|err| format!("cannot write {}: {err}", jit_path.display()))?;
    println!(
        "{}: wrote {n_reference} expected failures to {} and {n_jit} to {}",
        common::BLESS_VAR,
        reference_path.display(),
        jit_path.display()
    );
    Ok(())
}
