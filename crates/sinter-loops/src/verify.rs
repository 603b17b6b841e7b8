//! The verifier: the gate between building kernels and generating code for them.
//!
//! `sinter-jit` compiles only kernels that [`verify_kernel`] accepts, and emits unchecked loads and
//! stores for them, so every rule here is a fact code generation relies on:
//!
//! - **Ids exist and are scoped.** Every buffer, local and loop variable named exists; a loop variable
//!   is bound by exactly one loop and used only inside it; a local is read or assigned only after its
//!   `let` in an enclosing block, and declared by exactly one `let`.
//! - **Types.** The typing rules of `ir-spec/loops.md` (operands of one dtype, float-only math, bool
//!   conditions); a store's value has its buffer's dtype, a `let`/assign value its local's dtype.
//! - **Roles.** Only `output` and `scratch` buffers are stored to.
//! - **Bounds.** Every affine index is proved in `0..len` of its buffer by interval arithmetic over the
//!   enclosing loops (`var` in `0..=extent-1`, a dynamic term in `0..=extent-1` times its stride).
//!   Accesses under a loop of extent 0 never run and are not checked. A dynamic term's value is an
//!   integer and its extent positive; its range is checked by the generated code at run time.
//! - **Schedules.** A vectorized loop has width 4 and a body the vector code generator can handle
//!   ([`vectorize_violations`]); a parallel loop is the kernel's only top-level statement and its
//!   iterations touch disjoint elements of every buffer they write ([`parallel_violation`]).
//!
//! **Invariant: the verifier reports every problem**, not the first; each error names the kernel and
//! the offending statement as the text format prints it.

use crate::ir::*;
use crate::program::{BindingError, BufferSource, Program, ProgramBufferId};
use crate::text::{binary_name, stmt_head, unary_name};
use sinter_ir::DType;
use std::collections::BTreeMap;

/// The only vector width the backend generates (Cranelift's x64 backend lowers 128-bit vectors).
pub const VECTOR_WIDTH: u32 = 4;

/// A problem in a kernel. `stmt` is the offending statement's first line as printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "kernel `{kernel}`: `{stmt}`: buffer {buf} does not exist (the kernel has {n_buffers})"
    )]
    UnknownBuffer {
        kernel: String,
        stmt: String,
        buf: BufferId,
        n_buffers: usize,
    },
    #[error(
        "kernel `{kernel}`: `{stmt}`: local {local} does not exist (the kernel has {n_locals})"
    )]
    UnknownLocal {
        kernel: String,
        stmt: String,
        local: Local,
        n_locals: usize,
    },
    #[error(
        "kernel `{kernel}`: `{stmt}`: loop variable {var} does not exist (the kernel has {n_loop_vars})"
    )]
    UnknownLoopVar {
        kernel: String,
        stmt: String,
        var: LoopVar,
        n_loop_vars: u32,
    },
    #[error("kernel `{kernel}`: `{stmt}`: loop variable {var} is used outside its loop")]
    LoopVarOutOfScope {
        kernel: String,
        stmt: String,
        var: LoopVar,
    },
    #[error("kernel `{kernel}`: `{stmt}`: loop variable {var} is already bound by another loop")]
    LoopVarRebound {
        kernel: String,
        stmt: String,
        var: LoopVar,
    },
    #[error(
        "kernel `{kernel}`: `{stmt}`: local {local} is {action} outside the scope of its `let`"
    )]
    LocalOutOfScope {
        kernel: String,
        stmt: String,
        local: Local,
        /// `read` or `assigned`.
        action: &'static str,
    },
    #[error("kernel `{kernel}`: `{stmt}`: local {local} is declared by a second `let`")]
    LocalRedeclared {
        kernel: String,
        stmt: String,
        local: Local,
    },
    #[error("kernel `{kernel}`: `{stmt}`: {reason}")]
    ExprType {
        kernel: String,
        stmt: String,
        reason: String,
    },
    #[error("kernel `{kernel}`: `{stmt}`: the `{what}` condition is {dtype}, not bool")]
    ConditionNotBool {
        kernel: String,
        stmt: String,
        what: &'static str,
        dtype: DType,
    },
    #[error(
        "kernel `{kernel}`: `{stmt}`: the value stored to {buffer} is {value}, the buffer is {expected}"
    )]
    StoreDtype {
        kernel: String,
        stmt: String,
        buffer: String,
        expected: DType,
        value: DType,
    },
    #[error("kernel `{kernel}`: `{stmt}`: the value given to {local} is {value}, the local is {expected}")]
    LocalDtype {
        kernel: String,
        stmt: String,
        local: Local,
        expected: DType,
        value: DType,
    },
    #[error("kernel `{kernel}`: `{stmt}`: stores to {buffer}, which is read-only ({role:?})")]
    StoreToReadOnly {
        kernel: String,
        stmt: String,
        buffer: String,
        role: BufferRole,
    },
    #[error(
        "kernel `{kernel}`: `{stmt}`: the index into {buffer} is not normalized (terms sorted by variable, \
         each variable once, no zero coefficient)"
    )]
    IndexNotNormalized {
        kernel: String,
        stmt: String,
        buffer: String,
    },
    #[error(
        "kernel `{kernel}`: `{stmt}`: the index into {buffer} ranges over {min}..={max}, outside 0..{len}"
    )]
    IndexOutOfBounds {
        kernel: String,
        stmt: String,
        buffer: String,
        min: i128,
        max: i128,
        len: usize,
    },
    #[error("kernel `{kernel}`: `{stmt}`: the dynamic index term into {buffer} {reason}")]
    DynamicTerm {
        kernel: String,
        stmt: String,
        buffer: String,
        reason: String,
    },
    #[error("kernel `{kernel}`: `{stmt}`: {reason}")]
    LoopKindInvalid {
        kernel: String,
        stmt: String,
        reason: String,
    },
    #[error("kernel `{kernel}`: `{stmt}`: the loop cannot be vectorized: {reason}")]
    VectorizeIllegal {
        kernel: String,
        stmt: String,
        reason: String,
    },
    #[error("kernel `{kernel}`: `{stmt}`: invalid matrix tile: {reason}")]
    TileInvalid {
        kernel: String,
        stmt: String,
        reason: String,
    },
    #[error(
        "kernel `{kernel}`: `{stmt}`: a parallel loop must be the kernel's only top-level statement"
    )]
    ParallelNotTopLevel { kernel: String, stmt: String },
    #[error(
        "kernel `{kernel}`: `{stmt}`: the parallel iterations may touch the same element: {reason}"
    )]
    ParallelNotDisjoint {
        kernel: String,
        stmt: String,
        reason: String,
    },
}

/// A problem in a program: a kernel's, a binding's, or the call order's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProgramVerifyError {
    #[error(transparent)]
    Kernel(#[from] VerifyError),
    #[error(transparent)]
    Binding(#[from] BindingError),
    #[error(
        "call {call_idx} (kernel `{kernel}`) reads {buffer} (`{name}`) as parameter b{param_idx} before any \
         call writes it"
    )]
    ReadBeforeWrite {
        call_idx: usize,
        kernel: String,
        param_idx: usize,
        buffer: ProgramBufferId,
        name: String,
    },
    #[error("output `{output}` is {buffer}, which {reason}")]
    Output {
        output: String,
        buffer: ProgramBufferId,
        reason: String,
    },
}

/// Checks every rule of the module docs and returns every problem found.
pub fn verify_kernel(kernel: &Kernel) -> Result<(), Vec<VerifyError>> {
    let mut checker = Checker {
        kernel,
        errors: Vec::new(),
        loops: Vec::new(),
        bound: vec![false; kernel.n_loop_vars as usize],
        declared: vec![false; kernel.locals.len()],
        in_scope: vec![false; kernel.locals.len()],
    };
    for (idx, stmt) in kernel.body.iter().enumerate() {
        if let Stmt::Loop(lp) = stmt {
            if lp.kind == LoopKind::Parallel && kernel.body.len() == 1 && idx == 0 {
                if let Err(reason) = parallel_violation(lp) {
                    checker.errors.push(VerifyError::ParallelNotDisjoint {
                        kernel: kernel.name.clone(),
                        stmt: stmt_head(stmt),
                        reason,
                    });
                }
            }
        }
    }
    checker.block(&kernel.body, true);
    if checker.errors.is_empty() {
        Ok(())
    } else {
        Err(checker.errors)
    }
}

/// Checks the program's bindings ([`Program::check_bindings`]), every kernel, that every buffer a call
/// reads (its `input`/`weight` parameters) is a graph input, a weight, or written by an earlier call,
/// and that every output names an existing buffer that holds a value.
pub fn verify_program(program: &Program) -> Result<(), Vec<ProgramVerifyError>> {
    let mut errors: Vec<ProgramVerifyError> = Vec::new();
    if let Err(err) = program.check_bindings() {
        errors.push(err.into());
    }
    let mut written = vec![false; program.buffers.len()];
    for (idx, buffer) in program.buffers.iter().enumerate() {
        written[idx] = !matches!(buffer.source, BufferSource::Computed);
    }
    for (call_idx, call) in program.calls.iter().enumerate() {
        if let Err(kernel_errors) = verify_kernel(&call.kernel) {
            errors.extend(kernel_errors.into_iter().map(ProgramVerifyError::from));
        }
        for (param_idx, (decl, &arg)) in call.kernel.buffers.iter().zip(&call.args).enumerate() {
            let Some(&is_written) = written.get(arg.0 as usize) else {
                continue; // check_bindings reports it.
            };
            if matches!(decl.role, BufferRole::Input | BufferRole::Weight) && !is_written {
                errors.push(ProgramVerifyError::ReadBeforeWrite {
                    call_idx,
                    kernel: call.kernel.name.clone(),
                    param_idx,
                    buffer: arg,
                    name: program.buffers[arg.0 as usize].name.clone(),
                });
            }
        }
        for (decl, &arg) in call.kernel.buffers.iter().zip(&call.args) {
            if decl.role == BufferRole::Output {
                if let Some(flag) = written.get_mut(arg.0 as usize) {
                    *flag = true;
                }
            }
        }
    }
    for (output, buffer) in &program.outputs {
        let reason = match written.get(buffer.0 as usize) {
            None => "does not exist",
            Some(false) => "no call writes",
            Some(true) => continue,
        };
        errors.push(ProgramVerifyError::Output {
            output: output.clone(),
            buffer: *buffer,
            reason: reason.into(),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `b1 (y: f32[8] output)`, how errors name a buffer.
fn describe_buffer(kernel: &Kernel, buf: BufferId) -> String {
    match kernel.buffers.get(buf.0 as usize) {
        Some(decl) => format!(
            "{buf} ({}: {}[{}] {})",
            decl.name,
            decl.dtype,
            decl.len,
            crate::text::role_name(decl.role)
        ),
        None => buf.to_string(),
    }
}

struct Checker<'k> {
    kernel: &'k Kernel,
    errors: Vec<VerifyError>,
    /// The variables of the enclosing loops with their extents, outermost first (a tile epilogue's
    /// `row` and `col` count as loops over the tile's rows and columns).
    loops: Vec<(LoopVar, usize)>,
    bound: Vec<bool>,
    declared: Vec<bool>,
    in_scope: Vec<bool>,
}

impl<'k> Checker<'k> {
    fn name(&self) -> String {
        self.kernel.name.clone()
    }

    fn block(&mut self, stmts: &'k [Stmt], top_level: bool) {
        let mut declared_here = Vec::new();
        for stmt in stmts {
            self.stmt(stmt, top_level && stmts.len() == 1, &mut declared_here);
        }
        for local in declared_here {
            self.in_scope[local] = false;
        }
    }

    fn stmt(&mut self, stmt: &'k Stmt, only_top_level: bool, declared_here: &mut Vec<usize>) {
        match stmt {
            Stmt::Loop(lp) => {
                self.loop_kind(stmt, lp, only_top_level);
                match self.bound.get_mut(lp.var.0 as usize) {
                    None => self.errors.push(VerifyError::UnknownLoopVar {
                        kernel: self.kernel.name.clone(),
                        stmt: stmt_head(stmt),
                        var: lp.var,
                        n_loop_vars: self.kernel.n_loop_vars,
                    }),
                    Some(true) => self.errors.push(VerifyError::LoopVarRebound {
                        kernel: self.kernel.name.clone(),
                        stmt: stmt_head(stmt),
                        var: lp.var,
                    }),
                    Some(flag) => *flag = true,
                }
                self.loops.push((lp.var, lp.extent));
                self.block(&lp.body, false);
                self.loops.pop();
            }
            Stmt::Let { local, init } => {
                let value = self.expr(stmt, init);
                let Some(idx) = self.local_idx(stmt, *local) else {
                    return;
                };
                if self.declared[idx] {
                    self.errors.push(VerifyError::LocalRedeclared {
                        kernel: self.name(),
                        stmt: stmt_head(stmt),
                        local: *local,
                    });
                }
                self.declared[idx] = true;
                if !self.in_scope[idx] {
                    self.in_scope[idx] = true;
                    declared_here.push(idx);
                }
                self.check_local_dtype(stmt, *local, value);
            }
            Stmt::Assign { local, value } => {
                let value = self.expr(stmt, value);
                let Some(idx) = self.local_idx(stmt, *local) else {
                    return;
                };
                if !self.in_scope[idx] {
                    self.errors.push(VerifyError::LocalOutOfScope {
                        kernel: self.name(),
                        stmt: stmt_head(stmt),
                        local: *local,
                        action: "assigned",
                    });
                }
                self.check_local_dtype(stmt, *local, value);
            }
            Stmt::Store { buf, index, value } => {
                let value = self.expr(stmt, value);
                self.access(stmt, *buf, index);
                let Some(decl) = self.kernel.buffers.get(buf.0 as usize) else {
                    return;
                };
                if matches!(decl.role, BufferRole::Input | BufferRole::Weight) {
                    self.errors.push(VerifyError::StoreToReadOnly {
                        kernel: self.name(),
                        stmt: stmt_head(stmt),
                        buffer: describe_buffer(self.kernel, *buf),
                        role: decl.role,
                    });
                }
                if let Some(value) = value {
                    if value != decl.dtype {
                        self.errors.push(VerifyError::StoreDtype {
                            kernel: self.name(),
                            stmt: stmt_head(stmt),
                            buffer: describe_buffer(self.kernel, *buf),
                            expected: decl.dtype,
                            value,
                        });
                    }
                }
            }
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                if let Some(dtype) = self.expr(stmt, cond) {
                    if dtype != DType::Bool {
                        self.errors.push(VerifyError::ConditionNotBool {
                            kernel: self.name(),
                            stmt: stmt_head(stmt),
                            what: "if",
                            dtype,
                        });
                    }
                }
                self.block(then, false);
                self.block(otherwise, false);
            }
            Stmt::MatTile(tile) => self.mat_tile(stmt, tile),
        }
    }

    /// The rules of [`MatTile`]: shape limits, f32 operands, a writable `c`, affine base indices,
    /// every element in bounds, and an epilogue that reads only and vectorizes over `col`.
    fn mat_tile(&mut self, stmt: &'k Stmt, tile: &'k MatTile) {
        let invalid = |checker: &Self, reason: String| VerifyError::TileInvalid {
            kernel: checker.name(),
            stmt: stmt_head(stmt),
            reason,
        };
        if !(1..=MAX_TILE_ROWS).contains(&tile.rows) || !(1..=MAX_TILE_COLS).contains(&tile.cols) {
            self.errors.push(invalid(
                self,
                format!(
                    "a tile is {}x{}; it must be 1..={MAX_TILE_ROWS} rows by 1..={MAX_TILE_COLS} columns",
                    tile.rows, tile.cols
                ),
            ));
        }
        if tile.depth == 0 {
            self.errors
                .push(invalid(self, "a tile's depth must be at least 1".into()));
        }
        let (rows, cols, depth) = (tile.rows as usize, tile.cols as usize, tile.depth.max(1));
        let operands = [
            ("a", tile.a, &tile.a_index),
            ("b", tile.b, &tile.b_index),
            ("c", tile.c, &tile.c_index),
        ];
        for (what, buf, index) in operands {
            if index.dynamic.is_some() {
                self.errors.push(invalid(
                    self,
                    format!("the index of `{what}` has a data-dependent term"),
                ));
            }
            if let Some(decl) = self.kernel.buffers.get(buf.0 as usize) {
                if decl.dtype != DType::F32 {
                    self.errors.push(invalid(
                        self,
                        format!(
                            "`{what}` is {}, a tile computes in f32",
                            describe_buffer(self.kernel, buf)
                        ),
                    ));
                }
            }
        }
        // Elements are stored while others are still being computed (one at a time in the
        // interpreter, a row of vectors at a time in the JIT), so `c` must not be read in any other way.
        if tile.a == tile.c || tile.b == tile.c {
            self.errors.push(invalid(
                self,
                format!("{} is both an operand and the result", tile.c),
            ));
        }
        self.access_plus(
            stmt,
            tile.a,
            &tile.a_index,
            &[(tile.a_row, rows), (tile.a_depth, depth)],
        );
        self.access_plus(
            stmt,
            tile.b,
            &tile.b_index,
            &[(tile.b_depth, depth), (1, cols)],
        );
        self.access_plus(
            stmt,
            tile.c,
            &tile.c_index,
            &[(tile.c_row, rows), (1, cols)],
        );
        if let Some(decl) = self.kernel.buffers.get(tile.c.0 as usize) {
            if matches!(decl.role, BufferRole::Input | BufferRole::Weight) {
                self.errors.push(VerifyError::StoreToReadOnly {
                    kernel: self.name(),
                    stmt: stmt_head(stmt),
                    buffer: describe_buffer(self.kernel, tile.c),
                    role: decl.role,
                });
            }
        }
        let Some(epilogue) = &tile.epilogue else {
            return;
        };
        // `row` and `col` are bound by the tile itself, like loops over its rows and columns.
        for var in [epilogue.row, epilogue.col] {
            match self.bound.get_mut(var.0 as usize) {
                None => self.errors.push(VerifyError::UnknownLoopVar {
                    kernel: self.kernel.name.clone(),
                    stmt: stmt_head(stmt),
                    var,
                    n_loop_vars: self.kernel.n_loop_vars,
                }),
                Some(true) => self.errors.push(VerifyError::LoopVarRebound {
                    kernel: self.kernel.name.clone(),
                    stmt: stmt_head(stmt),
                    var,
                }),
                Some(flag) => *flag = true,
            }
        }
        if epilogue.row == epilogue.col {
            self.errors.push(invalid(
                self,
                "the epilogue's row and column variables are the same".into(),
            ));
        }
        // `acc` is declared by the tile, for the epilogue only.
        let acc_idx = self.local_idx(stmt, epilogue.acc);
        if let Some(idx) = acc_idx {
            if self.declared[idx] {
                self.errors.push(VerifyError::LocalRedeclared {
                    kernel: self.name(),
                    stmt: stmt_head(stmt),
                    local: epilogue.acc,
                });
            }
            self.declared[idx] = true;
            self.check_local_dtype(stmt, epilogue.acc, Some(DType::F32));
        }
        self.loops.push((epilogue.row, rows));
        self.loops.push((epilogue.col, cols));
        let previously_in_scope =
            acc_idx.map(|idx| std::mem::replace(&mut self.in_scope[idx], true));
        let value = self.expr(stmt, &epilogue.value);
        if let (Some(idx), Some(was)) = (acc_idx, previously_in_scope) {
            self.in_scope[idx] = was;
        }
        self.loops.pop();
        self.loops.pop();
        if let Some(dtype) = value {
            if dtype != DType::F32 {
                self.errors.push(VerifyError::StoreDtype {
                    kernel: self.name(),
                    stmt: stmt_head(stmt),
                    buffer: describe_buffer(self.kernel, tile.c),
                    expected: DType::F32,
                    value: dtype,
                });
            }
        }
        if expr_loads(&epilogue.value, tile.c) {
            self.errors.push(invalid(
                self,
                format!("the epilogue reads {}, the tile's result", tile.c),
            ));
        }
        let mut dep_locals = vec![false; self.kernel.locals.len()];
        if let Some(idx) = acc_idx {
            dep_locals[idx] = true;
        }
        let mut reasons = Vec::new();
        check_vector_expr(
            self.kernel,
            &epilogue.value,
            epilogue.col,
            &dep_locals,
            &mut reasons,
        );
        reasons.dedup();
        for reason in reasons {
            self.errors.push(invalid(
                self,
                format!("the epilogue cannot run four columns at a time: {reason}"),
            ));
        }
    }

    fn loop_kind(&mut self, stmt: &Stmt, lp: &Loop, only_top_level: bool) {
        let invalid = |reason: String| VerifyError::LoopKindInvalid {
            kernel: self.kernel.name.clone(),
            stmt: stmt_head(stmt),
            reason,
        };
        match lp.kind {
            LoopKind::Serial => {}
            LoopKind::Unrolled { factor } => {
                if factor == 0 {
                    self.errors
                        .push(invalid("an unroll factor must be at least 1".into()));
                }
            }
            LoopKind::Vectorized { width } => {
                if width != VECTOR_WIDTH {
                    self.errors.push(invalid(format!(
                        "vector width {width} is not supported (only {VECTOR_WIDTH})"
                    )));
                }
                for reason in vectorize_violations(self.kernel, lp) {
                    self.errors.push(VerifyError::VectorizeIllegal {
                        kernel: self.name(),
                        stmt: stmt_head(stmt),
                        reason,
                    });
                }
            }
            LoopKind::Parallel => {
                if !only_top_level || !self.loops.is_empty() {
                    self.errors.push(VerifyError::ParallelNotTopLevel {
                        kernel: self.name(),
                        stmt: stmt_head(stmt),
                    });
                }
            }
        }
    }

    fn local_idx(&mut self, stmt: &Stmt, local: Local) -> Option<usize> {
        let idx = local.0 as usize;
        if idx < self.kernel.locals.len() {
            Some(idx)
        } else {
            self.errors.push(VerifyError::UnknownLocal {
                kernel: self.name(),
                stmt: stmt_head(stmt),
                local,
                n_locals: self.kernel.locals.len(),
            });
            None
        }
    }

    fn check_local_dtype(&mut self, stmt: &Stmt, local: Local, value: Option<DType>) {
        let expected = self.kernel.locals[local.0 as usize];
        if let Some(value) = value {
            if value != expected {
                self.errors.push(VerifyError::LocalDtype {
                    kernel: self.name(),
                    stmt: stmt_head(stmt),
                    local,
                    expected,
                    value,
                });
            }
        }
    }

    /// The extent of `var` if it is bound by an enclosing loop; reports it otherwise.
    fn var_extent(&mut self, stmt: &Stmt, var: LoopVar) -> Option<usize> {
        if var.0 >= self.kernel.n_loop_vars {
            self.errors.push(VerifyError::UnknownLoopVar {
                kernel: self.name(),
                stmt: stmt_head(stmt),
                var,
                n_loop_vars: self.kernel.n_loop_vars,
            });
            return None;
        }
        match self.loops.iter().find(|(v, _)| *v == var) {
            Some(&(_, extent)) => Some(extent),
            None => {
                self.errors.push(VerifyError::LoopVarOutOfScope {
                    kernel: self.name(),
                    stmt: stmt_head(stmt),
                    var,
                });
                None
            }
        }
    }

    /// Checks an index into `buf`: ids, normalization, the dynamic term, and the bounds proof.
    fn access(&mut self, stmt: &Stmt, buf: BufferId, index: &Index) {
        self.access_plus(stmt, buf, index, &[]);
    }

    /// [`Self::access`] of `index + Σ coeff * t` for every `(coeff, extent)` in `extra`, with `t` in
    /// `0..extent` (the row, column and depth offsets of a tile).
    fn access_plus(&mut self, stmt: &Stmt, buf: BufferId, index: &Index, extra: &[(i64, usize)]) {
        let decl = self.kernel.buffers.get(buf.0 as usize);
        if decl.is_none() {
            self.errors.push(VerifyError::UnknownBuffer {
                kernel: self.name(),
                stmt: stmt_head(stmt),
                buf,
                n_buffers: self.kernel.buffers.len(),
            });
        }
        let normalized = index.terms.windows(2).all(|w| w[0].0 < w[1].0)
            && index.terms.iter().all(|&(_, c)| c != 0);
        if !normalized {
            self.errors.push(VerifyError::IndexNotNormalized {
                kernel: self.name(),
                stmt: stmt_head(stmt),
                buffer: describe_buffer(self.kernel, buf),
            });
        }
        let mut provable = true;
        let (mut min, mut max) = (i128::from(index.offset), i128::from(index.offset));
        for &(var, coeff) in &index.terms {
            match self.var_extent(stmt, var) {
                Some(extent) => {
                    let (lo, hi) = term_range(coeff, extent as i128);
                    min += lo;
                    max += hi;
                }
                None => provable = false,
            }
        }
        for &(coeff, extent) in extra {
            let (lo, hi) = term_range(coeff, extent as i128);
            min += lo;
            max += hi;
        }
        if let Some(dynamic) = &index.dynamic {
            let value = self.expr(stmt, &dynamic.value);
            let dyn_error = |checker: &Self, reason: String| VerifyError::DynamicTerm {
                kernel: checker.name(),
                stmt: stmt_head(stmt),
                buffer: describe_buffer(checker.kernel, buf),
                reason,
            };
            if let Some(dtype) = value {
                if !dtype.is_int() {
                    self.errors.push(dyn_error(
                        self,
                        format!("has a {dtype} value; it must be an integer"),
                    ));
                }
            }
            if dynamic.extent <= 0 {
                self.errors.push(dyn_error(
                    self,
                    format!("has extent {}; it must be positive", dynamic.extent),
                ));
                provable = false;
            } else {
                let (lo, hi) = term_range(dynamic.stride, i128::from(dynamic.extent));
                min += lo;
                max += hi;
            }
        }
        // Accesses under a loop of extent 0 never run.
        let reachable = self.loops.iter().all(|&(_, extent)| extent > 0);
        if let (Some(decl), true, true) = (decl, provable, reachable) {
            if min < 0 || max >= decl.len as i128 {
                self.errors.push(VerifyError::IndexOutOfBounds {
                    kernel: self.name(),
                    stmt: stmt_head(stmt),
                    buffer: describe_buffer(self.kernel, buf),
                    min,
                    max,
                    len: decl.len,
                });
            }
        }
    }

    fn type_error(&mut self, stmt: &Stmt, reason: String) {
        self.errors.push(VerifyError::ExprType {
            kernel: self.name(),
            stmt: stmt_head(stmt),
            reason,
        });
    }

    /// Checks `expr` and returns its dtype, or `None` when a problem below it makes it unknown.
    fn expr(&mut self, stmt: &Stmt, expr: &Expr) -> Option<DType> {
        match expr {
            Expr::Const(scalar) => Some(scalar.dtype()),
            Expr::Var(var) => {
                self.var_extent(stmt, *var);
                Some(DType::I64)
            }
            Expr::Local(local) => {
                let idx = self.local_idx(stmt, *local)?;
                if !self.in_scope[idx] {
                    self.errors.push(VerifyError::LocalOutOfScope {
                        kernel: self.name(),
                        stmt: stmt_head(stmt),
                        local: *local,
                        action: "read",
                    });
                }
                Some(self.kernel.locals[idx])
            }
            Expr::Load { buf, index } => {
                self.access(stmt, *buf, index);
                self.kernel.buffers.get(buf.0 as usize).map(|b| b.dtype)
            }
            Expr::Unary(op, a) => {
                let dtype = self.expr(stmt, a)?;
                let ok = match op {
                    UnaryOp::Neg | UnaryOp::Abs => dtype.is_signed(),
                    UnaryOp::Not => dtype == DType::Bool || dtype.is_int(),
                    _ => dtype.is_float(),
                };
                if !ok {
                    let wants = match op {
                        UnaryOp::Neg | UnaryOp::Abs => "a float or signed integer",
                        UnaryOp::Not => "a bool or an integer",
                        _ => "a float",
                    };
                    self.type_error(
                        stmt,
                        format!("`{}` takes {wants}, not {dtype}", unary_name(*op)),
                    );
                    return None;
                }
                Some(dtype)
            }
            Expr::Binary(op, a, b) => {
                let (a, b) = (self.expr(stmt, a), self.expr(stmt, b));
                let (a, b) = (a?, b?);
                if a != b {
                    self.type_error(
                        stmt,
                        format!(
                            "the operands of `{}` are {a} and {b}; they must have one dtype",
                            binary_name(*op)
                        ),
                    );
                    return None;
                }
                let ok = match op {
                    BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => a == DType::Bool || a.is_int(),
                    BinaryOp::Pow => a.is_float(),
                    _ => a.is_numeric(),
                };
                if !ok {
                    self.type_error(
                        stmt,
                        format!("`{}` is not defined on {a}", binary_name(*op)),
                    );
                    return None;
                }
                Some(a)
            }
            Expr::Cmp(_, a, b) => {
                let (a, b) = (self.expr(stmt, a), self.expr(stmt, b));
                let (a, b) = (a?, b?);
                if a != b {
                    self.type_error(
                        stmt,
                        format!("a comparison of {a} with {b}; the operands must have one dtype"),
                    );
                    return None;
                }
                Some(DType::Bool)
            }
            Expr::Fma(a, b, c) => {
                let dtypes = [self.expr(stmt, a), self.expr(stmt, b), self.expr(stmt, c)];
                let [a, b, c] = [dtypes[0]?, dtypes[1]?, dtypes[2]?];
                if !(a == b && b == c && a.is_float()) {
                    self.type_error(
                        stmt,
                        format!("`fma` takes three f32 or three f64 operands, not {a}, {b}, {c}"),
                    );
                    return None;
                }
                Some(a)
            }
            Expr::Select {
                cond,
                then,
                otherwise,
            } => {
                let cond = self.expr(stmt, cond);
                let (then, otherwise) = (self.expr(stmt, then), self.expr(stmt, otherwise));
                if let Some(cond) = cond {
                    if cond != DType::Bool {
                        self.errors.push(VerifyError::ConditionNotBool {
                            kernel: self.name(),
                            stmt: stmt_head(stmt),
                            what: "select",
                            dtype: cond,
                        });
                    }
                }
                let (then, otherwise) = (then?, otherwise?);
                if then != otherwise {
                    self.type_error(
                        stmt,
                        format!("the arms of `select` are {then} and {otherwise}; they must have one dtype"),
                    );
                    return None;
                }
                Some(then)
            }
            Expr::Cast(dtype, a) => {
                self.expr(stmt, a)?;
                Some(*dtype)
            }
        }
    }
}

/// The range of `coeff * x` for `x` in `0..=extent-1` (`extent > 0`).
fn term_range(coeff: i64, extent: i128) -> (i128, i128) {
    term_range_wide(i128::from(coeff), extent)
}

/// Whether `expr` loads from `buf`.
fn expr_loads(expr: &Expr, buf: BufferId) -> bool {
    matches!(expr, Expr::Load { buf: b, .. } if *b == buf)
        || expr.children().any(|child| expr_loads(child, buf))
}

/// Whether `expr` depends on the vectorized variable `var`, given the locals known to depend on it.
fn depends_on(expr: &Expr, var: LoopVar, dep_locals: &[bool]) -> bool {
    let here = match expr {
        Expr::Var(v) => *v == var,
        Expr::Local(local) => dep_locals.get(local.0 as usize).copied().unwrap_or(false),
        Expr::Load { index, .. } => index.coeff(var) != 0,
        _ => false,
    };
    here || expr
        .children()
        .any(|child| depends_on(child, var, dep_locals))
}

/// Why the loop `lp` cannot run 4 iterations at a time in SIMD lanes (empty when it can).
///
/// The rules (`ir-spec/loops.md`, "Vectorized loops"): with `v` the loop's variable, every store in the
/// body has coefficient 1 for `v` and no dynamic term depending on `v`; every load has coefficient 0
/// (a broadcast) or 1 for `v` and a dynamic term (if any) that does not depend on `v`, and a load
/// with coefficient 1 reads f32; the body does not use `v` as a value (`Expr::Var`); `if` conditions
/// do not depend on `v`; locals declared outside the loop are not assigned inside it; every value that
/// depends on `v` is f32 or a bool computed from f32 values (a lane mask), and a comparison that depends
/// on `v` compares f32 values; a store of a value that depends on `v` stores f32; no vectorized or
/// parallel loop is nested inside.
pub fn vectorize_violations(kernel: &Kernel, lp: &Loop) -> Vec<String> {
    let var = lp.var;
    let mut declared_inside = vec![false; kernel.locals.len()];
    crate::text::walk_stmts(&lp.body, &mut |stmt| {
        if let Stmt::Let { local, .. } = stmt {
            if let Some(flag) = declared_inside.get_mut(local.0 as usize) {
                *flag = true;
            }
        }
    });
    // Which locals depend on `var`: a fixpoint over every `let` and assignment in the body.
    let mut dep_locals = vec![false; kernel.locals.len()];
    loop {
        let mut changed = false;
        crate::text::walk_stmts(&lp.body, &mut |stmt| {
            if let Stmt::Let { local, init: value } | Stmt::Assign { local, value } = stmt {
                let idx = local.0 as usize;
                if idx < dep_locals.len() && !dep_locals[idx] && depends_on(value, var, &dep_locals)
                {
                    dep_locals[idx] = true;
                    changed = true;
                }
            }
        });
        if !changed {
            break;
        }
    }
    let mut reasons: Vec<String> = Vec::new();
    let check_expr = |expr: &Expr, reasons: &mut Vec<String>| {
        check_vector_expr(kernel, expr, var, &dep_locals, reasons);
    };
    crate::text::walk_stmts(&lp.body, &mut |stmt| match stmt {
        Stmt::Loop(inner) => {
            if matches!(inner.kind, LoopKind::Vectorized { .. } | LoopKind::Parallel) {
                reasons.push(format!(
                    "it contains the {} loop over {}",
                    if inner.kind == LoopKind::Parallel {
                        "parallel"
                    } else {
                        "vectorized"
                    },
                    inner.var
                ));
            }
        }
        Stmt::Let { init, .. } => check_expr(init, &mut reasons),
        Stmt::Assign { local, value } => {
            if !declared_inside
                .get(local.0 as usize)
                .copied()
                .unwrap_or(true)
            {
                reasons.push(format!(
                    "it assigns {local}, which is declared outside the loop"
                ));
            }
            check_expr(value, &mut reasons);
        }
        Stmt::Store { buf, index, value } => {
            let coeff = index.coeff(var);
            if coeff != 1 {
                reasons.push(format!(
                    "the store to {buf}[{}] has coefficient {coeff} for {var}; it must be 1",
                    crate::text::index_text(index)
                ));
            }
            if let Some(dynamic) = &index.dynamic {
                if depends_on(&dynamic.value, var, &dep_locals) {
                    reasons.push(format!(
                        "the dynamic index term of the store to {buf} depends on {var}"
                    ));
                }
                check_expr(&dynamic.value, &mut reasons);
            }
            if depends_on(value, var, &dep_locals) {
                if let Some(dtype) = kernel.expr_dtype(value) {
                    if dtype != DType::F32 {
                        reasons.push(format!(
                            "the store to {buf} writes a {dtype} value that depends on {var}; vector stores are f32"
                        ));
                    }
                }
            }
            check_expr(value, &mut reasons);
        }
        Stmt::MatTile(_) => {
            reasons.push("it contains a matrix tile (a tile is already vector code)".into());
        }
        Stmt::If { cond, .. } => {
            if depends_on(cond, var, &dep_locals) {
                reasons.push(format!(
                    "the condition of `if {}` depends on {var}",
                    crate::text::expr_text(cond)
                ));
            }
            check_expr(cond, &mut reasons);
        }
    });
    reasons.dedup();
    reasons
}

fn check_vector_expr(
    kernel: &Kernel,
    expr: &Expr,
    var: LoopVar,
    dep_locals: &[bool],
    reasons: &mut Vec<String>,
) {
    if *expr == Expr::Var(var) {
        reasons.push(format!("the loop variable {var} is used as a value"));
        return;
    }
    let deps = depends_on(expr, var, dep_locals);
    if deps {
        if let Some(dtype) = kernel.expr_dtype(expr) {
            if dtype != DType::F32 && dtype != DType::Bool {
                reasons.push(format!(
                    "`{}` is {dtype} and depends on {var}; only f32 values and f32 comparisons vectorize",
                    crate::text::expr_text(expr)
                ));
                return;
            }
        }
    }
    match expr {
        Expr::Const(_) | Expr::Local(_) | Expr::Var(_) => {}
        Expr::Load { buf, index } => {
            let coeff = index.coeff(var);
            if coeff != 0 && coeff != 1 {
                reasons.push(format!(
                    "the load {buf}[{}] has coefficient {coeff} for {var}; it must be 0 or 1",
                    crate::text::index_text(index)
                ));
            }
            if let Some(dynamic) = &index.dynamic {
                if depends_on(&dynamic.value, var, dep_locals) {
                    reasons.push(format!(
                        "the dynamic index term of the load from {buf} depends on {var}"
                    ));
                }
                check_vector_expr(kernel, &dynamic.value, var, dep_locals, reasons);
            }
            if coeff == 1 {
                if let Some(decl) = kernel.buffers.get(buf.0 as usize) {
                    if decl.dtype != DType::F32 {
                        reasons.push(format!(
                            "the load {buf}[{}] reads {} with coefficient 1 for {var}; vector loads are f32",
                            crate::text::index_text(index),
                            decl.dtype
                        ));
                    }
                }
            }
        }
        Expr::Unary(_, a) | Expr::Cast(_, a) => {
            check_vector_expr(kernel, a, var, dep_locals, reasons);
        }
        Expr::Binary(_, a, b) => {
            check_vector_expr(kernel, a, var, dep_locals, reasons);
            check_vector_expr(kernel, b, var, dep_locals, reasons);
        }
        Expr::Cmp(_, a, b) => {
            if deps {
                let operand = kernel.expr_dtype(a);
                if operand.is_some_and(|d| d != DType::F32) {
                    reasons.push(format!(
                        "`{}` compares {} values that depend on {var}; only f32 comparisons vectorize",
                        crate::text::expr_text(expr),
                        operand.map_or("?".to_string(), |d| d.to_string())
                    ));
                }
            }
            check_vector_expr(kernel, a, var, dep_locals, reasons);
            check_vector_expr(kernel, b, var, dep_locals, reasons);
        }
        Expr::Fma(a, b, c)
        | Expr::Select {
            cond: a,
            then: b,
            otherwise: c,
        } => {
            check_vector_expr(kernel, a, var, dep_locals, reasons);
            check_vector_expr(kernel, b, var, dep_locals, reasons);
            check_vector_expr(kernel, c, var, dep_locals, reasons);
        }
    }
}

/// One memory access inside a loop nest, for the disjointness proof.
struct Access {
    is_store: bool,
    /// The coefficient of the parallel variable.
    coeff: i64,
    /// The range of the rest of the index (offset and every other variable).
    rest: (i128, i128),
    /// The rest as `offset` and `(coefficient, extent)` terms, for the modular proof.
    offset: i128,
    terms: Vec<(i128, i128)>,
    has_dynamic: bool,
}

/// The modular disjointness proof for the accesses `list` of one buffer with parallel coefficient
/// `coeff > 0` over `extent` iterations: some modulus `m` splits every index into `q*m + r` where
/// `q` collects the terms whose coefficients are multiples of `m` (any range) and
/// `r = coeff*p + w` collects the rest, with `0 <= r < m` always and every `w` in one window
/// narrower than `coeff`. Then `r`, and so the element, differs between iterations. This is the
/// shape of a tile nest's stores: rows `m` apart, each iteration's columns in its own window.
fn modular_disjoint(list: &[Access], coeff: i128, extent: i128) -> bool {
    let mut candidates: Vec<i128> = list
        .iter()
        .flat_map(|a| a.terms.iter().map(|&(c, _)| c.abs()))
        .filter(|&c| c > coeff)
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    candidates.into_iter().any(|m| {
        let (mut lo_all, mut hi_all) = (i128::MAX, i128::MIN);
        for access in list {
            let (mut lo, mut hi) = (access.offset.rem_euclid(m), access.offset.rem_euclid(m));
            for &(c, e) in &access.terms {
                if c % m == 0 {
                    continue;
                }
                let (a, b) = term_range_wide(c, e);
                lo += a;
                hi += b;
            }
            if lo < 0 || coeff * (extent - 1) + hi >= m {
                return false;
            }
            lo_all = lo_all.min(lo);
            hi_all = hi_all.max(hi);
        }
        hi_all - lo_all < coeff
    })
}

fn term_range_wide(coeff: i128, extent: i128) -> (i128, i128) {
    let last = coeff * (extent - 1).max(0);
    (last.min(0), last.max(0))
}

/// Why the iterations of the parallel loop `lp` might touch the same element of a buffer one of them
/// writes (`Ok` when they provably cannot).
///
/// The rule is simple and conservative. With `p` the loop's variable: for every buffer stored to
/// anywhere in the loop, every access to it (stores and loads) has no dynamic term and the same nonzero
/// coefficient `c` for `p`, and the rest of each index (the offset plus the other variables' terms,
/// over their loops' ranges) stays within a window narrower than `|c|`: if
/// `max(rest) - min(rest) < |c|` over all those accesses, then iteration `p` touches only elements in
/// `c*p + [min, max]`, and these windows do not overlap for different `p`. Buffers that are only read
/// may be read by every iteration.
pub fn parallel_violation(lp: &Loop) -> Result<(), String> {
    let mut accesses: BTreeMap<BufferId, Vec<Access>> = BTreeMap::new();
    let mut inner: Vec<(LoopVar, usize)> = Vec::new();
    collect_accesses(&lp.body, lp.var, &mut inner, &mut accesses);
    for (buf, list) in &accesses {
        if !list.iter().any(|a| a.is_store) {
            continue;
        }
        if list.iter().any(|a| a.has_dynamic) {
            return Err(format!(
                "{buf} is written and accessed with a data-dependent index"
            ));
        }
        let coeff = list[0].coeff;
        if coeff == 0 || list.iter().any(|a| a.coeff != coeff) {
            let coeffs: Vec<String> = list.iter().map(|a| a.coeff.to_string()).collect();
            return Err(format!(
                "the accesses to {buf} must all have one nonzero coefficient for {}, found [{}]",
                lp.var,
                coeffs.join(", ")
            ));
        }
        let lo = list.iter().map(|a| a.rest.0).min().unwrap_or(0);
        let hi = list.iter().map(|a| a.rest.1).max().unwrap_or(0);
        if hi - lo >= i128::from(coeff).abs()
            && !(coeff > 0 && modular_disjoint(list, i128::from(coeff), lp.extent as i128))
        {
            return Err(format!(
                "each iteration touches a window of {} elements of {buf}, wider than the stride {} of {}",
                hi - lo + 1,
                coeff.abs(),
                lp.var
            ));
        }
    }
    Ok(())
}

fn collect_accesses(
    stmts: &[Stmt],
    par: LoopVar,
    inner: &mut Vec<(LoopVar, usize)>,
    out: &mut BTreeMap<BufferId, Vec<Access>>,
) {
    fn record(
        buf: BufferId,
        index: &Index,
        is_store: bool,
        par: LoopVar,
        inner: &[(LoopVar, usize)],
        out: &mut BTreeMap<BufferId, Vec<Access>>,
    ) {
        record_plus(buf, index, &[], is_store, par, inner, out);
    }
    /// `index + Σ coeff * t` for `(coeff, extent)` in `extra`, `t` in `0..extent` (tile offsets).
    fn record_plus(
        buf: BufferId,
        index: &Index,
        extra: &[(i64, usize)],
        is_store: bool,
        par: LoopVar,
        inner: &[(LoopVar, usize)],
        out: &mut BTreeMap<BufferId, Vec<Access>>,
    ) {
        let (mut lo, mut hi) = (i128::from(index.offset), i128::from(index.offset));
        let mut terms = Vec::new();
        for &(coeff, extent) in extra {
            let (a, b) = term_range(coeff, extent as i128);
            lo += a;
            hi += b;
            terms.push((i128::from(coeff), extent as i128));
        }
        for &(var, coeff) in &index.terms {
            if var == par {
                continue;
            }
            // A variable of no enclosing loop makes the kernel fail verification anyway; treat it as
            // unbounded so that the proof fails too.
            let extent = inner
                .iter()
                .find(|(v, _)| *v == var)
                .map_or(i128::from(i64::MAX), |&(_, e)| e as i128);
            let (a, b) = term_range(coeff, extent);
            lo += a;
            hi += b;
            terms.push((i128::from(coeff), extent));
        }
        out.entry(buf).or_default().push(Access {
            is_store,
            coeff: index.coeff(par),
            rest: (lo, hi),
            offset: i128::from(index.offset),
            terms,
            has_dynamic: index.dynamic.is_some(),
        });
    }
    fn exprs(
        expr: &Expr,
        par: LoopVar,
        inner: &[(LoopVar, usize)],
        out: &mut BTreeMap<BufferId, Vec<Access>>,
    ) {
        if let Expr::Load { buf, index } = expr {
            record(*buf, index, false, par, inner, out);
        }
        for child in expr.children() {
            exprs(child, par, inner, out);
        }
    }
    for stmt in stmts {
        match stmt {
            Stmt::Loop(lp) => {
                // Accesses under an empty loop never happen.
                if lp.extent == 0 {
                    continue;
                }
                inner.push((lp.var, lp.extent));
                collect_accesses(&lp.body, par, inner, out);
                inner.pop();
            }
            Stmt::Let { init: value, .. } | Stmt::Assign { value, .. } => {
                exprs(value, par, inner, out)
            }
            Stmt::Store { buf, index, value } => {
                record(*buf, index, true, par, inner, out);
                if let Some(d) = &index.dynamic {
                    exprs(&d.value, par, inner, out);
                }
                exprs(value, par, inner, out);
            }
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                exprs(cond, par, inner, out);
                collect_accesses(then, par, inner, out);
                collect_accesses(otherwise, par, inner, out);
            }
            Stmt::MatTile(tile) => {
                let (rows, cols, depth) = (tile.rows as usize, tile.cols as usize, tile.depth);
                let a_extra = [(tile.a_row, rows), (tile.a_depth, depth)];
                record_plus(tile.a, &tile.a_index, &a_extra, false, par, inner, out);
                let b_extra = [(tile.b_depth, depth), (1, cols)];
                record_plus(tile.b, &tile.b_index, &b_extra, false, par, inner, out);
                let c_extra = [(tile.c_row, rows), (1, cols)];
                record_plus(tile.c, &tile.c_index, &c_extra, true, par, inner, out);
                if let Some(epilogue) = &tile.epilogue {
                    inner.push((epilogue.row, rows));
                    inner.push((epilogue.col, cols));
                    exprs(&epilogue.value, par, inner, out);
                    inner.pop();
                    inner.pop();
                }
            }
        }
    }
}
