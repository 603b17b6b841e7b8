//! `sinter-onnx`: the ONNX frontend of sinter.
//!
//! It reads ONNX files and maps their ops, for every opset version, onto IR ops.
//!
//! - [`proto`]: the ONNX protobuf messages as hand-written prost structs (no `protoc` at build time).
//! - [`load_model`] / [`decode_model`]: memory-map and decode a model without copying its weights, and
//!   check the IR version, the default operator set import and the presence of a graph.
//! - [`tensor_from_proto`]: convert an initializer or constant into a [`sinter_ir::Tensor`], from
//!   `raw_data`, typed fields or external data files confined to the model's folder ([`ExternalData`]).
//! - [`import_file`] / [`import_model`]: build a [`sinter_ir::Graph`] from a model, folding constant
//!   and shape subgraphs and reporting every unsupported node in one [`ImportError::Unsupported`]
//!   (see the `import` module's docs for the design).
//! - [`import_specialized`]: import a model that needs its input values (shape-like parameters given
//!   as graph inputs, dims like `batch * heads`), the one policy `sinter run`/`check` and the test
//!   harnesses share.
//!
//! ```
//! use sinter_onnx::{load_model, tensor_from_proto};
//!
//! // A committed test model whose weights live in `external.weights.bin` next to it.
//! let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/external.onnx");
//! let loaded = load_model(&path)?;
//! let graph = loaded.model.graph.as_ref().expect("load_model checks that a graph exists");
//! let w = graph.initializer.iter().find(|t| t.name == "w").expect("initializer w");
//! let tensor = tensor_from_proto(w, &loaded.external)?;
//! assert_eq!(tensor.shape(), [4, 3]);
//! assert_eq!(tensor.as_slice::<f32>().expect("f32 data")[..3], [-2.0, -1.5, -1.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Untrusted input never panics** and never triggers an allocation sized by what the file claims
//! rather than what it holds: sizes are checked against the bytes present before any buffer is built.

mod decode;
mod import;
pub mod proto;
mod specialize;
mod tensor;

pub use decode::{
    decode_model, default_opset_version, load_model, DecodeError, LoadedModel, ModelOrigin,
    MAX_IR_VERSION, MIN_IR_VERSION,
};
pub use import::{
    import_file, import_model, import_model_proto, ImportError, ImportOptions, UnsupportedNode,
    UnsupportedNodes, MAX_FOLDED_ELEMENTS,
};
pub use specialize::{
    import_specialized, positional_inputs, Specialization, SpecializeError, Specialized,
};
pub use tensor::{decode_tensor, encode_tensor, tensor_from_proto, ExternalData, TensorError};
