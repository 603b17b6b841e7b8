//! sinter's Cranelift backend: compiles a loop-IR [`Program`](sinter_loops::Program) to native code
//! and runs it.
//!
//! - [`codegen`]: one verified [`Kernel`](sinter_loops::Kernel) becomes one Cranelift function with
//!   the ABI `extern "C" fn(args: *const *mut u8, begin: i64, end: i64) -> i32`; `codegen::math`
//!   holds the inline f32 exp/log/tanh/sigmoid/erf.
//! - [`runtime`]: [`CompiledProgram`] verifies, plans memory ([`plan_memory`]), compiles every kernel
//!   into one JIT module, and runs the program on validated inputs, from any number of threads.
//!
//! ```
//! use sinter_ir::{DType, Tensor};
//! use sinter_jit::{CompiledProgram, JitOptions};
//! use sinter_loops::*;
//!
//! // y = relu(x) over 6 elements, as a one-kernel program.
//! let mut kb = KernelBuilder::new("relu", vec!["%1".into()]);
//! let x = kb.buffer("x", DType::F32, 6, BufferRole::Input);
//! let y = kb.buffer("y", DType::F32, 6, BufferRole::Output);
//! kb.loop_(6, |kb, i| {
//!     kb.store(y, Index::var(i), Expr::max(Expr::load(x, Index::var(i)), Expr::f32(0.0)));
//! });
//! let buffer = |name: &str, source| ProgramBuffer {
//!     name: name.into(), dtype: DType::F32, shape: vec![6], source,
//! };
//! let program = Program {
//!     buffers: vec![
//!         buffer("x", BufferSource::Input { name: "x".into() }),
//!         buffer("y", BufferSource::Computed),
//!     ],
//!     calls: vec![KernelCall { kernel: kb.finish(), args: vec![ProgramBufferId(0), ProgramBufferId(1)] }],
//!     outputs: vec![("y".into(), ProgramBufferId(1))],
//! };
//! let compiled = CompiledProgram::compile(program, &JitOptions::default()).unwrap();
//! let input = Tensor::from_vec(vec![6], vec![-2.0f32, -1.0, 0.0, 1.0, 2.0, f32::NAN]).unwrap();
//! let outputs = compiled.run(&[("x", &input)]).unwrap();
//! let y = outputs[0].1.as_slice::<f32>().unwrap();
//! assert_eq!(&y[..5], &[0.0, 0.0, 0.0, 1.0, 2.0]);
//! assert!(y[5].is_nan()); // max propagates NaN
//! ```

pub mod codegen;
pub mod model;
pub mod runtime;

pub use codegen::module::{KernelDump, KernelFn};
pub use codegen::CodegenError;
pub use model::{compile, CompileOptions, CompiledModel, ModelError};
pub use runtime::memory::{plan_memory, MemoryPlan, PlanError, ARENA_ALIGN};
pub use runtime::{CompiledProgram, InputSpec, JitError, JitOptions};
