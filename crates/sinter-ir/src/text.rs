//! The `.sir` text format.
use crate::Graph;

#[derive(Clone, Debug, Default)]
pub struct PrintOptions {}

pub fn print_graph(graph: &Graph, options: &PrintOptions) -> String {
    let _ = options;
    format!("graph {} {{}}\n", graph.name)
}
