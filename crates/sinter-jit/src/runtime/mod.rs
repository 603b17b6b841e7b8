//! The runtime: a compiled [`Program`] that can be run, from any number of threads at once.
//!
//! [`CompiledProgram::compile`] verifies the program (bindings, every kernel, call order) (nothing
//! unverified is ever compiled: code generation emits unchecked memory accesses), plans the arena
//! ([`plan_memory`]) and compiles all kernels into one `JITModule`.
//!
//! [`CompiledProgram::run`] **validates every input (presence, dtype, exact shape) before any
//! generated code runs**, takes an arena from a pool (or allocates one), calls the kernels in order
//! and copies the outputs out. Inputs and weights are passed to kernels in place (kernels never
//! write them: `check_bindings` guarantees it). A kernel's non-zero status becomes an error naming
//! the kernel and the graph nodes it came from.
//!
//! A kernel whose body is one `Parallel` loop has its iterations split into contiguous chunks over
//! the program's rayon thread pool. Concurrent runs are safe: each run has its own arena, and the
//! shared state (code, weights, the pool) is read-only. The JIT module is kept in a `Mutex` only
//! because `JITModule` is not `Sync`; its code is freed when the program is dropped.

pub mod memory;

use crate::codegen::module::{compile_kernels, KernelDump, KernelFn, ModuleError, ModuleOptions};
use cranelift_jit::JITModule;
use memory::{plan_memory, MemoryPlan, PlanError};
use rayon::prelude::*;
use sinter_ir::{DType, Tensor, TensorData};
use sinter_loops::verify::{verify_program, ProgramVerifyError};
use sinter_loops::{BufferSource, LoopKind, Program, Stmt, STATUS_INDEX_OUT_OF_RANGE};
use std::sync::Mutex;

/// Options of [`CompiledProgram::compile`].
#[derive(Clone, Debug)]
pub struct JitOptions {
    /// Threads for parallel kernels (1 runs everything on the calling thread).
    pub threads: usize,
    /// Keep the CLIF (before and after optimisation) and disassembly of every kernel.
    pub dumps: bool,
}

impl Default for JitOptions {
    /// All cores, no dumps.
    fn default() -> Self {
        JitOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            dumps: false,
        }
    }
}

/// Everything that can go wrong compiling or running a program.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("the program failed verification:{}", list_problems(.problems))]
    Verify { problems: Vec<ProgramVerifyError> },
    #[error("invalid program: {0}")]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Module(#[from] ModuleError),
    #[error("creating the thread pool failed: {0}")]
    ThreadPool(String),
    #[error("input `{name}` is missing (expected {dtype} {shape:?})")]
    MissingInput {
        name: String,
        dtype: DType,
        shape: Vec<usize>,
    },
    #[error("`{name}` is not an input of this program (inputs: {known})")]
    UnknownInput { name: String, known: String },
    #[error("input `{name}` is given twice")]
    DuplicateInput { name: String },
    #[error("input `{name}` has dtype {actual}, expected {expected}")]
    InputDType {
        name: String,
        expected: DType,
        actual: DType,
    },
    #[error("input `{name}` has shape {actual:?}, expected {expected:?}")]
    InputShape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("kernel `{kernel}` (from {origins}) failed at run time: {reason}")]
    Kernel {
        kernel: String,
        origins: String,
        status: i32,
        reason: String,
    },
}

/// Where a kernel argument points at run time.
#[derive(Clone, Copy, Debug)]
enum ArgSource {
    /// An offset in the run's arena.
    Arena(usize),
    /// The caller's tensor for program input `input_idx` (in `CompiledProgram::inputs` order).
    Input(usize),
    /// The weight tensor of program buffer `buffer_idx`.
    Weight(usize),
}

struct CompiledCall {
    function: KernelFn,
    args: Vec<ArgSource>,
    /// The extent of the kernel's top-level parallel loop, if it has one.
    parallel_extent: Option<usize>,
    /// [`sinter_loops::Kernel::work`]: small kernels run on the calling thread even when they
    /// could be split, because handing chunks to the pool costs more than they do.
    work: u64,
}

/// One graph input: its name, buffer and the exact type the caller must pass.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    buffer_idx: usize,
}

/// A 64-byte-aligned chunk; arenas are vectors of these so every offset of the plan is aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct ArenaChunk([u8; memory::ARENA_ALIGN]);

/// A compiled program, ready to run. `Send + Sync`: share it between threads with an `Arc`.
pub struct CompiledProgram {
    program: Program,
    calls: Vec<CompiledCall>,
    inputs: Vec<InputSpec>,
    plan: MemoryPlan,
    dumps: Vec<KernelDump>,
    pool: Option<rayon::ThreadPool>,
    arenas: Mutex<Vec<Vec<ArenaChunk>>>,
    module: Mutex<Option<JITModule>>,
}

/// Base pointers of one call's arguments, handed to worker threads. The pointers stay valid for the
/// whole call: the arena and the input tensors outlive it, and parallel iterations write disjoint
/// elements (a schedule invariant).
#[derive(Clone, Copy)]
struct SharedArgs(*const *mut u8);
// SAFETY: see the type's docs; the pointee array is only read.
unsafe impl Send for SharedArgs {}
unsafe impl Sync for SharedArgs {}

/// The least [`sinter_loops::Kernel::work`] worth one chunk of a parallel loop: about 256K
/// element operations (tens of microseconds). Measured on the small CNN fixtures: with 64K, kernels
/// of a few hundred microseconds were split and two threads ran them 0.54-0.72x as fast as one
/// (waking pool threads costs more than the chunk); with 256K they stay on the calling thread, while
/// GEMM 512 and the full-size ResNet-18 still split.
const MIN_CHUNK_WORK: u64 = 1 << 18;

/// The top-level parallel loop of a kernel body, as the code generator recognises it.
fn parallel_extent(body: &[Stmt]) -> Option<usize> {
    match body {
        [Stmt::Loop(l)] if l.kind == LoopKind::Parallel => Some(l.extent),
        _ => None,
    }
}

fn list_problems(problems: &[ProgramVerifyError]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

impl CompiledProgram {
    /// Verifies and compiles `program`.
    pub fn compile(program: Program, options: &JitOptions) -> Result<CompiledProgram, JitError> {
        // The gate: bindings, every kernel, read-before-write. Code generation trusts all of it.
        verify_program(&program).map_err(|problems| JitError::Verify { problems })?;
        let plan = plan_memory(&program)?;

        let mut inputs: Vec<InputSpec> = Vec::new();
        for (buffer_idx, buffer) in program.buffers.iter().enumerate() {
            if let BufferSource::Input { name } = &buffer.source {
                inputs.push(InputSpec {
                    name: name.clone(),
                    dtype: buffer.dtype,
                    shape: buffer.shape.clone(),
                    buffer_idx,
                });
            }
        }

        let kernels: Vec<&sinter_loops::Kernel> =
            program.calls.iter().map(|call| &call.kernel).collect();
        let compiled = compile_kernels(
            &kernels,
            ModuleOptions {
                dumps: options.dumps,
            },
        )?;
        let calls = program
            .calls
            .iter()
            .zip(&compiled.functions)
            .map(|(call, &function)| CompiledCall {
                function,
                args: call
                    .args
                    .iter()
                    .map(|arg| {
                        let idx = arg.0 as usize;
                        match &program.buffers[idx].source {
                            BufferSource::Computed => ArgSource::Arena(
                                plan.offsets[idx].expect("every touched computed buffer is placed"),
                            ),
                            BufferSource::Weight(_) => ArgSource::Weight(idx),
                            BufferSource::Input { .. } => ArgSource::Input(
                                inputs
                                    .iter()
                                    .position(|spec| spec.buffer_idx == idx)
                                    .expect("every input buffer has a spec"),
                            ),
                        }
                    })
                    .collect(),
                parallel_extent: parallel_extent(&call.kernel.body),
                work: call.kernel.work(),
            })
            .collect();

        let pool = if options.threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(options.threads)
                    .thread_name(|idx| format!("sinter-jit-{idx}"))
                    .build()
                    .map_err(|e| JitError::ThreadPool(e.to_string()))?,
            )
        } else {
            None
        };

        Ok(CompiledProgram {
            program,
            calls,
            inputs,
            plan,
            dumps: compiled.dumps,
            pool,
            arenas: Mutex::new(Vec::new()),
            module: Mutex::new(Some(compiled.module)),
        })
    }

    /// The inputs `run` expects, in program buffer order.
    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// The memory plan (arena offsets, live ranges, `peak_bytes`).
    pub fn memory_plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// The program this was compiled from.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Per kernel, in call order: CLIF before and after optimisation and the disassembly. Empty
    /// unless compiled with `JitOptions::dumps`.
    pub fn dumps(&self) -> &[KernelDump] {
        &self.dumps
    }

    /// The dump of the first kernel named `name`.
    pub fn dump(&self, name: &str) -> Option<&KernelDump> {
        self.dumps.iter().find(|d| d.name == name)
    }

    /// Checks every input before anything runs; returns the caller's tensors in `inputs` order.
    fn bind_inputs<'t>(&self, given: &[(&str, &'t Tensor)]) -> Result<Vec<&'t Tensor>, JitError> {
        let mut bound: Vec<Option<&Tensor>> = vec![None; self.inputs.len()];
        for &(name, tensor) in given {
            let Some(idx) = self.inputs.iter().position(|spec| spec.name == name) else {
                return Err(JitError::UnknownInput {
                    name: name.to_string(),
                    known: self
                        .inputs
                        .iter()
                        .map(|spec| spec.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            if bound[idx].is_some() {
                return Err(JitError::DuplicateInput {
                    name: name.to_string(),
                });
            }
            let spec = &self.inputs[idx];
            if tensor.dtype() != spec.dtype {
                return Err(JitError::InputDType {
                    name: name.to_string(),
                    expected: spec.dtype,
                    actual: tensor.dtype(),
                });
            }
            if tensor.shape() != spec.shape.as_slice() {
                return Err(JitError::InputShape {
                    name: name.to_string(),
                    expected: spec.shape.clone(),
                    actual: tensor.shape().to_vec(),
                });
            }
            bound[idx] = Some(tensor);
        }
        bound
            .into_iter()
            .zip(&self.inputs)
            .map(|(tensor, spec)| {
                tensor.ok_or_else(|| JitError::MissingInput {
                    name: spec.name.clone(),
                    dtype: spec.dtype,
                    shape: spec.shape.clone(),
                })
            })
            .collect()
    }

    /// Runs the program on `inputs` (by name) and returns the outputs, in program order.
    pub fn run(&self, inputs: &[(&str, &Tensor)]) -> Result<Vec<(String, Tensor)>, JitError> {
        let inputs = self.bind_inputs(inputs)?;
        let n_chunks = self.plan.peak_bytes.div_ceil(memory::ARENA_ALIGN);
        let mut arena = self
            .arenas
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()
            .unwrap_or_else(|| vec![ArenaChunk([0; memory::ARENA_ALIGN]); n_chunks]);
        let result = self.run_in(&mut arena, &inputs);
        self.arenas
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(arena);
        result
    }

    fn run_in(
        &self,
        arena: &mut [ArenaChunk],
        inputs: &[&Tensor],
    ) -> Result<Vec<(String, Tensor)>, JitError> {
        let arena_base = arena.as_mut_ptr() as *mut u8;
        let mut args: Vec<*mut u8> = Vec::new();
        for (call, compiled) in self.program.calls.iter().zip(&self.calls) {
            args.clear();
            for source in &compiled.args {
                args.push(match *source {
                    // SAFETY: the plan placed the buffer inside the arena, which has peak_bytes.
                    ArgSource::Arena(offset) => unsafe { arena_base.add(offset) },
                    ArgSource::Input(idx) => data_ptr(inputs[idx].data()),
                    ArgSource::Weight(idx) => match &self.program.buffers[idx].source {
                        BufferSource::Weight(tensor) => data_ptr(tensor.data()),
                        _ => unreachable!("ArgSource::Weight is built from weight buffers"),
                    },
                });
            }
            let status = self.call_kernel(compiled, SharedArgs(args.as_ptr()));
            if status != 0 {
                let reason = if status == STATUS_INDEX_OUT_OF_RANGE {
                    "a data-dependent index (e.g. a Gather index) is out of range".to_string()
                } else {
                    format!("status {status}")
                };
                return Err(JitError::Kernel {
                    kernel: call.kernel.name.clone(),
                    origins: call.kernel.origins.join(", "),
                    status,
                    reason,
                });
            }
        }
        let arena_bytes: &[u8] = {
            let len = std::mem::size_of_val(arena);
            // SAFETY: ArenaChunk is plain bytes; the slice covers exactly the arena.
            unsafe { std::slice::from_raw_parts(arena.as_ptr() as *const u8, len) }
        };
        let outputs = self
            .program
            .outputs
            .iter()
            .map(|(name, id)| {
                let buffer = self.program.buffer(*id);
                let tensor = match &buffer.source {
                    BufferSource::Weight(tensor) => tensor.clone(),
                    BufferSource::Input { .. } => {
                        let idx = self
                            .inputs
                            .iter()
                            .position(|spec| spec.buffer_idx == id.0 as usize)
                            .expect("every input buffer has a spec");
                        inputs[idx].clone()
                    }
                    BufferSource::Computed => {
                        let offset = self.plan.offsets[id.0 as usize].expect("outputs are placed");
                        let n_bytes = buffer.len() * buffer.dtype.size_bytes();
                        let data = TensorData::from_le_bytes(
                            buffer.dtype,
                            &arena_bytes[offset..offset + n_bytes],
                        )
                        .expect("the byte count is a whole number of elements");
                        Tensor::new(buffer.shape.clone(), data)
                            .expect("the buffer length is the shape's element count")
                    }
                };
                (name.clone(), tensor)
            })
            .collect();
        Ok(outputs)
    }

    fn call_kernel(&self, call: &CompiledCall, args: SharedArgs) -> i32 {
        let function = call.function;
        let run = move |begin: usize, end: usize| {
            let args = args;
            // SAFETY: `args` holds one valid base pointer per kernel parameter, each bound to a
            // buffer of the declared dtype and length (checked at compile time), and the kernel
            // was verified, so every access it makes is in bounds.
            unsafe { function(args.0, begin as i64, end as i64) }
        };
        match (call.parallel_extent, &self.pool) {
            (Some(extent), Some(pool)) if extent > 1 && call.work >= 2 * MIN_CHUNK_WORK => {
                let n_chunks = extent
                    .min(pool.current_num_threads() * 4)
                    .min((call.work / MIN_CHUNK_WORK) as usize);
                pool.install(|| {
                    (0..n_chunks)
                        .into_par_iter()
                        .map(|chunk_idx| {
                            run(
                                extent * chunk_idx / n_chunks,
                                extent * (chunk_idx + 1) / n_chunks,
                            )
                        })
                        .find_any(|&status| status != 0)
                        .unwrap_or(0)
                })
            }
            (Some(extent), _) => run(0, extent),
            (None, _) => run(0, 0),
        }
    }
}

impl std::fmt::Debug for CompiledProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledProgram")
            .field(
                "kernels",
                &self
                    .program
                    .calls
                    .iter()
                    .map(|c| c.kernel.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("inputs", &self.inputs)
            .field("peak_bytes", &self.plan.peak_bytes)
            .finish_non_exhaustive()
    }
}

fn data_ptr(data: &TensorData) -> *mut u8 {
    sinter_ir::with_data!(data, v => v.as_ptr() as *mut u8)
}

impl Drop for CompiledProgram {
    fn drop(&mut self) {
        let module = self
            .module
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(module) = module {
            // SAFETY: `&mut self` means no run is in progress, and the function pointers die with
            // `self.calls`.
            unsafe { module.free_memory() };
        }
    }
}
