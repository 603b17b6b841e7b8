//! The graph builder: shared state behind every [`Tensor`] handle, and the errors it collects.
//!
//! **Invariant: building never stops at the first mistake.** Every method that adds a node records a
//! [`BuildError`] when the node cannot be built and hands back a *poisoned* handle (one without a
//! value). Ops on poisoned handles are skipped silently, so one mistake produces exactly one error
//! however long the chain after it is. [`GraphBuilder::build`] returns all recorded errors together.
//!
//! **Invariant: every value in the graph was type-checked when it was added.** Nodes are added with
//! `Graph::add_op_inferred`, which runs shape and dtype inference; a node whose types cannot be
//! inferred is never added.
//!
//! Handles share the state through `Rc<RefCell<..>>`, which keeps the API free of `&mut` borrows
//! (`x.conv2d(&w, opts).relu()` needs no builder argument). Borrows of the cell never outlive one
//! method call.

use crate::Tensor;
use sinter_ir::{
    DType, Dim, Graph, GraphError, NodeKind, Op, Shape, TensorData, TensorType, Value, VerifyError,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

/// One problem found while building a graph.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BuildError {
    /// Shape or dtype inference rejected an op's inputs or attributes.
    #[error("`{method}` ({op} node `{label}`) on ({}): {message}", format_input_types(.input_types))]
    Op {
        /// The DSL method that was called (`conv2d`, `matmul`, or the op name for `GraphBuilder::op`).
        method: String,
        /// The op's text-format name.
        op: &'static str,
        /// The label the node would have had.
        label: String,
        /// The types of the op's inputs, `None` for absent optional inputs.
        input_types: Vec<Option<TensorType>>,
        message: String,
    },
    /// A method was called with arguments it cannot turn into an op, found before any op was built.
    #[error("`{method}`: {message}")]
    Argument { method: String, message: String },
    /// Declaring an input, constant or output failed (a duplicate name, for example).
    #[error("{context}: {source}")]
    Graph {
        context: String,
        #[source]
        source: GraphError,
    },
    /// A handle created by another `GraphBuilder` was passed to this one.
    #[error("`{method}`: a tensor from another graph builder was passed in")]
    ForeignTensor { method: String },
    /// The finished graph failed verification.
    #[error("verifier: {0}")]
    Verify(VerifyError),
}

fn format_input_types(types: &[Option<TensorType>]) -> String {
    let parts: Vec<String> = types
        .iter()
        .map(|ty| {
            ty.as_ref()
                .map_or_else(|| "_".to_string(), |ty| ty.to_string())
        })
        .collect();
    parts.join(", ")
}

/// Every error recorded while building a graph, in the order the mistakes were made.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildErrors {
    /// The graph's name.
    pub graph: String,
    pub errors: Vec<BuildError>,
}

impl BuildErrors {
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, BuildError> {
        self.errors.iter()
    }
}

impl<'a> IntoIterator for &'a BuildErrors {
    type Item = &'a BuildError;
    type IntoIter = std::slice::Iter<'a, BuildError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl fmt::Display for BuildErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n_errors = self.errors.len();
        let plural = if n_errors == 1 { "" } else { "s" };
        write!(
            f,
            "{n_errors} error{plural} while building graph `{}`",
            self.graph
        )?;
        for (idx, error) in self.errors.iter().enumerate() {
            write!(f, "\n  {}. {error}", idx + 1)?;
        }
        Ok(())
    }
}

impl std::error::Error for BuildErrors {}

/// The state every handle of one builder shares.
#[derive(Debug)]
pub(crate) struct BuilderState {
    graph: Graph,
    errors: Vec<BuildError>,
    /// Per label stem, the next free index: `conv2d` -> 3 makes the next conv2d label `conv2d_3`.
    label_counts: BTreeMap<String, usize>,
    /// Per layer stem, the next free index, for `nn` scopes (`linear_0`, `mha_1`).
    layer_counts: BTreeMap<String, usize>,
    /// The open `nn` scopes, outermost first; labels and parameter names are prefixed with them.
    scopes: Vec<String>,
    /// Set by `build`; the graph has been moved out and later calls only produce poisoned handles.
    finished: bool,
}

pub(crate) type SharedState = Rc<RefCell<BuilderState>>;

impl BuilderState {
    fn scope_prefix(&self) -> String {
        self.scopes.iter().map(|s| format!("{s}.")).collect()
    }

    fn next_label(&mut self, method: &str) -> String {
        let stem = format!("{}{method}", self.scope_prefix());
        let count = self.label_counts.entry(stem.clone()).or_insert(0);
        let label = format!("{stem}_{count}");
        *count += 1;
        label
    }

    pub(crate) fn record(&mut self, error: BuildError) {
        if !self.finished {
            self.errors.push(error);
        }
    }
}

/// Records an argument error on `state`. Used by methods that validate before building an op.
pub(crate) fn argument_error(state: &SharedState, method: &str, message: impl Into<String>) {
    state.borrow_mut().record(BuildError::Argument {
        method: method.to_string(),
        message: message.into(),
    });
}

/// Adds `op` reading `inputs` and returns one handle per output. Never fails: on error the problem
/// is recorded and every returned handle is poisoned. A poisoned input poisons the outputs without
/// a new error.
pub(crate) fn apply(
    state: &SharedState,
    method: &str,
    op: Op,
    inputs: &[Option<&Tensor>],
) -> Vec<Tensor> {
    let n_outputs = op.num_outputs();
    let poisoned = || {
        (0..n_outputs)
            .map(|_| Tensor::from_parts(state.clone(), None))
            .collect()
    };
    if inputs
        .iter()
        .flatten()
        .any(|t| !Rc::ptr_eq(&t.state, state))
    {
        state.borrow_mut().record(BuildError::ForeignTensor {
            method: method.to_string(),
        });
        return poisoned();
    }
    let mut values = Vec::with_capacity(inputs.len());
    for input in inputs {
        match input {
            None => values.push(None),
            Some(Tensor { value: Some(v), .. }) => values.push(Some(*v)),
            Some(Tensor { value: None, .. }) => return poisoned(),
        }
    }
    let mut st = state.borrow_mut();
    if st.finished {
        return poisoned();
    }
    let label = st.next_label(method);
    let op_name = op.name();
    match st.graph.add_op_inferred(op, &values, Some(label.clone())) {
        Ok(outputs) => {
            drop(st);
            outputs
                .into_iter()
                .map(|v| Tensor::from_parts(state.clone(), Some(v)))
                .collect()
        }
        Err(error) => {
            let input_types = values
                .iter()
                .map(|v| v.map(|v| st.graph.value_type(v).clone()))
                .collect();
            st.record(BuildError::Op {
                method: method.to_string(),
                op: op_name,
                label,
                input_types,
                message: inference_message(&error),
            });
            drop(st);
            poisoned()
        }
    }
}

/// The problem without the node description, which `BuildError::Op` carries in its own fields.
fn inference_message(error: &sinter_ir::infer::BuildError) -> String {
    match error {
        sinter_ir::infer::BuildError::Infer { source, .. } => source.kind.to_string(),
        sinter_ir::infer::BuildError::Graph { source, .. } => source.to_string(),
    }
}

/// Adds `apply` for single-output ops: the one handle.
pub(crate) fn apply1(
    state: &SharedState,
    method: &str,
    op: Op,
    inputs: &[Option<&Tensor>],
) -> Tensor {
    apply(state, method, op, inputs)
        .into_iter()
        .next()
        .unwrap_or_else(|| Tensor::from_parts(state.clone(), None))
}

/// The type of a value of this builder's graph.
pub(crate) fn value_type(state: &SharedState, value: Value) -> Option<TensorType> {
    let st = state.borrow();
    let node = st.graph.petgraph().node_weight(value.node)?;
    node.outputs.get(value.port as usize).cloned()
}

/// Adds a constant named `stem` (made unique) and returns its handle.
pub(crate) fn add_const(state: &SharedState, stem: &str, value: sinter_ir::Tensor) -> Tensor {
    let mut st = state.borrow_mut();
    if st.finished {
        return Tensor::from_parts(state.clone(), None);
    }
    let name = st.graph.fresh_const_name(stem);
    add_named_const_locked(state, &mut st, name, value)
}

/// Adds a constant with exactly this name; a taken name is an error.
pub(crate) fn add_named_const(
    state: &SharedState,
    name: String,
    value: sinter_ir::Tensor,
) -> Tensor {
    let mut st = state.borrow_mut();
    if st.finished {
        return Tensor::from_parts(state.clone(), None);
    }
    add_named_const_locked(state, &mut st, name, value)
}

fn add_named_const_locked(
    state: &SharedState,
    st: &mut BuilderState,
    name: String,
    value: sinter_ir::Tensor,
) -> Tensor {
    match st.graph.add_const(name.clone(), value) {
        Ok(v) => Tensor::from_parts(state.clone(), Some(v)),
        Err(source) => {
            st.record(BuildError::Graph {
                context: format!("constant `@{name}`"),
                source,
            });
            Tensor::from_parts(state.clone(), None)
        }
    }
}

/// A rank-0 constant of `dtype` holding `value` (converted with numpy `astype` rules).
pub(crate) fn scalar_tensor(dtype: DType, value: f64) -> sinter_ir::Tensor {
    sinter_ir::Tensor::new(
        Vec::new(),
        TensorData::from_f64s(dtype, std::iter::once(value)),
    )
    .expect("one element fits a rank-0 shape")
}

/// Sets the label of the op node that produced `value`. Inputs and constants have no label.
pub(crate) fn set_label(state: &SharedState, value: Value, label: String) {
    let mut st = state.borrow_mut();
    if st.finished || !st.graph.contains_node(value.node) {
        return;
    }
    let node = st.graph.node_mut(value.node);
    if let NodeKind::Op(_) = node.kind {
        node.label = Some(label);
        return;
    }
    let described = node.describe();
    st.record(BuildError::Argument {
        method: "named".to_string(),
        message: format!("only op results carry labels, and this value is {described}"),
    });
}

/// An open `nn` layer scope. Labels of nodes built while it is alive and parameter names are
/// prefixed with its name; dropping it closes the scope.
pub(crate) struct Scope {
    state: SharedState,
    /// The full dotted path of this scope (`mha_0.q`), the prefix of its parameter names.
    pub(crate) path: String,
}

impl Scope {
    /// Opens a scope named `stem_N` with the next free `N` among siblings (`linear_0`, `linear_1`).
    pub(crate) fn numbered(state: &SharedState, stem: &str) -> Scope {
        let name = {
            let mut st = state.borrow_mut();
            let key = format!("{}{stem}", st.scope_prefix());
            let count = st.layer_counts.entry(key).or_insert(0);
            let name = format!("{stem}_{count}");
            *count += 1;
            name
        };
        Scope::named(state, &name)
    }

    /// Opens a scope with exactly this name (`q`, `out` inside an attention layer).
    pub(crate) fn named(state: &SharedState, name: &str) -> Scope {
        let mut st = state.borrow_mut();
        st.scopes.push(name.to_string());
        let path = st.scopes.join(".");
        Scope {
            state: state.clone(),
            path,
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        self.state.borrow_mut().scopes.pop();
    }
}

/// Builds a [`Graph`] through [`Tensor`] handles.
///
/// ```
/// use sinter_dsl::{shape, DType, GraphBuilder};
///
/// let b = GraphBuilder::new("tiny");
/// let x = b.input("x", DType::F32, shape![batch, 4]);
/// let y = x.relu().scale(2.0);
/// b.output("y", &y);
/// let graph = b.build().expect("a valid graph");
/// assert_eq!(graph.outputs().len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct GraphBuilder {
    pub(crate) state: SharedState,
}

impl GraphBuilder {
    pub fn new(name: impl Into<String>) -> GraphBuilder {
        GraphBuilder {
            state: Rc::new(RefCell::new(BuilderState {
                graph: Graph::new(name),
                errors: Vec::new(),
                label_counts: BTreeMap::new(),
                layer_counts: BTreeMap::new(),
                scopes: Vec::new(),
                finished: false,
            })),
        }
    }

    /// Declares a graph input. `dims` mixes static sizes and named symbolic dims; see [`shape!`](crate::shape!).
    pub fn input<D: Into<Dim>>(
        &self,
        name: impl Into<String>,
        dtype: DType,
        dims: impl IntoIterator<Item = D>,
    ) -> Tensor {
        let shape = Shape(dims.into_iter().map(Into::into).collect());
        self.input_typed(name, TensorType::new(dtype, shape))
    }

    /// Declares a graph input of the given type.
    pub fn input_typed(&self, name: impl Into<String>, ty: TensorType) -> Tensor {
        let name = name.into();
        let mut st = self.state.borrow_mut();
        if st.finished {
            return Tensor::from_parts(self.state.clone(), None);
        }
        match st.graph.add_input(name.clone(), ty) {
            Ok(v) => Tensor::from_parts(self.state.clone(), Some(v)),
            Err(source) => {
                st.record(BuildError::Graph {
                    context: format!("input `{name}`"),
                    source,
                });
                Tensor::from_parts(self.state.clone(), None)
            }
        }
    }

    /// Adds a named constant (a weight). The name must not be used by another input or constant.
    pub fn constant(&self, name: impl Into<String>, value: sinter_ir::Tensor) -> Tensor {
        add_named_const(&self.state, name.into(), value)
    }

    /// A rank-0 constant of `dtype`, with a generated name.
    pub fn scalar(&self, value: f64, dtype: DType) -> Tensor {
        add_const(&self.state, "scalar", scalar_tensor(dtype, value))
    }

    /// The escape hatch: adds any op, `None` for absent optional inputs. Returns one handle per
    /// output (`op.num_outputs()` of them), poisoned if the op could not be built.
    pub fn op(&self, op: Op, inputs: &[Option<&Tensor>]) -> Vec<Tensor> {
        let method = op.name();
        apply(&self.state, method, op, inputs)
    }

    /// Concatenates `parts` along `axis`.
    pub fn concat(&self, parts: &[&Tensor], axis: i64) -> Tensor {
        if parts.is_empty() {
            argument_error(&self.state, "concat", "needs at least one tensor");
            return Tensor::from_parts(self.state.clone(), None);
        }
        let inputs: Vec<Option<&Tensor>> = parts.iter().map(|&t| Some(t)).collect();
        apply1(&self.state, "concat", Op::Concat { axis }, &inputs)
    }

    /// Declares `tensor` a graph output. A poisoned handle is skipped: its error is already recorded.
    pub fn output(&self, name: impl Into<String>, tensor: &Tensor) {
        let name = name.into();
        if !Rc::ptr_eq(&tensor.state, &self.state) {
            self.state.borrow_mut().record(BuildError::ForeignTensor {
                method: format!("output `{name}`"),
            });
            return;
        }
        let Some(value) = tensor.value else { return };
        let mut st = self.state.borrow_mut();
        if st.finished {
            return;
        }
        if let Err(source) = st.graph.add_output(name.clone(), value) {
            st.record(BuildError::Graph {
                context: format!("output `{name}`"),
                source,
            });
        }
    }

    /// The errors recorded so far.
    pub fn errors(&self) -> Vec<BuildError> {
        self.state.borrow().errors.clone()
    }

    /// Finishes the graph: every recorded error, or else every verifier error, or the graph.
    /// Handles still alive afterwards produce only poisoned handles.
    pub fn build(self) -> Result<Graph, BuildErrors> {
        let mut st = self.state.borrow_mut();
        st.finished = true;
        let graph = std::mem::take(&mut st.graph);
        let errors = std::mem::take(&mut st.errors);
        drop(st);
        // After a build error the graph lacks nodes and outputs, so the verifier would only report
        // consequences of errors already recorded.
        if !errors.is_empty() {
            return Err(BuildErrors {
                graph: graph.name,
                errors,
            });
        }
        match sinter_ir::verify(&graph) {
            Ok(()) => Ok(graph),
            Err(problems) => Err(BuildErrors {
                graph: graph.name,
                errors: problems.into_iter().map(BuildError::Verify).collect(),
            }),
        }
    }
}
