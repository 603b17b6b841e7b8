//! The op set of the graph IR.
//!
//! Every op is one variant of [`Op`], declared once in the `define_ops!` table below with its text-format
//! name, its input and output names, and its typed attributes with their defaults. The table generates
//! the enum, the names, attribute printing (non-default attributes only) and attribute parsing, so the
//! three can never disagree. Semantics, shape rules and ONNX mappings are in `ir-spec/ops/<name>.md`.
//!
//! Input names ending in `?` are optional (absent inputs are written `_` in the text format); a name
//! ending in `*` is variadic and must be the only input or output. Shape-like parameters that ONNX
//! passes as tensor inputs (Reshape's shape, Slice's starts, Pad's pads, ...) are attributes here: the
//! IR is typed, so every value's shape must follow from the graph alone. The ONNX importer folds those
//! inputs into attributes.

use crate::attr::{attr_enum, AttrType, AttrValue};
use crate::DType;

attr_enum! {
    /// ONNX `auto_pad`: how convolution and pooling pads are chosen.
    AutoPad {
        /// Use the explicit `pads` attribute.
        NotSet = "notset",
        /// Pad so that `out = ceil(in / stride)`, the extra pad at the end.
        SameUpper = "same_upper",
        /// Pad so that `out = ceil(in / stride)`, the extra pad at the start.
        SameLower = "same_lower",
        /// No padding.
        Valid = "valid",
    }
}

attr_enum! {
    /// How `pad` fills the new border.
    PadMode {
        Constant = "constant",
        Reflect = "reflect",
        Edge = "edge",
        Wrap = "wrap",
    }
}

attr_enum! {
    /// Interpolation of `resize`.
    ResizeMode {
        Nearest = "nearest",
        Linear = "linear",
    }
}

attr_enum! {
    /// ONNX `coordinate_transformation_mode` of `resize`: how an output coordinate maps to an input one.
    CoordTransform {
        HalfPixel = "half_pixel",
        HalfPixelSymmetric = "half_pixel_symmetric",
        PytorchHalfPixel = "pytorch_half_pixel",
        AlignCorners = "align_corners",
        Asymmetric = "asymmetric",
    }
}

attr_enum! {
    /// ONNX `nearest_mode` of `resize` in nearest mode: how a fractional input coordinate is rounded.
    NearestMode {
        RoundPreferFloor = "round_prefer_floor",
        RoundPreferCeil = "round_prefer_ceil",
        Floor = "floor",
        Ceil = "ceil",
    }
}

attr_enum! {
    /// Which form of GELU: the exact erf form or the tanh approximation.
    GeluApprox {
        None = "none",
        Tanh = "tanh",
    }
}

attr_enum! {
    /// Direction of a recurrent op. Bidirectional ops have two sets of weights, forward first.
    RnnDirection {
        Forward = "forward",
        Reverse = "reverse",
        Bidirectional = "bidirectional",
    }
}

attr_enum! {
    /// The gate and cell activations ONNX allows in RNN, LSTM and GRU. `alpha`/`beta` come from the op's
    /// `activation_alpha`/`activation_beta` lists, one entry per activation.
    RnnActivation {
        Relu = "relu",
        Tanh = "tanh",
        Sigmoid = "sigmoid",
        /// `alpha * x + beta`
        Affine = "affine",
        /// `x >= 0 ? x : alpha * x`
        LeakyRelu = "leaky_relu",
        /// `x > alpha ? x : 0`
        ThresholdedRelu = "thresholded_relu",
        /// `alpha * tanh(beta * x)`
        ScaledTanh = "scaled_tanh",
        /// `max(0, min(1, alpha * x + beta))`
        HardSigmoid = "hard_sigmoid",
        /// `x >= 0 ? x : alpha * (exp(x) - 1)`
        Elu = "elu",
        Softsign = "softsign",
        Softplus = "softplus",
    }
}

attr_enum! {
    /// The activation a fused op applies to its result. Parameters come from the op's `activation_params`:
    /// `leaky_relu` takes `[alpha]`, `clip` takes `[min, max]` (either may be ±inf); the others take none.
    FusedActivation {
        Identity = "identity", Relu = "relu", LeakyRelu = "leaky_relu", Clip = "clip", Sigmoid = "sigmoid",
        Tanh = "tanh", Silu = "silu", Gelu = "gelu", GeluTanh = "gelu_tanh",
    }
}

attr_enum! {
    /// The pooling of `conv_pool`.
    PoolKind { Max = "max", Average = "average" }
}

/// An attribute problem found while building an op from generic attributes.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OpAttrError {
    #[error("unknown op `{0}`")]
    UnknownOp(String),
    #[error("op `{op}` has no attribute `{attr}`")]
    UnknownAttr { op: &'static str, attr: String },
    #[error("op `{op}` needs attribute `{attr}` ({expected})")]
    MissingAttr {
        op: &'static str,
        attr: &'static str,
        expected: &'static str,
    },
    #[error("attribute `{attr}` of `{op}` must be {expected}, got {got}")]
    WrongAttrType {
        op: &'static str,
        attr: &'static str,
        expected: &'static str,
        got: String,
    },
}

macro_rules! attr_is_default {
    ($value:expr;) => {
        false
    };
    ($value:expr; $default:expr) => {
        $value.identical(&$default)
    };
}

macro_rules! attr_take {
    ($op:expr, $attrs:expr, $name:ident, $ty:ty;) => {
        attr_take_value::<$ty>($op, $attrs, stringify!($name))?.ok_or(OpAttrError::MissingAttr {
            op: $op,
            attr: stringify!($name),
            expected: <$ty as AttrType>::EXPECTED,
        })?
    };
    ($op:expr, $attrs:expr, $name:ident, $ty:ty; $default:expr) => {
        attr_take_value::<$ty>($op, $attrs, stringify!($name))?.unwrap_or($default)
    };
}

fn attr_take_value<T: AttrType>(
    op: &'static str,
    attrs: &mut Vec<(String, AttrValue)>,
    name: &'static str,
) -> Result<Option<T>, OpAttrError> {
    let Some(pos) = attrs.iter().position(|(n, _)| n == name) else {
        return Ok(None);
    };
    let (_, value) = attrs.remove(pos);
    T::from_attr(&value)
        .map(Some)
        .ok_or_else(|| OpAttrError::WrongAttrType {
            op,
            attr: name,
            expected: T::EXPECTED,
            got: format!("{} `{value}`", value.kind()),
        })
}

macro_rules! define_ops {
    ($(
        $(#[$doc:meta])*
        $variant:ident $text:literal [$($input:literal),*] -> [$($output:literal),*]
        { $($field:ident : $ty:ty $(= $default:expr)?),* $(,)? }
    ),* $(,)?) => {
        /// An operation of the graph IR. See the module docs and `ir-spec/ops/`.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Op {
            $($(#[$doc])* $variant { $($field: $ty),* }),*
        }

        impl Op {
            /// Every op's text-format name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),*];

            /// The text-format name (`conv`, `layer_norm`, `lstm`).
            pub fn name(&self) -> &'static str {
                match self {
                    $(Op::$variant { .. } => $text),*
                }
            }

            /// Input names, with `?` marking optional and `*` variadic inputs.
            pub fn input_names(&self) -> &'static [&'static str] {
                match self {
                    $(Op::$variant { .. } => &[$($input),*]),*
                }
            }

            /// The names of the attributes `name`'s op declares (defaults included), or `None` for
            /// an unknown op name.
            pub fn attribute_names_of(name: &str) -> Option<&'static [&'static str]> {
                match name {
                    $($text => Some(&[$(stringify!($field)),*]),)*
                    _ => None,
                }
            }

            /// Output names; a single `*` name means the count depends on the attributes.
            pub fn output_names(&self) -> &'static [&'static str] {
                match self {
                    $(Op::$variant { .. } => &[$($output),*]),*
                }
            }

            /// The attributes whose values differ from their defaults, in declaration order.
            #[allow(unused_variables, unused_mut)]
            pub fn attrs(&self) -> Vec<(&'static str, AttrValue)> {
                let mut out = Vec::new();
                match self {
                    $(Op::$variant { $($field),* } => {
                        $(
                            if !attr_is_default!($field; $($default)?) {
                                out.push((stringify!($field), $field.to_attr()));
                            }
                        )*
                    })*
                }
                out
            }

            /// Builds an op from its name and generic attributes, filling defaults. Every attribute
            /// must be consumed; unknown ones are an error.
            #[allow(unused_variables, unused_mut)]
            pub fn from_attrs(name: &str, mut attrs: Vec<(String, AttrValue)>) -> Result<Op, OpAttrError> {
                let op = match name {
                    $($text => {
                        let attrs = &mut attrs;
                        Op::$variant {
                            $($field: attr_take!($text, attrs, $field, $ty; $($default)?)),*
                        }
                    })*
                    _ => return Err(OpAttrError::UnknownOp(name.to_string())),
                };
                if let Some((attr, _)) = attrs.into_iter().next() {
                    return Err(OpAttrError::UnknownAttr { op: op.name(), attr });
                }
                Ok(op)
            }
        }
    };
}

/// The largest magnitude of a size-like attribute of a window or state: `kernel_shape`, `strides`,
/// `dilations` and `pads` of conv, conv_transpose and the pools, conv_transpose's `output_padding` and
/// `output_shape`, pad's `pads`, resize's `sizes` and the recurrent ops' `hidden_size`. Real models
/// stay far below 2^31; the bound keeps index arithmetic over such attributes from overflowing, and
/// inference and the reference interpreter both reject larger values.
pub const MAX_ATTR_SIZE: i64 = 1 << 31;

/// The default SELU constants, as ONNX gives them.
pub const SELU_ALPHA: f32 = 1.673_263_2;
pub const SELU_GAMMA: f32 = 1.050_701;

define_ops! {
    // ---- unary elementwise ----
    /// `-x`
    Neg "neg" ["x"] -> ["y"] {},
    /// `|x|`
    Abs "abs" ["x"] -> ["y"] {},
    /// `e^x`
    Exp "exp" ["x"] -> ["y"] {},
    /// Natural logarithm.
    Log "log" ["x"] -> ["y"] {},
    Sqrt "sqrt" ["x"] -> ["y"] {},
    /// `1 / x`
    Reciprocal "reciprocal" ["x"] -> ["y"] {},
    /// `max(x, 0)`
    Relu "relu" ["x"] -> ["y"] {},
    /// `x >= 0 ? x : alpha * x`
    LeakyRelu "leaky_relu" ["x"] -> ["y"] { alpha: f32 = 0.01 },
    /// `1 / (1 + e^-x)`
    Sigmoid "sigmoid" ["x"] -> ["y"] {},
    /// `max(0, min(1, alpha * x + beta))`
    HardSigmoid "hard_sigmoid" ["x"] -> ["y"] { alpha: f32 = 0.2, beta: f32 = 0.5 },
    /// `x * max(0, min(1, x / 6 + 1 / 2))`
    HardSwish "hard_swish" ["x"] -> ["y"] {},
    /// `x * sigmoid(x)`
    Silu "silu" ["x"] -> ["y"] {},
    Tanh "tanh" ["x"] -> ["y"] {},
    /// The Gauss error function.
    Erf "erf" ["x"] -> ["y"] {},
    /// `x * Φ(x)`, exactly (`none`) or with the tanh approximation.
    Gelu "gelu" ["x"] -> ["y"] { approximate: GeluApprox = GeluApprox::None },
    /// `x >= 0 ? x : alpha * (e^x - 1)`
    Elu "elu" ["x"] -> ["y"] { alpha: f32 = 1.0 },
    /// `gamma * (x > 0 ? x : alpha * (e^x - 1))`
    Selu "selu" ["x"] -> ["y"] { alpha: f32 = SELU_ALPHA, gamma: f32 = SELU_GAMMA },
    /// `ln(1 + e^x)`
    Softplus "softplus" ["x"] -> ["y"] {},
    /// `x / (1 + |x|)`
    Softsign "softsign" ["x"] -> ["y"] {},
    /// `x * tanh(softplus(x))`
    Mish "mish" ["x"] -> ["y"] {},
    /// `min(max(x, min), max)`; an absent bound does not clip.
    Clip "clip" ["x"] -> ["y"] { min: Option<f64> = None, max: Option<f64> = None },
    Floor "floor" ["x"] -> ["y"] {},
    Ceil "ceil" ["x"] -> ["y"] {},
    /// Rounds half to even.
    Round "round" ["x"] -> ["y"] {},
    /// -1, 0 or 1.
    Sign "sign" ["x"] -> ["y"] {},
    /// Logical not of a bool tensor.
    Not "not" ["x"] -> ["y"] {},
    /// Converts to `to` with numpy `astype` semantics.
    Cast "cast" ["x"] -> ["y"] { to: DType },
    Identity "identity" ["x"] -> ["y"] {},

    // ---- binary and ternary elementwise, numpy broadcasting ----
    Add "add" ["a", "b"] -> ["y"] {},
    Sub "sub" ["a", "b"] -> ["y"] {},
    Mul "mul" ["a", "b"] -> ["y"] {},
    /// Float division; integer division truncates toward zero.
    Div "div" ["a", "b"] -> ["y"] {},
    /// `a ^ b`; the exponent may have another numeric dtype, the result has the base's.
    Pow "pow" ["a", "b"] -> ["y"] {},
    Max "max" ["a", "b"] -> ["y"] {},
    Min "min" ["a", "b"] -> ["y"] {},
    /// `x >= 0 ? x : slope * x`, `slope` broadcast to `x`.
    PRelu "prelu" ["x", "slope"] -> ["y"] {},
    Equal "equal" ["a", "b"] -> ["y"] {},
    Less "less" ["a", "b"] -> ["y"] {},
    Greater "greater" ["a", "b"] -> ["y"] {},
    LessOrEqual "less_or_equal" ["a", "b"] -> ["y"] {},
    GreaterOrEqual "greater_or_equal" ["a", "b"] -> ["y"] {},
    And "and" ["a", "b"] -> ["y"] {},
    Or "or" ["a", "b"] -> ["y"] {},
    /// `cond ? x : y`, all three broadcast together.
    Where "where" ["cond", "x", "y"] -> ["z"] {},

    // ---- linear algebra ----
    /// numpy `matmul`: batched, broadcasting over leading dims, 1-D operands promoted and squeezed.
    MatMul "matmul" ["a", "b"] -> ["y"] {},
    /// `alpha * op(a) @ op(b) + beta * c`, `op` an optional transpose, `c` broadcast to the result.
    Gemm "gemm" ["a", "b", "c?"] -> ["y"] { alpha: f32 = 1.0, beta: f32 = 1.0, trans_a: bool = false, trans_b: bool = false },

    // ---- convolution family ----
    /// N-d convolution (1-d and 2-d at least) of `x: [N, C, *spatial]` with `w: [M, C/group, *kernel]`.
    /// Empty `strides`/`dilations` mean all ones, empty `pads` all zeros.
    Conv "conv" ["x", "w", "b?"] -> ["y"] {
        strides: Vec<i64> = vec![], pads: Vec<i64> = vec![], dilations: Vec<i64> = vec![],
        group: i64 = 1, auto_pad: AutoPad = AutoPad::NotSet,
    },
    /// The transpose (gradient) of `conv`, `w: [C, M/group, *kernel]`.
    ConvTranspose "conv_transpose" ["x", "w", "b?"] -> ["y"] {
        strides: Vec<i64> = vec![], pads: Vec<i64> = vec![], dilations: Vec<i64> = vec![],
        group: i64 = 1, auto_pad: AutoPad = AutoPad::NotSet,
        output_padding: Vec<i64> = vec![], output_shape: Vec<i64> = vec![],
    },
    MaxPool "max_pool" ["x"] -> ["y"] {
        kernel_shape: Vec<i64>, strides: Vec<i64> = vec![], pads: Vec<i64> = vec![],
        dilations: Vec<i64> = vec![], auto_pad: AutoPad = AutoPad::NotSet, ceil_mode: bool = false,
    },
    AveragePool "average_pool" ["x"] -> ["y"] {
        kernel_shape: Vec<i64>, strides: Vec<i64> = vec![], pads: Vec<i64> = vec![],
        dilations: Vec<i64> = vec![], auto_pad: AutoPad = AutoPad::NotSet, ceil_mode: bool = false,
        count_include_pad: bool = false,
    },
    GlobalAveragePool "global_average_pool" ["x"] -> ["y"] {},
    GlobalMaxPool "global_max_pool" ["x"] -> ["y"] {},
    /// Inference batch normalization over axis 1.
    BatchNorm "batch_norm" ["x", "scale", "bias", "mean", "var"] -> ["y"] { epsilon: f32 = 1e-5 },
    InstanceNorm "instance_norm" ["x", "scale", "bias"] -> ["y"] { epsilon: f32 = 1e-5 },
    /// Local response normalization across channels.
    Lrn "lrn" ["x"] -> ["y"] { size: i64, alpha: f32 = 1e-4, beta: f32 = 0.75, bias: f32 = 1.0 },
    /// `pads` is `[begin_0, .., begin_r-1, end_0, .., end_r-1]`; negative pads crop.
    Pad "pad" ["x"] -> ["y"] { pads: Vec<i64>, mode: PadMode = PadMode::Constant, value: f64 = 0.0 },
    /// Exactly one of `scales` and `sizes` is given, one entry per axis.
    Resize "resize" ["x"] -> ["y"] {
        mode: ResizeMode = ResizeMode::Nearest,
        coordinate_transformation_mode: CoordTransform = CoordTransform::HalfPixel,
        nearest_mode: NearestMode = NearestMode::RoundPreferFloor,
        scales: Vec<f32> = vec![], sizes: Vec<i64> = vec![],
    },

    // ---- reductions; empty `axes` reduces all axes unless `noop_with_empty_axes` ----
    ReduceSum "reduce_sum" ["x"] -> ["y"] { axes: Vec<i64> = vec![], keepdims: bool = true, noop_with_empty_axes: bool = false },
    ReduceMean "reduce_mean" ["x"] -> ["y"] { axes: Vec<i64> = vec![], keepdims: bool = true, noop_with_empty_axes: bool = false },
    ReduceMax "reduce_max" ["x"] -> ["y"] { axes: Vec<i64> = vec![], keepdims: bool = true, noop_with_empty_axes: bool = false },
    ReduceMin "reduce_min" ["x"] -> ["y"] { axes: Vec<i64> = vec![], keepdims: bool = true, noop_with_empty_axes: bool = false },
    ReduceProd "reduce_prod" ["x"] -> ["y"] { axes: Vec<i64> = vec![], keepdims: bool = true, noop_with_empty_axes: bool = false },
    ReduceL1 "reduce_l1" ["x"] -> ["y"] { axes: Vec<i64> = vec![], keepdims: bool = true, noop_with_empty_axes: bool = false },
    ReduceL2 "reduce_l2" ["x"] -> ["y"] { axes: Vec<i64> = vec![], keepdims: bool = true, noop_with_empty_axes: bool = false },
    ReduceSumSquare "reduce_sum_square" ["x"] -> ["y"] { axes: Vec<i64> = vec![], keepdims: bool = true, noop_with_empty_axes: bool = false },
    ReduceLogSumExp "reduce_log_sum_exp" ["x"] -> ["y"] { axes: Vec<i64> = vec![], keepdims: bool = true, noop_with_empty_axes: bool = false },
    /// Index (i64) of the maximum along `axis`; the first one unless `select_last_index`.
    ArgMax "arg_max" ["x"] -> ["y"] { axis: i64 = 0, keepdims: bool = true, select_last_index: bool = false },
    ArgMin "arg_min" ["x"] -> ["y"] { axis: i64 = 0, keepdims: bool = true, select_last_index: bool = false },

    // ---- data movement ----
    /// ONNX Reshape: a 0 entry copies the input dim (unless `allowzero`), one -1 entry is inferred.
    Reshape "reshape" ["x"] -> ["y"] { shape: Vec<i64>, allowzero: bool = false },
    /// To 2-d: dims before `axis` form the rows, the rest the columns.
    Flatten "flatten" ["x"] -> ["y"] { axis: i64 = 1 },
    /// Empty `perm` reverses the axes.
    Transpose "transpose" ["x"] -> ["y"] { perm: Vec<i64> = vec![] },
    /// Empty `axes` removes every static dim of size 1.
    Squeeze "squeeze" ["x"] -> ["y"] { axes: Vec<i64> = vec![] },
    /// `axes` index the output.
    Unsqueeze "unsqueeze" ["x"] -> ["y"] { axes: Vec<i64> },
    Concat "concat" ["inputs*"] -> ["y"] { axis: i64 },
    /// One output per entry of `split`.
    Split "split" ["x"] -> ["outputs*"] { split: Vec<i64>, axis: i64 = 0 },
    /// numpy-style slicing with ONNX's clamping of out-of-range starts and ends.
    Slice "slice" ["x"] -> ["y"] { starts: Vec<i64>, ends: Vec<i64>, axes: Vec<i64> = vec![], steps: Vec<i64> = vec![] },
    /// numpy `take` along `axis`; negative indices count from the end.
    Gather "gather" ["data", "indices"] -> ["y"] { axis: i64 = 0 },
    GatherElements "gather_elements" ["data", "indices"] -> ["y"] { axis: i64 = 0 },
    /// Broadcasts `x` together with `shape` (numpy rules, so the result may be larger than `shape`).
    Expand "expand" ["x"] -> ["y"] { shape: Vec<i64> },
    Tile "tile" ["x"] -> ["y"] { repeats: Vec<i64> },
    /// `[start, start + delta, ...]` up to but excluding `limit`.
    Range "range" [] -> ["y"] { start: f64, limit: f64, delta: f64, dtype: DType },
    /// Keeps the upper (or lower) triangle of the last two dims, offset by diagonal `k`.
    Trilu "trilu" ["x"] -> ["y"] { upper: bool = true, k: i64 = 0 },
    /// The input's shape as an i64 vector, optionally sliced by `start` and `end`.
    Shape "shape" ["x"] -> ["y"] { start: i64 = 0, end: Option<i64> = None },
    /// A tensor of `shape` filled with `value`.
    ConstantOfShape "constant_of_shape" [] -> ["y"] { shape: Vec<i64>, value: f64 = 0.0, dtype: DType = DType::F32 },

    // ---- normalization and attention ----
    Softmax "softmax" ["x"] -> ["y"] { axis: i64 = -1 },
    LogSoftmax "log_softmax" ["x"] -> ["y"] { axis: i64 = -1 },
    /// Normalizes over the dims from `axis` to the end; `scale` and `bias` broadcast over them.
    LayerNorm "layer_norm" ["x", "scale", "bias?"] -> ["y"] { axis: i64 = -1, epsilon: f32 = 1e-5 },
    /// `x / sqrt(mean(x^2) + epsilon) * scale` over the dims from `axis` to the end.
    RmsNorm "rms_norm" ["x", "scale"] -> ["y"] { axis: i64 = -1, epsilon: f32 = 1e-5 },
    /// Normalizes each of `num_groups` channel groups; `scale` and `bias` are per channel.
    GroupNorm "group_norm" ["x", "scale", "bias"] -> ["y"] { num_groups: i64, epsilon: f32 = 1e-5 },
    /// Scaled dot-product attention, `softmax(q @ k^T * scale + mask) @ v`. 4-d operands are
    /// `[batch, heads, seq, head_dim]`; 3-d ones are `[batch, seq, heads * head_dim]` and need the head
    /// counts. A bool mask keeps `true` positions; a float mask is added. `scale` defaults to
    /// `1 / sqrt(head_dim)`; a nonzero `softcap` applies `softcap * tanh(s / softcap)` to the scores.
    Attention "attention" ["q", "k", "v", "mask?"] -> ["y"] {
        scale: Option<f32> = None, causal: bool = false,
        q_num_heads: i64 = 0, kv_num_heads: i64 = 0, softcap: f32 = 0.0,
    },

    // ---- recurrent (ONNX layouts and gate orders) ----
    /// Elman RNN: `h = f(x W^T + h R^T + b)`. Gate weights and layouts follow ONNX exactly.
    Rnn "rnn" ["x", "w", "r", "b?", "sequence_lens?", "initial_h?"] -> ["y", "y_h"] {
        hidden_size: i64, direction: RnnDirection = RnnDirection::Forward,
        activations: Vec<RnnActivation> = vec![], activation_alpha: Vec<f32> = vec![],
        activation_beta: Vec<f32> = vec![], clip: Option<f32> = None, layout: i64 = 0,
    },
    /// LSTM with ONNX gate order `i, o, f, c` and optional peepholes `p`.
    Lstm "lstm" ["x", "w", "r", "b?", "sequence_lens?", "initial_h?", "initial_c?", "p?"] -> ["y", "y_h", "y_c"] {
        hidden_size: i64, direction: RnnDirection = RnnDirection::Forward,
        activations: Vec<RnnActivation> = vec![], activation_alpha: Vec<f32> = vec![],
        activation_beta: Vec<f32> = vec![], clip: Option<f32> = None, layout: i64 = 0,
        input_forget: bool = false,
    },
    /// GRU with ONNX gate order `z, r, h`.
    Gru "gru" ["x", "w", "r", "b?", "sequence_lens?", "initial_h?"] -> ["y", "y_h"] {
        hidden_size: i64, direction: RnnDirection = RnnDirection::Forward,
        activations: Vec<RnnActivation> = vec![], activation_alpha: Vec<f32> = vec![],
        activation_beta: Vec<f32> = vec![], clip: Option<f32> = None, layout: i64 = 0,
        linear_before_reset: bool = false,
    },

    // ---- fused ops (introduced by sinter-opt; never imported) ----
    /// `activation(conv(x, w, b) + z)`; the residual `z` has exactly the output's type. See `fused.rs`.
    FusedConv "fused_conv" ["x", "w", "b?", "z?"] -> ["y"] {
        strides: Vec<i64> = vec![], pads: Vec<i64> = vec![], dilations: Vec<i64> = vec![],
        group: i64 = 1, auto_pad: AutoPad = AutoPad::NotSet,
        activation: FusedActivation = FusedActivation::Identity, activation_params: Vec<f32> = vec![],
    },
    /// `activation(matmul(a, b) + bias)`; `bias` broadcasts to the product without enlarging it.
    FusedMatMul "fused_matmul" ["a", "b", "bias?"] -> ["y"] {
        activation: FusedActivation = FusedActivation::Identity, activation_params: Vec<f32> = vec![],
    },
    /// `pool(activation(conv(x, w, b)))`, the pool with its own window (dilations 1, auto_pad notset).
    ConvPool "conv_pool" ["x", "w", "b?"] -> ["y"] {
        strides: Vec<i64> = vec![], pads: Vec<i64> = vec![], dilations: Vec<i64> = vec![],
        group: i64 = 1, auto_pad: AutoPad = AutoPad::NotSet,
        activation: FusedActivation = FusedActivation::Identity, activation_params: Vec<f32> = vec![],
        pool: PoolKind, pool_kernel_shape: Vec<i64>, pool_strides: Vec<i64> = vec![],
        pool_pads: Vec<i64> = vec![], pool_ceil_mode: bool = false, count_include_pad: bool = false,
    },
}

impl Op {
    /// The number of outputs this op produces: the output name count, or `split.len()` for `split`.
    pub fn num_outputs(&self) -> usize {
        match self {
            Op::Split { split, .. } => split.len(),
            _ => self.output_names().len(),
        }
    }

    /// The smallest and largest input count this op accepts (`usize::MAX` for variadic ops).
    pub fn input_count_range(&self) -> (usize, usize) {
        let names = self.input_names();
        if names.iter().any(|n| n.ends_with('*')) {
            return (1, usize::MAX);
        }
        let required = names.iter().filter(|n| !n.ends_with('?')).count();
        (required, names.len())
    }

    /// The name of input `slot_idx`, without its `?`/`*` marker.
    pub fn input_name(&self, slot_idx: usize) -> &'static str {
        let names = self.input_names();
        match names.last() {
            Some(last) if last.ends_with('*') => last.trim_end_matches('*'),
            _ => names
                .get(slot_idx)
                .map(|n| n.trim_end_matches('?'))
                .unwrap_or("extra"),
        }
    }

    /// Whether input `slot_idx` may be absent.
    pub fn input_is_optional(&self, slot_idx: usize) -> bool {
        self.input_names()
            .get(slot_idx)
            .is_some_and(|n| n.ends_with('?'))
    }

    /// Elementwise ops with one input whose output has the input's shape.
    pub fn is_unary_elementwise(&self) -> bool {
        self.input_names() == ["x"]
            && self.output_names() == ["y"]
            && UNARY_ELEMENTWISE.contains(&self.name())
    }

    /// Broadcasting elementwise ops with two inputs.
    pub fn is_binary_elementwise(&self) -> bool {
        BINARY_ELEMENTWISE.contains(&self.name())
    }

    /// Comparison ops: broadcasting, numeric inputs, bool output.
    pub fn is_comparison(&self) -> bool {
        matches!(
            self,
            Op::Equal {}
                | Op::Less {}
                | Op::Greater {}
                | Op::LessOrEqual {}
                | Op::GreaterOrEqual {}
        )
    }

    /// Reduction ops of the `reduce_*` family.
    pub fn is_reduce(&self) -> bool {
        self.reduction().is_some()
    }
}

/// Text names of the unary elementwise ops.
pub const UNARY_ELEMENTWISE: &[&str] = &[
    "neg",
    "abs",
    "exp",
    "log",
    "sqrt",
    "reciprocal",
    "relu",
    "leaky_relu",
    "sigmoid",
    "hard_sigmoid",
    "hard_swish",
    "silu",
    "tanh",
    "erf",
    "gelu",
    "elu",
    "selu",
    "softplus",
    "softsign",
    "mish",
    "clip",
    "floor",
    "ceil",
    "round",
    "sign",
    "not",
    "cast",
    "identity",
];

/// Text names of the broadcasting binary elementwise ops.
pub const BINARY_ELEMENTWISE: &[&str] = &[
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "max",
    "min",
    "prelu",
    "equal",
    "less",
    "greater",
    "less_or_equal",
    "greater_or_equal",
    "and",
    "or",
];

/// The cell of a recurrent op, with the attributes only that op has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecurrentCell {
    Rnn,
    Lstm { input_forget: bool },
    Gru { linear_before_reset: bool },
}

impl RecurrentCell {
    /// Gates per direction: `w` and `r` stack `n_gates * hidden_size` rows.
    pub fn n_gates(self) -> usize {
        match self {
            RecurrentCell::Rnn => 1,
            RecurrentCell::Lstm { .. } => 4,
            RecurrentCell::Gru { .. } => 3,
        }
    }

    /// ONNX's activations for one direction when `activations` is empty (`f`, `f g`, `f g h`); their
    /// count is the number of activations per direction.
    pub fn default_activations(self) -> &'static [RnnActivation] {
        match self {
            RecurrentCell::Rnn => &[RnnActivation::Tanh],
            RecurrentCell::Lstm { .. } => &[
                RnnActivation::Sigmoid,
                RnnActivation::Tanh,
                RnnActivation::Tanh,
            ],
            RecurrentCell::Gru { .. } => &[RnnActivation::Sigmoid, RnnActivation::Tanh],
        }
    }
}

/// The attributes `rnn`, `lstm` and `gru` share, borrowed from the op, with its cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecurrentAttrs<'a> {
    pub cell: RecurrentCell,
    pub hidden_size: i64,
    pub direction: RnnDirection,
    pub activations: &'a [RnnActivation],
    pub activation_alpha: &'a [f32],
    pub activation_beta: &'a [f32],
    pub clip: Option<f32>,
    pub layout: i64,
}

impl Op {
    /// The recurrent attributes of `rnn`, `lstm` and `gru`; `None` for every other op.
    pub fn recurrent_attrs(&self) -> Option<RecurrentAttrs<'_>> {
        let (
            cell,
            hidden_size,
            direction,
            activations,
            activation_alpha,
            activation_beta,
            clip,
            layout,
        ) = match self {
            Op::Rnn {
                hidden_size,
                direction,
                activations,
                activation_alpha,
                activation_beta,
                clip,
                layout,
            } => (
                RecurrentCell::Rnn,
                hidden_size,
                direction,
                activations,
                activation_alpha,
                activation_beta,
                clip,
                layout,
            ),
            Op::Lstm {
                hidden_size,
                direction,
                activations,
                activation_alpha,
                activation_beta,
                clip,
                layout,
                input_forget,
            } => (
                RecurrentCell::Lstm {
                    input_forget: *input_forget,
                },
                hidden_size,
                direction,
                activations,
                activation_alpha,
                activation_beta,
                clip,
                layout,
            ),
            Op::Gru {
                hidden_size,
                direction,
                activations,
                activation_alpha,
                activation_beta,
                clip,
                layout,
                linear_before_reset,
            } => (
                RecurrentCell::Gru {
                    linear_before_reset: *linear_before_reset,
                },
                hidden_size,
                direction,
                activations,
                activation_alpha,
                activation_beta,
                clip,
                layout,
            ),
            _ => return None,
        };
        Some(RecurrentAttrs {
            cell,
            hidden_size: *hidden_size,
            direction: *direction,
            activations,
            activation_alpha,
            activation_beta,
            clip: *clip,
            layout: *layout,
        })
    }
}

/// A recurrent activation with its parameters resolved: the listed `activation_alpha`/`beta`, or
/// ONNX's defaults for the function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnActivationParams {
    pub kind: RnnActivation,
    pub alpha: f64,
    pub beta: f64,
}

impl RnnActivation {
    /// This function with `alpha`/`beta`, each defaulting to ONNX's value when `None`.
    pub fn with_params(self, alpha: Option<f32>, beta: Option<f32>) -> RnnActivationParams {
        let (default_alpha, default_beta) = match self {
            RnnActivation::LeakyRelu => (0.01, 0.0),
            RnnActivation::HardSigmoid => (0.2, 0.5),
            RnnActivation::ScaledTanh | RnnActivation::Affine => (1.0, 0.0),
            RnnActivation::ThresholdedRelu | RnnActivation::Elu => (1.0, 0.0),
            _ => (0.0, 0.0),
        };
        RnnActivationParams {
            kind: self,
            alpha: alpha.map_or(default_alpha, f64::from),
            beta: beta.map_or(default_beta, f64::from),
        }
    }
}

impl RecurrentAttrs<'_> {
    /// The activations of each of `n_dir` directions (`[direction][position]`): the cell's defaults
    /// when `activations` is empty, otherwise the listed ones with their parameters. A list of the
    /// wrong length is an error naming the op.
    pub fn activations_by_direction(
        &self,
        n_dir: usize,
    ) -> Result<Vec<Vec<RnnActivationParams>>, String> {
        let op_name = match self.cell {
            RecurrentCell::Rnn => "rnn",
            RecurrentCell::Lstm { .. } => "lstm",
            RecurrentCell::Gru { .. } => "gru",
        };
        let per_dir = self.cell.default_activations().len();
        let listed = self.activations;
        let (alphas, betas) = (self.activation_alpha, self.activation_beta);
        if listed.is_empty() {
            if !alphas.is_empty() || !betas.is_empty() {
                return Err(format!(
                    "`{op_name}` has activation_alpha/activation_beta but no activations to apply them to"
                ));
            }
            let defaults = self
                .cell
                .default_activations()
                .iter()
                .map(|&kind| kind.with_params(None, None))
                .collect();
            return Ok(vec![defaults; n_dir]);
        }
        if listed.len() != per_dir * n_dir {
            return Err(format!(
                "`{op_name}` needs {} activations ({per_dir} per direction), got {}",
                per_dir * n_dir,
                listed.len()
            ));
        }
        for (name, list) in [("activation_alpha", alphas), ("activation_beta", betas)] {
            if !list.is_empty() && list.len() != listed.len() {
                return Err(format!(
                    "`{op_name}` attribute `{name}` needs one entry per activation ({}), got {}",
                    listed.len(),
                    list.len()
                ));
            }
        }
        Ok(listed
            .chunks(per_dir)
            .enumerate()
            .map(|(d, kinds)| {
                kinds
                    .iter()
                    .enumerate()
                    .map(|(pos, kind)| {
                        let idx = d * per_dir + pos;
                        kind.with_params(alphas.get(idx).copied(), betas.get(idx).copied())
                    })
                    .collect()
            })
            .collect())
    }
}

/// What a `reduce_*` op computes over each group of elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSumExp,
}

/// The attributes every `reduce_*` op shares, borrowed from the op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReduceAttrs<'a> {
    pub axes: &'a [i64],
    pub keepdims: bool,
    pub noop_with_empty_axes: bool,
}

impl Reduction {
    /// The `reduce_*` op computing this reduction with these attributes.
    pub fn op(self, axes: Vec<i64>, keepdims: bool, noop_with_empty_axes: bool) -> Op {
        macro_rules! build {
            ($($variant:ident => $op:ident),*) => {
                match self {
                    $(Reduction::$variant => Op::$op { axes, keepdims, noop_with_empty_axes },)*
                }
            };
        }
        build!(
            Sum => ReduceSum, Mean => ReduceMean, Max => ReduceMax, Min => ReduceMin,
            Prod => ReduceProd, L1 => ReduceL1, L2 => ReduceL2, SumSquare => ReduceSumSquare,
            LogSumExp => ReduceLogSumExp
        )
    }
}

impl Op {
    /// The reduction and shared attributes of a `reduce_*` op; `None` for every other op.
    pub fn reduction(&self) -> Option<(Reduction, ReduceAttrs<'_>)> {
        macro_rules! classify {
            ($($op:ident => $variant:ident),*) => {
                match self {
                    $(Op::$op { axes, keepdims, noop_with_empty_axes } => (
                        Reduction::$variant,
                        ReduceAttrs {
                            axes,
                            keepdims: *keepdims,
                            noop_with_empty_axes: *noop_with_empty_axes,
                        },
                    ),)*
                    _ => return None,
                }
            };
        }
        Some(classify!(
            ReduceSum => Sum, ReduceMean => Mean, ReduceMax => Max, ReduceMin => Min,
            ReduceProd => Prod, ReduceL1 => L1, ReduceL2 => L2, ReduceSumSquare => SumSquare,
            ReduceLogSumExp => LogSumExp
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_resolve_per_direction_with_defaults() {
        let gru = Op::from_attrs(
            "gru",
            vec![
                ("hidden_size".into(), AttrValue::Int(2)),
                ("direction".into(), AttrValue::Ident("bidirectional".into())),
            ],
        )
        .unwrap();
        let attrs = gru.recurrent_attrs().unwrap();
        let by_dir = attrs.activations_by_direction(2).unwrap();
        assert_eq!(by_dir.len(), 2);
        let kinds: Vec<RnnActivation> = by_dir[1].iter().map(|a| a.kind).collect();
        assert_eq!(kinds, [RnnActivation::Sigmoid, RnnActivation::Tanh]);
        let leaky = RnnActivation::LeakyRelu.with_params(None, None);
        assert_eq!((leaky.alpha, leaky.beta), (0.01, 0.0));
        let err = RecurrentAttrs {
            activations: &[RnnActivation::Tanh],
            ..attrs
        }
        .activations_by_direction(2)
        .unwrap_err();
        assert_eq!(err, "`gru` needs 4 activations (2 per direction), got 1");
    }

    #[test]
    fn reduction_round_trips_through_its_op() {
        use Reduction::*;
        for kind in [Sum, Mean, Max, Min, Prod, L1, L2, SumSquare, LogSumExp] {
            let op = kind.op(vec![1, -1], false, true);
            assert!(op.name().starts_with("reduce_"), "{}", op.name());
            let (back, attrs) = op.reduction().expect("a reduce op");
            assert_eq!(back, kind);
            assert_eq!(
                attrs,
                ReduceAttrs {
                    axes: &[1, -1],
                    keepdims: false,
                    noop_with_empty_axes: true
                }
            );
        }
        assert_eq!(
            Op::ArgMax {
                axis: 0,
                keepdims: true,
                select_last_index: false
            }
            .reduction(),
            None
        );
    }

    #[test]
    fn recurrent_attrs_carry_the_cell_and_the_shared_attributes() {
        let lstm = Op::from_attrs(
            "lstm",
            vec![
                ("hidden_size".into(), AttrValue::Int(8)),
                ("input_forget".into(), AttrValue::Bool(true)),
                ("direction".into(), AttrValue::Ident("bidirectional".into())),
            ],
        )
        .unwrap();
        let attrs = lstm.recurrent_attrs().unwrap();
        assert_eq!(attrs.cell, RecurrentCell::Lstm { input_forget: true });
        assert_eq!(
            (attrs.hidden_size, attrs.direction),
            (8, RnnDirection::Bidirectional)
        );
        assert_eq!(attrs.cell.n_gates(), 4);
        assert_eq!(attrs.cell.default_activations().len(), 3);

        let gru = Op::from_attrs("gru", vec![("hidden_size".into(), AttrValue::Int(2))]).unwrap();
        let cell = gru.recurrent_attrs().unwrap().cell;
        assert_eq!(
            cell,
            RecurrentCell::Gru {
                linear_before_reset: false
            }
        );
        assert_eq!((cell.n_gates(), cell.default_activations().len()), (3, 2));
        assert_eq!(
            RecurrentCell::Rnn.default_activations(),
            [RnnActivation::Tanh]
        );

        assert_eq!(Op::Relu {}.recurrent_attrs(), None);
    }
}
