//! `sinter-dsl`: build sinter graphs from Rust with chained tensor methods.
//!
//! ```
//! use sinter_dsl::{nn, shape, Conv2dOpts, DType, GraphBuilder};
//!
//! let b = GraphBuilder::new("tiny_cnn");
//! let mut init = nn::Init::new(7);
//! let x = b.input("x", DType::F32, shape![batch, 1, 8, 8]);
//! let w = b.constant("w", init.uniform(&[4, 1, 3, 3], -0.5, 0.5));
//! let y = x
//!     .conv2d(&w, Conv2dOpts { padding: 1, ..Conv2dOpts::default() })
//!     .named("conv1")
//!     .relu()
//!     .max_pool2d(2, 2)
//!     .flatten(1);
//! let logits = nn::linear(&y, 4 * 4 * 4, 10, &mut init);
//! b.output("probs", &logits.softmax(-1));
//! let graph = b.build().expect("the graph type-checks");
//! assert_eq!(graph.outputs().len(), 1);
//! ```
//!
//! - [`GraphBuilder`] declares inputs, constants and outputs and finishes the graph with
//!   [`GraphBuilder::build`], which returns every error recorded while building ([`BuildErrors`]),
//!   or the verifier's errors, or the graph.
//! - [`Tensor`] is a cheap handle with one method per op family (`relu`, `matmul`, `conv2d`,
//!   `softmax`, `reshape`, ...) and `std::ops` operators. Methods never panic and never return
//!   `Result`: a failed op records its error and returns a poisoned handle, and everything built
//!   from a poisoned handle is skipped silently, so one mistake gives one error.
//! - Every node is type-checked by shape inference as it is added and gets a label (`conv2d_0`, or
//!   the one given with [`Tensor::named`]), kept in the text format as `loc("...")`.
//! - [`nn`] has layer helpers whose parameters are seeded random ([`nn::Init`]) or given
//!   ([`nn::Weights`]).
//! - [`GraphBuilder::op`] adds any IR op, for what the methods do not cover.

mod builder;
mod compute;
mod movement;
pub mod nn;
mod tensor;

pub use builder::{BuildError, BuildErrors, GraphBuilder};
pub use compute::{AttentionOpts, Conv2dOpts, GemmOpts};
pub use sinter_ir::{DType, Dim, Op, PadMode, Shape, TensorType};
pub use tensor::Tensor;

/// A `Vec<Dim>` from a list of dims: an identifier is a symbolic dim, a literal a static one (a
/// string literal a symbolic one), and a parenthesized expression is converted with `Dim::from`.
///
/// ```
/// use sinter_dsl::{shape, Dim};
///
/// let width = 28usize;
/// assert_eq!(
///     shape![batch, 1, "seq", (width)],
///     vec![Dim::sym("batch"), Dim::Static(1), Dim::sym("seq"), Dim::Static(28)]
/// );
/// ```
#[macro_export]
macro_rules! shape {
    ($($dim:tt),* $(,)?) => {
        ::std::vec![$($crate::__shape_dim!($dim)),*]
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __shape_dim {
    ($dim:ident) => {
        $crate::Dim::sym(stringify!($dim))
    };
    ($dim:literal) => {
        $crate::Dim::from($dim)
    };
    (($dim:expr)) => {
        $crate::Dim::from($dim)
    };
}

#[cfg(test)]
mod tests;
