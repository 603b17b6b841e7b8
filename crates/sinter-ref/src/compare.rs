//! Comparing a computed tensor with an expected one: the one rule used by `sinter check` and by every
//! fixture harness (op fixtures, the ONNX node suite, real models).
//!
//! The rule is the ONNX backend test's (`numpy.testing.assert_allclose`), with two deliberate
//! differences:
//! - **Floats** match when `|actual - expected| <= atol + rtol * |expected|`. A NaN matches a NaN (of any
//!   payload), an infinity matches only the same infinity, and a NaN or infinity on one side only is an
//!   infinite error.
//! - **Integers and bools** must be equal. An index or a count that is off by one is a bug at any
//!   tolerance, and comparing exactly avoids rounding i64 values beyond 2^53 through f64.
//! - **Dtype and shape** must be identical; there is no broadcasting.
//!
//! Besides the verdict, a [`Comparison`] records the worst absolute and the worst relative error and
//! where they are, because "how far off, and where" is what one needs to find a bug. The relative error
//! is `|actual - expected| / |expected|`, infinite where `expected` is 0 and `actual` is not (as numpy
//! reports it).

use sinter_ir::{Tensor, TensorData};
use std::fmt;

/// The allowed error: `atol + rtol * |expected|` per element.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

impl Tolerance {
    /// The ONNX backend test defaults.
    pub const ONNX_DEFAULT: Tolerance = Tolerance {
        rtol: 1e-3,
        atol: 1e-7,
    };
}

/// One element's error, with the values that produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct ElementError {
    /// The element's multi-dimensional index.
    pub index: Vec<usize>,
    pub error: f64,
    pub actual: String,
    pub expected: String,
}

/// The result of comparing one tensor with its expected value.
#[derive(Clone, Debug, PartialEq)]
pub enum Comparison {
    /// Dtype or shape differ, so no element is compared.
    TypeMismatch { actual: String, expected: String },
    Compared {
        n_elements: usize,
        /// Elements outside the tolerance.
        n_mismatched: usize,
        /// The largest absolute error; `None` for an empty tensor.
        worst_abs: Option<ElementError>,
        /// The largest relative error; `None` for an empty tensor.
        worst_rel: Option<ElementError>,
    },
}

impl Comparison {
    pub fn matches(&self) -> bool {
        matches!(
            self,
            Comparison::Compared {
                n_mismatched: 0,
                ..
            }
        )
    }
}

impl fmt::Display for Comparison {
    /// One line: the type mismatch, or the mismatch count (if any) and the worst errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Comparison::TypeMismatch { actual, expected } => {
                write!(f, "got {actual}, expected {expected}")
            }
            Comparison::Compared {
                n_elements,
                n_mismatched,
                worst_abs,
                worst_rel,
            } => {
                if *n_mismatched > 0 {
                    write!(
                        f,
                        "{n_mismatched} of {n_elements} elements outside tolerance; "
                    )?;
                }
                match (worst_abs, worst_rel) {
                    (Some(worst_abs), _) if worst_abs.error == 0.0 => {
                        write!(f, "all {n_elements} elements equal")
                    }
                    (Some(worst_abs), Some(worst_rel)) => write!(
                        f,
                        "max abs error {:.3e} at {:?} (got {}, expected {}), max rel error {:.3e} at {:?}",
                        worst_abs.error,
                        worst_abs.index,
                        worst_abs.actual,
                        worst_abs.expected,
                        worst_rel.error,
                        worst_rel.index
                    ),
                    _ => write!(f, "no elements"),
                }
            }
        }
    }
}

/// Compares `actual` with `expected` under `tolerance` (which only applies to floats).
pub fn compare(actual: &Tensor, expected: &Tensor, tolerance: Tolerance) -> Comparison {
    if actual.dtype() != expected.dtype() || actual.shape() != expected.shape() {
        return Comparison::TypeMismatch {
            actual: format!("{}{:?}", actual.dtype(), actual.shape()),
            expected: format!("{}{:?}", expected.dtype(), expected.shape()),
        };
    }
    let is_float = expected.dtype().is_float();
    let (got, want) = (actual.to_f64_vec(), expected.to_f64_vec());
    let mut n_mismatched = 0;
    // (flat index, error) of the worst element so far; the first of equal errors wins.
    let mut worst_abs: Option<(usize, f64)> = None;
    let mut worst_rel: Option<(usize, f64)> = None;
    for (elem_idx, (&a, &e)) in got.iter().zip(&want).enumerate() {
        let (abs_error, is_match) = if is_float {
            float_error(a, e, tolerance)
        } else {
            let is_match = exact_elem_eq(actual.data(), expected.data(), elem_idx);
            // Two i64 values can differ yet round to the same f64; a mismatch keeps a positive error.
            let abs_error = if is_match {
                0.0
            } else {
                (a - e).abs().max(f64::MIN_POSITIVE)
            };
            (abs_error, is_match)
        };
        let rel_error = if abs_error == 0.0 {
            0.0
        } else if abs_error.is_finite() && e.is_finite() {
            // Infinite where `expected` is 0.
            abs_error / e.abs()
        } else {
            f64::INFINITY
        };
        n_mismatched += usize::from(!is_match);
        if worst_abs.is_none_or(|(_, worst)| abs_error > worst) {
            worst_abs = Some((elem_idx, abs_error));
        }
        if worst_rel.is_none_or(|(_, worst)| rel_error > worst) {
            worst_rel = Some((elem_idx, rel_error));
        }
    }
    let element_error = |(elem_idx, error): (usize, f64)| ElementError {
        index: unravel(elem_idx, expected.shape()),
        error,
        actual: elem_text(actual.data(), elem_idx),
        expected: elem_text(expected.data(), elem_idx),
    };
    Comparison::Compared {
        n_elements: expected.len(),
        n_mismatched,
        worst_abs: worst_abs.map(element_error),
        worst_rel: worst_rel.map(element_error),
    }
}

/// The absolute error of one float element and whether it is within tolerance. NaN against NaN and an
/// infinity against the same infinity are exact; any other pairing with a non-finite value is an
/// infinite error.
fn float_error(actual: f64, expected: f64, tolerance: Tolerance) -> (f64, bool) {
    if !actual.is_finite() || !expected.is_finite() {
        let same = (actual.is_nan() && expected.is_nan()) || actual == expected;
        return if same {
            (0.0, true)
        } else {
            (f64::INFINITY, false)
        };
    }
    let abs_error = (actual - expected).abs();
    let allowed = tolerance.atol + tolerance.rtol * expected.abs();
    (abs_error, abs_error <= allowed)
}

/// Element equality without going through f64, so i64 values beyond 2^53 compare exactly.
fn exact_elem_eq(a: &TensorData, b: &TensorData, elem_idx: usize) -> bool {
    match (a, b) {
        (TensorData::I64(a), TensorData::I64(b)) => a[elem_idx] == b[elem_idx],
        (TensorData::I32(a), TensorData::I32(b)) => a[elem_idx] == b[elem_idx],
        (TensorData::I8(a), TensorData::I8(b)) => a[elem_idx] == b[elem_idx],
        (TensorData::U8(a), TensorData::U8(b)) => a[elem_idx] == b[elem_idx],
        (TensorData::Bool(a), TensorData::Bool(b)) => a[elem_idx] == b[elem_idx],
        _ => a.get_f64(elem_idx) == b.get_f64(elem_idx),
    }
}

/// One element as text: floats in Rust's shortest round-trip form, integers exactly.
fn elem_text(data: &TensorData, elem_idx: usize) -> String {
    match data {
        TensorData::F32(v) => format!("{:?}", v[elem_idx]),
        TensorData::F64(v) => format!("{:?}", v[elem_idx]),
        TensorData::I64(v) => v[elem_idx].to_string(),
        TensorData::Bool(v) => v[elem_idx].to_string(),
        _ => data.get_i64(elem_idx).to_string(),
    }
}

/// The multi-dimensional index of flat element `flat_idx` in a row-major tensor of `shape`.
fn unravel(mut flat_idx: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (axis, &dim) in shape.iter().enumerate().rev() {
        if dim > 0 {
            index[axis] = flat_idx % dim;
            flat_idx /= dim;
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(shape: Vec<usize>, values: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, values).unwrap()
    }

    #[test]
    fn within_tolerance_matches_and_reports_worst_errors() {
        let expected = f32s(vec![2, 2], vec![1.0, 2.0, 0.0, -4.0]);
        let actual = f32s(vec![2, 2], vec![1.0008, 2.0, 0.0, -4.002]);
        let result = compare(&actual, &expected, Tolerance::ONNX_DEFAULT);
        assert!(result.matches(), "{result}");
        let Comparison::Compared {
            worst_abs,
            worst_rel,
            ..
        } = &result
        else {
            panic!("{result:?}")
        };
        assert_eq!(worst_abs.as_ref().unwrap().index, [1, 1]);
        assert_eq!(worst_rel.as_ref().unwrap().index, [0, 0]);
        let text = result.to_string();
        assert!(
            text.starts_with("max abs error 2.000e-3 at [1, 1] (got -4.002, expected -4.0)"),
            "{text}"
        );
    }

    #[test]
    fn outside_tolerance_counts_mismatches() {
        let expected = f32s(vec![3], vec![1.0, 2.0, 3.0]);
        let actual = f32s(vec![3], vec![1.01, 2.0, 2.0]);
        let result = compare(&actual, &expected, Tolerance::ONNX_DEFAULT);
        assert!(!result.matches());
        let text = result.to_string();
        assert!(
            text.starts_with("2 of 3 elements outside tolerance; max abs error 1.000e0 at [2]"),
            "{text}"
        );
        // A looser tolerance accepts the same values.
        let loose = Tolerance {
            rtol: 0.5,
            atol: 0.0,
        };
        assert!(compare(&actual, &expected, loose).matches());
    }

    #[test]
    fn nan_and_infinity_match_only_themselves() {
        let expected = f32s(vec![3], vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        let same = f32s(vec![3], vec![-f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        assert!(compare(&same, &expected, Tolerance::ONNX_DEFAULT).matches());
        for wrong in [
            vec![0.0, f32::INFINITY, f32::NEG_INFINITY],
            vec![f32::NAN, f32::NEG_INFINITY, f32::NEG_INFINITY],
            vec![f32::NAN, f32::INFINITY, f32::NAN],
        ] {
            let result = compare(&f32s(vec![3], wrong), &expected, Tolerance::ONNX_DEFAULT);
            assert!(!result.matches(), "{result}");
        }
        let result = compare(
            &f32s(vec![1], vec![f32::NAN]),
            &f32s(vec![1], vec![1.0]),
            Tolerance::ONNX_DEFAULT,
        );
        assert!(!result.matches(), "{result}");
    }

    #[test]
    fn integers_compare_exactly() {
        let expected = Tensor::from_vec(vec![2], vec![i64::MAX, 1000]).unwrap();
        let off_by_one = Tensor::from_vec(vec![2], vec![i64::MAX - 1, 1000]).unwrap();
        assert!(!compare(&off_by_one, &expected, Tolerance::ONNX_DEFAULT).matches());
        let off_in_tolerance = Tensor::from_vec(vec![2], vec![i64::MAX, 1001]).unwrap();
        assert!(!compare(&off_in_tolerance, &expected, Tolerance::ONNX_DEFAULT).matches());
        assert!(compare(&expected, &expected, Tolerance::ONNX_DEFAULT).matches());
        let bools = Tensor::from_vec(vec![2], vec![true, false]).unwrap();
        let flipped = Tensor::from_vec(vec![2], vec![true, true]).unwrap();
        assert!(!compare(&flipped, &bools, Tolerance::ONNX_DEFAULT).matches());
    }

    #[test]
    fn dtype_and_shape_must_be_identical() {
        let expected = f32s(vec![2, 1], vec![1.0, 2.0]);
        let result = compare(
            &f32s(vec![2], vec![1.0, 2.0]),
            &expected,
            Tolerance::ONNX_DEFAULT,
        );
        assert_eq!(result.to_string(), "got f32[2], expected f32[2, 1]");
        let f64s = Tensor::from_vec(vec![2, 1], vec![1.0f64, 2.0]).unwrap();
        assert!(!compare(&f64s, &expected, Tolerance::ONNX_DEFAULT).matches());
    }

    #[test]
    fn exact_results_say_so() {
        let t = f32s(vec![3], vec![1.0, f32::NAN, -2.0]);
        let result = compare(&t, &t, Tolerance::ONNX_DEFAULT);
        assert!(result.matches());
        assert_eq!(result.to_string(), "all 3 elements equal");
    }

    #[test]
    fn empty_tensors_match() {
        let empty = f32s(vec![0, 3], vec![]);
        let result = compare(&empty, &empty, Tolerance::ONNX_DEFAULT);
        assert!(result.matches());
        assert_eq!(result.to_string(), "no elements");
    }
}
