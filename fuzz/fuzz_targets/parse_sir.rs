//! `.sir` text through the parser: any text may be rejected with an error, none may panic, and a
//! parsed graph that verifies must print, parse back equal, and print the same text again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sinter_fuzz::assert_round_trips;
use sinter_ir::{parse_graph, verify, ParseOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    // No base folder: `external(...)` references are rejected, so the fuzzer never reads files.
    let Ok(graph) = parse_graph(src, &ParseOptions::default()) else {
        return;
    };
    if verify(&graph).is_err() {
        return;
    }
    assert_round_trips(&graph);
});
