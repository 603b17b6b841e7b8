//! Shared test helpers: wrap one kernel into a program and run it through the JIT.
#![allow(dead_code)]

use sinter_ir::{DType, Tensor};
use sinter_jit::{CompiledProgram, JitError, JitOptions};
use sinter_loops::*;

/// A program with one call of `kernel`: input buffers become program inputs and output buffers
/// program outputs (named like the buffers), weights are taken from `weights` by name.
pub fn program_of(kernel: Kernel, weights: &[(&str, Tensor)]) -> Program {
    let mut buffers = Vec::new();
    let mut outputs = Vec::new();
    for (idx, decl) in kernel.buffers.iter().enumerate() {
        let source = match decl.role {
            BufferRole::Input => BufferSource::Input {
                name: decl.name.clone(),
            },
            BufferRole::Weight => {
                let tensor = weights
                    .iter()
                    .find(|(name, _)| *name == decl.name)
                    .unwrap_or_else(|| panic!("no weight {}", decl.name))
                    .1
                    .clone();
                BufferSource::Weight(tensor.reshaped(vec![decl.len]).unwrap())
            }
            BufferRole::Output | BufferRole::Scratch => BufferSource::Computed,
        };
        if decl.role == BufferRole::Output {
            outputs.push((decl.name.clone(), ProgramBufferId(idx as u32)));
        }
        buffers.push(ProgramBuffer {
            name: decl.name.clone(),
            dtype: decl.dtype,
            shape: vec![decl.len],
            source,
        });
    }
    let args = (0..buffers.len() as u32).map(ProgramBufferId).collect();
    Program {
        buffers,
        calls: vec![KernelCall { kernel, args }],
        outputs,
    }
}

pub fn compile(kernel: Kernel) -> CompiledProgram {
    compile_with(kernel, 1)
}

pub fn compile_with(kernel: Kernel, threads: usize) -> CompiledProgram {
    CompiledProgram::compile(
        program_of(kernel, &[]),
        &JitOptions {
            threads,
            dumps: false,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a compiled one-kernel program; inputs by name, outputs in buffer order.
pub fn run(compiled: &CompiledProgram, inputs: &[(&str, Tensor)]) -> Result<Vec<Tensor>, JitError> {
    let refs: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (*n, t)).collect();
    compiled
        .run(&refs)
        .map(|outs| outs.into_iter().map(|(_, t)| t).collect())
}

/// Compiles and runs `kernel` once.
pub fn run1(kernel: Kernel, inputs: &[(&str, Tensor)]) -> Vec<Tensor> {
    run(&compile(kernel), inputs).unwrap_or_else(|e| panic!("{e}"))
}

pub fn t<T: sinter_ir::Elem>(data: Vec<T>) -> Tensor {
    Tensor::from_vec(vec![data.len()], data).unwrap()
}

pub fn vals<T: sinter_ir::Elem>(t: &Tensor) -> Vec<T> {
    t.as_slice::<T>().unwrap().to_vec()
}

/// An elementwise kernel `out[i] = f(a[i], b[i])` over `n` elements.
pub fn binary_kernel(
    n: usize,
    in_dtype: DType,
    out_dtype: DType,
    f: impl Fn(Expr, Expr) -> Expr,
    kind: LoopKind,
) -> Kernel {
    let mut kb = KernelBuilder::new("binary", vec!["%0".into()]);
    let a = kb.buffer("a", in_dtype, n, BufferRole::Input);
    let b = kb.buffer("b", in_dtype, n, BufferRole::Input);
    let out = kb.buffer("out", out_dtype, n, BufferRole::Output);
    kb.loop_(n, |kb, i| {
        let value = f(Expr::load(a, Index::var(i)), Expr::load(b, Index::var(i)));
        kb.store(out, Index::var(i), value);
    });
    let mut kernel = kb.finish();
    set_kind(&mut kernel.body, kind);
    kernel
}

/// An elementwise kernel `out[i] = f(a[i])`.
pub fn unary_kernel(
    n: usize,
    in_dtype: DType,
    out_dtype: DType,
    f: impl Fn(Expr) -> Expr,
    kind: LoopKind,
) -> Kernel {
    let mut kb = KernelBuilder::new("unary", vec!["%0".into()]);
    let a = kb.buffer("a", in_dtype, n, BufferRole::Input);
    let out = kb.buffer("out", out_dtype, n, BufferRole::Output);
    kb.loop_(n, |kb, i| {
        kb.store(out, Index::var(i), f(Expr::load(a, Index::var(i))));
    });
    let mut kernel = kb.finish();
    set_kind(&mut kernel.body, kind);
    kernel
}

/// Sets the kind of the outermost loop of `body`.
pub fn set_kind(body: &mut [Stmt], kind: LoopKind) {
    if let Some(Stmt::Loop(l)) = body.first_mut() {
        l.kind = kind;
    }
}

pub const VEC4: LoopKind = LoopKind::Vectorized { width: 4 };

/// Bitwise float equality that treats every NaN as equal.
pub fn same_f32(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

pub fn same_f64(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// Interesting f32 values: signed zeros, infinities, NaN, subnormals, extremes, halves.
pub fn special_f32() -> Vec<f32> {
    vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -0.5,
        1.5,
        2.5,
        -2.5,
        3.7,
        -3.7,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1e-40,
        -1e-40,
        f32::MAX,
        f32::MIN,
        1e10,
        -1e10,
        3e9,
        -3e9,
        127.9,
        128.0,
        -128.5,
        255.5,
        256.0,
        300.0,
        -300.0,
        7.0,
        -7.0,
    ]
}
