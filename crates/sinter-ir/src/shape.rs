//! Shapes with static and named symbolic dimensions, and the tensor type that pairs a shape with a dtype.
//!
//! A symbolic dim is a name (`batch`, `seq`) standing for one unknown size. Two occurrences of the same
//! name denote the same size everywhere in a graph; that is the only fact inference relies on. There are
//! no dim expressions: an op whose output size would be an expression of a symbol (a strided conv over a
//! symbolic spatial dim, a concat of two symbolic dims) is a shape-inference error, never a guess.

use crate::DType;
use std::fmt;
use std::sync::Arc;

/// The largest element count of a tensor, 2^60 - 1: a buffer of this many 8-byte elements still fits
/// in `isize::MAX` bytes.
///
/// **Invariant: the non-zero static dims of a shape multiply to at most `MAX_ELEMENTS`.** Inference
/// rejects input and output types that break it and the reference interpreter rejects such tensors,
/// so the product of any subset of a valid shape's dims fits in `usize` (an empty tensor may not hide
/// an astronomically large dim).
pub const MAX_ELEMENTS: usize = isize::MAX as usize / 8;

/// Whether `dims` keeps the [`MAX_ELEMENTS`] invariant: its non-zero dims multiply to at most
/// `MAX_ELEMENTS`.
pub fn dims_within_max_elements(dims: &[usize]) -> bool {
    dims.iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| {
            acc.checked_mul(d).filter(|&n| n <= MAX_ELEMENTS)
        })
        .is_some()
}

/// One dimension of a shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// A size known when the graph is built.
    Static(usize),
    /// A named size bound when the graph runs (`batch`, `seq`).
    Sym(Arc<str>),
}

impl Dim {
    pub fn sym(name: &str) -> Dim {
        Dim::Sym(Arc::from(name))
    }

    /// The static size, if known.
    pub fn as_static(&self) -> Option<usize> {
        match self {
            Dim::Static(n) => Some(*n),
            Dim::Sym(_) => None,
        }
    }

    pub fn is_one(&self) -> bool {
        *self == Dim::Static(1)
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Dim {
        Dim::Static(n)
    }
}

impl From<&str> for Dim {
    fn from(name: &str) -> Dim {
        Dim::sym(name)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Static(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

/// A shape: one `Dim` per axis. Rank 0 is a scalar.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    /// A shape whose dims are all static.
    pub fn fixed(dims: &[usize]) -> Shape {
        Shape(dims.iter().map(|&d| Dim::Static(d)).collect())
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn dims(&self) -> &[Dim] {
        &self.0
    }

    /// The concrete dims, if every dim is static.
    pub fn as_static(&self) -> Option<Vec<usize>> {
        self.0.iter().map(Dim::as_static).collect()
    }

    /// Element count, if every dim is static and the count fits `usize` (0 when any dim is 0).
    pub fn num_elements(&self) -> Option<usize> {
        let dims = self.as_static()?;
        if dims.contains(&0) {
            return Some(0);
        }
        dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// Whether the static dims keep the [`MAX_ELEMENTS`] invariant (symbolic dims are not counted).
    pub fn within_max_elements(&self) -> bool {
        let static_dims: Vec<usize> = self.0.iter().filter_map(Dim::as_static).collect();
        dims_within_max_elements(&static_dims)
    }
}

impl From<Vec<Dim>> for Shape {
    fn from(dims: Vec<Dim>) -> Shape {
        Shape(dims)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (idx, d) in self.0.iter().enumerate() {
            if idx > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// The type of a value: element type and shape. Printed as `f32[batch,3,224,224]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorType {
    pub fn new(dtype: DType, shape: impl Into<Shape>) -> TensorType {
        TensorType {
            dtype,
            shape: shape.into(),
        }
    }

    pub fn fixed(dtype: DType, dims: &[usize]) -> TensorType {
        TensorType::new(dtype, Shape::fixed(dims))
    }

    pub fn rank(&self) -> usize {
        self.shape.rank()
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}
