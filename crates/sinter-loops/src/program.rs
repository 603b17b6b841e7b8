//! A lowered graph: kernels in execution order, and the buffers that connect them.
//!
//! This is the contract between lowering (`lower/`) and code generation (`sinter-jit`). Every tensor
//! the program touches is a [`ProgramBuffer`]: a graph input, a constant, an intermediate value, a graph
//! output, or a kernel's scratch space. A [`KernelCall`] binds each buffer parameter of its kernel to
//! one program buffer, in the order of [`Kernel::buffers`].
//!
//! **Invariant: bindings agree with declarations.** `args[i]` of a call has exactly the dtype and
//! element count of `kernel.buffers[i]`; [`Program::check_bindings`] verifies this, and code generation
//! relies on it (a kernel's accesses were proved in bounds against the declared length).
//!
//! Views that do not move data (Reshape, Flatten, Squeeze, Unsqueeze, Identity) produce no kernel:
//! lowering binds the output value to the input's buffer.

use crate::ir::{BufferRole, Kernel};
use sinter_ir::{DType, Tensor};
use std::fmt;

/// A buffer of the program, by position in [`Program::buffers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProgramBufferId(pub u32);

impl fmt::Display for ProgramBufferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "B{}", self.0)
    }
}

/// Where a program buffer's contents come from.
#[derive(Clone, Debug, PartialEq)]
pub enum BufferSource {
    /// The graph input of this name; the runtime checks the caller's tensor against `shape`.
    Input { name: String },
    /// A graph constant, bound once.
    Weight(Tensor),
    /// Written by a kernel of the program (intermediates, outputs, scratch).
    Computed,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProgramBuffer {
    /// The graph value it holds (`%3`, `@fc.weight`, `x`) or `scratch.<kernel>`, for dumps.
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub source: BufferSource,
}

impl ProgramBuffer {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct KernelCall {
    pub kernel: Kernel,
    /// `args[i]` is bound to `kernel.buffers[i]`.
    pub args: Vec<ProgramBufferId>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub buffers: Vec<ProgramBuffer>,
    /// In execution order: every buffer a call reads is a graph input, a weight, or written by an
    /// earlier call.
    pub calls: Vec<KernelCall>,
    /// The graph's outputs, in order, with the buffer holding each.
    pub outputs: Vec<(String, ProgramBufferId)>,
}

/// A call whose bindings disagree with its kernel's declarations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("kernel `{kernel}` parameter {param_idx} ({param}) is bound to {buffer}: {reason}")]
pub struct BindingError {
    pub kernel: String,
    pub param_idx: usize,
    pub param: String,
    pub buffer: String,
    pub reason: String,
}

impl Program {
    pub fn buffer(&self, id: ProgramBufferId) -> &ProgramBuffer {
        &self.buffers[id.0 as usize]
    }

    /// Checks that every call binds each kernel parameter to a buffer of the declared dtype and
    /// length, and that no call writes a graph input or a weight.
    pub fn check_bindings(&self) -> Result<(), BindingError> {
        for call in &self.calls {
            let kernel = &call.kernel;
            if call.args.len() != kernel.buffers.len() {
                return Err(BindingError {
                    kernel: kernel.name.clone(),
                    param_idx: call.args.len().min(kernel.buffers.len()),
                    param: "<arity>".into(),
                    buffer: "<arity>".into(),
                    reason: format!(
                        "{} arguments for {} parameters",
                        call.args.len(),
                        kernel.buffers.len()
                    ),
                });
            }
            for (param_idx, (decl, &arg)) in kernel.buffers.iter().zip(&call.args).enumerate() {
                let err = |reason: String| BindingError {
                    kernel: kernel.name.clone(),
                    param_idx,
                    param: decl.name.clone(),
                    buffer: arg.to_string(),
                    reason,
                };
                let Some(buffer) = self.buffers.get(arg.0 as usize) else {
                    return Err(err("no such program buffer".into()));
                };
                if buffer.dtype != decl.dtype || buffer.len() != decl.len {
                    return Err(err(format!(
                        "declared {} x{}, buffer is {} x{}",
                        decl.dtype,
                        decl.len,
                        buffer.dtype,
                        buffer.len()
                    )));
                }
                let writes = matches!(decl.role, BufferRole::Output | BufferRole::Scratch);
                if writes && !matches!(buffer.source, BufferSource::Computed) {
                    return Err(err("a kernel may not write a graph input or weight".into()));
                }
            }
        }
        Ok(())
    }
}
