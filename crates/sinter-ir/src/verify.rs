//! The graph verifier.
use crate::Graph;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("graph has no outputs")]
    NoOutputs,
}

/// Checks a graph; returns every problem found.
pub fn verify(graph: &Graph) -> Result<(), Vec<VerifyError>> {
    if graph.outputs().is_empty() {
        return Err(vec![VerifyError::NoOutputs]);
    }
    Ok(())
}
