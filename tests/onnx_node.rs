//! The ONNX backend node tests (`tests/onnx-node/`), imported with `sinter_onnx` and run with the
//! reference interpreter.
//!
//! One libtest test per line of `tests/onnx-node/cases.tsv`, named after the case. A test runs
//! `cases/<name>/model.onnx` on `test_data_set_0` as `sinter check` does, with the case's tolerances
//! (`common::check_data_set`: import, with shape-like inputs or symbolic dims fixed to the data set's
//! values when the model needs that, reference run, comparison of every output).
//!
//! **Expected failures.** `tests/onnx-node/expected_failures.tsv` lists known failures as
//! `case_name<TAB>reason`. A listed case that fails passes its test; a listed case that passes fails
//! with "newly passing", and a listed name that is not a case fails the extra test
//! `expected_failures_name_only_cases`, so the list never goes stale. `SINTER_BLESS_FAILURES=1 cargo
//! test --test onnx_node` rewrites the list from the current failures, each with its error message as
//! the reason; entries of cases that a name filter skipped are kept.
//!
//! After the run, the number of passing cases per op type (from `cases.tsv`) and the totals are
//! printed.

mod common;

use common::Tolerance;
use libtest_mimic::{Arguments, Failed, Trial};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The environment variable that turns on rewriting `expected_failures.tsv`.
const BLESS_VAR: &str = "SINTER_BLESS_FAILURES";

/// The longest reason written by blessing; longer error messages are cut.
const MAX_REASON_CHARS: usize = 300;

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

fn expected_failures_path() -> PathBuf {
    suite_root().join("expected_failures.tsv")
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

/// Parses `expected_failures.tsv`: `case_name<TAB>reason` lines; `#` starts a comment line.
fn parse_expected_failures(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut failures = BTreeMap::new();
    for (line_idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, reason)) = line.split_once('\t') else {
            return Err(format!(
                "expected_failures.tsv line {}: expected `case_name<TAB>reason`, got `{line}`",
                line_idx + 1
            ));
        };
        if reason.trim().is_empty() {
            return Err(format!(
                "expected_failures.tsv line {}: `{name}` has no reason",
                line_idx + 1
            ));
        }
        if failures
            .insert(name.to_string(), reason.to_string())
            .is_some()
        {
            return Err(format!(
                "expected_failures.tsv line {}: `{name}` is listed twice",
                line_idx + 1
            ));
        }
    }
    Ok(failures)
}

/// Runs one case; `Ok` says whether graph inputs were fixed at import.
fn run_case(case: &Case) -> Result<ImportMode, String> {
    let dir = suite_root().join("cases").join(&case.name);
    let tolerance = Tolerance {
        rtol: case.rtol,
        atol: case.atol,
    };
    let specialization = common::check_data_set(
        &dir.join("model.onnx"),
        &dir.join("test_data_set_0"),
        tolerance,
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

/// The single-line reason blessing writes for an error message: whitespace runs (tabs and newlines
/// included) collapse to one space.
fn reason_of(message: &str) -> String {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > MAX_REASON_CHARS {
        let cut: String = one_line.chars().take(MAX_REASON_CHARS).collect();
        format!("{cut}...")
    } else {
        one_line
    }
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

    fn print(&self, n_passed: usize, n_passed_inputs_fixed: usize, n_run: usize) {
        println!("\nONNX node tests by op type (a case counts for every op it uses):");
        for (op_type, (passed, total)) in &self.0 {
            let mark = if passed == total { "" } else { "  <-- failing" };
            println!("  {op_type:<28} {passed:>4}/{total:<4}{mark}");
        }
        println!(
            "ONNX node tests: {n_passed} of {n_run} cases pass ({n_passed_inputs_fixed} of them with \
             shape-like inputs fixed at import)"
        );
    }
}

/// What the trials share: the per-op tally, the pass count and, when blessing, every case's result.
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

/// Rewrites `expected_failures.tsv` from the cases that ran, keeping the entries of cases that did not.
fn bless(
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
            failures.insert(name.as_str(), reason_of(message));
        }
    }
    let mut text = String::from(EXPECTED_FAILURES_HEADER);
    for (name, reason) in &failures {
        text.push_str(&format!("{name}\t{reason}\n"));
    }
    std::fs::write(expected_failures_path(), text)?;
    Ok(failures.len())
}

fn main() {
    let args = Arguments::from_args();
    let is_blessing = std::env::var_os(BLESS_VAR).is_some_and(|value| value != "0");
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
    let expected_failures = match std::fs::read_to_string(expected_failures_path()) {
        Ok(text) => parse_expected_failures(&text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && is_blessing => {
            Ok(BTreeMap::new())
        }
        Err(err) => Err(format!("cannot read expected_failures.tsv: {err}")),
    };
    let expected_failures = match expected_failures {
        Ok(failures) => Arc::new(failures),
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    };
    let case_names: BTreeSet<String> = cases.iter().map(|case| case.name.clone()).collect();

    let results = Arc::new(Mutex::new(Results::default()));
    let mut trials = Vec::new();
    for case in cases {
        let results = Arc::clone(&results);
        let expected_failures = Arc::clone(&expected_failures);
        trials.push(Trial::test(case.name.clone(), move || {
            let outcome = run_case(&case);
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
            if is_blessing {
                return Ok(());
            }
            match (outcome, expected_failures.contains_key(&case.name)) {
                (Ok(_), false) | (Err(_), true) => Ok(()),
                (Err(message), false) => Err(Failed::from(message)),
                (Ok(_), true) => Err(Failed::from(
                    "newly passing: remove it from expected_failures.tsv",
                )),
            }
        }));
    }
    {
        let expected_failures = Arc::clone(&expected_failures);
        let case_names = case_names.clone();
        trials.push(Trial::test(
            "expected_failures_name_only_cases",
            move || {
                let unknown: Vec<&String> = expected_failures
                    .keys()
                    .filter(|name| !case_names.contains(*name))
                    .collect();
                if unknown.is_empty() || is_blessing {
                    Ok(())
                } else {
                    Err(format!(
                        "expected_failures.tsv lists names that are not cases: {unknown:?}"
                    )
                    .into())
                }
            },
        ));
    }

    let conclusion = libtest_mimic::run(&args, trials);
    if !args.list {
        if let Ok(results) = results.lock() {
            results.tally.print(
                results.n_passed,
                results.n_passed_inputs_fixed,
                results.n_run,
            );
            if is_blessing {
                match bless(&expected_failures, &case_names, &results.outcomes) {
                    Ok(n_failures) => println!(
                        "{BLESS_VAR}: wrote {n_failures} expected failures to {}",
                        expected_failures_path().display()
                    ),
                    Err(err) => {
                        eprintln!("cannot write expected_failures.tsv: {err}");
                        std::process::exit(1);
                    }
                }
            }
        }
    }
    conclusion.exit();
}
