//! Index arithmetic shared by the op implementations: strides, axis normalization, broadcasting.

use crate::{op_err, OpError};

/// Row-major strides of `shape`, in elements.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

/// Resolves a possibly negative `axis` against `rank`; `rank` itself is out of range.
pub fn normalize_axis(axis: i64, rank: usize) -> Result<usize, OpError> {
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    if resolved < 0 || resolved >= rank as i64 {
        return op_err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(resolved as usize)
}

/// The numpy broadcast of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Vec<usize>, OpError> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for axis in 0..rank {
        let da = if axis + a.len() >= rank { a[axis + a.len() - rank] } else { 1 };
        let db = if axis + b.len() >= rank { b[axis + b.len() - rank] } else { 1 };
        out[axis] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return op_err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

/// For each element of `out_shape` in row-major order, the flat index of the element of a tensor of
/// `in_shape` that broadcasts to it. `in_shape` must broadcast to `out_shape`.
pub fn broadcast_indices(in_shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let rank = out_shape.len();
    let offset = rank - in_shape.len();
    let in_strides = strides(in_shape);
    // Stride 0 along broadcast axes makes the element repeat.
    let eff: Vec<usize> = (0..rank)
        .map(|axis| {
            if axis < offset || in_shape[axis - offset] == 1 {
                0
            } else {
                in_strides[axis - offset]
            }
        })
        .collect();
    let total: usize = out_shape.iter().product();
    let mut result = Vec::with_capacity(total);
    let mut coord = vec![0usize; rank];
    let mut flat = 0usize;
    for _ in 0..total {
        result.push(flat);
        for axis in (0..rank).rev() {
            coord[axis] += 1;
            flat += eff[axis];
            if coord[axis] < out_shape[axis] {
                break;
            }
            flat -= eff[axis] * coord[axis];
            coord[axis] = 0;
        }
    }
    result
}

/// Calls `f` with every multi-index of `shape` in row-major order.
pub fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    if shape.contains(&0) {
        return;
    }
    let mut coord = vec![0usize; shape.len()];
    loop {
        f(&coord);
        let mut axis = shape.len();
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            coord[axis] += 1;
            if coord[axis] < shape[axis] {
                break;
            }
            coord[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_indices_repeat_along_size_one_axes() {
        assert_eq!(broadcast_indices(&[2, 1], &[2, 3]), vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(broadcast_indices(&[3], &[2, 3]), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(broadcast_shapes(&[4, 1, 3], &[2, 1]).unwrap(), vec![4, 2, 3]);
        assert!(broadcast_shapes(&[2], &[3]).is_err());
    }

    #[test]
    fn for_each_index_visits_row_major() {
        let mut seen = Vec::new();
        for_each_index(&[2, 2], |c| seen.push(c.to_vec()));
        assert_eq!(seen, vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]);
        let mut count = 0;
        for_each_index(&[], |_| count += 1);
        assert_eq!(count, 1, "a scalar has one element");
    }
}
