//! The loop-nest IR: what one kernel does, as nested counted loops over flat buffers.
//!
//! A [`Kernel`] is the unit of code generation. It reads and writes *buffers* ([`BufferDecl`]): flat,
//! row-major arrays whose element type and length are fixed when the kernel is built. Shapes are
//! concrete: a graph with symbolic dims is specialised to concrete input shapes before lowering, so
//! every loop extent and every buffer length is a number.
//!
//! The body is a tree of [`Stmt`]s. A [`Loop`] runs its body for `var = 0, 1, .., extent-1`. Memory is
//! touched only by [`Expr::Load`] and [`Stmt::Store`], whose element index is an [`Index`]: an affine
//! function of the enclosing loop variables, optionally plus one *data-dependent* term (Gather-style
//! indices read from a tensor). Scalars live in [`Local`]s: mutable, typed, scoped to the block that
//! declares them (`Stmt::Let`), which is how reductions accumulate.
//!
//! **Invariant: every access is in bounds by construction.** The verifier (`verify.rs`) proves, by
//! interval arithmetic over the loop extents, that every affine index lies in `0..len` of its buffer.
//! A data-dependent term is range-checked by the generated code itself: the kernel returns a non-zero
//! status instead of touching memory (see [`DynamicTerm`]). Code generation may therefore emit
//! unchecked loads and stores for everything the verifier accepted.
//!
//! **Evaluation order.** Statements run in order; a loop's iterations run in increasing `var` order
//! unless the loop's [`LoopKind`] says otherwise. `Vectorized` and `Parallel` are *schedule* facts that
//! a transform may set only when it has proved them legal (see `schedule.rs`); they never change the
//! result beyond floating-point reassociation that the transform documents.

use sinter_ir::DType;
use std::fmt;

/// A buffer parameter of a kernel, by position in [`Kernel::buffers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BufferId(pub u32);

/// A loop induction variable, unique within a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LoopVar(pub u32);

/// A scalar local variable, unique within a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Local(pub u32);

/// How a kernel uses a buffer. The runtime binds `Input` and `Weight` buffers read-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BufferRole {
    /// A value produced elsewhere (a graph input or another kernel's output).
    Input,
    /// A constant of the graph, bound once at compile time.
    Weight,
    /// A value this kernel produces.
    Output,
    /// Kernel-private scratch memory (packed panels, padded copies); its contents do not outlive the call.
    Scratch,
}

/// One buffer a kernel touches: `len` elements of `dtype`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct BufferDecl {
    /// For dumps: the graph value or constant it holds (`%3`, `@conv1.weight`) or a scratch name.
    pub name: String,
    pub dtype: DType,
    pub len: usize,
    pub role: BufferRole,
}

/// A compile-time scalar constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    F32(f32),
    F64(f64),
    I64(i64),
    I32(i32),
    I8(i8),
    U8(u8),
    Bool(bool),
}

impl Scalar {
    pub fn dtype(self) -> DType {
        match self {
            Scalar::F32(_) => DType::F32,
            Scalar::F64(_) => DType::F64,
            Scalar::I64(_) => DType::I64,
            Scalar::I32(_) => DType::I32,
            Scalar::I8(_) => DType::I8,
            Scalar::U8(_) => DType::U8,
            Scalar::Bool(_) => DType::Bool,
        }
    }

    /// `value` converted to `dtype` with numpy `astype` rules.
    pub fn from_f64(dtype: DType, value: f64) -> Scalar {
        match dtype {
            DType::F32 => Scalar::F32(value as f32),
            DType::F64 => Scalar::F64(value),
            DType::I64 => Scalar::I64(value as i64),
            DType::I32 => Scalar::I32(value as i32),
            DType::I8 => Scalar::I8(value as i8),
            DType::U8 => Scalar::U8(value as u8),
            DType::Bool => Scalar::Bool(value != 0.0),
            // DType is non_exhaustive; new dtypes must be added here before they can be lowered.
            _ => unreachable!("dtype {dtype:?} has no loop-IR scalar"),
        }
    }

    /// Zero (false) of `dtype`.
    pub fn zero(dtype: DType) -> Scalar {
        Scalar::from_f64(dtype, 0.0)
    }
}

/// `offset + Σ coeff·var`, in elements, plus at most one data-dependent term.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Index {
    /// Sorted by variable, no zero coefficients, no repeated variable (see [`Index::normalized`]).
    pub terms: Vec<(LoopVar, i64)>,
    pub offset: i64,
    pub dynamic: Option<Box<DynamicTerm>>,
}

/// `stride · normalize(value)`, where `value` is an integer read at run time (a Gather index).
///
/// Negative values count from the end (`value + extent`, as ONNX Gather does). A normalised value
/// outside `0..extent` makes the kernel return [`STATUS_INDEX_OUT_OF_RANGE`] before the access
/// happens. For bounds proofs the term ranges over `0..extent`.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicTerm {
    pub value: Expr,
    pub extent: i64,
    pub stride: i64,
}

/// The status a kernel returns when a data-dependent index is out of range.
pub const STATUS_INDEX_OUT_OF_RANGE: i32 = 1;

impl Index {
    pub fn constant(offset: i64) -> Index {
        Index {
            terms: Vec::new(),
            offset,
            dynamic: None,
        }
    }

    /// `Σ coeff·var + offset`, normalized.
    pub fn affine(terms: impl IntoIterator<Item = (LoopVar, i64)>, offset: i64) -> Index {
        Index {
            terms: terms.into_iter().collect(),
            offset,
            dynamic: None,
        }
        .normalized()
    }

    /// Sorts terms by variable, merges repeats and drops zero coefficients.
    pub fn normalized(mut self) -> Index {
        self.terms.sort_by_key(|&(var, _)| var);
        let mut merged: Vec<(LoopVar, i64)> = Vec::with_capacity(self.terms.len());
        for (var, coeff) in self.terms {
            match merged.last_mut() {
                Some((last, c)) if *last == var => *c += coeff,
                _ => merged.push((var, coeff)),
            }
        }
        merged.retain(|&(_, c)| c != 0);
        self.terms = merged;
        self
    }

    /// The coefficient of `var` (0 when absent).
    pub fn coeff(&self, var: LoopVar) -> i64 {
        self.terms
            .iter()
            .find(|&&(v, _)| v == var)
            .map_or(0, |&(_, c)| c)
    }
}

/// Elementwise unary operations. Float-only ones are marked; the verifier checks operand types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Abs,
    /// Logical not (bool) or bitwise not (integers).
    Not,
    // Float-only from here on.
    Sqrt,
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Erf,
    Floor,
    Ceil,
    /// Round half to even, as ONNX Round.
    Round,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
}

/// Elementwise binary operations on operands of one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    /// Float division, or integer division truncating toward zero (division by zero yields 0, never a
    /// trap: generated code must not fault on data).
    Div,
    /// Remainder with the sign of the dividend (C `fmod` / Rust `%`); by zero yields 0 for integers.
    Rem,
    /// Float `max`/`min` propagate NaN from either operand, as ONNX Max/Min do.
    Max,
    Min,
    /// Float power.
    Pow,
    And,
    Or,
    Xor,
}

/// Comparisons; the result is bool. Float comparisons with NaN are false except `Ne`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A scalar expression. Every expression has one dtype, computed by [`Kernel::expr_dtype`].
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Const(Scalar),
    /// The current value of a loop variable, as i64.
    Var(LoopVar),
    Local(Local),
    Load {
        buf: BufferId,
        index: Index,
    },
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `a * b + c`, fused where the target has FMA.
    Fma(Box<Expr>, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// `if cond { then } else { otherwise }`; both arms are evaluated (they must not trap).
    Select {
        cond: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    /// Conversion with numpy `astype` rules (float to int truncates toward zero, saturating).
    Cast(DType, Box<Expr>),
}

impl Expr {
    /// The direct sub-expressions, a load's data-dependent index value included: what a walk over
    /// an expression tree recurses into.
    pub fn children(&self) -> impl Iterator<Item = &Expr> {
        let (a, b, c): (Option<&Expr>, Option<&Expr>, Option<&Expr>) = match self {
            Expr::Const(_) | Expr::Var(_) | Expr::Local(_) => (None, None, None),
            Expr::Load { index, .. } => (index.dynamic.as_ref().map(|d| &d.value), None, None),
            Expr::Unary(_, a) | Expr::Cast(_, a) => (Some(a), None, None),
            Expr::Binary(_, a, b) | Expr::Cmp(_, a, b) => (Some(a), Some(b), None),
            Expr::Fma(a, b, c)
            | Expr::Select {
                cond: a,
                then: b,
                otherwise: c,
            } => (Some(a), Some(b), Some(c)),
        };
        a.into_iter().chain(b).chain(c)
    }
}

/// Whether a loop may be executed other than one iteration after another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoopKind {
    Serial,
    /// Iterations run `width` at a time in SIMD lanes, with a scalar tail for `extent % width`.
    Vectorized {
        width: u32,
    },
    /// The body is replicated `factor` times per trip, with a tail for `extent % factor`.
    Unrolled {
        factor: u32,
    },
    /// Iterations are independent and may run on different threads.
    Parallel,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Loop {
    pub var: LoopVar,
    pub extent: usize,
    pub kind: LoopKind,
    pub body: Vec<Stmt>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    Loop(Loop),
    /// Declares `local` (of the dtype given in [`Kernel::locals`]) for the rest of the enclosing block.
    Let {
        local: Local,
        init: Expr,
    },
    Assign {
        local: Local,
        value: Expr,
    },
    Store {
        buf: BufferId,
        index: Index,
        value: Expr,
    },
    If {
        cond: Expr,
        then: Vec<Stmt>,
        otherwise: Vec<Stmt>,
    },
    /// A register-blocked block of a matrix product (the GEMM microkernel); see [`MatTile`].
    MatTile(Box<MatTile>),
}

/// The most rows a [`MatTile`] may have: 4 rows of 8 columns keep 8 accumulator vectors, 2 vectors
/// of `b` and one broadcast of `a` live, under the 12 Cranelift keeps in registers without spilling
/// (DESIGN.md, "Facts measured here").
pub const MAX_TILE_ROWS: u32 = 4;

/// The most columns a [`MatTile`] may have (two 4-lane vectors).
pub const MAX_TILE_COLS: u32 = 8;

/// `rows x cols` outputs of an f32 matrix product, computed in registers:
///
/// ```text
/// for r < rows, c < cols:
///     acc = accumulate ? c[c_at(r, c)] : 0.0
///     for k < depth: acc = fma(a[a_at(r, k)], b[b_at(k, c)], acc)      (in increasing k)
///     c[c_at(r, c)] = epilogue(acc, r, c)       (acc itself without an epilogue)
///
/// a_at(r, k) = a_index + r * a_row + k * a_depth      (any strides: `a` is read one scalar at a time)
/// b_at(k, c) = b_index + k * b_depth + c              (contiguous in c: a packed panel or a matrix row)
/// c_at(r, c) = c_index + r * c_row + c                (contiguous in c)
/// ```
///
/// The statement is the product's inner kernel; the loops around it (over tiles, over blocks of
/// `depth`) and the packing of panels into scratch buffers are ordinary loop IR. Every element is
/// accumulated by the same fma chain in the same order whatever the tile size, so the interpreter
/// and the JIT agree bit for bit.
///
/// Rules (checked by the verifier): `a`, `b`, `c` are f32 buffers, `c` is written (output or
/// scratch) and no other access of the tile writes; `1 <= rows <= MAX_TILE_ROWS`,
/// `1 <= cols <= MAX_TILE_COLS`, `depth >= 1`; the three base indices are affine (no data-dependent
/// term) in the enclosing loops; every element the formulas reach is in bounds; a tile is never inside
/// a vectorized loop.
#[derive(Clone, Debug, PartialEq)]
pub struct MatTile {
    pub rows: u32,
    pub cols: u32,
    pub depth: usize,
    pub a: BufferId,
    pub a_index: Index,
    pub a_row: i64,
    pub a_depth: i64,
    pub b: BufferId,
    pub b_index: Index,
    pub b_depth: i64,
    pub c: BufferId,
    pub c_index: Index,
    pub c_row: i64,
    /// Start from the values already in `c` (a later block of `depth`) instead of zero.
    pub accumulate: bool,
    pub epilogue: Option<TileEpilogue>,
}

/// What a [`MatTile`] stores instead of the bare sum: `value`, evaluated per element with `acc`
/// holding the sum, `row` bound to `r` and `col` to `c`. It may load (bias, residual) but not store;
/// `col` may appear only in load indices, with coefficient 0 or 1 (the JIT evaluates it four columns
/// at a time, as in a vectorized loop). `row` and `col` are loop variables of the kernel used by no
/// loop; `acc` is an f32 local declared nowhere else.
#[derive(Clone, Debug, PartialEq)]
pub struct TileEpilogue {
    pub row: LoopVar,
    pub col: LoopVar,
    pub acc: Local,
    pub value: Expr,
}

/// One unit of code generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// A symbol-safe name derived from the graph node(s) it came from (`conv1_relu`).
    pub name: String,
    /// The graph nodes this kernel computes, for dumps and error messages.
    pub origins: Vec<String>,
    pub buffers: Vec<BufferDecl>,
    /// The dtype of each local, by `Local.0`.
    pub locals: Vec<DType>,
    /// How many loop variables the kernel uses (`LoopVar.0 < n_loop_vars`).
    pub n_loop_vars: u32,
    pub body: Vec<Stmt>,
}

impl Kernel {
    /// A rough count of the work one call does: every store, assignment and `let` counts once
    /// per iteration of its enclosing loops, a tile `rows * cols * depth` times. The runtime uses
    /// it to decide whether splitting a parallel loop over threads pays for the dispatch.
    pub fn work(&self) -> u64 {
        fn block(stmts: &[Stmt]) -> u64 {
            stmts.iter().map(stmt).fold(0, u64::saturating_add)
        }
        fn stmt(stmt: &Stmt) -> u64 {
            match stmt {
                Stmt::Loop(lp) => (lp.extent as u64).saturating_mul(block(&lp.body)),
                Stmt::Let { .. } | Stmt::Assign { .. } | Stmt::Store { .. } => 1,
                Stmt::If {
                    then, otherwise, ..
                } => 1 + block(then).max(block(otherwise)),
                Stmt::MatTile(tile) => u64::from(tile.rows)
                    .saturating_mul(u64::from(tile.cols))
                    .saturating_mul(tile.depth as u64),
            }
        }
        block(&self.body)
    }

    pub fn buffer(&self, id: BufferId) -> &BufferDecl {
        &self.buffers[id.0 as usize]
    }

    pub fn local_dtype(&self, local: Local) -> DType {
        self.locals[local.0 as usize]
    }

    /// The dtype of `expr` by the typing rules (see `verify.rs`), or `None` when it names a buffer or
    /// local the kernel does not have. The operands' dtypes are not checked against each other: this
    /// is the result type of an expression the verifier accepts (a `Binary` has its left operand's
    /// dtype, a `Select` its `then` arm's).
    pub fn expr_dtype(&self, expr: &Expr) -> Option<DType> {
        match expr {
            Expr::Const(scalar) => Some(scalar.dtype()),
            Expr::Var(_) => Some(DType::I64),
            Expr::Local(local) => self.locals.get(local.0 as usize).copied(),
            Expr::Load { buf, .. } => self.buffers.get(buf.0 as usize).map(|b| b.dtype),
            Expr::Unary(_, a) | Expr::Binary(_, a, _) | Expr::Fma(a, _, _) => self.expr_dtype(a),
            Expr::Select { then, .. } => self.expr_dtype(then),
            Expr::Cmp(..) => Some(DType::Bool),
            Expr::Cast(dtype, _) => Some(*dtype),
        }
    }
}

impl fmt::Display for BufferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}", self.0)
    }
}

impl fmt::Display for LoopVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

impl fmt::Display for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}
