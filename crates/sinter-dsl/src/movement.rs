//! Data-movement methods: reshapes, transposes, concatenation, splitting, slicing and gathers.
//!
//! Shape-like arguments are attributes in the IR (see `op.rs`), so they are plain slices here. Axes
//! may be negative and count from the end, as in ONNX.

use crate::builder::{apply, apply1};
use crate::Tensor;
use sinter_ir::{Op, PadMode};

impl Tensor {
    /// ONNX reshape: a `0` entry copies the input dim, one `-1` entry is inferred.
    pub fn reshape(&self, shape: &[i64]) -> Tensor {
        self.unary_op(
            "reshape",
            Op::Reshape {
                shape: shape.to_vec(),
                allowzero: false,
            },
        )
    }

    /// To 2-d: the dims before `axis` form the rows, the rest the columns.
    pub fn flatten(&self, axis: i64) -> Tensor {
        self.unary_op("flatten", Op::Flatten { axis })
    }

    /// Permutes the axes; `perm[i]` is the input axis that becomes output axis `i`.
    pub fn transpose(&self, perm: &[i64]) -> Tensor {
        self.unary_op(
            "transpose",
            Op::Transpose {
                perm: perm.to_vec(),
            },
        )
    }

    /// Swaps the last two axes (the matrix transpose of a batch of matrices).
    pub fn t(&self) -> Tensor {
        let Some(rank) = self.rank() else {
            return self.poisoned();
        };
        if rank < 2 {
            return self.argument_error("t", format!("needs rank 2 or more, got rank {rank}"));
        }
        let mut perm: Vec<i64> = (0..rank as i64).collect();
        perm.swap(rank - 2, rank - 1);
        self.unary_op("t", Op::Transpose { perm })
    }

    /// Removes the listed size-1 axes; empty `axes` removes every static size-1 axis.
    pub fn squeeze(&self, axes: &[i64]) -> Tensor {
        self.unary_op(
            "squeeze",
            Op::Squeeze {
                axes: axes.to_vec(),
            },
        )
    }

    /// Inserts size-1 axes; `axes` index the output.
    pub fn unsqueeze(&self, axes: &[i64]) -> Tensor {
        self.unary_op(
            "unsqueeze",
            Op::Unsqueeze {
                axes: axes.to_vec(),
            },
        )
    }

    /// Concatenates `self` followed by `others` along `axis`.
    pub fn concat(&self, others: &[&Tensor], axis: i64) -> Tensor {
        let inputs: Vec<Option<&Tensor>> = std::iter::once(self)
            .chain(others.iter().copied())
            .map(Some)
            .collect();
        apply1(&self.state, "concat", Op::Concat { axis }, &inputs)
    }

    /// Splits along `axis` into pieces of the given sizes, one handle per piece.
    pub fn split(&self, sizes: &[i64], axis: i64) -> Vec<Tensor> {
        if sizes.is_empty() {
            return vec![self.argument_error("split", "needs at least one piece size")];
        }
        apply(
            &self.state,
            "split",
            Op::Split {
                split: sizes.to_vec(),
                axis,
            },
            &[Some(self)],
        )
    }

    /// numpy-style slicing of the listed axes (`axes` empty means `0..starts.len()`), step 1.
    pub fn slice(&self, starts: &[i64], ends: &[i64], axes: &[i64]) -> Tensor {
        self.slice_steps(starts, ends, axes, &[])
    }

    /// Slicing with steps; an empty `steps` means all ones.
    pub fn slice_steps(&self, starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]) -> Tensor {
        self.unary_op(
            "slice",
            Op::Slice {
                starts: starts.to_vec(),
                ends: ends.to_vec(),
                axes: axes.to_vec(),
                steps: steps.to_vec(),
            },
        )
    }

    /// `self[start..end]` along one axis.
    pub fn slice_axis(&self, axis: i64, start: i64, end: i64) -> Tensor {
        self.slice(&[start], &[end], &[axis])
    }

    /// numpy `take` along `axis`: `indices` (i64 or i32) select entries of `self`.
    pub fn gather(&self, indices: &Tensor, axis: i64) -> Tensor {
        self.binary_op("gather", Op::Gather { axis }, indices)
    }

    /// Picks along `axis` with an index tensor of the same rank as `self`.
    pub fn gather_elements(&self, indices: &Tensor, axis: i64) -> Tensor {
        self.binary_op("gather_elements", Op::GatherElements { axis }, indices)
    }

    /// Broadcasts `self` together with `shape`.
    pub fn expand(&self, shape: &[i64]) -> Tensor {
        self.unary_op(
            "expand",
            Op::Expand {
                shape: shape.to_vec(),
            },
        )
    }

    /// Repeats `self` `repeats[i]` times along axis `i`.
    pub fn tile(&self, repeats: &[i64]) -> Tensor {
        self.unary_op(
            "tile",
            Op::Tile {
                repeats: repeats.to_vec(),
            },
        )
    }

    /// Pads with `pads = [begin_0, .., begin_r-1, end_0, .., end_r-1]`; negative pads crop.
    pub fn pad(&self, pads: &[i64], mode: PadMode, value: f64) -> Tensor {
        self.unary_op(
            "pad",
            Op::Pad {
                pads: pads.to_vec(),
                mode,
                value,
            },
        )
    }

    /// Keeps the lower triangle of the last two dims, including diagonal `k` (0 = the main one).
    pub fn tril(&self, k: i64) -> Tensor {
        self.unary_op("tril", Op::Trilu { upper: false, k })
    }

    /// Keeps the upper triangle of the last two dims, including diagonal `k`.
    pub fn triu(&self, k: i64) -> Tensor {
        self.unary_op("triu", Op::Trilu { upper: true, k })
    }

    /// The shape of `self` as an i64 vector.
    pub fn shape_of(&self) -> Tensor {
        self.unary_op(
            "shape_of",
            Op::Shape {
                start: 0,
                end: None,
            },
        )
    }
}
