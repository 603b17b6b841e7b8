//! The import of one graph: initializers and inputs, the node loop with error collection, outputs
//! and the final dead-node sweep (see the module docs of `import`).

use super::values::{Deps, Importer, NodeCx, NodeError, Opd};
use super::{dtype_of, lowering, ImportError, ImportOptions, UnsupportedNode, UnsupportedNodes};
use crate::decode::default_opset_version;
use crate::proto::tensor_proto::DataType;
use crate::proto::tensor_shape_proto::dimension;
use crate::proto::{type_proto, GraphProto, ModelProto, NodeProto, ValueInfoProto};
use crate::tensor::{tensor_from_proto, ExternalData};
use sinter_ir::{DType, Dim, Graph, NodeKind, Tensor, TensorType};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Imports `model`'s graph; see [`super::import_model_proto`].
pub(crate) fn import_graph(
    model: &ModelProto,
    external: &ExternalData,
    options: &ImportOptions,
) -> Result<Graph, ImportError> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| ImportError::Graph("the model has no graph".to_string()))?;
    let opset = default_opset_version(model).ok_or_else(|| {
        ImportError::Graph("the model imports no default-domain operator set".to_string())
    })?;
    let domain_versions: BTreeMap<String, i64> = model
        .opset_import
        .iter()
        .map(|o| (o.domain.clone(), o.version))
        .collect();
    let name = if graph.name.is_empty() {
        "main"
    } else {
        &graph.name
    };
    let mut session = Session {
        imp: Importer::new(name),
        bindings: HashMap::new(),
        symbols: SymbolNames::default(),
        unsupported: Vec::new(),
        first_error: None,
    };
    session.bind_initializers(graph, external)?;
    session.bind_inputs(graph, options)?;
    session.lower_nodes(graph, opset, &domain_versions, external)?;
    if !session.unsupported.is_empty() {
        return Err(ImportError::Unsupported(UnsupportedNodes {
            nodes: session.unsupported,
        }));
    }
    if let Some(error) = session.first_error {
        return Err(error);
    }
    session.bind_outputs(graph, options)?;
    let mut ir = session.imp.graph;
    prune_dead_nodes(&mut ir);
    Ok(ir)
}

/// What an ONNX value name is bound to.
#[derive(Clone, Copy)]
enum Binding {
    Known(Opd),
    /// Produced by a node that could not be imported; readers are skipped.
    Unknown,
}

/// Identifier-friendly, distinct names for symbolic dims.
#[derive(Default)]
struct SymbolNames {
    /// ONNX `dim_param` to IR symbol.
    by_param: HashMap<String, Arc<str>>,
    used: HashSet<String>,
}

impl SymbolNames {
    fn sanitize(raw: &str) -> String {
        let mut name: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            name.insert(0, '_');
        }
        name
    }

    fn unique(&mut self, stem: String) -> Arc<str> {
        let mut name = stem.clone();
        let mut suffix = 1usize;
        while self.used.contains(&name) {
            name = format!("{stem}_{suffix}");
            suffix += 1;
        }
        self.used.insert(name.clone());
        Arc::from(name)
    }

    /// The symbol for a `dim_param`: the same for every occurrence of the param.
    fn param(&mut self, param: &str) -> Arc<str> {
        if let Some(sym) = self.by_param.get(param) {
            return sym.clone();
        }
        let sym = self.unique(Self::sanitize(param));
        self.by_param.insert(param.to_string(), sym.clone());
        sym
    }

    /// A fresh symbol for an unknown dim.
    fn fresh(&mut self, input: &str, axis: usize) -> Arc<str> {
        self.unique(Self::sanitize(&format!("{input}_d{axis}")))
    }
}

struct Session {
    imp: Importer,
    bindings: HashMap<String, Binding>,
    symbols: SymbolNames,
    unsupported: Vec<UnsupportedNode>,
    first_error: Option<ImportError>,
}

/// What a value info declares: its dtype and, when a shape is given, one entry per axis
/// (`None` for an unknown dim).
struct DeclaredType {
    dtype: Option<DType>,
    dims: Option<Vec<DeclaredDim>>,
}

enum DeclaredDim {
    Static(usize),
    Param(String),
    Unknown,
}

fn declared_type(info: &ValueInfoProto) -> Result<DeclaredType, String> {
    let Some(ty) = &info.r#type else {
        return Ok(DeclaredType {
            dtype: None,
            dims: None,
        });
    };
    let tensor = match &ty.value {
        Some(type_proto::Value::TensorType(t)) => t,
        Some(type_proto::Value::SequenceType(_)) => {
            return Err("is a sequence; only tensors are supported".to_string())
        }
        Some(type_proto::Value::MapType(_)) => {
            return Err("is a map; only tensors are supported".to_string())
        }
        Some(type_proto::Value::OptionalType(_)) => {
            return Err("is an optional; only tensors are supported".to_string())
        }
        Some(type_proto::Value::SparseTensorType(_)) => {
            return Err("is a sparse tensor; only dense tensors are supported".to_string())
        }
        None => {
            return Ok(DeclaredType {
                dtype: None,
                dims: None,
            })
        }
    };
    let dtype =
        if tensor.elem_type == DataType::Undefined as i32 {
            None
        } else {
            Some(dtype_of(tensor.elem_type).map_err(|name| {
                format!("has element type {name}, which sinter does not support")
            })?)
        };
    let dims = match &tensor.shape {
        None => None,
        Some(shape) => Some(
            shape
                .dim
                .iter()
                .enumerate()
                .map(|(axis, dim)| match &dim.value {
                    Some(dimension::Value::DimValue(v)) => usize::try_from(*v)
                        .map(DeclaredDim::Static)
                        .map_err(|_| format!("has a negative dim {v} at axis {axis}")),
                    Some(dimension::Value::DimParam(p)) if !p.is_empty() => {
                        Ok(DeclaredDim::Param(p.clone()))
                    }
                    _ => Ok(DeclaredDim::Unknown),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(DeclaredType { dtype, dims })
}

impl Session {
    fn bind_initializers(
        &mut self,
        graph: &GraphProto,
        external: &ExternalData,
    ) -> Result<(), ImportError> {
        if !graph.sparse_initializer.is_empty() {
            return Err(ImportError::Graph(format!(
                "the graph has {} sparse initializers, which are not supported",
                graph.sparse_initializer.len()
            )));
        }
        for init in &graph.initializer {
            if init.name.is_empty() {
                return Err(ImportError::Graph(
                    "an initializer has an empty name".to_string(),
                ));
            }
            if self.bindings.contains_key(&init.name) {
                return Err(ImportError::Graph(format!(
                    "initializer `{}` is declared twice",
                    init.name
                )));
            }
            let tensor =
                tensor_from_proto(init, external).map_err(|source| ImportError::Initializer {
                    name: init.name.clone(),
                    source: Box::new(source),
                })?;
            let opd = self.imp.const_operand(Arc::new(tensor), &init.name);
            self.bindings.insert(init.name.clone(), Binding::Known(opd));
        }
        Ok(())
    }

    fn bind_inputs(
        &mut self,
        graph: &GraphProto,
        options: &ImportOptions,
    ) -> Result<(), ImportError> {
        // Graph inputs that are also initializers are constants (IR version 4 semantics).
        let inputs: Vec<&ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !self.bindings.contains_key(&i.name))
            .collect();
        let mut declared = Vec::with_capacity(inputs.len());
        for input in &inputs {
            let error = |message: String| ImportError::Input {
                name: input.name.clone(),
                message,
            };
            if input.name.is_empty() {
                return Err(ImportError::Graph(
                    "a graph input has an empty name".to_string(),
                ));
            }
            let ty = declared_type(input).map_err(error)?;
            let dtype = ty
                .dtype
                .ok_or_else(|| error("has no tensor element type".to_string()))?;
            let dims = ty.dims.ok_or_else(|| {
                error(
                    "has no shape (its rank is unknown); sinter needs the rank of every input"
                        .to_string(),
                )
            })?;
            // Name every dim_param first, so fresh symbols for unknown dims avoid them.
            for dim in &dims {
                if let DeclaredDim::Param(p) = dim {
                    if !options.dim_overrides.contains_key(p) {
                        self.symbols.param(p);
                    }
                }
            }
            declared.push((input, dtype, dims));
        }
        for (input, dtype, dims) in declared {
            let dims: Vec<Dim> = dims
                .iter()
                .enumerate()
                .map(|(axis, dim)| match dim {
                    DeclaredDim::Static(n) => Dim::Static(*n),
                    DeclaredDim::Param(p) => match options.dim_overrides.get(p) {
                        Some(&n) => Dim::Static(n),
                        None => Dim::Sym(self.symbols.param(p)),
                    },
                    DeclaredDim::Unknown => Dim::Sym(self.symbols.fresh(&input.name, axis)),
                })
                .collect();
            let ty = TensorType::new(dtype, dims);
            if let Some(value) = options.input_values.get(&input.name) {
                check_input_value(&input.name, &ty, value)?;
                let opd = self.imp.const_operand(Arc::new(value.clone()), &input.name);
                self.bindings
                    .insert(input.name.clone(), Binding::Known(opd));
                continue;
            }
            if !ty.shape.within_max_elements() {
                return Err(ImportError::Input {
                    name: input.name.clone(),
                    message: format!(
                        "type {ty} has more than {} elements",
                        sinter_ir::MAX_ELEMENTS
                    ),
                });
            }
            let value = self
                .imp
                .graph
                .add_input(input.name.clone(), ty)
                .map_err(|e| ImportError::Input {
                    name: input.name.clone(),
                    message: e.to_string(),
                })?;
            let opd = self.imp.value_operand(
                value,
                &input.name,
                Deps {
                    inputs: vec![input.name.clone()],
                    dims: Vec::new(),
                },
            );
            self.bindings
                .insert(input.name.clone(), Binding::Known(opd));
        }
        if let Some(name) = options
            .input_values
            .keys()
            .find(|name| !graph.input.iter().any(|i| &i.name == *name))
        {
            return Err(ImportError::Input {
                name: name.clone(),
                message: "has a value in ImportOptions::input_values but is not a graph input"
                    .to_string(),
            });
        }
        Ok(())
    }

    fn lower_nodes(
        &mut self,
        graph: &GraphProto,
        opset: i64,
        domain_versions: &BTreeMap<String, i64>,
        external: &ExternalData,
    ) -> Result<(), ImportError> {
        // Where each value is produced, to tell "produced later" (unsorted) from "never produced".
        let mut producer: HashMap<&str, usize> = HashMap::new();
        for (node_idx, node) in graph.node.iter().enumerate() {
            for output in node.output.iter().filter(|o| !o.is_empty()) {
                if self.bindings.contains_key(output) || producer.contains_key(output.as_str()) {
                    return Err(ImportError::Graph(format!(
                        "value `{output}` is produced more than once (by node {} and as an input, \
                         initializer or earlier output)",
                        node_display_name(node, node_idx)
                    )));
                }
                producer.insert(output, node_idx);
            }
        }
        let mut n_readers: HashMap<&str, usize> = HashMap::new();
        for name in graph
            .node
            .iter()
            .flat_map(|n| n.input.iter())
            .chain(graph.output.iter().map(|o| &o.name))
        {
            *n_readers.entry(name.as_str()).or_default() += 1;
        }

        for (node_idx, node) in graph.node.iter().enumerate() {
            let display_name = node_display_name(node, node_idx);
            let mut inputs = Vec::with_capacity(node.input.len());
            let mut reads_unknown = false;
            for name in &node.input {
                if name.is_empty() {
                    inputs.push(None);
                    continue;
                }
                match self.bindings.get(name) {
                    Some(Binding::Known(opd)) => inputs.push(Some(*opd)),
                    Some(Binding::Unknown) => {
                        reads_unknown = true;
                        inputs.push(None);
                    }
                    None => {
                        return Err(ImportError::Graph(match producer.get(name.as_str()) {
                            Some(&later) => format!(
                                "the graph is not topologically sorted: node {display_name} reads \
                                 `{name}`, which node {} produces later",
                                node_display_name(&graph.node[later], later)
                            ),
                            None => format!(
                                "node {display_name} reads `{name}`, which is neither a graph \
                                 input, an initializer nor the output of any node"
                            ),
                        }))
                    }
                }
            }
            let is_default_domain = node.domain.is_empty() || node.domain == "ai.onnx";
            let result = match (is_default_domain, lowering(&node.op_type)) {
                (false, _) => Err(NodeError::Unsupported(format!(
                    "domain `{}` is not supported (only the default ONNX domain is)",
                    node.domain
                ))),
                (true, None) => Err(NodeError::Unsupported(format!(
                    "op `{}` is not supported",
                    node.op_type
                ))),
                (true, Some(_)) if reads_unknown => {
                    // A consequence of an earlier failure, which is already reported.
                    self.mark_unknown(node);
                    continue;
                }
                (true, Some(lower)) => {
                    let outputs_used = node
                        .output
                        .iter()
                        .map(|o| !o.is_empty() && n_readers.get(o.as_str()).is_some_and(|&n| n > 0))
                        .collect();
                    let mut cx = NodeCx {
                        imp: &mut self.imp,
                        node,
                        opset,
                        inputs,
                        outputs_used,
                        external,
                    };
                    lower(&mut cx)
                }
            };
            let node_opset = if is_default_domain {
                opset
            } else {
                domain_versions.get(&node.domain).copied().unwrap_or(0)
            };
            match result {
                Ok(outputs) => {
                    for (output_idx, name) in node.output.iter().enumerate() {
                        if name.is_empty() {
                            continue;
                        }
                        match outputs.get(output_idx).copied().flatten() {
                            Some(opd) => {
                                self.bindings.insert(name.clone(), Binding::Known(opd));
                            }
                            None => {
                                self.bindings.insert(name.clone(), Binding::Unknown);
                                if n_readers.get(name.as_str()).is_some_and(|&n| n > 0) {
                                    self.unsupported.push(UnsupportedNode {
                                        node_name: display_name.clone(),
                                        op_type: node.op_type.clone(),
                                        domain: node.domain.clone(),
                                        opset: node_opset,
                                        reason: format!(
                                            "output {output_idx} (`{name}`) is used but not supported"
                                        ),
                                        needs_input_values: Vec::new(),
                                    });
                                }
                            }
                        }
                    }
                }
                Err(NodeError::Unsupported(reason)) => {
                    self.unsupported.push(UnsupportedNode {
                        node_name: display_name,
                        op_type: node.op_type.clone(),
                        domain: node.domain.clone(),
                        opset: node_opset,
                        reason,
                        needs_input_values: Vec::new(),
                    });
                    self.mark_unknown(node);
                }
                Err(NodeError::NeedsInputValues { reason, inputs }) => {
                    self.unsupported.push(UnsupportedNode {
                        node_name: display_name,
                        op_type: node.op_type.clone(),
                        domain: node.domain.clone(),
                        opset: node_opset,
                        reason,
                        needs_input_values: inputs,
                    });
                    self.mark_unknown(node);
                }
                Err(NodeError::Invalid(message)) => {
                    if self.first_error.is_none() {
                        self.first_error = Some(ImportError::Node {
                            node: display_name,
                            op_type: node.op_type.clone(),
                            opset: node_opset,
                            message,
                        });
                    }
                    self.mark_unknown(node);
                }
            }
        }
        Ok(())
    }

    fn mark_unknown(&mut self, node: &NodeProto) {
        for name in node.output.iter().filter(|o| !o.is_empty()) {
            self.bindings.insert(name.clone(), Binding::Unknown);
        }
    }

    fn bind_outputs(
        &mut self,
        graph: &GraphProto,
        options: &ImportOptions,
    ) -> Result<(), ImportError> {
        // The IR has no use for a graph that computes nothing (`verify` rejects it).
        if graph.output.is_empty() {
            return Err(ImportError::Graph(
                "the graph declares no outputs".to_string(),
            ));
        }
        for output in &graph.output {
            let error = |message: String| ImportError::Output {
                name: output.name.clone(),
                message,
            };
            let opd = match self.bindings.get(&output.name) {
                Some(Binding::Known(opd)) => *opd,
                Some(Binding::Unknown) => {
                    return Err(error(
                        "is produced by a node that was not imported".to_string(),
                    ))
                }
                None => {
                    return Err(error(
                        "is not a graph input, an initializer or the output of any node"
                            .to_string(),
                    ))
                }
            };
            let actual = self.imp.ty(opd).clone();
            let declared = declared_type(output).map_err(error)?;
            if let Some(dtype) = declared.dtype {
                if dtype != actual.dtype {
                    return Err(error(format!(
                        "is declared with element type {dtype}, but the imported graph computes {actual}"
                    )));
                }
            }
            if let Some(dims) = &declared.dims {
                if dims.len() != actual.rank() {
                    return Err(error(format!(
                        "is declared with rank {}, but the imported graph computes {actual}",
                        dims.len()
                    )));
                }
                for (axis, (declared_dim, dim)) in dims.iter().zip(actual.shape.dims()).enumerate()
                {
                    let declared_size = match declared_dim {
                        DeclaredDim::Static(n) => Some(*n),
                        DeclaredDim::Param(p) => options.dim_overrides.get(p).copied(),
                        DeclaredDim::Unknown => None,
                    };
                    if let (Some(expected), Dim::Static(n)) = (declared_size, dim) {
                        if expected != *n {
                            return Err(error(format!(
                                "is declared with size {expected} at axis {axis}, but the imported \
                                 graph computes {actual}"
                            )));
                        }
                    }
                }
            }
            let value = self
                .imp
                .materialize(opd)
                .map_err(|e| error(e.to_string()))?;
            self.imp
                .graph
                .add_output(output.name.clone(), value)
                .map_err(|e| error(e.to_string()))?;
        }
        Ok(())
    }
}

/// Checks a value fixed for a graph input against the input's declared type.
fn check_input_value(name: &str, ty: &TensorType, value: &Tensor) -> Result<(), ImportError> {
    let fits = value.dtype() == ty.dtype
        && value.rank() == ty.rank()
        && ty
            .shape
            .dims()
            .iter()
            .zip(value.shape())
            .all(|(dim, &n)| dim.as_static().is_none_or(|d| d == n));
    if fits {
        Ok(())
    } else {
        Err(ImportError::Input {
            name: name.to_string(),
            message: format!(
                "the value fixed in ImportOptions::input_values has type {}, which does not fit \
                 the declared {ty}",
                value.ty()
            ),
        })
    }
}

fn node_display_name(node: &NodeProto, node_idx: usize) -> String {
    if node.name.is_empty() {
        format!("#{node_idx}")
    } else {
        node.name.clone()
    }
}

/// Removes op and const nodes that no graph output depends on: shape computations that were folded
/// or resolved into attributes, and constants nothing reads.
fn prune_dead_nodes(graph: &mut Graph) {
    let mut live: HashSet<sinter_ir::NodeId> = HashSet::new();
    let mut stack: Vec<sinter_ir::NodeId> = graph.outputs().iter().map(|(_, v)| v.node).collect();
    while let Some(id) = stack.pop() {
        if !live.insert(id) {
            continue;
        }
        stack.extend(graph.node_inputs(id).into_iter().flatten().map(|v| v.node));
    }
    let dead: Vec<sinter_ir::NodeId> = graph
        .node_ids()
        .filter(|id| !live.contains(id) && !matches!(graph.node(*id).kind, NodeKind::Input { .. }))
        .collect();
    for id in dead {
        graph.remove_node(id);
    }
}
