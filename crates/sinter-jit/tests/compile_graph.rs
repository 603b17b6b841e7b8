//! Graphs through the whole JIT pipeline (specialise, lower, schedule, compile, run) against the
//! reference interpreter.

use sinter_ir::rng::SplitMix64;
use sinter_ir::text::parse_file;
use sinter_ir::{DType, Tensor};
use sinter_jit::{compile, CompileOptions, ModelError};
use sinter_ref::compare::{compare, Tolerance};
use std::path::Path;

fn lenet() -> sinter_ir::Graph {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/lenet5/lenet5.sir");
    parse_file(&path).expect("lenet parses")
}

#[test]
fn lenet_matches_the_reference_for_two_batch_sizes_and_caches_each() {
    let graph = lenet();
    let model = compile(graph.clone(), &CompileOptions::default()).expect("compile");
    let mut rng = SplitMix64::new(7);
    for batch in [1usize, 3, 1] {
        let image = sinter_ref::random::random_tensor(&mut rng, DType::F32, &[batch, 1, 28, 28]);
        let name = graph.input_signature()[0].0.to_string();
        let expected = sinter_ref::run(&graph, &[(&name, image.clone())]).expect("reference");
        let actual = model.run(&[(&name, &image)]).expect("jit");
        for ((_, e), (_, a)) in expected.iter().zip(&actual) {
            let verdict = compare(a, e, Tolerance::ONNX_DEFAULT);
            assert!(verdict.matches(), "batch {batch}: {verdict:?}");
        }
    }
    assert_eq!(model.n_compiled_programs(), 2, "batch 1 is compiled once");
}

#[test]
fn wrong_inputs_are_refused_before_anything_runs() {
    let graph = lenet();
    let model = compile(graph.clone(), &CompileOptions::default()).expect("compile");
    let name = graph.input_signature()[0].0.to_string();
    let wrong_shape = Tensor::zeros(DType::F32, vec![1, 1, 29, 28]);
    let err = model.run(&[(&name, &wrong_shape)]).unwrap_err();
    assert!(matches!(err, ModelError::Input(_)), "{err}");
    assert!(
        err.to_string().contains("axis 2 is 29, expected 28"),
        "{err}"
    );
    let wrong_dtype = Tensor::zeros(DType::F64, vec![1, 1, 28, 28]);
    assert!(model
        .run(&[(&name, &wrong_dtype)])
        .unwrap_err()
        .to_string()
        .contains("wrong dtype"));
    assert_eq!(
        model.n_compiled_programs(),
        0,
        "nothing was compiled for bad inputs"
    );
}
