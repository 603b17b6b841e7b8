//! Rust functions that generated code calls for the float operations it does not inline.
//!
//! Exp, log, tanh, sigmoid and erf on f32 are inlined as CLIF polynomials (`math.rs`); everything else
//! that has no Cranelift instruction (trigonometric and hyperbolic functions, `pow`, float remainder,
//! and every f64 transcendental) calls one of these `extern "C"` functions, registered as JIT symbols
//! by the runtime. Inside a vectorized loop the codegen extracts the four lanes and calls per lane.
//!
//! Each helper is the Rust standard library's function (which the loop interpreter uses too), except
//! f64 `erf`, which std does not have on stable: that one is `libm::erf` (musl's, < 1 ulp).

use cranelift_codegen::ir::types::{F32, F64};
use cranelift_codegen::ir::Type;
use sinter_ir::DType;
use sinter_loops::{BinaryOp, UnaryOp};

/// One helper: its JIT symbol name, address and signature (all parameters and the result share `ty`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Helper {
    pub name: &'static str,
    pub ptr: *const u8,
    pub ty: Type,
    pub n_params: usize,
}

macro_rules! unary_helpers {
    ($($fname:ident: $t:ty => |$x:ident| $body:expr;)*) => {
        $(extern "C" fn $fname($x: $t) -> $t { $body })*
    };
}

macro_rules! binary_helpers {
    ($($fname:ident: $t:ty => |$x:ident, $y:ident| $body:expr;)*) => {
        $(extern "C" fn $fname($x: $t, $y: $t) -> $t { $body })*
    };
}

unary_helpers! {
    sinter_sin_f32: f32 => |x| x.sin();
    sinter_cos_f32: f32 => |x| x.cos();
    sinter_tan_f32: f32 => |x| x.tan();
    sinter_asin_f32: f32 => |x| x.asin();
    sinter_acos_f32: f32 => |x| x.acos();
    sinter_atan_f32: f32 => |x| x.atan();
    sinter_sinh_f32: f32 => |x| x.sinh();
    sinter_cosh_f32: f32 => |x| x.cosh();
    sinter_asinh_f32: f32 => |x| x.asinh();
    sinter_acosh_f32: f32 => |x| x.acosh();
    sinter_atanh_f32: f32 => |x| x.atanh();
    sinter_exp_f64: f64 => |x| x.exp();
    sinter_log_f64: f64 => |x| x.ln();
    sinter_tanh_f64: f64 => |x| x.tanh();
    sinter_sigmoid_f64: f64 => |x| sigmoid_f64(x);
    sinter_erf_f64: f64 => |x| libm::erf(x);
    sinter_sin_f64: f64 => |x| x.sin();
    sinter_cos_f64: f64 => |x| x.cos();
    sinter_tan_f64: f64 => |x| x.tan();
    sinter_asin_f64: f64 => |x| x.asin();
    sinter_acos_f64: f64 => |x| x.acos();
    sinter_atan_f64: f64 => |x| x.atan();
    sinter_sinh_f64: f64 => |x| x.sinh();
    sinter_cosh_f64: f64 => |x| x.cosh();
    sinter_asinh_f64: f64 => |x| x.asinh();
    sinter_acosh_f64: f64 => |x| x.acosh();
    sinter_atanh_f64: f64 => |x| x.atanh();
}

binary_helpers! {
    sinter_rem_f32: f32 => |x, y| x % y;
    sinter_rem_f64: f64 => |x, y| x % y;
    sinter_pow_f32: f32 => |x, y| x.powf(y);
    sinter_pow_f64: f64 => |x, y| x.powf(y);
}

/// The logistic function without overflow: `exp` is only ever taken of a non-positive number.
pub fn sigmoid_f64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

macro_rules! helper {
    ($f:ident, $ty:expr, $n:expr) => {
        Helper {
            name: stringify!($f),
            ptr: $f as *const u8,
            ty: $ty,
            n_params: $n,
        }
    };
}

/// Every helper, for registering them all with the JIT builder and declaring them in the module.
pub(crate) fn all_helpers() -> Vec<Helper> {
    vec![
        helper!(sinter_sin_f32, F32, 1),
        helper!(sinter_cos_f32, F32, 1),
        helper!(sinter_tan_f32, F32, 1),
        helper!(sinter_asin_f32, F32, 1),
        helper!(sinter_acos_f32, F32, 1),
        helper!(sinter_atan_f32, F32, 1),
        helper!(sinter_sinh_f32, F32, 1),
        helper!(sinter_cosh_f32, F32, 1),
        helper!(sinter_asinh_f32, F32, 1),
        helper!(sinter_acosh_f32, F32, 1),
        helper!(sinter_atanh_f32, F32, 1),
        helper!(sinter_exp_f64, F64, 1),
        helper!(sinter_log_f64, F64, 1),
        helper!(sinter_tanh_f64, F64, 1),
        helper!(sinter_sigmoid_f64, F64, 1),
        helper!(sinter_erf_f64, F64, 1),
        helper!(sinter_sin_f64, F64, 1),
        helper!(sinter_cos_f64, F64, 1),
        helper!(sinter_tan_f64, F64, 1),
        helper!(sinter_asin_f64, F64, 1),
        helper!(sinter_acos_f64, F64, 1),
        helper!(sinter_atan_f64, F64, 1),
        helper!(sinter_sinh_f64, F64, 1),
        helper!(sinter_cosh_f64, F64, 1),
        helper!(sinter_asinh_f64, F64, 1),
        helper!(sinter_acosh_f64, F64, 1),
        helper!(sinter_atanh_f64, F64, 1),
        helper!(sinter_rem_f32, F32, 2),
        helper!(sinter_rem_f64, F64, 2),
        helper!(sinter_pow_f32, F32, 2),
        helper!(sinter_pow_f64, F64, 2),
    ]
}

/// The helper symbol computing `op` on `dtype`, if the op is not inlined for that dtype.
pub(crate) fn unary_helper_name(op: UnaryOp, dtype: DType) -> Option<&'static str> {
    use UnaryOp::*;
    let f32_name = match op {
        Sin => "sinter_sin_f32",
        Cos => "sinter_cos_f32",
        Tan => "sinter_tan_f32",
        Asin => "sinter_asin_f32",
        Acos => "sinter_acos_f32",
        Atan => "sinter_atan_f32",
        Sinh => "sinter_sinh_f32",
        Cosh => "sinter_cosh_f32",
        Asinh => "sinter_asinh_f32",
        Acosh => "sinter_acosh_f32",
        Atanh => "sinter_atanh_f32",
        _ => "",
    };
    let f64_name = match op {
        Exp => "sinter_exp_f64",
        Log => "sinter_log_f64",
        Tanh => "sinter_tanh_f64",
        Sigmoid => "sinter_sigmoid_f64",
        Erf => "sinter_erf_f64",
        Sin => "sinter_sin_f64",
        Cos => "sinter_cos_f64",
        Tan => "sinter_tan_f64",
        Asin => "sinter_asin_f64",
        Acos => "sinter_acos_f64",
        Atan => "sinter_atan_f64",
        Sinh => "sinter_sinh_f64",
        Cosh => "sinter_cosh_f64",
        Asinh => "sinter_asinh_f64",
        Acosh => "sinter_acosh_f64",
        Atanh => "sinter_atanh_f64",
        _ => "",
    };
    let name = match dtype {
        DType::F32 => f32_name,
        DType::F64 => f64_name,
        _ => "",
    };
    (!name.is_empty()).then_some(name)
}

/// The helper symbol computing the float binary `op` on `dtype`, for the ops CLIF lacks.
pub(crate) fn binary_helper_name(op: BinaryOp, dtype: DType) -> Option<&'static str> {
    match (op, dtype) {
        (BinaryOp::Rem, DType::F32) => Some("sinter_rem_f32"),
        (BinaryOp::Rem, DType::F64) => Some("sinter_rem_f64"),
        (BinaryOp::Pow, DType::F32) => Some("sinter_pow_f32"),
        (BinaryOp::Pow, DType::F64) => Some("sinter_pow_f64"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_helper_is_registered() {
        let names: Vec<&str> = all_helpers().iter().map(|h| h.name).collect();
        let unary = [
            UnaryOp::Exp,
            UnaryOp::Log,
            UnaryOp::Tanh,
            UnaryOp::Sigmoid,
            UnaryOp::Erf,
            UnaryOp::Sin,
            UnaryOp::Cos,
            UnaryOp::Tan,
            UnaryOp::Asin,
            UnaryOp::Acos,
            UnaryOp::Atan,
            UnaryOp::Sinh,
            UnaryOp::Cosh,
            UnaryOp::Asinh,
            UnaryOp::Acosh,
            UnaryOp::Atanh,
        ];
        for op in unary {
            for dtype in [DType::F32, DType::F64] {
                if let Some(name) = unary_helper_name(op, dtype) {
                    assert!(names.contains(&name), "{name}");
                }
            }
            assert!(unary_helper_name(op, DType::F64).is_some(), "{op:?}");
        }
        for op in [BinaryOp::Rem, BinaryOp::Pow] {
            for dtype in [DType::F32, DType::F64] {
                let name = binary_helper_name(op, dtype).unwrap();
                assert!(names.contains(&name), "{name}");
            }
        }
    }

    #[test]
    fn sigmoid_f64_is_stable_at_both_ends() {
        assert_eq!(sigmoid_f64(0.0), 0.5);
        assert_eq!(sigmoid_f64(800.0), 1.0);
        assert!(sigmoid_f64(-800.0) == 0.0);
        assert!((sigmoid_f64(-700.0) - (-700.0f64).exp()).abs() < 1e-310);
        assert!(sigmoid_f64(f64::NAN).is_nan());
    }
}
