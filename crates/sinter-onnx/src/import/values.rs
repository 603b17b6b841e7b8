//! The importer's value arena and the per-node context the op mappings work with.
//!
//! [`Importer`] owns the IR graph under construction and an arena of operands ([`Opd`]): what is
//! known about each ONNX value (its IR value, its constant contents, its symbolic shape value, and
//! what a small value depends on). [`Importer::emit`] is the one place IR ops are added, and the one
//! place constant folding happens. [`NodeCx`] is what an op mapping sees: the node, its resolved
//! inputs, typed attributes, and helpers that turn inputs into attribute values or say precisely
//! why they cannot be.

use super::attrs::Attrs;
use super::shape_value::{ShapeElem, ShapeValue};
use super::{MAX_FOLDED_ELEMENTS, MAX_FOLDED_INPUT_ELEMENTS};
use crate::proto::tensor_proto::DataType;
use crate::proto::NodeProto;
use crate::tensor::{tensor_from_proto, ExternalData, TensorError};
use sinter_ir::{BuildError, DType, Dim, Graph, InferErrorKind, Op, Tensor, TensorType, Value};
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// A handle to an operand of the importer's arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Opd(usize);

/// What the importer knows about one value. At least one of `value` and `konst` is set.
struct Operand {
    ty: TensorType,
    /// The IR value computing it, if any.
    value: Option<Value>,
    /// Its contents, if known at import.
    konst: Option<Arc<Tensor>>,
    /// The graph const holding `konst`, once something has read it.
    const_value: Option<Value>,
    /// Its contents as a symbolic shape vector, for i64 shape computations.
    shape: Option<ShapeValue>,
    /// A name for the graph const, from the ONNX value it came from.
    name_hint: String,
    /// What a small computed value depends on (see [`MAX_TRACKED_ELEMENTS`]), to tell the user
    /// what to fix when a shape-like parameter is not constant.
    deps: Deps,
}

/// The run-time quantities a value is computed from.
#[derive(Clone, Debug, Default)]
pub(crate) struct Deps {
    /// Graph inputs whose values it depends on.
    pub(super) inputs: Vec<String>,
    /// Symbolic dims whose sizes it depends on (through `Shape` or `Size`).
    pub(super) dims: Vec<Arc<str>>,
}

impl Deps {
    pub(crate) fn of_dims(dims: &[Dim]) -> Deps {
        let mut deps = Deps::default();
        for dim in dims {
            if let Dim::Sym(name) = dim {
                if !deps.dims.contains(name) {
                    deps.dims.push(name.clone());
                }
            }
        }
        deps
    }

    fn merge(&mut self, other: &Deps) {
        for name in &other.inputs {
            if !self.inputs.contains(name) {
                self.inputs.push(name.clone());
            }
        }
        for name in &other.dims {
            if !self.dims.contains(name) {
                self.dims.push(name.clone());
            }
        }
    }
}

/// The most input elements of a contraction (matmul, convolution, attention, recurrence) evaluated
/// at import: their work grows faster than their inputs, so the bound is tighter than for other ops.
const MAX_FOLDED_HEAVY_INPUT_ELEMENTS: usize = 1 << 16;

/// Ops whose work is a product of their input sizes rather than proportional to them.
fn is_compute_heavy(op: &Op) -> bool {
    matches!(
        op,
        Op::MatMul {}
            | Op::Gemm { .. }
            | Op::Conv { .. }
            | Op::ConvTranspose { .. }
            | Op::Attention { .. }
            | Op::Rnn { .. }
            | Op::Lstm { .. }
            | Op::Gru { .. }
    )
}

/// Values with at most this many elements record which graph inputs they are computed from; larger
/// ones are not shape-like parameters.
const MAX_TRACKED_ELEMENTS: usize = 64;

/// The IR graph under construction and the operand arena.
pub(crate) struct Importer {
    pub(super) graph: Graph,
    operands: Vec<Operand>,
    /// Const names handed out so far (graph input names are checked by the graph itself).
    const_names: HashSet<String>,
}

/// What went wrong with one node.
#[derive(Debug)]
pub(crate) enum NodeError {
    /// Something sinter does not support; collected into [`super::ImportError::Unsupported`].
    Unsupported(String),
    /// A parameter that must be known at import is computed from these graph inputs.
    NeedsInputValues { reason: String, inputs: Vec<String> },
    /// A malformed node or inputs that do not fit; becomes [`super::ImportError::Node`].
    Invalid(String),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Unsupported(reason) | NodeError::NeedsInputValues { reason, .. } => {
                write!(f, "unsupported: {reason}")
            }
            NodeError::Invalid(message) => f.write_str(message),
        }
    }
}

pub(crate) type NodeResult<T> = Result<T, NodeError>;

/// One entry per ONNX output of a node: its operand, or `None` when it is not produced.
pub(crate) type Lowered = Vec<Option<Opd>>;

pub(crate) fn unsupported<T>(reason: impl Into<String>) -> NodeResult<T> {
    Err(NodeError::Unsupported(reason.into()))
}

pub(crate) fn invalid<T>(message: impl Into<String>) -> NodeResult<T> {
    Err(NodeError::Invalid(message.into()))
}

/// Turns an inference failure into a node error. An output that would need a symbolic dim
/// expression is a limit of the IR rather than a broken model, so it counts as unsupported.
fn build_error(error: BuildError) -> NodeError {
    match error {
        BuildError::Infer { source, .. } => {
            let message = format!("IR `{}`: {}", source.op, source.kind);
            if matches!(source.kind, InferErrorKind::Symbolic(_)) {
                NodeError::Unsupported(message)
            } else {
                NodeError::Invalid(message)
            }
        }
        BuildError::Graph { source, .. } => NodeError::Invalid(source.to_string()),
    }
}

impl Importer {
    pub(super) fn new(name: &str) -> Importer {
        Importer {
            graph: Graph::new(name),
            operands: Vec::new(),
            const_names: HashSet::new(),
        }
    }

    fn push(&mut self, operand: Operand) -> Opd {
        self.operands.push(operand);
        Opd(self.operands.len() - 1)
    }

    fn operand(&self, opd: Opd) -> &Operand {
        &self.operands[opd.0]
    }

    pub(crate) fn ty(&self, opd: Opd) -> &TensorType {
        &self.operand(opd).ty
    }

    pub(crate) fn konst(&self, opd: Opd) -> Option<&Arc<Tensor>> {
        self.operand(opd).konst.as_ref()
    }

    pub(crate) fn shape_value(&self, opd: Opd) -> Option<ShapeValue> {
        let operand = self.operand(opd);
        match (&operand.shape, &operand.konst) {
            (Some(shape), _) => Some(shape.clone()),
            (None, Some(konst)) if konst.dtype() == DType::I64 => ShapeValue::from_tensor(konst),
            _ => None,
        }
    }

    /// A constant operand (not yet a graph const).
    pub(crate) fn const_operand(&mut self, tensor: Arc<Tensor>, hint: &str) -> Opd {
        let ty = tensor.ty();
        self.push(Operand {
            ty,
            value: None,
            konst: Some(tensor),
            const_value: None,
            shape: None,
            name_hint: hint.to_string(),
            deps: Deps::default(),
        })
    }

    pub(super) fn value_operand(&mut self, value: Value, hint: &str, deps: Deps) -> Opd {
        let ty = self.graph.value_type(value).clone();
        self.push(Operand {
            ty,
            value: Some(value),
            konst: None,
            const_value: None,
            shape: None,
            name_hint: hint.to_string(),
            deps,
        })
    }

    /// What `opd` is computed from, when it is small enough to be tracked.
    pub(crate) fn deps(&self, opd: Opd) -> &Deps {
        &self.operand(opd).deps
    }

    /// An operand computed in the graph whose type has exactly `dims`, if any.
    pub(crate) fn find_value_with_dims(&self, dims: &[Dim]) -> Option<Opd> {
        self.operands
            .iter()
            .position(|o| o.value.is_some() && o.ty.shape.dims() == dims)
            .map(Opd)
    }

    /// An operand computed in the graph with the symbolic dim `symbol`, and that dim's axis: the
    /// one with the fewest elements (other symbols counted as 1), so that slicing it down to the
    /// symbol's axis is cheap. Values with an empty static dim are skipped: they hold no element
    /// to slice out.
    pub(crate) fn find_value_with_symbol(&self, symbol: &str) -> Option<(Opd, usize)> {
        let mut best: Option<(usize, Opd, usize)> = None;
        for (opd_idx, operand) in self.operands.iter().enumerate() {
            if operand.value.is_none() {
                continue;
            }
            let dims = operand.ty.shape.dims();
            let Some(axis) = dims
                .iter()
                .position(|d| matches!(d, Dim::Sym(s) if &**s == symbol))
            else {
                continue;
            };
            let size = dims.iter().try_fold(1usize, |acc, dim| match dim {
                Dim::Static(0) => None,
                Dim::Static(n) => Some(acc.saturating_mul(*n)),
                Dim::Sym(_) => Some(acc),
            });
            if let Some(size) = size {
                if best.is_none_or(|(best_size, _, _)| size < best_size) {
                    best = Some((size, Opd(opd_idx), axis));
                }
            }
        }
        best.map(|(_, opd, axis)| (opd, axis))
    }

    /// Replaces what `opd` depends on: `Shape` and `Size` depend on dims, not on values.
    pub(crate) fn set_deps(&mut self, opd: Opd, deps: Deps) {
        self.operands[opd.0].deps = deps;
    }

    /// Records a shape value for `opd`; if every element is known, `opd` also becomes a constant.
    pub(crate) fn set_shape_value(&mut self, opd: Opd, shape: ShapeValue) {
        if self.operand(opd).ty.dtype != DType::I64 {
            return;
        }
        let konst = shape.to_tensor().map(Arc::new);
        let operand = &mut self.operands[opd.0];
        if operand.konst.is_none() {
            operand.konst = konst;
        }
        operand.shape = Some(shape);
    }

    /// The IR value of an operand, adding its graph const on first use.
    pub(crate) fn materialize(&mut self, opd: Opd) -> NodeResult<Value> {
        let operand = self.operand(opd);
        if let Some(value) = operand.const_value {
            return Ok(value);
        }
        let Some(konst) = operand.konst.clone() else {
            return match operand.value {
                Some(value) => Ok(value),
                None => invalid("an operand has neither an IR value nor constant contents"),
            };
        };
        let stem = if operand.name_hint.is_empty() {
            "const".to_string()
        } else {
            operand.name_hint.clone()
        };
        let name = self.fresh_const_name(&stem);
        let value = self
            .graph
            .add_const(name, Tensor::clone(&konst))
            .map_err(|e| NodeError::Invalid(e.to_string()))?;
        self.operands[opd.0].const_value = Some(value);
        Ok(value)
    }

    fn fresh_const_name(&mut self, stem: &str) -> String {
        let taken = |names: &HashSet<String>, graph: &Graph, name: &str| {
            names.contains(name) || graph.input_signature().iter().any(|(n, _)| *n == name)
        };
        let mut name = stem.to_string();
        let mut suffix = 1usize;
        while taken(&self.const_names, &self.graph, &name) {
            name = format!("{stem}_{suffix}");
            suffix += 1;
        }
        self.const_names.insert(name.clone());
        name
    }

    /// Applies `op` to `inputs`: evaluated at import when every present input is constant and the
    /// result is small, otherwise added as a node with inferred types.
    pub(crate) fn emit(
        &mut self,
        op: Op,
        inputs: &[Option<Opd>],
        label: Option<&str>,
        hint: &str,
    ) -> NodeResult<Vec<Opd>> {
        if let Some(folded) = self.try_fold(&op, inputs, hint)? {
            return Ok(folded);
        }
        let values = inputs
            .iter()
            .map(|input| input.map(|opd| self.materialize(opd)).transpose())
            .collect::<NodeResult<Vec<_>>>()?;
        let mut deps = Deps::default();
        for opd in inputs.iter().flatten() {
            deps.merge(&self.operand(*opd).deps);
        }
        let outputs = self
            .graph
            .add_op_inferred(op, &values, label.map(str::to_string))
            .map_err(build_error)?;
        Ok(outputs
            .into_iter()
            .map(|value| {
                let small = self
                    .graph
                    .value_type(value)
                    .shape
                    .num_elements()
                    .is_some_and(|n| n <= MAX_TRACKED_ELEMENTS);
                let deps = if small { deps.clone() } else { Deps::default() };
                self.value_operand(value, hint, deps)
            })
            .collect())
    }

    fn try_fold(
        &mut self,
        op: &Op,
        inputs: &[Option<Opd>],
        hint: &str,
    ) -> NodeResult<Option<Vec<Opd>>> {
        let mut tensors: Vec<Option<Arc<Tensor>>> = Vec::with_capacity(inputs.len());
        for input in inputs {
            match input {
                None => tensors.push(None),
                Some(opd) => match self.konst(*opd) {
                    Some(t) => tensors.push(Some(t.clone())),
                    None => return Ok(None),
                },
            }
        }
        let n_input_elements = tensors
            .iter()
            .flatten()
            .fold(0usize, |acc, t| acc.saturating_add(t.len()));
        if n_input_elements > MAX_FOLDED_INPUT_ELEMENTS
            || (is_compute_heavy(op) && n_input_elements > MAX_FOLDED_HEAVY_INPUT_ELEMENTS)
        {
            return Ok(None);
        }
        let types: Vec<Option<TensorType>> =
            tensors.iter().map(|t| t.as_ref().map(|t| t.ty())).collect();
        let type_refs: Vec<Option<&TensorType>> = types.iter().map(Option::as_ref).collect();
        let out_types = sinter_ir::infer_types(op, &type_refs).map_err(|source| {
            build_error(BuildError::Infer {
                node: String::new(),
                source,
            })
        })?;
        let n_output_elements = out_types.iter().fold(0usize, |acc, ty| {
            acc.saturating_add(ty.shape.num_elements().unwrap_or(usize::MAX))
        });
        if n_output_elements > MAX_FOLDED_ELEMENTS {
            return Ok(None);
        }
        let refs: Vec<Option<&Tensor>> = tensors.iter().map(|t| t.as_deref()).collect();
        let results = sinter_ref::eval_op(op, &refs).map_err(|e| {
            NodeError::Invalid(format!("evaluating IR `{}` at import: {e}", op.name()))
        })?;
        Ok(Some(
            results
                .into_iter()
                .map(|t| self.const_operand(Arc::new(t), hint))
                .collect(),
        ))
    }
}

// ---- the per-node context ----

/// One node being lowered: its proto, resolved inputs, and the importer to emit into.
pub(crate) struct NodeCx<'a> {
    pub imp: &'a mut Importer,
    pub node: &'a NodeProto,
    /// The model's default-domain opset version.
    pub opset: i64,
    pub(super) inputs: Vec<Option<Opd>>,
    pub(super) outputs_used: Vec<bool>,
    pub(super) external: &'a ExternalData,
}

impl<'a> NodeCx<'a> {
    pub(crate) fn attrs(&self) -> Attrs<'a> {
        Attrs::new(self.node)
    }

    fn label(&self) -> Option<&'a str> {
        let name = self.node.name.as_str();
        (!name.is_empty()).then_some(name)
    }

    /// The name hint for constants this node produces: its first output's name.
    fn hint(&self) -> String {
        self.node
            .output
            .first()
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| self.node.name.clone())
    }

    pub(crate) fn n_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// Input `idx`, which must be present.
    pub(crate) fn input(&self, idx: usize) -> NodeResult<Opd> {
        match self.inputs.get(idx).copied().flatten() {
            Some(opd) => Ok(opd),
            None => invalid(format!(
                "input {idx} is required but {}",
                if idx < self.inputs.len() {
                    "is empty"
                } else {
                    "the node has fewer inputs"
                }
            )),
        }
    }

    pub(crate) fn opt_input(&self, idx: usize) -> Option<Opd> {
        self.inputs.get(idx).copied().flatten()
    }

    /// The present inputs, in order (for variadic ops).
    pub(crate) fn present_inputs(&self) -> Vec<Opd> {
        self.inputs.iter().flatten().copied().collect()
    }

    pub(crate) fn ty(&self, opd: Opd) -> &TensorType {
        self.imp.ty(opd)
    }

    pub(crate) fn dims(&self, opd: Opd) -> Vec<Dim> {
        self.imp.ty(opd).shape.0.clone()
    }

    /// Whether ONNX output `idx` exists and something reads it.
    pub(crate) fn output_used(&self, idx: usize) -> bool {
        self.outputs_used.get(idx).copied().unwrap_or(false)
    }

    pub(crate) fn n_outputs(&self) -> usize {
        self.node.output.len()
    }

    /// Input `idx` as a constant tensor (`None` when absent). A present input that is not constant
    /// is unsupported: the IR keeps it as an attribute.
    pub(crate) fn const_input(&self, idx: usize, what: &str) -> NodeResult<Option<Arc<Tensor>>> {
        let Some(opd) = self.opt_input(idx) else {
            return Ok(None);
        };
        match self.imp.konst(opd) {
            Some(t) => Ok(Some(t.clone())),
            None => Err(self.not_constant(
                opd,
                format!(
                    "input {idx} (`{what}`) must be a constant (an initializer, a Constant node or \
                     a value that folds to one), because the IR keeps it as an attribute"
                ),
            )),
        }
    }

    /// Checks up front that every present input among `slots` is constant, so that one error names
    /// every parameter (and every graph input behind them) that must be known at import.
    pub(crate) fn require_constants(&self, slots: &[(usize, &str)]) -> NodeResult<()> {
        let missing: Vec<(Opd, String)> = slots
            .iter()
            .filter_map(|&(idx, what)| {
                let opd = self.opt_input(idx)?;
                self.imp
                    .konst(opd)
                    .is_none()
                    .then(|| (opd, format!("input {idx} (`{what}`)")))
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = missing.iter().map(|(_, name)| name.as_str()).collect();
        let requirement = format!(
            "{} must be constant (an initializer, a Constant node or a value that folds to one), \
             because the IR keeps {}",
            names.join(" and "),
            if missing.len() == 1 {
                "it as an attribute"
            } else {
                "them as attributes"
            }
        );
        let operands: Vec<Opd> = missing.iter().map(|(opd, _)| *opd).collect();
        Err(self.computed_at_run_time(&operands, requirement))
    }

    /// The error for a parameter that must be known at import but is `opd`, computed at run time.
    pub(crate) fn not_constant(&self, opd: Opd, requirement: String) -> NodeError {
        self.computed_at_run_time(&[opd], requirement)
    }

    /// Says what the run-time `operands` come from: graph inputs, which
    /// [`super::ImportOptions::input_values`] can fix, and symbolic dims, which
    /// [`super::ImportOptions::dim_overrides`] can. Only when every operand comes from graph input values
    /// alone is the error [`NodeError::NeedsInputValues`].
    fn computed_at_run_time(&self, operands: &[Opd], requirement: String) -> NodeError {
        let mut deps = Deps::default();
        let mut all_from_inputs = true;
        for &opd in operands {
            let mut own = self.imp.deps(opd).clone();
            // A shape value says exactly which symbols the value holds.
            if let Some(shape) = self.imp.shape_value(opd) {
                if !shape.elems.contains(&ShapeElem::Unknown) {
                    own.dims = shape
                        .elems
                        .iter()
                        .filter_map(|e| match e {
                            ShapeElem::Sym(name) => Some(name.clone()),
                            _ => None,
                        })
                        .collect();
                }
            }
            all_from_inputs &= !own.inputs.is_empty() && own.dims.is_empty();
            deps.merge(&own);
        }
        let quote = |names: Vec<String>| {
            names
                .into_iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sources = Vec::new();
        if !deps.inputs.is_empty() {
            sources.push(format!(
                "the values of the graph input{} {} (fixable with ImportOptions::input_values)",
                if deps.inputs.len() == 1 { "" } else { "s" },
                quote(deps.inputs.clone())
            ));
        }
        if !deps.dims.is_empty() {
            sources.push(format!(
                "the symbolic dim{} {} (fixable with ImportOptions::dim_overrides)",
                if deps.dims.len() == 1 { "" } else { "s" },
                quote(deps.dims.iter().map(|d| d.to_string()).collect())
            ));
        }
        let types: Vec<String> = operands
            .iter()
            .map(|&opd| self.ty(opd).to_string())
            .collect();
        let reason = if sources.is_empty() {
            format!(
                "{requirement}; here it is computed at run time ({})",
                types.join(", ")
            )
        } else {
            format!(
                "{requirement}; here it is computed at run time ({}) from {}",
                types.join(", "),
                sources.join(" and ")
            )
        };
        if all_from_inputs {
            NodeError::NeedsInputValues {
                reason,
                inputs: deps.inputs,
            }
        } else {
            NodeError::Unsupported(reason)
        }
    }

    /// A constant integer input as i64 values (`None` when absent).
    pub(crate) fn const_ints(&self, idx: usize, what: &str) -> NodeResult<Option<Vec<i64>>> {
        match self.const_input(idx, what)? {
            None => Ok(None),
            Some(t) if t.dtype().is_int() => Ok(Some(t.to_i64_vec())),
            Some(t) => invalid(format!(
                "input {idx} (`{what}`) must be an integer tensor, got {}",
                t.ty()
            )),
        }
    }

    /// A constant one-element input as f64 (`None` when absent).
    pub(crate) fn const_scalar(&self, idx: usize, what: &str) -> NodeResult<Option<f64>> {
        match self.const_input(idx, what)? {
            None => Ok(None),
            Some(t) if t.len() == 1 => Ok(t.to_f64_vec().first().copied()),
            Some(t) => invalid(format!(
                "input {idx} (`{what}`) must have exactly one element, got {}",
                t.ty()
            )),
        }
    }

    pub(crate) fn emit(&mut self, op: Op, inputs: &[Option<Opd>]) -> NodeResult<Vec<Opd>> {
        let hint = self.hint();
        let label = self.label();
        self.imp.emit(op, inputs, label, &hint)
    }

    /// Emits a single-output op on required inputs.
    pub(crate) fn emit1(&mut self, op: Op, inputs: &[Opd]) -> NodeResult<Opd> {
        let inputs: Vec<Option<Opd>> = inputs.iter().copied().map(Some).collect();
        self.emit_opt1(op, &inputs)
    }

    /// Emits a single-output op whose inputs may be absent.
    pub(crate) fn emit_opt1(&mut self, op: Op, inputs: &[Option<Opd>]) -> NodeResult<Opd> {
        let name = op.name();
        let outputs = self.emit(op, inputs)?;
        match outputs.first() {
            Some(&opd) => Ok(opd),
            None => invalid(format!("IR `{name}` produced no output")),
        }
    }

    /// A constant operand made by the importer (a mask, a scale).
    pub(crate) fn constant(&mut self, tensor: Tensor) -> Opd {
        let hint = format!("{}_const", self.hint());
        self.imp.const_operand(Arc::new(tensor), &hint)
    }

    pub(crate) fn tensor_from_attr(
        &self,
        t: &crate::proto::TensorProto,
        attr: &str,
    ) -> NodeResult<Tensor> {
        tensor_from_proto(t, self.external).map_err(|e| match e {
            TensorError::UnsupportedDType { onnx_type, .. } => NodeError::Unsupported(format!(
                "attribute `{attr}` holds a {onnx_type} tensor, which sinter does not support"
            )),
            other => NodeError::Invalid(format!("attribute `{attr}`: {other}")),
        })
    }
}

/// Single-output lowering result.
pub(crate) fn one(opd: Opd) -> NodeResult<Lowered> {
    Ok(vec![Some(opd)])
}

/// The sinter dtype of an ONNX element type code, or the ONNX type's name when unsupported.
pub(crate) fn dtype_of(elem_type: i32) -> Result<DType, String> {
    match DataType::try_from(elem_type) {
        Ok(DataType::Float) => Ok(DType::F32),
        Ok(DataType::Double) => Ok(DType::F64),
        Ok(DataType::Int64) => Ok(DType::I64),
        Ok(DataType::Int32) => Ok(DType::I32),
        Ok(DataType::Int8) => Ok(DType::I8),
        Ok(DataType::Uint8) => Ok(DType::U8),
        Ok(DataType::Bool) => Ok(DType::Bool),
        Ok(other) => Err(other.as_str_name().to_string()),
        Err(_) => Err(format!("unknown element type code {elem_type}")),
    }
}
