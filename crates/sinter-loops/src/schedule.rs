//! Schedule transforms: rewrite a kernel's loops for speed without changing what it computes.
//!
//! Each transform takes a kernel the verifier accepts and returns one it still accepts, computing the
//! same buffers. The ones that only set a [`LoopKind`] (vectorize, unroll, parallelize) check the
//! legality rule the verifier checks (`verify.rs`), so they never produce a kernel it rejects;
//! the ones that restructure loops (split, remove unit loops) substitute variables in every index and
//! expression.
//!
//! - [`split_loop`] tiles one loop of extent `E` into an outer loop of `E / f` and an inner loop of
//!   `f`. It requires `f` to divide `E`: no remainder loop and no guard, so the result has no new
//!   control flow and its bounds proof is as exact as the original's.
//! - [`vectorize`] marks loops `Vectorized { width: 4 }`: for each innermost loop, the innermost
//!   enclosing loop (starting from itself) that is legal and has at least 4 iterations, such as the
//!   `n` loop of a matmul whose body holds the `k` reduction.
//! - [`unroll_loop`]/[`unroll_innermost`] mark loops `Unrolled { factor }`; code generation replicates
//!   the body, so the result is the same computation in the same order.
//! - [`parallelize`] marks the kernel's only top-level loop `Parallel` when its iterations provably
//!   touch disjoint elements of every buffer they write (the rule of
//!   [`parallel_violation`]).
//! - [`remove_unit_loops`] replaces serial loops of one iteration by their body with the variable
//!   set to 0, so that a batch-1 outer loop does not hide the loop worth parallelizing.
//!
//! None of these reorder floating-point operations: a vectorized loop computes each lane exactly as
//! the serial loop computes that iteration.
//!
//! [`schedule_kernel`] applies them in a fixed, documented order with [`ScheduleOptions`].

use crate::ir::*;
use crate::verify::{parallel_violation, vectorize_violations, VECTOR_WIDTH};
use std::ops::{Add, Mul};

/// Why a transform could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("kernel `{kernel}`: no loop binds {var}")]
    NoSuchLoop { kernel: String, var: LoopVar },
    #[error("kernel `{kernel}`: cannot split the loop over {var} of extent {extent} by {factor}: the factor must divide the extent")]
    NotDivisible {
        kernel: String,
        var: LoopVar,
        extent: usize,
        factor: usize,
    },
    #[error("kernel `{kernel}`: the loop over {var} is {kind:?}; {transform} needs a serial loop")]
    LoopNotSerial {
        kernel: String,
        var: LoopVar,
        kind: LoopKind,
        transform: &'static str,
    },
    #[error("kernel `{kernel}`: {transform}: factor {factor} is not supported ({reason})")]
    BadFactor {
        kernel: String,
        transform: &'static str,
        factor: u64,
        reason: &'static str,
    },
    #[error("kernel `{kernel}`: cannot parallelize: {reason}")]
    NotParallelizable { kernel: String, reason: String },
    #[error("vector width {width} is not supported: the backend generates width {VECTOR_WIDTH} (or 0/1 for none)")]
    UnsupportedVectorWidth { width: u32 },
}

/// What [`schedule_kernel`] should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleOptions {
    /// SIMD lanes for f32 loops: 4, or 0/1 for no vectorization. Other widths are an error.
    pub vector_width: u32,
    /// Whether to mark the outermost loop parallel when that is provably safe.
    pub parallel: bool,
    /// Unroll factor for innermost serial loops (reductions); 0 or 1 for none.
    pub unroll: u32,
}

impl Default for ScheduleOptions {
    /// Vectorize by 4, no threads (the runtime decides on threads), no unrolling.
    fn default() -> ScheduleOptions {
        ScheduleOptions {
            vector_width: VECTOR_WIDTH,
            parallel: false,
            unroll: 1,
        }
    }
}

/// The default pipeline:
///
/// 1. [`remove_unit_loops`].
/// 2. If `parallel`: when the kernel is a single loop with no loop inside it (a flat elementwise
///    kernel), it is first split into chunks (the largest factor that divides the extent, is a
///    multiple of 4, at most 4096 and leaves at least 2 chunks), so that the chunks run in parallel
///    and each chunk vectorizes. Then [`parallelize`], if it is legal (otherwise the kernel stays
///    serial: parallelism is an optimisation, not a requirement).
/// 3. [`vectorize`] with `vector_width`.
/// 4. [`unroll_innermost`] with `unroll`.
pub fn schedule_kernel(
    kernel: &Kernel,
    options: &ScheduleOptions,
) -> Result<Kernel, ScheduleError> {
    let vectorizing = match options.vector_width {
        0 | 1 => false,
        VECTOR_WIDTH => true,
        width => return Err(ScheduleError::UnsupportedVectorWidth { width }),
    };
    let mut out = remove_unit_loops(kernel);
    if options.parallel {
        if let [Stmt::Loop(lp)] = out.body.as_slice() {
            let flat = !lp.body.iter().any(contains_loop);
            if flat && lp.kind == LoopKind::Serial {
                let extent = lp.extent;
                let chunk = (1..=extent.min(4096) / 4)
                    .rev()
                    .map(|k| 4 * k)
                    .find(|&f| extent % f == 0 && extent / f >= 2);
                if let Some(chunk) = chunk {
                    out = split_loop(&out, lp.var, chunk)?;
                }
            }
        }
        if let Ok(parallel) = parallelize(&out) {
            out = parallel;
        }
    }
    if vectorizing {
        out = vectorize(&out, VECTOR_WIDTH)?;
    }
    if options.unroll >= 2 {
        out = unroll_innermost(&out, options.unroll);
    }
    Ok(out)
}

/// Whether `stmt` is or contains a loop (a matrix tile counts: it is loops over its depth).
fn contains_loop(stmt: &Stmt) -> bool {
    match stmt {
        Stmt::Loop(_) | Stmt::MatTile(_) => true,
        Stmt::If {
            then, otherwise, ..
        } => then.iter().chain(otherwise).any(contains_loop),
        _ => false,
    }
}

/// Finds the loop binding `var`, mutably.
fn find_loop_mut(stmts: &mut [Stmt], var: LoopVar) -> Option<&mut Loop> {
    for stmt in stmts {
        match stmt {
            Stmt::Loop(lp) => {
                if lp.var == var {
                    return Some(lp);
                }
                if let Some(found) = find_loop_mut(&mut lp.body, var) {
                    return Some(found);
                }
            }
            Stmt::If {
                then, otherwise, ..
            } => {
                if let Some(found) = find_loop_mut(then, var) {
                    return Some(found);
                }
                if let Some(found) = find_loop_mut(otherwise, var) {
                    return Some(found);
                }
            }
            _ => {}
        }
    }
    None
}

/// Rewrites every use of a loop variable: in index terms and in `Expr::Var`.
struct Substitution<'a> {
    var: LoopVar,
    /// The index terms that replace `coeff·var`, per unit coefficient.
    terms: &'a [(LoopVar, i64)],
    /// The expression that replaces `Expr::Var(var)`.
    value: &'a Expr,
}

impl Substitution<'_> {
    fn stmts(&self, stmts: &mut [Stmt]) -> Result<(), ()> {
        for stmt in stmts {
            match stmt {
                Stmt::Loop(lp) => self.stmts(&mut lp.body)?,
                Stmt::Let { init: value, .. } | Stmt::Assign { value, .. } => self.expr(value)?,
                Stmt::Store { index, value, .. } => {
                    self.index(index)?;
                    self.expr(value)?;
                }
                Stmt::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    self.expr(cond)?;
                    self.stmts(then)?;
                    self.stmts(otherwise)?;
                }
                Stmt::MatTile(tile) => {
                    self.index(&mut tile.a_index)?;
                    self.index(&mut tile.b_index)?;
                    self.index(&mut tile.c_index)?;
                    if let Some(epilogue) = &mut tile.epilogue {
                        self.expr(&mut epilogue.value)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Fails when a new coefficient overflows i64.
    fn index(&self, index: &mut Index) -> Result<(), ()> {
        if let Some(dynamic) = &mut index.dynamic {
            self.expr(&mut dynamic.value)?;
        }
        let coeff = index.coeff(self.var);
        if coeff == 0 {
            return Ok(());
        }
        let was_normalized = index.terms.windows(2).all(|w| w[0].0 < w[1].0);
        index.terms.retain(|&(v, _)| v != self.var);
        for &(v, unit) in self.terms {
            index.terms.push((v, coeff.checked_mul(unit).ok_or(())?));
        }
        if was_normalized {
            // Keep an index the verifier accepts acceptable; merging cannot overflow here because
            // the substituted variables are fresh or absent from the rest of the index.
            *index = std::mem::take(index).normalized();
        }
        Ok(())
    }

    fn expr(&self, expr: &mut Expr) -> Result<(), ()> {
        match expr {
            Expr::Const(_) | Expr::Local(_) => {}
            Expr::Var(v) => {
                if *v == self.var {
                    *expr = self.value.clone();
                }
            }
            Expr::Load { index, .. } => self.index(index)?,
            Expr::Unary(_, a) | Expr::Cast(_, a) => self.expr(a)?,
            Expr::Binary(_, a, b) | Expr::Cmp(_, a, b) => {
                self.expr(a)?;
                self.expr(b)?;
            }
            Expr::Fma(a, b, c)
            | Expr::Select {
                cond: a,
                then: b,
                otherwise: c,
            } => {
                self.expr(a)?;
                self.expr(b)?;
                self.expr(c)?;
            }
        }
        Ok(())
    }
}

/// Splits the loop over `var` (extent `E`) into `for var in 0..E/factor { for inner in 0..factor {..} }`
/// where the old variable's value is `var*factor + inner`; `inner` is a new loop variable. The loop
/// must be serial or parallel (the outer loop keeps its kind; splitting a parallel loop keeps its
/// iterations disjoint) and `factor` must divide `E`.
pub fn split_loop(kernel: &Kernel, var: LoopVar, factor: usize) -> Result<Kernel, ScheduleError> {
    let mut out = kernel.clone();
    let inner = LoopVar(out.n_loop_vars);
    let name = kernel.name.clone();
    let bad_factor = |reason| ScheduleError::BadFactor {
        kernel: name.clone(),
        transform: "split",
        factor: factor as u64,
        reason,
    };
    if factor == 0 {
        return Err(bad_factor("it must be at least 1"));
    }
    let Ok(factor_i64) = i64::try_from(factor) else {
        return Err(bad_factor("it does not fit i64"));
    };
    let Some(lp) = find_loop_mut(&mut out.body, var) else {
        return Err(ScheduleError::NoSuchLoop { kernel: name, var });
    };
    if !matches!(lp.kind, LoopKind::Serial | LoopKind::Parallel) {
        return Err(ScheduleError::LoopNotSerial {
            kernel: name,
            var,
            kind: lp.kind,
            transform: "split",
        });
    }
    if lp.extent % factor != 0 {
        return Err(ScheduleError::NotDivisible {
            kernel: name,
            var,
            extent: lp.extent,
            factor,
        });
    }
    let value = Expr::add(
        Expr::mul(Expr::Var(var), Expr::Const(Scalar::I64(factor_i64))),
        Expr::Var(inner),
    );
    let substitution = Substitution {
        var,
        terms: &[(var, factor_i64), (inner, 1)],
        value: &value,
    };
    let mut body = std::mem::take(&mut lp.body);
    if substitution.stmts(&mut body).is_err() {
        return Err(bad_factor(
            "an index coefficient times the factor overflows i64",
        ));
    }
    lp.extent /= factor;
    lp.body = vec![Stmt::Loop(Loop {
        var: inner,
        extent: factor,
        kind: LoopKind::Serial,
        body,
    })];
    out.n_loop_vars += 1;
    Ok(out)
}

/// Marks loops `Vectorized { width }` where legal: for each innermost loop, the innermost enclosing
/// serial loop (itself first) that passes [`vectorize_violations`] and has at least `width`
/// iterations. A loop that contains a vectorized loop is never vectorized. `width` must be 4.
pub fn vectorize(kernel: &Kernel, width: u32) -> Result<Kernel, ScheduleError> {
    if width != VECTOR_WIDTH {
        return Err(ScheduleError::UnsupportedVectorWidth { width });
    }
    let mut out = kernel.clone();
    vectorize_stmts(kernel, &mut out.body, width);
    Ok(out)
}

/// Returns whether `stmts` contain a vectorized loop after the rewrite.
fn vectorize_stmts(kernel: &Kernel, stmts: &mut [Stmt], width: u32) -> bool {
    let mut any = false;
    for stmt in stmts {
        match stmt {
            Stmt::Loop(lp) => {
                let inside = vectorize_stmts(kernel, &mut lp.body, width);
                if inside || matches!(lp.kind, LoopKind::Vectorized { .. }) {
                    any = true;
                    continue;
                }
                if lp.kind == LoopKind::Serial
                    && lp.extent >= width as usize
                    && vectorize_violations(kernel, lp).is_empty()
                {
                    lp.kind = LoopKind::Vectorized { width };
                    any = true;
                }
            }
            Stmt::If {
                then, otherwise, ..
            } => {
                let a = vectorize_stmts(kernel, then, width);
                let b = vectorize_stmts(kernel, otherwise, width);
                any |= a || b;
            }
            _ => {}
        }
    }
    any
}

/// Marks the loop over `var` `Unrolled { factor }` (`factor >= 2`; the loop must be serial).
pub fn unroll_loop(kernel: &Kernel, var: LoopVar, factor: u32) -> Result<Kernel, ScheduleError> {
    let mut out = kernel.clone();
    if factor < 2 {
        return Err(ScheduleError::BadFactor {
            kernel: kernel.name.clone(),
            transform: "unroll",
            factor: u64::from(factor),
            reason: "it must be at least 2",
        });
    }
    let Some(lp) = find_loop_mut(&mut out.body, var) else {
        return Err(ScheduleError::NoSuchLoop {
            kernel: kernel.name.clone(),
            var,
        });
    };
    if lp.kind != LoopKind::Serial {
        return Err(ScheduleError::LoopNotSerial {
            kernel: kernel.name.clone(),
            var,
            kind: lp.kind,
            transform: "unroll",
        });
    }
    lp.kind = LoopKind::Unrolled { factor };
    Ok(out)
}

/// Marks every serial loop that contains no loop and has at least `factor` iterations
/// `Unrolled { factor }` (typically the reduction loop of a matmul or convolution). A factor below 2
/// leaves the kernel unchanged.
pub fn unroll_innermost(kernel: &Kernel, factor: u32) -> Kernel {
    fn walk(stmts: &mut [Stmt], factor: u32) {
        for stmt in stmts {
            match stmt {
                Stmt::Loop(lp) => {
                    if lp.body.iter().any(contains_loop) {
                        walk(&mut lp.body, factor);
                    } else if lp.kind == LoopKind::Serial && lp.extent >= factor as usize {
                        lp.kind = LoopKind::Unrolled { factor };
                    }
                }
                Stmt::If {
                    then, otherwise, ..
                } => {
                    walk(then, factor);
                    walk(otherwise, factor);
                }
                _ => {}
            }
        }
    }
    let mut out = kernel.clone();
    if factor >= 2 {
        walk(&mut out.body, factor);
    }
    out
}

/// Marks the kernel's loop `Parallel`. Requires the body to be exactly one serial loop with at least
/// 2 iterations whose iterations provably touch disjoint elements of every buffer they write (see
/// [`parallel_violation`]). A kernel that is already parallel is returned unchanged.
pub fn parallelize(kernel: &Kernel) -> Result<Kernel, ScheduleError> {
    let err = |reason: String| ScheduleError::NotParallelizable {
        kernel: kernel.name.clone(),
        reason,
    };
    let [Stmt::Loop(lp)] = kernel.body.as_slice() else {
        return Err(err(format!(
            "the body must be a single loop; it has {} top-level statements{}",
            kernel.body.len(),
            if kernel.body.len() == 1 {
                " (not a loop)"
            } else {
                ""
            }
        )));
    };
    match lp.kind {
        LoopKind::Parallel => return Ok(kernel.clone()),
        LoopKind::Serial => {}
        kind => return Err(err(format!("the loop is already {kind:?}"))),
    }
    if lp.extent < 2 {
        return Err(err(format!("the loop has {} iteration(s)", lp.extent)));
    }
    parallel_violation(lp).map_err(err)?;
    let mut out = kernel.clone();
    if let [Stmt::Loop(lp)] = out.body.as_mut_slice() {
        lp.kind = LoopKind::Parallel;
    }
    Ok(out)
}

/// Replaces every serial loop of extent 1 by its body, with its variable replaced by 0 (dropped from
/// indices, `0` as a value). The locals the body declares then live until the end of the enclosing
/// block, which changes nothing: a local is declared once and was not used after the loop.
pub fn remove_unit_loops(kernel: &Kernel) -> Kernel {
    fn walk(stmts: Vec<Stmt>) -> Vec<Stmt> {
        let mut out = Vec::with_capacity(stmts.len());
        for stmt in stmts {
            match stmt {
                Stmt::Loop(mut lp) if lp.extent == 1 && lp.kind == LoopKind::Serial => {
                    let zero = Expr::Const(Scalar::I64(0));
                    let substitution = Substitution {
                        var: lp.var,
                        terms: &[],
                        value: &zero,
                    };
                    // Dropping terms cannot overflow.
                    let _ = substitution.stmts(&mut lp.body);
                    out.extend(walk(lp.body));
                }
                Stmt::Loop(mut lp) => {
                    lp.body = walk(lp.body);
                    out.push(Stmt::Loop(lp));
                }
                Stmt::If {
                    cond,
                    then,
                    otherwise,
                } => out.push(Stmt::If {
                    cond,
                    then: walk(then),
                    otherwise: walk(otherwise),
                }),
                other => out.push(other),
            }
        }
        out
    }
    let mut out = kernel.clone();
    out.body = walk(std::mem::take(&mut out.body));
    out
}
