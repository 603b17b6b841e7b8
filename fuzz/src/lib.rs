//! Checks shared by the fuzz targets: what must hold for every graph that an untrusted front end
//! (the ONNX importer, the `.sir` parser) accepts.
//!
//! - **Accepted means valid.** A graph the importer returns must pass [`sinter_ir::verify`]; a
//!   verified graph must print, and the printed text must parse back to a structurally equal graph
//!   ([`graphs_equal`]) that prints to the same text.
//! - **Runnable means no panic.** When the graph is small enough to evaluate quickly (see
//!   [`RunLimits`]), [`sinter_ref::run`] on all-zero inputs must return, `Ok` or `Err`.
//!
//! Every check panics on failure, which is how libFuzzer learns about a bug.

use sinter_ir::{
    graphs_equal, parse_graph, print_graph, verify, Graph, NodeKind, ParseOptions, PrintOptions,
    Tensor,
};

/// Panics unless `graph` verifies.
pub fn assert_verifies(graph: &Graph, origin: &str) {
    if let Err(errors) = verify(graph) {
        let text = print_graph(graph, &PrintOptions::default());
        panic!("{origin} produced a graph that fails verification: {errors:?}\n{text}");
    }
}

/// Panics unless `graph` prints, parses back to an equal graph, and prints the same text again.
/// Returns the printed text.
pub fn assert_round_trips(graph: &Graph) -> String {
    let text = print_graph(graph, &PrintOptions::default());
    let reparsed = match parse_graph(&text, &ParseOptions::default()) {
        Ok(reparsed) => reparsed,
        Err(err) => panic!(
            "the printed graph does not parse: {}\n{text}",
            err.render(&text)
        ),
    };
    let reprinted = print_graph(&reparsed, &PrintOptions::default());
    assert_eq!(
        text, reprinted,
        "printing the re-parsed graph changed the text"
    );
    assert!(
        graphs_equal(graph, &reparsed),
        "the re-parsed graph is not structurally equal to the printed one\n{text}"
    );
    text
}

/// Which graphs are small enough to run through the reference interpreter on every fuzz input.
///
/// The interpreter legitimately allocates and computes what the declared shapes ask for, so a tiny
/// model may declare a huge (valid) tensor; running those would report resource limits, not bugs.
#[derive(Clone, Copy, Debug)]
pub struct RunLimits {
    /// The most elements of all graph inputs together (every input dim must be static).
    pub max_input_elements: usize,
    /// The most elements of any one declared value (every declared op result must be static).
    pub max_value_elements: usize,
    /// The most elements of all declared op results together.
    pub max_total_elements: usize,
}

impl Default for RunLimits {
    fn default() -> RunLimits {
        RunLimits {
            max_input_elements: 10_000,
            max_value_elements: 1 << 16,
            max_total_elements: 1 << 20,
        }
    }
}

/// The all-zero inputs to run `graph` on, or `None` when it is outside `limits`.
pub fn zero_inputs_within<'g>(
    graph: &'g Graph,
    limits: &RunLimits,
) -> Option<Vec<(&'g str, Tensor)>> {
    let mut n_input_elements = 0usize;
    let mut inputs = Vec::new();
    for (name, ty) in graph.input_signature() {
        let dims = ty.shape.as_static()?;
        n_input_elements = n_input_elements.checked_add(ty.shape.num_elements()?)?;
        if n_input_elements >= limits.max_input_elements {
            return None;
        }
        inputs.push((name, Tensor::zeros(ty.dtype, dims)));
    }
    let mut n_total_elements = 0usize;
    for id in graph.node_ids() {
        let node = graph.node(id);
        if !matches!(node.kind, NodeKind::Op(_)) {
            continue;
        }
        for ty in &node.outputs {
            let n_elements = ty.shape.num_elements()?;
            n_total_elements = n_total_elements.checked_add(n_elements)?;
            if n_elements > limits.max_value_elements
                || n_total_elements > limits.max_total_elements
            {
                return None;
            }
        }
    }
    Some(inputs)
}

/// Runs `graph` on zero inputs when it is within `limits`; the result is ignored, only a panic counts.
pub fn run_if_small(graph: &Graph, limits: &RunLimits) {
    if let Some(inputs) = zero_inputs_within(graph, limits) {
        let _ = sinter_ref::run(graph, &inputs);
    }
}
