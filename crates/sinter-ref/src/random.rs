//! Seeded random inputs for differential tests: the same seed gives the same tensors on every machine.
//!
//! The generator is `sinter_ir::rng::SplitMix64`, shared with the DSL's seeded weights.

use sinter_ir::{DType, Dim, Graph, Tensor, TensorData, TensorType};
use std::collections::HashMap;

pub use sinter_ir::rng::SplitMix64;

/// A random tensor of `dtype` and `shape`: floats uniform in [-1, 1), integers in [0, 4), bools fair.
pub fn random_tensor(rng: &mut SplitMix64, dtype: DType, shape: &[usize]) -> Tensor {
    let len: usize = shape.iter().product();
    let values = (0..len).map(|_| match dtype {
        DType::F32 | DType::F64 => rng.uniform(-1.0, 1.0),
        DType::Bool => (rng.next_u64() & 1) as f64,
        _ => (rng.next_u64() % 4) as f64,
    });
    Tensor::new(shape.to_vec(), TensorData::from_f64s(dtype, values))
        .expect("the data has the shape's element count")
}

/// Random inputs for every graph input, with symbolic dims bound by `sym_sizes` (default 2 for any
/// symbol not listed).
pub fn random_inputs(
    graph: &Graph,
    seed: u64,
    sym_sizes: &HashMap<String, usize>,
) -> Vec<(String, Tensor)> {
    let mut rng = SplitMix64::new(seed);
    graph
        .input_signature()
        .into_iter()
        .map(|(name, ty)| {
            let shape = concrete_shape(ty, sym_sizes);
            (name.to_string(), random_tensor(&mut rng, ty.dtype, &shape))
        })
        .collect()
}

/// The static shape of `ty` with symbols replaced by `sym_sizes` (2 when absent).
pub fn concrete_shape(ty: &TensorType, sym_sizes: &HashMap<String, usize>) -> Vec<usize> {
    ty.shape
        .dims()
        .iter()
        .map(|d| match d {
            Dim::Static(n) => *n,
            Dim::Sym(name) => sym_sizes.get(&**name).copied().unwrap_or(2),
        })
        .collect()
}
