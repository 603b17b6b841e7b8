//! Accuracy of the inline f32 exp/log/tanh/sigmoid/erf (`codegen::math`) over the whole f32 range:
//! a sweep of ~4.2 million bit patterns (every 1021st, so every exponent and sign is covered,
//! subnormals included) plus ±0, ±inf, NaN and the edges of each function's range, scalar and
//! vectorized, against f64 references rounded at the end. The bounds asserted here are the ones
//! documented in `codegen/math.rs`.

mod common;

use common::*;
use sinter_ir::DType;
use sinter_loops::{Expr, LoopKind, UnaryOp};

/// Spacing of f32 at `r` (the smallest subnormal for results in the subnormal range).
fn ulp_at(r: f64) -> f64 {
    let a = (r.abs() as f32).max(f32::MIN_POSITIVE);
    if a.is_infinite() {
        return f64::from(f32::MAX) * f64::from(f32::EPSILON);
    }
    let exponent_bits = (a.to_bits() >> 23) as i32;
    2f64.powi(exponent_bits - 127 - 23)
}

struct Stats {
    max_ulp: f64,
    worst_x: f32,
    max_subnormal_abs: f64,
}

fn inputs() -> Vec<f32> {
    let mut xs: Vec<f32> = (0..=u32::MAX / 1021)
        .map(|k| f32::from_bits(k * 1021))
        .collect();
    xs.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1e-45,
        -1e-45,
        f32::MAX,
        f32::MIN,
        88.72283,
        88.7229,
        89.0,
        -87.33655,
        -103.27893,
        -103.97208,
        -104.0,
        -150.0,
        0.625,
        -0.625,
        0.62499994,
        0.9,
        0.8999999,
        3.95,
        3.9500003,
        9.01,
        1.0,
        -1.0,
        std::f32::consts::FRAC_1_SQRT_2,
        0.70710677,
        1.0000001,
        0.99999994,
    ]);
    // A dense grid where each function changes regime.
    for k in -20000..=20000 {
        xs.push(k as f32 * 1e-3);
    }
    xs
}

fn measure(op: UnaryOp, reference: fn(f64) -> f64, kind: LoopKind, xs: &[f32]) -> Stats {
    let kernel = unary_kernel(
        xs.len(),
        DType::F32,
        DType::F32,
        |x| Expr::unary(op, x),
        kind,
    );
    let got = vals::<f32>(&run1(kernel, &[("a", t(xs.to_vec()))])[0]);
    let mut stats = Stats {
        max_ulp: 0.0,
        worst_x: 0.0,
        max_subnormal_abs: 0.0,
    };
    for (&x, &y) in xs.iter().zip(&got) {
        let r = reference(f64::from(x));
        let r32 = r as f32;
        if r.is_nan() {
            assert!(y.is_nan(), "{op:?}({x:e}) = {y:e}, want NaN");
            continue;
        }
        if r32.is_infinite() || r.is_infinite() {
            // Overflowing results must overflow (or be within an ulp of MAX).
            assert!(
                y == r32 || (y.abs() == f32::MAX && r.abs() < f64::from(f32::MAX) * (1.0 + 1e-7)),
                "{op:?}({x:e}) = {y:e}, want {r32:e}"
            );
            continue;
        }
        assert!(!y.is_nan(), "{op:?}({x:e}) = NaN, want {r:e}");
        if r == 0.0 || r32 == 0.0 {
            assert!(y.abs() <= 2e-45, "{op:?}({x:e}) = {y:e}, want {r:e}");
            assert!(
                y != 0.0
                    || y.is_sign_negative() == r.is_sign_negative()
                    || r32 != 0.0
                    || x.abs() > 0.0,
                "{op:?}({x:e}) sign of zero"
            );
            continue;
        }
        let err = (f64::from(y) - r).abs();
        if r.abs() < f64::from(f32::MIN_POSITIVE) {
            stats.max_subnormal_abs = stats.max_subnormal_abs.max(err / 2f64.powi(-149));
            continue;
        }
        let ulps = err / ulp_at(r);
        if ulps > stats.max_ulp {
            stats.max_ulp = ulps;
            stats.worst_x = x;
        }
    }
    stats
}

fn check(op: UnaryOp, reference: fn(f64) -> f64, max_ulp: f64) {
    let xs = inputs();
    for kind in [LoopKind::Serial, VEC4] {
        let stats = measure(op, reference, kind, &xs);
        eprintln!(
            "{op:?} {kind:?}: max {:.3} ulp at {:e}; subnormal results within {:.2} x 2^-149",
            stats.max_ulp, stats.worst_x, stats.max_subnormal_abs
        );
        assert!(
            stats.max_ulp <= max_ulp,
            "{op:?} {kind:?}: {} ulp at {:e}",
            stats.max_ulp,
            stats.worst_x
        );
        assert!(
            stats.max_subnormal_abs <= 1.0,
            "{op:?} {kind:?}: subnormal error {}",
            stats.max_subnormal_abs
        );
    }
}

#[test]
fn exp_within_bound() {
    check(UnaryOp::Exp, f64::exp, 1.5);
}

#[test]
fn log_within_bound() {
    check(UnaryOp::Log, f64::ln, 1.0);
}

#[test]
fn tanh_within_bound() {
    check(UnaryOp::Tanh, f64::tanh, 1.5);
}

#[test]
fn sigmoid_within_bound() {
    check(UnaryOp::Sigmoid, sinter_jit::codegen::sigmoid_f64, 2.5);
}

#[test]
fn erf_within_bound() {
    check(UnaryOp::Erf, libm::erf, 2.0);
}

#[test]
fn special_values() {
    let xs = vec![
        0.0f32,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -1.0,
    ];
    let expect: [(UnaryOp, [f32; 6]); 5] = [
        (
            UnaryOp::Exp,
            [1.0, 1.0, f32::INFINITY, 0.0, f32::NAN, (-1.0f32).exp()],
        ),
        (
            UnaryOp::Log,
            [
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
                f32::INFINITY,
                f32::NAN,
                f32::NAN,
                f32::NAN,
            ],
        ),
        (
            UnaryOp::Tanh,
            [0.0, -0.0, 1.0, -1.0, f32::NAN, (-1.0f32).tanh()],
        ),
        (
            UnaryOp::Sigmoid,
            [0.5, 0.5, 1.0, 0.0, f32::NAN, 0.268_941_43],
        ),
        (UnaryOp::Erf, [0.0, -0.0, 1.0, -1.0, f32::NAN, -0.842_700_8]),
    ];
    for (op, want) in expect {
        for kind in [LoopKind::Serial, VEC4] {
            let kernel = unary_kernel(
                xs.len(),
                DType::F32,
                DType::F32,
                |x| Expr::unary(op, x),
                kind,
            );
            let got = vals::<f32>(&run1(kernel, &[("a", t(xs.clone()))])[0]);
            for k in 0..xs.len() {
                let ok = same_f32(got[k], want[k])
                    || (k == 5 && (got[k] - want[k]).abs() <= 2.0 * f32::EPSILON);
                assert!(
                    ok,
                    "{op:?}({}) {kind:?} = {:e}, want {:e}",
                    xs[k], got[k], want[k]
                );
            }
        }
    }
}
