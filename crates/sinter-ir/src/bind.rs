//! Binding a graph's inputs to concrete shapes, and specialising the graph to them.
//!
//! Both backends accept or refuse inputs with the one rule here ([`bind_inputs`]): every declared
//! input is given, no unknown name is, dtypes match, ranks match, static dims match, and a symbolic
//! dim such as `batch` binds to one size everywhere it appears. The reference interpreter checks
//! its inputs with it; the JIT checks them before any generated code runs and then compiles the
//! graph [`specialize`]d to the bound sizes, caching the result per binding.

use crate::{DType, Dim, Graph, NodeKind, Shape, TensorType};
use std::collections::BTreeMap;

/// Sizes bound to symbolic dims, by symbol name. Ordered, so it can key a cache.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DimBindings(BTreeMap<String, usize>);

impl DimBindings {
    /// The size bound to `symbol`.
    pub fn get(&self, symbol: &str) -> Option<usize> {
        self.0.get(symbol).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, usize)> {
        self.0.iter().map(|(name, &size)| (name.as_str(), size))
    }

    /// Checks `shape` against `ty`'s shape, binding unbound symbols. On a mismatch, returns a
    /// description of the first one, e.g. ` (axis 1 is 5, expected 4)`.
    pub fn check(&mut self, ty: &TensorType, shape: &[usize]) -> Result<(), String> {
        if ty.rank() != shape.len() {
            return Err(format!(" (rank {} instead of {})", shape.len(), ty.rank()));
        }
        for (axis, (dim, &actual)) in ty.shape.dims().iter().zip(shape).enumerate() {
            match dim {
                Dim::Static(n) if *n != actual => {
                    return Err(format!(" (axis {axis} is {actual}, expected {n})"));
                }
                Dim::Static(_) => {}
                Dim::Sym(name) => match self.0.get(&**name) {
                    Some(&bound) if bound != actual => {
                        return Err(format!(
                            " (axis {axis} is {actual}, but `{name}` is already bound to {bound})"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.0.insert(name.to_string(), actual);
                    }
                },
            }
        }
        Ok(())
    }

    /// `ty` with every bound symbol replaced by its size.
    pub fn apply(&self, ty: &TensorType) -> TensorType {
        let dims = ty
            .shape
            .dims()
            .iter()
            .map(|dim| match dim {
                Dim::Sym(name) => self.get(name).map_or_else(|| dim.clone(), Dim::Static),
                Dim::Static(_) => dim.clone(),
            })
            .collect();
        TensorType::new(ty.dtype, Shape(dims))
    }
}

/// Why inputs do not fit a graph's signature.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("missing input `{name}` of type {expected}")]
    Missing { name: String, expected: TensorType },
    #[error("unknown input `{name}`; the graph's inputs are: {known}")]
    Unknown { name: String, known: String },
    #[error("input `{name}`: expected {expected}, got {actual_dtype}{actual_shape:?}{detail}")]
    Mismatch {
        name: String,
        expected: TensorType,
        actual_dtype: DType,
        actual_shape: Vec<usize>,
        detail: String,
    },
}

/// Checks named inputs (`(name, dtype, shape)`) against `graph`'s signature and binds its symbolic
/// dims. Unknown names are reported before missing ones; the first problem is returned.
pub fn bind_inputs(
    graph: &Graph,
    inputs: &[(&str, DType, &[usize])],
) -> Result<DimBindings, InputError> {
    let signature = graph.input_signature();
    for (name, _, _) in inputs {
        if !signature.iter().any(|(n, _)| n == name) {
            let known: Vec<&str> = signature.iter().map(|(n, _)| *n).collect();
            return Err(InputError::Unknown {
                name: name.to_string(),
                known: known.join(", "),
            });
        }
    }
    let mut bindings = DimBindings::default();
    for (name, ty) in signature {
        let Some(&(_, dtype, shape)) = inputs.iter().find(|(n, _, _)| *n == name) else {
            return Err(InputError::Missing {
                name: name.to_string(),
                expected: ty.clone(),
            });
        };
        let mismatch = |detail: String| InputError::Mismatch {
            name: name.to_string(),
            expected: ty.clone(),
            actual_dtype: dtype,
            actual_shape: shape.to_vec(),
            detail,
        };
        if dtype != ty.dtype {
            return Err(mismatch(" (wrong dtype)".to_string()));
        }
        bindings.check(ty, shape).map_err(mismatch)?;
    }
    Ok(bindings)
}

/// A value of the graph still has a symbolic dim after specialisation.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{node}: output {port_idx} has type {ty} after binding {bindings}; `{symbol}` is not bound by any input")]
pub struct SpecializeError {
    pub node: String,
    pub port_idx: usize,
    pub ty: TensorType,
    pub symbol: String,
    pub bindings: String,
}

/// `graph` with every symbolic dim replaced by its bound size, so every value's type is static.
///
/// Inference never invents symbols (an op whose output would be an expression of a symbol is an
/// inference error), so the types of a verified graph mention only symbols of its inputs, and
/// substituting them gives the types inference would compute for the static inputs.
pub fn specialize(graph: &Graph, bindings: &DimBindings) -> Result<Graph, SpecializeError> {
    let mut specialized = graph.clone();
    let ids: Vec<_> = specialized.node_ids().collect();
    for id in ids {
        let node = specialized.node(id);
        let mut bound_types = Vec::with_capacity(node.outputs.len());
        for (port_idx, ty) in node.outputs.iter().enumerate() {
            let bound = bindings.apply(ty);
            let unbound = bound.shape.dims().iter().find_map(|dim| match dim {
                Dim::Sym(symbol) => Some(symbol.to_string()),
                Dim::Static(_) => None,
            });
            if let Some(symbol) = unbound {
                let described = match &node.kind {
                    NodeKind::Input { name } => format!("input `{name}`"),
                    _ => node.describe(),
                };
                let bindings = bindings
                    .iter()
                    .map(|(name, size)| format!("{name}={size}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(SpecializeError {
                    node: described,
                    port_idx,
                    ty: ty.clone(),
                    symbol,
                    bindings: if bindings.is_empty() {
                        "nothing".into()
                    } else {
                        bindings
                    },
                });
            }
            bound_types.push(bound);
        }
        specialized.node_mut(id).outputs = bound_types;
    }
    Ok(specialized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Op;

    fn batch_graph() -> Graph {
        let mut graph = Graph::new("g");
        let x = graph
            .add_input(
                "x",
                TensorType::new(DType::F32, Shape(vec![Dim::sym("batch"), Dim::Static(4)])),
            )
            .unwrap();
        let y = graph
            .add_op_inferred(Op::Relu {}, &[Some(x)], None)
            .unwrap()[0];
        graph.add_output("y", y).unwrap();
        graph
    }

    #[test]
    fn symbols_bind_once_and_specialise_every_value() {
        let graph = batch_graph();
        let bindings = bind_inputs(&graph, &[("x", DType::F32, &[3, 4])]).unwrap();
        assert_eq!(bindings.get("batch"), Some(3));
        let specialized = specialize(&graph, &bindings).unwrap();
        let (_, y) = &specialized.outputs()[0];
        assert_eq!(
            specialized.value_type(*y),
            &TensorType::fixed(DType::F32, &[3, 4])
        );
        crate::verify(&specialized).unwrap();
    }

    #[test]
    fn each_kind_of_wrong_input_is_named() {
        let graph = batch_graph();
        let err = bind_inputs(&graph, &[]).unwrap_err();
        assert!(matches!(err, InputError::Missing { .. }), "{err}");
        let err = bind_inputs(
            &graph,
            &[("x", DType::F32, &[3, 4]), ("z", DType::F32, &[1])],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown input `z`; the graph's inputs are: x"
        );
        let err = bind_inputs(&graph, &[("x", DType::I64, &[3, 4])]).unwrap_err();
        assert!(err.to_string().contains("wrong dtype"), "{err}");
        let err = bind_inputs(&graph, &[("x", DType::F32, &[3, 5])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input `x`: expected f32[batch,4], got f32[3, 5] (axis 1 is 5, expected 4)"
        );
        let err = bind_inputs(&graph, &[("x", DType::F32, &[3])]).unwrap_err();
        assert!(err.to_string().contains("rank 1 instead of 2"), "{err}");
    }

    #[test]
    fn an_unbound_symbol_is_a_specialisation_error() {
        let graph = batch_graph();
        let err = specialize(&graph, &DimBindings::default()).unwrap_err();
        assert_eq!(err.symbol, "batch");
        assert!(err.to_string().contains("input `x`"), "{err}");
    }
}
