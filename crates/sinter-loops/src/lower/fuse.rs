//! Epilogue fusion: elementwise chains (bias, activation, residual add, ...) computed in their
//! producer's loop nest instead of being written to memory and read back.
//!
//! Two halves:
//! - **The decision pass** ([`plan_links`]) runs once over the graph before lowering. A value `v`
//!   gets a [`Link`] to its consumer `E` when `E` could be absorbed into whatever produces `v`:
//!   `E` is an elementwise op lowered by `elementwise.rs` (unary, binary; not a view), `v` has exactly
//!   one use (one input slot of `E`) and is not a graph output, `v`'s producer is a computing op,
//!   `E`'s output has `v`'s shape (`E`'s *other* operands may broadcast into it) and every operand of
//!   `E` and its output have `v`'s dtype. The dtype rule keeps a fused f32 nest vectorizable (a bool
//!   or integer value that depends on the vector loop is not), so comparisons, dtype-changing casts
//!   and `where` (its condition is bool) are never absorbed.
//! - **The producer opts in** while it is lowered: [`Lowerer::take_epilogue`] follows the links from
//!   one of its outputs and returns the chain as an [`Epilogue`], stopping at the first link whose
//!   other operands are not lowered yet (they come later in the canonical order: `add(mm1, mm2)` is
//!   absorbed by the second product) or cannot be indexed in the producer's view. The absorbed nodes
//!   emit no kernel; they are named in the producer kernel's origins and name. A producer that does
//!   not ask (or gets `None`) leaves the consumers to be lowered normally, and an elementwise
//!   consumer lowered normally takes the rest of the chain itself.
//!
//! The fused result is stored in the producer's preallocated output buffer, renamed to the chain's
//! last value: the intermediate values of the chain never exist in memory.

use super::elementwise::{scalar_fn, ScalarFn};
use super::{broadcast_strides, view_source, KernelDraft, Lowerer, NodeCx, Operand};
use crate::builder::KernelBuilder;
use crate::ir::*;
use sinter_ir::fused::FusedParts;
use sinter_ir::{DType, Graph, NodeId, NodeKind, Op, Value};
use std::collections::{HashMap, HashSet};

/// An elementwise node that can be absorbed into the producer of one of its inputs.
pub(super) struct Link {
    node: NodeId,
    /// `node.describe()`, for the fused kernel's origins.
    describe: String,
    /// The node's kernel stem, appended to the fused kernel's name.
    stem: String,
    op: Op,
    /// The input slot that reads the chained value.
    slot: usize,
    /// Every input of the node, by slot.
    inputs: Vec<Value>,
    /// The dtype shared by every operand and the output.
    dtype: DType,
    /// The node's (only) output.
    output: Value,
    /// Its printable name (`%7`).
    output_name: String,
}

/// Whether `op` is an elementwise op that `elementwise.rs` lowers and a chain may absorb.
fn absorbable_op(op: &Op) -> bool {
    (op.is_unary_elementwise() || op.is_binary_elementwise()) && view_source(op).is_none()
}

/// The decision pass: the absorbable consumer of every value that has one (see the module docs).
/// `names` are the printable value names; `stems` the kernel stems by node.
pub(super) fn plan_links(
    graph: &Graph,
    order: &[NodeId],
    names: &HashMap<Value, String>,
    stems: &HashMap<NodeId, String>,
) -> HashMap<Value, Link> {
    let outputs: HashSet<Value> = graph.outputs().iter().map(|(_, v)| *v).collect();
    let mut links = HashMap::new();
    for &id in order {
        let node = graph.node(id);
        let NodeKind::Op(op) = &node.kind else {
            continue;
        };
        if !absorbable_op(op) || node.outputs.len() != 1 {
            continue;
        }
        let (Some(out_shape), dtype) = (node.outputs[0].shape.as_static(), node.outputs[0].dtype)
        else {
            continue;
        };
        let Some(inputs) = graph
            .node_inputs(id)
            .into_iter()
            .collect::<Option<Vec<Value>>>()
        else {
            continue;
        };
        let types_fit = inputs.iter().all(|&v| {
            let ty = graph.value_type(v);
            ty.dtype == dtype
                && ty
                    .shape
                    .as_static()
                    .is_some_and(|shape| broadcasts_into(&shape, &out_shape))
        });
        if !types_fit || scalar_fn(op, &vec![dtype; inputs.len()]).is_err() {
            continue;
        }
        for (slot, &v) in inputs.iter().enumerate() {
            let producer = graph.node(v.node);
            let computes = producer.op().is_some_and(|p| view_source(p).is_none());
            let same_shape = graph.value_type(v).shape.as_static().as_ref() == Some(&out_shape);
            if !computes
                || !same_shape
                || outputs.contains(&v)
                || graph.users(v).len() != 1
                || !names.contains_key(&Value::new(id, 0))
            {
                continue;
            }
            links.insert(
                v,
                Link {
                    node: id,
                    describe: node.describe(),
                    stem: stems.get(&id).cloned().unwrap_or_else(|| op.name().into()),
                    op: op.clone(),
                    slot,
                    inputs: inputs.clone(),
                    dtype,
                    output: Value::new(id, 0),
                    output_name: names[&Value::new(id, 0)].clone(),
                },
            );
        }
    }
    links
}

/// Whether `shape` broadcasts (numpy rules) into `target` without changing it.
fn broadcasts_into(shape: &[usize], target: &[usize]) -> bool {
    shape.len() <= target.len()
        && shape
            .iter()
            .rev()
            .zip(target.iter().rev())
            .all(|(&s, &t)| s == t || s == 1)
}

/// One absorbed node: its scalar function and its other operands, each with its strides over the
/// view dims.
#[derive(Clone)]
struct Step {
    f: ScalarFn,
    slot: usize,
    dtype: DType,
    /// By input slot; `None` at `slot`.
    operands: Vec<Option<(Operand, Vec<i64>)>>,
}

/// An elementwise chain a producer computes in its own nest (from [`Lowerer::take_epilogue`]).
/// A producer split over several kernels (a tile nest and its remainder columns) binds a clone in
/// each.
#[derive(Clone)]
pub(crate) struct Epilogue {
    steps: Vec<Step>,
    view: Vec<usize>,
    output: Operand,
    origins: Vec<String>,
    stems: Vec<String>,
}

/// Per link of a chain (by the value it consumes): the operands by slot (`None` at the chained
/// slot), each with its strides over the producer output's shape.
type Chain = Vec<(Value, Vec<Option<(Operand, Vec<i64>)>>)>;

impl Lowerer<'_> {
    /// The links from output `port` of `cx` whose operands are all lowered (constants are bound on
    /// first use, so a bias need not come before the producer in the canonical order).
    fn chain(&mut self, cx: &NodeCx, port: usize) -> Chain {
        let shape = &cx.outputs[port].shape;
        let mut chain = Vec::new();
        let mut value = Value::new(cx.id, port as u32);
        'links: while let Some(link) = self.links.get(&value) {
            if self.absorbed.contains(&link.node) {
                break;
            }
            let (slot, inputs, output) = (link.slot, link.inputs.clone(), link.output);
            let mut operands = Vec::with_capacity(inputs.len());
            for (s, &input) in inputs.iter().enumerate() {
                if s == slot {
                    operands.push(None);
                    continue;
                }
                match self.operand(input) {
                    Some(operand) if broadcasts_into(&operand.shape, shape) => {
                        let strides = broadcast_strides(&operand.shape, shape);
                        operands.push(Some((operand, strides)));
                    }
                    _ => break 'links,
                }
            }
            chain.push((value, operands));
            value = output;
        }
        chain
    }

    /// The strides, over output `port`'s full shape, of every extra operand of the chain that
    /// [`Lowerer::take_epilogue`] would absorb, so a producer can pick a view they all merge in.
    pub fn epilogue_strides(&mut self, cx: &NodeCx, port: usize) -> Vec<Vec<i64>> {
        self.chain(cx, port)
            .into_iter()
            .flat_map(|(_, operands)| operands.into_iter().flatten().map(|(_, s)| s))
            .collect()
    }

    /// Absorbs the elementwise chain that consumes output `port` of `cx`, for a producer that
    /// writes each element of that output once, at coordinates in `view`: the output's shape or a
    /// coarser one with the same element count obtained by merging adjacent dims. The chain stops
    /// at the first link whose operands are not lowered yet or cannot be indexed in `view`; `None`
    /// when nothing is absorbed, and then the consumers are lowered normally.
    ///
    /// On `Some`, the producer must write the epilogue's result (see [`KernelDraft::sink`]) into
    /// [`Epilogue::output`] instead of `cx.output(port)`, and must emit its kernel.
    pub fn take_epilogue(&mut self, cx: &NodeCx, port: usize, view: &[usize]) -> Option<Epilogue> {
        let full = cx.outputs.get(port)?.shape.clone();
        if view.iter().product::<usize>() != full.iter().product::<usize>() {
            return None;
        }
        let mut steps = Vec::new();
        let mut origins = Vec::new();
        let mut stems = Vec::new();
        let mut absorbed = Vec::new();
        let mut last = None;
        for (key, operands) in self.chain(cx, port) {
            let link = &self.links[&key];
            let mut viewed = Vec::with_capacity(operands.len());
            let mut expressible = true;
            for operand in operands {
                match operand {
                    None => viewed.push(None),
                    Some((op, strides)) => match view_strides(&full, &strides, view) {
                        Some(s) => viewed.push(Some((op, s))),
                        None => {
                            expressible = false;
                            break;
                        }
                    },
                }
            }
            if !expressible {
                break;
            }
            let Ok(f) = scalar_fn(&link.op, &vec![link.dtype; link.inputs.len()]) else {
                break;
            };
            steps.push(Step {
                f,
                slot: link.slot,
                dtype: link.dtype,
                operands: viewed,
            });
            origins.push(link.describe.clone());
            stems.push(link.stem.clone());
            absorbed.push(link.node);
            last = Some((link.output, link.output_name.clone()));
        }
        let (final_value, final_name) = last?;
        // Commit: the absorbed nodes emit nothing, and the producer's buffer holds the last value.
        self.absorbed.extend(absorbed);
        let mut output = cx.outputs[port].clone();
        output.name = final_name.clone();
        self.program.buffers[output.buf.0 as usize].name = final_name;
        self.fused
            .push((Value::new(cx.id, port as u32), final_value, output.clone()));
        Some(Epilogue {
            steps,
            view: view.to_vec(),
            output,
            origins,
            stems,
        })
    }
}

/// One step of a fused op's own epilogue: a plain elementwise op of its decomposition
/// (`Op::fused_parts`: the residual or bias `add`, the activation) applied to the producer's value
/// (slot 0), with the op's other operand (slot 1) when it has one.
pub(crate) struct OwnStep {
    pub op: Op,
    pub operand: Option<Operand>,
}

/// The decomposition of the fused op `cx` lowers, and the own epilogue steps it implies: the
/// addend (`fused_conv`'s residual, `fused_matmul`'s bias) when present, then the activation.
pub(crate) fn own_steps(cx: &NodeCx) -> Result<(FusedParts, Vec<OwnStep>), String> {
    let parts = cx
        .op
        .fused_parts()
        .ok_or_else(|| format!("`{}` is not a fused op", cx.op.name()))??;
    let mut own = Vec::new();
    if let Some(addend) = parts.addend_slot.and_then(|slot| cx.optional_input(slot)) {
        own.push(OwnStep {
            op: Op::Add {},
            operand: Some(addend.clone()),
        });
    }
    if let Some(activation) = &parts.activation {
        own.push(OwnStep {
            op: activation.clone(),
            operand: None,
        });
    }
    Ok((parts, own))
}

impl Lowerer<'_> {
    /// The epilogue of a fused op (`fused_conv`, `fused_matmul`): its `own` steps, then, with
    /// `take_chain`, the elementwise chain of the graph that consumes its output (as
    /// [`Lowerer::take_epilogue`], which commits that chain). `None` when there is nothing to apply.
    /// An operand that does not broadcast into the output or cannot be indexed in `view` is an error.
    pub fn fused_epilogue(
        &mut self,
        cx: &NodeCx,
        port: usize,
        view: &[usize],
        own: &[OwnStep],
        take_chain: bool,
    ) -> Result<Option<Epilogue>, String> {
        let output = cx.outputs.get(port).ok_or("no such output")?;
        let (full, dtype) = (output.shape.clone(), output.dtype);
        let mut steps = Vec::with_capacity(own.len());
        for step in own {
            let mut operands = vec![None];
            let mut dtypes = vec![dtype];
            if let Some(operand) = &step.operand {
                let strides = broadcasts_into(&operand.shape, &full)
                    .then(|| broadcast_strides(&operand.shape, &full))
                    .and_then(|strides| view_strides(&full, &strides, view))
                    .ok_or_else(|| {
                        format!(
                            "`{}` {:?} cannot be read in the output's view {view:?}",
                            operand.name, operand.shape
                        )
                    })?;
                operands.push(Some((operand.clone(), strides)));
                dtypes.push(operand.dtype);
            }
            steps.push(Step {
                f: scalar_fn(&step.op, &dtypes)?,
                slot: 0,
                dtype,
                operands,
            });
        }
        let chain = if take_chain {
            self.take_epilogue(cx, port, view)
        } else {
            None
        };
        Ok(match chain {
            Some(mut chain) => {
                steps.append(&mut chain.steps);
                chain.steps = steps;
                Some(chain)
            }
            None if steps.is_empty() => None,
            None => Some(Epilogue {
                steps,
                view: view.to_vec(),
                output: output.clone(),
                origins: Vec::new(),
                stems: Vec::new(),
            }),
        })
    }
}

/// The strides over `view` of an access with `strides` over `full`, when every run of `full` dims
/// that `view` merges is walked contiguously by the access (size-1 dims of either shape ignored).
fn view_strides(full: &[usize], strides: &[i64], view: &[usize]) -> Option<Vec<i64>> {
    let dims: Vec<(usize, i64)> = full
        .iter()
        .zip(strides)
        .filter(|(&size, _)| size != 1)
        .map(|(&size, &stride)| (size, stride))
        .collect();
    let mut next = 0;
    let mut out = Vec::with_capacity(view.len());
    for &size in view {
        if size == 1 {
            out.push(0);
            continue;
        }
        let mut covered = 1usize;
        let mut stride: Option<i64> = None;
        while covered < size {
            let &(s, st) = dims.get(next)?;
            next += 1;
            if stride.is_some_and(|prev| prev != st * s as i64) {
                return None;
            }
            stride = Some(st);
            covered *= s;
        }
        if covered != size {
            return None;
        }
        out.push(stride?);
    }
    (next == dims.len()).then_some(out)
}

/// An [`Epilogue`] whose operands are declared in a kernel.
struct BoundEpilogue {
    /// Per step: the function, the chained slot, the dtype and the bound operands by slot.
    steps: Vec<BoundStep>,
    rank: usize,
}

struct BoundStep {
    f: ScalarFn,
    slot: usize,
    dtype: DType,
    operands: Vec<Option<(BufferId, Vec<i64>)>>,
}

/// Where a producer writes its output: its own buffer, or through an absorbed [`Epilogue`].
pub(crate) struct OutputSink {
    /// The buffer to store into.
    pub buf: BufferId,
    epilogue: Option<BoundEpilogue>,
}

impl KernelDraft {
    /// Declares the buffer a producer writes: `plain` (the producer's own output) without an
    /// epilogue, else the epilogue's output, after its operands (the absorbed nodes join the
    /// kernel's origins and name).
    pub fn sink(&mut self, plain: &Operand, epilogue: Option<Epilogue>) -> OutputSink {
        let Some(epilogue) = epilogue else {
            return OutputSink {
                buf: self.output(plain),
                epilogue: None,
            };
        };
        let steps = epilogue
            .steps
            .into_iter()
            .map(|step| BoundStep {
                operands: step
                    .operands
                    .iter()
                    .map(|o| o.as_ref().map(|(op, s)| (self.input(op), s.clone())))
                    .collect(),
                f: step.f,
                slot: step.slot,
                dtype: step.dtype,
            })
            .collect();
        self.absorb(epilogue.origins, epilogue.stems);
        OutputSink {
            buf: self.output(&epilogue.output),
            epilogue: Some(BoundEpilogue {
                steps,
                rank: epilogue.view.len(),
            }),
        }
    }
}

impl OutputSink {
    /// The value to store for the element whose producer value is `value`, at `coords` (one affine
    /// index per dim of the epilogue's view; ignored without an epilogue).
    pub fn value(&self, kb: &mut KernelBuilder, value: Expr, coords: &[Index]) -> Expr {
        self.apply(kb, value, coords, true)
    }

    /// Whether the chain is one expression (no statements), so [`OutputSink::expression`] can
    /// compute it where statements cannot go: a tile's epilogue. Chains are of one dtype
    /// (`plan_links`), and only integer scalar functions (`pow`) emit statements, so every f32
    /// chain is.
    pub fn is_expression(&self) -> bool {
        let Some(epilogue) = &self.epilogue else {
            return true;
        };
        let mut scratch = KernelBuilder::new("probe", Vec::new());
        let coords = vec![Index::constant(0); epilogue.rank];
        self.apply(&mut scratch, Expr::f32(0.0), &coords, false);
        scratch.finish().body.is_empty()
    }

    /// [`OutputSink::value`] as one expression, for a chain that [`OutputSink::is_expression`]:
    /// the chained value is repeated where a step uses it more than once instead of being named.
    pub fn expression(&self, value: Expr, coords: &[Index]) -> Expr {
        let mut scratch = KernelBuilder::new("expression", Vec::new());
        let value = self.apply(&mut scratch, value, coords, false);
        debug_assert!(scratch.finish().body.is_empty(), "a chain with statements");
        value
    }

    /// The chain's steps applied to `value`; with `name_shared`, a chained value that is not a
    /// leaf is first named by a local, since a step's expression may use it several times.
    fn apply(
        &self,
        kb: &mut KernelBuilder,
        value: Expr,
        coords: &[Index],
        name_shared: bool,
    ) -> Expr {
        let Some(epilogue) = &self.epilogue else {
            return value;
        };
        assert_eq!(coords.len(), epilogue.rank, "one coordinate per view dim");
        let mut value = value;
        for step in &epilogue.steps {
            if name_shared && !matches!(value, Expr::Local(_) | Expr::Const(_) | Expr::Load { .. })
            {
                value = Expr::Local(kb.local(step.dtype, value));
            }
            let args: Vec<Expr> = step
                .operands
                .iter()
                .enumerate()
                .map(|(slot, operand)| match operand {
                    None => {
                        debug_assert_eq!(slot, step.slot);
                        value.clone()
                    }
                    Some((buf, strides)) => Expr::load(*buf, Index::at_coords(coords, strides)),
                })
                .collect();
            value = (step.f)(kb, &args);
        }
        value
    }

    /// Stores `value` (through the epilogue, see [`OutputSink::value`]) at `index` of the buffer.
    pub fn store(&self, kb: &mut KernelBuilder, index: Index, value: Expr, coords: &[Index]) {
        let value = self.value(kb, value, coords);
        kb.store(self.buf, index, value);
    }
}

/// One coordinate per loop variable (`coords` for [`OutputSink::value`] when the loops walk the view).
pub(crate) fn var_coords(vars: &[LoopVar]) -> Vec<Index> {
    vars.iter().map(|&v| Index::var(v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_strides_merge_contiguous_runs_and_reject_the_rest() {
        // A full operand of [2,3,4] viewed as [2,12] and [24].
        assert_eq!(
            view_strides(&[2, 3, 4], &[12, 4, 1], &[2, 12]),
            Some(vec![12, 1])
        );
        assert_eq!(view_strides(&[2, 3, 4], &[12, 4, 1], &[24]), Some(vec![1]));
        // A per-channel bias [3] broadcast over [2,3,4]: [2,3,4] -> [6,4] is not expressible, but
        // merging the broadcast tail with nothing is, and two broadcast dims merge.
        assert_eq!(view_strides(&[2, 3, 4], &[0, 1, 0], &[6, 4]), None);
        assert_eq!(
            view_strides(&[2, 3, 4], &[0, 1, 0], &[2, 3, 4]),
            Some(vec![0, 1, 0])
        );
        assert_eq!(
            view_strides(&[2, 3, 4, 5], &[0, 1, 0, 0], &[2, 3, 20]),
            Some(vec![0, 1, 0])
        );
        // Size-1 dims are free on either side.
        assert_eq!(
            view_strides(&[1, 3, 1, 4], &[0, 4, 0, 1], &[12]),
            Some(vec![1])
        );
        assert_eq!(
            view_strides(&[3, 4], &[4, 1], &[1, 3, 4]),
            Some(vec![0, 4, 1])
        );
        // Not a merge of adjacent dims.
        assert_eq!(view_strides(&[2, 6], &[6, 1], &[3, 4]), None);
    }
}
