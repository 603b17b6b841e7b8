//! The GEMM microkernel: one [`MatTile`] statement becomes a register-blocked block of a matrix
//! product, the kernel that decides how fast every MatMul, Gemm, Conv and RNN gate product runs.
//!
//! The emitted code (see `sinter_loops::ir::MatTile` for the semantics it implements):
//! - `rows x cols / 4` `f32x4` accumulators and `rows x (cols % 4)` scalar ones, started at zero or
//!   loaded from `c` (`accumulate`). Nothing past `cols` is ever loaded or stored.
//! - A counted loop over `depth`, unrolled by 2 (and one more step when `depth` is odd) that carries
//!   the `a` and `b` addresses and advances them by `2 * a_depth` / `2 * b_depth` elements instead
//!   of recomputing them. Each step loads the `b` vectors of row `k` once, then per tile row loads the
//!   scalar `a[a_at(r, k)]`, splats it and fmas it into that row's accumulators.
//! - The epilogue (or the bare accumulators) stored to `c`, four columns at a time as in a
//!   vectorized loop, the remainder columns one at a time.
//!
//! **Bit-exactness.** Every output element is one `fma` chain in increasing `k` starting from its
//! initial value, which is what the loop-IR interpreter computes: the unrolling changes the code, not
//! the order of any element's operations. CLIF `fma` is a fused multiply-add whether or not the host
//! has FMA (without it Cranelift calls `fmaf`), the same instruction `Expr::Fma` uses.
//!
//! With 4 x 8 this keeps 8 accumulators, 2 `b` vectors and the `a` splat live (11 of the 16 xmm
//! registers), under the 12 that Cranelift keeps without spilling (DESIGN.md, "Facts measured here").
//!
//! All accesses are `notrap` (the verifier proved every element the formulas reach in bounds);
//! loads of Input and Weight buffers are also `readonly | can_move`, those of scratch panels (written
//! earlier in the same kernel) are not.

use super::{CodegenError, KernelCodegen, LocalSlot, Val};
use cranelift_codegen::ir::types::{F32, F32X4, I64};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};
use cranelift_frontend::Variable;
use sinter_ir::DType;
use sinter_loops::{
    BufferId, BufferRole, Index, MatTile, TileEpilogue, MAX_TILE_COLS, MAX_TILE_ROWS,
};

type R<T> = Result<T, CodegenError>;

/// Bytes per f32 element.
const F32_BYTES: i64 = 4;

/// The code generator's view of one `rows x cols` tile: where its operands start and how far apart
/// their elements are, in bytes.
struct TileFrame {
    rows: usize,
    /// Full 4-column groups per row.
    n_vec: usize,
    cols: usize,
    a_flags: MemFlagsData,
    b_flags: MemFlagsData,
    b_vec_flags: MemFlagsData,
    c_flags: MemFlagsData,
    c_vec_flags: MemFlagsData,
    a_row_bytes: i64,
    a_depth_bytes: i64,
    b_depth_bytes: i64,
    c_row_bytes: i64,
}

/// The accumulators of a tile, as frontend variables (so the loop's phis come from SSA
/// construction): `vector[r * n_vec + j]` holds columns `4j..4j+4` of row `r`, `scalar[r * rem + i]`
/// column `4 * n_vec + i`.
struct Accumulators {
    vector: Vec<Variable>,
    scalar: Vec<Variable>,
}

/// The checked indices of an epilogue's row and column variables and its accumulator local.
#[derive(Clone, Copy)]
struct EpilogueSlots {
    row: usize,
    col: usize,
    acc: usize,
}

impl KernelCodegen<'_, '_> {
    /// Emits one [`MatTile`] (see the module docs).
    pub(super) fn mat_tile(&mut self, tile: &MatTile) -> R<()> {
        let frame = self.tile_frame(tile)?;
        let a_base = self.tile_base(tile.a, &tile.a_index)?;
        let b_base = self.tile_base(tile.b, &tile.b_index)?;
        let c_base = self.tile_base(tile.c, &tile.c_index)?;
        let accs = self.tile_init(&frame, tile.accumulate, c_base)?;
        self.tile_k_loop(&frame, &accs, tile.depth, a_base, b_base)?;
        match &tile.epilogue {
            None => self.tile_store(&frame, &accs, c_base, None),
            Some(epilogue) => self.tile_store_epilogue(&frame, &accs, c_base, epilogue),
        }
    }

    /// Checks the tile's shape, buffers and strides, and works out its byte strides and flags.
    fn tile_frame(&self, tile: &MatTile) -> R<TileFrame> {
        if !(1..=MAX_TILE_ROWS).contains(&tile.rows) || !(1..=MAX_TILE_COLS).contains(&tile.cols) {
            return self.err(format!(
                "a {}x{} MatTile is outside 1..={MAX_TILE_ROWS} rows x 1..={MAX_TILE_COLS} columns",
                tile.rows, tile.cols
            ));
        }
        if tile.depth == 0 {
            return self.err("a MatTile has depth 0");
        }
        if let Some(var) = self.vec_var {
            return self.err(format!(
                "a MatTile is inside the vectorized loop over {var}"
            ));
        }
        for (what, buf) in [("a", tile.a), ("b", tile.b), ("c", tile.c)] {
            let decl = self.buffer(buf)?;
            if decl.dtype != DType::F32 {
                return self.err(format!(
                    "the MatTile operand {what} is {} buffer {}, not f32",
                    decl.dtype, decl.name
                ));
            }
        }
        let c_decl = self.buffer(tile.c)?;
        if !matches!(c_decl.role, BufferRole::Output | BufferRole::Scratch) {
            return self.err(format!(
                "a MatTile writes {}, which is a {:?} buffer",
                c_decl.name, c_decl.role
            ));
        }
        // Strides in bytes; up to 8 of them (two steps, four rows) are added to one address.
        let bytes = |stride: i64, what: &str| match stride.checked_mul(8 * F32_BYTES) {
            Some(_) => Ok(stride * F32_BYTES),
            None => self.err(format!("the MatTile stride {what} = {stride} is too large")),
        };
        let flags = |buf: BufferId, vector: bool| self.mem_flags(buf, vector, false);
        Ok(TileFrame {
            rows: tile.rows as usize,
            n_vec: tile.cols as usize / 4,
            cols: tile.cols as usize,
            a_flags: flags(tile.a, false),
            b_flags: flags(tile.b, false),
            b_vec_flags: flags(tile.b, true),
            c_flags: flags(tile.c, false),
            c_vec_flags: flags(tile.c, true),
            a_row_bytes: bytes(tile.a_row, "a_row")?,
            a_depth_bytes: bytes(tile.a_depth, "a_depth")?,
            b_depth_bytes: bytes(tile.b_depth, "b_depth")?,
            c_row_bytes: bytes(tile.c_row, "c_row")?,
        })
    }

    /// The byte address of element `index` of `buf`; the index must be affine.
    fn tile_base(&mut self, buf: BufferId, index: &Index) -> R<Value> {
        if index.dynamic.is_some() {
            let name = self.buffer(buf)?.name.clone();
            return self.err(format!(
                "a MatTile base index into {name} has a data-dependent term"
            ));
        }
        let (addr, _) = self.address(buf, index)?;
        Ok(addr)
    }

    /// The accumulators, started at zero or at the values in `c`.
    fn tile_init(&mut self, frame: &TileFrame, accumulate: bool, c_base: Value) -> R<Accumulators> {
        let rem = frame.cols - 4 * frame.n_vec;
        let mut accs = Accumulators {
            vector: Vec::with_capacity(frame.rows * frame.n_vec),
            scalar: Vec::with_capacity(frame.rows * rem),
        };
        let (zero, zero_vec) = if accumulate {
            (None, None)
        } else {
            let zero = self.b.ins().f32const(0.0);
            (Some(zero), Some(self.b.ins().splat(F32X4, zero)))
        };
        for r in 0..frame.rows {
            let row_off = r as i64 * frame.c_row_bytes;
            for j in 0..frame.n_vec {
                let init = match zero_vec {
                    Some(z) => z,
                    None => self.load_at(F32X4, frame.c_vec_flags, c_base, row_off + 16 * j as i64),
                };
                let var = self.b.declare_var(F32X4);
                self.b.def_var(var, init);
                accs.vector.push(var);
            }
            for col in 4 * frame.n_vec..frame.cols {
                let init = match zero {
                    Some(z) => z,
                    None => self.load_at(F32, frame.c_flags, c_base, row_off + 4 * col as i64),
                };
                let var = self.b.declare_var(F32);
                self.b.def_var(var, init);
                accs.scalar.push(var);
            }
        }
        Ok(accs)
    }

    /// A load of `ty` from `base + offset` bytes (the offset folded into the instruction when it
    /// fits in 32 bits).
    fn load_at(
        &mut self,
        ty: cranelift_codegen::ir::Type,
        flags: MemFlagsData,
        base: Value,
        offset: i64,
    ) -> Value {
        let (addr, imm) = self.split_offset(base, offset);
        self.b.ins().load(ty, flags, addr, imm)
    }

    fn store_at(&mut self, flags: MemFlagsData, value: Value, base: Value, offset: i64) {
        let (addr, imm) = self.split_offset(base, offset);
        self.b.ins().store(flags, value, addr, imm);
    }

    fn split_offset(&mut self, base: Value, offset: i64) -> (Value, i32) {
        match i32::try_from(offset) {
            Ok(imm) => (base, imm),
            Err(_) => (self.b.ins().iadd_imm_s(base, offset), 0),
        }
    }

    /// The k loop: `depth / 2` iterations of two steps, then one step if `depth` is odd.
    fn tile_k_loop(
        &mut self,
        frame: &TileFrame,
        accs: &Accumulators,
        depth: usize,
        a_base: Value,
        b_base: Value,
    ) -> R<()> {
        let pairs = depth / 2;
        let (a_ptr, b_ptr) = (self.b.declare_var(I64), self.b.declare_var(I64));
        self.b.def_var(a_ptr, a_base);
        self.b.def_var(b_ptr, b_base);
        if pairs > 0 {
            let Ok(pairs) = i64::try_from(pairs) else {
                return self.err(format!("a MatTile depth of {depth} is too large"));
            };
            // A test-at-the-top loop (`header` branches to `body` or `exit`, `body` jumps back), so
            // that the accumulators computed in `body` have one use each (the jump to `header`).
            // With a bottom test they would also flow to the exit, and x64 lowering, which only
            // folds a load into the instruction using it when nothing uses it twice (transitively),
            // would then not fold the `a` loads into `vbroadcastss` (see `tile_a_splat`).
            let counter = self.b.declare_var(I64);
            let start = self.b.ins().iconst(I64, pairs);
            self.b.def_var(counter, start);
            let header = self.b.create_block();
            let body = self.b.create_block();
            let exit = self.b.create_block();
            self.b.ins().jump(header, &[]);
            self.b.switch_to_block(header);
            let count = self.b.use_var(counter);
            self.b.ins().brif(count, body, &[], exit, &[]);
            self.b.switch_to_block(body);
            let a = self.b.use_var(a_ptr);
            let b = self.b.use_var(b_ptr);
            self.tile_k_step(frame, accs, a, b, 0);
            self.tile_k_step(frame, accs, a, b, 1);
            let a_next = self.b.ins().iadd_imm_s(a, 2 * frame.a_depth_bytes);
            let b_next = self.b.ins().iadd_imm_s(b, 2 * frame.b_depth_bytes);
            self.b.def_var(a_ptr, a_next);
            self.b.def_var(b_ptr, b_next);
            let count = self.b.ins().iadd_imm_s(count, -1);
            self.b.def_var(counter, count);
            self.b.ins().jump(header, &[]);
            self.b.switch_to_block(exit);
        }
        if depth % 2 == 1 {
            let a = self.b.use_var(a_ptr);
            let b = self.b.use_var(b_ptr);
            self.tile_k_step(frame, accs, a, b, 0);
        }
        Ok(())
    }

    /// One step of `k`: the accumulators += a[., k] * b[k, .], with `a`/`b` the addresses of step 0
    /// and `step` the step's distance from them.
    fn tile_k_step(
        &mut self,
        frame: &TileFrame,
        accs: &Accumulators,
        a: Value,
        b: Value,
        step: i64,
    ) {
        let rem = frame.cols - 4 * frame.n_vec;
        let b_off = step * frame.b_depth_bytes;
        let b_vecs: Vec<Value> = (0..frame.n_vec)
            .map(|j| self.load_at(F32X4, frame.b_vec_flags, b, b_off + 16 * j as i64))
            .collect();
        let b_scalars: Vec<Value> = (4 * frame.n_vec..frame.cols)
            .map(|col| self.load_at(F32, frame.b_flags, b, b_off + 4 * col as i64))
            .collect();
        for r in 0..frame.rows {
            let a_off = step * frame.a_depth_bytes + r as i64 * frame.a_row_bytes;
            for (j, &b_vec) in b_vecs.iter().enumerate() {
                let a_splat = self.tile_a_splat(frame, a, a_off, j);
                let var = accs.vector[r * frame.n_vec + j];
                let acc = self.b.use_var(var);
                let next = self.b.ins().fma(a_splat, b_vec, acc);
                self.b.def_var(var, next);
            }
            if !b_scalars.is_empty() {
                let a_scalar = self.load_at(F32, frame.a_flags, a, a_off);
                for (i, &b_scalar) in b_scalars.iter().enumerate() {
                    let var = accs.scalar[r * rem + i];
                    let acc = self.b.use_var(var);
                    let next = self.b.ins().fma(a_scalar, b_scalar, acc);
                    self.b.def_var(var, next);
                }
            }
        }
    }

    /// `a[a + a_off]` in all four lanes, for the fma into column group `j`.
    ///
    /// Each column group gets its own load and splat, each used once: x64 lowering then sinks the
    /// load into a `vbroadcastss` from memory, and the fma's tied operand (Cranelift only emits the
    /// 213 and 132 forms, which overwrite a multiplicand) is that fresh broadcast, so no register
    /// copy is needed. A splat shared by two fmas would cost a `vmovss`, a register broadcast and a
    /// copy. The loads are made distinct (base `a + 16j`, offset `a_off - 16j`) so that load
    /// deduplication does not merge them back into one.
    fn tile_a_splat(&mut self, frame: &TileFrame, a: Value, a_off: i64, j: usize) -> Value {
        let delta = 16 * j as i64;
        let base = if delta == 0 {
            a
        } else {
            self.b.ins().iadd_imm_s(a, delta)
        };
        let a_scalar = self.load_at(F32, frame.a_flags, base, a_off - delta);
        self.b.ins().splat(F32X4, a_scalar)
    }

    /// Checks the epilogue's variables and accumulator, stores through it, and restores the code
    /// generator's bindings of those variables.
    fn tile_store_epilogue(
        &mut self,
        frame: &TileFrame,
        accs: &Accumulators,
        c_base: Value,
        epilogue: &TileEpilogue,
    ) -> R<()> {
        let row = self.check_loop_var(epilogue.row)?;
        let col = self.check_loop_var(epilogue.col)?;
        if row == col {
            return self.err(format!(
                "a MatTile epilogue binds row and column to the same variable {}",
                epilogue.row
            ));
        }
        let acc = self.check_local(epilogue.acc)?;
        if self.kernel.locals[acc] != DType::F32 {
            return self.err(format!(
                "the MatTile epilogue's accumulator {} is {}, not f32",
                epilogue.acc, self.kernel.locals[acc]
            ));
        }
        let saved = (self.loop_vals[row], self.loop_vals[col], self.locals[acc]);
        let slots = EpilogueSlots { row, col, acc };
        let result = self.tile_store(frame, accs, c_base, Some((epilogue, slots)));
        self.vec_var = None;
        (self.loop_vals[row], self.loop_vals[col], self.locals[acc]) = saved;
        result
    }

    /// Stores every element of the tile: the accumulator itself, or with an epilogue its value,
    /// four columns at a time with `col` treated as the variable of a vectorized loop and the
    /// remainder columns as scalars.
    fn tile_store(
        &mut self,
        frame: &TileFrame,
        accs: &Accumulators,
        c_base: Value,
        epilogue: Option<(&TileEpilogue, EpilogueSlots)>,
    ) -> R<()> {
        let rem = frame.cols - 4 * frame.n_vec;
        for r in 0..frame.rows {
            let row_off = r as i64 * frame.c_row_bytes;
            if let Some((_, slots)) = epilogue {
                self.loop_vals[slots.row] = Some(self.b.ins().iconst(I64, r as i64));
            }
            for j in 0..frame.n_vec {
                let mut value = self.b.use_var(accs.vector[r * frame.n_vec + j]);
                if let Some((epilogue, slots)) = epilogue {
                    self.vec_var = Some(epilogue.col);
                    self.loop_vals[slots.col] = Some(self.b.ins().iconst(I64, 4 * j as i64));
                    value = self.tile_epilogue_value(epilogue, slots.acc, value, true)?;
                    self.vec_var = None;
                }
                self.store_at(frame.c_vec_flags, value, c_base, row_off + 16 * j as i64);
            }
            for i in 0..rem {
                let c = 4 * frame.n_vec + i;
                let mut value = self.b.use_var(accs.scalar[r * rem + i]);
                if let Some((epilogue, slots)) = epilogue {
                    self.loop_vals[slots.col] = Some(self.b.ins().iconst(I64, c as i64));
                    value = self.tile_epilogue_value(epilogue, slots.acc, value, false)?;
                }
                self.store_at(frame.c_flags, value, c_base, row_off + 4 * c as i64);
            }
        }
        Ok(())
    }

    /// `epilogue.value` with the local `acc` bound to `sum` (four lanes when `vector`).
    fn tile_epilogue_value(
        &mut self,
        epilogue: &TileEpilogue,
        acc: usize,
        sum: Value,
        vector: bool,
    ) -> R<Value> {
        let var = self.b.declare_var(if vector { F32X4 } else { F32 });
        self.b.def_var(var, sum);
        self.locals[acc] = Some(LocalSlot {
            var,
            vector,
            in_vector_loop: vector,
        });
        let (value, dtype) = self.expr(&epilogue.value)?;
        if dtype != DType::F32 {
            return self.err(format!("a MatTile epilogue computes a {dtype}, not an f32"));
        }
        match (value, vector) {
            (Val::Scalar(v), false) | (Val::Vector(v), true) => Ok(v),
            (Val::Scalar(v), true) => Ok(self.b.ins().splat(F32X4, v)),
            (Val::Vector(_), false) => {
                self.err("a MatTile epilogue is a vector outside the four-column groups")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Malformed tiles the verifier would reject, given straight to the code generator: each must
    //! be a `CodegenError`, never a panic or bad code.
    use super::super::module::{compile_kernels, ModuleError, ModuleOptions};
    use sinter_ir::DType;
    use sinter_loops::*;

    fn kernel(c_dtype: DType, c_role: BufferRole, edit: impl FnOnce(&mut MatTile)) -> Kernel {
        let mut kb = KernelBuilder::new("bad_tile", vec![]);
        let a = kb.buffer("a", DType::F32, 64, BufferRole::Input);
        let b = kb.buffer("b", DType::F32, 64, BufferRole::Input);
        let c = kb.buffer("c", c_dtype, 64, c_role);
        let mut tile = MatTile {
            rows: 2,
            cols: 4,
            depth: 3,
            a,
            a_index: Index::strided(&[], &[], 0),
            a_row: 3,
            a_depth: 1,
            b,
            b_index: Index::strided(&[], &[], 0),
            b_depth: 4,
            c,
            c_index: Index::strided(&[], &[], 0),
            c_row: 4,
            accumulate: false,
            epilogue: None,
        };
        edit(&mut tile);
        kb.mat_tile(tile);
        kb.finish()
    }

    fn codegen_error(kernel: Kernel) -> String {
        match compile_kernels(&[&kernel], ModuleOptions::default()) {
            Err(ModuleError::Codegen(e)) => e.reason,
            Err(other) => panic!("expected a codegen error, got {other}"),
            Ok(_) => panic!("a malformed tile compiled"),
        }
    }

    #[test]
    fn a_well_formed_tile_compiles() {
        let kernel = kernel(DType::F32, BufferRole::Output, |_| {});
        assert!(compile_kernels(&[&kernel], ModuleOptions::default()).is_ok());
    }

    #[test]
    fn malformed_tiles_are_codegen_errors() {
        let f32_out = |edit: fn(&mut MatTile)| kernel(DType::F32, BufferRole::Output, edit);
        for (kernel, expected) in [
            (f32_out(|t| t.rows = 0), "rows"),
            (f32_out(|t| t.rows = MAX_TILE_ROWS + 1), "rows"),
            (f32_out(|t| t.cols = 0), "columns"),
            (f32_out(|t| t.cols = MAX_TILE_COLS + 1), "columns"),
            (f32_out(|t| t.depth = 0), "depth 0"),
            (f32_out(|t| t.a_row = i64::MAX / 2), "too large"),
            (kernel(DType::F64, BufferRole::Output, |_| {}), "not f32"),
            (
                kernel(DType::F32, BufferRole::Input, |_| {}),
                "Input buffer",
            ),
            (
                f32_out(|t| {
                    t.b_index.dynamic = Some(Box::new(DynamicTerm {
                        value: Expr::Const(Scalar::I64(0)),
                        extent: 1,
                        stride: 1,
                    }))
                }),
                "data-dependent",
            ),
            (f32_out(|t| t.a = BufferId(9)), "not declared"),
        ] {
            let reason = codegen_error(kernel);
            assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
        }
    }

    #[test]
    fn a_tile_in_a_vectorized_loop_is_a_codegen_error() {
        let mut kernel = kernel(DType::F32, BufferRole::Output, |_| {});
        let tile = kernel.body.pop().expect("the tile");
        kernel.body.push(Stmt::Loop(Loop {
            var: LoopVar(0),
            extent: 4,
            kind: LoopKind::Vectorized { width: 4 },
            body: vec![tile],
        }));
        kernel.n_loop_vars = 1;
        assert!(codegen_error(kernel).contains("vectorized"));
    }

    #[test]
    fn a_bad_epilogue_is_a_codegen_error() {
        let mut kernel = kernel(DType::F32, BufferRole::Output, |_| {});
        kernel.n_loop_vars = 2;
        kernel.locals = vec![DType::I64];
        let Some(Stmt::MatTile(tile)) = kernel.body.last_mut() else {
            panic!("the tile is last");
        };
        tile.epilogue = Some(TileEpilogue {
            row: LoopVar(0),
            col: LoopVar(1),
            acc: Local(0),
            value: Expr::Local(Local(0)),
        });
        assert!(codegen_error(kernel.clone()).contains("not f32"));
        kernel.locals = vec![DType::F32];
        let Some(Stmt::MatTile(tile)) = kernel.body.last_mut() else {
            panic!("the tile is last");
        };
        // The column variable used as a value inside its four-lane group.
        tile.epilogue.as_mut().expect("set above").value =
            Expr::Cast(DType::F32, Box::new(Expr::Var(LoopVar(1))));
        assert!(codegen_error(kernel).contains("vectorized loop variable"));
    }
}
