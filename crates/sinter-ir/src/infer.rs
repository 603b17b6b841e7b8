//! Shape and dtype inference for every op, and [`Graph::add_op_inferred`], which adds a node with its
//! inferred output types.
//!
//! Semantics are ONNX's at the latest opset, with the changes `op.rs` documents (shape-like parameters
//! are attributes; `split` has an explicit `split`; `range` and `constant_of_shape` take no inputs;
//! `shape` has `start`/`end`; `max_pool`, `layer_norm` and `attention` have one output). Inference is
//! also where an op is validated against its inputs: input count, required inputs, dtypes (ONNX's type
//! constraints restricted to sinter's dtypes), ranks and attribute values. The verifier reuses it, so a
//! graph that verifies is one that inference accepts node by node.
//!
//! Where ONNX leaves a rule to runtimes, inference follows the reference interpreter (`sinter-ref`)
//! and onnxruntime: pool pads must be smaller than the kernel; `gather_elements` indices may not
//! exceed `data` off the gather axis; `layer_norm`/`rms_norm` parameters have `x`'s dtype and
//! broadcast over the normalized dims `x.shape[axis..]`; `resize` sizes are `floor(f64(scale) * in)`
//! (as `onnx.reference`), and bool is accepted in nearest mode only; `range` counts in f64;
//! `sequence_lens` may be i64 as well as i32; batch_norm parameters and attention's `v` share `x`'s
//! (`q`'s) dtype; global pools need rank 3 and pools a non-empty spatial input; conv_transpose's
//! `output_padding` is smaller than the stride. `tests/infer_ref_agreement.rs` checks, op by op on
//! random cases, that inference accepts exactly what the reference interpreter can evaluate and
//! gives the types it produces.
//!
//! Two IR-wide limits are checked here as in the interpreter: size-like window and state attributes
//! are at most [`MAX_ATTR_SIZE`], and every input and output type keeps the [`MAX_ELEMENTS`]
//! invariant of `shape.rs`.
//!
//! **Symbolic dims.** A symbol stands for one unknown size, and there are no dim expressions
//! (see `shape.rs`). The rules:
//! - Where two dims must be equal (a matmul contraction, concat's other axes, a weight's channel dim)
//!   or broadcast, a symbol meeting a static size is assumed to equal it and the static size wins, as
//!   ONNX assumes. The same symbol twice is fine; two different symbols cannot be proven equal and are
//!   an error.
//! - An output dim that would be an expression of a symbol (a strided conv over `h`, `2 * seq`,
//!   `a + b` in a concat) is an [`InferErrorKind::Symbolic`] error. The exact cases are handled: dims
//!   that pass through, windows with stride 1 whose padding restores the size, reshapes whose symbolic
//!   factors cancel, flatten of one symbol times static dims, full slices.
//! - A listed symbolic axis of `squeeze` is assumed to be 1, and a symbolic axis of `split` to be the
//!   sum of the pieces, as ONNX assumes (the same "static wins" rule as broadcasting); a different size
//!   when the graph runs is an evaluation error.
//! - A slice end of at least `i32::MAX` (ONNX's recommended "to the end" value) is taken to reach the
//!   end of a symbolic dim: symbolic dims are assumed smaller than `i32::MAX`.
//!
//! **No panics.** Attribute values are user input: arithmetic on them is done in `i128` and converted
//! back with checks.

use crate::geometry::slice_range;
use crate::RnnDirection;
use crate::{AutoPad, DType, Dim, Graph, GraphError, Op, PadMode, ResizeMode};
use crate::{RecurrentAttrs, RecurrentCell};
use crate::{Shape, TensorType, Value, MAX_ATTR_SIZE, MAX_ELEMENTS};
use std::fmt;
use std::sync::Arc;

/// Why an op's output types cannot be inferred from its inputs.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("`{op}`: {kind}")]
pub struct InferError {
    /// The op's text name (`broadcast` for a direct call of [`broadcast_shapes`]).
    pub op: &'static str,
    pub kind: InferErrorKind,
}

/// What is wrong, with the expected and the actual value.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InferErrorKind {
    #[error("expects {expected} inputs, got {got}")]
    InputCount { expected: String, got: usize },
    #[error("input `{name}` (slot {slot_idx}) is required but absent")]
    MissingInput { slot_idx: usize, name: &'static str },
    #[error("input `{input}` must be {expected}, got {got}")]
    DType {
        input: String,
        expected: String,
        got: DType,
    },
    #[error("input `{input}` must have rank {expected}, got {got}")]
    Rank {
        input: String,
        expected: String,
        got: TensorType,
    },
    /// Input shapes that do not fit together.
    #[error("{0}")]
    Shape(String),
    #[error("attribute `{attr}` {message}")]
    Attr { attr: &'static str, message: String },
    /// The output would need a dim expression over a symbol.
    #[error("{0}; symbolic dims have no expressions, so this dim cannot be represented")]
    Symbolic(String),
}

type InferResult<T> = Result<T, InferError>;

/// The numpy broadcast of two shapes, with symbolic dims: equal dims stay, 1 against `d` gives `d`,
/// a symbol against a static `n > 1` gives `n` (assumed equal, as ONNX does), and two different
/// symbols are an error because they cannot be proven compatible.
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Result<Shape, InferError> {
    broadcast_dims(a, b).map_err(|message| InferError {
        op: "broadcast",
        kind: InferErrorKind::Shape(message),
    })
}

fn broadcast_dims(a: &Shape, b: &Shape) -> Result<Shape, String> {
    let rank = a.rank().max(b.rank());
    let one = Dim::Static(1);
    let mut dims = Vec::with_capacity(rank);
    for axis in 0..rank {
        let da = (axis + a.rank())
            .checked_sub(rank)
            .map_or(&one, |idx| &a.0[idx]);
        let db = (axis + b.rank())
            .checked_sub(rank)
            .map_or(&one, |idx| &b.0[idx]);
        let dim = match (da, db) {
            _ if da == db => da.clone(),
            _ if da.is_one() => db.clone(),
            _ if db.is_one() => da.clone(),
            (Dim::Sym(_), Dim::Static(_)) => db.clone(),
            (Dim::Static(_), Dim::Sym(_)) => da.clone(),
            (Dim::Static(_), Dim::Static(_)) => {
                return Err(format!(
                    "shapes {a} and {b} do not broadcast: axis {axis} of the result has sizes {da} and {db}"
                ))
            }
            (Dim::Sym(_), Dim::Sym(_)) => {
                return Err(format!(
                    "shapes {a} and {b} do not provably broadcast: axis {axis} of the result has the \
                     different symbols `{da}` and `{db}`"
                ))
            }
        };
        dims.push(dim);
    }
    Ok(Shape(dims))
}

/// The one dim two dims denote when they must be equal: a symbol against a static size is assumed to
/// be that size. `None` when they differ provably or cannot be proven equal.
fn unify_dims(a: &Dim, b: &Dim) -> Option<Dim> {
    match (a, b) {
        _ if a == b => Some(a.clone()),
        (Dim::Sym(_), Dim::Static(_)) => Some(b.clone()),
        (Dim::Static(_), Dim::Sym(_)) => Some(a.clone()),
        _ => None,
    }
}

/// The output types of `op` applied to inputs of the given types (`None` for absent optional inputs;
/// trailing absent inputs may be left out).
pub fn infer_types(op: &Op, inputs: &[Option<&TensorType>]) -> Result<Vec<TensorType>, InferError> {
    let cx = Cx { op, inputs };
    cx.check_arity()?;
    for (slot_idx, input) in inputs.iter().enumerate() {
        if let Some(ty) = input {
            cx.check_max_elements(&format!("input `{}`", cx.label(slot_idx)), ty)?;
        }
    }
    let outputs = infer_unchecked(&cx)?;
    for (port_idx, ty) in outputs.iter().enumerate() {
        cx.check_max_elements(&format!("output {port_idx}"), ty)?;
    }
    Ok(outputs)
}

/// The output types, before the element-count invariant is checked on them.
fn infer_unchecked(cx: &Cx) -> Result<Vec<TensorType>, InferError> {
    let cx = *cx;
    let op = cx.op;
    use Op::*;
    let one = |ty: InferResult<TensorType>| ty.map(|ty| vec![ty]);
    match op {
        Neg {} | Relu {} => one(unary(&cx, SIGNED)),
        Abs {} | Sign {} => one(unary(&cx, NUMERIC)),
        Erf {}
        | Exp {}
        | Log {}
        | Sqrt {}
        | Reciprocal {}
        | LeakyRelu { .. }
        | Sigmoid {}
        | HardSigmoid { .. }
        | HardSwish {}
        | Silu {}
        | Tanh {}
        | Gelu { .. }
        | Elu { .. }
        | Selu { .. }
        | Softplus {}
        | Softsign {}
        | Mish {}
        | Floor {}
        | Ceil {}
        | Round {} => one(unary(&cx, FLOAT)),
        Clip { min, max } => one(clip(&cx, *min, *max)),
        Not {} => one(unary(&cx, BOOL)),
        Cast { to } => one(cx.input(0).map(|x| TensorType::new(*to, x.shape.clone()))),
        Identity {} => one(unary(&cx, ANY)),

        Add {} | Sub {} | Mul {} | Div {} | Max {} | Min {} => one(binary(&cx, NUMERIC)),
        Pow {} => one(pow(&cx)),
        PRelu {} => one(prelu(&cx)),
        Equal {} => one(comparison(&cx, ANY)),
        Less {} | Greater {} | LessOrEqual {} | GreaterOrEqual {} => one(comparison(&cx, NUMERIC)),
        And {} | Or {} => one(binary(&cx, BOOL)),
        Where {} => one(where_(&cx)),

        MatMul {} => one(matmul(&cx)),
        Gemm {
            trans_a, trans_b, ..
        } => one(gemm(&cx, *trans_a, *trans_b)),

        Conv {
            strides,
            pads,
            dilations,
            group,
            auto_pad,
        } => {
            let window = WindowAttrs {
                strides,
                pads,
                dilations,
                auto_pad: *auto_pad,
                ceil_mode: false,
            };
            one(conv(&cx, window, *group))
        }
        ConvTranspose {
            strides,
            pads,
            dilations,
            group,
            auto_pad,
            output_padding,
            output_shape,
        } => {
            let window = WindowAttrs {
                strides,
                pads,
                dilations,
                auto_pad: *auto_pad,
                ceil_mode: false,
            };
            one(conv_transpose(
                &cx,
                window,
                *group,
                output_padding,
                output_shape,
            ))
        }
        MaxPool {
            kernel_shape,
            strides,
            pads,
            dilations,
            auto_pad,
            ceil_mode,
        } => {
            let window = WindowAttrs {
                strides,
                pads,
                dilations,
                auto_pad: *auto_pad,
                ceil_mode: *ceil_mode,
            };
            one(pool(&cx, MAX_POOL, kernel_shape, window))
        }
        AveragePool {
            kernel_shape,
            strides,
            pads,
            dilations,
            auto_pad,
            ceil_mode,
            count_include_pad: _,
        } => {
            let window = WindowAttrs {
                strides,
                pads,
                dilations,
                auto_pad: *auto_pad,
                ceil_mode: *ceil_mode,
            };
            one(pool(&cx, FLOAT, kernel_shape, window))
        }
        GlobalAveragePool {} | GlobalMaxPool {} => one(global_pool(&cx)),
        BatchNorm { .. } => one(batch_norm(&cx)),
        InstanceNorm { .. } => one(instance_norm(&cx)),
        Lrn { size, .. } => one(lrn(&cx, *size)),
        Pad { pads, mode, value } => one(pad(&cx, pads, *mode, *value)),
        Resize {
            mode,
            scales,
            sizes,
            ..
        } => one(resize(&cx, *mode, scales, sizes)),

        ReduceSum {
            axes,
            keepdims,
            noop_with_empty_axes,
        }
        | ReduceMean {
            axes,
            keepdims,
            noop_with_empty_axes,
        }
        | ReduceProd {
            axes,
            keepdims,
            noop_with_empty_axes,
        }
        | ReduceL1 {
            axes,
            keepdims,
            noop_with_empty_axes,
        }
        | ReduceL2 {
            axes,
            keepdims,
            noop_with_empty_axes,
        }
        | ReduceSumSquare {
            axes,
            keepdims,
            noop_with_empty_axes,
        }
        | ReduceLogSumExp {
            axes,
            keepdims,
            noop_with_empty_axes,
        } => one(reduce(
            &cx,
            REDUCE_ARITH,
            axes,
            *keepdims,
            *noop_with_empty_axes,
        )),
        ReduceMax {
            axes,
            keepdims,
            noop_with_empty_axes,
        }
        | ReduceMin {
            axes,
            keepdims,
            noop_with_empty_axes,
        } => one(reduce(
            &cx,
            NUMERIC_OR_BOOL,
            axes,
            *keepdims,
            *noop_with_empty_axes,
        )),
        ArgMax { axis, keepdims, .. } | ArgMin { axis, keepdims, .. } => {
            one(arg_reduce(&cx, *axis, *keepdims))
        }

        Reshape { shape, allowzero } => one(reshape(&cx, shape, *allowzero)),
        Flatten { axis } => one(flatten(&cx, *axis)),
        Transpose { perm } => one(transpose(&cx, perm)),
        Squeeze { axes } => one(squeeze(&cx, axes)),
        Unsqueeze { axes } => one(unsqueeze(&cx, axes)),
        Concat { axis } => one(concat(&cx, *axis)),
        Split { split, axis } => split_op(&cx, split, *axis),
        Slice {
            starts,
            ends,
            axes,
            steps,
        } => one(slice(&cx, starts, ends, axes, steps)),
        Gather { axis } => one(gather(&cx, *axis)),
        GatherElements { axis } => one(gather_elements(&cx, *axis)),
        Expand { shape } => one(expand(&cx, shape)),
        Tile { repeats } => one(tile(&cx, repeats)),
        Range {
            start,
            limit,
            delta,
            dtype,
        } => one(range(&cx, *start, *limit, *delta, *dtype)),
        Trilu { .. } => one(trilu(&cx)),
        Shape { start, end } => one(shape_op(&cx, *start, *end)),
        ConstantOfShape {
            shape,
            value,
            dtype,
        } => one(constant_of_shape(&cx, shape, *value, *dtype)),

        Softmax { axis } | LogSoftmax { axis } => one(softmax(&cx, *axis)),
        LayerNorm { axis, .. } => one(layer_norm(&cx, *axis)),
        RmsNorm { axis, .. } => one(rms_norm(&cx, *axis)),
        GroupNorm { num_groups, .. } => one(group_norm(&cx, *num_groups)),
        Attention {
            q_num_heads,
            kv_num_heads,
            ..
        } => one(attention(&cx, *q_num_heads, *kv_num_heads)),

        Rnn { .. } | Lstm { .. } | Gru { .. } => {
            let attrs = op
                .recurrent_attrs()
                .expect("rnn, lstm and gru have recurrent attributes");
            recurrent(&cx, &attrs)
        }

        FusedConv { .. } | FusedMatMul { .. } | ConvPool { .. } => one(fused(&cx)),
    }
}

// ---- graph building ----

/// Adding a node with inferred types failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BuildError {
    /// An input value does not exist in the graph.
    #[error("{node}: {source}")]
    Graph { node: String, source: GraphError },
    /// The op rejects its inputs.
    #[error("{node}: {}", .source.kind)]
    Infer { node: String, source: InferError },
}

/// `conv node `conv1``, as `Node::describe` would print the node once added.
fn describe_op_node(op: &Op, label: Option<&str>) -> String {
    match label {
        Some(label) => format!("{} node `{label}`", op.name()),
        None => format!("{} node", op.name()),
    }
}

impl Graph {
    /// The type of `value`, or `None` if no such node or port exists.
    fn checked_value_type(&self, value: Value) -> Option<&TensorType> {
        if !self.contains_node(value.node) {
            return None;
        }
        self.node(value.node).outputs.get(value.port as usize)
    }

    /// Adds an op node whose output types are inferred from its inputs, and returns its outputs.
    /// `inputs[slot]` is `None` for an absent optional input.
    pub fn add_op_inferred(
        &mut self,
        op: Op,
        inputs: &[Option<Value>],
        label: Option<String>,
    ) -> Result<Vec<Value>, BuildError> {
        let node = describe_op_node(&op, label.as_deref());
        let outputs = {
            let mut types = Vec::with_capacity(inputs.len());
            for value in inputs {
                match value {
                    None => types.push(None),
                    Some(value) => match self.checked_value_type(*value) {
                        Some(ty) => types.push(Some(ty)),
                        None => {
                            return Err(BuildError::Graph {
                                node,
                                source: GraphError::DanglingValue { value: *value },
                            })
                        }
                    },
                }
            }
            infer_types(&op, &types).map_err(|source| BuildError::Infer {
                node: node.clone(),
                source,
            })?
        };
        let n_outputs = outputs.len();
        let id = self
            .add_op(op, inputs, outputs, label)
            .map_err(|source| BuildError::Graph { node, source })?;
        Ok((0..n_outputs)
            .map(|port| Value::new(id, port as u32))
            .collect())
    }
}

// ---- the inference context ----

/// A set of dtypes an input may have, with its description for error messages.
#[derive(Clone, Copy)]
struct Allowed {
    what: &'static str,
    test: fn(DType) -> bool,
}

const ANY: Allowed = Allowed {
    what: "any dtype",
    test: |_| true,
};
const FLOAT: Allowed = Allowed {
    what: "a float dtype (f32, f64)",
    test: DType::is_float,
};
const NUMERIC: Allowed = Allowed {
    what: "a numeric dtype (not bool)",
    test: DType::is_numeric,
};
const SIGNED: Allowed = Allowed {
    what: "a signed numeric dtype (f32, f64, i64, i32, i8)",
    test: DType::is_signed,
};
const NUMERIC_OR_BOOL: Allowed = Allowed {
    what: "a numeric dtype or bool",
    test: |d| d.is_numeric() || d == DType::Bool,
};
const BOOL: Allowed = Allowed {
    what: "bool",
    test: |d| d == DType::Bool,
};
const INDEX: Allowed = Allowed {
    what: "an index dtype (i64, i32)",
    test: |d| matches!(d, DType::I64 | DType::I32),
};
/// ONNX's constraint for MatMul, Gemm, PRelu and Pow's base, and Range's dtype.
const FLOAT_I32_I64: Allowed = Allowed {
    what: "f32, f64, i32 or i64",
    test: |d| matches!(d, DType::F32 | DType::F64 | DType::I32 | DType::I64),
};
/// ONNX's constraint for the arithmetic reductions (sum, mean, prod, norms, log-sum-exp).
const REDUCE_ARITH: Allowed = FLOAT_I32_I64;
const MAX_POOL: Allowed = Allowed {
    what: "f32, f64, i8 or u8",
    test: |d| matches!(d, DType::F32 | DType::F64 | DType::I8 | DType::U8),
};

/// One op's inference: the op and its input types, with helpers that build errors naming both.
#[derive(Clone, Copy)]
struct Cx<'a> {
    op: &'a Op,
    inputs: &'a [Option<&'a TensorType>],
}

impl<'a> Cx<'a> {
    fn error(&self, kind: InferErrorKind) -> InferError {
        InferError {
            op: self.op.name(),
            kind,
        }
    }

    fn shape_err<T>(&self, message: impl Into<String>) -> InferResult<T> {
        Err(self.error(InferErrorKind::Shape(message.into())))
    }

    fn attr_err<T>(&self, attr: &'static str, message: impl Into<String>) -> InferResult<T> {
        Err(self.error(InferErrorKind::Attr {
            attr,
            message: message.into(),
        }))
    }

    fn sym_err<T>(&self, message: impl Into<String>) -> InferResult<T> {
        Err(self.error(InferErrorKind::Symbolic(message.into())))
    }

    /// Checks the [`MAX_ELEMENTS`] invariant of a type (see `shape.rs`).
    fn check_max_elements(&self, what: &str, ty: &TensorType) -> InferResult<()> {
        if !ty.shape.within_max_elements() {
            return self.shape_err(format!(
                "{what} of type {ty} has more than {MAX_ELEMENTS} elements"
            ));
        }
        Ok(())
    }

    fn is_variadic(&self) -> bool {
        self.op
            .input_names()
            .last()
            .is_some_and(|n| n.ends_with('*'))
    }

    /// The input's name for messages: `w`, or `inputs[2]` for a variadic input.
    fn label(&self, slot_idx: usize) -> String {
        if self.is_variadic() {
            format!("{}[{slot_idx}]", self.op.input_name(slot_idx))
        } else {
            self.op.input_name(slot_idx).to_string()
        }
    }

    /// Input count and presence of the required inputs.
    fn check_arity(&self) -> InferResult<()> {
        let (min, max) = self.op.input_count_range();
        let n_inputs = self.inputs.len();
        if n_inputs > max || (self.is_variadic() && n_inputs < min) {
            let expected = match (min, max) {
                (_, usize::MAX) => format!("at least {min}"),
                _ if min == max => format!("exactly {min}"),
                _ => format!("{min} to {max}"),
            };
            return Err(self.error(InferErrorKind::InputCount {
                expected,
                got: n_inputs,
            }));
        }
        let n_required = if self.is_variadic() { n_inputs } else { min };
        for slot_idx in 0..n_required {
            if self.inputs.get(slot_idx).copied().flatten().is_none() {
                return Err(self.error(InferErrorKind::MissingInput {
                    slot_idx,
                    name: self.op.input_name(slot_idx),
                }));
            }
        }
        Ok(())
    }

    /// A required input.
    fn input(&self, slot_idx: usize) -> InferResult<&'a TensorType> {
        self.opt_input(slot_idx).ok_or_else(|| {
            self.error(InferErrorKind::MissingInput {
                slot_idx,
                name: self.op.input_name(slot_idx),
            })
        })
    }

    fn opt_input(&self, slot_idx: usize) -> Option<&'a TensorType> {
        self.inputs.get(slot_idx).copied().flatten()
    }

    fn dims(&self, slot_idx: usize) -> InferResult<&'a [Dim]> {
        Ok(self.input(slot_idx)?.shape.dims())
    }

    /// The input's dtype, checked against `allowed`.
    fn dtype(&self, slot_idx: usize, allowed: Allowed) -> InferResult<DType> {
        let dtype = self.input(slot_idx)?.dtype;
        if !(allowed.test)(dtype) {
            return Err(self.error(InferErrorKind::DType {
                input: self.label(slot_idx),
                expected: allowed.what.to_string(),
                got: dtype,
            }));
        }
        Ok(dtype)
    }

    /// Checks that input `slot_idx` has the dtype of input `reference_idx`.
    fn same_dtype(&self, slot_idx: usize, reference_idx: usize) -> InferResult<()> {
        let expected = self.input(reference_idx)?.dtype;
        let got = self.input(slot_idx)?.dtype;
        if got != expected {
            return Err(self.error(InferErrorKind::DType {
                input: self.label(slot_idx),
                expected: format!("{expected} (the dtype of `{}`)", self.label(reference_idx)),
                got,
            }));
        }
        Ok(())
    }

    fn rank_error<T>(&self, slot_idx: usize, expected: String) -> InferResult<T> {
        let got = self.input(slot_idx)?.clone();
        Err(self.error(InferErrorKind::Rank {
            input: self.label(slot_idx),
            expected,
            got,
        }))
    }

    /// The input's dims, checked to be exactly `rank` many.
    fn rank(&self, slot_idx: usize, rank: usize) -> InferResult<&'a [Dim]> {
        let dims = self.dims(slot_idx)?;
        if dims.len() != rank {
            return self.rank_error(slot_idx, rank.to_string());
        }
        Ok(dims)
    }

    /// The input's dims, checked to be at least `min_rank` many.
    fn min_rank(&self, slot_idx: usize, min_rank: usize) -> InferResult<&'a [Dim]> {
        let dims = self.dims(slot_idx)?;
        if dims.len() < min_rank {
            return self.rank_error(slot_idx, format!("at least {min_rank}"));
        }
        Ok(dims)
    }

    /// Resolves an axis attribute in `[-rank, rank)`.
    fn axis(&self, attr: &'static str, axis: i64, rank: usize) -> InferResult<usize> {
        let rank_i = rank as i128;
        let resolved = if axis < 0 {
            i128::from(axis) + rank_i
        } else {
            i128::from(axis)
        };
        if resolved < 0 || resolved >= rank_i {
            if rank == 0 {
                return self.attr_err(attr, format!("cannot name an axis of a scalar, got {axis}"));
            }
            return self.attr_err(
                attr,
                format!(
                    "must be in [{}, {}] for rank {rank}, got {axis}",
                    -rank_i,
                    rank_i - 1
                ),
            );
        }
        Ok(resolved as usize)
    }

    /// Resolves a list of axes in `[-rank, rank)`, each at most once.
    fn axes(&self, attr: &'static str, axes: &[i64], rank: usize) -> InferResult<Vec<usize>> {
        let mut resolved = Vec::with_capacity(axes.len());
        for &axis in axes {
            let axis_idx = self.axis(attr, axis, rank)?;
            if resolved.contains(&axis_idx) {
                return self.attr_err(attr, format!("names axis {axis_idx} twice ({axes:?})"));
            }
            resolved.push(axis_idx);
        }
        Ok(resolved)
    }

    /// Checks that two dims that must be equal are, and returns the dim they denote.
    fn unify(&self, what: impl fmt::Display, a: &Dim, b: &Dim) -> InferResult<Dim> {
        match unify_dims(a, b) {
            Some(dim) => Ok(dim),
            None if matches!((a, b), (Dim::Sym(_), Dim::Sym(_))) => self.shape_err(format!(
                "{what}: the symbols `{a}` and `{b}` cannot be proven equal"
            )),
            None => self.shape_err(format!("{what}: {a} and {b} differ")),
        }
    }

    /// Checks dim `axis` of input `slot_idx` against `expected`.
    fn expect_dim(
        &self,
        slot_idx: usize,
        axis: usize,
        expected: &Dim,
        meaning: &str,
    ) -> InferResult<Dim> {
        let got = self.dims(slot_idx)?.get(axis).ok_or_else(|| {
            self.error(InferErrorKind::Shape(format!(
                "`{}` has no axis {axis}",
                self.label(slot_idx)
            )))
        })?;
        match unify_dims(got, expected) {
            Some(dim) => Ok(dim),
            None => self.shape_err(format!(
                "input `{}` must have {expected} ({meaning}) at axis {axis}, got {got} (shape {})",
                self.label(slot_idx),
                self.input(slot_idx)?.shape
            )),
        }
    }

    fn broadcast(&self, a: &Shape, b: &Shape) -> InferResult<Shape> {
        broadcast_dims(a, b).map_err(|message| self.error(InferErrorKind::Shape(message)))
    }

    /// Checks that input `slot_idx` broadcasts to `target` without changing it (ONNX's
    /// unidirectional broadcasting).
    fn broadcasts_to(&self, slot_idx: usize, target: &[Dim], target_what: &str) -> InferResult<()> {
        let from = self.dims(slot_idx)?;
        let fits = from.len() <= target.len()
            && from
                .iter()
                .rev()
                .zip(target.iter().rev())
                .all(|(f, t)| f.is_one() || unify_dims(f, t).is_some());
        if !fits {
            return self.shape_err(format!(
                "input `{}` of shape {} does not broadcast to {target_what} {}",
                self.label(slot_idx),
                self.input(slot_idx)?.shape,
                Shape(target.to_vec())
            ));
        }
        Ok(())
    }

    /// An integer attribute that must be at least `min`, as a size.
    fn size_attr(&self, attr: &'static str, value: i64, min: i64) -> InferResult<usize> {
        if value < min {
            return self.attr_err(attr, format!("must be at least {min}, got {value}"));
        }
        usize::try_from(value).or_else(|_| self.attr_err(attr, format!("{value} is too large")))
    }

    /// A window or state size attribute (see [`MAX_ATTR_SIZE`]): at least `min`, at most
    /// `MAX_ATTR_SIZE`.
    fn window_attr(&self, attr: &'static str, value: i64, min: i64) -> InferResult<usize> {
        if value > MAX_ATTR_SIZE {
            return self.attr_err(
                attr,
                format!("must be at most {MAX_ATTR_SIZE}, got {value}"),
            );
        }
        self.size_attr(attr, value, min)
    }

    /// A per-spatial-axis window attribute: empty means `default` everywhere, else one entry per axis,
    /// each in `[min, MAX_ATTR_SIZE]`.
    fn per_axis(
        &self,
        attr: &'static str,
        values: &[i64],
        n_axes: usize,
        default: usize,
        min: i64,
    ) -> InferResult<Vec<usize>> {
        if values.is_empty() {
            return Ok(vec![default; n_axes]);
        }
        if values.len() != n_axes {
            return self.attr_err(
                attr,
                format!("must have {n_axes} entries (one per spatial axis), got {values:?}"),
            );
        }
        values
            .iter()
            .map(|&v| self.window_attr(attr, v, min))
            .collect()
    }

    /// `dim * factor`, which must not become an expression of a symbol.
    fn scale_dim(&self, dim: &Dim, factor: usize, what: &str) -> InferResult<Dim> {
        match dim {
            _ if factor == 1 => Ok(dim.clone()),
            Dim::Static(n) => n.checked_mul(factor).map(Dim::Static).ok_or_else(|| {
                self.error(InferErrorKind::Shape(format!(
                    "{what}: {n} * {factor} overflows"
                )))
            }),
            Dim::Sym(_) => self.sym_err(format!("{what} would be {factor} * `{dim}`")),
        }
    }

    /// Checks that a float attribute converts to `dtype` without changing its value (ONNX passes such
    /// values as tensors of the input's dtype).
    fn value_fits(&self, attr: &'static str, value: f64, dtype: DType) -> InferResult<()> {
        let fits = match dtype {
            DType::F32 | DType::F64 => true,
            DType::Bool => value == 0.0 || value == 1.0,
            // `i64::MAX as f64` rounds up to 2^63, which does not fit.
            DType::I64 => {
                is_integral_in(value, i64::MIN as f64, i64::MAX as f64) && value < 2f64.powi(63)
            }
            DType::I32 => is_integral_in(value, f64::from(i32::MIN), f64::from(i32::MAX)),
            DType::I8 => is_integral_in(value, f64::from(i8::MIN), f64::from(i8::MAX)),
            DType::U8 => is_integral_in(value, 0.0, f64::from(u8::MAX)),
        };
        if !fits {
            return self.attr_err(
                attr,
                format!("must be representable as {dtype}, got {value}"),
            );
        }
        Ok(())
    }
}

fn is_integral_in(value: f64, min: f64, max: f64) -> bool {
    value.is_finite() && value.fract() == 0.0 && value >= min && value <= max
}

/// `ceil(num / den)` for `num >= 0`, `den > 0`.
fn ceil_div(num: i128, den: i128) -> i128 {
    (num + den - 1).div_euclid(den)
}

fn i128_to_usize(value: i128) -> Option<usize> {
    usize::try_from(value).ok()
}

// ---- elementwise ----

fn unary(cx: &Cx, allowed: Allowed) -> InferResult<TensorType> {
    cx.dtype(0, allowed)?;
    Ok(cx.input(0)?.clone())
}

fn clip(cx: &Cx, min: Option<f64>, max: Option<f64>) -> InferResult<TensorType> {
    let dtype = cx.dtype(0, NUMERIC)?;
    // ONNX passes the bounds as tensors of `x`'s dtype: any float (NaN included, which makes every
    // element NaN as in numpy) or a whole number in an integer dtype's range.
    for (attr, bound) in [("min", min), ("max", max)] {
        if let Some(bound) = bound {
            cx.value_fits(attr, bound, dtype)?;
        }
    }
    Ok(cx.input(0)?.clone())
}

fn binary(cx: &Cx, allowed: Allowed) -> InferResult<TensorType> {
    let dtype = cx.dtype(0, allowed)?;
    cx.same_dtype(1, 0)?;
    let shape = cx.broadcast(&cx.input(0)?.shape, &cx.input(1)?.shape)?;
    Ok(TensorType::new(dtype, shape))
}

fn comparison(cx: &Cx, allowed: Allowed) -> InferResult<TensorType> {
    let ty = binary(cx, allowed)?;
    Ok(TensorType::new(DType::Bool, ty.shape))
}

fn pow(cx: &Cx) -> InferResult<TensorType> {
    let dtype = cx.dtype(0, FLOAT_I32_I64)?;
    cx.dtype(1, NUMERIC)?;
    let shape = cx.broadcast(&cx.input(0)?.shape, &cx.input(1)?.shape)?;
    Ok(TensorType::new(dtype, shape))
}

fn prelu(cx: &Cx) -> InferResult<TensorType> {
    cx.dtype(0, FLOAT_I32_I64)?;
    cx.same_dtype(1, 0)?;
    let x = cx.input(0)?;
    cx.broadcasts_to(1, x.shape.dims(), "`x`'s shape")?;
    Ok(x.clone())
}

fn where_(cx: &Cx) -> InferResult<TensorType> {
    cx.dtype(0, BOOL)?;
    let dtype = cx.dtype(1, ANY)?;
    cx.same_dtype(2, 1)?;
    let cond_x = cx.broadcast(&cx.input(0)?.shape, &cx.input(1)?.shape)?;
    let shape = cx.broadcast(&cond_x, &cx.input(2)?.shape)?;
    Ok(TensorType::new(dtype, shape))
}

// ---- linear algebra ----

fn matmul(cx: &Cx) -> InferResult<TensorType> {
    let dtype = cx.dtype(0, FLOAT_I32_I64)?;
    cx.same_dtype(1, 0)?;
    let a = cx.min_rank(0, 1)?;
    let b = cx.min_rank(1, 1)?;
    // A 1-d `a` is a row vector and a 1-d `b` a column vector; the promoted axis is dropped again.
    let (a_batch, a_rows, a_k) = match a {
        [k] => (&[][..], None, k),
        [batch @ .., rows, k] => (batch, Some(rows), k),
        [] => return cx.rank_error(0, "at least 1".to_string()),
    };
    let (b_batch, b_k, b_cols) = match b {
        [k] => (&[][..], k, None),
        [batch @ .., k, cols] => (batch, k, Some(cols)),
        [] => return cx.rank_error(1, "at least 1".to_string()),
    };
    cx.unify(
        format_args!(
            "the contracted dims (last of `a` {}, {} of `b` {})",
            cx.input(0)?.shape,
            if b.len() == 1 {
                "only"
            } else {
                "second to last"
            },
            cx.input(1)?.shape
        ),
        a_k,
        b_k,
    )?;
    let mut dims = cx
        .broadcast(&Shape(a_batch.to_vec()), &Shape(b_batch.to_vec()))?
        .0;
    dims.extend(a_rows.cloned());
    dims.extend(b_cols.cloned());
    Ok(TensorType::new(dtype, dims))
}

fn gemm(cx: &Cx, trans_a: bool, trans_b: bool) -> InferResult<TensorType> {
    let dtype = cx.dtype(0, FLOAT_I32_I64)?;
    cx.same_dtype(1, 0)?;
    let a = cx.rank(0, 2)?;
    let b = cx.rank(1, 2)?;
    let (m, a_k) = if trans_a {
        (&a[1], &a[0])
    } else {
        (&a[0], &a[1])
    };
    let (b_k, n) = if trans_b {
        (&b[1], &b[0])
    } else {
        (&b[0], &b[1])
    };
    cx.unify(
        format_args!(
            "the contracted dims of `a` {} (trans_a={trans_a}) and `b` {} (trans_b={trans_b})",
            cx.input(0)?.shape,
            cx.input(1)?.shape
        ),
        a_k,
        b_k,
    )?;
    let out = vec![m.clone(), n.clone()];
    if cx.opt_input(2).is_some() {
        cx.same_dtype(2, 0)?;
        cx.broadcasts_to(2, &out, "the result shape")?;
    }
    Ok(TensorType::new(dtype, out))
}

// ---- convolution and pooling ----

/// The window attributes shared by conv, conv_transpose and the pools, as written in the op.
struct WindowAttrs<'a> {
    strides: &'a [i64],
    pads: &'a [i64],
    dilations: &'a [i64],
    auto_pad: AutoPad,
    ceil_mode: bool,
}

/// Validated window geometry over `kernel.len()` spatial axes.
struct Window {
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    /// `[begin_0, .., begin_n-1, end_0, .., end_n-1]`.
    pads: Vec<usize>,
    auto_pad: AutoPad,
    ceil_mode: bool,
}

impl Window {
    fn new(cx: &Cx, kernel: Vec<usize>, attrs: &WindowAttrs) -> InferResult<Window> {
        let n_axes = kernel.len();
        let strides = cx.per_axis("strides", attrs.strides, n_axes, 1, 1)?;
        let dilations = cx.per_axis("dilations", attrs.dilations, n_axes, 1, 1)?;
        let pads = if attrs.pads.is_empty() {
            vec![0; 2 * n_axes]
        } else {
            if attrs.auto_pad != AutoPad::NotSet {
                return cx.attr_err(
                    "pads",
                    format!(
                        "cannot be given together with auto_pad={} (ONNX forbids both)",
                        attrs.auto_pad.name()
                    ),
                );
            }
            if attrs.pads.len() != 2 * n_axes {
                return cx.attr_err(
                    "pads",
                    format!(
                        "must have {} entries (begin and end per spatial axis), got {:?}",
                        2 * n_axes,
                        attrs.pads
                    ),
                );
            }
            attrs
                .pads
                .iter()
                .map(|&p| cx.window_attr("pads", p, 0))
                .collect::<InferResult<_>>()?
        };
        Ok(Window {
            kernel,
            strides,
            dilations,
            pads,
            auto_pad: attrs.auto_pad,
            ceil_mode: attrs.ceil_mode,
        })
    }

    /// The dilated kernel extent. It saturates rather than overflow; no input is that large, so a
    /// saturated extent fails the size checks that follow.
    fn effective_kernel(&self, axis_idx: usize) -> i128 {
        (self.kernel[axis_idx] as i128 - 1)
            .saturating_mul(self.dilations[axis_idx] as i128)
            .saturating_add(1)
    }

    /// The output size of a sliding window over spatial axis `axis_idx` of size `in_dim`.
    fn output_dim(&self, cx: &Cx, axis_idx: usize, in_dim: &Dim) -> InferResult<Dim> {
        let stride = self.strides[axis_idx] as i128;
        let kernel = self.effective_kernel(axis_idx);
        let (pad_begin, pad_end) = match self.auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => {
                // ONNX: the pads are chosen so that the output size is ceil(in / stride).
                return match in_dim {
                    Dim::Static(n) => Ok(Dim::Static(ceil_div(*n as i128, stride) as usize)),
                    Dim::Sym(_) if stride == 1 => Ok(in_dim.clone()),
                    Dim::Sym(_) => cx.sym_err(format!(
                        "spatial axis {axis_idx}: auto_pad={} with stride {stride} gives ceil(`{in_dim}` / {stride})",
                        self.auto_pad.name()
                    )),
                };
            }
            AutoPad::Valid => (0, 0),
            AutoPad::NotSet => (
                self.pads[axis_idx] as i128,
                self.pads[axis_idx + self.kernel.len()] as i128,
            ),
        };
        match in_dim {
            Dim::Static(n) => {
                let n = *n as i128;
                let padded = n + pad_begin + pad_end;
                if padded < kernel {
                    return cx.shape_err(format!(
                        "spatial axis {axis_idx}: the padded input size {padded} is smaller than the \
                         dilated kernel size {kernel}"
                    ));
                }
                let span = padded - kernel;
                // ONNX's `valid` formula rounds down whatever `ceil_mode` says.
                let ceil_mode = self.ceil_mode && self.auto_pad == AutoPad::NotSet;
                let mut out = if ceil_mode {
                    ceil_div(span, stride) + 1
                } else {
                    span / stride + 1
                };
                // ONNX (like PyTorch) drops a last window that would start in the end padding.
                if ceil_mode && (out - 1) * stride >= n + pad_begin {
                    out -= 1;
                }
                Ok(Dim::Static(out as usize))
            }
            Dim::Sym(_) => {
                // With stride 1 the size is `in + pads - kernel + 1` in both rounding modes.
                if stride == 1 && pad_begin + pad_end + 1 == kernel {
                    Ok(in_dim.clone())
                } else {
                    cx.sym_err(format!(
                        "spatial axis {axis_idx}: the output size over `{in_dim}` with kernel {kernel}, \
                         stride {stride} and pads {pad_begin}+{pad_end} is an expression of `{in_dim}`"
                    ))
                }
            }
        }
    }
}

/// A fused op through its parts (`Op::fused_parts`): the product's inference on the leading inputs,
/// then the addend (`fused_conv`'s residual must have exactly the product's type; `fused_matmul`'s
/// bias must broadcast into the product without enlarging it), the activation and the pool. Errors
/// name the fused op and its own attributes.
fn fused(cx: &Cx) -> InferResult<TensorType> {
    let parts = match cx.op.fused_parts() {
        Some(Ok(parts)) => parts,
        Some(Err(message)) => return cx.attr_err("activation_params", message),
        None => return cx.shape_err("not a fused op"),
    };
    let product_inputs: Vec<Option<&TensorType>> = (0..parts.n_product_inputs())
        .map(|slot_idx| cx.opt_input(slot_idx))
        .collect();
    let mut ty = infer_part(cx, &parts.product, &[], &product_inputs)?;
    if let Some(slot_idx) = parts.addend_slot {
        if let Some(addend) = cx.opt_input(slot_idx) {
            let label = cx.label(slot_idx);
            if matches!(cx.op, Op::FusedConv { .. }) {
                if *addend != ty {
                    return cx.shape_err(format!(
                        "residual `{label}` must have the convolution's type {ty}, got {addend}"
                    ));
                }
            } else {
                let what = ["the product", &format!("`{label}`")];
                let sum = infer_part(cx, &Op::Add {}, &what, &[Some(&ty), Some(addend)])?;
                if sum != ty {
                    return cx.shape_err(format!(
                        "`{label}` {addend} must broadcast into the product {ty} without enlarging it (got {sum})"
                    ));
                }
            }
        }
    }
    let product = parts.product.name();
    for part in [&parts.activation, &parts.pool].into_iter().flatten() {
        ty = infer_part(cx, part, &[&format!("the {product} result")], &[Some(&ty)])?;
    }
    Ok(ty)
}

/// The inference of one part of a fused op, its errors restated for the fused op: attributes by
/// their fused names; for a part that reads intermediate values, other problems as shape errors
/// naming the part and what it reads (`what`).
fn infer_part(
    cx: &Cx,
    part: &Op,
    what: &[&str],
    inputs: &[Option<&TensorType>],
) -> InferResult<TensorType> {
    let mut tys = infer_types(part, inputs).map_err(|e| {
        let kind = match e.kind {
            InferErrorKind::Attr { attr, message } => InferErrorKind::Attr {
                attr: crate::fused::fused_attr_name(cx.op, part, attr),
                message,
            },
            kind if what.is_empty() => kind,
            kind => InferErrorKind::Shape(format!(
                "`{}` of {}: {kind}",
                part.name(),
                what.join(" and ")
            )),
        };
        cx.error(kind)
    })?;
    Ok(tys.remove(0))
}

/// The spatial kernel sizes from a weight's dims, which must be static and positive.
fn static_kernel(cx: &Cx, slot_idx: usize, dims: &[Dim]) -> InferResult<Vec<usize>> {
    dims.iter()
        .map(|d| match d {
            Dim::Static(n) if *n > 0 => Ok(*n),
            _ => cx.shape_err(format!(
                "the kernel dims of `{}` {} must be static and positive",
                cx.label(slot_idx),
                Shape(dims.to_vec())
            )),
        })
        .collect()
}

fn conv(cx: &Cx, attrs: WindowAttrs, group: i64) -> InferResult<TensorType> {
    let dtype = cx.dtype(0, FLOAT)?;
    cx.same_dtype(1, 0)?;
    let x = cx.min_rank(0, 3)?;
    let w = cx.rank(1, x.len())?;
    let window = Window::new(cx, static_kernel(cx, 1, &w[2..])?, &attrs)?;
    let group = cx.size_attr("group", group, 1)?;
    let in_channels = cx.scale_dim(
        &w[1],
        group,
        "the input channel count (`w` dim 1 times group)",
    )?;
    cx.unify(
        format_args!(
            "the channels of `x` {} must equal `w` dim 1 times group ({} * {group})",
            cx.input(0)?.shape,
            w[1]
        ),
        &x[1],
        &in_channels,
    )?;
    let out_channels = w[0].clone();
    if let Dim::Static(m) = out_channels {
        if m % group != 0 {
            return cx.attr_err(
                "group",
                format!("must divide the output channel count {m}, got {group}"),
            );
        }
    }
    if cx.opt_input(2).is_some() {
        cx.same_dtype(2, 0)?;
        cx.rank(2, 1)?;
        cx.expect_dim(2, 0, &out_channels, "the output channel count")?;
    }
    let mut dims = vec![x[0].clone(), out_channels];
    for (axis_idx, in_dim) in x[2..].iter().enumerate() {
        dims.push(window.output_dim(cx, axis_idx, in_dim)?);
    }
    Ok(TensorType::new(dtype, dims))
}

fn conv_transpose(
    cx: &Cx,
    attrs: WindowAttrs,
    group: i64,
    output_padding: &[i64],
    output_shape: &[i64],
) -> InferResult<TensorType> {
    let dtype = cx.dtype(0, FLOAT)?;
    cx.same_dtype(1, 0)?;
    let x = cx.min_rank(0, 3)?;
    let w = cx.rank(1, x.len())?;
    let n_axes = x.len() - 2;
    // ONNX: with `output_shape`, the pads follow from it and the `pads` attribute is ignored (it may
    // still not be combined with auto_pad).
    let attrs = if output_shape.is_empty() {
        attrs
    } else {
        if attrs.auto_pad != AutoPad::NotSet && !attrs.pads.is_empty() {
            return cx.attr_err(
                "pads",
                format!(
                    "cannot be given together with auto_pad={} (ONNX forbids both)",
                    attrs.auto_pad.name()
                ),
            );
        }
        WindowAttrs { pads: &[], ..attrs }
    };
    let window = Window::new(cx, static_kernel(cx, 1, &w[2..])?, &attrs)?;
    let group = cx.size_attr("group", group, 1)?;
    let output_padding = cx.per_axis("output_padding", output_padding, n_axes, 0, 0)?;
    // The forward convolution of the output must give back the input size, so the extra outputs stay
    // within one stride (onnxruntime and onnx.reference reject the rest).
    for (axis_idx, &adj) in output_padding.iter().enumerate() {
        if adj >= window.strides[axis_idx] {
            return cx.attr_err(
                "output_padding",
                format!(
                    "must be smaller than the stride ({}) of spatial axis {axis_idx}, got {adj}",
                    window.strides[axis_idx]
                ),
            );
        }
    }
    let output_shape = if output_shape.is_empty() {
        None
    } else {
        Some(cx.per_axis("output_shape", output_shape, n_axes, 1, 1)?)
    };
    let in_channels = cx.expect_dim(1, 0, &x[1], "the channel count of `x`")?;
    if let Dim::Static(c) = in_channels {
        if c % group != 0 {
            return cx.attr_err(
                "group",
                format!("must divide the input channel count {c}, got {group}"),
            );
        }
    }
    let out_channels = cx.scale_dim(
        &w[1],
        group,
        "the output channel count (`w` dim 1 times group)",
    )?;
    if cx.opt_input(2).is_some() {
        cx.same_dtype(2, 0)?;
        cx.rank(2, 1)?;
        cx.expect_dim(2, 0, &out_channels, "the output channel count")?;
    }
    // Every input position scatters into the output, so an empty spatial axis has no output size
    // that the forward convolution maps back to it.
    if let Some(axis_idx) = x[2..].iter().position(|d| *d == Dim::Static(0)) {
        return cx.shape_err(format!(
            "spatial axis {axis_idx} of `x` {} is empty",
            cx.input(0)?.shape
        ));
    }
    let mut dims = vec![x[0].clone(), out_channels];
    for (axis_idx, in_dim) in x[2..].iter().enumerate() {
        let stride = window.strides[axis_idx] as i128;
        let dim = if let Some(output_shape) = &output_shape {
            let target = output_shape[axis_idx];
            let same = matches!(window.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
            if let (Dim::Static(n), false) = (in_dim, same) {
                // The full output is `stride * (in - 1) + output_padding + extent`. A larger target
                // gets its extra outputs at the end, and the forward convolution still gives back
                // `in` while it exceeds the full size by less than `stride - output_padding`. (With
                // same_* the total padding `full - target` is split around the output instead and
                // may be negative, so every target works.)
                let adj = output_padding[axis_idx] as i128;
                let full = stride
                    .saturating_mul(*n as i128 - 1)
                    .saturating_add(adj)
                    .saturating_add(window.effective_kernel(axis_idx));
                let largest = full.saturating_add(stride - 1 - adj);
                if target as i128 > largest {
                    return cx.attr_err(
                        "output_shape",
                        format!(
                            "spatial axis {axis_idx}: {target} is more than a stride beyond the full \
                             output size {full}, so no input position reaches the last outputs"
                        ),
                    );
                }
            }
            Dim::Static(target)
        } else if matches!(window.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) {
            // ONNX: `output_shape[i] = input_shape[i] * strides[i]`.
            cx.scale_dim(in_dim, stride as usize, &format!("spatial axis {axis_idx}"))?
        } else {
            let (pad_begin, pad_end) = if window.auto_pad == AutoPad::Valid {
                (0, 0)
            } else {
                (
                    window.pads[axis_idx] as i128,
                    window.pads[axis_idx + n_axes] as i128,
                )
            };
            // out = stride * (in - 1) + output_padding + kernel - pads
            // Saturating: an out-of-range size is rejected below instead of overflowing.
            let extra = (output_padding[axis_idx] as i128)
                .saturating_add(window.effective_kernel(axis_idx))
                - pad_begin
                - pad_end;
            match in_dim {
                Dim::Static(n) => {
                    let out = stride.saturating_mul(*n as i128 - 1).saturating_add(extra);
                    match i128_to_usize(out) {
                        Some(out) if out > 0 => Dim::Static(out),
                        _ => {
                            return cx.shape_err(format!(
                                "spatial axis {axis_idx}: the output size {out} is not a positive size"
                            ))
                        }
                    }
                }
                Dim::Sym(_) if stride == 1 && extra == 1 => in_dim.clone(),
                Dim::Sym(_) => {
                    return cx.sym_err(format!(
                        "spatial axis {axis_idx}: the output size is {stride} * (`{in_dim}` - 1) + {extra}"
                    ))
                }
            }
        };
        dims.push(dim);
    }
    Ok(TensorType::new(dtype, dims))
}

fn pool(
    cx: &Cx,
    allowed: Allowed,
    kernel_shape: &[i64],
    attrs: WindowAttrs,
) -> InferResult<TensorType> {
    let dtype = cx.dtype(0, allowed)?;
    let x = cx.min_rank(0, 3)?;
    let n_axes = x.len() - 2;
    if kernel_shape.len() != n_axes {
        return cx.attr_err(
            "kernel_shape",
            format!("must have {n_axes} entries (one per spatial axis), got {kernel_shape:?}"),
        );
    }
    let kernel = cx.per_axis("kernel_shape", kernel_shape, n_axes, 1, 1)?;
    let window = Window::new(cx, kernel, &attrs)?;
    // A window entirely in the padding would pool nothing (onnxruntime rejects it too).
    for axis_idx in 0..n_axes {
        let kernel = window.kernel[axis_idx];
        let (begin, end) = (window.pads[axis_idx], window.pads[axis_idx + n_axes]);
        if begin >= kernel || end >= kernel {
            return cx.attr_err(
                "pads",
                format!(
                    "must be smaller than the kernel size {kernel} of spatial axis {axis_idx}, got {begin} and {end}"
                ),
            );
        }
    }
    no_empty_spatial_axis(cx, x)?;
    let mut dims = vec![x[0].clone(), x[1].clone()];
    for (axis_idx, in_dim) in x[2..].iter().enumerate() {
        dims.push(window.output_dim(cx, axis_idx, in_dim)?);
    }
    Ok(TensorType::new(dtype, dims))
}

/// A pooling window over an empty spatial axis would pool nothing (only padding), so pools reject it.
fn no_empty_spatial_axis(cx: &Cx, x: &[Dim]) -> InferResult<()> {
    match x[2..].iter().position(|d| *d == Dim::Static(0)) {
        Some(axis_idx) => cx.shape_err(format!(
            "spatial axis {axis_idx} of `x` {} is empty, so there is nothing to pool",
            Shape(x.to_vec())
        )),
        None => Ok(()),
    }
}

fn global_pool(cx: &Cx) -> InferResult<TensorType> {
    let dtype = cx.dtype(0, FLOAT)?;
    let x = cx.min_rank(0, 3)?;
    no_empty_spatial_axis(cx, x)?;
    let mut dims = vec![x[0].clone(), x[1].clone()];
    dims.resize(x.len(), Dim::Static(1));
    Ok(TensorType::new(dtype, dims))
}

// ---- normalization ----

/// Checks that input `slot_idx` is a vector of `channels` entries.
fn per_channel(cx: &Cx, slot_idx: usize, channels: &Dim) -> InferResult<()> {
    cx.rank(slot_idx, 1)?;
    cx.expect_dim(slot_idx, 0, channels, "the channel count of `x`")?;
    Ok(())
}

fn batch_norm(cx: &Cx) -> InferResult<TensorType> {
    cx.dtype(0, FLOAT)?;
    let x = cx.min_rank(0, 2)?;
    for slot_idx in 1..5 {
        cx.same_dtype(slot_idx, 0)?;
        per_channel(cx, slot_idx, &x[1])?;
    }
    Ok(cx.input(0)?.clone())
}

fn instance_norm(cx: &Cx) -> InferResult<TensorType> {
    cx.dtype(0, FLOAT)?;
    let x = cx.min_rank(0, 3)?;
    for slot_idx in 1..3 {
        cx.same_dtype(slot_idx, 0)?;
        per_channel(cx, slot_idx, &x[1])?;
    }
    Ok(cx.input(0)?.clone())
}

fn lrn(cx: &Cx, size: i64) -> InferResult<TensorType> {
    cx.dtype(0, FLOAT)?;
    // `[N, C, D_1, ..]`: the window runs over channels, so no spatial dim is needed.
    cx.min_rank(0, 2)?;
    cx.size_attr("size", size, 1)?;
    Ok(cx.input(0)?.clone())
}

fn softmax(cx: &Cx, axis: i64) -> InferResult<TensorType> {
    cx.dtype(0, FLOAT)?;
    cx.axis("axis", axis, cx.input(0)?.rank())?;
    Ok(cx.input(0)?.clone())
}

fn layer_norm(cx: &Cx, axis: i64) -> InferResult<TensorType> {
    cx.dtype(0, FLOAT)?;
    let x = cx.input(0)?;
    let axis_idx = cx.axis("axis", axis, x.rank())?;
    // Scale and bias broadcast over the normalized dims, as for rms_norm.
    for slot_idx in [1, 2] {
        if cx.opt_input(slot_idx).is_some() {
            cx.same_dtype(slot_idx, 0)?;
            cx.broadcasts_to(
                slot_idx,
                &x.shape.dims()[axis_idx..],
                "the normalized shape",
            )?;
        }
    }
    Ok(x.clone())
}

fn rms_norm(cx: &Cx, axis: i64) -> InferResult<TensorType> {
    cx.dtype(0, FLOAT)?;
    // ONNX RMSNormalization allows a scale of another float type (and then outputs that type); the IR
    // keeps one dtype, as for layer_norm, and the importer casts.
    cx.same_dtype(1, 0)?;
    let x = cx.input(0)?;
    let axis_idx = cx.axis("axis", axis, x.rank())?;
    cx.broadcasts_to(1, &x.shape.dims()[axis_idx..], "the normalized shape")?;
    Ok(x.clone())
}

fn group_norm(cx: &Cx, num_groups: i64) -> InferResult<TensorType> {
    cx.dtype(0, FLOAT)?;
    let x = cx.min_rank(0, 2)?;
    let num_groups = cx.size_attr("num_groups", num_groups, 1)?;
    if let Dim::Static(c) = x[1] {
        if c % num_groups != 0 {
            return cx.attr_err(
                "num_groups",
                format!("must divide the channel count {c}, got {num_groups}"),
            );
        }
    }
    for slot_idx in 1..3 {
        cx.same_dtype(slot_idx, 0)?;
        per_channel(cx, slot_idx, &x[1])?;
    }
    Ok(cx.input(0)?.clone())
}

/// The axes of one attention operand, whatever its layout.
struct HeadLayout {
    batch: Dim,
    heads: Dim,
    seq: Dim,
    head_size: Dim,
}

/// Splits a 4-d `[batch, heads, seq, head_size]` or 3-d `[batch, seq, heads * head_size]` operand.
fn head_layout(
    cx: &Cx,
    slot_idx: usize,
    heads_attr: &'static str,
    n_heads: i64,
) -> InferResult<HeadLayout> {
    let dims = cx.dims(slot_idx)?;
    match dims {
        [batch, heads, seq, head_size] => {
            if n_heads > 0 {
                cx.expect_dim(slot_idx, 1, &Dim::Static(n_heads as usize), heads_attr)?;
            }
            Ok(HeadLayout {
                batch: batch.clone(),
                heads: heads.clone(),
                seq: seq.clone(),
                head_size: head_size.clone(),
            })
        }
        [batch, seq, hidden] => {
            if n_heads <= 0 {
                return cx.attr_err(
                    heads_attr,
                    format!(
                        "must be positive for the 3-d input `{}` {}, got {n_heads}",
                        cx.label(slot_idx),
                        cx.input(slot_idx)?.shape
                    ),
                );
            }
            let n_heads = n_heads as usize;
            let head_size = match hidden {
                Dim::Static(h) if h % n_heads == 0 => Dim::Static(h / n_heads),
                Dim::Static(h) => {
                    return cx.attr_err(
                        heads_attr,
                        format!(
                            "must divide the hidden size {h} of `{}`, got {n_heads}",
                            cx.label(slot_idx)
                        ),
                    )
                }
                Dim::Sym(_) if n_heads == 1 => hidden.clone(),
                Dim::Sym(_) => {
                    return cx.sym_err(format!(
                        "the head size of `{}` would be `{hidden}` / {n_heads}",
                        cx.label(slot_idx)
                    ))
                }
            };
            Ok(HeadLayout {
                batch: batch.clone(),
                heads: Dim::Static(n_heads),
                seq: seq.clone(),
                head_size,
            })
        }
        _ => cx.rank_error(slot_idx, "3 or 4".to_string()),
    }
}

fn attention(cx: &Cx, q_num_heads: i64, kv_num_heads: i64) -> InferResult<TensorType> {
    let dtype = cx.dtype(0, FLOAT)?;
    cx.same_dtype(1, 0)?;
    cx.same_dtype(2, 0)?;
    if q_num_heads < 0 {
        return cx.attr_err(
            "q_num_heads",
            format!("must not be negative, got {q_num_heads}"),
        );
    }
    if kv_num_heads < 0 {
        return cx.attr_err(
            "kv_num_heads",
            format!("must not be negative, got {kv_num_heads}"),
        );
    }
    let q = head_layout(cx, 0, "q_num_heads", q_num_heads)?;
    // All 4-d or all 3-d: the layouts are not mixed.
    let q_rank = cx.input(0)?.rank();
    for slot_idx in [1, 2] {
        if cx.input(slot_idx)?.rank() != q_rank {
            return cx.rank_error(slot_idx, format!("{q_rank} (the rank of `q`)"));
        }
    }
    let k = head_layout(cx, 1, "kv_num_heads", kv_num_heads)?;
    let v = head_layout(cx, 2, "kv_num_heads", kv_num_heads)?;
    let batch = cx.unify("the batch sizes of `q` and `k`", &q.batch, &k.batch)?;
    let batch = cx.unify("the batch sizes of `q` and `v`", &batch, &v.batch)?;
    let kv_heads = cx.unify("the head counts of `k` and `v`", &k.heads, &v.heads)?;
    let kv_seq = cx.unify("the sequence lengths of `k` and `v`", &k.seq, &v.seq)?;
    cx.unify("the head sizes of `q` and `k`", &q.head_size, &k.head_size)?;
    match (&q.heads, &kv_heads) {
        (Dim::Static(hq), Dim::Static(hkv)) if *hkv == 0 || hq % hkv != 0 => {
            return cx.shape_err(format!(
                "the query head count {hq} must be a multiple of the key/value head count {hkv}"
            ))
        }
        (Dim::Static(_), Dim::Static(_)) => {}
        _ => {
            cx.unify("the head counts of `q` and `k`/`v`", &q.heads, &kv_heads)?;
        }
    }
    if let Some(mask) = cx.opt_input(3) {
        if mask.dtype != DType::Bool && mask.dtype != dtype {
            return Err(cx.error(InferErrorKind::DType {
                input: cx.label(3),
                expected: format!("bool or {dtype} (the dtype of `q`)"),
                got: mask.dtype,
            }));
        }
        let target = [
            batch.clone(),
            q.heads.clone(),
            q.seq.clone(),
            kv_seq.clone(),
        ];
        let dims = mask.shape.dims();
        let fits =
            dims.len() <= 4
                && dims.iter().rev().zip(target.iter().rev()).enumerate().all(
                    |(from_end, (m, t))| {
                        // The last axis may also be shorter than the kv sequence; it is padded with -inf.
                        let shorter = from_end == 0
                            && matches!((m, t), (Dim::Static(m), Dim::Static(t)) if m < t);
                        m.is_one() || unify_dims(m, t).is_some() || shorter
                    },
                );
        if !fits {
            return cx.shape_err(format!(
                "input `mask` of shape {} does not broadcast to [batch, q_heads, q_seq, kv_seq] = {}",
                mask.shape,
                Shape(target.to_vec())
            ));
        }
    }
    let dims = if cx.input(0)?.rank() == 4 {
        vec![batch, q.heads, q.seq, v.head_size]
    } else {
        let Dim::Static(n_q_heads) = q.heads else {
            return cx.sym_err("the head count of a 3-d `q` is symbolic");
        };
        let hidden = cx.scale_dim(
            &v.head_size,
            n_q_heads,
            "the output hidden size (q heads * v head size)",
        )?;
        vec![batch, q.seq, hidden]
    };
    Ok(TensorType::new(dtype, dims))
}

// ---- pad and resize ----

fn pad(cx: &Cx, pads: &[i64], mode: PadMode, value: f64) -> InferResult<TensorType> {
    let x = cx.input(0)?;
    let rank = x.rank();
    if pads.len() != 2 * rank {
        return cx.attr_err(
            "pads",
            format!(
                "must have {} entries (begin and end per axis), got {pads:?}",
                2 * rank
            ),
        );
    }
    if let Some(&pad) = pads
        .iter()
        .find(|p| p.unsigned_abs() > MAX_ATTR_SIZE as u64)
    {
        return cx.attr_err(
            "pads",
            format!("entries must be within ±{MAX_ATTR_SIZE}, got {pad}"),
        );
    }
    if mode == PadMode::Constant {
        cx.value_fits("value", value, x.dtype)?;
    }
    let mut dims = Vec::with_capacity(rank);
    for (axis, dim) in x.shape.dims().iter().enumerate() {
        let (begin, end) = (i128::from(pads[axis]), i128::from(pads[axis + rank]));
        let out = match dim {
            Dim::Static(n) => {
                // Negative pads crop first (as onnxruntime does), then the positive ones extend what
                // is left, which the non-constant modes need to be non-empty.
                let crop = (-begin).max(0) + (-end).max(0);
                let Some(kept) = i128_to_usize(*n as i128 - crop) else {
                    return cx.attr_err(
                        "pads",
                        format!(
                            "crops axis {axis} of size {n} by more than its size ({begin}, {end})"
                        ),
                    );
                };
                if mode != PadMode::Constant && kept == 0 && (begin > 0 || end > 0) {
                    return cx.shape_err(format!(
                        "axis {axis} is empty after cropping, so it cannot be padded in {} mode",
                        mode.name()
                    ));
                }
                Dim::Static(kept + begin.max(0) as usize + end.max(0) as usize)
            }
            Dim::Sym(_) if begin + end == 0 => dim.clone(),
            Dim::Sym(_) => {
                return cx.sym_err(format!("axis {axis} would be `{dim}` + {}", begin + end))
            }
        };
        dims.push(out);
    }
    Ok(TensorType::new(x.dtype, dims))
}

/// `nearest` copies elements, so it takes any dtype (ONNX allows all types); `linear` needs a numeric
/// one (integer results are saturated). Output sizes are `floor(f64(scale) * in)`, as `onnx.reference`
/// computes them (numpy multiplies the f32 scale and the i64 shape in f64); 0 is a valid size, but an
/// empty axis cannot be interpolated to a non-empty one.
fn resize(cx: &Cx, mode: ResizeMode, scales: &[f32], sizes: &[i64]) -> InferResult<TensorType> {
    let x = cx.input(0)?;
    if mode == ResizeMode::Linear {
        cx.dtype(0, NUMERIC)?;
    }
    let rank = x.rank();
    let dims = match (scales.is_empty(), sizes.is_empty()) {
        (false, false) => {
            return cx.attr_err("scales", "and `sizes` are both given; exactly one must be")
        }
        (true, true) => {
            return cx.attr_err(
                "scales",
                "and `sizes` are both empty; exactly one must be given",
            )
        }
        (true, false) => {
            if sizes.len() != rank {
                return cx.attr_err(
                    "sizes",
                    format!("must have {rank} entries (one per axis), got {sizes:?}"),
                );
            }
            let mut dims = Vec::with_capacity(rank);
            for (axis, (dim, &size)) in x.shape.dims().iter().zip(sizes).enumerate() {
                // A symbolic axis takes the static size too: the output does not depend on it.
                let size = cx.window_attr("sizes", size, 0)?;
                if *dim == Dim::Static(0) && size > 0 {
                    return cx.shape_err(format!(
                        "axis {axis} is empty and cannot be resized to {size} elements"
                    ));
                }
                dims.push(Dim::Static(size));
            }
            dims
        }
        (false, true) => {
            if scales.len() != rank {
                return cx.attr_err(
                    "scales",
                    format!("must have {rank} entries (one per axis), got {scales:?}"),
                );
            }
            let mut dims = Vec::with_capacity(rank);
            for (axis, (dim, &scale)) in x.shape.dims().iter().zip(scales).enumerate() {
                if !scale.is_finite() || scale <= 0.0 {
                    return cx.attr_err(
                        "scales",
                        format!("entries must be positive and finite, got {scale}"),
                    );
                }
                dims.push(match dim {
                    // onnx.reference multiplies in f64 (numpy promotes the f32 scale).
                    Dim::Static(n) => {
                        let size = (f64::from(scale) * *n as f64).floor();
                        if size >= usize::MAX as f64 {
                            return cx.attr_err(
                                "scales",
                                format!("make axis {axis} of size {n} too large ({size})"),
                            );
                        }
                        Dim::Static(size as usize)
                    }
                    Dim::Sym(_) if scale == 1.0 => dim.clone(),
                    Dim::Sym(_) => {
                        return cx.sym_err(format!("axis {axis} would be floor(`{dim}` * {scale})"))
                    }
                });
            }
            dims
        }
    };
    Ok(TensorType::new(x.dtype, dims))
}

// ---- reductions ----

fn reduce(
    cx: &Cx,
    allowed: Allowed,
    axes: &[i64],
    keepdims: bool,
    noop_with_empty_axes: bool,
) -> InferResult<TensorType> {
    let dtype = cx.dtype(0, allowed)?;
    let x = cx.input(0)?;
    if axes.is_empty() && noop_with_empty_axes {
        return Ok(x.clone());
    }
    let reduced = if axes.is_empty() {
        (0..x.rank()).collect()
    } else {
        cx.axes("axes", axes, x.rank())?
    };
    // An integer mean over an empty group has no value (0 / 0): rejected when the shapes say so
    // statically (a reduced axis is 0 and the result is not empty). A symbolic dim bound to 0 fails
    // when the graph runs.
    if matches!(cx.op, Op::ReduceMean { .. }) && dtype.is_int() {
        let is_kept = |axis: &usize| !reduced.contains(axis);
        let dims = x.shape.dims();
        let empty_group = reduced.iter().any(|&axis| dims[axis] == Dim::Static(0));
        let groups_exist = (0..dims.len())
            .filter(is_kept)
            .all(|axis| matches!(dims[axis], Dim::Static(n) if n > 0));
        if empty_group && groups_exist {
            return cx.shape_err(format!(
                "the {dtype} mean over an empty axis of {} has no value (0 / 0)",
                x.shape
            ));
        }
    }
    let mut dims = Vec::with_capacity(x.rank());
    for (axis, dim) in x.shape.dims().iter().enumerate() {
        if !reduced.contains(&axis) {
            dims.push(dim.clone());
        } else if keepdims {
            dims.push(Dim::Static(1));
        }
    }
    Ok(TensorType::new(dtype, dims))
}

fn arg_reduce(cx: &Cx, axis: i64, keepdims: bool) -> InferResult<TensorType> {
    cx.dtype(0, NUMERIC)?;
    let x = cx.input(0)?;
    let axis_idx = cx.axis("axis", axis, x.rank())?;
    // An empty axis has no extreme, so there is no index to return (numpy raises too). A symbolic axis
    // bound to 0 fails when the graph runs.
    if x.shape.0[axis_idx] == Dim::Static(0) {
        return cx.shape_err(format!(
            "axis {axis_idx} of {} is empty, so it has no extreme",
            x.shape
        ));
    }
    let mut dims = x.shape.0.clone();
    if keepdims {
        dims[axis_idx] = Dim::Static(1);
    } else {
        dims.remove(axis_idx);
    }
    Ok(TensorType::new(DType::I64, dims))
}

// ---- data movement ----

/// A product of dims: a static factor times symbols (repeats kept, sorted so products compare).
struct DimProduct {
    factor: u128,
    syms: Vec<Arc<str>>,
}

impl DimProduct {
    fn of(cx: &Cx, dims: &[Dim]) -> InferResult<DimProduct> {
        let mut factor: u128 = 1;
        let mut syms = Vec::new();
        for dim in dims {
            match dim {
                Dim::Static(n) => {
                    factor = factor.checked_mul(*n as u128).ok_or_else(|| {
                        cx.error(InferErrorKind::Shape(
                            "the element count overflows".to_string(),
                        ))
                    })?;
                }
                Dim::Sym(name) => syms.push(name.clone()),
            }
        }
        syms.sort();
        Ok(DimProduct { factor, syms })
    }

    /// The product as one dim, if it is a static size or one symbol (or zero).
    fn to_dim(&self) -> Option<Dim> {
        if self.factor == 0 {
            return Some(Dim::Static(0));
        }
        match self.syms.as_slice() {
            [] => usize::try_from(self.factor).ok().map(Dim::Static),
            [name] if self.factor == 1 => Some(Dim::Sym(name.clone())),
            _ => None,
        }
    }
}

impl fmt::Display for DimProduct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut terms: Vec<String> = self.syms.iter().map(|s| format!("`{s}`")).collect();
        if self.factor != 1 || terms.is_empty() {
            terms.push(self.factor.to_string());
        }
        f.write_str(&terms.join(" * "))
    }
}

fn reshape(cx: &Cx, shape: &[i64], allowzero: bool) -> InferResult<TensorType> {
    let x = cx.input(0)?;
    let in_dims = x.shape.dims();
    let mut dims: Vec<Option<Dim>> = Vec::with_capacity(shape.len());
    let mut has_zero = false;
    for (axis, &entry) in shape.iter().enumerate() {
        let dim = match entry {
            -1 => {
                if dims.iter().any(Option::is_none) {
                    return cx.attr_err("shape", format!("may contain -1 at most once, got {shape:?}"));
                }
                None
            }
            0 if allowzero => {
                has_zero = true;
                Some(Dim::Static(0))
            }
            0 => match in_dims.get(axis) {
                Some(dim) => Some(dim.clone()),
                None => {
                    return cx.attr_err(
                        "shape",
                        format!("entry {axis} is 0 (copy the input dim), but the input {} has no axis {axis}", x.shape),
                    )
                }
            },
            n if n > 0 => Some(Dim::Static(cx.size_attr("shape", n, 1)?)),
            n => return cx.attr_err("shape", format!("entries must be -1, 0 or positive, got {n}")),
        };
        dims.push(dim);
    }
    let inferred_idx = dims.iter().position(Option::is_none);
    if allowzero && has_zero && inferred_idx.is_some() {
        return cx.attr_err(
            "shape",
            format!("may not contain both 0 and -1 with allowzero, got {shape:?}"),
        );
    }
    let known: Vec<Dim> = dims.iter().flatten().cloned().collect();
    let in_count = DimProduct::of(cx, in_dims)?;
    let known_count = DimProduct::of(cx, &known)?;
    let Some(inferred_idx) = inferred_idx else {
        let same = (in_count.factor == 0 && known_count.factor == 0)
            || (in_count.factor == known_count.factor && in_count.syms == known_count.syms);
        if !same {
            return cx.shape_err(format!(
                "cannot reshape {} ({in_count} elements) to {shape:?} ({known_count} elements)",
                x.shape
            ));
        }
        return Ok(TensorType::new(x.dtype, known));
    };
    if known_count.factor == 0 {
        return cx.shape_err(format!(
            "cannot infer the -1 entry of {shape:?}: the other entries have zero elements"
        ));
    }
    // The -1 dim is the input count divided by the known count: the known symbols must cancel.
    let mut remaining = in_count.syms.clone();
    for sym in &known_count.syms {
        match remaining.iter().position(|s| s == sym) {
            Some(idx) => {
                remaining.remove(idx);
            }
            None => {
                return cx.shape_err(format!(
                    "cannot reshape {} to {shape:?}: the symbol `{sym}` of the target does not occur in the input",
                    x.shape
                ))
            }
        }
    }
    let inferred = if in_count.factor == 0 {
        Dim::Static(0)
    } else if in_count.factor % known_count.factor != 0 {
        if remaining.is_empty() {
            return cx.shape_err(format!(
                "cannot reshape {} ({in_count} elements) to {shape:?}: {} is not divisible by {}",
                x.shape, in_count.factor, known_count.factor
            ));
        }
        return cx.sym_err(format!(
            "the -1 entry of {shape:?} would be {in_count} / {known_count}"
        ));
    } else {
        let quotient = DimProduct {
            factor: in_count.factor / known_count.factor,
            syms: remaining,
        };
        match quotient.to_dim() {
            Some(dim) => dim,
            None => return cx.sym_err(format!("the -1 entry of {shape:?} would be {quotient}")),
        }
    };
    let mut out = known;
    out.insert(inferred_idx, inferred);
    Ok(TensorType::new(x.dtype, out))
}

fn flatten(cx: &Cx, axis: i64) -> InferResult<TensorType> {
    let x = cx.input(0)?;
    let rank = x.rank();
    // Flatten's axis is in [-rank, rank]: `rank` puts every dim in the rows.
    let resolved = if axis < 0 {
        i128::from(axis) + rank as i128
    } else {
        i128::from(axis)
    };
    let Some(axis_idx) = i128_to_usize(resolved).filter(|&a| a <= rank) else {
        return cx.attr_err(
            "axis",
            format!(
                "must be in [{}, {rank}] for rank {rank}, got {axis}",
                -(rank as i128)
            ),
        );
    };
    let (rows, cols) = x.shape.dims().split_at(axis_idx);
    let mut dims = Vec::with_capacity(2);
    for part in [rows, cols] {
        let product = DimProduct::of(cx, part)?;
        match product.to_dim() {
            Some(dim) => dims.push(dim),
            None => {
                return cx.sym_err(format!("a flattened dim of {} would be {product}", x.shape))
            }
        }
    }
    Ok(TensorType::new(x.dtype, dims))
}

fn transpose(cx: &Cx, perm: &[i64]) -> InferResult<TensorType> {
    let x = cx.input(0)?;
    let rank = x.rank();
    let order: Vec<usize> = if perm.is_empty() {
        (0..rank).rev().collect()
    } else {
        let mut seen = vec![false; rank];
        let mut order = Vec::with_capacity(rank);
        for &p in perm {
            match usize::try_from(p) {
                Ok(axis) if axis < rank && !seen[axis] => {
                    seen[axis] = true;
                    order.push(axis);
                }
                _ => {
                    return cx.attr_err(
                        "perm",
                        format!("must be a permutation of 0..{rank} for rank {rank}, got {perm:?}"),
                    )
                }
            }
        }
        if order.len() != rank {
            return cx.attr_err(
                "perm",
                format!("must be a permutation of 0..{rank} for rank {rank}, got {perm:?}"),
            );
        }
        order
    };
    let dims = order
        .iter()
        .map(|&axis| x.shape.0[axis].clone())
        .collect::<Vec<_>>();
    Ok(TensorType::new(x.dtype, dims))
}

fn squeeze(cx: &Cx, axes: &[i64]) -> InferResult<TensorType> {
    let x = cx.input(0)?;
    let dims = if axes.is_empty() {
        x.shape
            .dims()
            .iter()
            .filter(|d| !d.is_one())
            .cloned()
            .collect::<Vec<_>>()
    } else {
        let removed = cx.axes("axes", axes, x.rank())?;
        for &axis in &removed {
            // A listed symbolic axis is assumed to be 1, as ONNX assumes; the reference interpreter
            // rejects another size when the graph runs.
            if let Dim::Static(n) = x.shape.0[axis] {
                if n != 1 {
                    return cx.shape_err(format!(
                        "cannot squeeze axis {axis} of {}: its size is {n}, not 1",
                        x.shape
                    ));
                }
            }
        }
        x.shape
            .dims()
            .iter()
            .enumerate()
            .filter(|(axis, _)| !removed.contains(axis))
            .map(|(_, d)| d.clone())
            .collect()
    };
    Ok(TensorType::new(x.dtype, dims))
}

fn unsqueeze(cx: &Cx, axes: &[i64]) -> InferResult<TensorType> {
    let x = cx.input(0)?;
    let out_rank = x.rank() + axes.len();
    let inserted = cx.axes("axes", axes, out_rank)?;
    let mut in_dims = x.shape.dims().iter();
    let dims = (0..out_rank)
        .map(|axis| {
            if inserted.contains(&axis) {
                Dim::Static(1)
            } else {
                in_dims.next().cloned().unwrap_or(Dim::Static(1))
            }
        })
        .collect::<Vec<_>>();
    Ok(TensorType::new(x.dtype, dims))
}

fn concat(cx: &Cx, axis: i64) -> InferResult<TensorType> {
    let first = cx.input(0)?;
    let rank = first.rank();
    if rank == 0 {
        return cx.rank_error(0, "at least 1".to_string());
    }
    let axis_idx = cx.axis("axis", axis, rank)?;
    let mut dims = first.shape.0.clone();
    let mut static_sum: u128 = 0;
    let mut syms: Vec<Arc<str>> = Vec::new();
    for slot_idx in 0..cx.inputs.len() {
        cx.same_dtype(slot_idx, 0)?;
        let input = cx.rank(slot_idx, rank)?;
        for (axis, dim) in input.iter().enumerate() {
            if axis == axis_idx {
                match dim {
                    Dim::Static(n) => static_sum += *n as u128,
                    Dim::Sym(name) => syms.push(name.clone()),
                }
            } else {
                dims[axis] = cx.unify(
                    format_args!(
                        "axis {axis} of `inputs[0]` and `{}` (not the concat axis)",
                        cx.label(slot_idx)
                    ),
                    &dims[axis],
                    dim,
                )?;
            }
        }
    }
    dims[axis_idx] = match syms.as_slice() {
        [] => Dim::Static(
            usize::try_from(static_sum)
                .or_else(|_| cx.shape_err("the concatenated size overflows"))?,
        ),
        [name] if static_sum == 0 => Dim::Sym(name.clone()),
        _ => {
            let mut terms: Vec<String> = syms.iter().map(|s| format!("`{s}`")).collect();
            if static_sum > 0 {
                terms.push(static_sum.to_string());
            }
            return cx.sym_err(format!("the concat axis would be {}", terms.join(" + ")));
        }
    };
    Ok(TensorType::new(first.dtype, dims))
}

fn split_op(cx: &Cx, split: &[i64], axis: i64) -> InferResult<Vec<TensorType>> {
    let x = cx.input(0)?;
    let axis_idx = cx.axis("axis", axis, x.rank())?;
    if split.is_empty() {
        return cx.attr_err("split", "must have at least one entry");
    }
    let sizes = split
        .iter()
        .map(|&s| cx.size_attr("split", s, 0))
        .collect::<InferResult<Vec<_>>>()?;
    let total: u128 = sizes.iter().map(|&s| s as u128).sum();
    match &x.shape.0[axis_idx] {
        Dim::Static(n) if total == *n as u128 => {}
        Dim::Static(n) => {
            return cx.attr_err(
                "split",
                format!("must sum to the size {n} of axis {axis_idx}, got {split:?} (sum {total})"),
            )
        }
        // A symbolic axis is assumed to be the sum, as ONNX assumes (the pieces are static); the
        // reference interpreter rejects another size when the graph runs.
        Dim::Sym(_) => {}
    }
    Ok(sizes
        .into_iter()
        .map(|size| {
            let mut dims = x.shape.0.clone();
            dims[axis_idx] = Dim::Static(size);
            TensorType::new(x.dtype, dims)
        })
        .collect())
}

/// ONNX's recommended "to the end" slice bound; symbolic dims are assumed to be smaller.
const SLICE_UNBOUNDED: i64 = i32::MAX as i64;

/// The length of `start..end` by `step` over a static dim, with ONNX's clamping.
fn slice(
    cx: &Cx,
    starts: &[i64],
    ends: &[i64],
    axes: &[i64],
    steps: &[i64],
) -> InferResult<TensorType> {
    let x = cx.input(0)?;
    let n_sliced = starts.len();
    if ends.len() != n_sliced {
        return cx.attr_err(
            "ends",
            format!("must have as many entries as `starts` ({n_sliced}), got {ends:?}"),
        );
    }
    let axes = if axes.is_empty() {
        let default: Vec<i64> = (0..n_sliced as i64).collect();
        cx.axes("starts", &default, x.rank())?
    } else if axes.len() != n_sliced {
        return cx.attr_err(
            "axes",
            format!("must have as many entries as `starts` ({n_sliced}), got {axes:?}"),
        );
    } else {
        cx.axes("axes", axes, x.rank())?
    };
    if !steps.is_empty() && steps.len() != n_sliced {
        return cx.attr_err(
            "steps",
            format!("must have as many entries as `starts` ({n_sliced}), got {steps:?}"),
        );
    }
    let mut dims = x.shape.0.clone();
    for (idx, &axis) in axes.iter().enumerate() {
        let (start, end) = (starts[idx], ends[idx]);
        let step = steps.get(idx).copied().unwrap_or(1);
        if step == 0 {
            return cx.attr_err("steps", "entries must not be 0");
        }
        dims[axis] = match &dims[axis] {
            Dim::Static(n) => Dim::Static(slice_range(start, end, step, *n).1),
            dim @ Dim::Sym(_) => {
                let forward_full = step == 1 && start == 0 && end >= SLICE_UNBOUNDED;
                let backward_full = step == -1
                    && (start == -1 || start >= SLICE_UNBOUNDED)
                    && end <= -SLICE_UNBOUNDED;
                if !(forward_full || backward_full) {
                    return cx.sym_err(format!(
                        "axis {axis}: slicing `{dim}` from {start} to {end} by {step} gives a size depending on `{dim}`"
                    ));
                }
                dim.clone()
            }
        };
    }
    Ok(TensorType::new(x.dtype, dims))
}

fn gather(cx: &Cx, axis: i64) -> InferResult<TensorType> {
    let dtype = cx.dtype(0, ANY)?;
    cx.dtype(1, INDEX)?;
    let data = cx.min_rank(0, 1)?;
    let axis_idx = cx.axis("axis", axis, data.len())?;
    let mut dims = data[..axis_idx].to_vec();
    dims.extend_from_slice(cx.dims(1)?);
    dims.extend_from_slice(&data[axis_idx + 1..]);
    Ok(TensorType::new(dtype, dims))
}

fn gather_elements(cx: &Cx, axis: i64) -> InferResult<TensorType> {
    let dtype = cx.dtype(0, ANY)?;
    cx.dtype(1, INDEX)?;
    let data = cx.min_rank(0, 1)?;
    let axis_idx = cx.axis("axis", axis, data.len())?;
    let indices = cx.rank(1, data.len())?;
    for (axis, (data_dim, index_dim)) in data.iter().zip(indices).enumerate() {
        let fits = match (data_dim, index_dim) {
            _ if axis == axis_idx || data_dim == index_dim => true,
            (Dim::Static(d), Dim::Static(i)) => i <= d,
            _ => false,
        };
        if !fits {
            return cx.shape_err(format!(
                "`indices` {} must not exceed `data` {} on axis {axis} (not the gather axis)",
                cx.input(1)?.shape,
                cx.input(0)?.shape
            ));
        }
    }
    Ok(TensorType::new(dtype, indices.to_vec()))
}

fn expand(cx: &Cx, shape: &[i64]) -> InferResult<TensorType> {
    let x = cx.input(0)?;
    let target = shape
        .iter()
        .map(|&s| cx.size_attr("shape", s, 0).map(Dim::Static))
        .collect::<InferResult<Vec<_>>>()?;
    let dims = cx.broadcast(&x.shape, &Shape(target))?;
    Ok(TensorType::new(x.dtype, dims))
}

fn tile(cx: &Cx, repeats: &[i64]) -> InferResult<TensorType> {
    let x = cx.input(0)?;
    if repeats.len() != x.rank() {
        return cx.attr_err(
            "repeats",
            format!(
                "must have {} entries (one per axis), got {repeats:?}",
                x.rank()
            ),
        );
    }
    let mut dims = Vec::with_capacity(x.rank());
    for (axis, (dim, &repeat)) in x.shape.dims().iter().zip(repeats).enumerate() {
        let repeat = cx.size_attr("repeats", repeat, 0)?;
        dims.push(match dim {
            _ if repeat == 0 => Dim::Static(0),
            _ => cx.scale_dim(dim, repeat, &format!("axis {axis}"))?,
        });
    }
    Ok(TensorType::new(x.dtype, dims))
}

fn range(cx: &Cx, start: f64, limit: f64, delta: f64, dtype: DType) -> InferResult<TensorType> {
    if !(FLOAT_I32_I64.test)(dtype) {
        return cx.attr_err(
            "dtype",
            format!("must be {}, got {dtype}", FLOAT_I32_I64.what),
        );
    }
    for (attr, value) in [("start", start), ("limit", limit), ("delta", delta)] {
        if !value.is_finite() {
            return cx.attr_err(attr, format!("must be finite, got {value}"));
        }
        cx.value_fits(attr, value, dtype)?;
    }
    if delta == 0.0 {
        return cx.attr_err("delta", "must not be 0");
    }
    // max(ceil((limit - start) / delta), 0) in f64 from the attributes, for every dtype: what
    // `onnx.reference` computes (numpy's arange counts in f64) and what `sinter-ref` computes. Counts
    // beyond 2^53 are not exact in f64, so they are rejected.
    let count = ((limit - start) / delta).ceil().max(0.0);
    if !count.is_finite() || count > (1u64 << 53) as f64 {
        return cx.attr_err("limit", format!("gives {count} elements, too many"));
    }
    Ok(TensorType::new(dtype, Shape::fixed(&[count as usize])))
}

fn trilu(cx: &Cx) -> InferResult<TensorType> {
    cx.min_rank(0, 2)?;
    Ok(cx.input(0)?.clone())
}

fn shape_op(cx: &Cx, start: i64, end: Option<i64>) -> InferResult<TensorType> {
    let rank = cx.input(0)?.rank() as i128;
    let resolve = |v: i64| {
        let v = i128::from(v);
        (if v < 0 { v + rank } else { v }).clamp(0, rank)
    };
    let start = resolve(start);
    let end = end.map_or(rank, resolve);
    let len = (end - start).max(0) as usize;
    Ok(TensorType::new(DType::I64, Shape::fixed(&[len])))
}

fn constant_of_shape(cx: &Cx, shape: &[i64], value: f64, dtype: DType) -> InferResult<TensorType> {
    if !(NUMERIC_OR_BOOL.test)(dtype) {
        return cx.attr_err(
            "dtype",
            format!("must be {}, got {dtype}", NUMERIC_OR_BOOL.what),
        );
    }
    cx.value_fits("value", value, dtype)?;
    let dims = shape
        .iter()
        .map(|&s| cx.size_attr("shape", s, 0))
        .collect::<InferResult<Vec<_>>>()?;
    Ok(TensorType::new(dtype, Shape::fixed(&dims)))
}

// ---- recurrent ----

fn recurrent(cx: &Cx, attrs: &RecurrentAttrs) -> InferResult<Vec<TensorType>> {
    let cell = attrs.cell;
    let is_lstm = matches!(cell, RecurrentCell::Lstm { .. });
    let dtype = cx.dtype(0, FLOAT)?;
    let hidden = cx.window_attr("hidden_size", attrs.hidden_size, 1)?;
    let n_directions = if attrs.direction == RnnDirection::Bidirectional {
        2
    } else {
        1
    };
    let batch_first = match attrs.layout {
        0 => false,
        1 => true,
        other => return cx.attr_err("layout", format!("must be 0 or 1, got {other}")),
    };
    let n_activations = n_directions * cell.default_activations().len();
    if !attrs.activations.is_empty() && attrs.activations.len() != n_activations {
        return cx.attr_err(
            "activations",
            format!(
                "must have {n_activations} entries ({} per direction), got {}",
                cell.default_activations().len(),
                attrs.activations.len()
            ),
        );
    }
    // The parameters are positional: entry `i` belongs to `activations[i]`, so a non-empty list has
    // exactly one entry per listed activation (none when the defaults are used).
    for (attr, values) in [
        ("activation_alpha", attrs.activation_alpha),
        ("activation_beta", attrs.activation_beta),
    ] {
        if !values.is_empty() && values.len() != attrs.activations.len() {
            return cx.attr_err(
                attr,
                format!(
                    "must be empty or have one entry per listed activation ({}), got {} entries",
                    attrs.activations.len(),
                    values.len()
                ),
            );
        }
    }
    if let Some(clip) = attrs.clip {
        if clip.is_nan() || clip <= 0.0 {
            return cx.attr_err("clip", format!("must be positive, got {clip}"));
        }
    }
    let x = cx.rank(0, 3)?;
    let (seq, batch, input_size) = if batch_first {
        (&x[1], &x[0], &x[2])
    } else {
        (&x[0], &x[1], &x[2])
    };
    let dirs = Dim::Static(n_directions);
    let hidden_dim = Dim::Static(hidden);
    let gates_dim = Dim::Static(cell.n_gates() * hidden);
    let direction_meaning = "the number of directions";
    let gates_meaning = format!("{} gates * hidden_size", cell.n_gates());
    for slot_idx in [1, 2] {
        cx.same_dtype(slot_idx, 0)?;
        cx.rank(slot_idx, 3)?;
        cx.expect_dim(slot_idx, 0, &dirs, direction_meaning)?;
        cx.expect_dim(slot_idx, 1, &gates_dim, &gates_meaning)?;
    }
    cx.expect_dim(1, 2, input_size, "the input size of `x`")?;
    cx.expect_dim(2, 2, &hidden_dim, "hidden_size")?;
    if cx.opt_input(3).is_some() {
        cx.same_dtype(3, 0)?;
        cx.rank(3, 2)?;
        cx.expect_dim(3, 0, &dirs, direction_meaning)?;
        let bias = Dim::Static(2 * cell.n_gates() * hidden);
        cx.expect_dim(3, 1, &bias, &format!("2 * {gates_meaning}"))?;
    }
    let mut batch = batch.clone();
    if cx.opt_input(4).is_some() {
        cx.dtype(4, INDEX)?;
        cx.rank(4, 1)?;
        batch = cx.expect_dim(4, 0, &batch, "the batch size")?;
    }
    // initial_h and, for LSTM, initial_c: [directions, batch, hidden], batch first in layout 1.
    let state_slots: &[usize] = if is_lstm { &[5, 6] } else { &[5] };
    for &slot_idx in state_slots {
        if cx.opt_input(slot_idx).is_some() {
            cx.same_dtype(slot_idx, 0)?;
            cx.rank(slot_idx, 3)?;
            let (dirs_axis, batch_axis) = if batch_first { (1, 0) } else { (0, 1) };
            cx.expect_dim(slot_idx, dirs_axis, &dirs, direction_meaning)?;
            batch = cx.expect_dim(slot_idx, batch_axis, &batch, "the batch size")?;
            cx.expect_dim(slot_idx, 2, &hidden_dim, "hidden_size")?;
        }
    }
    if is_lstm && cx.opt_input(7).is_some() {
        cx.same_dtype(7, 0)?;
        cx.rank(7, 2)?;
        cx.expect_dim(7, 0, &dirs, direction_meaning)?;
        cx.expect_dim(7, 1, &Dim::Static(3 * hidden), "3 peepholes * hidden_size")?;
    }
    let (y, state) = if batch_first {
        (
            vec![batch.clone(), seq.clone(), dirs.clone(), hidden_dim.clone()],
            vec![batch, dirs, hidden_dim],
        )
    } else {
        (
            vec![seq.clone(), dirs.clone(), batch.clone(), hidden_dim.clone()],
            vec![dirs, batch, hidden_dim],
        )
    };
    let mut outputs = vec![
        TensorType::new(dtype, y),
        TensorType::new(dtype, state.clone()),
    ];
    if is_lstm {
        outputs.push(TensorType::new(dtype, state));
    }
    Ok(outputs)
}
