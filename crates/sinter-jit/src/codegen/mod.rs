//! Code generation: one verified loop-IR [`Kernel`] becomes one Cranelift function.
//!
//! Every kernel compiles to the ABI
//! `extern "C" fn(args: *const *mut u8, begin: i64, end: i64) -> i32`, where `args[i]` is the base
//! pointer of `kernel.buffers[i]`. When the body is a single `Parallel` loop, the function runs the
//! iterations `begin..end` of it (clamped to the loop's extent), so the runtime can split the range
//! over threads; otherwise `begin`/`end` are ignored. The result is 0, or
//! [`STATUS_INDEX_OUT_OF_RANGE`] when a data-dependent index was out of range.
//!
//! **Invariant: only verified kernels get here.** The verifier proved every affine index in bounds,
//! so loads and stores are emitted with `notrap` flags (and `readonly` for buffers the kernel does not
//! write). A data-dependent index term is normalised and range-checked in the generated code, which
//! branches to a block returning the status before any access that uses it.
//!
//! Values: loop variables are i64; F32/F64/I64/I32 map to the CLIF types of the same name, I8, U8
//! and Bool to `i8` (Bool is 0 or 1). Locals are `cranelift_frontend` variables.
//!
//! Vectorized loops (`LoopKind::Vectorized { width: 4 }` over `v`) are emitted twice: a main loop
//! stepping by 4 whose body computes every value that depends on `v` as a vector (F32 as `f32x4`,
//! Bool as an `i32x4` lane mask of all-ones/zero), and a scalar tail for `extent % 4`. Loads with
//! coefficient 1 on `v` are vector loads, coefficient 0 stays scalar and is splatted where it meets a
//! vector. Locals declared inside the loop are vector variables in the main body. The legality rules
//! are the verifier's; codegen still returns an error (never panics) if a kernel breaks them.

mod expr;
pub(crate) mod helpers;
pub mod math;
pub mod module;
mod tile;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4, F64, I32, I32X4, I64, I8};
use cranelift_codegen::ir::{
    AbiParam, Block, ExtFuncData, ExternalName, FuncRef, InstBuilder, MemFlagsData, Signature,
    Type, UserExternalName, Value,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use sinter_ir::DType;
use sinter_loops::{
    BufferId, BufferRole, Index, Kernel, LoopKind, LoopVar, Stmt, STATUS_INDEX_OUT_OF_RANGE,
};
use std::collections::HashMap;

pub use helpers::sigmoid_f64;

/// The vector width of `LoopKind::Vectorized` loops this backend supports: Cranelift's x64 backend
/// lowers only 128-bit vectors.
pub const VECTOR_WIDTH: u32 = 4;

/// A kernel the code generator cannot compile (it breaks a rule the verifier should have enforced).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot generate code for kernel `{kernel}`: {reason}")]
pub struct CodegenError {
    pub kernel: String,
    pub reason: String,
}

/// What the code generator needs from its surroundings: target features and the helper functions
/// declared in the module (name -> function index in the module and signature).
pub(crate) struct CodegenEnv {
    /// Whether the target has FMA, so polynomial evaluation may use `fma` without libcalls.
    pub use_fma: bool,
    pub helpers: HashMap<&'static str, (u32, Signature)>,
    pub frontend_config: cranelift_codegen::isa::TargetFrontendConfig,
}

/// The signature of every kernel function, for a target with pointer type `ptr`.
pub(crate) fn kernel_signature(call_conv: cranelift_codegen::isa::CallConv) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params.push(AbiParam::new(I64));
    sig.params.push(AbiParam::new(I64));
    sig.params.push(AbiParam::new(I64));
    sig.returns.push(AbiParam::new(I32));
    sig
}

/// A value of the kernel being compiled: a scalar, or (inside a vectorized loop) four lanes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Val {
    Scalar(Value),
    Vector(Value),
}

#[derive(Clone, Copy, Debug)]
struct LocalSlot {
    var: Variable,
    vector: bool,
    /// Declared inside the vectorized loop being emitted (so it may be assigned there).
    in_vector_loop: bool,
}

/// The CLIF type of a scalar of `dtype`.
pub(crate) fn scalar_type(dtype: DType) -> Option<Type> {
    match dtype {
        DType::F32 => Some(F32),
        DType::F64 => Some(F64),
        DType::I64 => Some(I64),
        DType::I32 => Some(I32),
        DType::I8 | DType::U8 | DType::Bool => Some(I8),
        _ => None,
    }
}

/// The CLIF type of four lanes of `dtype`, for the dtypes a vectorized loop may compute.
pub(crate) fn vector_type(dtype: DType) -> Option<Type> {
    match dtype {
        DType::F32 => Some(F32X4),
        DType::Bool => Some(I32X4),
        _ => None,
    }
}

/// Builds the body of one kernel function into `builder` (whose function has [`kernel_signature`]).
pub(crate) fn build_kernel(
    builder: FunctionBuilder<'_>,
    kernel: &Kernel,
    env: &CodegenEnv,
) -> Result<(), CodegenError> {
    let mut cg = KernelCodegen::new(builder, kernel, env);
    // On error the half-built function is dropped unfinalized; the caller discards the module.
    cg.emit_function()?;
    cg.b.seal_all_blocks();
    cg.b.finalize(env.frontend_config);
    Ok(())
}

pub(crate) struct KernelCodegen<'k, 'f> {
    pub(crate) b: FunctionBuilder<'f>,
    pub(crate) kernel: &'k Kernel,
    pub(crate) env: &'k CodegenEnv,
    bases: Vec<Value>,
    loop_vals: Vec<Option<Value>>,
    locals: Vec<Option<LocalSlot>>,
    /// The loop variable of the vectorized loop whose main (4-wide) body is being emitted.
    pub(crate) vec_var: Option<LoopVar>,
    status_block: Option<Block>,
    imported: HashMap<&'static str, FuncRef>,
}

impl<'k, 'f> KernelCodegen<'k, 'f> {
    fn new(b: FunctionBuilder<'f>, kernel: &'k Kernel, env: &'k CodegenEnv) -> Self {
        KernelCodegen {
            b,
            kernel,
            env,
            bases: Vec::new(),
            loop_vals: vec![None; kernel.n_loop_vars as usize],
            locals: vec![None; kernel.locals.len()],
            vec_var: None,
            status_block: None,
            imported: HashMap::new(),
        }
    }

    pub(crate) fn err<T>(&self, reason: impl Into<String>) -> Result<T, CodegenError> {
        Err(CodegenError {
            kernel: self.kernel.name.clone(),
            reason: reason.into(),
        })
    }

    fn emit_function(&mut self) -> Result<(), CodegenError> {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.switch_to_block(entry);
        let params = self.b.block_params(entry).to_vec();
        let (args, begin, end) = (params[0], params[1], params[2]);
        // The argument array is read-only and always valid for the kernel's buffer count.
        let flags = MemFlagsData::trusted().with_readonly();
        for idx in 0..self.kernel.buffers.len() {
            let base = self.b.ins().load(I64, flags, args, (idx * 8) as i32);
            self.bases.push(base);
        }
        match self.kernel.body.as_slice() {
            [Stmt::Loop(l)] if l.kind == LoopKind::Parallel => {
                let var = self.check_loop_var(l.var)?;
                let zero = self.b.ins().iconst(I64, 0);
                let extent = self.b.ins().iconst(I64, l.extent as i64);
                let lo = self.b.ins().smax(begin, zero);
                let hi = self.b.ins().smin(end, extent);
                self.counted_loop(lo, hi, 1, |cg, i| {
                    cg.loop_vals[var] = Some(i);
                    cg.block(&l.body)
                })?;
            }
            body => self.block(body)?,
        }
        let ok = self.b.ins().iconst(I32, 0);
        self.b.ins().return_(&[ok]);
        if let Some(status) = self.status_block {
            self.b.switch_to_block(status);
            let code = self.b.ins().iconst(I32, STATUS_INDEX_OUT_OF_RANGE as i64);
            self.b.ins().return_(&[code]);
        }
        Ok(())
    }

    fn check_loop_var(&self, var: LoopVar) -> Result<usize, CodegenError> {
        if var.0 >= self.kernel.n_loop_vars {
            return self.err(format!(
                "loop variable {var} is not below n_loop_vars = {}",
                self.kernel.n_loop_vars
            ));
        }
        Ok(var.0 as usize)
    }

    /// The block every failed dynamic-index check branches to.
    fn status_block(&mut self) -> Block {
        *self
            .status_block
            .get_or_insert_with(|| self.b.create_block())
    }

    /// `iconst` of `ty` from a value whose low bits are wanted (CLIF wants narrow immediates
    /// zero-extended).
    pub(crate) fn iconst(&mut self, ty: Type, value: i64) -> Value {
        let masked = match ty.bits() {
            8 => value & 0xff,
            16 => value & 0xffff,
            32 => value & 0xffff_ffff,
            _ => value,
        };
        self.b.ins().iconst(ty, masked)
    }

    /// Emits `for i in start..end step step { body(i) }` with i64 bounds (`end - start` need not be
    /// a multiple of `step`: the loop stops when `i + step > end`... callers pass exact multiples).
    fn counted_loop(
        &mut self,
        start: Value,
        end: Value,
        step: i64,
        mut body: impl FnMut(&mut Self, Value) -> Result<(), CodegenError>,
    ) -> Result<(), CodegenError> {
        let body_block = self.b.create_block();
        let exit = self.b.create_block();
        let counter = self.b.declare_var(I64);
        self.b.def_var(counter, start);
        let enter = self.b.ins().icmp(IntCC::SignedLessThan, start, end);
        self.b.ins().brif(enter, body_block, &[], exit, &[]);
        self.b.switch_to_block(body_block);
        let i = self.b.use_var(counter);
        body(self, i)?;
        let next = self.b.ins().iadd_imm_s(i, step);
        self.b.def_var(counter, next);
        let again = self.b.ins().icmp(IntCC::SignedLessThan, next, end);
        self.b.ins().brif(again, body_block, &[], exit, &[]);
        self.b.switch_to_block(exit);
        Ok(())
    }

    fn block(&mut self, stmts: &[Stmt]) -> Result<(), CodegenError> {
        stmts.iter().try_for_each(|stmt| self.stmt(stmt))
    }

    fn stmt(&mut self, stmt: &Stmt) -> Result<(), CodegenError> {
        match stmt {
            Stmt::Loop(l) => {
                let var = self.check_loop_var(l.var)?;
                let extent = l.extent as i64;
                match l.kind {
                    LoopKind::Serial | LoopKind::Parallel => {
                        let start = self.b.ins().iconst(I64, 0);
                        let end = self.b.ins().iconst(I64, extent);
                        self.counted_loop(start, end, 1, |cg, i| {
                            cg.loop_vals[var] = Some(i);
                            cg.block(&l.body)
                        })
                    }
                    LoopKind::Unrolled { factor } => {
                        let factor = i64::from(factor.max(1));
                        let n_main = extent / factor * factor;
                        if n_main > 0 {
                            let start = self.b.ins().iconst(I64, 0);
                            let end = self.b.ins().iconst(I64, n_main);
                            self.counted_loop(start, end, factor, |cg, i| {
                                for copy_idx in 0..factor {
                                    let value = cg.b.ins().iadd_imm_s(i, copy_idx);
                                    cg.loop_vals[var] = Some(value);
                                    cg.block(&l.body)?;
                                }
                                Ok(())
                            })?;
                        }
                        self.scalar_tail(var, n_main, extent, &l.body)
                    }
                    LoopKind::Vectorized { width } => {
                        if width != VECTOR_WIDTH {
                            return self.err(format!(
                                "loop {} is vectorized by {width}; only {VECTOR_WIDTH} is supported",
                                l.var
                            ));
                        }
                        if let Some(outer) = self.vec_var {
                            return self.err(format!(
                                "vectorized loop {} is nested in vectorized loop {outer}",
                                l.var
                            ));
                        }
                        let width = i64::from(width);
                        let n_main = extent / width * width;
                        if n_main > 0 {
                            let start = self.b.ins().iconst(I64, 0);
                            let end = self.b.ins().iconst(I64, n_main);
                            self.vec_var = Some(l.var);
                            let result = self.counted_loop(start, end, width, |cg, i| {
                                cg.loop_vals[var] = Some(i);
                                cg.block(&l.body)
                            });
                            self.vec_var = None;
                            result?;
                        }
                        self.scalar_tail(var, n_main, extent, &l.body)
                    }
                }
            }
            Stmt::Let { local, init } => {
                let local_idx = self.check_local(*local)?;
                let dtype = self.kernel.locals[local_idx];
                let (value, init_dtype) = self.expr(init)?;
                if init_dtype != dtype {
                    return self.err(format!(
                        "local {local} is declared {dtype} but initialised with a {init_dtype}"
                    ));
                }
                let in_vector_loop = self.vec_var.is_some();
                let vector = in_vector_loop && vector_type(dtype).is_some();
                let (ty, value) = if vector {
                    let ty = vector_type(dtype).expect("checked above");
                    (ty, self.splat_to_lanes(value, dtype)?)
                } else {
                    let Some(ty) = scalar_type(dtype) else {
                        return self.err(format!("local {local} has unsupported dtype {dtype}"));
                    };
                    let Val::Scalar(value) = value else {
                        return self.err(format!(
                            "local {local} of dtype {dtype} is initialised with a value that \
                             depends on the vectorized loop variable"
                        ));
                    };
                    (ty, value)
                };
                let var = self.b.declare_var(ty);
                self.b.def_var(var, value);
                self.locals[local_idx] = Some(LocalSlot {
                    var,
                    vector,
                    in_vector_loop,
                });
                Ok(())
            }
            Stmt::Assign { local, value } => {
                let local_idx = self.check_local(*local)?;
                let dtype = self.kernel.locals[local_idx];
                let Some(slot) = self.locals[local_idx] else {
                    return self.err(format!("local {local} is assigned before its declaration"));
                };
                let (value, value_dtype) = self.expr(value)?;
                if value_dtype != dtype {
                    return self.err(format!(
                        "local {local} is declared {dtype} but assigned a {value_dtype}"
                    ));
                }
                if self.vec_var.is_some() && !slot.in_vector_loop {
                    return self.err(format!(
                        "local {local} is declared outside a vectorized loop and assigned inside it"
                    ));
                }
                let value = if slot.vector {
                    self.splat_to_lanes(value, dtype)?
                } else {
                    match value {
                        Val::Scalar(v) => v,
                        Val::Vector(_) => {
                            return self.err(format!(
                                "local {local} is assigned a value that depends on the vectorized \
                                 loop variable"
                            ))
                        }
                    }
                };
                self.b.def_var(slot.var, value);
                Ok(())
            }
            Stmt::Store { buf, index, value } => self.store(*buf, index, value),
            Stmt::MatTile(tile) => self.mat_tile(tile),
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                let (cond, dtype) = self.expr(cond)?;
                if dtype != DType::Bool {
                    return self.err(format!("an If condition is {dtype}, not bool"));
                }
                let Val::Scalar(cond) = cond else {
                    return self
                        .err("an If condition depends on the variable of its vectorized loop");
                };
                let then_block = self.b.create_block();
                let else_block = self.b.create_block();
                let merge = self.b.create_block();
                self.b.ins().brif(cond, then_block, &[], else_block, &[]);
                self.b.switch_to_block(then_block);
                self.block(then)?;
                self.b.ins().jump(merge, &[]);
                self.b.switch_to_block(else_block);
                self.block(otherwise)?;
                self.b.ins().jump(merge, &[]);
                self.b.switch_to_block(merge);
                Ok(())
            }
        }
    }

    fn scalar_tail(
        &mut self,
        var: usize,
        start: i64,
        end: i64,
        body: &[Stmt],
    ) -> Result<(), CodegenError> {
        if start >= end {
            return Ok(());
        }
        let start = self.b.ins().iconst(I64, start);
        let end = self.b.ins().iconst(I64, end);
        self.counted_loop(start, end, 1, |cg, i| {
            cg.loop_vals[var] = Some(i);
            cg.block(body)
        })
    }

    fn check_local(&self, local: sinter_loops::Local) -> Result<usize, CodegenError> {
        let idx = local.0 as usize;
        if idx >= self.kernel.locals.len() {
            return self.err(format!("local {local} is not declared in kernel.locals"));
        }
        Ok(idx)
    }

    pub(crate) fn local_value(
        &mut self,
        local: sinter_loops::Local,
    ) -> Result<(Val, DType), CodegenError> {
        let idx = self.check_local(local)?;
        let Some(slot) = self.locals[idx] else {
            return self.err(format!("local {local} is read before its declaration"));
        };
        let value = self.b.use_var(slot.var);
        let dtype = self.kernel.locals[idx];
        Ok((
            if slot.vector {
                Val::Vector(value)
            } else {
                Val::Scalar(value)
            },
            dtype,
        ))
    }

    pub(crate) fn loop_value(&mut self, var: LoopVar) -> Result<Value, CodegenError> {
        let idx = self.check_loop_var(var)?;
        if self.vec_var == Some(var) {
            return self.err(format!(
                "the vectorized loop variable {var} is used as a value inside its loop"
            ));
        }
        match self.loop_vals[idx] {
            Some(value) => Ok(value),
            None => self.err(format!("loop variable {var} is used outside its loop")),
        }
    }

    fn buffer(&self, buf: BufferId) -> Result<&'k sinter_loops::BufferDecl, CodegenError> {
        match self.kernel.buffers.get(buf.0 as usize) {
            Some(decl) => Ok(decl),
            None => self.err(format!("buffer {buf} is not declared")),
        }
    }

    /// The byte address of `index` in `buf`, and whether the access covers four consecutive
    /// elements (coefficient 1 on the vectorized loop variable).
    fn address(&mut self, buf: BufferId, index: &Index) -> Result<(Value, bool), CodegenError> {
        let decl = self.buffer(buf)?;
        let elem = decl.dtype.size_bytes() as i64;
        let mut vector = false;
        let mut sum = self.b.ins().iconst(I64, index.offset);
        for &(var, coeff) in &index.terms {
            if Some(var) == self.vec_var {
                match coeff {
                    0 => continue,
                    1 => vector = true,
                    _ => {
                        return self.err(format!(
                            "an access to {} has coefficient {coeff} on the vectorized loop \
                             variable {var}; only 0 or 1 can be vectorized",
                            decl.name
                        ))
                    }
                }
            }
            let idx = self.check_loop_var(var)?;
            let Some(value) = self.loop_vals[idx] else {
                return self.err(format!("loop variable {var} is used outside its loop"));
            };
            let term = self.b.ins().imul_imm_s(value, coeff);
            sum = self.b.ins().iadd(sum, term);
        }
        if let Some(dynamic) = &index.dynamic {
            let (value, dtype) = self.expr(&dynamic.value)?;
            let Val::Scalar(value) = value else {
                return self.err(format!(
                    "a data-dependent index into {} depends on the vectorized loop variable",
                    decl.name
                ));
            };
            let value = match dtype {
                DType::I64 => value,
                DType::I32 | DType::I8 => self.b.ins().sextend(I64, value),
                DType::U8 => self.b.ins().uextend(I64, value),
                _ => {
                    return self.err(format!(
                        "a data-dependent index into {} is {dtype}, not an integer",
                        decl.name
                    ))
                }
            };
            // v' = v < 0 ? v + extent : v, then one unsigned compare checks 0 <= v' < extent.
            let extent = self.b.ins().iconst(I64, dynamic.extent);
            let wrapped = self.b.ins().iadd(value, extent);
            let negative = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, value, 0);
            let normalized = self.b.ins().select(negative, wrapped, value);
            let in_range = self
                .b
                .ins()
                .icmp(IntCC::UnsignedLessThan, normalized, extent);
            let ok = self.b.create_block();
            let status = self.status_block();
            self.b.ins().brif(in_range, ok, &[], status, &[]);
            self.b.switch_to_block(ok);
            let term = self.b.ins().imul_imm_s(normalized, dynamic.stride);
            sum = self.b.ins().iadd(sum, term);
        }
        let bytes = self.b.ins().imul_imm_s(sum, elem);
        let addr = self.b.ins().iadd(self.bases[buf.0 as usize], bytes);
        Ok((addr, vector))
    }

    /// Memory flags for an access to `buf`: never trapping (the verifier proved it in bounds), and
    /// read-only for buffers this kernel does not write. Loads behind a dynamic-index check must not
    /// move above the check, so only affine loads of read-only buffers get `can_move`.
    fn mem_flags(&self, buf: BufferId, vector: bool, dynamic: bool) -> MemFlagsData {
        let mut flags = if vector {
            // Vector accesses are only element-aligned.
            MemFlagsData::new().with_notrap()
        } else {
            MemFlagsData::trusted()
        };
        let role = self.kernel.buffers[buf.0 as usize].role;
        if matches!(role, BufferRole::Input | BufferRole::Weight) {
            flags = flags.with_readonly();
            if !dynamic {
                flags = flags.with_can_move();
            }
        }
        flags
    }

    pub(crate) fn load(
        &mut self,
        buf: BufferId,
        index: &Index,
    ) -> Result<(Val, DType), CodegenError> {
        let dtype = self.buffer(buf)?.dtype;
        let (addr, vector) = self.address(buf, index)?;
        let flags = self.mem_flags(buf, vector, index.dynamic.is_some());
        let Some(ty) = scalar_type(dtype) else {
            return self.err(format!("buffer {buf} has unsupported dtype {dtype}"));
        };
        if !vector {
            return Ok((Val::Scalar(self.b.ins().load(ty, flags, addr, 0)), dtype));
        }
        match dtype {
            DType::F32 => Ok((Val::Vector(self.b.ins().load(F32X4, flags, addr, 0)), dtype)),
            DType::Bool => {
                // Four bytes 0/1 become a lane mask: lane k = -(byte k).
                let mut mask = None;
                for lane in 0..4u8 {
                    let byte = self.b.ins().load(I8, flags, addr, i32::from(lane));
                    let wide = self.b.ins().uextend(I32, byte);
                    let lane_mask = self.b.ins().ineg(wide);
                    mask = Some(match mask {
                        None => self.b.ins().splat(I32X4, lane_mask),
                        Some(m) => self.b.ins().insertlane(m, lane_mask, lane),
                    });
                }
                Ok((Val::Vector(mask.expect("four lanes")), dtype))
            }
            _ => self.err(format!(
                "a {dtype} load from {} varies with the vectorized loop variable; only f32 and \
                 bool can be vectorized",
                self.kernel.buffers[buf.0 as usize].name
            )),
        }
    }

    fn store(
        &mut self,
        buf: BufferId,
        index: &Index,
        value: &sinter_loops::Expr,
    ) -> Result<(), CodegenError> {
        let decl = self.buffer(buf)?;
        let (name, dtype, role) = (decl.name.clone(), decl.dtype, decl.role);
        if !matches!(role, BufferRole::Output | BufferRole::Scratch) {
            return self.err(format!("a store writes {name}, which is a {role:?} buffer"));
        }
        let (value, value_dtype) = self.expr(value)?;
        if value_dtype != dtype {
            return self.err(format!(
                "a {value_dtype} value is stored into {dtype} buffer {name}"
            ));
        }
        if self.vec_var.is_some() && index.coeff(self.vec_var.expect("checked")) != 1 {
            return self.err(format!(
                "a store into {name} inside a vectorized loop does not have coefficient 1 on its \
                 variable"
            ));
        }
        let (addr, vector) = self.address(buf, index)?;
        let flags = self.mem_flags(buf, vector, index.dynamic.is_some());
        if !vector {
            let Val::Scalar(value) = value else {
                return self.err(format!("a vector value is stored to one element of {name}"));
            };
            self.b.ins().store(flags, value, addr, 0);
            return Ok(());
        }
        if let (Val::Scalar(scalar), false) = (value, dtype == DType::F32) {
            // A value that does not vary with the vectorized variable, stored to four consecutive
            // elements (any dtype): four scalar stores.
            let elem = dtype.size_bytes() as i32;
            for lane in 0..4 {
                self.b.ins().store(flags, scalar, addr, lane * elem);
            }
            return Ok(());
        }
        let value = self.splat_to_lanes(value, dtype)?;
        match dtype {
            DType::F32 => {
                self.b.ins().store(flags, value, addr, 0);
            }
            DType::Bool => {
                for lane in 0..4u8 {
                    let lane_mask = self.b.ins().extractlane(value, lane);
                    let bit = self.b.ins().band_imm_s(lane_mask, 1);
                    let byte = self.b.ins().ireduce(I8, bit);
                    self.b.ins().store(flags, byte, addr, i32::from(lane));
                }
            }
            _ => {
                return self.err(format!("a {dtype} store into {name} cannot be vectorized"));
            }
        }
        Ok(())
    }

    /// A call to the helper `name` (declared in the module), imported into this function once.
    pub(crate) fn call_helper(
        &mut self,
        name: &'static str,
        args: &[Value],
    ) -> Result<Value, CodegenError> {
        let func_ref = match self.imported.get(name) {
            Some(&f) => f,
            None => {
                let Some((index, sig)) = self.env.helpers.get(name) else {
                    return self.err(format!("helper {name} is not declared in the module"));
                };
                let signature = self.b.import_signature(sig.clone());
                let name_ref = self
                    .b
                    .func
                    .declare_imported_user_function(UserExternalName::new(0, *index));
                let f = self.b.import_function(ExtFuncData {
                    name: ExternalName::user(name_ref),
                    signature,
                    colocated: false,
                    patchable: false,
                });
                self.imported.insert(name, f);
                f
            }
        };
        let call = self.b.ins().call(func_ref, args);
        Ok(self.b.inst_results(call)[0])
    }
}
