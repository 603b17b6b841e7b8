//! Symbolic shape values: what the importer knows about the contents of small i64 tensors computed
//! from shapes (`Shape`, then `Gather`, `Slice`, `Concat`, `Unsqueeze`, arithmetic, ...).
//!
//! ONNX exporters compute reshape targets at run time from `Shape(x)`. When every dim of `x` is
//! static the whole chain folds to a constant (the importer evaluates it). With a symbolic dim
//! (`batch`) it cannot, yet the target is usually "`batch`, then numbers", which the IR's reshape
//! can express as a `0` (copy the input dim) or a `-1` (infer it). A [`ShapeValue`] keeps that
//! knowledge: one [`ShapeElem`] per element, each a known integer, a named symbolic dim, or unknown
//! (an expression of symbols, such as `batch * seq`, which the IR has no form for).
//!
//! **Invariant: a shape value describes an i64 tensor of rank 0 or 1** whose elements are exactly
//! `elems` (one element when `scalar`). The propagation functions return `None` whenever they cannot
//! say what the result holds; the caller then simply has no shape value for it. A shape value whose
//! elements are all known integers is turned into a constant by the caller, so downstream nodes fold.

use sinter_ir::{Dim, Tensor};
use std::fmt;
use std::sync::Arc;

/// One element of a shape vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ShapeElem {
    /// A known integer (may be negative, like the `-1` of a reshape target).
    Int(i64),
    /// The size named by a symbolic dim.
    Sym(Arc<str>),
    /// Some integer the importer cannot name (a product of symbols, ...).
    Unknown,
}

impl fmt::Display for ShapeElem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeElem::Int(v) => write!(f, "{v}"),
            ShapeElem::Sym(s) => f.write_str(s),
            ShapeElem::Unknown => f.write_str("?"),
        }
    }
}

impl ShapeElem {
    fn from_dim(dim: &Dim) -> ShapeElem {
        match dim {
            Dim::Static(n) => i64::try_from(*n).map_or(ShapeElem::Unknown, ShapeElem::Int),
            Dim::Sym(s) => ShapeElem::Sym(s.clone()),
        }
    }

    /// Whether this element denotes exactly `dim`.
    fn is_dim(&self, dim: &Dim) -> bool {
        match (self, dim) {
            (ShapeElem::Int(v), Dim::Static(n)) => usize::try_from(*v).is_ok_and(|v| v == *n),
            (ShapeElem::Sym(a), Dim::Sym(b)) => a == b,
            _ => false,
        }
    }
}

/// The known contents of a rank-0 or rank-1 i64 tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShapeValue {
    pub elems: Vec<ShapeElem>,
    /// Rank 0 (then `elems` has one entry) rather than rank 1.
    pub scalar: bool,
}

impl fmt::Display for ShapeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scalar {
            if let Some(elem) = self.elems.first() {
                return write!(f, "{elem}");
            }
        }
        f.write_str("[")?;
        for (idx, elem) in self.elems.iter().enumerate() {
            if idx > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{elem}")?;
        }
        f.write_str("]")
    }
}

/// Which binary arithmetic op combines two shape values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShapeArith {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

impl ShapeValue {
    /// The vector of a shape's dims.
    pub(crate) fn from_dims(dims: &[Dim]) -> ShapeValue {
        ShapeValue {
            elems: dims.iter().map(ShapeElem::from_dim).collect(),
            scalar: false,
        }
    }

    /// The shape value of a constant integer tensor of rank 0 or 1.
    pub(crate) fn from_tensor(tensor: &Tensor) -> Option<ShapeValue> {
        if tensor.rank() > 1 || !tensor.dtype().is_int() {
            return None;
        }
        Some(ShapeValue {
            elems: tensor
                .to_i64_vec()
                .into_iter()
                .map(ShapeElem::Int)
                .collect(),
            scalar: tensor.rank() == 0,
        })
    }

    /// The elements, if all are known integers.
    pub(crate) fn as_ints(&self) -> Option<Vec<i64>> {
        self.elems
            .iter()
            .map(|e| match e {
                ShapeElem::Int(v) => Some(*v),
                _ => None,
            })
            .collect()
    }

    /// The i64 tensor this value is, if every element is a known integer.
    pub(crate) fn to_tensor(&self) -> Option<Tensor> {
        let ints = self.as_ints()?;
        if self.scalar {
            return ints.first().map(|&v| Tensor::scalar(v));
        }
        Tensor::from_vec(vec![ints.len()], ints).ok()
    }

    /// `Gather` along axis 0 with constant integer indices of rank 0 or 1.
    pub(crate) fn gather(&self, indices: &Tensor) -> Option<ShapeValue> {
        if self.scalar || indices.rank() > 1 || !indices.dtype().is_int() {
            return None;
        }
        let len = i64::try_from(self.elems.len()).ok()?;
        let elems = indices
            .to_i64_vec()
            .into_iter()
            .map(|idx| {
                let resolved = if idx < 0 { idx.checked_add(len)? } else { idx };
                let resolved = usize::try_from(resolved).ok()?;
                self.elems.get(resolved).cloned()
            })
            .collect::<Option<Vec<_>>>()?;
        Some(ShapeValue {
            elems,
            scalar: indices.rank() == 0,
        })
    }

    /// `Slice` of a vector with ONNX's clamping; `axes` must only name axis 0.
    pub(crate) fn slice(
        &self,
        starts: &[i64],
        ends: &[i64],
        axes: &[i64],
        steps: &[i64],
    ) -> Option<ShapeValue> {
        if self.scalar || starts.len() != 1 || ends.len() != 1 {
            return None;
        }
        if !axes.is_empty() && axes != [0] && axes != [-1] {
            return None;
        }
        let step = match steps {
            [] => 1,
            [step] if *step != 0 => *step,
            _ => return None,
        };
        let len = i128::try_from(self.elems.len()).ok()?;
        let resolve = |v: i64| {
            let v = i128::from(v);
            if v < 0 {
                v + len
            } else {
                v
            }
        };
        let (start, end, step) = (resolve(starts[0]), resolve(ends[0]), i128::from(step));
        let mut picked = Vec::new();
        if step > 0 {
            let (mut idx, end) = (start.clamp(0, len), end.clamp(0, len));
            while idx < end {
                picked.push(self.elems.get(usize::try_from(idx).ok()?)?.clone());
                idx += step;
            }
        } else {
            let (mut idx, end) = (start.clamp(-1, len - 1), end.clamp(-1, len - 1));
            while idx > end {
                picked.push(self.elems.get(usize::try_from(idx).ok()?)?.clone());
                idx += step;
            }
        }
        Some(ShapeValue {
            elems: picked,
            scalar: false,
        })
    }

    /// `Concat` of vectors along axis 0.
    pub(crate) fn concat(parts: &[ShapeValue]) -> Option<ShapeValue> {
        if parts.iter().any(|p| p.scalar) {
            return None;
        }
        Some(ShapeValue {
            elems: parts.iter().flat_map(|p| p.elems.iter().cloned()).collect(),
            scalar: false,
        })
    }

    /// `Unsqueeze` of a scalar at axis 0 (the only form that keeps rank ≤ 1).
    pub(crate) fn unsqueeze(&self, axes: &[i64]) -> Option<ShapeValue> {
        (self.scalar && (axes == [0] || axes == [-1])).then(|| ShapeValue {
            elems: self.elems.clone(),
            scalar: false,
        })
    }

    /// `Squeeze` of a one-element vector.
    pub(crate) fn squeeze(&self, axes: &[i64]) -> Option<ShapeValue> {
        (!self.scalar && self.elems.len() == 1 && (axes.is_empty() || axes == [0] || axes == [-1]))
            .then(|| ShapeValue {
                elems: self.elems.clone(),
                scalar: true,
            })
    }

    /// Elementwise arithmetic with numpy broadcasting of rank-0/1 operands.
    pub(crate) fn arith(op: ShapeArith, a: &ShapeValue, b: &ShapeValue) -> Option<ShapeValue> {
        let len = broadcast_len(&[a.elems.len(), b.elems.len()])?;
        let elems = (0..len)
            .map(|idx| elem_arith(op, pick(&a.elems, idx), pick(&b.elems, idx)))
            .collect();
        Some(ShapeValue {
            elems,
            scalar: a.scalar && b.scalar,
        })
    }

    /// `Equal` with numpy broadcasting of rank-0/1 operands, when every element pair is decided:
    /// two known integers, the same symbol, or a symbol against a negative integer (a dim is never
    /// negative; the TorchScript exporter's `expand` compares its target with `-1`). The result is
    /// the boolean elements and whether it is a scalar; `None` when some pair is undecided.
    pub(crate) fn equal(a: &ShapeValue, b: &ShapeValue) -> Option<(Vec<bool>, bool)> {
        use ShapeElem::{Int, Sym};
        let len = broadcast_len(&[a.elems.len(), b.elems.len()])?;
        let elems = (0..len)
            .map(|idx| match (pick(&a.elems, idx), pick(&b.elems, idx)) {
                (Int(x), Int(y)) => Some(x == y),
                (Sym(x), Sym(y)) if x == y => Some(true),
                (Sym(_), Int(v)) | (Int(v), Sym(_)) if *v < 0 => Some(false),
                _ => None,
            })
            .collect::<Option<Vec<bool>>>()?;
        Some((elems, a.scalar && b.scalar))
    }

    /// `Where` with a constant condition (rank 0 or 1) and numpy broadcasting of rank-0/1 operands.
    pub(crate) fn select(
        cond: &[bool],
        cond_scalar: bool,
        x: &ShapeValue,
        y: &ShapeValue,
    ) -> Option<ShapeValue> {
        let len = broadcast_len(&[cond.len(), x.elems.len(), y.elems.len()])?;
        let elems = (0..len)
            .map(|idx| {
                let take_x = if cond.len() == 1 { cond[0] } else { cond[idx] };
                pick(if take_x { &x.elems } else { &y.elems }, idx).clone()
            })
            .collect();
        Some(ShapeValue {
            elems,
            scalar: cond_scalar && x.scalar && y.scalar,
        })
    }

    /// The same elements as a tensor of rank `rank` (`Reshape` of a shape value, whose elements
    /// keep their order): rank 1, or rank 0 for a single element.
    pub(crate) fn reshaped(&self, rank: usize) -> Option<ShapeValue> {
        match rank {
            1 => Some(ShapeValue {
                elems: self.elems.clone(),
                scalar: false,
            }),
            0 if self.elems.len() == 1 => Some(ShapeValue {
                elems: self.elems.clone(),
                scalar: true,
            }),
            _ => None,
        }
    }

    /// The product of the elements (`Size` of a shape), as one scalar element.
    pub(crate) fn product(&self) -> ShapeValue {
        let mut acc = ShapeElem::Int(1);
        for elem in &self.elems {
            acc = elem_arith(ShapeArith::Mul, &acc, elem);
        }
        ShapeValue {
            elems: vec![acc],
            scalar: true,
        }
    }
}

/// The length numpy broadcasting gives vectors of `lens` elements (a length of 1 broadcasts, also
/// to 0); `None` when they do not broadcast.
fn broadcast_len(lens: &[usize]) -> Option<usize> {
    let mut len = 1;
    for &n in lens.iter().filter(|&&n| n != 1) {
        if len != 1 && len != n {
            return None;
        }
        len = n;
    }
    Some(len)
}

/// Element `idx` of a broadcast operand: its only element when it has one.
fn pick(elems: &[ShapeElem], idx: usize) -> &ShapeElem {
    if elems.len() == 1 {
        &elems[0]
    } else {
        &elems[idx]
    }
}

fn elem_arith(op: ShapeArith, a: &ShapeElem, b: &ShapeElem) -> ShapeElem {
    use ShapeElem::{Int, Sym, Unknown};
    match (op, a, b) {
        (_, Int(x), Int(y)) => {
            let (x, y) = (*x, *y);
            let value = match op {
                ShapeArith::Add => x.checked_add(y),
                ShapeArith::Sub => x.checked_sub(y),
                ShapeArith::Mul => x.checked_mul(y),
                // Integer division truncates toward zero, as the IR's `div` does.
                ShapeArith::Div => x.checked_div(y),
                ShapeArith::Max => Some(x.max(y)),
                ShapeArith::Min => Some(x.min(y)),
            };
            value.map_or(Unknown, Int)
        }
        (ShapeArith::Add | ShapeArith::Sub, Sym(s), Int(0)) => Sym(s.clone()),
        (ShapeArith::Add, Int(0), Sym(s)) => Sym(s.clone()),
        (ShapeArith::Mul | ShapeArith::Div, Sym(s), Int(1)) => Sym(s.clone()),
        (ShapeArith::Mul, Int(1), Sym(s)) => Sym(s.clone()),
        (ShapeArith::Mul, Int(0), _) | (ShapeArith::Mul, _, Int(0)) => Int(0),
        (ShapeArith::Max | ShapeArith::Min, Sym(x), Sym(y)) if x == y => Sym(x.clone()),
        _ => Unknown,
    }
}

/// The IR `reshape` target for a shape value: known integers as they are, a symbol equal to the
/// input's dim at the same axis as `0` (copy; not with `allowzero`), and at most one other entry
/// (a different symbol or an unknown) as `-1`. Errors say which entries cannot be expressed.
pub(crate) fn resolve_reshape(
    target: &ShapeValue,
    in_dims: &[Dim],
    allowzero: bool,
) -> Result<Vec<i64>, String> {
    let mut out = Vec::with_capacity(target.elems.len());
    let mut inferred: Vec<usize> = Vec::new();
    for (axis, elem) in target.elems.iter().enumerate() {
        match elem {
            ShapeElem::Int(-1) => {
                inferred.push(axis);
                out.push(-1);
            }
            ShapeElem::Int(v) => out.push(*v),
            ShapeElem::Sym(_)
                if !allowzero && in_dims.get(axis).is_some_and(|d| elem.is_dim(d)) =>
            {
                out.push(0)
            }
            ShapeElem::Sym(_) | ShapeElem::Unknown => {
                inferred.push(axis);
                out.push(-1);
            }
        }
    }
    if inferred.len() > 1 {
        return Err(format!(
            "the reshape target {target} has {} entries that are neither numbers nor the input's \
             dim at the same axis ({}), and the IR's reshape can infer only one",
            inferred.len(),
            inferred
                .iter()
                .map(|axis| format!("axis {axis}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(out)
}

/// The IR `expand` target for a shape value: known integers as they are, and a symbol equal to the
/// input's dim at the same (right-aligned) axis as `1`, which broadcasting keeps.
pub(crate) fn resolve_expand(target: &ShapeValue, in_dims: &[Dim]) -> Result<Vec<i64>, String> {
    let offset = target.elems.len() as i128 - in_dims.len() as i128;
    target
        .elems
        .iter()
        .enumerate()
        .map(|(axis, elem)| match elem {
            ShapeElem::Int(v) => Ok(*v),
            _ => {
                let in_axis = usize::try_from(axis as i128 - offset).ok();
                match in_axis.and_then(|a| in_dims.get(a)) {
                    Some(dim) if elem.is_dim(dim) => Ok(1),
                    _ => Err(format!(
                        "entry {axis} (`{elem}`) of the expand target {target} is not a number \
                         and not the input's dim at that axis"
                    )),
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(name: &str) -> ShapeElem {
        ShapeElem::Sym(Arc::from(name))
    }

    fn vector(elems: Vec<ShapeElem>) -> ShapeValue {
        ShapeValue {
            elems,
            scalar: false,
        }
    }

    #[test]
    fn gather_slice_concat_keep_symbols() {
        let shape = ShapeValue::from_dims(&[Dim::sym("batch"), Dim::Static(3), Dim::Static(4)]);
        let first = shape.gather(&Tensor::scalar(0i64)).unwrap();
        assert_eq!(first.elems, vec![sym("batch")]);
        assert!(first.scalar);
        let tail = shape.slice(&[1], &[i64::MAX], &[0], &[]).unwrap();
        assert_eq!(tail.as_ints(), Some(vec![3, 4]));
        let reversed = shape.slice(&[-1], &[i64::MIN], &[], &[-1]).unwrap();
        assert_eq!(
            reversed.elems,
            vec![ShapeElem::Int(4), ShapeElem::Int(3), sym("batch")]
        );
        let joined = ShapeValue::concat(&[
            first.unsqueeze(&[0]).unwrap(),
            vector(vec![ShapeElem::Int(-1)]),
        ])
        .unwrap();
        assert_eq!(joined.elems, vec![sym("batch"), ShapeElem::Int(-1)]);
    }

    #[test]
    fn arithmetic_keeps_symbols_only_through_identities() {
        let a = vector(vec![sym("b"), ShapeElem::Int(6)]);
        let b = vector(vec![ShapeElem::Int(1), ShapeElem::Int(2)]);
        let product = ShapeValue::arith(ShapeArith::Mul, &a, &b).unwrap();
        assert_eq!(product.elems, vec![sym("b"), ShapeElem::Int(12)]);
        let sum = ShapeValue::arith(ShapeArith::Add, &a, &b).unwrap();
        assert_eq!(sum.elems, vec![ShapeElem::Unknown, ShapeElem::Int(8)]);
        assert_eq!(a.product().elems, vec![ShapeElem::Unknown]);
    }

    #[test]
    fn reshape_targets_copy_matching_symbols_and_infer_one() {
        let in_dims = [Dim::sym("b"), Dim::sym("s"), Dim::Static(8)];
        let target = vector(vec![
            sym("b"),
            sym("s"),
            ShapeElem::Int(2),
            ShapeElem::Int(4),
        ]);
        assert_eq!(
            resolve_reshape(&target, &in_dims, false),
            Ok(vec![0, 0, 2, 4])
        );
        let target = vector(vec![sym("b"), ShapeElem::Unknown]);
        assert_eq!(resolve_reshape(&target, &in_dims, false), Ok(vec![0, -1]));
        let target = vector(vec![sym("s"), sym("b"), ShapeElem::Int(8)]);
        assert!(resolve_reshape(&target, &in_dims, false).is_err());
        let target = vector(vec![sym("b"), ShapeElem::Int(-1)]);
        // With `allowzero` a 0 means an empty axis, so the symbol cannot be copied either.
        assert!(resolve_reshape(&target, &in_dims, true).is_err());
    }

    #[test]
    fn equal_is_decided_only_when_no_run_time_value_could_change_it() {
        let target = vector(vec![sym("b"), ShapeElem::Int(2), ShapeElem::Int(-1)]);
        let minus_ones = vector(vec![ShapeElem::Int(-1)]);
        // A dim is never negative, so `b == -1` is false; the broadcast -1 meets every element.
        assert_eq!(
            ShapeValue::equal(&target, &minus_ones),
            Some((vec![false, false, true], false))
        );
        let same = vector(vec![sym("b"), ShapeElem::Int(2), ShapeElem::Int(0)]);
        assert_eq!(
            ShapeValue::equal(&target, &same),
            Some((vec![true, true, false], false))
        );
        // `b == 2` and `b == c` depend on the run-time sizes.
        let twos = vector(vec![ShapeElem::Int(2)]);
        assert_eq!(ShapeValue::equal(&target, &twos), None);
        let other = vector(vec![sym("c"), ShapeElem::Int(2), ShapeElem::Int(-1)]);
        assert_eq!(ShapeValue::equal(&target, &other), None);
        // Lengths 3 and 2 do not broadcast.
        let short = vector(vec![sym("b"), ShapeElem::Int(2)]);
        assert_eq!(ShapeValue::equal(&target, &short), None);
    }

    #[test]
    fn select_picks_elements_by_a_broadcast_condition() {
        let x = vector(vec![ShapeElem::Int(1), ShapeElem::Int(1)]);
        let y = vector(vec![sym("b"), ShapeElem::Unknown]);
        let picked = ShapeValue::select(&[false, true], false, &x, &y).unwrap();
        assert_eq!(picked.elems, vec![sym("b"), ShapeElem::Int(1)]);
        let all_y = ShapeValue::select(&[false], true, &x, &y).unwrap();
        assert_eq!(all_y, y);
        assert_eq!(
            ShapeValue::select(&[true, false, true], false, &x, &y),
            None
        );
    }

    #[test]
    fn reshaped_keeps_the_elements_at_rank_one_or_a_single_one_at_rank_zero() {
        let single = vector(vec![sym("b")]);
        let scalar = single.reshaped(0).unwrap();
        assert!(scalar.scalar);
        assert_eq!(scalar.reshaped(1), Some(single.clone()));
        let pair = vector(vec![sym("b"), ShapeElem::Int(3)]);
        assert_eq!(pair.reshaped(1), Some(pair.clone()));
        assert_eq!(pair.reshaped(0), None);
        assert_eq!(pair.reshaped(2), None);
    }

    #[test]
    fn broadcast_lengths_follow_numpy() {
        assert_eq!(broadcast_len(&[3, 1, 3]), Some(3));
        assert_eq!(broadcast_len(&[1, 1]), Some(1));
        assert_eq!(broadcast_len(&[0, 1]), Some(0));
        assert_eq!(broadcast_len(&[2, 3]), None);
        assert_eq!(broadcast_len(&[0, 2]), None);
    }

    #[test]
    fn expand_targets_keep_matching_symbols() {
        let in_dims = [Dim::sym("b"), Dim::Static(1)];
        let target = vector(vec![ShapeElem::Int(2), sym("b"), ShapeElem::Int(5)]);
        assert_eq!(resolve_expand(&target, &in_dims), Ok(vec![2, 1, 5]));
        let target = vector(vec![sym("b"), sym("b")]);
        assert!(resolve_expand(&target, &in_dims).is_err());
    }
}
