//! Inputs the `decode_import` fuzz target (fuzz/) found, minimized, as regression tests.
//!
//! Each is the raw model bytes the fuzzer fed in (minimized with `fuzz/minimize_onnx.py`), so the
//! test exercises exactly the decoder and importer path that failed. The fuzz target's contract:
//! decoding and importing never panic, and a graph the importer returns passes `sinter_ir::verify`.

use bytes::Bytes;
use sinter_ir::Graph;
use sinter_onnx::{decode_model, import_model_proto, ExternalData, ImportError, ImportOptions};

/// Decodes and imports `bytes` as the fuzz target does; a decode error is a test failure here
/// because every regression input below decodes.
fn import_bytes(bytes: &'static [u8]) -> Result<Graph, ImportError> {
    let model = decode_model(Bytes::from_static(bytes)).expect("the regression input decodes");
    import_model_proto(
        &model,
        &ExternalData::unavailable(),
        &ImportOptions::default(),
    )
}

/// Asserts that importing fails with an `ImportError::Graph` whose message contains `expected`.
fn assert_graph_error(result: Result<Graph, ImportError>, expected: &str) {
    match result {
        Err(ImportError::Graph(message)) => assert!(
            message.contains(expected),
            "expected an error about {expected:?}, got {message:?}"
        ),
        Err(other) => panic!("expected ImportError::Graph about {expected:?}, got {other:?}"),
        Ok(graph) => panic!(
            "expected an error about {expected:?}, but the import succeeded with:\n{}",
            sinter_ir::print_graph(&graph, &Default::default())
        ),
    }
}

#[test]
fn a_graph_without_outputs_is_rejected() {
    // ir_version 10, an empty graph, opset 22. It imported to an IR graph without outputs, which
    // `verify` rejects (NoOutputs).
    const MODEL: &[u8] = &[0x08, 0x0a, 0x3a, 0x00, 0x42, 0x04, 0x0a, 0x00, 0x10, 0x16];
    assert_graph_error(import_bytes(MODEL), "no outputs");
}
