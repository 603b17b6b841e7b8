//! Where layer parameters come from: seeded random initialization ([`Init`]) or given tensors
//! ([`Weights`]), behind one trait so every `nn` helper works with both.
//!
//! **Invariant: the same seed and the same sequence of layer calls give bit-identical weights on
//! every machine.** [`Init`] draws from a SplitMix64 stream in the order parameters are requested,
//! and uses no platform-dependent math. The generator is `sinter_ir::rng::SplitMix64`, the same one
//! `sinter-ref` uses for random test inputs.

use sinter_ir::{Tensor, TensorData};
use std::collections::BTreeMap;

/// How [`Init`] fills a parameter. [`Weights`] ignores it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamInit {
    /// Uniform in `[-bound, bound)`; PyTorch's default for linear and conv layers uses
    /// `bound = 1 / sqrt(fan_in)`.
    Uniform {
        bound: f32,
    },
    Ones,
    Zeros,
}

/// A request for one f32 parameter.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec<'a> {
    /// The full dotted name, which is also the constant's name in the graph (`mha_0.q.weight`).
    pub name: &'a str,
    pub shape: &'a [usize],
    pub init: ParamInit,
}

/// A source of layer parameters.
pub trait Params {
    /// The tensor for `spec`, or a message saying why there is none.
    fn param(&mut self, spec: &ParamSpec<'_>) -> Result<Tensor, String>;
}

pub use sinter_ir::rng::SplitMix64;

/// Seeded random parameters.
#[derive(Clone, Debug)]
pub struct Init {
    rng: SplitMix64,
}

impl Init {
    pub fn new(seed: u64) -> Init {
        Init {
            rng: SplitMix64::new(seed),
        }
    }

    /// An f32 tensor of `shape` uniform in `[lo, hi)`, from the same stream as the parameters;
    /// handy for example inputs.
    pub fn uniform(&mut self, shape: &[usize], lo: f32, hi: f32) -> Tensor {
        let len: usize = shape.iter().product();
        let data: Vec<f32> = (0..len)
            .map(|_| self.rng.uniform(f64::from(lo), f64::from(hi)) as f32)
            .collect();
        Tensor::new(shape.to_vec(), TensorData::F32(data.into()))
            .expect("the data has the shape's element count")
    }
}

impl Params for Init {
    fn param(&mut self, spec: &ParamSpec<'_>) -> Result<Tensor, String> {
        Ok(match spec.init {
            ParamInit::Uniform { bound } => self.uniform(spec.shape, -bound, bound),
            ParamInit::Ones => {
                let len = spec.shape.iter().product();
                Tensor::new(spec.shape.to_vec(), TensorData::F32(vec![1.0; len].into()))
                    .expect("the data has the shape's element count")
            }
            ParamInit::Zeros => Tensor::zeros(sinter_ir::DType::F32, spec.shape.to_vec()),
        })
    }
}

/// Given parameters, looked up by their full dotted name. Each tensor must be f32 with exactly the
/// requested shape. A tensor is handed out once; [`Weights::unused`] lists those never requested.
#[derive(Clone, Debug, Default)]
pub struct Weights {
    tensors: BTreeMap<String, Tensor>,
}

impl Weights {
    pub fn new() -> Weights {
        Weights::default()
    }

    /// Adds a parameter, replacing one of the same name.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }

    /// Builder-style [`Weights::insert`].
    pub fn with(mut self, name: impl Into<String>, tensor: Tensor) -> Weights {
        self.insert(name, tensor);
        self
    }

    /// Names of parameters no layer has taken yet, sorted.
    pub fn unused(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }
}

impl Params for Weights {
    fn param(&mut self, spec: &ParamSpec<'_>) -> Result<Tensor, String> {
        let Some(tensor) = self.tensors.remove(spec.name) else {
            let known = self.unused().join(", ");
            return Err(format!(
                "no weight named `{}` (f32{:?}); the remaining weights are: [{known}]",
                spec.name, spec.shape
            ));
        };
        if tensor.dtype() != sinter_ir::DType::F32 || tensor.shape() != spec.shape {
            return Err(format!(
                "weight `{}` must be f32{:?}, got {}{:?}",
                spec.name,
                spec.shape,
                tensor.dtype(),
                tensor.shape()
            ));
        }
        Ok(tensor)
    }
}
