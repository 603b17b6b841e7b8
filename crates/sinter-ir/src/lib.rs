//! `sinter-ir`: the typed graph IR that every stage of sinter reads and writes.
//!
//! - [`DType`], [`Dim`], [`Shape`], [`TensorType`]: element types and shapes with named symbolic dims.
//! - [`Tensor`]: concrete data, for weights and for the reference interpreter.
//! - [`Op`]: the op set, one variant per op with typed attributes (`op.rs` holds the table).
//! - [`Graph`]: inputs, constants and op nodes on a petgraph `StableDiGraph`.
//! - [`infer`]: shape and dtype inference for every op, numpy broadcasting included.
//! - [`mod@verify`]: the verifier, which reports every problem in a graph, not only the first.
//! - [`text`]: the `.sir` text format (printer and parser, round-trip exact) and [`dot`] export.
//!
//! This crate depends on no frontend, optimizer or backend: it is the contract between them.

mod attr;
pub mod bind;
mod buffer;
pub mod dot;
mod dtype;
pub mod fused;
pub use fused::FusedParts;
pub mod geometry;
mod graph;
pub mod infer;
mod op;
pub mod rng;
mod shape;
mod tensor;
pub mod text;
pub mod verify;

pub use attr::{write_f32, write_f64, AttrType, AttrValue};
pub use bind::{bind_inputs, specialize, DimBindings, InputError, SpecializeError};
pub use buffer::Buffer;
pub use dot::to_dot;
pub use dtype::DType;
pub use graph::{Edge, Graph, GraphError, Node, NodeId, NodeKind, Value};
pub use infer::{broadcast_shapes, infer_types, BuildError, InferError, InferErrorKind};
pub use op::{
    AutoPad, CoordTransform, FusedActivation, GeluApprox, NearestMode, Op, OpAttrError, PadMode,
    PoolKind, RecurrentAttrs, RecurrentCell, ReduceAttrs, Reduction, ResizeMode, RnnActivation,
    RnnActivationParams, RnnDirection, BINARY_ELEMENTWISE, MAX_ATTR_SIZE, SELU_ALPHA, SELU_GAMMA,
    UNARY_ELEMENTWISE,
};
pub use shape::{dims_within_max_elements, Dim, Shape, TensorType, MAX_ELEMENTS};
pub use tensor::{Elem, Tensor, TensorData, TensorSizeError};
pub use text::{
    graphs_equal, parse_file, parse_graph, print_graph, ParseError, ParseOptions, PrintOptions,
};
pub use verify::{verify, VerifyError};
