//! Reference implementations of `matmul` and `gemm`.
//!
//! `matmul` follows numpy: operands of rank >= 1; a 1-d `a` is a row vector and a 1-d `b` a column
//! vector, and the dim added for them is removed from the result; leading (batch) dims broadcast.
//! `gemm` is ONNX's: 2-d `a` and `b`, optional transposes, `alpha * op(a) @ op(b) + beta * c` with `c`
//! broadcast to `[M, N]` (and ignored when `beta` is 0, as in onnx's reference).
//!
//! Both take f32, f64, i32 or i64 operands of one dtype (ONNX's type constraints restricted to sinter's
//! dtypes; 8-bit integer products are ONNX's MatMulInteger, not these ops). Float dot products accumulate in f64 and round
//! once, so the oracle is at least as accurate as any implementation under test. Integer products
//! accumulate in wrapping i64, which equals wrapping arithmetic in the narrower dtype. Integer `gemm`
//! with `alpha = beta = 1` is exact; other scalings are computed in f64 and truncated toward zero, as
//! onnx's reference does.

use crate::elementwise::{match_int, Float, Int};
use crate::index::{
    broadcast_indices, broadcast_shapes, checked_numel, make_tensor, required_input,
};
use crate::{op_err, OpError};
use sinter_ir::{DType, Elem, Op, Tensor, TensorData};

/// Evaluates `matmul` or `gemm`. Errors are prefixed with the op name.
pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    eval_single(op, inputs)
        .map(|tensor| vec![tensor])
        .map_err(|e| OpError(format!("`{}`: {}", op.name(), e.0)))
}

fn eval_single(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let a = required_input(op, inputs, 0)?;
    let b = required_input(op, inputs, 1)?;
    match *op {
        Op::MatMul {} => matmul(a, b),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            let c = inputs.get(2).copied().flatten();
            gemm(
                a,
                b,
                c,
                GemmScale {
                    alpha,
                    beta,
                    trans_a,
                    trans_b,
                },
            )
        }
        _ => op_err("is not a linear algebra op"),
    }
}

/// The shape of one matrix product `[batch.., m, k] @ [batch.., k, n]`, with batch dims already
/// broadcast: `a_batch_idx[i]`/`b_batch_idx[i]` give the operand matrix used for output matrix `i`.
struct ProductPlan {
    n_rows: usize,
    n_inner: usize,
    n_cols: usize,
    a_batch_idx: Vec<usize>,
    b_batch_idx: Vec<usize>,
    /// Element `(row, inner)` of `a`'s matrix is at `row * a_row_stride + inner * a_inner_stride`.
    a_row_stride: usize,
    a_inner_stride: usize,
    b_inner_stride: usize,
    b_col_stride: usize,
}

impl ProductPlan {
    /// `out[i][row][col] = finish(sum over inner of a * b)` for every batch matrix `i`, the sum
    /// starting from `zero` and folding products with `mul_add`.
    fn run<T: Elem, Acc: Copy>(
        &self,
        a: &[T],
        b: &[T],
        zero: Acc,
        mul_add: impl Fn(Acc, T, T) -> Acc,
        finish: impl Fn(Acc, usize) -> T,
    ) -> Vec<T> {
        let a_matrix_len = self.n_rows * self.n_inner;
        let b_matrix_len = self.n_inner * self.n_cols;
        let mut out = Vec::with_capacity(self.a_batch_idx.len() * self.n_rows * self.n_cols);
        for (&a_batch, &b_batch) in self.a_batch_idx.iter().zip(&self.b_batch_idx) {
            let a_base = a_batch * a_matrix_len;
            let b_base = b_batch * b_matrix_len;
            for row in 0..self.n_rows {
                for col in 0..self.n_cols {
                    let mut acc = zero;
                    for inner in 0..self.n_inner {
                        let a_value =
                            a[a_base + row * self.a_row_stride + inner * self.a_inner_stride];
                        let b_value =
                            b[b_base + inner * self.b_inner_stride + col * self.b_col_stride];
                        acc = mul_add(acc, a_value, b_value);
                    }
                    out.push(finish(acc, out.len()));
                }
            }
        }
        out
    }
}

/// Float products accumulate in f64; `finish` gets the sum and the flat output index.
fn product_float<F: Float>(
    plan: &ProductPlan,
    a: &[F],
    b: &[F],
    finish: impl Fn(f64, usize) -> F,
) -> Vec<F> {
    plan.run(
        a,
        b,
        0.0f64,
        |acc, x, y| acc + x.to_f64() * y.to_f64(),
        finish,
    )
}

/// Integer products accumulate in wrapping i64.
fn product_int<I: Int>(
    plan: &ProductPlan,
    a: &[I],
    b: &[I],
    finish: impl Fn(i64, usize) -> I,
) -> Vec<I> {
    plan.run(
        a,
        b,
        0i64,
        |acc, x, y| acc.wrapping_add(x.to_i64().wrapping_mul(y.to_i64())),
        finish,
    )
}

fn dtype_mismatch<T>(a: &Tensor, b: &Tensor) -> Result<T, OpError> {
    if a.dtype() == b.dtype() {
        op_err(format!(
            "expects f32, f64, i32 or i64 operands, got {}",
            a.dtype()
        ))
    } else {
        op_err(format!(
            "operands must have one dtype, got {} and {}",
            a.dtype(),
            b.dtype()
        ))
    }
}

fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, OpError> {
    if a.rank() == 0 || b.rank() == 0 {
        return op_err(format!(
            "operands must have rank >= 1, got shapes {:?} and {:?}",
            a.shape(),
            b.shape()
        ));
    }
    // numpy promotes a 1-d `a` to a row [1, k] and a 1-d `b` to a column [k, 1].
    let a_matrix_shape: Vec<usize> = if a.rank() == 1 {
        vec![1, a.shape()[0]]
    } else {
        a.shape().to_vec()
    };
    let b_matrix_shape: Vec<usize> = if b.rank() == 1 {
        vec![b.shape()[0], 1]
    } else {
        b.shape().to_vec()
    };
    let (a_batch, a_mat) = a_matrix_shape.split_at(a_matrix_shape.len() - 2);
    let (b_batch, b_mat) = b_matrix_shape.split_at(b_matrix_shape.len() - 2);
    let (n_rows, n_inner, n_inner_b, n_cols) = (a_mat[0], a_mat[1], b_mat[0], b_mat[1]);
    if n_inner != n_inner_b {
        return op_err(format!(
            "inner dims differ: {:?} @ {:?} ({n_inner} vs {n_inner_b})",
            a.shape(),
            b.shape()
        ));
    }
    let batch = broadcast_shapes(a_batch, b_batch).map_err(|_| {
        OpError(format!(
            "batch dims of {:?} and {:?} do not broadcast",
            a.shape(),
            b.shape()
        ))
    })?;
    let mut out_shape = batch.clone();
    if a.rank() > 1 {
        out_shape.push(n_rows);
    }
    if b.rank() > 1 {
        out_shape.push(n_cols);
    }
    checked_numel(&out_shape)?;
    let plan = ProductPlan {
        n_rows,
        n_inner,
        n_cols,
        a_batch_idx: broadcast_indices(a_batch, &batch),
        b_batch_idx: broadcast_indices(b_batch, &batch),
        a_row_stride: n_inner,
        a_inner_stride: 1,
        b_inner_stride: n_cols,
        b_col_stride: 1,
    };
    let data = match (a.data(), b.data()) {
        (TensorData::F32(x), TensorData::F32(y)) => {
            TensorData::F32(product_float(&plan, x, y, |acc, _| acc as f32).into())
        }
        (TensorData::F64(x), TensorData::F64(y)) => {
            TensorData::F64(product_float(&plan, x, y, |acc, _| acc).into())
        }
        (TensorData::I64(x), TensorData::I64(y)) => {
            TensorData::I64(product_int(&plan, x, y, |acc, _| acc).into())
        }
        (TensorData::I32(x), TensorData::I32(y)) => {
            TensorData::I32((product_int(&plan, x, y, |acc, _| Int::from_i64_wrapping(acc))).into())
        }
        _ => return dtype_mismatch(a, b),
    };
    make_tensor(out_shape, data)
}

/// The attributes of `gemm`, gathered so helpers do not take a row of scalars and booleans.
#[derive(Clone, Copy, Debug)]
struct GemmScale {
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
}

fn gemm(a: &Tensor, b: &Tensor, c: Option<&Tensor>, scale: GemmScale) -> Result<Tensor, OpError> {
    let supported =
        |t: &Tensor| matches!(t.dtype(), DType::F32 | DType::F64 | DType::I32 | DType::I64);
    if a.dtype() != b.dtype() || !supported(a) {
        return dtype_mismatch(a, b);
    }
    if a.rank() != 2 || b.rank() != 2 {
        return op_err(format!(
            "expects 2-d a and b, got shapes {:?} and {:?}",
            a.shape(),
            b.shape()
        ));
    }
    let (a_dims, b_dims) = (a.shape(), b.shape());
    // op(a) is [n_rows, n_inner]; the strides read a's storage through the optional transpose.
    let (n_rows, n_inner, a_row_stride, a_inner_stride) = if scale.trans_a {
        (a_dims[1], a_dims[0], 1, a_dims[1])
    } else {
        (a_dims[0], a_dims[1], a_dims[1], 1)
    };
    let (n_inner_b, n_cols, b_inner_stride, b_col_stride) = if scale.trans_b {
        (b_dims[1], b_dims[0], 1, b_dims[1])
    } else {
        (b_dims[0], b_dims[1], b_dims[1], 1)
    };
    if n_inner != n_inner_b {
        return op_err(format!(
            "inner dims differ: op(a) is [{n_rows}, {n_inner}], op(b) is [{n_inner_b}, {n_cols}] \
             (trans_a={}, trans_b={})",
            scale.trans_a, scale.trans_b
        ));
    }
    let out_shape = vec![n_rows, n_cols];
    checked_numel(&out_shape)?;
    // `c_idx[i]` is the element of `c` added to output element `i`; `c` may broadcast to [M, N] but
    // not beyond it.
    let c_idx = match c {
        None => None,
        Some(c) => {
            if c.dtype() != a.dtype() {
                return op_err(format!(
                    "c must have dtype {} like a, got {}",
                    a.dtype(),
                    c.dtype()
                ));
            }
            match broadcast_shapes(c.shape(), &out_shape) {
                Ok(shape) if shape == out_shape => Some(broadcast_indices(c.shape(), &out_shape)),
                _ => {
                    return op_err(format!(
                        "c of shape {:?} does not broadcast to the result shape {out_shape:?}",
                        c.shape()
                    ))
                }
            }
        }
    };
    // ONNX's reference skips `c` entirely when beta is 0, so NaN or inf in `c` do not leak through.
    let c_idx = c_idx.filter(|_| scale.beta != 0.0);
    let plan = ProductPlan {
        n_rows,
        n_inner,
        n_cols,
        a_batch_idx: vec![0],
        b_batch_idx: vec![0],
        a_row_stride,
        a_inner_stride,
        b_inner_stride,
        b_col_stride,
    };
    let (alpha, beta) = (f64::from(scale.alpha), f64::from(scale.beta));
    let c_data = c.map(Tensor::data);
    match (a.data(), b.data()) {
        (TensorData::F32(x), TensorData::F32(y)) => {
            let c_values = c_data.and_then(|d| f32::unwrap(d)).unwrap_or(&[]);
            let values = product_float(&plan, x, y, |acc, out_idx| {
                let bias = c_idx
                    .as_ref()
                    .map_or(0.0, |idx| beta * f64::from(c_values[idx[out_idx]]));
                (alpha * acc + bias) as f32
            });
            make_tensor(out_shape, TensorData::F32(values.into()))
        }
        (TensorData::F64(x), TensorData::F64(y)) => {
            let c_values = c_data.and_then(|d| f64::unwrap(d)).unwrap_or(&[]);
            let values = product_float(&plan, x, y, |acc, out_idx| {
                let bias = c_idx
                    .as_ref()
                    .map_or(0.0, |idx| beta * c_values[idx[out_idx]]);
                alpha * acc + bias
            });
            make_tensor(out_shape, TensorData::F64(values.into()))
        }
        (x_data, y_data) if x_data.dtype() == y_data.dtype() => {
            let c_values = c.map(Tensor::to_i64_vec).unwrap_or_default();
            let finish = |acc: i64, out_idx: usize| -> i64 {
                let bias = c_idx.as_ref().map_or(0, |idx| c_values[idx[out_idx]]);
                if alpha == 1.0 && (beta == 1.0 || c_idx.is_none()) {
                    acc.wrapping_add(bias)
                } else {
                    // Saturating f64-to-i64 truncation, then the dtype's wrapping narrowing below.
                    (alpha * acc as f64 + beta * bias as f64) as i64
                }
            };
            match_int!(x_data, |x| {
                let y = Elem::unwrap(y_data).unwrap_or(&[]);
                let values = product_int(&plan, x, y, |acc, out_idx| Int::from_i64_wrapping(finish(acc, out_idx)));
                make_tensor(out_shape, Elem::wrap(values))
            }, _other => dtype_mismatch(a, b))
        }
        _ => dtype_mismatch(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t<T: Elem>(shape: &[usize], values: Vec<T>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), values).unwrap()
    }

    fn matmul_op(a: &Tensor, b: &Tensor) -> Result<Tensor, OpError> {
        eval(&Op::MatMul {}, &[Some(a), Some(b)]).map(|mut v| v.remove(0))
    }

    fn gemm_op(
        a: &Tensor,
        b: &Tensor,
        c: Option<&Tensor>,
        scale: GemmScale,
    ) -> Result<Tensor, OpError> {
        let op = Op::Gemm {
            alpha: scale.alpha,
            beta: scale.beta,
            trans_a: scale.trans_a,
            trans_b: scale.trans_b,
        };
        eval(&op, &[Some(a), Some(b), c]).map(|mut v| v.remove(0))
    }

    const PLAIN: GemmScale = GemmScale {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: false,
    };

    #[test]
    fn matmul_2d() {
        let a = t(&[2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = t(&[3, 2], vec![7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0]);
        // [1 2 3; 4 5 6] @ [7 8; 9 10; 11 12] = [58 64; 139 154]
        assert_eq!(
            matmul_op(&a, &b).unwrap(),
            t(&[2, 2], vec![58.0f32, 64.0, 139.0, 154.0])
        );
    }

    #[test]
    fn matmul_vector_promotion() {
        let v = t(&[3], vec![1i64, 2, 3]);
        let m = t(&[3, 2], vec![1i64, 0, 0, 1, 1, 1]);
        assert_eq!(matmul_op(&v, &m).unwrap(), t(&[2], vec![4i64, 5]));
        let m2 = t(&[2, 3], vec![1i64, 0, 0, 0, 1, 1]);
        assert_eq!(matmul_op(&m2, &v).unwrap(), t(&[2], vec![1i64, 5]));
        assert_eq!(
            matmul_op(&v, &v).unwrap(),
            Tensor::scalar(14i64),
            "dot product is rank 0"
        );
        // A 1-d operand against a batch: [3] @ [2, 3, 1] -> [2, 1].
        let batch = t(&[2, 3, 1], vec![1i64, 1, 1, 0, 0, 2]);
        assert_eq!(matmul_op(&v, &batch).unwrap(), t(&[2, 1], vec![6i64, 6]));
    }

    #[test]
    fn matmul_broadcasts_batch_dims() {
        // a: [2, 1, 2] (two 1x2 rows), b: [2, 1] shared across the batch.
        let a = t(&[2, 1, 2], vec![1.0f64, 2.0, 3.0, 4.0]);
        let b = t(&[2, 1], vec![10.0f64, 1.0]);
        assert_eq!(
            matmul_op(&a, &b).unwrap(),
            t(&[2, 1, 1], vec![12.0f64, 34.0])
        );
        // a: [1, 2, 1] with b: [3, 1, 1] broadcast to batch [3].
        let a = t(&[1, 2, 1], vec![1.0f64, 2.0]);
        let b = t(&[3, 1, 1], vec![1.0f64, 10.0, 100.0]);
        assert_eq!(
            matmul_op(&a, &b).unwrap(),
            t(&[3, 2, 1], vec![1.0f64, 2.0, 10.0, 20.0, 100.0, 200.0])
        );
        let bad = t(&[2, 1, 1], vec![1.0f64, 2.0]);
        let a3 = t(&[3, 1, 1], vec![1.0f64, 2.0, 3.0]);
        assert!(matmul_op(&a3, &bad).unwrap_err().0.contains("broadcast"));
    }

    #[test]
    fn matmul_accumulates_in_f64() {
        // 1e8 + 1 - 1e8 is 0 in f32 arithmetic but exactly 1 with f64 accumulation.
        let a = t(&[1, 3], vec![1e8f32, 1.0, -1e8]);
        let b = t(&[3, 1], vec![1.0f32, 1.0, 1.0]);
        assert_eq!(matmul_op(&a, &b).unwrap(), t(&[1, 1], vec![1.0f32]));
    }

    #[test]
    fn matmul_integers_wrap() {
        let a = t(&[1, 2], vec![i32::MAX, 1]);
        let b = t(&[2, 1], vec![1i32, 1]);
        // 2^31 - 1 + 1 wraps to -2^31 in i32.
        assert_eq!(matmul_op(&a, &b).unwrap(), t(&[1, 1], vec![i32::MIN]));
    }

    #[test]
    fn matmul_and_gemm_reject_8_bit_integers() {
        for x in [t(&[1, 1], vec![1i8]), t(&[1, 1], vec![1u8])] {
            let message = matmul_op(&x, &x).unwrap_err().0;
            assert!(message.contains("f32, f64, i32 or i64"), "{message}");
            let message = gemm_op(&x, &x, None, PLAIN).unwrap_err().0;
            assert!(message.contains("f32, f64, i32 or i64"), "{message}");
        }
    }

    #[test]
    fn matmul_empty_dims() {
        let a = t(&[2, 0], Vec::<f32>::new());
        let b = t(&[0, 3], Vec::<f32>::new());
        assert_eq!(matmul_op(&a, &b).unwrap(), t(&[2, 3], vec![0.0f32; 6]));
        let c = t(&[0, 2], Vec::<f32>::new());
        let d = t(&[2, 3], vec![1.0f32; 6]);
        assert_eq!(matmul_op(&c, &d).unwrap(), t(&[0, 3], Vec::<f32>::new()));
    }

    #[test]
    fn matmul_errors() {
        let a = t(&[2, 3], vec![0.0f32; 6]);
        let b = t(&[2, 3], vec![0.0f32; 6]);
        let message = matmul_op(&a, &b).unwrap_err().0;
        assert!(
            message.contains("`matmul`") && message.contains("inner"),
            "{message}"
        );
        assert!(matmul_op(&Tensor::scalar(1.0f32), &a)
            .unwrap_err()
            .0
            .contains("rank"));
        let ints = t(&[3, 2], vec![0i64; 6]);
        assert!(matmul_op(&a, &ints).unwrap_err().0.contains("f32 and i64"));
        let bools = t(&[1, 1], vec![true]);
        assert!(matmul_op(&bools, &bools).unwrap_err().0.contains("bool"));
    }

    #[test]
    fn gemm_transposes_and_scales() {
        let a = t(&[2, 2], vec![1.0f32, 2.0, 3.0, 4.0]);
        let b = t(&[2, 2], vec![5.0f32, 6.0, 7.0, 8.0]);
        // a @ b = [19 22; 43 50]
        assert_eq!(
            gemm_op(&a, &b, None, PLAIN).unwrap(),
            t(&[2, 2], vec![19.0f32, 22.0, 43.0, 50.0])
        );
        // a^T @ b = [1 3; 2 4] @ [5 6; 7 8] = [26 30; 38 44]
        let scale = GemmScale {
            trans_a: true,
            ..PLAIN
        };
        assert_eq!(
            gemm_op(&a, &b, None, scale).unwrap(),
            t(&[2, 2], vec![26.0f32, 30.0, 38.0, 44.0])
        );
        // a @ b^T = [1 2; 3 4] @ [5 7; 6 8] = [17 23; 39 53]
        let scale = GemmScale {
            trans_b: true,
            ..PLAIN
        };
        assert_eq!(
            gemm_op(&a, &b, None, scale).unwrap(),
            t(&[2, 2], vec![17.0f32, 23.0, 39.0, 53.0])
        );
        // 0.5 * a @ b + 2 * c with c a row broadcast over rows.
        let c = t(&[2], vec![1.0f32, -1.0]);
        let scale = GemmScale {
            alpha: 0.5,
            beta: 2.0,
            ..PLAIN
        };
        assert_eq!(
            gemm_op(&a, &b, Some(&c), scale).unwrap(),
            t(&[2, 2], vec![11.5f32, 9.0, 23.5, 23.0])
        );
        // A scalar c and a column c.
        assert_eq!(
            gemm_op(&a, &b, Some(&Tensor::scalar(1.0f32)), PLAIN).unwrap(),
            t(&[2, 2], vec![20.0f32, 23.0, 44.0, 51.0])
        );
        let column = t(&[2, 1], vec![100.0f32, 200.0]);
        assert_eq!(
            gemm_op(&a, &b, Some(&column), PLAIN).unwrap(),
            t(&[2, 2], vec![119.0f32, 122.0, 243.0, 250.0])
        );
    }

    #[test]
    fn gemm_non_square_with_both_transposes() {
        // a: [3, 2] so a^T is [2, 3]; b: [4, 3] so b^T is [3, 4]; result [2, 4].
        let a = t(&[3, 2], vec![1.0f64, 4.0, 2.0, 5.0, 3.0, 6.0]);
        let b = t(
            &[4, 3],
            vec![
                1.0f64, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0,
            ],
        );
        let scale = GemmScale {
            trans_a: true,
            trans_b: true,
            ..PLAIN
        };
        // a^T = [1 2 3; 4 5 6]; b^T columns are e1, e2, e3, (1,1,1).
        assert_eq!(
            gemm_op(&a, &b, None, scale).unwrap(),
            t(&[2, 4], vec![1.0f64, 2.0, 3.0, 6.0, 4.0, 5.0, 6.0, 15.0])
        );
    }

    #[test]
    fn gemm_beta_zero_ignores_c() {
        let a = t(&[1, 1], vec![2.0f32]);
        let b = t(&[1, 1], vec![3.0f32]);
        let c = t(&[1, 1], vec![f32::NAN]);
        let scale = GemmScale { beta: 0.0, ..PLAIN };
        assert_eq!(
            gemm_op(&a, &b, Some(&c), scale).unwrap(),
            t(&[1, 1], vec![6.0f32])
        );
    }

    #[test]
    fn gemm_integers() {
        let a = t(&[1, 2], vec![i64::MAX, 1]);
        let b = t(&[2, 1], vec![1i64, 0]);
        let c = t(&[1], vec![-1i64]);
        // Exact when alpha = beta = 1, even beyond 2^53.
        assert_eq!(
            gemm_op(&a, &b, Some(&c), PLAIN).unwrap(),
            t(&[1, 1], vec![i64::MAX - 1])
        );
        let a = t(&[1, 1], vec![7i32]);
        let b = t(&[1, 1], vec![1i32]);
        let scale = GemmScale {
            alpha: 0.5,
            ..PLAIN
        };
        assert_eq!(
            gemm_op(&a, &b, None, scale).unwrap(),
            t(&[1, 1], vec![3i32]),
            "3.5 truncates"
        );
    }

    #[test]
    fn gemm_errors() {
        let a = t(&[2, 3], vec![0.0f32; 6]);
        assert!(gemm_op(&a, &a, None, PLAIN)
            .unwrap_err()
            .0
            .contains("inner"));
        let scale = GemmScale {
            trans_b: true,
            ..PLAIN
        };
        assert!(gemm_op(&a, &a, None, scale).is_ok());
        let v = t(&[3], vec![0.0f32; 3]);
        assert!(gemm_op(&v, &a, None, PLAIN).unwrap_err().0.contains("2-d"));
        let b = t(&[3, 2], vec![0.0f32; 6]);
        let big_c = t(&[3, 2], vec![0.0f32; 6]);
        assert!(gemm_op(&a, &b, Some(&big_c), PLAIN)
            .unwrap_err()
            .0
            .contains("does not broadcast"));
        let int_c = t(&[1], vec![0i64]);
        assert!(gemm_op(&a, &b, Some(&int_c), PLAIN)
            .unwrap_err()
            .0
            .contains("dtype"));
    }
}
