//! End-to-end tests of the `sinter` binary: real processes, real files, exit codes and messages.
//!
//! The demo model `examples/models/lenet5` is the main fixture; its `digit_<label>.expected.npy` files
//! hold PyTorch's outputs, so a run here is checked against an independent implementation, not against
//! sinter itself. The ONNX tests use committed ONNX backend node-test cases (`tests/onnx-node/cases`),
//! whose expected outputs come from onnx's reference implementation.

use npyz::WriterBuilder;
use prost::Message;
use sinter_onnx::proto::tensor_proto::DataType;
use sinter_onnx::proto::{
    tensor_shape_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    ValueInfoProto,
};
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

/// The JIT (the default) and the reference interpreter print the same prediction for each sample.
#[test]
fn both_backends_predict_the_same_digit() {
    let image = lenet_dir().join("digit_7.npy");
    let input = format!("image={}", image.display());
    for backend in ["jit", "reference"] {
        let output = sinter(&["run", LENET, "--input", &input, "--backend", backend]);
        assert_exit(&output, 0);
        assert!(
            stdout(&output).contains("argmax: 7"),
            "{backend}: {}",
            stdout(&output)
        );
    }
    let default = sinter(&["run", LENET, "--input", &input, "--threads", "1"]);
    assert_exit(&default, 0);
    assert!(
        stdout(&default).contains("argmax: 7"),
        "{}",
        stdout(&default)
    );
}

/// A wrong input shape is refused by the JIT before anything runs, naming the input, both shapes
/// and the file.
#[test]
fn jit_refuses_a_wrong_input_shape_naming_the_file() {
    let dir = TempDir::new("jit_wrong_shape");
    let bad = dir.path("bad.npy");
    write_f32_npy(&bad, &[1, 1, 27, 28], &[0.0; 27 * 28]);
    let output = sinter(&["run", LENET, "--input", &format!("image={}", bad.display())]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(message.contains("input `image`: expected f32[batch,1,28,28], got f32[1, 1, 27, 28] (axis 2 is 27, expected 28)"), "{message}");
    assert!(message.contains("bad.npy"), "{message}");
}

/// `sinter bench --json` ends with one JSON object holding the promised keys.
#[test]
fn bench_json_reports_compile_latency_and_arena() {
    for backend in ["jit", "reference"] {
        let output = sinter(&[
            "bench",
            LENET,
            "--runs",
            "2",
            "--warmup",
            "1",
            "--json",
            "--backend",
            backend,
            "--dim",
            "batch=2",
        ]);
        assert_exit(&output, 0);
        let text = stdout(&output);
        let last = text.lines().last().expect("a last line");
        assert!(last.starts_with('{') && last.ends_with('}'), "{last}");
        for key in [
            "\"compile_ms\":",
            "\"median_ms\":",
            "\"min_ms\":",
            "\"runs\":2",
            "\"peak_bytes\":",
        ] {
            assert!(last.contains(key), "{backend}: {key} missing in {last}");
        }
        let peak_is_null = last.contains("\"peak_bytes\":null");
        assert_eq!(peak_is_null, backend == "reference", "{last}");
    }
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

// ---------------------------------------------------------------------------------------------------
// ONNX models, `.pb` tensors and `sinter check`.

/// A committed ONNX node-test case directory, relative to the workspace root.
fn node_case(name: &str) -> String {
    format!("tests/onnx-node/cases/{name}")
}

/// Decodes a `.pb` file into a TensorProto.
fn read_tensor_proto(path: &Path) -> TensorProto {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    TensorProto::decode(bytes.as_slice()).expect("a valid TensorProto")
}

/// The f32 values of a TensorProto written with `raw_data`.
fn raw_f32s(proto: &TensorProto) -> Vec<f32> {
    proto
        .raw_data
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes(chunk.try_into().expect("4 bytes")))
        .collect()
}

fn check_case(name: &str) -> Output {
    let dir = node_case(name);
    sinter(&[
        "check",
        &format!("{dir}/model.onnx"),
        &format!("{dir}/test_data_set_0"),
    ])
}

#[test]
fn check_passes_on_node_cases() {
    // Bit-exact results say so; inexact ones report their worst errors (see the mismatch test).
    for (name, detail) in [
        ("test_relu", "all 60 elements equal"),
        ("test_conv_with_strides_padding", "all 12 elements equal"),
    ] {
        let output = check_case(name);
        assert_exit(&output, 0);
        let text = stdout(&output);
        assert!(text.starts_with("ok   output 0 `y` f32["), "{name}: {text}");
        assert!(text.contains(detail), "{name}: {text}");
        assert!(
            text.contains("1 of 1 outputs match (rtol 0.001, atol 0.0000001)"),
            "{name}: {text}"
        );
    }
}

/// Copies a node-test case into `tmp`, so a test can change its files.
fn copy_case(name: &str, tmp: &TempDir) -> PathBuf {
    let source = workspace_root().join(node_case(name));
    let dest = tmp.path(name);
    std::fs::create_dir_all(dest.join("test_data_set_0")).expect("create case copy");
    std::fs::copy(source.join("model.onnx"), dest.join("model.onnx")).expect("copy model");
    for entry in std::fs::read_dir(source.join("test_data_set_0")).expect("read data set") {
        let entry = entry.expect("data set entry");
        std::fs::copy(
            entry.path(),
            dest.join("test_data_set_0").join(entry.file_name()),
        )
        .expect("copy data set file");
    }
    dest
}

#[test]
fn check_reports_a_corrupted_expected_output() {
    let tmp = TempDir::new("check_mismatch");
    let case = copy_case("test_relu", &tmp);
    let data_set = case.join("test_data_set_0");
    let expected_path = data_set.join("output_0.pb");
    let mut expected = read_tensor_proto(&expected_path);
    let mut values = raw_f32s(&expected);
    // Element [0, 1, 2] of the f32[3,4,5] output is off by 0.5.
    values[7] += 0.5;
    expected.raw_data = values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<u8>>()
        .into();
    std::fs::write(&expected_path, expected.encode_to_vec()).expect("write corrupted output");

    let model = case.join("model.onnx");
    let args = ["check", model.to_str().unwrap(), data_set.to_str().unwrap()];
    let output = sinter(&args);
    assert_exit(&output, 1);
    let text = stdout(&output);
    assert!(
        text.contains("FAIL output 0 `y` f32[3,4,5]: 1 of 60 elements outside tolerance"),
        "{text}"
    );
    assert!(
        text.contains("max abs error 5.000e-1 at [0, 1, 2]"),
        "{text}"
    );
    assert!(text.contains("0 of 1 outputs match"), "{text}");

    // A tolerance that covers the error accepts it.
    let mut loose = args.to_vec();
    loose.extend(["--atol", "0.6"]);
    assert_exit(&sinter(&loose), 0);
}

#[test]
fn check_runs_a_sir_model_with_positional_inputs() {
    let tmp = TempDir::new("check_sir");
    let model = tmp.write(
        "relu.sir",
        "graph g {\n  input %data: f32[3,4,5]\n  %0: f32[3,4,5] = relu(%data)\n  output out = %0\n}\n",
    );
    let data_set = workspace_root()
        .join(node_case("test_relu"))
        .join("test_data_set_0");
    let output = sinter(&["check", &model, data_set.to_str().unwrap()]);
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("ok   output 0 `out`"),
        "{}",
        stdout(&output)
    );

    // The wrong op gives a mismatch, not an error.
    let wrong = tmp.write(
        "neg.sir",
        "graph g {\n  input %data: f32[3,4,5]\n  %0: f32[3,4,5] = neg(%data)\n  output out = %0\n}\n",
    );
    assert_exit(&sinter(&["check", &wrong, data_set.to_str().unwrap()]), 1);
}

#[test]
fn check_errors_exit_2() {
    let tmp = TempDir::new("check_errors");
    let case = copy_case("test_relu", &tmp);
    let model = case.join("model.onnx");
    let data_set = case.join("test_data_set_0");

    let missing_dir = sinter(&["check", model.to_str().unwrap(), "/nonexistent/data"]);
    assert_exit(&missing_dir, 2);
    assert!(
        stderr(&missing_dir).contains("/nonexistent/data"),
        "{}",
        stderr(&missing_dir)
    );

    // An expected output of the wrong shape is a mismatch, reported with both types.
    let expected_path = data_set.join("output_0.pb");
    let mut expected = read_tensor_proto(&expected_path);
    expected.dims = vec![60];
    std::fs::write(&expected_path, expected.encode_to_vec()).unwrap();
    let wrong_shape = sinter(&["check", model.to_str().unwrap(), data_set.to_str().unwrap()]);
    assert_exit(&wrong_shape, 1);
    assert!(
        stdout(&wrong_shape).contains("got f32[3, 4, 5], expected f32[60]"),
        "{}",
        stdout(&wrong_shape)
    );

    // A data set without the expected outputs cannot be compared.
    std::fs::remove_file(&expected_path).unwrap();
    let no_outputs = sinter(&["check", model.to_str().unwrap(), data_set.to_str().unwrap()]);
    assert_exit(&no_outputs, 2);
    assert!(
        stderr(&no_outputs).contains("0 expected output files, but the model has 1 output"),
        "{}",
        stderr(&no_outputs)
    );

    // A gap in the numbering is an error, not a shifted binding.
    std::fs::rename(data_set.join("input_0.pb"), data_set.join("input_1.pb")).unwrap();
    let gap = sinter(&["check", model.to_str().unwrap(), data_set.to_str().unwrap()]);
    assert_exit(&gap, 2);
    assert!(stderr(&gap).contains("no `input_0.pb`"), "{}", stderr(&gap));

    // A file that is not a TensorProto names the file.
    std::fs::write(data_set.join("input_0.pb"), b"\xff\xff\xff").unwrap();
    std::fs::remove_file(data_set.join("input_1.pb")).unwrap();
    expected.dims = vec![3, 4, 5];
    std::fs::write(&expected_path, expected.encode_to_vec()).unwrap();
    let garbage = sinter(&["check", model.to_str().unwrap(), data_set.to_str().unwrap()]);
    assert_exit(&garbage, 2);
    let message = stderr(&garbage);
    assert!(
        message.contains("input_0.pb") && message.contains("not a valid ONNX TensorProto"),
        "{message}"
    );
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn run_onnx_reads_and_writes_pb() {
    let tmp = TempDir::new("run_onnx_pb");
    let case = workspace_root().join(node_case("test_relu"));
    let data_set = case.join("test_data_set_0");
    let out_dir = tmp.path("out");
    let output = sinter(&[
        "run",
        case.join("model.onnx").to_str().unwrap(),
        "--inputs",
        data_set.to_str().unwrap(),
        "--output-dir",
        out_dir.to_str().unwrap(),
    ]);
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("y: f32[3,4,5]"),
        "{}",
        stdout(&output)
    );

    // output_0.pb holds what onnx's reference implementation computed, under the output's name.
    let written = read_tensor_proto(&out_dir.join("output_0.pb"));
    let expected = read_tensor_proto(&data_set.join("output_0.pb"));
    assert_eq!(written.name, "y");
    assert_eq!(written.dims, [3, 4, 5]);
    assert_eq!(written.data_type, DataType::Float as i32);
    assert_eq!(raw_f32s(&written), raw_f32s(&expected));
    let (shape, npy_values) = read_f32_npy(&out_dir.join("y.npy"));
    assert_eq!(shape, [3, 4, 5]);
    assert_eq!(npy_values, raw_f32s(&expected));

    // A written `.pb` is a valid `--input`: relu(relu(x)) = relu(x), bit for bit.
    let again_dir = tmp.path("again");
    let again = sinter(&[
        "run",
        case.join("model.onnx").to_str().unwrap(),
        "--input",
        &format!("x={}", out_dir.join("output_0.pb").display()),
        "--output-dir",
        again_dir.to_str().unwrap(),
    ]);
    assert_exit(&again, 0);
    assert_eq!(
        std::fs::read(again_dir.join("output_0.pb")).unwrap(),
        std::fs::read(out_dir.join("output_0.pb")).unwrap()
    );
}

#[test]
fn run_onnx_falls_back_to_npy_inputs() {
    let tmp = TempDir::new("run_onnx_npy");
    let case = workspace_root().join(node_case("test_relu"));
    let input = read_tensor_proto(&case.join("test_data_set_0/input_0.pb"));
    write_f32_npy(&tmp.path("x.npy"), &[3, 4, 5], &raw_f32s(&input));
    let output = sinter(&[
        "run",
        case.join("model.onnx").to_str().unwrap(),
        "--inputs",
        tmp.0.to_str().unwrap(),
    ]);
    assert_exit(&output, 0);

    // With neither file, the error names both.
    let empty = TempDir::new("run_onnx_no_inputs");
    let output = sinter(&[
        "run",
        case.join("model.onnx").to_str().unwrap(),
        "--inputs",
        empty.0.to_str().unwrap(),
    ]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(
        message.contains("input_0.pb") && message.contains("x.npy"),
        "{message}"
    );
}

#[test]
fn dump_onnx_prints_the_imported_graph() {
    let model = format!("{}/model.onnx", node_case("test_relu"));
    let output = sinter(&["dump", &model]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("input %x: f32[3,4,5]"), "{text}");
    assert!(text.contains("= relu(%x)"), "{text}");
    assert!(text.contains("output y = %0"), "{text}");
    assert_eq!(
        stdout(&sinter(&["dump", &model, "--stage", "import"])),
        text
    );

    // The printed graph is valid `.sir`: it checks against the case's data.
    let tmp = TempDir::new("dump_onnx");
    let sir = tmp.write("relu.sir", &text);
    let data_set = format!("{}/test_data_set_0", node_case("test_relu"));
    assert_exit(&sinter(&["check", &sir, &data_set]), 0);
}

const GPT_TS: &str = "tests/models/gpt_decoder_ts";

/// `--stage optimized` prints a graph that parses back, and `--stats`/`--explain` add comments with
/// op counts, rule firings and the rule behind each rewritten node.
#[test]
fn the_optimized_stage_prints_the_fused_graph_with_stats_and_explanations() {
    let model = format!("{GPT_TS}/model.onnx");
    let output = sinter(&[
        "dump",
        &model,
        "--stage",
        "optimized",
        "--stats",
        "--explain",
    ]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    sinter_ir::parse_graph(&text, &sinter_ir::ParseOptions::default())
        .unwrap_or_else(|err| panic!("{err}\n{text}"));
    // Both causal attention blocks become one attention op each, and the tanh GELU is recognised
    // and fused into the MLP's matmul.
    assert_eq!(text.matches("= attention(").count(), 2, "{text}");
    assert_eq!(text.matches("causal=true").count(), 2, "{text}");
    assert_eq!(text.matches("activation=gelu_tanh").count(), 2, "{text}");
    assert!(!text.contains("= softmax("), "{text}");
    assert!(text.contains(";   attention: 0 -> 2"), "{text}");
    assert!(text.contains(";   attention-causal: "), "{text}");
    assert!(text.contains("; phase fuse: "), "{text}");
    let mlp = text
        .lines()
        .find(|line| line.contains("at `/blocks/blocks.0/mlp/mlp.1/Mul_5`"))
        .unwrap_or_else(|| panic!("no explanation of the first MLP: {text}"));
    assert!(
        mlp.starts_with(";   fused_matmul <- fused-matmul-gelu at ")
            && mlp.contains("gelu-tanh-half-x-gate"),
        "{mlp}"
    );
}

#[test]
fn stats_need_the_optimized_stage() {
    let output = sinter(&["dump", LENET, "--stats"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("`--stats` and `--explain` apply to `--stage optimized`"),
        "{}",
        stderr(&output)
    );
}

/// `--no-opt` runs the imported graph; with and without the optimizer the GPT fixture matches
/// onnxruntime, on both backends, at the tolerance every real-model fixture meets.
#[test]
fn check_passes_with_and_without_the_optimizer() {
    let model = format!("{GPT_TS}/model.onnx");
    let data = format!("{GPT_TS}/test_data_set_0");
    for backend in ["jit", "reference"] {
        for no_opt in [false, true] {
            let mut args = vec![
                "check",
                &model,
                &data,
                "--backend",
                backend,
                "--rtol",
                "1e-4",
                "--atol",
                "1e-5",
            ];
            if no_opt {
                args.push("--no-opt");
            }
            let output = sinter(&args);
            assert_exit(&output, 0);
        }
    }
}

/// The compiled stages print every kernel, headed by the graph nodes it came from.
#[test]
fn compiled_stages_print_every_kernel() {
    let loops = sinter(&[
        "dump",
        LENET,
        "--stage",
        "loops",
        "--dim",
        "batch=2",
        "--threads",
        "1",
    ]);
    assert_exit(&loops, 0);
    let text = stdout(&loops);
    assert!(text.contains("B0: f32[2,1,28,28] input image"), "{text}");
    let n_kernels = text.matches("  call (").count();
    assert!(text.contains("vectorize 4"), "{text}");
    // Without the optimizer every conv, pool and dense layer is its own kernel; with it the
    // conv+relu+pool blocks are conv_pool kernels, so there are fewer.
    let unoptimized = sinter(&[
        "dump",
        LENET,
        "--stage",
        "loops",
        "--dim",
        "batch=2",
        "--threads",
        "1",
        "--no-opt",
    ]);
    assert_exit(&unoptimized, 0);
    let unoptimized = stdout(&unoptimized);
    let n_unoptimized = unoptimized.matches("  call (").count();
    assert!(
        n_unoptimized >= 10,
        "LeNet lowers to at least 10 kernels: {unoptimized}"
    );
    assert!(n_kernels < n_unoptimized, "{text}");
    assert!(text.contains("scratch.conv_pool"), "{text}");
    // The clif and asm stages at their defaults (batch 1, every core) print one entry per kernel of
    // the loops stage at the same defaults.
    let defaults = sinter(&["dump", LENET, "--stage", "loops"]);
    assert_exit(&defaults, 0);
    let n_default_kernels = stdout(&defaults).matches("  call (").count();
    for (stage, marker) in [("clif", "function "), ("asm", "ret")] {
        let output = sinter(&["dump", LENET, "--stage", stage]);
        assert_exit(&output, 0);
        let text = stdout(&output);
        assert_eq!(
            text.matches("; kernel ").count(),
            n_default_kernels,
            "{stage}"
        );
        assert!(text.contains(marker), "{stage}: {text}");
        assert!(text.contains("; `batch` = 1"), "{stage}");
    }
}

/// A value info for an f32 tensor of static shape.
fn f32_value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto::tensor(
        name,
        DataType::Float,
        dims.iter()
            .map(|&d| tensor_shape_proto::dimension::Value::DimValue(d)),
    )
}

/// A model with input `x: f32[2]` and one node per op type, each reading `x` and writing graph output
/// `y<i>`. The nodes are independent, so the importer judges each on its own (a node that reads the
/// output of an unsupported one is skipped as a consequence, not reported).
fn fan_out_model(op_types: &[&str]) -> Vec<u8> {
    let node = op_types
        .iter()
        .enumerate()
        .map(|(node_idx, op_type)| NodeProto {
            input: vec!["x".to_string()],
            output: vec![format!("y{node_idx}")],
            name: format!("node{node_idx}"),
            op_type: op_type.to_string(),
            ..Default::default()
        })
        .collect();
    let output = (0..op_types.len())
        .map(|node_idx| f32_value_info(&format!("y{node_idx}"), &[2]))
        .collect();
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(GraphProto {
            node,
            name: "fan_out".to_string(),
            input: vec![f32_value_info("x", &[2])],
            output,
            ..Default::default()
        }),
        ..Default::default()
    };
    model.encode_to_vec()
}

#[test]
fn unsupported_onnx_ops_are_listed() {
    let tmp = TempDir::new("unsupported_ops");
    // Two op types no ONNX version defines, next to a supported one: the error lists both.
    let model = tmp.path("model.onnx");
    std::fs::write(
        &model,
        fan_out_model(&["SinterNoSuchOpA", "Relu", "SinterNoSuchOpB"]),
    )
    .unwrap();
    let data_set = tmp.path("data");
    std::fs::create_dir_all(&data_set).unwrap();
    let check = sinter(&["check", model.to_str().unwrap(), data_set.to_str().unwrap()]);
    assert_exit(&check, 2);
    let message = stderr(&check);
    assert!(
        message.contains("SinterNoSuchOpA") && message.contains("SinterNoSuchOpB"),
        "{message}"
    );
    assert!(!message.contains("panicked"), "{message}");

    // For `dump` and `run` an unsupported op is "not available yet", like the JIT.
    for subcommand in ["dump", "run"] {
        let output = sinter(&[subcommand, model.to_str().unwrap()]);
        assert_exit(&output, 2);
        let message = stderr(&output);
        assert!(
            message.contains("SinterNoSuchOpA") && message.contains("SinterNoSuchOpB"),
            "{message}"
        );
    }

    // The same model with supported ops imports.
    std::fs::write(&model, fan_out_model(&["Relu", "Neg"])).unwrap();
    assert_exit(&sinter(&["dump", model.to_str().unwrap()]), 0);
}

#[test]
fn malformed_onnx_file_fails_without_panic() {
    let tmp = TempDir::new("malformed_onnx");
    let model = tmp.path("model.onnx");
    std::fs::write(&model, b"this is not a protobuf message \xff\xff").unwrap();
    for subcommand in ["dump", "run"] {
        let output = sinter(&[subcommand, model.to_str().unwrap()]);
        assert_exit(&output, 1);
        let message = stderr(&output);
        assert!(message.contains("model.onnx"), "{message}");
        assert!(!message.contains("panicked"), "{message}");
    }
}

/// `test_reshape_reordered_all_dims` passes the Reshape target as a graph input, which the IR keeps as
/// an attribute: `check` and `run` fix it to the given value at import, `dump` has no value for it.
#[test]
fn shape_inputs_are_fixed_at_import_when_their_values_are_given() {
    let case = node_case("test_reshape_reordered_all_dims");
    let model = format!("{case}/model.onnx");
    let data_set = format!("{case}/test_data_set_0");
    let check = sinter(&["check", &model, &data_set]);
    assert_exit(&check, 0);
    let text = stdout(&check);
    assert!(
        text.starts_with(
            "note: input `shape` fixed at import to the given value: the IR needs it as a constant\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("ok   output 0 `reshaped` f32[4,2,3]"),
        "{text}"
    );

    let run = sinter(&["run", &model, "--inputs", &data_set]);
    assert_exit(&run, 0);
    assert!(
        stdout(&run).contains("reshaped: f32[4,2,3]"),
        "{}",
        stdout(&run)
    );
    // The value may also come from `--input`, and then the data input from the directory.
    let run = sinter(&[
        "run",
        &model,
        "--input",
        &format!("shape={data_set}/input_1.pb"),
        "--inputs",
        &data_set,
    ]);
    assert_exit(&run, 0);

    let dump = sinter(&["dump", &model]);
    assert_exit(&dump, 2);
    let message = stderr(&dump);
    assert!(
        message.contains("input 1 (`shape`) must be a constant"),
        "{message}"
    );
    assert!(
        message.contains("`sinter run` and `sinter check` fix `shape` at import"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------------
// Real models (`tests/models`): PyTorch exports with onnxruntime's outputs.

/// `sinter check MODEL DATASET` on a real-model fixture, at the tolerances of `tests/real_models.rs`.
fn check_real_model(name: &str) -> Output {
    let dir = format!("tests/models/{name}");
    sinter(&[
        "check",
        &format!("{dir}/model.onnx"),
        &format!("{dir}/test_data_set_0"),
        "--rtol",
        "1e-4",
        "--atol",
        "1e-5",
    ])
}

#[test]
fn check_passes_on_the_exported_lenet() {
    let output = check_real_model("lenet5_ts");
    assert_exit(&output, 0);
    let text = stdout(&output);
    // The batch dim stays symbolic: nothing is fixed at import.
    assert!(!text.contains("note:"), "{text}");
    assert!(
        text.starts_with("ok   output 0 `logits` f32[2,10]: "),
        "{text}"
    );
    assert!(
        text.contains("1 of 1 outputs match (rtol 0.0001, atol 0.00001)"),
        "{text}"
    );
}

/// nn.MultiheadAttention reshapes to `[seq, batch * heads, head_dim]`, a dim expression the IR does not
/// have: `dump` cannot import the model with `batch` symbolic, `check` and `run` fix `batch` to the
/// size of the given inputs and say so.
#[test]
fn symbolic_dims_are_fixed_at_import_when_the_model_needs_it() {
    let name = "transformer_encoder_ts";
    let check = check_real_model(name);
    assert_exit(&check, 0);
    let text = stdout(&check);
    assert!(
        text.starts_with(
            "note: symbolic dims fixed at import to the sizes of the given inputs (`batch` = 2): \
             the model does not import with them symbolic\n"
        ),
        "{text}"
    );
    assert!(text.contains("1 of 1 outputs match"), "{text}");

    let dir = format!("tests/models/{name}");
    let run = sinter(&[
        "run",
        &format!("{dir}/model.onnx"),
        "--inputs",
        &format!("{dir}/test_data_set_0"),
    ]);
    assert_exit(&run, 0);
    let text = stdout(&run);
    assert!(text.contains("(`batch` = 2)"), "{text}");
    assert!(text.contains("logits: f32[2,16,5]"), "{text}");

    let dump = sinter(&["dump", &format!("{dir}/model.onnx")]);
    assert_exit(&dump, 2);
    let message = stderr(&dump);
    assert!(
        message.contains("would be `batch` * 4; symbolic dims have no expressions"),
        "{message}"
    );
}
