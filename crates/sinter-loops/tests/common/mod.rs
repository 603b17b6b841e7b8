//! Helpers shared by the lowering test files: the oracle comparison every lowered program goes
//! through.

use sinter_ir::{Graph, Tensor};
use sinter_loops::interp::run_program;
use sinter_loops::Program;
use sinter_ref::compare::{compare, Tolerance};
use sinter_ref::random::{random_tensor, SplitMix64};

/// Runs `program` (lowered from `graph`) in the loop-IR interpreter and `graph` in `sinter_ref` on
/// the same inputs drawn from `seed`, and asserts every output matches at `tolerance`.
pub fn interp_matches_reference(graph: &Graph, program: &Program, seed: u64, tolerance: Tolerance) {
    let mut rng = SplitMix64::new(seed);
    let inputs: Vec<(String, Tensor)> = graph
        .input_signature()
        .into_iter()
        .map(|(name, ty)| {
            let shape = ty.shape.as_static().unwrap();
            (name.to_string(), random_tensor(&mut rng, ty.dtype, &shape))
        })
        .collect();
    let ref_inputs: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let expected = sinter_ref::run(graph, &ref_inputs).unwrap_or_else(|e| panic!("reference: {e}"));
    let borrowed: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let actual = run_program(program, &borrowed).unwrap_or_else(|e| panic!("interpreter: {e}"));
    assert_eq!(actual.len(), expected.len());
    for ((name, a), (_, e)) in actual.iter().zip(&expected) {
        let comparison = compare(a, e, tolerance);
        assert!(
            comparison.matches(),
            "seed {seed}, output `{name}`: {comparison}"
        );
    }
}
