//! Every IR op against expected values from onnx's reference implementation.
//!
//! Each directory under `tests/fixtures/ops/` is one case, written by `tests/fixtures/gen_op_fixtures.py`
//! (regenerate with `python3 tests/fixtures/gen_op_fixtures.py`): a one-op `model.sir`, its inputs and
//! expected outputs as `.npy` files, and a `case.txt` manifest naming the op, the input and output
//! names in order, and the tolerances. This harness turns every directory into two libtest tests,
//! `<case>` on the reference interpreter and `jit::<case>` on the JIT (`common::Backend`), so no case
//! can be skipped without showing up as a failure: a directory whose manifest or files are broken
//! fails like a wrong result does.
//!
//! A test parses and verifies the model, runs it on its backend and compares every output with
//! `sinter_ref::compare` (the rule of `sinter check`): dtype and shape exactly, float values with
//! `|actual - expected| <= atol + rtol * |expected|` (NaN must meet NaN, an infinity the same
//! infinity), integers and bools exactly. A mismatch reports the worst absolute and relative errors.
//! After the run a per-op pass count is printed for each backend, and one extra test checks that
//! every op in `Op::NAMES` has at least one case.
//!
//! **Expected failures.** Every case must pass on the reference. The JIT's known failures are listed
//! in `tests/fixtures/ops_jit_expected_failures.tsv` as `case<TAB>reason`, beside the fixture
//! directory rather than in it because the generator rewrites `tests/fixtures/ops/` whole. A listed
//! case that passes fails as newly passing, an unlisted failure fails, and the extra test
//! `jit_expected_failures_name_only_cases` refuses names that are not cases.
//! `SINTER_BLESS_FAILURES=1 cargo test --test op_fixtures` rewrites the list (`common::bless`).

mod common;

use common::Backend;
use libtest_mimic::{Arguments, Failed, Trial};
use sinter_ir::{Op, Tensor, TensorData};
use sinter_ref::compare::{compare, Tolerance};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The parsed `case.txt` of one case.
#[derive(Debug)]
struct Manifest {
    /// The IR op the case exercises; the model must consist of exactly one node of it.
    op: String,
    input_names: Vec<String>,
    output_names: Vec<String>,
    rtol: f64,
    atol: f64,
}

impl Manifest {
    fn parse(text: &str) -> Result<Manifest, String> {
        let mut fields = BTreeMap::new();
        for (line_idx, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(format!(
                    "case.txt line {}: expected `key: value`, got `{line}`",
                    line_idx + 1
                ));
            };
            fields.insert(key.trim().to_string(), value.trim().to_string());
        }
        let field = |key: &str| {
            fields
                .get(key)
                .cloned()
                .ok_or_else(|| format!("case.txt has no `{key}` line"))
        };
        let float = |key: &str| -> Result<f64, String> {
            let text = field(key)?;
            text.parse()
                .map_err(|err| format!("case.txt `{key}: {text}` is not a number: {err}"))
        };
        let names = |key: &str| -> Result<Vec<String>, String> {
            Ok(field(key)?.split_whitespace().map(str::to_string).collect())
        };
        Ok(Manifest {
            op: field("op")?,
            input_names: names("inputs")?,
            output_names: names("outputs")?,
            rtol: float("rtol")?,
            atol: float("atol")?,
        })
    }
}

/// Reads a C-order `.npy` file of one of the IR's dtypes into a tensor.
fn read_npy(path: &Path) -> Result<Tensor, String> {
    let describe = |err: std::io::Error| format!("{}: {err}", path.display());
    let bytes = std::fs::read(path).map_err(describe)?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(describe)?;
    if npy.order() != npyz::Order::C {
        return Err(format!(
            "{}: Fortran-order arrays are not supported",
            path.display()
        ));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let npyz::DType::Plain(type_str) = npy.dtype() else {
        return Err(format!(
            "{}: structured dtype {}",
            path.display(),
            npy.dtype().descr()
        ));
    };
    use npyz::TypeChar;
    let data = match (type_str.type_char(), type_str.size_field()) {
        (TypeChar::Float, 4) => TensorData::F32(npy.into_vec().map_err(describe)?.into()),
        (TypeChar::Float, 8) => TensorData::F64(npy.into_vec().map_err(describe)?.into()),
        (TypeChar::Int, 8) => TensorData::I64(npy.into_vec().map_err(describe)?.into()),
        (TypeChar::Int, 4) => TensorData::I32(npy.into_vec().map_err(describe)?.into()),
        (TypeChar::Int, 1) => TensorData::I8(npy.into_vec().map_err(describe)?.into()),
        (TypeChar::Uint, 1) => TensorData::U8(npy.into_vec().map_err(describe)?.into()),
        (TypeChar::Bool, 1) => TensorData::Bool(npy.into_vec().map_err(describe)?.into()),
        _ => return Err(format!("{}: unsupported dtype {type_str}", path.display())),
    };
    Tensor::new(shape, data).map_err(|err| format!("{}: {err}", path.display()))
}

/// Runs one case directory end to end on `backend`.
fn run_case(dir: &Path, manifest: &Manifest, backend: Backend) -> Result<(), String> {
    let graph =
        sinter_ir::parse_file(&dir.join("model.sir")).map_err(|err| format!("model.sir: {err}"))?;
    if let Err(errors) = sinter_ir::verify(&graph) {
        let mut text = String::from("model.sir does not verify:");
        for err in errors {
            let _ = write!(text, "\n  {err}");
        }
        return Err(text);
    }
    let ops: Vec<&Op> = graph
        .node_ids()
        .filter_map(|id| graph.node(id).op())
        .collect();
    if ops.len() != 1 || ops[0].name() != manifest.op {
        let names: Vec<&str> = ops.iter().map(|op| op.name()).collect();
        return Err(format!(
            "case.txt names op `{}`, but model.sir holds {names:?}",
            manifest.op
        ));
    }

    let mut inputs = Vec::new();
    for (input_idx, name) in manifest.input_names.iter().enumerate() {
        inputs.push((
            name.as_str(),
            read_npy(&dir.join(format!("input_{input_idx}.npy")))?,
        ));
    }
    let outputs = backend.run(&graph, &inputs)?;

    let got_names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    if got_names != manifest.output_names {
        return Err(format!(
            "outputs are {got_names:?}, the manifest expects {:?}",
            manifest.output_names
        ));
    }
    let mut problems = Vec::new();
    for (output_idx, (name, actual)) in outputs.iter().enumerate() {
        let expected = read_npy(&dir.join(format!("output_{output_idx}.npy")))?;
        let tolerance = Tolerance {
            rtol: manifest.rtol,
            atol: manifest.atol,
        };
        let comparison = compare(actual, &expected, tolerance);
        if !comparison.matches() {
            problems.push(format!("output `{name}`: {comparison}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Pass and total counts per op, filled in by the trials as they finish.
#[derive(Default)]
struct OpTally(BTreeMap<String, (usize, usize)>);

impl OpTally {
    fn record(&mut self, op: &str, passed: bool) {
        let entry = self.0.entry(op.to_string()).or_default();
        entry.0 += usize::from(passed);
        entry.1 += 1;
    }

    fn print(&self, backend: Backend) {
        let (n_passed, n_total) = self
            .0
            .values()
            .fold((0, 0), |(p, t), (op_p, op_t)| (p + op_p, t + op_t));
        println!(
            "\nop fixture summary on the {}: {n_passed}/{n_total} cases pass",
            backend.label()
        );
        for (op, (passed, total)) in &self.0 {
            let mark = if passed == total { "" } else { "  <-- failing" };
            println!("  {op:<20} {passed:>3}/{total:<3}{mark}");
        }
    }
}

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ops")
}

/// The JIT's manifest of expected failures.
const JIT_EXPECTED_FAILURES: &str = "ops_jit_expected_failures.tsv";

/// The header written at the top of the JIT manifest by blessing.
const JIT_EXPECTED_FAILURES_HEADER: &str = "\
# Op fixtures (tests/fixtures/ops) that pass on the reference interpreter and fail on the JIT, as
# `case<TAB>reason`. Checked by tests/op_fixtures.rs (trials `jit::<case>`): a listed case that
# passes fails the test. `SINTER_BLESS_FAILURES=1 cargo test --test op_fixtures` adds new failures
# and drops passing ones; reasons of cases still failing are kept.
";

fn jit_manifest_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(JIT_EXPECTED_FAILURES)
}

fn main() {
    let args = Arguments::from_args();
    let root = fixture_root();
    let mut case_dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.is_dir())
            .collect(),
        Err(err) => {
            eprintln!("cannot read {}: {err}", root.display());
            std::process::exit(1);
        }
    };
    case_dirs.sort();

    let jit_expected_failures = match common::load_expected_failures(&jit_manifest_path()) {
        Ok(failures) => Arc::new(failures),
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    };
    let is_blessing = common::is_blessing();

    let tallies: BTreeMap<Backend, Arc<Mutex<OpTally>>> = Backend::ALL
        .iter()
        .map(|&backend| (backend, Arc::default()))
        .collect();
    // The JIT's outcomes, for blessing: case name to its error message, or `None` when it passed.
    let jit_outcomes: Arc<Mutex<BTreeMap<String, Option<String>>>> = Arc::default();
    let mut ops_with_cases = BTreeMap::new();
    let mut case_names = BTreeSet::new();
    let mut trials = Vec::new();
    for dir in case_dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let manifest = Arc::new(
            std::fs::read_to_string(dir.join("case.txt"))
                .map_err(|err| format!("case.txt: {err}"))
                .and_then(|text| Manifest::parse(&text)),
        );
        if let Ok(manifest) = &*manifest {
            *ops_with_cases.entry(manifest.op.clone()).or_insert(0usize) += 1;
        }
        case_names.insert(name.clone());
        let dir = Arc::new(dir);
        for backend in Backend::ALL {
            let tally = Arc::clone(&tallies[&backend]);
            let jit_outcomes = Arc::clone(&jit_outcomes);
            let jit_expected_failures = Arc::clone(&jit_expected_failures);
            let manifest = Arc::clone(&manifest);
            let dir = Arc::clone(&dir);
            let name = name.clone();
            trials.push(Trial::test(backend.trial_name(&name), move || {
                let (op, result) = match &*manifest {
                    Ok(manifest) => (manifest.op.as_str(), run_case(&dir, manifest, backend)),
                    Err(err) => ("<bad manifest>", Err(err.clone())),
                };
                if let Ok(mut tally) = tally.lock() {
                    tally.record(op, result.is_ok());
                }
                match backend {
                    // Every case must pass on the reference, blessing or not.
                    Backend::Reference => result.map_err(Failed::from),
                    Backend::Jit => {
                        if let Ok(mut outcomes) = jit_outcomes.lock() {
                            outcomes.insert(name.clone(), result.clone().err());
                        }
                        common::verdict(
                            result,
                            jit_expected_failures
                                .contains_key(&name)
                                .then_some(JIT_EXPECTED_FAILURES),
                        )
                    }
                }
            }));
        }
    }
    {
        let jit_expected_failures = Arc::clone(&jit_expected_failures);
        let case_names = case_names.clone();
        trials.push(Trial::test(
            "jit_expected_failures_name_only_cases",
            move || {
                common::check_manifest_names(
                    &case_names,
                    None,
                    (JIT_EXPECTED_FAILURES, &jit_expected_failures),
                )
            },
        ));
    }

    // Every op needs a case, and every case must name a real op.
    trials.push(Trial::test("every_op_has_a_case", move || {
        let missing: Vec<&str> = Op::NAMES
            .iter()
            .copied()
            .filter(|op| !ops_with_cases.contains_key(*op))
            .collect();
        let unknown: Vec<&String> = ops_with_cases
            .keys()
            .filter(|op| !Op::NAMES.contains(&op.as_str()))
            .collect();
        if missing.is_empty() && unknown.is_empty() {
            Ok(())
        } else {
            Err(
                format!("ops without a case: {missing:?}; cases naming unknown ops: {unknown:?}")
                    .into(),
            )
        }
    }));

    let conclusion = libtest_mimic::run(&args, trials);
    if !args.list {
        for (&backend, tally) in &tallies {
            if let Ok(tally) = tally.lock() {
                tally.print(backend);
            }
        }
        if is_blessing {
            let outcomes = jit_outcomes
                .lock()
                .map(|outcomes| outcomes.clone())
                .unwrap_or_default();
            match common::bless(
                &jit_manifest_path(),
                JIT_EXPECTED_FAILURES_HEADER,
                &jit_expected_failures,
                &case_names,
                &outcomes,
            ) {
                Ok(n_failures) => println!(
                    "{}: wrote {n_failures} expected failures to {}",
                    common::BLESS_VAR,
                    jit_manifest_path().display()
                ),
                Err(err) => {
                    eprintln!("cannot write {}: {err}", jit_manifest_path().display());
                    std::process::exit(1);
                }
            }
        }
    }
    conclusion.exit();
}
