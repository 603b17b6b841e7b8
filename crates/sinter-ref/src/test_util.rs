//! Helpers the op modules' unit tests share: building f32 tensors and comparing f32 results with
//! expected values computed by hand in f64.

use sinter_ir::Tensor;

/// An f32 tensor; the test's shape and values must agree.
pub fn t32(shape: &[usize], values: &[f32]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), values.to_vec()).unwrap()
}

/// The elements of an f32 tensor.
pub fn f32s(t: &Tensor) -> Vec<f32> {
    t.as_slice::<f32>().unwrap().to_vec()
}

/// Asserts `|actual - expected| <= 1e-5 + 1e-5 * |expected|` element by element.
pub fn assert_close(actual: &[f32], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert!(
            (f64::from(*a) - e).abs() <= 1e-5 + 1e-5 * e.abs(),
            "{actual:?} vs {expected:?}"
        );
    }
}
