//! The [`Tensor`] handle, its elementwise and arithmetic methods, and the `std::ops` operators.
//!
//! A handle is a cheap clone: the shared builder state plus the graph value it names, or nothing if
//! the handle is poisoned (an earlier op failed). Every method returns a handle and never panics;
//! problems are recorded in the builder and reported by `GraphBuilder::build`.
//!
//! Methods of the other op families are in `movement.rs` and `compute.rs`.

use crate::builder::{self, apply1, SharedState};
use crate::GraphBuilder;
use sinter_ir::{DType, GeluApprox, Op, Shape, TensorType, Value};
use std::fmt;
use std::ops;
use std::rc::Rc;

/// A handle to a value being built. See the module docs.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) state: SharedState,
    pub(crate) value: Option<Value>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.value, self.ty()) {
            (Some(value), Some(ty)) => write!(f, "Tensor({:?}: {ty})", value),
            _ => f.write_str("Tensor(poisoned)"),
        }
    }
}

impl Tensor {
    pub(crate) fn from_parts(state: SharedState, value: Option<Value>) -> Tensor {
        Tensor { state, value }
    }

    /// A poisoned handle of the same builder.
    pub(crate) fn poisoned(&self) -> Tensor {
        Tensor::from_parts(self.state.clone(), None)
    }

    /// The graph value, or `None` if the handle is poisoned.
    pub fn value(&self) -> Option<Value> {
        self.value
    }

    /// Whether an earlier error left this handle without a value.
    pub fn is_poisoned(&self) -> bool {
        self.value.is_none()
    }

    /// The value's type, or `None` if the handle is poisoned.
    pub fn ty(&self) -> Option<TensorType> {
        builder::value_type(&self.state, self.value?)
    }

    pub fn dtype(&self) -> Option<DType> {
        self.ty().map(|ty| ty.dtype)
    }

    pub fn shape(&self) -> Option<Shape> {
        self.ty().map(|ty| ty.shape)
    }

    pub fn rank(&self) -> Option<usize> {
        self.ty().map(|ty| ty.rank())
    }

    /// The builder this handle belongs to.
    pub fn builder(&self) -> GraphBuilder {
        GraphBuilder {
            state: self.state.clone(),
        }
    }

    /// Sets the label of the node that produced this value (printed as `loc("...")`), replacing the
    /// automatic one. Only op results have labels; naming an input or constant is an error.
    pub fn named(self, label: impl Into<String>) -> Tensor {
        if let Some(value) = self.value {
            builder::set_label(&self.state, value, label.into());
        }
        self
    }

    /// Adds a single-output op reading `self`.
    pub(crate) fn unary_op(&self, method: &str, op: Op) -> Tensor {
        apply1(&self.state, method, op, &[Some(self)])
    }

    /// Adds a single-output op reading `self` and `other`.
    pub(crate) fn binary_op(&self, method: &str, op: Op, other: &Tensor) -> Tensor {
        apply1(&self.state, method, op, &[Some(self), Some(other)])
    }

    /// A rank-0 constant of this tensor's dtype, or a poisoned handle if this one is poisoned.
    pub fn scalar_like(&self, value: f64) -> Tensor {
        match self.dtype() {
            Some(dtype) => {
                builder::add_const(&self.state, "scalar", builder::scalar_tensor(dtype, value))
            }
            None => self.poisoned(),
        }
    }

    /// Records an argument error against this tensor's builder and returns a poisoned handle.
    pub(crate) fn argument_error(&self, method: &str, message: impl Into<String>) -> Tensor {
        builder::argument_error(&self.state, method, message);
        self.poisoned()
    }

    // ---- unary elementwise ----

    pub fn neg(&self) -> Tensor {
        self.unary_op("neg", Op::Neg {})
    }
    pub fn abs(&self) -> Tensor {
        self.unary_op("abs", Op::Abs {})
    }
    pub fn exp(&self) -> Tensor {
        self.unary_op("exp", Op::Exp {})
    }
    /// Natural logarithm.
    pub fn log(&self) -> Tensor {
        self.unary_op("log", Op::Log {})
    }
    pub fn sqrt(&self) -> Tensor {
        self.unary_op("sqrt", Op::Sqrt {})
    }
    pub fn reciprocal(&self) -> Tensor {
        self.unary_op("reciprocal", Op::Reciprocal {})
    }
    pub fn relu(&self) -> Tensor {
        self.unary_op("relu", Op::Relu {})
    }
    pub fn leaky_relu(&self, alpha: f32) -> Tensor {
        self.unary_op("leaky_relu", Op::LeakyRelu { alpha })
    }
    pub fn sigmoid(&self) -> Tensor {
        self.unary_op("sigmoid", Op::Sigmoid {})
    }
    pub fn hard_sigmoid(&self, alpha: f32, beta: f32) -> Tensor {
        self.unary_op("hard_sigmoid", Op::HardSigmoid { alpha, beta })
    }
    pub fn hard_swish(&self) -> Tensor {
        self.unary_op("hard_swish", Op::HardSwish {})
    }
    pub fn tanh(&self) -> Tensor {
        self.unary_op("tanh", Op::Tanh {})
    }
    pub fn erf(&self) -> Tensor {
        self.unary_op("erf", Op::Erf {})
    }
    /// Exact (erf) GELU.
    pub fn gelu(&self) -> Tensor {
        self.unary_op(
            "gelu",
            Op::Gelu {
                approximate: GeluApprox::None,
            },
        )
    }
    /// GELU with the tanh approximation.
    pub fn gelu_tanh(&self) -> Tensor {
        self.unary_op(
            "gelu_tanh",
            Op::Gelu {
                approximate: GeluApprox::Tanh,
            },
        )
    }
    pub fn elu(&self, alpha: f32) -> Tensor {
        self.unary_op("elu", Op::Elu { alpha })
    }
    /// SELU with the standard constants.
    pub fn selu(&self) -> Tensor {
        self.unary_op(
            "selu",
            Op::Selu {
                alpha: sinter_ir::SELU_ALPHA,
                gamma: sinter_ir::SELU_GAMMA,
            },
        )
    }
    pub fn softplus(&self) -> Tensor {
        self.unary_op("softplus", Op::Softplus {})
    }
    pub fn softsign(&self) -> Tensor {
        self.unary_op("softsign", Op::Softsign {})
    }
    pub fn mish(&self) -> Tensor {
        self.unary_op("mish", Op::Mish {})
    }
    /// Clamps to `[min, max]`; an absent bound does not clip.
    pub fn clip(&self, min: Option<f64>, max: Option<f64>) -> Tensor {
        self.unary_op("clip", Op::Clip { min, max })
    }
    pub fn floor(&self) -> Tensor {
        self.unary_op("floor", Op::Floor {})
    }
    pub fn ceil(&self) -> Tensor {
        self.unary_op("ceil", Op::Ceil {})
    }
    /// Rounds half to even.
    pub fn round(&self) -> Tensor {
        self.unary_op("round", Op::Round {})
    }
    pub fn sign(&self) -> Tensor {
        self.unary_op("sign", Op::Sign {})
    }
    /// Logical not of a bool tensor.
    pub fn not(&self) -> Tensor {
        self.unary_op("not", Op::Not {})
    }
    /// Converts to `to` with numpy `astype` semantics.
    pub fn cast(&self, to: DType) -> Tensor {
        self.unary_op("cast", Op::Cast { to })
    }
    pub fn identity(&self) -> Tensor {
        self.unary_op("identity", Op::Identity {})
    }

    // ---- binary elementwise, numpy broadcasting ----

    pub fn add(&self, other: &Tensor) -> Tensor {
        self.binary_op("add", Op::Add {}, other)
    }
    pub fn sub(&self, other: &Tensor) -> Tensor {
        self.binary_op("sub", Op::Sub {}, other)
    }
    pub fn mul(&self, other: &Tensor) -> Tensor {
        self.binary_op("mul", Op::Mul {}, other)
    }
    pub fn div(&self, other: &Tensor) -> Tensor {
        self.binary_op("div", Op::Div {}, other)
    }
    pub fn pow(&self, exponent: &Tensor) -> Tensor {
        self.binary_op("pow", Op::Pow {}, exponent)
    }
    /// Elementwise maximum (not a reduction; see `reduce_max`).
    pub fn maximum(&self, other: &Tensor) -> Tensor {
        self.binary_op("maximum", Op::Max {}, other)
    }
    /// Elementwise minimum (not a reduction; see `reduce_min`).
    pub fn minimum(&self, other: &Tensor) -> Tensor {
        self.binary_op("minimum", Op::Min {}, other)
    }
    pub fn prelu(&self, slope: &Tensor) -> Tensor {
        self.binary_op("prelu", Op::PRelu {}, slope)
    }

    /// `self * factor`, the factor a scalar constant of this tensor's dtype.
    pub fn scale(&self, factor: f32) -> Tensor {
        self.binary_op("scale", Op::Mul {}, &self.scalar_like(f64::from(factor)))
    }
    /// `self + value`, the value a scalar constant of this tensor's dtype.
    pub fn add_scalar(&self, value: f32) -> Tensor {
        self.binary_op(
            "add_scalar",
            Op::Add {},
            &self.scalar_like(f64::from(value)),
        )
    }

    // ---- comparisons and logic; bool results ----

    pub fn equal(&self, other: &Tensor) -> Tensor {
        self.binary_op("equal", Op::Equal {}, other)
    }
    pub fn less(&self, other: &Tensor) -> Tensor {
        self.binary_op("less", Op::Less {}, other)
    }
    pub fn greater(&self, other: &Tensor) -> Tensor {
        self.binary_op("greater", Op::Greater {}, other)
    }
    pub fn less_equal(&self, other: &Tensor) -> Tensor {
        self.binary_op("less_equal", Op::LessOrEqual {}, other)
    }
    pub fn greater_equal(&self, other: &Tensor) -> Tensor {
        self.binary_op("greater_equal", Op::GreaterOrEqual {}, other)
    }
    pub fn and(&self, other: &Tensor) -> Tensor {
        self.binary_op("and", Op::And {}, other)
    }
    pub fn or(&self, other: &Tensor) -> Tensor {
        self.binary_op("or", Op::Or {}, other)
    }
    /// `self ? if_true : if_false`, with `self` a bool condition; all three broadcast together.
    pub fn where_(&self, if_true: &Tensor, if_false: &Tensor) -> Tensor {
        apply1(
            &self.state,
            "where",
            Op::Where {},
            &[Some(self), Some(if_true), Some(if_false)],
        )
    }

    /// Whether two handles belong to the same builder.
    pub fn same_builder(&self, other: &Tensor) -> bool {
        Rc::ptr_eq(&self.state, &other.state)
    }
}

/// `impl Op<&Tensor> for &Tensor` and the owned variants, plus `Op<f32>` through a scalar constant.
macro_rules! tensor_operator {
    ($trait:ident, $fn:ident) => {
        impl ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            fn $fn(self, rhs: &Tensor) -> Tensor {
                Tensor::$fn(self, rhs)
            }
        }
        impl ops::$trait<Tensor> for &Tensor {
            type Output = Tensor;
            fn $fn(self, rhs: Tensor) -> Tensor {
                Tensor::$fn(self, &rhs)
            }
        }
        impl ops::$trait<&Tensor> for Tensor {
            type Output = Tensor;
            fn $fn(self, rhs: &Tensor) -> Tensor {
                Tensor::$fn(&self, rhs)
            }
        }
        impl ops::$trait<Tensor> for Tensor {
            type Output = Tensor;
            fn $fn(self, rhs: Tensor) -> Tensor {
                Tensor::$fn(&self, &rhs)
            }
        }
        impl ops::$trait<f32> for &Tensor {
            type Output = Tensor;
            fn $fn(self, rhs: f32) -> Tensor {
                Tensor::$fn(self, &self.scalar_like(f64::from(rhs)))
            }
        }
        impl ops::$trait<f32> for Tensor {
            type Output = Tensor;
            fn $fn(self, rhs: f32) -> Tensor {
                Tensor::$fn(&self, &self.scalar_like(f64::from(rhs)))
            }
        }
    };
}

tensor_operator!(Add, add);
tensor_operator!(Sub, sub);
tensor_operator!(Mul, mul);
tensor_operator!(Div, div);

impl ops::Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}

impl ops::Neg for Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(&self)
    }
}
