//! ONNX model bytes through the whole front end: decode, import, verify, print/parse round trip,
//! and a reference run of small graphs. Any input may be rejected with an error; none may panic,
//! and whatever the importer accepts must be a valid graph.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sinter_fuzz::{assert_round_trips, assert_verifies, run_if_small, RunLimits};
use sinter_onnx::{decode_model, import_model_proto, ExternalData, ImportOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(model) = decode_model(Bytes::copy_from_slice(data)) else {
        return;
    };
    let Ok(graph) = import_model_proto(
        &model,
        &ExternalData::unavailable(),
        &ImportOptions::default(),
    ) else {
        return;
    };
    assert_verifies(&graph, "the ONNX importer");
    assert_round_trips(&graph);
    run_if_small(&graph, &RunLimits::default());
});
