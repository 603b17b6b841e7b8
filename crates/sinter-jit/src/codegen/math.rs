//! Transcendental f32 functions as inline CLIF: exp, log, tanh, sigmoid and erf.
//!
//! CLIF has no exp/log; calling libm per element costs ~3x a polynomial and spills every vector
//! register at each call (DESIGN.md). Each function here is one sequence of CLIF instructions,
//! generic over `f32` and `f32x4` (the same code, with constants splatted and `select` replaced by
//! `bitselect` for vectors), so a vectorized loop computes four lanes at the price of one.
//!
//! Error bounds, asserted by `tests/math_accuracy.rs` against f64 references over a sweep of the
//! whole f32 range (every 1021st bit pattern, ~4.2 million values with subnormals, plus ±0, ±inf,
//! NaN and each function's edges), scalar and vectorized. An "ulp" is the spacing of f32 at the
//! reference result; results in the subnormal range are bounded in absolute terms, by the smallest
//! subnormal `2^-149` (they carry fewer bits). Measured maxima on this machine (with FMA) in brackets:
//!
//! | function | algorithm | bound (measured) |
//! | --- | --- | --- |
//! | `exp` | Cody-Waite reduction by ln 2, degree-5 Cephes polynomial, scaling by `2^n` split in two factors so results down to the subnormal range round once | 1.5 ulp (1.23) |
//! | `log` | exponent/mantissa split around sqrt(1/2), degree-8 Cephes polynomial; subnormal inputs are scaled by 2^23 first | 1 ulp (0.77) |
//! | `tanh` | `|x| < 0.625`: odd Cephes polynomial; else `1 - 2/(exp(2|x|) + 1)`; sign copied | 1.5 ulp (1.24) |
//! | `sigmoid` | `e = exp(-|x|)`, `1/(1+e)` or `e/(1+e)`, so neither end overflows | 2.5 ulp (2.28) |
//! | `erf` | `|x| < 0.9`: `x + x·R(x²)`, degree 5; else `1 - exp(-x²)·Q(x)`, degree 10, fitted (least squares, relative weight) to `erfc(x)·e^(x²)` on [0.9, 3.95]; 1 beyond | 2 ulp (1.79) |
//!
//! Special values follow IEEE/libm: NaN in gives NaN out; `exp(-inf) = 0`, `exp(+inf) = +inf`;
//! `log(0) = -inf`, `log(x < 0) = NaN`, `log(+inf) = +inf`; `tanh(±inf) = ±1`; `sigmoid(-inf) = 0`,
//! `sigmoid(+inf) = 1`; `erf(±inf) = ±1`; odd functions keep the sign of zero.
//!
//! Polynomials use `fma` when the target has it (this machine does); otherwise `mul_add` is a
//! multiply and an add, which rounds twice and is not covered by the measured bounds above.

// The coefficients are quoted as published (Cephes) or as fitted; the f32 they round to is what runs.
#![allow(clippy::excessive_precision)]

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32, F32X4, I32, I32X4};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

/// Coefficients of `e^r ≈ 1 + r + r²·P(r)` on `|r| <= ln2/2` (Cephes `expf`), highest degree first.
const EXP_POLY: [f32; 6] = [
    1.987_569_15e-4,
    1.398_199_950_7e-3,
    8.333_451_907_3e-3,
    4.166_579_589_4e-2,
    1.666_666_545_9e-1,
    5.000_000_120_1e-1,
];
/// ln 2 split so that `n * EXP_LN2_HI` is exact for the `n` that occur (Cephes).
const EXP_LN2_HI: f32 = 0.693_359_375;
const EXP_LN2_LO: f32 = -2.121_944_4e-4;
/// Inputs are clamped to this range first: beyond it the result is 0 or +inf after rounding, and
/// the clamp keeps the integer exponent arithmetic far from overflow.
const EXP_MIN_INPUT: f32 = -104.0;
const EXP_MAX_INPUT: f32 = 89.0;

/// Coefficients of `log(1+f) ≈ f - f²/2 + f³·P(f)` for `f` in [sqrt(1/2)-1, sqrt(2)-1] (Cephes `logf`).
const LOG_POLY: [f32; 9] = [
    7.037_683_629_2e-2,
    -1.151_461_031_0e-1,
    1.167_699_874_0e-1,
    -1.242_014_084_6e-1,
    1.424_932_278_7e-1,
    -1.666_805_766_5e-1,
    2.000_071_476_5e-1,
    -2.499_999_399_3e-1,
    3.333_333_117_4e-1,
];
const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// `tanh(x) ≈ x + x·s·P(s)`, `s = x²`, for `|x| < 0.625` (Cephes `tanhf`).
const TANH_POLY: [f32; 5] = [
    -5.704_988_727_45e-3,
    2.063_908_879_54e-2,
    -5.373_971_555_31e-2,
    1.333_144_220_36e-1,
    -3.333_328_194_22e-1,
];
const TANH_SMALL: f32 = 0.625;

/// `erf(x) ≈ x + x·R(x²)` for `|x| < ERF_SMALL` (fitted here, see the module docs).
const ERF_SMALL_POLY: [f32; 6] = [
    -6.123_043_713_159_859e-4,
    5.019_078_496_843_576e-3,
    -2.678_447_775_542_736e-2,
    1.128_232_702_612_876_9e-1,
    -3.761_254_847_049_713e-1,
    1.283_791_661_262_512_2e-1,
];
/// `erfc(x)·e^(x²) ≈ Q(x)` for `ERF_SMALL <= x <= ERF_MAX` (fitted here).
const ERF_LARGE_POLY: [f32; 11] = [
    1.881_521_598_079_416_4e-6,
    -5.352_301_377_570_256_6e-5,
    6.884_702_015_668_154e-4,
    -5.307_682_324_200_869e-3,
    2.743_120_864_033_699e-2,
    -1.008_555_144_071_579e-1,
    2.737_054_526_805_877_7e-1,
    -5.624_780_654_907_227e-1,
    8.906_746_506_690_979e-1,
    -1.090_151_071_548_462,
    9.939_278_364_181_519e-1,
];
const ERF_SMALL: f32 = 0.9;
/// Beyond this `erf` rounds to ±1 in f32.
const ERF_MAX: f32 = 3.95;

/// Emits the functions for one value shape (scalar or four lanes).
#[derive(Clone, Copy, Debug)]
pub struct MathBuilder {
    use_fma: bool,
    vector: bool,
}

impl MathBuilder {
    /// `use_fma`: the target has FMA; `vector`: values are `f32x4` rather than `f32`.
    pub fn new(use_fma: bool, vector: bool) -> MathBuilder {
        MathBuilder { use_fma, vector }
    }

    fn float_ty(self) -> Type {
        if self.vector {
            F32X4
        } else {
            F32
        }
    }

    fn int_ty(self) -> Type {
        if self.vector {
            I32X4
        } else {
            I32
        }
    }

    fn bitcast_flags(self) -> MemFlagsData {
        MemFlagsData::new().with_endianness(Endianness::Little)
    }

    fn fconst(self, b: &mut FunctionBuilder, value: f32) -> Value {
        let scalar = b.ins().f32const(value);
        if self.vector {
            b.ins().splat(F32X4, scalar)
        } else {
            scalar
        }
    }

    fn iconst(self, b: &mut FunctionBuilder, value: i32) -> Value {
        let scalar = b.ins().iconst(I32, i64::from(value as u32));
        if self.vector {
            b.ins().splat(I32X4, scalar)
        } else {
            scalar
        }
    }

    fn to_int_bits(self, b: &mut FunctionBuilder, x: Value) -> Value {
        b.ins().bitcast(self.int_ty(), self.bitcast_flags(), x)
    }

    fn to_float_bits(self, b: &mut FunctionBuilder, x: Value) -> Value {
        b.ins().bitcast(self.float_ty(), self.bitcast_flags(), x)
    }

    /// `cond ? x : y` where `cond` came from an `fcmp` of this shape.
    fn select(self, b: &mut FunctionBuilder, cond: Value, x: Value, y: Value) -> Value {
        if self.vector {
            let mask = b.ins().bitcast(F32X4, self.bitcast_flags(), cond);
            b.ins().bitselect(mask, x, y)
        } else {
            b.ins().select(cond, x, y)
        }
    }

    fn mul_add(self, b: &mut FunctionBuilder, x: Value, y: Value, z: Value) -> Value {
        if self.use_fma {
            b.ins().fma(x, y, z)
        } else {
            let product = b.ins().fmul(x, y);
            b.ins().fadd(product, z)
        }
    }

    /// Horner evaluation of `coeffs` (highest degree first) at `x`.
    fn poly(self, b: &mut FunctionBuilder, x: Value, coeffs: &[f32]) -> Value {
        let mut acc = self.fconst(b, coeffs[0]);
        for &c in &coeffs[1..] {
            let c = self.fconst(b, c);
            acc = self.mul_add(b, acc, x, c);
        }
        acc
    }

    /// `x` with the sign bit of `sign` (for `x >= 0`, including NaN).
    fn with_sign_of(self, b: &mut FunctionBuilder, x: Value, sign: Value) -> Value {
        let sign_mask = self.fconst(b, -0.0);
        let sign_bit = b.ins().band(sign, sign_mask);
        b.ins().bor(x, sign_bit)
    }

    /// `2^n` for an integer `n` in the normal exponent range -126..=127.
    fn pow2(self, b: &mut FunctionBuilder, n: Value) -> Value {
        let bias = self.iconst(b, 127);
        let biased = b.ins().iadd(n, bias);
        let bits = b.ins().ishl_imm_s(biased, 23);
        self.to_float_bits(b, bits)
    }

    pub fn exp(self, b: &mut FunctionBuilder, x: Value) -> Value {
        // Ordered compares are false on NaN, so the clamps let NaN through to the result.
        let hi = self.fconst(b, EXP_MAX_INPUT);
        let lo = self.fconst(b, EXP_MIN_INPUT);
        let above = b.ins().fcmp(FloatCC::GreaterThan, x, hi);
        let x = self.select(b, above, hi, x);
        let below = b.ins().fcmp(FloatCC::LessThan, x, lo);
        let x = self.select(b, below, lo, x);
        // n = round(x / ln 2), r = x - n ln 2 in two steps.
        let log2e = self.fconst(b, std::f32::consts::LOG2_E);
        let scaled = b.ins().fmul(x, log2e);
        let n = b.ins().nearest(scaled);
        let neg_n = b.ins().fneg(n);
        let ln2_hi = self.fconst(b, EXP_LN2_HI);
        let ln2_lo = self.fconst(b, EXP_LN2_LO);
        let r = self.mul_add(b, neg_n, ln2_hi, x);
        let r = self.mul_add(b, neg_n, ln2_lo, r);
        // e^r = 1 + r + r² P(r).
        let p = self.poly(b, r, &EXP_POLY);
        let r2 = b.ins().fmul(r, r);
        let one = self.fconst(b, 1.0);
        let r_plus_one = b.ins().fadd(r, one);
        let er = self.mul_add(b, p, r2, r_plus_one);
        // Scale by 2^n = 2^(n/2) · 2^(n - n/2): each factor is a normal float for n in -150..=128,
        // and only the last multiplication rounds (into the subnormal range, or to infinity).
        let n_int = b.ins().fcvt_to_sint_sat(self.int_ty(), n);
        let half = b.ins().sshr_imm_s(n_int, 1);
        let rest = b.ins().isub(n_int, half);
        let s1 = self.pow2(b, half);
        let s2 = self.pow2(b, rest);
        let scaled = b.ins().fmul(er, s1);
        b.ins().fmul(scaled, s2)
    }

    pub fn log(self, b: &mut FunctionBuilder, x: Value) -> Value {
        // Subnormal inputs: scale into the normal range and correct the exponent by 23.
        let min_normal = self.fconst(b, f32::MIN_POSITIVE);
        let subnormal = b.ins().fcmp(FloatCC::LessThan, x, min_normal);
        let two_23 = self.fconst(b, 8_388_608.0);
        let x_scaled = b.ins().fmul(x, two_23);
        let xs = self.select(b, subnormal, x_scaled, x);
        let zero_f = self.fconst(b, 0.0);
        let minus_23 = self.fconst(b, -23.0);
        let exp_adjust = self.select(b, subnormal, minus_23, zero_f);
        // x = m · 2^e with m in [0.5, 1).
        let bits = self.to_int_bits(b, xs);
        let exp_bits = b.ins().ushr_imm_s(bits, 23);
        let exp_mask = self.iconst(b, 0xff);
        let exp_bits = b.ins().band(exp_bits, exp_mask);
        let bias = self.iconst(b, 126);
        let e_int = b.ins().isub(exp_bits, bias);
        let e = b.ins().fcvt_from_sint(self.float_ty(), e_int);
        let e = b.ins().fadd(e, exp_adjust);
        let mantissa_mask = self.iconst(b, 0x007f_ffff);
        let m_bits = b.ins().band(bits, mantissa_mask);
        let half_bits = self.iconst(b, 0x3f00_0000);
        let m_bits = b.ins().bor(m_bits, half_bits);
        let m = self.to_float_bits(b, m_bits);
        // m < sqrt(1/2): use 2m - 1 and e - 1, else m - 1, so f lies in [sqrt(1/2)-1, sqrt(2)-1].
        let sqrt_half = self.fconst(b, SQRT_HALF);
        let small = b.ins().fcmp(FloatCC::LessThan, m, sqrt_half);
        let one = self.fconst(b, 1.0);
        let e_minus_one = b.ins().fsub(e, one);
        let e = self.select(b, small, e_minus_one, e);
        let m_doubled = b.ins().fadd(m, m);
        let m = self.select(b, small, m_doubled, m);
        let f = b.ins().fsub(m, one);
        let z = b.ins().fmul(f, f);
        let p = self.poly(b, f, &LOG_POLY);
        let fz = b.ins().fmul(f, z);
        let y = b.ins().fmul(p, fz);
        let ln2_lo = self.fconst(b, EXP_LN2_LO);
        let y = self.mul_add(b, e, ln2_lo, y);
        let minus_half = self.fconst(b, -0.5);
        let y = self.mul_add(b, z, minus_half, y);
        let result = b.ins().fadd(f, y);
        let ln2_hi = self.fconst(b, EXP_LN2_HI);
        let result = self.mul_add(b, e, ln2_hi, result);
        // Special values: x < 0 or NaN -> NaN, ±0 -> -inf, +inf -> +inf.
        let nan = self.fconst(b, f32::NAN);
        let neg_inf = self.fconst(b, f32::NEG_INFINITY);
        let inf = self.fconst(b, f32::INFINITY);
        let is_zero = b.ins().fcmp(FloatCC::Equal, x, zero_f);
        let result = self.select(b, is_zero, neg_inf, result);
        let is_inf = b.ins().fcmp(FloatCC::Equal, x, inf);
        let result = self.select(b, is_inf, inf, result);
        let invalid = b.ins().fcmp(FloatCC::UnorderedOrLessThan, x, zero_f);
        self.select(b, invalid, nan, result)
    }

    pub fn tanh(self, b: &mut FunctionBuilder, x: Value) -> Value {
        let ax = b.ins().fabs(x);
        // Small: |x| + |x|·s·P(s).
        let s = b.ins().fmul(ax, ax);
        let p = self.poly(b, s, &TANH_POLY);
        let ps = b.ins().fmul(p, s);
        let small = self.mul_add(b, ps, ax, ax);
        // Large: 1 - 2/(e^(2|x|) + 1); e^(2|x|) = inf gives exactly 1.
        let two_ax = b.ins().fadd(ax, ax);
        let e = self.exp(b, two_ax);
        let one = self.fconst(b, 1.0);
        let two = self.fconst(b, 2.0);
        let denom = b.ins().fadd(e, one);
        let frac = b.ins().fdiv(two, denom);
        let large = b.ins().fsub(one, frac);
        let threshold = self.fconst(b, TANH_SMALL);
        let is_small = b.ins().fcmp(FloatCC::LessThan, ax, threshold);
        let magnitude = self.select(b, is_small, small, large);
        self.with_sign_of(b, magnitude, x)
    }

    pub fn sigmoid(self, b: &mut FunctionBuilder, x: Value) -> Value {
        let ax = b.ins().fabs(x);
        let neg_ax = b.ins().fneg(ax);
        let e = self.exp(b, neg_ax);
        let one = self.fconst(b, 1.0);
        let denom = b.ins().fadd(one, e);
        let positive = b.ins().fdiv(one, denom);
        let negative = b.ins().fdiv(e, denom);
        let zero = self.fconst(b, 0.0);
        // NaN fails the ordered compare and takes the `negative` arm, which is NaN too.
        let non_negative = b.ins().fcmp(FloatCC::GreaterThanOrEqual, x, zero);
        self.select(b, non_negative, positive, negative)
    }

    pub fn erf(self, b: &mut FunctionBuilder, x: Value) -> Value {
        let ax = b.ins().fabs(x);
        // Small: |x| + |x|·R(x²).
        let t = b.ins().fmul(ax, ax);
        let r = self.poly(b, t, &ERF_SMALL_POLY);
        let small = self.mul_add(b, ax, r, ax);
        // Large: 1 - e^(-x²)·Q(x), with x clamped where erf has rounded to 1.
        let max = self.fconst(b, ERF_MAX);
        let beyond = b.ins().fcmp(FloatCC::GreaterThan, ax, max);
        let xl = self.select(b, beyond, max, ax);
        let q = self.poly(b, xl, &ERF_LARGE_POLY);
        let xl2 = b.ins().fmul(xl, xl);
        let neg_xl2 = b.ins().fneg(xl2);
        let gauss = self.exp(b, neg_xl2);
        let one = self.fconst(b, 1.0);
        let erfc = b.ins().fmul(gauss, q);
        let large = b.ins().fsub(one, erfc);
        let large = self.select(b, beyond, one, large);
        let threshold = self.fconst(b, ERF_SMALL);
        let is_small = b.ins().fcmp(FloatCC::LessThan, ax, threshold);
        let magnitude = self.select(b, is_small, small, large);
        self.with_sign_of(b, magnitude, x)
    }
}
