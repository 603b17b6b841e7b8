//! Every IR op against expected values from onnx's reference implementation.
//!
//! Each directory under `tests/fixtures/ops/` is one case, written by `tests/fixtures/gen_op_fixtures.py`
//! (regenerate with `python3 tests/fixtures/gen_op_fixtures.py`): a one-op `model.sir`, its inputs and
//! expected outputs as `.npy` files, and a `case.txt` manifest naming the op, the input and output
//! names in order, and the tolerances. This harness turns every directory into one libtest test named
//! after it, so no case can be skipped without showing up as a failure: a directory whose manifest or
//! files are broken fails like a wrong result does.
//!
//! A test parses and verifies the model, runs it with `sinter_ref::run` and compares every output
//! with `sinter_ref::compare` (the rule of `sinter check`): dtype and shape exactly, float values
//! with `|actual - expected| <= atol + rtol * |expected|` (NaN must meet NaN, an infinity the same
//! infinity), integers and bools exactly. A mismatch reports the worst absolute and relative errors. After the run a per-op pass count is printed, and one extra test checks that every
//! op in `Op::NAMES` has at least one case.

use libtest_mimic::{Arguments, Failed, Trial};
use sinter_ir::{Op, Tensor, TensorData};
use sinter_ref::compare::{compare, Tolerance};
use std::collections::BTreeMap;
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

/// Runs one case directory end to end.
fn run_case(dir: &Path, manifest: &Manifest) -> Result<(), String> {
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
    let outputs =
        sinter_ref::run(&graph, &inputs).map_err(|err| format!("sinter_ref::run: {err}"))?;

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

    fn print(&self) {
        let (n_passed, n_total) = self
            .0
            .values()
            .fold((0, 0), |(p, t), (op_p, op_t)| (p + op_p, t + op_t));
        println!("\nop fixture summary: {n_passed}/{n_total} cases pass");
        for (op, (passed, total)) in &self.0 {
            let mark = if passed == total { "" } else { "  <-- failing" };
            println!("  {op:<20} {passed:>3}/{total:<3}{mark}");
        }
    }
}

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ops")
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

    let tally = Arc::new(Mutex::new(OpTally::default()));
    let mut ops_with_cases = BTreeMap::new();
    let mut trials = Vec::new();
    for dir in case_dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let manifest = std::fs::read_to_string(dir.join("case.txt"))
            .map_err(|err| format!("case.txt: {err}"))
            .and_then(|text| Manifest::parse(&text));
        if let Ok(manifest) = &manifest {
            *ops_with_cases.entry(manifest.op.clone()).or_insert(0usize) += 1;
        }
        let tally = Arc::clone(&tally);
        trials.push(Trial::test(name, move || {
            let (op, result) = match &manifest {
                Ok(manifest) => (manifest.op.as_str(), run_case(&dir, manifest)),
                Err(err) => ("<bad manifest>", Err(err.clone())),
            };
            if let Ok(mut tally) = tally.lock() {
                tally.record(op, result.is_ok());
            }
            result.map_err(Failed::from)
        }));
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
        if let Ok(tally) = tally.lock() {
            tally.print();
        }
    }
    conclusion.exit();
}
