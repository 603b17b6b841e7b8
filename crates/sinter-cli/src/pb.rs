//! Reading and writing tensors as serialized ONNX `TensorProto` files (`.pb`), the tensor format of
//! the ONNX backend-test layout (`test_data_set_0/input_0.pb`, `output_0.pb`).
//!
//! The encoding lives in `sinter_onnx` (`decode_tensor`, `encode_tensor`), so a `.pb` input is
//! checked exactly like a model's initializer: element type, dims against the data present, and
//! external data confined to the file's folder. This module adds the file handling and error context.

use anyhow::{Context, Result};
use sinter_ir::Tensor;
use sinter_onnx::{decode_tensor, encode_tensor};
use std::path::Path;

/// Reads a serialized `TensorProto`. The name stored in it is not used: inputs bind by the name given
/// on the command line or by position.
pub fn read_pb(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    decode_tensor(&bytes, path.parent().unwrap_or(Path::new(".")))
        .with_context(|| format!("cannot read {}", path.display()))
}

/// Writes `tensor` as a serialized `TensorProto` named `name`.
pub fn write_pb(path: &Path, name: &str, tensor: &Tensor) -> Result<()> {
    std::fs::write(path, encode_tensor(name, tensor)?)
        .with_context(|| format!("cannot write {}", path.display()))
}
