//! sinter's loop-nest IR: the stage between the graph IR and machine code.
//!
//! Each graph op (or fused group of ops) is lowered to a [`Kernel`]: counted loops over flat buffers
//! with affine indices (`ir.rs`). A [`Program`] is a whole graph as kernels in execution order plus the
//! buffers that connect them (`program.rs`); `sinter-jit` compiles a program to native code.
//!
//! Kernels are small and explicit on purpose: every access can be proved in bounds from the loop
//! extents alone, which is what lets the JIT emit unchecked loads and stores.

pub mod builder;
pub mod ir;
pub mod program;

pub use builder::{row_major_strides, KernelBuilder};
pub use ir::*;
pub use program::*;
pub mod interp;
pub mod lower;
pub mod schedule;
pub mod text;
pub mod verify;
