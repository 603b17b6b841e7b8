//! Expression lowering: every [`Expr`] to CLIF, with the value semantics all backends share.
//!
//! The semantics (see `sinter_loops::ir` and the shared brief) that need more than one instruction:
//! - integer `Div`/`Rem` never trap: a zero divisor gives 0, and `MIN / -1` wraps to `MIN` (the
//!   divisor is replaced by 1 for both cases before the `sdiv`, and the result is fixed up);
//! - float `Max`/`Min` propagate NaN and order `-0 < +0`, which is exactly CLIF's `fmax`/`fmin`.
//!   Against a constant that is not NaN (ReLU, clamp) a compare-and-select is cheaper and equal;
//! - float-to-integer casts saturate (`fcvt_to_sint_sat`, clamped further for 8-bit targets), NaN
//!   gives 0; casts to bool are `!= 0` (NaN is true);
//! - comparisons are ordered (false on NaN) except `Ne`; bools compare as unsigned 0 < 1.
//!
//! Values that depend on the vectorized loop variable are [`Val::Vector`]: `f32x4`, or an `i32x4`
//! lane mask for bools. A scalar meeting a vector is splatted.

use super::{math, scalar_type, KernelCodegen, Val};
use crate::codegen::helpers::{binary_helper_name, unary_helper_name};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, F64, I32, I32X4, I64, I8};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value};
use sinter_ir::DType;
use sinter_loops::{BinaryOp, CmpOp, Expr, Scalar, UnaryOp};

type R<T> = Result<T, super::CodegenError>;

fn is_signed_int(dtype: DType) -> bool {
    matches!(dtype, DType::I64 | DType::I32 | DType::I8)
}

fn is_int(dtype: DType) -> bool {
    matches!(dtype, DType::I64 | DType::I32 | DType::I8 | DType::U8)
}

fn bits(dtype: DType) -> u32 {
    (dtype.size_bytes() * 8) as u32
}

/// Flags for `bitcast` between vector types: lane order is the machine's (little-endian).
fn lane_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

impl KernelCodegen<'_, '_> {
    pub(crate) fn expr(&mut self, expr: &Expr) -> R<(Val, DType)> {
        match expr {
            Expr::Const(scalar) => Ok((Val::Scalar(self.constant(*scalar)), scalar.dtype())),
            Expr::Var(var) => Ok((Val::Scalar(self.loop_value(*var)?), DType::I64)),
            Expr::Local(local) => self.local_value(*local),
            Expr::Load { buf, index } => self.load(*buf, index),
            Expr::Unary(op, a) => {
                let a = self.expr(a)?;
                self.unary(*op, a)
            }
            Expr::Binary(op, a, b) => {
                let constant = |e: &Expr| match e {
                    Expr::Const(Scalar::F32(c)) => Some(f64::from(*c)),
                    Expr::Const(Scalar::F64(c)) => Some(*c),
                    _ => None,
                };
                let (ca, cb) = (constant(a), constant(b));
                let a = self.expr(a)?;
                let b = self.expr(b)?;
                // Max/Min against a constant: pass the constant second.
                if ca.is_some() && cb.is_none() && matches!(op, BinaryOp::Max | BinaryOp::Min) {
                    return self.binary(*op, b, a, ca);
                }
                self.binary(*op, a, b, cb)
            }
            Expr::Fma(a, b, c) => {
                let a = self.expr(a)?;
                let b = self.expr(b)?;
                let c = self.expr(c)?;
                self.fma(a, b, c)
            }
            Expr::Cmp(op, a, b) => {
                let a = self.expr(a)?;
                let b = self.expr(b)?;
                self.compare(*op, a, b)
            }
            Expr::Select {
                cond,
                then,
                otherwise,
            } => {
                let cond = self.expr(cond)?;
                let then = self.expr(then)?;
                let otherwise = self.expr(otherwise)?;
                self.select(cond, then, otherwise)
            }
            Expr::Cast(to, a) => {
                let a = self.expr(a)?;
                self.cast(*to, a)
            }
        }
    }

    pub(crate) fn constant(&mut self, scalar: Scalar) -> Value {
        match scalar {
            Scalar::F32(v) => self.b.ins().f32const(v),
            Scalar::F64(v) => self.b.ins().f64const(v),
            Scalar::I64(v) => self.b.ins().iconst(I64, v),
            Scalar::I32(v) => self.iconst(I32, i64::from(v)),
            Scalar::I8(v) => self.iconst(I8, i64::from(v)),
            Scalar::U8(v) => self.iconst(I8, i64::from(v)),
            Scalar::Bool(v) => self.iconst(I8, i64::from(v)),
        }
    }

    /// Four lanes of `value`: vectors as they are, scalars splatted (bools as a lane mask).
    pub(crate) fn splat_to_lanes(&mut self, value: Val, dtype: DType) -> R<Value> {
        match (value, dtype) {
            (Val::Vector(v), _) => Ok(v),
            (Val::Scalar(v), DType::F32) => Ok(self.b.ins().splat(F32X4, v)),
            (Val::Scalar(v), DType::Bool) => {
                let wide = self.b.ins().uextend(I32, v);
                let mask = self.b.ins().ineg(wide);
                Ok(self.b.ins().splat(I32X4, mask))
            }
            (Val::Scalar(_), _) => self.err(format!(
                "a {dtype} value would have to be vectorized; only f32 and bool can be"
            )),
        }
    }

    fn scalar_ty(&self, dtype: DType) -> R<Type> {
        match scalar_type(dtype) {
            Some(ty) => Ok(ty),
            None => self.err(format!("dtype {dtype} is not supported")),
        }
    }

    /// Applies a scalar helper function to each lane of an `f32x4`.
    fn per_lane(&mut self, name: &'static str, lanes: &[Value]) -> R<Value> {
        let mut result = None;
        for lane in 0..4u8 {
            let args: Vec<Value> = lanes
                .iter()
                .map(|&v| self.b.ins().extractlane(v, lane))
                .collect();
            let out = self.call_helper(name, &args)?;
            result = Some(match result {
                None => self.b.ins().splat(F32X4, out),
                Some(acc) => self.b.ins().insertlane(acc, out, lane),
            });
        }
        Ok(result.expect("four lanes"))
    }

    fn unary(&mut self, op: UnaryOp, (a, dtype): (Val, DType)) -> R<(Val, DType)> {
        use UnaryOp::*;
        let (x, vector) = match a {
            Val::Scalar(x) => (x, false),
            Val::Vector(x) => (x, true),
        };
        let wrap = |v: Value| {
            if vector {
                Val::Vector(v)
            } else {
                Val::Scalar(v)
            }
        };
        let float = dtype.is_float();
        let result = match op {
            Neg if float => self.b.ins().fneg(x),
            Neg if is_signed_int(dtype) => self.b.ins().ineg(x),
            Abs if float => self.b.ins().fabs(x),
            Abs if is_signed_int(dtype) => {
                let negative = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
                let negated = self.b.ins().ineg(x);
                self.b.ins().select(negative, negated, x)
            }
            Abs if dtype == DType::U8 => x,
            Not if dtype == DType::Bool && vector => self.b.ins().bnot(x),
            Not if dtype == DType::Bool => self.b.ins().bxor_imm_s(x, 1),
            Not if is_int(dtype) => self.b.ins().bnot(x),
            _ if !float => {
                return self.err(format!("unary {op:?} is not defined on {dtype}"));
            }
            Sqrt => self.b.ins().sqrt(x),
            Floor => self.b.ins().floor(x),
            Ceil => self.b.ins().ceil(x),
            // `nearest` rounds half to even, as ONNX Round does.
            Round => self.b.ins().nearest(x),
            Exp | Log | Tanh | Sigmoid | Erf if dtype == DType::F32 => {
                let m = math::MathBuilder::new(self.env.use_fma, vector);
                match op {
                    Exp => m.exp(&mut self.b, x),
                    Log => m.log(&mut self.b, x),
                    Tanh => m.tanh(&mut self.b, x),
                    Sigmoid => m.sigmoid(&mut self.b, x),
                    _ => m.erf(&mut self.b, x),
                }
            }
            _ => {
                let Some(name) = unary_helper_name(op, dtype) else {
                    return self.err(format!("unary {op:?} on {dtype} has no implementation"));
                };
                if vector {
                    self.per_lane(name, &[x])?
                } else {
                    self.call_helper(name, &[x])?
                }
            }
        };
        Ok((wrap(result), dtype))
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        (a, a_dtype): (Val, DType),
        (b, b_dtype): (Val, DType),
        b_constant: Option<f64>,
    ) -> R<(Val, DType)> {
        if a_dtype != b_dtype {
            return self.err(format!(
                "binary {op:?} has operands of dtypes {a_dtype} and {b_dtype}"
            ));
        }
        let dtype = a_dtype;
        if let (Val::Scalar(x), Val::Scalar(y)) = (a, b) {
            let result = self.binary_values(op, dtype, x, y, b_constant, false)?;
            return Ok((Val::Scalar(result), dtype));
        }
        let x = self.splat_to_lanes(a, dtype)?;
        let y = self.splat_to_lanes(b, dtype)?;
        let result = self.binary_values(op, dtype, x, y, b_constant, true)?;
        Ok((Val::Vector(result), dtype))
    }

    fn binary_values(
        &mut self,
        op: BinaryOp,
        dtype: DType,
        x: Value,
        y: Value,
        y_constant: Option<f64>,
        vector: bool,
    ) -> R<Value> {
        use BinaryOp::*;
        if dtype.is_float() {
            return Ok(match op {
                Add => self.b.ins().fadd(x, y),
                Sub => self.b.ins().fsub(x, y),
                Mul => self.b.ins().fmul(x, y),
                Div => self.b.ins().fdiv(x, y),
                Max | Min => self.float_max_min(op == Max, x, y, y_constant, vector),
                Rem | Pow => {
                    let name = binary_helper_name(op, dtype).expect("rem and pow have helpers");
                    if vector {
                        self.per_lane(name, &[x, y])?
                    } else {
                        self.call_helper(name, &[x, y])?
                    }
                }
                And | Or | Xor => {
                    return self.err(format!("binary {op:?} is not defined on {dtype}"));
                }
            });
        }
        if dtype == DType::Bool {
            return Ok(match op {
                And | Min => self.b.ins().band(x, y),
                Or | Max => self.b.ins().bor(x, y),
                Xor => self.b.ins().bxor(x, y),
                _ => return self.err(format!("binary {op:?} is not defined on bool")),
            });
        }
        if vector {
            return self.err(format!("a {dtype} value cannot be vectorized"));
        }
        let signed = is_signed_int(dtype);
        let ty = self.scalar_ty(dtype)?;
        Ok(match op {
            Add => self.b.ins().iadd(x, y),
            Sub => self.b.ins().isub(x, y),
            Mul => self.b.ins().imul(x, y),
            Div | Rem => self.int_div_rem(op == Div, signed, ty, x, y),
            Max if signed => self.b.ins().smax(x, y),
            Max => self.b.ins().umax(x, y),
            Min if signed => self.b.ins().smin(x, y),
            Min => self.b.ins().umin(x, y),
            And => self.b.ins().band(x, y),
            Or => self.b.ins().bor(x, y),
            Xor => self.b.ins().bxor(x, y),
            Pow => return self.err(format!("binary Pow is not defined on {dtype}")),
        })
    }

    /// Integer division and remainder that never trap: by 0 both give 0; `MIN / -1` wraps to MIN
    /// and `MIN % -1` is 0.
    fn int_div_rem(&mut self, div: bool, signed: bool, ty: Type, x: Value, y: Value) -> Value {
        let zero = self.iconst(ty, 0);
        let one = self.iconst(ty, 1);
        let is_zero = self.b.ins().icmp(IntCC::Equal, y, zero);
        if !signed {
            let safe = self.b.ins().select(is_zero, one, y);
            let result = if div {
                self.b.ins().udiv(x, safe)
            } else {
                self.b.ins().urem(x, safe)
            };
            return self.b.ins().select(is_zero, zero, result);
        }
        let minus_one = self.iconst(ty, -1);
        let is_minus_one = self.b.ins().icmp(IntCC::Equal, y, minus_one);
        // Dividing by 1 instead of 0 or -1 cannot trap; `x % 1` is already the right remainder
        // for both (0).
        let unsafe_divisor = self.b.ins().bor(is_zero, is_minus_one);
        let safe = self.b.ins().select(unsafe_divisor, one, y);
        if !div {
            return self.b.ins().srem(x, safe);
        }
        let quotient = self.b.ins().sdiv(x, safe);
        let negated = self.b.ins().ineg(x);
        let fixed = self.b.ins().select(is_minus_one, negated, quotient);
        self.b.ins().select(is_zero, zero, fixed)
    }

    /// NaN-propagating max/min with `-0 < +0`. Against a constant `c` that is not NaN (and not the
    /// zero whose sign would make the shortcut wrong), `x > c || x is NaN ? x : c` is equal and
    /// lowers to a compare and a blend instead of CLIF `fmax`'s NaN fix-up sequence.
    fn float_max_min(
        &mut self,
        max: bool,
        x: Value,
        y: Value,
        y_constant: Option<f64>,
        vector: bool,
    ) -> Value {
        let shortcut =
            y_constant.filter(|c| !(c.is_nan() || (*c == 0.0 && c.is_sign_negative() == max)));
        if shortcut.is_none() {
            return if max {
                self.b.ins().fmax(x, y)
            } else {
                self.b.ins().fmin(x, y)
            };
        }
        let cc = if max {
            FloatCC::UnorderedOrGreaterThan
        } else {
            FloatCC::UnorderedOrLessThan
        };
        let keep_x = self.b.ins().fcmp(cc, x, y);
        if vector {
            let mask = self.b.ins().bitcast(F32X4, lane_flags(), keep_x);
            self.b.ins().bitselect(mask, x, y)
        } else {
            self.b.ins().select(keep_x, x, y)
        }
    }

    fn fma(&mut self, a: (Val, DType), b: (Val, DType), c: (Val, DType)) -> R<(Val, DType)> {
        let dtype = a.1;
        if b.1 != dtype || c.1 != dtype || !dtype.is_float() {
            return self.err(format!(
                "fma operands are {}, {} and {}; they must all be f32 or all f64",
                a.1, b.1, c.1
            ));
        }
        let any_vector = [a.0, b.0, c.0].iter().any(|v| matches!(v, Val::Vector(_)));
        if !any_vector {
            let (Val::Scalar(x), Val::Scalar(y), Val::Scalar(z)) = (a.0, b.0, c.0) else {
                unreachable!("no vector operand");
            };
            return Ok((Val::Scalar(self.b.ins().fma(x, y, z)), dtype));
        }
        let x = self.splat_to_lanes(a.0, dtype)?;
        let y = self.splat_to_lanes(b.0, dtype)?;
        let z = self.splat_to_lanes(c.0, dtype)?;
        Ok((Val::Vector(self.b.ins().fma(x, y, z)), dtype))
    }

    fn compare(
        &mut self,
        op: CmpOp,
        (a, a_dtype): (Val, DType),
        (b, b_dtype): (Val, DType),
    ) -> R<(Val, DType)> {
        if a_dtype != b_dtype {
            return self.err(format!(
                "comparison {op:?} has operands of dtypes {a_dtype} and {b_dtype}"
            ));
        }
        let dtype = a_dtype;
        let float_cc = match op {
            CmpOp::Eq => FloatCC::Equal,
            CmpOp::Ne => FloatCC::NotEqual,
            CmpOp::Lt => FloatCC::LessThan,
            CmpOp::Le => FloatCC::LessThanOrEqual,
            CmpOp::Gt => FloatCC::GreaterThan,
            CmpOp::Ge => FloatCC::GreaterThanOrEqual,
        };
        let signed = is_signed_int(dtype);
        let int_cc = match op {
            CmpOp::Eq => IntCC::Equal,
            CmpOp::Ne => IntCC::NotEqual,
            CmpOp::Lt if signed => IntCC::SignedLessThan,
            CmpOp::Le if signed => IntCC::SignedLessThanOrEqual,
            CmpOp::Gt if signed => IntCC::SignedGreaterThan,
            CmpOp::Ge if signed => IntCC::SignedGreaterThanOrEqual,
            CmpOp::Lt => IntCC::UnsignedLessThan,
            CmpOp::Le => IntCC::UnsignedLessThanOrEqual,
            CmpOp::Gt => IntCC::UnsignedGreaterThan,
            CmpOp::Ge => IntCC::UnsignedGreaterThanOrEqual,
        };
        if let (Val::Scalar(x), Val::Scalar(y)) = (a, b) {
            let result = if dtype.is_float() {
                self.b.ins().fcmp(float_cc, x, y)
            } else {
                self.b.ins().icmp(int_cc, x, y)
            };
            return Ok((Val::Scalar(result), DType::Bool));
        }
        let x = self.splat_to_lanes(a, dtype)?;
        let y = self.splat_to_lanes(b, dtype)?;
        // f32x4 compares give an i32x4 mask; bool masks (all-ones = true) compare unsigned.
        let result = if dtype == DType::F32 {
            self.b.ins().fcmp(float_cc, x, y)
        } else {
            self.b.ins().icmp(int_cc, x, y)
        };
        Ok((Val::Vector(result), DType::Bool))
    }

    fn select(
        &mut self,
        (cond, cond_dtype): (Val, DType),
        (a, a_dtype): (Val, DType),
        (b, b_dtype): (Val, DType),
    ) -> R<(Val, DType)> {
        if cond_dtype != DType::Bool || a_dtype != b_dtype {
            return self.err(format!(
                "select has a {cond_dtype} condition and {a_dtype}/{b_dtype} arms; it needs a \
                 bool condition and arms of one dtype"
            ));
        }
        let dtype = a_dtype;
        if let (Val::Scalar(c), Val::Scalar(x), Val::Scalar(y)) = (cond, a, b) {
            return Ok((Val::Scalar(self.b.ins().select(c, x, y)), dtype));
        }
        let mask = self.splat_to_lanes(cond, DType::Bool)?;
        let x = self.splat_to_lanes(a, dtype)?;
        let y = self.splat_to_lanes(b, dtype)?;
        let mask = if dtype == DType::F32 {
            self.b.ins().bitcast(F32X4, lane_flags(), mask)
        } else {
            mask
        };
        Ok((Val::Vector(self.b.ins().bitselect(mask, x, y)), dtype))
    }

    fn cast(&mut self, to: DType, (a, from): (Val, DType)) -> R<(Val, DType)> {
        let x = match a {
            Val::Scalar(x) => x,
            Val::Vector(x) => {
                let result = match (from, to) {
                    (DType::F32, DType::F32) | (DType::Bool, DType::Bool) => x,
                    (DType::F32, DType::Bool) => {
                        let zero = self.b.ins().f32const(0.0);
                        let zero = self.b.ins().splat(F32X4, zero);
                        self.b.ins().fcmp(FloatCC::NotEqual, x, zero)
                    }
                    (DType::Bool, DType::F32) => {
                        let one = self.b.ins().f32const(1.0);
                        let one = self.b.ins().splat(F32X4, one);
                        let mask = self.b.ins().bitcast(F32X4, lane_flags(), x);
                        self.b.ins().band(mask, one)
                    }
                    _ => {
                        return self.err(format!("a cast from {from} to {to} cannot be vectorized"))
                    }
                };
                return Ok((Val::Vector(result), to));
            }
        };
        Ok((Val::Scalar(self.cast_scalar(from, to, x)?), to))
    }

    fn cast_scalar(&mut self, from: DType, to: DType, x: Value) -> R<Value> {
        if from == to {
            return Ok(x);
        }
        let to_ty = self.scalar_ty(to)?;
        self.scalar_ty(from)?;
        if to == DType::Bool {
            return Ok(if from.is_float() {
                let zero = if from == DType::F32 {
                    self.b.ins().f32const(0.0)
                } else {
                    self.b.ins().f64const(0.0)
                };
                // NotEqual is unordered-or-not-equal: NaN is true, as `x != 0` is in Rust.
                self.b.ins().fcmp(FloatCC::NotEqual, x, zero)
            } else {
                self.b.ins().icmp_imm_s(IntCC::NotEqual, x, 0)
            });
        }
        let from_signed = is_signed_int(from);
        if from.is_float() && to.is_float() {
            return Ok(if to == DType::F64 {
                self.b.ins().fpromote(F64, x)
            } else {
                self.b.ins().fdemote(F32, x)
            });
        }
        if to.is_float() {
            // Integers (and bool) to float round once, from the exact integer value.
            return Ok(match from {
                DType::I64 | DType::I32 => self.b.ins().fcvt_from_sint(to_ty, x),
                DType::I8 => {
                    let wide = self.b.ins().sextend(I32, x);
                    self.b.ins().fcvt_from_sint(to_ty, wide)
                }
                _ => {
                    let wide = self.b.ins().uextend(I32, x);
                    self.b.ins().fcvt_from_sint(to_ty, wide)
                }
            });
        }
        if from.is_float() {
            // Saturating, NaN -> 0, like Rust `as`.
            return Ok(match to {
                DType::I64 => self.b.ins().fcvt_to_sint_sat(I64, x),
                DType::I32 => self.b.ins().fcvt_to_sint_sat(I32, x),
                _ => {
                    let (lo, hi) = if to == DType::I8 {
                        (-128, 127)
                    } else {
                        (0, 255)
                    };
                    let wide = self.b.ins().fcvt_to_sint_sat(I32, x);
                    let lo = self.iconst(I32, lo);
                    let hi = self.iconst(I32, hi);
                    let clamped = self.b.ins().smax(wide, lo);
                    let clamped = self.b.ins().smin(clamped, hi);
                    self.b.ins().ireduce(I8, clamped)
                }
            });
        }
        // Integer (or bool) to integer: truncate, or extend by the source's signedness.
        let (from_bits, to_bits) = (bits(from), bits(to));
        Ok(if to_bits < from_bits {
            self.b.ins().ireduce(to_ty, x)
        } else if to_bits > from_bits {
            if from_signed {
                self.b.ins().sextend(to_ty, x)
            } else {
                self.b.ins().uextend(to_ty, x)
            }
        } else {
            x
        })
    }
}
