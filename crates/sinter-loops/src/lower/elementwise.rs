//! Elementwise ops: every unary op, every broadcasting binary op and `where` share one lowering, a
//! broadcasting map ([`lower_map`]) parametrised by the scalar expression of the op.
//!
//! The expressions follow `sinter-ref`'s elementwise module formula for formula (constants rounded to
//! the dtype first, the same branch structure for sigmoid, leaky_relu, elu, selu, softplus), with
//! two documented deviations that stay within the fixture tolerances: `expm1` is `exp(x) - 1` (the
//! loop IR has no expm1; the absolute error is an ulp of 1) and `ln(1 + e^-|x|)` is computed without
//! `ln_1p` for the same reason.

use super::fuse::var_coords;
use super::{broadcast_strides, check_dtype, collapse_dims, cst, idx, Lowerer, NodeCx, Operand};
use crate::builder::KernelBuilder;
use crate::ir::*;
use sinter_ir::{DType, GeluApprox, Op};
use std::ops::{Add, Div, Mul, Sub};

/// The scalar function of an elementwise op: its result from its operands' values, in slot order.
pub(crate) type ScalarFn = std::rc::Rc<dyn Fn(&mut KernelBuilder, &[Expr]) -> Expr>;

/// The scalar function of the unary, binary or `where` op `op` on operands of `dtypes` (by slot),
/// checked once here so that applying it cannot fail. Shared by [`lower`] and the fused epilogues.
pub(crate) fn scalar_fn(op: &Op, dtypes: &[DType]) -> Result<ScalarFn, String> {
    let arity = if op.is_unary_elementwise() {
        1
    } else if matches!(op, Op::Where {}) {
        3
    } else if op.is_binary_elementwise() {
        2
    } else {
        return Err(format!("`{}` is not an elementwise op", op.name()));
    };
    if dtypes.len() != arity {
        return Err(format!("{} operands for an op of {arity}", dtypes.len()));
    }
    for &dtype in dtypes {
        check_dtype(dtype)?;
    }
    let op = op.clone();
    if arity == 1 {
        let dtype = dtypes[0];
        unary_expr(&op, dtype, Expr::f32(0.0))?;
        return Ok(std::rc::Rc::new(move |_, args| {
            unary_expr(&op, dtype, args[0].clone()).expect("checked above")
        }));
    }
    if arity == 3 {
        return Ok(std::rc::Rc::new(|_, args| {
            Expr::select(args[0].clone(), args[1].clone(), args[2].clone())
        }));
    }
    let (da, db) = (dtypes[0], dtypes[1]);
    if matches!(op, Op::Pow {}) && da.is_int() && db.is_int() {
        return Ok(std::rc::Rc::new(move |kb, args| {
            int_pow(kb, da, args[0].clone(), args[1].clone())
        }));
    }
    binary_expr(&op, da, db, Expr::f32(0.0), Expr::f32(0.0))?;
    Ok(std::rc::Rc::new(move |_, args| {
        binary_expr(&op, da, db, args[0].clone(), args[1].clone()).expect("checked above")
    }))
}

pub(super) fn lower(lw: &mut Lowerer, cx: &NodeCx) -> Result<(), String> {
    let out = cx.output(0).clone();
    check_dtype(out.dtype)?;
    let arity = match cx.op {
        op if op.is_unary_elementwise() => 1,
        Op::Where {} => 3,
        _ => 2,
    };
    let inputs: Vec<&Operand> = (0..arity)
        .map(|slot| cx.input(slot))
        .collect::<Result<_, _>>()?;
    let dtypes: Vec<DType> = inputs.iter().map(|input| input.dtype).collect();
    let f = scalar_fn(cx.op, &dtypes)?;
    lower_map(lw, cx, &inputs, &out, &*f)
}

/// `out[i] = f(inputs broadcast to out's shape at i)`, as one loop nest over out's (collapsed) dims,
/// with the elementwise chain that consumes `out` (if any) fused in.
pub(crate) fn lower_map(
    lw: &mut Lowerer,
    cx: &NodeCx,
    inputs: &[&Operand],
    out: &Operand,
    f: &dyn Fn(&mut KernelBuilder, &[Expr]) -> Expr,
) -> Result<(), String> {
    for input in inputs {
        if input.rank() > out.rank() {
            return Err(format!(
                "input {:?} has a higher rank than the output {:?}",
                input.shape, out.shape
            ));
        }
    }
    let mut strides: Vec<Vec<i64>> = inputs
        .iter()
        .map(|input| broadcast_strides(&input.shape, &out.shape))
        .collect();
    strides.push(crate::builder::row_major_strides(&out.shape));
    // The loops walk a view that the chain's operands merge in too.
    let n_own = strides.len();
    strides.extend(lw.epilogue_strides(cx, 0));
    let (shape, strides) = collapse_dims(&out.shape, &strides);
    let epilogue = lw.take_epilogue(cx, 0, &shape);
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let bufs: Vec<BufferId> = inputs.iter().map(|input| k.input(input)).collect();
    let y = k.sink(out, epilogue);
    k.kb.loops(&shape, |kb, vars| {
        let args: Vec<Expr> = bufs
            .iter()
            .zip(&strides)
            .map(|(&buf, s)| Expr::load(buf, idx(vars, s, 0)))
            .collect();
        let value = f(kb, &args);
        y.store(
            kb,
            idx(vars, &strides[n_own - 1], 0),
            value,
            &var_coords(vars),
        );
    });
    lw.emit(k);
    Ok(())
}

/// The scalar expression of a unary elementwise op applied to `x` of `dtype`.
pub(crate) fn unary_expr(op: &Op, dtype: DType, x: Expr) -> Result<Expr, String> {
    let c = |v: f64| cst(dtype, v);
    let float = dtype.is_float();
    let need_float = || -> Result<(), String> {
        if float {
            Ok(())
        } else {
            Err(format!("`{}` of {dtype} is not a float op", op.name()))
        }
    };
    let un = |u: UnaryOp, e: Expr| Expr::unary(u, e);
    let gt0 = |e: Expr| Expr::cmp(CmpOp::Gt, e, c(0.0));
    Ok(match op {
        Op::Identity {} => x,
        Op::Cast { to } => {
            check_dtype(*to)?;
            if *to == dtype {
                x
            } else {
                Expr::cast(*to, x)
            }
        }
        Op::Neg {} => un(UnaryOp::Neg, x),
        Op::Abs {} if dtype == DType::U8 => x,
        Op::Abs {} => un(UnaryOp::Abs, x),
        Op::Not {} => un(UnaryOp::Not, x),
        Op::Relu {} => Expr::max(x, c(0.0)),
        Op::Sign {} => {
            let sign = Expr::select(
                gt0(x.clone()),
                c(1.0),
                Expr::select(Expr::cmp(CmpOp::Lt, x.clone(), c(0.0)), c(-1.0), c(0.0)),
            );
            if float {
                // NaN stays NaN.
                Expr::select(Expr::cmp(CmpOp::Ne, x.clone(), x), c(f64::NAN), sign)
            } else {
                sign
            }
        }
        Op::Clip { min, max } => {
            if !float {
                for bound in [min, max].into_iter().flatten() {
                    if !int_value_fits(*bound, dtype) {
                        return Err(format!("bound {bound} is not a value of {dtype}"));
                    }
                }
            }
            let mut v = x;
            if let Some(lo) = min {
                v = Expr::max(v, c(*lo));
            }
            if let Some(hi) = max {
                v = Expr::min(v, c(*hi));
            }
            v
        }
        _ => {
            need_float()?;
            let (zero, one, half) = (c(0.0), c(1.0), c(0.5));
            match op {
                Op::Exp {} => un(UnaryOp::Exp, x),
                Op::Log {} => un(UnaryOp::Log, x),
                Op::Sqrt {} => un(UnaryOp::Sqrt, x),
                Op::Tanh {} => un(UnaryOp::Tanh, x),
                Op::Erf {} => un(UnaryOp::Erf, x),
                Op::Floor {} => un(UnaryOp::Floor, x),
                Op::Ceil {} => un(UnaryOp::Ceil, x),
                Op::Round {} => un(UnaryOp::Round, x),
                Op::Sigmoid {} => un(UnaryOp::Sigmoid, x),
                Op::Silu {} => Expr::mul(x.clone(), un(UnaryOp::Sigmoid, x)),
                Op::Reciprocal {} => Expr::div(one, x),
                Op::LeakyRelu { alpha } => Expr::select(
                    gt0(x.clone()),
                    x.clone(),
                    Expr::mul(x, c(f64::from(*alpha))),
                ),
                Op::HardSigmoid { alpha, beta } => Expr::max(
                    zero,
                    Expr::min(
                        one,
                        Expr::add(Expr::mul(x, c(f64::from(*alpha))), c(f64::from(*beta))),
                    ),
                ),
                Op::HardSwish {} => Expr::mul(
                    x.clone(),
                    Expr::max(
                        zero,
                        Expr::min(one, Expr::add(Expr::mul(x, c(1.0 / 6.0)), half)),
                    ),
                ),
                Op::Gelu {
                    approximate: GeluApprox::None,
                } => {
                    let sqrt_two = match dtype {
                        DType::F32 => f64::from(2.0f32.sqrt()),
                        _ => 2.0f64.sqrt(),
                    };
                    Expr::mul(
                        Expr::mul(half, x.clone()),
                        Expr::add(one, un(UnaryOp::Erf, Expr::div(x, c(sqrt_two)))),
                    )
                }
                Op::Gelu {
                    approximate: GeluApprox::Tanh,
                } => {
                    #[allow(clippy::approx_constant)]
                    let s = match dtype {
                        DType::F32 => f64::from((0.636_619_772_36f64 as f32).sqrt()),
                        _ => 0.636_619_772_36f64.sqrt(),
                    };
                    let cube = Expr::mul(Expr::mul(x.clone(), x.clone()), x.clone());
                    let inner =
                        Expr::mul(c(s), Expr::add(x.clone(), Expr::mul(c(0.044_715), cube)));
                    Expr::mul(Expr::mul(half, x), Expr::add(one, un(UnaryOp::Tanh, inner)))
                }
                Op::Elu { alpha } => Expr::select(
                    Expr::cmp(CmpOp::Ge, x.clone(), zero),
                    x.clone(),
                    Expr::mul(c(f64::from(*alpha)), expm1(x, dtype)),
                ),
                Op::Selu { alpha, gamma } => {
                    let g = c(f64::from(*gamma));
                    Expr::select(
                        gt0(x.clone()),
                        Expr::mul(g.clone(), x.clone()),
                        Expr::mul(g, Expr::mul(c(f64::from(*alpha)), expm1(x, dtype))),
                    )
                }
                Op::Softplus {} => softplus(x, dtype),
                Op::Softsign {} => Expr::div(x.clone(), Expr::add(one, un(UnaryOp::Abs, x))),
                Op::Mish {} => Expr::mul(x.clone(), un(UnaryOp::Tanh, softplus(x, dtype))),
                other => return Err(format!("`{}` is not a unary elementwise op", other.name())),
            }
        }
    })
}

/// Whether `v` is a whole number in the range of the integer `dtype`.
fn int_value_fits(v: f64, dtype: DType) -> bool {
    let (lo, hi) = match dtype {
        DType::I64 => (-9.223_372_036_854_776e18, 9.223_372_036_854_776e18),
        DType::I32 => (f64::from(i32::MIN), f64::from(i32::MAX) + 1.0),
        DType::I8 => (-128.0, 128.0),
        DType::U8 => (0.0, 256.0),
        _ => return false,
    };
    v.fract() == 0.0 && v >= lo && v < hi
}

fn expm1(x: Expr, dtype: DType) -> Expr {
    Expr::sub(Expr::unary(UnaryOp::Exp, x), cst(dtype, 1.0))
}

/// `max(x, 0) + ln(1 + e^-|x|)`: overflow-free, and NaN stays NaN.
pub(crate) fn softplus(x: Expr, dtype: DType) -> Expr {
    let positive = Expr::max(x.clone(), cst(dtype, 0.0));
    let tail = Expr::unary(
        UnaryOp::Log,
        Expr::add(
            cst(dtype, 1.0),
            Expr::unary(
                UnaryOp::Exp,
                Expr::unary(UnaryOp::Neg, Expr::unary(UnaryOp::Abs, x)),
            ),
        ),
    );
    Expr::add(positive, tail)
}

/// The scalar expression of a binary elementwise op on `a: da` and `b: db`.
pub(crate) fn binary_expr(op: &Op, da: DType, db: DType, a: Expr, b: Expr) -> Result<Expr, String> {
    let same = || -> Result<(), String> {
        if da == db {
            Ok(())
        } else {
            Err(format!("operands of {da} and {db}"))
        }
    };
    let cmp = |c: CmpOp, a: Expr, b: Expr| -> Result<Expr, String> {
        same()?;
        Ok(Expr::cmp(c, a, b))
    };
    let arith = |o: BinaryOp, a: Expr, b: Expr| -> Result<Expr, String> {
        same()?;
        if da == DType::Bool {
            return Err("arithmetic on bool".into());
        }
        Ok(Expr::binary(o, a, b))
    };
    match op {
        Op::Add {} => arith(BinaryOp::Add, a, b),
        Op::Sub {} => arith(BinaryOp::Sub, a, b),
        Op::Mul {} => arith(BinaryOp::Mul, a, b),
        Op::Div {} => arith(BinaryOp::Div, a, b),
        Op::Max {} => arith(BinaryOp::Max, a, b),
        Op::Min {} => arith(BinaryOp::Min, a, b),
        Op::Equal {} => cmp(CmpOp::Eq, a, b),
        Op::Less {} => cmp(CmpOp::Lt, a, b),
        Op::Greater {} => cmp(CmpOp::Gt, a, b),
        Op::LessOrEqual {} => cmp(CmpOp::Le, a, b),
        Op::GreaterOrEqual {} => cmp(CmpOp::Ge, a, b),
        Op::And {} | Op::Or {} => {
            same()?;
            if da != DType::Bool {
                return Err(format!("logical op on {da}"));
            }
            let o = if matches!(op, Op::And {}) {
                BinaryOp::And
            } else {
                BinaryOp::Or
            };
            Ok(Expr::binary(o, a, b))
        }
        Op::PRelu {} => {
            same()?;
            Ok(Expr::select(
                Expr::cmp(CmpOp::Gt, a.clone(), cst(da, 0.0)),
                a.clone(),
                Expr::mul(a, b),
            ))
        }
        Op::Pow {} => pow_expr(da, db, a, b),
        other => Err(format!("`{}` is not a binary elementwise op", other.name())),
    }
}

/// `a ^ b` with sinter-ref's promotion rules: an f32 base with an i8/u8 exponent computes in f32,
/// with an f64/i64/i32 exponent in f64 (then rounds); an f64 base in f64. Integer bases are not
/// lowered (their exact wrapping power needs a loop the expression language lacks).
fn pow_expr(da: DType, db: DType, a: Expr, b: Expr) -> Result<Expr, String> {
    match (da, db) {
        (DType::F32, DType::F32) | (DType::F64, DType::F64) => {
            Ok(Expr::binary(BinaryOp::Pow, a, b))
        }
        (DType::F32, DType::I8 | DType::U8) => {
            Ok(Expr::binary(BinaryOp::Pow, a, Expr::cast(DType::F32, b)))
        }
        (DType::F32, DType::Bool) | (DType::F64, DType::Bool) => Err("a bool exponent".into()),
        (DType::F32, _) => Ok(Expr::cast(
            DType::F32,
            Expr::binary(
                BinaryOp::Pow,
                Expr::cast(DType::F64, a),
                Expr::cast(DType::F64, b),
            ),
        )),
        (DType::F64, _) => Ok(Expr::binary(BinaryOp::Pow, a, Expr::cast(DType::F64, b))),
        (DType::I64 | DType::I32, DType::F32 | DType::F64) => Ok(Expr::cast(
            da,
            Expr::binary(
                BinaryOp::Pow,
                Expr::cast(DType::F64, a),
                Expr::cast(DType::F64, b),
            ),
        )),
        _ => Err(format!("pow of {da} and {db}")),
    }
}

/// Exact integer power with wrapping, by repeated squaring over the exponent's 63 magnitude bits (in
/// i64, then narrowed), as sinter-ref's `int_pow`; a negative exponent gives the truncated real
/// result (0 unless the base is ±1; sinter-ref rejects base 0, here it gives 0).
fn int_pow(kb: &mut KernelBuilder, dtype: DType, base: Expr, exponent: Expr) -> Expr {
    let i = |v: i64| Expr::Const(Scalar::I64(v));
    let b = kb.local(DType::I64, Expr::cast(DType::I64, base));
    let e = kb.local(DType::I64, Expr::cast(DType::I64, exponent));
    let result = kb.local(DType::I64, i(1));
    let square = kb.local(DType::I64, Expr::Local(b));
    let rest = kb.local(DType::I64, Expr::Local(e));
    kb.loop_(63, |kb, _| {
        let odd = Expr::cmp(
            CmpOp::Ne,
            Expr::binary(BinaryOp::And, Expr::Local(rest), i(1)),
            i(0),
        );
        let positive = Expr::cmp(CmpOp::Gt, Expr::Local(rest), i(0));
        kb.assign(
            result,
            Expr::select(
                Expr::binary(BinaryOp::And, odd, positive),
                Expr::mul(Expr::Local(result), Expr::Local(square)),
                Expr::Local(result),
            ),
        );
        kb.assign(square, Expr::mul(Expr::Local(square), Expr::Local(square)));
        kb.assign(rest, Expr::div(Expr::Local(rest), i(2)));
    });
    let even = Expr::cmp(
        CmpOp::Eq,
        Expr::binary(BinaryOp::Rem, Expr::Local(e), i(2)),
        i(0),
    );
    let negative_power = Expr::select(
        Expr::cmp(CmpOp::Eq, Expr::Local(b), i(1)),
        i(1),
        Expr::select(
            Expr::cmp(CmpOp::Eq, Expr::Local(b), i(-1)),
            Expr::select(even, i(1), i(-1)),
            i(0),
        ),
    );
    let value = Expr::select(
        Expr::cmp(CmpOp::Lt, Expr::Local(e), i(0)),
        negative_power,
        Expr::Local(result),
    );
    if dtype == DType::I64 {
        value
    } else {
        Expr::cast(dtype, value)
    }
}
