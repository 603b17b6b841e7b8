//! Building kernels: a block stack for nested loops, and constructors for expressions and indices.
//!
//! ```
//! use sinter_ir::DType;
//! use sinter_loops::{BufferRole, Expr, Index, KernelBuilder};
//!
//! // y[i] = relu(x[i]) for 8 elements.
//! let mut kb = KernelBuilder::new("relu", vec!["%1".into()]);
//! let x = kb.buffer("x", DType::F32, 8, BufferRole::Input);
//! let y = kb.buffer("y", DType::F32, 8, BufferRole::Output);
//! kb.loop_(8, |kb, i| {
//!     let v = Expr::load(x, Index::var(i));
//!     kb.store(y, Index::var(i), Expr::max(v, Expr::f32(0.0)));
//! });
//! let kernel = kb.finish();
//! assert_eq!(kernel.buffers.len(), 2);
//! ```

use crate::ir::*;
use sinter_ir::DType;

pub struct KernelBuilder {
    name: String,
    origins: Vec<String>,
    buffers: Vec<BufferDecl>,
    locals: Vec<DType>,
    n_loop_vars: u32,
    /// The innermost open block is last; `finish` needs exactly the outermost one.
    blocks: Vec<Vec<Stmt>>,
}

impl KernelBuilder {
    pub fn new(name: impl Into<String>, origins: Vec<String>) -> KernelBuilder {
        KernelBuilder {
            name: name.into(),
            origins,
            buffers: Vec::new(),
            locals: Vec::new(),
            n_loop_vars: 0,
            blocks: vec![Vec::new()],
        }
    }

    pub fn buffer(
        &mut self,
        name: impl Into<String>,
        dtype: DType,
        len: usize,
        role: BufferRole,
    ) -> BufferId {
        self.buffers.push(BufferDecl {
            name: name.into(),
            dtype,
            len,
            role,
        });
        BufferId(self.buffers.len() as u32 - 1)
    }

    fn push(&mut self, stmt: Stmt) {
        self.blocks
            .last_mut()
            .expect("the outermost block is never popped before finish")
            .push(stmt);
    }

    fn in_block(&mut self, body: impl FnOnce(&mut Self)) -> Vec<Stmt> {
        self.blocks.push(Vec::new());
        body(self);
        self.blocks.pop().expect("pushed above")
    }

    /// Declares a new local of `dtype` initialised to `init`, in the current block.
    pub fn local(&mut self, dtype: DType, init: Expr) -> Local {
        self.locals.push(dtype);
        let local = Local(self.locals.len() as u32 - 1);
        self.push(Stmt::Let { local, init });
        local
    }

    pub fn assign(&mut self, local: Local, value: Expr) {
        self.push(Stmt::Assign { local, value });
    }

    pub fn store(&mut self, buf: BufferId, index: Index, value: Expr) {
        self.push(Stmt::Store { buf, index, value });
    }

    /// A serial loop `for var in 0..extent { body }`.
    pub fn loop_(&mut self, extent: usize, body: impl FnOnce(&mut Self, LoopVar)) {
        let var = LoopVar(self.n_loop_vars);
        self.n_loop_vars += 1;
        let body = self.in_block(|kb| body(kb, var));
        self.push(Stmt::Loop(Loop {
            var,
            extent,
            kind: LoopKind::Serial,
            body,
        }));
    }

    /// A perfect nest of serial loops, outermost first; `body` gets the variables in the same order.
    pub fn loops(&mut self, extents: &[usize], body: impl FnOnce(&mut Self, &[LoopVar])) {
        fn nest(
            kb: &mut KernelBuilder,
            extents: &[usize],
            vars: &mut Vec<LoopVar>,
            body: &mut Option<impl FnOnce(&mut KernelBuilder, &[LoopVar])>,
        ) {
            match extents.split_first() {
                None => (body.take().expect("the body runs once"))(kb, vars),
                Some((&extent, rest)) => kb.loop_(extent, |kb, var| {
                    vars.push(var);
                    nest(kb, rest, vars, body);
                }),
            }
        }
        let mut vars = Vec::with_capacity(extents.len());
        nest(self, extents, &mut vars, &mut Some(body));
    }

    /// A loop variable bound by no loop: a tile epilogue's row or column.
    pub fn free_var(&mut self) -> LoopVar {
        self.n_loop_vars += 1;
        LoopVar(self.n_loop_vars - 1)
    }

    /// A local declared by no `let`: a tile epilogue's accumulator.
    pub fn free_local(&mut self, dtype: DType) -> Local {
        self.locals.push(dtype);
        Local(self.locals.len() as u32 - 1)
    }

    /// Appends a matrix tile to the current block.
    pub fn mat_tile(&mut self, tile: MatTile) {
        self.push(Stmt::MatTile(Box::new(tile)));
    }

    pub fn if_(
        &mut self,
        cond: Expr,
        then: impl FnOnce(&mut Self),
        otherwise: impl FnOnce(&mut Self),
    ) {
        let then = self.in_block(then);
        let otherwise = self.in_block(otherwise);
        self.push(Stmt::If {
            cond,
            then,
            otherwise,
        });
    }

    pub fn finish(mut self) -> Kernel {
        assert_eq!(self.blocks.len(), 1, "a block was left open");
        Kernel {
            name: self.name,
            origins: self.origins,
            buffers: self.buffers,
            locals: self.locals,
            n_loop_vars: self.n_loop_vars,
            body: self.blocks.pop().expect("the outermost block"),
        }
    }
}

impl Index {
    /// Just `var`.
    pub fn var(var: LoopVar) -> Index {
        Index::affine([(var, 1)], 0)
    }

    /// `offset + Σ vars[k]·strides[k]`.
    pub fn strided(vars: &[LoopVar], strides: &[i64], offset: i64) -> Index {
        debug_assert_eq!(vars.len(), strides.len());
        Index::affine(vars.iter().copied().zip(strides.iter().copied()), offset)
    }

    /// The row-major element index of `vars` in a tensor of `shape`.
    pub fn row_major(vars: &[LoopVar], shape: &[usize]) -> Index {
        Index::strided(vars, &row_major_strides(shape), 0)
    }

    /// `self · factor`, the dynamic term's stride included.
    pub fn scaled(&self, factor: i64) -> Index {
        Index {
            terms: self.terms.iter().map(|&(v, c)| (v, c * factor)).collect(),
            offset: self.offset * factor,
            dynamic: self.dynamic.as_ref().map(|d| {
                Box::new(DynamicTerm {
                    stride: d.stride * factor,
                    ..(**d).clone()
                })
            }),
        }
        .normalized()
    }

    /// `Σ coords[d] · strides[d]`: the element at coordinates `coords` (affine indices) of a
    /// tensor with `strides` (broadcast dims have stride 0 and contribute nothing).
    pub fn at_coords(coords: &[Index], strides: &[i64]) -> Index {
        debug_assert_eq!(coords.len(), strides.len());
        coords
            .iter()
            .zip(strides)
            .filter(|(_, &s)| s != 0)
            .fold(Index::constant(0), |acc, (c, &s)| acc.plus(c.scaled(s)))
    }

    /// `self + other`; at most one of them may have a dynamic term.
    pub fn plus(mut self, other: Index) -> Index {
        self.terms.extend(other.terms);
        self.offset += other.offset;
        debug_assert!(self.dynamic.is_none() || other.dynamic.is_none());
        self.dynamic = self.dynamic.or(other.dynamic);
        self.normalized()
    }
}

/// Row-major strides of `shape`, in elements.
pub fn row_major_strides(shape: &[usize]) -> Vec<i64> {
    let mut strides = vec![1i64; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * shape[k + 1] as i64;
    }
    strides
}

impl Expr {
    pub fn f32(value: f32) -> Expr {
        Expr::Const(Scalar::F32(value))
    }

    pub fn constant(scalar: Scalar) -> Expr {
        Expr::Const(scalar)
    }

    pub fn load(buf: BufferId, index: Index) -> Expr {
        Expr::Load { buf, index }
    }

    pub fn unary(op: UnaryOp, a: Expr) -> Expr {
        Expr::Unary(op, Box::new(a))
    }

    pub fn binary(op: BinaryOp, a: Expr, b: Expr) -> Expr {
        Expr::Binary(op, Box::new(a), Box::new(b))
    }

    pub fn cmp(op: CmpOp, a: Expr, b: Expr) -> Expr {
        Expr::Cmp(op, Box::new(a), Box::new(b))
    }

    pub fn fma(a: Expr, b: Expr, c: Expr) -> Expr {
        Expr::Fma(Box::new(a), Box::new(b), Box::new(c))
    }

    pub fn select(cond: Expr, then: Expr, otherwise: Expr) -> Expr {
        Expr::Select {
            cond: Box::new(cond),
            then: Box::new(then),
            otherwise: Box::new(otherwise),
        }
    }

    pub fn cast(dtype: DType, a: Expr) -> Expr {
        Expr::Cast(dtype, Box::new(a))
    }

    pub fn max(a: Expr, b: Expr) -> Expr {
        Expr::binary(BinaryOp::Max, a, b)
    }

    pub fn min(a: Expr, b: Expr) -> Expr {
        Expr::binary(BinaryOp::Min, a, b)
    }
}

/// `a + b` etc. build [`Expr::Binary`] nodes; `Expr::add(a, b)` reads the same with the trait in scope.
macro_rules! impl_binary_operator {
    ($($trait:ident $method:ident $op:ident),*) => {$(
        impl std::ops::$trait for Expr {
            type Output = Expr;

            fn $method(self, rhs: Expr) -> Expr {
                Expr::binary(BinaryOp::$op, self, rhs)
            }
        }
    )*};
}
impl_binary_operator!(Add add Add, Sub sub Sub, Mul mul Mul, Div div Div);
