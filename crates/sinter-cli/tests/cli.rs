//! End-to-end tests of the `sinter` binary: real processes, real files, exit codes and messages.
//!
//! The demo model `examples/models/lenet5` is the main fixture; its `digit_<label>.expected.npy` files
//! hold PyTorch's outputs, so a run here is checked against an independent implementation, not against
//! sinter itself.

use npyz::WriterBuilder;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lenet_dir() -> PathBuf {
    workspace_root().join("examples/models/lenet5")
}

/// Runs the binary from the workspace root.
fn sinter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sinter"))
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("the sinter binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// Asserts the exit code, showing both streams on failure.
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test_name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("sinter-cli-{}-{test_name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn path(&self, file_name: &str) -> PathBuf {
        self.0.join(file_name)
    }

    fn write(&self, file_name: &str, contents: &str) -> String {
        let path = self.path(file_name);
        std::fs::write(&path, contents).expect("write temp file");
        path.to_str().expect("UTF-8 temp path").to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_f32_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let npy = npyz::NpyFile::new(bytes.as_slice()).expect("valid npy");
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().expect("f32 data"))
}

fn write_f32_npy(path: &Path, shape: &[u64], values: &[f32]) {
    let mut bytes = Vec::new();
    let mut writer = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut bytes)
        .begin_nd()
        .expect("npy header");
    writer.extend(values.iter().copied()).expect("npy data");
    writer.finish().expect("npy finish");
    std::fs::write(path, bytes).expect("write npy");
}

const LENET: &str = "examples/models/lenet5/lenet5.sir";

#[test]
fn dump_round_trips_lenet() {
    let tmp = TempDir::new("dump_round_trip");
    let first = sinter(&["dump", LENET]);
    assert_exit(&first, 0);
    let first_text = stdout(&first);
    assert!(
        first_text.contains("input %image: f32[batch,1,28,28]"),
        "{first_text}"
    );
    assert!(first_text.contains("output probs = %12"), "{first_text}");
    // Without --weights-out every constant is printed inline.
    assert!(!first_text.contains("external("));

    let reparsed = tmp.write("dumped.sir", &first_text);
    let second = sinter(&["dump", &reparsed]);
    assert_exit(&second, 0);
    assert_eq!(stdout(&second), first_text);
}

#[test]
fn dump_with_external_weights_round_trips() {
    let tmp = TempDir::new("dump_weights_out");
    let inline = stdout(&sinter(&["dump", LENET]));
    let weights = tmp.path("w.bin");
    let external = sinter(&[
        "dump",
        LENET,
        "--weights-out",
        weights.to_str().unwrap(),
        "--inline-limit",
        "16",
    ]);
    assert_exit(&external, 0);
    let external_text = stdout(&external);
    // The 6-element and 10-element biases stay inline; the weights move to the file.
    assert!(
        external_text.contains(r#"@fc1.weight: f32[120,400] = external("w.bin", offset="#),
        "{external_text}"
    );
    assert!(
        external_text.contains("@conv1.bias: f32[6] = ["),
        "{external_text}"
    );
    let weights_len = std::fs::metadata(&weights).expect("weights written").len();
    assert!(
        weights_len >= 61_000 * 4,
        "weights file has {weights_len} bytes"
    );

    // Parsing the text with its weights file gives back the same graph.
    let text_path = tmp.write("model.sir", &external_text);
    let reloaded = sinter(&["dump", &text_path]);
    assert_exit(&reloaded, 0);
    assert_eq!(stdout(&reloaded), inline);
}

/// `make_lenet5.py` writes the model in the printer's canonical form, weights file included, so the
/// shipped files are what `sinter dump --weights-out` would write (comment lines aside).
#[test]
fn shipped_lenet_is_canonical() {
    let tmp = TempDir::new("lenet_canonical");
    let weights = tmp.path("lenet5.weights.bin");
    let output = sinter(&[
        "dump",
        LENET,
        "--weights-out",
        weights.to_str().unwrap(),
        "--inline-limit",
        "0",
    ]);
    assert_exit(&output, 0);
    let shipped = std::fs::read_to_string(lenet_dir().join("lenet5.sir")).unwrap();
    let shipped_without_comments: String = shipped
        .lines()
        .filter(|line| !line.starts_with(';'))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(stdout(&output), shipped_without_comments);
    let shipped_weights = std::fs::read(lenet_dir().join("lenet5.weights.bin")).unwrap();
    assert!(
        std::fs::read(&weights).unwrap() == shipped_weights,
        "weights files differ"
    );
}

#[test]
fn dump_dot_is_a_digraph() {
    let output = sinter(&["dump", LENET, "--format", "dot"]);
    assert_exit(&output, 0);
    let dot = stdout(&output);
    assert!(dot.trim_start().starts_with("digraph"), "{dot}");
    assert!(dot.trim_end().ends_with('}'), "{dot}");
    assert!(dot.contains("conv"), "{dot}");
}

#[test]
fn run_lenet_predicts_each_sample_like_pytorch() {
    let tmp = TempDir::new("run_samples");
    for label in [0, 3, 7, 9] {
        let input = lenet_dir().join(format!("digit_{label}.npy"));
        let out_dir = tmp.path(&format!("out_{label}"));
        let output = sinter(&[
            "run",
            LENET,
            "--input",
            &format!("image={}", input.display()),
            "--output-dir",
            out_dir.to_str().unwrap(),
        ]);
        assert_exit(&output, 0);
        let text = stdout(&output);
        assert!(text.contains("probs: f32[1,10]"), "{text}");
        assert!(text.contains(&format!("argmax: {label} (")), "{text}");

        let (shape, probs) = read_f32_npy(&out_dir.join("probs.npy"));
        assert_eq!(shape, [1, 10]);
        let (_, expected) = read_f32_npy(&lenet_dir().join(format!("digit_{label}.expected.npy")));
        for (idx, (actual, expected)) in probs.iter().zip(&expected).enumerate() {
            assert!(
                (actual - expected).abs() <= 1e-5,
                "digit {label}, class {idx}: sinter {actual}, PyTorch {expected}"
            );
        }
    }
}

#[test]
fn run_reads_inputs_from_a_directory() {
    let tmp = TempDir::new("run_inputs_dir");
    std::fs::copy(lenet_dir().join("digit_3.npy"), tmp.path("image.npy")).expect("copy input");
    let output = sinter(&["run", LENET, "--inputs", tmp.0.to_str().unwrap()]);
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("argmax: 3 ("),
        "{}",
        stdout(&output)
    );
}

#[test]
fn run_batch_of_two() {
    let tmp = TempDir::new("run_batch");
    let (_, seven) = read_f32_npy(&lenet_dir().join("digit_7.npy"));
    let (_, zero) = read_f32_npy(&lenet_dir().join("digit_0.npy"));
    let batch: Vec<f32> = seven.iter().chain(&zero).copied().collect();
    let input = tmp.path("batch.npy");
    write_f32_npy(&input, &[2, 1, 28, 28], &batch);
    let output = sinter(&[
        "run",
        LENET,
        "--input",
        &format!("image={}", input.display()),
    ]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("probs: f32[2,10]"), "{text}");
    // Argmax is only shown for vectors and [1, N] matrices.
    assert!(!text.contains("argmax"), "{text}");
}

#[test]
fn run_wrong_input_shape_names_input_and_shapes() {
    let tmp = TempDir::new("run_wrong_shape");
    let input = tmp.path("small.npy");
    write_f32_npy(&input, &[1, 1, 27, 28], &vec![0.0; 27 * 28]);
    let output = sinter(&[
        "run",
        LENET,
        "--input",
        &format!("image={}", input.display()),
    ]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(message.contains("`image`"), "{message}");
    assert!(message.contains("f32[batch,1,28,28]"), "{message}");
    assert!(message.contains("[1, 1, 27, 28]"), "{message}");
    assert!(message.contains("small.npy"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn run_missing_input_fails() {
    let output = sinter(&["run", LENET]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(message.contains("missing input `image`"), "{message}");
    assert!(message.contains("--input image="), "{message}");
}

#[test]
fn run_unknown_input_lists_known_ones() {
    let input = lenet_dir().join("digit_7.npy");
    let output = sinter(&[
        "run",
        LENET,
        "--input",
        &format!("image={}", input.display()),
        "--input",
        &format!("extra={}", input.display()),
    ]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(message.contains("unknown input `extra`"), "{message}");
    assert!(message.contains("image"), "{message}");
}

#[test]
fn run_wrong_dtype_fails() {
    let tmp = TempDir::new("run_wrong_dtype");
    let input = tmp.path("ints.npy");
    let mut bytes = Vec::new();
    let mut writer = npyz::WriteOptions::<i64>::new()
        .default_dtype()
        .shape(&[1, 1, 28, 28])
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    writer.extend(std::iter::repeat_n(0i64, 28 * 28)).unwrap();
    writer.finish().unwrap();
    std::fs::write(&input, bytes).unwrap();
    let output = sinter(&[
        "run",
        LENET,
        "--input",
        &format!("image={}", input.display()),
    ]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(
        message.contains("`image`") && message.contains("i64"),
        "{message}"
    );
}

#[test]
fn run_missing_npy_file_fails() {
    let output = sinter(&["run", LENET, "--input", "image=/nonexistent/x.npy"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("/nonexistent/x.npy"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn malformed_sir_reports_line_and_column() {
    let tmp = TempDir::new("malformed");
    let path = tmp.write(
        "bad.sir",
        "graph g {\n  input %x f32[2]\n  output y = %x\n}\n",
    );
    for subcommand in ["dump", "run"] {
        let output = sinter(&[subcommand, &path]);
        assert_exit(&output, 1);
        let message = stderr(&output);
        assert!(message.contains('^'), "{message}");
        assert!(
            message.contains(":2:") || message.contains("line 2"),
            "{message}"
        );
        assert!(!message.contains("panicked"), "{message}");
    }
}

#[test]
fn verifier_reports_every_problem() {
    let tmp = TempDir::new("verify");
    let path = tmp.write(
        "wrong_types.sir",
        "graph g {\n  input %x: f32[2]\n  %0: f32[3] = relu(%x)\n  %1: i64[2] = neg(%x)\n  \
         output y = %0\n  output z = %1\n}\n",
    );
    for subcommand in ["dump", "run"] {
        let output = sinter(&[subcommand, &path]);
        assert_exit(&output, 1);
        let message = stderr(&output);
        assert!(message.contains("(2 problems)"), "{message}");
        assert!(
            message.contains("relu") && message.contains("f32[3]"),
            "{message}"
        );
        assert!(
            message.contains("neg") && message.contains("i64[2]"),
            "{message}"
        );
    }
}

#[test]
fn onnx_is_not_available_yet() {
    for args in [&["run", "model.onnx"][..], &["dump", "model.onnx"][..]] {
        let output = sinter(args);
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains("ONNX import is not available yet"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn jit_backend_is_not_available_yet() {
    let output = sinter(&["run", LENET, "--backend", "jit"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("JIT backend is not available yet"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn missing_model_file_fails() {
    let output = sinter(&["dump", "/nonexistent/model.sir"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("/nonexistent/model.sir"),
        "{}",
        stderr(&output)
    );
}

/// Every `.sir` file in the repository, except error-message fixtures under a folder named
/// `invalid`, sorted so failures are reported in a stable order.
fn repo_sir_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !matches!(name, "target" | ".git" | "invalid") {
                repo_sir_files(&path, out);
            }
        } else if name.ends_with(".sir") {
            out.push(path);
        }
    }
}

/// `sinter dump` parses, verifies and prints every `.sir` file in the repository, and dumping its
/// own output gives the same text again.
#[test]
fn dump_round_trips_every_sir_file_in_the_repo() {
    let mut files = Vec::new();
    repo_sir_files(&workspace_root(), &mut files);
    assert!(
        files.len() > 400,
        "expected the op fixtures, found {} files",
        files.len()
    );
    let tmp = TempDir::new("dump_every_file");
    let mut failures = Vec::new();
    for (file_idx, path) in files.iter().enumerate() {
        let first = sinter(&["dump", path.to_str().expect("utf-8 path")]);
        if first.status.code() != Some(0) {
            failures.push(format!("{}: {}", path.display(), stderr(&first)));
            continue;
        }
        let text = stdout(&first);
        let copy = tmp.write(&format!("{file_idx}.sir"), &text);
        let second = sinter(&["dump", &copy]);
        if stdout(&second) != text {
            failures.push(format!("{}: the dump of the dump differs", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
