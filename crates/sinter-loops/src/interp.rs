//! A plain interpreter of the loop IR: the oracle that generated code is tested against.
//!
//! It walks the statement tree one iteration at a time and implements the value semantics the JIT
//! must reproduce exactly (see the crate's `ir.rs` docs and the shared semantics):
//!
//! - integers wrap (two's complement); integer `Div`/`Rem` by zero give 0 and `MIN / -1` wraps;
//! - float `Max`/`Min` propagate NaN from either operand, and `max(-0, +0) = +0`, `min(-0, +0) = -0`
//!   whatever the operand order;
//! - `Cast` follows Rust `as`: float to integer truncates and saturates (NaN to 0), integer to integer
//!   wraps, to bool is `!= 0`, bool to a number is 0 or 1;
//! - `Round` is half to even and `Fma` rounds once (`mul_add`);
//! - a dynamic index term is normalised (`v < 0` adds the extent) and an out-of-range value makes the
//!   kernel return [`STATUS_INDEX_OUT_OF_RANGE`] at once.
//!
//! `Vectorized`, `Unrolled` and `Parallel` loops run serially: they are schedule facts that must not
//! change results. The interpreter never panics, whatever the kernel: an access outside its buffer, a
//! type mismatch or an undeclared local is an [`InterpError`] naming the kernel.

use crate::ir::*;
use crate::program::{BufferSource, Program};
use sinter_ir::{DType, Tensor, TensorData};
use sinter_ref::erf_f64;

/// Why a kernel or program could not be interpreted. Kernels that pass verification only fail with
/// `Status` (from `run_program`) or binding problems.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InterpError {
    #[error("kernel `{kernel}`: {message}")]
    Kernel { kernel: String, message: String },
    #[error("kernel `{kernel}` returned status {status}")]
    Status { kernel: String, status: i32 },
    #[error("missing input `{name}`")]
    MissingInput { name: String },
    #[error("input `{name}`: expected {expected_dtype}{expected_shape:?}, got {dtype}{shape:?}")]
    InputMismatch {
        name: String,
        expected_dtype: DType,
        expected_shape: Vec<usize>,
        dtype: DType,
        shape: Vec<usize>,
    },
    #[error("program: {0}")]
    Program(String),
}

/// Early exit from the statement walk: a status return or an error message.
enum Stop {
    Status(i32),
    Error(String),
}

type Eval<T> = Result<T, Stop>;

fn fail<T>(message: impl Into<String>) -> Eval<T> {
    Err(Stop::Error(message.into()))
}

/// Runs one kernel on `buffers` (one per `kernel.buffers`, same order, dtypes and lengths). Returns
/// the kernel's status: 0, or [`STATUS_INDEX_OUT_OF_RANGE`].
pub fn run_kernel(kernel: &Kernel, buffers: &mut [TensorData]) -> Result<i32, InterpError> {
    let err = |message: String| InterpError::Kernel {
        kernel: kernel.name.clone(),
        message,
    };
    if buffers.len() != kernel.buffers.len() {
        return Err(err(format!(
            "{} buffers given for {} parameters",
            buffers.len(),
            kernel.buffers.len()
        )));
    }
    for (idx, (decl, data)) in kernel.buffers.iter().zip(buffers.iter()).enumerate() {
        if decl.dtype != data.dtype() || decl.len != data.len() {
            return Err(err(format!(
                "buffer {idx} ({}) is declared {} x{} but bound to {} x{}",
                decl.name,
                decl.dtype,
                decl.len,
                data.dtype(),
                data.len()
            )));
        }
    }
    let mut machine = Machine {
        kernel,
        buffers,
        vars: vec![0; kernel.n_loop_vars as usize],
        locals: vec![None; kernel.locals.len()],
    };
    match machine.block(&kernel.body) {
        Ok(()) => Ok(0),
        Err(Stop::Status(status)) => Ok(status),
        Err(Stop::Error(message)) => Err(err(message)),
    }
}

/// Runs a whole program on named inputs and returns its outputs in order. A kernel that returns a
/// non-zero status stops the run with [`InterpError::Status`].
pub fn run_program(
    program: &Program,
    inputs: &[(&str, &Tensor)],
) -> Result<Vec<(String, Tensor)>, InterpError> {
    let mut storage: Vec<Option<TensorData>> = Vec::with_capacity(program.buffers.len());
    for buffer in &program.buffers {
        let data = match &buffer.source {
            BufferSource::Input { name } => {
                let Some((_, tensor)) = inputs.iter().find(|(n, _)| n == name) else {
                    return Err(InterpError::MissingInput { name: name.clone() });
                };
                if tensor.dtype() != buffer.dtype || tensor.shape() != buffer.shape.as_slice() {
                    return Err(InterpError::InputMismatch {
                        name: name.clone(),
                        expected_dtype: buffer.dtype,
                        expected_shape: buffer.shape.clone(),
                        dtype: tensor.dtype(),
                        shape: tensor.shape().to_vec(),
                    });
                }
                tensor.data().clone()
            }
            BufferSource::Weight(tensor) => tensor.data().clone(),
            BufferSource::Computed => TensorData::zeros(buffer.dtype, buffer.len()),
        };
        storage.push(Some(data));
    }
    program
        .check_bindings()
        .map_err(|e| InterpError::Program(e.to_string()))?;
    for call in &program.calls {
        let mut args = Vec::with_capacity(call.args.len());
        for &arg in &call.args {
            let slot = storage.get_mut(arg.0 as usize).and_then(Option::take);
            let Some(data) = slot else {
                // Put back what was taken so far is pointless: the run is over.
                return Err(InterpError::Program(format!(
                    "kernel `{}` binds buffer {arg} twice or a missing buffer",
                    call.kernel.name
                )));
            };
            args.push(data);
        }
        let status = run_kernel(&call.kernel, &mut args);
        for (&arg, data) in call.args.iter().zip(args) {
            storage[arg.0 as usize] = Some(data);
        }
        match status? {
            0 => {}
            status => {
                return Err(InterpError::Status {
                    kernel: call.kernel.name.clone(),
                    status,
                })
            }
        }
    }
    let mut outputs = Vec::with_capacity(program.outputs.len());
    for (name, id) in &program.outputs {
        let buffer = program
            .buffers
            .get(id.0 as usize)
            .ok_or_else(|| InterpError::Program(format!("output `{name}` names {id}")))?;
        let data = storage[id.0 as usize].clone().ok_or_else(|| {
            InterpError::Program(format!("output `{name}`: buffer {id} is missing"))
        })?;
        let tensor = Tensor::new(buffer.shape.clone(), data)
            .map_err(|e| InterpError::Program(format!("output `{name}`: {e}")))?;
        outputs.push((name.clone(), tensor));
    }
    Ok(outputs)
}

struct Machine<'a> {
    kernel: &'a Kernel,
    buffers: &'a mut [TensorData],
    vars: Vec<i64>,
    locals: Vec<Option<Scalar>>,
}

impl Machine<'_> {
    fn block(&mut self, stmts: &[Stmt]) -> Eval<()> {
        for stmt in stmts {
            self.stmt(stmt)?;
        }
        Ok(())
    }

    fn stmt(&mut self, stmt: &Stmt) -> Eval<()> {
        match stmt {
            Stmt::Loop(lp) => {
                let var = lp.var.0 as usize;
                if var >= self.vars.len() {
                    return fail(format!("loop variable {} is not declared", lp.var));
                }
                // Every loop kind runs serially: the kinds are schedule facts.
                for iter in 0..lp.extent {
                    self.vars[var] = iter as i64;
                    self.block(&lp.body)?;
                }
                Ok(())
            }
            Stmt::Let { local, init } | Stmt::Assign { local, value: init } => {
                let value = self.expr(init)?;
                let Some(&dtype) = self.kernel.locals.get(local.0 as usize) else {
                    return fail(format!("local {local} is not declared"));
                };
                if value.dtype() != dtype {
                    return fail(format!(
                        "local {local} of {dtype} assigned a {}",
                        value.dtype()
                    ));
                }
                if matches!(stmt, Stmt::Assign { .. }) && self.locals[local.0 as usize].is_none() {
                    return fail(format!("local {local} assigned before its `let`"));
                }
                self.locals[local.0 as usize] = Some(value);
                Ok(())
            }
            Stmt::Store { buf, index, value } => {
                let value = self.expr(value)?;
                let (buf_idx, elem) = self.address(*buf, index)?;
                store(&mut self.buffers[buf_idx], elem, value)
            }
            Stmt::If {
                cond,
                then,
                otherwise,
            } => match self.expr(cond)? {
                Scalar::Bool(true) => self.block(then),
                Scalar::Bool(false) => self.block(otherwise),
                other => fail(format!("`if` condition is {}, not bool", other.dtype())),
            },
            Stmt::MatTile(tile) => self.mat_tile(tile),
        }
    }

    /// A [`MatTile`] element by element: one fma chain per element in increasing `k`, the order the
    /// JIT's microkernel uses, so the two agree bit for bit.
    fn mat_tile(&mut self, tile: &MatTile) -> Eval<()> {
        let (a_buf, a_base) = self.address(tile.a, &tile.a_index)?;
        let (b_buf, b_base) = self.address(tile.b, &tile.b_index)?;
        let (c_buf, c_base) = self.address(tile.c, &tile.c_index)?;
        let element = |machine: &Self, buf: usize, base: usize, offset: i64| -> Eval<usize> {
            let elem = base as i64 + offset;
            let len = machine.buffers[buf].len();
            if elem < 0 || elem as u64 >= len as u64 {
                return fail(format!(
                    "tile access {elem} of buffer b{buf} ({}) is outside 0..{len}",
                    machine.kernel.buffers[buf].name
                ));
            }
            Ok(elem as usize)
        };
        let f32_at = |machine: &Self, buf: usize, elem: usize| -> Eval<f32> {
            match load(&machine.buffers[buf], elem) {
                Scalar::F32(v) => Ok(v),
                other => fail(format!("a tile operand is {}, not f32", other.dtype())),
            }
        };
        for r in 0..i64::from(tile.rows) {
            for c in 0..i64::from(tile.cols) {
                let c_elem = element(self, c_buf, c_base, r * tile.c_row + c)?;
                let mut acc = if tile.accumulate {
                    f32_at(self, c_buf, c_elem)?
                } else {
                    0.0
                };
                for k in 0..tile.depth as i64 {
                    let a_elem = element(self, a_buf, a_base, r * tile.a_row + k * tile.a_depth)?;
                    let b_elem = element(self, b_buf, b_base, k * tile.b_depth + c)?;
                    acc = f32_at(self, a_buf, a_elem)?.mul_add(f32_at(self, b_buf, b_elem)?, acc);
                }
                let value = match &tile.epilogue {
                    None => Scalar::F32(acc),
                    Some(epilogue) => {
                        let (row, col) = (epilogue.row.0 as usize, epilogue.col.0 as usize);
                        let acc_idx = epilogue.acc.0 as usize;
                        if row >= self.vars.len() || col >= self.vars.len() {
                            return fail("a tile epilogue variable is not declared");
                        }
                        if acc_idx >= self.locals.len() {
                            return fail(format!("local {} is not declared", epilogue.acc));
                        }
                        self.vars[row] = r;
                        self.vars[col] = c;
                        self.locals[acc_idx] = Some(Scalar::F32(acc));
                        let value = self.expr(&epilogue.value)?;
                        self.locals[acc_idx] = None;
                        value
                    }
                };
                store(&mut self.buffers[c_buf], c_elem, value)?;
            }
        }
        Ok(())
    }

    /// The buffer position and element index of an access, checked against the buffer's length.
    fn address(&mut self, buf: BufferId, index: &Index) -> Eval<(usize, usize)> {
        let buf_idx = buf.0 as usize;
        let Some(decl) = self.kernel.buffers.get(buf_idx) else {
            return fail(format!("buffer {buf} is not declared"));
        };
        let mut elem = index.offset;
        for &(var, coeff) in &index.terms {
            let Some(&value) = self.vars.get(var.0 as usize) else {
                return fail(format!("loop variable {var} is not declared"));
            };
            elem = elem.wrapping_add(coeff.wrapping_mul(value));
        }
        if let Some(dynamic) = &index.dynamic {
            let raw = match self.expr(&dynamic.value)? {
                Scalar::I64(v) => v,
                Scalar::I32(v) => i64::from(v),
                Scalar::I8(v) => i64::from(v),
                Scalar::U8(v) => i64::from(v),
                other => return fail(format!("dynamic index of dtype {}", other.dtype())),
            };
            let normalized = if raw < 0 {
                raw.wrapping_add(dynamic.extent)
            } else {
                raw
            };
            if normalized < 0 || normalized >= dynamic.extent {
                return Err(Stop::Status(STATUS_INDEX_OUT_OF_RANGE));
            }
            elem = elem.wrapping_add(dynamic.stride.wrapping_mul(normalized));
        }
        if elem < 0 || elem as u64 >= decl.len as u64 {
            return fail(format!(
                "access {elem} of buffer {buf} ({}) is outside 0..{}",
                decl.name, decl.len
            ));
        }
        Ok((buf_idx, elem as usize))
    }

    fn expr(&mut self, expr: &Expr) -> Eval<Scalar> {
        match expr {
            Expr::Const(scalar) => Ok(*scalar),
            Expr::Var(var) => match self.vars.get(var.0 as usize) {
                Some(&v) => Ok(Scalar::I64(v)),
                None => fail(format!("loop variable {var} is not declared")),
            },
            Expr::Local(local) => match self.locals.get(local.0 as usize) {
                Some(Some(value)) => Ok(*value),
                _ => fail(format!("local {local} read before its `let`")),
            },
            Expr::Load { buf, index } => {
                let (buf_idx, elem) = self.address(*buf, index)?;
                Ok(load(&self.buffers[buf_idx], elem))
            }
            Expr::Unary(op, a) => {
                let a = self.expr(a)?;
                eval_unary(*op, a)
            }
            Expr::Binary(op, a, b) => {
                let a = self.expr(a)?;
                let b = self.expr(b)?;
                eval_binary(*op, a, b)
            }
            Expr::Fma(a, b, c) => match (self.expr(a)?, self.expr(b)?, self.expr(c)?) {
                (Scalar::F32(a), Scalar::F32(b), Scalar::F32(c)) => {
                    Ok(Scalar::F32(a.mul_add(b, c)))
                }
                (Scalar::F64(a), Scalar::F64(b), Scalar::F64(c)) => {
                    Ok(Scalar::F64(a.mul_add(b, c)))
                }
                (a, b, c) => fail(format!(
                    "fma of {}, {}, {}: operands must be all f32 or all f64",
                    a.dtype(),
                    b.dtype(),
                    c.dtype()
                )),
            },
            Expr::Cmp(op, a, b) => {
                let a = self.expr(a)?;
                let b = self.expr(b)?;
                eval_cmp(*op, a, b).map(Scalar::Bool)
            }
            Expr::Select {
                cond,
                then,
                otherwise,
            } => {
                // Both arms are evaluated, as the IR specifies (they must not trap).
                let cond = self.expr(cond)?;
                let then = self.expr(then)?;
                let otherwise = self.expr(otherwise)?;
                if then.dtype() != otherwise.dtype() {
                    return fail(format!(
                        "select arms of {} and {}",
                        then.dtype(),
                        otherwise.dtype()
                    ));
                }
                match cond {
                    Scalar::Bool(true) => Ok(then),
                    Scalar::Bool(false) => Ok(otherwise),
                    other => fail(format!("select condition is {}, not bool", other.dtype())),
                }
            }
            Expr::Cast(dtype, a) => {
                let a = self.expr(a)?;
                cast(*dtype, a)
            }
        }
    }
}

fn load(data: &TensorData, elem: usize) -> Scalar {
    match data {
        TensorData::F32(v) => Scalar::F32(v[elem]),
        TensorData::F64(v) => Scalar::F64(v[elem]),
        TensorData::I64(v) => Scalar::I64(v[elem]),
        TensorData::I32(v) => Scalar::I32(v[elem]),
        TensorData::I8(v) => Scalar::I8(v[elem]),
        TensorData::U8(v) => Scalar::U8(v[elem]),
        TensorData::Bool(v) => Scalar::Bool(v[elem]),
    }
}

fn store(data: &mut TensorData, elem: usize, value: Scalar) -> Eval<()> {
    match (data, value) {
        (TensorData::F32(v), Scalar::F32(x)) => v[elem] = x,
        (TensorData::F64(v), Scalar::F64(x)) => v[elem] = x,
        (TensorData::I64(v), Scalar::I64(x)) => v[elem] = x,
        (TensorData::I32(v), Scalar::I32(x)) => v[elem] = x,
        (TensorData::I8(v), Scalar::I8(x)) => v[elem] = x,
        (TensorData::U8(v), Scalar::U8(x)) => v[elem] = x,
        (TensorData::Bool(v), Scalar::Bool(x)) => v[elem] = x,
        (data, value) => {
            return fail(format!(
                "store of a {} into a {} buffer",
                value.dtype(),
                data.dtype()
            ))
        }
    }
    Ok(())
}

/// Float `max` with NaN propagation; zeros of opposite sign give +0.
pub fn float_max<F: FloatBits>(a: F, b: F) -> F {
    if a.is_nan_() {
        a
    } else if b.is_nan_() {
        b
    } else if a.is_zero_() && b.is_zero_() {
        // +0 unless both are -0.
        if a.is_neg_() {
            b
        } else {
            a
        }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Float `min` with NaN propagation; zeros of opposite sign give -0.
pub fn float_min<F: FloatBits>(a: F, b: F) -> F {
    if a.is_nan_() {
        a
    } else if b.is_nan_() {
        b
    } else if a.is_zero_() && b.is_zero_() {
        if a.is_neg_() {
            a
        } else {
            b
        }
    } else if a < b {
        a
    } else {
        b
    }
}

/// The float facts `float_max`/`float_min` need, for f32 and f64.
pub trait FloatBits: Copy + PartialOrd {
    fn is_nan_(self) -> bool;
    fn is_zero_(self) -> bool;
    fn is_neg_(self) -> bool;
}

impl FloatBits for f32 {
    fn is_nan_(self) -> bool {
        self.is_nan()
    }
    fn is_zero_(self) -> bool {
        self == 0.0
    }
    fn is_neg_(self) -> bool {
        self.is_sign_negative()
    }
}

impl FloatBits for f64 {
    fn is_nan_(self) -> bool {
        self.is_nan()
    }
    fn is_zero_(self) -> bool {
        self == 0.0
    }
    fn is_neg_(self) -> bool {
        self.is_sign_negative()
    }
}

/// `1 / (1 + e^-x)`, in two branches so that neither overflows (as the reference interpreter does).
fn sigmoid_f64(x: f64) -> f64 {
    if x > 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn sigmoid_f32(x: f32) -> f32 {
    if x > 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn float_unary_f64(op: UnaryOp, x: f64) -> Option<f64> {
    Some(match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Not => return None,
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sigmoid_f64(x),
        UnaryOp::Erf => erf_f64(x),
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::Round => x.round_ties_even(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Tan => x.tan(),
        UnaryOp::Asin => x.asin(),
        UnaryOp::Acos => x.acos(),
        UnaryOp::Atan => x.atan(),
        UnaryOp::Sinh => x.sinh(),
        UnaryOp::Cosh => x.cosh(),
        UnaryOp::Asinh => x.asinh(),
        UnaryOp::Acosh => x.acosh(),
        UnaryOp::Atanh => x.atanh(),
    })
}

fn float_unary_f32(op: UnaryOp, x: f32) -> Option<f32> {
    Some(match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Not => return None,
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sigmoid_f32(x),
        UnaryOp::Erf => erf_f64(f64::from(x)) as f32,
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::Round => x.round_ties_even(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Tan => x.tan(),
        UnaryOp::Asin => x.asin(),
        UnaryOp::Acos => x.acos(),
        UnaryOp::Atan => x.atan(),
        UnaryOp::Sinh => x.sinh(),
        UnaryOp::Cosh => x.cosh(),
        UnaryOp::Asinh => x.asinh(),
        UnaryOp::Acosh => x.acosh(),
        UnaryOp::Atanh => x.atanh(),
    })
}

/// Applies an integer operation in the scalar's own width, with `$v` bound to the value.
macro_rules! int_map {
    ($a:expr, |$v:ident| $body:expr, $other:ident => $fallback:expr) => {
        match $a {
            Scalar::I64($v) => Ok(Scalar::I64($body)),
            Scalar::I32($v) => Ok(Scalar::I32($body)),
            Scalar::I8($v) => Ok(Scalar::I8($body)),
            Scalar::U8($v) => Ok(Scalar::U8($body)),
            $other => $fallback,
        }
    };
}

fn eval_unary(op: UnaryOp, a: Scalar) -> Eval<Scalar> {
    let bad = |a: Scalar| fail(format!("{op:?} of a {} operand", a.dtype()));
    match (op, a) {
        (_, Scalar::F32(x)) => match float_unary_f32(op, x) {
            Some(y) => Ok(Scalar::F32(y)),
            None => bad(a),
        },
        (_, Scalar::F64(x)) => match float_unary_f64(op, x) {
            Some(y) => Ok(Scalar::F64(y)),
            None => bad(a),
        },
        (UnaryOp::Not, Scalar::Bool(b)) => Ok(Scalar::Bool(!b)),
        (UnaryOp::Not, a) => int_map!(a, |v| !v, other => bad(other)),
        (UnaryOp::Neg, Scalar::U8(_)) | (UnaryOp::Abs, Scalar::U8(_)) => bad(a),
        (UnaryOp::Neg, a) => int_map!(a, |v| v.wrapping_neg(), other => bad(other)),
        (UnaryOp::Abs, Scalar::I64(v)) => Ok(Scalar::I64(v.wrapping_abs())),
        (UnaryOp::Abs, Scalar::I32(v)) => Ok(Scalar::I32(v.wrapping_abs())),
        (UnaryOp::Abs, Scalar::I8(v)) => Ok(Scalar::I8(v.wrapping_abs())),
        _ => bad(a),
    }
}

/// Runs `$body` on two integers of one width, wrapping the result back into that width.
macro_rules! int_pair {
    ($a:expr, $b:expr, |$x:ident, $y:ident| $body:expr, $fallback:expr) => {
        match ($a, $b) {
            (Scalar::I64($x), Scalar::I64($y)) => Ok(Scalar::I64($body)),
            (Scalar::I32($x), Scalar::I32($y)) => Ok(Scalar::I32($body)),
            (Scalar::I8($x), Scalar::I8($y)) => Ok(Scalar::I8($body)),
            (Scalar::U8($x), Scalar::U8($y)) => Ok(Scalar::U8($body)),
            _ => $fallback,
        }
    };
}

fn eval_binary(op: BinaryOp, a: Scalar, b: Scalar) -> Eval<Scalar> {
    use BinaryOp::*;
    let bad = || {
        fail(format!(
            "{op:?} of {} and {} operands",
            a.dtype(),
            b.dtype()
        ))
    };
    match (a, b) {
        (Scalar::F32(x), Scalar::F32(y)) => Ok(Scalar::F32(match op {
            Add => x + y,
            Sub => x - y,
            Mul => x * y,
            Div => x / y,
            Rem => x % y,
            Max => float_max(x, y),
            Min => float_min(x, y),
            Pow => x.powf(y),
            And | Or | Xor => return bad(),
        })),
        (Scalar::F64(x), Scalar::F64(y)) => Ok(Scalar::F64(match op {
            Add => x + y,
            Sub => x - y,
            Mul => x * y,
            Div => x / y,
            Rem => x % y,
            Max => float_max(x, y),
            Min => float_min(x, y),
            Pow => x.powf(y),
            And | Or | Xor => return bad(),
        })),
        (Scalar::Bool(x), Scalar::Bool(y)) => match op {
            And => Ok(Scalar::Bool(x & y)),
            Or => Ok(Scalar::Bool(x | y)),
            Xor => Ok(Scalar::Bool(x ^ y)),
            _ => bad(),
        },
        _ => match op {
            Add => int_pair!(a, b, |x, y| x.wrapping_add(y), bad()),
            Sub => int_pair!(a, b, |x, y| x.wrapping_sub(y), bad()),
            Mul => int_pair!(a, b, |x, y| x.wrapping_mul(y), bad()),
            Div => int_pair!(
                a,
                b,
                |x, y| if y == 0 { 0 } else { x.wrapping_div(y) },
                bad()
            ),
            Rem => int_pair!(
                a,
                b,
                |x, y| if y == 0 { 0 } else { x.wrapping_rem(y) },
                bad()
            ),
            Max => int_pair!(a, b, |x, y| x.max(y), bad()),
            Min => int_pair!(a, b, |x, y| x.min(y), bad()),
            And => int_pair!(a, b, |x, y| x & y, bad()),
            Or => int_pair!(a, b, |x, y| x | y, bad()),
            Xor => int_pair!(a, b, |x, y| x ^ y, bad()),
            Pow => bad(),
        },
    }
}

fn eval_cmp(op: CmpOp, a: Scalar, b: Scalar) -> Eval<bool> {
    fn apply<T: PartialOrd>(op: CmpOp, x: T, y: T) -> bool {
        match op {
            CmpOp::Eq => x == y,
            CmpOp::Ne => x != y,
            CmpOp::Lt => x < y,
            CmpOp::Le => x <= y,
            CmpOp::Gt => x > y,
            CmpOp::Ge => x >= y,
        }
    }
    Ok(match (a, b) {
        (Scalar::F32(x), Scalar::F32(y)) => apply(op, x, y),
        (Scalar::F64(x), Scalar::F64(y)) => apply(op, x, y),
        (Scalar::I64(x), Scalar::I64(y)) => apply(op, x, y),
        (Scalar::I32(x), Scalar::I32(y)) => apply(op, x, y),
        (Scalar::I8(x), Scalar::I8(y)) => apply(op, x, y),
        (Scalar::U8(x), Scalar::U8(y)) => apply(op, x, y),
        (Scalar::Bool(x), Scalar::Bool(y)) => apply(op, x, y),
        _ => {
            return fail(format!(
                "{op:?} of {} and {} operands",
                a.dtype(),
                b.dtype()
            ))
        }
    })
}

/// Conversion with Rust `as` semantics (saturating float to int, wrapping int to int, `!= 0` to bool).
fn cast(dtype: DType, a: Scalar) -> Eval<Scalar> {
    macro_rules! to {
        ($x:expr) => {
            match dtype {
                DType::F32 => Scalar::F32($x as f32),
                DType::F64 => Scalar::F64($x as f64),
                DType::I64 => Scalar::I64($x as i64),
                DType::I32 => Scalar::I32($x as i32),
                DType::I8 => Scalar::I8($x as i8),
                DType::U8 => Scalar::U8($x as u8),
                DType::Bool => Scalar::Bool($x != (0 as _)),
                other => return fail(format!("cast to unsupported dtype {other}")),
            }
        };
    }
    Ok(match a {
        Scalar::F32(x) => to!(x),
        Scalar::F64(x) => to!(x),
        Scalar::I64(x) => to!(x),
        Scalar::I32(x) => to!(x),
        Scalar::I8(x) => to!(x),
        Scalar::U8(x) => to!(x),
        Scalar::Bool(x) => to!(u8::from(x)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::KernelBuilder;
    use std::ops::{Add, Div};

    /// Evaluates a constant expression through a one-element store, so the whole machine runs.
    fn eval(expr: Expr) -> Scalar {
        let dtype = scalar_dtype_of(&expr);
        let mut kb = KernelBuilder::new("t", vec![]);
        let y = kb.buffer("y", dtype, 1, BufferRole::Output);
        kb.store(y, Index::constant(0), expr);
        let kernel = kb.finish();
        let mut bufs = vec![TensorData::zeros(dtype, 1)];
        assert_eq!(run_kernel(&kernel, &mut bufs).unwrap(), 0);
        load(&bufs[0], 0)
    }

    /// The dtype of the small constant expressions these tests build.
    fn scalar_dtype_of(expr: &Expr) -> DType {
        match expr {
            Expr::Const(s) => s.dtype(),
            Expr::Cmp(..) => DType::Bool,
            Expr::Cast(dtype, _) => *dtype,
            Expr::Unary(_, a) | Expr::Binary(_, a, _) | Expr::Fma(a, _, _) => scalar_dtype_of(a),
            Expr::Select { then, .. } => scalar_dtype_of(then),
            _ => DType::F32,
        }
    }

    fn c(s: Scalar) -> Expr {
        Expr::Const(s)
    }

    #[test]
    fn integer_division_by_zero_is_zero_and_min_over_minus_one_wraps() {
        let div = |a: i64, b: i64| eval(Expr::div(c(Scalar::I64(a)), c(Scalar::I64(b))));
        assert_eq!(div(7, 0), Scalar::I64(0));
        assert_eq!(div(-7, 2), Scalar::I64(-3));
        assert_eq!(div(i64::MIN, -1), Scalar::I64(i64::MIN));
        let rem = eval(Expr::binary(
            BinaryOp::Rem,
            c(Scalar::I32(7)),
            c(Scalar::I32(0)),
        ));
        assert_eq!(rem, Scalar::I32(0));
        let rem = eval(Expr::binary(
            BinaryOp::Rem,
            c(Scalar::I32(-7)),
            c(Scalar::I32(3)),
        ));
        assert_eq!(rem, Scalar::I32(-1));
        let wrap = eval(Expr::add(c(Scalar::I8(127)), c(Scalar::I8(1))));
        assert_eq!(wrap, Scalar::I8(-128));
    }

    #[test]
    fn float_max_min_propagate_nan_and_order_signed_zeros() {
        let max = |a: f32, b: f32| match eval(Expr::max(Expr::f32(a), Expr::f32(b))) {
            Scalar::F32(v) => v,
            other => panic!("{other:?}"),
        };
        let min = |a: f32, b: f32| match eval(Expr::min(Expr::f32(a), Expr::f32(b))) {
            Scalar::F32(v) => v,
            other => panic!("{other:?}"),
        };
        assert!(max(f32::NAN, 1.0).is_nan());
        assert!(max(1.0, f32::NAN).is_nan());
        assert!(min(f32::NAN, 1.0).is_nan());
        assert!(min(1.0, f32::NAN).is_nan());
        assert_eq!(max(-0.0, 0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(max(0.0, -0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(min(-0.0, 0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(min(0.0, -0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(max(2.0, 3.0), 3.0);
        assert_eq!(min(2.0, 3.0), 2.0);
    }

    #[test]
    fn casts_saturate_wrap_and_round() {
        let cast_f = |x: f32, dtype| eval(Expr::cast(dtype, Expr::f32(x)));
        assert_eq!(cast_f(1e10, DType::I32), Scalar::I32(i32::MAX));
        assert_eq!(cast_f(-1e10, DType::I32), Scalar::I32(i32::MIN));
        assert_eq!(cast_f(f32::NAN, DType::I64), Scalar::I64(0));
        assert_eq!(cast_f(-1.7, DType::I8), Scalar::I8(-1));
        assert_eq!(cast_f(300.0, DType::U8), Scalar::U8(255));
        assert_eq!(cast_f(f32::NAN, DType::Bool), Scalar::Bool(true));
        assert_eq!(cast_f(-0.0, DType::Bool), Scalar::Bool(false));
        let wrap = eval(Expr::cast(DType::I8, c(Scalar::I32(300))));
        assert_eq!(wrap, Scalar::I8(44));
        let from_bool = eval(Expr::cast(DType::F32, c(Scalar::Bool(true))));
        assert_eq!(from_bool, Scalar::F32(1.0));
        let round = |x: f32| eval(Expr::unary(UnaryOp::Round, Expr::f32(x)));
        assert_eq!(round(2.5), Scalar::F32(2.0));
        assert_eq!(round(3.5), Scalar::F32(4.0));
        assert_eq!(round(-2.5), Scalar::F32(-2.0));
    }

    #[test]
    fn fma_rounds_once() {
        // (1 + 2^-23) * (1 - 2^-23) = 1 - 2^-46: a separate multiply rounds it to 1, fma keeps it.
        let a = 1.0 + f32::EPSILON;
        let b = 1.0 - f32::EPSILON;
        let fused = eval(Expr::fma(Expr::f32(a), Expr::f32(b), Expr::f32(-1.0)));
        assert_eq!(fused, Scalar::F32(-(2.0f32.powi(-46))));
    }

    fn gather_kernel() -> Kernel {
        // y[i] = data[normalize(idx[i])] with a data extent of 3.
        let mut kb = KernelBuilder::new("gather", vec![]);
        let data = kb.buffer("data", DType::F32, 3, BufferRole::Input);
        let idx = kb.buffer("idx", DType::I64, 2, BufferRole::Input);
        let y = kb.buffer("y", DType::F32, 2, BufferRole::Output);
        kb.loop_(2, |kb, i| {
            let index = Index {
                terms: vec![],
                offset: 0,
                dynamic: Some(Box::new(DynamicTerm {
                    value: Expr::load(idx, Index::var(i)),
                    extent: 3,
                    stride: 1,
                })),
            };
            kb.store(y, Index::var(i), Expr::load(data, index));
        });
        kb.finish()
    }

    #[test]
    fn dynamic_indices_normalise_and_report_out_of_range() {
        let kernel = gather_kernel();
        let run = |indices: Vec<i64>| {
            let mut bufs = vec![
                TensorData::F32(vec![10.0, 20.0, 30.0].into()),
                TensorData::I64(indices.into()),
                TensorData::F32(vec![0.0; 2].into()),
            ];
            let status = run_kernel(&kernel, &mut bufs).unwrap();
            (status, bufs.pop().unwrap())
        };
        assert_eq!(
            run(vec![-1, 1]),
            (0, TensorData::F32(vec![30.0, 20.0].into()))
        );
        // The first element is stored before the out-of-range index stops the kernel.
        assert_eq!(
            run(vec![0, 3]),
            (
                STATUS_INDEX_OUT_OF_RANGE,
                TensorData::F32(vec![10.0, 0.0].into())
            )
        );
        assert_eq!(run(vec![-4, 0]).0, STATUS_INDEX_OUT_OF_RANGE);
    }

    #[test]
    fn bad_kernels_are_errors_not_panics() {
        let mut kb = KernelBuilder::new("oob", vec![]);
        let y = kb.buffer("y", DType::F32, 2, BufferRole::Output);
        kb.loop_(3, |kb, i| kb.store(y, Index::var(i), Expr::f32(1.0)));
        let kernel = kb.finish();
        let err = run_kernel(&kernel, &mut [TensorData::zeros(DType::F32, 2)]).unwrap_err();
        assert!(err.to_string().contains("outside 0..2"), "{err}");

        let mut kb = KernelBuilder::new("mixed", vec![]);
        let y = kb.buffer("y", DType::F32, 1, BufferRole::Output);
        kb.store(
            y,
            Index::constant(0),
            Expr::add(Expr::f32(1.0), c(Scalar::I32(1))),
        );
        let kernel = kb.finish();
        let err = run_kernel(&kernel, &mut [TensorData::zeros(DType::F32, 1)]).unwrap_err();
        assert!(err.to_string().contains("Add of f32 and i32"), "{err}");

        let err = run_kernel(&kernel, &mut [TensorData::zeros(DType::I32, 1)]).unwrap_err();
        assert!(err.to_string().contains("declared f32"), "{err}");
    }

    #[test]
    fn erf_matches_known_values() {
        for (x, expected) in [
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (-1.5, -0.966_105_146_475_310_7),
        ] {
            let got = erf_f64(x);
            assert!((got - expected).abs() <= 1e-14, "erf({x}) = {got}");
        }
    }
}
