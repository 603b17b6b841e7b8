//! Helpers of the `jit` bench that are not benchmarks themselves: generated ONNX models
//! ([`onnx_build`]), the tract peer ([`tract_peer`]) and the interleaved medians of the ratio tables
//! ([`timing`]). Kept apart so that `jit.rs` reads as the list of what is measured.

pub mod onnx_build;
pub mod timing;
pub mod tract_peer;
