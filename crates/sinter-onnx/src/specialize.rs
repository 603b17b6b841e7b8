//! Importing a model specialised on concrete input values, for models that do not import as they are.
//!
//! The IR is typed and keeps shape-like parameters as attributes, so two kinds of ONNX models need
//! the values they will run on before they can be imported:
//! - models whose shape-like parameters (a Reshape target, Slice bounds, reduction axes) are graph
//!   inputs rather than constants ([`UnsupportedNodes::only_needs_input_values`]);
//! - models with a node whose output would have a dim that is an expression of a symbol
//!   (`batch * heads`), which the IR cannot express with `batch` symbolic.
//!
//! [`import_specialized`] is the one policy for both, shared by `sinter run`/`sinter check` and the
//! data-driven test harnesses:
//! 1. import as it is;
//! 2. if the only obstacle is shape-like parameters that are graph inputs, import again with exactly
//!    those inputs fixed to their values ([`ImportOptions::input_values`]);
//! 3. if unsupported nodes remain, import again (with step 2 as needed) with the named symbolic dims
//!    of the inputs fixed to their sizes in the values ([`ImportOptions::dim_overrides`]). If that
//!    fails too, the error of steps 1–2 is reported, because it lists every obstacle of the model as
//!    it is.
//!
//! What was fixed is returned as a [`Specialization`], so callers can say so.

use crate::proto::tensor_shape_proto::dimension;
use crate::proto::{type_proto, ModelProto};
use crate::{import_model, ImportError, ImportOptions, LoadedModel};
use sinter_ir::{Graph, Tensor};
use std::collections::{BTreeMap, BTreeSet};

/// What was fixed at import so that a model imports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Specialization {
    /// Graph inputs fixed to their given values; they are constants of the graph.
    pub fixed_inputs: Vec<String>,
    /// Named symbolic dims fixed to their sizes in the given values.
    pub fixed_dims: BTreeMap<String, usize>,
}

/// An imported graph and what was fixed to import it.
#[derive(Debug)]
pub struct Specialized {
    pub graph: Graph,
    pub specialization: Specialization,
}

/// Why [`import_specialized`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SpecializeError {
    /// The model does not import. `inputs_fixed` says whether the failing import had graph inputs
    /// fixed (step 2 of the module docs).
    #[error("{error}")]
    Import {
        error: ImportError,
        inputs_fixed: bool,
    },
    /// The caller could not provide the value of an input.
    #[error("input `{input}`: {message}")]
    InputValue { input: String, message: String },
    /// Two inputs give a symbolic dim different sizes.
    #[error(
        "the inputs disagree on the symbolic dim `{param}`: it is {first_size} in `{first_input}` \
         and {second_size} in `{second_input}`"
    )]
    DimConflict {
        param: String,
        first_input: String,
        first_size: usize,
        second_input: String,
        second_size: usize,
    },
}

/// The graph inputs that are not initializers, in the model's order: what the ONNX backend test's
/// `input_0.pb`, `input_1.pb`, ... bind to.
pub fn positional_inputs(model: &ModelProto) -> Vec<String> {
    let Some(graph) = &model.graph else {
        return Vec::new();
    };
    let initializers: BTreeSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|input| !initializers.contains(input.name.as_str()))
        .map(|input| input.name.clone())
        .collect()
}

/// Imports `loaded` with the policy of the module docs. `value_of(name)` gives the value of the graph
/// input `name`, `Ok(None)` when the caller has none, or an error message when reading it failed; it
/// is only called for inputs whose value is needed.
pub fn import_specialized(
    loaded: &LoadedModel,
    value_of: &mut dyn FnMut(&str) -> Result<Option<Tensor>, String>,
) -> Result<Specialized, SpecializeError> {
    let first_error = match import_fixing_inputs(loaded, ImportOptions::default(), value_of) {
        Ok((graph, fixed_inputs)) => {
            return Ok(Specialized {
                graph,
                specialization: Specialization {
                    fixed_inputs,
                    fixed_dims: BTreeMap::new(),
                },
            })
        }
        Err(err) => err,
    };
    if !matches!(
        first_error,
        SpecializeError::Import {
            error: ImportError::Unsupported(_),
            ..
        }
    ) {
        return Err(first_error);
    }
    let fixed_dims = dim_sizes_of_inputs(loaded, value_of)?;
    if fixed_dims.is_empty() {
        return Err(first_error);
    }
    let options = ImportOptions {
        dim_overrides: fixed_dims.clone(),
        ..ImportOptions::default()
    };
    match import_fixing_inputs(loaded, options, value_of) {
        Ok((graph, fixed_inputs)) => Ok(Specialized {
            graph,
            specialization: Specialization {
                fixed_inputs,
                fixed_dims,
            },
        }),
        Err(SpecializeError::Import { .. }) => Err(first_error),
        Err(other) => Err(other),
    }
}

/// Steps 1 and 2 under `options`: the graph and the inputs fixed.
fn import_fixing_inputs(
    loaded: &LoadedModel,
    mut options: ImportOptions,
    value_of: &mut dyn FnMut(&str) -> Result<Option<Tensor>, String>,
) -> Result<(Graph, Vec<String>), SpecializeError> {
    let nodes = match import_model(loaded, &options) {
        Ok(graph) => return Ok((graph, Vec::new())),
        Err(ImportError::Unsupported(nodes)) if nodes.only_needs_input_values() => nodes,
        Err(error) => {
            return Err(SpecializeError::Import {
                error,
                inputs_fixed: false,
            })
        }
    };
    for name in nodes.needs_input_values() {
        let Some(value) = read_value(value_of, &name)? else {
            return Err(SpecializeError::Import {
                error: ImportError::Unsupported(nodes),
                inputs_fixed: false,
            });
        };
        options.input_values.insert(name, value);
    }
    let fixed_inputs = options.input_values.keys().cloned().collect();
    import_model(loaded, &options)
        .map(|graph| (graph, fixed_inputs))
        .map_err(|error| SpecializeError::Import {
            error,
            inputs_fixed: true,
        })
}

fn read_value(
    value_of: &mut dyn FnMut(&str) -> Result<Option<Tensor>, String>,
    name: &str,
) -> Result<Option<Tensor>, SpecializeError> {
    value_of(name).map_err(|message| SpecializeError::InputValue {
        input: name.to_string(),
        message,
    })
}

/// The sizes of the named symbolic dims (`dim_param`s) of the positional inputs in their values.
/// Inputs without a value, or whose value has another rank, are skipped (running the model reports
/// them); two inputs that give a dim different sizes are an error.
fn dim_sizes_of_inputs(
    loaded: &LoadedModel,
    value_of: &mut dyn FnMut(&str) -> Result<Option<Tensor>, String>,
) -> Result<BTreeMap<String, usize>, SpecializeError> {
    let mut sizes: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let Some(onnx_graph) = &loaded.model.graph else {
        return Ok(BTreeMap::new());
    };
    for name in positional_inputs(&loaded.model) {
        let Some(info) = onnx_graph.input.iter().find(|input| input.name == name) else {
            continue;
        };
        let Some(type_proto::Value::TensorType(tensor_type)) =
            info.r#type.as_ref().and_then(|ty| ty.value.as_ref())
        else {
            continue;
        };
        let Some(declared) = &tensor_type.shape else {
            continue;
        };
        let dim_param = |dim: &crate::proto::tensor_shape_proto::Dimension| match &dim.value {
            Some(dimension::Value::DimParam(param)) if !param.is_empty() => Some(param.clone()),
            _ => None,
        };
        // Values are read only for inputs that have a named dim to measure.
        if declared.dim.iter().all(|dim| dim_param(dim).is_none()) {
            continue;
        }
        let Some(value) = read_value(value_of, &name)? else {
            continue;
        };
        if value.rank() != declared.dim.len() {
            continue;
        }
        for (dim, &size) in declared.dim.iter().zip(value.shape()) {
            let Some(param) = dim_param(dim) else {
                continue;
            };
            match sizes.get(&param) {
                Some((first_size, first_input)) if *first_size != size => {
                    return Err(SpecializeError::DimConflict {
                        param,
                        first_input: first_input.clone(),
                        first_size: *first_size,
                        second_input: name.clone(),
                        second_size: size,
                    })
                }
                Some(_) => {}
                None => {
                    sizes.insert(param, (size, name.clone()));
                }
            }
        }
    }
    Ok(sizes
        .into_iter()
        .map(|(param, (size, _))| (param, size))
        .collect())
}
