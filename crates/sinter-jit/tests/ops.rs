//! Every expression operator on every dtype it is defined on, against Rust reference semantics,
//! scalar and (for f32/bool) vectorized, including the edge cases of the shared value semantics.

mod common;

use common::*;
use sinter_ir::{DType, Tensor};
use sinter_loops::*;
use std::ops::{Add, Mul};

fn pairs<T: Copy>(values: &[T]) -> (Vec<T>, Vec<T>) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for &x in values {
        for &y in values {
            a.push(x);
            b.push(y);
        }
    }
    (a, b)
}

fn ref_max_f64(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_positive() || b.is_sign_positive() {
            0.0
        } else {
            -0.0
        }
    } else {
        a.max(b)
    }
}

fn ref_min_f64(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() || b.is_sign_negative() {
            -0.0
        } else {
            0.0
        }
    } else {
        a.min(b)
    }
}

const FLOAT_OPS: [BinaryOp; 8] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Max,
    BinaryOp::Min,
    BinaryOp::Rem,
    BinaryOp::Pow,
];

fn ref_float_op(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max => ref_max_f64(a, b),
        BinaryOp::Min => ref_min_f64(a, b),
        BinaryOp::Rem => a % b,
        BinaryOp::Pow => a.powf(b),
        _ => unreachable!(),
    }
}

fn ref_float_op_f32(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Rem => a % b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Max | BinaryOp::Min => ref_float_op(op, a.into(), b.into()) as f32,
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        _ => unreachable!(),
    }
}

#[test]
fn f32_binary_ops_scalar_and_vectorized() {
    let (a, b) = pairs(&special_f32());
    for op in FLOAT_OPS {
        for kind in [LoopKind::Serial, VEC4] {
            let kernel = binary_kernel(
                a.len(),
                DType::F32,
                DType::F32,
                |x, y| Expr::binary(op, x, y),
                kind,
            );
            let out = run1(kernel, &[("a", t(a.clone())), ("b", t(b.clone()))]);
            let got = vals::<f32>(&out[0]);
            for k in 0..a.len() {
                let want = ref_float_op_f32(op, a[k], b[k]);
                assert!(
                    same_f32(got[k], want),
                    "{op:?} {kind:?} ({}, {}): got {} want {}",
                    a[k],
                    b[k],
                    got[k],
                    want
                );
            }
        }
    }
}

#[test]
fn f64_binary_ops() {
    let values: Vec<f64> = special_f32()
        .into_iter()
        .map(f64::from)
        .chain([1e300, -1e-310])
        .collect();
    let (a, b) = pairs(&values);
    for op in FLOAT_OPS {
        let kernel = binary_kernel(
            a.len(),
            DType::F64,
            DType::F64,
            |x, y| Expr::binary(op, x, y),
            LoopKind::Serial,
        );
        let out = run1(kernel, &[("a", t(a.clone())), ("b", t(b.clone()))]);
        let got = vals::<f64>(&out[0]);
        for k in 0..a.len() {
            let want = ref_float_op(op, a[k], b[k]);
            assert!(
                same_f64(got[k], want),
                "{op:?} ({}, {}): got {} want {}",
                a[k],
                b[k],
                got[k],
                want
            );
        }
    }
}

#[test]
fn max_min_against_constants_keep_nan_and_zero_signs() {
    let xs = special_f32();
    let constants = [0.0f32, -0.0, 1.5, -2.0, f32::NAN, f32::INFINITY];
    for c in constants {
        for op in [BinaryOp::Max, BinaryOp::Min] {
            for constant_first in [false, true] {
                for kind in [LoopKind::Serial, VEC4] {
                    let kernel = unary_kernel(
                        xs.len(),
                        DType::F32,
                        DType::F32,
                        |x| {
                            if constant_first {
                                Expr::binary(op, Expr::f32(c), x)
                            } else {
                                Expr::binary(op, x, Expr::f32(c))
                            }
                        },
                        kind,
                    );
                    let got = vals::<f32>(&run1(kernel, &[("a", t(xs.clone()))])[0]);
                    for (k, &x) in xs.iter().enumerate() {
                        let want = ref_float_op_f32(op, x, c);
                        assert!(
                            same_f32(got[k], want),
                            "{op:?}({x}, {c}) const_first={constant_first} {kind:?}: got {}",
                            got[k]
                        );
                    }
                }
            }
        }
    }
}

macro_rules! int_op_test {
    ($name:ident, $t:ty, $dtype:expr, $values:expr) => {
        #[test]
        fn $name() {
            let values: Vec<$t> = $values;
            let (a, b) = pairs(&values);
            let ops = [
                BinaryOp::Add,
                BinaryOp::Sub,
                BinaryOp::Mul,
                BinaryOp::Div,
                BinaryOp::Rem,
                BinaryOp::Max,
                BinaryOp::Min,
                BinaryOp::And,
                BinaryOp::Or,
                BinaryOp::Xor,
            ];
            for op in ops {
                let kernel = binary_kernel(
                    a.len(),
                    $dtype,
                    $dtype,
                    |x, y| Expr::binary(op, x, y),
                    LoopKind::Serial,
                );
                let got = vals::<$t>(&run1(kernel, &[("a", t(a.clone())), ("b", t(b.clone()))])[0]);
                for k in 0..a.len() {
                    let (x, y) = (a[k], b[k]);
                    let want: $t = match op {
                        BinaryOp::Add => x.wrapping_add(y),
                        BinaryOp::Sub => x.wrapping_sub(y),
                        BinaryOp::Mul => x.wrapping_mul(y),
                        BinaryOp::Div => {
                            if y == 0 {
                                0
                            } else {
                                x.wrapping_div(y)
                            }
                        }
                        BinaryOp::Rem => {
                            if y == 0 {
                                0
                            } else {
                                x.wrapping_rem(y)
                            }
                        }
                        BinaryOp::Max => x.max(y),
                        BinaryOp::Min => x.min(y),
                        BinaryOp::And => x & y,
                        BinaryOp::Or => x | y,
                        BinaryOp::Xor => x ^ y,
                        _ => unreachable!(),
                    };
                    assert_eq!(got[k], want, "{op:?}({x}, {y})");
                }
            }
            // Comparisons.
            for op in [
                CmpOp::Eq,
                CmpOp::Ne,
                CmpOp::Lt,
                CmpOp::Le,
                CmpOp::Gt,
                CmpOp::Ge,
            ] {
                let kernel = binary_kernel(
                    a.len(),
                    $dtype,
                    DType::Bool,
                    |x, y| Expr::cmp(op, x, y),
                    LoopKind::Serial,
                );
                let got =
                    vals::<bool>(&run1(kernel, &[("a", t(a.clone())), ("b", t(b.clone()))])[0]);
                for k in 0..a.len() {
                    let (x, y) = (a[k], b[k]);
                    let want = match op {
                        CmpOp::Eq => x == y,
                        CmpOp::Ne => x != y,
                        CmpOp::Lt => x < y,
                        CmpOp::Le => x <= y,
                        CmpOp::Gt => x > y,
                        CmpOp::Ge => x >= y,
                    };
                    assert_eq!(got[k], want, "{op:?}({x}, {y})");
                }
            }
            // Unary.
            for op in [UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Not] {
                if op != UnaryOp::Not && $dtype == DType::U8 {
                    continue;
                }
                let kernel = unary_kernel(
                    values.len(),
                    $dtype,
                    $dtype,
                    |x| Expr::unary(op, x),
                    LoopKind::Serial,
                );
                let got = vals::<$t>(&run1(kernel, &[("a", t(values.clone()))])[0]);
                for (k, &x) in values.iter().enumerate() {
                    #[allow(unused_comparisons)]
                    let want: $t = match op {
                        UnaryOp::Neg => (0 as $t).wrapping_sub(x),
                        UnaryOp::Abs => {
                            if x < 0 {
                                (0 as $t).wrapping_sub(x)
                            } else {
                                x
                            }
                        }
                        _ => !x,
                    };
                    assert_eq!(got[k], want, "{op:?}({x})");
                }
            }
        }
    };
}

int_op_test!(
    i64_ops,
    i64,
    DType::I64,
    vec![
        0,
        1,
        -1,
        2,
        -2,
        7,
        -7,
        1 << 40,
        i64::MAX,
        i64::MIN,
        i64::MIN + 1
    ]
);
int_op_test!(
    i32_ops,
    i32,
    DType::I32,
    vec![
        0,
        1,
        -1,
        2,
        -2,
        7,
        -7,
        1 << 20,
        i32::MAX,
        i32::MIN,
        i32::MIN + 1
    ]
);
int_op_test!(
    i8_ops,
    i8,
    DType::I8,
    vec![0, 1, -1, 2, -2, 7, -7, 100, i8::MAX, i8::MIN, i8::MIN + 1]
);
int_op_test!(
    u8_ops,
    u8,
    DType::U8,
    vec![0, 1, 2, 7, 100, 128, 200, 254, 255]
);

#[test]
fn bool_logic_and_comparisons_scalar_and_vectorized() {
    let (a, b) = pairs(&[false, true]);
    let logic = [BinaryOp::And, BinaryOp::Or, BinaryOp::Xor];
    let cmps = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ];
    let ref_logic = |op: BinaryOp, x: bool, y: bool| match op {
        BinaryOp::And => x & y,
        BinaryOp::Or => x | y,
        _ => x ^ y,
    };
    let ref_cmp = |op: CmpOp, x: bool, y: bool| match op {
        CmpOp::Eq => x == y,
        CmpOp::Ne => x != y,
        CmpOp::Lt => !x & y,
        CmpOp::Le => x <= y,
        CmpOp::Gt => x & !y,
        CmpOp::Ge => x >= y,
    };
    // Scalar: bool buffers in and out.
    for op in logic {
        let kernel = binary_kernel(
            a.len(),
            DType::Bool,
            DType::Bool,
            |x, y| Expr::binary(op, x, y),
            LoopKind::Serial,
        );
        let got = vals::<bool>(&run1(kernel, &[("a", t(a.clone())), ("b", t(b.clone()))])[0]);
        for k in 0..a.len() {
            assert_eq!(
                got[k],
                ref_logic(op, a[k], b[k]),
                "{op:?}({}, {})",
                a[k],
                b[k]
            );
        }
    }
    for op in cmps {
        let kernel = binary_kernel(
            a.len(),
            DType::Bool,
            DType::Bool,
            |x, y| Expr::cmp(op, x, y),
            LoopKind::Serial,
        );
        let got = vals::<bool>(&run1(kernel, &[("a", t(a.clone())), ("b", t(b.clone()))])[0]);
        for k in 0..a.len() {
            assert_eq!(
                got[k],
                ref_cmp(op, a[k], b[k]),
                "{op:?}({}, {})",
                a[k],
                b[k]
            );
        }
    }
    let kernel = unary_kernel(
        4,
        DType::Bool,
        DType::Bool,
        |x| Expr::unary(UnaryOp::Not, x),
        LoopKind::Serial,
    );
    let got = vals::<bool>(&run1(kernel, &[("a", t(vec![true, false, false, true]))])[0]);
    assert_eq!(got, vec![false, true, true, false]);
    // Vectorized: bools are lane masks made by comparing f32s, stored back as f32 0/1.
    let fa: Vec<f32> = a.iter().map(|&x| if x { 1.0 } else { -1.0 }).collect();
    let fb: Vec<f32> = b.iter().map(|&x| if x { 1.0 } else { -1.0 }).collect();
    let as_bool = |e: Expr| Expr::cmp(CmpOp::Gt, e, Expr::f32(0.0));
    let to_f32 = |e: Expr| Expr::cast(DType::F32, e);
    for kind in [LoopKind::Serial, VEC4] {
        for op in logic {
            let kernel = binary_kernel(
                a.len(),
                DType::F32,
                DType::F32,
                |x, y| to_f32(Expr::binary(op, as_bool(x), as_bool(y))),
                kind,
            );
            let got = vals::<f32>(&run1(kernel, &[("a", t(fa.clone())), ("b", t(fb.clone()))])[0]);
            for k in 0..a.len() {
                assert_eq!(got[k] == 1.0, ref_logic(op, a[k], b[k]), "{op:?} {kind:?}");
            }
        }
        // The verifier rejects comparisons of bools in vectorized loops; the scalar path is above.
        for op in logic {
            let kernel = binary_kernel(
                a.len(),
                DType::F32,
                DType::F32,
                |x, y| {
                    Expr::select(
                        Expr::binary(op, as_bool(x.clone()), as_bool(y)),
                        x,
                        Expr::f32(5.0),
                    )
                },
                kind,
            );
            let got = vals::<f32>(&run1(kernel, &[("a", t(fa.clone())), ("b", t(fb.clone()))])[0]);
            for k in 0..a.len() {
                let want = if ref_logic(op, a[k], b[k]) {
                    fa[k]
                } else {
                    5.0
                };
                assert_eq!(got[k], want, "select on {op:?} {kind:?}");
            }
        }
        let kernel = unary_kernel(
            4,
            DType::F32,
            DType::F32,
            |x| to_f32(Expr::unary(UnaryOp::Not, as_bool(x))),
            kind,
        );
        let got = vals::<f32>(&run1(kernel, &[("a", t(vec![1.0f32, -1.0, -1.0, 1.0]))])[0]);
        assert_eq!(got, vec![0.0, 1.0, 1.0, 0.0], "{kind:?}");
    }
}

#[test]
fn float_comparisons_are_ordered_except_ne() {
    let (a, b) = pairs(&special_f32());
    for kind in [LoopKind::Serial, VEC4] {
        for op in [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ] {
            let kernel = binary_kernel(
                a.len(),
                DType::F32,
                DType::F32,
                |x, y| Expr::cast(DType::F32, Expr::cmp(op, x, y)),
                kind,
            );
            let got: Vec<bool> =
                vals::<f32>(&run1(kernel, &[("a", t(a.clone())), ("b", t(b.clone()))])[0])
                    .iter()
                    .map(|&v| v == 1.0)
                    .collect();
            for k in 0..a.len() {
                let (x, y) = (a[k], b[k]);
                let want = match op {
                    CmpOp::Eq => x == y,
                    CmpOp::Ne => x != y,
                    CmpOp::Lt => x < y,
                    CmpOp::Le => x <= y,
                    CmpOp::Gt => x > y,
                    CmpOp::Ge => x >= y,
                };
                assert_eq!(got[k], want, "{op:?}({x}, {y}) {kind:?}");
            }
        }
    }
    // f64 too.
    let values: Vec<f64> = special_f32().into_iter().map(f64::from).collect();
    let (a, b) = pairs(&values);
    let kernel = binary_kernel(
        a.len(),
        DType::F64,
        DType::Bool,
        |x, y| Expr::cmp(CmpOp::Le, x, y),
        LoopKind::Serial,
    );
    let got = vals::<bool>(&run1(kernel, &[("a", t(a.clone())), ("b", t(b.clone()))])[0]);
    for k in 0..a.len() {
        assert_eq!(got[k], a[k] <= b[k]);
    }
}

fn tensor_of(dtype: DType, values: &[f64]) -> Tensor {
    let f64s = Tensor::from_vec(vec![values.len()], values.to_vec()).unwrap();
    f64s.cast(dtype)
}

#[test]
fn every_cast_matches_the_ir_reference() {
    let float_values: Vec<f64> = special_f32()
        .into_iter()
        .map(f64::from)
        .chain([1e20, -1e20, 9.3e18, -9.3e18, 2.9e9, 0.49999997, 1e300])
        .collect();
    let int_values: Vec<f64> = vec![
        0.0,
        1.0,
        -1.0,
        127.0,
        128.0,
        255.0,
        256.0,
        -129.0,
        65537.0,
        -2147483648.0,
        4294967297.0,
        9007199254740993.0,
    ];
    let dtypes = [
        DType::F32,
        DType::F64,
        DType::I64,
        DType::I32,
        DType::I8,
        DType::U8,
        DType::Bool,
    ];
    for from in dtypes {
        // Integer sources come from exact integer conversions; the i64 source adds values that
        // f64 cannot represent.
        let mut source = if from.is_float() {
            tensor_of(from, &float_values)
        } else {
            tensor_of(from, &int_values)
        };
        if from == DType::I64 {
            let mut v = source.as_slice::<i64>().unwrap().to_vec();
            v.extend([i64::MAX, i64::MIN, (1 << 60) + (1 << 36) + 1]);
            source = t(v);
        }
        for to in dtypes {
            {
                let kind = LoopKind::Serial;
                let kernel = unary_kernel(source.len(), from, to, |x| Expr::cast(to, x), kind);
                let got = run1(kernel, &[("a", source.clone())]);
                let want = source.cast(to);
                let equal = match to {
                    DType::F32 => vals::<f32>(&got[0])
                        .iter()
                        .zip(vals::<f32>(&want))
                        .all(|(&g, w)| same_f32(g, w)),
                    DType::F64 => vals::<f64>(&got[0])
                        .iter()
                        .zip(vals::<f64>(&want))
                        .all(|(&g, w)| same_f64(g, w)),
                    _ => got[0] == want,
                };
                assert!(
                    equal,
                    "cast {from} -> {to} ({kind:?}):\n source {:?}\n got  {:?}\n want {:?}",
                    source, got[0], want
                );
            }
        }
    }
    // Vectorized casts: f32 -> bool (NaN is true) -> f32, and f32 -> f32.
    let xs: Vec<f32> = special_f32();
    for kind in [LoopKind::Serial, VEC4] {
        let kernel = unary_kernel(
            xs.len(),
            DType::F32,
            DType::F32,
            |x| {
                Expr::add(
                    Expr::cast(DType::F32, Expr::cast(DType::Bool, x.clone())),
                    Expr::cast(DType::F32, x),
                )
            },
            kind,
        );
        let got = vals::<f32>(&run1(kernel, &[("a", t(xs.clone()))])[0]);
        for (k, &x) in xs.iter().enumerate() {
            let want = if x != 0.0 { 1.0 } else { 0.0 } + x;
            assert!(same_f32(got[k], want), "{kind:?} {x}: {}", got[k]);
        }
    }
}

#[test]
fn float_unary_ops_match_std() {
    type F32Ref = fn(f32) -> f32;
    type F64Ref = fn(f64) -> f64;
    let exact: [(UnaryOp, F32Ref, F64Ref); 7] = [
        (UnaryOp::Neg, |x| -x, |x| -x),
        (UnaryOp::Abs, f32::abs, f64::abs),
        (UnaryOp::Sqrt, f32::sqrt, f64::sqrt),
        (UnaryOp::Floor, f32::floor, f64::floor),
        (UnaryOp::Ceil, f32::ceil, f64::ceil),
        (UnaryOp::Round, f32::round_ties_even, f64::round_ties_even),
        (UnaryOp::Sin, f32::sin, f64::sin),
    ];
    // Helper-backed ops call std, so they agree exactly too (per lane when vectorized).
    let helpers: [(UnaryOp, F32Ref, F64Ref); 10] = [
        (UnaryOp::Cos, f32::cos, f64::cos),
        (UnaryOp::Tan, f32::tan, f64::tan),
        (UnaryOp::Asin, f32::asin, f64::asin),
        (UnaryOp::Acos, f32::acos, f64::acos),
        (UnaryOp::Atan, f32::atan, f64::atan),
        (UnaryOp::Sinh, f32::sinh, f64::sinh),
        (UnaryOp::Cosh, f32::cosh, f64::cosh),
        (UnaryOp::Asinh, f32::asinh, f64::asinh),
        (UnaryOp::Acosh, f32::acosh, f64::acosh),
        (UnaryOp::Atanh, f32::atanh, f64::atanh),
    ];
    let mut xs = special_f32();
    xs.extend([0.25, -0.75, 0.999, 2.5e-3, 10.0, -10.0, 0.5000001]);
    for (op, f, g) in exact.into_iter().chain(helpers) {
        for kind in [LoopKind::Serial, VEC4] {
            let kernel = unary_kernel(
                xs.len(),
                DType::F32,
                DType::F32,
                |x| Expr::unary(op, x),
                kind,
            );
            let got = vals::<f32>(&run1(kernel, &[("a", t(xs.clone()))])[0]);
            for (k, &x) in xs.iter().enumerate() {
                assert!(
                    same_f32(got[k], f(x)),
                    "{op:?}({x}) {kind:?}: got {} want {}",
                    got[k],
                    f(x)
                );
            }
        }
        let xs64: Vec<f64> = xs.iter().map(|&x| f64::from(x)).collect();
        let kernel = unary_kernel(
            xs64.len(),
            DType::F64,
            DType::F64,
            |x| Expr::unary(op, x),
            LoopKind::Serial,
        );
        let got = vals::<f64>(&run1(kernel, &[("a", t(xs64.clone()))])[0]);
        for (k, &x) in xs64.iter().enumerate() {
            assert!(
                same_f64(got[k], g(x)),
                "{op:?}({x}) f64: got {} want {}",
                got[k],
                g(x)
            );
        }
    }
}

#[test]
fn f64_transcendentals_call_std_and_libm() {
    let xs: Vec<f64> = vec![
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.0,
        -3.0,
        20.0,
        -800.0,
        800.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e-310,
    ];
    type Reference = fn(f64) -> f64;
    let refs: [(UnaryOp, Reference); 5] = [
        (UnaryOp::Exp, f64::exp),
        (UnaryOp::Log, f64::ln),
        (UnaryOp::Tanh, f64::tanh),
        (UnaryOp::Sigmoid, sinter_jit::codegen::sigmoid_f64),
        (UnaryOp::Erf, libm::erf),
    ];
    for (op, f) in refs {
        let kernel = unary_kernel(
            xs.len(),
            DType::F64,
            DType::F64,
            |x| Expr::unary(op, x),
            LoopKind::Serial,
        );
        let got = vals::<f64>(&run1(kernel, &[("a", t(xs.clone()))])[0]);
        for (k, &x) in xs.iter().enumerate() {
            assert!(
                same_f64(got[k], f(x)),
                "{op:?}({x}): got {} want {}",
                got[k],
                f(x)
            );
        }
    }
}

#[test]
fn fma_rounds_once_scalar_and_vectorized() {
    // a*b+c where the unfused result differs: (1+2^-23)(1-2^-23) - 1 = -2^-46 exactly.
    let n = 9;
    let a = vec![1.0 + f32::EPSILON; n];
    let b = vec![1.0 - f32::EPSILON; n];
    let c = vec![-1.0f32; n];
    for kind in [LoopKind::Serial, VEC4] {
        let mut kb = KernelBuilder::new("fma", vec!["%fma".into()]);
        let ba = kb.buffer("a", DType::F32, n, BufferRole::Input);
        let bb = kb.buffer("b", DType::F32, n, BufferRole::Input);
        let bc = kb.buffer("c", DType::F32, n, BufferRole::Input);
        let out = kb.buffer("out", DType::F32, n, BufferRole::Output);
        kb.loop_(n, |kb, i| {
            let v = Expr::fma(
                Expr::load(ba, Index::var(i)),
                Expr::load(bb, Index::var(i)),
                Expr::load(bc, Index::var(i)),
            );
            kb.store(out, Index::var(i), v);
        });
        let mut kernel = kb.finish();
        set_kind(&mut kernel.body, kind);
        let got = vals::<f32>(
            &run1(
                kernel,
                &[
                    ("a", t(a.clone())),
                    ("b", t(b.clone())),
                    ("c", t(c.clone())),
                ],
            )[0],
        );
        for g in got {
            assert_eq!(g, -(2.0f32.powi(-46)), "{kind:?}");
        }
    }
    // f64.
    let kernel = {
        let mut kb = KernelBuilder::new("fma64", vec![]);
        let ba = kb.buffer("a", DType::F64, 1, BufferRole::Input);
        let out = kb.buffer("out", DType::F64, 1, BufferRole::Output);
        let x = Expr::load(ba, Index::constant(0));
        kb.store(
            out,
            Index::constant(0),
            Expr::fma(
                x.clone(),
                Expr::unary(UnaryOp::Neg, x.clone()),
                Expr::mul(x.clone(), x),
            ),
        );
        kb.finish()
    };
    let x = 1.0 + f64::EPSILON;
    let got = vals::<f64>(&run1(kernel, &[("a", t(vec![x]))])[0]);
    assert_eq!(got[0], x.mul_add(-x, x * x));
    assert_ne!(got[0], 0.0);
}

#[test]
fn select_scalar_vector_and_mixed() {
    let xs: Vec<f32> = vec![-3.0, 2.0, f32::NAN, 0.5, -0.0, 7.0, -1.0];
    for kind in [LoopKind::Serial, VEC4] {
        // Vector condition, vector and scalar-constant arms.
        let kernel = unary_kernel(
            xs.len(),
            DType::F32,
            DType::F32,
            |x| {
                Expr::select(
                    Expr::cmp(CmpOp::Gt, x.clone(), Expr::f32(0.0)),
                    x,
                    Expr::f32(-9.0),
                )
            },
            kind,
        );
        let got = vals::<f32>(&run1(kernel, &[("a", t(xs.clone()))])[0]);
        let want: Vec<f32> = xs.iter().map(|&x| if x > 0.0 { x } else { -9.0 }).collect();
        assert!(
            got.iter().zip(&want).all(|(&g, &w)| same_f32(g, w)),
            "{kind:?} {got:?}"
        );
        // Bool arms.
        let kernel = unary_kernel(
            xs.len(),
            DType::F32,
            DType::F32,
            |x| {
                Expr::cast(
                    DType::F32,
                    Expr::select(
                        Expr::cmp(CmpOp::Lt, x.clone(), Expr::f32(1.0)),
                        Expr::cmp(CmpOp::Lt, x, Expr::f32(-2.0)),
                        Expr::constant(Scalar::Bool(true)),
                    ),
                )
            },
            kind,
        );
        let got: Vec<bool> = vals::<f32>(&run1(kernel, &[("a", t(xs.clone()))])[0])
            .iter()
            .map(|&v| v == 1.0)
            .collect();
        let want: Vec<bool> = xs
            .iter()
            .map(|&x| if x < 1.0 { x < -2.0 } else { true })
            .collect();
        assert_eq!(got, want, "{kind:?}");
    }
    // Integer select.
    let kernel = binary_kernel(
        3,
        DType::I32,
        DType::I32,
        |a, b| Expr::select(Expr::cmp(CmpOp::Lt, a.clone(), b.clone()), a, b),
        LoopKind::Serial,
    );
    let got = vals::<i32>(
        &run1(
            kernel,
            &[("a", t(vec![1, 5, -3])), ("b", t(vec![2, 4, -3]))],
        )[0],
    );
    assert_eq!(got, vec![1, 4, -3]);
}
