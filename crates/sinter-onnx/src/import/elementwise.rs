//! Elementwise ONNX ops: unary math and activations, `Clip`, `Cast`, broadcasting binary ops,
//! integer `Mod` (as `div`, `mul` and `sub`), `Where`, and the variadic `Max`/`Min`/`Sum`/`Mean`.
//!
//! Most map one to one. The version differences handled here:
//! - opsets before 7 broadcast binary ops only with `broadcast = 1`, aligning the second operand at
//!   `axis`; such an operand gets trailing unit axes so numpy broadcasting gives the same result;
//! - `Clip` takes its bounds as attributes before opset 11 and as constant inputs from 11 on;
//! - `Cast` names its target as a string in opset 1 and as a `TensorProto` type code later.
//!
//! Integer arithmetic on i64 shape values (`Add`, `Sub`, `Mul`, `Div`, `Max`, `Min`) also
//! propagates symbolic shape values (see `shape_value.rs`), and so do `Equal` (a constant when the
//! comparison is decided) and `Where` with a constant condition.
//!
//! `Cos` and `Sin` have no IR op: they are evaluated at import on constant inputs only.

use super::shape_value::{ShapeArith, ShapeValue};
use super::{dtype_of, invalid, one, unsupported, Lowered, NodeCx, NodeResult, Opd};
use sinter_ir::{DType, GeluApprox, Op, Tensor, TensorData, SELU_ALPHA, SELU_GAMMA};

/// A one-input, one-output op.
pub(crate) fn unary(cx: &mut NodeCx, op: Op) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    one(cx.emit1(op, &[x])?)
}

pub(crate) fn leaky_relu(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let alpha = cx.attrs().float_or("alpha", 0.01)?;
    unary(cx, Op::LeakyRelu { alpha })
}

pub(crate) fn hard_sigmoid(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let attrs = cx.attrs();
    let alpha = attrs.float_or("alpha", 0.2)?;
    let beta = attrs.float_or("beta", 0.5)?;
    unary(cx, Op::HardSigmoid { alpha, beta })
}

pub(crate) fn elu(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let alpha = cx.attrs().float_or("alpha", 1.0)?;
    unary(cx, Op::Elu { alpha })
}

pub(crate) fn selu(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let attrs = cx.attrs();
    let alpha = attrs.float_or("alpha", SELU_ALPHA)?;
    let gamma = attrs.float_or("gamma", SELU_GAMMA)?;
    unary(cx, Op::Selu { alpha, gamma })
}

pub(crate) fn gelu(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let approximate = match cx.attrs().string_or("approximate", "none")?.as_str() {
        "none" => GeluApprox::None,
        "tanh" => GeluApprox::Tanh,
        other => {
            return invalid(format!(
                "attribute `approximate` must be \"none\" or \"tanh\", got {other:?}"
            ))
        }
    };
    unary(cx, Op::Gelu { approximate })
}

/// A constant scalar of `dtype` holding `value` (rank 0, so it broadcasts against anything).
pub(crate) fn scalar_of(cx: &mut NodeCx, dtype: DType, value: f64) -> Opd {
    let data = TensorData::from_f64s(dtype, std::iter::once(value));
    let tensor = Tensor::new(Vec::new(), data).unwrap_or_else(|_| Tensor::scalar(value as f32));
    cx.constant(tensor)
}

/// `Swish` (opset 24): `x * sigmoid(alpha * x)`.
pub(crate) fn swish(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let alpha = cx.attrs().float_or("alpha", 1.0)?;
    let scaled = if alpha == 1.0 {
        x
    } else {
        let alpha = scalar_of(cx, cx.ty(x).dtype, f64::from(alpha));
        cx.emit1(Op::Mul {}, &[x, alpha])?
    };
    let gate = cx.emit1(Op::Sigmoid {}, &[scaled])?;
    one(cx.emit1(Op::Mul {}, &[x, gate])?)
}

pub(crate) fn clip(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let (min, max) = if cx.opset < 11 {
        // Absent attributes are the float limits, so infinities are clamped as ONNX does.
        let attrs = cx.attrs();
        let min = attrs.float("min")?.map_or(-f64::from(f32::MAX), f64::from);
        let max = attrs.float("max")?.map_or(f64::from(f32::MAX), f64::from);
        (Some(min), Some(max))
    } else {
        cx.require_constants(&[(1, "min"), (2, "max")])?;
        (cx.const_scalar(1, "min")?, cx.const_scalar(2, "max")?)
    };
    unary(cx, Op::Clip { min, max })
}

/// The dtype an opset-1 `Cast` names as a string (`"FLOAT"`).
fn dtype_from_name(name: &str) -> Result<DType, String> {
    match name.to_ascii_uppercase().as_str() {
        "FLOAT" => Ok(DType::F32),
        "DOUBLE" => Ok(DType::F64),
        "INT64" => Ok(DType::I64),
        "INT32" => Ok(DType::I32),
        "INT8" => Ok(DType::I8),
        "UINT8" => Ok(DType::U8),
        "BOOL" => Ok(DType::Bool),
        other => Err(other.to_string()),
    }
}

pub(crate) fn cast(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let attrs = cx.attrs();
    let target = if cx.opset < 6 && attrs.string("to").is_ok_and(|s| s.is_some()) {
        dtype_from_name(&attrs.string_or("to", "")?)
    } else {
        match attrs.int("to")? {
            Some(code) => i32::try_from(code)
                .map_err(|_| format!("type code {code}"))
                .and_then(dtype_of),
            None => return invalid("attribute `to` is required"),
        }
    };
    let to = match target {
        Ok(dtype) => dtype,
        Err(name) => {
            return unsupported(format!("casting to {name}, which sinter does not support"))
        }
    };
    cast_to(cx, to)
}

/// `CastLike`: a cast to the dtype of the second input.
pub(crate) fn cast_like(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let like = cx.input(1)?;
    let to = cx.ty(like).dtype;
    cast_to(cx, to)
}

fn cast_to(cx: &mut NodeCx, to: DType) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let y = cx.emit1(Op::Cast { to }, &[x])?;
    if to == DType::I64 {
        if let Some(shape) = cx.imp.shape_value(x) {
            cx.imp.set_shape_value(y, shape);
        }
    }
    one(y)
}

/// Opsets before 7 broadcast `b` onto `a` only with `broadcast = 1`, aligning `b`'s axes at `axis`
/// of `a` (the trailing axes by default, as numpy does). Returns `b` with trailing unit axes added so
/// that numpy broadcasting aligns it the same way.
fn legacy_broadcast(cx: &mut NodeCx, a: Opd, b: Opd) -> NodeResult<Opd> {
    if cx.opset >= 7 {
        return Ok(b);
    }
    let attrs = cx.attrs();
    if !attrs.flag_or("broadcast", false)? {
        return Ok(b);
    }
    let Some(axis) = attrs.int("axis")? else {
        return Ok(b);
    };
    let (rank_a, rank_b) = (cx.ty(a).rank() as i64, cx.ty(b).rank() as i64);
    let axis = if axis < 0 { axis + rank_a } else { axis };
    if axis < 0 || axis + rank_b > rank_a {
        return invalid(format!(
            "attribute `axis` = {axis} does not place a rank-{rank_b} operand inside rank {rank_a}"
        ));
    }
    let n_trailing = rank_a - axis - rank_b;
    if n_trailing == 0 {
        return Ok(b);
    }
    let axes = (rank_b..rank_b + n_trailing).collect();
    cx.emit1(Op::Unsqueeze { axes }, &[b])
}

fn shape_arith(op: &Op) -> Option<ShapeArith> {
    match op {
        Op::Add {} => Some(ShapeArith::Add),
        Op::Sub {} => Some(ShapeArith::Sub),
        Op::Mul {} => Some(ShapeArith::Mul),
        Op::Div {} => Some(ShapeArith::Div),
        Op::Max {} => Some(ShapeArith::Max),
        Op::Min {} => Some(ShapeArith::Min),
        _ => None,
    }
}

/// Emits a binary op and propagates shape values through integer arithmetic.
fn emit_binary(cx: &mut NodeCx, op: Op, a: Opd, b: Opd) -> NodeResult<Opd> {
    let arith = shape_arith(&op);
    let y = cx.emit1(op, &[a, b])?;
    if let Some(arith) = arith {
        if cx.imp.konst(y).is_none() {
            if let (Some(sa), Some(sb)) = (cx.imp.shape_value(a), cx.imp.shape_value(b)) {
                if let Some(shape) = ShapeValue::arith(arith, &sa, &sb) {
                    cx.imp.set_shape_value(y, shape);
                }
            }
        }
    }
    Ok(y)
}

pub(crate) fn binary(cx: &mut NodeCx, op: Op) -> NodeResult<Lowered> {
    let a = cx.input(0)?;
    let b = cx.input(1)?;
    let b = legacy_broadcast(cx, a, b)?;
    one(emit_binary(cx, op, a, b)?)
}

/// `Mod` of integers, which the IR has no op for: `r = a - (a / b) * b` with the IR's truncating
/// integer division is C's `fmod` (the sign of the dividend, `fmod = 1`); for `fmod = 0` (Python's
/// `%`, the sign of the divisor) a nonzero `r` whose sign differs from `b`'s gets `b` added. Both are
/// exact, with the wrapping of the IR's integer arithmetic (`i64::MIN % -1` is 0), and a zero divisor
/// is an evaluation error as in `div`. Exporters emit it in shape arithmetic, where it folds.
///
/// Float `Mod` (only with `fmod = 1`) is not lowered: `a - trunc(a / b) * b` rounds the quotient,
/// so it is not the exact remainder `fmod` is.
pub(crate) fn mod_(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let fmod = cx.attrs().flag_or("fmod", false)?;
    let a = cx.input(0)?;
    let b = cx.input(1)?;
    let dtype = cx.ty(a).dtype;
    if !dtype.is_int() {
        return unsupported(format!(
            "Mod of {dtype}: the IR has no exact floating-point remainder (only integer Mod is \
             lowered)"
        ));
    }
    let quotient = cx.emit1(Op::Div {}, &[a, b])?;
    let multiple = cx.emit1(Op::Mul {}, &[quotient, b])?;
    let remainder = cx.emit1(Op::Sub {}, &[a, multiple])?;
    if fmod {
        return one(remainder);
    }
    let zero = scalar_of(cx, dtype, 0.0);
    let r_negative = cx.emit1(Op::Less {}, &[remainder, zero])?;
    let b_negative = cx.emit1(Op::Less {}, &[b, zero])?;
    let same_sign = cx.emit1(Op::Equal {}, &[r_negative, b_negative])?;
    let r_zero = cx.emit1(Op::Equal {}, &[remainder, zero])?;
    let no_shift = cx.emit1(Op::Or {}, &[same_sign, r_zero])?;
    let shifted = cx.emit1(Op::Add {}, &[remainder, b])?;
    one(cx.emit1(Op::Where {}, &[no_shift, remainder, shifted])?)
}

/// `Equal`. On shape values whose comparison is decided without their run-time values (see
/// [`ShapeValue::equal`]) the result is a constant, so that a `Where` over it selects shape values:
/// the TorchScript exporter's `expand` with a run-time target is `Where(Equal(t, -1), 1, t)`.
pub(crate) fn equal(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let a = cx.input(0)?;
    let b = cx.input(1)?;
    let both_constant = cx.imp.konst(a).is_some() && cx.imp.konst(b).is_some();
    if !both_constant && cx.opset >= 7 {
        if let (Some(sa), Some(sb)) = (cx.imp.shape_value(a), cx.imp.shape_value(b)) {
            if let Some((elems, scalar)) = ShapeValue::equal(&sa, &sb) {
                let shape = if scalar {
                    Vec::new()
                } else {
                    vec![elems.len()]
                };
                if let Ok(tensor) = Tensor::from_vec(shape, elems) {
                    return one(cx.constant(tensor));
                }
            }
        }
    }
    binary(cx, Op::Equal {})
}

/// `Where`; with a constant condition over shape values it propagates the selected shape value.
pub(crate) fn where_(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let cond = cx.input(0)?;
    let x = cx.input(1)?;
    let y = cx.input(2)?;
    let out = cx.emit1(Op::Where {}, &[cond, x, y])?;
    if cx.imp.konst(out).is_none() {
        let cond = cx
            .imp
            .konst(cond)
            .filter(|c| c.rank() <= 1)
            .and_then(|c| c.as_slice::<bool>().map(|v| (v.to_vec(), c.rank() == 0)));
        if let (Some((cond, cond_scalar)), Some(sx), Some(sy)) =
            (cond, cx.imp.shape_value(x), cx.imp.shape_value(y))
        {
            if let Some(shape) = ShapeValue::select(&cond, cond_scalar, &sx, &sy) {
                cx.imp.set_shape_value(out, shape);
            }
        }
    }
    one(out)
}

/// Which trigonometric function [`trig_of_constant`] evaluates.
#[derive(Clone, Copy)]
pub(crate) enum Trig {
    Cos,
    Sin,
}

/// `Cos` and `Sin`, which the IR has no op for, evaluated at import when the input is a constant (in
/// the float's own precision): exporters emit them for rotary position embeddings, whose angles are
/// constants once the sequence length is static. On a run-time input the node is unsupported.
pub(crate) fn trig_of_constant(cx: &mut NodeCx, trig: Trig) -> NodeResult<Lowered> {
    let x = cx.input(0)?;
    let Some(konst) = cx.imp.konst(x).cloned() else {
        return Err(cx.not_constant(
            x,
            "input 0 must be a constant: the IR has no trigonometric ops, so the importer \
             evaluates Cos and Sin only on constants (such as rotary embedding angles)"
                .to_string(),
        ));
    };
    let apply32 = |v: f32| match trig {
        Trig::Cos => v.cos(),
        Trig::Sin => v.sin(),
    };
    let apply64 = |v: f64| match trig {
        Trig::Cos => v.cos(),
        Trig::Sin => v.sin(),
    };
    let shape = konst.shape().to_vec();
    let tensor = match (konst.as_slice::<f32>(), konst.as_slice::<f64>()) {
        (Some(values), _) => Tensor::from_vec(shape, values.iter().map(|&v| apply32(v)).collect()),
        (None, Some(values)) => {
            Tensor::from_vec(shape, values.iter().map(|&v| apply64(v)).collect())
        }
        (None, None) => {
            return invalid(format!("input 0 must be f32 or f64, got {}", konst.dtype()))
        }
    };
    match tensor {
        Ok(tensor) => one(cx.constant(tensor)),
        Err(err) => invalid(err.to_string()),
    }
}

/// The variadic ONNX ops.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variadic {
    Max,
    Min,
    Sum,
    Mean,
}

/// A left-to-right chain of binary ops; a single input is passed through (identity). `Mean`
/// divides the sum by the input count.
pub(crate) fn variadic(cx: &mut NodeCx, kind: Variadic) -> NodeResult<Lowered> {
    let inputs = cx.present_inputs();
    let Some((&first, rest)) = inputs.split_first() else {
        return invalid("needs at least one input");
    };
    let mut acc = first;
    for &next in rest {
        let op = match kind {
            Variadic::Max => Op::Max {},
            Variadic::Min => Op::Min {},
            Variadic::Sum | Variadic::Mean => Op::Add {},
        };
        acc = emit_binary(cx, op, acc, next)?;
    }
    if kind == Variadic::Mean && !rest.is_empty() {
        let dtype = cx.ty(acc).dtype;
        let count = scalar_of(cx, dtype, inputs.len() as f64);
        acc = cx.emit1(Op::Div {}, &[acc, count])?;
    }
    one(acc)
}
