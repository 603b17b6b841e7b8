//! Lowering a graph to a loop-IR [`Program`]: one or more kernels per op, in the graph's canonical
//! order, connected by program buffers.
//!
//! The semantic reference for every op is `sinter-ref` (one module per family); this module mirrors
//! its layout: `elementwise` (unary, binary, `where`, one shared broadcasting map), `linalg` (matmul,
//! gemm, fused_matmul), `conv` (conv, conv_transpose, fused_conv), `conv_pool` (the convolution
//! computed in bands and pooled at once), `pool` (windowed and global pools), `reduce` (the `reduce_*`
//! family and arg_max/arg_min, one parametrised reduction), `normalize` (softmax, the norms, lrn),
//! `movement` (transpose, concat, slice, gather, pad, ...), `resize`, `recurrent` (rnn, lstm, gru), `attention`.
//!
//! Conventions every lowering follows:
//! - **Shapes are static.** The runtime specialises symbolic dims before lowering; a symbolic shape
//!   here is a [`LowerIssue::SymbolicShape`] naming the node and value.
//! - **Every problem is reported.** Unsupported ops or attributes become [`LowerIssue`]s and lowering
//!   continues with the next node, so one [`LowerError`] lists them all.
//! - **Views move no data.** Reshape, Flatten, Squeeze, Unsqueeze and Identity bind their output to
//!   the input's program buffer. A graph output that would alias a graph input, a weight or another
//!   output gets a copy kernel, so every output is a distinct `Computed` buffer.
//! - **Loads are affine and in bounds.** Padding is materialised in a kernel-private scratch buffer
//!   (filled, then the interior copied) rather than guarded; data-dependent indices (gather) use the
//!   IR's range-checked dynamic term.
//! - **Loop order suits vectorisation.** The innermost output loop walks the output's last
//!   (contiguous) dim; reductions (matmul's `k`, conv's window) sit inside the output loops.
//! - **Elementwise chains fuse into their producer.** A decision pass (`fuse.rs`) links each value
//!   with one use to its elementwise consumer when the consumer keeps the value's shape and dtype. A
//!   producer that writes each output element once asks `Lowerer::take_epilogue` for the chain
//!   and stores `epilogue(value)` through `KernelDraft::sink`; the absorbed nodes emit no kernel
//!   and appear in the kernel's origins and name (`conv1_relu`). Elementwise ops, pools,
//!   reductions, normalizations and the tile epilogues of matmul, gemm and conv opt in; a producer
//!   that does not ask leaves its consumers to their own kernels.
//! - **Fused ops lower as their parts.** `fused_conv` and `fused_matmul` are conv and matmul whose
//!   residual/bias add and activation (from `Op::fused_parts`) are the first steps of the same
//!   epilogue (`Lowerer::fused_epilogue`), before any chain the graph adds.

mod attention;
mod conv;
mod conv_pool;
mod elementwise;
mod fuse;
mod linalg;
mod movement;
mod normalize;
mod pool;
mod recurrent;
mod reduce;
mod resize;
mod tiles;

use crate::builder::{row_major_strides, KernelBuilder};
use crate::ir::*;
use crate::program::{BufferSource, KernelCall, Program, ProgramBuffer, ProgramBufferId};
use sinter_ir::{DType, Graph, NodeId, NodeKind, Op, Tensor, Value};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// One problem found while lowering.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LowerIssue {
    #[error("{node}: value `{value}` has a symbolic shape {ty}; specialise the graph first")]
    SymbolicShape {
        node: String,
        value: String,
        ty: String,
    },
    #[error("{node} (`{op}`): not supported: {reason}")]
    Unsupported {
        node: String,
        op: String,
        reason: String,
    },
    #[error("the graph has a cycle through {node}")]
    Cycle { node: String },
    #[error("graph output `{output}` names a value that was not lowered")]
    MissingOutput { output: String },
}

/// Every problem that kept a graph from lowering.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct LowerError {
    pub issues: Vec<LowerIssue>,
}

impl fmt::Display for LowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot lower the graph ({} problems)", self.issues.len())?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

/// A tensor the lowering reads or writes: its program buffer, dtype and static shape.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Operand {
    pub buf: ProgramBufferId,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// The program buffer is a graph constant (bound read-only as a weight).
    pub is_weight: bool,
    /// For buffer declarations in dumps: `%3`, `@w`, `x`.
    pub name: String,
}

impl Operand {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

/// A node being lowered: its description, op, inputs by slot and preallocated outputs.
pub(crate) struct NodeCx<'a> {
    pub id: NodeId,
    pub node: String,
    pub op: &'a Op,
    pub inputs: Vec<Option<Operand>>,
    pub outputs: Vec<Operand>,
    /// A symbol-safe stem for kernel names.
    pub stem: String,
}

impl NodeCx<'_> {
    /// Input `slot`, which the graph verifier guarantees for required inputs.
    pub fn input(&self, slot: usize) -> Result<&Operand, String> {
        self.inputs
            .get(slot)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("input {slot} (`{}`) is missing", self.op.input_name(slot)))
    }

    pub fn optional_input(&self, slot: usize) -> Option<&Operand> {
        self.inputs.get(slot).and_then(Option::as_ref)
    }

    pub fn output(&self, port: usize) -> &Operand {
        &self.outputs[port]
    }
}

/// A program argument of a kernel under construction.
enum DraftArg {
    Buffer(ProgramBufferId),
    Scratch { dtype: DType, shape: Vec<usize> },
}

/// A kernel under construction: the builder plus the program buffer bound to each parameter. The
/// kernel is named when it is emitted, after its stem and the stems of the nodes it absorbed.
pub(crate) struct KernelDraft {
    pub kb: KernelBuilder,
    args: Vec<DraftArg>,
    stem: String,
    origins: Vec<String>,
    /// The stems of the nodes fused into this kernel.
    absorbed: Vec<String>,
}

/// Longest kernel stem that lists every fused node (`add_relu`); longer chains are named
/// `<producer>_fused<count>`, and the origins still list every node.
const MAX_FUSED_STEM: usize = 64;

impl KernelDraft {
    /// Records nodes fused into this kernel: their descriptions join the origins, their stems the name.
    fn absorb(&mut self, origins: Vec<String>, stems: Vec<String>) {
        self.origins.extend(origins);
        self.absorbed.extend(stems);
    }

    /// The stem the kernel's name is made from.
    fn full_stem(&self) -> String {
        if self.absorbed.is_empty() {
            return self.stem.clone();
        }
        let joined = format!("{}_{}", self.stem, self.absorbed.join("_"));
        if joined.len() <= MAX_FUSED_STEM {
            joined
        } else {
            format!("{}_fused{}", self.stem, self.absorbed.len())
        }
    }

    /// Declares `operand` as a read-only parameter (reusing an earlier declaration of the same
    /// buffer, so `x * x` binds `x` once).
    pub fn input(&mut self, operand: &Operand) -> BufferId {
        if let Some(pos) = self
            .args
            .iter()
            .position(|a| matches!(a, DraftArg::Buffer(id) if *id == operand.buf))
        {
            return BufferId(pos as u32);
        }
        let role = if operand.is_weight {
            BufferRole::Weight
        } else {
            BufferRole::Input
        };
        self.args.push(DraftArg::Buffer(operand.buf));
        self.kb
            .buffer(operand.name.clone(), operand.dtype, operand.len(), role)
    }

    /// Declares `operand` as a parameter this kernel writes.
    pub fn output(&mut self, operand: &Operand) -> BufferId {
        self.args.push(DraftArg::Buffer(operand.buf));
        self.kb.buffer(
            operand.name.clone(),
            operand.dtype,
            operand.len(),
            BufferRole::Output,
        )
    }

    /// Declares kernel-private scratch memory of `shape`.
    pub fn scratch(&mut self, name: &str, dtype: DType, shape: &[usize]) -> BufferId {
        self.args.push(DraftArg::Scratch {
            dtype,
            shape: shape.to_vec(),
        });
        self.kb.buffer(
            format!("scratch.{name}"),
            dtype,
            shape.iter().product(),
            BufferRole::Scratch,
        )
    }
}

/// The state of a lowering in progress.
pub(crate) struct Lowerer<'g> {
    graph: &'g Graph,
    /// The printable name of every value (`%3`, `@w`, `x`).
    names: HashMap<Value, String>,
    program: Program,
    kernel_names: HashMap<String, usize>,
    /// The operand of every value lowered so far.
    values: HashMap<Value, Operand>,
    /// From the decision pass: the absorbable consumer of a value (see `fuse.rs`).
    links: HashMap<Value, fuse::Link>,
    /// Nodes absorbed into an earlier producer's kernel.
    absorbed: HashSet<NodeId>,
    /// For the node being lowered: (its output, the chain's last value, the operand holding it) per
    /// epilogue it took, registered once the node has lowered.
    fused: Vec<(Value, Value, Operand)>,
}

impl Lowerer<'_> {
    /// The operand of `value` if it is lowered; a graph constant is bound here on first use.
    fn operand(&mut self, value: Value) -> Option<Operand> {
        if let Some(operand) = self.values.get(&value) {
            return Some(operand.clone());
        }
        let graph = self.graph;
        let NodeKind::Const { value: tensor, .. } = &graph.node(value.node).kind else {
            return None;
        };
        let name = self.names.get(&value)?.clone();
        let operand = self.weight(name, tensor.clone());
        self.values.insert(value, operand.clone());
        Some(operand)
    }

    fn add_buffer(
        &mut self,
        name: String,
        dtype: DType,
        shape: Vec<usize>,
        source: BufferSource,
    ) -> ProgramBufferId {
        self.program.buffers.push(ProgramBuffer {
            name,
            dtype,
            shape,
            source,
        });
        ProgramBufferId(self.program.buffers.len() as u32 - 1)
    }

    /// A new intermediate buffer.
    pub fn computed(&mut self, name: String, dtype: DType, shape: Vec<usize>) -> Operand {
        let buf = self.add_buffer(name.clone(), dtype, shape.clone(), BufferSource::Computed);
        Operand {
            buf,
            dtype,
            shape,
            is_weight: false,
            name,
        }
    }

    /// A constant table computed at lowering time (pool divisors, resize indices).
    pub fn weight(&mut self, name: String, tensor: Tensor) -> Operand {
        let (dtype, shape) = (tensor.dtype(), tensor.shape().to_vec());
        let buf = self.add_buffer(
            name.clone(),
            dtype,
            shape.clone(),
            BufferSource::Weight(tensor),
        );
        Operand {
            buf,
            dtype,
            shape,
            is_weight: true,
            name,
        }
    }

    /// The data of `operand` when it is a weight (a graph constant or a table made by lowering).
    pub fn weight_tensor(&self, operand: &Operand) -> Option<&Tensor> {
        match &self.program.buffers.get(operand.buf.0 as usize)?.source {
            BufferSource::Weight(tensor) if operand.is_weight => Some(tensor),
            _ => None,
        }
    }

    /// Starts a kernel named after `stem` (made unique within the program when it is emitted).
    pub fn kernel(&mut self, stem: &str, origins: &[&str]) -> KernelDraft {
        KernelDraft {
            kb: KernelBuilder::new(String::new(), Vec::new()),
            args: Vec::new(),
            stem: stem.to_string(),
            origins: origins.iter().map(|s| s.to_string()).collect(),
            absorbed: Vec::new(),
        }
    }

    /// Finishes a kernel and appends its call to the program.
    pub fn emit(&mut self, draft: KernelDraft) {
        let stem = draft.full_stem();
        let mut kernel = draft.kb.finish();
        let count = self.kernel_names.entry(stem.clone()).or_insert(0);
        kernel.name = if *count == 0 {
            stem
        } else {
            format!("{stem}_{count}")
        };
        *count += 1;
        kernel.origins = draft.origins;
        let mut args = Vec::with_capacity(draft.args.len());
        for arg in draft.args {
            args.push(match arg {
                DraftArg::Buffer(id) => id,
                DraftArg::Scratch { dtype, shape } => self.add_buffer(
                    format!("scratch.{}", kernel.name),
                    dtype,
                    shape,
                    BufferSource::Computed,
                ),
            });
        }
        self.program.calls.push(KernelCall { kernel, args });
    }

    /// Emits `dst[i] = src[i]` over the whole buffer.
    pub fn copy(&mut self, stem: &str, origin: &str, src: &Operand, dst: &Operand) {
        let mut k = self.kernel(stem, &[origin]);
        let x = k.input(src);
        let y = k.output(dst);
        k.kb.loop_(dst.len(), |kb, i| {
            kb.store(y, Index::var(i), Expr::load(x, Index::var(i)))
        });
        self.emit(k);
    }
}

/// Lowers a whole graph. Every unsupported node and every symbolic shape is reported together.
pub fn lower_graph(graph: &Graph) -> Result<Program, LowerError> {
    let mut issues = Vec::new();
    let order = match graph.canonical_order() {
        Ok(order) => order,
        Err(id) => {
            return Err(LowerError {
                issues: vec![LowerIssue::Cycle {
                    node: graph.node(id).describe(),
                }],
            })
        }
    };
    // Stable printable names for values: `%<n>` in canonical order, inputs and constants by name.
    let mut names: HashMap<Value, String> = HashMap::new();
    let mut stems: HashMap<NodeId, String> = HashMap::new();
    let mut n_values = 0usize;
    for &id in &order {
        let node = graph.node(id);
        if let NodeKind::Op(op) = &node.kind {
            stems.insert(id, kernel_stem(node.label.as_deref(), op));
        }
        for port in 0..node.outputs.len() {
            let value_name = match &node.kind {
                NodeKind::Input { name } => name.clone(),
                NodeKind::Const { name, .. } => format!("@{name}"),
                NodeKind::Op(_) => {
                    n_values += 1;
                    format!("%{}", n_values - 1)
                }
            };
            names.insert(Value::new(id, port as u32), value_name);
        }
    }
    let links = fuse::plan_links(graph, &order, &names, &stems);
    let mut lw = Lowerer {
        graph,
        names,
        program: Program {
            buffers: Vec::new(),
            calls: Vec::new(),
            outputs: Vec::new(),
        },
        kernel_names: HashMap::new(),
        values: HashMap::new(),
        links,
        absorbed: HashSet::new(),
        fused: Vec::new(),
    };
    for &id in &order {
        if lw.absorbed.contains(&id) {
            // Computed by its producer's kernel, which registered the chain's value.
            continue;
        }
        let node = graph.node(id);
        let describe = node.describe();
        let mut statics = Vec::with_capacity(node.outputs.len());
        let mut symbolic = false;
        for (port, ty) in node.outputs.iter().enumerate() {
            let value_name = lw.names[&Value::new(id, port as u32)].clone();
            match ty.shape.as_static() {
                Some(shape) => statics.push((value_name, ty.dtype, shape)),
                None => {
                    symbolic = true;
                    issues.push(LowerIssue::SymbolicShape {
                        node: describe.clone(),
                        value: if port == 0 {
                            value_name
                        } else {
                            format!("{value_name} (output {port})")
                        },
                        ty: ty.to_string(),
                    });
                }
            }
        }
        if symbolic {
            continue;
        }
        match &node.kind {
            NodeKind::Input { name } => {
                let (value_name, dtype, shape) = statics.remove(0);
                let buf = lw.add_buffer(
                    value_name.clone(),
                    dtype,
                    shape.clone(),
                    BufferSource::Input { name: name.clone() },
                );
                lw.values.insert(
                    Value::new(id, 0),
                    Operand {
                        buf,
                        dtype,
                        shape,
                        is_weight: false,
                        name: value_name,
                    },
                );
            }
            NodeKind::Const { .. } => {
                // Bound here, or earlier by an epilogue that reads it.
                lw.operand(Value::new(id, 0));
            }
            NodeKind::Op(op) => {
                let input_values = graph.node_inputs(id);
                // An input missing from `values` came from a node that could not be lowered; its
                // problem is already reported, so this node is skipped silently.
                let mut inputs = Vec::with_capacity(input_values.len());
                let mut complete = true;
                for value in &input_values {
                    match value {
                        None => inputs.push(None),
                        Some(v) => match lw.values.get(v) {
                            Some(operand) => inputs.push(Some(operand.clone())),
                            None => complete = false,
                        },
                    }
                }
                if !complete {
                    continue;
                }
                if let Some(source) = view_source(op) {
                    let Some(Some(input)) = inputs.get(source) else {
                        issues.push(unsupported(&describe, op, "the viewed input is missing"));
                        continue;
                    };
                    let (_, dtype, shape) = statics.remove(0);
                    if dtype != input.dtype || shape.iter().product::<usize>() != input.len() {
                        issues.push(unsupported(
                            &describe,
                            op,
                            "the declared type does not match the viewed input",
                        ));
                        continue;
                    }
                    lw.values.insert(
                        Value::new(id, 0),
                        Operand {
                            shape,
                            ..input.clone()
                        },
                    );
                    continue;
                }
                let outputs: Vec<Operand> = statics
                    .into_iter()
                    .map(|(value_name, dtype, shape)| lw.computed(value_name, dtype, shape))
                    .collect();
                let cx = NodeCx {
                    id,
                    node: describe.clone(),
                    op,
                    inputs,
                    outputs,
                    stem: stems[&id].clone(),
                };
                let result = lower_node(&mut lw, &cx);
                let fused = std::mem::take(&mut lw.fused);
                match result {
                    Ok(()) => {
                        for (port, operand) in cx.outputs.into_iter().enumerate() {
                            let value = Value::new(id, port as u32);
                            // A value an epilogue consumed never exists on its own.
                            if !fused.iter().any(|(v, _, _)| *v == value) {
                                lw.values.insert(value, operand);
                            }
                        }
                        for (_, value, operand) in fused {
                            lw.values.insert(value, operand);
                        }
                    }
                    Err(reason) => issues.push(unsupported(&describe, op, &reason)),
                }
            }
        }
    }
    if !issues.is_empty() {
        return Err(LowerError { issues });
    }
    // Graph outputs must be distinct computed buffers. A computed buffer reached through a view
    // takes the view's shape (it has the same length; only outputs and inputs give shapes meaning),
    // anything else is copied.
    let mut used: Vec<ProgramBufferId> = Vec::new();
    for (name, value) in graph.outputs() {
        let Some(operand) = lw.values.get(value).cloned() else {
            issues.push(LowerIssue::MissingOutput {
                output: name.clone(),
            });
            continue;
        };
        let buffer = &mut lw.program.buffers[operand.buf.0 as usize];
        let buf = if matches!(buffer.source, BufferSource::Computed) && !used.contains(&operand.buf)
        {
            buffer.shape = operand.shape.clone();
            operand.buf
        } else {
            let copy = lw.computed(
                format!("output.{name}"),
                operand.dtype,
                operand.shape.clone(),
            );
            lw.copy(
                &format!("copy_{}", symbol_safe(name)),
                name,
                &operand,
                &copy,
            );
            copy.buf
        };
        used.push(buf);
        lw.program.outputs.push((name.clone(), buf));
    }
    if !issues.is_empty() {
        return Err(LowerError { issues });
    }
    Ok(lw.program)
}

fn unsupported(node: &str, op: &Op, reason: &str) -> LowerIssue {
    LowerIssue::Unsupported {
        node: node.to_string(),
        op: op.name().to_string(),
        reason: reason.to_string(),
    }
}

/// The input slot a view op aliases, or `None` for ops that compute.
fn view_source(op: &Op) -> Option<usize> {
    match op {
        Op::Reshape { .. }
        | Op::Flatten { .. }
        | Op::Squeeze { .. }
        | Op::Unsqueeze { .. }
        | Op::Identity {} => Some(0),
        _ => None,
    }
}

fn symbol_safe(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn kernel_stem(label: Option<&str>, op: &Op) -> String {
    match label {
        Some(label) if !label.is_empty() => symbol_safe(label),
        _ => op.name().to_string(),
    }
}

/// Dispatches one compute node to its family.
fn lower_node(lw: &mut Lowerer, cx: &NodeCx) -> Result<(), String> {
    use Op::*;
    let op = cx.op;
    if op.is_unary_elementwise() || op.is_binary_elementwise() || matches!(op, Where {}) {
        return elementwise::lower(lw, cx);
    }
    match op {
        MatMul {} | Gemm { .. } | FusedMatMul { .. } => linalg::lower(lw, cx),
        Conv { .. } | ConvTranspose { .. } | FusedConv { .. } | ConvPool { .. } => {
            conv::lower(lw, cx)
        }
        MaxPool { .. } | AveragePool { .. } | GlobalAveragePool {} | GlobalMaxPool {} => {
            pool::lower(lw, cx)
        }
        ReduceSum { .. }
        | ReduceMean { .. }
        | ReduceMax { .. }
        | ReduceMin { .. }
        | ReduceProd { .. }
        | ReduceL1 { .. }
        | ReduceL2 { .. }
        | ReduceSumSquare { .. }
        | ReduceLogSumExp { .. }
        | ArgMax { .. }
        | ArgMin { .. } => reduce::lower(lw, cx),
        BatchNorm { .. }
        | InstanceNorm { .. }
        | Lrn { .. }
        | Softmax { .. }
        | LogSoftmax { .. }
        | LayerNorm { .. }
        | RmsNorm { .. }
        | GroupNorm { .. } => normalize::lower(lw, cx),
        Transpose { .. }
        | Concat { .. }
        | Split { .. }
        | Slice { .. }
        | Gather { .. }
        | GatherElements { .. }
        | Expand { .. }
        | Tile { .. }
        | Range { .. }
        | Trilu { .. }
        | Shape { .. }
        | ConstantOfShape { .. }
        | Pad { .. } => movement::lower(lw, cx),
        Resize { .. } => resize::lower(lw, cx),
        Rnn { .. } | Lstm { .. } | Gru { .. } => recurrent::lower(lw, cx),
        Attention { .. } => attention::lower(lw, cx),
        _ => Err("no lowering for this op yet".into()),
    }
}

// ---------------------------------------------------------------------------------------------------
// Shared helpers for the op families.

/// A constant of `dtype` with value `v` (numpy `astype` conversion).
pub(crate) fn cst(dtype: DType, v: f64) -> Expr {
    Expr::Const(Scalar::from_f64(dtype, v))
}

/// Checks that `dtype` is one the loop IR has scalars for.
pub(crate) fn check_dtype(dtype: DType) -> Result<(), String> {
    if DType::ALL.contains(&dtype) {
        Ok(())
    } else {
        Err(format!("dtype {dtype} has no loop-IR scalar"))
    }
}

/// The strides that read an operand of `in_shape` broadcast (numpy rules, right-aligned) to
/// `out_shape`: 0 on broadcast axes and on the leading axes the operand lacks.
pub(crate) fn broadcast_strides(in_shape: &[usize], out_shape: &[usize]) -> Vec<i64> {
    let in_strides = row_major_strides(in_shape);
    let lead = out_shape.len() - in_shape.len();
    (0..out_shape.len())
        .map(|axis| {
            if axis < lead || in_shape[axis - lead] == 1 {
                0
            } else {
                in_strides[axis - lead]
            }
        })
        .collect()
}

/// Normalises a possibly negative axis against `rank`.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    if resolved < 0 || resolved >= rank as i64 {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(resolved as usize)
}

/// Merges adjacent loop dims that every access walks contiguously, so simple maps become one loop.
/// `strides[j]` are the per-dim strides of access `j`; returns the merged shape and strides.
pub(crate) fn collapse_dims(shape: &[usize], strides: &[Vec<i64>]) -> (Vec<usize>, Vec<Vec<i64>>) {
    let mut out_shape: Vec<usize> = Vec::new();
    let mut out_strides: Vec<Vec<i64>> = vec![Vec::new(); strides.len()];
    for axis in 0..shape.len() {
        if shape[axis] == 1 && !out_shape.is_empty() {
            continue;
        }
        let mergeable = !out_shape.is_empty()
            && strides.iter().enumerate().all(|(j, s)| {
                let prev = *out_strides[j].last().expect("same length as out_shape");
                prev == s[axis] * shape[axis] as i64
            });
        if mergeable {
            let last = out_shape.len() - 1;
            out_shape[last] *= shape[axis];
            for (j, s) in strides.iter().enumerate() {
                out_strides[j][last] = s[axis];
            }
        } else if out_shape.len() == 1 && out_shape[0] == 1 {
            // A leading size-1 dim is replaced by the first real one.
            out_shape[0] = shape[axis];
            for (j, s) in strides.iter().enumerate() {
                out_strides[j][0] = s[axis];
            }
        } else {
            out_shape.push(shape[axis]);
            for (j, s) in strides.iter().enumerate() {
                out_strides[j].push(s[axis]);
            }
        }
    }
    (out_shape, out_strides)
}

/// The index `Σ vars[k]·strides[k] + offset`.
pub(crate) fn idx(vars: &[LoopVar], strides: &[i64], offset: i64) -> Index {
    Index::strided(vars, strides, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_merges_contiguous_dims_and_keeps_broadcasts_apart() {
        // [2,3,4] with a full operand and a row broadcast [4].
        let full = row_major_strides(&[2, 3, 4]);
        let row = broadcast_strides(&[4], &[2, 3, 4]);
        let (shape, strides) = collapse_dims(&[2, 3, 4], &[full.clone(), full.clone()]);
        assert_eq!((shape, strides), (vec![24], vec![vec![1], vec![1]]));
        let (shape, strides) = collapse_dims(&[2, 3, 4], &[full, row]);
        assert_eq!(shape, vec![6, 4]);
        assert_eq!(strides, vec![vec![4, 1], vec![0, 1]]);
        let (shape, _) = collapse_dims(&[1, 1], &[vec![1, 1]]);
        assert_eq!(shape, vec![1]);
    }
}
