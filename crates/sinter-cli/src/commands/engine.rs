//! The engines that run a model, behind one interface: the JIT (the default) and the reference
//! interpreter (`--backend reference`), so `run`, `check` and `bench` treat them alike.
//!
//! Both refuse bad inputs with the one rule in `sinter_ir::bind_inputs` (names, dtypes, ranks, static
//! dims, consistent symbols), so their messages agree; an error about an input names the file it came
//! from.

use super::run::LoadedInput;
use super::Model;
use crate::args::Backend;
use anyhow::Result;
use sinter_ir::{bind_inputs, DimBindings, InputError, Tensor};
use sinter_jit::{CompileOptions, CompiledModel, ModelError};

pub enum Engine {
    /// The interpreter, with the graph it runs (optimized unless `--no-opt`).
    Reference(Box<sinter_ir::Graph>),
    Jit(Box<CompiledModel>),
}

/// Options shared by the commands that run a model.
#[derive(Clone, Copy, Debug)]
pub struct EngineOptions {
    pub backend: Backend,
    /// Threads for the JIT's parallel kernels; `None` uses every core.
    pub threads: Option<usize>,
    /// Keep CLIF and disassembly of every kernel (`dump --stage clif|asm`).
    pub dumps: bool,
    /// Run the graph optimizer first (off with `--no-opt`).
    pub optimize: bool,
}

impl Engine {
    /// Prepares `model` for running: compiles it for the JIT (at once when its inputs are static,
    /// otherwise per input shape on first use).
    pub fn new(model: &Model, options: EngineOptions) -> Result<Engine> {
        Ok(match options.backend {
            Backend::Reference => {
                let graph = if options.optimize {
                    sinter_opt::optimize(
                        model.graph.clone(),
                        &sinter_opt::OptimizeOptions::default(),
                    )
                    .map_err(|err| anyhow::anyhow!("the graph optimizer failed: {err}"))?
                    .graph
                } else {
                    model.graph.clone()
                };
                Engine::Reference(Box::new(graph))
            }
            Backend::Jit => {
                let compile_options = CompileOptions {
                    threads: options.threads,
                    dumps: options.dumps,
                    optimize: options.optimize.then(sinter_opt::OptimizeOptions::default),
                    ..CompileOptions::default()
                };
                let compiled =
                    sinter_jit::compile(model.graph.clone(), &compile_options).map_err(|err| {
                        anyhow::anyhow!("cannot compile the model for the JIT: {err}")
                    })?;
                Engine::Jit(Box::new(compiled))
            }
        })
    }

    /// Compiles the JIT program for the inputs' shapes now (so a benchmark can time compilation
    /// apart from running) and returns its arena size in bytes. `None` for the reference backend.
    pub fn prepare(&self, model: &Model, inputs: &[LoadedInput]) -> Result<Option<usize>> {
        let Engine::Jit(compiled) = self else {
            return Ok(None);
        };
        let bindings = bind(model, inputs)?;
        let program = compiled
            .program_for(&bindings)
            .map_err(|err| anyhow::anyhow!("cannot compile the model for the JIT: {err}"))?;
        Ok(Some(program.memory_plan().peak_bytes))
    }

    /// Runs the model on `inputs`.
    pub fn run(&self, inputs: &[LoadedInput]) -> Result<Vec<(String, Tensor)>> {
        match self {
            Engine::Reference(graph) => {
                let owned: Vec<(&str, Tensor)> = inputs
                    .iter()
                    .map(|input| (input.name.as_str(), input.tensor.clone()))
                    .collect();
                sinter_ref::run(graph, &owned).map_err(|err| {
                    let input = match &err {
                        sinter_ref::RunError::Input(input_err) => input_name(input_err),
                        _ => None,
                    };
                    with_input_context(err.to_string(), input, inputs)
                })
            }
            Engine::Jit(compiled) => {
                let refs: Vec<(&str, &Tensor)> = inputs
                    .iter()
                    .map(|input| (input.name.as_str(), &input.tensor))
                    .collect();
                compiled.run(&refs).map_err(|err| match &err {
                    ModelError::Input(input_err) => {
                        with_input_context(err.to_string(), input_name(input_err), inputs)
                    }
                    _ => anyhow::anyhow!(err),
                })
            }
        }
    }
}

/// Binds the inputs' shapes to the graph's symbolic dims.
fn bind(model: &Model, inputs: &[LoadedInput]) -> Result<DimBindings> {
    let described: Vec<(&str, sinter_ir::DType, &[usize])> = inputs
        .iter()
        .map(|input| {
            (
                input.name.as_str(),
                input.tensor.dtype(),
                input.tensor.shape(),
            )
        })
        .collect();
    bind_inputs(&model.graph, &described).map_err(|err| {
        let message = err.to_string();
        with_input_context(message, input_name(&err), inputs)
    })
}

fn input_name(err: &InputError) -> Option<&str> {
    match err {
        InputError::Missing { name, .. }
        | InputError::Unknown { name, .. }
        | InputError::Mismatch { name, .. } => Some(name),
    }
}

/// `message`, plus the file the named input came from, or how to give a missing one.
fn with_input_context(
    mut message: String,
    input: Option<&str>,
    inputs: &[LoadedInput],
) -> anyhow::Error {
    if let Some(name) = input {
        match inputs.iter().find(|loaded| loaded.name == name) {
            Some(LoadedInput {
                path: Some(path), ..
            }) => message.push_str(&format!(" (from `{}`)", path.display())),
            Some(_) => {}
            None => message.push_str(&format!(
                "; give it with `--input {name}=FILE` or `--inputs DIR`"
            )),
        }
    }
    anyhow::anyhow!(message)
}
