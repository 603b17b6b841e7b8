//! Importing a decoded ONNX model as a [`sinter_ir::Graph`].
//!
//! [`import_model`] walks the ONNX graph once, in node order (ONNX graphs are topologically sorted;
//! a node that reads a value produced later is an error), and maps each node, by its op type and the
//! model's default-domain opset version, onto IR ops through [`Graph::add_op_inferred`], with the
//! ONNX node name as the IR node's label. One file per op family holds the mappings
//! (`elementwise.rs`, `movement.rs`, `nn.rs`, `spatial.rs`, `reduce.rs`, `attention.rs`,
//! `recurrent.rs`); each follows the "ONNX mapping" section of the op's page in `ir-spec/ops/`.
//! `values.rs` holds the value arena and the per-node context the mappings use, `session.rs` the
//! graph-level walk, `attrs.rs` typed attribute access and `shape_value.rs` symbolic shape values.
//! The table at the end of this file says which function lowers which op type.
//!
//! **The value map.** Every ONNX value name is bound to an operand (an entry of an arena, [`Opd`]) or
//! marked unknown. An operand knows its IR type and any of:
//! - an IR [`sinter_ir::Value`] computed by a node or bound to a graph input;
//! - a constant [`Tensor`] (initializers, `Constant` nodes, folded nodes). A constant becomes a graph
//!   `const` only when an IR node (or a graph output) actually reads it, once, under its ONNX name
//!   (made unique), so constants that are only folded into attributes never reach the graph;
//! - a symbolic shape value (see `shape_value.rs`).
//!
//! **Shape-like inputs become attributes.** The IR keeps Reshape's shape, Slice's starts, Pad's pads,
//! reduction axes and the like as attributes, so those ONNX inputs must be constant once folding is
//! done. Otherwise the node is reported as unsupported, naming the input that must be constant and
//! what it is computed from: graph inputs (tracked for small values) or symbolic dims. A model that
//! passes such parameters as graph inputs (as many ONNX backend tests do) imports once those inputs
//! are fixed with [`ImportOptions::input_values`], a specialization like
//! [`ImportOptions::dim_overrides`]; [`UnsupportedNodes::needs_input_values`] lists them.
//!
//! **Constant folding.** When every present input of an IR op is a known constant and its outputs have
//! at most [`MAX_FOLDED_ELEMENTS`] elements in all, the op is evaluated at import with
//! [`sinter_ref::eval_op`] (after inference has checked it) and its results are constants instead of a
//! node. Shape subgraphs therefore disappear once input shapes are static: `Shape` of a value with
//! static dims is itself a constant. Larger results stay nodes, so a tiny file cannot make the
//! importer allocate a huge folded tensor.
//!
//! **Symbolic shape values.** `Shape` of a value with symbolic dims is emitted as an IR `shape` node
//! and also recorded as a [`shape_value::ShapeValue`] (`[batch, 3, ?]`), propagated through `Gather`
//! with constant indices, `Slice`, `Concat`, `Unsqueeze`, `Squeeze`, `Reshape`, `Cast` to i64,
//! `Identity`, integer arithmetic, and `Where` with a constant condition; `Equal` of shape values is a
//! constant when no run-time size can change it (a symbol is never equal to a negative number, which
//! resolves the TorchScript exporter's `Where(Equal(target, -1), 1, target)` for `expand`). A shape
//! value whose elements are all known becomes a constant, so it folds onward. `Reshape` and `Expand` resolve a symbolic target into their attribute (a symbol equal to
//! the input's dim at that axis becomes `0` for reshape and `1` for expand, one remaining unknown
//! becomes reshape's `-1`); `ConstantOfShape` over symbolic dims fills the shape of a value that has
//! exactly those dims, and it and `Expand` broadcast in a symbol that no input of theirs has from a
//! value that has it (`zeros` of `[layers, batch, hidden]` for an RNN state); each reports the node
//! when that is impossible. Shape nodes whose results end up unused are removed by a final dead-node
//! sweep, as are constants nothing reads.
//!
//! **Ops without an IR op.** `Cos` and `Sin` are evaluated at import on constant inputs (rotary
//! embedding tables) and reported as unsupported on run-time ones.
//!
//! **Dims of graph inputs.** `dim_value` is a static dim; `dim_param` is a symbolic dim of that name
//! unless [`ImportOptions::dim_overrides`] fixes its size; a dim with neither gets a fresh symbol
//! named `<input>_d<axis>`. Symbol names are made identifier-friendly (other characters become `_`)
//! and kept distinct, so the graph prints in the text format.
//!
//! **Errors are collected.** An unsupported op, domain, attribute value or non-constant shape input
//! does not stop the import: the node is skipped, its outputs are marked unknown, and nodes that read
//! unknown values are skipped silently (their failures would only be consequences). At the end every
//! unsupported node is reported in one [`ImportError::Unsupported`]. Other problems of a node (a
//! malformed attribute, inputs that inference rejects) are [`ImportError::Node`] errors; the import
//! also continues past them to collect unsupported nodes, which are reported first when there are
//! any.
//!
//! **Untrusted input never panics.** Attributes are read by type (see `attrs.rs`), missing inputs and
//! outputs are errors, and every tensor derived from the file is sized by what the file holds or
//! bounded by the folding limit.

mod attention;
mod attrs;
mod elementwise;
mod movement;
mod nn;
mod recurrent;
mod reduce;
mod session;
mod shape_value;
mod spatial;
mod values;

use crate::decode::{load_model, DecodeError, LoadedModel};
use crate::proto::ModelProto;
use crate::tensor::{ExternalData, TensorError};
use sinter_ir::{Graph, Op, Reduction, Tensor};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub(crate) use values::{
    dtype_of, invalid, one, unsupported, Deps, Lowered, NodeCx, NodeError, NodeResult, Opd,
};

/// The most elements (all outputs together) a node may produce to be evaluated at import.
pub const MAX_FOLDED_ELEMENTS: usize = 1 << 20;

/// The most input elements (all inputs together) a node may read to be evaluated at import, which
/// bounds the import-time cost of folding ops like a constant matmul.
const MAX_FOLDED_INPUT_ELEMENTS: usize = 1 << 22;

/// Options of [`import_model`].
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Sizes for named symbolic dims (`dim_param`s of graph inputs): `batch = 1` makes every `batch`
    /// dim static, which lets shape subgraphs over it fold.
    pub dim_overrides: BTreeMap<String, usize>,
    /// Values for graph inputs, fixed at import: each named input becomes a constant of the graph
    /// instead of an input. This specializes a model whose shape-like parameters (a Reshape
    /// target, Slice bounds, Resize scales, reduction axes) are graph inputs, which the IR keeps as
    /// attributes; [`UnsupportedNodes::needs_input_values`] says which inputs a model needs this
    /// for. Each value must have the input's declared dtype and a shape that fits its dims.
    pub input_values: BTreeMap<String, Tensor>,
}

/// Why a model could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read or decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Nodes that sinter does not support, all of them.
    #[error("{0}")]
    Unsupported(UnsupportedNodes),
    /// A supported node that is malformed or whose inputs do not fit together.
    #[error("node `{node}` ({op_type}, opset {opset}): {message}")]
    Node {
        node: String,
        op_type: String,
        opset: i64,
        message: String,
    },
    /// An initializer that cannot be converted.
    #[error("initializer `{name}`: {source}")]
    Initializer {
        name: String,
        /// Boxed to keep the error small.
        #[source]
        source: Box<TensorError>,
    },
    /// A graph input that sinter cannot take (type, dtype, rank unknown).
    #[error("graph input `{name}`: {message}")]
    Input { name: String, message: String },
    /// A graph output that is missing or disagrees with its declared type.
    #[error("graph output `{name}`: {message}")]
    Output { name: String, message: String },
    /// A structural problem of the graph (unsorted nodes, a value produced twice, ...).
    #[error("{0}")]
    Graph(String),
}

/// Every unsupported node of a model; `Display` lists them all, one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedNodes {
    pub nodes: Vec<UnsupportedNode>,
}

/// One node the importer cannot map, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedNode {
    /// The ONNX node name, or `#<index>` (its position in the graph) when it has none.
    pub node_name: String,
    pub op_type: String,
    /// The node's domain; empty for the default ONNX domain.
    pub domain: String,
    /// The version of the node's domain that the model imports (0 if it imports none).
    pub opset: i64,
    pub reason: String,
    /// Graph inputs that a parameter of this node is computed from, when the node is unsupported
    /// only because that parameter must be known at import. Fixing these inputs with
    /// [`ImportOptions::input_values`] makes the node importable. Empty otherwise.
    pub needs_input_values: Vec<String>,
}

impl fmt::Display for UnsupportedNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = if self.domain.is_empty() {
            "ai.onnx"
        } else {
            &self.domain
        };
        write!(
            f,
            "node `{}` ({} of {} opset {}): {}",
            self.node_name, self.op_type, domain, self.opset, self.reason
        )
    }
}

impl UnsupportedNodes {
    /// Every graph input some node needs the value of at import (see
    /// [`UnsupportedNode::needs_input_values`]), without repeats, in order of first mention. When
    /// every unsupported node has such inputs, importing again with them in
    /// [`ImportOptions::input_values`] can succeed.
    pub fn needs_input_values(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for name in self.nodes.iter().flat_map(|n| &n.needs_input_values) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// Whether every unsupported node would import with input values fixed.
    pub fn only_needs_input_values(&self) -> bool {
        self.nodes.iter().all(|n| !n.needs_input_values.is_empty())
    }
}

impl fmt::Display for UnsupportedNodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the model has {} unsupported node{}:",
            self.nodes.len(),
            if self.nodes.len() == 1 { "" } else { "s" }
        )?;
        for node in &self.nodes {
            write!(f, "\n  - {node}")?;
        }
        Ok(())
    }
}

/// Loads `path` (see [`load_model`]) and imports it.
pub fn import_file(path: &Path, options: &ImportOptions) -> Result<Graph, ImportError> {
    let loaded = load_model(path)?;
    import_model(&loaded, options)
}

/// Imports a loaded model; external data resolves relative to the model's folder.
pub fn import_model(loaded: &LoadedModel, options: &ImportOptions) -> Result<Graph, ImportError> {
    import_model_proto(&loaded.model, &loaded.external, options)
}

/// Imports a decoded model (for example one from [`crate::decode_model`]), resolving external data
/// with `external` ([`ExternalData::unavailable`] for a model with none).
pub fn import_model_proto(
    model: &ModelProto,
    external: &ExternalData,
    options: &ImportOptions,
) -> Result<Graph, ImportError> {
    session::import_graph(model, external, options)
}

/// How one ONNX op type is lowered.
type Lowering = fn(&mut NodeCx) -> NodeResult<Lowered>;

/// The lowering of a default-domain op type, `None` if sinter does not support it.
fn lowering(op_type: &str) -> Option<Lowering> {
    use elementwise as ew;
    let lowering: Lowering = match op_type {
        // Unary elementwise.
        "Neg" => |cx| ew::unary(cx, Op::Neg {}),
        "Abs" => |cx| ew::unary(cx, Op::Abs {}),
        "Exp" => |cx| ew::unary(cx, Op::Exp {}),
        "Log" => |cx| ew::unary(cx, Op::Log {}),
        "Sqrt" => |cx| ew::unary(cx, Op::Sqrt {}),
        "Reciprocal" => |cx| ew::unary(cx, Op::Reciprocal {}),
        "Relu" => |cx| ew::unary(cx, Op::Relu {}),
        "Sigmoid" => |cx| ew::unary(cx, Op::Sigmoid {}),
        "HardSwish" => |cx| ew::unary(cx, Op::HardSwish {}),
        "Tanh" => |cx| ew::unary(cx, Op::Tanh {}),
        "Erf" => |cx| ew::unary(cx, Op::Erf {}),
        "Cos" => |cx| ew::trig_of_constant(cx, ew::Trig::Cos),
        "Sin" => |cx| ew::trig_of_constant(cx, ew::Trig::Sin),
        "Softplus" => |cx| ew::unary(cx, Op::Softplus {}),
        "Softsign" => |cx| ew::unary(cx, Op::Softsign {}),
        "Mish" => |cx| ew::unary(cx, Op::Mish {}),
        "Floor" => |cx| ew::unary(cx, Op::Floor {}),
        "Ceil" => |cx| ew::unary(cx, Op::Ceil {}),
        "Round" => |cx| ew::unary(cx, Op::Round {}),
        "Sign" => |cx| ew::unary(cx, Op::Sign {}),
        "Not" => |cx| ew::unary(cx, Op::Not {}),
        "LeakyRelu" => ew::leaky_relu,
        "HardSigmoid" => ew::hard_sigmoid,
        "Elu" => ew::elu,
        "Selu" => ew::selu,
        "Gelu" => ew::gelu,
        "Swish" => ew::swish,
        "Clip" => ew::clip,
        "Cast" => ew::cast,
        "CastLike" => ew::cast_like,
        // Binary and variadic elementwise.
        "Add" => |cx| ew::binary(cx, Op::Add {}),
        "Sub" => |cx| ew::binary(cx, Op::Sub {}),
        "Mul" => |cx| ew::binary(cx, Op::Mul {}),
        "Div" => |cx| ew::binary(cx, Op::Div {}),
        "Pow" => |cx| ew::binary(cx, Op::Pow {}),
        "Mod" => ew::mod_,
        "PRelu" => |cx| ew::binary(cx, Op::PRelu {}),
        "Equal" => ew::equal,
        "Less" => |cx| ew::binary(cx, Op::Less {}),
        "Greater" => |cx| ew::binary(cx, Op::Greater {}),
        "LessOrEqual" => |cx| ew::binary(cx, Op::LessOrEqual {}),
        "GreaterOrEqual" => |cx| ew::binary(cx, Op::GreaterOrEqual {}),
        "And" => |cx| ew::binary(cx, Op::And {}),
        "Or" => |cx| ew::binary(cx, Op::Or {}),
        "Where" => ew::where_,
        "Max" => |cx| ew::variadic(cx, ew::Variadic::Max),
        "Min" => |cx| ew::variadic(cx, ew::Variadic::Min),
        "Sum" => |cx| ew::variadic(cx, ew::Variadic::Sum),
        "Mean" => |cx| ew::variadic(cx, ew::Variadic::Mean),
        // Linear algebra, convolution, pooling, normalization.
        "MatMul" => nn::matmul,
        "Gemm" => nn::gemm,
        "Conv" => nn::conv,
        "ConvTranspose" => nn::conv_transpose,
        "MaxPool" => nn::max_pool,
        "AveragePool" => nn::average_pool,
        "GlobalAveragePool" => |cx| ew::unary(cx, Op::GlobalAveragePool {}),
        "GlobalMaxPool" => |cx| ew::unary(cx, Op::GlobalMaxPool {}),
        "BatchNormalization" => nn::batch_norm,
        "InstanceNormalization" => nn::instance_norm,
        "LRN" => nn::lrn,
        "Softmax" => |cx| nn::softmax(cx, nn::SoftmaxKind::Softmax),
        "LogSoftmax" => |cx| nn::softmax(cx, nn::SoftmaxKind::LogSoftmax),
        "LayerNormalization" => nn::layer_norm,
        "RMSNormalization" => nn::rms_norm,
        "GroupNormalization" => nn::group_norm,
        "Attention" => attention::attention,
        "Pad" => spatial::pad,
        "Resize" => spatial::resize,
        "Upsample" => spatial::upsample,
        // Reductions.
        "ReduceSum" => |cx| reduce::reduce(cx, Reduction::Sum),
        "ReduceMean" => |cx| reduce::reduce(cx, Reduction::Mean),
        "ReduceMax" => |cx| reduce::reduce(cx, Reduction::Max),
        "ReduceMin" => |cx| reduce::reduce(cx, Reduction::Min),
        "ReduceProd" => |cx| reduce::reduce(cx, Reduction::Prod),
        "ReduceL1" => |cx| reduce::reduce(cx, Reduction::L1),
        "ReduceL2" => |cx| reduce::reduce(cx, Reduction::L2),
        "ReduceSumSquare" => |cx| reduce::reduce(cx, Reduction::SumSquare),
        "ReduceLogSumExp" => |cx| reduce::reduce(cx, Reduction::LogSumExp),
        "ArgMax" => |cx| reduce::arg_reduce(cx, true),
        "ArgMin" => |cx| reduce::arg_reduce(cx, false),
        // Data movement and shape computations.
        "Identity" => movement::identity,
        "Dropout" => movement::dropout,
        "Constant" => movement::constant,
        "Reshape" => movement::reshape,
        "Flatten" => movement::flatten,
        "Transpose" => movement::transpose,
        "Squeeze" => movement::squeeze,
        "Unsqueeze" => movement::unsqueeze,
        "Concat" => movement::concat,
        "Split" => movement::split,
        "Slice" => movement::slice,
        "Gather" => movement::gather,
        "GatherElements" => movement::gather_elements,
        "Expand" => movement::expand,
        "Tile" => movement::tile,
        "Range" => movement::range,
        "Trilu" => movement::trilu,
        "Shape" => movement::shape,
        "Size" => movement::size,
        "ConstantOfShape" => movement::constant_of_shape,
        // Recurrent layers.
        "RNN" => recurrent::rnn,
        "LSTM" => recurrent::lstm,
        "GRU" => recurrent::gru,
        _ => return None,
    };
    Some(lowering)
}
