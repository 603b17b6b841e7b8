//! The op fixture suite (`tests/fixtures/ops/` at the workspace root) through lowering and the loop-IR
//! interpreter.
//!
//! Each case directory holds a one-op `model.sir`, `case.txt` (op, input and output names,
//! tolerances) and `input_N.npy` / `output_N.npy`. A case is parsed, lowered with
//! `sinter_loops::lower::lower_graph`, checked with `verify::verify_program` (bindings, every kernel's
//! bounds and typing), run with `interp::run_program` and compared with the expected outputs by
//! `sinter_ref::compare` at the case's tolerances.
//!
//! Cases that are expected to fail are listed in `lower_unsupported.txt` next to this file (`case
//! reason...` per line). **A listed case that passes fails the harness, as does an unlisted case that
//! fails**, so the list never goes stale; a listed name with no case directory fails too.

use libtest_mimic::{Arguments, Failed, Trial};
use sinter_ir::{Tensor, TensorData};
use sinter_ref::compare::{compare, Tolerance};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

struct Manifest {
    op: String,
    input_names: Vec<String>,
    rtol: f64,
    atol: f64,
}

fn parse_manifest(text: &str) -> Result<Manifest, String> {
    let mut fields = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("case.txt: bad line `{line}`"))?;
        fields.insert(key.trim().to_string(), value.trim().to_string());
    }
    let field = |key: &str| {
        fields
            .get(key)
            .cloned()
            .ok_or_else(|| format!("case.txt has no `{key}`"))
    };
    let number = |key: &str| -> Result<f64, String> {
        field(key)?
            .parse()
            .map_err(|e| format!("case.txt `{key}`: {e}"))
    };
    Ok(Manifest {
        op: field("op")?,
        input_names: field("inputs")?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        rtol: number("rtol")?,
        atol: number("atol")?,
    })
}

fn read_npy(path: &Path) -> Result<Tensor, String> {
    let describe = |err: std::io::Error| format!("{}: {err}", path.display());
    let bytes = std::fs::read(path).map_err(describe)?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(describe)?;
    if npy.order() != npyz::Order::C {
        return Err(format!("{}: Fortran order", path.display()));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let npyz::DType::Plain(type_str) = npy.dtype() else {
        return Err(format!("{}: structured dtype", path.display()));
    };
    use npyz::TypeChar;
    let data = match (type_str.type_char(), type_str.size_field()) {
        (TypeChar::Float, 4) => TensorData::F32(npy.into_vec::<f32>().map_err(describe)?.into()),
        (TypeChar::Float, 8) => TensorData::F64(npy.into_vec::<f64>().map_err(describe)?.into()),
        (TypeChar::Int, 8) => TensorData::I64(npy.into_vec::<i64>().map_err(describe)?.into()),
        (TypeChar::Int, 4) => TensorData::I32(npy.into_vec::<i32>().map_err(describe)?.into()),
        (TypeChar::Int, 1) => TensorData::I8(npy.into_vec::<i8>().map_err(describe)?.into()),
        (TypeChar::Uint, 1) => TensorData::U8(npy.into_vec::<u8>().map_err(describe)?.into()),
        (TypeChar::Bool, 1) => TensorData::Bool(npy.into_vec::<bool>().map_err(describe)?.into()),
        _ => return Err(format!("{}: unsupported dtype {type_str}", path.display())),
    };
    Tensor::new(shape, data).map_err(|e| format!("{}: {e}", path.display()))
}

fn run_case(dir: &Path, manifest: &Manifest) -> Result<(), String> {
    let graph =
        sinter_ir::parse_file(&dir.join("model.sir")).map_err(|e| format!("model.sir: {e}"))?;
    let program = sinter_loops::lower::lower_graph(&graph).map_err(|e| e.to_string())?;
    if let Err(errors) = sinter_loops::verify::verify_program(&program) {
        let mut text = String::from("the lowered program does not verify:");
        for err in errors {
            let _ = write!(text, "\n  {err}");
        }
        return Err(text);
    }
    let mut inputs = Vec::new();
    for (idx, name) in manifest.input_names.iter().enumerate() {
        inputs.push((
            name.as_str(),
            read_npy(&dir.join(format!("input_{idx}.npy")))?,
        ));
    }
    let borrowed: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (*n, t)).collect();
    let outputs = sinter_loops::interp::run_program(&program, &borrowed)
        .map_err(|e| format!("interpreter: {e}"))?;
    let mut problems = Vec::new();
    for (idx, (name, actual)) in outputs.iter().enumerate() {
        let expected = read_npy(&dir.join(format!("output_{idx}.npy")))?;
        let comparison = compare(
            actual,
            &expected,
            Tolerance {
                rtol: manifest.rtol,
                atol: manifest.atol,
            },
        );
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

/// `case -> reason` from `lower_unsupported.txt`.
fn expected_failures() -> Result<BTreeMap<String, String>, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lower_unsupported.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (case, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if reason.trim().is_empty() {
            return Err(format!("lower_unsupported.txt: `{case}` has no reason"));
        }
        out.insert(case.to_string(), reason.trim().to_string());
    }
    Ok(out)
}

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ops");
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect(),
        Err(err) => {
            eprintln!("cannot read {}: {err}", root.display());
            std::process::exit(1);
        }
    };
    dirs.sort();
    let expected = match expected_failures() {
        Ok(map) => map,
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    };
    let names: Vec<String> = dirs
        .iter()
        .map(|d| {
            d.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    // Per op: (passing, total).
    let tally: Arc<Mutex<BTreeMap<String, (usize, usize)>>> = Arc::default();
    let mut trials = Vec::new();
    for (dir, name) in dirs.into_iter().zip(names.iter().cloned()) {
        let listed = expected.get(&name).cloned();
        let tally = Arc::clone(&tally);
        trials.push(Trial::test(name, move || {
            let manifest = std::fs::read_to_string(dir.join("case.txt"))
                .map_err(|e| format!("case.txt: {e}"))
                .and_then(|t| parse_manifest(&t));
            let (op, result) = match &manifest {
                Ok(m) => (m.op.clone(), run_case(&dir, m)),
                Err(e) => ("<bad manifest>".to_string(), Err(e.clone())),
            };
            if let Ok(mut tally) = tally.lock() {
                let entry = tally.entry(op).or_default();
                entry.0 += usize::from(result.is_ok());
                entry.1 += 1;
            }
            match (result, listed) {
                (Ok(()), None) | (Err(_), Some(_)) => Ok(()),
                (Ok(()), Some(reason)) => Err(Failed::from(format!(
                    "listed in lower_unsupported.txt ({reason}) but passes: remove it from the list"
                ))),
                (Err(err), None) => Err(Failed::from(err)),
            }
        }));
    }
    let stale: Vec<String> = expected
        .keys()
        .filter(|case| !names.contains(case))
        .cloned()
        .collect();
    trials.push(Trial::test(
        "unsupported_list_names_real_cases",
        move || {
            if stale.is_empty() {
                Ok(())
            } else {
                Err(
                    format!("lower_unsupported.txt lists cases that do not exist: {stale:?}")
                        .into(),
                )
            }
        },
    ));
    let conclusion = libtest_mimic::run(&args, trials);
    if !args.list {
        if let Ok(tally) = tally.lock() {
            let (passed, total) = tally
                .values()
                .fold((0, 0), |(p, t), (op_p, op_t)| (p + op_p, t + op_t));
            println!("\nlowered fixture summary: {passed}/{total} cases pass");
            for (op, (p, t)) in tally.iter() {
                let mark = if p == t { "" } else { "  <-- not all lowered" };
                println!("  {op:<20} {p:>3}/{t:<3}{mark}");
            }
        }
    }
    conclusion.exit();
}
