//! What the fused ops (`fused_conv`, `fused_matmul`, `conv_pool`) stand for, in one place.
//!
//! The optimizer (`sinter-opt`) introduces fused ops; inference, the reference interpreter and the
//! loop lowering all read their meaning from [`Op::fused_parts`], which decomposes a fused op into
//! the plain ops it computes (the product, the residual add, the activation, the pool), so the three
//! can never disagree. [`FusedActivation::to_op`] and [`FusedActivation::from_op`] translate between
//! a fused op's `activation`/`activation_params` and the plain unary op; the optimizer uses the
//! latter to recognise an activation it can absorb.

use crate::{AutoPad, FusedActivation, GeluApprox, Op, PoolKind};

impl FusedActivation {
    /// The plain unary op applying this activation with `params` (`None` for `identity`). A wrong
    /// parameter count, or a `clip` whose bounds are NaN, is an error naming the activation.
    pub fn to_op(self, params: &[f32]) -> Result<Option<Op>, String> {
        let expected = match self {
            FusedActivation::LeakyRelu => 1,
            FusedActivation::Clip => 2,
            _ => 0,
        };
        if params.len() != expected {
            return Err(format!(
                "activation `{}` takes {expected} activation_params, got {}",
                self.name(),
                params.len()
            ));
        }
        Ok(Some(match self {
            FusedActivation::Identity => return Ok(None),
            FusedActivation::Relu => Op::Relu {},
            FusedActivation::LeakyRelu => Op::LeakyRelu { alpha: params[0] },
            FusedActivation::Clip => {
                let (min, max) = (params[0], params[1]);
                if min.is_nan() || max.is_nan() {
                    return Err(format!(
                        "activation `clip` bounds must not be NaN, got [{min}, {max}]"
                    ));
                }
                let bound = |v: f32, unbounded: f32| (v != unbounded).then_some(f64::from(v));
                Op::Clip {
                    min: bound(min, f32::NEG_INFINITY),
                    max: bound(max, f32::INFINITY),
                }
            }
            FusedActivation::Sigmoid => Op::Sigmoid {},
            FusedActivation::Tanh => Op::Tanh {},
            FusedActivation::Silu => Op::Silu {},
            FusedActivation::Gelu => Op::Gelu {
                approximate: GeluApprox::None,
            },
            FusedActivation::GeluTanh => Op::Gelu {
                approximate: GeluApprox::Tanh,
            },
        }))
    }

    /// The activation and parameters a fused op would need to apply `op`, when `op` is one of the
    /// activations fused ops support (the inverse of [`FusedActivation::to_op`]). A `clip` bound
    /// that is not exactly an f32 is not representable and gives `None`.
    pub fn from_op(op: &Op) -> Option<(FusedActivation, Vec<f32>)> {
        Some(match op {
            Op::Identity {} => (FusedActivation::Identity, vec![]),
            Op::Relu {} => (FusedActivation::Relu, vec![]),
            Op::LeakyRelu { alpha } => (FusedActivation::LeakyRelu, vec![*alpha]),
            Op::Clip { min, max } => {
                let bound = |v: Option<f64>, unbounded: f32| match v {
                    None => Some(unbounded),
                    Some(v) if f64::from(v as f32) == v => Some(v as f32),
                    Some(_) => None,
                };
                let (lo, hi) = (bound(*min, f32::NEG_INFINITY)?, bound(*max, f32::INFINITY)?);
                (FusedActivation::Clip, vec![lo, hi])
            }
            Op::Sigmoid {} => (FusedActivation::Sigmoid, vec![]),
            Op::Tanh {} => (FusedActivation::Tanh, vec![]),
            Op::Silu {} => (FusedActivation::Silu, vec![]),
            Op::Gelu {
                approximate: GeluApprox::None,
            } => (FusedActivation::Gelu, vec![]),
            Op::Gelu {
                approximate: GeluApprox::Tanh,
            } => (FusedActivation::GeluTanh, vec![]),
            _ => return None,
        })
    }
}

/// The plain ops a fused op computes, applied in this order:
/// `y = pool(activation(product(inputs) [+ residual]))`.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedParts {
    /// `conv` or `matmul`, reading the fused op's first inputs: `x, w, b?` for the convolutions
    /// (the bias is conv's own), `a, b` for `fused_matmul`.
    pub product: Op,
    /// The input slot of the fused op added to the product's result (with `add`), if any:
    /// `fused_conv`'s residual `z` (slot 3) or `fused_matmul`'s `bias` (slot 2).
    pub addend_slot: Option<usize>,
    /// The activation as a plain unary op; `None` for `identity`.
    pub activation: Option<Op>,
    /// `max_pool` or `average_pool` over the activated product (`conv_pool` only).
    pub pool: Option<Op>,
}

impl FusedParts {
    /// The number of fused-op inputs the product reads (the leading slots).
    pub fn n_product_inputs(&self) -> usize {
        match self.product {
            Op::MatMul {} => 2,
            _ => 3,
        }
    }
}

impl Op {
    /// Whether this is one of the ops the optimizer introduces (`fused_conv`, `fused_matmul`,
    /// `conv_pool`).
    pub fn is_fused(&self) -> bool {
        matches!(
            self,
            Op::FusedConv { .. } | Op::FusedMatMul { .. } | Op::ConvPool { .. }
        )
    }

    /// The decomposition of a fused op (see [`FusedParts`]); `None` for every other op, `Some(Err)`
    /// when its activation parameters are invalid.
    pub fn fused_parts(&self) -> Option<Result<FusedParts, String>> {
        let conv = |strides: &Vec<i64>,
                    pads: &Vec<i64>,
                    dilations: &Vec<i64>,
                    group: &i64,
                    auto_pad: &AutoPad| Op::Conv {
            strides: strides.clone(),
            pads: pads.clone(),
            dilations: dilations.clone(),
            group: *group,
            auto_pad: *auto_pad,
        };
        let parts = |product, addend_slot, activation: &FusedActivation, params: &[f32], pool| {
            activation.to_op(params).map(|activation| FusedParts {
                product,
                addend_slot,
                activation,
                pool,
            })
        };
        Some(match self {
            Op::FusedConv {
                strides,
                pads,
                dilations,
                group,
                auto_pad,
                activation,
                activation_params,
            } => parts(
                conv(strides, pads, dilations, group, auto_pad),
                Some(3),
                activation,
                activation_params,
                None,
            ),
            Op::FusedMatMul {
                activation,
                activation_params,
            } => parts(Op::MatMul {}, Some(2), activation, activation_params, None),
            Op::ConvPool {
                strides,
                pads,
                dilations,
                group,
                auto_pad,
                activation,
                activation_params,
                pool,
                pool_kernel_shape,
                pool_strides,
                pool_pads,
                pool_ceil_mode,
                count_include_pad,
            } => parts(
                conv(strides, pads, dilations, group, auto_pad),
                None,
                activation,
                activation_params,
                Some(pool_op(
                    *pool,
                    pool_kernel_shape.clone(),
                    pool_strides.clone(),
                    pool_pads.clone(),
                    *pool_ceil_mode,
                    *count_include_pad,
                )),
            ),
            _ => return None,
        })
    }
}

impl FusedParts {
    /// The parts of `op`: its decomposition if it is a fused op, or `op` itself as a bare product if
    /// it is a `conv` or a `matmul` (no addend, activation or pool). `None` for other ops.
    pub fn of(op: &Op) -> Option<FusedParts> {
        match op {
            Op::Conv { .. } | Op::MatMul {} => Some(FusedParts {
                product: op.clone(),
                addend_slot: None,
                activation: None,
                pool: None,
            }),
            _ => op.fused_parts()?.ok(),
        }
    }

    /// The fused op these parts make: the inverse of [`Op::fused_parts`] (the optimizer builds fused
    /// ops with it). A conv product without a pool is a `fused_conv`, with one a `conv_pool`; a
    /// matmul product is a `fused_matmul`. `None` when no fused op expresses the parts: an
    /// activation fused ops do not support, a pool with dilations or `auto_pad`, a matmul with a
    /// pool. `addend_slot` is not read: which input is the addend follows from the op.
    pub fn compose(&self) -> Option<Op> {
        let (activation, activation_params) = match &self.activation {
            None => (FusedActivation::Identity, vec![]),
            Some(op) => FusedActivation::from_op(op)?,
        };
        let Op::Conv {
            strides,
            pads,
            dilations,
            group,
            auto_pad,
        } = self.product.clone()
        else {
            return (self.product == Op::MatMul {} && self.pool.is_none()).then_some(
                Op::FusedMatMul {
                    activation,
                    activation_params,
                },
            );
        };
        let Some(pool_op) = &self.pool else {
            return Some(Op::FusedConv {
                strides,
                pads,
                dilations,
                group,
                auto_pad,
                activation,
                activation_params,
            });
        };
        let (Op::MaxPool {
            kernel_shape,
            strides: pool_strides,
            pads: pool_pads,
            dilations: pool_dilations,
            auto_pad: pool_auto_pad,
            ceil_mode,
        }
        | Op::AveragePool {
            kernel_shape,
            strides: pool_strides,
            pads: pool_pads,
            dilations: pool_dilations,
            auto_pad: pool_auto_pad,
            ceil_mode,
            ..
        }) = pool_op
        else {
            return None;
        };
        let (pool, count_include_pad) = match pool_op {
            Op::AveragePool {
                count_include_pad, ..
            } => (PoolKind::Average, *count_include_pad),
            _ => (PoolKind::Max, false),
        };
        if *pool_auto_pad != AutoPad::NotSet || pool_dilations.iter().any(|&d| d != 1) {
            return None;
        }
        Some(Op::ConvPool {
            strides,
            pads,
            dilations,
            group,
            auto_pad,
            activation,
            activation_params,
            pool,
            pool_kernel_shape: kernel_shape.clone(),
            pool_strides: pool_strides.clone(),
            pool_pads: pool_pads.clone(),
            pool_ceil_mode: *ceil_mode,
            count_include_pad,
        })
    }
}

/// The pool part of a `conv_pool`: its own window, with dilations 1 and `auto_pad` notset
/// (`count_include_pad` is read by the average pool only).
fn pool_op(
    kind: PoolKind,
    kernel_shape: Vec<i64>,
    strides: Vec<i64>,
    pads: Vec<i64>,
    ceil_mode: bool,
    count_include_pad: bool,
) -> Op {
    match kind {
        PoolKind::Max => Op::MaxPool {
            kernel_shape,
            strides,
            pads,
            dilations: vec![],
            auto_pad: AutoPad::NotSet,
            ceil_mode,
        },
        PoolKind::Average => Op::AveragePool {
            kernel_shape,
            strides,
            pads,
            dilations: vec![],
            auto_pad: AutoPad::NotSet,
            ceil_mode,
            count_include_pad,
        },
    }
}

/// The attribute of a fused op that a part's attribute comes from (`kernel_shape` of the pool part
/// is `pool_kernel_shape` of `conv_pool`), for error messages in the fused op's own terms.
pub fn fused_attr_name(fused: &Op, part: &Op, attr: &'static str) -> &'static str {
    if !matches!(fused, Op::ConvPool { .. })
        || !matches!(part, Op::MaxPool { .. } | Op::AveragePool { .. })
    {
        return attr;
    }
    match attr {
        "kernel_shape" => "pool_kernel_shape",
        "strides" => "pool_strides",
        "pads" => "pool_pads",
        "ceil_mode" => "pool_ceil_mode",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_compose_back_into_the_fused_op() {
        let conv_pool = Op::from_attrs(
            "conv_pool",
            vec![
                ("strides".into(), crate::AttrValue::Ints(vec![2, 2])),
                ("pads".into(), crate::AttrValue::Ints(vec![1, 1, 1, 1])),
                ("activation".into(), crate::AttrValue::Ident("clip".into())),
                (
                    "activation_params".into(),
                    crate::AttrValue::Floats32(vec![0.0, 6.0]),
                ),
                ("pool".into(), crate::AttrValue::Ident("average".into())),
                (
                    "pool_kernel_shape".into(),
                    crate::AttrValue::Ints(vec![3, 3]),
                ),
                ("pool_strides".into(), crate::AttrValue::Ints(vec![2, 2])),
                ("count_include_pad".into(), crate::AttrValue::Bool(true)),
            ],
        )
        .unwrap();
        let fused_conv = Op::FusedConv {
            strides: vec![1, 1],
            pads: vec![],
            dilations: vec![2, 2],
            group: 2,
            auto_pad: AutoPad::NotSet,
            activation: FusedActivation::LeakyRelu,
            activation_params: vec![0.1],
        };
        let fused_matmul = Op::FusedMatMul {
            activation: FusedActivation::GeluTanh,
            activation_params: vec![],
        };
        for op in [conv_pool, fused_conv, fused_matmul] {
            let parts = FusedParts::of(&op).unwrap();
            assert_eq!(parts.compose().as_ref(), Some(&op), "{op:?}");
        }
        // A bare conv is its own parts, and composes to an identity-activated fused_conv.
        let conv = Op::Conv {
            strides: vec![],
            pads: vec![],
            dilations: vec![],
            group: 1,
            auto_pad: AutoPad::NotSet,
        };
        let parts = FusedParts::of(&conv).unwrap();
        assert!(matches!(
            parts.compose(),
            Some(Op::FusedConv {
                activation: FusedActivation::Identity,
                ..
            })
        ));
        // No fused op applies elu, or pools with dilations.
        let with_elu = FusedParts {
            activation: Some(Op::Elu { alpha: 1.0 }),
            ..parts.clone()
        };
        assert_eq!(with_elu.compose(), None);
        let dilated_pool = FusedParts {
            pool: Some(Op::MaxPool {
                kernel_shape: vec![2, 2],
                strides: vec![],
                pads: vec![],
                dilations: vec![2, 2],
                auto_pad: AutoPad::NotSet,
                ceil_mode: false,
            }),
            ..parts
        };
        assert_eq!(dilated_pool.compose(), None);
    }

    #[test]
    fn every_activation_round_trips_through_its_op() {
        let params = |a: FusedActivation| match a {
            FusedActivation::LeakyRelu => vec![0.25],
            FusedActivation::Clip => vec![f32::NEG_INFINITY, 6.0],
            _ => vec![],
        };
        for &activation in FusedActivation::ALL {
            let op = activation.to_op(&params(activation)).unwrap();
            match op {
                None => assert_eq!(activation, FusedActivation::Identity),
                Some(op) => {
                    assert!(op.is_unary_elementwise(), "{}", op.name());
                    assert_eq!(
                        FusedActivation::from_op(&op),
                        Some((activation, params(activation)))
                    );
                }
            }
        }
        assert_eq!(
            FusedActivation::Clip.to_op(&[0.0, f32::INFINITY]).unwrap(),
            Some(Op::Clip {
                min: Some(0.0),
                max: None
            })
        );
    }

    #[test]
    fn wrong_params_and_unfusable_ops_are_rejected() {
        assert_eq!(
            FusedActivation::Relu.to_op(&[1.0]).unwrap_err(),
            "activation `relu` takes 0 activation_params, got 1"
        );
        assert_eq!(
            FusedActivation::Clip.to_op(&[0.0]).unwrap_err(),
            "activation `clip` takes 2 activation_params, got 1"
        );
        assert!(FusedActivation::Clip
            .to_op(&[f32::NAN, 1.0])
            .unwrap_err()
            .contains("NaN"));
        assert_eq!(FusedActivation::from_op(&Op::Exp {}), None);
        // 0.1 is not an f32, so a fused clip could not reproduce it exactly.
        let clip = Op::Clip {
            min: Some(0.1),
            max: None,
        };
        assert_eq!(FusedActivation::from_op(&clip), None);
    }

    #[test]
    fn parts_name_the_plain_ops() {
        let op = Op::ConvPool {
            strides: vec![1, 1],
            pads: vec![],
            dilations: vec![],
            group: 1,
            auto_pad: AutoPad::NotSet,
            activation: FusedActivation::Relu,
            activation_params: vec![],
            pool: PoolKind::Average,
            pool_kernel_shape: vec![2, 2],
            pool_strides: vec![2, 2],
            pool_pads: vec![],
            pool_ceil_mode: true,
            count_include_pad: true,
        };
        let parts = op.fused_parts().unwrap().unwrap();
        assert_eq!(parts.product.name(), "conv");
        assert_eq!(parts.activation, Some(Op::Relu {}));
        assert_eq!(parts.addend_slot, None);
        assert_eq!(parts.n_product_inputs(), 3);
        let Some(Op::AveragePool {
            ceil_mode: true,
            count_include_pad: true,
            ..
        }) = parts.pool
        else {
            panic!("expected an average pool, got {:?}", parts.pool);
        };
        let mm = Op::FusedMatMul {
            activation: FusedActivation::Identity,
            activation_params: vec![],
        };
        let parts = mm.fused_parts().unwrap().unwrap();
        assert_eq!(
            (&parts.product, parts.addend_slot),
            (&Op::MatMul {}, Some(2))
        );
        assert_eq!(parts.n_product_inputs(), 2);
        assert!(Op::Relu {}.fused_parts().is_none());
        let bad = Op::FusedMatMul {
            activation: FusedActivation::LeakyRelu,
            activation_params: vec![],
        };
        assert!(bad.fused_parts().unwrap().is_err());
    }

    fn t(shape: &[usize]) -> crate::TensorType {
        crate::TensorType::fixed(crate::DType::F32, shape)
    }

    fn infer(op: &Op, inputs: &[Option<&crate::TensorType>]) -> Result<crate::TensorType, String> {
        crate::infer_types(op, inputs)
            .map(|mut tys| tys.remove(0))
            .map_err(|e| e.to_string())
    }

    fn conv_pool(pool: PoolKind, kernel: Vec<i64>, strides: Vec<i64>, ceil: bool) -> Op {
        Op::ConvPool {
            strides: vec![],
            pads: vec![1, 1, 1, 1],
            dilations: vec![],
            group: 1,
            auto_pad: AutoPad::NotSet,
            activation: FusedActivation::Relu,
            activation_params: vec![],
            pool,
            pool_kernel_shape: kernel,
            pool_strides: strides,
            pool_pads: vec![],
            pool_ceil_mode: ceil,
            count_include_pad: false,
        }
    }

    #[test]
    fn inference_follows_the_parts() {
        let (x, w, b) = (t(&[1, 3, 7, 7]), t(&[8, 3, 3, 3]), t(&[8]));
        let op = conv_pool(PoolKind::Max, vec![2, 2], vec![2, 2], false);
        assert_eq!(
            infer(&op, &[Some(&x), Some(&w), Some(&b)]),
            Ok(t(&[1, 8, 3, 3]))
        );
        let op = conv_pool(PoolKind::Average, vec![2, 2], vec![2, 2], true);
        assert_eq!(
            infer(&op, &[Some(&x), Some(&w), None]),
            Ok(t(&[1, 8, 4, 4]))
        );
        let fc = Op::FusedConv {
            strides: vec![2, 2],
            pads: vec![],
            dilations: vec![],
            group: 1,
            auto_pad: AutoPad::NotSet,
            activation: FusedActivation::Silu,
            activation_params: vec![],
        };
        let z = t(&[1, 8, 3, 3]);
        assert_eq!(
            infer(&fc, &[Some(&x), Some(&w), Some(&b), Some(&z)]),
            Ok(z.clone())
        );
        assert_eq!(
            infer(&fc, &[Some(&x), Some(&w), None, Some(&z)]),
            Ok(z.clone())
        );
        let mm = Op::FusedMatMul {
            activation: FusedActivation::GeluTanh,
            activation_params: vec![],
        };
        let (a, bm) = (t(&[2, 5, 4]), t(&[4, 6]));
        for bias in [t(&[6]), t(&[5, 1]), t(&[2, 1, 6]), t(&[2, 5, 6])] {
            assert_eq!(
                infer(&mm, &[Some(&a), Some(&bm), Some(&bias)]),
                Ok(t(&[2, 5, 6]))
            );
        }
        assert_eq!(infer(&mm, &[Some(&a), Some(&bm), None]), Ok(t(&[2, 5, 6])));
    }

    #[test]
    fn inference_errors_name_the_fused_op_and_its_attributes() {
        let (x, w) = (t(&[1, 3, 7, 7]), t(&[8, 3, 3, 3]));
        let fc = Op::FusedConv {
            strides: vec![],
            pads: vec![],
            dilations: vec![],
            group: 1,
            auto_pad: AutoPad::NotSet,
            activation: FusedActivation::Clip,
            activation_params: vec![0.0],
        };
        assert_eq!(
            infer(&fc, &[Some(&x), Some(&w)]).unwrap_err(),
            "`fused_conv`: attribute `activation_params` activation `clip` takes 2 activation_params, got 1"
        );
        let fc = Op::FusedConv {
            strides: vec![],
            pads: vec![],
            dilations: vec![],
            group: 1,
            auto_pad: AutoPad::NotSet,
            activation: FusedActivation::Relu,
            activation_params: vec![],
        };
        let z = t(&[1, 8, 5, 1]);
        assert_eq!(
            infer(&fc, &[Some(&x), Some(&w), None, Some(&z)]).unwrap_err(),
            "`fused_conv`: residual `z` must have the convolution's type f32[1,8,5,5], got f32[1,8,5,1]"
        );
        let mm = Op::FusedMatMul {
            activation: FusedActivation::Identity,
            activation_params: vec![],
        };
        let (a, bm) = (t(&[5, 4]), t(&[4, 6]));
        let err = infer(&mm, &[Some(&a), Some(&bm), Some(&t(&[3, 1, 6]))]).unwrap_err();
        assert!(err.contains("must broadcast into the product"), "{err}");
        let err = infer(&mm, &[Some(&a), Some(&bm), Some(&t(&[4]))]).unwrap_err();
        assert!(
            err.starts_with("`fused_matmul`: `add` of the product and `bias`"),
            "{err}"
        );
        let i32s = crate::TensorType::fixed(crate::DType::I32, &[5, 4]);
        let i32b = crate::TensorType::fixed(crate::DType::I32, &[4, 6]);
        let sig = Op::FusedMatMul {
            activation: FusedActivation::Sigmoid,
            activation_params: vec![],
        };
        let err = infer(&sig, &[Some(&i32s), Some(&i32b)]).unwrap_err();
        assert!(err.contains("`sigmoid` of the matmul result"), "{err}");
        // The pool's attributes are named as conv_pool's.
        let op = conv_pool(PoolKind::Max, vec![2], vec![2, 2], false);
        let err = infer(&op, &[Some(&x), Some(&w)]).unwrap_err();
        assert!(err.contains("attribute `pool_kernel_shape`"), "{err}");
        let op = conv_pool(PoolKind::Max, vec![2, 2], vec![0, 2], false);
        let err = infer(&op, &[Some(&x), Some(&w)]).unwrap_err();
        assert!(err.contains("attribute `pool_strides`"), "{err}");
    }
}
