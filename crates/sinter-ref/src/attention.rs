//! Reference scaled dot-product attention with ONNX `Attention` (opset 23/24) semantics.
//!
//! For every batch, query head and query position: `s_j = scale * q . k_j`, then the softcap
//! `c * tanh(s_j / c)` when `softcap > 0`, then the mask bias and the causal mask are added, then a
//! softmax over the keys, and `y = sum_j p_j v_j`, all in f64.
//!
//! - Layouts: 4-d operands are `[batch, heads, seq, head_dim]`; 3-d ones are `[batch, seq, heads *
//!   head_dim]` and need `q_num_heads` and `kv_num_heads`. The output has q's layout and v's head dim.
//! - Grouped-query attention: query head `h` reads key/value head `h / (q_heads / kv_heads)`, i.e. kv
//!   heads are repeated `[h0, h0, h1, h1]` as PyTorch's `repeat_interleave` and onnxruntime do. The
//!   head counts must divide.
//! - `scale` defaults to `1 / sqrt(head_dim)`.
//! - The mask is bool (`false` adds `-inf`) or of q's float dtype (added), numpy-broadcast to
//!   `[batch, q_heads, q_seq, kv_seq]`. As the spec says, a last dim shorter than kv_seq is padded
//!   with `-inf` (`false`), so a size-1 last dim is padded, not broadcast.
//! - `causal` masks key `j > i` for query `i` (top-left alignment), on top of the mask.
//! - A row whose every score is `-inf` gives NaN (`-inf - -inf`), as numpy's reference does.
//!
//! Two points where onnx 1.19's `onnx.reference` (and its function body) differ, both since fixed
//! upstream or in flight: it applied the softcap after the mask, so masked scores became `-softcap`
//! and kept weight (onnx#7865, fixed by onnx#7867: softcap before the mask), and it expanded kv heads
//! with `Tile` (`[h0, h1, h0, h1]`, onnx#7274 switches it to repeat-interleave). It also turns a bool
//! mask combined with `causal` into NaN (`0 * -inf`). Fixtures from that version disagree on GQA,
//! softcap with a mask, and causal with a bool mask.

use crate::index::{
    broadcast_indices, broadcast_shapes, expect_dtype, float_values, optional_input,
    required_input, tensor_from_f64s,
};
use crate::{op_err, OpError};
use sinter_ir::{DType, Op, Tensor};

pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let Op::Attention {
        scale,
        causal,
        q_num_heads,
        kv_num_heads,
        softcap,
    } = op
    else {
        return op_err(format!("`{}` is not attention", op.name()));
    };
    let q = required_input(op, inputs, 0)?;
    let k = required_input(op, inputs, 1)?;
    let v = required_input(op, inputs, 2)?;
    let q_values = float_values(op, "q", q)?;
    expect_dtype(op, "k", k, q.dtype())?;
    expect_dtype(op, "v", v, q.dtype())?;
    let k_values = float_values(op, "k", k)?;
    let v_values = float_values(op, "v", v)?;

    let heads = HeadCounts {
        q: *q_num_heads,
        kv: *kv_num_heads,
    };
    let q_view = HeadView::new(q, "q", heads.q)?;
    let k_view = HeadView::new(k, "k", heads.kv)?;
    let v_view = HeadView::new(v, "v", heads.kv)?;
    if q.rank() != k.rank() || q.rank() != v.rank() {
        return op_err(format!(
            "`attention` needs q, k and v of one rank, got {:?}, {:?} and {:?}",
            q.shape(),
            k.shape(),
            v.shape()
        ));
    }
    let consistent = q_view.batch == k_view.batch
        && q_view.batch == v_view.batch
        && k_view.heads == v_view.heads
        && k_view.seq == v_view.seq
        && q_view.head_dim == k_view.head_dim
        && k_view.heads > 0
        && q_view.heads.is_multiple_of(k_view.heads);
    if !consistent {
        return op_err(format!(
            "`attention` shapes do not fit: q {:?}, k {:?}, v {:?} (batches must agree, k and v must share \
             heads and length, q and k the head dim, and kv heads must divide q heads)",
            q.shape(),
            k.shape(),
            v.shape()
        ));
    }
    let (n_batch, n_q_heads, q_seq, kv_seq) = (q_view.batch, q_view.heads, q_view.seq, k_view.seq);
    let bias_shape = [n_batch, n_q_heads, q_seq, kv_seq];
    let bias = match optional_input(inputs, 3) {
        Some(mask) => Some(mask_bias(op, mask, q.dtype(), &bias_shape)?),
        None => None,
    };
    let scale = match scale {
        Some(s) => f64::from(*s),
        None => 1.0 / (q_view.head_dim as f64).sqrt(),
    };
    let softcap = f64::from(*softcap);

    let v_dim = v_view.head_dim;
    let out_shape = if q.rank() == 4 {
        vec![n_batch, n_q_heads, q_seq, v_dim]
    } else {
        vec![n_batch, q_seq, n_q_heads * v_dim]
    };
    let out_view = HeadView {
        batch: n_batch,
        heads: n_q_heads,
        seq: q_seq,
        head_dim: v_dim,
        batch_first_seq: q.rank() == 3,
    };
    let mut y = vec![0.0; out_shape.iter().product()];
    let mut scores = vec![0.0; kv_seq];
    for b in 0..n_batch {
        for h in 0..n_q_heads {
            let kv_h = h / (n_q_heads / k_view.heads);
            for i in 0..q_seq {
                for (j, score) in scores.iter_mut().enumerate() {
                    let dot: f64 = (0..q_view.head_dim)
                        .map(|d| {
                            q_values[q_view.at(b, h, i, d)] * k_values[k_view.at(b, kv_h, j, d)]
                        })
                        .sum();
                    let mut s = dot * scale;
                    if softcap > 0.0 {
                        s = softcap * (s / softcap).tanh();
                    }
                    if let Some(bias) = &bias {
                        s += bias[((b * n_q_heads + h) * q_seq + i) * kv_seq + j];
                    }
                    if *causal && j > i {
                        s += f64::NEG_INFINITY;
                    }
                    *score = s;
                }
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = weights.iter().sum();
                for d in 0..v_dim {
                    let acc: f64 = weights
                        .iter()
                        .enumerate()
                        .map(|(j, w)| w / sum * v_values[v_view.at(b, kv_h, j, d)])
                        .sum();
                    y[out_view.at(b, h, i, d)] = acc;
                }
            }
        }
    }
    tensor_from_f64s(q.dtype(), out_shape, y).map(|t| vec![t])
}

/// The `q_num_heads` / `kv_num_heads` attributes (0 = not given).
struct HeadCounts {
    q: i64,
    kv: i64,
}

/// One operand seen as `[batch, heads, seq, head_dim]`, whatever its layout.
struct HeadView {
    batch: usize,
    heads: usize,
    seq: usize,
    head_dim: usize,
    /// 3-d `[batch, seq, heads * head_dim]` rather than 4-d `[batch, heads, seq, head_dim]`.
    batch_first_seq: bool,
}

impl HeadView {
    fn new(t: &Tensor, name: &str, n_heads_attr: i64) -> Result<HeadView, OpError> {
        let shape = t.shape();
        match shape.len() {
            4 => {
                if n_heads_attr != 0 && n_heads_attr as usize != shape[1] {
                    return op_err(format!(
                        "`attention` input `{name}` of shape {shape:?} has {} heads, but the head count attribute says {n_heads_attr}",
                        shape[1]
                    ));
                }
                Ok(HeadView {
                    batch: shape[0],
                    heads: shape[1],
                    seq: shape[2],
                    head_dim: shape[3],
                    batch_first_seq: false,
                })
            }
            3 => {
                if n_heads_attr < 1 || !shape[2].is_multiple_of(n_heads_attr as usize) {
                    return op_err(format!(
                        "`attention` 3-d input `{name}` of shape {shape:?} needs a positive head count dividing {} \
                         (q_num_heads / kv_num_heads), got {n_heads_attr}",
                        shape[2]
                    ));
                }
                let heads = n_heads_attr as usize;
                Ok(HeadView {
                    batch: shape[0],
                    heads,
                    seq: shape[1],
                    head_dim: shape[2] / heads,
                    batch_first_seq: true,
                })
            }
            _ => op_err(format!(
                "`attention` input `{name}` must be 3-d or 4-d, got shape {shape:?}"
            )),
        }
    }

    fn at(&self, b: usize, h: usize, s: usize, d: usize) -> usize {
        if self.batch_first_seq {
            ((b * self.seq + s) * self.heads + h) * self.head_dim + d
        } else {
            ((b * self.heads + h) * self.seq + s) * self.head_dim + d
        }
    }
}

/// The additive bias of a mask, padded along its last dim to the key length and broadcast to
/// `[batch, q_heads, q_seq, kv_seq]` (row-major).
fn mask_bias(
    op: &Op,
    mask: &Tensor,
    dtype: DType,
    target: &[usize; 4],
) -> Result<Vec<f64>, OpError> {
    let values: Vec<f64> = match mask.dtype() {
        DType::Bool => mask
            .to_f64_vec()
            .into_iter()
            .map(|keep| if keep != 0.0 { 0.0 } else { f64::NEG_INFINITY })
            .collect(),
        d if d == dtype => float_values(op, "mask", mask)?,
        other => {
            return op_err(format!(
                "`attention` mask must be bool or {dtype} like q, got {other}"
            ))
        }
    };
    let kv_seq = target[3];
    let shape = mask.shape();
    let (padded_shape, padded) = match shape.last() {
        Some(&last) if last < kv_seq => {
            let mut padded = Vec::with_capacity(values.len() / last.max(1) * kv_seq);
            if last == 0 {
                let rows: usize = shape[..shape.len() - 1].iter().product();
                padded.resize(rows * kv_seq, f64::NEG_INFINITY);
            } else {
                for row in values.chunks(last) {
                    padded.extend_from_slice(row);
                    padded.resize(padded.len() + kv_seq - last, f64::NEG_INFINITY);
                }
            }
            let mut padded_shape = shape.to_vec();
            if let Some(l) = padded_shape.last_mut() {
                *l = kv_seq;
            }
            (padded_shape, padded)
        }
        _ => (shape.to_vec(), values),
    };
    let fits = padded_shape.len() <= 4
        && broadcast_shapes(&padded_shape, target).is_ok_and(|s| s == target);
    if !fits {
        return op_err(format!(
            "`attention` mask of shape {shape:?} does not broadcast to {target:?} ([batch, q_heads, q_seq, kv_seq])"
        ));
    }
    Ok(broadcast_indices(&padded_shape, target)
        .into_iter()
        .map(|idx| padded[idx])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, f32s, t32};

    fn attention(scale: Option<f32>, causal: bool, heads: (i64, i64), softcap: f32) -> Op {
        Op::Attention {
            scale,
            causal,
            q_num_heads: heads.0,
            kv_num_heads: heads.1,
            softcap,
        }
    }

    fn run(op: &Op, inputs: &[Option<&Tensor>]) -> Tensor {
        eval(op, inputs).unwrap().remove(0)
    }

    /// One head, one query, two keys with scores ln 1 and ln 3: weights 1/4 and 3/4.
    #[test]
    fn single_query_weights_values_by_softmax() {
        let q = t32(&[1, 1, 1, 1], &[1.0]);
        let k = t32(&[1, 1, 2, 1], &[0.0, 3f32.ln()]);
        let v = t32(&[1, 1, 2, 2], &[4.0, 0.0, 8.0, 1.0]);
        let y = run(
            &attention(Some(1.0), false, (0, 0), 0.0),
            &[Some(&q), Some(&k), Some(&v)],
        );
        assert_eq!(y.shape(), &[1, 1, 1, 2]);
        assert_close(&f32s(&y), &[7.0, 0.75]);
        // The default scale 1/sqrt(head_dim) with head_dim 4: scores 0 and (4 * 0.5) / 2 = 1.
        let q = t32(&[1, 1, 1, 4], &[1.0; 4]);
        let k = t32(&[1, 1, 2, 4], &[0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5]);
        let y = run(
            &attention(None, false, (0, 0), 0.0),
            &[Some(&q), Some(&k), Some(&v)],
        );
        let w = 1f64.exp() / (1.0 + 1f64.exp());
        assert_close(&f32s(&y), &[4.0 * (1.0 - w) + 8.0 * w, w]);
    }

    #[test]
    fn causal_and_masks() {
        // Equal scores everywhere, so each query averages the values it may see.
        let q = t32(&[1, 1, 3, 1], &[0.0; 3]);
        let k = t32(&[1, 1, 3, 1], &[0.0; 3]);
        let v = t32(&[1, 1, 3, 1], &[3.0, 6.0, 9.0]);
        let y = run(
            &attention(None, true, (0, 0), 0.0),
            &[Some(&q), Some(&k), Some(&v)],
        );
        assert_close(&f32s(&y), &[3.0, 4.5, 6.0]);
        // A bool mask hiding key 0 from every query, broadcast from [kv_seq].
        let mask = Tensor::from_vec(vec![3], vec![false, true, true]).unwrap();
        let y = run(
            &attention(None, false, (0, 0), 0.0),
            &[Some(&q), Some(&k), Some(&v), Some(&mask)],
        );
        assert_close(&f32s(&y), &[7.5, 7.5, 7.5]);
        // Combined with causal, query 0 sees nothing: NaN.
        let y = run(
            &attention(None, true, (0, 0), 0.0),
            &[Some(&q), Some(&k), Some(&v), Some(&mask)],
        );
        let y = f32s(&y);
        assert!(y[0].is_nan());
        assert_close(&y[1..], &[6.0, 7.5]);
        // A float mask is added: ln 2 on key 2 doubles its weight.
        let mask = t32(&[1, 3], &[0.0, 0.0, 2f32.ln()]);
        let y = run(
            &attention(None, false, (0, 0), 0.0),
            &[Some(&q), Some(&k), Some(&v), Some(&mask)],
        );
        assert_close(&f32s(&y), &[6.75, 6.75, 6.75]);
        // A mask shorter than kv_seq is padded with -inf: only key 0 remains.
        let short = t32(&[1], &[0.0]);
        let y = run(
            &attention(None, false, (0, 0), 0.0),
            &[Some(&q), Some(&k), Some(&v), Some(&short)],
        );
        assert_close(&f32s(&y), &[3.0, 3.0, 3.0]);
    }

    #[test]
    fn causal_aligns_top_left_when_lengths_differ() {
        // Two queries, three keys: query 0 sees key 0, query 1 sees keys 0 and 1.
        let q = t32(&[1, 1, 2, 1], &[0.0; 2]);
        let k = t32(&[1, 1, 3, 1], &[0.0; 3]);
        let v = t32(&[1, 1, 3, 1], &[3.0, 6.0, 9.0]);
        let y = run(
            &attention(None, true, (0, 0), 0.0),
            &[Some(&q), Some(&k), Some(&v)],
        );
        assert_close(&f32s(&y), &[3.0, 4.5]);
    }

    #[test]
    fn softcap_squashes_scores_before_the_mask() {
        let q = t32(&[1, 1, 1, 1], &[1.0]);
        let k = t32(&[1, 1, 2, 1], &[0.0, 10.0]);
        let v = t32(&[1, 1, 2, 1], &[5.0, 1.0]);
        let y = run(
            &attention(Some(1.0), false, (0, 0), 2.0),
            &[Some(&q), Some(&k), Some(&v)],
        );
        let capped = 2.0 * 5f64.tanh();
        let w = capped.exp() / (1.0 + capped.exp());
        assert_close(&f32s(&y), &[5.0 * (1.0 - w) + w]);
        // A masked key stays at -inf and gets no weight.
        let mask = Tensor::from_vec(vec![2], vec![true, false]).unwrap();
        let y = run(
            &attention(Some(1.0), false, (0, 0), 2.0),
            &[Some(&q), Some(&k), Some(&v), Some(&mask)],
        );
        assert_eq!(f32s(&y), [5.0]);
        // A float bias is added after the cap: the capped score 2 tanh(5) plus ln 2 against 0.
        let bias = t32(&[2], &[0.0, 2f32.ln()]);
        let y = run(
            &attention(Some(1.0), false, (0, 0), 2.0),
            &[Some(&q), Some(&k), Some(&v), Some(&bias)],
        );
        let w = 2.0 * capped.exp() / (1.0 + 2.0 * capped.exp());
        assert_close(&f32s(&y), &[5.0 * (1.0 - w) + w]);
    }

    #[test]
    fn grouped_query_heads_repeat_each_kv_head() {
        // 4 query heads over 2 kv heads: heads 0 and 1 read kv head 0, heads 2 and 3 read kv head 1.
        let q = t32(&[1, 4, 1, 1], &[0.0; 4]);
        let k = t32(&[1, 2, 1, 1], &[0.0; 2]);
        let v = t32(&[1, 2, 1, 1], &[10.0, 20.0]);
        let y = run(
            &attention(None, false, (0, 0), 0.0),
            &[Some(&q), Some(&k), Some(&v)],
        );
        assert_eq!(f32s(&y), [10.0, 10.0, 20.0, 20.0]);
        let k3 = t32(&[1, 3, 1, 1], &[0.0; 3]);
        let v3 = t32(&[1, 3, 1, 1], &[0.0; 3]);
        assert!(eval(
            &attention(None, false, (0, 0), 0.0),
            &[Some(&q), Some(&k3), Some(&v3)]
        )
        .is_err());
    }

    #[test]
    fn three_d_layout_splits_heads_from_the_hidden_dim() {
        // Batch 1, seq 1, two heads of dim 1; v has head dim 2.
        let q = t32(&[1, 1, 2], &[0.0, 0.0]);
        let k = t32(&[1, 2, 2], &[0.0; 4]);
        let v = t32(&[1, 2, 4], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        let y = run(
            &attention(None, false, (2, 2), 0.0),
            &[Some(&q), Some(&k), Some(&v)],
        );
        assert_eq!(y.shape(), &[1, 1, 4]);
        // Head 0 averages [1, 2] and [5, 6]; head 1 averages [3, 4] and [7, 8].
        assert_close(&f32s(&y), &[3.0, 4.0, 5.0, 6.0]);
        assert!(eval(
            &attention(None, false, (0, 0), 0.0),
            &[Some(&q), Some(&k), Some(&v)]
        )
        .is_err());
        assert!(eval(
            &attention(None, false, (3, 2), 0.0),
            &[Some(&q), Some(&k), Some(&v)]
        )
        .is_err());
    }

    #[test]
    fn rejects_inconsistent_operands() {
        let q = t32(&[1, 1, 2, 2], &[0.0; 4]);
        let k = t32(&[1, 1, 3, 2], &[0.0; 6]);
        let v = t32(&[1, 1, 2, 2], &[0.0; 4]);
        let op = attention(None, false, (0, 0), 0.0);
        assert!(
            eval(&op, &[Some(&q), Some(&k), Some(&v)]).is_err(),
            "k and v lengths differ"
        );
        let k_dim = t32(&[1, 1, 2, 3], &[0.0; 6]);
        assert!(
            eval(&op, &[Some(&q), Some(&k_dim), Some(&v)]).is_err(),
            "q and k head dims differ"
        );
        let k64 = Tensor::from_vec(vec![1, 1, 2, 2], vec![0.0f64; 4]).unwrap();
        assert!(eval(&op, &[Some(&q), Some(&k64), Some(&v)]).is_err());
        let mask = t32(&[3, 2], &[0.0; 6]);
        assert!(eval(&op, &[Some(&q), Some(&v), Some(&v), Some(&mask)]).is_err());
        let long = t32(&[3], &[0.0; 3]);
        assert!(eval(&op, &[Some(&q), Some(&v), Some(&v), Some(&long)]).is_err());
        let int_mask = Tensor::from_vec(vec![2], vec![1i64, 0]).unwrap();
        assert!(eval(&op, &[Some(&q), Some(&v), Some(&v), Some(&int_mask)]).is_err());
        let wrong_heads = attention(None, false, (2, 0), 0.0);
        assert!(eval(&wrong_heads, &[Some(&q), Some(&v), Some(&v)]).is_err());
    }
}
