//! Compiling a graph: the whole pipeline from graph IR to a runnable model, with one compiled
//! program per concrete input shape.
//!
//! [`CompiledModel::new`] verifies the graph. A graph whose inputs are all static is compiled at
//! once, so compile errors (an op without a lowering) surface there; one with symbolic dims
//! (`batch`) is compiled on first use for each binding of its symbols and cached, so a model serving
//! batches of 1 and 8 holds two programs. The pipeline for one binding is: [`sinter_ir::specialize`]
//! (every dim static), [`sinter_loops::lower::lower_graph`], [`schedule_kernel`] on every kernel, and
//! [`CompiledProgram::compile`] (verify, plan memory, generate code).
//!
//! **Invariant: inputs are checked before generated code runs.** [`CompiledModel::run`] binds the
//! inputs with [`sinter_ir::bind_inputs`] (names, dtypes, ranks, static dims, consistent symbols)
//! before it looks up or compiles a program, and the program checks the exact shapes again.

use crate::{CompiledProgram, JitError, JitOptions};
use sinter_ir::{bind_inputs, specialize, DimBindings, Graph, InputError, SpecializeError, Tensor};
use sinter_loops::lower::{lower_graph, LowerError};
use sinter_loops::schedule::{schedule_kernel, ScheduleError, ScheduleOptions};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// How to compile a model.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Threads for parallel kernels; `None` uses every core.
    pub threads: Option<usize>,
    /// Vector width, parallel loops and unrolling. `parallel` is forced off when `threads` is 1.
    pub schedule: ScheduleOptions,
    /// Keep the CLIF and disassembly of every kernel (for `sinter dump --stage clif|asm`).
    pub dumps: bool,
    /// Run the graph optimizer (`sinter-opt`) before lowering; `None` compiles the graph as given
    /// (`--no-opt`).
    pub optimize: Option<sinter_opt::OptimizeOptions>,
}

impl Default for CompileOptions {
    fn default() -> CompileOptions {
        CompileOptions {
            threads: None,
            schedule: ScheduleOptions {
                parallel: true,
                ..ScheduleOptions::default()
            },
            dumps: false,
            optimize: Some(sinter_opt::OptimizeOptions::default()),
        }
    }
}

impl CompileOptions {
    fn jit_options(&self) -> JitOptions {
        let defaults = JitOptions::default();
        JitOptions {
            threads: self.threads.unwrap_or(defaults.threads).max(1),
            dumps: self.dumps,
        }
    }

    fn schedule_options(&self) -> ScheduleOptions {
        ScheduleOptions {
            parallel: self.schedule.parallel && self.jit_options().threads > 1,
            ..self.schedule
        }
    }
}

/// Why a graph could not be compiled or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the graph is not valid:{}", .0.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
    InvalidGraph(Vec<sinter_ir::VerifyError>),
    #[error("the graph optimizer failed: {0}")]
    Optimize(sinter_opt::OptError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Specialize(#[from] SpecializeError),
    #[error(transparent)]
    Lower(#[from] LowerError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Jit(#[from] JitError),
}

/// A graph ready to run on the JIT. `Send + Sync`: share it between threads with an `Arc`.
pub struct CompiledModel {
    graph: Graph,
    options: CompileOptions,
    /// One program per binding of the graph's symbolic dims (the empty binding for static graphs).
    /// Runs only read it; a new binding is compiled outside the lock, so compiling one shape never
    /// blocks runs of the shapes already compiled.
    programs: RwLock<BTreeMap<DimBindings, Arc<CompiledProgram>>>,
}

/// Compiles `graph` for the JIT; see [`CompiledModel`].
pub fn compile(graph: Graph, options: &CompileOptions) -> Result<CompiledModel, ModelError> {
    CompiledModel::new(graph, options)
}

impl CompiledModel {
    /// Verifies `graph` and, when all its inputs are static, compiles it.
    pub fn new(graph: Graph, options: &CompileOptions) -> Result<CompiledModel, ModelError> {
        sinter_ir::verify(&graph).map_err(ModelError::InvalidGraph)?;
        let graph = match &options.optimize {
            Some(opt) => {
                sinter_opt::optimize(graph, opt)
                    .map_err(ModelError::Optimize)?
                    .graph
            }
            None => graph,
        };
        let model = CompiledModel {
            graph,
            options: options.clone(),
            programs: RwLock::new(BTreeMap::new()),
        };
        let all_static = model
            .graph
            .input_signature()
            .iter()
            .all(|(_, ty)| ty.shape.as_static().is_some());
        if all_static {
            model.program_for(&DimBindings::default())?;
        }
        Ok(model)
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Runs the model. Inputs are checked against the graph's signature before anything runs.
    pub fn run(&self, inputs: &[(&str, &Tensor)]) -> Result<Vec<(String, Tensor)>, ModelError> {
        let described: Vec<(&str, sinter_ir::DType, &[usize])> = inputs
            .iter()
            .map(|(name, tensor)| (*name, tensor.dtype(), tensor.shape()))
            .collect();
        let bindings = bind_inputs(&self.graph, &described)?;
        let program = self.program_for(&bindings)?;
        Ok(program.run(inputs)?)
    }

    /// The compiled program for one binding of the symbolic dims, compiling it on first use. Two
    /// threads that meet a new binding at once may both compile it; the first to finish is kept.
    pub fn program_for(&self, bindings: &DimBindings) -> Result<Arc<CompiledProgram>, ModelError> {
        // A panic while holding the lock cannot leave the map half-updated (insertion is the only
        // mutation), so a poisoned lock is still safe to use.
        let cached = self
            .programs
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(bindings)
            .cloned();
        if let Some(program) = cached {
            return Ok(program);
        }
        let compiled = Arc::new(self.compile_program(bindings)?);
        let mut programs = self
            .programs
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(Arc::clone(
            programs.entry(bindings.clone()).or_insert(compiled),
        ))
    }

    /// How many programs (input-shape specialisations) have been compiled.
    pub fn n_compiled_programs(&self) -> usize {
        self.programs
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    fn compile_program(&self, bindings: &DimBindings) -> Result<CompiledProgram, ModelError> {
        let graph = specialize(&self.graph, bindings)?;
        let mut program = lower_graph(&graph)?;
        let schedule = self.options.schedule_options();
        for call in &mut program.calls {
            call.kernel = schedule_kernel(&call.kernel, &schedule)?;
        }
        Ok(CompiledProgram::compile(
            program,
            &self.options.jit_options(),
        )?)
    }
}
